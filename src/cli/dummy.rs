//! `bitnet-gguf dummy`: random ternary models of real shapes, so that performance can be
//! measured without downloading a checkpoint. The file is written by `bitnet_tools::dummy`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use bitnet_tools::dummy::{write_dummy, DummyOptions};

use super::gguf_output::DialectArg;

#[derive(clap::Args)]
pub struct DummyArgs {
    /// Model shape: 2b4t, large, 3b, 8b or tiny.
    #[arg(long)]
    pub shape: String,
    /// Ternary type: i2_s, i2_s-arm, tq1_0, tq2_0, tl1, tl2.
    #[arg(long = "type", default_value = "i2_s")]
    pub ty: String,
    /// Output file.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub dialect: DialectArg,
}

pub fn dummy(args: DummyArgs) -> Result<()> {
    let started = Instant::now();
    let report = write_dummy(&DummyOptions {
        shape: args.shape.clone(),
        ty: args.ty,
        output: args.output.clone(),
        seed: args.seed,
        dialect: args.dialect.dialect,
    })?;
    eprintln!(
        "wrote {} ({} {}, {:.2} GB) in {:.1} s",
        args.output.display(),
        args.shape,
        report.ty.name(),
        report.bytes as f64 / 1e9,
        started.elapsed().as_secs_f64()
    );
    if let Some(first) = report.f16_fallbacks.first() {
        eprintln!(
            "{} tensors do not fit {} and were stored as F16 (e.g. {first})",
            report.f16_fallbacks.len(),
            report.ty.name(),
        );
    }
    Ok(())
}
