//! `bitnet-gguf bench`: prefill/decode throughput against the machine's measured memory
//! bandwidth, in llama-bench's spirit.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use bitnet_formats::GgufFile;
use bitnet_kernels::KernelPath;

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
    pub kv_type: crate::model::KvType,
    /// Tokens already in the context before each test, untimed (llama-bench's -d): decode
    /// at depth reads the KV cache as well as the weights.
    #[arg(short = 'd', long = "depth", default_value_t = 0)]
    pub depth: usize,
}

/// Read bandwidth in GB/s: `threads` threads summing disjoint parts of a buffer far larger
/// than the caches, over several passes. The buffer is kept so that the probe can be
/// repeated between the decode runs: the machine's bandwidth drifts with other tenants'
/// load, and the limit should be what it delivered while we measured. The limit is the
/// median pass, compared with the median decode run; the best pass is reported beside it
/// (the maximum of many noisy passes sits above what a several-second decode run can see).
pub struct BandwidthProbe {
    buf: memmap2::MmapMut,
    threads: usize,
    best: f64,
    /// GB/s of every pass so far, for the spread the VM's drift gives.
    seen: Vec<f64>,
}

impl BandwidthProbe {
    pub fn new(threads: usize) -> Result<BandwidthProbe> {
        // 1 GiB: larger than any last-level cache (this project's test machine reports
        // 300 MB of L3), so the passes read DRAM as a decoded token of a 2B model does.
        let bytes = 1usize << 30;
        let mut buf = memmap2::MmapMut::map_anon(bytes)
            .context("cannot map 1 GiB for the bandwidth probe")?;
        // The kernel may back the model's page cache with huge pages (it did on the Zen 3
        // test machine), so its mmap reads see fewer TLB misses than 4 KiB anonymous pages
        // would; ask for huge pages here too, or decode "beats" the probe (111 % of it on
        // the 2B4T shape). A refusal only leaves the small pages.
        #[cfg(target_os = "linux")]
        let _ = buf.advise(memmap2::Advice::HugePage);
        for (i, w) in buf.chunks_exact_mut(8).enumerate() {
            w.copy_from_slice(&(i as u64).wrapping_mul(0x9E37_79B9).to_le_bytes());
        }
        Ok(BandwidthProbe {
            buf,
            threads: threads.max(1),
            best: 0.0,
            seen: Vec::new(),
        })
    }

    fn words(&self) -> &[u64] {
        // SAFETY: the map is page-aligned, `len` is a multiple of 8, and every bit pattern
        // is a valid u64; the slice borrows `self`, so the map outlives it.
        unsafe { std::slice::from_raw_parts(self.buf.as_ptr() as *const u64, self.buf.len() / 8) }
    }

    /// Runs `passes` passes; returns the best GB/s seen so far.
    pub fn measure(&mut self, passes: usize) -> f64 {
        let chunk = self.words().len().div_ceil(self.threads);
        for _ in 0..passes {
            // Each thread reads its part as four streams side by side (on the test machine a
            // single stream per thread reads ~30 % slower; the decode kernels read four rows
            // from four places at once), prefetching 2 or 4 KiB ahead, alternating per pass:
            // the limit is the faster of the two.
            // Odd passes (first, third, ...) prefetch 4 KiB ahead, even ones 2 KiB.
            let ahead = if self.seen.len().is_multiple_of(2) {
                512
            } else {
                256
            };
            let t0 = Instant::now();
            let total: u64 = std::thread::scope(|s| {
                let hs: Vec<_> = self
                    .words()
                    .chunks(chunk)
                    .map(|c| s.spawn(move || sum_four_streams(c, ahead)))
                    .collect();
                hs.into_iter()
                    .map(|h| h.join().unwrap_or(0))
                    .fold(0u64, |a, b| a.wrapping_add(b))
            });
            std::hint::black_box(total);
            let gbs = self.buf.len() as f64 / t0.elapsed().as_secs_f64() / 1e9;
            self.best = self.best.max(gbs);
            self.seen.push(gbs);
        }
        self.best
    }

