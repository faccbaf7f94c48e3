//! TQ1_0 and TQ2_0, ggml's ternary block types (docs/formats/tq.md): 256 elements per block with
//! an f16 block scale `d = max|x|` and codes `lroundf(x / d) + 1`.

use half::f16;

use super::{CodecError, TernaryScales, TernaryTensor, QK_K};

pub const TQ1_0_BLOCK_BYTES: usize = 54;
pub const TQ2_0_BLOCK_BYTES: usize = 66;

const POW3: [u8; 6] = [1, 3, 9, 27, 81, 243];

/// ggml's `quantize_row_tq*_0_ref` code computation for one block: `d = max|x|` (f32),
/// `code = lroundf(x * (1/d)) + 1` (round half away from zero), all 1 when `d == 0`.
fn block_codes(x: &[f32]) -> ([u8; QK_K], f32) {
    let amax = x
        .iter()
        .fold(0f32, |m, &v| if m > v.abs() { m } else { v.abs() });
    let id = if amax != 0.0 { 1.0 / amax } else { 0.0 };
    let mut codes = [1u8; QK_K];
    for (c, &v) in codes.iter_mut().zip(x) {
        // `as i32` saturates and maps NaN to 0; the clamp keeps a code even for inputs the
        // C code would leave undefined.
        *c = (((v * id).round() as i32).clamp(-1, 1) + 1) as u8;
    }
    (codes, amax)
}

/// Packs one TQ2_0 block: element `e` goes to `qs[(e/128)*32 + e%32]` at bits `2*((e%128)/32)`
/// (LSB first), then the f16 scale.
pub fn pack_tq2_0_block(codes: &[u8; QK_K], d: f16, out: &mut [u8]) {
    for h in 0..2 {
        for m in 0..32 {
            let mut q = 0u8;
            for n in 0..4 {
                q |= (codes[h * 128 + n * 32 + m] & 3) << (2 * n);
            }
            out[h * 32 + m] = q;
        }
    }
    out[64..66].copy_from_slice(&d.to_le_bytes());
}

/// Unpacks one TQ2_0 block into raw 2-bit codes (0..=3) and the f16 scale.
pub fn unpack_tq2_0_block(block: &[u8]) -> ([u8; QK_K], f16) {
    let mut codes = [0u8; QK_K];
    for h in 0..2 {
        for n in 0..4 {
            for m in 0..32 {
                codes[h * 128 + n * 32 + m] = (block[h * 32 + m] >> (2 * n)) & 3;
            }
        }
    }
    (codes, f16::from_le_bytes([block[64], block[65]]))
}

fn pack_trits(digits: impl Iterator<Item = u8>) -> u8 {
    let q = digits.fold(0u16, |q, d| q * 3 + d as u16);
    // Ceiling division so that the multiply-and-shift decoder recovers the digits.
    (q * 256).div_ceil(243) as u8
}

/// Packs one TQ1_0 block: five base-3 digits per byte in three groups
/// (docs/formats/tq.md, 'TQ1_0 digits').
pub fn pack_tq1_0_block(codes: &[u8; QK_K], d: f16, out: &mut [u8]) {
    for m in 0..32 {
        out[m] = pack_trits((0..5).map(|n| codes[m + n * 32]));
    }
    for m in 0..16 {
        out[32 + m] = pack_trits((0..5).map(|n| codes[160 + m + n * 16]));
    }
    for j in 0..4 {
        // Four digits shifted up one trit: the fifth (least significant) digit is 0.
        out[48 + j] = pack_trits((0..4).map(|m| codes[240 + j + m * 4]).chain([0]));
    }
    out[52..54].copy_from_slice(&d.to_le_bytes());
}

#[inline]
fn trit(byte: u8, i: usize) -> u8 {
    let q = byte.wrapping_mul(POW3[i]);
    ((q as u16 * 3) >> 8) as u8
}

