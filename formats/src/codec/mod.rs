//! Scalar reference codecs for every tensor type the project reads or writes.
//!
//! These are the slow, obviously-correct implementations: the SIMD kernels are tested against
//! them, and the converter and `quantize` use them to produce files. Every function here
//! reproduces the bytes of the tool that defines the format (docs/formats/): bitnet.cpp's
//! converter and `quantize_i2_s` for I2_S/TL1/TL2, ggml's `quantize_row_*_ref` and
//! `dequantize_row_*` for the ggml types.
//!
//! Ternary formats convert between packed bytes and a [`TernaryTensor`] (codes in {-1, 0, +1}
//! plus scales), which makes transcoding between ternary formats exact for the codes.

mod error;
pub mod float;
pub mod i2s;
pub mod kquants;
pub mod meta;
pub mod q2;
pub mod q4_q5_q8;
mod row_tiles;
pub mod table;
pub mod tl1;
pub mod tl2;
pub mod tl_params;
pub mod tq;

pub use error::CodecError;
pub use i2s::{quantize_i2s_c_rule, quantize_i2s_python_rule};
pub use meta::{
    i2s_layout_from_metadata, set_i2s_layout, ternary_format_from_metadata,
    tl_params_from_metadata, tl_params_to_metadata,
};
pub use table::{traits, CodecRow};
pub use tl_params::{TL1_PRESETS, TL2_PRESETS};

use crate::types::TensorType;

/// Elements per TQ1_0 / TQ2_0 / K-quant super-block.
pub const QK_K: usize = 256;

/// A ternary weight matrix: `rows × cols` codes in {-1, 0, +1} plus their scale(s).
#[derive(Clone, Debug, PartialEq)]
pub struct TernaryTensor {
    /// M: output features.
    pub rows: usize,
    /// K: input features (ggml `ne[0]`).
    pub cols: usize,
    /// Row-major `rows * cols` codes, each in {-1, 0, 1}.
    pub codes: Vec<i8>,
    pub scales: TernaryScales,
}

/// How a ternary tensor's magnitudes are stored.
#[derive(Clone, Debug, PartialEq)]
pub enum TernaryScales {
    /// One f32 for the whole tensor (I2_S, TL1, TL2).
    PerTensor(f32),
    /// One value per 256 consecutive elements in flat row-major order (TQ1_0 / TQ2_0, whose
    /// files store it as f16).
    PerBlock(Vec<f32>),
}

/// The three I2_S packings (docs/formats/i2s.md, 'Packing layouts'). Nothing in a file says which
/// one it uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum I2sLayout {
    /// 128-element blocks in 32 bytes: x86 builds, the Python converter, published files.
    #[default]
    X86,
    /// 64-element blocks in 16 bytes: ARM builds of bitnet.cpp since Nov 2025.
    Arm,
    /// x86 1×4 row-interleaved layout (only without `ACT_PARALLEL`); needs `rows % 4 == 0`.
    RowInterleaved,
}

impl I2sLayout {
    /// The value written to / read from the `bitnet.i2s.layout` metadata key.
    pub fn name(self) -> &'static str {
        match self {
            I2sLayout::X86 => "x86",
            I2sLayout::Arm => "arm",
            I2sLayout::RowInterleaved => "row-interleaved",
        }
    }

    pub fn from_name(name: &str) -> Option<I2sLayout> {
        match name {
            "x86" => Some(I2sLayout::X86),
            "arm" => Some(I2sLayout::Arm),
            "row-interleaved" => Some(I2sLayout::RowInterleaved),
            _ => None,
        }
    }
}

/// TL1/TL2 tile parameters, the `kernel_config.ini` entry of a matrix shape
/// (docs/formats/tl.md, 'Tile parameters').
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TlParams {
    /// BM: rows per tile (ini key `bm`).
    pub bm_tile: usize,
    /// BK: columns per tile (ini key `bk`, called BY in the converter).
    pub bk_tile: usize,
    /// bm: rows per SIMD sub-tile (ini key `bmm`); 32 or 64 for TL1, 32 for TL2.
    pub bm: usize,
}

/// A ternary payload layout, with everything needed to decode it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TernaryFormat {
    I2s(I2sLayout),
    Tq1_0,
    Tq2_0,
    /// Upstream Q2_0 holding only codes 00, 01, 10 (a ternary matrix with a scale per 64).
    Q2_0,
    Tl1(TlParams),
    Tl2(TlParams),
}

