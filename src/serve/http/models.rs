//! Loaded models: resolved by name, loaded lazily (one load at a time), shared by path, and
//! unloaded when their `keep_alive` runs out and nothing is running on them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use super::metrics::Metrics;
use super::reply::ApiError;
use super::scheduler::WorkerHandle;
use super::{AppState, Loader};
use crate::serve::options::KeepAlive;
use crate::serve::store::Entry;

/// A request's model: its display name, its GGUF, and the store entry when it has one.
#[derive(Clone, Debug)]
pub struct ResolvedModel {
    pub name: String,
    /// The full name (`model:tag`) listed by `/api/ps`.
    pub canonical: String,
    pub path: PathBuf,
    pub digest: String,
    pub entry: Option<Entry>,
}

impl ResolvedModel {
    pub fn file(name: &str, path: &Path) -> ResolvedModel {
        ResolvedModel {
            name: name.to_string(),
            canonical: name.to_string(),
            path: path.to_path_buf(),
            digest: String::new(),
            entry: None,
        }
    }
}

pub struct Loaded {
    pub handle: WorkerHandle,
    pub path: PathBuf,
    pub name: String,
    pub digest: String,
    pub entry: Option<Entry>,
    /// `None` = forever.
    pub expires: Option<SystemTime>,
    pub expires_at: Option<Instant>,
    pub last_used: Instant,
}

pub struct Models {
    loader: Loader,
    metrics: Arc<Metrics>,
    pub loaded: Mutex<Vec<Loaded>>,
    load_lock: tokio::sync::Mutex<()>,
}

fn expiry(ka: KeepAlive) -> (Option<SystemTime>, Option<Instant>) {
    match ka {
        KeepAlive::Forever => (None, None),
        KeepAlive::For(d) => (Some(SystemTime::now() + d), Some(Instant::now() + d)),
    }
}

impl Models {
    pub fn new(loader: Loader, metrics: Arc<Metrics>) -> Models {
        Models {
            loader,
            metrics,
            loaded: Mutex::new(Vec::new()),
            load_lock: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Loaded>> {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The scheduler for a model, loading it if needed. Returns the load time in ns (0 if it was
    /// already loaded).
    pub async fn acquire(
        &self,
        state: &AppState,
        model: &ResolvedModel,
        keep_alive: Option<KeepAlive>,
    ) -> Result<(WorkerHandle, u64), ApiError> {
        let ka = keep_alive.unwrap_or(state.config.keep_alive);
        if let Some(h) = self.touch(model, ka) {
            return Ok((h, 0));
        }
        let _guard = self.load_lock.lock().await;
        if let Some(h) = self.touch(model, ka) {
            return Ok((h, 0));
        }
        self.make_room(state.config.max_loaded.max(1)).await;
        let t0 = Instant::now();
        let loader = self.loader.clone();
        let path = model.path.clone();
        let settings = state.config.load.clone();
        let metrics = self.metrics.clone();
        let handle = tokio::task::spawn_blocking(move || loader(&path, &settings, metrics))
            .await
            .map_err(|_| ApiError::internal("model loading crashed"))?
            .map_err(|e| {
                ApiError::internal(format!("failed to load model '{}': {e:#}", model.name))
            })?;
        let load_ns = t0.elapsed().as_nanos() as u64;
        let (expires, expires_at) = expiry(ka);
        let mut l = self.lock();
        l.push(Loaded {
            handle: handle.clone(),
            path: model.path.clone(),
            name: model.canonical.clone(),
            digest: model.digest.clone(),
            entry: model.entry.clone(),
            expires,
            expires_at,
            last_used: Instant::now(),
        });
        self.metrics
            .models_loaded
            .store(l.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok((handle, load_ns))
    }

    /// Evicts the least recently used idle models until one more fits under `max_loaded`. When
    /// every loaded model is busy, waits for one to go idle: loading beside it would exceed the
    /// limit (the caller holds the load lock, so no other load can slip in meanwhile).
    async fn make_room(&self, max_loaded: usize) {
        loop {
            {
                let mut l = self.lock();
                while l.len() >= max_loaded {
                    let idle = l
                        .iter()
                        .enumerate()
                        .filter(|(_, m)| m.handle.in_flight() == 0)
                        .min_by_key(|(_, m)| m.last_used)
                        .map(|(i, _)| i);
                    match idle {
                        Some(i) => drop(l.remove(i)),
                        None => break,
                    }
                }
                self.metrics
                    .models_loaded
                    .store(l.len() as u64, std::sync::atomic::Ordering::Relaxed);
                if l.len() < max_loaded {
                    return;
                }
            }
            // The scheduler threads count their requests down without telling us; a short
            // poll is simpler than a notification from every one of them.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    fn touch(&self, model: &ResolvedModel, ka: KeepAlive) -> Option<WorkerHandle> {
        let mut l = self.lock();
        let m = l.iter_mut().find(|m| m.path == model.path)?;
        (m.expires, m.expires_at) = expiry(ka);
        m.last_used = Instant::now();
        m.name = model.canonical.clone();
        if !model.digest.is_empty() {
            m.digest = model.digest.clone();
            m.entry = model.entry.clone();
        }
        Some(m.handle.clone())
    }

    /// Restarts the keep-alive clock of a model after a request finished.
    pub fn release(&self, path: &Path, ka: KeepAlive) {
        let mut l = self.lock();
        if let Some(m) = l.iter_mut().find(|m| m.path == path) {
            (m.expires, m.expires_at) = expiry(ka);
            m.last_used = Instant::now();
        }
    }

    /// Unloads at once (running requests still finish: they hold their own handle).
    pub fn unload(&self, path: &Path) -> bool {
        let mut l = self.lock();
        let before = l.len();
        l.retain(|m| m.path != path);
        self.metrics
            .models_loaded
            .store(l.len() as u64, std::sync::atomic::Ordering::Relaxed);
        l.len() != before
    }

    pub fn is_loaded(&self, path: &Path) -> bool {
        self.lock().iter().any(|m| m.path == path)
    }

    /// Drops idle models whose keep-alive has run out.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut l = self.lock();
        l.retain(|m| m.handle.in_flight() > 0 || m.expires_at.is_none_or(|t| t > now));
        self.metrics
            .models_loaded
            .store(l.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }
}
