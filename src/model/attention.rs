//! Rotary position embeddings and causal grouped-query attention over the KV cache.

use bitnet_kernels::{ops, parallel_chunks_mut};

use super::config::RopeStyle;
use super::kv_cache::{KvRun, LayerKv};

/// Inverse frequencies `base^(−2i/n_rot)`, computed the way transformers does (f32 power),
/// so the rotation angles agree with the reference to the last bit or two.
pub struct Rope {
    style: RopeStyle,
    n_rot: usize,
    inv_freq: Vec<f32>,
}

impl Rope {
    pub fn new(style: RopeStyle, n_rot: usize, base: f32) -> Self {
        let inv_freq = (0..n_rot / 2)
            .map(|i| 1.0 / base.powf((2 * i) as f32 / n_rot as f32))
            .collect();
        Rope {
            style,
            n_rot,
            inv_freq,
        }
    }

    /// `(sin, cos)` of every rotation angle at `pos`. They depend on the position only, so a
    /// forward pass computes them once per token for all layers, q and k, and heads.
    pub fn angles(&self, pos: usize) -> Vec<(f32, f32)> {
        self.inv_freq
            .iter()
            .map(|f| (pos as f32 * f).sin_cos())
            .collect()
    }

    /// Rotates every head of one token's q or k row (`n_heads · head_dim` values) in place.
    #[cfg(test)]
    pub fn apply(&self, row: &mut [f32], head_dim: usize, pos: usize) {
        self.rotate(row, head_dim, &self.angles(pos));
    }

    /// [`Rope::apply`] with the angles of the position given.
    pub fn rotate(&self, row: &mut [f32], head_dim: usize, angles: &[(f32, f32)]) {
        let half = self.n_rot / 2;
        let angles = &angles[..half];
        // One loop per style, with no style match or index computation per pair; the same
        // operations per pair, so the same bits.
        let turn = |x0: &mut f32, x1: &mut f32, &(sin, cos): &(f32, f32)| {
            let (a, b) = (*x0, *x1);
            *x0 = a * cos - b * sin;
            *x1 = b * cos + a * sin;
        };
        for head in row.chunks_exact_mut(head_dim) {
            match self.style {
                RopeStyle::Neox => {
                    let (lo, hi) = head[..2 * half].split_at_mut(half);
                    for ((x0, x1), a) in lo.iter_mut().zip(hi.iter_mut()).zip(angles) {
                        turn(x0, x1, a);
                    }
                }
                RopeStyle::Normal => {
                    for (pair, a) in head[..2 * half].chunks_exact_mut(2).zip(angles) {
                        let (x0, x1) = pair.split_at_mut(1);
                        turn(&mut x0[0], &mut x1[0], a);
                    }
                }
            }
        }
    }
}

/// Causal attention for `n` new tokens of one sequence whose keys/values are already in
/// `kv` (all positions `0..n_past + n`). `q` holds the new tokens' queries
/// (`n · n_head · head_dim`); `out` gets the same shape. Query head `h` reads KV head
/// `h / (n_head / n_head_kv)`.
pub fn attend(
    q: &[f32],
    kv: &LayerKv,
    n_past: usize,
    n_head: usize,
    n_head_kv: usize,
    head_dim: usize,
    out: &mut [f32],
) {
    let q_dim = n_head * head_dim;
    let group = n_head / n_head_kv;
    let scale = 1.0 / (head_dim as f32).sqrt();
    // One work item per (token, head): enough parallelism for both prefill and decode.
    // A task gets at least ~16k multiply-adds of scores and values, so a short decode
    // context is not cut finer than a wake-up is worth.
    let n_keys_max = n_past + q.len() / q_dim;
    let min_items = (16384 / (2 * n_keys_max * head_dim).max(1)).max(1);
    parallel_chunks_mut(out, head_dim, min_items, |item, o| {
        let (t, h) = (item / n_head, item % n_head);
        let qh = &q[t * q_dim + h * head_dim..][..head_dim];
        let kvh = h / group;
        let n_keys = n_past + t + 1;
        let mut scores = vec![0f32; n_keys];
        match kv.keys(kvh) {
            KvRun::F32(k) => ops::dot_rows(qh, k, head_dim, &mut scores),
            KvRun::F16(k) => ops::dot_rows_f16(qh, k, head_dim, &mut scores),
        }
        for s in scores.iter_mut() {
            *s *= scale;
        }
        ops::softmax(&mut scores);
        o.fill(0.0);
        match kv.values(kvh) {
            KvRun::F32(v) => ops::mix_rows(&scores, v, head_dim, o),
            KvRun::F16(v) => ops::mix_rows_f16(&scores, v, head_dim, o),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kv_cache::{KvCache, KvType};

    #[test]
    fn neox_rotates_pairs_half_apart() {
        let rope = Rope::new(RopeStyle::Neox, 4, 10000.0);
        let mut row = [1.0, 0.0, 0.0, 0.0];
        rope.apply(&mut row, 4, 1);
        // Pair (0, 2) with θ = 1 rad; pair (1, 3) untouched because x1 = x3 = 0.
        assert!((row[0] - 1f32.cos()).abs() < 1e-6);
        assert!((row[2] - 1f32.sin()).abs() < 1e-6);
        assert_eq!(row[1], 0.0);
    }

    #[test]
    fn normal_rotates_adjacent_pairs() {
        let rope = Rope::new(RopeStyle::Normal, 4, 10000.0);
        let mut row = [1.0, 0.0, 0.0, 0.0];
        rope.apply(&mut row, 4, 1);
        assert!((row[0] - 1f32.cos()).abs() < 1e-6);
        assert!((row[1] - 1f32.sin()).abs() < 1e-6);
    }

    #[test]
    fn normal_on_permuted_rows_equals_neox_on_original() {
        // The llama converter permutes q/k rows so that normal RoPE reproduces HF's
        // rotate-half: row i of the permuted head is original row (i/2) + (i%2)·half.
        let d = 8;
        let orig: Vec<f32> = (0..d).map(|i| (i as f32 * 0.37).sin()).collect();
        let perm: Vec<f32> = (0..d).map(|i| orig[i / 2 + (i % 2) * d / 2]).collect();
        let mut a = orig.clone();
        let mut b = perm.clone();
        Rope::new(RopeStyle::Neox, d, 500000.0).apply(&mut a, d, 7);
        Rope::new(RopeStyle::Normal, d, 500000.0).apply(&mut b, d, 7);
        for i in 0..d {
            assert!((b[i] - a[i / 2 + (i % 2) * d / 2]).abs() < 1e-6);
        }
    }

    #[test]
    fn attention_is_causal_and_grouped() {
        // 2 query heads share 1 kv head of size 1; 2 positions.
        let mut cache = KvCache::new(KvType::F32, 1, 1, 1, 2);
        cache.append(0, &[0.0, 0.0], &[1.0, 3.0]);
        let q = [1.0, 1.0, 1.0, 1.0];
        let mut out = [0.0; 4];
        attend(&q, &cache.layer(0), 0, 2, 1, 1, &mut out);
        // Token 0 sees only position 0; token 1 averages both (equal scores).
        assert_eq!(&out, &[1.0, 1.0, 2.0, 2.0]);
    }
}