impl TernaryFormat {
    pub fn tensor_type(&self) -> TensorType {
        match self {
            TernaryFormat::I2s(_) => TensorType::I2_S,
            TernaryFormat::Tq1_0 => TensorType::TQ1_0,
            TernaryFormat::Tq2_0 => TensorType::TQ2_0,
            TernaryFormat::Q2_0 => TensorType::Q2_0,
            TernaryFormat::Tl1(_) => TensorType::TL1,
            TernaryFormat::Tl2(_) => TensorType::TL2,
        }
    }

    /// Byte size of a payload in this format (the fork's / ggml's `nbytes`).
    pub fn payload_len(&self, rows: usize, cols: usize) -> Option<usize> {
        let n = self.tensor_type().nbytes(&[cols as u64, rows as u64])?;
        usize::try_from(n).ok()
    }
}

impl TernaryTensor {
    /// Checks the invariants: `codes.len() == rows * cols`, every code in {-1, 0, 1}, and
    /// one per-block scale per 256 elements.
    pub fn validate(&self) -> Result<(), CodecError> {
        let n = self
            .rows
            .checked_mul(self.cols)
            .ok_or_else(|| CodecError::shape(format!("{} x {} overflows", self.rows, self.cols)))?;
        if self.codes.len() != n {
            return Err(CodecError::shape(format!(
                "{} codes for a {} x {} tensor",
                self.codes.len(),
                self.rows,
                self.cols
            )));
        }
        if let Some(i) = first_non_ternary(&self.codes) {
            return Err(CodecError::InvalidCode {
                index: i,
                code: self.codes[i] as i32,
            });
        }
        if let TernaryScales::PerBlock(s) = &self.scales {
            if s.len() != n.div_ceil(QK_K) {
                return Err(CodecError::shape(format!(
                    "{} block scales for {} elements (one per {QK_K} expected)",
                    s.len(),
                    n
                )));
            }
        }
        Ok(())
    }

    /// The per-tensor scale, if the tensor has one. Per-block scales collapse to one value
    /// when every block that holds a non-zero code has the same scale (what TQ files made
    /// from BitNet weights look like); otherwise the tensor is not representable with a
    /// single scale and this is an error.
    pub fn per_tensor_scale(&self) -> Result<f32, CodecError> {
        match &self.scales {
            TernaryScales::PerTensor(s) => Ok(*s),
            TernaryScales::PerBlock(v) => {
                let mut found: Option<f32> = None;
                for (b, &s) in v.iter().enumerate() {
                    let end = ((b + 1) * QK_K).min(self.codes.len());
                    if self.codes[b * QK_K..end].iter().all(|&c| c == 0) {
                        continue;
                    }
                    match found {
                        None => found = Some(s),
                        Some(f) if f.to_bits() == s.to_bits() => {}
                        Some(f) => {
                            return Err(CodecError::ScalesDiffer {
                                first: f,
                                other: s,
                                block: b,
                            })
                        }
                    }
                }
                // An all-zero tensor: any scale reproduces it; keep the first stored one.
                Ok(found.or_else(|| v.first().copied()).unwrap_or(0.0))
            }
        }
    }

    /// The scale that applies to flat element `i`.
    pub fn scale_at(&self, i: usize) -> f32 {
        match &self.scales {
            TernaryScales::PerTensor(s) => *s,
            TernaryScales::PerBlock(v) => v[i / QK_K],
        }
    }

    /// `code * scale` for every element, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        self.codes
            .iter()
            .enumerate()
            .map(|(i, &c)| c as f32 * self.scale_at(i))
            .collect()
    }
}

/// Decodes a full ternary payload (as stored in the GGUF data region, tails included).
pub fn decode_ternary(
    fmt: &TernaryFormat,
    bytes: &[u8],
    rows: usize,
    cols: usize,
) -> Result<TernaryTensor, CodecError> {
    match fmt {
        TernaryFormat::I2s(layout) => i2s::decode(*layout, bytes, rows, cols),
        TernaryFormat::Tq1_0 => tq::decode_tq1_0(bytes, rows, cols),
        TernaryFormat::Tq2_0 => tq::decode_tq2_0(bytes, rows, cols),
        TernaryFormat::Q2_0 => q2::decode_q2_0_ternary(bytes, rows, cols),
        TernaryFormat::Tl1(p) => tl1::decode(p, bytes, rows, cols),
        TernaryFormat::Tl2(p) => tl2::decode(p, bytes, rows, cols),
    }
}

