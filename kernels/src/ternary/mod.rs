//! Ternary weight matrices and the ternary × int8 matmul.

mod repack;

use std::borrow::Cow;

use crate::acts::QuantizedActs;
use crate::dispatch::{table, Kernels};
use crate::error::KernelError;
use crate::format::{format_name, I2sLayout, TernaryFormat};
use crate::pool::parallel_ranges;
use crate::portable::{I2_BLOCK, I2_BLOCK_BYTES};

pub use repack::row_bytes;

/// Elements per scale block of the TQ formats.
const SCALE_BLOCK: usize = 256;

#[derive(Clone, Debug)]
enum WeightScale {
    /// One scale for the whole tensor (I2_S, TL1, TL2).
    PerTensor(f32),
    /// One scale per 256 elements of each row (TQ1_0, TQ2_0), `rows * cols / 256` values.
    PerBlock(Vec<f32>),
}

/// A ternary matrix in the kernel layout (I2 layout A rows, see `repack`), built once at
/// load time from any ternary payload.
#[derive(Clone, Debug)]
pub struct TernaryMatrix<'a> {
    rows: usize,
    cols: usize,
    row_bytes: usize,
    data: Cow<'a, [u8]>,
    scale: WeightScale,
    format: TernaryFormat,
}

fn bad_shape(fmt: &TernaryFormat, rows: usize, cols: usize, reason: &str) -> KernelError {
    KernelError::BadShape {
        what: format_name(fmt).to_string(),
        rows,
        cols,
        reason: reason.to_string(),
    }
}

impl<'a> TernaryMatrix<'a> {
    /// Prepares `rows × cols` weights stored in `fmt`. Borrows `bytes` when the payload is
    /// already in the kernel layout (I2_S x86 with `cols % 128 == 0`), else repacks.
    pub fn new(
        fmt: &TernaryFormat,
        bytes: &'a [u8],
        rows: usize,
        cols: usize,
    ) -> Result<Self, KernelError> {
        let what = format_name(fmt);
        let n = rows
            .checked_mul(cols)
            .ok_or_else(|| bad_shape(fmt, rows, cols, "too large"))?;
        if rows == 0 || cols == 0 {
            return Err(bad_shape(fmt, rows, cols, "empty"));
        }
        let rb = row_bytes(cols);
        let (data, scale): (Cow<'a, [u8]>, WeightScale) = match fmt {
            TernaryFormat::I2s(layout) => {
                let packed = n / 4;
                repack::need(what, bytes, packed + 4)?;
                let scale =
                    f32::from_le_bytes(bytes[packed..packed + 4].try_into().expect("4 bytes"));
                let data = match layout {
                    I2sLayout::X86 if cols % I2_BLOCK == 0 => Cow::Borrowed(&bytes[..packed]),
                    I2sLayout::X86 | I2sLayout::Arm => {
                        let block = if *layout == I2sLayout::X86 { 128 } else { 64 };
                        if n % block != 0 {
                            return Err(bad_shape(
                                fmt,
                                rows,
                                cols,
                                "element count not a multiple of the block",
                            ));
                        }
                        Cow::Owned(repack::pack_rows(rows, cols, |m, k| {
                            repack::i2s_flat_code(bytes, m * cols + k, block)
                        }))
                    }
                    I2sLayout::RowInterleaved => {
                        if rows % 4 != 0 {
                            return Err(bad_shape(fmt, rows, cols, "rows not a multiple of 4"));
                        }
                        Cow::Owned(repack::pack_rows(rows, cols, |m, k| {
                            (bytes[(m / 4) * cols + k] >> (6 - 2 * (m % 4))) & 3
                        }))
                    }
                };
                (data, WeightScale::PerTensor(scale))
            }
            TernaryFormat::Tq2_0 | TernaryFormat::Tq1_0 => {
                if cols % SCALE_BLOCK != 0 {
                    return Err(bad_shape(fmt, rows, cols, "K not a multiple of 256"));
                }
                let tq2 = matches!(fmt, TernaryFormat::Tq2_0);
                let block_bytes = if tq2 { 66 } else { 54 };
                repack::need(what, bytes, n / SCALE_BLOCK * block_bytes)?;
                let (d, s) = if tq2 {
                    repack::tq2_0(bytes, rows, cols)
                } else {
                    repack::tq1_0(bytes, rows, cols)
                };
                (Cow::Owned(d), WeightScale::PerBlock(s))
            }
            TernaryFormat::Tl1(_) | TernaryFormat::Tl2(_) => {
                // The LUT layouts are decoded once and repacked (2 bits per weight).
                let t =
                    bitnet_formats::codec::decode_ternary(fmt, bytes, rows, cols).map_err(|e| {
                        KernelError::Corrupt {
                            what: what.to_string(),
                            reason: e.to_string(),
                        }
                    })?;
                let scale = match t.scales {
                    bitnet_formats::codec::TernaryScales::PerTensor(s) => s,
                    bitnet_formats::codec::TernaryScales::PerBlock(ref v) => {
                        v.first().copied().unwrap_or(0.0)
                    }
                };
                let codes = &t.codes;
                (
                    Cow::Owned(repack::pack_rows(rows, cols, |m, k| {
                        (codes[m * cols + k] + 1) as u8
                    })),
                    WeightScale::PerTensor(scale),
                )
            }
        };
        debug_assert_eq!(data.len(), rows * rb);
        if repack::has_code3(&data) {
            return Err(KernelError::Corrupt {
                what: what.to_string(),
                reason: "2-bit code 3".into(),
            });
        }
        Ok(TernaryMatrix {
            rows,
            cols,
            row_bytes: rb,
            data,
            scale,
            format: *fmt,
        })
    }

