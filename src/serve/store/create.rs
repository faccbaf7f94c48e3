//! `create`: a GGUF file (or an existing model) plus Modelfile instructions become a named model.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::manifest::{self, ConfigV2, Layer, Manifest};
use super::modelfile::Modelfile;
use super::{blobs, expand_tilde, gguf_info, params, Lease, Message, ModelName, Store};
use crate::engine::chat::ChatTemplate;
use crate::serve::gotemplate;

#[derive(Clone, Debug, Default)]
pub enum Base {
    /// A GGUF file on disk.
    File(PathBuf),
    /// A blob already in our store (`sha256:<hex>`), as `/api/create`'s `files` gives it.
    Blob(String),
    /// An existing model, whose layers are inherited.
    Model(String),
    /// A Hugging Face checkpoint directory, converted by `checkpoint::prepare_base`.
    Checkpoint(PathBuf),
    #[default]
    None,
}

#[derive(Clone, Debug, Default)]
pub struct CreateSpec {
    pub base: Base,
    pub template: Option<String>,
    pub system: Option<String>,
    /// Merged over the base model's parameters.
    pub parameters: Option<Map<String, Value>>,
    pub messages: Option<Vec<Message>>,
    pub license: Option<Vec<String>>,
}

impl CreateSpec {
    /// `FROM` paths are relative to the Modelfile's directory; a path that does not exist is a
    /// model name.
    pub fn from_modelfile(mf: &Modelfile, dir: &Path) -> anyhow::Result<CreateSpec> {
        if !mf.adapters.is_empty() {
            anyhow::bail!("ADAPTER (LoRA) is not supported by this engine");
        }
        let p = expand_tilde(&mf.from);
        let p = if p.is_relative() { dir.join(p) } else { p };
        let base = if p.exists() {
            if p.is_dir() {
                Base::Checkpoint(p)
            } else {
                Base::File(p)
            }
        } else if ModelName::parse(&mf.from).is_ok() && !mf.from.ends_with(".gguf") {
            Base::Model(mf.from.clone())
        } else {
            anyhow::bail!("FROM {}: no such file", mf.from);
        };
        let parameters = if mf.parameters.is_empty() {
            None
        } else {
            Some(params::typed_parameters(&mf.parameters).map_err(anyhow::Error::msg)?)
        };
        Ok(CreateSpec {
            base,
            template: mf.template.clone(),
            system: mf.system.clone(),
            parameters,
            messages: (!mf.messages.is_empty()).then(|| {
                mf.messages
                    .iter()
                    .map(|(r, c)| Message {
                        role: r.clone(),
                        content: c.clone(),
                    })
                    .collect()
            }),
            license: (!mf.license.is_empty()).then(|| mf.license.clone()),
        })
    }
}

/// Checks option names and value types (for `/api/create`'s `parameters`).
pub fn validate_parameters(p: &Map<String, Value>) -> anyhow::Result<()> {
    for (k, v) in p {
        let kind = params::kind_of(k).ok_or_else(|| anyhow::anyhow!("unknown parameter '{k}'"))?;
        let ok = match kind {
            params::Kind::Int => v.is_i64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
            params::Kind::Float => v.is_number(),
            params::Kind::Bool => v.is_boolean(),
            params::Kind::StringList => {
                v.is_string()
                    || v.as_array()
                        .is_some_and(|a| a.iter().all(|x| x.is_string()))
            }
        };
        if !ok {
            anyhow::bail!("invalid value for parameter {k}: {v}");
        }
    }
    Ok(())
}

fn add_layer(
    lease: &Lease,
    media: &str,
    bytes: &[u8],
    status: &mut dyn FnMut(&str),
) -> anyhow::Result<Layer> {
    let (digest, new) = lease.write_blob(bytes)?;
    status(&format!(
        "{} layer {digest}",
        if new {
            "creating new"
        } else {
            "using existing"
        }
    ));
    Ok(Layer {
        media_type: media.into(),
        digest,
        size: bytes.len() as u64,
        from: None,
    })
}

