//! A dedicated fork-join pool for decode's many small parallel regions.
//!
//! Decoding one token runs ~130–250 parallel regions of tens of microseconds each, with a
//! few microseconds of serial work between them. Waking a sleeping thread costs about as
//! much as a region, so here the calling thread publishes a region with one atomic store and
//! takes chunks itself, while `n - 1` workers spin on that word for a while after each region
//! (then yield, then park on a condition variable). Workers claim chunks with one
//! compare-and-swap on a word packing (epoch, chunk count, next chunk), so a worker that
//! wakes late can never run a chunk of a region that already ended.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most chunks one region can have (the packed word keeps 16 bits for each count).
pub(super) const MAX_CHUNKS: usize = u16::MAX as usize;

/// How long an idle worker spins, then yields, before it parks. Long enough to span the
/// serial work between the regions of one token and between tokens; short enough that an
/// idle server does not keep cores busy.
const SPIN: Duration = Duration::from_micros(200);
const YIELD: Duration = Duration::from_millis(2);

/// The region being run: a chunk body with its lifetime erased. It lives on the caller's
/// stack; workers only dereference it after claiming a chunk, and the caller returns only
/// when every chunk has finished.
struct JobRef {
    body: *const (dyn Fn(usize) + Sync),
}

struct Shared {
    /// epoch (bits 32..64) | chunk count (16..32) | next chunk to claim (0..16).
    word: AtomicU64,
    job: AtomicPtr<JobRef>,
    /// Chunks of the current epoch that have finished.
    done: AtomicUsize,
    panicked: AtomicBool,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    shutdown: AtomicBool,
}

fn epoch(w: u64) -> u32 {
    (w >> 32) as u32
}
fn count(w: u64) -> usize {
    ((w >> 16) & 0xffff) as usize
}
fn next(w: u64) -> usize {
    (w & 0xffff) as usize
}

pub(super) struct SpinPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// One region at a time; a second caller (another thread, or a chunk body on a worker
    /// or the caller that itself asks for parallelism) runs its region serially instead of
    /// waiting.
    caller: Mutex<()>,
}

