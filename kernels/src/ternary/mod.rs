//! Ternary weight matrices and the ternary × int8 matmul.

mod matmul;
mod per_64;
mod per_block;
mod rate;
mod repack;

use std::borrow::Cow;

use crate::acts::rows_in_layout;
use crate::error::KernelError;
use crate::format::{format_name, I2sLayout, TernaryFormat};
use crate::portable::I2_BLOCK;
use crate::Runtime;

pub use matmul::{ternary_matmul, ternary_matmul_many};
pub use rate::{ternary_matmul_rate, RATE_MAX_TOKENS};
pub use repack::row_bytes;

/// Elements per scale block of the TQ formats.
const SCALE_BLOCK: usize = 256;

#[derive(Clone, Debug)]
enum WeightScale<'a> {
    /// One scale for the whole tensor (I2_S, TL1, TL2).
    PerTensor(f32),
    /// One scale per 256 elements of each row (TQ1_0, TQ2_0), `rows * cols / 256` values.
    PerBlock(Cow<'a, [f32]>),
    /// One scale per 64 elements of each row (Q2_0 whose 64-blocks in a 256-block
    /// disagree), `rows * cols / 64` values.
    Per64(Cow<'a, [f32]>),
}

impl WeightScale<'_> {
    fn borrowed(&self) -> WeightScale<'_> {
        match self {
            WeightScale::PerTensor(s) => WeightScale::PerTensor(*s),
            WeightScale::PerBlock(s) => WeightScale::PerBlock(Cow::Borrowed(s)),
            WeightScale::Per64(s) => WeightScale::Per64(Cow::Borrowed(s)),
        }
    }
}

