//! Hyper-parameters of a model, read from GGUF metadata and checked against the tensor shapes
//! (docs/model.md, 'Architectures', 'Hyper-parameters', 'Tensors'). Which keys and tensors an
//! architecture has comes from the table in `bitnet_formats::arch`.

use bitnet_formats::arch::{ActivationRule, Dims, HParam, Role, TensorSpec, OUTPUT, OUTPUT_NORM};
use bitnet_formats::arch::{ATTN_NORM, TOKEN_EMBD};
use bitnet_formats::{Metadata, TensorInfo, Value};

pub use bitnet_formats::arch::{Activation, Arch, RopeStyle};

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
    #[error(transparent)]
    UnknownArch(#[from] bitnet_formats::UnknownArch),
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

/// Typed reads of `{arch}.*` keys.
struct Keys<'m> {
    meta: &'m Metadata,
    arch_name: &'m str,
}

impl Keys<'_> {
    fn key(&self, hp: HParam) -> String {
        hp.key(self.arch_name)
    }

    /// The key's full name and value; `None` for an optional key the file leaves out.
    fn value(&self, hp: HParam) -> Result<Option<(String, &Value)>, ConfigError> {
        let full = self.key(hp);
        match self.meta.get(&full) {
            Some(v) => Ok(Some((full, v))),
            None if hp.required() => Err(ConfigError::MissingKey(full)),
            None => Ok(None),
        }
    }

    fn count(&self, hp: HParam) -> Result<Option<usize>, ConfigError> {
        let Some((full, v)) = self.value(hp)? else {
            return Ok(None);
        };
        let n = v.as_u64().ok_or_else(|| ConfigError::BadValue {
            key: full.clone(),
            why: "not a non-negative integer".into(),
        })?;
        positive(&full, n).map(Some)
    }

    /// A required count: `count` has already refused its absence.
    fn required(&self, hp: HParam) -> Result<usize, ConfigError> {
        debug_assert!(hp.required());
        self.count(hp)?
            .ok_or_else(|| ConfigError::MissingKey(self.key(hp)))
    }

    fn positive_float(&self, hp: HParam) -> Result<Option<f32>, ConfigError> {
        let Some((full, v)) = self.value(hp)? else {
            return Ok(None);
        };
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

    fn activation(&self, rule: ActivationRule) -> Result<Activation, ConfigError> {
        match rule {
            ActivationRule::Fixed(a) => Ok(a),
            ActivationRule::FromKey { default } => {
                // Ours first; upstream gguf-py's key when a file has only that one.
                let found = [HParam::HiddenAct, HParam::HiddenActivation]
                    .into_iter()
                    .find_map(|hp| Some((hp, self.meta.get_str(&self.key(hp))?)));
                match found {
                    None => Ok(default),
                    Some((hp, name)) => {
                        Activation::from_name(name).ok_or_else(|| ConfigError::BadValue {
                            key: self.key(hp),
                            why: format!("activation '{name}' is not supported (silu, relu2)"),
                        })
                    }
                }
            }
        }
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
        let arch = Arch::from_name(arch_name)?;
        let keys = Keys { meta, arch_name };
        let key = |hp: HParam| keys.key(hp);

        let n_embd = keys.required(HParam::EmbeddingLength)?;
        let n_layer = keys.required(HParam::BlockCount)?;
        let n_head = keys.required(HParam::HeadCount)?;
        let n_head_kv = keys.count(HParam::HeadCountKv)?.unwrap_or(n_head);
        let n_ctx_train = keys.required(HParam::ContextLength)?;
        let eps = keys
            .positive_float(HParam::RmsEpsilon)?
            .ok_or_else(|| ConfigError::MissingKey(key(HParam::RmsEpsilon)))?;
        let rope_base = keys
            .positive_float(HParam::RopeFreqBase)?
            .unwrap_or(10000.0);
        if n_embd % n_head != 0 {
            return Err(ConfigError::BadValue {
                key: key(HParam::HeadCount),
                why: format!("{n_head} does not divide embedding_length {n_embd}"),
            });
        }
        if n_head % n_head_kv != 0 {
            return Err(ConfigError::BadValue {
                key: key(HParam::HeadCountKv),
                why: format!("{n_head_kv} does not divide head_count {n_head}"),
            });
        }
        let head_dim = keys.count(HParam::KeyLength)?.unwrap_or(n_embd / n_head);
        let n_rot = keys.count(HParam::RopeDimensionCount)?.unwrap_or(head_dim);
        if n_rot > head_dim || n_rot % 2 != 0 {
            return Err(ConfigError::BadValue {
                key: key(HParam::RopeDimensionCount),
                why: format!("{n_rot} must be even and at most the head size {head_dim}"),
            });
        }
        let spec = arch.spec();
        let activation = keys.activation(spec.activation)?;
        let n_vocab = vocab_from_embedding(&keys, tensors, n_embd)?;
        let n_ff = keys.required(HParam::FeedForwardLength)?;

        let tied_output = tensors.shape(&OUTPUT.global_name()).is_none();
        let dims = Dims {
            n_embd,
            n_vocab,
            q_dim: n_head * head_dim,
            kv_dim: n_head_kv * head_dim,
            n_ff,
        };
        check_tensors(arch, tensors, &dims, n_layer, tied_output)?;
        // A block beyond block_count means the count is wrong, not that the tensor is spare.
        if tensors.shape(&ATTN_NORM.layer_name(n_layer)).is_some() {
            return Err(ConfigError::BadValue {
                key: key(HParam::BlockCount),
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
            rope_style: spec.rope_style,
            sub_norms: spec.sub_norms,
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

/// The vocabulary size is the embedding's row count; `vocab_size`, when present, must agree.
fn vocab_from_embedding<T: TensorShapes + ?Sized>(
    keys: &Keys,
    tensors: &T,
    n_embd: usize,
) -> Result<usize, ConfigError> {
    let name = TOKEN_EMBD.global_name();
    let embd = tensors
        .shape(&name)
        .ok_or_else(|| ConfigError::MissingTensor(name.clone()))?;
    let declared = keys.count(HParam::VocabSize)?;
    if embd.len() != 2 || embd[0] as usize != n_embd {
        return Err(ConfigError::BadShape {
            name,
            found: embd.to_vec(),
            expected: vec![n_embd as u64, declared.unwrap_or(0) as u64],
        });
    }
    let n_vocab = embd[1] as usize;
    if let Some(v) = declared.filter(|&v| v != n_vocab) {
        return Err(ConfigError::BadShape {
            name,
            found: embd.to_vec(),
            expected: vec![n_embd as u64, v as u64],
        });
    }
    Ok(n_vocab)
}

/// Every tensor of the architecture's table must exist with its shape; sub-norms must be
/// absent from graphs that have none.
fn check_tensors<T: TensorShapes + ?Sized>(
    arch: Arch,
    tensors: &T,
    dims: &Dims,
    n_layer: usize,
    tied_output: bool,
) -> Result<(), ConfigError> {
    let check = |name: &str, spec: &TensorSpec| -> Result<(), ConfigError> {
        let found = tensors
            .shape(name)
            .ok_or_else(|| ConfigError::MissingTensor(name.into()))?;
        let expected = spec.ne(dims);
        // Trailing 1s are allowed: some writers store vectors as [n, 1].
        let mut trimmed = found;
        while trimmed.len() > expected.len() && trimmed.last() == Some(&1) {
            trimmed = &trimmed[..trimmed.len() - 1];
        }
        if trimmed != expected.as_slice() {
            return Err(ConfigError::BadShape {
                name: name.into(),
                found: found.to_vec(),
                expected,
            });
        }
        Ok(())
    };
    check(&OUTPUT_NORM.global_name(), &OUTPUT_NORM)?;
    if !tied_output {
        check(&OUTPUT.global_name(), &OUTPUT)?;
    }
    for l in 0..n_layer {
        for spec in bitnet_formats::arch::LAYER_TENSORS {
            let name = spec.layer_name(l);
            if spec.role == Role::SubNorm && !arch.has_sub_norms() {
                if tensors.shape(&name).is_some() {
                    return Err(ConfigError::UnexpectedTensor(name, arch));
                }
            } else {
                check(&name, spec)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use bitnet_formats::arch::{Dims, HParam, ATTN_SUB_NORM};
    use bitnet_formats::Metadata;

    use super::*;

    impl TensorShapes for HashMap<String, Vec<u64>> {
        fn shape(&self, name: &str) -> Option<&[u64]> {
            self.get(name).map(Vec::as_slice)
        }
    }

    const DIMS: Dims = Dims {
        n_embd: 64,
        n_vocab: 100,
        q_dim: 64,
        kv_dim: 32,
        n_ff: 96,
    };

    fn model(arch: Arch) -> (Metadata, HashMap<String, Vec<u64>>) {
        let mut meta = Metadata::new();
        meta.set("general.architecture", arch.name());
        let k = |hp: HParam| hp.key(arch.name());
        meta.set(k(HParam::EmbeddingLength), 64u32);
        meta.set(k(HParam::BlockCount), 2u32);
        meta.set(k(HParam::HeadCount), 4u32);
        meta.set(k(HParam::HeadCountKv), 2u32);
        meta.set(k(HParam::ContextLength), 128u32);
        meta.set(k(HParam::FeedForwardLength), 96u32);
        meta.set(k(HParam::RmsEpsilon), 1e-5f32);
        let with_output = !arch.spec().tied_output;
        let tensors = arch
            .tensors(2, with_output)
            .map(|(name, spec)| (name, spec.ne(&DIMS)))
            .collect();
        (meta, tensors)
    }

    #[test]
    fn the_loader_requires_exactly_the_schema_tensors() {
        for arch in Arch::ALL {
            let (meta, tensors) = model(arch);
            let cfg = ModelConfig::from_gguf(&meta, &tensors).unwrap();
            assert_eq!((cfg.arch, cfg.n_vocab, cfg.kv_dim()), (arch, 100, 32));
            assert_eq!(cfg.tied_output, arch.spec().tied_output);
            for name in tensors.keys() {
                let mut fewer = tensors.clone();
                fewer.remove(name);
                match ModelConfig::from_gguf(&meta, &fewer) {
                    // The head is optional: without it the embedding is used.
                    Ok(cfg) => assert!(OUTPUT.is_global_name(name) && cfg.tied_output),
                    Err(ConfigError::MissingTensor(n)) => assert_eq!(&n, name, "{arch}"),
                    Err(e) => panic!("{arch}: removing {name}: {e}"),
                }
            }
        }
    }

    #[test]
    fn sub_norms_in_a_graph_without_them_are_refused() {
        let (meta, mut tensors) = model(Arch::Llama);
        tensors.insert(ATTN_SUB_NORM.layer_name(1), vec![64]);
        let e = ModelConfig::from_gguf(&meta, &tensors).unwrap_err();
        assert!(matches!(e, ConfigError::UnexpectedTensor(..)), "{e}");
    }

    #[test]
    fn unknown_architecture_is_a_clear_error() {
        let (mut meta, tensors) = model(Arch::Bitnet);
        meta.set("general.architecture", "mamba");
        let e = ModelConfig::from_gguf(&meta, &tensors).unwrap_err();
        assert_eq!(
            e.to_string(),
            "architecture 'mamba' is not supported (known: bitnet-b1.58, bitnet-25, bitnet, llama)"
        );
    }

    #[test]
    fn bitnet_activation_comes_from_either_key_ours_first() {
        let (meta, tensors) = model(Arch::Bitnet);
        let act = |m: &Metadata| ModelConfig::from_gguf(m, &tensors).unwrap().activation;
        assert_eq!(act(&meta), Activation::Silu);
        let mut upstream_only = meta.clone();
        upstream_only.set("bitnet.hidden_activation", "relu2");
        assert_eq!(act(&upstream_only), Activation::Relu2);
        let mut both = upstream_only.clone();
        both.set("bitnet.hidden_act", "silu");
        assert_eq!(act(&both), Activation::Silu);
    }
}
