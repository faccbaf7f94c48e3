//! What `bench` measures of the machine in the same run as the model, so that its figures
//! are ratios to a limit seen under the same load: the read bandwidth (decode's limit) and
//! the ternary kernels' compute rate (prefill's).

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bitnet_kernels::Runtime;

use super::readloop::{self, HugeBuf, Shape};

/// The values of a probe's passes: other tenants' load makes the VM's speed drift, so a
/// probe is repeated during the run and its limit is the median pass (the best is reported
/// beside it).
#[derive(Default)]
pub struct Passes(Vec<f64>);

impl Passes {
    fn push(&mut self, v: f64) {
        self.0.push(v);
    }
    pub fn count(&self) -> usize {
        self.0.len()
    }
    /// 0 before any pass.
    pub fn best(&self) -> f64 {
        self.0.iter().fold(0.0, |a, &b| a.max(b))
    }
    /// What the machine typically delivered while we measured; 0 before any pass.
    pub fn median(&self) -> f64 {
        median(&mut self.0.clone())
    }
}

/// Read bandwidth in GB/s: `threads` threads summing disjoint parts of a buffer far larger
/// than the caches, over several passes. The buffer is kept so that the probe can be
/// repeated between the decode runs: the machine's bandwidth drifts with other tenants'
/// load, and the limit should be what it delivered while we measured. The limit is the
/// median pass, compared with the median decode run; the best pass is reported beside it
/// (the maximum of many noisy passes sits above what a several-second decode run can see).
pub struct BandwidthProbe {
    buf: HugeBuf,
    threads: usize,
    /// GB/s of every pass so far, for the spread the VM's drift gives.
    passes: Passes,
}

/// 1 GiB: larger than any last-level cache (this project's test machine reports 300 MB of
/// L3), so the passes read DRAM as a decoded token of a 2B model does.
const PROBE_BYTES: usize = 1 << 30;

impl BandwidthProbe {
    pub fn new(threads: usize) -> Result<BandwidthProbe> {
        Self::with_bytes(threads, PROBE_BYTES)
    }

    fn with_bytes(threads: usize, bytes: usize) -> Result<BandwidthProbe> {
        let buf = HugeBuf::new(bytes)
            .with_context(|| format!("cannot map {bytes} bytes for the bandwidth probe"))?;
        Ok(BandwidthProbe {
            buf,
            threads: threads.max(1),
            passes: Passes::default(),
        })
    }

    /// Runs `passes` passes; returns the best GB/s seen so far.
    ///
    /// A pass reads the buffer once per [`Shape`] (each thread's part as one stream, as a
    /// plain compiled sum loop does, and as four streams, as the decode kernels do) and
    /// counts the faster: the probe then cannot read slower than either loop. The threads
    /// start before the clock and meet at a barrier, so a pass times the reads alone.
    pub fn measure(&mut self, passes: usize) -> f64 {
        let bytes = self.buf.bytes();
        // Parts on 64-byte boundaries: whole cache lines per thread.
        let chunk = bytes.len().div_ceil(self.threads).next_multiple_of(64);
        let shapes = [Shape::OneStream, Shape::FourStreams];
        let start = Barrier::new(self.threads + 1);
        let done = Barrier::new(self.threads + 1);
        let mut seen = Vec::with_capacity(passes);
        std::thread::scope(|s| {
            for part in bytes.chunks(chunk) {
                let (start, done) = (&start, &done);
                s.spawn(move || {
                    for _ in 0..passes {
                        for shape in shapes {
                            start.wait();
                            std::hint::black_box(readloop::read(part, shape));
                            done.wait();
                        }
                    }
                });
            }
            // `chunks` may give fewer parts than threads for a tiny buffer; the barriers
            // count the threads actually started.
            let missing = self.threads - bytes.chunks(chunk).count();
            for _ in 0..missing {
                s.spawn(|| {
                    for _ in 0..passes * shapes.len() {
                        start.wait();
                        done.wait();
                    }
                });
            }
            for _ in 0..passes {
                let mut fastest = Duration::MAX;
                for _ in shapes {
                    start.wait();
                    let t0 = Instant::now();
                    done.wait();
                    fastest = fastest.min(t0.elapsed());
                }
                seen.push(bytes.len() as f64 / fastest.as_secs_f64().max(1e-9) / 1e9);
            }
        });
        for gbs in seen {
            self.passes.push(gbs);
        }
        self.passes.best()
    }

