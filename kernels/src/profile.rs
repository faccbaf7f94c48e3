//! Where decode's time goes, per operation, for `bench --profile`: the forward pass wraps
//! each kind of work in a [`section`], and the pool's caller counts its wait at the end of
//! a region. Off by default; off, a section costs one relaxed load and a branch.
//!
//! The counters are process-wide (one benchmark at a time) and count the calling thread's
//! wall time: a section's time is what the forward pass waited for it, the pool's workers
//! included. A section's time excludes the pool waits inside it, which go to
//! [`Op::Wait`], so the operations add up to (at most) the time they spanned.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// The kinds of work a decoded token is split into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// The output matrix (logits).
    Head,
    /// Every ternary projection (quantisation of its input included).
    Ternary,
    /// Attention over the KV cache, with RoPE and the cache append.
    Attention,
    /// RMS norms, the FFN activation, residual adds and the embedding lookup.
    Norms,
    /// The caller waiting at the end of a pool region for the other threads.
    Wait,
}

impl Op {
    pub const ALL: [Op; 5] = [Op::Head, Op::Ternary, Op::Attention, Op::Norms, Op::Wait];

    pub fn name(self) -> &'static str {
        match self {
            Op::Head => "head",
            Op::Ternary => "ternary",
            Op::Attention => "attention",
            Op::Norms => "norms",
            Op::Wait => "sync_wait",
        }
    }
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static NANOS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

/// Starts or stops counting (the counters keep their values).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

#[inline(always)]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The nanoseconds counted per operation since the last call, in [`Op::ALL`]'s order; the
/// counters restart from zero.
pub fn take() -> [u64; 5] {
    std::array::from_fn(|i| NANOS[i].swap(0, Ordering::Relaxed))
}

fn add(op: Op, ns: u64) {
    NANOS[op as usize].fetch_add(ns, Ordering::Relaxed);
}

/// Counts the time until it is dropped to `op`, less the pool waits counted meanwhile.
pub struct Section {
    started: Option<(Op, Instant, u64)>,
}

/// Opens a section of `op` (a no-op when profiling is off).
#[inline(always)]
pub fn section(op: Op) -> Section {
    Section {
        started: enabled().then(|| {
            (
                op,
                Instant::now(),
                NANOS[Op::Wait as usize].load(Ordering::Relaxed),
            )
        }),
    }
}

impl Drop for Section {
    #[inline(always)]
    fn drop(&mut self) {
        if let Some((op, t0, wait0)) = self.started {
            let waited = NANOS[Op::Wait as usize].load(Ordering::Relaxed) - wait0;
            add(op, (t0.elapsed().as_nanos() as u64).saturating_sub(waited));
        }
    }
}

/// For the pool: the time since `t0` (taken when profiling was on) as a wait.
pub(crate) fn add_wait(t0: Option<Instant>) {
    if let Some(t0) = t0 {
        add(Op::Wait, t0.elapsed().as_nanos() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_count_only_when_enabled_and_exclude_waits() {
        take();
        drop(section(Op::Head));
        assert_eq!(take(), [0; 5]);
        set_enabled(true);
        let long = std::time::Duration::from_secs(10);
        {
            let _s = section(Op::Ternary);
            // A 10 s wait inside a section that spanned far less: all of it is a wait.
            add_wait(Instant::now().checked_sub(long));
        }
        set_enabled(false);
        let got = take();
        assert!(got[Op::Wait as usize] >= long.as_nanos() as u64, "{got:?}");
        assert_eq!(got[Op::Ternary as usize], 0, "{got:?}");
        assert_eq!(got[Op::Head as usize], 0);
    }
}
