//! Large blobs into the store: a file imported by `create`, and a body streamed by
//! `POST /api/blobs/:digest`. Both are hashed as they are written to a temporary file under a
//! lease, and renamed to `blobs/sha256-<hex>` only when complete (and, for uploads, verified).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::lease::{commit_temp, Lease};
use super::manifest;

/// Copies `src` into the store under its digest; returns `(hex digest, size, blob path)`.
/// A copy, not a link: editing the source later must not change a content-addressed blob.
pub fn import_file(lease: &Lease, root: &Path, src: &Path) -> io::Result<(String, u64, PathBuf)> {
    let mut input = File::open(src)?;
    let (tmp, mut out) = lease.temp_file()?;
    let copied = (|| {
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let k = input.read(&mut buf)?;
            if k == 0 {
                break;
            }
            h.update(&buf[..k]);
            out.write_all(&buf[..k])?;
            if n == 0 {
                bitnet_formats::failpoint::pause("blob-copy-mid");
            }
            n += k as u64;
        }
        out.sync_all()?;
        Ok::<_, io::Error>((manifest::hex(&h.finalize()), n))
    })();
    let result = copied.and_then(|(hex, n)| {
        lease.protect(&format!("sha256:{hex}"))?;
        let dst = root.join("blobs").join(format!("sha256-{hex}"));
        if dst.is_file() {
            fs::remove_file(&tmp)?;
        } else {
            commit_temp(&tmp, &dst)?;
        }
        Ok((hex, n, dst))
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Why an upload was not stored.
#[derive(Debug)]
pub enum UploadError {
    /// The body's sha256 is not the digest in the URL.
    Mismatch {
        expected: String,
        actual: String,
    },
    Io(io::Error),
}

impl std::fmt::Display for UploadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UploadError::Mismatch { expected, actual } => {
                write!(
                    f,
                    "digest mismatch: the body is sha256:{actual}, not {expected}"
                )
            }
            UploadError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for UploadError {
    fn from(e: io::Error) -> Self {
        UploadError::Io(e)
    }
}

/// A blob upload in progress; dropping it unfinished deletes its temporary file.
pub struct BlobUpload {
    lease: Lease,
    dst: PathBuf,
    digest: String,
    tmp: PathBuf,
    file: Option<File>,
    hasher: Sha256,
    written: u64,
}

impl BlobUpload {
    /// Starts an upload of `digest` (`sha256:<hex>`), already validated by the caller.
    pub fn new(lease: Lease, root: &Path, digest: &str) -> io::Result<BlobUpload> {
        let dst = manifest::blob_path(root, digest)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad digest"))?;
        lease.protect(digest)?;
        let (tmp, file) = lease.temp_file()?;
        Ok(BlobUpload {
            lease,
            dst,
            digest: digest.replacen("sha256-", "sha256:", 1),
            tmp,
            file: Some(file),
            hasher: Sha256::new(),
            written: 0,
        })
    }

    pub fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        let f = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("upload finished"))?;
        f.write_all(chunk)?;
        self.hasher.update(chunk);
        if self.written == 0 && !chunk.is_empty() {
            bitnet_formats::failpoint::pause("upload-mid-body");
        }
        self.written += chunk.len() as u64;
        Ok(())
    }

    /// Verifies the digest and moves the blob into place; `Ok(true)` when it is new.
    pub fn finish(mut self, store: &super::Store) -> Result<bool, UploadError> {
        let f = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("upload finished"))?;
        let actual = manifest::hex(&self.hasher.clone().finalize());
        if format!("sha256:{actual}") != self.digest {
            return Err(UploadError::Mismatch {
                expected: self.digest.clone(),
                actual,
            });
        }
        f.sync_all()?;
        drop(f);
        let new = !self.dst.is_file();
        if new {
            commit_temp(&self.tmp, &self.dst)?;
        }
        store.note_upload(&self.lease, &self.digest)?;
        Ok(new)
    }
}

impl Drop for BlobUpload {
    fn drop(&mut self) {
        // After a successful rename the temporary path no longer exists: harmless.
        let _ = fs::remove_file(&self.tmp);
    }
}
