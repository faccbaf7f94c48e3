//! What `inspect` finds in a file, independent of how it is printed.

use std::collections::BTreeMap;

use bitnet_formats::arch::{Activation, Arch, HParam};
use bitnet_formats::gguf::BITNET_ARCHITECTURES;
use bitnet_formats::{GgufFile, Metadata, TensorType};

/// Arrays longer than this are summarised unless `--full` is given.
pub const ARRAY_SUMMARY_LEN: usize = 16;
/// How many leading elements a summarised array shows.
pub const ARRAY_PREVIEW_LEN: usize = 8;

/// Metadata key our converter and re-quantiser write to record how I2_S tensors are packed.
pub const I2S_LAYOUT_KEY: &str = "bitnet.i2s.layout";
/// Prefix of the per-tensor TL tile-parameter keys `bitnet.tl.<tensor>.{bm,bk,bmm}`.
pub const TL_KEY_PREFIX: &str = "bitnet.tl.";

/// A known defect or ambiguity, with a stable code for scripts.
pub struct Warning {
    pub code: &'static str,
    pub message: String,
}

pub struct SpecialToken {
    pub role: &'static str,
    pub id: u64,
    pub text: Option<String>,
}

pub struct TokenizerSummary {
    pub model: Option<String>,
    pub pre: Option<String>,
    pub vocab_size: Option<usize>,
    pub merges: Option<usize>,
    pub specials: Vec<SpecialToken>,
    pub add_bos: Option<bool>,
    pub add_eos: Option<bool>,
    pub chat_template_bytes: Option<usize>,
    pub chat_template_is_placeholder: bool,
}

pub struct TypeTotal {
    pub ty: TensorType,
    pub count: usize,
    pub n_elements: u64,
    pub bytes: u64,
}

pub struct Totals {
    pub by_type: Vec<TypeTotal>,
    pub n_elements: u64,
    pub bytes: u64,
    pub ternary_elements: u64,
    pub ternary_bytes: u64,
}

impl Totals {
    pub fn ternary_bits_per_weight(&self) -> Option<f64> {
        (self.ternary_elements > 0)
            .then(|| self.ternary_bytes as f64 * 8.0 / self.ternary_elements as f64)
    }
}

pub struct Report {
    pub architecture: Option<String>,
    /// `{arch}.*` keys with scalar values, prefix removed, in file order.
    pub hparams: Vec<(String, String)>,
    pub tokenizer: Option<TokenizerSummary>,
    pub totals: Totals,
    pub warnings: Vec<Warning>,
}

/// `general.file_type` (LLAMA_FTYPE) names; 38..=40 depend on the dialect
/// (docs/gguf.md, 'File types (general.file_type)').
pub fn file_type_name(value: u64, bitnet: bool) -> Option<&'static str> {
    Some(match value {
        0 => "ALL_F32",
        1 => "MOSTLY_F16",
        2 => "MOSTLY_Q4_0",
        3 => "MOSTLY_Q4_1",
        7 => "MOSTLY_Q8_0",
        8 => "MOSTLY_Q5_0",
        9 => "MOSTLY_Q5_1",
        10 => "MOSTLY_Q2_K",
        11 => "MOSTLY_Q3_K_S",
        12 => "MOSTLY_Q3_K_M",
        13 => "MOSTLY_Q3_K_L",
        14 => "MOSTLY_Q4_K_S",
        15 => "MOSTLY_Q4_K_M",
        16 => "MOSTLY_Q5_K_S",
        17 => "MOSTLY_Q5_K_M",
        18 => "MOSTLY_Q6_K",
        32 => "MOSTLY_BF16",
        36 => "MOSTLY_TQ1_0",
        37 => "MOSTLY_TQ2_0",
        38 if bitnet => "MOSTLY_TL1",
        39 if bitnet => "MOSTLY_TL2",
        40 if bitnet => "MOSTLY_I2_S",
        38 => "MOSTLY_MXFP4_MOE",
        39 => "MOSTLY_NVFP4",
        40 => "MOSTLY_Q1_0",
        1024 => "GUESSED",
        _ => return None,
    })
}

/// A short rendering of a scalar value for the hyper-parameter block.
fn scalar_text(v: &bitnet_formats::Value) -> Option<String> {
    use bitnet_formats::Value::*;
    Some(match v {
        String(s) => format!("{s:?}"),
        Array(_) => return None,
        F32(x) => format!("{x}"),
        F64(x) => format!("{x}"),
        Bool(b) => b.to_string(),
        other => other
            .as_i64()
            .map(|i| i.to_string())
            .or_else(|| other.as_u64().map(|u| u.to_string()))?,
    })
}

