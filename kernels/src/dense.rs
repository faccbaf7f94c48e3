//! Dense (non-ternary) weights: embeddings, the output matrix and F32/F16 fallbacks.
//!
//! F32, F16 and BF16 rows are dotted in place against f32 activations in decode (SIMD
//! conversions). Q6_K rows (llama.cpp's usual output type) and Q8_0 / Q4_0 rows (its output
//! type when K is no multiple of 256, as on the 3B shape) are dotted in integers against
//! int8 activations ([`int8_matmul`]). Everything else, and F32/F16/BF16 rows in a prompt, is
//! widened to f32 a block of rows at a time and dotted with every token
//! ([`widened_block_rows`]), so each weight row is read once per call (the codecs' row
//! dequantiser for the types without their own loop).

use half::f16;

use bitnet_formats::TensorType;

use crate::error::KernelError;
use crate::pool::DisjointMut;
use crate::portable::{quantize_q8k, Q8K};
use crate::Runtime;

/// A dense `rows × cols` matrix borrowed from a GGUF payload.
#[derive(Clone, Debug)]
pub struct DenseMatrix<'a> {
    ty: TensorType,
    bytes: &'a [u8],
    rows: usize,
    cols: usize,
    row_bytes: usize,
}

fn block_shape(ty: TensorType) -> Option<(usize, usize)> {
    Some(match ty {
        TensorType::F32 => (1, 4),
        TensorType::F16 | TensorType::BF16 => (1, 2),
        TensorType::Q8_0 => (32, 34),
        TensorType::Q4_0 => (32, 18),
        TensorType::Q6_K => (256, 210),
        // Any other block type the codecs can dequantise row by row (Q4_K, Q5_K, Q5_0, ...).
        _ => {
            bitnet_formats::codec::traits(ty).dequantize_row?;
            (ty.block_len() as usize, ty.block_bytes() as usize)
        }
    })
}