    /// Builds a matrix from ternary values (`rows * cols`, each in {-1, 0, 1}) and one scale.
    pub fn from_ternary(
        codes: &[i8],
        rows: usize,
        cols: usize,
        scale: f32,
    ) -> Result<TernaryMatrix<'static>, KernelError> {
        if codes.len() != rows * cols || rows == 0 || cols == 0 {
            return Err(KernelError::BadShape {
                what: "ternary values".into(),
                rows,
                cols,
                reason: format!("{} values given", codes.len()),
            });
        }
        if codes.iter().any(|&t| !(-1..=1).contains(&t)) {
            return Err(KernelError::Corrupt {
                what: "ternary values".into(),
                reason: "value outside -1..=1".into(),
            });
        }
        let data = repack::pack_rows(rows, cols, |m, k| (codes[m * cols + k] + 1) as u8);
        Ok(TernaryMatrix {
            rows,
            cols,
            row_bytes: row_bytes(cols),
            data: Cow::Owned(data),
            scale: WeightScale::PerTensor(scale),
            format: TernaryFormat::I2s(I2sLayout::X86),
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// The payload format this matrix was built from.
    pub fn format(&self) -> TernaryFormat {
        self.format
    }
    /// True when the weights are read straight from the caller's bytes (no copy).
    pub fn is_zero_copy(&self) -> bool {
        matches!(self.data, Cow::Borrowed(_))
    }
    /// Bytes the matmul reads per call (codes plus scales).
    pub fn bytes_read(&self) -> usize {
        self.data.len()
            + match &self.scale {
                WeightScale::PerTensor(_) => 4,
                WeightScale::PerBlock(s) => 4 * s.len(),
            }
    }
    /// Bytes owned by this matrix beyond the caller's payload.
    pub fn repack_bytes(&self) -> usize {
        match (&self.data, &self.scale) {
            (Cow::Borrowed(_), WeightScale::PerTensor(_)) => 0,
            (d, WeightScale::PerTensor(_)) => d.len(),
            (d, WeightScale::PerBlock(s)) => d.len() + 4 * s.len(),
        }
    }

    /// Ternary value of element (m, k).
    pub fn value(&self, m: usize, k: usize) -> i8 {
        repack::get(&self.data[m * self.row_bytes..], k) as i8 - 1
    }

    /// Scale applying to element (m, k).
    pub fn scale_at(&self, m: usize, k: usize) -> f32 {
        match &self.scale {
            WeightScale::PerTensor(s) => *s,
            WeightScale::PerBlock(s) => s[m * (self.cols / SCALE_BLOCK) + k / SCALE_BLOCK],
        }
    }

    /// Row `m` as f32 (`value * scale`).
    pub fn row_to_f32(&self, m: usize, out: &mut [f32]) {
        for (k, o) in out.iter_mut().enumerate().take(self.cols) {
            *o = self.value(m, k) as f32 * self.scale_at(m, k);
        }
    }

    /// Σ code·q over row `m` with raw codes (0..=2), as the I2_S kernels return it.
    pub fn raw_dot(&self, m: usize, q: &[i8]) -> i32 {
        raw_dot(table(), self.row(m), q, self.cols)
    }

    fn row(&self, m: usize) -> &[u8] {
        &self.data[m * self.row_bytes..(m + 1) * self.row_bytes]
    }
}

/// Σ code·q over the first `cols` elements of a padded row.
#[inline]
fn raw_dot(kt: &Kernels, row: &[u8], q: &[i8], cols: usize) -> i32 {
    let full = cols / I2_BLOCK;
    let mut dot = if full > 0 {
        (kt.i2_dot)(&row[..full * I2_BLOCK_BYTES], &q[..full * I2_BLOCK])
    } else {
        0
    };
    for k in full * I2_BLOCK..cols {
        dot += repack::get(row, k) as i32 * q[k] as i32;
    }
    dot
}

#[inline]
fn raw_dot4(kt: &Kernels, row: &[u8], q: [&[i8]; 4], cols: usize) -> [i32; 4] {
    let full = cols / I2_BLOCK;
    let mut dot = if full > 0 {
        let (wb, n) = (&row[..full * I2_BLOCK_BYTES], full * I2_BLOCK);
        (kt.i2_dot4)(wb, [&q[0][..n], &q[1][..n], &q[2][..n], &q[3][..n]])
    } else {
        [0; 4]
    };
    for k in full * I2_BLOCK..cols {
        let c = repack::get(row, k) as i32;
        for t in 0..4 {
            dot[t] += c * q[t][k] as i32;
        }
    }
    dot
}

/// A raw pointer shared by the threads writing disjoint parts of one output buffer.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// Tokens per tile in prefill: a tile's int8 rows (16 × K bytes) stay in L2 while the
/// chunk's weight rows stream through L1.
const TOKEN_TILE: usize = 16;

/// `out[t * M + m] = Σ_k w[m, k] · x[t, k]` for every token, from int8 activations:
/// per-tensor scale (I2_S): `((dot − act_sum) as f32 / act_scale) * scale`, bit for bit the
/// fork's epilogue; per-block scales (TQ): `(Σ_b d_b · (Σ_{k∈b} t·q) as f32) / act_scale`,
/// accumulated over blocks in order.
///
/// Panics if `acts.k != w.cols()` or `out` is shorter than `n_tokens * rows`.
pub fn ternary_matmul(w: &TernaryMatrix, acts: &QuantizedActs, out: &mut [f32]) {
    let (m_rows, k, n) = (w.rows, w.cols, acts.n_tokens);
    assert_eq!(
        acts.k, k,
        "activation width {} != matrix columns {k}",
        acts.k
    );
    assert!(out.len() >= n * m_rows, "output buffer too small");
    if n == 0 {
        return;
    }
    let kt = table();
    let out_ptr = OutPtr(out.as_mut_ptr());
    // Per-256-block activation sums, for the zero-point correction of per-block scales.
    let block_sums: Vec<i32> = match w.scale {
        WeightScale::PerBlock(_) => acts
            .q
            .chunks_exact(SCALE_BLOCK)
            .map(|b| b.iter().map(|&v| v as i32).sum())
            .collect(),
        WeightScale::PerTensor(_) => Vec::new(),
    };
    // Rows per task: enough work to amortise scheduling (≥ 32 KiB of weights per task).
    let min_rows = (32 * 1024 / w.row_bytes.max(1)).max(4);
    parallel_ranges(m_rows, min_rows, 4, |r0, r1| {
        let out_ptr = out_ptr;
        let write = |t: usize, m: usize, v: f32| unsafe { *out_ptr.0.add(t * m_rows + m) = v };
        for t0 in (0..n).step_by(TOKEN_TILE) {
            let t1 = (t0 + TOKEN_TILE).min(n);
            for m in r0..r1 {
                let row = w.row(m);
                match &w.scale {
                    WeightScale::PerTensor(s) => {
                        let mut t = t0;
                        while t + 4 <= t1 {
                            let d = raw_dot4(
                                kt,
                                row,
                                [
                                    acts.row(t),
                                    acts.row(t + 1),
                                    acts.row(t + 2),
                                    acts.row(t + 3),
                                ],
                                k,
                            );
                            for i in 0..4 {
                                write(
                                    t + i,
                                    m,
                                    i2s_epilogue(d[i], acts.sum[t + i], acts.scale[t + i], *s),
                                );
                            }
                            t += 4;
                        }
                        for t in t..t1 {
                            let d = raw_dot(kt, row, acts.row(t), k);
                            write(t, m, i2s_epilogue(d, acts.sum[t], acts.scale[t], *s));
                        }
                    }
                    WeightScale::PerBlock(scales) => {
                        let nb = k / SCALE_BLOCK;
                        let rs = &scales[m * nb..(m + 1) * nb];
                        let mut t = t0;
                        while t + 4 <= t1 {
                            let mut acc = [0f32; 4];
                            for (b, &d) in rs.iter().enumerate() {
                                let wb = &row[b * 64..(b + 1) * 64];
                                let r = b * SCALE_BLOCK..(b + 1) * SCALE_BLOCK;
                                let q = [
                                    &acts.row(t)[r.clone()],
                                    &acts.row(t + 1)[r.clone()],
                                    &acts.row(t + 2)[r.clone()],
                                    &acts.row(t + 3)[r],
                                ];
                                let dots = (kt.i2_dot4)(wb, q);
                                for i in 0..4 {
                                    acc[i] += d * (dots[i] - block_sums[(t + i) * nb + b]) as f32;
                                }
                            }
                            for i in 0..4 {
                                write(t + i, m, acc[i] / acts.scale[t + i]);
                            }
                            t += 4;
                        }
                        for t in t..t1 {
                            let mut acc = 0f32;
                            for (b, &d) in rs.iter().enumerate() {
                                let wb = &row[b * 64..(b + 1) * 64];
                                let q = &acts.row(t)[b * SCALE_BLOCK..(b + 1) * SCALE_BLOCK];
                                acc += d * ((kt.i2_dot)(wb, q) - block_sums[t * nb + b]) as f32;
                            }
                            write(t, m, acc / acts.scale[t]);
                        }
                    }
                }
            }
        }
    });
}

/// The fork's I2_S epilogue, in f32 and in this order (formats.md §3.6).
#[inline]
pub fn i2s_epilogue(dot: i32, act_sum: i32, act_scale: f32, scale: f32) -> f32 {
    (dot as f32 - act_sum as f32) / act_scale * scale
}
