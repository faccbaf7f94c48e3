//! The model architectures as one table: GGUF architecture names, the hyper-parameter keys,
//! and every tensor's name, role and shape, in the manner of llama.cpp's tensor-name table.
//!
//! The engine checks files against this table, and the converter, the quantizer and the dummy
//! writer produce files from it, so adding an architecture is adding one [`ArchSpec`] to
//! [`ARCHES`] (and a variant to [`Arch`]). The supported checkpoints and the output layout are
//! described in `docs/convert.md` ("Supported checkpoints", "Output").

mod hparams;
mod tensors;

use std::fmt;

use crate::types::Dialect;

pub use hparams::HParam;
pub use tensors::{
    is_ternary_projection, parse_layer_name, Dim, Dims, Role, TensorSpec, ATTN_K, ATTN_NORM,
    ATTN_OUTPUT, ATTN_Q, ATTN_SUB_NORM, ATTN_V, FFN_DOWN, FFN_GATE, FFN_NORM, FFN_SUB_NORM, FFN_UP,
    LAYER_TENSORS, OUTPUT, OUTPUT_NORM, TOKEN_EMBD,
};

/// The graphs this project knows, one per `general.architecture` string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// microsoft/BitNet-b1.58-2B-4T: squared-ReLU FFN, sub-norms, NEOX RoPE, tied head.
    BitnetB158,
    /// The early 2B checkpoint; same graph as `bitnet-b1.58`.
    Bitnet25,
    /// 1bitLLM (and upstream llama.cpp's name for all BitNets): sub-norms, NEOX RoPE,
    /// activation from `bitnet.hidden_act` (or upstream's `bitnet.hidden_activation`), SiLU
    /// when both are absent. Upstream llama.cpp itself always computes SiLU for `bitnet`.
    Bitnet,
    /// Llama-1.58 models (HF1BitLLM, Falcon3-1.58): plain LLaMA graph with permuted q/k
    /// (normal RoPE), SiLU, no sub-norms, separate head.
    Llama,
}

/// The FFN gate non-linearity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `relu(g)²` (BitNet b1.58 2B4T).
    Relu2,
    /// `g · sigmoid(g)` (LLaMA, 1bitLLM).
    Silu,
}

impl Activation {
    /// The spelling written to `{arch}.hidden_act` (Hugging Face's `hidden_act` value).
    pub const fn name(self) -> &'static str {
        match self {
            Activation::Silu => "silu",
            Activation::Relu2 => "relu2",
        }
    }

    /// The keys writers record for this activation in an `arch_name` file: our
    /// `{arch}.hidden_act`, and where the architecture takes its activation from keys (`bitnet`)
    /// also upstream gguf-py's `{arch}.hidden_activation` with the same value.
    pub fn metadata(self, arch_name: &str) -> Vec<(String, &'static str)> {
        let keyed = Arch::from_name(arch_name)
            .is_ok_and(|a| matches!(a.spec().activation, ActivationRule::FromKey { .. }));
        let mut keys = vec![(HParam::HiddenAct.key(arch_name), self.name())];
        if keyed {
            keys.push((HParam::HiddenActivation.key(arch_name), self.name()));
        }
        keys
    }

    /// Reads a `hidden_act` value, accepting the aliases Hugging Face configs use.
    pub fn from_name(name: &str) -> Option<Activation> {
        match name {
            "silu" | "swish" => Some(Activation::Silu),
            "relu2" | "relu_squared" | "squared_relu" => Some(Activation::Relu2),
            _ => None,
        }
    }
}

/// Where an architecture's FFN activation comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActivationRule {
    /// Implied by the architecture name; `hidden_act` is not read.
    Fixed(Activation),
    /// Read from `{arch}.hidden_act`, else `{arch}.hidden_activation`, with this default when
    /// both are absent.
    FromKey { default: Activation },
}

/// How rotary embeddings pair up the dimensions of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    /// Pairs `(i, i + n_rot/2)`: HF's rotate-half layout, kept by the BitNet converters.
    Neox,
    /// Pairs `(2i, 2i + 1)`: LLaMA files whose q/k rows the converter permuted.
    Normal,
}