fn token_text(meta: &Metadata, id: u64) -> Option<String> {
    let tokens = meta.get_array("tokenizer.ggml.tokens")?;
    tokens
        .values
        .get(usize::try_from(id).ok()?)?
        .as_str()
        .map(str::to_owned)
}

fn tokenizer_summary(meta: &Metadata) -> Option<TokenizerSummary> {
    if !meta.keys().any(|k| k.starts_with("tokenizer.")) {
        return None;
    }
    let roles = [
        ("bos", "tokenizer.ggml.bos_token_id"),
        ("eos", "tokenizer.ggml.eos_token_id"),
        ("eot", "tokenizer.ggml.eot_token_id"),
        ("eom", "tokenizer.ggml.eom_token_id"),
        ("pad", "tokenizer.ggml.padding_token_id"),
        ("unk", "tokenizer.ggml.unknown_token_id"),
        ("sep", "tokenizer.ggml.seperator_token_id"),
        ("mask", "tokenizer.ggml.mask_token_id"),
    ];
    let specials = roles
        .iter()
        .filter_map(|&(role, key)| {
            let id = meta.get_u64(key)?;
            Some(SpecialToken {
                role,
                id,
                text: token_text(meta, id),
            })
        })
        .collect();
    let template = meta.get_str("tokenizer.chat_template");
    Some(TokenizerSummary {
        model: meta.get_str("tokenizer.ggml.model").map(str::to_owned),
        pre: meta.get_str("tokenizer.ggml.pre").map(str::to_owned),
        vocab_size: meta.get_array("tokenizer.ggml.tokens").map(|a| a.len()),
        merges: meta.get_array("tokenizer.ggml.merges").map(|a| a.len()),
        specials,
        add_bos: meta.get_bool("tokenizer.ggml.add_bos_token"),
        add_eos: meta.get_bool("tokenizer.ggml.add_eos_token"),
        chat_template_bytes: template.map(str::len),
        // Microsoft's converter writes this template into every bitnet GGUF
        // (docs/model.md, 'Chat template of BitNet b1.58 2B-4T').
        chat_template_is_placeholder: template.is_some_and(|t| t.contains("BITNETAssistant")),
    })
}

fn totals(file: &GgufFile) -> Totals {
    let mut by_type: BTreeMap<TensorType, TypeTotal> = BTreeMap::new();
    let mut t = Totals {
        by_type: Vec::new(),
        n_elements: 0,
        bytes: 0,
        ternary_elements: 0,
        ternary_bytes: 0,
    };
    for info in file.tensors() {
        let n = info.n_elements();
        let entry = by_type.entry(info.ty).or_insert(TypeTotal {
            ty: info.ty,
            count: 0,
            n_elements: 0,
            bytes: 0,
        });
        // Saturating: a hostile file must not be able to make inspect overflow.
        entry.count += 1;
        entry.n_elements = entry.n_elements.saturating_add(n);
        entry.bytes = entry.bytes.saturating_add(info.nbytes);
        t.n_elements = t.n_elements.saturating_add(n);
        t.bytes = t.bytes.saturating_add(info.nbytes);
        if info.ty.is_ternary() {
            t.ternary_elements = t.ternary_elements.saturating_add(n);
            t.ternary_bytes = t.ternary_bytes.saturating_add(info.nbytes);
        }
    }
    t.by_type = by_type.into_values().collect();
    t
}

