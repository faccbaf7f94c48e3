//! The ternary × int8 matmul driver: rows split over the pool, tokens in tiles, and the
//! selected path's I2 kernels on whole 128-blocks (activations padded with zeros to them).

// Index loops walk several arrays (rows, planes, lanes) in lockstep.
#![allow(clippy::needless_range_loop)]

use super::per_64::{mask_groups, per_64_rows, Masked};
use super::per_block::{pack_blocks, per_block_rows};
use super::{TernaryMatrix, WeightScale, SCALE_BLOCK};
use crate::acts::{rows_in_layout, QuantizedActs};
use crate::dispatch::{I2Gemm, Kernels};
use crate::pool::DisjointMut;
use crate::portable::{i2s_epilogue, GEMM_ROWS, I2_BLOCK, I2_BLOCK_BYTES};
use crate::Runtime;

/// Σ code·q over a row's whole 128-blocks; `q` (in the path's layout) is as long as the
/// blocks the row is read for, padded with zeros past K (see [`padded_rows`]).
#[inline]
pub(super) fn raw_dot(kt: &Kernels, row: &[u8], q: &[i8]) -> i32 {
    match q.len() / I2_BLOCK {
        0 => 0,
        full => (kt.i2_dot)(&row[..full * I2_BLOCK_BYTES], &q[..full * I2_BLOCK]),
    }
}

#[inline]
fn raw_dot4(kt: &Kernels, row: &[u8], q: [&[i8]; 4]) -> [i32; 4] {
    match q[0].len() / I2_BLOCK {
        0 => [0; 4],
        full => (kt.i2_dot4)(&row[..full * I2_BLOCK_BYTES], q),
    }
}

#[inline]
fn raw_tile(kt: &Kernels, rows: [&[u8]; 2], q: [&[i8]; 8]) -> [[i32; 8]; 2] {
    match q[0].len() / I2_BLOCK {
        0 => [[0; 8]; 2],
        full => (kt.i2_tile)(rows.map(|r| &r[..full * I2_BLOCK_BYTES]), q),
    }
}

/// Decode: `dots[i]` = Σ code·q of row `r0 + i`, for rows `r0..r0 + dots.len()`, in one
/// kernel call (the path streams the rows four at a time from the range's quarters).
fn raw_matvec(kt: &Kernels, w: &TernaryMatrix, r0: usize, q: &[i8], dots: &mut [i32]) {
    let rb = w.row_bytes;
    (kt.i2_matvec)(&w.data[r0 * rb..(r0 + dots.len()) * rb], rb, q, dots);
}

/// Activation rows of width `k` (plain layout) padded with zeros to `kp`, a whole number of
/// 128-blocks. Rows are padded with code 1 to whole blocks at load, and a zero activation
/// makes any code add nothing, so the kernels take a partial last block like any other. The
/// element-by-element tail this replaced cost the 3B shape's FFN down projection (K = 8640)
/// 11 % of a decoded token.
pub(super) fn padded_rows(q: &[i8], k: usize, kp: usize) -> Vec<i8> {
    let mut out = vec![0i8; q.len() / k.max(1) * kp];
    for (src, dst) in q.chunks_exact(k).zip(out.chunks_exact_mut(kp)) {
        dst[..k].copy_from_slice(src);
    }
    out
}

/// Tokens per tile in prefill: a tile's int8 rows (32 × K bytes, ≤ 221 KB for K = 6912)
/// stay in L2 while the chunk's weight rows are read once per tile.
pub(super) const TOKEN_TILE: usize = 32;

/// `out[t * M + m] = Σ_k w[m, k] · x[t, k]` for every token, from int8 activations:
/// per-tensor scale (I2_S): `((dot − act_sum) as f32 / act_scale) * scale`, bit for bit the
/// fork's epilogue; per-block scales (TQ): `(Σ_b d_b · (Σ_{k∈b} t·q) as f32) / act_scale`,
/// accumulated over blocks in order.
///
/// Panics if `acts.k != w.cols()` or `out` is shorter than `n_tokens * rows`.
pub fn ternary_matmul(rt: &Runtime, w: &TernaryMatrix, acts: &QuantizedActs, out: &mut [f32]) {
    ternary_matmul_many(rt, &mut [(w, out)], acts);
}