/// Unpacks one TQ1_0 block into codes (0..=2) and the f16 scale.
pub fn unpack_tq1_0_block(block: &[u8]) -> ([u8; QK_K], f16) {
    let mut codes = [0u8; QK_K];
    for n in 0..5 {
        for m in 0..32 {
            codes[m + n * 32] = trit(block[m], n);
        }
        for m in 0..16 {
            codes[160 + m + n * 16] = trit(block[32 + m], n);
        }
    }
    for n in 0..4 {
        for j in 0..4 {
            codes[240 + j + n * 4] = trit(block[48 + j], n);
        }
    }
    (codes, f16::from_le_bytes([block[52], block[53]]))
}

/// ggml `quantize_row_tq1_0_ref` over whole blocks.
pub fn quantize_tq1_0(src: &[f32], out: &mut [u8]) {
    for (x, o) in src
        .chunks_exact(QK_K)
        .zip(out.chunks_exact_mut(TQ1_0_BLOCK_BYTES))
    {
        let (codes, d) = block_codes(x);
        pack_tq1_0_block(&codes, f16::from_f32(d), o);
    }
}

/// ggml `quantize_row_tq2_0_ref` over whole blocks.
pub fn quantize_tq2_0(src: &[f32], out: &mut [u8]) {
    for (x, o) in src
        .chunks_exact(QK_K)
        .zip(out.chunks_exact_mut(TQ2_0_BLOCK_BYTES))
    {
        let (codes, d) = block_codes(x);
        pack_tq2_0_block(&codes, f16::from_f32(d), o);
    }
}

/// ggml `dequantize_row_tq1_0`: `(code − 1) · d`.
pub fn dequantize_tq1_0(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in bytes
        .chunks_exact(TQ1_0_BLOCK_BYTES)
        .zip(out.chunks_exact_mut(QK_K))
    {
        let (codes, d) = unpack_tq1_0_block(b);
        let d = d.to_f32();
        for (o, &c) in y.iter_mut().zip(codes.iter()) {
            *o = (c as i32 - 1) as f32 * d;
        }
    }
}

/// ggml `dequantize_row_tq2_0`: `(code − 1) · d` (a stray code 3 gives `2d`, as in ggml).
pub fn dequantize_tq2_0(bytes: &[u8], out: &mut [f32]) {
    for (b, y) in bytes
        .chunks_exact(TQ2_0_BLOCK_BYTES)
        .zip(out.chunks_exact_mut(QK_K))
    {
        let (codes, d) = unpack_tq2_0_block(b);
        let d = d.to_f32();
        for (o, &c) in y.iter_mut().zip(codes.iter()) {
            *o = (c as i32 - 1) as f32 * d;
        }
    }
}

fn check_shape(name: &str, rows: usize, cols: usize) -> Result<usize, CodecError> {
    if !cols.is_multiple_of(QK_K) {
        return Err(CodecError::shape(format!(
            "{name} needs cols % 256 == 0, got {rows} x {cols}"
        )));
    }
    rows.checked_mul(cols)
        .ok_or_else(|| CodecError::shape(format!("{rows} x {cols} overflows")))
}

/// Block scales to store for a ternary tensor: per-block values as given; a per-tensor scale
/// goes to every block with a non-zero code and 0 to all-zero blocks, exactly what ggml
/// computes (`d = max|x|`) for `code * scale` input.
fn block_scales(t: &TernaryTensor) -> Vec<f16> {
    let nb = t.codes.len() / QK_K;
    (0..nb)
        .map(|b| match &t.scales {
            TernaryScales::PerBlock(v) => f16::from_f32(v[b]),
            TernaryScales::PerTensor(s) => {
                if t.codes[b * QK_K..(b + 1) * QK_K].iter().any(|&c| c != 0) {
                    f16::from_f32(s.abs())
                } else {
                    f16::ZERO
                }
            }
        })
        .collect()
}

