//! Read-only reuse of the Hugging Face cache (`$HF_HOME/hub`): a repository's files live in
//! `models--ORG--REPO/blobs/<etag>` (sha256 for LFS files, git SHA-1 for small ones), with
//! `snapshots/<commit>/<file>` links to them and `refs/<branch>` naming the commit. A blob is
//! found by the digest the Hub announces, so a stale snapshot can never be picked up; the
//! caller still hashes it before use. Nothing is ever written there.

use std::path::{Path, PathBuf};

use super::FileMeta;

/// `ORG/REPO` → `models--ORG--REPO`, as `huggingface_hub` names a model repository's folder.
pub fn repo_folder(repo: &str) -> String {
    format!("models--{}", repo.replace('/', "--"))
}

/// The cached blob with the digest and size the Hub announces, if there is one.
pub fn cached_blob(cache: &Path, repo: &str, meta: &FileMeta) -> Option<PathBuf> {
    let p = cache.join(repo_folder(repo)).join("blobs").join(&meta.etag);
    let m = std::fs::metadata(&p).ok()?;
    (m.is_file() && m.len() == meta.size).then_some(p)
}

#[cfg(test)]
mod tests {
    #[test]
    fn folder_name() {
        assert_eq!(
            super::repo_folder("microsoft/bitnet-b1.58-2B-4T"),
            "models--microsoft--bitnet-b1.58-2B-4T"
        );
    }
}
