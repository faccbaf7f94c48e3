//! The model store, in Ollama's layout (`manifests/<host>/<ns>/<model>/<tag>` + `blobs/sha256-…`)
//! under `$BITNET_MODELS` (default `~/.bitnet/models`), plus read-only access to an existing
//! Ollama store (`--ollama-models` / `OLLAMA_MODELS`) so models imported there run here.

pub mod blobs;
pub mod checkpoint;
pub mod create;
pub mod gguf_info;
pub mod lease;
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
pub use lease::Lease;
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
    /// Another model of our store has a name differing only in case (written by an older
    /// binary); both stay readable by their exact names.
    pub case_twin: bool,
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
    /// Two names of our store differing only in case are both listed, flagged `case_twin`.
    pub fn list(&self) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::new();
        for (root, ro) in self.roots() {
            let ours = out.len();
            for (name, path) in manifest_files(root) {
                if out[..ours].iter().any(|e| e.name.same_as(&name)) {
                    continue;
                }
                if let Ok(e) = load_entry(root, &path, name, ro) {
                    out.push(e);
                }
            }
        }
        let names: Vec<ModelName> = out.iter().map(|e| e.name.clone()).collect();
        for e in &mut out {
            e.case_twin = names.iter().any(|n| n.same_as(&e.name) && n != &e.name);
        }
        out.sort_by_key(|e| std::cmp::Reverse(e.modified));
        out
    }

    /// Writes `name`'s manifest under `lease` (after its blobs are protected and written) and
    /// removes any other manifest whose name differs only in case: names are case-insensitive.
    pub fn write_manifest(
        &self,
        lease: &Lease,
        name: &ModelName,
        bytes: &[u8],
    ) -> anyhow::Result<()> {
        let path = self.root.join(name.manifest_rel_path());
        lease
            .write_file(&path, bytes)
            .with_context(|| format!("writing {}", path.display()))?;
        for (other, p) in manifest_files(&self.root) {
            if other.same_as(name) && other != *name && !same_file(&p, &path) {
                remove_manifest(&self.root, &p)?;
            }
        }
        Ok(())
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
        let lease = self.lease()?;
        let m = &entry.manifest;
        for l in std::iter::once(&m.config).chain(&m.layers) {
            lease.protect(&l.digest)?;
            let present = manifest::blob_path(&self.root, &l.digest).is_some_and(|p| p.is_file());
            if !present {
                anyhow::bail!("model '{src}' was removed while being copied");
            }
        }
        let bytes = fs::read(&entry.manifest_path)?;
        self.write_manifest(&lease, &dst_name, &bytes)
    }

    /// Removes exactly the named model of our store (the exact name when two differ only in
    /// case), then every blob nothing uses any more.
    pub fn delete(&self, name: &str) -> anyhow::Result<()> {
        self.prepare()?;
        let parsed = ModelName::parse(name)?;
        let exact = self.root.join(parsed.manifest_rel_path());
        let path = if exact.is_file() {
            exact
        } else {
            let found: Vec<_> = manifest_files(&self.root)
                .into_iter()
                .filter(|(n, _)| n.same_as(&parsed))
                .collect();
            match found.as_slice() {
                [(_, p)] => p.clone(),
                [] => {
                    if let Some(e) = self.open(name)? {
                        if e.read_only {
                            anyhow::bail!(
                                "model '{name}' is in the Ollama store, which is read-only here"
                            );
                        }
                    }
                    anyhow::bail!("model '{name}' not found");
                }
                several => anyhow::bail!(
                    "model '{name}' is ambiguous: {} differ only in case; name one exactly",
                    several
                        .iter()
                        .map(|(n, _)| n.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        };
        remove_manifest(&self.root, &path)?;
        // The model is gone either way; blobs a failed collection keeps go with the next rm.
        let _ = self.collect_garbage(None);
        Ok(())
    }
}

/// On a case-insensitive file system two spellings of a name are one file: never remove it.
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (fs::metadata(a), fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        a.to_string_lossy()
            .eq_ignore_ascii_case(&b.to_string_lossy())
    }
}

/// Removes a manifest and the directories it leaves empty, up to `manifests/`.
fn remove_manifest(root: &Path, path: &Path) -> anyhow::Result<()> {
    fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    let stop = root.join("manifests");
    let mut dir = path.parent().map(Path::to_path_buf);
    while let Some(d) = dir {
        if d == stop || !d.starts_with(&stop) || fs::remove_dir(&d).is_err() {
            break;
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    if let Some(d) = path.parent() {
        let _ = lease::sync_dir(d);
    }
    Ok(())
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
        case_twin: false,
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
