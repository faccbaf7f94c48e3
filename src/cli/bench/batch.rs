//! `bench --batch B`: B sequences decoded together, one token each per step, through the
//! server's batched step (`forward_batch`), beside the one-sequence decode of the same run.
//! A step reads the weights once for all B tokens, so while the kernels stay memory-bound it
//! should cost barely more than one token: `batch_speedup` (aggregate tok/s over one
//! sequence's) says how close the build comes.

use std::time::Instant;

use anyhow::Result;
use bitnet_gguf::engine::model::{forward_batch, Model, Session};

use super::probes::median;
use super::{breakdown, spread};

/// What the batched test measured: aggregate tokens per second of each timed repetition,
/// and (with `--profile`) where a step's time went.
pub struct BatchRun {
    pub rates: Vec<f64>,
    pub breakdown: Option<serde_json::Value>,
}

/// `reps` timed runs (after one untimed warm-up) of `steps` batched steps of `batch`
/// sessions, each cut back to `context` before every run. `between` runs after each run
/// (the bandwidth probe's passes, as in the one-sequence test).
#[allow(clippy::too_many_arguments)]
pub fn run(
    model: &Model,
    n_ctx: usize,
    context: &[u32],
    batch: usize,
    steps: usize,
    reps: usize,
    profile: bool,
    token: impl Fn(usize) -> u32,
    mut between: impl FnMut(),
) -> Result<BatchRun> {
    let mut sessions: Vec<Session> = (0..batch).map(|_| model.new_session(n_ctx)).collect();
    for s in &mut sessions {
        if !context.is_empty() {
            s.forward(context)?;
        }
    }
    let mut rates = Vec::with_capacity(reps);
    let mut step_ns = 0u64;
    breakdown::start(profile);
    for r in 0..=reps {
        for s in &mut sessions {
            s.truncate(context.len());
        }
        let t0 = Instant::now();
        for i in 0..steps {
            // Each sequence gets its own token, as distinct requests would.
            let tokens: Vec<u32> = (0..batch).map(|b| token(i * batch + b + 1)).collect();
            let mut refs: Vec<&mut Session> = sessions.iter_mut().collect();
            forward_batch(&mut refs, &tokens)?;
        }
        let elapsed = t0.elapsed();
        step_ns += elapsed.as_nanos() as u64;
        if r > 0 {
            rates.push((steps * batch) as f64 / elapsed.as_secs_f64());
        }
        between();
    }
    // Per step, not per token: the warm-up counted too, as in the one-sequence breakdown.
    let b = breakdown::finish((reps + 1) * steps, step_ns);
    Ok(BatchRun {
        rates,
        breakdown: profile.then_some(b),
    })
}

impl BatchRun {
    /// Adds the batched test's figures to the report: `batch`, the median aggregate rate and
    /// its spread, the step time, the rate against `one_seq` tok/s of the one-sequence
    /// decode, and the per-step breakdown.
    pub fn report(mut self, batch: usize, one_seq: f64, j: &mut serde_json::Value) {
        let rate = median(&mut self.rates);
        j["batch"] = batch.into();
        j["batch_tg_tok_s"] = rate.into();
        j["batch_tg_tok_s_stddev"] = spread(&self.rates).into();
        j["batch_step_ms"] = (1e3 * batch as f64 / rate).into();
        j["batch_speedup"] = (rate / one_seq).into();
        j["batch_breakdown"] = self.breakdown.into();
    }
}
