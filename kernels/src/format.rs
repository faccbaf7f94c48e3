//! The ternary payload formats the kernels accept (defined by the codecs).

pub use bitnet_formats::codec::{I2sLayout, TernaryFormat, TlParams};

/// A short name for error messages.
pub(crate) fn format_name(fmt: &TernaryFormat) -> &'static str {
    match fmt {
        TernaryFormat::I2s(I2sLayout::X86) => "I2_S",
        TernaryFormat::I2s(I2sLayout::Arm) => "I2_S (arm layout)",
        TernaryFormat::I2s(I2sLayout::RowInterleaved) => "I2_S (row-interleaved)",
        TernaryFormat::Tq1_0 => "TQ1_0",
        TernaryFormat::Tq2_0 => "TQ2_0",
        TernaryFormat::Q2_0 => "Q2_0",
        TernaryFormat::Tl1(_) => "TL1",
        TernaryFormat::Tl2(_) => "TL2",
    }
}
