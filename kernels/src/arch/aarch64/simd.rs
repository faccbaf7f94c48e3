//! The NEON twins of `portable`. Same signatures and contracts; see
//! `kernels/tests/simd_vs_portable.rs` for the equality each one guarantees. The float
//! kernels are `arch::float`'s, on `float32x4_t`.

use std::arch::aarch64::*;
use std::arch::asm;

use crate::arch::float;
use crate::portable;

/// `arch::float`'s vector trait on `float32x4_t`.
mod vector;

/// Exact, bit-identical (vmaxnm ignores NaN like `f32::max`).
#[target_feature(enable = "neon")]
pub fn absmax(x: &[f32]) -> f32 {
    let mut m0 = vdupq_n_f32(0.0);
    let mut m1 = vdupq_n_f32(0.0);
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        // SAFETY: `c` holds 8 floats: the loads read `c[0..4]` and `c[4..8]`.
        let (v0, v1) = unsafe { (vld1q_f32(c.as_ptr()), vld1q_f32(c.as_ptr().add(4))) };
        m0 = vmaxnmq_f32(m0, vabsq_f32(v0));
        m1 = vmaxnmq_f32(m1, vabsq_f32(v1));
    }
    let mut r = vmaxnmvq_f32(vmaxnmq_f32(m0, m1));
    for &v in tail {
        r = r.max(v.abs());
    }
    r
}

/// Bit-identical to the portable twin.
#[target_feature(enable = "neon")]
pub fn quantize_row(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    let scale = portable::act_scale(absmax(x));
    let n = x.len().min(q.len());
    let vs = vdupq_n_f32(scale);
    let lo = vdupq_n_f32(-128.0);
    let hi = vdupq_n_f32(127.0);
    let mut acc = vdupq_n_s32(0);
    let mut i = 0;
    while i + 16 <= n {
        let mut v = [vdupq_n_s32(0); 4];
        for (j, vj) in v.iter_mut().enumerate() {
            // SAFETY: reads `x[i + 4j..i + 4j + 4]`, below `i + 16 ≤ n ≤ x.len()`.
            let f = unsafe { vld1q_f32(x.as_ptr().add(i + 4 * j)) };
            let f = vrndnq_f32(vmulq_f32(f, vs));
            let f = vminnmq_f32(vmaxnmq_f32(f, lo), hi);
            *vj = vcvtq_s32_f32(f);
            acc = vaddq_s32(acc, *vj);
        }
        let h0 = vcombine_s16(vqmovn_s32(v[0]), vqmovn_s32(v[1]));
        let h1 = vcombine_s16(vqmovn_s32(v[2]), vqmovn_s32(v[3]));
        let b = vcombine_s8(vqmovn_s16(h0), vqmovn_s16(h1));
        // SAFETY: writes `q[i..i + 16]`, below `i + 16 ≤ n ≤ q.len()`.
        unsafe { vst1q_s8(q.as_mut_ptr().add(i), b) };
        i += 16;
    }
    let tail = portable::quantize_with(&x[i..n], scale, &mut q[i..n]);
    (scale, vaddvq_s32(acc) + tail)
}

/// The four code planes of one 32-byte I2 block, as two 16-byte halves each:
/// plane p, half h holds elements `32p + 16h .. 32p + 16h + 16`.
///
/// # Safety
/// `w` is valid for reading 32 bytes.
#[inline]
#[target_feature(enable = "neon")]
pub(super) unsafe fn unpack(w: *const u8) -> [[int8x16_t; 2]; 4] {
    let m3 = vdupq_n_u8(3);
    // SAFETY: the caller guarantees 32 readable bytes at `w`.
    let b = unsafe { [vld1q_u8(w), vld1q_u8(w.add(16))] };
    let plane = |h: usize, s: i32| -> int8x16_t {
        let v = match s {
            6 => vshrq_n_u8(b[h], 6),
            4 => vshrq_n_u8(b[h], 4),
            2 => vshrq_n_u8(b[h], 2),
            _ => b[h],
        };
        vreinterpretq_s8_u8(vandq_u8(v, m3))
    };
    [
        [plane(0, 6), plane(1, 6)],
        [plane(0, 4), plane(1, 4)],
        [plane(0, 2), plane(1, 2)],
        [plane(0, 0), plane(1, 0)],
    ]
}

