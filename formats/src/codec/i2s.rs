//! I2_S: 2-bit ternary codes (`code = t + 1`, MSB-first within a byte) plus a 32-byte tail
//! holding the per-tensor f32 scale (docs/formats/i2s.md, 'Payload').

use super::{CodecError, I2sLayout, TernaryScales, TernaryTensor};

/// Bytes after the packed codes: the f32 scale, then 28 bytes the Python converter zeroes.
pub const TAIL_BYTES: usize = 32;

/// Elements per packing block of a blocked layout (`None` for the row-interleaved layout).
pub fn block_len(layout: I2sLayout) -> Option<usize> {
    match layout {
        I2sLayout::X86 => Some(128),
        I2sLayout::Arm => Some(64),
        I2sLayout::RowInterleaved => None,
    }
}

/// Checks that a `rows × cols` tensor can be stored losslessly in `layout`.
pub fn check_shape(layout: I2sLayout, rows: usize, cols: usize) -> Result<usize, CodecError> {
    let n = rows
        .checked_mul(cols)
        .ok_or_else(|| CodecError::shape(format!("{rows} x {cols} overflows")))?;
    match block_len(layout) {
        // The producers drop (C) or truncate (Python) a partial last block, so only whole
        // blocks round-trip.
        Some(b) if n % b != 0 => Err(CodecError::shape(format!(
            "I2_S {} layout needs rows*cols to be a multiple of {b}, got {rows} x {cols}",
            layout.name()
        ))),
        None if !rows.is_multiple_of(4) => Err(CodecError::shape(format!(
            "I2_S row-interleaved layout needs rows % 4 == 0, got {rows}"
        ))),
        _ => Ok(n),
    }
}

/// (byte index, bit shift) of flat element `i` = `m * cols + k`.
#[inline]
fn position(layout: I2sLayout, i: usize, cols: usize) -> (usize, u32) {
    match layout {
        I2sLayout::X86 => {
            let (blk, j) = (i / 128, i % 128);
            (blk * 32 + j % 32, 6 - 2 * (j / 32) as u32)
        }
        I2sLayout::Arm => {
            let (blk, j) = (i / 64, i % 64);
            (blk * 16 + j % 16, 6 - 2 * (j / 16) as u32)
        }
        I2sLayout::RowInterleaved => {
            let (m, k) = (i / cols, i % cols);
            ((m / 4) * cols + k, 6 - 2 * (m % 4) as u32)
        }
    }
}

/// Packs codes in {-1, 0, 1} into `rows * cols / 4` bytes (no tail).
pub fn pack_codes(
    layout: I2sLayout,
    codes: &[i8],
    rows: usize,
    cols: usize,
) -> Result<Vec<u8>, CodecError> {
    let n = check_shape(layout, rows, cols)?;
    if codes.len() != n {
        return Err(CodecError::shape(format!(
            "{} codes for {rows} x {cols}",
            codes.len()
        )));
    }
    let mut out = vec![0u8; n / 4];
    for (i, &t) in codes.iter().enumerate() {
        if !(-1..=1).contains(&t) {
            return Err(CodecError::InvalidCode {
                index: i,
                code: t as i32,
            });
        }
        let (byte, shift) = position(layout, i, cols);
        out[byte] |= ((t + 1) as u8) << shift;
    }
    Ok(out)
}

/// Unpacks `rows * cols / 4` bytes into codes; code 3 (never produced) is an error.
pub fn unpack_codes(
    layout: I2sLayout,
    packed: &[u8],
    rows: usize,
    cols: usize,
) -> Result<Vec<i8>, CodecError> {
    let n = check_shape(layout, rows, cols)?;
    if packed.len() < n / 4 {
        return Err(CodecError::Size {
            what: "I2_S packed codes".into(),
            expected: n / 4,
            got: packed.len(),
        });
    }
    let mut codes = Vec::with_capacity(n);
    for i in 0..n {
        let (byte, shift) = position(layout, i, cols);
        let c = (packed[byte] >> shift) & 3;
        if c == 3 {
            return Err(CodecError::InvalidCode { index: i, code: 3 });
        }
        codes.push(c as i8 - 1);
    }
    Ok(codes)
}

/// Full payload: packed codes, f32 scale, 28 zero bytes.
pub fn encode(layout: I2sLayout, t: &TernaryTensor) -> Result<Vec<u8>, CodecError> {
    let scale = t.per_tensor_scale()?;
    let mut out = pack_codes(layout, &t.codes, t.rows, t.cols)?;
    out.extend_from_slice(&scale.to_le_bytes());
    out.resize(out.len() + TAIL_BYTES - 4, 0);
    Ok(out)
}

