//! `bitnet-gguf bench`: prefill/decode throughput in llama-bench's spirit, each against a
//! limit measured in the same run: decode against the memory bandwidth, prefill against the
//! ternary kernels' compute rate.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use bitnet_formats::GgufFile;
use std::sync::Arc;

use bitnet_gguf::engine::model::Session;
use bitnet_kernels::{KernelPath, Runtime, RuntimeOptions};

mod batch;
mod breakdown;
mod probes;
mod readloop;
mod table;

use probes::median;
pub use probes::{BandwidthProbe, ComputeProbe};

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Model file (GGUF).
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// Prompt tokens for the prefill test (0 skips it).
    #[arg(short = 'p', long = "n-prompt", default_value_t = 128)]
    pub n_prompt: usize,
    /// Generated tokens for the decode test (0 skips it).
    #[arg(short = 'n', long = "n-gen", default_value_t = 64)]
    pub n_gen: usize,
    /// Threads (default: physical cores).
    #[arg(short = 't', long = "threads")]
    pub threads: Option<usize>,
    /// Repetitions of each test.
    #[arg(short = 'r', long = "repetitions", default_value_t = 3)]
    pub reps: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Force a kernel path: scalar, avx2, avx-vnni, avx512-vnni, amx-int8, neon, neon-dotprod.
    #[arg(long)]
    pub kernels: Option<String>,
    /// Thread pool for the parallel regions: spin (default) or rayon.
    #[arg(long)]
    pub pool: Option<String>,
    /// KV cache type: f32 (default) or f16.
    #[arg(long = "kv-type", default_value = "f32")]
    pub kv_type: bitnet_gguf::engine::model::KvType,
    /// Tokens already in the context before each test, untimed (llama-bench's -d): decode
    /// at depth reads the KV cache as well as the weights.
    #[arg(short = 'd', long = "depth", default_value_t = 0)]
    pub depth: usize,
    /// Count where decode's time goes (head, ternary matmuls, attention, norms, pool
    /// waits) and report it (`breakdown` in the JSON); the counting costs a few
    /// microseconds per token.
    #[arg(long)]
    pub profile: bool,
    // `bytes_per_token` counts a re-quantised head.
    #[command(flatten)]
    pub load: crate::cli::run::LoadArgs,
    /// Also decode this many sequences together, one token each per step, as the server's
    /// batched step does, and report the aggregate rate beside the one-sequence decode
    /// (`batch_tg_tok_s`, `batch_speedup`).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
}

/// Bytes of weights one decoded token reads: every tensor, except that with a separate
/// output matrix the embedding table is only looked up (one row).
pub fn bytes_per_token(file: &GgufFile) -> u64 {
    let has_output = file.tensor("output.weight").is_some();
    file.tensors()
        .iter()
        .map(|t| {
            if has_output && t.name == "token_embd.weight" {
                t.nbytes / t.rows().max(1)
            } else {
                t.nbytes
            }
        })
        .sum()
}

/// [`bytes_per_token`] with the head re-quantised to `ty`: the file's head bytes replaced by
/// the new type's, and a tied embedding then only looked up (one row).
fn with_repacked_head(file: &GgufFile, bpt: u64, ty: bitnet_formats::TensorType) -> u64 {
    let output = file.tensor("output.weight");
    let Some(head) = output.or_else(|| file.tensor("token_embd.weight")) else {
        return bpt;
    };
    let (rows, cols) = (head.rows(), head.cols());
    let blocks = cols / ty.block_len().max(1);
    let new = rows * blocks * ty.block_bytes();
    let lookup = if output.is_none() {
        head.nbytes / rows.max(1)
    } else {
        0
    };
    bpt - head.nbytes + new + lookup
}

/// Multiply-adds of the ternary matrices per token of a prompt (rows × columns of every
/// ternary tensor). The attention scores, the norms and the head (one row of logits per
/// prompt) are left out: they are a few per cent of a prompt's work at 128 tokens.
pub fn ternary_macs_per_token(file: &GgufFile) -> u64 {
    file.tensors()
        .iter()
        .filter(|t| t.ty.is_ternary())
        .map(|t| t.rows().saturating_mul(t.cols()))
        .fold(0u64, u64::saturating_add)
}