/// Σ code·q of one block against one token, widened into `acc` (exact: each i16 lane
/// sums at most 8 products of ≤ 256).
///
/// # Safety
/// `q` is valid for reading 128 bytes.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn block_dot(c: &[[int8x16_t; 2]; 4], q: *const i8, acc: int32x4_t) -> int32x4_t {
    let mut s = vdupq_n_s16(0);
    for (p, halves) in c.iter().enumerate() {
        for (h, &ch) in halves.iter().enumerate() {
            // SAFETY: 32p + 16h + 16 ≤ 128: inside the caller's bytes at `q`.
            let qv = unsafe { vld1q_s8(q.add(32 * p + 16 * h)) };
            s = vmlal_s8(s, vget_low_s8(ch), vget_low_s8(qv));
            s = vmlal_high_s8(s, ch, qv);
        }
    }
    vpadalq_s16(acc, s)
}

/// Exact integer result, identical to the portable twin.
#[inline]
#[target_feature(enable = "neon")]
pub fn i2_dot(w: &[u8], q: &[i8]) -> i32 {
    let nb = (w.len() / 32).min(q.len() / 128);
    let mut acc = vdupq_n_s32(0);
    for b in 0..nb {
        // SAFETY: b < nb: block b's 32 bytes of `w` and 128 of `q` are in bounds.
        acc = unsafe {
            block_dot(
                &unpack(w.as_ptr().add(32 * b)),
                q.as_ptr().add(128 * b),
                acc,
            )
        };
    }
    vaddvq_s32(acc)
}

#[target_feature(enable = "neon")]
pub fn i2_dot4(w: &[u8], q: [&[i8]; 4]) -> [i32; 4] {
    let nb = q.iter().fold(w.len() / 32, |n, r| n.min(r.len() / 128));
    let mut acc = [vdupq_n_s32(0); 4];
    for b in 0..nb {
        // SAFETY: b < nb: block b's 32 bytes of `w` are in bounds.
        let c = unsafe { unpack(w.as_ptr().add(32 * b)) };
        for t in 0..4 {
            // SAFETY: b < nb: block b's 128 bytes of token t are in bounds.
            acc[t] = unsafe { block_dot(&c, q[t].as_ptr().add(128 * b), acc[t]) };
        }
    }
    [
        vaddvq_s32(acc[0]),
        vaddvq_s32(acc[1]),
        vaddvq_s32(acc[2]),
        vaddvq_s32(acc[3]),
    ]
}

/// Decode's mat-vec (`portable::i2_matvec`) through [`i2_rows4`]. Exact.
#[target_feature(enable = "neon")]
pub fn i2_matvec(w: &[u8], row_bytes: usize, q: &[i8], dots: &mut [i32]) {
    i2_matvec_by_quarters!(w, row_bytes, q, dots, i2_rows4, i2_dot)
}

/// Four weight rows against one token, read side by side. Exact.
#[inline]
#[target_feature(enable = "neon")]
fn i2_rows4(w: [&[u8]; 4], q: &[i8]) -> [i32; 4] {
    let nb = w.iter().fold(q.len() / 128, |n, r| n.min(r.len() / 32));
    let mut acc = [vdupq_n_s32(0); 4];
    for b in 0..nb {
        for r in 0..4 {
            // SAFETY: b < nb: block b's 32 bytes of row r and 128 of `q` are in bounds.
            acc[r] = unsafe {
                block_dot(
                    &unpack(w[r].as_ptr().add(32 * b)),
                    q.as_ptr().add(128 * b),
                    acc[r],
                )
            };
        }
    }
    acc.map(|a| vaddvq_s32(a))
}

