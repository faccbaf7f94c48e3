//! GGUF → GGUF re-quantisation and lossless ternary transcoding (`bitnet-gguf quantize`).
//!
//! The ternary projection weights of a model (`blk.N.attn_{q,k,v,output}.weight`,
//! `blk.N.ffn_{gate,up,down}.weight`) become the target type. Input may be any ternary
//! format (transcoded through codes + scale, exact for the codes) or float weights (F32/F16/
//! BF16/Q8_0…), which are ternarised: weights that already are `t · s` keep exactly those
//! codes and that scale, anything else goes through BitNet's abs-mean `weight_quant`.
//! `token_embd.weight` and `output.weight` use `--embed-type` / `--output-type`; every other
//! tensor and all metadata are kept, except what the output dialect needs changed (see
//! [`metadata::rewrite`]).

mod metadata;
mod tensor;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bitnet_formats::codec::I2sLayout;
use bitnet_formats::{Dialect, GgufFile, GgufWriter, TensorSource, TensorType};

pub use tensor::{is_ternary_weight_name, TensorAction};

/// The `--type` of `bitnet-gguf quantize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    I2s(I2sLayout),
    Tl1,
    Tl2,
    Tq1_0,
    Tq2_0,
    /// Upstream Q2_0: float weights through `quantize_row_q2_0_ref`, ternary ones transcoded.
    Q2_0,
    F16,
    F32,
}

impl Target {
    pub const NAMES: &'static [&'static str] = &[
        "i2_s", "i2_s-arm", "tl1", "tl2", "tq1_0", "tq2_0", "q2_0", "f16", "f32",
    ];

    pub fn parse(s: &str) -> Option<Target> {
        Some(match s.to_ascii_lowercase().as_str() {
            "i2_s" | "i2s" => Target::I2s(I2sLayout::X86),
            "i2_s-arm" | "i2s-arm" => Target::I2s(I2sLayout::Arm),
            "tl1" => Target::Tl1,
            "tl2" => Target::Tl2,
            "tq1_0" => Target::Tq1_0,
            "tq2_0" => Target::Tq2_0,
            "q2_0" => Target::Q2_0,
            "f16" => Target::F16,
            "f32" => Target::F32,
            _ => return None,
        })
    }

    /// The tensor type the projection weights get.
    pub fn tensor_type(self) -> TensorType {
        match self {
            Target::I2s(_) => TensorType::I2_S,
            Target::Tl1 => TensorType::TL1,
            Target::Tl2 => TensorType::TL2,
            Target::Tq1_0 => TensorType::TQ1_0,
            Target::Tq2_0 => TensorType::TQ2_0,
            Target::Q2_0 => TensorType::Q2_0,
            Target::F16 => TensorType::F16,
            Target::F32 => TensorType::F32,
        }
    }

    /// The dialect of the output when none is asked for ([`Dialect::default_for`]).
    pub fn dialect(self) -> Dialect {
        Dialect::default_for(self.tensor_type())
    }

    /// `general.file_type`: the fork's LLAMA_FTYPE for I2_S (40), TL1 (38), TL2 (39);
    /// upstream's for TQ1_0 (36), TQ2_0 (37), Q2_0 (41), F16 (1), F32 (0).
    pub fn file_type(self) -> u32 {
        match self {
            Target::I2s(_) => 40,
            Target::Tl1 => 38,
            Target::Tl2 => 39,
            Target::Tq1_0 => 36,
            Target::Tq2_0 => 37,
            Target::Q2_0 => 41,
            Target::F16 => 1,
            Target::F32 => 0,
        }
    }

    pub fn is_ternary(self) -> bool {
        self.tensor_type().is_ternary()
    }
}

/// llama.cpp's loader order of a tensor name: `(None, name)` outside the layers sorts before
/// `(Some(layer), name)`.
fn llama_order_key(name: &str) -> (Option<u64>, &str) {
    let layer = name
        .strip_prefix("blk.")
        .and_then(|rest| rest.split('.').next())
        .and_then(|n| n.parse().ok());
    (layer, name)
}

