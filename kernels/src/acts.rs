//! Per-token int8 activation quantisation (formats.md §6.1, the HF training rule).

use crate::dispatch::table;

/// Per-token int8 activations: `scale = 127 / max(|x|, 1e-5)` computed in f64 and stored
/// f32, `q = clamp(round_half_even(x * scale), -128, 127)`, `sum = Σ q`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuantizedActs {
    pub n_tokens: usize,
    pub k: usize,
    /// `n_tokens * k` values, token-major.
    pub q: Vec<i8>,
    pub scale: Vec<f32>,
    pub sum: Vec<i32>,
}

impl QuantizedActs {
    pub fn new() -> Self {
        Self::default()
    }

    /// The int8 row of token `t`.
    pub fn row(&self, t: usize) -> &[i8] {
        &self.q[t * self.k..(t + 1) * self.k]
    }
}

/// Quantises `x` (`n * k` values, token-major) into `out`, reusing its buffers.
///
/// Panics if `k == 0` while `x` is non-empty or `x.len()` is not a multiple of `k`
/// (a caller bug, not bad input).
pub fn quantize_acts(x: &[f32], k: usize, out: &mut QuantizedActs) {
    let n = if k == 0 { 0 } else { x.len() / k };
    assert_eq!(
        n * k,
        x.len(),
        "activation length {} is not a multiple of k = {k}",
        x.len()
    );
    out.n_tokens = n;
    out.k = k;
    out.q.resize(n * k, 0);
    out.scale.resize(n, 0.0);
    out.sum.resize(n, 0);
    let quant = table().quantize_row;
    for t in 0..n {
        let (s, sum) = quant(&x[t * k..(t + 1) * k], &mut out.q[t * k..(t + 1) * k]);
        out.scale[t] = s;
        out.sum[t] = sum;
    }
}
