use std::fmt;

/// Why a weight matrix could not be prepared for the kernels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelError {
    /// The payload is shorter than the shape requires.
    TooShort {
        what: String,
        need: usize,
        got: usize,
    },
    /// The shape does not fit the format (for example K not a multiple of its block).
    BadShape {
        what: String,
        rows: usize,
        cols: usize,
        reason: String,
    },
    /// The type or layout has no kernel.
    Unsupported { what: String },
    /// A payload value the format never produces (for example I2_S code 3).
    Corrupt { what: String, reason: String },
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::TooShort { what, need, got } => {
                write!(f, "{what}: payload has {got} bytes, the shape needs {need}")
            }
            KernelError::BadShape {
                what,
                rows,
                cols,
                reason,
            } => {
                write!(f, "{what}: shape {rows}x{cols} not supported: {reason}")
            }
            KernelError::Unsupported { what } => write!(f, "{what}: no kernel for this type"),
            KernelError::Corrupt { what, reason } => write!(f, "{what}: corrupt payload: {reason}"),
        }
    }
}

impl std::error::Error for KernelError {}
