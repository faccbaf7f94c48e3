//! The reference implementation of every inner loop the dispatcher can select.
//!
//! Each SIMD routine in `arch/` has a twin here with the same signature; the tests prove
//! them equal (integer results exactly, float results within the bound stated per test).
//! The code is plain Rust written so that the compiler's auto-vectoriser does well on it.

use half::{bf16, f16};

mod gemm;
mod q8k;
pub use gemm::{gemm_chunk_len, i2_gemm32, pack_acts_chunks, pack_acts_tiles16, GEMM_ROWS};
pub use q8k::{
    block0_term, dot_q4_0_q8k, dot_q6k_q8k, dot_q8_0_q8k, q4_0_blocks_from, q6k_row, q6k_value,
    q8_0_blocks_from, quantize_q8k, Q4_0_BLOCK_BYTES, Q8K, Q8_0_BLOCK_BYTES, QK_K,
};

/// Elements per I2 block: 32 bytes hold 128 codes (layout A, the x86 layout of
/// docs/formats/i2s.md, 'Packing layouts').
pub const I2_BLOCK: usize = 128;
/// Bytes per I2 block.
pub const I2_BLOCK_BYTES: usize = 32;

/// Largest |x| (0 for an empty slice; NaN inputs are ignored).
pub fn absmax(x: &[f32]) -> f32 {
    let mut m = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            m[i] = m[i].max(c[i].abs());
        }
    }
    let mut r = m.iter().fold(0f32, |a, &b| a.max(b));
    for &v in tail {
        r = r.max(v.abs());
    }
    r
}

/// The per-token scale of docs/formats/i2s.md, 'Activations': `127 / max(absmax, 1e-5)` in f64,
/// stored f32.
pub fn act_scale(absmax: f32) -> f32 {
    (127.0f64 / (absmax as f64).max(1e-5)) as f32
}

/// Quantises one token: `q = clamp(round_half_even(x * scale), -128, 127)`, returning the
/// scale and `Σ q`.
pub fn quantize_row(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    let scale = act_scale(absmax(x));
    (scale, quantize_with(x, scale, q))
}

/// `q[i] = x[i] · scale` rounded half to even and clamped to i8, over the shorter of the
/// two; returns Σ q. The SIMD twins run it on the tail their vectors leave.
pub fn quantize_with(x: &[f32], scale: f32, q: &mut [i8]) -> i32 {
    let mut sum = 0i32;
    for (o, &v) in q.iter_mut().zip(x) {
        // Clamped in float first, as the SIMD twins do: NaN becomes -128 there (max_ps
        // returns its second operand) and here (f32::max ignores NaN).
        #[allow(clippy::manual_clamp)] // clamp would keep NaN
        let r = (v * scale).round_ties_even().max(-128.0).min(127.0);
        let c = r as i32;
        *o = c as i8;
        sum += c;
    }
    sum
}

/// Σ code·q over whole I2 blocks, codes read raw (0..=3) as the SIMD kernels do.
/// `w.len() * 4 == q.len()`, a multiple of 128.
pub fn i2_dot(w: &[u8], q: &[i8]) -> i32 {
    debug_assert_eq!(w.len() * 4, q.len());
    let mut total = 0i32;
    for (wb, qb) in w.chunks_exact(I2_BLOCK_BYTES).zip(q.chunks_exact(I2_BLOCK)) {
        let mut acc = 0i32;
        for j in 0..32 {
            let b = wb[j];
            acc += ((b >> 6) & 3) as i32 * qb[j] as i32
                + ((b >> 4) & 3) as i32 * qb[j + 32] as i32
                + ((b >> 2) & 3) as i32 * qb[j + 64] as i32
                + (b & 3) as i32 * qb[j + 96] as i32;
        }
        total += acc;
    }
    total
}

/// [`i2_dot`] of one weight row against four tokens.
pub fn i2_dot4(w: &[u8], q: [&[i8]; 4]) -> [i32; 4] {
    [
        i2_dot(w, q[0]),
        i2_dot(w, q[1]),
        i2_dot(w, q[2]),
        i2_dot(w, q[3]),
    ]
}

/// [`i2_dot`] of two weight rows against four tokens: `out[r][t] = i2_dot(w[r], q[t])`.
pub fn i2_rows2x4(w: [&[u8]; 2], q: [&[i8]; 4]) -> [[i32; 4]; 2] {
    w.map(|row| i2_dot4(row, q))
}