/// Types accepted by `--embed-type` / `--output-type`.
pub const DENSE_TYPES: &[TensorType] = &[
    TensorType::F16,
    TensorType::BF16,
    TensorType::Q8_0,
    TensorType::Q6_K,
    TensorType::Q4_0,
    TensorType::F32,
];

pub fn parse_dense_type(s: &str) -> Option<TensorType> {
    TensorType::from_name(s).filter(|t| DENSE_TYPES.contains(t))
}

#[derive(Clone, Debug)]
pub struct QuantizeOptions {
    pub target: Target,
    /// Type of `token_embd.weight`; default F32 for an f32 target, F16 otherwise.
    pub embed_type: Option<TensorType>,
    /// Type of `output.weight`; default as for the embeddings.
    pub output_type: Option<TensorType>,
    /// Overwrite an existing output file.
    pub force: bool,
    /// Type ids and architecture names of the output; `None` keeps the input's architecture
    /// name and takes [`Target::dialect`].
    pub dialect: Option<Dialect>,
}

impl QuantizeOptions {
    /// The output dialect, or why the target type cannot be written in the one asked for.
    pub fn output_dialect(&self) -> Result<Dialect, String> {
        let dialect = self.dialect.unwrap_or_else(|| self.target.dialect());
        match dialect.refusal(self.target.tensor_type()) {
            Some(why) => Err(format!("--type: {why}")),
            None => Ok(dialect),
        }
    }

    pub fn new(target: Target) -> Self {
        QuantizeOptions {
            target,
            embed_type: None,
            output_type: None,
            force: false,
            dialect: None,
        }
    }
}

/// What happened to one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorReport {
    pub name: String,
    pub from: TensorType,
    pub to: TensorType,
    pub action: TensorAction,
}

#[derive(Clone, Debug, Default)]
pub struct QuantizeReport {
    pub tensors: Vec<TensorReport>,
    pub architecture: Option<String>,
    pub output_bytes: u64,
    /// Largest relative change of a scale caused by storing it as f16 in TQ blocks.
    pub max_scale_rel_error: f32,
    /// The tensor where that happened.
    pub max_scale_rel_error_tensor: Option<String>,
}

/// Progress notifications for a UI.
#[derive(Clone, Debug)]
pub enum Progress<'a> {
    /// Before anything is written: tensor count and total payload bytes.
    Start { tensors: usize, bytes: u64 },
    /// After each tensor's payload is written.
    Tensor { name: &'a str, bytes: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error("{0} exists; pass --force to overwrite it")]
    OutputExists(PathBuf),
    #[error("{path}: {source}")]
    Gguf {
        path: PathBuf,
        source: bitnet_formats::GgufError,
    },
    #[error("{path}: tensor {tensor}: {message}")]
    Tensor {
        path: PathBuf,
        tensor: String,
        message: String,
    },
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },
}

/// Shared between the lazy tensor producers and the caller.
#[derive(Default)]
pub(crate) struct Shared {
    pub error: Option<(String, String)>,
    pub max_rel: f32,
    pub max_rel_tensor: Option<String>,
}

