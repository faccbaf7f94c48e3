//! Ternary matrices with a scale per 64 elements (upstream Q2_0 whose four 64-block scales
//! in a 256-block differ): each output is `(Σ_g d_g · (Σ_{k∈g} code·q − Σ_{k∈g} q)) /
//! act_scale`, the group terms added in f32 in group order, so every path gives the same
//! bits. Each group's dot is the path's 256-element `i2_dot` against the activations with
//! the other three groups zeroed: a path's activation layout only rearranges elements inside
//! a 256-block, so zeroing before the rearrangement selects the same elements after it.

use super::matmul::{Ctx, Part};
use super::SCALE_BLOCK;
use crate::acts::rows_in_layout;
use crate::dispatch::Kernels;

/// Elements per scale of this layout.
pub(super) const GROUP: usize = 64;
/// Groups per 256-block.
const GROUPS: usize = SCALE_BLOCK / GROUP;
/// I2 bytes of one 256-block of a row (four codes per byte).
const BLOCK_BYTES: usize = SCALE_BLOCK / 4;

/// What the per-64 rows read besides the activations: for groups 0..3 of every 256-block,
/// the activation rows with only that group kept (in the path's layout, `GROUPS - 1` copies:
/// the last group is the whole block minus the others), and the per-64 activation sums.
pub(super) struct Masked {
    pub(super) rows: Vec<i8>,
    pub(super) sums: Vec<i32>,
}

/// [`Masked`] for `q` (rows of `k`, a multiple of 256) read by `kt`'s path.
pub(super) fn mask_groups(kt: &Kernels, q: &[i8], k: usize) -> Masked {
    let mut rows = Vec::with_capacity((GROUPS - 1) * q.len());
    let mut plain = vec![0i8; q.len()];
    for g in 0..GROUPS - 1 {
        let pairs = plain.chunks_exact_mut(GROUP).zip(q.chunks_exact(GROUP));
        for (i, (d, s)) in pairs.enumerate() {
            if i % GROUPS == g {
                d.copy_from_slice(s);
            } else {
                d.fill(0);
            }
        }
        rows.extend_from_slice(&rows_in_layout(kt.act_layout, &plain, k));
    }
    let sums = q
        .chunks_exact(GROUP)
        .map(|c| c.iter().map(|&v| v as i32).sum())
        .collect();
    Masked { rows, sums }
}

/// Rows `r0..r1` of a per-64-scale matrix for every token, one 256-block dot per group.
pub(super) fn per_64_rows(c: &Ctx, p: &Part, scales: &[f32], r0: usize, r1: usize) {
    let (w, acts, kt) = (p.w, c.acts, c.kt);
    let (m_rows, k, n) = (w.rows, w.cols, acts.n_tokens);
    let ng = k / GROUP;
    let masked = c
        .masked
        .expect("per-64 activations are prepared for per-64 matrices");
    let plane = n * k;
    for t in 0..n {
        let q = c.qrow(t);
        let kept = |g: usize| &masked.rows[g * plane + t * k..][..k];
        let sums = &masked.sums[t * ng..(t + 1) * ng];
        for m in r0..r1 {
            let row = w.row(m);
            let rs = &scales[m * ng..(m + 1) * ng];
            let mut acc = 0f32;
            for b in 0..k / SCALE_BLOCK {
                let wb = &row[b * BLOCK_BYTES..(b + 1) * BLOCK_BYTES];
                let span = b * SCALE_BLOCK..(b + 1) * SCALE_BLOCK;
                let mut rest = (kt.i2_dot)(wb, &q[span.clone()]);
                for g in 0..GROUPS {
                    let dot = if g + 1 < GROUPS {
                        (kt.i2_dot)(wb, &kept(g)[span.clone()])
                    } else {
                        rest
                    };
                    rest -= dot;
                    let i = b * GROUPS + g;
                    acc += rs[i] * (dot - sums[i]) as f32;
                }
            }
            // SAFETY: (t, m) is in bounds (checked by the caller) and row m belongs to this task.
            unsafe { p.out.write(t * m_rows + m, acc / acts.scale[t]) }
        }
    }
}
