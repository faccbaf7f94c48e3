//! Producing the bytes of one output tensor from the checkpoint. Each function handles one
//! tensor, so the writer can call them lazily and peak memory stays near one tensor.

use bitnet_formats::codec::{
    self, I2sLayout, TernaryFormat, TernaryScales, TernaryTensor, TlParams,
};
use bitnet_formats::TensorType;
use half::f16;
use rayon::prelude::*;

use super::arch::{PlannedTensor, TensorRole};
use super::error::ConvertError;
use super::hf_config::HfConfig;
use super::safetensors_input::{Checkpoint, Dtype, TensorView};
use super::ternarise::{
    absmean_ternarise, packed_scale, permute_rows_llama, unpack_packed, Ternary,
};

/// The storage of the ternary projections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightType {
    I2s(I2sLayout),
    Tl1,
    Tl2,
    Tq1_0,
    Tq2_0,
    F16,
    F32,
}

impl WeightType {
    pub const NAMES: &'static [&'static str] = &[
        "i2_s", "i2_s-arm", "tl1", "tl2", "tq1_0", "tq2_0", "f16", "f32",
    ];

    pub fn parse(s: &str) -> Option<WeightType> {
        Some(match s.to_ascii_lowercase().as_str() {
            "i2_s" | "i2s" | "i2_s-x86" => WeightType::I2s(I2sLayout::X86),
            "i2_s-arm" | "i2s-arm" => WeightType::I2s(I2sLayout::Arm),
            "tl1" => WeightType::Tl1,
            "tl2" => WeightType::Tl2,
            "tq1_0" => WeightType::Tq1_0,
            "tq2_0" => WeightType::Tq2_0,
            "f16" => WeightType::F16,
            "f32" => WeightType::F32,
            _ => return None,
        })
    }

    pub fn tensor_type(self) -> TensorType {
        match self {
            WeightType::I2s(_) => TensorType::I2_S,
            WeightType::Tl1 => TensorType::TL1,
            WeightType::Tl2 => TensorType::TL2,
            WeightType::Tq1_0 => TensorType::TQ1_0,
            WeightType::Tq2_0 => TensorType::TQ2_0,
            WeightType::F16 => TensorType::F16,
            WeightType::F32 => TensorType::F32,
        }
    }

    /// `general.file_type` (LLAMA_FTYPE) as the dialect of this output spells it.
    pub fn file_type(self) -> u32 {
        match self {
            WeightType::I2s(_) => 40,
            WeightType::Tl1 => 38,
            WeightType::Tl2 => 39,
            WeightType::Tq1_0 => 36,
            WeightType::Tq2_0 => 37,
            WeightType::F16 => 1,
            WeightType::F32 => 0,
        }
    }

    /// The packed layout and its parameters for a `rows × cols` matrix, or `None` for floats.
    pub fn ternary_format(
        self,
        rows: usize,
        cols: usize,
    ) -> Result<Option<TernaryFormat>, ConvertError> {
        Ok(Some(match self {
            WeightType::I2s(l) => TernaryFormat::I2s(l),
            WeightType::Tq1_0 => TernaryFormat::Tq1_0,
            WeightType::Tq2_0 => TernaryFormat::Tq2_0,
            WeightType::Tl1 => TernaryFormat::Tl1(tl_params(TensorType::TL1, rows, cols)?),
            WeightType::Tl2 => TernaryFormat::Tl2(tl_params(TensorType::TL2, rows, cols)?),
            WeightType::F16 | WeightType::F32 => return Ok(None),
        }))
    }
}

/// TL tile parameters for a shape: bitnet.cpp's shipped presets when the shape has one,
/// otherwise the codec's automatic choice.
pub fn tl_params(ty: TensorType, rows: usize, cols: usize) -> Result<TlParams, ConvertError> {
    let r = match ty {
        TensorType::TL1 => codec::tl_params::tl1_params_for(rows, cols),
        _ => codec::tl_params::tl2_params_for(rows, cols),
    };
    r.map_err(|e| ConvertError::Options(format!("{ty} cannot hold a {rows}x{cols} matrix: {e}")))
}

