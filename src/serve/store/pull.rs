//! `pull hf.co/ORG/REPO[:TAG]`: a GGUF of a Hugging Face repository (picked by its quant type)
//! or its safetensors checkpoint (converted) becomes a model of the store under that name.
//! Transfers land in `partial/` and are verified before anything enters `blobs/`; the manifest
//! is written last, so `list` never sees a half-pulled model.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::blobs;
use super::create::{self, Base, CreateSpec};
use super::lease::{commit_temp, Lease};
use super::{manifest, ModelName, Store};
use crate::serve::hub::{cache, download, FileMeta, Hub, HubConfig, HubRef, RepoInfo};

/// What a pull reports, in Ollama's terms: a status line, or the progress of one layer.
#[derive(Debug)]
pub enum PullEvent<'a> {
    Status(&'a str),
    Progress {
        digest: &'a str,
        total: u64,
        completed: u64,
    },
}

#[derive(Clone, Debug)]
pub struct PullOptions {
    pub hub: HubConfig,
    /// Storage of the ternary weights when a safetensors checkpoint is converted (default:
    /// the tag if it names a type, else i2_s).
    pub weight_type: Option<String>,
}

/// Where transfers and conversions in progress live (never listed, never garbage-collected).
pub fn partial_dir(store: &Store) -> PathBuf {
    store.root.join("partial")
}

/// The one way a pulled or converted file enters `blobs/`: moved when the store owns it (a file
/// of `partial/` or the lease's `tmp/`), else copied (the Hugging Face cache is only read).
/// The digest is protected by `lease` first, so a concurrent `rm` cannot collect the blob
/// before the caller's manifest references it; keep the lease until then.
pub fn add_blob_from_file(
    lease: &Lease,
    store: &Store,
    src: &Path,
    hex: &str,
    owned: bool,
) -> io::Result<PathBuf> {
    let digest = format!("sha256:{hex}");
    let dst = manifest::blob_path(&store.root, &digest)
        .ok_or_else(|| io::Error::other(format!("bad digest {hex}")))?;
    lease.protect(&digest)?;
    if dst.is_file() {
        if owned {
            let _ = fs::remove_file(src);
        }
        return Ok(dst);
    }
    if !owned {
        let (copied, _, path) = blobs::import_file(lease, &store.root, src)?;
        if copied != hex {
            let _ = fs::remove_file(&path);
            return Err(io::Error::other(format!(
                "{} changed while it was copied: sha256 {copied}, expected {hex}",
                src.display()
            )));
        }
        return Ok(path);
    }
    File::open(src)?.sync_all()?;
    commit_temp(src, &dst)?;
    Ok(dst)
}

/// True when `name` (a file's base name, any case) carries the quant type `tag` as a whole
/// `-`/`.`/`_`-separated part: `ggml-model-i2_s.gguf` has `i2_s`, `m.Q6_K.gguf` has `q6_k`.
fn has_quant(file: &str, tag: &str) -> bool {
    let base = file.rsplit('/').next().unwrap_or(file).to_ascii_lowercase();
    let stem = base.strip_suffix(".gguf").unwrap_or(&base);
    let tag = tag.to_ascii_lowercase();
    let sep = |c: Option<char>| c.is_none_or(|c| matches!(c, '-' | '.' | '_'));
    stem.match_indices(&tag).any(|(i, _)| {
        sep(stem[..i].chars().next_back()) && sep(stem[i + tag.len()..].chars().next())
    })
}

/// The GGUF file a tag picks: the one of that quant type; without a tag, the only GGUF or the
/// I2_S one. `None` when the repository has no GGUF file.
pub fn pick_gguf<'a>(
    files: &'a [String],
    tag: Option<&str>,
    repo: &str,
) -> anyhow::Result<Option<&'a str>> {
    let ggufs: Vec<&str> = files
        .iter()
        .map(String::as_str)
        .filter(|f| f.to_ascii_lowercase().ends_with(".gguf"))
        .collect();
    if ggufs.is_empty() {
        return Ok(None);
    }
    let list = ggufs.join(", ");
    let matching = |t: &str| -> Vec<&'a str> {
        files
            .iter()
            .map(String::as_str)
            .filter(|f| f.to_ascii_lowercase().ends_with(".gguf") && has_quant(f, t))
            .collect()
    };
    let picked = match tag {
        Some(t) => match matching(t).as_slice() {
            [one] => *one,
            [] => anyhow::bail!("{repo} has no GGUF file of type {t}; it has: {list}"),
            _ => anyhow::bail!("{repo} has several GGUF files of type {t}: {list}"),
        },
        None if ggufs.len() == 1 => ggufs[0],
        None => match matching("i2_s").as_slice() {
            [one] => *one,
            _ => anyhow::bail!(
                "{repo} has several GGUF files; name one by its type (hf.co/{repo}:TYPE): {list}"
            ),
        },
    };
    if picked.to_ascii_lowercase().contains("-of-0") {
        anyhow::bail!("{picked}: split GGUF files are not supported");
    }
    Ok(Some(picked))
}

