use crate::types::TensorType;

/// Why a codec could not encode or decode a tensor.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("unsupported type {ty} for {op}{}", tensor_suffix(.tensor))]
    Unsupported {
        ty: TensorType,
        op: &'static str,
        tensor: Option<String>,
    },
    #[error("bad shape: {msg}{}", tensor_suffix(.tensor))]
    Shape { msg: String, tensor: Option<String> },
    #[error("{what} payload is {got} bytes, expected {expected}")]
    Size {
        what: String,
        expected: usize,
        got: usize,
    },
    #[error("invalid ternary code {code} at element {index}")]
    InvalidCode { index: usize, code: i32 },
    #[error(
        "block {block} has scale {other} but earlier blocks {first}: per-block scales cannot be \
         stored as one per-tensor scale without loss"
    )]
    ScalesDiffer {
        first: f32,
        other: f32,
        block: usize,
    },
    #[error("TL tile parameters: {0}")]
    TlParams(String),
}

fn tensor_suffix(t: &Option<String>) -> String {
    t.as_ref()
        .map(|n| format!(" (tensor {n})"))
        .unwrap_or_default()
}

impl CodecError {
    pub fn shape(msg: impl Into<String>) -> Self {
        CodecError::Shape {
            msg: msg.into(),
            tensor: None,
        }
    }

    pub fn unsupported(ty: TensorType, op: &'static str) -> Self {
        CodecError::Unsupported {
            ty,
            op,
            tensor: None,
        }
    }

    /// Attaches the tensor name to errors that can carry one.
    pub fn for_tensor(self, name: &str) -> Self {
        match self {
            CodecError::Unsupported { ty, op, .. } => CodecError::Unsupported {
                ty,
                op,
                tensor: Some(name.to_string()),
            },
            CodecError::Shape { msg, .. } => CodecError::Shape {
                msg,
                tensor: Some(name.to_string()),
            },
            other => other,
        }
    }
}
