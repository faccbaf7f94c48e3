//! Hyper-parameters of a model, read from GGUF metadata and checked against the tensor shapes
//! (docs/model.md, 'Architectures', 'Hyper-parameters', 'Tensors').

use std::fmt;

use bitnet_formats::{Metadata, TensorInfo};

/// The graphs this engine knows. Each maps to one `general.architecture` string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// microsoft/BitNet-b1.58-2B-4T: squared-ReLU FFN, sub-norms, NEOX RoPE, tied head.
    BitnetB158,
    /// The early 2B checkpoint; same graph as `bitnet-b1.58`.
    Bitnet25,
    /// 1bitLLM (and upstream llama.cpp's name for all BitNets): sub-norms, NEOX RoPE,
    /// activation from `bitnet.hidden_act`, SiLU when absent.
    Bitnet,
    /// Llama-1.58 models (HF1BitLLM, Falcon3-1.58): plain LLaMA graph with permuted q/k
    /// (normal RoPE), SiLU, no sub-norms, separate head.
    Llama,
}

impl Arch {
    pub fn from_name(name: &str) -> Option<Arch> {
        match name {
            "bitnet-b1.58" => Some(Arch::BitnetB158),
            "bitnet-25" => Some(Arch::Bitnet25),
            "bitnet" => Some(Arch::Bitnet),
            "llama" => Some(Arch::Llama),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::BitnetB158 => "bitnet-b1.58",
            Arch::Bitnet25 => "bitnet-25",
            Arch::Bitnet => "bitnet",
            Arch::Llama => "llama",
        }
    }

    /// BitNet graphs normalise the attention output and the FFN product before the output
    /// projections.
    pub fn has_sub_norms(self) -> bool {
        !matches!(self, Arch::Llama)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The FFN gate non-linearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `relu(g)²` (BitNet b1.58 2B4T).
    Relu2,
    /// `g · sigmoid(g)` (LLaMA, 1bitLLM).
    Silu,
}

/// How rotary embeddings pair up the dimensions of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Pairs `(i, i + n_rot/2)`: HF's rotate-half layout, kept by the BitNet converters.
    Neox,
    /// Pairs `(2i, 2i + 1)`: LLaMA files whose q/k rows the converter permuted.
    Normal,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub arch: Arch,
    pub n_vocab: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// Rotated dimensions per head (`rope.dimension_count`), at most `head_dim`.
    pub n_rot: usize,
    pub n_ff: usize,
    pub n_ctx_train: usize,
    pub rope_base: f32,
    pub eps: f32,
    pub activation: Activation,
    pub rope_style: RopeStyle,
    pub sub_norms: bool,
    /// The LM head reuses `token_embd.weight` (no `output.weight` in the file).
    pub tied_output: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("general.architecture is missing")]
    NoArchitecture,
    #[error("architecture '{0}' is not supported (known: bitnet-b1.58, bitnet-25, bitnet, llama)")]
    UnknownArch(String),
    #[error("metadata key '{0}' is missing")]
    MissingKey(String),
    #[error("metadata key '{key}' has an invalid value: {why}")]
    BadValue { key: String, why: String },
    #[error("tensor '{0}' is missing")]
    MissingTensor(String),
    #[error(
        "tensor '{name}' has shape {found:?}, expected {expected:?} from the hyper-parameters"
    )]
    BadShape {
        name: String,
        found: Vec<u64>,
        expected: Vec<u64>,
    },
    #[error("tensor '{0}' is not expected in a '{1}' model")]
    UnexpectedTensor(String, Arch),
}

/// Looks up tensor shapes by name; implemented for the GGUF tensor list and for tests.
pub trait TensorShapes {
    fn shape(&self, name: &str) -> Option<&[u64]>;
}

impl TensorShapes for [TensorInfo] {
    fn shape(&self, name: &str) -> Option<&[u64]> {
        self.iter()
            .find(|t| t.name == name)
            .map(|t| t.ne.as_slice())
    }
}