/// Gets one file: from the Hugging Face cache when it holds the right bytes, else through a
/// resumable transfer into `partial/`. Returns the verified file, its sha256, and whether it
/// is ours to move (a partial file) or only to read (the cache).
fn obtain(
    hub: &Hub,
    store: &Store,
    repo: &str,
    meta: &FileMeta,
    events: &mut dyn FnMut(PullEvent),
) -> anyhow::Result<(PathBuf, String, bool)> {
    let label = if meta.is_lfs() {
        format!("sha256:{}", meta.etag)
    } else {
        meta.file.clone()
    };
    let short = if meta.is_lfs() {
        &meta.etag[..12]
    } else {
        meta.file.as_str()
    };
    events(PullEvent::Status(&format!("pulling {short}")));
    let mut report = |completed| {
        events(PullEvent::Progress {
            digest: &label,
            total: meta.size,
            completed,
        })
    };
    if let Some(blob) = meta
        .is_lfs()
        .then(|| manifest::blob_path(&store.root, &format!("sha256:{}", meta.etag)))
        .flatten()
        .filter(|p| p.is_file())
    {
        report(meta.size);
        return Ok((blob, meta.etag.clone(), false));
    }
    if let Some(cached) = hub
        .config
        .cache
        .as_deref()
        .and_then(|c| cache::cached_blob(c, repo, meta))
    {
        if let Ok(sha) = download::verify(&cached, meta) {
            report(meta.size);
            return Ok((cached, sha, false));
        }
    }
    let partial = partial_dir(store).join(format!("hf-{}", meta.etag));
    let sha = download::fetch(hub, repo, meta, &partial, &mut report)?;
    Ok((partial, sha, true))
}

