//! Metadata keys that make our ternary files self-describing (docs/formats/tl.md,
//! docs/formats/i2s.md).
//!
//! Neither I2_S nor TL files say how they were packed: the I2_S layout depends on the build
//! that wrote the file, TL tile parameters on the `kernel_config.ini` it was made with. When we
//! write such a file we record it; when we read a foreign one we fall back to what the
//! published tools produce (x86 layout, shipped TL presets) and fail clearly otherwise.

use super::tl_params::{check_tl1, check_tl2, tl1_preset, tl2_preset};
use super::{CodecError, I2sLayout, TernaryFormat, TlParams};
use crate::gguf::Metadata;
use crate::types::TensorType;

/// `"x86"`, `"arm"` or `"row-interleaved"`; absent means x86 (every published file).
pub const I2S_LAYOUT_KEY: &str = "bitnet.i2s.layout";

/// Prefix of the per-tensor TL keys: `bitnet.tl.<tensor name>.{bm,bk,bmm}` (u32), named after
/// the `kernel_config.ini` keys: `bm` = BM (rows per tile), `bk` = BK (columns per tile),
/// `bmm` = bm (rows per SIMD sub-tile).
pub const TL_KEY_PREFIX: &str = "bitnet.tl.";

pub fn tl_key(tensor: &str, field: &str) -> String {
    format!("{TL_KEY_PREFIX}{tensor}.{field}")
}

/// Records the I2_S layout of the file's I2_S tensors.
pub fn set_i2s_layout(meta: &mut Metadata, layout: I2sLayout) {
    meta.set(I2S_LAYOUT_KEY, layout.name());
}

/// The I2_S layout a file declares (x86 when it declares none).
pub fn i2s_layout_from_metadata(meta: &Metadata) -> Result<I2sLayout, CodecError> {
    match meta.get(I2S_LAYOUT_KEY) {
        None => Ok(I2sLayout::X86),
        Some(v) => v.as_str().and_then(I2sLayout::from_name).ok_or_else(|| {
            CodecError::shape(format!(
                "metadata {I2S_LAYOUT_KEY} = {v:?} is not one of \"x86\", \"arm\", \"row-interleaved\""
            ))
        }),
    }
}

/// Records a TL tensor's tile parameters.
pub fn tl_params_to_metadata(meta: &mut Metadata, tensor: &str, p: &TlParams) {
    meta.set(tl_key(tensor, "bm"), p.bm_tile as u32);
    meta.set(tl_key(tensor, "bk"), p.bk_tile as u32);
    meta.set(tl_key(tensor, "bmm"), p.bm as u32);
}

/// Tile parameters of a TL1/TL2 tensor: from our `bitnet.tl.*` keys when present, otherwise
/// the shipped bitnet.cpp preset for its shape, otherwise an error naming the tensor.
pub fn tl_params_from_metadata(
    meta: &Metadata,
    tensor: &str,
    ty: TensorType,
    rows: usize,
    cols: usize,
) -> Result<TlParams, CodecError> {
    let field = |f: &str| {
        meta.get(&tl_key(tensor, f))
            .and_then(|v| v.as_u64())
            .map(|v| v as usize)
    };
    let keys = [field("bm"), field("bk"), field("bmm")];
    let p = match keys {
        [Some(bm_tile), Some(bk_tile), Some(bm)] => TlParams {
            bm_tile,
            bk_tile,
            bm,
        },
        [None, None, None] => {
            let preset = match ty {
                TensorType::TL1 => tl1_preset(rows, cols),
                TensorType::TL2 => tl2_preset(rows, cols),
                _ => {
                    return Err(CodecError::unsupported(ty, "TL tile parameters").for_tensor(tensor))
                }
            };
            return preset.ok_or_else(|| {
                CodecError::TlParams(format!(
                    "tensor {tensor} ({ty}, {rows} x {cols}) has no {TL_KEY_PREFIX}{tensor}.* keys and \
                     its shape matches no shipped bitnet.cpp preset; the tile parameters it was \
                     packed with are unknown"
                ))
            });
        }
        _ => {
            return Err(CodecError::TlParams(format!(
                "tensor {tensor}: incomplete {TL_KEY_PREFIX}{tensor}.{{bm,bk,bmm}} keys"
            )))
        }
    };
    match ty {
        TensorType::TL1 => check_tl1(&p, rows, cols),
        _ => check_tl2(&p, rows, cols),
    }
    .map_err(|e| CodecError::TlParams(format!("tensor {tensor}: {e}")))?;
    Ok(p)
}

