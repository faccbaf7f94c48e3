//! Run-time CPU dispatch: one table of function pointers per kernel path; a
//! [`crate::Runtime`] holds the one its kernels call through.
//!
//! [`detect`] picks the best path the CPU supports (its feature probe is cached by the
//! standard library) under the environment overrides: `BITNET_FORCE_SCALAR=1` forces the
//! portable table; `BITNET_DISABLE_AMX=1` keeps the AVX-512 VNNI kernels but not the AMX
//! prefill GEMM; `BITNET_DISABLE_AVX512=1` keeps AVX2 (or AVX-VNNI) but neither;
//! `BITNET_DISABLE_AVXVNNI=1` keeps AVX2 without the 256-bit VNNI dots;
//! `BITNET_DISABLE_DOTPROD=1` keeps NEON but not its dotprod kernels.

use crate::portable;

/// A kernel implementation family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelPath {
    Scalar,
    Avx2,
    /// AVX2 plus the VEX-encoded 256-bit `vpdpbusd` (CPUs with AVX-VNNI but no AVX-512).
    AvxVnni,
    Avx512Vnni,
    Amx,
    Neon,
    NeonDotprod,
}

impl KernelPath {
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Scalar => "scalar",
            KernelPath::Avx2 => "avx2",
            KernelPath::AvxVnni => "avx-vnni",
            KernelPath::Avx512Vnni => "avx512-vnni",
            KernelPath::Amx => "amx-int8",
            KernelPath::Neon => "neon",
            KernelPath::NeonDotprod => "neon-dotprod",
        }
    }

    /// Every path, portable first.
    pub const ALL: [KernelPath; 7] = [
        KernelPath::Scalar,
        KernelPath::Avx2,
        KernelPath::AvxVnni,
        KernelPath::Avx512Vnni,
        KernelPath::Amx,
        KernelPath::Neon,
        KernelPath::NeonDotprod,
    ];

    /// Every SIMD path (all but the portable one).
    pub fn simd() -> impl Iterator<Item = KernelPath> {
        Self::ALL.into_iter().filter(|p| *p != KernelPath::Scalar)
    }

    /// Parses `scalar`, `avx2`, `avx-vnni`, `avx512-vnni`, `amx-int8`, `neon`, `neon-dotprod`.
    pub fn from_name(s: &str) -> Option<KernelPath> {
        Self::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
    }

    /// Whether this CPU can run the path.
    pub fn is_supported(self) -> bool {
        match self {
            KernelPath::Scalar => true,
            KernelPath::Avx2 => crate::arch::avx2_available(),
            KernelPath::AvxVnni => crate::arch::avx_vnni_available(),
            KernelPath::Avx512Vnni => crate::arch::avx512_vnni_available(),
            KernelPath::Amx => crate::arch::amx_available(),
            KernelPath::Neon => crate::arch::neon_available(),
            KernelPath::NeonDotprod => crate::arch::neon_dotprod_available(),
        }
    }
}

/// The order in which a path's I2 kernels expect each activation row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActLayout {
    /// As quantised.
    Plain,
    /// [`portable::to_pairs_layout`]: 256-element chunks regrouped by code plane.
    Pairs256,
}

/// `(row, q, d, bsums)`: a quantised row against one token's Q8K activations (see
/// [`portable::dot_q6k_q8k`]); every path gives the same bits.
pub type DotQ8k = fn(&[u8], &[i8], &[f32], &[i16]) -> f32;

/// `(rows, row_bytes, k, packed, n, out)`: see [`I2Gemm::run`].
pub type I2GemmRun = fn(&[u8], usize, usize, &[i8], usize, &mut [i32]);

/// A path's prefill GEMM: [`portable::GEMM_ROWS`] weight rows × `n` tokens per call, on
/// activations the path packs its own way once per matmul.
#[derive(Clone, Copy)]
pub struct I2Gemm {
    /// `n` must be a multiple of this; the tokens left over go through `i2_tile` and the dots.
    pub group: usize,
    /// Fewest tokens for which the GEMM beats the tiles (it unpacks its 32 rows per call).
    /// Below one group, the tokens are padded to a group (`pad_from` permitting).
    pub min_tokens: usize,
    /// Fewest tokens left over after whole groups that are worth padding with zero tokens
    /// to one more group instead of running them through the tiles (`usize::MAX`: never).
    /// Only calls whose matrices all have one scale pad.
    pub pad_from: usize,
    /// `(q, k, n, out)`: packs `n` plain activation rows of `k` (a multiple of 128).
    pub pack: fn(&[i8], usize, usize, &mut Vec<i8>),
    /// `(rows, row_bytes, k, packed, n, out)`: the dots [`portable::i2_gemm32`] gives on the
    /// plain rows (`out[r·n + t]` there), token-major: `out[t·32 + r]`, each token's 32 dots
    /// together, the order the outputs take.
    pub run: I2GemmRun,
}

