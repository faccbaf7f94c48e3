//! The thread pools the matmuls split their rows over.
//!
//! A [`Pool`] is a value: each [`crate::Runtime`] owns one, so two models in one process keep
//! their own threads. Two kinds: rayon's, and a dedicated spin-then-park pool ([`spin`])
//! that makes decode's ~200 small parallel regions per token cheaper (measurements in
//! docs/performance.md). Work is cut into one chunk per thread (fewer when a chunk would
//! fall below its minimum size).

mod cores;
mod disjoint;
mod spin;

pub use cores::physical_cores;
pub use disjoint::DisjointMut;
use spin::SpinPool;

/// Which pool runs the parallel regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// rayon's work-stealing pool: idle workers sleep soon and are woken per region.
    Rayon,
    /// The dedicated pool of `pool::spin`: the caller publishes a region with one store and takes
    /// part; idle workers spin for a while before they park.
    Spin,
}

impl PoolKind {
    pub const ALL: [PoolKind; 2] = [PoolKind::Rayon, PoolKind::Spin];

    pub fn name(self) -> &'static str {
        match self {
            PoolKind::Rayon => "rayon",
            PoolKind::Spin => "spin",
        }
    }

    pub fn from_name(s: &str) -> Option<PoolKind> {
        PoolKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// `BITNET_POOL=rayon|spin`, else the faster one measured in docs/performance.md.
    pub fn from_env() -> PoolKind {
        std::env::var("BITNET_POOL")
            .ok()
            .and_then(|v| PoolKind::from_name(v.trim()))
            .unwrap_or(PoolKind::Spin)
    }
}

/// A pool of `threads()` threads (the caller counts as one for the spin kind).
pub struct Pool {
    backend: Backend,
}

enum Backend {
    Rayon(rayon::ThreadPool),
    Spin(SpinPool),
}

impl Pool {
    /// A pool of `threads` threads (0: one per physical core) of the given kind.
    pub fn new(threads: usize, kind: PoolKind) -> std::io::Result<Pool> {
        let threads = if threads == 0 {
            physical_cores()
        } else {
            threads
        };
        let backend = match kind {
            PoolKind::Rayon => rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("bitnet-kernels-{i}"))
                .build()
                .map(Backend::Rayon)
                .map_err(std::io::Error::other)?,
            PoolKind::Spin => Backend::Spin(SpinPool::new(threads)?),
        };
        Ok(Pool { backend })
    }

    /// The number of threads a parallel region is split over.
    pub fn threads(&self) -> usize {
        match &self.backend {
            Backend::Rayon(p) => p.current_num_threads(),
            Backend::Spin(p) => p.threads(),
        }
    }

    pub fn kind(&self) -> PoolKind {
        match &self.backend {
            Backend::Rayon(_) => PoolKind::Rayon,
            Backend::Spin(_) => PoolKind::Spin,
        }
    }

    /// Runs `f` on a thread of this pool. A forward pass run this way makes its ~200
    /// parallel regions per token fork-join inside the pool (the caller is a worker and
    /// takes part) instead of each one injecting a job from outside and sleeping until it
    /// is done.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.backend {
            Backend::Rayon(p) if p.current_num_threads() > 1 => p.install(f),
            // The spin pool's caller takes part in every region itself.
            _ => f(),
        }
    }

    /// Runs `f(start, end)` over `0..n` cut into chunks of at least `min_chunk` items
    /// (rounded to a multiple of `align`), in parallel on the pool.
    pub fn parallel_ranges<F>(&self, n: usize, min_chunk: usize, align: usize, f: F)
    where
        F: Fn(usize, usize) + Sync + Send,
    {
        if n == 0 {
            return;
        }
        let threads = self.threads().max(1);
        let align = align.max(1);
        // One chunk per thread. Every chunk starts its rows' streams cold and prefetches
        // past its end, so more chunks read slower: a 1536 × 1536 decode mat-vec streamed at
        // 16.7–18.7 GB/s with one chunk per thread, 15.8–16.9 with two, 12.6–14.4 with eight
        // (alternating in one process), and decode was faster with one, idle and with both
        // cores loaded (docs/performance.md). The spin pool's caller yields while it waits,
        // so a descheduled worker still gets its core back.
        let chunk = n.div_ceil(threads).max(min_chunk.max(1));
        self.run_ranges(n, chunk.div_ceil(align) * align, f);
    }

    /// [`Pool::parallel_ranges`] for compute-bound work: `per_thread` chunks per thread
    /// (each at least `min_chunk` items, a multiple of `align`), claimed dynamically, so a
    /// core that the VM's other tenants slow down takes fewer of them instead of making the
    /// others wait.
    pub fn parallel_ranges_balanced<F>(
        &self,
        n: usize,
        per_thread: usize,
        min_chunk: usize,
        align: usize,
        f: F,
    ) where
        F: Fn(usize, usize) + Sync + Send,
    {
        if n == 0 {
            return;
        }
        let threads = self.threads().max(1);
        let align = align.max(1);
        let chunk = n
            .div_ceil(threads * per_thread.max(1))
            .max(min_chunk.max(1));
        self.run_ranges(n, chunk.div_ceil(align) * align, f);
    }

    /// Runs `f(i, chunk)` for every `chunk_len`-element chunk `i` of `data` (a shorter tail
    /// chunk is left out), at least `min_items` chunks per task, in parallel on the pool.
    pub fn parallel_chunks_mut<T, F>(
        &self,
        data: &mut [T],
        chunk_len: usize,
        min_items: usize,
        f: F,
    ) where
        T: Send,
        F: Fn(usize, &mut [T]) + Sync + Send,
    {
        let chunk_len = chunk_len.max(1);
        let items = data.len() / chunk_len;
        let base = DisjointMut::new(data);
        self.parallel_ranges(items, min_items, 1, move |a, b| {
            for i in a..b {
                // SAFETY: chunk i (`items · chunk_len` ≤ `data.len()`) is this task's alone,
                // and `data` stays mutably borrowed for the whole call.
                f(i, unsafe { base.slice(i * chunk_len, chunk_len) });
            }
        });
    }

    /// Runs `f` over `0..n` in chunks of `chunk` items (the last one shorter).
    fn run_ranges<F>(&self, n: usize, mut chunk: usize, f: F)
    where
        F: Fn(usize, usize) + Sync + Send,
    {
        let threads = self.threads().max(1);
        if threads == 1 || chunk >= n {
            f(0, n);
            return;
        }
        while n.div_ceil(chunk) > spin::MAX_CHUNKS {
            chunk *= 2;
        }
        let n_chunks = n.div_ceil(chunk);
        let body = |c: usize| {
            let s = c * chunk;
            f(s, (s + chunk).min(n));
        };
        match &self.backend {
            Backend::Rayon(p) => p.install(|| {
                use rayon::prelude::*;
                (0..n_chunks).into_par_iter().for_each(body);
            }),
            Backend::Spin(p) => p.run(n_chunks, &body),
        }
    }
}
