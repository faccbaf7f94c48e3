//! `--head-type q8_0|q6_k`: an F16/BF16/F32 output matrix re-quantised in memory at load,
//! so that a file with a half-precision head (the official 2B4T layout, whose tied
//! embedding is over half of a decoded token's bytes) decodes at a quantised head's speed.
//! The file is not changed; the embedding lookups keep reading the original rows.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bitnet_formats::TensorType;
use bitnet_kernels::{DenseMatrix, DetachedDense, DisjointMut, Runtime};

/// A head re-quantised in memory: its bytes and the checked shape over them.
pub struct RepackedHead {
    bytes: Vec<u8>,
    matrix: DetachedDense,
}

impl RepackedHead {
    pub fn matrix(&self) -> DenseMatrix<'_> {
        self.matrix.attach(&self.bytes)
    }
}

/// What `LoadOptions::head_type` did to a model's head at load.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeadRepack {
    /// The head's type in the file.
    pub from: TensorType,
    /// The type asked for.
    pub to: TensorType,
    /// Time spent re-quantising; `None` when the head already had the type asked for.
    pub elapsed: Option<Duration>,
}

impl std::fmt::Display for HeadRepack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.elapsed {
            Some(t) => write!(
                f,
                "re-quantised the {} output head to {} in {:.0} ms",
                self.from.name(),
                self.to.name(),
                t.as_secs_f64() * 1e3
            ),
            None => write!(
                f,
                "the output head is {} in the file already: --head-type changes nothing",
                self.to.name()
            ),
        }
    }
}

/// Whether a head stored as `from` is re-quantised to `to` (true) or left as it is (false,
/// it has that type already). Another quantised type is refused: re-quantising it would
/// stack a second rounding on the first, and a user asking for a faster head would get a
/// less accurate one without knowing.
pub fn needs_repack(from: TensorType, to: TensorType) -> Result<bool> {
    ensure!(
        matches!(to, TensorType::Q8_0 | TensorType::Q6_K),
        "--head-type: cannot re-quantise to {}: expected Q8_0 or Q6_K",
        to.name()
    );
    if from == to {
        return Ok(false);
    }
    ensure!(
        matches!(from, TensorType::F16 | TensorType::BF16 | TensorType::F32),
        "--head-type {}: the output head is {} in the file; only an F16, BF16 or F32 head \
         is re-quantised",
        to.name().to_ascii_lowercase(),
        from.name()
    );
    Ok(true)
}

/// The types `--head-type` accepts, by name.
pub fn head_type_from_name(name: &str) -> Result<TensorType> {
    match TensorType::from_name(&name.to_ascii_uppercase()) {
        Some(t @ (TensorType::Q8_0 | TensorType::Q6_K)) => Ok(t),
        _ => anyhow::bail!("unknown head type {name:?}: expected q8_0 or q6_k"),
    }
}

/// `head` quantised to `ty` (Q8_0 or Q6_K) row by row on the runtime's pool, with the
/// quantizers the `quantize` command uses.
pub fn repack_head(rt: &Runtime, head: &DenseMatrix, ty: TensorType) -> Result<RepackedHead> {
    let quantize_row: fn(&[f32], &mut [u8]) = match ty {
        TensorType::Q8_0 => bitnet_formats::codec::q4_q5_q8::quantize_q8_0,
        TensorType::Q6_K => bitnet_formats::codec::kquants::quantize_q6_k,
        other => anyhow::bail!("--head-type: cannot re-quantise to {}", other.name()),
    };
    ensure!(
        needs_repack(head.tensor_type(), ty)?,
        "--head-type: the head is {} already",
        ty.name()
    );
    let (rows, cols) = (head.rows(), head.cols());
    let block = ty.block_len() as usize;
    ensure!(
        cols.is_multiple_of(block),
        "--head-type {}: the head's rows ({cols}) are no multiple of its block ({block})",
        ty.name()
    );
    // The shape was checked against the mapped payload, so this is at most its size.
    let row_bytes = cols / block * ty.block_bytes() as usize;
    let mut bytes = bitnet_kernels::weight_buf::zeroed(rows * row_bytes);
    let dst = DisjointMut::new(&mut bytes);
    rt.pool().parallel_ranges(rows, 64, 1, |r0, r1| {
        let mut row = vec![0f32; cols];
        for r in r0..r1 {
            head.row_to_f32(rt, r, &mut row);
            // SAFETY: rows r0..r1 are this task's alone, and row r's bytes lie inside
            // `bytes` (rows · row_bytes long).
            quantize_row(&row, unsafe { dst.slice(r * row_bytes, row_bytes) });
        }
    });
    let matrix = DenseMatrix::new(ty, &bytes, rows, cols)
        .context("the re-quantised head")?
        .detach();
    Ok(RepackedHead { bytes, matrix })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitnet_kernels::{dense_matmul, RuntimeOptions};

    #[test]
    fn repacked_head_matches_the_f16_head_within_quantisation() {
        let rt = Runtime::new(RuntimeOptions {
            threads: Some(2),
            ..RuntimeOptions::default()
        })
        .unwrap();
        let (rows, cols) = (300, 512);
        let vals: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 2000.0)
            .collect();
        let f16b: Vec<u8> = vals
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect();
        let head = DenseMatrix::new(TensorType::F16, &f16b, rows, cols).unwrap();
        let x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut want = vec![0f32; rows];
        dense_matmul(&rt, &head, &x, 1, &mut want);
        for ty in [TensorType::Q8_0, TensorType::Q6_K] {
            let packed = repack_head(&rt, &head, ty).unwrap();
            let m = packed.matrix();
            assert_eq!((m.tensor_type(), m.rows(), m.cols()), (ty, rows, cols));
            let mut got = vec![0f32; rows];
            dense_matmul(&rt, &m, &x, 1, &mut got);
            let worst = want
                .iter()
                .zip(&got)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
            // Q8_0 and Q6_K keep ~8 and ~6 bits per weight, the activations 8: a few per
            // cent of the largest logit at most, and not nothing (the type changed).
            assert!(worst < 0.05 * scale, "{ty:?}: {worst} vs {scale}");
            assert!(worst > 0.0, "{ty:?}: identical to the f16 head");
        }
        let q6 = repack_head(&rt, &head, TensorType::Q6_K).unwrap();
        assert!(repack_head(&rt, &q6.matrix(), TensorType::Q8_0).is_err());
        assert_eq!(head_type_from_name("q6_k").unwrap(), TensorType::Q6_K);
        assert!(head_type_from_name("q4_0").is_err());
    }

    #[test]
    fn only_a_float_head_is_requantised_and_the_same_type_is_left_alone() {
        use TensorType::*;
        for from in [F16, BF16, F32] {
            assert!(needs_repack(from, Q6_K).unwrap());
            assert!(needs_repack(from, Q8_0).unwrap());
        }
        assert!(!needs_repack(Q6_K, Q6_K).unwrap());
        assert!(!needs_repack(Q8_0, Q8_0).unwrap());
        let err = needs_repack(Q6_K, Q8_0).unwrap_err().to_string();
        assert!(
            err.contains("q8_0") && err.contains("Q6_K in the file"),
            "{err}"
        );
        assert!(needs_repack(Q4_0, Q6_K).is_err());
        assert!(needs_repack(Q4_K, Q4_K).is_err());
        let done = HeadRepack {
            from: F16,
            to: Q6_K,
            elapsed: Some(Duration::from_millis(412)),
        };
        assert_eq!(
            done.to_string(),
            "re-quantised the F16 output head to Q6_K in 412 ms"
        );
    }
}
