//! `std::arch` twins of the portable kernels.

use crate::dispatch::{KernelPath, Kernels};

/// The body of a path's decode mat-vec (`Kernels::i2_matvec`): rows go to `$rows4` four at a
/// time, one from each quarter of the range, so that every call streams from four places at
/// once (one stream per core reads DRAM ~30 % slower on the test machine); the last
/// `n % 4` rows go to `$dot`. Expanded inside each path's `#[target_feature]` function, so
/// both kernels inline and the loop over rows costs no call per row.
#[allow(unused_macros)] // unused on targets without a SIMD table
macro_rules! i2_matvec_by_quarters {
    ($w:expr, $row_bytes:expr, $q:expr, $dots:expr, $rows4:expr, $dot:expr) => {{
        let (w, rb, q, dots): (&[u8], usize, &[i8], &mut [i32]) = ($w, $row_bytes, $q, $dots);
        let used = q.len() / 128 * 32;
        let n = dots.len();
        assert!(
            used <= rb && (n == 0 || w.len() >= (n - 1) * rb + used),
            "i2_matvec: {n} rows of {rb} bytes do not fit in {} bytes",
            w.len()
        );
        let row = |m: usize| &w[m * rb..m * rb + used];
        let quarter = n / 4;
        for i in 0..quarter {
            let rows = [
                row(i),
                row(quarter + i),
                row(2 * quarter + i),
                row(3 * quarter + i),
            ];
            let d = $rows4(rows, q);
            for (j, d) in d.into_iter().enumerate() {
                dots[j * quarter + i] = d;
            }
        }
        for m in 4 * quarter..n {
            dots[m] = $dot(row(m), q);
        }
    }};
}

/// The constants of the vector `exp` both architectures implement (`arch/*/activation.rs`).
// Unused on targets without a SIMD table. The digits are the fit's as it printed them (f32
// rounds them to the same values).
#[allow(dead_code, clippy::excessive_precision)]
mod exp_consts {
    /// ln 2 split so that `n · LN2_HI` is exact for every |n| ≤ 150 (9 significant bits).
    pub const LN2_HI: f32 = 0.693_359_375;
    pub const LN2_LO: f32 = -2.121_944_4e-4;
    /// e^r on |r| ≤ ln2/2 is `1 + r + r²·P(r)`, `P` highest power first.
    pub const P: [f32; 6] = [
        1.987_569_1e-4,
        1.398_2e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        5.000_000_1e-1,
    ];
    /// Inputs are clamped to this range before the reduction: below it e^x rounds to 0, and
    /// 2^n for the clamped x splits into two normal halves.
    pub const X_MIN: f32 = -104.0;
    pub const X_MAX: f32 = 88.8;
    /// ln(f32::MAX): above it the result is +inf.
    pub const X_OVERFLOW: f32 = 88.722_84;
}

#[macro_use]
mod gemm32;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[macro_use]
mod float;

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

pub fn avx2_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// AVX-VNNI (256-bit `vpdpbusd`, VEX-encoded) on top of the AVX2 set.
pub fn avx_vnni_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        avx2_available() && std::arch::is_x86_feature_detected!("avxvnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// AVX-512 VNNI on top of the AVX2 set (the other table entries reuse the AVX2 kernels).
pub fn avx512_vnni_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        avx2_available()
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// AMX-INT8 (and the tile state granted by the OS) on top of AVX-512 VNNI.
pub fn amx_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64::amx_available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

pub fn neon_available() -> bool {
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("neon")
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        false
    }
}

pub fn neon_dotprod_available() -> bool {
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("neon")
            && std::arch::is_aarch64_feature_detected!("dotprod")
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        false
    }
}

/// A 2-row × 8-token tile from four 1-row × 4-token dots, for paths without a two-row tile
/// kernel (NEON's; the x86 paths have their own).
#[inline(always)]
#[allow(dead_code)] // unused on targets without a SIMD table
pub(crate) fn tile_from_dot4(
    w: [&[u8]; 2],
    q: [&[i8]; 8],
    dot4: impl Fn(&[u8], [&[i8]; 4]) -> [i32; 4],
) -> [[i32; 8]; 2] {
    let (lo, hi) = ([q[0], q[1], q[2], q[3]], [q[4], q[5], q[6], q[7]]);
    w.map(|row| {
        let (a, b) = (dot4(row, lo), dot4(row, hi));
        [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]
    })
}

/// A 2-row × 2-token tile from a path's 2 × 4 tile, the second token repeated: the same
/// cost, for paths without a kernel of their own for this shape.
#[inline(always)]
#[allow(dead_code)] // unused on targets without a SIMD table
pub(crate) fn rows2x2_from_rows2x4(
    w: [&[u8]; 2],
    q: [&[i8]; 2],
    rows2x4: impl Fn([&[u8]; 2], [&[i8]; 4]) -> [[i32; 4]; 2],
) -> [[i32; 2]; 2] {
    rows2x4(w, [q[0], q[1], q[1], q[1]]).map(|d| [d[0], d[1]])
}

/// The 2 × 8 tile from its two 2-row × 4-token halves (tokens 0..4 and 4..8), for paths that
/// compute it in two passes.
#[inline(always)]
#[allow(dead_code)] // unused on targets without a SIMD table
pub(crate) fn join_token_halves(lo: [[i32; 4]; 2], hi: [[i32; 4]; 2]) -> [[i32; 8]; 2] {
    std::array::from_fn(|r| std::array::from_fn(|t| if t < 4 { lo[r][t] } else { hi[r][t - 4] }))
}

/// Tables no path selects on this CPU whose kernels another CPU's path runs (see
/// [`crate::dispatch::tables_under_test`]).
pub fn variant_tables() -> Vec<&'static Kernels> {
    #[cfg(target_arch = "x86_64")]
    {
        let mut t: Vec<&'static Kernels> = Vec::new();
        if avx512_vnni_available() && !amx_available() {
            t.push(&x86_64::AVX512_PAIRS);
        }
        if avx512_vnni_available() && !avx_vnni_available() {
            t.push(&x86_64::AVX_VNNI_EVEX);
        }
        t
    }
    #[cfg(not(target_arch = "x86_64"))]
    Vec::new()
}

/// The SIMD table of a path, when this build has one.
pub fn table(path: KernelPath) -> Option<&'static Kernels> {
    match path {
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2 => Some(&x86_64::AVX2),
        #[cfg(target_arch = "x86_64")]
        KernelPath::AvxVnni => Some(&x86_64::AVX_VNNI),
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx512Vnni => Some(&x86_64::AVX512_VNNI),
        #[cfg(target_arch = "x86_64")]
        KernelPath::Amx => Some(&x86_64::AMX),
        #[cfg(target_arch = "aarch64")]
        KernelPath::Neon => Some(&aarch64::NEON),
        #[cfg(target_arch = "aarch64")]
        KernelPath::NeonDotprod => Some(&aarch64::NEON_DOTPROD),
        _ => None,
    }
}
