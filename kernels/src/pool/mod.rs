//! The thread pool the matmuls split their rows over.
//!
//! Sized by [`set_threads`] (default: the number of physical cores, or the logical count
//! when that cannot be read). Two kinds, chosen with [`set_pool_kind`] or `BITNET_POOL`:
//! rayon's, and a dedicated spin-then-park pool ([`spin`]) that makes decode's ~200 small
//! parallel regions per token cheaper (measurements in docs/performance.md). Work is cut
//! into one chunk per thread (fewer when a chunk would fall below its minimum size).

mod cores;
mod spin;

use std::sync::{Arc, OnceLock, RwLock};

pub use cores::physical_cores;
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
    fn from_env() -> PoolKind {
        std::env::var("BITNET_POOL")
            .ok()
            .and_then(|v| PoolKind::from_name(v.trim()))
            .unwrap_or(PoolKind::Spin)
    }
}

enum Backend {
    Rayon(rayon::ThreadPool),
    Spin(SpinPool),
}

impl Backend {
    fn build(threads: usize, kind: PoolKind) -> Option<Backend> {
        match kind {
            PoolKind::Rayon => rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("bitnet-kernels-{i}"))
                .build()
                .ok()
                .map(Backend::Rayon),
            PoolKind::Spin => SpinPool::new(threads).ok().map(Backend::Spin),
        }
    }

    fn threads(&self) -> usize {
        match self {
            Backend::Rayon(p) => p.current_num_threads(),
            Backend::Spin(p) => p.threads(),
        }
    }

    fn kind(&self) -> PoolKind {
        match self {
            Backend::Rayon(_) => PoolKind::Rayon,
            Backend::Spin(_) => PoolKind::Spin,
        }
    }
}

static POOL: RwLock<Option<Arc<Backend>>> = RwLock::new(None);
static KIND: OnceLock<RwLock<PoolKind>> = OnceLock::new();

fn kind_cell() -> &'static RwLock<PoolKind> {
    KIND.get_or_init(|| RwLock::new(PoolKind::from_env()))
}

/// Chooses the pool kind (rebuilding a running pool with the same thread count).
pub fn set_pool_kind(kind: PoolKind) {
    *kind_cell().write().unwrap_or_else(|e| e.into_inner()) = kind;
    let running = POOL
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|p| p.threads());
    if let Some(threads) = running {
        set_threads(threads);
    }
}

/// The kind of pool in use.
pub fn pool_kind() -> PoolKind {
    pool().kind()
}

/// Sets the number of threads the matmuls use (0 = default). Rebuilds the pool.
pub fn set_threads(n: usize) {
    let n = if n == 0 { physical_cores() } else { n };
    let kind = *kind_cell().read().unwrap_or_else(|e| e.into_inner());
    let pool = Backend::build(n, kind).map(Arc::new);
    *POOL.write().unwrap_or_else(|e| e.into_inner()) = pool;
}

/// The number of threads the matmuls use.
pub fn threads() -> usize {
    pool().threads()
}

fn pool() -> Arc<Backend> {
    if let Some(p) = POOL.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return p.clone();
    }
    let mut guard = POOL.write().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        let kind = *kind_cell().read().unwrap_or_else(|e| e.into_inner());
        let pool = Backend::build(physical_cores(), kind)
            .or_else(|| Backend::build(1, PoolKind::Spin))
            .expect("a one-thread pool starts no thread");
        *guard = Some(Arc::new(pool));
    }
    guard.as_ref().cloned().expect("pool just set")
}

/// Runs `f` on a thread of the kernel pool. A forward pass run this way makes its ~200
/// parallel regions per token fork-join inside the pool (the caller is a worker and takes
/// part) instead of each one injecting a job from outside and sleeping until it is done.
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match &*pool() {
        Backend::Rayon(p) if p.current_num_threads() > 1 => p.install(f),
        // The spin pool's caller takes part in every region itself.
        _ => f(),
    }
}

