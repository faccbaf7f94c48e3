//! Concurrency control between the store's writers (`create`, `cp`, blob uploads, later `pull`)
//! and its garbage collector (`rm`), across processes, through advisory file locks.
//!
//! A writer holds a [`Lease`]: a file `leases/<id>` it keeps locked for its whole life and in
//! which it records, one per line, every blob digest it writes or will reference
//! ([`Lease::protect`]), before writing it. The collector holds `locks/gc` exclusively while it
//! decides: it keeps every blob a manifest references, every blob a live lease records, and
//! every uploaded blob not yet used by a `create` for [`UPLOAD_GRACE`]. `protect` appends under
//! `locks/gc` held shared, so a digest is either seen by a running collection or recorded
//! after it ended (then the writer finds the blob gone and writes it again). A lease whose
//! file is no longer locked belongs to a dead process: the collector removes it.
//!
//! Every file the store writes is first a temporary file `tmp/<lease id>.<n>`, renamed into
//! place after an fsync (and the directory is synced after the rename). The temporary files
//! of dead leases are swept when the store is opened; `partial/` (resumable downloads) is not.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use anyhow::Context;

use super::manifest::{self, Manifest};
use super::Store;

/// The store layout this binary reads and writes, recorded in `store-version`.
pub const STORE_VERSION: u32 = 1;
const VERSION_FILE: &str = "store-version";
/// How long an uploaded blob that no manifest uses yet survives collection (Ollama's clients
/// upload with one request and `create` with the next).
pub const UPLOAD_GRACE: Duration = Duration::from_secs(3600);

/// A writer's claim on blobs; see the module documentation. Dropping it ends the claim.
pub struct Lease {
    root: PathBuf,
    id: String,
    path: PathBuf,
    file: Mutex<File>,
    protected: Mutex<HashSet<String>>,
    temps: AtomicU64,
}

/// `sha256:<hex>` or `sha256-<hex>` → the blob's file name, `sha256-<hex>`.
fn blob_name(digest: &str) -> io::Result<String> {
    manifest::digest_hex(digest)
        .map(|h| format!("sha256-{h}"))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad digest '{digest}'"),
            )
        })
}

fn lock_file(root: &Path) -> io::Result<File> {
    fs::create_dir_all(root.join("locks"))?;
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(root.join("locks").join("gc"))
}

/// Syncs a directory so that a rename into it survives a crash (a no-op where directories
/// cannot be opened as files).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Renames a finished temporary file into place and makes the rename durable.
pub fn commit_temp(tmp: &Path, dst: &Path) -> io::Result<()> {
    let dir = dst
        .parent()
        .ok_or_else(|| io::Error::other("no parent directory"))?;
    fs::create_dir_all(dir)?;
    fs::rename(tmp, dst)?;
    sync_dir(dir)
}

/// True when another open file description holds `path`'s lock (its owner is alive).
fn is_locked(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    matches!(f.try_lock(), Err(TryLockError::WouldBlock))
}

impl Lease {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Records `digest` as in use by this lease, before the caller writes or references it.
    /// After this returns, collection keeps the blob until the lease is dropped; the caller
    /// must still check that the blob exists (a collection may have removed it just before).
    pub fn protect(&self, digest: &str) -> io::Result<()> {
        let name = blob_name(digest)?;
        let mut set = self.protected.lock().unwrap_or_else(|p| p.into_inner());
        if set.contains(&name) {
            return Ok(());
        }
        let gc = lock_file(&self.root)?;
        gc.lock_shared()?;
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let r = writeln!(f, "{name}").and_then(|_| f.sync_data());
        drop(f);
        gc.unlock()?;
        r?;
        set.insert(name);
        Ok(())
    }

    /// A new temporary file in the store's `tmp/`, swept if this process dies.
    pub fn temp_file(&self) -> io::Result<(PathBuf, File)> {
        let dir = self.root.join("tmp");
        fs::create_dir_all(&dir)?;
        let n = self.temps.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{}.{n}", self.id));
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok((path, f))
    }

    /// Writes `bytes` to `dst` atomically: temporary file, fsync, rename, fsync of the directory.
    pub fn write_file(&self, dst: &Path, bytes: &[u8]) -> io::Result<()> {
        let (tmp, mut f) = self.temp_file()?;
        let r = f
            .write_all(bytes)
            .and_then(|_| f.sync_all())
            .and_then(|_| commit_temp(&tmp, dst));
        if r.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        r
    }