/// The inner loops of one path. All slices follow the contracts documented in [`portable`];
/// the activation rows given to `i2_dot`, `i2_dot4`, `i2_tile` and `i2_matvec` are in
/// `act_layout`.
pub struct Kernels {
    pub path: KernelPath,
    pub act_layout: ActLayout,
    pub absmax: fn(&[f32]) -> f32,
    pub quantize_row: fn(&[f32], &mut [i8]) -> (f32, i32),
    pub i2_dot: fn(&[u8], &[i8]) -> i32,
    pub i2_dot4: fn(&[u8], [&[i8]; 4]) -> [i32; 4],
    #[allow(clippy::type_complexity)] // the tile's shape is the type
    pub i2_tile: fn([&[u8]; 2], [&[i8]; 8]) -> [[i32; 8]; 2],
    /// Two rows against four tokens: a batched decode step's tile, where each activation
    /// load meets two rows and each unpacked code four tokens.
    #[allow(clippy::type_complexity)] // the tile's shape is the type
    pub i2_rows2x4: fn([&[u8]; 2], [&[i8]; 4]) -> [[i32; 4]; 2],
    /// Two rows against two tokens: a step of two (or six) sequences, which the 2 × 4 tile
    /// would run at the cost of four.
    #[allow(clippy::type_complexity)] // the tile's shape is the type
    pub i2_rows2x2: fn([&[u8]; 2], [&[i8]; 2]) -> [[i32; 2]; 2],
    /// `(rows, row_bytes, q, dots)`: decode's mat-vec over whole blocks, see
    /// `portable::i2_matvec`; the result does not depend on how a path orders the rows.
    pub i2_matvec: fn(&[u8], usize, &[i8], &mut [i32]),
    /// The prefill GEMM (every SIMD path has one; the portable path tiles and dots).
    pub i2_gemm: Option<I2Gemm>,
    /// `(dots, act_sum, act_scale, scale, out)`: [`portable::i2s_epilogue_row`], the same bits.
    pub i2s_epilogue_row: fn(&[i32], i32, f32, f32, &mut [f32]),
    pub dot_f32: fn(&[f32], &[f32]) -> f32,
    /// Two f32 rows against three activation rows: `out[r][t]` bit-identical to `dot_f32`
    /// of that pair on the same path (a prompt's widened head rows).
    #[allow(clippy::type_complexity)] // the tile's shape is the type
    pub dot_f32_tile: fn([&[f32]; 2], [&[f32]; 3]) -> [[f32; 3]; 2],
    pub dot_f16: fn(&[u8], &[f32]) -> f32,
    pub dot_bf16: fn(&[u8], &[f32]) -> f32,
    pub dot_q6k_q8k: DotQ8k,
    /// A Q4_0 row (K % 256 = 0), see `portable::dot_q4_0_q8k`.
    pub dot_q4_0_q8k: DotQ8k,
    /// `(row, q, d)`: a Q8_0 row against one token's Q8K activations (K % 256 = 0), see
    /// `portable::dot_q8_0_q8k`; every path gives the same bits.
    pub dot_q8_0_q8k: fn(&[u8], &[i8], &[f32]) -> f32,
    /// Four rows against one `x`, each result bit-identical to `dot_f16` (`dot_bf16`) of
    /// that row on the same path; the rows are read side by side (decode's output head).
    pub dot_f16_rows4: fn([&[u8]; 4], &[f32]) -> [f32; 4],
    pub dot_bf16_rows4: fn([&[u8]; 4], &[f32]) -> [f32; 4],
    /// One row against four activation rows, each result bit-identical to `dot_f16`
    /// (`dot_bf16`) of that pair on the same path: a batched decode step's head, whose
    /// weights are then read and widened once for four tokens.
    pub dot_f16_x4: fn(&[u8], [&[f32]; 4]) -> [f32; 4],
    pub dot_bf16_x4: fn(&[u8], [&[f32]; 4]) -> [f32; 4],
    /// Two rows against four tokens (`out[r] == dot_*_x4(w[r], x)`, the same bits): where a
    /// path has a kernel for it, each activation load meets two rows.
    #[allow(clippy::type_complexity)] // the tile's shape is the type
    pub dot_f16_rows2_x4: fn([&[u8]; 2], [&[f32]; 4]) -> [[f32; 4]; 2],
    #[allow(clippy::type_complexity)] // the tile's shape is the type
    pub dot_bf16_rows2_x4: fn([&[u8]; 2], [&[f32]; 4]) -> [[f32; 4]; 2],
    pub sum_sq: fn(&[f32]) -> f64,
    pub scale_mul: fn(&[f32], &[f32], f32, &mut [f32]),
    pub axpy: fn(f32, &[f32], &mut [f32]),
    /// `(gate, up)`: `gate = silu(gate) · up`; SIMD paths use a vector `exp` (≤ 2 ulp).
    pub silu_mul: fn(&mut [f32], &[f32]),
    /// `(x, shift)`: `x = e^(x − shift)`, returning the sum in f64; SIMD: ≤ 2 ulp per value.
    pub exp_shifted: fn(&mut [f32], f32) -> f64,
    /// `(q, rows, stride, out, cold)`: see [`crate::ops::dot_rows`]; `cold` says the rows
    /// may be out of cache, and the path may prefetch ahead (never changing the result).
    pub dot_rows_f32: fn(&[f32], &[f32], usize, &mut [f32], bool),
    pub mix_rows_f32: fn(&[f32], &[f32], usize, &mut [f32], bool),
    /// The same on rows of little-endian f16 (`stride` in elements): an f16 KV cache.
    pub dot_rows_f16: fn(&[f32], &[u8], usize, &mut [f32], bool),
    pub mix_rows_f16: fn(&[f32], &[u8], usize, &mut [f32], bool),
    pub f32_to_f16: fn(&[f32], &mut [u8]),
    pub f16_to_f32: fn(&[u8], &mut [f32]),
}