/// Encodes codes + scale(s) into a full payload, tails included. TQ formats store the scale
/// of every block that holds a non-zero code (as f16) and 0 for all-zero blocks, which is
/// what ggml's quantizer gives for `code * scale` input. I2_S/TL need a single scale
/// ([`TernaryTensor::per_tensor_scale`]).
pub fn encode_ternary(fmt: &TernaryFormat, t: &TernaryTensor) -> Result<Vec<u8>, CodecError> {
    t.validate()?;
    match fmt {
        TernaryFormat::I2s(layout) => i2s::encode(*layout, t),
        TernaryFormat::Tq1_0 => tq::encode_tq1_0(t),
        TernaryFormat::Tq2_0 => tq::encode_tq2_0(t),
        TernaryFormat::Q2_0 => q2::encode_q2_0(t),
        TernaryFormat::Tl1(p) => tl1::encode(p, t),
        TernaryFormat::Tl2(p) => tl2::encode(p, t),
    }
}

/// Largest relative error `|f16(s) − s| / |s|` that storing these scales in a TQ file (f16 per
/// block) introduces; 0 when every scale is exactly representable.
pub fn tq_scale_rel_error(t: &TernaryTensor) -> f32 {
    let rel = |s: f32| {
        let back = half::f16::from_f32(s).to_f32();
        if s == 0.0 {
            0.0
        } else {
            ((back - s) / s).abs()
        }
    };
    match &t.scales {
        TernaryScales::PerTensor(s) => rel(*s),
        TernaryScales::PerBlock(v) => v.iter().map(|&s| rel(s)).fold(0.0, f32::max),
    }
}

/// Dequantizes a whole tensor of any decodable type into `out` (`ne` in ggml order). Ternary
/// types use their default layout: I2_S x86, TL1/TL2 the shipped preset of the shape, an error
/// for other TL shapes (use [`decode_ternary`] with the file's parameters).
pub fn dequantize(
    ty: TensorType,
    bytes: &[u8],
    ne: &[u64],
    out: &mut [f32],
) -> Result<(), CodecError> {
    let n = element_count(ne)?;
    if out.len() != n {
        return Err(CodecError::shape(format!(
            "output holds {} values, tensor has {n}",
            out.len()
        )));
    }
    let row = traits(ty);
    if let Some(fmt_for) = row.ternary_format {
        let cols = *ne.first().unwrap_or(&1) as usize;
        let rows = n.checked_div(cols).unwrap_or(0);
        if row.dequantize_row.is_none() {
            // Without the file's metadata only a shipped preset can tell TL tile parameters;
            // an automatically chosen set would be a guess.
            let preset = match ty {
                TensorType::TL1 => Some(tl_params::tl1_preset(rows, cols).map(TernaryFormat::Tl1)),
                TensorType::TL2 => Some(tl_params::tl2_preset(rows, cols).map(TernaryFormat::Tl2)),
                _ => None,
            };
            let fmt = match preset {
                Some(Some(f)) => f,
                Some(None) => {
                    return Err(CodecError::TlParams(format!(
                        "{ty} {rows} x {cols} matches no shipped preset; decode it with the file's \
                         parameters (codec::meta::ternary_format_from_metadata)"
                    )))
                }
                None => fmt_for(rows, cols)?,
            };
            let t = decode_ternary(&fmt, bytes, rows, cols)?;
            for (i, (o, &c)) in out.iter_mut().zip(&t.codes).enumerate() {
                *o = c as f32 * t.scale_at(i);
            }
            return Ok(());
        }
    }
    let expected = ty
        .nbytes(ne)
        .ok_or_else(|| CodecError::shape(format!("shape {ne:?} does not fit type {ty}")))?;
    if bytes.len() as u64 != expected {
        return Err(CodecError::Size {
            what: ty.name().into(),
            expected: expected as usize,
            got: bytes.len(),
        });
    }
    dequantize_blocks(ty, bytes, out)
}

/// Dequantizes one row (or any whole number of blocks) of a block type.
pub fn dequantize_row(
    ty: TensorType,
    row_bytes_in: &[u8],
    out: &mut [f32],
) -> Result<(), CodecError> {
    let expected = row_bytes(ty, out.len()).ok_or_else(|| {
        CodecError::shape(format!("{} values are not whole {ty} blocks", out.len()))
    })?;
    if row_bytes_in.len() != expected {
        return Err(CodecError::Size {
            what: ty.name().into(),
            expected,
            got: row_bytes_in.len(),
        });
    }
    dequantize_blocks(ty, row_bytes_in, out)
}

fn dequantize_blocks(ty: TensorType, bytes: &[u8], out: &mut [f32]) -> Result<(), CodecError> {
    let f = traits(ty)
        .dequantize_row
        .ok_or_else(|| CodecError::unsupported(ty, "dequantize"))?;
    f(bytes, out);
    Ok(())
}