/// `acc += sdot(a, b)`: four lanes, each the sum of four i8 products.
#[inline]
#[target_feature(enable = "neon,dotprod")]
pub(super) fn sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut r = acc;
    // SAFETY: `sdot` exists with the `dotprod` feature this function enables; it reads and
    // writes registers only.
    unsafe {
        asm!("sdot {0:v}.4s, {1:v}.16b, {2:v}.16b", inout(vreg) r, in(vreg) a, in(vreg) b, options(pure, nomem, nostack));
    }
    r
}

/// # Safety
/// `q` is valid for reading 128 bytes.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn block_sdot(c: &[[int8x16_t; 2]; 4], q: *const i8, mut acc: int32x4_t) -> int32x4_t {
    for (p, halves) in c.iter().enumerate() {
        for (h, &ch) in halves.iter().enumerate() {
            // SAFETY: 32p + 16h + 16 ≤ 128: inside the caller's bytes at `q`.
            acc = sdot(acc, ch, unsafe { vld1q_s8(q.add(32 * p + 16 * h)) });
        }
    }
    acc
}

#[inline]
#[target_feature(enable = "neon,dotprod")]
pub fn i2_dot_sdot(w: &[u8], q: &[i8]) -> i32 {
    let nb = (w.len() / 32).min(q.len() / 128);
    let mut acc = vdupq_n_s32(0);
    for b in 0..nb {
        // SAFETY: b < nb: block b's 32 bytes of `w` and 128 of `q` are in bounds.
        acc = unsafe {
            block_sdot(
                &unpack(w.as_ptr().add(32 * b)),
                q.as_ptr().add(128 * b),
                acc,
            )
        };
    }
    vaddvq_s32(acc)
}

#[target_feature(enable = "neon,dotprod")]
pub fn i2_dot4_sdot(w: &[u8], q: [&[i8]; 4]) -> [i32; 4] {
    let nb = q.iter().fold(w.len() / 32, |n, r| n.min(r.len() / 128));
    let mut acc = [vdupq_n_s32(0); 4];
    for b in 0..nb {
        // SAFETY: b < nb: block b's 32 bytes of `w` are in bounds.
        let c = unsafe { unpack(w.as_ptr().add(32 * b)) };
        for t in 0..4 {
            // SAFETY: b < nb: block b's 128 bytes of token t are in bounds.
            acc[t] = unsafe { block_sdot(&c, q[t].as_ptr().add(128 * b), acc[t]) };
        }
    }
    [
        vaddvq_s32(acc[0]),
        vaddvq_s32(acc[1]),
        vaddvq_s32(acc[2]),
        vaddvq_s32(acc[3]),
    ]
}

/// [`i2_matvec`] with `sdot`. Exact.
#[target_feature(enable = "neon,dotprod")]
pub fn i2_matvec_sdot(w: &[u8], row_bytes: usize, q: &[i8], dots: &mut [i32]) {
    i2_matvec_by_quarters!(w, row_bytes, q, dots, i2_rows4_sdot, i2_dot_sdot)
}

/// [`i2_rows4`] with `sdot`. Exact.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn i2_rows4_sdot(w: [&[u8]; 4], q: &[i8]) -> [i32; 4] {
    let nb = w.iter().fold(q.len() / 128, |n, r| n.min(r.len() / 32));
    let mut acc = [vdupq_n_s32(0); 4];
    for b in 0..nb {
        for r in 0..4 {
            // SAFETY: b < nb: block b's 32 bytes of row r and 128 of `q` are in bounds.
            acc[r] = unsafe {
                block_sdot(
                    &unpack(w[r].as_ptr().add(32 * b)),
                    q.as_ptr().add(128 * b),
                    acc[r],
                )
            };
        }
    }
    acc.map(|a| vaddvq_s32(a))
}

float_entry_points!("neon", float32x4_t);

