//! Rotary position embeddings and causal grouped-query attention over the KV cache.

use bitnet_kernels::{ops, DisjointMut, Runtime};

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

    /// `(sin, cos)` of the rotation that takes a key rotated at position `p` to position
    /// `p − shift` (the inverse rotation by `shift`: the same angles, sine negated).
    pub fn angles_back(&self, shift: usize) -> Vec<(f32, f32)> {
        self.angles(shift)
            .into_iter()
            .map(|(sin, cos)| (-sin, cos))
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
/// head_dim 128) stays in L1 while every query head of its group, and every token of a
/// prompt's tile, reads it.
const KV_BLOCK: usize = 64;

/// A prompt's tokens per work item. Each block of keys and values is read from L2 once per
/// tile and then from L1 by the tile's other tokens; with one token per item every token
/// read every block from L2 (with the kernels' `cold` flag, this halved attention's share
/// of a 512-token prompt on the large shape, against the GEMM's).
const TOKEN_TILE: usize = 8;

/// Tasks per thread in a prompt's attention region, claimed dynamically: items cost in
/// proportion to their keys, so equal halves of a 128-token prompt gave the second thread
/// three times the first one's work.
const ATTEND_TASKS_PER_THREAD: usize = 8;

/// The attention heads of a model: query heads, key/value heads, values per head.
#[derive(Clone, Copy, Debug)]
pub struct Heads {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
}

/// Causal attention for `n` new tokens of one sequence whose keys/values are already in
/// `kv` (all positions `0..n_past + n`). `q` holds the new tokens' queries
/// (`n · n_head · head_dim`); `out` gets the same shape. Query head `h` reads KV head
/// `h / (n_head / n_head_kv)`. Every token's result is what it would get alone (the same
/// kernel calls on the same blocks, in the same order), bit for bit.
pub fn attend(rt: &Runtime, q: &[f32], kv: &LayerKv, n_past: usize, heads: Heads, out: &mut [f32]) {
    attend_seqs(rt, &[SeqAttention { q, kv, n_past }], heads, out);
}

/// One sequence's part of [`attend_seqs`]: its new tokens' queries, its cache (holding
/// them already) and how many positions came before them.
pub struct SeqAttention<'a, 'k> {
    pub q: &'a [f32],
    pub kv: &'a LayerKv<'k>,
    pub n_past: usize,
}

/// [`attend`] for several sequences in one parallel region (a server step: one token of
/// each running sequence, or prompts): `out` holds their outputs stacked in order. A
/// region per sequence left all but one thread idle on a decode step's short contexts.
pub fn attend_seqs(rt: &Runtime, seqs: &[SeqAttention], heads: Heads, out: &mut [f32]) {
    let Heads {
        n_head,
        n_head_kv,
        head_dim: hd,
    } = heads;
    let q_dim = n_head * hd;
    let group = n_head / n_head_kv;
    let scale = 1.0 / (hd as f32).sqrt();
    // Per sequence: its first work item and first output row.
    let mut starts = Vec::with_capacity(seqs.len());
    let (mut items, mut rows, mut widest, mut most_new) = (0, 0, 0, 0);
    for s in seqs {
        let n_new = s.q.len() / q_dim;
        starts.push((items, rows));
        items += n_new.div_ceil(TOKEN_TILE) * n_head_kv;
        rows += n_new;
        widest = widest.max(s.n_past + n_new);
        most_new = most_new.max(n_new);
    }
    assert!(out.len() >= rows * q_dim, "attend: output too short");
    // One work item per (sequence, token tile, KV head), for all query heads of its group:
    // each block of keys and values is fetched once and read from L1 by the group's heads
    // and the tile's tokens (attention at depth 1024 on the 2B shape, four query heads per
    // KV head: ~10 % faster than per head). A task gets at least ~16k multiply-adds, so a
    // short context is not cut finer than a wake-up is worth.
    let min_items = (16384 / (2 * widest * hd * group * TOKEN_TILE.min(most_new)).max(1)).max(1);
    // Each item writes its own tokens' outputs for its own KV head group.
    let dst = DisjointMut::new(out);
    let item = |item: usize| {
        let s = starts.partition_point(|&(first, _)| first <= item) - 1;
        let (first, row0) = starts[s];
        let SeqAttention { q, kv, n_past } = seqs[s];
        let n_new = q.len() / q_dim;
        let local = item - first;
        let (tile, g) = (local / n_head_kv, local % n_head_kv);
        let (t0, t1) = (tile * TOKEN_TILE, ((tile + 1) * TOKEN_TILE).min(n_new));
        // Keys seen by token t0 + i, and the blocks of every token of the tile.
        let n_keys = |i: usize| n_past + t0 + i + 1;
        let width = n_keys(t1 - t0 - 1);
        // Every (block, token) pair with keys in it, block by block: `(start, end, i)`.
        let runs = || {
            (0..width).step_by(KV_BLOCK).flat_map(move |start| {
                (0..t1 - t0).filter_map(move |i| {
                    let end = (start + KV_BLOCK).min(n_keys(i));
                    (start < end).then_some((start, end, i))
                })
            })
        };
        // scores[(i · group + h) · width + p]: token t0 + i, query head h of the group.
        let mut scores = vec![0f32; (t1 - t0) * group * width];
        let keys = kv.keys(g);
        for (start, end, i) in runs() {
            let qg = &q[(t0 + i) * q_dim + g * group * hd..][..group * hd];
            for (h, qh) in qg.chunks_exact(hd).enumerate() {
                let s = &mut scores[(i * group + h) * width..][start..end];
                // Only the block's first read may miss the cache.
                let cold = i == 0 && h == 0;
                match keys {
                    KvRun::F32(k) => ops::dot_rows(rt, qh, &k[start * hd..], hd, s, cold),
                    KvRun::F16(k) => ops::dot_rows_f16(rt, qh, &k[2 * start * hd..], hd, s, cold),
                }
            }
        }
        for (r, row) in scores.chunks_exact_mut(width).enumerate() {
            let s = &mut row[..n_keys(r / group)];
            for v in s.iter_mut() {
                *v *= scale;
            }
            ops::softmax(rt, s);
        }
        // SAFETY: the tile's tokens' outputs for this group's heads belong to this item
        // alone, and lie inside `out` (checked above).
        let o =
            |i: usize| unsafe { dst.slice((row0 + t0 + i) * q_dim + g * group * hd, group * hd) };
        for i in 0..t1 - t0 {
            o(i).fill(0.0);
        }
        let values = kv.values(g);
        for (start, end, i) in runs() {
            for (h, oh) in o(i).chunks_exact_mut(hd).enumerate() {
                let w = &scores[(i * group + h) * width..][start..end];
                let cold = i == 0 && h == 0;
                match values {
                    KvRun::F32(v) => ops::mix_rows(rt, w, &v[start * hd..], hd, oh, cold),
                    KvRun::F16(v) => ops::mix_rows_f16(rt, w, &v[2 * start * hd..], hd, oh, cold),
                }
            }
        }
    };
    let task = |a: usize, b: usize| (a..b).for_each(item);
    if most_new > 1 {
        rt.pool()
            .parallel_ranges_balanced(items, ATTEND_TASKS_PER_THREAD, min_items, 1, task);
    } else {
        // Decode: items of equal cost, one stream of the cache per thread.
        rt.pool().parallel_ranges(items, min_items, 1, task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::kv_cache::{KvCache, KvType};
    use bitnet_kernels::Runtime;

    /// Seeded values uniform in [−span/2, span/2) (a 64-bit LCG's high bits).
    fn uniform(mut seed: u64, span: f32) -> impl FnMut() -> f32 {
        move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * span
        }
    }

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
        let rt = Runtime::detect();
        // 8 query heads on 2 KV heads, 2 new tokens after 150 positions: three key blocks,
        // the last one partial.
        let (n_head, n_kv, hd, n_past, n) = (8, 2, 16, 150, 2);
        let heads = Heads {
            n_head,
            n_head_kv: n_kv,
            head_dim: hd,
        };
        let mut r = uniform(0x9e37_79b9_u64, 4.0);
        let total = n_past + n;
        let k: Vec<f32> = (0..total * n_kv * hd).map(|_| r()).collect();
        let v: Vec<f32> = (0..total * n_kv * hd).map(|_| r()).collect();
        let q: Vec<f32> = (0..n * n_head * hd).map(|_| r()).collect();
        for kind in [KvType::F32, KvType::F16] {
            let mut cache = KvCache::new(kind, 1, n_kv, hd, total);
            cache.append(&rt, 0, &k, &v);
            let mut out = vec![0.0; q.len()];
            attend(&rt, &q, &cache.layer(0), n_past, heads, &mut out);
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

    #[test]
    fn a_prompt_gives_each_token_what_it_gets_alone() {
        let rt = Runtime::detect();
        // 21 new tokens (tiles of 8, 8, 5) after 70 positions (partial key blocks), two
        // query heads per KV head: every output bit equals attending token by token.
        let (n_head, n_kv, hd, n_past, n) = (4, 2, 16, 70, 21);
        let heads = Heads {
            n_head,
            n_head_kv: n_kv,
            head_dim: hd,
        };
        let mut r = uniform(0x2545_f491_u64, 6.0);
        let total = n_past + n;
        let k: Vec<f32> = (0..total * n_kv * hd).map(|_| r()).collect();
        let v: Vec<f32> = (0..total * n_kv * hd).map(|_| r()).collect();
        let q: Vec<f32> = (0..n * n_head * hd).map(|_| r()).collect();
        let q_dim = n_head * hd;
        for kind in [KvType::F32, KvType::F16] {
            let mut cache = KvCache::new(kind, 1, n_kv, hd, total);
            cache.append(&rt, 0, &k, &v);
            let mut all = vec![f32::NAN; q.len()];
            attend(&rt, &q, &cache.layer(0), n_past, heads, &mut all);
            for t in 0..n {
                let mut one = vec![f32::NAN; q_dim];
                let qt = &q[t * q_dim..(t + 1) * q_dim];
                attend(&rt, qt, &cache.layer(0), n_past + t, heads, &mut one);
                let got = &all[t * q_dim..(t + 1) * q_dim];
                assert!(
                    got.iter()
                        .zip(&one)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{kind:?}: token {t} differs from attending alone"
                );
            }
        }
    }

    #[test]
    fn several_sequences_in_one_call_get_what_they_get_alone() {
        let rt = Runtime::detect();
        // A server step: three decoding sequences of different depths and a 13-token prompt
        // on a fourth, each with its own cache, in one region.
        let (n_head, n_kv, hd) = (4, 2, 16);
        let heads = Heads {
            n_head,
            n_head_kv: n_kv,
            head_dim: hd,
        };
        let q_dim = n_head * hd;
        let mut r = uniform(0x9e37_79b9_u64, 6.0);
        let shapes = [(5usize, 1usize), (130, 1), (0, 13), (64, 1)];
        let caches: Vec<KvCache> = shapes
            .iter()
            .map(|&(past, new)| {
                let total = past + new;
                let k: Vec<f32> = (0..total * n_kv * hd).map(|_| r()).collect();
                let v: Vec<f32> = (0..total * n_kv * hd).map(|_| r()).collect();
                let mut c = KvCache::new(KvType::F32, 1, n_kv, hd, total);
                c.append(&rt, 0, &k, &v);
                c
            })
            .collect();
        let qs: Vec<Vec<f32>> = shapes
            .iter()
            .map(|&(_, new)| (0..new * q_dim).map(|_| r()).collect())
            .collect();
        let layers: Vec<_> = caches.iter().map(|c| c.layer(0)).collect();
        let parts: Vec<SeqAttention> = shapes
            .iter()
            .zip(&qs)
            .zip(&layers)
            .map(|((&(n_past, _), q), kv)| SeqAttention { q, kv, n_past })
            .collect();
        let rows: usize = shapes.iter().map(|s| s.1).sum();
        let mut all = vec![f32::NAN; rows * q_dim];
        attend_seqs(&rt, &parts, heads, &mut all);
        let mut row = 0;
        for (i, &(n_past, new)) in shapes.iter().enumerate() {
            let mut alone = vec![f32::NAN; new * q_dim];
            attend(&rt, &qs[i], &layers[i], n_past, heads, &mut alone);
            let got = &all[row * q_dim..(row + new) * q_dim];
            assert!(
                got.iter()
                    .zip(&alone)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "sequence {i} differs from attending alone"
            );
            row += new;
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
        let rt = Runtime::detect();
        // 2 query heads share 1 kv head of size 1; 2 positions.
        let mut cache = KvCache::new(KvType::F32, 1, 1, 1, 2);
        cache.append(&rt, 0, &[0.0, 0.0], &[1.0, 3.0]);
        let q = [1.0, 1.0, 1.0, 1.0];
        let mut out = [0.0; 4];
        attend(
            &rt,
            &q,
            &cache.layer(0),
            0,
            Heads {
                n_head: 2,
                n_head_kv: 1,
                head_dim: 1,
            },
            &mut out,
        );
        // Token 0 sees only position 0; token 1 averages both (equal scores).
        assert_eq!(&out, &[1.0, 1.0, 2.0, 2.0]);
    }
}