/// Quantizes `src` (ggml order `ne`) to `ty` with the reference quantizer of that type:
/// F32, F16, BF16, Q8_0, Q4_0, Q6_K, TQ1_0, TQ2_0 bit for bit as ggml; I2_S with the C
/// sign rule of `quantize_i2_s` (x86 layout); TL1/TL2 with the converter's rule and the
/// shape's preset or automatically chosen tile parameters.
pub fn quantize(ty: TensorType, src: &[f32], ne: &[u64]) -> Result<Vec<u8>, CodecError> {
    let n = element_count(ne)?;
    if src.len() != n {
        return Err(CodecError::shape(format!(
            "{} input values for shape {ne:?}",
            src.len()
        )));
    }
    let row = traits(ty);
    if let Some(q) = row.quantize_row {
        let len = ty
            .nbytes(ne)
            .ok_or_else(|| CodecError::shape(format!("shape {ne:?} does not fit type {ty}")))?;
        let mut out = vec![0u8; len as usize];
        q(src, &mut out);
        return Ok(out);
    }
    if let Some(fmt_for) = row.ternary_format {
        let cols = *ne.first().unwrap_or(&1) as usize;
        let rows = n.checked_div(cols).unwrap_or(0);
        let fmt = fmt_for(rows, cols)?;
        let (codes, scale) = quantize_i2s_c_rule(src);
        let t = TernaryTensor {
            rows,
            cols,
            codes,
            scales: TernaryScales::PerTensor(scale),
        };
        return encode_ternary(&fmt, &t);
    }
    Err(CodecError::unsupported(ty, "quantize"))
}

/// Bytes of one row of `cols` values for block types; `None` for per-tensor layouts (I2_S,
/// TL1, TL2) and when `cols` is not a whole number of blocks.
pub fn row_bytes(ty: TensorType, cols: usize) -> Option<usize> {
    if ty.size_rule() != crate::types::SizeRule::Blocks {
        return None;
    }
    let block = ty.block_len() as usize;
    if block == 0 || !cols.is_multiple_of(block) {
        return None;
    }
    (cols / block).checked_mul(ty.block_bytes() as usize)
}

/// BitNet's `weight_quant` (docs/convert.md, 'Ternary values'), the HF training-time rule:
/// `m = mean|w|` clamped to ≥ 1e-5, `s = 1/m` (f32), `t = clamp(round_half_even(w·s), −1, 1)`.
/// Returns the codes and the magnitude the converter writes, `1/s` in f32 (equal to `m` or one
/// ulp off), which is the scale `quantize_i2_s` then finds as `max|t/s|`.
///
/// The mean is summed in f64; PyTorch sums in f32 with its own order, so on random data the
/// scale may differ by one ulp from PyTorch's (exact whenever the sum is exact).
pub fn weight_quant_absmean(w: &[f32]) -> (Vec<i8>, f32) {
    let s = absmean_inverse(w);
    let codes = w
        .iter()
        .map(|&x| (x * s).round_ties_even().clamp(-1.0, 1.0) as i8)
        .collect();
    (codes, 1.0f32 / s)
}

/// The converter's ternary-scaled floats `clamp(round_half_even(w·s), −1, 1) / s` exactly as
/// PyTorch computes them (including `-0.0` for small negative weights); `s` as in
/// [`weight_quant_absmean`].
pub fn weight_quant_scaled(w: &[f32]) -> Vec<f32> {
    let s = absmean_inverse(w);
    w.iter()
        .map(|&x| (x * s).round_ties_even().clamp(-1.0, 1.0) / s)
        .collect()
}

/// `s = 1 / max(mean|w|, 1e-5)` in f32, the mean summed in f64.
fn absmean_inverse(w: &[f32]) -> f32 {
    let sum: f64 = w.iter().map(|&x| x.abs() as f64).sum();
    let mean = if w.is_empty() {
        0.0
    } else {
        (sum / w.len() as f64) as f32
    };
    let m = if mean.is_nan() { 1e-5 } else { mean.max(1e-5) };
    1.0f32 / m
}

fn element_count(ne: &[u64]) -> Result<usize, CodecError> {
    ne.iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| CodecError::shape(format!("shape {ne:?} overflows")))
}

/// Index of the first value outside −1..=1. The whole slice is checked first in a loop the
/// compiler vectorises (a 2B model has two billion values), the position only when one fails.
pub(crate) fn first_non_ternary(codes: &[i8]) -> Option<usize> {
    let bad = codes.chunks(64).fold(0u8, |acc, c| {
        acc | c
            .iter()
            .fold(0u8, |a, &v| a | ((v as u8).wrapping_add(1) > 2) as u8)
    });
    if bad == 0 {
        return None;
    }
    codes.iter().position(|c| !(-1..=1).contains(c))
}