/// Two rows × three tokens of [`dot_f32`] (a prompt's output head), each pair bit-identical
/// to `dot_f32(rows[r], xs[t])`; the 24 accumulators and five operands fit NEON's 32
/// registers.
#[target_feature(enable = "neon")]
pub fn dot_f32_tile(rows: [&[f32]; 2], xs: [&[f32]; 3]) -> [[f32; 3]; 2] {
    // SAFETY: this function enables `float32x4_t`'s feature, NEON.
    unsafe { float::dot_tile::<float32x4_t, 2, 3>(rows, xs) }
}

/// Four f16 (little-endian bytes) to f32 with FCVTL, part of base AArch64 FP.
///
/// # Safety
/// `p` is valid for reading 8 bytes.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load_f16x4(p: *const u8) -> float32x4_t {
    // SAFETY: the caller guarantees 8 readable bytes at `p`.
    let h = unsafe { vld1_u16(p as *const u16) };
    let r: float32x4_t;
    // SAFETY: FCVTL is base AArch64; it reads and writes registers only.
    unsafe {
        asm!("fcvtl {0:v}.4s, {1:v}.4h", out(vreg) r, in(vreg) h, options(pure, nomem, nostack));
    }
    r
}

#[target_feature(enable = "neon")]
pub fn sum_sq(x: &[f32]) -> f64 {
    let mut a0 = vdupq_n_f64(0.0);
    let mut a1 = vdupq_n_f64(0.0);
    let chunks = x.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        // SAFETY: `c` holds the 4 floats read.
        let v = unsafe { vld1q_f32(c.as_ptr()) };
        let lo = vcvt_f64_f32(vget_low_f32(v));
        let hi = vcvt_high_f64_f32(v);
        a0 = vfmaq_f64(a0, lo, lo);
        a1 = vfmaq_f64(a1, hi, hi);
    }
    let mut s = vaddvq_f64(vaddq_f64(a0, a1));
    for &v in tail {
        s += (v as f64) * (v as f64);
    }
    s
}

/// The portable loop over [`dot_f32`], inlined: one call per head instead of one per key.
#[target_feature(enable = "neon")]
pub fn dot_rows_f32(q: &[f32], rows: &[f32], stride: usize, out: &mut [f32]) {
    for (p, o) in out.iter_mut().enumerate() {
        *o = dot_f32(q, &rows[p * stride..][..q.len()]);
    }
}

/// [`dot_rows_f32`] on little-endian f16 rows: one [`dot_f16`] per row.
#[target_feature(enable = "neon")]
pub fn dot_rows_f16(q: &[f32], rows: &[u8], stride: usize, out: &mut [f32]) {
    for (p, o) in out.iter_mut().enumerate() {
        *o = dot_f16(&rows[2 * p * stride..][..2 * q.len()], q);
    }
}

/// [`mix_rows_f32`] on little-endian f16 rows: each row widened (exactly) 256 values at a
/// time into a buffer on the stack, then [`axpy`]; bit-identical to the portable loop.
#[target_feature(enable = "neon")]
pub fn mix_rows_f16(w: &[f32], rows: &[u8], stride: usize, out: &mut [f32]) {
    let mut buf = [0f32; 256];
    for c0 in (0..out.len()).step_by(256) {
        let c1 = (c0 + 256).min(out.len());
        for (p, &wp) in w.iter().enumerate() {
            let b = &mut buf[..c1 - c0];
            f16_to_f32(&rows[2 * (p * stride + c0)..2 * (p * stride + c1)], b);
            axpy(wp, b, &mut out[c0..c1]);
        }
    }
}

/// The portable loop over [`axpy`], inlined; bit-identical to it.
#[target_feature(enable = "neon")]
pub fn mix_rows_f32(w: &[f32], rows: &[f32], stride: usize, out: &mut [f32]) {
    let d = out.len();
    for (p, &wp) in w.iter().enumerate() {
        axpy(wp, &rows[p * stride..][..d], out);
    }
}
