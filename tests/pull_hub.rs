//! `pull` against a loopback mock of the Hugging Face Hub: a GGUF repository by tag, a
//! safetensors repository (converted), a transfer that resumes after a dropped connection, a
//! corrupted transfer that leaves nothing behind, 401 with and without a token, and the
//! Hugging Face cache reused without a transfer.

mod pull_support;

use std::fs;
use std::path::{Path, PathBuf};

use bitnet_gguf::serve::hub::HubConfig;
use bitnet_gguf::serve::store::pull::{self, PullEvent, PullOptions};
use bitnet_gguf::serve::store::Store;
use pull_support::{MockFile, MockHub};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tiny_gguf() -> Vec<u8> {
    fs::read(root().join("models/tiny-bitnet-b1.58.gguf")).unwrap()
}

fn checkpoint_dir() -> PathBuf {
    root().join("tests/fixtures/hf/1bitllm-bitnet-style")
}

fn file(name: &str, bytes: Vec<u8>, lfs: bool) -> MockFile {
    MockFile {
        name: name.into(),
        bytes,
        lfs,
    }
}

/// A repository with two GGUF files of different types and a README.
fn gguf_repo(hub: &MockHub, repo: &str) -> Vec<u8> {
    let gguf = tiny_gguf();
    let mut other = gguf.clone();
    other.extend_from_slice(b"another file");
    hub.add_repo(
        repo,
        &"c".repeat(40),
        vec![
            file("README.md", b"# tiny\n".to_vec(), false),
            file("tiny-i2_s.gguf", gguf.clone(), true),
            file("tiny-tq2_0.gguf", other, true),
        ],
    );
    gguf
}

fn config(hub: &MockHub, token: Option<&str>, cache: Option<&Path>) -> PullOptions {
    PullOptions {
        hub: HubConfig {
            endpoint: hub.endpoint.clone(),
            token: token.map(str::to_string),
            cache: cache.map(Path::to_path_buf),
        },
        weight_type: None,
    }
}

/// Pulls, recording the events as the JSON-ish lines `/api/pull` streams.
fn pull_events(store: &Store, name: &str, opts: &PullOptions) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    pull::pull(store, name, opts, &mut |e| match e {
        PullEvent::Status(s) => lines.push(s.to_string()),
        PullEvent::Progress {
            digest,
            total,
            completed,
        } => lines.push(format!("{digest} {completed}/{total}")),
    })?;
    Ok(lines)
}