/// One row of the architecture table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ArchSpec {
    pub arch: Arch,
    /// `general.architecture` in bitnet.cpp's naming, and the `{arch}.` key prefix.
    pub name: &'static str,
    /// The name upstream llama.cpp (and Ollama) know this graph by; TQ files use it.
    pub upstream_name: &'static str,
    /// Written by the bitnet.cpp tool-chain (the fork's tensor type ids may appear).
    pub bitnet_family: bool,
    pub activation: ActivationRule,
    pub rope_style: RopeStyle,
    /// Has `attn_sub_norm` / `ffn_sub_norm` before the output projections.
    pub sub_norms: bool,
    /// Writers omit `output.weight` (the head is `token_embd`) unless told otherwise. Readers
    /// accept either.
    pub tied_output: bool,
}

/// Indexed by `Arch as usize`.
pub const ARCHES: [ArchSpec; 4] = [
    ArchSpec {
        arch: Arch::BitnetB158,
        name: "bitnet-b1.58",
        upstream_name: "bitnet",
        bitnet_family: true,
        activation: ActivationRule::Fixed(Activation::Relu2),
        rope_style: RopeStyle::Neox,
        sub_norms: true,
        tied_output: true,
    },
    ArchSpec {
        arch: Arch::Bitnet25,
        name: "bitnet-25",
        upstream_name: "bitnet",
        bitnet_family: true,
        activation: ActivationRule::Fixed(Activation::Relu2),
        rope_style: RopeStyle::Neox,
        sub_norms: true,
        tied_output: true,
    },
    ArchSpec {
        arch: Arch::Bitnet,
        name: "bitnet",
        upstream_name: "bitnet",
        bitnet_family: true,
        activation: ActivationRule::FromKey {
            default: Activation::Silu,
        },
        rope_style: RopeStyle::Neox,
        sub_norms: true,
        tied_output: true,
    },
    ArchSpec {
        arch: Arch::Llama,
        name: "llama",
        upstream_name: "llama",
        bitnet_family: false,
        activation: ActivationRule::Fixed(Activation::Silu),
        rope_style: RopeStyle::Normal,
        sub_norms: false,
        tied_output: false,
    },
];

/// `general.architecture` names not in [`ARCHES`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownArch(pub String);

impl std::error::Error for UnknownArch {}

impl fmt::Display for UnknownArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "architecture '{}' is not supported (known: ", self.0)?;
        for (i, spec) in ARCHES.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{}", spec.name)?;
        }
        f.write_str(")")
    }
}

impl Arch {
    pub const ALL: [Arch; 4] = [Arch::BitnetB158, Arch::Bitnet25, Arch::Bitnet, Arch::Llama];