    /// The median pass so far (0 before any): what the memory typically delivered while the
    /// best pass is what it could.
    pub fn median(&self) -> f64 {
        median(&mut self.seen.clone())
    }

    pub fn passes(&self) -> usize {
        self.seen.len()
    }
}

/// One-off read bandwidth in GB/s (six passes).
pub fn measure_read_bandwidth(threads: usize) -> Result<f64> {
    Ok(BandwidthProbe::new(threads)?.measure(6))
}

/// Wrapping sum of `c` read as four equal streams in lockstep, 64 bytes from each in turn.
fn sum_four_streams(c: &[u64], ahead: usize) -> u64 {
    let len = c.len() / 32 * 8;
    let parts: [&[u64]; 4] = std::array::from_fn(|i| &c[i * len..(i + 1) * len]);
    // Eight independent lanes let the compiler vectorise the loads.
    let mut acc = [0u64; 8];
    for j in (0..len).step_by(8) {
        for p in parts {
            prefetch_ahead(p, j, ahead);
            let w = &p[j..j + 8];
            for i in 0..8 {
                acc[i] = acc[i].wrapping_add(w[i]);
            }
        }
    }
    let tail = c[4 * len..].iter().fold(0u64, |a, b| a.wrapping_add(*b));
    acc.iter().fold(tail, |a, b| a.wrapping_add(*b))
}

