//! The model store, in Ollama's layout (`manifests/<host>/<ns>/<model>/<tag>` + `blobs/sha256-…`)
//! under `$BITNET_MODELS` (default `~/.bitnet/models`), plus read-only access to an existing
//! Ollama store (`--ollama-models` / `OLLAMA_MODELS`) so models imported there run here.

pub mod checkpoint;
pub mod create;
pub mod gguf_info;
pub mod manifest;
pub mod modelfile;
pub mod name;
pub mod params;
pub mod pull;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use create::{Base, CreateSpec};
pub use manifest::{ConfigV2, Layer, Manifest};
pub use name::ModelName;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// One named model with everything its layers say.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: ModelName,
    pub manifest: Manifest,
    pub manifest_path: PathBuf,
    /// Hex sha256 of the manifest file (what `/api/tags` calls the digest).
    pub digest: String,
    /// Sum of the layer sizes.
    pub size: u64,
    pub modified: SystemTime,
    pub model_path: PathBuf,
    pub config: ConfigV2,
    pub template: Option<String>,
    pub system: Option<String>,
    pub params: Map<String, Value>,
    pub messages: Vec<Message>,
    pub license: Vec<String>,
    /// True for models found in Ollama's store, which is never written.
    pub read_only: bool,
}

#[derive(Clone, Debug)]
pub struct Store {
    pub root: PathBuf,
    pub ollama_root: Option<PathBuf>,
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Expands a leading `~/`.
pub fn expand_tilde(p: &str) -> PathBuf {
    if p == "~" {
        home()
    } else if let Some(rest) = p.strip_prefix("~/") {
        home().join(rest)
    } else {
        PathBuf::from(p)
    }
}

impl Store {
    pub fn new(root: PathBuf, ollama_root: Option<PathBuf>) -> Store {
        Store { root, ollama_root }
    }

    /// `$BITNET_MODELS` (default `~/.bitnet/models`); the Ollama store from the argument or
    /// `$OLLAMA_MODELS`.
    pub fn from_env(ollama_models: Option<PathBuf>) -> Store {
        let root = std::env::var("BITNET_MODELS")
            .ok()
            .filter(|s| !s.is_empty())
            .map(|s| expand_tilde(&s))
            .unwrap_or_else(|| home().join(".bitnet").join("models"));
        let ollama = ollama_models.or_else(|| {
            std::env::var("OLLAMA_MODELS")
                .ok()
                .filter(|s| !s.is_empty())
                .map(|s| expand_tilde(&s))
        });
        Store::new(root, ollama)
    }

    fn roots(&self) -> Vec<(&Path, bool)> {
        let mut r = vec![(self.root.as_path(), false)];
        if let Some(o) = &self.ollama_root {
            if o != &self.root {
                r.push((o.as_path(), true));
            }
        }
        r
    }

    /// Finds a model by name: our store first, then Ollama's.
    pub fn open(&self, name: &str) -> anyhow::Result<Option<Entry>> {
        let name = ModelName::parse(name)?;
        for (root, ro) in self.roots() {
            let path = root.join(name.manifest_rel_path());
            if path.is_file() {
                return load_entry(root, &path, name, ro).map(Some);
            }
            // Names are case-insensitive: fall back to a scan of the model's directory.
            if let Some(found) = find_case_insensitive(root, &name) {
                return load_entry(root, &found.1, found.0, ro).map(Some);
            }
        }
        Ok(None)
    }

    /// Every model of both stores (ours first; an Ollama model shadowed by ours is skipped).
    pub fn list(&self) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::new();
        for (root, ro) in self.roots() {
            for (name, path) in manifest_files(root) {
                if out.iter().any(|e| e.name.same_as(&name)) {
                    continue;
                }
                if let Ok(e) = load_entry(root, &path, name, ro) {
                    out.push(e);
                }
            }
        }
        out.sort_by_key(|e| std::cmp::Reverse(e.modified));
        out
    }

    pub fn copy(&self, src: &str, dst: &str) -> anyhow::Result<()> {
        let entry = self
            .open(src)?
            .ok_or_else(|| anyhow::anyhow!("model '{src}' not found"))?;
        let dst_name = ModelName::parse(dst)?;
        if entry.read_only {
            // Bring the blobs over so our manifest never points into Ollama's store.
            let spec = CreateSpec {
                base: Base::Model(src.to_string()),
                ..Default::default()
            };
            return create::create(self, dst, spec, &mut |_| {});
        }
        let bytes = fs::read(&entry.manifest_path)?;
        manifest::write_atomic(&self.root.join(dst_name.manifest_rel_path()), &bytes)?;
        Ok(())
    }