impl ModelConfig {
    /// Reads and validates the hyper-parameters. Every tensor the graph needs must exist with
    /// the shape the hyper-parameters imply.
    pub fn from_gguf<T: TensorShapes + ?Sized>(
        meta: &Metadata,
        tensors: &T,
    ) -> Result<Self, ConfigError> {
        let arch_name = meta
            .get_str("general.architecture")
            .ok_or(ConfigError::NoArchitecture)?;
        let arch =
            Arch::from_name(arch_name).ok_or_else(|| ConfigError::UnknownArch(arch_name.into()))?;
        let key = |k: &str| format!("{arch_name}.{k}");
        let req = |k: &str| -> Result<usize, ConfigError> {
            let full = key(k);
            let v = meta
                .get(&full)
                .ok_or_else(|| ConfigError::MissingKey(full.clone()))?;
            let n = v.as_u64().ok_or_else(|| ConfigError::BadValue {
                key: full.clone(),
                why: "not a non-negative integer".into(),
            })?;
            positive(&full, n)
        };
        let opt = |k: &str| -> Result<Option<usize>, ConfigError> {
            let full = key(k);
            match meta.get(&full) {
                None => Ok(None),
                Some(v) => {
                    let n = v.as_u64().ok_or_else(|| ConfigError::BadValue {
                        key: full.clone(),
                        why: "not a non-negative integer".into(),
                    })?;
                    positive(&full, n).map(Some)
                }
            }
        };
        let float = |k: &str| -> Result<Option<f32>, ConfigError> {
            let full = key(k);
            match meta.get(&full) {
                None => Ok(None),
                Some(v) => {
                    let x = v.as_f32().ok_or_else(|| ConfigError::BadValue {
                        key: full.clone(),
                        why: "not a number".into(),
                    })?;
                    if x.is_finite() && x > 0.0 {
                        Ok(Some(x))
                    } else {
                        Err(ConfigError::BadValue {
                            key: full,
                            why: format!("{x} is not > 0"),
                        })
                    }
                }
            }
        };

        let n_embd = req("embedding_length")?;
        let n_layer = req("block_count")?;
        let n_head = req("attention.head_count")?;
        let n_head_kv = opt("attention.head_count_kv")?.unwrap_or(n_head);
        let n_ctx_train = req("context_length")?;
        let eps = float("attention.layer_norm_rms_epsilon")?
            .ok_or_else(|| ConfigError::MissingKey(key("attention.layer_norm_rms_epsilon")))?;
        let rope_base = float("rope.freq_base")?.unwrap_or(10000.0);
        if n_embd % n_head != 0 {
            return Err(ConfigError::BadValue {
                key: key("attention.head_count"),
                why: format!("{n_head} does not divide embedding_length {n_embd}"),
            });
        }
        if n_head % n_head_kv != 0 {
            return Err(ConfigError::BadValue {
                key: key("attention.head_count_kv"),
                why: format!("{n_head_kv} does not divide head_count {n_head}"),
            });
        }
        let head_dim = opt("attention.key_length")?.unwrap_or(n_embd / n_head);
        let n_rot = opt("rope.dimension_count")?.unwrap_or(head_dim);
        if n_rot > head_dim || n_rot % 2 != 0 {
            return Err(ConfigError::BadValue {
                key: key("rope.dimension_count"),
                why: format!("{n_rot} must be even and at most the head size {head_dim}"),
            });
        }

        let activation = match arch {
            Arch::BitnetB158 | Arch::Bitnet25 => Activation::Relu2,
            Arch::Llama => Activation::Silu,
            Arch::Bitnet => match meta.get_str(&key("hidden_act")) {
                None | Some("silu") | Some("swish") => Activation::Silu,
                Some("relu2") | Some("relu_squared") | Some("squared_relu") => Activation::Relu2,
                Some(other) => {
                    return Err(ConfigError::BadValue {
                        key: key("hidden_act"),
                        why: format!("activation '{other}' is not supported (silu, relu2)"),
                    })
                }
            },
        };
        let rope_style = if arch == Arch::Llama {
            RopeStyle::Normal
        } else {
            RopeStyle::Neox
        };

        // Shapes. ggml order: ne[0] is the input (column) dimension.
        let embd = tensors
            .shape("token_embd.weight")
            .ok_or_else(|| ConfigError::MissingTensor("token_embd.weight".into()))?;
        if embd.len() != 2 || embd[0] as usize != n_embd {
            return Err(ConfigError::BadShape {
                name: "token_embd.weight".into(),
                found: embd.to_vec(),
                expected: vec![n_embd as u64, opt("vocab_size")?.unwrap_or(0) as u64],
            });
        }
        let n_vocab = embd[1] as usize;
        if let Some(v) = opt("vocab_size")? {
            if v != n_vocab {
                return Err(ConfigError::BadShape {
                    name: "token_embd.weight".into(),
                    found: embd.to_vec(),
                    expected: vec![n_embd as u64, v as u64],
                });
            }
        }
        let n_ff = match opt("feed_forward_length")? {
            Some(n) => n,
            None => return Err(ConfigError::MissingKey(key("feed_forward_length"))),
        };

        let tied_output = tensors.shape("output.weight").is_none();
        let check = |name: &str, expected: &[usize]| -> Result<(), ConfigError> {
            let found = tensors
                .shape(name)
                .ok_or_else(|| ConfigError::MissingTensor(name.into()))?;
            // Trailing 1s are allowed: some writers store vectors as [n, 1].
            let trimmed: Vec<u64> = {
                let mut v = found.to_vec();
                while v.len() > expected.len() && v.last() == Some(&1) {
                    v.pop();
                }
                v
            };
            let exp: Vec<u64> = expected.iter().map(|&x| x as u64).collect();
            if trimmed != exp {
                return Err(ConfigError::BadShape {
                    name: name.into(),
                    found: found.to_vec(),
                    expected: exp,
                });
            }
            Ok(())
        };
        check("output_norm.weight", &[n_embd])?;
        if !tied_output {
            check("output.weight", &[n_embd, n_vocab])?;
        }
        let q_dim = n_head * head_dim;
        let kv_dim = n_head_kv * head_dim;
        for l in 0..n_layer {
            let t = |s: &str| format!("blk.{l}.{s}.weight");
            check(&t("attn_norm"), &[n_embd])?;
            check(&t("attn_q"), &[n_embd, q_dim])?;
            check(&t("attn_k"), &[n_embd, kv_dim])?;
            check(&t("attn_v"), &[n_embd, kv_dim])?;
            check(&t("attn_output"), &[q_dim, n_embd])?;
            check(&t("ffn_norm"), &[n_embd])?;
            check(&t("ffn_gate"), &[n_embd, n_ff])?;
            check(&t("ffn_up"), &[n_embd, n_ff])?;
            check(&t("ffn_down"), &[n_ff, n_embd])?;
            for (name, dim) in [(t("attn_sub_norm"), q_dim), (t("ffn_sub_norm"), n_ff)] {
                if arch.has_sub_norms() {
                    check(&name, &[dim])?;
                } else if tensors.shape(&name).is_some() {
                    return Err(ConfigError::UnexpectedTensor(name, arch));
                }
            }
        }
        // A block beyond block_count means the count is wrong, not that the tensor is spare.
        if tensors
            .shape(&format!("blk.{n_layer}.attn_norm.weight"))
            .is_some()
        {
            return Err(ConfigError::BadValue {
                key: key("block_count"),
                why: format!("{n_layer}, but the file has a block {n_layer}"),
            });
        }

        Ok(ModelConfig {
            arch,
            n_vocab,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            n_rot,
            n_ff,
            n_ctx_train,
            rope_base,
            eps,
            activation,
            rope_style,
            sub_norms: arch.has_sub_norms(),
            tied_output,
        })
    }

    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}

fn positive(key: &str, n: u64) -> Result<usize, ConfigError> {
    // Anything beyond 2^31 is not a real dimension; refuse before sizes are multiplied.
    if n == 0 || n > (1 << 31) {
        return Err(ConfigError::BadValue {
            key: key.into(),
            why: format!("{n} is out of range"),
        });
    }
    Ok(n as usize)
}