/// The full ternary format of a tensor in a file, from its type and the file's metadata.
pub fn ternary_format_from_metadata(
    meta: &Metadata,
    tensor: &str,
    ty: TensorType,
    rows: usize,
    cols: usize,
) -> Result<TernaryFormat, CodecError> {
    Ok(match ty {
        TensorType::I2_S => TernaryFormat::I2s(i2s_layout_from_metadata(meta)?),
        TensorType::TQ1_0 => TernaryFormat::Tq1_0,
        TensorType::TQ2_0 => TernaryFormat::Tq2_0,
        TensorType::Q2_0 => TernaryFormat::Q2_0,
        TensorType::TL1 => {
            TernaryFormat::Tl1(tl_params_from_metadata(meta, tensor, ty, rows, cols)?)
        }
        TensorType::TL2 => {
            TernaryFormat::Tl2(tl_params_from_metadata(meta, tensor, ty, rows, cols)?)
        }
        _ => return Err(CodecError::unsupported(ty, "ternary decoding").for_tensor(tensor)),
    })
}

/// Records whatever a reader needs to decode `fmt` for `tensor` (layout or tile parameters).
pub fn record_format(meta: &mut Metadata, tensor: &str, fmt: &TernaryFormat) {
    match fmt {
        TernaryFormat::I2s(layout) => set_i2s_layout(meta, *layout),
        TernaryFormat::Tl1(p) | TernaryFormat::Tl2(p) => tl_params_to_metadata(meta, tensor, p),
        TernaryFormat::Tq1_0 | TernaryFormat::Tq2_0 | TernaryFormat::Q2_0 => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tl_params_round_trip_and_fall_back_to_presets() {
        let mut meta = Metadata::new();
        let p = TlParams {
            bm_tile: 64,
            bk_tile: 128,
            bm: 32,
        };
        tl_params_to_metadata(&mut meta, "blk.0.attn_q.weight", &p);
        assert_eq!(
            tl_params_from_metadata(&meta, "blk.0.attn_q.weight", TensorType::TL1, 64, 256)
                .unwrap(),
            p
        );
        // No keys: the shipped preset of the shape.
        let preset = tl_params_from_metadata(&meta, "x", TensorType::TL1, 1536, 1536).unwrap();
        assert_eq!(
            preset,
            TlParams {
                bm_tile: 128,
                bk_tile: 64,
                bm: 64
            }
        );
        // No keys and no preset: a clear error naming the tensor.
        let e = tl_params_from_metadata(&meta, "blk.3.ffn_up.weight", TensorType::TL2, 64, 256)
            .unwrap_err();
        assert!(e.to_string().contains("blk.3.ffn_up.weight"), "{e}");
        // Keys that do not fit the shape are rejected.
        assert!(
            tl_params_from_metadata(&meta, "blk.0.attn_q.weight", TensorType::TL1, 96, 256)
                .is_err()
        );
    }

    #[test]
    fn i2s_layout_key() {
        let mut meta = Metadata::new();
        assert_eq!(i2s_layout_from_metadata(&meta).unwrap(), I2sLayout::X86);
        set_i2s_layout(&mut meta, I2sLayout::Arm);
        assert_eq!(i2s_layout_from_metadata(&meta).unwrap(), I2sLayout::Arm);
        meta.set(I2S_LAYOUT_KEY, "sparc");
        assert!(i2s_layout_from_metadata(&meta).is_err());
    }
}