/// Ternary codes and scale of a projection, after unpacking / ternarising and (for `llama`)
/// the q/k row permutation.
pub fn load_ternary(
    t: &PlannedTensor,
    cfg: &HfConfig,
    ck: &Checkpoint,
) -> Result<Ternary, ConvertError> {
    let (rows, cols) = (t.rows(), t.cols());
    let view = ck.require(&t.hf_name)?;
    let mut tern = if t.packed {
        let codes = unpack_packed(&t.hf_name, view.data, rows / 4, cols)?;
        let scale_name = format!("{}_scale", t.hf_name);
        let ws = ck.require(&scale_name)?.to_f32()?[0];
        let scale = packed_scale(&scale_name, ws, cfg.weight_scale_rule)?;
        Ternary {
            rows,
            cols,
            codes,
            scale,
            negative_zeros: Vec::new(),
        }
    } else {
        let w = view.to_f32()?;
        absmean_ternarise(&w, rows, cols)
    };
    if let TensorRole::Ternary {
        permute_heads: Some(heads),
    } = t.role
    {
        tern.codes = permute_rows_llama(&tern.codes, rows, cols, heads);
        if !tern.negative_zeros.is_empty() {
            tern.negative_zeros = permute_rows_llama(&tern.negative_zeros, rows, cols, heads);
        }
    }
    Ok(tern)
}

/// Encodes a ternary projection in the requested output type.
pub fn ternary_payload(tern: Ternary, wt: WeightType, name: &str) -> Result<Vec<u8>, ConvertError> {
    let Ternary {
        rows,
        cols,
        codes,
        scale,
        negative_zeros,
    } = tern;
    match wt.ternary_format(rows, cols)? {
        Some(fmt) => {
            let err = |e: codec::CodecError| ConvertError::Codec(format!("tensor {name}: {e}"));
            if let Some(block) = flat_block_len(&fmt) {
                if (rows * cols) % block == 0 && rows * cols >= PARALLEL_MIN {
                    return encode_in_parallel(&fmt, block, &codes, scale).map_err(err);
                }
            }
            let t = TernaryTensor {
                rows,
                cols,
                codes,
                scales: TernaryScales::PerTensor(scale),
            };
            codec::encode_ternary(&fmt, &t).map_err(err)
        }
        None => {
            let mut values: Vec<f32> = codes.par_iter().map(|&c| c as f32 * scale).collect();
            // bitnet.cpp's converter stores `round(W·s)/s`, which is -0.0 for a negative latent
            // weight rounded to zero; keep those bits.
            for (v, _) in values.iter_mut().zip(&negative_zeros).filter(|(_, &nz)| nz) {
                *v = -0.0;
            }
            Ok(floats_to_bytes(&values, wt.tensor_type()))
        }
    }
}

/// Below this many elements a tensor is encoded on one thread.
const PARALLEL_MIN: usize = 1 << 20;

/// Formats whose packed stream is a sequence of independent blocks over the flattened tensor,
/// with the block length in elements (the I2_S tail and the TQ per-block scales do not depend
/// on neighbouring blocks), so that slices of whole blocks can be encoded separately.
fn flat_block_len(fmt: &TernaryFormat) -> Option<usize> {
    match fmt {
        TernaryFormat::I2s(I2sLayout::X86) => Some(128),
        TernaryFormat::I2s(I2sLayout::Arm) => Some(64),
        TernaryFormat::Tq1_0 | TernaryFormat::Tq2_0 => Some(codec::QK_K),
        _ => None,
    }
}

/// Encodes slices of whole blocks on all cores with the codec and joins them; for I2_S the
/// per-slice tails are dropped and one tail with the tensor scale is appended.
fn encode_in_parallel(
    fmt: &TernaryFormat,
    block: usize,
    codes: &[i8],
    scale: f32,
) -> Result<Vec<u8>, codec::CodecError> {
    let chunk = block * 4096;
    let parts: Vec<Vec<u8>> = codes
        .par_chunks(chunk)
        .map(|c| {
            let t = TernaryTensor {
                rows: 1,
                cols: c.len(),
                codes: c.to_vec(),
                scales: TernaryScales::PerTensor(scale),
            };
            let mut bytes = codec::encode_ternary(fmt, &t)?;
            if matches!(fmt, TernaryFormat::I2s(_)) {
                bytes.truncate(c.len() / 4);
            }
            Ok(bytes)
        })
        .collect::<Result<_, codec::CodecError>>()?;
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum::<usize>() + 32);
    for p in parts {
        out.extend_from_slice(&p);
    }
    if matches!(fmt, TernaryFormat::I2s(_)) {
        out.extend_from_slice(&scale.to_le_bytes());
        out.resize(out.len() + 28, 0);
    }
    Ok(out)
}