impl<'a> DenseMatrix<'a> {
    pub fn new(
        ty: TensorType,
        bytes: &'a [u8],
        rows: usize,
        cols: usize,
    ) -> Result<Self, KernelError> {
        let what = ty.name().to_string();
        let (block, block_bytes) =
            block_shape(ty).ok_or(KernelError::Unsupported { what: what.clone() })?;
        if rows == 0 || cols == 0 || block == 0 || !cols.is_multiple_of(block) {
            return Err(KernelError::BadShape {
                what,
                rows,
                cols,
                reason: format!("K must be a non-zero multiple of {block}"),
            });
        }
        let row_bytes = cols / block * block_bytes;
        let need = row_bytes
            .checked_mul(rows)
            .ok_or_else(|| KernelError::BadShape {
                what: what.clone(),
                rows,
                cols,
                reason: "too large".into(),
            })?;
        if bytes.len() < need {
            return Err(KernelError::TooShort {
                what,
                need,
                got: bytes.len(),
            });
        }
        Ok(DenseMatrix {
            ty,
            bytes: &bytes[..need],
            rows,
            cols,
            row_bytes,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn tensor_type(&self) -> TensorType {
        self.ty
    }
    /// Bytes one full matmul reads.
    pub fn bytes_read(&self) -> usize {
        self.bytes.len()
    }

    /// The matrix without its payload, for an owner that keeps the payload itself (a model
    /// holding its mapped file) and borrows it again per use with [`DetachedDense::attach`].
    pub fn detach(&self) -> DetachedDense {
        DetachedDense {
            ty: self.ty,
            len: self.bytes.len(),
            rows: self.rows,
            cols: self.cols,
            row_bytes: self.row_bytes,
        }
    }

    fn row_raw(&self, r: usize) -> &[u8] {
        &self.bytes[r * self.row_bytes..(r + 1) * self.row_bytes]
    }

    /// Row `r` as f32 (embedding lookup). Panics if `r >= rows` or `out` is shorter than K.
    pub fn row_to_f32(&self, rt: &Runtime, r: usize, out: &mut [f32]) {
        let out = &mut out[..self.cols];
        let src = self.row_raw(r);
        match self.ty {
            TensorType::F32 => {
                for (o, b) in out.iter_mut().zip(src.chunks_exact(4)) {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            TensorType::F16 => (rt.kernels().f16_to_f32)(src, out),
            TensorType::BF16 => {
                for (o, b) in out.iter_mut().zip(src.chunks_exact(2)) {
                    *o = f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16);
                }
            }
            TensorType::Q8_0 => {
                for (o, b) in out.chunks_exact_mut(32).zip(src.chunks_exact(34)) {
                    let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
                    for (v, &q) in o.iter_mut().zip(&b[2..]) {
                        *v = q as i8 as f32 * d;
                    }
                }
            }
            TensorType::Q4_0 => {
                for (o, b) in out.chunks_exact_mut(32).zip(src.chunks_exact(18)) {
                    let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
                    for j in 0..16 {
                        o[j] = ((b[2 + j] & 0xF) as i32 - 8) as f32 * d;
                        o[j + 16] = ((b[2 + j] >> 4) as i32 - 8) as f32 * d;
                    }
                }
            }
            TensorType::Q6_K => {
                for (o, b) in out.chunks_exact_mut(256).zip(src.chunks_exact(210)) {
                    dequant_q6_k(b, o);
                }
            }
            _ => {
                // Checked in `new`: the type has a row dequantiser and the row size is right.
                if bitnet_formats::codec::dequantize_row(self.ty, src, out).is_err() {
                    out.fill(0.0);
                }
            }
        }
    }
}

/// A [`DenseMatrix`]'s shape without the payload it was checked against.
#[derive(Clone, Copy, Debug)]
pub struct DetachedDense {
    ty: TensorType,
    /// Bytes of the payload the matrix reads (its first `len`).
    len: usize,
    rows: usize,
    cols: usize,
    row_bytes: usize,
}

impl DetachedDense {
    /// The matrix again, on `payload`: the bytes given to [`DenseMatrix::new`] (only their
    /// length is checked again).
    ///
    /// Panics if `payload` is shorter than the matrix (a caller bug: the payload changed).
    pub fn attach<'a>(&self, payload: &'a [u8]) -> DenseMatrix<'a> {
        DenseMatrix {
            ty: self.ty,
            bytes: &payload[..self.len],
            rows: self.rows,
            cols: self.cols,
            row_bytes: self.row_bytes,
        }
    }
}

/// ggml's `dequantize_row_q6_K` for one 210-byte block.
fn dequant_q6_k(b: &[u8], y: &mut [f32]) {
    let (ql_all, rest) = b.split_at(128);
    let (qh_all, rest) = rest.split_at(64);
    let (sc_all, dbytes) = rest.split_at(16);
    let d = f16::from_le_bytes([dbytes[0], dbytes[1]]).to_f32();
    for half in 0..2 {
        let ql = &ql_all[half * 64..];
        let qh = &qh_all[half * 32..];
        let sc = &sc_all[half * 8..];
        let y = &mut y[half * 128..];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
            y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
            y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
            y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
        }
    }
}

/// `out[t * M + m] = Σ_k w[m, k] · x[t * K + k]` for `n` tokens.
///
/// Panics if `x` is shorter than `n * K` or `out` shorter than `n * M`.
pub fn dense_matmul(rt: &Runtime, w: &DenseMatrix, x: &[f32], n: usize, out: &mut [f32]) {
    let (m_rows, k) = (w.rows, w.cols);
    assert!(x.len() >= n * k, "activation buffer too small");
    assert!(out.len() >= n * m_rows, "output buffer too small");
    if n == 0 {
        return;
    }
    let kt = rt.kernels();
    let min_rows = (32 * 1024 / w.row_bytes.max(1)).max(4);
    let in_place = n < 4 && matches!(w.ty, TensorType::F32 | TensorType::F16 | TensorType::BF16);
    let rows4 = match w.ty {
        TensorType::F16 if in_place => Some(kt.dot_f16_rows4),
        TensorType::BF16 if in_place => Some(kt.dot_bf16_rows4),
        _ => None,
    };
    if matches!(w.ty, TensorType::Q6_K | TensorType::Q8_0 | TensorType::Q4_0) {
        return int8_matmul(rt, w, x, n, out);
    }
    let by_tokens4 = match w.ty {
        _ if !(2..=MAX_TOKENS_X4).contains(&n) => None,
        TensorType::F16 => Some((kt.dot_f16_x4, kt.dot_f16_rows2_x4)),
        TensorType::BF16 => Some((kt.dot_bf16_x4, kt.dot_bf16_rows2_x4)),
        _ => None,
    };
    let dst = DisjointMut::new(out);
    rt.pool().parallel_ranges(m_rows, min_rows, 4, |r0, r1| {
        // SAFETY: every caller passes t < n and m in this task's rows r0..r1, so the element
        // is inside `out` (checked above) and this task's alone.
        let write = |t: usize, m: usize, v: f32| unsafe { dst.write(t * m_rows + m, v) };
        if let Some(dots) = by_tokens4 {
            return rows_by_tokens4(w, x, n, r0, r1, dots, &write);
        }
        let mut r_single = r0;
        if let Some(rows4) = rows4 {
            // Four rows per call, one from each quarter of the range, so that the weights
            // stream from four places at once (one stream per thread reads DRAM ~30 %
            // slower on the test machine); the same bits as one row at a time.
            let quarter = (r1 - r0) / 4;
            for i in 0..quarter {
                let rows: [usize; 4] = std::array::from_fn(|j| r0 + j * quarter + i);
                for t in 0..n {
                    let v = rows4(rows.map(|m| w.row_raw(m)), &x[t * k..(t + 1) * k]);
                    for (&m, &v) in rows.iter().zip(&v) {
                        write(t, m, v);
                    }
                }
            }
            r_single = r0 + 4 * quarter;
        }
        if !in_place {
            return widened_block_rows(rt, w, x, n, r_single, r1, &write);
        }
        for m in r_single..r1 {
            let raw = w.row_raw(m);
            for t in 0..n {
                let xt = &x[t * k..(t + 1) * k];
                let v = match w.ty {
                    TensorType::F16 => (kt.dot_f16)(raw, xt),
                    TensorType::BF16 => (kt.dot_bf16)(raw, xt),
                    _ => {
                        // F32 bytes may be unaligned in a byte buffer: use the scratch-free
                        // byte path.
                        raw.chunks_exact(4)
                            .zip(xt)
                            .map(|(b, &v)| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * v)
                            .sum()
                    }
                };
                write(t, m, v);
            }
        }
    });
}

/// The most tokens a half-precision matmul dots row by row with [`rows_by_tokens4`]
/// (a server's batched decode step); more go through [`widened_block_rows`], which widens
/// each row once for all of them.
const MAX_TOKENS_X4: usize = 16;

/// Rows `r0..r1` of an F16/BF16 matrix against `n` tokens, each row read from memory once
/// and widened once per four tokens (`rows2_x4`: two rows × four tokens, and `x4` for a
/// row left over; each result bit-identical to the one-token dot, so a batched step gives
/// every sequence the bits it would get alone). Rows are taken from the range's four
/// quarters in turn, so that four streams read at once, as in decode's four-row dot. A last
/// group of fewer than four tokens repeats its last token and drops the extra results.
fn rows_by_tokens4(
    w: &DenseMatrix,
    x: &[f32],
    n: usize,
    r0: usize,
    r1: usize,
    (x4, rows2_x4): (X4, Rows2X4),
    write: &impl Fn(usize, usize, f32),
) {
    let k = w.cols;
    let xt = |t: usize| &x[t.min(n - 1) * k..(t.min(n - 1) + 1) * k];
    let tokens = |t0: usize| -> [&[f32]; 4] { std::array::from_fn(|i| xt(t0 + i)) };
    let put = |m: usize, t0: usize, v: [f32; 4]| {
        for (i, &v) in v.iter().enumerate().take(n - t0) {
            write(t0 + i, m, v);
        }
    };
    // Rows in pairs from the range's four quarters (quarters 0 and 1, then 2 and 3), so
    // that four streams read at once.
    let quarter = (r1 - r0) / 4;
    for i in 0..quarter {
        for j in [0, 2] {
            let (a, b) = (r0 + j * quarter + i, r0 + (j + 1) * quarter + i);
            for t0 in (0..n).step_by(4) {
                let [va, vb] = rows2_x4([w.row_raw(a), w.row_raw(b)], tokens(t0));
                put(a, t0, va);
                put(b, t0, vb);
            }
        }
    }
    for m in r0 + 4 * quarter..r1 {
        for t0 in (0..n).step_by(4) {
            put(m, t0, x4(w.row_raw(m), tokens(t0)));
        }
    }
}

type X4 = fn(&[u8], [&[f32]; 4]) -> [f32; 4];
type Rows2X4 = fn([&[u8]; 2], [&[f32]; 4]) -> [[f32; 4]; 2];

/// Rows `r0..r1` widened to f32 a block at a time (≤ 512 KiB, so the block stays in L2),
/// each block then dotted with every token. Widening and dotting one row at a time read
/// all `n` tokens' activations once per row. The same dot per (row, token) as decode's, so
/// the same bits.
fn widened_block_rows(
    rt: &Runtime,
    w: &DenseMatrix,
    x: &[f32],
    n: usize,
    r0: usize,
    r1: usize,
    write: &impl Fn(usize, usize, f32),
) {
    let (k, kt) = (w.cols, rt.kernels());
    let block = (512 * 1024 / (4 * k)).clamp(1, 64);
    let mut scratch = vec![0f32; block * k];
    for b0 in (r0..r1).step_by(block) {
        let b1 = (b0 + block).min(r1);
        for (m, row) in (b0..b1).zip(scratch.chunks_exact_mut(k)) {
            w.row_to_f32(rt, m, row);
        }
        let rows = &scratch[..(b1 - b0) * k];
        let pairs = (b1 - b0) / 2;
        let xt = |t: usize| &x[t * k..(t + 1) * k];
        let row = |i: usize| &rows[i * k..(i + 1) * k];
        let mut t = 0;
        // Two rows × three tokens per call: each load feeds three or two FMAs, where one
        // dot per pair loads both of its operands for every FMA.
        while t + 3 <= n {
            let xs = [xt(t), xt(t + 1), xt(t + 2)];
            for p in 0..pairs {
                let d = (kt.dot_f32_tile)([row(2 * p), row(2 * p + 1)], xs);
                for (r, dr) in d.iter().enumerate() {
                    for (i, &v) in dr.iter().enumerate() {
                        write(t + i, b0 + 2 * p + r, v);
                    }
                }
            }
            for i in 2 * pairs..b1 - b0 {
                for (j, &x) in xs.iter().enumerate() {
                    write(t + j, b0 + i, (kt.dot_f32)(row(i), x));
                }
            }
            t += 3;
        }
        for t in t..n {
            for i in 0..b1 - b0 {
                write(t, b0 + i, (kt.dot_f32)(row(i), xt(t)));
            }
        }
    }
}

/// Q6_K, Q8_0 and Q4_0 rows against int8 activations, as llama.cpp dots its quantised
/// types: each token is quantised once per 256-block ([`Q8K`]) and every row is dotted in
/// integers. Widening each row to f32 first made a 2B4T model with a Q6_K head decode at a
/// quarter of its bandwidth limit. The int8 rounding of the activations is the only
/// difference from the f32 product: each activation moves by at most half a step,
/// `absmax(block) / 254`.
fn int8_matmul(rt: &Runtime, w: &DenseMatrix, x: &[f32], n: usize, out: &mut [f32]) {
    let (m_rows, k) = (w.rows, w.cols);
    let kt = rt.kernels();
    let acts: Vec<Q8K> = (0..n)
        .map(|t| {
            let mut a = Q8K::default();
            quantize_q8k(&x[t * k..(t + 1) * k], &mut a);
            a
        })
        .collect();
    let dst = DisjointMut::new(out);
    let min_rows = (32 * 1024 / w.row_bytes.max(1)).max(4);
    rt.pool().parallel_ranges(m_rows, min_rows, 4, |r0, r1| {
        // Rows taken from the range's four quarters in turn, so that four streams read at
        // once (as `dot_f16_rows4` does for F16 heads).
        let quarter = (r1 - r0) / 4;
        let order = (0..quarter)
            .flat_map(|i| (0..4).map(move |j| r0 + j * quarter + i))
            .chain(r0 + 4 * quarter..r1);
        for m in order {
            let raw = w.row_raw(m);
            for (t, a) in acts.iter().enumerate() {
                let v = match w.ty {
                    TensorType::Q6_K => (kt.dot_q6k_q8k)(raw, &a.q, &a.d, &a.bsums),
                    TensorType::Q4_0 => (kt.dot_q4_0_q8k)(raw, &a.q, &a.d, &a.bsums),
                    _ => (kt.dot_q8_0_q8k)(raw, &a.q, &a.d),
                };
                // SAFETY: (t, m) is in bounds (`out` holds n · M values, checked by
                // `dense_matmul`) and row m belongs to this task's range.
                unsafe { dst.write(t * m_rows + m, v) }
            }
        }
    });
}