/// Refuses, before reading it whole, anything but a regular file that starts like a GGUF
/// (`/dev/zero` would never end; a text file is a typo), then checks it parses, so that a bad
/// `FROM` leaves no blob and its error names the user's file.
fn check_gguf_file(path: &Path) -> anyhow::Result<()> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("FROM {shown}: {e}"))?;
    if !meta.is_file() {
        anyhow::bail!("FROM {shown}: not a regular file (a GGUF model file is expected)");
    }
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(path).and_then(|mut f| {
        use std::io::Read;
        f.read(&mut magic)
    });
    match read {
        Ok(4) if &magic == b"GGUF" => {}
        Ok(_) => anyhow::bail!("FROM {shown}: not a GGUF file (it does not start with \"GGUF\")"),
        Err(e) => anyhow::bail!("FROM {shown}: {e}"),
    }
    gguf_info::summarize_path(path)
        .map_err(|e| anyhow::anyhow!("FROM {shown}: not a usable GGUF file: {e}"))?;
    Ok(())
}

/// The model layer a `create` starts from, the GGUF it names, and the model it inherits
/// template, system prompt, parameters, messages and licence from (`FROM` another model).
fn base_model_layer(
    store: &Store,
    lease: &Lease,
    base: &Base,
    status: &mut dyn FnMut(&str),
) -> anyhow::Result<(Layer, std::path::PathBuf, Option<super::Entry>)> {
    let model_layer = |digest: String, size| Layer {
        media_type: manifest::MEDIA_MODEL.into(),
        digest,
        size,
        from: None,
    };
    Ok(match base {
        Base::None => anyhow::bail!("neither 'from' nor 'files' was specified"),
        Base::Checkpoint(dir) => anyhow::bail!(
            "FROM {}: a checkpoint directory; `bitnet-gguf create NAME -f Modelfile [-q TYPE]` converts it",
            dir.display()
        ),
        Base::File(path) => {
            check_gguf_file(path)?;
            let (hex, size, dst) = blobs::import_file(lease, &store.root, path)
                .map_err(|e| anyhow::anyhow!("copying {} into the store: {e}", path.display()))?;
            status(&format!("copying file sha256:{hex} 100%"));
            (model_layer(format!("sha256:{hex}"), size), dst, None)
        }
        Base::Blob(digest) => {
            let p = manifest::blob_path(&store.root, digest)
                .ok_or_else(|| anyhow::anyhow!("invalid digest '{digest}'"))?;
            lease.protect(digest)?;
            let size = std::fs::metadata(&p)
                .map_err(|_| {
                    anyhow::anyhow!(
                        "blob {digest} not found; upload it with POST /api/blobs/{digest}"
                    )
                })?
                .len();
            (model_layer(digest.replacen('-', ":", 1), size), p, None)
        }
        Base::Model(from) => {
            let e = store
                .open(from)?
                .ok_or_else(|| anyhow::anyhow!("model '{from}' not found"))?;
            let layer = e
                .manifest
                .layers
                .iter()
                .find(|l| l.media_type == manifest::MEDIA_MODEL)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("model '{from}' has no model layer"))?;
            lease.protect(&layer.digest)?;
            let ours = manifest::blob_path(&store.root, &layer.digest)
                .ok_or_else(|| anyhow::anyhow!("model '{from}': bad digest {}", layer.digest))?;
            let p = if ours.is_file() {
                ours
            } else if e.read_only {
                blobs::import_file(lease, &store.root, &e.model_path)?.2
            } else {
                anyhow::bail!("model '{from}' was removed while a model was created from it");
            };
            (layer, p, Some(e))
        }
    })
}

/// Refuses a `TEMPLATE` that would fail at every request, in the language it is written in.
fn check_template(t: &str) -> anyhow::Result<()> {
    if gotemplate::looks_like_jinja(t) {
        ChatTemplate::from_source(t, "", "")
            .map_err(|e| anyhow::anyhow!("TEMPLATE is not a valid Jinja template: {e}"))?;
    } else {
        gotemplate::check(t)
            .map_err(|e| anyhow::anyhow!("TEMPLATE is not a valid Go template: {e}"))?;
    }
    Ok(())
}

/// The manifest's config blob: what Ollama's clients read as the model's family and format.
fn config_v2(summary: &gguf_info::GgufSummary) -> ConfigV2 {
    ConfigV2 {
        model_format: "gguf".into(),
        model_family: summary.architecture.clone(),
        model_families: Some(vec![summary.architecture.clone()]),
        model_type: gguf_info::human_number(summary.parameter_count),
        file_type: summary.file_type.clone(),
        architecture: std::env::consts::ARCH
            .replace("x86_64", "amd64")
            .replace("aarch64", "arm64"),
        os: std::env::consts::OS.into(),
    }
}

