//! From Hugging Face weights to ternary codes and one per-tensor scale.
//!
//! Two inputs exist: full-precision "latent" weights, ternarised with the absmean rule that
//! transformers' online `AutoBitLinear` / 1bitLLM's `BitLinear` apply at run time, and packed
//! offline checkpoints (u8 `[M/4, K]` + `weight_scale`).

use rayon::prelude::*;

use super::error::ConvertError;
use super::hf_config::WeightScaleRule;

/// Ternary codes of one matrix (row-major, `rows × cols`, each in {-1, 0, 1}) and the scale
/// that turns them back into the weights the model computes with.
#[derive(Clone, Debug, PartialEq)]
pub struct Ternary {
    pub rows: usize,
    pub cols: usize,
    pub codes: Vec<i8>,
    pub scale: f32,
    /// Per element, whether the weight the model computes with is `-0.0` (a negative latent
    /// weight rounded to zero, as `round` keeps the sign); empty when the source has no sign
    /// for zeros (packed checkpoints). Only float outputs can store it.
    pub negative_zeros: Vec<bool>,
}

/// Sum of |w| in f64 over fixed-size chunks, added in chunk order: deterministic whatever the
/// thread count, and exact enough that the f32 mean is the correctly rounded one for every
/// realistic matrix.
fn abs_sum(w: &[f32]) -> f64 {
    const CHUNK: usize = 1 << 16;
    let partial: Vec<f64> = w
        .par_chunks(CHUNK)
        .map(|c| c.iter().map(|&x| (x as f64).abs()).sum::<f64>())
        .collect();
    partial.iter().sum()
}

/// The absmean rule in f32: `m = max(mean|W|, 1e-5)`, `s = 1/m`,
/// `t = clamp(round_half_even(W·s), -1, 1)`; the weight the model uses is `t / s`, so the
/// scale is `1/s` (equal to `m` or one ulp away), exactly the magnitude of HF's dequantised
/// weights.
pub fn absmean_ternarise(w: &[f32], rows: usize, cols: usize) -> Ternary {
    assert_eq!(w.len(), rows * cols);
    let mean = if w.is_empty() {
        0.0
    } else {
        (abs_sum(w) / w.len() as f64) as f32
    };
    let m = mean.max(1e-5);
    let s = 1.0f32 / m;
    let mut codes = vec![0i8; w.len()];
    let mut negative_zeros = vec![false; w.len()];
    codes
        .par_chunks_mut(1 << 16)
        .zip(negative_zeros.par_chunks_mut(1 << 16))
        .zip(w.par_chunks(1 << 16))
        .for_each(|((c, nz), x)| {
            for ((c, nz), &x) in c.iter_mut().zip(nz).zip(x) {
                let t = (x * s).round_ties_even().clamp(-1.0, 1.0);
                *c = t as i8;
                *nz = t == 0.0 && t.is_sign_negative();
            }
        });
    Ternary {
        rows,
        cols,
        codes,
        scale: 1.0f32 / s,
        negative_zeros,
    }
}

/// Unpacks a packed offline weight: byte `[r, c]` of the u8 `[M/4, K]` matrix holds the codes
/// of output rows `r`, `r + M/4`, `r + M/2`, `r + 3M/4` in bits 0-1, 2-3, 4-5, 6-7; each code
/// minus one is the ternary value. Code 3 is rejected.
pub fn unpack_packed(
    name: &str,
    packed: &[u8],
    packed_rows: usize,
    cols: usize,
) -> Result<Vec<i8>, ConvertError> {
    assert_eq!(packed.len(), packed_rows * cols);
    // Any 2-bit field equal to 3 has both of its bits set.
    if let Some(index) = packed
        .par_iter()
        .position_first(|&b| (b & (b >> 1) & 0x55) != 0)
    {
        return Err(ConvertError::NonTernaryCode {
            name: name.to_owned(),
            index,
        });
    }
    let rows = packed_rows * 4;
    let mut codes = vec![0i8; rows * cols];
    codes
        .par_chunks_mut(cols)
        .enumerate()
        .for_each(|(row, out)| {
            let (i, r) = (row / packed_rows, row % packed_rows);
            let src = &packed[r * cols..(r + 1) * cols];
            let shift = 2 * i;
            for (o, &b) in out.iter_mut().zip(src) {
                *o = ((b >> shift) & 3) as i8 - 1;
            }
        });
    Ok(codes)
}

/// Packs codes in the same layout (used by tests to build offline checkpoints).
pub fn pack_codes(codes: &[i8], rows: usize, cols: usize) -> Vec<u8> {
    assert!(rows.is_multiple_of(4) && codes.len() == rows * cols);
    let packed_rows = rows / 4;
    let mut out = vec![0u8; packed_rows * cols];
    for row in 0..rows {
        let (i, r) = (row / packed_rows, row % packed_rows);
        for c in 0..cols {
            out[r * cols + c] |= ((codes[row * cols + c] + 1) as u8) << (2 * i);
        }
    }
    out
}

