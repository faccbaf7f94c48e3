//! Putting it together: metadata for the target dialect, lazily produced tensors, and an
//! atomic write.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use bitnet_formats::arch::HParam::{self, *};
use bitnet_formats::codec::{meta, TernaryFormat, TlParams};
use bitnet_formats::{Dialect, GgufWriter, Metadata, TensorSource, TensorType, Value};

use super::arch::{plan_tensors, unused_tensors, PlannedTensor, TensorRole};
use super::error::ConvertError;
use super::hf_config::HfConfig;
use super::payload::{float_payload, load_ternary, ternary_payload, WeightType};
use super::safetensors_input::Checkpoint;
use super::tokenizer_meta::{tokenizer_metadata, TokenizerInputs};

#[derive(Clone, Debug)]
pub struct ConvertOptions {
    /// The Hugging Face checkpoint directory.
    pub input_dir: PathBuf,
    pub output: PathBuf,
    /// Storage of the ternary projections.
    pub weight_type: WeightType,
    /// `token_embd` storage (default F16; F32 for an all-F32 output).
    pub embed_type: Option<TensorType>,
    /// `output` (separate head) storage, same default.
    pub output_type: Option<TensorType>,
    /// `general.name` (default: the checkpoint directory's name).
    pub name: Option<String>,
    /// Overwrite an existing output file.
    pub force: bool,
    /// llama.cpp pre-tokeniser name, when detection from `tokenizer.json` fails.
    pub tokenizer_pre: Option<String>,
    /// Type ids and architecture names of the output (default: [`Dialect::default_for`] the
    /// weight type).
    pub dialect: Option<Dialect>,
}

impl ConvertOptions {
    pub fn new(input_dir: impl Into<PathBuf>, output: impl Into<PathBuf>) -> ConvertOptions {
        ConvertOptions {
            input_dir: input_dir.into(),
            output: output.into(),
            weight_type: WeightType::I2s(Default::default()),
            embed_type: None,
            output_type: None,
            name: None,
            force: false,
            tokenizer_pre: None,
            dialect: None,
        }
    }
}

/// Progress events for a UI.
#[derive(Debug)]
pub enum Progress<'a> {
    Start {
        tensors: usize,
        input_bytes: u64,
    },
    Tensor {
        name: &'a str,
        input_bytes: u64,
        output_bytes: u64,
    },
}

#[derive(Clone, Debug)]
pub struct ConvertReport {
    pub architecture: String,
    pub dialect: Dialect,
    pub tensors: usize,
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub warnings: Vec<String>,
}

/// The output dialect, refusing weight types it has no id for before any work is done.
fn output_dialect(opts: &ConvertOptions) -> Result<Dialect, ConvertError> {
    let wt = opts.weight_type.tensor_type();
    let dialect = opts.dialect.unwrap_or_else(|| Dialect::default_for(wt));
    match dialect.refusal(wt) {
        Some(why) => Err(ConvertError::Options(format!("--type: {why}"))),
        None => Ok(dialect),
    }
}

/// `token_embd` and `output` storage: the options, else F16 (F32 for an all-F32 output).
fn dense_types(opts: &ConvertOptions) -> Result<(TensorType, TensorType), ConvertError> {
    let dense_default = if opts.weight_type == WeightType::F32 {
        TensorType::F32
    } else {
        TensorType::F16
    };
    let embed_type = opts.embed_type.unwrap_or(dense_default);
    let output_type = opts.output_type.unwrap_or(dense_default);
    check_dense_type(embed_type, "--embed-type")?;
    check_dense_type(output_type, "--output-type")?;
    Ok((embed_type, output_type))
}

fn check_dense_type(ty: TensorType, what: &str) -> Result<(), ConvertError> {
    if ty.is_ternary() || ty.is_bitnet_only() || ty.block_len() == 0 {
        return Err(ConvertError::Options(format!(
            "{what} type {ty} is not a dense type"
        )));
    }
    Ok(())
}

