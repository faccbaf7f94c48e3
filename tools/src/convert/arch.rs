//! Which GGUF tensors a checkpoint becomes (docs/model.md, 'Tensors'): names, shapes, and whether a
//! tensor is a ternary projection, a norm, or an embedding/head.

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

/// Builds the tensor list for a checkpoint and checks every shape and dtype against the
/// config before anything is written.
pub fn plan_tensors(cfg: &HfConfig, ck: &Checkpoint) -> Result<Vec<PlannedTensor>, ConvertError> {
    let h = cfg.hidden_size;
    let ffn = cfg.intermediate_size;
    let q_dim = cfg.num_heads * cfg.head_dim;
    let kv_dim = cfg.num_kv_heads * cfg.head_dim;
    let llama = cfg.family == ModelFamily::Llama;
    let (attn_sub, ffn_sub) = match cfg.family {
        ModelFamily::BitNetB158 => (Some("self_attn.attn_sub_norm"), Some("mlp.ffn_sub_norm")),
        ModelFamily::Bitnet1bitLlm => (Some("self_attn.inner_attn_ln"), Some("mlp.ffn_layernorm")),
        ModelFamily::Llama => (None, None),
    };

    let mut plan = Vec::new();
    let mut add = |gguf: String, hf: String, role: TensorRole, shape: Vec<usize>| {
        plan.push(PlannedTensor {
            gguf_name: gguf,
            hf_name: hf,
            role,
            shape,
            packed: false,
        });
    };

    add(
        "token_embd.weight".into(),
        "model.embed_tokens.weight".into(),
        TensorRole::Embedding,
        vec![cfg.vocab_size, h],
    );
    for i in 0..cfg.num_layers {
        let p = format!("model.layers.{i}");
        let b = format!("blk.{i}");
        let tern = |heads: Option<usize>| TensorRole::Ternary {
            permute_heads: if llama { heads } else { None },
        };
        add(
            format!("{b}.attn_norm.weight"),
            format!("{p}.input_layernorm.weight"),
            TensorRole::Norm,
            vec![h],
        );
        add(
            format!("{b}.attn_q.weight"),
            format!("{p}.self_attn.q_proj.weight"),
            tern(Some(cfg.num_heads)),
            vec![q_dim, h],
        );
        add(
            format!("{b}.attn_k.weight"),
            format!("{p}.self_attn.k_proj.weight"),
            tern(Some(cfg.num_kv_heads)),
            vec![kv_dim, h],
        );
        add(
            format!("{b}.attn_v.weight"),
            format!("{p}.self_attn.v_proj.weight"),
            tern(None),
            vec![kv_dim, h],
        );
        if let Some(n) = attn_sub {
            add(
                format!("{b}.attn_sub_norm.weight"),
                format!("{p}.{n}.weight"),
                TensorRole::Norm,
                vec![q_dim],
            );
        }
        add(
            format!("{b}.attn_output.weight"),
            format!("{p}.self_attn.o_proj.weight"),
            tern(None),
            vec![h, q_dim],
        );
        add(
            format!("{b}.ffn_norm.weight"),
            format!("{p}.post_attention_layernorm.weight"),
            TensorRole::Norm,
            vec![h],
        );
        add(
            format!("{b}.ffn_gate.weight"),
            format!("{p}.mlp.gate_proj.weight"),
            tern(None),
            vec![ffn, h],
        );
        add(
            format!("{b}.ffn_up.weight"),
            format!("{p}.mlp.up_proj.weight"),
            tern(None),
            vec![ffn, h],
        );
        if let Some(n) = ffn_sub {
            add(
                format!("{b}.ffn_sub_norm.weight"),
                format!("{p}.{n}.weight"),
                TensorRole::Norm,
                vec![ffn],
            );
        }
        add(
            format!("{b}.ffn_down.weight"),
            format!("{p}.mlp.down_proj.weight"),
            tern(None),
            vec![h, ffn],
        );
    }
    add(
        "output_norm.weight".into(),
        "model.norm.weight".into(),
        TensorRole::Norm,
        vec![h],
    );
    if !cfg.tie_word_embeddings || (ck.contains("lm_head.weight") && llama) {
        add(
            "output.weight".into(),
            "lm_head.weight".into(),
            TensorRole::Output,
            vec![cfg.vocab_size, h],
        );
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
