//! `bitnet-gguf convert HF_DIR -o OUT.gguf`: Hugging Face BitNet checkpoint → GGUF.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use bitnet_formats::TensorType;
use bitnet_tools::convert::{self, ConvertOptions, Progress, WeightType};

use super::gguf_output::{parse_named_type, ByteProgress, DialectArg};

#[derive(clap::Args)]
pub struct ConvertArgs {
    /// Checkpoint directory (config.json, model.safetensors or its sharded index,
    /// tokenizer.json, tokenizer_config.json, generation_config.json).
    pub hf_dir: PathBuf,
    /// Output GGUF file.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Storage of the ternary projections: i2_s (x86 layout), i2_s-arm, tl1, tl2, tq1_0,
    /// tq2_0 (upstream llama.cpp / Ollama), f16, f32.
    #[arg(long = "type", default_value = "i2_s", value_parser = parse_weight_type)]
    pub weight_type: WeightType,
    /// Storage of token_embd (f16 by default; f32 for --type f32): f32, f16, bf16, q8_0, q4_0, q6_k.
    #[arg(long, value_parser = parse_dense_type)]
    pub embed_type: Option<TensorType>,
    /// Storage of a separate output head (Llama models), same choices and default.
    #[arg(long, value_parser = parse_dense_type)]
    pub output_type: Option<TensorType>,
    /// general.name (default: the checkpoint directory's name).
    #[arg(long)]
    pub name: Option<String>,
    /// llama.cpp pre-tokenizer name, when it cannot be detected from tokenizer.json.
    #[arg(long)]
    pub tokenizer_pre: Option<String>,
    /// Overwrite OUT.gguf if it exists.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub dialect: DialectArg,
}

fn parse_weight_type(s: &str) -> Result<WeightType, String> {
    parse_named_type(s, WeightType::parse, WeightType::NAMES)
}

fn parse_dense_type(s: &str) -> Result<TensorType, String> {
    TensorType::from_name(s).ok_or_else(|| format!("unknown tensor type {s:?}"))
}

pub fn main(args: ConvertArgs) -> anyhow::Result<()> {
    let opts = ConvertOptions {
        input_dir: args.hf_dir.clone(),
        output: args.output.clone(),
        weight_type: args.weight_type,
        embed_type: args.embed_type,
        output_type: args.output_type,
        name: args.name,
        force: args.force,
        tokenizer_pre: args.tokenizer_pre,
        dialect: args.dialect.dialect,
    };
    let start = Instant::now();
    let mut bar = ByteProgress::new();
    let report = convert::convert(&opts, &mut |event| match event {
        Progress::Start { input_bytes, .. } => bar.start(input_bytes),
        Progress::Tensor {
            name, input_bytes, ..
        } => bar.advance(name, input_bytes),
    })
    .with_context(|| format!("converting {}", args.hf_dir.display()))?;
    bar.finish();
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "wrote {} ({}, {} tensors, {:.1} MB) in {:.2} s ({:.0} MB/s of checkpoint)",
        args.output.display(),
        report.architecture,
        report.tensors,
        report.output_bytes as f64 / 1e6,
        secs,
        report.input_bytes as f64 / 1e6 / secs.max(1e-9)
    );
    Ok(())
}
