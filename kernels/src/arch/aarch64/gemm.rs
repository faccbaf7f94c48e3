//! NEON prefill GEMMs: 32 weight rows × every token of a prompt, on the plan of the x86
//! chunked GEMMs (`arch::gemm32`): the 32 rows' codes unpacked once per column chunk to one
//! byte per code, activations packed chunk-major, and a 4-row × 4-token micro-kernel that
//! holds four code vectors and four activation vectors in registers, so that its loop is
//! eight loads per sixteen multiply-adds and no unpacking. The dot tiles it replaces
//! (`simd::i2_dot4`) unpack every code block for each row (six ops per block shared by only
//! four tokens) and read four tokens per row.
//!
//! With dotprod, one `sdot` per code vector and activation vector adds sixteen products into
//! four i32 lanes; without it, `smull` + `smlal2` form the sixteen products as eight i16
//! pairs (each ≤ 2 · 3 · 128 in magnitude) and `sadalp` widens them into the i32 lanes. Both
//! are exact, and 32 vector registers hold the 16 accumulators with room to spare.

use std::arch::aarch64::*;

use super::simd::{sdot, unpack};
use crate::portable::GEMM_ROWS as ROWS;

/// Tokens per micro-tile; the GEMM takes whole quads.
pub const TOKENS: usize = 4;

/// Token quads per pass of the eight row quads over a chunk: 128 tokens × ≤ 2048 columns is
/// ≤ 256 KiB of activations, which stays in the L2 of the cores this targets (≥ 512 KiB on
/// Cortex-A76 and Neoverse, shared and larger on Apple's).
const QUADS_PER_BLOCK: usize = 32;

/// Unpacks 32 rows of I2 codes (layout A, `k / 4` bytes each, `row_bytes` apart) into
/// `out[r·k + col]`, one byte per code.
///
/// # Safety
/// `rows` holds 32 rows of `k / 4` bytes, `row_bytes` apart, and `out` at least 32·k bytes.
#[target_feature(enable = "neon")]
unsafe fn unpack_rows(rows: &[u8], row_bytes: usize, k: usize, out: &mut [u8]) {
    // SAFETY: the caller guarantees 32 rows of `k / 4` bytes `row_bytes` apart in `rows`
    // and 32·k bytes in `out`: every block read and plane written is inside them.
    unsafe {
        for r in 0..ROWS {
            let src = rows.as_ptr().add(r * row_bytes);
            let dst = out.as_mut_ptr().add(r * k) as *mut i8;
            for blk in 0..k / 128 {
                let planes = unpack(src.add(blk * 32));
                for (p, halves) in planes.iter().enumerate() {
                    for (h, &v) in halves.iter().enumerate() {
                        vst1q_s8(dst.add(blk * 128 + 32 * p + 16 * h), v);
                    }
                }
            }
        }
    }
}

/// Adds each row's four token totals (`acc[4·r + t]` lane sums) to `sums[4·r..][..4]`.
///
/// # Safety
/// `sums` is valid for reading and writing 16 i32.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn add_totals16(sums: *mut i32, acc: &[int32x4_t; 16]) {
    // SAFETY: the caller guarantees 16 readable and writable i32 at `sums`; row r
    // reads and writes `sums[4r..4r + 4]`.
    unsafe {
        for r in 0..4 {
            let a = &acc[4 * r..4 * r + 4];
            let t = vpaddq_s32(vpaddq_s32(a[0], a[1]), vpaddq_s32(a[2], a[3]));
            let p = sums.add(4 * r);
            vst1q_s32(p, vaddq_s32(vld1q_s32(p), t));
        }
    }
}

/// Four rows of unpacked codes and four tokens' activations (both `len` apart) over `len`
/// columns (a multiple of 16), added into the sixteen totals at `sums` (4·r + t);
/// `madd(acc, codes, acts)` adds the sixteen products of one code and one activation vector
/// into `acc`'s four lanes. Always inlined, so that `madd` is too (NEON is baseline on
/// aarch64, so this needs no `target_feature` of its own).
///
/// # Safety
/// `codes` holds 4 rows and `q` 4 rows of `len` bytes (a multiple of 16), each `len` apart,
/// and `sums` 16 writable i32.
#[inline(always)]
unsafe fn rows4x4(
    codes: *const u8,
    q: *const i8,
    len: usize,
    sums: *mut i32,
    madd: impl Fn(int32x4_t, int8x16_t, int8x16_t) -> int32x4_t,
) {
    // SAFETY: the caller guarantees 4 code rows and 4 activation rows of `len` bytes,
    // `len` apart, and 16 totals at `sums`; `o < len` keeps every load inside them.
    unsafe {
        let mut acc = [vdupq_n_s32(0); 16];
        for o in (0..len).step_by(16) {
            let x: [int8x16_t; TOKENS] = std::array::from_fn(|t| vld1q_s8(q.add(t * len + o)));
            for r in 0..4 {
                let c = vld1q_s8(codes.add(r * len + o) as *const i8);
                for t in 0..TOKENS {
                    acc[4 * r + t] = madd(acc[4 * r + t], c, x[t]);
                }
            }
        }
        add_totals16(sums, &acc);
    }
}

/// [`rows4x4`] by `sdot`.
///
/// # Safety
/// As [`rows4x4`].
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn rows4x4_sdot(codes: *const u8, q: *const i8, len: usize, sums: *mut i32) {
    // SAFETY: forwarded from this function's contract; the closure inherits dotprod.
    unsafe { rows4x4(codes, q, len, sums, |acc, c, x| sdot(acc, c, x)) };
}

/// [`rows4x4`] without dotprod: widening multiplies into i16 pairs, pairwise-added into
/// the i32 lanes.
///
/// # Safety
/// As [`rows4x4`].
#[inline]
#[target_feature(enable = "neon")]
unsafe fn rows4x4_neon(codes: *const u8, q: *const i8, len: usize, sums: *mut i32) {
    // SAFETY: forwarded from this function's contract.
    unsafe {
        rows4x4(codes, q, len, sums, |acc, c, x| {
            let p = vmlal_high_s8(vmull_s8(vget_low_s8(c), vget_low_s8(x)), c, x);
            vpadalq_s16(acc, p)
        })
    };
}

/// `out[t · 32 + r] = Σ_col code(r, col) · q(t, col)` (token-major) for the 32 rows at
/// `rows` and the `n` tokens (a multiple of four) whose activations `packed` holds
/// chunk-major (`portable::pack_acts_chunks`). Exact (i32).
///
/// # Panics
/// As `arch::gemm32::check_shapes`.
#[target_feature(enable = "neon")]
pub fn i2_gemm32(
    rows: &[u8],
    row_bytes: usize,
    k: usize,
    packed: &[i8],
    n: usize,
    out: &mut [i32],
) {
    gemm32_driver!(rows, row_bytes, k, packed, n, out,
        tokens: TOKENS, groups_per_block: QUADS_PER_BLOCK, unpack: unpack_rows,
        micro: rows4x4_neon);
}

/// [`i2_gemm32`] on `sdot`.
///
/// # Panics
/// As `arch::gemm32::check_shapes`.
#[target_feature(enable = "neon,dotprod")]
pub fn i2_gemm32_sdot(
    rows: &[u8],
    row_bytes: usize,
    k: usize,
    packed: &[i8],
    n: usize,
    out: &mut [i32],
) {
    gemm32_driver!(rows, row_bytes, k, packed, n, out,
        tokens: TOKENS, groups_per_block: QUADS_PER_BLOCK, unpack: unpack_rows,
        micro: rows4x4_sdot);
}
