//! Ollama's manifest (Docker distribution v2 shape) and content-addressed blobs.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MANIFEST_MEDIA: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const CONFIG_MEDIA: &str = "application/vnd.docker.container.image.v1+json";
pub const MEDIA_MODEL: &str = "application/vnd.ollama.image.model";
pub const MEDIA_TEMPLATE: &str = "application/vnd.ollama.image.template";
pub const MEDIA_PROMPT: &str = "application/vnd.ollama.image.prompt";
pub const MEDIA_SYSTEM: &str = "application/vnd.ollama.image.system";
pub const MEDIA_PARAMS: &str = "application/vnd.ollama.image.params";
pub const MEDIA_MESSAGES: &str = "application/vnd.ollama.image.messages";
pub const MEDIA_LICENSE: &str = "application/vnd.ollama.image.license";
pub const MEDIA_ADAPTER: &str = "application/vnd.ollama.image.adapter";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Layer {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub config: Layer,
    pub layers: Vec<Layer>,
}

/// The config blob (`ConfigV2`); `/api/tags` details come from here.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ConfigV2 {
    #[serde(default)]
    pub model_format: String,
    #[serde(default)]
    pub model_family: String,
    #[serde(default)]
    pub model_families: Option<Vec<String>>,
    #[serde(default)]
    pub model_type: String,
    #[serde(default)]
    pub file_type: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
}

/// `sha256:<64 hex>` → `<64 hex>`, rejecting anything else (the digest becomes a file name).
pub fn digest_hex(digest: &str) -> Option<&str> {
    let hex = digest
        .strip_prefix("sha256:")
        .or_else(|| digest.strip_prefix("sha256-"))?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then_some(hex)
}

pub fn blob_path(root: &Path, digest: &str) -> Option<PathBuf> {
    digest_hex(digest).map(|hex| root.join("blobs").join(format!("sha256-{hex}")))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex(&h.finalize()), n))
}

fn temp_name(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("no parent directory"))?;
    fs::create_dir_all(dir)?;
    let tmp = temp_name(path);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Stores bytes as a blob; returns its layer (digest + size).
pub fn write_blob(root: &Path, media_type: &str, bytes: &[u8]) -> io::Result<Layer> {
    let digest = format!("sha256:{}", sha256_hex(bytes));
    let path = blob_path(root, &digest).expect("digest is well formed");
    if !path.exists() {
        write_atomic(&path, bytes)?;
    }
    Ok(Layer {
        media_type: media_type.into(),
        digest,
        size: bytes.len() as u64,
        from: None,
    })
}

/// Copies a file into the blob store under its (already computed) digest. A copy, not a link:
/// editing the source later must not change a content-addressed blob.
pub fn import_file_blob(root: &Path, src: &Path, digest_hex_str: &str) -> io::Result<PathBuf> {
    let dst = root.join("blobs").join(format!("sha256-{digest_hex_str}"));
    if dst.exists() {
        return Ok(dst);
    }
    fs::create_dir_all(root.join("blobs"))?;
    let tmp = temp_name(&dst);
    let result = fs::copy(src, &tmp).and_then(|_| fs::rename(&tmp, &dst));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|_| dst)
}

/// Streams an upload into the blob store, checking the digest before it becomes visible.
pub fn write_blob_verified(root: &Path, digest: &str, bytes: &[u8]) -> io::Result<bool> {
    let path = blob_path(root, digest).ok_or_else(|| io::Error::other("bad digest"))?;
    if path.exists() {
        return Ok(false);
    }
    if format!("sha256:{}", sha256_hex(bytes)) != digest.replacen("sha256-", "sha256:", 1) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "digest mismatch",
        ));
    }
    write_atomic(&path, bytes)?;
    Ok(true)
}
