//! ggml's K-quants (256-element super-blocks): dequantizers for Q2_K..Q6_K and Q8_K, and the
//! reference Q6_K quantizer (`quantize_row_q6_K_ref`), with ggml's float evaluation order.

use half::f16;

use super::QK_K;

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// ggml's `nearest_int`: round-half-even through the 1.5·2^23 trick (exact for |v| < 2^22).
#[inline]
pub fn nearest_int(v: f32) -> i32 {
    let bits = (v + 12_582_912.0f32).to_bits() as i32;
    (bits & 0x007f_ffff) - 0x0040_0000
}

/// Q2_K: `scales[16]` (4-bit scale | 4-bit min), `qs[64]`, f16 `d`, f16 `dmin` (84 bytes).
pub fn dequantize_q2_k(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in bytes.chunks_exact(84).zip(out.chunks_exact_mut(QK_K)) {
        let (d, min) = (f16_at(b, 80), f16_at(b, 82));
        let (scales, qs) = (&b[0..16], &b[16..80]);
        let mut yi = 0;
        let mut is = 0;
        for n in 0..2 {
            let q = &qs[n * 32..n * 32 + 32];
            for j in 0..4 {
                let shift = 2 * j;
                for half in 0..2 {
                    let sc = scales[is];
                    is += 1;
                    let dl = d * (sc & 0x0f) as f32;
                    let ml = min * (sc >> 4) as f32;
                    for l in 0..16 {
                        y[yi] = dl * ((q[half * 16 + l] >> shift) & 3) as f32 - ml;
                        yi += 1;
                    }
                }
            }
        }
    }
}

/// The 16 signed 6-bit scales of a Q3_K block (each stored as value + 32).
fn q3_k_scales(s: &[u8]) -> [i32; 16] {
    let mut out = [0i32; 16];
    for (j, o) in out.iter_mut().enumerate() {
        let low = if j < 8 { s[j] & 0x0f } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        *o = (low | (high << 4)) as i32 - 32;
    }
    out
}

/// Q3_K: `hmask[32]`, `qs[64]`, `scales[12]`, f16 `d` (110 bytes).
pub fn dequantize_q3_k(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in bytes.chunks_exact(110).zip(out.chunks_exact_mut(QK_K)) {
        let d_all = f16_at(b, 108);
        let (hm, qs) = (&b[0..32], &b[32..96]);
        let scales = q3_k_scales(&b[96..108]);
        let mut yi = 0;
        let mut is = 0;
        let mut m = 1u8;
        for n in 0..2 {
            let q = &qs[n * 32..n * 32 + 32];
            for j in 0..4 {
                let shift = 2 * j;
                for half in 0..2 {
                    let dl = d_all * scales[is] as f32;
                    is += 1;
                    for l in 0..16 {
                        let i = half * 16 + l;
                        let low = ((q[i] >> shift) & 3) as i32;
                        let sub = if hm[i] & m != 0 { 0 } else { 4 };
                        y[yi] = dl * (low - sub) as f32;
                        yi += 1;
                    }
                }
                m <<= 1;
            }
        }
    }
}

/// 6-bit scale and min `j` (0..8) of the 12-byte Q4_K/Q5_K scale field.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Q4_K: f16 `d`, f16 `dmin`, `scales[12]`, `qs[128]` (144 bytes).
pub fn dequantize_q4_k(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in bytes.chunks_exact(144).zip(out.chunks_exact_mut(QK_K)) {
        let (d, min) = (f16_at(b, 0), f16_at(b, 2));
        let (scales, qs) = (&b[4..16], &b[16..144]);
        for g in 0..4 {
            let (sc, m) = scale_min_k4(2 * g, scales);
            let (d1, m1) = (d * sc as f32, min * m as f32);
            let (sc, m) = scale_min_k4(2 * g + 1, scales);
            let (d2, m2) = (d * sc as f32, min * m as f32);
            let q = &qs[g * 32..g * 32 + 32];
            let y = &mut y[g * 64..g * 64 + 64];
            for l in 0..32 {
                y[l] = d1 * (q[l] & 0x0f) as f32 - m1;
                y[32 + l] = d2 * (q[l] >> 4) as f32 - m2;
            }
        }
    }
}

/// Q5_K: f16 `d`, f16 `dmin`, `scales[12]`, `qh[32]`, `qs[128]` (176 bytes).
pub fn dequantize_q5_k(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in bytes.chunks_exact(176).zip(out.chunks_exact_mut(QK_K)) {
        let (d, min) = (f16_at(b, 0), f16_at(b, 2));
        let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
        for g in 0..4 {
            let (u1, u2) = (1u8 << (2 * g), 2u8 << (2 * g));
            let (sc, m) = scale_min_k4(2 * g, scales);
            let (d1, m1) = (d * sc as f32, min * m as f32);
            let (sc, m) = scale_min_k4(2 * g + 1, scales);
            let (d2, m2) = (d * sc as f32, min * m as f32);
            let ql = &qs[g * 32..g * 32 + 32];
            let y = &mut y[g * 64..g * 64 + 64];
            for l in 0..32 {
                let h1 = if qh[l] & u1 != 0 { 16 } else { 0 };
                let h2 = if qh[l] & u2 != 0 { 16 } else { 0 };
                y[l] = d1 * ((ql[l] & 0x0f) + h1) as f32 - m1;
                y[32 + l] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
            }
        }
    }
}

