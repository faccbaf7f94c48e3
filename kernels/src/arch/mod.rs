//! `std::arch` twins of the portable kernels.

use crate::dispatch::{KernelPath, Kernels};

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

/// A 2-row × 8-token tile from four 1-row × 4-token dots, for paths whose registers hold no
/// wider tile (AVX2's and NEON's sixteen/thirty-two vectors are spent on the i16 partials).
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

/// The SIMD table of a path, when this build has one.
pub fn table(path: KernelPath) -> Option<&'static Kernels> {
    match path {
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2 => Some(&x86_64::AVX2),
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