    pub const fn spec(self) -> &'static ArchSpec {
        &ARCHES[self as usize]
    }

    pub fn from_name(name: &str) -> Result<Arch, UnknownArch> {
        ARCHES
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.arch)
            .ok_or_else(|| UnknownArch(name.to_string()))
    }

    pub const fn name(self) -> &'static str {
        self.spec().name
    }

    /// Whether `name` is the `general.architecture` of a graph written by the bitnet.cpp
    /// tool-chain (the default chat template and pre-tokenizer of such files are 2B4T's).
    pub fn is_bitnet_family_name(name: &str) -> bool {
        ARCHES.iter().any(|s| s.bitnet_family && s.name == name)
    }

    pub const fn upstream_name(self) -> &'static str {
        self.spec().upstream_name
    }

    /// `general.architecture` for a file written in `dialect`: upstream llama.cpp knows every
    /// BitNet graph as `bitnet`; both bitnet.cpp generations know our names (the 2024 fork
    /// registers `bitnet`, `bitnet-25` and `bitnet-b1.58`, as the current one does).
    pub const fn name_in(self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Upstream => self.upstream_name(),
            Dialect::Bitnet | Dialect::Bitnet2024 => self.name(),
        }
    }

    /// BitNet graphs normalise the attention output and the FFN product before the output
    /// projections.
    pub const fn has_sub_norms(self) -> bool {
        self.spec().sub_norms
    }

    /// The per-layer tensors of this graph, in file order.
    pub fn layer_tensors(self) -> impl Iterator<Item = &'static TensorSpec> {
        let sub_norms = self.has_sub_norms();
        LAYER_TENSORS
            .iter()
            .copied()
            .filter(move |t| sub_norms || t.role != Role::SubNorm)
    }

    /// Every tensor of an `n_layer` model with its GGUF name, in the order writers emit them:
    /// the embedding, the blocks, the final norm, and the head when it is not tied.
    pub fn tensors(
        self,
        n_layer: usize,
        with_output: bool,
    ) -> impl Iterator<Item = (String, &'static TensorSpec)> {
        let first = std::iter::once((TOKEN_EMBD.global_name(), &TOKEN_EMBD));
        let layers =
            (0..n_layer).flat_map(move |l| self.layer_tensors().map(move |t| (t.layer_name(l), t)));
        let last = [(OUTPUT_NORM.global_name(), &OUTPUT_NORM)]
            .into_iter()
            .chain(with_output.then(|| (OUTPUT.global_name(), &OUTPUT)));
        first.chain(layers).chain(last)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_indexed_by_the_enum() {
        for (i, arch) in Arch::ALL.into_iter().enumerate() {
            assert_eq!(ARCHES[i].arch, arch);
            assert_eq!(Arch::from_name(arch.name()), Ok(arch));
        }
    }

    #[test]
    fn dialect_detection_knows_the_bitnet_family() {
        let family: Vec<&str> = ARCHES
            .iter()
            .filter(|s| s.bitnet_family)
            .map(|s| s.name)
            .collect();
        let mut listed = crate::gguf::BITNET_ARCHITECTURES.to_vec();
        listed.sort();
        let mut expected = family.clone();
        expected.sort();
        assert_eq!(listed, expected);
    }

    #[test]
    fn unknown_architecture_names_the_known_ones() {
        let e = Arch::from_name("mistral").unwrap_err();
        assert_eq!(
            e.to_string(),
            "architecture 'mistral' is not supported (known: bitnet-b1.58, bitnet-25, bitnet, llama)"
        );
    }

    #[test]
    fn llama_has_no_sub_norms_and_bitnet_has_both() {
        let names = |a: Arch| a.layer_tensors().map(|t| t.base).collect::<Vec<_>>();
        assert!(!names(Arch::Llama).contains(&"attn_sub_norm"));
        assert_eq!(names(Arch::Llama).len(), 9);
        assert!(names(Arch::Bitnet).contains(&"ffn_sub_norm"));
        assert_eq!(names(Arch::Bitnet).len(), 11);
    }

    #[test]
    fn tensor_list_orders_globals_around_the_blocks() {
        let all: Vec<String> = Arch::Llama.tensors(2, true).map(|(n, _)| n).collect();
        assert_eq!(all.len(), 2 * 9 + 3);
        assert_eq!(all[0], "token_embd.weight");
        assert_eq!(all[1], "blk.0.attn_norm.weight");
        assert_eq!(all[all.len() - 2], "output_norm.weight");
        assert_eq!(all[all.len() - 1], "output.weight");
        assert_eq!(Arch::Bitnet.tensors(1, false).count(), 11 + 2);
    }

    #[test]
    fn upstream_knows_every_bitnet_graph_as_bitnet() {
        assert_eq!(Arch::BitnetB158.name_in(Dialect::Upstream), "bitnet");
        assert_eq!(
            Arch::BitnetB158.name_in(Dialect::Bitnet2024),
            "bitnet-b1.58"
        );
        assert_eq!(Arch::BitnetB158.name_in(Dialect::Bitnet), "bitnet-b1.58");
        assert_eq!(Arch::Llama.name_in(Dialect::Upstream), "llama");
    }
}