fn spread(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

/// The runtime `bench` measures on: `--kernels`, `--pool` and `-t` (one thread per
/// physical core by default).
fn runtime(args: &BenchArgs, threads: usize) -> Result<Arc<Runtime>> {
    let path = args
        .kernels
        .as_deref()
        .map(|k| KernelPath::from_name(k).with_context(|| format!("unknown kernel path {k:?}")))
        .transpose()?;
    let pool_kind = args
        .pool
        .as_deref()
        .map(|p| {
            bitnet_kernels::PoolKind::from_name(p)
                .with_context(|| format!("unknown pool {p:?} (expected spin or rayon)"))
        })
        .transpose()?;
    Ok(Arc::new(Runtime::new(RuntimeOptions {
        threads: Some(threads),
        path,
        pool_kind,
    })?))
}

pub fn bench(args: BenchArgs) -> Result<()> {
    use bitnet_gguf::engine::model::{LoadOptions, Model};
    let threads = args
        .threads
        .unwrap_or_else(bitnet_kernels::physical_cores)
        .max(1);
    let reps = args.reps.max(1);
    // Measured before, between the decode runs and after: other load on the machine makes
    // single measurements noisy, and the limit should be what the memory delivered while
    // we ran (the median pass; the best is reported too).
    let mut probe = BandwidthProbe::new(threads)?;
    probe.measure(6);
    // The pool's threads start after the bandwidth probe's buffer is mapped and filled.
    // Started before it, the compute probe read 9-16 % lower and large pp128 22-32 % higher
    // with the same kernels (AMX Xeon, six interleaved rounds each way): the figures depend
    // on this order, and the figures in docs/performance.md were taken with this one.
    let runtime = runtime(&args, threads)?;

    let n_ctx = (args.depth + args.n_prompt + args.n_gen + 8).max(64);
    let model = Model::load(
        &args.model,
        &LoadOptions {
            n_ctx: Some(n_ctx),
            threads: Some(threads),
            kv_type: args.kv_type,
            runtime: Some(runtime.clone()),
            head_type: args.load.head_type,
            residency: args.load.residency(),
        },
    )
    .with_context(|| format!("loading {}", args.model.display()))?;
    let mut bpt = bytes_per_token(model.gguf());
    let repack_ms = model
        .head_repack()
        .and_then(|r| Some((r.to, r.elapsed?)))
        .map(|(ty, t)| {
            bpt = with_repacked_head(model.gguf(), bpt, ty);
            t.as_secs_f64() * 1e3
        });
    let vocab = model.config().n_vocab.max(1) as u32;
    let token = |i: usize| ((i as u64 * 2_654_435_761) % vocab as u64) as u32;
    let context: Vec<u32> = (0..args.depth).map(|i| token(i + 7919)).collect();
    // One session for every test, cut back to the depth before each repetition, as
    // llama-bench reuses its context: the cache's memory is allocated and first touched in
    // the untimed warm-up run, not in the timed ones.
    let mut s = model.new_session(n_ctx);
    if !context.is_empty() {
        s.forward(&context)?;
    }

    let mut pp = Vec::new();
    // Prefill is judged against the ternary kernels' rate, which a model without ternary
    // weights has no use for.
    let macs = ternary_macs_per_token(model.gguf());
    let probe_compute = usize::from(macs > 0);
    let mut compute = ComputeProbe::new(runtime.clone(), args.n_prompt);
    if args.n_prompt > 0 {
        compute.measure(3 * probe_compute);
        let prompt: Vec<u32> = (0..args.n_prompt).map(token).collect();
        let between = |r: usize| {
            if r > 0 {
                compute.measure(probe_compute);
            }
        };
        pp = timed_runs(
            &mut s,
            args.depth,
            reps,
            args.n_prompt,
            |s| s.forward(&prompt),
            between,
        )?;
    }
    let mut tg = Vec::new();
    let mut profile = None;
    if args.n_gen > 0 {
        let decode_ns = std::cell::Cell::new(0u64);
        let decode = |s: &mut Session| -> Result<()> {
            let t0 = Instant::now();
            for i in 0..args.n_gen {
                s.forward(&[token(i + 1)])?;
            }
            decode_ns.set(decode_ns.get() + t0.elapsed().as_nanos() as u64);
            Ok(())
        };
        breakdown::start(args.profile);
        tg = timed_runs(&mut s, args.depth, reps, args.n_gen, decode, |_| {
            probe.measure(2);
        })?;
        // The warm-up run is counted too: the same work as the timed ones.
        let b = breakdown::finish((reps + 1) * args.n_gen, decode_ns.get());
        profile = args.profile.then_some(b);
    }
    let batched = (args.n_gen > 0 && args.batch > 1)
        .then(|| {
            batch::run(
                &model,
                n_ctx,
                &context,
                args.batch,
                args.n_gen,
                reps,
                args.profile,
                token,
                || {
                    probe.measure(2);
                },
            )
        })
        .transpose()?;
    let best = probe.measure(4);
    let bandwidth = probe.passes().median();
    let (pp_s, tg_s) = (spread(&pp), spread(&tg));
    let (pp_m, tg_m) = (median(&mut pp), median(&mut tg));
    let limit_at = |gb_s: f64| gb_s * 1e9 / bpt.max(1) as f64;
    let limit = limit_at(bandwidth);
    // What a decoded token reads from the cache on average over the test (not in the limit,
    // which is the file's, as in the table).
    let c = model.config();
    let kv_read = (2 * c.n_layer * c.kv_dim() * args.kv_type.bytes()) as f64
        * (args.depth as f64 + args.n_gen as f64 / 2.0);
    let pct = 100.0 * tg_m / limit.max(f64::MIN_POSITIVE);
    let pct_best = 100.0 * tg_m / limit_at(best).max(f64::MIN_POSITIVE);
    // Prefill against the ternary kernels' rate (None without a prompt or ternary weights).
    let cp = compute.passes();
    let measured = cp.count() > 0;
    let gmac = cp.median();
    let pp_limit = measured.then(|| gmac * 1e9 / macs as f64);
    let pp_pct = pp_limit.map(|l| 100.0 * pp_m / l);
    let kernels = runtime.path().name();
    let pool = runtime.pool_kind().name();
    let mut j = serde_json::json!({
        "model": args.model.display().to_string(),
        "pp_tok_s": pp_m, "pp_tok_s_stddev": pp_s, "n_prompt": args.n_prompt,
        "tg_tok_s": tg_m, "tg_tok_s_stddev": tg_s, "n_gen": args.n_gen,
        "threads": threads, "repetitions": reps,
        "bandwidth_gb_s": bandwidth, "bytes_per_token": bpt,
        "bandwidth_best_gb_s": best, "bandwidth_passes": probe.passes().count(),
        "bandwidth_loads": probe.loads(),
        "tg_pct_of_best_bound": pct_best,
        "tg_limit_tok_s": limit, "tg_pct_of_bound": pct, "kernels": kernels,
        "pool": pool, "tg_effective_gb_s": tg_m * bpt as f64 / 1e9,
        "kv_type": args.kv_type.name(), "depth": args.depth,
        "kv_bytes_read_per_token": kv_read.round() as u64,
        "ternary_macs_per_token": macs,
        "ternary_gmac_s": measured.then_some(gmac),
        "ternary_gmac_s_best": measured.then(|| cp.best()),
        "compute_passes": cp.count(),
        "pp_limit_tok_s": pp_limit, "pp_pct_of_bound": pp_pct,
        "breakdown": profile,
        "head_type": args.load.head_type.map(|t| t.name().to_ascii_lowercase()),
        "head_repack_ms": repack_ms,
        "no_mmap": args.load.no_mmap, "mmap": args.load.mmap,
        "weights_in_memory": model.gguf().residency() == bitnet_formats::Residency::Copied,
        // After the runs, when every weight has been read at least once.
        "weights_huge_page_pct": model.gguf().huge_page_bytes()
            .map(|b| 100.0 * b as f64 / model.gguf().file_size().max(1) as f64),
    });
    if let Some(run) = batched {
        run.report(args.batch, tg_m, &mut j);
    }
    if args.json {
        println!("{j}");
    } else {
        table::print_table(&args, &j);
    }
    Ok(())
}

/// Tokens per second of `reps` timed runs of `run` (which evaluates `tokens` tokens), each
/// from the session cut back to `depth`, after one untimed run that warms caches and
/// page-faults the mapping in. `between(r)` runs after run `r` (0: the warm-up), untimed:
/// the probes' passes interleaved with the runs.
fn timed_runs<R>(
    s: &mut Session,
    depth: usize,
    reps: usize,
    tokens: usize,
    mut run: impl FnMut(&mut Session) -> Result<R>,
    mut between: impl FnMut(usize),
) -> Result<Vec<f64>> {
    let mut rates = Vec::with_capacity(reps);
    for r in 0..=reps {
        s.truncate(depth);
        let t0 = Instant::now();
        run(s)?;
        let rate = tokens as f64 / t0.elapsed().as_secs_f64();
        if r > 0 {
            rates.push(rate);
        }
        between(r);
    }
    Ok(rates)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::dummy::{dummy, DummyArgs};
    use bitnet_gguf::engine::model::{LoadOptions, Model};
    use std::path::Path;

    fn write_dummy(dir: &Path, ty: &str) -> PathBuf {
        let out = dir.join(format!("tiny-{ty}.gguf"));
        dummy(DummyArgs {
            shape: "tiny".into(),
            ty: ty.into(),
            output: out.clone(),
            seed: 3,
            dialect: Default::default(),
        })
        .unwrap();
        out
    }

    fn logits(path: &Path, kernels: KernelPath) -> Vec<f32> {
        let runtime = Runtime::new(RuntimeOptions {
            threads: Some(2),
            path: Some(kernels),
            ..RuntimeOptions::default()
        })
        .unwrap();
        let model = Model::load(
            path,
            &LoadOptions {
                n_ctx: Some(64),
                runtime: Some(Arc::new(runtime)),
                ..Default::default()
            },
        )
        .unwrap();
        let mut s = model.new_session(64);
        s.forward(&[4080, 10, 200, 33, 7]).unwrap();
        s.forward(&[99]).unwrap()
    }

    /// Random models of every ternary type the engine loads, through the whole forward pass.
    #[test]
    fn dummy_models_run() {
        let dir = tempfile::tempdir().unwrap();
        for ty in ["i2_s", "tq1_0", "tq2_0"] {
            let path = write_dummy(dir.path(), ty);
            let file = GgufFile::open(&path).unwrap();
            assert_eq!(file.tensors().len(), 2 + 6 * 11, "{ty}");
            assert!(bytes_per_token(&file) > 0);
            let l = logits(&path, bitnet_kernels::dispatch::detect());
            assert_eq!(l.len(), 4096, "{ty}");
            assert!(l.iter().all(|v| v.is_finite()), "{ty}: non-finite logits");
            assert!(l.iter().any(|v| *v != 0.0), "{ty}: all-zero logits");
        }
    }

    /// The forward pass gives the same logits on every kernel path this CPU supports:
    /// ternary matmuls are bit-identical across paths; float reductions (norms, attention,
    /// the F16 head) may round differently, hence the tolerance.
    #[test]
    fn every_kernel_path_gives_the_same_logits() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_dummy(dir.path(), "i2_s");
        let reference = logits(&path, KernelPath::Scalar);
        for p in KernelPath::simd() {
            if !p.is_supported() {
                continue;
            }
            let l = logits(&path, p);
            let scale = reference.iter().fold(0f32, |a, v| a.max(v.abs())).max(1e-6);
            for (i, (a, b)) in l.iter().zip(&reference).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-3 * scale,
                    "{}: logit {i}: {a} vs {b}",
                    p.name()
                );
            }
        }
    }

    #[test]
    fn spread_and_macs_per_token() {
        assert_eq!(spread(&[1.0]), 0.0);
        assert!((spread(&[1.0, 3.0]) - 2f64.sqrt()).abs() < 1e-12);
        let dir = tempfile::tempdir().unwrap();
        let file = GgufFile::open(write_dummy(dir.path(), "tq2_0")).unwrap();
        // tiny: 6 layers, hidden 256, K/V 128 wide (4 of 8 heads), FFN 768.
        let per_layer = 256 * (256 + 128 + 128 + 256) + 3 * 256 * 768;
        assert_eq!(ternary_macs_per_token(&file), 6 * per_layer);
    }
}
