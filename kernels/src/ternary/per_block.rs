//! Ternary matrices with a scale per 256-block (TQ1_0, TQ2_0 whose blocks disagree): each
//! output is `(Σ_b d_b · (Σ_{k∈b} code·q − Σ_{k∈b} q)) / act_scale`, the block terms added
//! in f32 in block order, so that every path and every kernel gives the same bits.

// Index loops walk rows, tokens and blocks in lockstep.
#![allow(clippy::needless_range_loop)]

use super::matmul::{Ctx, Part, TOKEN_TILE};
use super::SCALE_BLOCK;
use crate::dispatch::I2Gemm;
use crate::portable::GEMM_ROWS;

/// I2 bytes of one 256-block of a row (four codes per byte).
const BLOCK_BYTES: usize = SCALE_BLOCK / 4;

/// The first `n` tokens' activations (`q`, rows of `k`, a multiple of 256) packed for
/// `gemm` one 256-column block at a time: block `b`'s `n · 256` bytes start at
/// `b · n · 256`, so that a GEMM call of K = 256 reads one block of every token.
pub(super) fn pack_blocks(gemm: &I2Gemm, q: &[i8], k: usize, n: usize) -> Vec<i8> {
    let nb = k / SCALE_BLOCK;
    let mut out = Vec::with_capacity(nb * n * SCALE_BLOCK);
    let (mut block, mut packed) = (vec![0i8; n * SCALE_BLOCK], Vec::new());
    for b in 0..nb {
        for t in 0..n {
            let src = &q[t * k + b * SCALE_BLOCK..][..SCALE_BLOCK];
            block[t * SCALE_BLOCK..(t + 1) * SCALE_BLOCK].copy_from_slice(src);
        }
        (gemm.pack)(&block, SCALE_BLOCK, n, &mut packed);
        out.extend_from_slice(&packed[..n * SCALE_BLOCK]);
    }
    out
}

/// Rows `r0..r1` of a per-block-scale matrix for every token: the path's GEMM one block at
/// a time on 32-row groups × whole token groups, where the path has one and the prompt is
/// long enough, then [`per_block_tiles`] for the rest. Until it (prefill was ~3× slower
/// than a per-tensor matrix's) every block of every row was a separate four-token dot.
pub(super) fn per_block_rows(c: &Ctx, p: &Part, scales: &[f32], r0: usize, r1: usize) {
    let n = c.acts.n_tokens;
    let Some(gemm) = c.gemm.filter(|_| !c.packed_blocks.is_empty()) else {
        return per_block_tiles(c, p, scales, r0, r1, 0, n);
    };
    let w = p.w;
    let (nb, rb) = (w.cols / SCALE_BLOCK, w.row_bytes);
    let ng = n / gemm.group * gemm.group;
    let (mut dots, mut acc) = (vec![0i32; GEMM_ROWS * ng], vec![0f32; GEMM_ROWS * ng]);
    let mut d = [0f32; GEMM_ROWS];
    let mut m = r0;
    while m + GEMM_ROWS <= r1 {
        acc.fill(0.0);
        for b in 0..nb {
            let acts = &c.packed_blocks[b * ng * SCALE_BLOCK..][..ng * SCALE_BLOCK];
            let rows = &w.data[m * rb + b * BLOCK_BYTES..];
            (gemm.run)(rows, rb, SCALE_BLOCK, acts, ng, &mut dots);
            for r in 0..GEMM_ROWS {
                d[r] = scales[(m + r) * nb + b];
            }
            // dots and acc are token-major: token t's 32 rows are contiguous.
            for t in 0..ng {
                let s = c.block_sums[t * nb + b];
                let (dt, at) = (
                    &dots[t * GEMM_ROWS..][..GEMM_ROWS],
                    &mut acc[t * GEMM_ROWS..],
                );
                for r in 0..GEMM_ROWS {
                    at[r] += d[r] * (dt[r] - s) as f32;
                }
            }
        }
        for t in 0..ng {
            for r in 0..GEMM_ROWS {
                let v = acc[t * GEMM_ROWS + r] / c.acts.scale[t];
                // SAFETY: (t, m + r) is in bounds and row m + r belongs to this task.
                unsafe { p.out.write(t * w.rows + m + r, v) }
            }
        }
        m += GEMM_ROWS;
    }
    per_block_tiles(c, p, scales, r0, m, ng, n);
    per_block_tiles(c, p, scales, m, r1, 0, n);
}

/// Rows `r0..r1` × tokens `ta..tb` of a per-block-scale matrix, four tokens per block dot
/// and then one by one.
fn per_block_tiles(c: &Ctx, p: &Part, scales: &[f32], r0: usize, r1: usize, ta: usize, tb: usize) {
    let (w, acts, kt) = (p.w, c.acts, c.kt);
    let (m_rows, k) = (w.rows, w.cols);
    let nb = k / SCALE_BLOCK;
    let write = |t: usize, m: usize, v: f32| {
        // SAFETY: (t, m) is in bounds (checked by the caller) and row m belongs to this task.
        unsafe { p.out.write(t * m_rows + m, v) }
    };
    let block = |t: usize, b: usize| &c.qrow(t)[b * SCALE_BLOCK..(b + 1) * SCALE_BLOCK];
    let sums = c.block_sums;
    for t0 in (ta..tb).step_by(TOKEN_TILE) {
        let t1 = (t0 + TOKEN_TILE).min(tb);
        for m in r0..r1 {
            let row = w.row(m);
            let rs = &scales[m * nb..(m + 1) * nb];
            let mut t = t0;
            while t + 4 <= t1 {
                let mut acc = [0f32; 4];
                for (b, &d) in rs.iter().enumerate() {
                    let wb = &row[b * BLOCK_BYTES..(b + 1) * BLOCK_BYTES];
                    let dots = (kt.i2_dot4)(wb, std::array::from_fn(|i| block(t + i, b)));
                    for i in 0..4 {
                        acc[i] += d * (dots[i] - sums[(t + i) * nb + b]) as f32;
                    }
                }
                for (i, &a) in acc.iter().enumerate() {
                    write(t + i, m, a / acts.scale[t + i]);
                }
                t += 4;
            }
            for t in t..t1 {
                let mut acc = 0f32;
                for (b, &d) in rs.iter().enumerate() {
                    let wb = &row[b * BLOCK_BYTES..(b + 1) * BLOCK_BYTES];
                    acc += d * ((kt.i2_dot)(wb, block(t, b)) - sums[t * nb + b]) as f32;
                }
                write(t, m, acc / acts.scale[t]);
            }
        }
    }
}
