//! The thread pool the matmuls split their rows over.
//!
//! A rayon pool sized by [`set_threads`] (default: the number of physical cores, or the
//! logical count when that cannot be read). Work is cut into a few chunks per thread so
//! that decode's ~200 small parallel regions per token stay cheap.

use std::sync::{Arc, OnceLock, RwLock};

static POOL: RwLock<Option<Arc<rayon::ThreadPool>>> = RwLock::new(None);
static DEFAULT_THREADS: OnceLock<usize> = OnceLock::new();

/// Physical core count (Linux: distinct (package, core) pairs), else logical CPUs.
pub fn physical_cores() -> usize {
    *DEFAULT_THREADS.get_or_init(|| {
        let logical = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        linux_physical_cores()
            .map(|p| p.clamp(1, logical))
            .unwrap_or(logical)
    })
}

fn linux_physical_cores() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mut cores = std::collections::HashSet::new();
    let (mut phys, mut core) = (None::<String>, None::<String>);
    for line in text.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if let (Some(p), Some(c)) = (phys.take(), core.take()) {
                cores.insert((p, c));
            }
            continue;
        }
        let mut kv = line.splitn(2, ':');
        let (k, v) = (
            kv.next()?.trim(),
            kv.next().unwrap_or("").trim().to_string(),
        );
        match k {
            "physical id" => phys = Some(v),
            "core id" => core = Some(v),
            _ => {}
        }
    }
    (!cores.is_empty()).then_some(cores.len())
}

/// Sets the number of threads the matmuls use (0 = default). Rebuilds the pool.
pub fn set_threads(n: usize) {
    let n = if n == 0 { physical_cores() } else { n };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("bitnet-kernels-{i}"))
        .build()
        .ok()
        .map(Arc::new);
    *POOL.write().unwrap_or_else(|e| e.into_inner()) = pool;
}

/// The number of threads the matmuls use.
pub fn threads() -> usize {
    pool().current_num_threads()
}

pub(crate) fn pool() -> Arc<rayon::ThreadPool> {
    if let Some(p) = POOL.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return p.clone();
    }
    let mut guard = POOL.write().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(physical_cores())
            .thread_name(|i| format!("bitnet-kernels-{i}"))
            .build()
            .expect("cannot start the kernel thread pool");
        *guard = Some(Arc::new(pool));
    }
    guard.as_ref().cloned().expect("pool just set")
}

/// Runs `f` on a thread of the kernel pool. A forward pass run this way makes its ~200
/// parallel regions per token fork-join inside the pool (the caller is a worker and takes
/// part) instead of each one injecting a job from outside and sleeping until it is done.
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    let pool = pool();
    if pool.current_num_threads() <= 1 {
        return f();
    }
    pool.install(f)
}

/// Runs `f(start, end)` over `0..n` cut into chunks of at least `min_chunk` items (rounded to
/// a multiple of `align`), in parallel on the pool.
pub(crate) fn parallel_ranges<F>(n: usize, min_chunk: usize, align: usize, f: F)
where
    F: Fn(usize, usize) + Sync + Send,
{
    if n == 0 {
        return;
    }
    let pool = pool();
    let threads = pool.current_num_threads().max(1);
    let align = align.max(1);
    // Two chunks per thread absorbs uneven speed without many tiny tasks.
    let mut chunk = n.div_ceil(threads * 2).max(min_chunk.max(1));
    chunk = chunk.div_ceil(align) * align;
    if threads == 1 || chunk >= n {
        f(0, n);
        return;
    }
    let n_chunks = n.div_ceil(chunk);
    pool.install(|| {
        use rayon::prelude::*;
        (0..n_chunks).into_par_iter().for_each(|c| {
            let s = c * chunk;
            f(s, (s + chunk).min(n));
        });
    });
}
