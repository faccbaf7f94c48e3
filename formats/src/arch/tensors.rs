//! The tensor-name table: every GGUF tensor of a model, its role, and its shape as a function
//! of the hyper-parameters.

/// What a tensor is for; decides its storage type in every writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `token_embd`: a dense `[n_embd, n_vocab]` matrix.
    Embedding,
    /// `output`, the separate LM head (absent when tied to the embedding).
    Output,
    /// RMSNorm weights, stored as F32.
    Norm,
    /// The BitNet norms before `attn_output` / `ffn_down`; only in graphs with sub-norms.
    SubNorm,
    /// A BitLinear projection, stored in a ternary type.
    Ternary,
}

/// A dimension of a tensor shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    /// `embedding_length`.
    Embd,
    /// Vocabulary size (rows of the embedding).
    Vocab,
    /// `head_count · head size`: the width of the query projection.
    Q,
    /// `head_count_kv · head size`: the width of the key and value projections.
    Kv,
    /// `feed_forward_length`.
    Ff,
}

/// The values of the [`Dim`]s for one model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub n_embd: usize,
    pub n_vocab: usize,
    pub q_dim: usize,
    pub kv_dim: usize,
    pub n_ff: usize,
}

impl Dims {
    pub const fn get(&self, d: Dim) -> usize {
        match d {
            Dim::Embd => self.n_embd,
            Dim::Vocab => self.n_vocab,
            Dim::Q => self.q_dim,
            Dim::Kv => self.kv_dim,
            Dim::Ff => self.n_ff,
        }
    }
}

/// One entry of the table. Global tensors are named `{base}.weight`, per-layer ones
/// `blk.{i}.{base}.weight`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub base: &'static str,
    pub role: Role,
    /// ggml order: `shape[0]` (`ne[0]`) is the input (column) dimension.
    pub shape: &'static [Dim],
}

impl TensorSpec {
    pub fn global_name(&self) -> String {
        format!("{}.weight", self.base)
    }

    /// True when `name` is this global tensor's name.
    pub fn is_global_name(&self, name: &str) -> bool {
        name.strip_suffix(".weight") == Some(self.base)
    }

    pub fn layer_name(&self, layer: usize) -> String {
        format!("blk.{layer}.{}.weight", self.base)
    }

    /// The optional per-tensor scale beside a projection (`blk.{i}.{base}.scale`).
    pub fn scale_name(&self, layer: usize) -> String {
        format!("blk.{layer}.{}.scale", self.base)
    }

    /// The shape in ggml order.
    pub fn ne(&self, dims: &Dims) -> Vec<u64> {
        self.shape.iter().map(|&d| dims.get(d) as u64).collect()
    }

    pub fn is_ternary(&self) -> bool {
        self.role == Role::Ternary
    }
}

const fn spec(base: &'static str, role: Role, shape: &'static [Dim]) -> TensorSpec {
    TensorSpec { base, role, shape }
}

pub const TOKEN_EMBD: TensorSpec = spec("token_embd", Role::Embedding, &[Dim::Embd, Dim::Vocab]);
pub const OUTPUT_NORM: TensorSpec = spec("output_norm", Role::Norm, &[Dim::Embd]);
pub const OUTPUT: TensorSpec = spec("output", Role::Output, &[Dim::Embd, Dim::Vocab]);

pub const ATTN_NORM: TensorSpec = spec("attn_norm", Role::Norm, &[Dim::Embd]);
pub const ATTN_Q: TensorSpec = spec("attn_q", Role::Ternary, &[Dim::Embd, Dim::Q]);
pub const ATTN_K: TensorSpec = spec("attn_k", Role::Ternary, &[Dim::Embd, Dim::Kv]);
pub const ATTN_V: TensorSpec = spec("attn_v", Role::Ternary, &[Dim::Embd, Dim::Kv]);
pub const ATTN_SUB_NORM: TensorSpec = spec("attn_sub_norm", Role::SubNorm, &[Dim::Q]);
pub const ATTN_OUTPUT: TensorSpec = spec("attn_output", Role::Ternary, &[Dim::Q, Dim::Embd]);
pub const FFN_NORM: TensorSpec = spec("ffn_norm", Role::Norm, &[Dim::Embd]);
pub const FFN_GATE: TensorSpec = spec("ffn_gate", Role::Ternary, &[Dim::Embd, Dim::Ff]);
pub const FFN_UP: TensorSpec = spec("ffn_up", Role::Ternary, &[Dim::Embd, Dim::Ff]);
pub const FFN_SUB_NORM: TensorSpec = spec("ffn_sub_norm", Role::SubNorm, &[Dim::Ff]);
pub const FFN_DOWN: TensorSpec = spec("ffn_down", Role::Ternary, &[Dim::Ff, Dim::Embd]);

/// Every per-layer tensor in file order; [`super::Arch::layer_tensors`] drops the sub-norms
/// for graphs without them.
pub const LAYER_TENSORS: [&TensorSpec; 11] = [
    &ATTN_NORM,
    &ATTN_Q,
    &ATTN_K,
    &ATTN_V,
    &ATTN_SUB_NORM,
    &ATTN_OUTPUT,
    &FFN_NORM,
    &FFN_GATE,
    &FFN_UP,
    &FFN_SUB_NORM,
    &FFN_DOWN,
];

/// `blk.{i}.{base}.weight` → the layer and the table entry.
pub fn parse_layer_name(name: &str) -> Option<(usize, &'static TensorSpec)> {
    let rest = name.strip_prefix("blk.")?.strip_suffix(".weight")?;
    let (layer, base) = rest.split_once('.')?;
    if layer.is_empty() || !layer.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let spec = LAYER_TENSORS.iter().copied().find(|t| t.base == base)?;
    Some((layer.parse().ok()?, spec))
}

/// The projection weights BitNet stores as ternary (`blk.N.attn_q.weight`, …).
pub fn is_ternary_projection(name: &str) -> bool {
    parse_layer_name(name).is_some_and(|(_, t)| t.is_ternary())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_names_round_trip() {
        for t in LAYER_TENSORS {
            assert_eq!(parse_layer_name(&t.layer_name(17)), Some((17, t)));
        }
        assert_eq!(parse_layer_name("blk.x.attn_q.weight"), None);
        assert_eq!(parse_layer_name("blk.0.attn_q.scale"), None);
        assert_eq!(parse_layer_name("blk.0.attn_qq.weight"), None);
    }

    #[test]
    fn only_the_seven_projections_are_ternary() {
        let ternary: Vec<&str> = LAYER_TENSORS
            .iter()
            .filter(|t| is_ternary_projection(&t.layer_name(0)))
            .map(|t| t.base)
            .collect();
        assert_eq!(
            ternary,
            [
                "attn_q",
                "attn_k",
                "attn_v",
                "attn_output",
                "ffn_gate",
                "ffn_up",
                "ffn_down"
            ]
        );
        assert!(!is_ternary_projection("token_embd.weight"));
        assert!(!is_ternary_projection("blk.0.attn_norm.weight"));
    }

    #[test]
    fn shapes_follow_the_hyper_parameters() {
        let d = Dims {
            n_embd: 8,
            n_vocab: 100,
            q_dim: 8,
            kv_dim: 4,
            n_ff: 24,
        };
        assert_eq!(ATTN_K.ne(&d), [8, 4]);
        assert_eq!(FFN_DOWN.ne(&d), [24, 8]);
        assert_eq!(TOKEN_EMBD.ne(&d), [8, 100]);
        assert!(OUTPUT.is_global_name("output.weight"));
        assert!(!OUTPUT.is_global_name("output_norm.weight"));
    }
}
