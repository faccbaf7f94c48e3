//! `bitnet-gguf quantize IN.gguf OUT.gguf --type T`: re-quantise a GGUF, or move its ternary
//! weights to another ternary format without touching the codes.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use bitnet_formats::TensorType;
use bitnet_tools::quantize::{self, Progress, QuantizeOptions, Target, TensorAction};

use super::gguf_output::{parse_named_type, ByteProgress, DialectArg};

#[derive(clap::Args)]
pub struct QuantizeArgs {
    /// Input GGUF: an F32/F16 model (ternary-scaled or not) or any ternary GGUF.
    pub input: PathBuf,
    /// Output GGUF (written to a temporary file, then renamed).
    pub output: PathBuf,
    /// Storage of the ternary projections: i2_s (x86 layout), i2_s-arm, tl1, tl2 (bitnet.cpp),
    /// tq1_0, tq2_0, q2_0 (upstream llama.cpp / Ollama), f16, f32.
    #[arg(long = "type", value_parser = parse_target)]
    pub target: Target,
    /// Storage of token_embd: f16, bf16, q8_0, q6_k, q4_0, f32 (default: f32 for --type f32,
    /// f16 for f32 input, otherwise unchanged).
    #[arg(long, value_parser = parse_dense)]
    pub embed_type: Option<TensorType>,
    /// Storage of output.weight (models with an untied head), same choices and default.
    #[arg(long, value_parser = parse_dense)]
    pub output_type: Option<TensorType>,
    /// Overwrite OUT.gguf if it exists.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub dialect: DialectArg,
}

fn parse_target(s: &str) -> Result<Target, String> {
    parse_named_type(s, Target::parse, Target::NAMES)
}

fn parse_dense(s: &str) -> Result<TensorType, String> {
    quantize::parse_dense_type(s).ok_or_else(|| {
        format!("unsupported type {s:?}; choose one of f16, bf16, q8_0, q6_k, q4_0, f32")
    })
}

pub fn main(args: QuantizeArgs) -> anyhow::Result<()> {
    let opts = QuantizeOptions {
        target: args.target,
        embed_type: args.embed_type,
        output_type: args.output_type,
        force: args.force,
        dialect: args.dialect.dialect,
    };
    let start = Instant::now();
    let mut bar = ByteProgress::new();
    let report =
        quantize::quantize_file(&args.input, &args.output, &opts, &mut |event| match event {
            Progress::Start { bytes, .. } => bar.start(bytes),
            Progress::Tensor { name, bytes } => bar.advance(name, bytes),
        })
        .with_context(|| format!("quantizing {}", args.input.display()))?;
    bar.finish();
    let count = |a: TensorAction| report.tensors.iter().filter(|t| t.action == a).count();
    eprintln!(
        "wrote {} ({} tensors: {} transcoded, {} ternarised, {} re-quantised, {} copied; {:.1} MB) in {:.2} s",
        args.output.display(),
        report.tensors.len(),
        count(TensorAction::Transcode),
        count(TensorAction::Ternarise),
        count(TensorAction::Requantize),
        count(TensorAction::Copy),
        report.output_bytes as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    if report.max_scale_rel_error > 0.0 {
        eprintln!(
            "note: TQ stores scales as f16; largest relative scale change {:.3e} ({})",
            report.max_scale_rel_error,
            report.max_scale_rel_error_tensor.as_deref().unwrap_or("?")
        );
    }
    if let Some(arch) = &report.architecture {
        eprintln!("architecture: {arch}");
    }
    Ok(())
}
