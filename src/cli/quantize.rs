//! `bitnet-gguf quantize IN.gguf OUT.gguf --type T`: re-quantise a GGUF, or move its ternary
//! weights to another ternary format without touching the codes.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use bitnet_formats::{Dialect, TensorType};
use bitnet_tools::quantize::{self, Progress, QuantizeOptions, Target, TensorAction};

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
    /// Type ids and architecture names of the output: upstream (llama.cpp / Ollama: `bitnet`,
    /// TQ types; refuses i2_s/tl*), bitnet (bitnet.cpp: TL2 = 42), bitnet-2024 (the 2024 fork:
    /// TL2 = 39). Default: upstream for tq1_0/tq2_0, bitnet otherwise.
    #[arg(long, value_parser = parse_dialect)]
    pub dialect: Option<Dialect>,
}

fn parse_dialect(s: &str) -> Result<Dialect, String> {
    Dialect::from_name(s)
        .ok_or_else(|| format!("unknown dialect {s:?}; choose upstream, bitnet or bitnet-2024"))
}

fn parse_target(s: &str) -> Result<Target, String> {
    Target::parse(s).ok_or_else(|| {
        format!(
            "unknown type {s:?}; choose one of {}",
            Target::NAMES.join(", ")
        )
    })
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
        dialect: args.dialect,
    };
    let start = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut bar: Option<indicatif::ProgressBar> = None;
    let mut done = 0u64;
    let report =
        quantize::quantize_file(&args.input, &args.output, &opts, &mut |event| match event {
            Progress::Start { bytes, .. } => {
                if tty {
                    let b = indicatif::ProgressBar::new(bytes);
                    b.set_style(
                        indicatif::ProgressStyle::with_template(
                            "{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
                        )
                        .expect("static template"),
                    );
                    bar = Some(b);
                }
            }
            Progress::Tensor { name, bytes } => {
                done += bytes;
                if let Some(b) = &bar {
                    b.set_position(done);
                    b.set_message(name.to_owned());
                }
            }
        })
        .with_context(|| format!("quantizing {}", args.input.display()))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
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