/// [`ternary_matmul`] of several matrices that read the same activations (q/k/v, gate/up),
/// in one parallel region: their rows are split over the pool together, which halves the
/// fork-joins per decoded token and balances small matrices against large ones.
///
/// Panics as [`ternary_matmul`] does, for any of the pairs.
pub fn ternary_matmul_many(
    rt: &Runtime,
    jobs: &mut [(&TernaryMatrix, &mut [f32])],
    acts: &QuantizedActs,
) {
    matmul_many(rt, jobs, acts, &mut None);
}

/// [`ternary_matmul`] on the calling thread alone, with the same kernels and tiles, once and
/// then again for as long as `again()` says: what the compute probe (`rate.rs`) runs on
/// every core at once. The activations are packed for the path's GEMM once, before the
/// first multiplication, as a prompt packs them once per matmul of all its rows.
pub(super) fn ternary_matmul_repeat(
    rt: &Runtime,
    w: &TernaryMatrix,
    acts: &QuantizedActs,
    out: &mut [f32],
    mut again: impl FnMut() -> bool,
) {
    matmul_many(rt, &mut [(w, out)], acts, &mut Some(&mut again));
}

/// The driver; with `serial`, it runs on the calling thread, repeating while `serial()`.
fn matmul_many(
    rt: &Runtime,
    jobs: &mut [(&TernaryMatrix, &mut [f32])],
    acts: &QuantizedActs,
    serial: &mut Option<&mut dyn FnMut() -> bool>,
) {
    let n = acts.n_tokens;
    for (w, out) in jobs.iter() {
        assert_eq!(
            acts.k, w.cols,
            "activation width {} != matrix columns {}",
            acts.k, w.cols
        );
        assert!(out.len() >= n * w.rows, "output buffer too small");
    }
    if n == 0 || jobs.is_empty() {
        return;
    }
    let kt = rt.kernels();
    let kp = acts.k.next_multiple_of(I2_BLOCK);
    let padded = (kp != acts.k).then(|| padded_rows(&acts.q, acts.k, kp));
    let (plain, kq) = match &padded {
        None => (&acts.q[..], acts.in_layout(kt.act_layout)),
        Some(p) => (&p[..], rows_in_layout(kt.act_layout, p, kp)),
    };
    let block_sums = block_sums(jobs.iter().map(|j| j.0), acts);
    let parts: Vec<Part> = jobs
        .iter_mut()
        .map(|(w, out)| Part {
            w,
            out: DisjointMut::new(out),
        })
        .collect();
    // Rows are numbered across the matrices in order; a task's range may span two of them.
    let total: usize = parts.iter().map(|p| p.w.rows).sum();
    let row_bytes = parts.iter().map(|p| p.w.row_bytes).max().unwrap_or(1);
    // Rows per task: enough work to amortise scheduling (≥ 32 KiB of weights per task).
    let min_rows = (32 * 1024 / row_bytes.max(1)).max(4);
    // A GEMM takes whole groups of tokens; rows go to it in 32s. Per-tensor matrices read
    // the activations packed over the whole width, per-block ones packed block by block.
    let one_scale = parts
        .iter()
        .all(|p| matches!(p.w.scale, WeightScale::PerTensor(_)));
    let gemm_tokens = kt.i2_gemm.map_or(0, |g| {
        let whole = n / g.group * g.group;
        match (n >= g.min_tokens, one_scale && n - whole >= g.pad_from) {
            (false, _) => 0,
            (true, true) => whole + g.group,
            (true, false) => whole,
        }
    });
    let gemm = kt.i2_gemm.filter(|_| gemm_tokens > 0);
    let (mut packed, mut packed_blocks) = (Vec::new(), Vec::new());
    if let Some(g) = gemm {
        let ng = gemm_tokens;
        if parts
            .iter()
            .any(|p| matches!(p.w.scale, WeightScale::PerTensor(_)))
        {
            // Padded to a whole group: the extra tokens are zero rows, whose dots are
            // computed and dropped.
            let zero_padded;
            let rows = if ng > n {
                let mut z = vec![0i8; ng * kp];
                z[..plain.len()].copy_from_slice(plain);
                zero_padded = z;
                &zero_padded[..]
            } else {
                plain
            };
            (g.pack)(rows, kp, ng, &mut packed);
        }
        if parts
            .iter()
            .any(|p| matches!(p.w.scale, WeightScale::PerBlock(_)))
        {
            packed_blocks = pack_blocks(&g, plain, kp, ng);
        }
    }
    // Per-64 matrices have K % 256 == 0 (`TernaryMatrix::new`), so `plain` is unpadded.
    let masked = parts
        .iter()
        .any(|p| matches!(p.w.scale, WeightScale::Per64(_)))
        .then(|| mask_groups(kt, plain, kp));
    let ctx = Ctx {
        masked: masked.as_ref(),
        kt,
        acts,
        kp,
        kq: &kq,
        block_sums: &block_sums,
        gemm,
        gemm_tokens,
        packed: &packed,
        packed_blocks: &packed_blocks,
    };
    let align = if gemm.is_some() { GEMM_ROWS } else { 4 };
    let task = |g0: usize, g1: usize| {
        let mut base = 0;
        for p in &parts {
            let (lo, hi) = (g0.max(base), g1.min(base + p.w.rows));
            if lo < hi {
                match &p.w.scale {
                    WeightScale::PerTensor(s) => per_tensor_rows(&ctx, p, *s, lo - base, hi - base),
                    WeightScale::PerBlock(sc) => per_block_rows(&ctx, p, sc, lo - base, hi - base),
                    WeightScale::Per64(sc) => per_64_rows(&ctx, p, sc, lo - base, hi - base),
                }
            }
            base += p.w.rows;
        }
    };
    if let Some(again) = serial {
        task(0, total);
        while again() {
            task(0, total);
        }
    } else if gemm.is_some() {
        // Compute-bound: finer chunks, claimed dynamically, balance cores of unequal speed.
        rt.pool().parallel_ranges_balanced(
            total,
            GEMM_CHUNKS_PER_THREAD,
            min_rows.max(align),
            align,
            task,
        );
    } else {
        rt.pool()
            .parallel_ranges(total, min_rows.max(align), align, task);
    }
}

