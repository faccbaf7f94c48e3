//! The codec table: one row per tensor type with the functions that convert it, in the spirit
//! of ggml's `type_traits`. Adding a type is adding a row here.

use super::{float, kquants, q2, q4_q5_q8, tl_params, tq, CodecError, I2sLayout, TernaryFormat};
use crate::types::TensorType;

/// Decodes whole blocks: `bytes.len() == n_blocks * block_bytes`, `out.len() == n_blocks * block_len`.
pub type DequantizeRowFn = fn(bytes: &[u8], out: &mut [f32]);
/// Encodes whole blocks, the inverse shape of [`DequantizeRowFn`].
pub type QuantizeRowFn = fn(src: &[f32], out: &mut [u8]);
/// The default ternary layout for a `rows × cols` matrix of this type.
pub type TernaryFormatFn = fn(rows: usize, cols: usize) -> Result<TernaryFormat, CodecError>;

/// Codec functions of one tensor type.
#[derive(Clone, Copy, Debug)]
pub struct CodecRow {
    pub ty: TensorType,
    /// Block-wise dequantizer (block types only).
    pub dequantize_row: Option<DequantizeRowFn>,
    /// Block-wise reference quantizer (block types that we can write from f32).
    pub quantize_row: Option<QuantizeRowFn>,
    /// For ternary types: the layout used when the caller does not name one.
    pub ternary_format: Option<TernaryFormatFn>,
}

impl CodecRow {
    const fn none(ty: TensorType) -> CodecRow {
        CodecRow {
            ty,
            dequantize_row: None,
            quantize_row: None,
            ternary_format: None,
        }
    }

    const fn blocks(ty: TensorType, de: DequantizeRowFn, q: Option<QuantizeRowFn>) -> CodecRow {
        CodecRow {
            ty,
            dequantize_row: Some(de),
            quantize_row: q,
            ternary_format: None,
        }
    }

    const fn ternary(
        ty: TensorType,
        de: Option<DequantizeRowFn>,
        q: Option<QuantizeRowFn>,
        f: TernaryFormatFn,
    ) -> CodecRow {
        CodecRow {
            ty,
            dequantize_row: de,
            quantize_row: q,
            ternary_format: Some(f),
        }
    }

    pub fn can_dequantize(&self) -> bool {
        self.dequantize_row.is_some() || self.ternary_format.is_some()
    }

    pub fn can_quantize(&self) -> bool {
        self.quantize_row.is_some() || self.ternary_format.is_some()
    }
}

fn i2s_default(_: usize, _: usize) -> Result<TernaryFormat, CodecError> {
    Ok(TernaryFormat::I2s(I2sLayout::X86))
}
fn tq1_format(_: usize, _: usize) -> Result<TernaryFormat, CodecError> {
    Ok(TernaryFormat::Tq1_0)
}
fn tq2_format(_: usize, _: usize) -> Result<TernaryFormat, CodecError> {
    Ok(TernaryFormat::Tq2_0)
}
fn tl1_default(rows: usize, cols: usize) -> Result<TernaryFormat, CodecError> {
    tl_params::tl1_params_for(rows, cols).map(TernaryFormat::Tl1)
}
fn tl2_default(rows: usize, cols: usize) -> Result<TernaryFormat, CodecError> {
    tl_params::tl2_params_for(rows, cols).map(TernaryFormat::Tl2)
}

use TensorType as T;

static ROWS: &[CodecRow] = &[
    CodecRow::blocks(T::F32, float::dequantize_f32, Some(float::quantize_f32)),
    CodecRow::blocks(T::F16, float::dequantize_f16, Some(float::quantize_f16)),
    CodecRow::blocks(T::BF16, float::dequantize_bf16, Some(float::quantize_bf16)),
    CodecRow::blocks(
        T::Q4_0,
        q4_q5_q8::dequantize_q4_0,
        Some(q4_q5_q8::quantize_q4_0),
    ),
    CodecRow::blocks(
        T::Q4_1,
        q4_q5_q8::dequantize_q4_1,
        Some(q4_q5_q8::quantize_q4_1),
    ),
    CodecRow::blocks(
        T::Q5_0,
        q4_q5_q8::dequantize_q5_0,
        Some(q4_q5_q8::quantize_q5_0),
    ),
    CodecRow::blocks(
        T::Q5_1,
        q4_q5_q8::dequantize_q5_1,
        Some(q4_q5_q8::quantize_q5_1),
    ),
    CodecRow::blocks(
        T::Q8_0,
        q4_q5_q8::dequantize_q8_0,
        Some(q4_q5_q8::quantize_q8_0),
    ),
    CodecRow::blocks(T::Q2_K, kquants::dequantize_q2_k, None),
    CodecRow::blocks(T::Q3_K, kquants::dequantize_q3_k, None),
    CodecRow::blocks(T::Q4_K, kquants::dequantize_q4_k, None),
    CodecRow::blocks(T::Q5_K, kquants::dequantize_q5_k, None),
    CodecRow::blocks(
        T::Q6_K,
        kquants::dequantize_q6_k,
        Some(kquants::quantize_q6_k),
    ),
    CodecRow::blocks(
        T::Q8_K,
        kquants::dequantize_q8_k,
        Some(kquants::quantize_q8_k),
    ),
    CodecRow::blocks(T::Q2_0, q2::dequantize_q2_0, Some(q2::quantize_q2_0)),
    CodecRow::blocks(T::Q1_0, q2::dequantize_q1_0, Some(q2::quantize_q1_0)),
    CodecRow::ternary(
        T::TQ1_0,
        Some(tq::dequantize_tq1_0),
        Some(tq::quantize_tq1_0),
        tq1_format,
    ),
    CodecRow::ternary(
        T::TQ2_0,
        Some(tq::dequantize_tq2_0),
        Some(tq::quantize_tq2_0),
        tq2_format,
    ),
    CodecRow::ternary(T::I2_S, None, None, i2s_default),
    CodecRow::ternary(T::TL1, None, None, tl1_default),
    CodecRow::ternary(T::TL2, None, None, tl2_default),
];

/// The codec row of a type; types without codecs get a row of `None`s.
pub fn traits(ty: TensorType) -> &'static CodecRow {
    static EMPTY: std::sync::OnceLock<Vec<CodecRow>> = std::sync::OnceLock::new();
    if let Some(row) = ROWS.iter().find(|r| r.ty == ty) {
        return row;
    }
    let empty = EMPTY.get_or_init(|| TensorType::ALL.iter().map(|&t| CodecRow::none(t)).collect());
    empty
        .iter()
        .find(|r| r.ty == ty)
        .expect("every type has an empty row")
}

/// Every row with at least one codec function.
pub fn rows() -> &'static [CodecRow] {
    ROWS
}
