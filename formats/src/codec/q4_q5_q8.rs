//! ggml's 32-element block types Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0: reference quantizers
//! (`quantize_row_*_ref`) and dequantizers, with ggml's float evaluation order.

use half::f16;

pub const QK: usize = 32;

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

fn put_f16(b: &mut [u8], at: usize, v: f32) {
    b[at..at + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes());
}

/// The value with the largest magnitude, keeping its sign (first one on ties).
fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// C's float -> int8 conversion of an in-range value (truncation toward zero).
#[inline]
fn trunc_i8(v: f32) -> i32 {
    v as i8 as i32
}

pub fn quantize_q4_0(src: &[f32], out: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(out.chunks_exact_mut(18)) {
        let d = signed_absmax(x) / -8.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(y, 0, d);
        for j in 0..QK / 2 {
            let xi0 = trunc_i8(x[j] * id + 8.5).min(15) as u8;
            let xi1 = trunc_i8(x[QK / 2 + j] * id + 8.5).min(15) as u8;
            y[2 + j] = xi0 | (xi1 << 4);
        }
    }
}

pub fn dequantize_q4_0(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in bytes.chunks_exact(18).zip(out.chunks_exact_mut(QK)) {
        let d = f16_at(b, 0);
        for j in 0..QK / 2 {
            y[j] = ((b[2 + j] & 0x0f) as i32 - 8) as f32 * d;
            y[j + QK / 2] = ((b[2 + j] >> 4) as i32 - 8) as f32 * d;
        }
    }
}

pub fn quantize_q4_1(src: &[f32], out: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(out.chunks_exact_mut(20)) {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(y, 0, d);
        put_f16(y, 2, min);
        for j in 0..QK / 2 {
            let xi0 = trunc_i8((x[j] - min) * id + 0.5).min(15) as u8;
            let xi1 = trunc_i8((x[QK / 2 + j] - min) * id + 0.5).min(15) as u8;
            y[4 + j] = xi0 | (xi1 << 4);
        }
    }
}

pub fn dequantize_q4_1(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in bytes.chunks_exact(20).zip(out.chunks_exact_mut(QK)) {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        for j in 0..QK / 2 {
            y[j] = (b[4 + j] & 0x0f) as f32 * d + m;
            y[j + QK / 2] = (b[4 + j] >> 4) as f32 * d + m;
        }
    }
}

fn put_q5(y: &mut [u8], qs_at: usize, qh_at: usize, l: &[u8; QK]) {
    let mut qh = 0u32;
    for j in 0..QK / 2 {
        let (xi0, xi1) = (l[j], l[j + QK / 2]);
        y[qs_at + j] = (xi0 & 0x0f) | ((xi1 & 0x0f) << 4);
        qh |= (((xi0 & 0x10) >> 4) as u32) << j;
        qh |= (((xi1 & 0x10) >> 4) as u32) << (j + QK / 2);
    }
    y[qh_at..qh_at + 4].copy_from_slice(&qh.to_le_bytes());
}

pub fn quantize_q5_0(src: &[f32], out: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(out.chunks_exact_mut(22)) {
        let d = signed_absmax(x) / -16.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(y, 0, d);
        let mut l = [0u8; QK];
        for (q, &v) in l.iter_mut().zip(x) {
            *q = trunc_i8(v * id + 16.5).min(31) as u8;
        }
        put_q5(y, 6, 2, &l);
    }
}

fn q5_values(b: &[u8], qh_at: usize, qs_at: usize) -> [i32; QK] {
    let qh = u32::from_le_bytes(b[qh_at..qh_at + 4].try_into().unwrap());
    let mut v = [0i32; QK];
    for j in 0..QK / 2 {
        let xh0 = (((qh >> j) << 4) & 0x10) as i32;
        let xh1 = ((qh >> (j + 12)) & 0x10) as i32;
        v[j] = (b[qs_at + j] & 0x0f) as i32 | xh0;
        v[j + QK / 2] = (b[qs_at + j] >> 4) as i32 | xh1;
    }
    v
}

pub fn dequantize_q5_0(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in bytes.chunks_exact(22).zip(out.chunks_exact_mut(QK)) {
        let d = f16_at(b, 0);
        for (o, v) in y.iter_mut().zip(q5_values(b, 2, 6)) {
            *o = (v - 16) as f32 * d;
        }
    }
}

pub fn quantize_q5_1(src: &[f32], out: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(out.chunks_exact_mut(24)) {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(y, 0, d);
        put_f16(y, 2, min);
        let mut l = [0u8; QK];
        for (q, &v) in l.iter_mut().zip(x) {
            *q = ((v - min) * id + 0.5) as u8;
        }
        put_q5(y, 8, 4, &l);
    }
}

pub fn dequantize_q5_1(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in bytes.chunks_exact(24).zip(out.chunks_exact_mut(QK)) {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        for (o, v) in y.iter_mut().zip(q5_values(b, 4, 8)) {
            *o = v as f32 * d + m;
        }
    }
}

/// ggml `quantize_row_q8_0_ref`: `d = max|x| / 127`, `q = roundf(x · (1/d))`.
pub fn quantize_q8_0(src: &[f32], out: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(out.chunks_exact_mut(34)) {
        let amax = x
            .iter()
            .fold(0f32, |m, &v| if m > v.abs() { m } else { v.abs() });
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        put_f16(y, 0, d);
        for (q, &v) in y[2..].iter_mut().zip(x) {
            *q = (v * id).round() as i8 as u8;
        }
    }
}

pub fn dequantize_q8_0(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in bytes.chunks_exact(34).zip(out.chunks_exact_mut(QK)) {
        let d = f16_at(b, 0);
        for (o, &q) in y.iter_mut().zip(&b[2..]) {
            *o = q as i8 as f32 * d;
        }
    }
}