/// Writes the manifest of a model whose GGUF blob is in the store.
fn finish(
    store: &Store,
    name: &str,
    digest: &str,
    events: &mut dyn FnMut(PullEvent),
) -> anyhow::Result<()> {
    let spec = CreateSpec {
        base: Base::Blob(digest.to_string()),
        ..Default::default()
    };
    create::create(store, name, spec, &mut |s| {
        if s == "writing manifest" || s == "success" {
            events(PullEvent::Status(s));
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn pull_gguf(
    lease: &Lease,
    hub: &Hub,
    store: &Store,
    name: &str,
    repo: &str,
    info: &RepoInfo,
    file: &str,
    events: &mut dyn FnMut(PullEvent),
) -> anyhow::Result<()> {
    let meta = hub.file_meta(repo, &info.sha, file)?;
    let (src, sha, owned) = obtain(hub, store, repo, &meta, events)?;
    events(PullEvent::Status("verifying sha256 digest"));
    add_blob_from_file(lease, store, &src, &sha, owned)?;
    finish(store, name, &format!("sha256:{sha}"), events)
}

/// The checkpoint's files worth fetching: configs, tokenizer and weights at the top level.
fn checkpoint_files(files: &[String]) -> Vec<&str> {
    files
        .iter()
        .map(String::as_str)
        .filter(|f| !f.contains(['/', '\\']) && !f.starts_with('.'))
        .filter(|f| f.ends_with(".json") || f.ends_with(".safetensors"))
        .collect()
}

#[cfg(unix)]
fn link_into(src: &Path, dst: &Path) -> io::Result<()> {
    let src = fs::canonicalize(src)?;
    std::os::unix::fs::symlink(src, dst)
}

#[cfg(not(unix))]
fn link_into(src: &Path, dst: &Path) -> io::Result<()> {
    fs::copy(src, dst).map(|_| ())
}

#[allow(clippy::too_many_arguments)]
fn pull_checkpoint(
    lease: &Lease,
    hub: &Hub,
    store: &Store,
    name: &str,
    hub_ref: &HubRef,
    info: &RepoInfo,
    opts: &PullOptions,
    events: &mut dyn FnMut(PullEvent),
) -> anyhow::Result<()> {
    let repo = hub_ref.repo.as_str();
    let weight_type = opts
        .weight_type
        .clone()
        .or_else(|| {
            hub_ref
                .tag
                .clone()
                .filter(|t| bitnet_tools::convert::WeightType::parse(t).is_some())
        })
        .unwrap_or_else(|| "i2_s".into());
    let files = checkpoint_files(&info.files);
    if !files.iter().any(|f| f.ends_with(".safetensors")) {
        anyhow::bail!("{repo} has neither a GGUF file nor a safetensors checkpoint");
    }
    // The commit names the folder: a resumed pull of the same commit finds its files again.
    let ckpt = partial_dir(store).join(format!("ckpt-{}", info.sha));
    fs::create_dir_all(&ckpt)?;
    let mut owned_files = Vec::new();
    for file in &files {
        let meta = hub.file_meta(repo, &info.sha, file)?;
        let (src, _, owned) = obtain(hub, store, repo, &meta, events)?;
        let dst = ckpt.join(file);
        let _ = fs::remove_file(&dst);
        link_into(&src, &dst)?;
        if owned {
            owned_files.push(src);
        }
    }
    events(PullEvent::Status("verifying sha256 digest"));
    events(PullEvent::Status(&format!("converting to {weight_type}")));
    let model = repo.rsplit('/').next().unwrap_or(repo).to_string();
    let digest =
        super::checkpoint::convert_into_store(lease, store, &ckpt, &weight_type, Some(model))?;
    finish(store, name, &digest, events)?;
    let _ = fs::remove_dir_all(&ckpt);
    for f in owned_files {
        let _ = fs::remove_file(f);
    }
    Ok(())
}

/// Pulls `name` (`hf.co/ORG/REPO[:TAG]` or `huggingface.co/…`) into the store under that name.
pub fn pull(
    store: &Store,
    name: &str,
    opts: &PullOptions,
    events: &mut dyn FnMut(PullEvent),
) -> anyhow::Result<()> {
    ModelName::parse(name)?;
    let hub_ref = HubRef::parse(name).ok_or_else(|| {
        anyhow::anyhow!(
            "pull {name}: only Hugging Face models can be pulled (hf.co/ORG/REPO[:TYPE]); \
             import a local GGUF with `bitnet-gguf create NAME -f Modelfile`"
        )
    })?;
    let hub = Hub::new(opts.hub.clone());
    // Held until the manifest is written: the blobs a pull adds are in no manifest before.
    let lease = store.lease()?;
    events(PullEvent::Status("pulling manifest"));
    let info = hub.repo_info(&hub_ref.repo, "main")?;
    if info.sha.is_empty()
        || !info.sha.bytes().all(|b| b.is_ascii_alphanumeric())
        || info.sha.len() > 64
    {
        anyhow::bail!(
            "pull {name}: the Hub sent a malformed commit id {:?}",
            info.sha
        );
    }
    match pick_gguf(&info.files, hub_ref.tag.as_deref(), &hub_ref.repo)? {
        Some(file) => pull_gguf(
            &lease,
            &hub,
            store,
            name,
            &hub_ref.repo,
            &info,
            file,
            events,
        ),
        None => pull_checkpoint(&lease, &hub, store, name, &hub_ref, &info, opts, events),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_pick_files() {
        let files: Vec<String> = [
            "README.md",
            "ggml-model-i2_s.gguf",
            "ggml-model-tq2_0.gguf",
            "m.Q6_K.gguf",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            pick_gguf(&files, Some("TQ2_0"), "o/r").unwrap(),
            Some("ggml-model-tq2_0.gguf")
        );
        assert_eq!(
            pick_gguf(&files, Some("q6_k"), "o/r").unwrap(),
            Some("m.Q6_K.gguf")
        );
        assert_eq!(
            pick_gguf(&files, None, "o/r").unwrap(),
            Some("ggml-model-i2_s.gguf")
        );
        let e = pick_gguf(&files, Some("q4_0"), "o/r")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no GGUF file of type q4_0") && e.contains("m.Q6_K.gguf"),
            "{e}"
        );
        // "2_s" is inside "i2_s" but not a separated part of any name.
        assert!(pick_gguf(&files, Some("2_s"), "o/r").is_err());
        assert_eq!(pick_gguf(&files[..1], None, "o/r").unwrap(), None);
    }
}