    /// The vector loads the passes use (`avx512`, `avx2`, `neon` or `scalar`).
    pub fn loads(&self) -> &'static str {
        readloop::widest_loads()
    }

    pub fn passes(&self) -> &Passes {
        &self.passes
    }
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        0.0
    } else {
        v[v.len() / 2]
    }
}

/// The compute rate of a runtime's kernel path in 10⁹ ternary multiply-adds per second:
/// every thread of its pool at once multiplying a cache-resident matrix by `tokens` tokens
/// ([`bitnet_kernels::ternary_matmul_rate`]), repeated during the run like the bandwidth
/// probe. Divided by a model's multiply-adds per token
/// ([`super::ternary_macs_per_token`]) it is the prompt rate the ternary matmuls alone
/// would allow if nothing else took time and no weight had to come from memory: what
/// prefill is judged against, as decode is against the bandwidth.
pub struct ComputeProbe {
    runtime: Arc<Runtime>,
    tokens: usize,
    passes: Passes,
}

/// How long one pass of the compute probe runs: long against the threads' start-up and a
/// timer tick, short against a prefill repetition.
const COMPUTE_PASS: Duration = Duration::from_millis(150);

impl ComputeProbe {
    pub fn new(runtime: Arc<Runtime>, tokens: usize) -> ComputeProbe {
        ComputeProbe {
            runtime,
            tokens: tokens.clamp(1, bitnet_kernels::RATE_MAX_TOKENS),
            passes: Passes::default(),
        }
    }

    /// Runs `passes` passes; returns the best rate so far.
    pub fn measure(&mut self, passes: usize) -> f64 {
        for _ in 0..passes {
            let rt = &self.runtime;
            let r =
                bitnet_kernels::ternary_matmul_rate(rt, rt.threads(), self.tokens, COMPUTE_PASS);
            self.passes.push(r);
        }
        self.passes.best()
    }

    pub fn passes(&self) -> &Passes {
        &self.passes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitnet_kernels::RuntimeOptions;

    #[test]
    fn bandwidth_and_stats() {
        // Small buffers: the statistics, not the machine, are under test here.
        assert!(BandwidthProbe::with_bytes(1, 8 << 20).unwrap().measure(6) > 0.0);
        // Three threads on a buffer that splits unevenly.
        assert!(
            BandwidthProbe::with_bytes(3, (4 << 20) + 192)
                .unwrap()
                .measure(1)
                > 0.0
        );
        let mut probe = BandwidthProbe::with_bytes(2, 8 << 20).unwrap();
        assert_eq!((probe.passes().count(), probe.passes().median()), (0, 0.0));
        let best = probe.measure(3);
        assert_eq!(probe.passes().count(), 3);
        assert!(probe.passes().median() > 0.0 && probe.passes().median() <= best);
        let got = probe.measure(2);
        let seen = &probe.passes.0;
        assert_eq!(got, best.max(seen[3]).max(seen[4]));
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
    }

    #[test]
    fn compute_probe_passes() {
        let rt = Runtime::new(RuntimeOptions {
            threads: Some(2),
            ..RuntimeOptions::default()
        })
        .unwrap();
        let mut probe = ComputeProbe::new(Arc::new(rt), 1000);
        assert_eq!(probe.tokens, bitnet_kernels::RATE_MAX_TOKENS);
        let p = probe.passes();
        assert_eq!((p.count(), p.median(), p.best()), (0, 0.0, 0.0));
        let best = probe.measure(3);
        let p = probe.passes();
        assert_eq!(p.count(), 3);
        assert!(p.median() > 0.0 && p.median() <= best && best == p.best());
    }
}
