//! AMX-INT8 prefill GEMM: 32 weight rows × every token of a prompt in 16 × 16 tiles.
//!
//! `tdpbusd` multiplies a 16 × 64 tile of unsigned bytes by a 64 × 16 tile of signed bytes
//! into 16 × 16 i32 (16 K multiply-adds per instruction, against 64 for a 512-bit
//! `vpdpbusd`). The I2 codes (0..=2) are the unsigned side: 32 rows are unpacked once per
//! call into a scratch of `32 × K` bytes (natural column order) and reused for every token
//! group; the int8 activations are the signed side, packed once per matmul by
//! [`crate::portable::pack_acts_tiles16`]. Four accumulator tiles cover 32 rows × 32 tokens.
//!
//! Rust has no stable AMX intrinsics, so the tile instructions are inline assembly. The
//! compiler never uses tile registers itself, so their contents survive between the
//! `asm!` blocks of one call; each call loads its tile configuration and releases the tile
//! state before it returns. Linux hands the tile-data state to a process only after
//! `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, which [`available`] asks for once.

use std::arch::asm;
use std::arch::x86_64::*;
use std::sync::OnceLock;

use super::gemm::unpack_rows;
use crate::arch::gemm32::{check_shapes, CODES, SUMS};
use crate::portable::GEMM_ROWS as ROWS;

/// The 64-byte `ldtilecfg` operand (palette 1): every tile used is 16 rows × 64 bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

const CONFIG: TileConfig = TileConfig {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    colsb: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
};

/// CPUID says AMX-TILE and AMX-INT8, and the kernel granted this process the tile state.
pub fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        if !super::super::avx512_vnni_available() {
            return false;
        }
        // CPUID leaf 7 exists on every CPU with AVX-512.
        let r = __cpuid_count(7, 0);
        let (tile, int8) = ((r.edx >> 24) & 1 == 1, (r.edx >> 25) & 1 == 1);
        tile && int8 && request_tile_state()
    })
}

#[cfg(target_os = "linux")]
fn request_tile_state() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: arch_prctl only changes this process's permitted XSAVE features; it fails
    // with an error code (never faults) on kernels without AMX support.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack)
        );
    }
    ret == 0
}

#[cfg(not(target_os = "linux"))]
fn request_tile_state() -> bool {
    false
}

/// `out[t · 32 + r] = Σ_col code(r, col) · q(t, col)` (token-major) for the 32 rows
/// starting at `rows` and the `n` tokens (a multiple of 16) whose activations `packed`
/// holds in the tile layout of `pack_acts_tiles16`. Exact (i32; |sum| ≤ 2 · 128 · K).
///
/// # Safety
/// The CPU must have AMX-INT8 with the tile state granted ([`available`]).
///
/// # Panics
/// As `arch::gemm32::check_shapes` (groups of 16 tokens).
#[target_feature(enable = "avx2,avx512f")]
pub unsafe fn i2_gemm32(
    rows: &[u8],
    row_bytes: usize,
    k: usize,
    packed: &[i8],
    n: usize,
    out: &mut [i32],
) {
    check_shapes(rows, row_bytes, k, packed, n, 16, out);
    let groups = n / 16;
    if groups == 0 {
        return;
    }
    CODES.with(|codes| {
        SUMS.with(|sums| {
            // SAFETY: the caller guarantees AMX-INT8 with the tile state granted (this
            // function's contract) and this function enables AVX2 and AVX-512F. The
            // pointers stay in bounds: `check_shapes` proved 32 rows of k / 4 bytes in `rows`
            // (what `unpack_rows` reads) and n·k bytes in `packed`; `codes` holds 32·k bytes,
            // whose tile loads read 16 rows of 64 bytes k apart from column 64c < k; group g
            // (and g + 1 when `pair`) < groups reads 16·k bytes of `packed`; the stores
            // write 16 rows of 16 i32, n apart, inside `sums` (32·n long).
            unsafe {
                let (mut codes, mut sums) = (codes.borrow_mut(), sums.borrow_mut());
                // The tiles store rows: row-major totals here, transposed once every tile is done
                // (reading a tile's store back at once would stall the tile unit every group).
                // Every element is stored before it is read, so the buffer is not cleared.
                if sums.len() < ROWS * n {
                    sums.resize(ROWS * n, 0);
                }
                let rm = sums.as_mut_ptr();
                if codes.len() < ROWS * k {
                    codes.resize(ROWS * k, 0);
                }
                unpack_rows(rows, row_bytes, k, &mut codes);
                let a_lo = codes.as_ptr();
                let a_hi = codes.as_ptr().add(16 * k);
                let chunks = k / 64;
                let group_bytes = 16 * k;
                asm!("ldtilecfg [{0}]", in(reg) &CONFIG as *const TileConfig, options(nostack));
                let mut g = 0;
                while g < groups {
                    let pair = g + 1 < groups;
                    let b0 = packed.as_ptr().add(g * group_bytes);
                    asm!(
                        "tilezero tmm0",
                        "tilezero tmm1",
                        "tilezero tmm2",
                        "tilezero tmm3",
                        options(nostack, nomem)
                    );
                    for c in 0..chunks {
                        asm!(
                            "tileloadd tmm4, [{alo} + {ks}]",
                            "tileloadd tmm5, [{ahi} + {ks}]",
                            "tileloadd tmm6, [{b} + {bs}]",
                            "tdpbusd tmm0, tmm4, tmm6",
                            "tdpbusd tmm1, tmm5, tmm6",
                            alo = in(reg) a_lo.add(64 * c),
                            ahi = in(reg) a_hi.add(64 * c),
                            b = in(reg) b0.add(1024 * c),
                            ks = in(reg) k,
                            bs = in(reg) 64usize,
                            options(nostack, readonly)
                        );
                        if pair {
                            asm!(
                                "tileloadd tmm7, [{b} + {bs}]",
                                "tdpbusd tmm2, tmm4, tmm7",
                                "tdpbusd tmm3, tmm5, tmm7",
                                b = in(reg) b0.add(group_bytes + 1024 * c),
                                bs = in(reg) 64usize,
                                options(nostack, readonly)
                            );
                        }
                    }
                    // C tile (rows 16h.., tokens 16g..) → rm[(16h + i) · n + 16g + j].
                    asm!(
                        "tilestored [{c0} + {s}], tmm0",
                        "tilestored [{c1} + {s}], tmm1",
                        c0 = in(reg) rm.add(16 * g),
                        c1 = in(reg) rm.add(16 * n + 16 * g),
                        s = in(reg) 4 * n,
                        options(nostack)
                    );
                    if pair {
                        asm!(
                            "tilestored [{c0} + {s}], tmm2",
                            "tilestored [{c1} + {s}], tmm3",
                            c0 = in(reg) rm.add(16 * (g + 1)),
                            c1 = in(reg) rm.add(16 * n + 16 * (g + 1)),
                            s = in(reg) 4 * n,
                            options(nostack)
                        );
                    }
                    g += if pair { 2 } else { 1 };
                }
                asm!("tilerelease", options(nostack, nomem));
                to_token_major(&sums, n, out);
            }
        })
    });
}