impl SpinPool {
    /// A pool where the caller and `threads - 1` workers share each region.
    pub(super) fn new(threads: usize) -> std::io::Result<SpinPool> {
        let shared = Arc::new(Shared {
            word: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            shutdown: AtomicBool::new(false),
        });
        let mut pool = SpinPool {
            shared,
            workers: Vec::new(),
            caller: Mutex::new(()),
        };
        for i in 1..threads.max(1) {
            let sh = pool.shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("bitnet-kernels-{i}"))
                .spawn(move || worker_loop(&sh))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    pub(super) fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `body(c)` for every `c` in `0..n_chunks` (at most [`MAX_CHUNKS`]), spread over
    /// the caller and the workers; returns when all have finished.
    pub(super) fn run(&self, n_chunks: usize, body: &(dyn Fn(usize) + Sync)) {
        assert!(n_chunks <= MAX_CHUNKS, "too many chunks for one region");
        let serial = || (0..n_chunks).for_each(body);
        if n_chunks <= 1 || self.workers.is_empty() {
            return serial();
        }
        // A poisoned lock only means an earlier region's chunk panicked; that was reported.
        let _region = match self.caller.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return serial(),
        };
        let sh = &*self.shared;
        let job = JobRef {
            // SAFETY: only the lifetime is erased; `job` outlives every use (see `JobRef`).
            body: unsafe {
                std::mem::transmute::<
                    *const (dyn Fn(usize) + Sync + '_),
                    *const (dyn Fn(usize) + Sync),
                >(body)
            },
        };
        sh.done.store(0, Ordering::Relaxed);
        sh.job
            .store(&job as *const JobRef as *mut JobRef, Ordering::Release);
        let e = epoch(sh.word.load(Ordering::Relaxed)).wrapping_add(1);
        sh.word.store(
            ((e as u64) << 32) | ((n_chunks as u64) << 16),
            Ordering::SeqCst,
        );
        if sh.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = sh.lock.lock().unwrap_or_else(|p| p.into_inner());
            sh.wake.notify_all();
        }
        claim_and_run(sh, e);
        // Wait for chunks the workers are still running; yield soon, because on a busy
        // machine the worker we wait for may need this core.
        let waiting = crate::profile::enabled().then(std::time::Instant::now);
        let mut spins = 0u32;
        while sh.done.load(Ordering::Acquire) < n_chunks {
            spins += 1;
            if spins < 4096 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        crate::profile::add_wait(waiting);
        if sh.panicked.swap(false, Ordering::Relaxed) {
            panic!("a kernel task panicked on a pool thread");
        }
    }
}

impl Drop for SpinPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _g = self.shared.lock.lock().unwrap_or_else(|p| p.into_inner());
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Claims chunks of epoch `e` until none is left (or a newer epoch began), running each.
fn claim_and_run(sh: &Shared, e: u32) {
    loop {
        let w = sh.word.load(Ordering::Acquire);
        if epoch(w) != e || next(w) >= count(w) {
            return;
        }
        if sh
            .word
            .compare_exchange_weak(w, w + 1, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        let job = sh.job.load(Ordering::Acquire);
        // SAFETY: the claim succeeded while epoch `e` was current, so its job is still alive:
        // the caller waits for this chunk's `done` before it returns.
        let r = catch_unwind(AssertUnwindSafe(|| unsafe { (*(*job).body)(next(w)) }));
        if r.is_err() {
            sh.panicked.store(true, Ordering::Relaxed);
        }
        sh.done.fetch_add(1, Ordering::AcqRel);
    }
}

fn worker_loop(sh: &Shared) {
    let mut seen = epoch(sh.word.load(Ordering::Acquire));
    loop {
        let idle_since = Instant::now();
        let mut spins = 0u32;
        loop {
            let e = epoch(sh.word.load(Ordering::Acquire));
            if e != seen {
                seen = e;
                break;
            }
            if sh.shutdown.load(Ordering::Relaxed) {
                return;
            }
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(256) {
                std::hint::spin_loop();
                continue;
            }
            let idle = idle_since.elapsed();
            if idle < SPIN {
                std::hint::spin_loop();
            } else if idle < YIELD {
                std::thread::yield_now();
            } else {
                park(sh, seen);
            }
        }
        claim_and_run(sh, seen);
    }
}

fn park(sh: &Shared, seen: u32) {
    let mut g = sh.lock.lock().unwrap_or_else(|p| p.into_inner());
    sh.sleepers.fetch_add(1, Ordering::SeqCst);
    while epoch(sh.word.load(Ordering::SeqCst)) == seen && !sh.shutdown.load(Ordering::SeqCst) {
        g = sh.wake.wait(g).unwrap_or_else(|p| p.into_inner());
    }
    sh.sleepers.fetch_sub(1, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_chunk_runs_exactly_once() {
        let pool = SpinPool::new(3).unwrap();
        for n in [0usize, 1, 2, 3, 7, 64, 1000] {
            let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
            for _ in 0..50 {
                pool.run(n, &|c| {
                    hits[c].fetch_add(1, Ordering::Relaxed);
                });
            }
            assert!(
                hits.iter().all(|h| h.load(Ordering::Relaxed) == 50),
                "n = {n}"
            );
        }
    }

    #[test]
    fn workers_take_part_and_wake_after_parking() {
        let pool = SpinPool::new(2).unwrap();
        // Let the worker park, then check a region still completes and uses both threads.
        std::thread::sleep(YIELD * 3);
        let me = std::thread::current().id();
        let other = AtomicU32::new(0);
        for _ in 0..200 {
            pool.run(64, &|_| {
                if std::thread::current().id() != me {
                    other.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_micros(20));
            });
        }
        assert!(
            other.load(Ordering::Relaxed) > 0,
            "the worker never ran a chunk"
        );
    }

    #[test]
    fn nested_and_concurrent_regions_run_serially_and_completely() {
        let pool = Arc::new(SpinPool::new(2).unwrap());
        let total = AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..20 {
                        pool.run(8, &|_| {
                            pool.run(4, &|_| {
                                total.fetch_add(1, Ordering::Relaxed);
                            });
                        });
                    }
                });
            }
        });
        assert_eq!(total.load(Ordering::Relaxed), 3 * 20 * 8 * 4);
    }

    #[test]
    fn a_panicking_chunk_is_reported_to_the_caller() {
        let pool = SpinPool::new(2).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            pool.run(16, &|c| {
                if c == 11 {
                    panic!("boom");
                }
            })
        }));
        assert!(r.is_err());
        // The pool still works afterwards.
        let n = AtomicU32::new(0);
        pool.run(16, &|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 16);
    }
}