    /// Protects and, unless present, writes a blob; returns its digest `sha256:<hex>` and
    /// whether it was new.
    pub fn write_blob(&self, bytes: &[u8]) -> io::Result<(String, bool)> {
        let digest = format!("sha256:{}", manifest::sha256_hex(bytes));
        self.protect(&digest)?;
        let path = manifest::blob_path(&self.root, &digest)
            .ok_or_else(|| io::Error::other("bad digest"))?;
        if path.is_file() {
            return Ok((digest, false));
        }
        self.write_file(&path, bytes)?;
        Ok((digest, true))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        let f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let _ = f.unlock();
    }
}

impl Store {
    /// Checks the store's format version and sweeps the temporary files of dead writers.
    /// Reading a store that does not exist yet is fine (it is empty).
    pub fn prepare(&self) -> anyhow::Result<()> {
        let vf = self.root.join(VERSION_FILE);
        if let Ok(text) = fs::read_to_string(&vf) {
            let v: u32 = text.trim().parse().with_context(|| {
                format!(
                    "{}: not a store format version: {:?}",
                    vf.display(),
                    text.trim()
                )
            })?;
            if v > STORE_VERSION {
                anyhow::bail!(
                    "{}: the model store has format version {v}, newer than this binary's {STORE_VERSION}; \
                     use a newer bitnet-gguf (or another $BITNET_MODELS)",
                    vf.display()
                );
            }
        }
        self.sweep_temps();
        Ok(())
    }

    /// Starts a write: checks the format version (recording it in a new store) and returns
    /// a lease whose protections last until it is dropped.
    pub fn lease(&self) -> anyhow::Result<Lease> {
        self.prepare()?;
        let vf = self.root.join(VERSION_FILE);
        fs::create_dir_all(&self.root)
            .with_context(|| format!("creating {}", self.root.display()))?;
        if !vf.exists() {
            let _ = fs::write(&vf, format!("{STORE_VERSION}\n"));
        }
        let dir = self.root.join("leases");
        fs::create_dir_all(&dir)?;
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let id = format!(
            "{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        // Locked under a hidden name, then renamed: a collector never sees it unlocked.
        let hidden = dir.join(format!(".{id}"));
        let file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&hidden)?;
        file.lock()?;
        let path = dir.join(&id);
        fs::rename(&hidden, &path)?;
        Ok(Lease {
            root: self.root.clone(),
            id,
            path,
            file: Mutex::new(file),
            protected: Mutex::new(HashSet::new()),
            temps: AtomicU64::new(0),
        })
    }

