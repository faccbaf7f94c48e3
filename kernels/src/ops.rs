//! Vectorised elementwise helpers for the forward pass.

use crate::Runtime;

/// `out = x / sqrt(mean(x²) + eps) * weight`, the mean accumulated in f64 (ggml's rule).
pub fn rms_norm(rt: &Runtime, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    assert!(
        weight.len() >= x.len() && out.len() >= x.len(),
        "rms_norm: buffers shorter than x"
    );
    if x.is_empty() {
        return;
    }
    let kt = rt.kernels();
    let mean = (kt.sum_sq)(x) / x.len() as f64;
    let s = (1.0 / (mean + eps as f64).sqrt()) as f32;
    (kt.scale_mul)(x, &weight[..x.len()], s, &mut out[..x.len()]);
}

/// Σ a·b in f32.
pub fn dot(rt: &Runtime, a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    (rt.kernels().dot_f32)(&a[..n], &b[..n])
}

/// `y += a * x`.
pub fn axpy(rt: &Runtime, a: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    (rt.kernels().axpy)(a, &x[..n], &mut y[..n])
}

/// `gate = silu(gate) · up` elementwise: the gated activation of a SiLU feed-forward.
///
/// Panics if `up` is shorter than `gate`.
pub fn silu_mul(rt: &Runtime, gate: &mut [f32], up: &[f32]) {
    assert!(up.len() >= gate.len(), "silu_mul: up shorter than gate");
    let n = gate.len();
    (rt.kernels().silu_mul)(gate, &up[..n])
}

/// `out[p] = Σ q · rows[p·stride ..][.. q.len()]`: one query head against the keys of a
/// cache whose rows are `stride` floats apart. `cold`: the rows may be out of cache (the
/// first read of a block of the cache), so the path may prefetch ahead; a read of rows
/// just read (the next query head, the next token of a prompt) passes false, as the
/// prefetches would only take load slots (they made L1-resident rows 2.3× slower). The
/// result is the same either way.
///
/// Panics if `rows` is shorter than `(out.len() − 1)·stride + q.len()`.
pub fn dot_rows(rt: &Runtime, q: &[f32], rows: &[f32], stride: usize, out: &mut [f32], cold: bool) {
    if let Some(last) = out.len().checked_sub(1) {
        assert!(
            rows.len() >= last * stride + q.len(),
            "dot_rows: rows too short"
        );
        (rt.kernels().dot_rows_f32)(q, rows, stride, out, cold)
    }
}

/// `out += Σ_p w[p] · rows[p·stride ..][.. out.len()]`: attention's weighted sum of values;
/// `cold` as for [`dot_rows`].
///
/// Panics if `rows` is shorter than `(w.len() − 1)·stride + out.len()`.
pub fn mix_rows(rt: &Runtime, w: &[f32], rows: &[f32], stride: usize, out: &mut [f32], cold: bool) {
    if let Some(last) = w.len().checked_sub(1) {
        assert!(
            rows.len() >= last * stride + out.len(),
            "mix_rows: rows too short"
        );
        (rt.kernels().mix_rows_f32)(w, rows, stride, out, cold)
    }
}

/// [`dot_rows`] on rows of little-endian f16 (`stride` in elements): an f16 KV cache.
///
/// Panics if `rows` is shorter than `2 · ((out.len() − 1)·stride + q.len())` bytes.
pub fn dot_rows_f16(
    rt: &Runtime,
    q: &[f32],
    rows: &[u8],
    stride: usize,
    out: &mut [f32],
    cold: bool,
) {
    if let Some(last) = out.len().checked_sub(1) {
        assert!(
            rows.len() >= 2 * (last * stride + q.len()),
            "dot_rows_f16: rows too short"
        );
        (rt.kernels().dot_rows_f16)(q, rows, stride, out, cold)
    }
}

/// [`mix_rows`] on rows of little-endian f16.
///
/// Panics if `rows` is shorter than `2 · ((w.len() − 1)·stride + out.len())` bytes.
pub fn mix_rows_f16(
    rt: &Runtime,
    w: &[f32],
    rows: &[u8],
    stride: usize,
    out: &mut [f32],
    cold: bool,
) {
    if let Some(last) = w.len().checked_sub(1) {
        assert!(
            rows.len() >= 2 * (last * stride + out.len()),
            "mix_rows_f16: rows too short"
        );
        (rt.kernels().mix_rows_f16)(w, rows, stride, out, cold)
    }
}

/// f32 → little-endian f16 bytes, round to nearest even (identical on every path).
///
/// Panics if `out` is not `2 · src.len()` bytes.
pub fn f32_to_f16(rt: &Runtime, src: &[f32], out: &mut [u8]) {
    assert_eq!(out.len(), 2 * src.len(), "f32_to_f16: output size");
    (rt.kernels().f32_to_f16)(src, out)
}

/// In-place softmax (max-subtracted; sums in f64 like ggml's `ggml_vec_soft_max`; the
/// exponentials are the table's, so SIMD paths are within 2 ulp of libm's).
pub fn softmax(rt: &Runtime, x: &mut [f32]) {
    if x.is_empty() {
        return;
    }
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum = (rt.kernels().exp_shifted)(x, max);
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// Rotary embedding, NEOX style (pairs `i` and `i + d/2`), as used by every BitNet
/// architecture, on one head of `head.len()` values at position `pos`.
/// `theta_i = pos * base^(-2i/d)`.
pub fn rope_neox(head: &mut [f32], pos: usize, base: f32) {
    let d = head.len();
    let half = d / 2;
    for i in 0..half {
        let theta = pos as f32 * base.powf(-2.0 * i as f32 / d as f32);
        let (sin, cos) = theta.sin_cos();
        let (a, b) = (head[i], head[i + half]);
        head[i] = a * cos - b * sin;
        head[i + half] = a * sin + b * cos;
    }
}

/// Rotary embedding, normal (GPT-J) style: adjacent pairs `(2i, 2i+1)`.
pub fn rope_norm(head: &mut [f32], pos: usize, base: f32) {
    let d = head.len();
    for i in 0..d / 2 {
        let theta = pos as f32 * base.powf(-2.0 * i as f32 / d as f32);
        let (sin, cos) = theta.sin_cos();
        let (a, b) = (head[2 * i], head[2 * i + 1]);
        head[2 * i] = a * cos - b * sin;
        head[2 * i + 1] = a * sin + b * cos;
    }
}