    /// Removes a model of our store and every blob no other manifest references.
    pub fn delete(&self, name: &str) -> anyhow::Result<()> {
        let parsed = ModelName::parse(name)?;
        let path = self.root.join(parsed.manifest_rel_path());
        let path = if path.is_file() {
            path
        } else if let Some((_, p)) = find_case_insensitive(&self.root, &parsed) {
            p
        } else {
            if let Some(e) = self.open(name)? {
                if e.read_only {
                    anyhow::bail!("model '{name}' is in the Ollama store, which is read-only here");
                }
            }
            anyhow::bail!("model '{name}' not found");
        };
        fs::remove_file(&path)?;
        // Prune empty directories up to manifests/.
        let stop = self.root.join("manifests");
        let mut dir = path.parent().map(Path::to_path_buf);
        while let Some(d) = dir {
            if d == stop || !d.starts_with(&stop) || fs::remove_dir(&d).is_err() {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        self.prune_blobs();
        Ok(())
    }

    fn prune_blobs(&self) {
        let mut used = std::collections::HashSet::new();
        for (_, path) in manifest_files(&self.root) {
            let Ok(bytes) = fs::read(&path) else { return };
            let Ok(m) = serde_json::from_slice::<Manifest>(&bytes) else {
                return;
            };
            used.insert(m.config.digest.replacen(':', "-", 1));
            for l in m.layers {
                used.insert(l.digest.replacen(':', "-", 1));
            }
        }
        let Ok(rd) = fs::read_dir(self.root.join("blobs")) else {
            return;
        };
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("sha256-") && !used.contains(&n) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

fn manifest_files(root: &Path) -> Vec<(ModelName, PathBuf)> {
    let mut out = Vec::new();
    let base = root.join("manifests");
    let dirs = |p: &Path| -> Vec<(String, PathBuf)> {
        fs::read_dir(p)
            .map(|rd| {
                rd.flatten()
                    .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                    .filter(|(n, _)| !n.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default()
    };
    for (host, hp) in dirs(&base) {
        for (ns, np) in dirs(&hp) {
            for (model, mp) in dirs(&np) {
                for (tag, tp) in dirs(&mp) {
                    if !tp.is_file() {
                        continue;
                    }
                    let name = ModelName {
                        host: host.clone(),
                        namespace: ns.clone(),
                        model: model.clone(),
                        tag,
                    };
                    // Only names that would parse back (a stray file cannot inject a path).
                    if ModelName::parse(&format!(
                        "{}/{}/{}:{}",
                        name.host, name.namespace, name.model, name.tag
                    ))
                    .is_ok()
                    {
                        out.push((name, tp));
                    }
                }
            }
        }
    }
    out
}

fn find_case_insensitive(root: &Path, name: &ModelName) -> Option<(ModelName, PathBuf)> {
    manifest_files(root)
        .into_iter()
        .find(|(n, _)| n.same_as(name))
}

fn read_text_layer(root: &Path, layer: &Layer) -> anyhow::Result<String> {
    let p = manifest::blob_path(root, &layer.digest)
        .ok_or_else(|| anyhow::anyhow!("bad layer digest {}", layer.digest))?;
    fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
}

fn load_entry(root: &Path, path: &Path, name: ModelName, read_only: bool) -> anyhow::Result<Entry> {
    let bytes = fs::read(path).with_context(|| format!("reading manifest {}", path.display()))?;
    let m: Manifest = serde_json::from_slice(&bytes)
        .with_context(|| format!("bad manifest {}", path.display()))?;
    let modified = fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let config: ConfigV2 = manifest::blob_path(root, &m.config.digest)
        .and_then(|p| fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut e = Entry {
        name,
        digest: manifest::sha256_hex(&bytes),
        size: m.config.size + m.layers.iter().map(|l| l.size).sum::<u64>(),
        modified,
        model_path: PathBuf::new(),
        config,
        template: None,
        system: None,
        params: Map::new(),
        messages: vec![],
        license: vec![],
        read_only,
        manifest_path: path.to_path_buf(),
        manifest: m.clone(),
    };
    for layer in &m.layers {
        match layer.media_type.as_str() {
            manifest::MEDIA_MODEL => {
                e.model_path = manifest::blob_path(root, &layer.digest)
                    .ok_or_else(|| anyhow::anyhow!("bad model digest {}", layer.digest))?;
            }
            manifest::MEDIA_TEMPLATE | manifest::MEDIA_PROMPT => {
                e.template = Some(read_text_layer(root, layer)?)
            }
            manifest::MEDIA_SYSTEM => e.system = Some(read_text_layer(root, layer)?),
            manifest::MEDIA_LICENSE => e.license.push(read_text_layer(root, layer)?),
            manifest::MEDIA_PARAMS => {
                e.params = serde_json::from_str(&read_text_layer(root, layer)?)
                    .context("bad params layer")?
            }
            manifest::MEDIA_MESSAGES => {
                e.messages = serde_json::from_str(&read_text_layer(root, layer)?)
                    .context("bad messages layer")?
            }
            _ => {}
        }
    }
    if e.model_path.as_os_str().is_empty() {
        anyhow::bail!("model '{}' has no model layer", e.name);
    }
    Ok(e)
}

/// Turns a model argument into a GGUF path: an existing file, or a model name resolved in our
/// store (`$BITNET_MODELS`, default `~/.bitnet/models`), then read-only in Ollama's
/// (`$OLLAMA_MODELS`).
pub fn resolve_model(arg: &str) -> anyhow::Result<PathBuf> {
    let path = expand_tilde(arg);
    if path.is_file() {
        return Ok(path);
    }
    let store = Store::from_env(None);
    match ModelName::parse(arg) {
        Ok(_) => match store.open(arg)? {
            Some(e) => Ok(e.model_path),
            None => anyhow::bail!(
                "model '{arg}' not found: not a file, and no model of that name in {}",
                store.root.display()
            ),
        },
        Err(_) => anyhow::bail!("model '{arg}' is not a file"),
    }
}
