//! AMX-INT8 prefill GEMM: 32 weight rows × every token of a prompt in 16 × 16 tiles.
//!
//! `tdpbusd` multiplies a 16 × 64 tile of unsigned bytes by a 64 × 16 tile of signed bytes
//! into 16 × 16 i32 (16 K multiply-adds per instruction, against 64 for a 512-bit
//! `vpdpbusd`). The I2 codes (0..=2) are the unsigned side, unpacked to bytes one 128-column
//! block of the 32 rows at a time into a 4 KiB scratch that stays in L1; the int8
//! activations are the signed side, packed once per matmul by
//! [`crate::portable::pack_acts_tiles16`]. Four accumulator tiles cover 32 rows × 32 tokens;
//! more tokens repeat the unpacking per 32 of them, which costs less than unpacking whole
//! rows once into a `32 × K` scratch (80 KiB at K = 2560, past L1) and reading them back:
//! on the 6912 × 2560 matmul, 2 threads, AMX Xeon, 16 tokens took 290–300 µs against 567,
//! 128 tokens 1.61–1.67 ms against 2.64.
//!
//! Rust has no stable AMX intrinsics, so the tile instructions are inline assembly. The
//! compiler never uses tile registers itself, so their contents survive between the
//! `asm!` blocks of one call; each call loads its tile configuration and releases the tile
//! state before it returns. Linux hands the tile-data state to a process only after
//! `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, which [`available`] asks for once.

use std::arch::asm;
use std::arch::x86_64::*;
use std::sync::OnceLock;

use crate::arch::gemm32::check_shapes;
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
    for g0 in (0..groups).step_by(2) {
        // SAFETY: the caller guarantees AMX-INT8 with the tile state granted; the shapes
        // are checked above, and group g0 starts 16·k bytes of `packed` and 16·32 outputs
        // per group in.
        unsafe {
            group_pair(
                rows,
                row_bytes,
                k,
                &packed[g0 * 16 * k..],
                (groups - g0).min(2),
                &mut out[g0 * 16 * ROWS..],
            )
        };
    }
}

/// 128 unpacked columns of the 32 rows, `r · 128 + col`: what one I2 block of each row
/// holds. Two of them, so the next block unpacks while the tile unit reads the last.
#[repr(C, align(64))]
struct BlockCodes([[u8; ROWS * 128]; 2]);

/// [`i2_gemm32`] for one or two groups of 16 tokens: every 128-column block of the rows is
/// unpacked, then multiplied while the next one unpacks.
///
/// # Safety
/// As [`i2_gemm32`], with the shapes checked and `groups` 1 or 2.
#[target_feature(enable = "avx2,avx512f")]
unsafe fn group_pair(
    rows: &[u8],
    row_bytes: usize,
    k: usize,
    packed: &[i8],
    groups: usize,
    out: &mut [i32],
) {
    let n = 16 * groups;
    let pair = groups == 2;
    let mut codes = BlockCodes([[0; ROWS * 128]; 2]);
    let mut rm = [0i32; ROWS * 32];
    let group_bytes = 16 * k;
    // SAFETY: the caller guarantees AMX-INT8 with the tile state granted. Reads: block b
    // of row r is the 32 bytes at r · row_bytes + 32b, b < k / 128 (inside `rows` by
    // `check_shapes`); the tile loads read 16 rows of 64 bytes 128 apart inside one
    // `codes` buffer, and 16 rows of 64 bytes of `packed` inside group g < groups
    // (n · k bytes, checked). The stores write 16 rows of 16 i32, n apart, inside `rm`.
    unsafe {
        asm!("ldtilecfg [{0}]", in(reg) &CONFIG as *const TileConfig, options(nostack));
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        );
        let blocks = k / 128;
        let unpack_block = |blk: usize, buf: *mut u8| {
            for r in 0..ROWS {
                // Planes 0 | 1 and 2 | 3 are the row's first and second 64 columns: two
                // 64-byte stores instead of four 32-byte ones (16 tokens: −10 % time).
                let p = super::simd::unpack(rows.as_ptr().add(r * row_bytes + 32 * blk));
                let lo = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(p[0]), p[1]);
                let hi = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(p[2]), p[3]);
                _mm512_store_si512(buf.add(r * 128) as *mut __m512i, lo);
                _mm512_store_si512(buf.add(r * 128 + 64) as *mut __m512i, hi);
            }
        };
        unpack_block(0, codes.0[0].as_mut_ptr());
        for blk in 0..blocks {
            // The next block's stores go first: a tile load waits for the stores it reads
            // to leave the store buffer, and by then this block's have.
            if blk + 1 < blocks {
                unpack_block(blk + 1, codes.0[(blk + 1) % 2].as_mut_ptr());
            }
            let buf = codes.0[blk % 2].as_ptr();
            for half in 0..2 {
                let chunk = 2 * blk + half;
                asm!(
                    "tileloadd tmm4, [{alo} + {ks}]",
                    "tileloadd tmm5, [{ahi} + {ks}]",
                    "tileloadd tmm6, [{b} + {bs}]",
                    "tdpbusd tmm0, tmm4, tmm6",
                    "tdpbusd tmm1, tmm5, tmm6",
                    alo = in(reg) buf.add(64 * half),
                    ahi = in(reg) buf.add(16 * 128 + 64 * half),
                    b = in(reg) packed.as_ptr().add(1024 * chunk),
                    ks = in(reg) 128usize,
                    bs = in(reg) 64usize,
                    options(nostack, readonly)
                );
                if pair {
                    asm!(
                        "tileloadd tmm7, [{b} + {bs}]",
                        "tdpbusd tmm2, tmm4, tmm7",
                        "tdpbusd tmm3, tmm5, tmm7",
                        b = in(reg) packed.as_ptr().add(group_bytes + 1024 * chunk),
                        bs = in(reg) 64usize,
                        options(nostack, readonly)
                    );
                }
            }
        }
        let c = rm.as_mut_ptr();
        asm!(
            "tilestored [{c0} + {s}], tmm0",
            "tilestored [{c1} + {s}], tmm1",
            c0 = in(reg) c,
            c1 = in(reg) c.add(16 * n),
            s = in(reg) 4 * n,
            options(nostack)
        );
        if pair {
            asm!(
                "tilestored [{c0} + {s}], tmm2",
                "tilestored [{c1} + {s}], tmm3",
                c0 = in(reg) c.add(16),
                c1 = in(reg) c.add(16 * n + 16),
                s = in(reg) 4 * n,
                options(nostack)
            );
        }
        asm!("tilerelease", options(nostack, nomem));
        to_token_major(&rm, n, out);
    }
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
