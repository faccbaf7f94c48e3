//! Per-token int8 activation quantisation (docs/formats/i2s.md, 'Activations': the HF training
//! rule).

use std::borrow::Cow;

use crate::dispatch::ActLayout;
use crate::pool::DisjointMut;
use crate::portable::to_pairs_layout;
use crate::Runtime;

/// Per-token int8 activations: `scale = 127 / max(|x|, 1e-5)` computed in f64 and stored
/// f32, `q = clamp(round_half_even(x * scale), -128, 127)`, `sum = Σ q`.
///
/// Filled by [`quantize_acts`], which also keeps a copy of `q` in the layout the runtime's
/// kernels read (when that is not the plain one), so the several matmuls that share one
/// quantised input (q/k/v, gate/up) rearrange it once.
#[derive(Clone, Debug, Default)]
pub struct QuantizedActs {
    pub n_tokens: usize,
    pub k: usize,
    /// `n_tokens * k` values, token-major.
    pub q: Vec<i8>,
    pub scale: Vec<f32>,
    pub sum: Vec<i32>,
    /// `q` in `kernel_layout` (empty when that is `Plain`).
    kernel_q: Vec<i8>,
    kernel_layout: Option<ActLayout>,
}

impl QuantizedActs {
    pub fn new() -> Self {
        Self::default()
    }

    /// The int8 row of token `t`.
    pub fn row(&self, t: usize) -> &[i8] {
        &self.q[t * self.k..(t + 1) * self.k]
    }

    /// All rows in `layout`: the plain `q`, the copy made by [`quantize_acts`], or a fresh
    /// one when another runtime's path reads these activations.
    pub(crate) fn in_layout(&self, layout: ActLayout) -> Cow<'_, [i8]> {
        if layout != ActLayout::Plain
            && self.kernel_layout == Some(layout)
            && self.kernel_q.len() == self.q.len()
        {
            return Cow::Borrowed(&self.kernel_q);
        }
        rows_in_layout(layout, &self.q, self.k)
    }
}

/// `q` (rows of `k` values) in `layout`: borrowed when that is the plain one.
pub(crate) fn rows_in_layout(layout: ActLayout, q: &[i8], k: usize) -> Cow<'_, [i8]> {
    match layout {
        ActLayout::Plain => Cow::Borrowed(q),
        ActLayout::Pairs256 => {
            let mut v = vec![0i8; q.len()];
            rearrange(q, k, &mut v);
            Cow::Owned(v)
        }
    }
}

/// Equal when the quantised values are: the kernel-layout copy is a cache.
impl PartialEq for QuantizedActs {
    fn eq(&self, o: &Self) -> bool {
        (self.n_tokens, self.k, &self.q, &self.sum) == (o.n_tokens, o.k, &o.q, &o.sum)
            && self.scale.len() == o.scale.len()
            && self
                .scale
                .iter()
                .zip(&o.scale)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

/// Fewest tokens whose rows [`quantize_acts`] spreads over the pool: decode's one token (or
/// a server step's few) costs less than waking a worker.
pub const PARALLEL_MIN_TOKENS: usize = 4;

fn rearrange(q: &[i8], k: usize, out: &mut [i8]) {
    if k == 0 {
        return;
    }
    for (src, dst) in q.chunks_exact(k).zip(out.chunks_exact_mut(k)) {
        to_pairs_layout(src, dst);
    }
}

/// Quantises `x` (`n * k` values, token-major) into `out`, reusing its buffers.
///
/// Panics if `k == 0` while `x` is non-empty or `x.len()` is not a multiple of `k`
/// (a caller bug, not bad input).
pub fn quantize_acts(rt: &Runtime, x: &[f32], k: usize, out: &mut QuantizedActs) {
    let n = x.len().checked_div(k).unwrap_or(0);
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
    let kt = rt.kernels();
    if n < PARALLEL_MIN_TOKENS {
        for t in 0..n {
            let (s, sum) =
                (kt.quantize_row)(&x[t * k..(t + 1) * k], &mut out.q[t * k..(t + 1) * k]);
            out.scale[t] = s;
            out.sum[t] = sum;
        }
    } else {
        // A prompt's rows on the pool: on one thread, with the other waiting, the
        // quantisations between the matmuls were ~1 % of a prompt's time, counted twice.
        let mut stats = vec![(0f32, 0i32); n];
        let rows = DisjointMut::new(&mut out.q);
        rt.pool()
            .parallel_chunks_mut(&mut stats, 1, (16384 / k).max(1), |t, st| {
                // SAFETY: row t of `out.q` (n · k values) is this item's alone.
                let row = unsafe { rows.slice(t * k, k) };
                st[0] = (kt.quantize_row)(&x[t * k..(t + 1) * k], row);
            });
        for (t, (s, sum)) in stats.into_iter().enumerate() {
            out.scale[t] = s;
            out.sum[t] = sum;
        }
    }
    out.kernel_layout = Some(kt.act_layout);
    if kt.act_layout == ActLayout::Plain {
        out.kernel_q.clear();
    } else {
        out.kernel_q.resize(n * k, 0);
        rearrange(&out.q, k, &mut out.kernel_q);
    }
}