/// Converts a checkpoint directory to a GGUF file.
pub fn convert(
    opts: &ConvertOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<ConvertReport, ConvertError> {
    if opts.output.exists() && !opts.force {
        return Err(ConvertError::OutputExists {
            path: opts.output.clone(),
        });
    }
    if !opts.input_dir.is_dir() {
        return Err(ConvertError::MissingFile {
            path: opts.input_dir.clone(),
            what: "checkpoint directory",
        });
    }
    let wt = opts.weight_type;
    let (embed_type, output_type) = dense_types(opts)?;

    let cfg = HfConfig::load(&opts.input_dir.join("config.json"))?;
    let ck = Checkpoint::open(&opts.input_dir)?;
    let plan = plan_tensors(&cfg, &ck)?;
    let mut warnings: Vec<String> = unused_tensors(&plan, &ck)
        .iter()
        .map(|n| format!("checkpoint tensor {n} is not used"))
        .collect();

    let dialect = output_dialect(opts)?;
    let tl_tiles = check_ternary_shapes(&plan, wt)?;

    let arch = cfg.family.arch().name_in(dialect);
    let name = model_name(opts);

    // Declared before the writer: its lazy tensors borrow it.
    let failure: Mutex<Option<ConvertError>> = Mutex::new(None);
    let mut writer = GgufWriter::new(dialect);
    let meta = writer.metadata_mut();
    meta.set("general.architecture", Value::from(arch));
    meta.set("general.name", Value::from(name.as_str()));
    set_hyper_parameters(meta, arch, &cfg)?;
    meta.set("general.file_type", Value::U32(wt.file_type()));
    let quantized = [wt.tensor_type(), embed_type, output_type]
        .iter()
        .any(|t| !matches!(t, TensorType::F32 | TensorType::F16 | TensorType::BF16));
    if quantized {
        meta.set("general.quantization_version", Value::U32(2));
    }
    if let WeightType::I2s(layout) = wt {
        meta::set_i2s_layout(meta, layout);
    }
    // TL payloads cannot be decoded without their tile parameters; record them per tensor.
    for (name, p) in &tl_tiles {
        meta::tl_params_to_metadata(meta, name, p);
    }

    let tok = tokenizer_metadata(&TokenizerInputs {
        dir: &opts.input_dir,
        vocab_size: cfg.vocab_size,
        config_bos: cfg.bos_token_id,
        config_eos: cfg.eos_token_id,
        config_pad: cfg.pad_token_id,
        pre_override: opts.tokenizer_pre.as_deref(),
    })?;
    warnings.extend(tok.warnings);
    for (key, value) in tok.entries {
        // Upstream llama.cpp has no `falcon_e` pre-tokenizer and refuses a file naming one; it
        // reads Falcon-E's (Falcon 3's) tokenizer as `falcon3`. bitnet.cpp knows `falcon_e`.
        let value = match (&value, dialect) {
            (Value::String(pre), Dialect::Upstream)
                if key == "tokenizer.ggml.pre" && pre == "falcon_e" =>
            {
                Value::from("falcon3")
            }
            _ => value,
        };
        meta.set(key, value);
    }

    // Tensors: produced one at a time while the writer streams them out.
    let mut input_sizes: HashMap<String, u64> = HashMap::new();
    for t in &plan {
        let mut bytes = ck.require(&t.hf_name)?.data.len() as u64;
        if t.packed {
            bytes += ck.require(&format!("{}_scale", t.hf_name))?.data.len() as u64;
        }
        input_sizes.insert(t.gguf_name.clone(), bytes);
        let ty = match t.role {
            TensorRole::Ternary { .. } => wt.tensor_type(),
            TensorRole::Norm => TensorType::F32,
            TensorRole::Embedding => embed_type,
            TensorRole::Output => output_type,
        };
        let (cfg, ck, failure) = (&cfg, &ck, &failure);
        let produce = move || -> std::io::Result<Vec<u8>> {
            produce_tensor(t, ty, wt, cfg, ck).map_err(|e| {
                let msg = e.to_string();
                *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                std::io::Error::other(msg)
            })
        };
        writer.add_tensor(
            t.gguf_name.as_str(),
            &t.ne(),
            ty,
            TensorSource::Lazy(Box::new(produce)),
        )?;
    }

    let input_bytes: u64 = input_sizes.values().sum();
    progress(Progress::Start {
        tensors: plan.len(),
        input_bytes,
    });
    let mut output_bytes = 0u64;
    let result = crate::output::write_gguf(writer, &opts.output, &mut |name, nbytes| {
        output_bytes += nbytes;
        let input_bytes = input_sizes.get(name).copied().unwrap_or(0);
        progress(Progress::Tensor {
            name,
            input_bytes,
            output_bytes: nbytes,
        });
    });
    if let Err(e) = result {
        if let Some(inner) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(inner);
        }
        return Err(e.into());
    }
    make_readable(&opts.output);
    Ok(ConvertReport {
        architecture: arch.to_owned(),
        dialect,
        tensors: plan.len(),
        input_bytes,
        output_bytes,
        warnings,
    })
}