/// Decodes a full payload (`rows * cols / 4 + 32` bytes). Tail bytes 4..31 are ignored:
/// llama-quantize leaves garbage there.
pub fn decode(
    layout: I2sLayout,
    bytes: &[u8],
    rows: usize,
    cols: usize,
) -> Result<TernaryTensor, CodecError> {
    let n = check_shape(layout, rows, cols)?;
    let expected = n / 4 + TAIL_BYTES;
    if bytes.len() != expected {
        return Err(CodecError::Size {
            what: "I2_S".into(),
            expected,
            got: bytes.len(),
        });
    }
    let codes = unpack_codes(layout, &bytes[..n / 4], rows, cols)?;
    let scale = f32::from_le_bytes(bytes[n / 4..n / 4 + 4].try_into().unwrap());
    Ok(TernaryTensor {
        rows,
        cols,
        codes,
        scales: TernaryScales::PerTensor(scale),
    })
}

/// The rule of bitnet.cpp's C `quantize_i2_s` (what `llama-quantize … I2_S` does):
/// `scale = max|x|` (in f64, stored f32), code = sign of `x` with `|x| < 1e-6` mapped to 0.
/// Raw (non-ternary) input collapses to ±scale; run [`super::weight_quant_absmean`] first.
pub fn quantize_i2s_c_rule(x: &[f32]) -> (Vec<i8>, f32) {
    let max = x.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
    let codes = x
        .iter()
        .map(|&v| {
            if (v.abs() as f64) < 1e-6 {
                0
            } else if v > 0.0 {
                1
            } else {
                -1
            }
        })
        .collect();
    (codes, max as f32)
}

/// The rule of BitNet's Python `quantize_to_i2_s` (converter `--outtype i2_s`): without an
/// override the scale is the magnitude of the first element with `|x| > 1e-6` (1e-5 if none)
/// and `t = clip(round_half_even(x · (1/scale)), −1, 1)` in f32; with an override (offline
/// packed checkpoints) the input must already be ternary values and the scale is the override.
pub fn quantize_i2s_python_rule(x: &[f32], override_scale: Option<f32>) -> (Vec<i8>, f32) {
    let to_code = |t: f32| {
        if t > 0.5 {
            1
        } else if t < -0.5 {
            -1
        } else {
            0
        }
    };
    match override_scale {
        Some(s) => (
            x.iter()
                .map(|&v| to_code(v.round_ties_even().clamp(-1.0, 1.0)))
                .collect(),
            s,
        ),
        None => {
            let scale = x
                .iter()
                .find(|v| v.abs() > 1e-6)
                .map(|v| v.abs())
                .unwrap_or(1e-5);
            let inv = 1.0f32 / scale;
            let codes = x
                .iter()
                .map(|&v| to_code((v * inv).round_ties_even().clamp(-1.0, 1.0)))
                .collect();
            (codes, scale)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example_first_byte() {
        // docs/formats/i2s.md, 'Packing example':
        // elements 0, 32, 64, 96 = -1, -1, 0, 0 -> byte 0x05.
        let mut codes = vec![0i8; 128];
        codes[0] = -1;
        codes[32] = -1;
        let p = pack_codes(I2sLayout::X86, &codes, 1, 128).unwrap();
        assert_eq!(p[0], 0x05);
        // ARM: elements 0, 16, 32, 48 = 0, -1, 0, +1 -> 0x46.
        let mut codes = vec![0i8; 64];
        codes[16] = -1;
        codes[48] = 1;
        let p = pack_codes(I2sLayout::Arm, &codes, 1, 64).unwrap();
        assert_eq!(p[0], 0x46);
    }

    #[test]
    fn code_three_is_an_error() {
        let mut bytes = vec![0x55u8; 32 + 32];
        bytes[5] = 0xff;
        assert!(matches!(
            decode(I2sLayout::X86, &bytes, 1, 128),
            Err(CodecError::InvalidCode { code: 3, .. })
        ));
    }

    #[test]
    fn partial_blocks_are_rejected() {
        assert!(check_shape(I2sLayout::X86, 1, 96).is_err());
        assert!(check_shape(I2sLayout::Arm, 1, 64).is_ok());
        assert!(check_shape(I2sLayout::RowInterleaved, 3, 8).is_err());
    }
}