/// Runs `f(start, end)` over `0..n` cut into chunks of at least `min_chunk` items (rounded to
/// a multiple of `align`), in parallel on the pool.
pub fn parallel_ranges<F>(n: usize, min_chunk: usize, align: usize, f: F)
where
    F: Fn(usize, usize) + Sync + Send,
{
    if n == 0 {
        return;
    }
    let pool = pool();
    let threads = pool.threads().max(1);
    let align = align.max(1);
    // One chunk per thread. Every chunk starts its rows' streams cold and prefetches past its
    // end, so more chunks read slower: a 1536 × 1536 decode mat-vec streamed at 16.7–18.7
    // GB/s with one chunk per thread, 15.8–16.9 with two, 12.6–14.4 with eight (alternating
    // in one process), and decode was faster with one, idle and with both cores loaded
    // (docs/performance.md). The spin pool's caller yields while it waits, so a
    // descheduled worker still gets its core back.
    let chunk = n.div_ceil(threads).max(min_chunk.max(1));
    run_ranges(&pool, n, chunk.div_ceil(align) * align, f);
}

/// [`parallel_ranges`] for compute-bound work: `per_thread` chunks per thread (each at least
/// `min_chunk` items, a multiple of `align`), claimed dynamically, so a core that the VM's
/// other tenants slow down takes fewer of them instead of making the others wait.
pub fn parallel_ranges_balanced<F>(
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
    let pool = pool();
    let threads = pool.threads().max(1);
    let align = align.max(1);
    let chunk = n
        .div_ceil(threads * per_thread.max(1))
        .max(min_chunk.max(1));
    run_ranges(&pool, n, chunk.div_ceil(align) * align, f);
}

/// Runs `f` over `0..n` in chunks of `chunk` items (the last one shorter).
fn run_ranges<F>(pool: &Backend, n: usize, mut chunk: usize, f: F)
where
    F: Fn(usize, usize) + Sync + Send,
{
    let threads = pool.threads().max(1);
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
    match pool {
        Backend::Rayon(p) => p.install(|| {
            use rayon::prelude::*;
            (0..n_chunks).into_par_iter().for_each(body);
        }),
        Backend::Spin(p) => p.run(n_chunks, &body),
    }
}

/// Runs `f(i, chunk)` for every `chunk_len`-element chunk `i` of `data` (a shorter tail
/// chunk is left out), at least `min_items` chunks per task, in parallel on the pool.
pub fn parallel_chunks_mut<T, F>(data: &mut [T], chunk_len: usize, min_items: usize, f: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync + Send,
{
    struct Base<T>(*mut T);
    // SAFETY: tasks get disjoint chunks of a slice we hold mutably for the whole call.
    unsafe impl<T: Send> Sync for Base<T> {}
    let chunk_len = chunk_len.max(1);
    let items = data.len() / chunk_len;
    let base = Base(data.as_mut_ptr());
    let base = &base;
    parallel_ranges(items, min_items, 1, move |a, b| {
        for i in a..b {
            let chunk =
                unsafe { std::slice::from_raw_parts_mut(base.0.add(i * chunk_len), chunk_len) };
            f(i, chunk);
        }
    });
}

/// A buffer whose disjoint parts parallel tasks write: a raw pointer that may cross threads,
/// for outputs that are not one chunk per task (a token tile's rows spread over a larger
/// matrix, several arrays written per item).
#[derive(Clone, Copy)]
pub struct DisjointMut<T>(*mut T);
// SAFETY: the tasks write disjoint parts (the contract of `slice`).
unsafe impl<T: Send> Send for DisjointMut<T> {}
unsafe impl<T: Send> Sync for DisjointMut<T> {}

impl<T> DisjointMut<T> {
    pub fn new(buf: &mut [T]) -> Self {
        DisjointMut(buf.as_mut_ptr())
    }

    /// `len` elements from element `at` on. A method, so that closures capture the whole
    /// (Sync) wrapper rather than its raw pointer.
    ///
    /// # Safety
    /// The range lies inside the buffer given to `new`, which outlives the slice, and no
    /// one else reads or writes that range meanwhile.
    pub unsafe fn slice<'a>(self, at: usize, len: usize) -> &'a mut [T] {
        unsafe { std::slice::from_raw_parts_mut(self.0.add(at), len) }
    }

    /// Stores `v` at element `at`.
    ///
    /// # Safety
    /// As for [`DisjointMut::slice`], for that one element.
    #[inline]
    pub unsafe fn write(self, at: usize, v: T) {
        unsafe { self.0.add(at).write(v) }
    }
}
