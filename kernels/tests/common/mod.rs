//! Test helpers: fixture loading (a minimal .npy reader), a deterministic RNG, and the SIMD
//! tables under test with the lengths and bit comparisons their tests share. Every helper
//! that hands a test the paths to loop over first checks that they include each path
//! `BITNET_REQUIRE_PATHS` names.
#![allow(dead_code)]

use std::path::PathBuf;

use bitnet_kernels::dispatch::{tables_under_test, Kernels};
use bitnet_kernels::testing::check_required_paths;
use bitnet_kernels::KernelPath;

pub fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Reads a little-endian `<f4` / `<i4` .npy file: (shape, raw 4-byte values).
fn npy(name: &str) -> (Vec<usize>, Vec<[u8; 4]>) {
    let b = fixture(name);
    assert_eq!(&b[..6], b"\x93NUMPY");
    let (hlen, start) = if b[6] == 1 {
        (u16::from_le_bytes([b[8], b[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(&b[start..start + hlen]).unwrap();
    assert!(header.contains("'fortran_order': False"));
    let s = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let shape: Vec<usize> = s
        .split(',')
        .filter(|x| !x.trim().is_empty())
        .map(|x| x.trim().parse().unwrap())
        .collect();
    let data = b[start + hlen..]
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect();
    (shape, data)
}

pub fn npy_f32(name: &str) -> (Vec<usize>, Vec<f32>) {
    let (s, d) = npy(name);
    (s, d.into_iter().map(f32::from_le_bytes).collect())
}

pub fn npy_i32(name: &str) -> (Vec<usize>, Vec<i32>) {
    let (s, d) = npy(name);
    (s, d.into_iter().map(i32::from_le_bytes).collect())
}

/// xorshift64* — deterministic, no dependency.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// Roughly normal (sum of uniforms).
    pub fn normal(&mut self) -> f32 {
        let mut s = 0f32;
        for _ in 0..4 {
            s += (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        }
        (s - 2.0) * 1.7
    }
    pub fn f32s(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.normal() * scale).collect()
    }
    pub fn ternary(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.below(3) as i8 - 1).collect()
    }
}

/// Panics, naming each path `BITNET_REQUIRE_PATHS` requires that `covered` lacks.
pub fn assert_covers_required_paths(covered: &[KernelPath]) {
    if let Err(e) = check_required_paths(covered) {
        panic!("{e}");
    }
}

/// Every SIMD path this CPU supports, after [`assert_covers_required_paths`].
pub fn simd_paths() -> Vec<KernelPath> {
    let paths: Vec<KernelPath> = KernelPath::simd().filter(|p| p.is_supported()).collect();
    assert_covers_required_paths(&paths);
    paths
}

/// Every SIMD table this CPU can run (`dispatch::tables_under_test`), named on stderr, after
/// [`assert_covers_required_paths`].
pub fn simd_tables() -> Vec<&'static Kernels> {
    let t = tables_under_test();
    eprintln!(
        "SIMD tables under test: {:?}",
        t.iter()
            .map(|k| (k.path.name(), k.act_layout))
            .collect::<Vec<_>>()
    );
    assert_covers_required_paths(&t.iter().map(|k| k.path).collect::<Vec<_>>());
    t
}

/// Lengths around every vector width, and odd ones.
pub const SIZES: [usize; 14] = [0, 1, 3, 7, 8, 15, 31, 32, 33, 63, 100, 255, 257, 1031];

/// The bit patterns of `v`, for bit-for-bit comparisons.
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}