/// F32/F16 bytes of f32 values (round-to-nearest-even for f16).
fn floats_to_bytes(values: &[f32], ty: TensorType) -> Vec<u8> {
    match ty {
        TensorType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        TensorType::F16 => {
            let mut out = vec![0u8; values.len() * 2];
            out.par_chunks_mut(1 << 17)
                .zip(values.par_chunks(1 << 16))
                .for_each(|(o, v)| {
                    for (o, &v) in o.chunks_exact_mut(2).zip(v) {
                        o.copy_from_slice(&f16::from_f32(v).to_le_bytes());
                    }
                });
            out
        }
        _ => unreachable!("only F32/F16 ternary-scaled output"),
    }
}

/// A full-precision tensor (embedding, head, norm) stored as `ty`. F16/F32/BF16 are converted
/// chunk by chunk; block types go through the codec's reference quantizers.
pub fn float_payload(
    view: &TensorView,
    ty: TensorType,
    ne: &[u64],
) -> Result<Vec<u8>, ConvertError> {
    const CHUNK: usize = 1 << 16;
    let n = view.n_elements();
    let in_size = view.dtype.size();
    match ty {
        TensorType::BF16 if view.dtype == Dtype::BF16 => Ok(view.data.to_vec()),
        TensorType::F16 if view.dtype == Dtype::F16 => Ok(view.data.to_vec()),
        TensorType::F32 if view.dtype == Dtype::F32 => Ok(view.data.to_vec()),
        TensorType::F32 | TensorType::F16 | TensorType::BF16 => {
            let out_size = ty.block_bytes() as usize;
            let mut out = vec![0u8; n * out_size];
            let result: Result<(), ConvertError> = out
                .par_chunks_mut(CHUNK * out_size)
                .zip(view.data.par_chunks(CHUNK * in_size))
                .try_for_each(|(o, src)| {
                    let part = TensorView {
                        data: src,
                        shape: &[],
                        ..*view
                    };
                    let mut tmp = vec![0f32; src.len() / in_size];
                    part.to_f32_into(&mut tmp)?;
                    for (o, &v) in o.chunks_exact_mut(out_size).zip(&tmp) {
                        match ty {
                            TensorType::F32 => o.copy_from_slice(&v.to_le_bytes()),
                            TensorType::F16 => o.copy_from_slice(&f16::from_f32(v).to_le_bytes()),
                            _ => o.copy_from_slice(&half::bf16::from_f32(v).to_le_bytes()),
                        }
                    }
                    Ok(())
                });
            result?;
            Ok(out)
        }
        _ => {
            let values = view.to_f32()?;
            codec::quantize(ty, &values, ne)
                .map_err(|e| ConvertError::Codec(format!("tensor {}: {ty}: {e}", view.name)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_outputs_keep_negative_zeros() {
        let tern = absmean_ternarise(&[-0.4, 0.4, -3.0, 3.0], 1, 4);
        for wt in [WeightType::F32, WeightType::F16] {
            let bytes = ternary_payload(tern.clone(), wt, "w").unwrap();
            let signs: Vec<bool> = if wt == WeightType::F32 {
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()).is_sign_negative())
                    .collect()
            } else {
                bytes.chunks_exact(2).map(|c| c[1] & 0x80 != 0).collect()
            };
            assert_eq!(signs, vec![true, false, true, false], "{wt:?}");
        }
    }

    #[test]
    fn parallel_encoding_matches_the_codec_byte_for_byte() {
        let (rows, cols) = (1024, 2048 + 256);
        assert!(rows * cols >= PARALLEL_MIN);
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let codes: Vec<i8> = (0..rows * cols)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 3) as i8 - 1
            })
            .collect();
        for fmt in [
            TernaryFormat::I2s(I2sLayout::X86),
            TernaryFormat::I2s(I2sLayout::Arm),
            TernaryFormat::Tq1_0,
            TernaryFormat::Tq2_0,
        ] {
            let t = TernaryTensor {
                rows,
                cols,
                codes: codes.clone(),
                scales: TernaryScales::PerTensor(0.37),
            };
            let serial = codec::encode_ternary(&fmt, &t).unwrap();
            let parallel =
                encode_in_parallel(&fmt, flat_block_len(&fmt).unwrap(), &codes, 0.37).unwrap();
            assert!(serial == parallel, "{fmt:?}");
        }
    }
}