fn warnings(file: &GgufFile, tok: Option<&TokenizerSummary>) -> Vec<Warning> {
    let meta = file.metadata();
    let arch = file.architecture();
    let mut out = Vec::new();
    let has = |ty: TensorType| file.tensors().iter().any(|t| t.ty == ty);

    if let Some(tok) = tok {
        if tok.pre.is_none() && tok.model.as_deref() == Some("gpt2") {
            out.push(Warning {
                code: "missing-tokenizer-pre",
                message: "tokenizer.ggml.pre is missing: llama.cpp falls back to its default \
                          pre-tokenizer; Llama-3 vocabularies (BitNet 2B4T) need llama-bpe"
                    .into(),
            });
        }
        if tok.chat_template_is_placeholder {
            out.push(Warning {
                code: "placeholder-chat-template",
                message: "tokenizer.chat_template is the placeholder written by bitnet.cpp's \
                          converter (\"Human: ... BITNETAssistant:\"), not the template the model \
                          was trained with; it drops system messages and ends prompts with EOS"
                    .into(),
            });
        }
        let has_eot_piece = meta
            .get_array("tokenizer.ggml.tokens")
            .is_some_and(|a| a.values.iter().any(|v| v.as_str() == Some("<|eot_id|>")));
        if has_eot_piece && !meta.contains("tokenizer.ggml.eot_token_id") {
            out.push(Warning {
                code: "missing-eot-token",
                message: "the vocabulary has <|eot_id|> but tokenizer.ggml.eot_token_id is not \
                          set: engines that trust the metadata may not stop at the end of a turn"
                    .into(),
            });
        }
    }
    out.extend(activation_warnings(file, arch));
    if has(TensorType::TL1) {
        out.push(Warning {
            code: "tl1-arm-only",
            message: "TL1 tensors: bitnet.cpp has TL1 kernels only in its ARM builds; an x86 \
                      build of bitnet.cpp crashes on this file (bitnet-gguf runs it everywhere)"
                .into(),
        });
    }
    if has(TensorType::I2_S) && !meta.contains(I2S_LAYOUT_KEY) {
        out.push(Warning {
            code: "i2s-layout-unknown",
            message: format!(
                "I2_S tensors without {I2S_LAYOUT_KEY}: the x86 (128-element blocks) and ARM \
                 (64-element blocks) packings cannot be told apart from the bytes; assuming x86, \
                 which every published file uses"
            ),
        });
    }
    let tl_without_params: Vec<&str> = file
        .tensors()
        .iter()
        .filter(|t| matches!(t.ty, TensorType::TL1 | TensorType::TL2))
        .filter(|t| !meta.contains(&format!("{TL_KEY_PREFIX}{}.bm", t.name)))
        .map(|t| t.name.as_str())
        .collect();
    if let Some(first) = tl_without_params.first() {
        out.push(Warning {
            code: "tl-params-unknown",
            message: format!(
                "{} TL1/TL2 tensors (e.g. {first}) without {TL_KEY_PREFIX}<tensor>.{{bm,bk,bmm}}: \
                 the tile parameters are not in the file; decoders fall back to bitnet.cpp's presets",
                tl_without_params.len()
            ),
        });
    }
    if arch.is_some_and(|a| BITNET_ARCHITECTURES.contains(&a)) && !file.dialect().is_bitnet() {
        out.push(Warning {
            code: "upstream-dialect-for-bitnet-arch",
            message: format!(
                "architecture {:?} but the tensor types only make sense as upstream ggml ids",
                arch.unwrap_or_default()
            ),
        });
    }
    out
}

/// What upstream llama.cpp does with the activation of a `bitnet` file: its `bitnet` graph
/// always computes SiLU (no key selects anything else), so a squared-ReLU model gives wrong text
/// there; and a file without any activation key is read as SiLU by every reader.
fn activation_warnings(file: &GgufFile, arch: Option<&str>) -> Vec<Warning> {
    if arch != Some(Arch::Bitnet.name()) {
        return Vec::new();
    }
    let meta = file.metadata();
    let keys = [HParam::HiddenAct, HParam::HiddenActivation].map(|hp| hp.key(arch.unwrap_or("")));
    let act = keys.iter().find_map(|k| meta.get_str(k));
    let upstream_loadable = !file.tensors().iter().any(|t| t.ty.is_bitnet_only());
    let has_tq = file
        .tensors()
        .iter()
        .any(|t| matches!(t.ty, TensorType::TQ1_0 | TensorType::TQ2_0));
    match act.and_then(Activation::from_name) {
        Some(Activation::Relu2) if upstream_loadable => vec![Warning {
            code: "upstream-computes-silu",
            message: "squared-ReLU model under upstream's `bitnet` architecture: upstream \
                      llama.cpp (and engines built on it, such as Ollama) computes SiLU for this \
                      architecture whatever bitnet.hidden_act / bitnet.hidden_activation say, and \
                      will produce wrong text; `bitnet-gguf serve` serves this file over the \
                      Ollama API correctly"
                .into(),
        }],
        None if act.is_none() && has_tq => vec![Warning {
            code: "missing-activation-key",
            message: "architecture `bitnet` without bitnet.hidden_act or \
                      bitnet.hidden_activation: readers assume SiLU, which is wrong for \
                      2B4T-style models (squared ReLU)"
                .into(),
        }],
        _ => Vec::new(),
    }
}

pub fn analyse(file: &GgufFile) -> Report {
    let meta = file.metadata();
    let architecture = file.architecture().map(str::to_owned);
    let hparams = match &architecture {
        Some(arch) => {
            let prefix = format!("{arch}.");
            meta.iter()
                .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?.to_owned(), scalar_text(v)?)))
                .collect()
        }
        None => Vec::new(),
    };
    let tokenizer = tokenizer_summary(meta);
    let warnings = warnings(file, tokenizer.as_ref());
    Report {
        architecture,
        hparams,
        tokenizer,
        totals: totals(file),
        warnings,
    }
}