fn encode_with(
    name: &str,
    t: &TernaryTensor,
    block_bytes: usize,
    pack: fn(&[u8; QK_K], f16, &mut [u8]),
) -> Result<Vec<u8>, CodecError> {
    let n = check_shape(name, t.rows, t.cols)?;
    let scales = block_scales(t);
    if let Some(b) = scales.iter().position(|d| !d.is_finite()) {
        return Err(CodecError::shape(format!(
            "{name}: block {b} scale {} does not fit an f16",
            t.scale_at(b * QK_K)
        )));
    }
    let negative = match &t.scales {
        TernaryScales::PerTensor(s) => *s < 0.0,
        TernaryScales::PerBlock(_) => false,
    };
    let mut out = vec![0u8; n / QK_K * block_bytes];
    for (b, o) in out.chunks_exact_mut(block_bytes).enumerate() {
        let mut codes = [1u8; QK_K];
        for (c, &t) in codes.iter_mut().zip(&t.codes[b * QK_K..(b + 1) * QK_K]) {
            // A negative per-tensor scale is stored as |s| with the codes negated.
            let t = if negative { -t } else { t };
            *c = (t + 1) as u8;
        }
        pack(&codes, scales[b], o);
    }
    Ok(out)
}

pub fn encode_tq1_0(t: &TernaryTensor) -> Result<Vec<u8>, CodecError> {
    encode_with("TQ1_0", t, TQ1_0_BLOCK_BYTES, pack_tq1_0_block)
}

pub fn encode_tq2_0(t: &TernaryTensor) -> Result<Vec<u8>, CodecError> {
    encode_with("TQ2_0", t, TQ2_0_BLOCK_BYTES, pack_tq2_0_block)
}

fn decode_with(
    name: &str,
    bytes: &[u8],
    rows: usize,
    cols: usize,
    block_bytes: usize,
    unpack: fn(&[u8]) -> ([u8; QK_K], f16),
) -> Result<TernaryTensor, CodecError> {
    let n = check_shape(name, rows, cols)?;
    let expected = n / QK_K * block_bytes;
    if bytes.len() != expected {
        return Err(CodecError::Size {
            what: name.into(),
            expected,
            got: bytes.len(),
        });
    }
    let mut codes = Vec::with_capacity(n);
    let mut scales = Vec::with_capacity(n / QK_K);
    for (b, block) in bytes.chunks_exact(block_bytes).enumerate() {
        let (c, d) = unpack(block);
        if let Some(j) = c.iter().position(|&c| c > 2) {
            return Err(CodecError::InvalidCode {
                index: b * QK_K + j,
                code: c[j] as i32,
            });
        }
        codes.extend(c.iter().map(|&c| c as i8 - 1));
        scales.push(d.to_f32());
    }
    Ok(TernaryTensor {
        rows,
        cols,
        codes,
        scales: TernaryScales::PerBlock(scales),
    })
}

pub fn decode_tq1_0(bytes: &[u8], rows: usize, cols: usize) -> Result<TernaryTensor, CodecError> {
    decode_with(
        "TQ1_0",
        bytes,
        rows,
        cols,
        TQ1_0_BLOCK_BYTES,
        unpack_tq1_0_block,
    )
}

pub fn decode_tq2_0(bytes: &[u8], rows: usize, cols: usize) -> Result<TernaryTensor, CodecError> {
    decode_with(
        "TQ2_0",
        bytes,
        rows,
        cols,
        TQ2_0_BLOCK_BYTES,
        unpack_tq2_0_block,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tq1_byte_digit_set_round_trips() {
        // All 3^5 digit combinations survive the ceiling-division packing.
        for q in 0..243u16 {
            let digits: Vec<u8> = (0..5)
                .rev()
                .map(|i| ((q / 3u16.pow(i)) % 3) as u8)
                .collect();
            let byte = pack_trits(digits.iter().copied());
            let back: Vec<u8> = (0..5).map(|i| trit(byte, i)).collect();
            assert_eq!(back, digits, "q = {q}");
        }
    }

    #[test]
    fn tq1_worked_example() {
        // docs/formats/tq.md, 'TQ1_0 digits': codes 2, 2, 1, 1, 1 -> 0xf2.
        assert_eq!(pack_trits([2u8, 2, 1, 1, 1].into_iter()), 0xf2);
    }
}
