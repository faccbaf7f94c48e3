//! Which GGUF tensors a checkpoint becomes: the architecture table of `bitnet_formats::arch`
//! gives the names, shapes and roles; this module adds where each comes from in the checkpoint.

use bitnet_formats::arch::{self, Dims, Role, RopeStyle, TensorSpec};

use super::error::ConvertError;
use super::hf_config::{HfConfig, ModelFamily};
use super::safetensors_input::{Checkpoint, Dtype};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorRole {
    /// `token_embd.weight`.
    Embedding,
    /// `output.weight` (separate LM head).
    Output,
    /// RMSNorm weights: always F32.
    Norm,
    /// A BitLinear projection. `permute_heads` is the head count of the LLaMA q/k row
    /// permutation applied for `llama` models.
    Ternary { permute_heads: Option<usize> },
}

/// One GGUF tensor to write, and where it comes from.
#[derive(Clone, Debug)]
pub struct PlannedTensor {
    pub gguf_name: String,
    /// HF tensor name (for a packed projection, the `.weight` whose `.weight_scale` sits
    /// beside it).
    pub hf_name: String,
    pub role: TensorRole,
    /// Row-major HF shape of the (unpacked) tensor: `[rows, cols]` or `[len]`.
    pub shape: Vec<usize>,
    /// True for a packed offline projection (u8 `[rows/4, cols]` + `weight_scale`).
    pub packed: bool,
}

impl PlannedTensor {
    pub fn rows(&self) -> usize {
        if self.shape.len() == 2 {
            self.shape[0]
        } else {
            1
        }
    }

    pub fn cols(&self) -> usize {
        *self.shape.last().unwrap_or(&1)
    }