fn partial_files(store: &Store) -> Vec<String> {
    fs::read_dir(store.root.join("partial"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn pulls_a_gguf_repo_by_tag() {
    let hub = MockHub::start();
    let gguf = gguf_repo(&hub, "org/tiny-gguf");
    let work = tempfile::tempdir().unwrap();
    let store = Store::new(work.path().join("models"), None);
    let opts = config(&hub, None, None);

    let lines = pull_events(&store, "hf.co/org/tiny-gguf:I2_S", &opts).unwrap();
    let sha = pull_support::hex(&<sha2::Sha256 as sha2::Digest>::digest(&gguf));
    assert_eq!(lines.first().unwrap(), "pulling manifest");
    assert!(
        lines.contains(&format!("pulling {}", &sha[..12])),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!("sha256:{sha} {0}/{0}", gguf.len())),
        "{lines:?}"
    );
    let tail: Vec<&str> = lines[lines.len() - 3..]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        ["verifying sha256 digest", "writing manifest", "success"]
    );

    let e = store
        .open("hf.co/org/tiny-gguf:I2_S")
        .unwrap()
        .expect("pulled model");
    assert_eq!(fs::read(&e.model_path).unwrap(), gguf);
    assert_eq!(e.config.file_type, "I2_S");
    assert!(store
        .list()
        .iter()
        .any(|m| m.name.to_string() == "hf.co/org/tiny-gguf:I2_S"));
    assert!(
        partial_files(&store).is_empty(),
        "{:?}",
        partial_files(&store)
    );

    // The other type is picked by its tag; an absent type is named with what there is.
    pull_events(&store, "huggingface.co/org/tiny-gguf:tq2_0", &opts).unwrap();
    let e2 = store
        .open("huggingface.co/org/tiny-gguf:tq2_0")
        .unwrap()
        .unwrap();
    assert_ne!(e2.model_path, e.model_path);
    let err = pull_events(&store, "hf.co/org/tiny-gguf:q4_0", &opts).unwrap_err();
    assert!(format!("{err:#}").contains("tiny-tq2_0.gguf"), "{err:#}");
    let err = pull_events(&store, "hf.co/org/missing", &opts).unwrap_err();
    assert!(format!("{err:#}").contains("404"), "{err:#}");
}

#[test]
fn pulls_and_converts_a_safetensors_repo() {
    let hub = MockHub::start();
    let dir = checkpoint_dir();
    let mut files = Vec::new();
    for e in fs::read_dir(&dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_file() {
            let lfs = name.ends_with(".safetensors");
            files.push(file(&name, fs::read(e.path()).unwrap(), lfs));
        }
    }
    hub.add_repo("org/tiny-st", &"d".repeat(40), files);
    let work = tempfile::tempdir().unwrap();
    let store = Store::new(work.path().join("models"), None);

    let lines = pull_events(&store, "hf.co/org/tiny-st", &config(&hub, None, None)).unwrap();
    assert!(lines.iter().any(|l| l == "converting to i2_s"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l == "pulling config.json"),
        "{lines:?}"
    );
    let e = store
        .open("hf.co/org/tiny-st")
        .unwrap()
        .expect("pulled model");
    assert_eq!(e.config.file_type, "I2_S");

    // Byte for byte what converting the checkpoint directly gives.
    let direct = work.path().join("direct.gguf");
    let mut opts = bitnet_tools::convert::ConvertOptions::new(&dir, &direct);
    opts.name = Some("tiny-st".into());
    bitnet_tools::convert::convert(&opts, &mut |_| {}).unwrap();
    assert_eq!(fs::read(&e.model_path).unwrap(), fs::read(&direct).unwrap());
    assert!(
        partial_files(&store).is_empty(),
        "{:?}",
        partial_files(&store)
    );
}

#[test]
fn an_interrupted_transfer_resumes_with_range() {
    let hub = MockHub::start();
    let gguf = gguf_repo(&hub, "org/tiny-gguf");
    hub.state.lock().unwrap().drop_half_once = true;
    let work = tempfile::tempdir().unwrap();
    let store = Store::new(work.path().join("models"), None);

    pull_events(&store, "hf.co/org/tiny-gguf", &config(&hub, None, None)).unwrap();
    let e = store.open("hf.co/org/tiny-gguf").unwrap().unwrap();
    assert_eq!(fs::read(&e.model_path).unwrap(), gguf);
    let s = hub.state.lock().unwrap();
    assert_eq!(s.ranges, vec![format!("bytes={}-", gguf.len() / 2)]);
    // Half, then the other half: nothing transferred twice.
    assert_eq!(s.body_bytes, gguf.len() as u64);
}

#[test]
fn a_partial_file_left_by_an_earlier_pull_is_continued() {
    let hub = MockHub::start();
    let gguf = gguf_repo(&hub, "org/tiny-gguf");
    let sha = pull_support::hex(&<sha2::Sha256 as sha2::Digest>::digest(&gguf));
    let work = tempfile::tempdir().unwrap();
    let store = Store::new(work.path().join("models"), None);
    let partial = store.root.join("partial");
    fs::create_dir_all(&partial).unwrap();
    let have = gguf.len() / 3;
    fs::write(partial.join(format!("hf-{sha}")), &gguf[..have]).unwrap();

    pull_events(&store, "hf.co/org/tiny-gguf", &config(&hub, None, None)).unwrap();
    let e = store.open("hf.co/org/tiny-gguf").unwrap().unwrap();
    assert_eq!(fs::read(&e.model_path).unwrap(), gguf);
    let s = hub.state.lock().unwrap();
    assert_eq!(s.ranges, vec![format!("bytes={have}-")]);
    assert_eq!(s.body_bytes, (gguf.len() - have) as u64);
    drop(s);
    assert!(
        partial_files(&store).is_empty(),
        "{:?}",
        partial_files(&store)
    );
}

#[test]
fn a_corrupted_transfer_fails_and_leaves_nothing() {
    let hub = MockHub::start();
    let gguf = gguf_repo(&hub, "org/tiny-gguf");
    hub.state.lock().unwrap().corrupt = true;
    let work = tempfile::tempdir().unwrap();
    let store = Store::new(work.path().join("models"), None);

    let err = pull_events(&store, "hf.co/org/tiny-gguf", &config(&hub, None, None)).unwrap_err();
    let msg = format!("{err:#}");
    let sha = pull_support::hex(&<sha2::Sha256 as sha2::Digest>::digest(&gguf));
    assert!(
        msg.contains("digest mismatch") && msg.contains(&format!("expected sha256 {sha}")),
        "{msg}"
    );
    assert!(store.list().is_empty());
    assert!(
        partial_files(&store).is_empty(),
        "{:?}",
        partial_files(&store)
    );
    let blobs = fs::read_dir(store.root.join("blobs"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(blobs, 0);
}

#[test]
fn unauthorized_with_and_without_a_token() {
    let hub = MockHub::start();
    gguf_repo(&hub, "org/gated");
    hub.state.lock().unwrap().token = Some("secret".into());
    let work = tempfile::tempdir().unwrap();
    let store = Store::new(work.path().join("models"), None);

    let err = pull_events(&store, "hf.co/org/gated", &config(&hub, None, None)).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("401") && msg.contains("set HF_TOKEN"), "{msg}");
    let err = pull_events(
        &store,
        "hf.co/org/gated",
        &config(&hub, Some("wrong"), None),
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("401") && msg.contains("token is invalid"),
        "{msg}"
    );
    assert!(store.list().is_empty());

    pull_events(
        &store,
        "hf.co/org/gated",
        &config(&hub, Some("secret"), None),
    )
    .unwrap();
    assert!(store.open("hf.co/org/gated").unwrap().is_some());
    let s = hub.state.lock().unwrap();
    let last_api = s
        .auth_seen
        .iter()
        .rev()
        .find(|(p, _)| p.starts_with("/api/"))
        .unwrap();
    assert_eq!(last_api.1.as_deref(), Some("Bearer secret"));
}

#[test]
fn the_hugging_face_cache_is_reused_without_a_transfer() {
    let hub = MockHub::start();
    let gguf = gguf_repo(&hub, "org/tiny-gguf");
    let sha = pull_support::hex(&<sha2::Sha256 as sha2::Digest>::digest(&gguf));
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("hf/hub");
    let blobs = cache.join("models--org--tiny-gguf/blobs");
    fs::create_dir_all(&blobs).unwrap();
    fs::write(blobs.join(&sha), &gguf).unwrap();
    let store = Store::new(work.path().join("models"), None);

    pull_events(
        &store,
        "hf.co/org/tiny-gguf",
        &config(&hub, None, Some(&cache)),
    )
    .unwrap();
    assert_eq!(hub.body_bytes(), 0);
    let e = store.open("hf.co/org/tiny-gguf").unwrap().unwrap();
    assert_eq!(fs::read(&e.model_path).unwrap(), gguf);
    assert_eq!(
        fs::read(blobs.join(&sha)).unwrap(),
        gguf,
        "the cache is untouched"
    );

    // A cached blob of the right size but wrong bytes is not trusted.
    let mut bad = gguf.clone();
    bad[100] ^= 1;
    fs::write(blobs.join(&sha), &bad).unwrap();
    let store2 = Store::new(work.path().join("models2"), None);
    pull_events(
        &store2,
        "hf.co/org/tiny-gguf",
        &config(&hub, None, Some(&cache)),
    )
    .unwrap();
    assert_eq!(hub.body_bytes(), gguf.len() as u64);
}