/// Row chunks per thread in a prefill GEMM region (see
/// [`crate::Pool::parallel_ranges_balanced`]).
const GEMM_CHUNKS_PER_THREAD: usize = 6;

/// One matrix of a [`ternary_matmul_many`] call and where its output goes.
pub(super) struct Part<'a, 'w> {
    pub(super) w: &'a TernaryMatrix<'w>,
    pub(super) out: DisjointMut<f32>,
}

/// What every task of one call reads.
pub(super) struct Ctx<'a> {
    pub(super) kt: &'static Kernels,
    pub(super) acts: &'a QuantizedActs,
    /// K padded to whole 128-blocks: the width of the rows of `kq` and `packed`.
    kp: usize,
    /// The activation rows in the path's layout.
    kq: &'a [i8],
    /// Per-256-block activation sums (only when a matrix has per-block scales).
    pub(super) block_sums: &'a [i32],
    /// The path's GEMM, when it applies to this call, and the activations packed for it:
    /// over the whole width (when a matrix has one scale) and one 256-column block at a
    /// time (`pack_blocks`, when one has per-block scales).
    pub(super) gemm: Option<I2Gemm>,
    /// The tokens the GEMM runs, whole groups: the first ones (the rest go to the tiles),
    /// or all of them and zero tokens after (`I2Gemm::pad_from`).
    gemm_tokens: usize,
    packed: &'a [i8],
    pub(super) packed_blocks: &'a [i8],
    /// The group-masked activations, when a matrix has a scale per 64 elements.
    pub(super) masked: Option<&'a Masked>,
}

impl Ctx<'_> {
    pub(super) fn qrow(&self, t: usize) -> &[i8] {
        &self.kq[t * self.kp..(t + 1) * self.kp]
    }
}

/// Per-256-block activation sums, for the zero-point correction of each block's scale (the
/// pairs layout keeps every 256-block's elements, so the same sums hold). Empty when no
/// matrix needs them.
fn block_sums<'a, 'w: 'a>(
    mut ws: impl Iterator<Item = &'a TernaryMatrix<'w>>,
    acts: &QuantizedActs,
) -> Vec<i32> {
    if !ws.any(|w| matches!(w.scale, WeightScale::PerBlock(_))) {
        return Vec::new();
    }
    acts.q
        .chunks_exact(SCALE_BLOCK)
        .map(|b| b.iter().map(|&v| v as i32).sum())
        .collect()
}

