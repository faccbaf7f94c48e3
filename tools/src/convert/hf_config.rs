//! `config.json` of a Hugging Face checkpoint: which BitNet family it is and its dimensions.

use std::path::{Path, PathBuf};

use bitnet_formats::arch::Arch;
use serde_json::Value as Json;

/// The FFN activation, recorded explicitly in the output so readers never guess.
pub use bitnet_formats::arch::Activation;

use super::error::ConvertError;

/// The checkpoint families the converter understands (`docs/convert.md`, "Supported
/// checkpoints").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelFamily {
    /// `BitNetForCausalLM` (microsoft/bitnet-b1.58-2B-4T and its `-bf16` twin): squared-ReLU
    /// FFN, sub-norms `attn_sub_norm` / `ffn_sub_norm`, tied head.
    BitNetB158,
    /// `BitnetForCausalLM` (1bitLLM/bitnet_b1_58-*): SiLU FFN, sub-norms `inner_attn_ln` /
    /// `ffn_layernorm`, tied head.
    Bitnet1bitLlm,
    /// `LlamaForCausalLM` with a BitNet `quantization_config` (HF1BitLLM, Falcon3 1.58-bit):
    /// plain LLaMA graph, separate head, no sub-norms.
    Llama,
}

/// How a packed checkpoint's `weight_scale` turns into the per-tensor ternary scale.
impl ModelFamily {
    /// The GGUF graph a family's checkpoints become (in bitnet.cpp's naming).
    pub fn arch(self) -> Arch {
        match self {
            ModelFamily::BitNetB158 => Arch::BitnetB158,
            ModelFamily::Bitnet1bitLlm => Arch::Bitnet,
            ModelFamily::Llama => Arch::Llama,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightScaleRule {
    /// transformers `AutoBitLinear` (offline): the layer output is multiplied by `weight_scale`.
    Multiply,
    /// transformers `BitLinear` (the default `linear_class`): the output is divided by it.
    Divide,
}

#[derive(Clone, Debug)]
pub struct HfConfig {
    pub path: PathBuf,
    pub architecture: String,
    pub family: ModelFamily,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub context_length: usize,
    pub rope_theta: f32,
    pub rms_norm_eps: f32,
    pub activation: Activation,
    pub tie_word_embeddings: bool,
    pub weight_scale_rule: WeightScaleRule,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<u32>,
    pub pad_token_id: Option<u32>,
    /// `rope_scaling` when present and not null (only "linear" is carried over).
    pub rope_scaling: Option<Json>,
}

pub const SUPPORTED_ARCHITECTURES: &[&str] = &[
    "BitNetForCausalLM",
    "BitnetForCausalLM",
    "LlamaForCausalLM (BitNet-quantised)",
];

impl HfConfig {
    pub fn load(path: &Path) -> Result<HfConfig, ConvertError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ConvertError::MissingFile {
                    path: path.to_owned(),
                    what: "model config",
                }
            } else {
                ConvertError::io(path, e)
            }
        })?;
        let json: Json = serde_json::from_str(&text).map_err(|source| ConvertError::Json {
            path: path.to_owned(),
            source,
        })?;
        HfConfig::from_json(path, &json)
    }

    pub fn from_json(path: &Path, json: &Json) -> Result<HfConfig, ConvertError> {
        let err = |m: String| ConvertError::config(path, m);
        let architecture = json
            .get("architectures")
            .and_then(|a| a.as_array())
            .and_then(|a| a.first())
            .and_then(|a| a.as_str())
            .ok_or_else(|| err("no \"architectures\" entry".into()))?
            .to_owned();
        let quant = json.get("quantization_config").filter(|q| !q.is_null());
        let family = family_of(path, &architecture, quant)?;

        let usize_key = |key: &str| -> Result<usize, ConvertError> {
            json.get(key)
                .and_then(|v| v.as_u64())
                .filter(|&v| v > 0 && v <= u32::MAX as u64)
                .map(|v| v as usize)
                .ok_or_else(|| err(format!("missing or invalid \"{key}\"")))
        };
        let opt_u32 = |key: &str| -> Option<u32> {
            match json.get(key) {
                Some(Json::Number(n)) => n.as_u64().and_then(|v| u32::try_from(v).ok()),
                // Lists (several eos ids) keep the first; the tokenizer files refine these.
                Some(Json::Array(a)) => a
                    .first()
                    .and_then(|v| v.as_u64())
                    .and_then(|v| u32::try_from(v).ok()),
                _ => None,
            }
        };
        let f32_key = |key: &str, default: f32| -> Result<f32, ConvertError> {
            match json.get(key) {
                None | Some(Json::Null) => Ok(default),
                Some(v) => v
                    .as_f64()
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .map(|x| x as f32)
                    .ok_or_else(|| err(format!("invalid \"{key}\""))),
            }
        };

        let hidden_size = usize_key("hidden_size")?;
        let num_heads = usize_key("num_attention_heads")?;
        let num_kv_heads = match json.get("num_key_value_heads") {
            None | Some(Json::Null) => num_heads,
            Some(_) => usize_key("num_key_value_heads")?,
        };
        if num_heads % num_kv_heads != 0 {
            return Err(err(format!(
                "num_attention_heads {num_heads} is not a multiple of num_key_value_heads {num_kv_heads}"
            )));
        }
        let head_dim = match json.get("head_dim") {
            None | Some(Json::Null) => {
                if hidden_size % num_heads != 0 {
                    return Err(err(format!(
                        "hidden_size {hidden_size} is not a multiple of num_attention_heads {num_heads}"
                    )));
                }
                hidden_size / num_heads
            }
            Some(_) => usize_key("head_dim")?,
        };

        let default_act = match family {
            ModelFamily::BitNetB158 => Activation::Relu2,
            _ => Activation::Silu,
        };
        let activation = match json.get("hidden_act").and_then(|a| a.as_str()) {
            None => default_act,
            Some(name) => Activation::from_name(name).ok_or_else(|| {
                err(format!(
                    "unsupported hidden_act \"{name}\" (supported: silu, relu2)"
                ))
            })?,
        };
        if family == ModelFamily::Llama && activation != Activation::Silu {
            return Err(err(
                "a LlamaForCausalLM checkpoint must use hidden_act silu".into(),
            ));
        }

        let linear_class = quant
            .and_then(|q| q.get("linear_class"))
            .and_then(|c| c.as_str())
            .unwrap_or("bitlinear");
        let weight_scale_rule = if linear_class.eq_ignore_ascii_case("autobitlinear") {
            WeightScaleRule::Multiply
        } else {
            WeightScaleRule::Divide
        };

        let tie_default = family != ModelFamily::Llama;
        let tie_word_embeddings = json
            .get("tie_word_embeddings")
            .and_then(|v| v.as_bool())
            .unwrap_or(tie_default);
        let rope_scaling = json.get("rope_scaling").filter(|v| !v.is_null()).cloned();

        Ok(HfConfig {
            path: path.to_owned(),
            architecture,
            family,
            vocab_size: usize_key("vocab_size")?,
            hidden_size,
            intermediate_size: usize_key("intermediate_size")?,
            num_layers: usize_key("num_hidden_layers")?,
            num_heads,
            num_kv_heads,
            head_dim,
            context_length: usize_key("max_position_embeddings")?,
            rope_theta: f32_key("rope_theta", 10000.0)?,
            rms_norm_eps: f32_key("rms_norm_eps", 1e-5)?,
            activation,
            tie_word_embeddings,
            weight_scale_rule,
            bos_token_id: opt_u32("bos_token_id"),
            eos_token_id: opt_u32("eos_token_id"),
            pad_token_id: opt_u32("pad_token_id"),
            rope_scaling,
        })
    }
}

