//! The ternary payload formats the kernels accept.
//!
//! These mirror `bitnet_formats::codec::{TernaryFormat, I2sLayout, TlParams}` (the names in
//! the crate contract); they are re-exported from there once the codec module exists.

/// Packing of an I2_S payload (formats.md §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum I2sLayout {
    /// Layout A: 128-element blocks of 32 bytes, shifts 6, 4, 2, 0.
    #[default]
    X86,
    /// Layout B: 64-element blocks of 16 bytes.
    Arm,
    /// Layout C: four rows interleaved per byte.
    RowInterleaved,
}

/// TL1/TL2 tile parameters (formats.md §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TlParams {
    pub bm_tile: usize,
    pub bk_tile: usize,
    pub bm: usize,
}

/// A ternary payload format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TernaryFormat {
    I2s(I2sLayout),
    Tq1_0,
    Tq2_0,
    Tl1(TlParams),
    Tl2(TlParams),
}

impl TernaryFormat {
    pub fn name(&self) -> &'static str {
        match self {
            TernaryFormat::I2s(I2sLayout::X86) => "I2_S",
            TernaryFormat::I2s(I2sLayout::Arm) => "I2_S (arm layout)",
            TernaryFormat::I2s(I2sLayout::RowInterleaved) => "I2_S (row-interleaved)",
            TernaryFormat::Tq1_0 => "TQ1_0",
            TernaryFormat::Tq2_0 => "TQ2_0",
            TernaryFormat::Tl1(_) => "TL1",
            TernaryFormat::Tl2(_) => "TL2",
        }
    }
}
