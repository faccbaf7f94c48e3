//! The compute probe: how many ternary multiply-adds per second the selected kernel path
//! delivers when nothing but its own arithmetic limits it. Prefill is compute-bound, so this
//! is to a prompt what the read-bandwidth probe is to a decoded token: `bench` divides it by
//! the model's multiply-adds per token to get the prefill limit of this machine and path.

use std::time::{Duration, Instant};

use super::matmul::ternary_matmul_repeat;
use super::TernaryMatrix;
use crate::acts::{quantize_acts, QuantizedActs};
use crate::Runtime;

/// Rows and columns of the probe's matrix: 48 KiB of I2 codes, and with 128 tokens 192 KiB of
/// int8 activations and 64 KiB of outputs, which fit together in a 512 KiB L2 (Zen 3's, the
/// smallest of the cores we measure on), so the weights are read from cache, as a prefill
/// GEMM reads each row from cache for every tile of tokens. K = 1536 is the `large` shape's
/// hidden width and a whole number of the GEMMs' 128-column blocks and column chunks.
const ROWS: usize = 128;
const COLS: usize = 1536;

/// The most tokens the probe multiplies at once (more would spill its operands from L2).
pub const RATE_MAX_TOKENS: usize = 128;

/// Multiply-adds per second, in units of 10⁹, of [`ternary_matmul`](super::ternary_matmul)
/// on `rt`'s kernel path (not its pool): `threads` threads at once, each multiplying the same
/// cache-resident 128 × 1536 ternary matrix by its own `tokens` token activations (clamped
/// to 1..=[`RATE_MAX_TOKENS`]) on its own, repeatedly for at least `min_time`. The kernels,
/// tiles, GEMM and epilogue are the ones a prompt of that many tokens uses; no thread waits
/// on another, so the rate is what the cores sustain, not what a fork-join region costs.
pub fn ternary_matmul_rate(rt: &Runtime, threads: usize, tokens: usize, min_time: Duration) -> f64 {
    let tokens = tokens.clamp(1, RATE_MAX_TOKENS);
    let codes: Vec<i8> = (0..ROWS * COLS)
        .map(|i| (mix(i as u64) % 3) as i8 - 1)
        .collect();
    let w = TernaryMatrix::from_ternary(&codes, ROWS, COLS, 1.0)
        .expect("the probe's matrix has a valid shape and values");
    let x: Vec<f32> = (0..tokens * COLS)
        .map(|i| (mix(i as u64 ^ 0x5bd1_e995) % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    let mut acts = QuantizedActs::new();
    quantize_acts(rt, &x, COLS, &mut acts);
    let macs_per_call = (ROWS * COLS * tokens) as f64;
    let (w, acts) = (&w, &acts);
    let start = Instant::now();
    let calls: usize = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(move || {
                    let mut out = vec![0f32; ROWS * tokens];
                    let mut calls = 1;
                    ternary_matmul_repeat(rt, w, acts, &mut out, || {
                        let more = start.elapsed() < min_time;
                        calls += more as usize;
                        more
                    });
                    std::hint::black_box(&out);
                    calls
                })
            })
            .collect();
        // A thread that panicked did no counted work.
        hs.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    calls as f64 * macs_per_call / start.elapsed().as_secs_f64() / 1e9
}

/// SplitMix64's finaliser: cheap, deterministic pseudo-random values for the operands.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ternary::ternary_matmul;

    /// The serial entry the probe times computes what the pooled one does, bit for bit (and
    /// again when repeated), on a prompt long enough for the GEMM and one short enough for
    /// the tiles.
    #[test]
    fn serial_matmul_equals_the_pooled_one() {
        let rt = Runtime::detect();
        let rt = &rt;
        let codes: Vec<i8> = (0..96 * 640).map(|i| (mix(i) % 3) as i8 - 1).collect();
        let w = TernaryMatrix::from_ternary(&codes, 96, 640, 0.75).unwrap();
        for tokens in [5, 40] {
            let x: Vec<f32> = (0..tokens * 640)
                .map(|i| (mix(i as u64 + 7) % 255) as f32 - 127.0)
                .collect();
            let mut acts = QuantizedActs::new();
            quantize_acts(rt, &x, 640, &mut acts);
            let (mut a, mut b) = (vec![0f32; 96 * tokens], vec![1f32; 96 * tokens]);
            ternary_matmul(rt, &w, &acts, &mut a);
            let mut calls = 0;
            ternary_matmul_repeat(rt, &w, &acts, &mut b, || {
                calls += 1;
                calls < 3
            });
            assert_eq!(calls, 3);
            assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
            assert!(
                a.iter().any(|&v| v != 0.0),
                "{tokens} tokens gave all zeros"
            );
        }
    }

    #[test]
    fn rate_is_positive_and_finite() {
        let r = ternary_matmul_rate(&Runtime::detect(), 1, 16, Duration::from_millis(5));
        assert!(r.is_finite() && r > 0.0, "{r}");
    }
}
