//! Per-tensor decisions (what type, how) and the conversions themselves.

use bitnet_formats::arch;
use bitnet_formats::codec::{
    self, decode_ternary, encode_ternary, meta::ternary_format_from_metadata, tl_params,
    tq_scale_rel_error, weight_quant_absmean, TernaryFormat, TernaryScales, TernaryTensor,
};
use bitnet_formats::{GgufFile, TensorInfo, TensorType};

use super::{QuantizeOptions, Target};

/// How a tensor gets from the input to the output file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorAction {
    /// Bytes copied unchanged.
    Copy,
    /// Ternary → ternary through codes + scale (exact for the codes).
    Transcode,
    /// Float weights → ternary: exact when the weights already are `t · s`, otherwise
    /// BitNet's abs-mean `weight_quant`.
    Ternarise,
    /// Decoded to f32 and written as a float/dense type.
    Requantize,
}

/// The projection weights BitNet stores as ternary (the `Ternary` rows of the architecture
/// table).
pub fn is_ternary_weight_name(name: &str) -> bool {
    arch::is_ternary_projection(name)
}

pub(crate) struct Plan {
    pub to: TensorType,
    pub action: TensorAction,
    /// Layout of the input payload when it is ternary.
    pub from_format: Option<TernaryFormat>,
    /// Layout of the output payload when it is ternary.
    pub format: Option<TernaryFormat>,
}

fn shape(info: &TensorInfo) -> (usize, usize) {
    (info.rows() as usize, info.cols() as usize)
}

fn default_dense(target: Target, input: TensorType) -> TensorType {
    match target {
        Target::F32 => TensorType::F32,
        Target::F16 => TensorType::F16,
        // Like llama-quantize for I2_S: F32 embeddings become F16; anything smaller is kept.
        _ if input == TensorType::F32 => TensorType::F16,
        _ => input,
    }
}

pub(crate) fn plan(
    file: &GgufFile,
    info: &TensorInfo,
    opts: &QuantizeOptions,
) -> Result<Plan, String> {
    let (rows, cols) = shape(info);
    // A Q2_0 payload without code 11 is ternary (64-element scales).
    let ternary_q2 =
        info.ty == TensorType::Q2_0 && codec::q2::q2_0_is_ternary(file.tensor_data(info));
    let from_format = if info.ty.is_ternary() || ternary_q2 {
        Some(
            ternary_format_from_metadata(file.metadata(), &info.name, info.ty, rows, cols)
                .map_err(|e| e.to_string())?,
        )
    } else {
        None
    };
    let ternary_weight = info.ty.is_ternary()
        || ternary_q2
        || (info.ne.len() == 2 && is_ternary_weight_name(&info.name));
    if ternary_weight {
        let to = opts.target.tensor_type();
        let format = match opts.target {
            Target::I2s(layout) => Some(TernaryFormat::I2s(layout)),
            Target::Tl1 => Some(TernaryFormat::Tl1(
                tl_params::tl1_params_for(rows, cols).map_err(|e| e.to_string())?,
            )),
            Target::Tl2 => Some(TernaryFormat::Tl2(
                tl_params::tl2_params_for(rows, cols).map_err(|e| e.to_string())?,
            )),
            Target::Tq1_0 => Some(TernaryFormat::Tq1_0),
            Target::Tq2_0 => Some(TernaryFormat::Tq2_0),
            // Float weights go through ggml's reference quantizer, as llama-quantize does.
            Target::Q2_0 => from_format.map(|_| TernaryFormat::Q2_0),
            Target::F16 | Target::F32 => None,
        };
        let action = if format.is_some() && format == from_format {
            TensorAction::Copy
        } else if format.is_some() {
            if from_format.is_some() {
                TensorAction::Transcode
            } else {
                TensorAction::Ternarise
            }
        } else if info.ty == to {
            TensorAction::Copy
        } else {
            TensorAction::Requantize
        };
        if action != TensorAction::Copy
            && from_format.is_none()
            && !codec::traits(info.ty).can_dequantize()
        {
            return Err(format!("cannot decode {} weights", info.ty));
        }
        return Ok(Plan {
            to,
            action,
            from_format,
            format,
        });
    }
    let requested = if arch::TOKEN_EMBD.is_global_name(&info.name) {
        Some(
            opts.embed_type
                .unwrap_or(default_dense(opts.target, info.ty)),
        )
    } else if arch::OUTPUT.is_global_name(&info.name) {
        Some(
            opts.output_type
                .unwrap_or(default_dense(opts.target, info.ty)),
        )
    } else {
        None
    };
    match requested {
        Some(to) if to != info.ty => {
            if codec::row_bytes(to, cols).is_none() {
                return Err(format!(
                    "{cols} columns are not a whole number of {to} blocks; choose another type"
                ));
            }
            if codec::row_bytes(info.ty, cols).is_none() || !codec::traits(info.ty).can_dequantize()
            {
                return Err(format!(
                    "cannot decode {} to re-quantise it as {to}",
                    info.ty
                ));
            }
            Ok(Plan {
                to,
                action: TensorAction::Requantize,
                from_format,
                format: None,
            })
        }
        _ => Ok(Plan {
            to: info.ty,
            action: TensorAction::Copy,
            from_format,
            format: None,
        }),
    }
}