    /// Removes temporary files whose lease is not alive (the writer died), and the temporary
    /// files an older binary left beside blobs. `partial/` is never touched.
    fn sweep_temps(&self) {
        let leases = self.root.join("leases");
        if let Ok(rd) = fs::read_dir(self.root.join("tmp")) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let id = name.split('.').next().unwrap_or_default();
                if id.is_empty() || !is_locked(&leases.join(id)) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        if let Ok(rd) = fs::read_dir(self.root.join("blobs")) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = legacy_temp_pid(&name) {
                    if !process_alive(pid) {
                        let _ = fs::remove_file(e.path());
                    }
                }
            }
        }
    }

    /// Deletes every blob that no manifest references, no live lease protects and no recent
    /// upload awaits; returns how many. `only` narrows it to the given blob names.
    pub fn collect_garbage(&self, only: Option<&HashSet<String>>) -> anyhow::Result<usize> {
        let gc = lock_file(&self.root)?;
        gc.lock()?;
        let mut keep = HashSet::new();
        for (_, path) in super::manifest_files(&self.root) {
            let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            // An unreadable manifest means its blobs are unknown: collect nothing.
            let m: Manifest = serde_json::from_slice(&bytes)
                .with_context(|| format!("{}: bad manifest; blobs kept", path.display()))?;
            for l in std::iter::once(&m.config).chain(&m.layers) {
                keep.insert(l.digest.replacen(':', "-", 1));
            }
        }
        self.live_lease_digests(&mut keep);
        self.recent_uploads(&mut keep);
        let mut removed = 0;
        if let Ok(rd) = fs::read_dir(self.root.join("blobs")) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                let wanted = only.is_none_or(|set| set.contains(&n));
                if n.starts_with("sha256-")
                    && wanted
                    && !keep.contains(&n)
                    && fs::remove_file(e.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
        gc.unlock()?;
        Ok(removed)
    }

    /// Adds what live leases protect; removes the files of dead ones. Runs under `locks/gc`.
    fn live_lease_digests(&self, keep: &mut HashSet<String>) {
        let Ok(rd) = fs::read_dir(self.root.join("leases")) else {
            return;
        };
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(mut f) = File::open(e.path()) else {
                continue;
            };
            match f.try_lock_shared() {
                Err(TryLockError::WouldBlock) => {
                    let mut text = String::new();
                    let _ = f.read_to_string(&mut text);
                    keep.extend(text.lines().map(str::to_string));
                }
                _ => {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }

    /// Records that an uploaded blob awaits the `create` that will use it.
    pub fn note_upload(&self, lease: &Lease, digest: &str) -> io::Result<()> {
        let name = blob_name(digest)?;
        lease.write_file(&self.root.join("uploads").join(name), b"")
    }

    /// The upload is used (or abandoned): collection may treat the blob like any other.
    pub fn forget_upload(&self, digest: &str) {
        if let Ok(name) = blob_name(digest) {
            let _ = fs::remove_file(self.root.join("uploads").join(name));
        }
    }

    fn recent_uploads(&self, keep: &mut HashSet<String>) {
        let Ok(rd) = fs::read_dir(self.root.join("uploads")) else {
            return;
        };
        for e in rd.flatten() {
            let age = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .unwrap_or_default();
            if age < UPLOAD_GRACE {
                keep.insert(e.file_name().to_string_lossy().into_owned());
            } else {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// `.sha256-<hex>.tmp-<pid>-<n>`, the temporary name older binaries used inside `blobs/`.
fn legacy_temp_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(".sha256-")?;
    let (_, tail) = rest.split_once(".tmp-")?;
    tail.split('-').next()?.parse().ok()
}

fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        // No portable check without a dependency: keep the file.
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob_count(root: &Path) -> usize {
        fs::read_dir(root.join("blobs")).map_or(0, |d| d.count())
    }

    #[test]
    fn a_live_lease_keeps_its_blobs_through_collection() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_path_buf(), None);
        let lease = store.lease().unwrap();
        let (digest, new) = lease.write_blob(b"layer").unwrap();
        assert!(new);
        assert_eq!(store.collect_garbage(None).unwrap(), 0);
        assert_eq!(blob_count(dir.path()), 1);
        let (_, again) = lease.write_blob(b"layer").unwrap();
        assert!(!again);
        drop(lease);
        assert!(fs::read_dir(dir.path().join("leases"))
            .unwrap()
            .next()
            .is_none());
        assert_eq!(store.collect_garbage(None).unwrap(), 1);
        assert!(!manifest::blob_path(dir.path(), &digest).unwrap().exists());
    }

    #[test]
    fn temps_of_live_leases_survive_a_sweep_and_dead_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_path_buf(), None);
        let lease = store.lease().unwrap();
        let (live, _) = lease.temp_file().unwrap();
        let dead = dir.path().join("tmp").join("12-34-5.0");
        fs::write(&dead, "x").unwrap();
        fs::create_dir_all(dir.path().join("partial")).unwrap();
        fs::write(dir.path().join("partial").join("sha256-00.part"), "x").unwrap();
        store.prepare().unwrap();
        assert!(live.exists());
        assert!(!dead.exists());
        assert!(dir.path().join("partial").join("sha256-00.part").exists());
        drop(lease);
        store.prepare().unwrap();
        assert!(!live.exists());
    }

    #[test]
    fn a_recent_upload_waits_for_its_create() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().to_path_buf(), None);
        let lease = store.lease().unwrap();
        let (digest, _) = lease.write_blob(b"uploaded").unwrap();
        store.note_upload(&lease, &digest).unwrap();
        drop(lease);
        assert_eq!(store.collect_garbage(None).unwrap(), 0);
        store.forget_upload(&digest);
        assert_eq!(store.collect_garbage(None).unwrap(), 1);
    }
}