pub static SCALAR: Kernels = Kernels {
    path: KernelPath::Scalar,
    act_layout: ActLayout::Plain,
    absmax: portable::absmax,
    quantize_row: portable::quantize_row,
    i2_dot: portable::i2_dot,
    i2_dot4: portable::i2_dot4,
    i2_tile: portable::i2_tile,
    i2_rows2x4: portable::i2_rows2x4,
    i2_rows2x2: portable::i2_rows2x2,
    i2_matvec: portable::i2_matvec,
    i2_gemm: None,
    i2s_epilogue_row: portable::i2s_epilogue_row,
    dot_f32: portable::dot_f32,
    dot_f32_tile: |w, x| w.map(|r| x.map(|t| portable::dot_f32(r, t))),
    dot_f16: portable::dot_f16,
    dot_bf16: portable::dot_bf16,
    dot_q6k_q8k: portable::dot_q6k_q8k,
    dot_q8_0_q8k: portable::dot_q8_0_q8k,
    dot_q4_0_q8k: portable::dot_q4_0_q8k,
    dot_f16_rows4: |w, x| w.map(|r| portable::dot_f16(r, x)),
    dot_bf16_rows4: |w, x| w.map(|r| portable::dot_bf16(r, x)),
    dot_f16_x4: |w, x| x.map(|t| portable::dot_f16(w, t)),
    dot_bf16_x4: |w, x| x.map(|t| portable::dot_bf16(w, t)),
    dot_f16_rows2_x4: |w, x| w.map(|r| x.map(|t| portable::dot_f16(r, t))),
    dot_bf16_rows2_x4: |w, x| w.map(|r| x.map(|t| portable::dot_bf16(r, t))),
    sum_sq: portable::sum_sq,
    scale_mul: portable::scale_mul,
    axpy: portable::axpy,
    silu_mul: portable::silu_mul,
    exp_shifted: portable::exp_shifted,
    dot_rows_f32: |q, r, s, o, _| portable::dot_rows_f32(q, r, s, o),
    mix_rows_f32: |w, r, s, o, _| portable::mix_rows_f32(w, r, s, o),
    dot_rows_f16: |q, r, s, o, _| portable::dot_rows_f16(q, r, s, o),
    mix_rows_f16: |w, r, s, o, _| portable::mix_rows_f16(w, r, s, o),
    f32_to_f16: portable::f32_to_f16,
    f16_to_f32: portable::f16_to_f32,
};

fn env_flag(name: &str) -> bool {
    std::env::var(name)
        .map(|v| !v.is_empty() && v != "0")
        .unwrap_or(false)
}

/// The best path this CPU supports, honouring the environment overrides.
pub fn detect() -> KernelPath {
    if env_flag("BITNET_FORCE_SCALAR") {
        return KernelPath::Scalar;
    }
    if !env_flag("BITNET_DISABLE_AVX512")
        && !env_flag("BITNET_DISABLE_AMX")
        && KernelPath::Amx.is_supported()
    {
        return KernelPath::Amx;
    }
    if KernelPath::Avx512Vnni.is_supported() && !env_flag("BITNET_DISABLE_AVX512") {
        return KernelPath::Avx512Vnni;
    }
    if KernelPath::AvxVnni.is_supported() && !env_flag("BITNET_DISABLE_AVXVNNI") {
        return KernelPath::AvxVnni;
    }
    if KernelPath::Avx2.is_supported() {
        return KernelPath::Avx2;
    }
    if !env_flag("BITNET_DISABLE_DOTPROD") && KernelPath::NeonDotprod.is_supported() {
        return KernelPath::NeonDotprod;
    }
    if KernelPath::Neon.is_supported() {
        return KernelPath::Neon;
    }
    KernelPath::Scalar
}

/// The table for a path (the portable one when this CPU cannot run it).
pub fn table_for(path: KernelPath) -> &'static Kernels {
    if !path.is_supported() {
        return &SCALAR;
    }
    crate::arch::table(path).unwrap_or(&SCALAR)
}

/// Every SIMD table this CPU can run: one per supported path, plus variants whose kernels
/// only another CPU's path selects (the AMX table's 512-bit decode kernels on a CPU
/// without AMX, the AVX-VNNI source compiled for EVEX on a CPU without AVX-VNNI). For
/// tests that prove each SIMD kernel equal to its portable twin.
pub fn tables_under_test() -> Vec<&'static Kernels> {
    KernelPath::simd()
        .filter(|p| p.is_supported())
        .map(table_for)
        .chain(crate::arch::variant_tables())
        .collect()
}