/// Codes and scale of float weights: exactly `sign(x)` and `max|x|` when every non-zero
/// magnitude equals that maximum (converter output), else the abs-mean rule.
pub(crate) fn ternarise(rows: usize, cols: usize, x: &[f32]) -> TernaryTensor {
    let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let exact = max > 0.0 && x.iter().all(|v| *v == 0.0 || v.abs() == max);
    let (codes, scale) = if exact {
        (
            x.iter()
                .map(|&v| {
                    if v == 0.0 {
                        0
                    } else if v > 0.0 {
                        1
                    } else {
                        -1
                    }
                })
                .collect(),
            max,
        )
    } else {
        weight_quant_absmean(x)
    };
    TernaryTensor {
        rows,
        cols,
        codes,
        scales: TernaryScales::PerTensor(scale),
    }
}

/// Produces the output payload and the relative f16 scale error it introduced (TQ outputs).
pub(crate) fn convert(
    file: &GgufFile,
    info: &TensorInfo,
    plan: &Plan,
) -> Result<(Vec<u8>, f32), String> {
    let data = file.tensor_data(info);
    let (rows, cols) = shape(info);
    let err = |e: codec::CodecError| e.to_string();
    match plan.action {
        TensorAction::Copy => Ok((data.to_vec(), 0.0)),
        TensorAction::Transcode | TensorAction::Ternarise => {
            let t = match &plan.from_format {
                Some(f) => decode_ternary(f, data, rows, cols).map_err(err)?,
                None => {
                    let mut x = vec![0f32; rows * cols];
                    codec::dequantize(info.ty, data, &info.ne, &mut x).map_err(err)?;
                    ternarise(rows, cols, &x)
                }
            };
            let fmt = plan
                .format
                .as_ref()
                .expect("ternary plan has an output format");
            let rel = match fmt {
                TernaryFormat::Tq1_0 | TernaryFormat::Tq2_0 | TernaryFormat::Q2_0 => {
                    tq_scale_rel_error(&t)
                }
                _ => 0.0,
            };
            Ok((encode_ternary(fmt, &t).map_err(err)?, rel))
        }
        TensorAction::Requantize => {
            if let Some(f) = &plan.from_format {
                let t = decode_ternary(f, data, rows, cols).map_err(err)?;
                return Ok((
                    codec::quantize(plan.to, &t.dequantize(), &info.ne).map_err(err)?,
                    0.0,
                ));
            }
            // Row by row so that a large embedding matrix never exists as f32 all at once.
            let in_row =
                codec::row_bytes(info.ty, cols).ok_or("input rows are not whole blocks")?;
            let out_row =
                codec::row_bytes(plan.to, cols).ok_or("output rows are not whole blocks")?;
            let quantize_row = codec::traits(plan.to)
                .quantize_row
                .ok_or(format!("cannot write {}", plan.to))?;
            let mut out = vec![0u8; out_row * rows];
            let mut row = vec![0f32; cols];
            for (src, dst) in data.chunks_exact(in_row).zip(out.chunks_exact_mut(out_row)) {
                codec::dequantize_row(info.ty, src, &mut row).map_err(err)?;
                quantize_row(&row, dst);
            }
            Ok((out, 0.0))
        }
    }
}