/// [`i2_dot`] of two weight rows against two tokens: `out[r][t] = i2_dot(w[r], q[t])`.
pub fn i2_rows2x2(w: [&[u8]; 2], q: [&[i8]; 2]) -> [[i32; 2]; 2] {
    w.map(|row| q.map(|t| i2_dot(row, t)))
}

/// Decode's mat-vec over whole blocks: `dots[m] = i2_dot(row m, q)`, where row `m` is the
/// first `q.len() / 128 · 32` bytes from `w[m · row_bytes..]` (`q.len()` a multiple of 128).
pub fn i2_matvec(w: &[u8], row_bytes: usize, q: &[i8], dots: &mut [i32]) {
    let used = q.len() / I2_BLOCK * I2_BLOCK_BYTES;
    for (m, d) in dots.iter_mut().enumerate() {
        *d = i2_dot(&w[m * row_bytes..m * row_bytes + used], q);
    }
}

/// Two weight rows against eight tokens: `out[r][t] = i2_dot(w[r], q[t])`. The prefill
/// micro-kernel shape (each unpacked weight meets eight tokens).
pub fn i2_tile(w: [&[u8]; 2], q: [&[i8]; 8]) -> [[i32; 8]; 2] {
    w.map(|row| q.map(|t| i2_dot(row, t)))
}

/// The fork's I2_S epilogue, in f32 and in this order (docs/formats/i2s.md, 'The dot product'):
/// a raw dot (codes 0..=2) against quantised activations with sum `act_sum` and scale
/// `act_scale`, for a matrix of scale `scale`.
#[inline]
pub fn i2s_epilogue(dot: i32, act_sum: i32, act_scale: f32, scale: f32) -> f32 {
    (dot as f32 - act_sum as f32) / act_scale * scale
}

/// [`i2s_epilogue`] of one token's dots: `out[i] = i2s_epilogue(dots[i], …)` over the
/// shorter of the two slices.
pub fn i2s_epilogue_row(dots: &[i32], act_sum: i32, act_scale: f32, scale: f32, out: &mut [f32]) {
    for (o, &d) in out.iter_mut().zip(dots) {
        *o = i2s_epilogue(d, act_sum, act_scale, scale);
    }
}

/// Rewrites one activation row into the *pairs* layout the AVX-512 kernels read: in every
/// whole 256-element chunk, `out[j·64 + h·32 + i] = q[h·128 + j·32 + i]` (code plane `j` of
/// I2 block `h` of the pair), so the 64 activations meeting one plane of a 64-byte weight load
/// are contiguous. Elements past the last whole chunk are copied unchanged. Every 256-block
/// keeps its own elements, so per-256-block sums (TQ's scale blocks) are unaffected.
pub fn to_pairs_layout(q: &[i8], out: &mut [i8]) {
    assert_eq!(q.len(), out.len(), "pairs layout: length mismatch");
    let whole = q.len() / 256 * 256;
    for (src, dst) in q[..whole]
        .chunks_exact(256)
        .zip(out[..whole].chunks_exact_mut(256))
    {
        for j in 0..4 {
            for h in 0..2 {
                dst[j * 64 + h * 32..][..32].copy_from_slice(&src[h * 128 + j * 32..][..32]);
            }
        }
    }
    out[whole..].copy_from_slice(&q[whole..]);
}

/// Σ a·b, eight partial sums.
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ta.iter().zip(tb) {
        s += x * y;
    }
    s
}

/// Σ w·x with `w` little-endian f16 bytes (`w.len() == 2 * x.len()`).
pub fn dot_f16(w: &[u8], x: &[f32]) -> f32 {
    dot_half(w, x, |b| f16::from_le_bytes(b).to_f32())
}

/// Σ w·x with `w` little-endian bf16 bytes.
pub fn dot_bf16(w: &[u8], x: &[f32]) -> f32 {
    dot_half(w, x, |b| bf16::from_le_bytes(b).to_f32())
}

