//! What every 32-row prefill GEMM shares, on both architectures: the scratch buffers, the
//! shape check, the table row, and the loop nest ([`gemm32_driver!`]) the chunked GEMMs
//! (AVX2, AVX-VNNI, AVX-512 VNNI, NEON) expand around their micro-kernels. The x86 AVX2
//! GEMM's module (`x86_64/gemm.rs`) explains the plan.

// Unused on targets without a SIMD table.
#![allow(dead_code, unused_macros)]

use std::cell::RefCell;

use crate::dispatch::{I2Gemm, I2GemmRun};
use crate::portable::{pack_acts_chunks, GEMM_ROWS};

thread_local! {
    /// The unpacked codes of the current 32 rows (AMX: all K columns; the others: one chunk).
    pub(crate) static CODES: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// A GEMM's i32 totals, one per (row, token), in micro-tile order.
    pub(crate) static SUMS: RefCell<Vec<i32>> = const { RefCell::new(Vec::new()) };
}

/// The shapes every GEMM entry requires (see `dispatch::I2Gemm::run`): `k` a positive
/// multiple of 128, `n` of `group`, and buffers as long as the shapes say.
///
/// # Panics
/// Naming the first requirement broken.
pub(crate) fn check_shapes(
    rows: &[u8],
    row_bytes: usize,
    k: usize,
    packed: &[i8],
    n: usize,
    group: usize,
    out: &[i32],
) {
    assert!(
        k.is_multiple_of(128) && k > 0,
        "i2_gemm32: K = {k} is not a multiple of 128"
    );
    assert!(
        n.is_multiple_of(group),
        "i2_gemm32: {n} tokens are not whole groups of {group}"
    );
    assert!(
        row_bytes >= k / 4 && rows.len() >= (GEMM_ROWS - 1) * row_bytes + k / 4,
        "i2_gemm32: rows too short"
    );
    assert!(
        packed.len() >= n * k,
        "i2_gemm32: packed activations too short"
    );
    assert!(out.len() >= GEMM_ROWS * n, "i2_gemm32: output too short");
}

/// A GEMM on chunk-major activations (`portable::pack_acts_chunks`): every GEMM but AMX's,
/// which differ only in their token group.
pub(crate) const fn chunked_gemm(group: usize, run: I2GemmRun) -> Option<I2Gemm> {
    Some(I2Gemm {
        group,
        min_tokens: 16,
        // Their groups are 2 or 4 tokens: what is left over is too little to pad.
        pad_from: usize::MAX,
        pack: pack_acts_chunks,
        run,
    })
}

/// The loop nest of the chunked GEMMs: per column chunk, the 32 rows' codes unpacked to
/// bytes by `unpack(rows, row_bytes, len, codes)` (`codes[r·len + j]`), then tokens in
/// blocks of `groups_per_block` micro-tiles, every row quad over every group of `tokens`
/// tokens, `micro(codes, acts, len, sums)` adding a 4-row × `tokens` tile's totals
/// (row-major) into `sums`; at the end the totals are written token-major
/// (`out[t · 32 + r]`). Expanded inside each entry's `#[target_feature]` function, so that
/// the micro-kernel inlines.
macro_rules! gemm32_driver {
    ($rows:expr, $row_bytes:expr, $k:expr, $packed:expr, $n:expr, $out:expr,
     tokens: $tokens:expr, groups_per_block: $gpb:expr, unpack: $unpack:path,
     micro: $micro:path) => {{
        use $crate::arch::gemm32::{check_shapes, CODES, SUMS};
        use $crate::portable::{gemm_chunk_len, GEMM_ROWS};
        let (rows, row_bytes, k, packed, n, out): (&[u8], usize, usize, &[i8], usize, &mut [i32]) =
            ($rows, $row_bytes, $k, $packed, $n, $out);
        const T: usize = $tokens;
        check_shapes(rows, row_bytes, k, packed, n, T, out);
        if n > 0 {
            CODES.with(|codes| {
                SUMS.with(|sums| {
                    let (mut codes, mut sums) = (codes.borrow_mut(), sums.borrow_mut());
                    let chunk = gemm_chunk_len(k);
                    if codes.len() < GEMM_ROWS * chunk {
                        codes.resize(GEMM_ROWS * chunk, 0);
                    }
                    sums.clear();
                    sums.resize(GEMM_ROWS * n, 0);
                    let groups = n / T;
                    // SAFETY: `check_shapes` proved the buffers as long as the shapes say, so
                    // `unpack` reads 32 rows of `len / 4` bytes from column c0 inside `rows`,
                    // `micro` reads a group's T·len activations of this chunk inside `packed`
                    // (n·k long) and adds 4·T totals inside `sums` (32·n long); the caller's
                    // `#[target_feature]` (the entry's contract) enables what they need.
                    unsafe {
                        for c0 in (0..k).step_by(chunk) {
                            let len = chunk.min(k - c0);
                            // This chunk's codes only (32 × len bytes), rows `len` apart.
                            $unpack(&rows[c0 / 4..], row_bytes, len, &mut codes);
                            let acts = packed.as_ptr().add(c0 * n);
                            // Tokens in blocks whose chunk of activations stays in L2.
                            for b0 in (0..groups).step_by($gpb) {
                                let b1 = (b0 + $gpb).min(groups);
                                for rq in 0..GEMM_ROWS / 4 {
                                    let c = codes.as_ptr().add(rq * 4 * len);
                                    for g in b0..b1 {
                                        let s = sums.as_mut_ptr().add((rq * groups + g) * 4 * T);
                                        $micro(c, acts.add(T * g * len), len, s);
                                    }
                                }
                            }
                        }
                    }
                    // sums[(rq, g)][T·r + t] is row 4·rq + r, token T·g + t.
                    for rq in 0..GEMM_ROWS / 4 {
                        for g in 0..groups {
                            let s = &sums[(rq * groups + g) * 4 * T..][..4 * T];
                            for r in 0..4 {
                                for t in 0..T {
                                    out[(T * g + t) * GEMM_ROWS + 4 * rq + r] = s[T * r + t];
                                }
                            }
                        }
                    }
                })
            });
        }
    }};
}