    /// ggml order: `ne[0]` = columns.
    pub fn ne(&self) -> Vec<u64> {
        self.shape.iter().rev().map(|&d| d as u64).collect()
    }

    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// HF names of tensors that carry nothing the GGUF graph needs.
pub fn is_ignorable(name: &str) -> bool {
    name.ends_with("rotary_emb.inv_freq") || name.ends_with(".weight_scale")
}

/// The Hugging Face name of a schema tensor in a family's checkpoints (converter-only: the GGUF
/// names and shapes come from `bitnet_formats::arch`).
fn hf_name(family: ModelFamily, spec: &TensorSpec, layer: usize) -> Option<String> {
    let global = match *spec {
        arch::TOKEN_EMBD => Some("model.embed_tokens.weight"),
        arch::OUTPUT_NORM => Some("model.norm.weight"),
        arch::OUTPUT => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(g) = global {
        return Some(g.to_string());
    }
    let (attn_sub, ffn_sub) = match family {
        ModelFamily::BitNetB158 => ("self_attn.attn_sub_norm", "mlp.ffn_sub_norm"),
        ModelFamily::Bitnet1bitLlm => ("self_attn.inner_attn_ln", "mlp.ffn_layernorm"),
        ModelFamily::Llama => ("", ""),
    };
    let table: [(&TensorSpec, &str); 11] = [
        (&arch::ATTN_NORM, "input_layernorm"),
        (&arch::ATTN_Q, "self_attn.q_proj"),
        (&arch::ATTN_K, "self_attn.k_proj"),
        (&arch::ATTN_V, "self_attn.v_proj"),
        (&arch::ATTN_SUB_NORM, attn_sub),
        (&arch::ATTN_OUTPUT, "self_attn.o_proj"),
        (&arch::FFN_NORM, "post_attention_layernorm"),
        (&arch::FFN_GATE, "mlp.gate_proj"),
        (&arch::FFN_UP, "mlp.up_proj"),
        (&arch::FFN_SUB_NORM, ffn_sub),
        (&arch::FFN_DOWN, "mlp.down_proj"),
    ];
    let (_, hf) = table.iter().find(|(t, hf)| *t == spec && !hf.is_empty())?;
    Some(format!("model.layers.{layer}.{hf}.weight"))
}

/// Builds the tensor list for a checkpoint and checks every shape and dtype against the
/// config before anything is written.
pub fn plan_tensors(cfg: &HfConfig, ck: &Checkpoint) -> Result<Vec<PlannedTensor>, ConvertError> {
    let gguf_arch = cfg.family.arch();
    let dims = Dims {
        n_embd: cfg.hidden_size,
        n_vocab: cfg.vocab_size,
        q_dim: cfg.num_heads * cfg.head_dim,
        kv_dim: cfg.num_kv_heads * cfg.head_dim,
        n_ff: cfg.intermediate_size,
    };
    // LLaMA files use normal RoPE, so the converter permutes the q/k rows of each head.
    let permuted = gguf_arch.spec().rope_style == RopeStyle::Normal;
    // Graphs whose head is normally separate keep a checkpoint's `lm_head` even when the config
    // says tied.
    let separate_head = !gguf_arch.spec().tied_output && ck.contains("lm_head.weight");
    let with_output = !cfg.tie_word_embeddings || separate_head;

    let mut plan = Vec::new();
    for (gguf_name, spec) in gguf_arch.tensors(cfg.num_layers, with_output) {
        let layer = arch::parse_layer_name(&gguf_name).map_or(0, |(l, _)| l);
        let hf_name = hf_name(cfg.family, spec, layer).ok_or_else(|| ConvertError::Tensor {
            name: gguf_name.clone(),
            message: format!(
                "no checkpoint tensor maps to it in a {:?} model",
                cfg.family
            ),
        })?;
        let role = match spec.role {
            Role::Embedding => TensorRole::Embedding,
            Role::Output => TensorRole::Output,
            Role::Norm | Role::SubNorm => TensorRole::Norm,
            Role::Ternary => TensorRole::Ternary {
                permute_heads: match *spec {
                    arch::ATTN_Q if permuted => Some(cfg.num_heads),
                    arch::ATTN_K if permuted => Some(cfg.num_kv_heads),
                    _ => None,
                },
            },
        };
        // HF shapes are row-major: the reverse of ggml's.
        let shape = spec.ne(&dims).iter().rev().map(|&d| d as usize).collect();
        plan.push(PlannedTensor {
            gguf_name,
            hf_name,
            role,
            shape,
            packed: false,
        });
    }

    for t in &mut plan {
        let view = ck.require(&t.hf_name)?;
        let shape_err = |expected: Vec<usize>| ConvertError::Shape {
            name: t.hf_name.clone(),
            found: view.shape.to_vec(),
            expected,
        };
        match t.role {
            TensorRole::Ternary { .. } if view.dtype == Dtype::U8 => {
                let rows = t.shape[0];
                if rows % 4 != 0 || view.shape != [rows / 4, t.shape[1]] {
                    return Err(shape_err(vec![rows / 4, t.shape[1]]));
                }
                let scale_name = format!("{}_scale", t.hf_name);
                let scale = ck.require(&scale_name)?;
                if scale.n_elements() != 1 || !scale.dtype.is_float() {
                    return Err(ConvertError::Tensor {
                        name: scale_name,
                        message: format!(
                            "expected one float, found {:?} of shape {:?}",
                            scale.dtype, scale.shape
                        ),
                    });
                }
                t.packed = true;
            }
            _ => {
                if !view.dtype.is_float() {
                    return Err(ConvertError::Tensor {
                        name: t.hf_name.clone(),
                        message: format!("unsupported dtype {:?}", view.dtype),
                    });
                }
                if view.shape != t.shape.as_slice() {
                    return Err(shape_err(t.shape.clone()));
                }
            }
        }
        if let TensorRole::Ternary {
            permute_heads: Some(heads),
        } = t.role
        {
            if t.shape[0] % (2 * heads) != 0 {
                return Err(shape_err(t.shape.clone()));
            }
        }
    }
    Ok(plan)
}

/// Checkpoint tensors that the plan does not use (reported as warnings).
pub fn unused_tensors<'a>(plan: &[PlannedTensor], ck: &'a Checkpoint) -> Vec<&'a str> {
    let used: std::collections::HashSet<&str> = plan.iter().map(|t| t.hf_name.as_str()).collect();
    ck.names()
        .filter(|n| !used.contains(n) && !is_ignorable(n))
        .collect()
}
