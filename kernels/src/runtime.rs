//! The kernel runtime: the table of kernels a caller's matmuls run and the pool they split
//! over, as one value passed to every entry point. Nothing here is process-wide, so two
//! models in one process can run different paths and thread counts side by side.

use std::fmt;
use std::sync::Arc;

use crate::dispatch::{detect, table_for, KernelPath, Kernels};
use crate::error::KernelError;
use crate::pool::{Pool, PoolKind};

/// How to build a [`Runtime`]; every `None` takes the default, which the environment
/// overrides (`BITNET_FORCE_SCALAR`, `BITNET_DISABLE_*`, `BITNET_POOL`) feed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Threads of the pool; one per physical core when `None` or 0.
    pub threads: Option<usize>,
    /// The kernel path; the best one this CPU supports when `None` ([`detect`]).
    pub path: Option<KernelPath>,
    /// The pool kind; `BITNET_POOL`, else the spin pool, when `None`.
    pub pool_kind: Option<PoolKind>,
}

/// The kernels and the thread pool every kernel entry point takes.
pub struct Runtime {
    kernels: &'static Kernels,
    pool: Arc<Pool>,
}

impl Runtime {
    /// Builds a runtime with its own pool. Fails when the CPU cannot run the path asked
    /// for or the pool's threads cannot be started.
    pub fn new(opts: RuntimeOptions) -> Result<Runtime, KernelError> {
        let path = opts.path.unwrap_or_else(detect);
        if !path.is_supported() {
            return Err(KernelError::Unsupported {
                what: format!("kernel path {} (this CPU lacks its features)", path.name()),
            });
        }
        let kind = opts.pool_kind.unwrap_or_else(PoolKind::from_env);
        let threads = opts.threads.unwrap_or(0);
        let pool = Pool::new(threads, kind).map_err(|e| KernelError::Unsupported {
            what: format!("a {} pool of {threads} threads ({e})", kind.name()),
        })?;
        Ok(Runtime::from_parts(table_for(path), Arc::new(pool)))
    }

    /// The default runtime: the best path this CPU supports and one thread per physical
    /// core, under the environment overrides. A spin pool that cannot start its threads
    /// falls back to running on the caller alone, which starts none.
    pub fn detect() -> Runtime {
        Runtime::new(RuntimeOptions::default()).unwrap_or_else(|_| {
            let pool = Pool::new(1, PoolKind::Spin).expect("a one-thread pool starts no thread");
            Runtime::from_parts(table_for(detect()), Arc::new(pool))
        })
    }

    /// A runtime on a given table (one of [`crate::dispatch::tables_under_test`], say) and
    /// a pool that may be shared with other runtimes.
    pub fn from_parts(kernels: &'static Kernels, pool: Arc<Pool>) -> Runtime {
        Runtime { kernels, pool }
    }

    /// The same pool on another table: the runtime a test uses per path.
    pub fn with_kernels(&self, kernels: &'static Kernels) -> Runtime {
        Runtime::from_parts(kernels, self.pool.clone())
    }

    #[inline]
    pub fn kernels(&self) -> &'static Kernels {
        self.kernels
    }

    pub fn path(&self) -> KernelPath {
        self.kernels.path
    }

    #[inline]
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    pub fn pool_kind(&self) -> PoolKind {
        self.pool.kind()
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("path", &self.path().name())
            .field("threads", &self.threads())
            .field("pool", &self.pool_kind().name())
            .finish()
    }
}