/// Creates (or replaces) the model `name`. The whole write holds a lease, so a concurrent
/// `rm` never collects its blobs; a failed create removes the blobs only it had written.
pub fn create(
    store: &Store,
    name: &str,
    spec: CreateSpec,
    status: &mut dyn FnMut(&str),
) -> anyhow::Result<()> {
    let target = ModelName::parse(name)?;
    let lease = store.lease()?;
    let before = blob_names(&store.root);
    let result = create_leased(store, &lease, &target, &spec, status);
    drop(lease);
    match result {
        Ok(()) => {
            if let Base::Blob(d) = &spec.base {
                store.forget_upload(d);
            }
            status("success");
            Ok(())
        }
        Err(e) => {
            let mine: HashSet<String> = blob_names(&store.root)
                .difference(&before)
                .cloned()
                .collect();
            if !mine.is_empty() {
                let _ = store.collect_garbage(Some(&mine));
            }
            Err(e)
        }
    }
}

fn blob_names(root: &Path) -> HashSet<String> {
    std::fs::read_dir(root.join("blobs"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn create_leased(
    store: &Store,
    lease: &Lease,
    target: &ModelName,
    spec: &CreateSpec,
    status: &mut dyn FnMut(&str),
) -> anyhow::Result<()> {
    if let Some(t) = &spec.template {
        check_template(t)?;
    }
    status("gathering model components");
    let (model_layer, model_path, inherited) = base_model_layer(store, lease, &spec.base, status)?;
    status("parsing GGUF");
    let summary = gguf_info::summarize_path(&model_path)
        .map_err(|e| anyhow::anyhow!("{} is not a usable GGUF file: {e}", model_path.display()))?;
    status(&format!("using existing layer {}", model_layer.digest));
    let mut layers = vec![Layer {
        from: None,
        ..model_layer
    }];

    let template = spec
        .template
        .clone()
        .or_else(|| inherited.as_ref().and_then(|e| e.template.clone()));
    let system = spec
        .system
        .clone()
        .or_else(|| inherited.as_ref().and_then(|e| e.system.clone()));
    let mut params = inherited
        .as_ref()
        .map(|e| e.params.clone())
        .unwrap_or_default();
    if let Some(p) = &spec.parameters {
        validate_parameters(p)?;
        for (k, v) in p {
            let v = if k == "stop" && v.is_string() {
                Value::Array(vec![v.clone()])
            } else {
                v.clone()
            };
            params.insert(k.clone(), v);
        }
    }
    let messages = spec
        .messages
        .clone()
        .or_else(|| inherited.as_ref().map(|e| e.messages.clone()))
        .unwrap_or_default();
    let license = spec
        .license
        .clone()
        .or_else(|| inherited.as_ref().map(|e| e.license.clone()))
        .unwrap_or_default();

    if let Some(t) = &template {
        layers.push(add_layer(
            lease,
            manifest::MEDIA_TEMPLATE,
            t.as_bytes(),
            status,
        )?);
    }
    if let Some(s) = &system {
        layers.push(add_layer(
            lease,
            manifest::MEDIA_SYSTEM,
            s.as_bytes(),
            status,
        )?);
    }
    if !params.is_empty() {
        layers.push(add_layer(
            lease,
            manifest::MEDIA_PARAMS,
            Value::Object(params).to_string().as_bytes(),
            status,
        )?);
    }
    if !messages.is_empty() {
        for m in &messages {
            if !matches!(m.role.as_str(), "system" | "user" | "assistant") {
                anyhow::bail!(
                    "message role must be system, user or assistant, not '{}'",
                    m.role
                );
            }
        }
        layers.push(add_layer(
            lease,
            manifest::MEDIA_MESSAGES,
            serde_json::to_string(&messages)?.as_bytes(),
            status,
        )?);
    }
    for l in &license {
        layers.push(add_layer(
            lease,
            manifest::MEDIA_LICENSE,
            l.as_bytes(),
            status,
        )?);
    }
    let config = config_v2(&summary);
    let config_bytes = serde_json::to_string(&config)?;
    let (config_digest, _) = lease.write_blob(config_bytes.as_bytes())?;
    let m = Manifest {
        schema_version: 2,
        media_type: manifest::MANIFEST_MEDIA.into(),
        config: Layer {
            media_type: manifest::CONFIG_MEDIA.into(),
            digest: config_digest,
            size: config_bytes.len() as u64,
            from: None,
        },
        layers,
    };
    bitnet_formats::failpoint::pause("create-before-manifest");
    status("writing manifest");
    store.write_manifest(lease, target, serde_json::to_string(&m)?.as_bytes())
}