/// Software prefetch `ahead` words ahead, as the streaming kernels do: without it this
/// probe reads slower than the kernels and the "% of the limit" would overstate them.
#[inline(always)]
fn prefetch_ahead(buf: &[u64], at: usize, ahead: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint and never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(buf.as_ptr().wrapping_add(at + ahead) as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (buf, at, ahead);
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

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

fn spread(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

pub fn bench(args: BenchArgs) -> Result<()> {
    use crate::model::{LoadOptions, Model};
    if let Some(k) = &args.kernels {
        let path =
            KernelPath::from_name(k).with_context(|| format!("unknown kernel path {k:?}"))?;
        bitnet_kernels::force_path(path).map_err(anyhow::Error::msg)?;
    }
    if let Some(p) = &args.pool {
        let kind = bitnet_kernels::PoolKind::from_name(p)
            .with_context(|| format!("unknown pool {p:?} (expected spin or rayon)"))?;
        bitnet_kernels::set_pool_kind(kind);
    }
    let threads = args
        .threads
        .unwrap_or_else(bitnet_kernels::physical_cores)
        .max(1);
    bitnet_kernels::set_threads(threads);
    let reps = args.reps.max(1);
    // Measured before, between the decode runs and after: other load on the machine makes
    // single measurements noisy, and the limit should be what the memory delivered while
    // we ran (the median pass; the best is reported too).
    let mut probe = BandwidthProbe::new(threads)?;
    probe.measure(6);

    let n_ctx = (args.depth + args.n_prompt + args.n_gen + 8).max(64);
    let model = Model::load(
        &args.model,
        &LoadOptions {
            n_ctx: Some(n_ctx),
            threads: Some(threads),
            kv_type: args.kv_type,
        },
    )
    .with_context(|| format!("loading {}", args.model.display()))?;
    let bpt = bytes_per_token(model.gguf());
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
    if args.n_prompt > 0 {
        let prompt: Vec<u32> = (0..args.n_prompt).map(token).collect();
        for r in 0..=reps {
            s.truncate(args.depth);
            let t0 = Instant::now();
            s.forward(&prompt)?;
            if r > 0 {
                // The first run warms caches and page-faults the mapping in.
                pp.push(args.n_prompt as f64 / t0.elapsed().as_secs_f64());
            }
        }
    }
    let mut tg = Vec::new();
    if args.n_gen > 0 {
        for r in 0..=reps {
            s.truncate(args.depth);
            let t0 = Instant::now();
            for i in 0..args.n_gen {
                s.forward(&[token(i + 1)])?;
            }
            if r > 0 {
                tg.push(args.n_gen as f64 / t0.elapsed().as_secs_f64());
            }
            probe.measure(2);
        }
    }
    let best = probe.measure(4);
    let bandwidth = probe.median();
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
    let kernels = bitnet_kernels::kernel_path();
    let pool = bitnet_kernels::pool_kind().name();
    if args.json {
        let j = serde_json::json!({
            "model": args.model.display().to_string(),
            "pp_tok_s": pp_m, "pp_tok_s_stddev": pp_s, "n_prompt": args.n_prompt,
            "tg_tok_s": tg_m, "tg_tok_s_stddev": tg_s, "n_gen": args.n_gen,
            "threads": threads, "repetitions": reps,
            "bandwidth_gb_s": bandwidth, "bytes_per_token": bpt,
            "bandwidth_best_gb_s": best, "bandwidth_passes": probe.passes(),
            "tg_pct_of_best_bound": pct_best,
            "tg_limit_tok_s": limit, "tg_pct_of_bound": pct, "kernels": kernels,
            "pool": pool, "tg_effective_gb_s": tg_m * bpt as f64 / 1e9,
            "kv_type": args.kv_type.name(), "depth": args.depth,
            "kv_bytes_read_per_token": kv_read.round() as u64,
        });
        println!("{j}");
    } else {
        println!(
            "model: {}  kernels: {kernels}  pool: {pool}  threads: {threads}  reps: {reps}  kv: {}",
            display_name(&args.model),
            args.kv_type.name()
        );
        println!(
            "read bandwidth: {bandwidth:.1} GB/s (median of {} passes; best {best:.1})   \
             bytes/token: {:.3} GB   decode limit: {limit:.1} tok/s",
            probe.passes(),
            bpt as f64 / 1e9
        );
        println!("| test | tok/s | ± |");
        println!("|---|---|---|");
        let at = match args.depth {
            0 => String::new(),
            d => format!(" @ d{d}"),
        };
        if args.n_prompt > 0 {
            println!("| pp{}{at} | {pp_m:.2} | {pp_s:.2} |", args.n_prompt);
        }
        if args.n_gen > 0 {
            println!(
                "| tg{}{at} | {tg_m:.2} | {tg_s:.2} |  ({pct:.1} % of bandwidth limit, \
                 {pct_best:.1} % of the best pass's; KV cache read: {:.1} MB/token)",
                args.n_gen,
                kv_read / 1e6
            );
        }
    }
    Ok(())
}

fn display_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::dummy::{dummy, DummyArgs};
    use crate::model::{LoadOptions, Model};

    fn write_dummy(dir: &Path, ty: &str) -> PathBuf {
        let out = dir.join(format!("tiny-{ty}.gguf"));
        dummy(DummyArgs {
            shape: "tiny".into(),
            ty: ty.into(),
            output: out.clone(),
            seed: 3,
        })
        .unwrap();
        out
    }

    fn logits(path: &Path) -> Vec<f32> {
        let model = Model::load(
            path,
            &LoadOptions {
                n_ctx: Some(64),
                threads: Some(2),
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
            let l = logits(&path);
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
        let detected = bitnet_kernels::dispatch::detect();
        bitnet_kernels::force_path(KernelPath::Scalar).unwrap();
        let reference = logits(&path);
        for p in KernelPath::simd() {
            if !p.is_supported() {
                continue;
            }
            bitnet_kernels::force_path(p).unwrap();
            let l = logits(&path);
            let scale = reference.iter().fold(0f32, |a, v| a.max(v.abs())).max(1e-6);
            for (i, (a, b)) in l.iter().zip(&reference).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-3 * scale,
                    "{}: logit {i}: {a} vs {b}",
                    p.name()
                );
            }
        }
        bitnet_kernels::force_path(detected).unwrap();
    }

    #[test]
    fn bandwidth_and_stats() {
        assert!(measure_read_bandwidth(1).unwrap() > 0.0);
        let mut probe = BandwidthProbe::new(2).unwrap();
        assert_eq!((probe.passes(), probe.median()), (0, 0.0));
        let best = probe.measure(3);
        assert_eq!(probe.passes(), 3);
        assert!(probe.median() > 0.0 && probe.median() <= best);
        assert_eq!(probe.measure(2), best.max(probe.seen[3]).max(probe.seen[4]));
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(spread(&[1.0]), 0.0);
    }
}
