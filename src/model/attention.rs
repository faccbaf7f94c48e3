//! Rotary position embeddings and causal grouped-query attention over the KV cache.

use bitnet_kernels::{ops, parallel_chunks_mut, parallel_chunks_mut_balanced};

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

/// Positions per block of keys or values: one block of one KV head (≤ 32 KiB of f32 at
/// head_dim 128) stays in L1 while every query head of its group reads it.
const KV_BLOCK: usize = 64;

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
    let hd = head_dim;
    let q_dim = n_head * hd;
    let group = n_head / n_head_kv;
    let scale = 1.0 / (hd as f32).sqrt();
    // One work item per (token, KV head), for all query heads of its group: each block of
    // keys and values is fetched once and read from L1 by the group's heads, instead of
    // once per query head from L2 or memory (attention at depth 1024 on the 2B shape, four
    // query heads per KV head: ~10 % faster). A task gets at least ~16k multiply-adds, so a
    // short context is not cut finer than a wake-up is worth.
    let n_new = q.len() / q_dim;
    let n_keys_max = n_past + n_new;
    let min_items = (16384 / (2 * n_keys_max * hd * group).max(1)).max(1);
    let item = |item: usize, o: &mut [f32]| {
        let (t, g) = (item / n_head_kv, item % n_head_kv);
        let qg = &q[t * q_dim + g * group * hd..][..group * hd];
        let n_keys = n_past + t + 1;
        let blocks = || {
            (0..n_keys)
                .step_by(KV_BLOCK)
                .map(|p| p..(p + KV_BLOCK).min(n_keys))
        };
        let mut scores = vec![0f32; group * n_keys];
        let keys = kv.keys(g);
        for b in blocks() {
            for (qh, s) in qg.chunks_exact(hd).zip(scores.chunks_exact_mut(n_keys)) {
                let s = &mut s[b.clone()];
                match keys {
                    KvRun::F32(k) => ops::dot_rows(qh, &k[b.start * hd..], hd, s),
                    KvRun::F16(k) => ops::dot_rows_f16(qh, &k[2 * b.start * hd..], hd, s),
                }
            }
        }
        for s in scores.chunks_exact_mut(n_keys) {
            for v in s.iter_mut() {
                *v *= scale;
            }
            ops::softmax(s);
        }
        o.fill(0.0);
        let values = kv.values(g);
        for b in blocks() {
            for (w, oh) in scores.chunks_exact(n_keys).zip(o.chunks_exact_mut(hd)) {
                let w = &w[b.clone()];
                match values {
                    KvRun::F32(v) => ops::mix_rows(w, &v[b.start * hd..], hd, oh),
                    KvRun::F16(v) => ops::mix_rows_f16(w, &v[2 * b.start * hd..], hd, oh),
                }
            }
        }
    };
    if n_new > 1 {
        // A prompt's items cost in proportion to their keys: in two equal halves of a
        // 128-token prompt, the second thread had three times the first one's work.
        parallel_chunks_mut_balanced(out, group * hd, ATTEND_TASKS_PER_THREAD, min_items, item);
    } else {
        // Decode: items of equal cost, one stream of the cache per thread.
        parallel_chunks_mut(out, group * hd, min_items, item);
    }
}

/// Tasks per thread in a prompt's attention region, claimed dynamically.
const ATTEND_TASKS_PER_THREAD: usize = 8;

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
    fn grouped_blocks_match_a_naive_reference() {
        // 8 query heads on 2 KV heads, 2 new tokens after 150 positions: three key blocks,
        // the last one partial.
        let (n_head, n_kv, hd, n_past, n) = (8, 2, 16, 150, 2);
        let mut seed = 0x9e37_79b9_u64;
        let mut r = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 4.0
        };
        let total = n_past + n;
        let k: Vec<f32> = (0..total * n_kv * hd).map(|_| r()).collect();
        let v: Vec<f32> = (0..total * n_kv * hd).map(|_| r()).collect();
        let q: Vec<f32> = (0..n * n_head * hd).map(|_| r()).collect();
        for kind in [KvType::F32, KvType::F16] {
            let mut cache = KvCache::new(kind, 1, n_kv, hd, total);
            cache.append(0, &k, &v);
            let mut out = vec![0.0; q.len()];
            attend(&q, &cache.layer(0), n_past, n_head, n_kv, hd, &mut out);
            // The reference sees what the cache holds.
            let held = |x: &[f32]| -> Vec<f32> {
                match kind {
                    KvType::F32 => x.to_vec(),
                    KvType::F16 => x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect(),
                }
            };
            check_against_naive(
                &q,
                &held(&k),
                &held(&v),
                &out,
                (n_head, n_kv, hd, n_past, n),
            );
        }
    }

    fn check_against_naive(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        out: &[f32],
        (n_head, n_kv, hd, n_past, n): (usize, usize, usize, usize, usize),
    ) {
        // Position-major k/v rows as appended: row p, head g at (p · n_kv + g) · hd.
        for t in 0..n {
            for h in 0..n_head {
                let g = h / (n_head / n_kv);
                let qh = &q[(t * n_head + h) * hd..][..hd];
                let keys = n_past + t + 1;
                let s: Vec<f64> = (0..keys)
                    .map(|p| {
                        let kr = &k[(p * n_kv + g) * hd..][..hd];
                        qh.iter().zip(kr).map(|(a, b)| (a * b) as f64).sum::<f64>()
                            / (hd as f64).sqrt()
                    })
                    .collect();
                let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for i in 0..hd {
                    let want: f64 = (0..keys)
                        .map(|p| e[p] / z * v[(p * n_kv + g) * hd + i] as f64)
                        .sum();
                    let got = out[(t * n_head + h) * hd + i] as f64;
                    assert!(
                        (got - want).abs() < 1e-4,
                        "t {t} head {h} [{i}]: {got} vs {want}"
                    );
                }
            }
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