/// The per-tensor scale of a packed weight, following the linear class's convention.
pub fn packed_scale(
    name: &str,
    weight_scale: f32,
    rule: WeightScaleRule,
) -> Result<f32, ConvertError> {
    if !weight_scale.is_finite() || weight_scale <= 0.0 {
        return Err(ConvertError::Tensor {
            name: name.to_owned(),
            message: format!("weight_scale {weight_scale} is not a positive finite number"),
        });
    }
    Ok(match rule {
        WeightScaleRule::Multiply => weight_scale,
        WeightScaleRule::Divide => 1.0 / weight_scale,
    })
}

/// The LLaMA q/k row permutation that llama.cpp's converter applies for `llama` models so the
/// graph can use interleaved RoPE: within each head, rows `[first half | second half]` become
/// `[f0, s0, f1, s1, ...]`.
pub fn permute_rows_llama<T: Copy + Send + Sync>(
    data: &[T],
    rows: usize,
    cols: usize,
    n_head: usize,
) -> Vec<T> {
    assert!(n_head > 0 && rows.is_multiple_of(2 * n_head) && data.len() == rows * cols);
    let head_dim = rows / n_head;
    let half = head_dim / 2;
    let mut out = Vec::with_capacity(data.len());
    for new_row in 0..rows {
        let (h, within) = (new_row / head_dim, new_row % head_dim);
        let (j, p) = (within / 2, within % 2);
        let old_row = h * head_dim + p * half + j;
        out.extend_from_slice(&data[old_row * cols..(old_row + 1) * cols]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absmean_matches_hand_computation() {
        // mean|w| = (0.5 + 1.5 + 0 + 2)/4 = 1.0 → codes round(w/1) clamped.
        let t = absmean_ternarise(&[0.5, -1.5, 0.0, 2.0], 2, 2);
        assert_eq!(t.codes, vec![0, -1, 0, 1]); // 0.5 rounds to even (0)
        assert_eq!(t.negative_zeros, vec![false; 4]);
        assert_eq!(t.scale, 1.0);
    }

    #[test]
    fn negative_latent_weights_rounded_to_zero_keep_their_sign() {
        // mean|w| = 8/8 = 1 exactly: -0.25 and -0.5 (ties to even) round to -0.0, -0.0 stays
        // -0.0, 0.25 and 0.5 round to +0.0.
        let t = absmean_ternarise(&[-0.25, -0.5, -0.0, 0.25, -3.0, 2.5, 0.5, 1.0], 2, 4);
        assert_eq!(t.codes, vec![0, 0, 0, 0, -1, 1, 0, 1]);
        assert_eq!(
            t.negative_zeros,
            vec![true, true, true, false, false, false, false, false]
        );
    }

    #[test]
    fn absmean_clamps_tiny_mean() {
        let t = absmean_ternarise(&[0.0; 8], 2, 4);
        assert!(t.codes.iter().all(|&c| c == 0));
        assert_eq!(t.scale, 1.0 / (1.0f32 / 1e-5));
    }

    #[test]
    fn pack_unpack_roundtrip_and_layout() {
        let rows = 8;
        let cols = 3;
        let codes: Vec<i8> = (0..rows * cols)
            .map(|i| ((i * 7 + i / 5) % 3) as i8 - 1)
            .collect();
        let packed = pack_codes(&codes, rows, cols);
        // Row 2 (= i 1, r 0) lives in bits 2-3 of packed row 0.
        assert_eq!(((packed[0] >> 2) & 3) as i8 - 1, codes[2 * cols]);
        assert_eq!(unpack_packed("w", &packed, rows / 4, cols).unwrap(), codes);
    }

    #[test]
    fn code_three_is_rejected_with_position() {
        let mut packed = vec![0x55u8; 12];
        packed[7] = 0b0011_0101;
        let e = unpack_packed("blk.w", &packed, 2, 6).unwrap_err();
        assert!(
            matches!(e, ConvertError::NonTernaryCode { index: 7, .. }),
            "{e}"
        );
    }

    #[test]
    fn llama_permutation_interleaves_halves() {
        // 1 head of dim 4, 1 column: rows [a0 a1 b0 b1] → [a0 b0 a1 b1].
        assert_eq!(permute_rows_llama(&[0, 1, 2, 3], 4, 1, 1), vec![0, 2, 1, 3]);
        // 2 heads of dim 4.
        assert_eq!(
            permute_rows_llama(&[0, 1, 2, 3, 4, 5, 6, 7], 8, 1, 2),
            vec![0, 2, 1, 3, 4, 6, 5, 7]
        );
    }

    #[test]
    fn scale_direction_follows_linear_class() {
        assert_eq!(
            packed_scale("w", 4.0, WeightScaleRule::Multiply).unwrap(),
            4.0
        );
        assert_eq!(
            packed_scale("w", 4.0, WeightScaleRule::Divide).unwrap(),
            0.25
        );
        assert!(packed_scale("w", 0.0, WeightScaleRule::Divide).is_err());
    }
}