/// Which family a checkpoint is, from its `architectures` entry and quantisation config.
fn family_of(
    path: &Path,
    architecture: &str,
    quant: Option<&Json>,
) -> Result<ModelFamily, ConvertError> {
    let err = |m: String| ConvertError::config(path, m);
    let is_bitnet_quant = quant
        .and_then(|q| q.get("quant_method"))
        .and_then(|m| m.as_str())
        .is_some_and(|m| m.eq_ignore_ascii_case("bitnet"));
    let family = match architecture {
        "BitNetForCausalLM" => ModelFamily::BitNetB158,
        "BitnetForCausalLM" => ModelFamily::Bitnet1bitLlm,
        "LlamaForCausalLM" if is_bitnet_quant => ModelFamily::Llama,
        "LlamaForCausalLM" => {
            return Err(err(
                "LlamaForCausalLM without a BitNet quantization_config \
                            (quant_method \"bitnet\") is not a ternary checkpoint; \
                            supported: BitNetForCausalLM, BitnetForCausalLM, \
                            LlamaForCausalLM with a BitNet quantization_config"
                    .into(),
            ))
        }
        _ => {
            return Err(ConvertError::UnsupportedArchitecture {
                path: path.to_owned(),
                found: architecture.to_string(),
            })
        }
    };
    Ok(family)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HfConfig, ConvertError> {
        HfConfig::from_json(
            Path::new("config.json"),
            &serde_json::from_str(text).unwrap(),
        )
    }

    const BASE: &str = r#""hidden_size": 256, "num_attention_heads": 8, "num_key_value_heads": 4,
        "intermediate_size": 768, "num_hidden_layers": 2, "vocab_size": 4096,
        "max_position_embeddings": 256"#;

    #[test]
    fn bitnet_b158_defaults_to_relu2_and_tied_head() {
        let c = parse(&format!(
            r#"{{"architectures": ["BitNetForCausalLM"], {BASE},
            "quantization_config": {{"quant_method": "bitnet", "linear_class": "autobitlinear"}}}}"#
        ))
        .unwrap();
        assert_eq!(c.family, ModelFamily::BitNetB158);
        assert_eq!(c.activation, Activation::Relu2);
        assert!(c.tie_word_embeddings);
        assert_eq!(c.weight_scale_rule, WeightScaleRule::Multiply);
        assert_eq!(c.head_dim, 32);
    }

    #[test]
    fn llama_needs_bitnet_quantization_and_divides() {
        let plain = parse(&format!(
            r#"{{"architectures": ["LlamaForCausalLM"], {BASE}}}"#
        ));
        assert!(plain
            .unwrap_err()
            .to_string()
            .contains("quantization_config"));
        let c = parse(&format!(
            r#"{{"architectures": ["LlamaForCausalLM"], {BASE},
            "quantization_config": {{"quant_method": "bitnet", "modules_to_not_convert": null}}}}"#
        ))
        .unwrap();
        assert_eq!(c.family, ModelFamily::Llama);
        assert_eq!(c.weight_scale_rule, WeightScaleRule::Divide);
        assert!(!c.tie_word_embeddings);
    }

    #[test]
    fn unknown_architecture_lists_supported_ones() {
        let e = parse(&format!(
            r#"{{"architectures": ["MistralForCausalLM"], {BASE}}}"#
        ))
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("MistralForCausalLM") && msg.contains("BitNetForCausalLM"),
            "{msg}"
        );
    }

    #[test]
    fn missing_dimension_is_an_error() {
        let e =
            parse(r#"{"architectures": ["BitNetForCausalLM"], "hidden_size": 256}"#).unwrap_err();
        assert!(e.to_string().contains("num_attention_heads"), "{e}");
    }
}