/// Re-quantises `input` into `output` (temporary file + rename; refuses to replace an existing
/// file unless `opts.force`).
pub fn quantize_file(
    input: &Path,
    output: &Path,
    opts: &QuantizeOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<QuantizeReport, QuantizeError> {
    if output.exists() && !opts.force {
        return Err(QuantizeError::OutputExists(output.to_path_buf()));
    }
    let file = GgufFile::open(input).map_err(|source| QuantizeError::Gguf {
        path: input.into(),
        source,
    })?;
    let dialect = opts
        .output_dialect()
        .map_err(|message| QuantizeError::Input {
            path: output.into(),
            message,
        })?;
    let mut writer = GgufWriter::new(dialect);
    *writer.metadata_mut() = file.metadata().clone();
    // Without --dialect only upstream output is renamed, as before the option existed.
    let names = opts
        .dialect
        .or((dialect == Dialect::Upstream).then_some(dialect));
    let arch = metadata::rewrite(writer.metadata_mut(), opts.target, names);

    let shared = Arc::new(Mutex::new(Shared::default()));
    let mut report = QuantizeReport {
        architecture: arch,
        ..QuantizeReport::default()
    };
    let mut total = 0u64;
    let mut order: Vec<&bitnet_formats::TensorInfo> = file.tensors().iter().collect();
    if dialect == Dialect::Upstream {
        // llama-quantize writes tensors in its loader's order: tensors outside the layers
        // first, then layer by layer, each group by name.
        order.sort_by_key(|t| llama_order_key(&t.name));
    }
    for info in order {
        let plan = tensor::plan(&file, info, opts).map_err(|message| QuantizeError::Tensor {
            path: input.into(),
            tensor: info.name.clone(),
            message,
        })?;
        if let Some(fmt) = &plan.format {
            bitnet_formats::codec::meta::record_format(writer.metadata_mut(), &info.name, fmt);
        }
        let nbytes = plan
            .to
            .nbytes(&info.ne)
            .ok_or_else(|| QuantizeError::Tensor {
                path: input.into(),
                tensor: info.name.clone(),
                message: format!("shape {:?} cannot be stored as {}", info.ne, plan.to),
            })?;
        total += nbytes;
        let to = plan.to;
        report.tensors.push(TensorReport {
            name: info.name.clone(),
            from: info.ty,
            to: plan.to,
            action: plan.action,
        });
        let source = match plan.action {
            TensorAction::Copy => TensorSource::Borrowed(file.tensor_data(info)),
            _ => {
                let shared = Arc::clone(&shared);
                let (file, info) = (&file, info);
                TensorSource::Lazy(Box::new(move || {
                    tensor::convert(file, info, &plan)
                        .map_err(|message| {
                            let mut s = shared.lock().unwrap();
                            s.error.get_or_insert((info.name.clone(), message.clone()));
                            std::io::Error::other(format!("tensor {}: {message}", info.name))
                        })
                        .map(|(bytes, rel)| {
                            let mut s = shared.lock().unwrap();
                            if rel > s.max_rel {
                                s.max_rel = rel;
                                s.max_rel_tensor = Some(info.name.clone());
                            }
                            bytes
                        })
                }))
            }
        };
        writer
            .add_tensor(info.name.clone(), &info.ne, to, source)
            .map_err(|source| QuantizeError::Gguf {
                path: output.into(),
                source,
            })?;
    }
    progress(Progress::Start {
        tensors: file.tensors().len(),
        bytes: total,
    });
    let result = crate::output::write_gguf(writer, output, &mut |name, bytes| {
        progress(Progress::Tensor { name, bytes })
    });
    let shared = shared.lock().unwrap();
    if let Some((tensor, message)) = &shared.error {
        return Err(QuantizeError::Tensor {
            path: input.into(),
            tensor: tensor.clone(),
            message: message.clone(),
        });
    }
    result.map_err(|source| QuantizeError::Gguf {
        path: output.into(),
        source,
    })?;
    report.output_bytes = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
    report.max_scale_rel_error = shared.max_rel;
    report.max_scale_rel_error_tensor = shared.max_rel_tensor.clone();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::llama_order_key;

    #[test]
    fn upstream_tensor_order_is_llama_cpps_loader_order() {
        let mut names = [
            "blk.10.attn_q.weight",
            "token_embd.weight",
            "blk.2.ffn_up.weight",
            "blk.2.attn_norm.weight",
            "output_norm.weight",
        ];
        names.sort_by_key(|n| llama_order_key(n));
        assert_eq!(
            names,
            [
                "output_norm.weight",
                "token_embd.weight",
                "blk.2.attn_norm.weight",
                "blk.2.ffn_up.weight",
                "blk.10.attn_q.weight",
            ]
        );
    }
}