/// Σ w·x over 16-bit floats that `widen` reads, in the order every SIMD twin keeps: eight
/// lanes, reduced pairwise, then the tail in sequence.
#[inline(always)]
fn dot_half(w: &[u8], x: &[f32], widen: impl Fn([u8; 2]) -> f32) -> f32 {
    debug_assert_eq!(w.len(), 2 * x.len());
    let mut acc = [0f32; 8];
    let cw = w.chunks_exact(16);
    let cx = x.chunks_exact(8);
    let (tw, tx) = (cw.remainder(), cx.remainder());
    for (a, b) in cw.zip(cx) {
        for i in 0..8 {
            acc[i] += widen([a[2 * i], a[2 * i + 1]]) * b[i];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (a, b) in tw.chunks_exact(2).zip(tx) {
        s += widen([a[0], a[1]]) * b;
    }
    s
}

/// Σ x² accumulated in f64 (as ggml's rms_norm does).
pub fn sum_sq(x: &[f32]) -> f64 {
    let mut acc = [0f64; 4];
    let c = x.chunks_exact(4);
    let t = c.remainder();
    for v in c {
        for i in 0..4 {
            acc[i] += (v[i] as f64) * (v[i] as f64);
        }
    }
    let mut s = (acc[0] + acc[2]) + (acc[1] + acc[3]);
    for &v in t {
        s += (v as f64) * (v as f64);
    }
    s
}

/// `out = x * s * w` elementwise.
pub fn scale_mul(x: &[f32], w: &[f32], s: f32, out: &mut [f32]) {
    for ((o, &a), &b) in out.iter_mut().zip(x).zip(w) {
        *o = a * s * b;
    }
}

/// `gate = silu(gate) · up` (the SwiGLU of Llama-style FFNs), as transformers computes it:
/// `g · sigmoid(g)`, here `g / (1 + e^−g)`.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// `x[i] = e^(x[i] − shift)`; returns `Σ x[i]` accumulated in f64 in order (softmax's
/// numerator and denominator, as ggml's `ggml_vec_soft_max` computes them).
pub fn exp_shifted(x: &mut [f32], shift: f32) -> f64 {
    let mut sum = 0f64;
    for v in x.iter_mut() {
        *v = (*v - shift).exp();
        sum += *v as f64;
    }
    sum
}

/// `y += a * x`.
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (o, &v) in y.iter_mut().zip(x) {
        *o += a * v;
    }
}

/// `out[p] = Σ q·rows[p·stride ..][.. q.len()]` (attention scores against a KV cache whose
/// rows hold several heads). Needs `rows.len() ≥ (out.len() − 1)·stride + q.len()`.
pub fn dot_rows_f32(q: &[f32], rows: &[f32], stride: usize, out: &mut [f32]) {
    for (p, o) in out.iter_mut().enumerate() {
        *o = dot_f32(q, &rows[p * stride..][..q.len()]);
    }
}

/// `out += Σ_p w[p] · rows[p·stride ..][.. out.len()]`, in order of `p`, each step rounded
/// as [`axpy`] rounds it (attention's weighted sum of values).
pub fn mix_rows_f32(w: &[f32], rows: &[f32], stride: usize, out: &mut [f32]) {
    let d = out.len();
    for (p, &wp) in w.iter().enumerate() {
        axpy(wp, &rows[p * stride..][..d], out);
    }
}

/// [`dot_rows_f32`] on rows of little-endian f16 (an f16 KV cache): each row as
/// [`dot_f16`] computes it.
pub fn dot_rows_f16(q: &[f32], rows: &[u8], stride: usize, out: &mut [f32]) {
    for (p, o) in out.iter_mut().enumerate() {
        *o = dot_f16(&rows[2 * p * stride..][..2 * q.len()], q);
    }
}

/// [`mix_rows_f32`] on rows of little-endian f16: each value widened exactly, then the same
/// unfused multiply-then-add per step.
pub fn mix_rows_f16(w: &[f32], rows: &[u8], stride: usize, out: &mut [f32]) {
    for (p, &wp) in w.iter().enumerate() {
        let row = &rows[2 * p * stride..][..2 * out.len()];
        for (o, b) in out.iter_mut().zip(row.chunks_exact(2)) {
            *o += wp * f16::from_le_bytes([b[0], b[1]]).to_f32();
        }
    }
}

/// Converts f32 to little-endian f16 bytes, rounding to nearest even (infinities and
/// overflow to ±inf, NaN to a quiet NaN).
pub fn f32_to_f16(src: &[f32], out: &mut [u8]) {
    for (&x, o) in src.iter().zip(out.chunks_exact_mut(2)) {
        o.copy_from_slice(&f16::from_f32(x).to_le_bytes());
    }
}

/// Converts little-endian f16 bytes to f32.
pub fn f16_to_f32(src: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(src.chunks_exact(2)) {
        *o = f16::from_le_bytes([b[0], b[1]]).to_f32();
    }
}
