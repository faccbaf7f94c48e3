//! Resumable, verified transfers: the bytes go to a partial file; an interrupted transfer
//! continues with `Range` from the partial file's length (in the same pull, a few times, and
//! in the next pull); the finished file is checked against the Hub's digest before the caller
//! may move it anywhere.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::{FileMeta, Hub};

/// Attempts per file within one pull; each continues where the previous stopped.
const ATTEMPTS: usize = 5;

/// Hashes a file: its sha256 hex, and, for a non-LFS file, whether its git blob SHA-1
/// (`sha1("blob {len}\0" + bytes)`, what the Hub's ETag is) matches. Returns the sha256 or an
/// error naming the expected and actual digests.
pub fn verify(path: &Path, meta: &FileMeta) -> anyhow::Result<String> {
    let len = fs::metadata(path)?.len();
    let mut sha256 = Sha256::new();
    let mut git = Sha1::new();
    git.update(format!("blob {len}\0").as_bytes());
    let mut f = fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        sha256.update(&buf[..k]);
        if !meta.is_lfs() {
            git.update(&buf[..k]);
        }
    }
    let sha256 = crate::serve::store::manifest::hex(&sha256.finalize());
    let (kind, actual) = if meta.is_lfs() {
        ("sha256", sha256.clone())
    } else {
        (
            "git blob SHA-1",
            crate::serve::store::manifest::hex(&git.finalize()),
        )
    };
    if actual != meta.etag {
        anyhow::bail!(
            "{}: digest mismatch: expected {kind} {}, got {actual}",
            meta.file,
            meta.etag
        );
    }
    Ok(sha256)
}

/// Why an attempt ended early: the Hub's answer (final) or the connection (worth resuming).
enum Failure {
    Refused(anyhow::Error),
    Transport(anyhow::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Transport(e.into())
    }
}

/// One attempt: appends from `have` on. Returns the bytes now in the file.
fn attempt(
    hub: &Hub,
    repo: &str,
    meta: &FileMeta,
    partial: &Path,
    have: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, Failure> {
    let r = hub
        .get_from(&meta.location, have)
        .map_err(Failure::Transport)?;
    let status = r.status().as_u16();
    let (mut f, mut done) = match status {
        206 => (OpenOptions::new().append(true).open(partial)?, have),
        // The server ignored the range (or there was none): start over.
        200 => (fs::File::create(partial)?, 0),
        416 if have == meta.size => return Ok(have),
        416 => (fs::File::create(partial)?, 0),
        s => {
            let what = format!("{repo}/{}", meta.file);
            return Err(Failure::Refused(hub.status_error(s, repo, &what)));
        }
    };
    progress(done);
    let mut body = r.into_body().into_reader();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        // Never write past the size the Hub announced.
        let room = meta.size.saturating_sub(done).min(buf.len() as u64) as usize;
        if room == 0 {
            break;
        }
        let k = match body.read(&mut buf[..room]) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                f.flush()?;
                return Err(e.into());
            }
        };
        f.write_all(&buf[..k])?;
        done += k as u64;
        progress(done);
    }
    f.sync_all()?;
    Ok(done)
}

/// Downloads `meta` into `partial` (continuing whatever it holds), then verifies it; a
/// mismatch deletes the partial file. `progress(completed)` follows the bytes on disk.
pub fn fetch(
    hub: &Hub,
    repo: &str,
    meta: &FileMeta,
    partial: &Path,
    progress: &mut dyn FnMut(u64),
) -> anyhow::Result<String> {
    if let Some(dir) = partial.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut last_err = None;
    for _ in 0..ATTEMPTS {
        let have = match fs::metadata(partial) {
            Ok(m) if m.len() <= meta.size => m.len(),
            Ok(_) => {
                fs::remove_file(partial)?;
                0
            }
            Err(_) => {
                fs::File::create(partial)?;
                0
            }
        };
        if have == meta.size {
            last_err = None;
            break;
        }
        match attempt(hub, repo, meta, partial, have, progress) {
            Ok(n) if n == meta.size => {
                last_err = None;
                break;
            }
            Ok(n) => {
                last_err = Some(anyhow::anyhow!(
                    "{repo}/{}: the transfer stopped at {n} of {} bytes",
                    meta.file,
                    meta.size
                ))
            }
            // Refusals (401, 404 …) do not get better by retrying.
            Err(Failure::Refused(e)) => return Err(e),
            Err(Failure::Transport(e)) => last_err = Some(e),
        }
    }
    if let Some(e) = last_err {
        return Err(e.context(format!(
            "{repo}/{}: download interrupted; the partial file is kept and the next pull resumes it",
            meta.file
        )));
    }
    match verify(partial, meta) {
        Ok(sha) => Ok(sha),
        Err(e) => {
            let _ = fs::remove_file(partial);
            Err(e)
        }
    }
}