/// Q6_K: `ql[128]`, `qh[64]`, `scales[16]` (i8), f16 `d` (210 bytes).
pub fn dequantize_q6_k(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in bytes.chunks_exact(210).zip(out.chunks_exact_mut(QK_K)) {
        let d = f16_at(b, 208);
        for n in 0..2 {
            let ql = &b[n * 64..n * 64 + 64];
            let qh = &b[128 + n * 32..128 + n * 32 + 32];
            let sc = &b[192 + n * 8..192 + n * 8 + 8];
            let y = &mut y[n * 128..n * 128 + 128];
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i32 - 32;
                let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                y[l] = d * sc[is] as i8 as f32 * q1 as f32;
                y[l + 32] = d * sc[is + 2] as i8 as f32 * q2 as f32;
                y[l + 64] = d * sc[is + 4] as i8 as f32 * q3 as f32;
                y[l + 96] = d * sc[is + 6] as i8 as f32 * q4 as f32;
            }
        }
    }
}

/// Q8_K: f32 `d`, `qs[256]` (i8), `bsums[16]` (i16) (292 bytes).
pub fn dequantize_q8_k(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in bytes.chunks_exact(292).zip(out.chunks_exact_mut(QK_K)) {
        let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        for (o, &q) in y.iter_mut().zip(&b[4..260]) {
            *o = d * q as i8 as f32;
        }
    }
}

/// ggml `quantize_row_q8_K_ref` (the activation side of TQ/K-quant dot products): per block
/// the signed value of largest magnitude `max`, `iscale = −127/max`,
/// `q = min(127, nearest_int(iscale·x))`, `d = 1/iscale`, plus the 16 sums of 16 values.
/// An all-zero block is all zeros.
pub fn quantize_q8_k(src: &[f32], out: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK_K).zip(out.chunks_exact_mut(292)) {
        let (mut max, mut amax) = (0f32, 0f32);
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        y.fill(0);
        if amax == 0.0 {
            continue;
        }
        let iscale = -127.0f32 / max;
        let mut q = [0i8; QK_K];
        for (q, &v) in q.iter_mut().zip(x) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        y[0..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
        for (o, &v) in y[4..260].iter_mut().zip(&q) {
            *o = v as u8;
        }
        for j in 0..QK_K / 16 {
            let sum: i16 = q[j * 16..j * 16 + 16].iter().map(|&v| v as i16).sum();
            y[260 + 2 * j..262 + 2 * j].copy_from_slice(&sum.to_le_bytes());
        }
    }
}

const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `make_qx_quants` with `rmse_type = 1` and no importance weights (weights `x²`),
/// as `quantize_row_q6_K_ref` calls it. Writes `L[i] = l + nmax` and returns the scale.
fn make_qx_quants_rmse1(nmax: i32, x: &[f32], out_l: &mut [i8]) -> f32 {
    let (mut max, mut amax) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        out_l.iter_mut().for_each(|l| *l = 0);
        return 0.0;
    }
    let clampl = |l: i32| l.clamp(-nmax, nmax - 1);
    let mut iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0f32, 0f32);
    for (l_out, &v) in out_l.iter_mut().zip(x) {
        let l = clampl(nearest_int(iscale * v));
        *l_out = (l + nmax) as i8;
        let w = v * v;
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1f32 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for &v in x {
            let l = clampl(nearest_int(iscale * v));
            let w = v * v;
            sumlx += w * v * l as f32;
            suml2 += w * l as f32 * l as f32;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (l_out, &v) in out_l.iter_mut().zip(x) {
                *l_out = (nmax + clampl(nearest_int(iscale * v))) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml `quantize_row_q6_K_ref` over whole blocks.
pub fn quantize_q6_k(src: &[f32], out: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK_K).zip(out.chunks_exact_mut(210)) {
        let mut l = [0i8; QK_K];
        let mut scales = [0f32; QK_K / 16];
        let (mut max_scale, mut max_abs_scale) = (0f32, 0f32);
        for ib in 0..QK_K / 16 {
            let s =
                make_qx_quants_rmse1(32, &x[16 * ib..16 * ib + 16], &mut l[16 * ib..16 * ib + 16]);
            scales[ib] = s;
            if s.abs() > max_abs_scale {
                max_abs_scale = s.abs();
                max_scale = s;
            }
        }
        y.fill(0);
        if max_abs_scale < GROUP_MAX_EPS {
            continue;
        }
        let iscale = -128.0f32 / max_scale;
        let d16 = f16::from_f32(1.0 / iscale);
        y[208..210].copy_from_slice(&d16.to_le_bytes());
        let mut sc = [0i8; QK_K / 16];
        for ib in 0..QK_K / 16 {
            sc[ib] = nearest_int(iscale * scales[ib]).min(127) as i8;
            y[192 + ib] = sc[ib] as u8;
        }
        for j in 0..QK_K / 16 {
            let d = d16.to_f32() * sc[j] as f32;
            if d == 0.0 {
                continue;
            }
            for ii in 0..16 {
                let q = nearest_int(x[16 * j + ii] / d).clamp(-32, 31);
                l[16 * j + ii] = (q + 32) as i8;
            }
        }
        for n in 0..2 {
            let j = n * 128;
            for i in 0..32 {
                let lq = |o: usize| l[j + i + o] as u8;
                y[n * 64 + i] = (lq(0) & 0x0f) | ((lq(64) & 0x0f) << 4);
                y[n * 64 + i + 32] = (lq(32) & 0x0f) | ((lq(96) & 0x0f) << 4);
                y[128 + n * 32 + i] = (lq(0) >> 4)
                    | ((lq(32) >> 4) << 2)
                    | ((lq(64) >> 4) << 4)
                    | ((lq(96) >> 4) << 6);
            }
        }
    }
}
