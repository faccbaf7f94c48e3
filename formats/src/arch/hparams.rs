//! The `{arch}.*` hyper-parameter keys, shared by every architecture in the table.

/// One hyper-parameter key; its full name is `{arch}.{suffix}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HParam {
    VocabSize,
    ContextLength,
    EmbeddingLength,
    BlockCount,
    FeedForwardLength,
    HeadCount,
    /// Defaults to the head count (no grouped-query attention).
    HeadCountKv,
    /// Head size; defaults to `embedding_length / head_count`.
    KeyLength,
    /// Rotated dimensions per head; defaults to the head size.
    RopeDimensionCount,
    /// Defaults to 10000.
    RopeFreqBase,
    RmsEpsilon,
    /// Read only by architectures whose activation is [`super::ActivationRule::FromKey`].
    HiddenAct,
    /// Upstream gguf-py's spelling of the same key (`add_hidden_act`); writers set both, readers
    /// prefer `hidden_act`.
    HiddenActivation,
    RopeScalingType,
    RopeScalingFactor,
}

impl HParam {
    pub const ALL: [HParam; 15] = [
        HParam::VocabSize,
        HParam::ContextLength,
        HParam::EmbeddingLength,
        HParam::BlockCount,
        HParam::FeedForwardLength,
        HParam::HeadCount,
        HParam::HeadCountKv,
        HParam::KeyLength,
        HParam::RopeDimensionCount,
        HParam::RopeFreqBase,
        HParam::RmsEpsilon,
        HParam::HiddenAct,
        HParam::HiddenActivation,
        HParam::RopeScalingType,
        HParam::RopeScalingFactor,
    ];

    pub const fn suffix(self) -> &'static str {
        match self {
            HParam::VocabSize => "vocab_size",
            HParam::ContextLength => "context_length",
            HParam::EmbeddingLength => "embedding_length",
            HParam::BlockCount => "block_count",
            HParam::FeedForwardLength => "feed_forward_length",
            HParam::HeadCount => "attention.head_count",
            HParam::HeadCountKv => "attention.head_count_kv",
            HParam::KeyLength => "attention.key_length",
            HParam::RopeDimensionCount => "rope.dimension_count",
            HParam::RopeFreqBase => "rope.freq_base",
            HParam::RmsEpsilon => "attention.layer_norm_rms_epsilon",
            HParam::HiddenAct => "hidden_act",
            HParam::HiddenActivation => "hidden_activation",
            HParam::RopeScalingType => "rope.scaling.type",
            HParam::RopeScalingFactor => "rope.scaling.factor",
        }
    }

    /// A file without this key cannot be loaded; the others have defaults or are
    /// cross-checked against the tensor shapes (`vocab_size`).
    pub const fn required(self) -> bool {
        matches!(
            self,
            HParam::ContextLength
                | HParam::EmbeddingLength
                | HParam::BlockCount
                | HParam::FeedForwardLength
                | HParam::HeadCount
                | HParam::RmsEpsilon
        )
    }

    /// The full key for a file whose `general.architecture` is `arch_name`.
    pub fn key(self, arch_name: &str) -> String {
        format!("{arch_name}.{}", self.suffix())
    }
}