/// A ternary matrix in the kernel layout (I2 layout A rows, see `repack`), built once at
/// load time from any ternary payload.
#[derive(Clone, Debug)]
pub struct TernaryMatrix<'a> {
    rows: usize,
    cols: usize,
    row_bytes: usize,
    data: Cow<'a, [u8]>,
    scale: WeightScale<'a>,
    format: TernaryFormat,
    /// The codes are the caller's payload (not a repacked copy).
    zero_copy: bool,
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
        let (data, scale): (Cow<'a, [u8]>, WeightScale<'a>) = match fmt {
            TernaryFormat::I2s(layout) => {
                let packed = n / 4;
                repack::need(what, bytes, packed + 4)?;
                let scale =
                    f32::from_le_bytes(bytes[packed..packed + 4].try_into().expect("4 bytes"));
                let data = match layout {
                    I2sLayout::X86 if cols.is_multiple_of(I2_BLOCK) => {
                        Cow::Borrowed(&bytes[..packed])
                    }
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
                        let data = if block == 128 {
                            repack::pack_rows(rows, cols, |m, k| {
                                repack::i2s_flat_code::<128>(bytes, m * cols + k)
                            })
                        } else {
                            repack::pack_rows(rows, cols, |m, k| {
                                repack::i2s_flat_code::<64>(bytes, m * cols + k)
                            })
                        };
                        Cow::Owned(data)
                    }
                    I2sLayout::RowInterleaved => {
                        if !rows.is_multiple_of(4) {
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
                if !cols.is_multiple_of(SCALE_BLOCK) {
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
                let scale = uniform_block_scale(&s, &d)
                    .map_or(WeightScale::PerBlock(Cow::Owned(s)), WeightScale::PerTensor);
                (Cow::Owned(d), scale)
            }
            TernaryFormat::Q2_0 => {
                if !cols.is_multiple_of(SCALE_BLOCK) {
                    return Err(bad_shape(fmt, rows, cols, "K not a multiple of 256"));
                }
                repack::need(what, bytes, n / per_64::GROUP * repack::Q2_0_BLOCK_BYTES)?;
                let (d, s, zero) = repack::q2_0(bytes, rows, cols);
                let scale = match per_256_scales(&s, &zero) {
                    Some(s) => uniform_block_scale(&s, &d)
                        .map_or(WeightScale::PerBlock(Cow::Owned(s)), WeightScale::PerTensor),
                    None => WeightScale::Per64(Cow::Owned(s)),
                };
                (Cow::Owned(d), scale)
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
                (
                    Cow::Owned(repack::pack_ternary_rows(&t.codes, rows, cols)),
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
            zero_copy: matches!(data, Cow::Borrowed(_)),
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
        let data = repack::pack_ternary_rows(codes, rows, cols);
        Ok(TernaryMatrix {
            rows,
            cols,
            row_bytes: row_bytes(cols),
            data: Cow::Owned(data),
            scale: WeightScale::PerTensor(scale),
            format: TernaryFormat::I2s(I2sLayout::X86),
            zero_copy: false,
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
        self.zero_copy
    }
    /// True when the matmul applies a scale per 256-block (a TQ matrix whose blocks do not
    /// all share one scale) or per 64 elements (see [`Self::has_64_scales`]); false when one
    /// scale covers the whole matrix.
    pub fn has_block_scales(&self) -> bool {
        matches!(self.scale, WeightScale::PerBlock(_) | WeightScale::Per64(_))
    }
    /// True when the matmul applies a scale per 64 elements (a Q2_0 matrix whose 64-blocks
    /// in a 256-block do not share one scale).
    pub fn has_64_scales(&self) -> bool {
        matches!(self.scale, WeightScale::Per64(_))
    }
    /// Bytes the matmul reads per call (codes plus scales).
    pub fn bytes_read(&self) -> usize {
        self.data.len()
            + match &self.scale {
                WeightScale::PerTensor(_) => 4,
                WeightScale::PerBlock(s) | WeightScale::Per64(s) => 4 * s.len(),
            }
    }
    /// Bytes owned by this matrix beyond the caller's payload.
    pub fn repack_bytes(&self) -> usize {
        let codes = if self.zero_copy { 0 } else { self.data.len() };
        match &self.scale {
            WeightScale::PerTensor(_) => codes,
            WeightScale::PerBlock(s) | WeightScale::Per64(s) => codes + 4 * s.len(),
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
            WeightScale::Per64(s) => s[m * (self.cols / per_64::GROUP) + k / per_64::GROUP],
        }
    }

    /// Row `m` as f32 (`value * scale`).
    pub fn row_to_f32(&self, m: usize, out: &mut [f32]) {
        for (k, o) in out.iter_mut().enumerate().take(self.cols) {
            *o = self.value(m, k) as f32 * self.scale_at(m, k);
        }
    }

    /// Σ code·q over row `m` with raw codes (0..=2), as the I2_S kernels return it.
    pub fn raw_dot(&self, rt: &Runtime, m: usize, q: &[i8]) -> i32 {
        let kt = rt.kernels();
        let kp = self.row_bytes * 4;
        let padded = matmul::padded_rows(&q[..self.cols], self.cols, kp);
        matmul::raw_dot(kt, self.row(m), &rows_in_layout(kt.act_layout, &padded, kp))
    }

    fn row(&self, m: usize) -> &[u8] {
        &self.data[m * self.row_bytes..(m + 1) * self.row_bytes]
    }

    /// The matrix without its borrow of the payload, for an owner that keeps the payload
    /// itself (a model holding its mapped file) and borrows it again per use with
    /// [`DetachedTernary::attach`]. A repacked copy and per-block scales move along.
    pub fn detach(self) -> DetachedTernary {
        let codes = match self.data {
            Cow::Borrowed(d) => Codes::Payload(d.len()),
            Cow::Owned(d) => Codes::Repacked(d),
        };
        let scale = match self.scale {
            WeightScale::PerTensor(s) => WeightScale::PerTensor(s),
            WeightScale::PerBlock(s) => WeightScale::PerBlock(Cow::Owned(s.into_owned())),
            WeightScale::Per64(s) => WeightScale::Per64(Cow::Owned(s.into_owned())),
        };
        DetachedTernary {
            rows: self.rows,
            cols: self.cols,
            row_bytes: self.row_bytes,
            codes,
            scale,
            format: self.format,
        }
    }
}

/// Where a detached matrix's codes are.
#[derive(Clone, Debug)]
enum Codes {
    /// The first `len` bytes of the payload.
    Payload(usize),
    Repacked(Vec<u8>),
}

/// A [`TernaryMatrix`] without the payload it was built from: everything it prepared at
/// load, attached again to the payload in a few word copies, without allocating.
#[derive(Clone, Debug)]
pub struct DetachedTernary {
    rows: usize,
    cols: usize,
    row_bytes: usize,
    codes: Codes,
    scale: WeightScale<'static>,
    format: TernaryFormat,
}

impl DetachedTernary {
    /// The matrix again, reading `payload`: the bytes given to [`TernaryMatrix::new`] (only
    /// their length is checked again); a repacked matrix reads its own copy.
    ///
    /// Panics if `payload` is shorter than the codes (a caller bug: the payload changed).
    pub fn attach<'a>(&'a self, payload: &'a [u8]) -> TernaryMatrix<'a> {
        let (data, zero_copy) = match &self.codes {
            Codes::Payload(len) => (&payload[..*len], true),
            Codes::Repacked(d) => (&d[..], false),
        };
        TernaryMatrix {
            rows: self.rows,
            cols: self.cols,
            row_bytes: self.row_bytes,
            data: Cow::Borrowed(data),
            scale: self.scale.borrowed(),
            format: self.format,
            zero_copy,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// The one scale of a TQ matrix whose 256-blocks all share it, if they do. Files converted
/// from a BitNet checkpoint have one scale per tensor, written into every block; such a
/// matrix runs the (faster) per-tensor kernels. A block with scale 0 does not break
/// uniformity when all its weights are zero (code 1, bytes 0x55): it adds 0 either way.
/// `data` is the repacked I2 data, 64 bytes per 256-block in the order of `scales`.
fn uniform_block_scale(scales: &[f32], data: &[u8]) -> Option<f32> {
    let common = scales.iter().copied().find(|&d| d != 0.0).unwrap_or(0.0);
    let blocks = data.chunks_exact(SCALE_BLOCK / 4);
    (blocks.len() == scales.len()
        && scales.iter().zip(blocks).all(|(&d, b)| {
            d.to_bits() == common.to_bits() || (d == 0.0 && b.iter().all(|&x| x == 0x55))
        }))
    .then_some(common)
}

/// Q2_0's 64-element scales as one scale per 256-block, when every 256-block's 64-blocks
/// that hold a non-zero weight share one (an all-zero 64-block adds 0 under any scale);
/// `None` when some 256-block needs its four scales.
fn per_256_scales(s64: &[f32], zero: &[bool]) -> Option<Vec<f32>> {
    let groups = SCALE_BLOCK / per_64::GROUP;
    s64.chunks_exact(groups)
        .zip(zero.chunks_exact(groups))
        .map(|(s, z)| {
            let mut live = s.iter().zip(z).filter(|(_, &z)| !z).map(|(&d, _)| d);
            let first = live.next().unwrap_or(s[0]);
            live.all(|d| d.to_bits() == first.to_bits())
                .then_some(first)
        })
        .collect()
}
