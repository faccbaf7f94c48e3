//! What `bench` measures of the machine in the same run as the model, so that its figures
//! are ratios to a limit seen under the same load: the read bandwidth (decode's limit) and
//! the ternary kernels' compute rate (prefill's).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bitnet_kernels::Runtime;

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
    buf: memmap2::MmapMut,
    threads: usize,
    /// GB/s of every pass so far, for the spread the VM's drift gives.
    passes: Passes,
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
            passes: Passes::default(),
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
            let ahead = if self.passes.count().is_multiple_of(2) {
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
            self.passes.push(gbs);
        }
        self.passes.best()
    }

    pub fn passes(&self) -> &Passes {
        &self.passes
    }
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
        assert!(BandwidthProbe::new(1).unwrap().measure(6) > 0.0);
        let mut probe = BandwidthProbe::new(2).unwrap();
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