/// `general.name`: the option, else the checkpoint directory's name.
fn model_name(opts: &ConvertOptions) -> String {
    opts.name.clone().unwrap_or_else(|| {
        let dir = opts
            .input_dir
            .canonicalize()
            .unwrap_or_else(|_| opts.input_dir.clone());
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into())
    })
}

/// Ternary shape constraints of the output type, checked before any work; returns the TL tile
/// parameters to record per tensor.
fn check_ternary_shapes(
    plan: &[PlannedTensor],
    wt: WeightType,
) -> Result<Vec<(String, TlParams)>, ConvertError> {
    let mut tl_tiles = Vec::new();
    for t in plan
        .iter()
        .filter(|t| matches!(t.role, TensorRole::Ternary { .. }))
    {
        let ty = wt.tensor_type();
        if ty.nbytes(&t.ne()).is_none() {
            return Err(ConvertError::Options(format!(
                "{}: a {}x{} matrix cannot be stored as {ty}",
                t.gguf_name,
                t.rows(),
                t.cols()
            )));
        }
        if let Some(TernaryFormat::Tl1(p) | TernaryFormat::Tl2(p)) =
            wt.ternary_format(t.rows(), t.cols())?
        {
            tl_tiles.push((t.gguf_name.clone(), p));
        }
    }
    Ok(tl_tiles)
}

/// The `{arch}.*` keys of the architecture table, from the checkpoint's config.
fn set_hyper_parameters(
    meta: &mut Metadata,
    arch: &str,
    cfg: &HfConfig,
) -> Result<(), ConvertError> {
    let k = |hp: HParam| hp.key(arch);
    meta.set(k(VocabSize), Value::U32(cfg.vocab_size as u32));
    meta.set(k(ContextLength), Value::U32(cfg.context_length as u32));
    meta.set(k(EmbeddingLength), Value::U32(cfg.hidden_size as u32));
    meta.set(k(BlockCount), Value::U32(cfg.num_layers as u32));
    meta.set(
        k(FeedForwardLength),
        Value::U32(cfg.intermediate_size as u32),
    );
    meta.set(k(RopeDimensionCount), Value::U32(cfg.head_dim as u32));
    meta.set(k(HeadCount), Value::U32(cfg.num_heads as u32));
    meta.set(k(HeadCountKv), Value::U32(cfg.num_kv_heads as u32));
    meta.set(k(RmsEpsilon), Value::F32(cfg.rms_norm_eps));
    meta.set(k(RopeFreqBase), Value::F32(cfg.rope_theta));
    // Our reader takes the `bitnet` graph's activation from these keys; bitnet.cpp names the
    // graph instead, and upstream llama.cpp computes SiLU for `bitnet` whatever they say.
    for (key, value) in cfg.activation.metadata(arch) {
        meta.set(key, Value::from(value));
    }
    if let Some(rs) = &cfg.rope_scaling {
        let kind = rs
            .get("type")
            .or_else(|| rs.get("rope_type"))
            .and_then(|t| t.as_str())
            .unwrap_or("");
        let factor = rs.get("factor").and_then(|f| f.as_f64());
        match (kind, factor) {
            ("linear", Some(f)) => {
                meta.set(k(RopeScalingType), Value::from("linear"));
                meta.set(k(RopeScalingFactor), Value::F32(f as f32));
            }
            ("default", _) => {}
            _ => {
                return Err(ConvertError::config(
                    &cfg.path,
                    format!("rope_scaling {rs} is not supported (only \"linear\")"),
                ))
            }
        }
    }
    Ok(())
}

fn produce_tensor(
    t: &PlannedTensor,
    ty: TensorType,
    wt: WeightType,
    cfg: &HfConfig,
    ck: &Checkpoint,
) -> Result<Vec<u8>, ConvertError> {
    let out = match t.role {
        TensorRole::Ternary { .. } => ternary_payload(load_ternary(t, cfg, ck)?, wt, &t.gguf_name),
        _ => float_payload(&ck.require(&t.hf_name)?, ty, &t.ne()),
    };
    ck.release(&t.hf_name);
    out
}

/// The writer's temporary file is created private (0600); a model file is meant to be shared
/// like any other output, so give it the usual 0644.
fn make_readable(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644));
    }
    #[cfg(not(unix))]
    let _ = path;
}
