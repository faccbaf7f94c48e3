//! AVX-512 VNNI prefill GEMM: 32 weight rows × every token of a prompt, for CPUs with
//! AVX-512 VNNI but no AMX (Zen 4, Ice Lake, …).
//!
//! The same plan as the AVX2 GEMM (`gemm.rs`): 32 rows unpacked once per column chunk to
//! one byte per code, activations packed chunk-major, tokens in blocks whose chunk stays in
//! L2. What changes is the micro-kernel: `vpdpbusd` multiplies 64 code bytes by 64
//! activations and adds into i32 lanes in one instruction, so there is no i16 stage and no
//! add to share the vector pipes with, and 32 registers hold a 4-row × 4-token tile (16
//! accumulators, four code and four activation vectors per 64-column step: eight loads per
//! sixteen multiply-adds). The sixteen accumulators are folded into one vector of sixteen
//! totals once per chunk (45 shuffles and adds against the chunk's ≥ 32 steps × 16).

use std::arch::x86_64::*;

/// Tokens per micro-tile; the GEMM takes whole quads.
pub const TOKENS: usize = 4;

/// Token quads per pass of the eight row quads over a chunk: 128 tokens × ≤ 2048 columns is
/// ≤ 256 KiB of activations, a quarter of Zen 4's L2.
const QUADS_PER_BLOCK: usize = 32;

/// `out[t · 32 + r] = Σ_col code(r, col) · q(t, col)` (token-major) for the 32 rows at
/// `rows` and the `n` tokens (a multiple of four) whose activations `packed` holds
/// chunk-major (`portable::pack_acts_chunks`). Exact (i32).
///
/// # Panics
/// If `k` is not a multiple of 128, `n` is not a multiple of four, or a buffer is shorter
/// than the shapes say.
#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
pub fn i2_gemm32(
    rows: &[u8],
    row_bytes: usize,
    k: usize,
    packed: &[i8],
    n: usize,
    out: &mut [i32],
) {
    gemm32_driver!(rows, row_bytes, k, packed, n, out,
        tokens: TOKENS, groups_per_block: QUADS_PER_BLOCK, unpack: super::gemm::unpack_rows,
        micro: rows4x4);
}

/// Four rows of unpacked codes and four tokens' activations (both `len` apart) over `len`
/// columns (a multiple of 64), added into the sixteen totals at `sums` (4·r + t).
///
/// # Safety
/// `codes` holds 4 rows and `q` 4 rows of `len` bytes (a multiple of 64), each `len` apart,
/// and `sums` 16 writable i32.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn rows4x4(codes: *const u8, q: *const i8, len: usize, sums: *mut i32) {
    // SAFETY: the caller guarantees 4 code rows and 4 activation rows of `len` bytes,
    // `len` apart, and 16 totals at `sums`; `o < len` keeps every load inside them.
    unsafe {
        let mut acc = [_mm512_setzero_si512(); 16];
        for o in (0..len).step_by(64) {
            let x: [__m512i; TOKENS] =
                std::array::from_fn(|t| _mm512_loadu_si512(q.add(t * len + o) as *const _));
            for r in 0..4 {
                let c = _mm512_loadu_si512(codes.add(r * len + o) as *const _);
                for t in 0..TOKENS {
                    acc[4 * r + t] = _mm512_dpbusd_epi32(acc[4 * r + t], c, x[t]);
                }
            }
        }
        let p = sums as *mut __m512i;
        _mm512_storeu_si512(p, _mm512_add_epi32(_mm512_loadu_si512(p), fold16(&acc)));
    }
}

/// Sixteen vectors to the vector of their sixteen lane totals, `total[i] = Σ a[i]`: pairs
/// are interleaved and added, first 32-bit, then 64-bit elements within 128-bit lanes, then
/// 128-bit lanes across vectors, so that every level halves the vectors and keeps order.
#[inline]
#[target_feature(enable = "avx512f")]
fn fold16(a: &[__m512i; 16]) -> __m512i {
    let b: [__m512i; 8] = std::array::from_fn(|m| {
        let (x, y) = (a[2 * m], a[2 * m + 1]);
        _mm512_add_epi32(_mm512_unpacklo_epi32(x, y), _mm512_unpackhi_epi32(x, y))
    });
    // c[p]'s every 128-bit lane holds partial totals of a[4p .. 4p + 4], in order.
    let c: [__m512i; 4] = std::array::from_fn(|p| {
        let (u, v) = (b[2 * p], b[2 * p + 1]);
        _mm512_add_epi32(_mm512_unpacklo_epi64(u, v), _mm512_unpackhi_epi64(u, v))
    });
    let lanes = |u: __m512i, v: __m512i| {
        _mm512_add_epi32(
            _mm512_shuffle_i32x4::<0b10_00_10_00>(u, v),
            _mm512_shuffle_i32x4::<0b11_01_11_01>(u, v),
        )
    };
    lanes(lanes(c[0], c[1]), lanes(c[2], c[3]))
}