/// Rows `r0..r1` of a per-tensor-scale matrix for every token: the path's GEMM where it
/// has one and the prompt is long enough, else [`per_tensor_block`].
fn per_tensor_rows(c: &Ctx, p: &Part, s: f32, r0: usize, r1: usize) {
    let n = c.acts.n_tokens;
    let Some(gemm) = c.gemm else {
        return per_tensor_block(c, p, s, r0, r1, 0, n);
    };
    // The GEMM takes 32-row groups × whole token groups; the kernels below the rest.
    let (w, acts) = (p.w, c.acts);
    let (m_rows, kp) = (w.rows, c.kp);
    let ng = c.gemm_tokens;
    let mut dots = vec![0i32; GEMM_ROWS * ng];
    let done = ng.min(n);
    let (sums, scales) = (&acts.sum[..done], &acts.scale[..done]);
    let mut m = r0;
    while m + GEMM_ROWS <= r1 {
        (gemm.run)(
            &w.data[m * w.row_bytes..],
            w.row_bytes,
            kp,
            c.packed,
            ng,
            &mut dots,
        );
        // Each token's 32 dots and outputs are contiguous: the epilogue runs straight into
        // the output (scalar transposing stores had cost 5 % of prefill).
        for (t, d) in dots.chunks_exact(GEMM_ROWS).take(done).enumerate() {
            // SAFETY: as in `per_tensor_block`.
            let dst = unsafe { p.out.slice(t * m_rows + m, GEMM_ROWS) };
            (c.kt.i2s_epilogue_row)(d, sums[t], scales[t], s, dst);
        }
        m += GEMM_ROWS;
    }
    if done < n {
        per_tensor_block(c, p, s, r0, m, done, n);
    }
    per_tensor_block(c, p, s, m, r1, 0, n);
}

/// Rows `r0..r1` × tokens `ta..tb` of a per-tensor-scale matrix: 2-row × 8-token tiles, then
/// the rest four tokens at a time and one by one.
fn per_tensor_block(c: &Ctx, p: &Part, s: f32, r0: usize, r1: usize, ta: usize, tb: usize) {
    if (2..8).contains(&(tb - ta)) {
        return per_tensor_batch(c, p, s, r0, r1, ta, tb);
    }
    let (w, acts, kt) = (p.w, c.acts, c.kt);
    let m_rows = w.rows;
    let write = |t: usize, m: usize, dot: i32| {
        let v = i2s_epilogue(dot, acts.sum[t], acts.scale[t], s);
        // SAFETY: (t, m) is in bounds (checked by the caller) and row m belongs to this task.
        unsafe { p.out.write(t * m_rows + m, v) }
    };
    let small = |m: usize, t0: usize, t1: usize| {
        let row = w.row(m);
        let mut t = t0;
        while t + 4 <= t1 {
            let d = raw_dot4(kt, row, std::array::from_fn(|i| c.qrow(t + i)));
            for (i, &d) in d.iter().enumerate() {
                write(t + i, m, d);
            }
            t += 4;
        }
        for t in t..t1 {
            write(t, m, raw_dot(kt, row, c.qrow(t)));
        }
    };
    for t0 in (ta..tb).step_by(TOKEN_TILE) {
        let t1 = (t0 + TOKEN_TILE).min(tb);
        let mut m = r0;
        while t1 - t0 >= 8 && m + 2 <= r1 {
            let rows = [w.row(m), w.row(m + 1)];
            let mut t = t0;
            while t + 8 <= t1 {
                let d = raw_tile(kt, rows, std::array::from_fn(|i| c.qrow(t + i)));
                // The epilogue on eight lanes at once (the divisions dominate it); the same
                // IEEE operations as `i2s_epilogue`, so the same bits.
                let sum: [f32; 8] = std::array::from_fn(|i| acts.sum[t + i] as f32);
                let scale: [f32; 8] = std::array::from_fn(|i| acts.scale[t + i]);
                for (r, dr) in d.iter().enumerate() {
                    let mut v = [0f32; 8];
                    for i in 0..8 {
                        v[i] = (dr[i] as f32 - sum[i]) / scale[i] * s;
                    }
                    for (i, &v) in v.iter().enumerate() {
                        // SAFETY: as in `write`.
                        unsafe { p.out.write((t + i) * m_rows + m + r, v) }
                    }
                }
                t += 8;
            }
            small(m, t, t1);
            small(m + 1, t, t1);
            m += 2;
        }
        // The rows the tiles left: tokens in fours per row, then each remaining token (all
        // of decode's) against all of them in one mat-vec call.
        let singles = t0 + (t1 - t0) / 4 * 4;
        // Decode has no such tokens. Skipping the loop matters: it made one (empty, not
        // inlined) call per row, which cost the decode mat-vec 10 % of its bandwidth.
        if singles > t0 {
            for m in m..r1 {
                small(m, t0, singles);
            }
        }
        if singles < t1 && m < r1 {
            let mut dots = vec![0i32; r1 - m];
            for t in singles..t1 {
                raw_matvec(kt, w, m, c.qrow(t), &mut dots);
                // SAFETY: as in `write`; these outputs are contiguous.
                let out = unsafe { p.out.slice(t * m_rows + m, r1 - m) };
                (kt.i2s_epilogue_row)(&dots, acts.sum[t], acts.scale[t], s, out);
            }
        }
    }
}