/// `out[t · 32 + r] = rm[r · n + t]` for the 32 rows and `n` tokens (a multiple of 16), by
/// 16 × 16 register transposes (64 shuffles per 256 dots), where the matmul used to
/// transpose with two scalar moves per output.
#[target_feature(enable = "avx2,avx512f")]
fn to_token_major(rm: &[i32], n: usize, out: &mut [i32]) {
    assert!(rm.len() >= ROWS * n && out.len() >= ROWS * n);
    for g in 0..n / 16 {
        for h in 0..2 {
            // SAFETY: g < n / 16 and h < 2 (asserted lengths above): rows 16h..16h + 16 of
            // `rm` from column 16g, and columns 16h.. of tokens 16g..16g + 16 of `out`.
            unsafe {
                let src = rm.as_ptr().add(16 * h * n + 16 * g);
                let rows: [__m512i; 16] =
                    std::array::from_fn(|i| _mm512_loadu_si512(src.add(i * n) as *const _));
                let dst = out.as_mut_ptr().add(16 * ROWS * g + 16 * h);
                for (j, col) in transpose16(rows).into_iter().enumerate() {
                    _mm512_storeu_si512(dst.add(ROWS * j) as *mut _, col);
                }
            }
        }
    }
}

/// The 16 × 16 transpose of 32-bit lanes: `out[c]` lane `i` = `r[i]` lane `c`. Interleaves
/// 32-bit then 64-bit elements within 128-bit lanes (after which `b[4i + m]` lane `L`
/// holds column `4L + m` of rows `4i .. 4i + 4`), then regroups the 128-bit lanes.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose16(r: [__m512i; 16]) -> [__m512i; 16] {
    let a: [__m512i; 16] = std::array::from_fn(|i| {
        let (x, y) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_epi32(x, y)
        } else {
            _mm512_unpackhi_epi32(x, y)
        }
    });
    let b: [__m512i; 16] = std::array::from_fn(|i| {
        let (g, m) = (i / 4 * 4, i % 4);
        let (x, y) = (a[g + m / 2], a[g + 2 + m / 2]);
        if m % 2 == 0 {
            _mm512_unpacklo_epi64(x, y)
        } else {
            _mm512_unpackhi_epi64(x, y)
        }
    });
    let mut out = [_mm512_setzero_si512(); 16];
    for m in 0..4 {
        let c1 = _mm512_shuffle_i32x4::<0x44>(b[m], b[4 + m]);
        let c2 = _mm512_shuffle_i32x4::<0xEE>(b[m], b[4 + m]);
        let c3 = _mm512_shuffle_i32x4::<0x44>(b[8 + m], b[12 + m]);
        let c4 = _mm512_shuffle_i32x4::<0xEE>(b[8 + m], b[12 + m]);
        out[m] = _mm512_shuffle_i32x4::<0x88>(c1, c3);
        out[4 + m] = _mm512_shuffle_i32x4::<0xDD>(c1, c3);
        out[8 + m] = _mm512_shuffle_i32x4::<0x88>(c2, c4);
        out[12 + m] = _mm512_shuffle_i32x4::<0xDD>(c2, c4);
    }
    out
}