/// A batched decode step's tokens (2 to 7, too few for the 2 × 8 tiles): every row read
/// from memory once, two rows against four tokens per call (each activation load meets both
/// rows, each unpacked code four tokens), row pairs taken from the range's four quarters in
/// turn so that four streams read at once (as the one-token mat-vec does). A last group of
/// one or two tokens goes through the 2 × 2 tile; one of three repeats its last token and
/// drops the extra dots. Integer dots: the same results in any order.
fn per_tensor_batch(c: &Ctx, p: &Part, s: f32, r0: usize, r1: usize, ta: usize, tb: usize) {
    let (w, acts, kt) = (p.w, c.acts, c.kt);
    let m_rows = w.rows;
    let groups: [[&[i8]; 4]; 2] =
        std::array::from_fn(|g| std::array::from_fn(|i| c.qrow((ta + 4 * g + i).min(tb - 1))));
    let n_groups = (tb - ta).div_ceil(4);
    let last_two = tb - ta - 4 * (n_groups - 1) <= 2;
    let write = |m: usize, g: usize, dots: &[i32; 4]| {
        let t0 = ta + 4 * g;
        for (i, &d) in dots.iter().enumerate().take(tb - t0) {
            let t = t0 + i;
            let v = i2s_epilogue(d, acts.sum[t], acts.scale[t], s);
            // SAFETY: (t, m) is in bounds (checked by the caller) and row m belongs to this
            // task.
            unsafe { p.out.write(t * m_rows + m, v) }
        }
    };
    let kb = c.kp / I2_BLOCK * I2_BLOCK_BYTES;
    let pair = |m: usize| {
        let rows = [&w.row(m)[..kb], &w.row(m + 1)[..kb]];
        for (g, q) in groups.iter().enumerate().take(n_groups) {
            // `write` keeps only the group's real tokens, so the 2 × 2 tile's missing two
            // columns are never read.
            let d = if last_two && g + 1 == n_groups {
                (kt.i2_rows2x2)(rows, [q[0], q[1]]).map(|d| [d[0], d[1], 0, 0])
            } else {
                (kt.i2_rows2x4)(rows, *q)
            };
            write(m, g, &d[0]);
            write(m + 1, g, &d[1]);
        }
    };
    let quarter = (r1 - r0) / 8 * 2;
    for i in (0..quarter).step_by(2) {
        for j in 0..4 {
            pair(r0 + j * quarter + i);
        }
    }
    let mut m = r0 + 4 * quarter;
    while m + 2 <= r1 {
        pair(m);
        m += 2;
    }
    if m < r1 {
        let row = w.row(m);
        for (g, q) in groups.iter().enumerate().take(n_groups) {
            write(m, g, &raw_dot4(kt, row, *q));
        }
    }
}
