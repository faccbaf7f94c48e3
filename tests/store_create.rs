//! The model store with the committed tiny GGUF: create from a Modelfile (relative FROM),
//! inheritance from another model, list/copy/delete with blob pruning, name resolution, and
//! read-only use of an Ollama store.

use std::fs;
use std::path::{Path, PathBuf};

use bitnet_gguf::serve::store::{create, modelfile, CreateSpec, Store};

fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/tiny-bitnet-b1.58.gguf")
}

fn blobs(root: &Path) -> usize {
    fs::read_dir(root.join("blobs"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn create_from(store: &Store, dir: &Path, name: &str, text: &str) -> anyhow::Result<Vec<String>> {
    fs::write(dir.join("Modelfile"), text)?;
    let mf = modelfile::parse(&fs::read_to_string(dir.join("Modelfile"))?)?;
    let spec = CreateSpec::from_modelfile(&mf, dir)?;
    let mut lines = Vec::new();
    create::create(store, name, spec, &mut |s| lines.push(s.to_string()))?;
    Ok(lines)
}

#[test]
fn create_list_copy_delete() {
    let work = tempfile::tempdir().unwrap();
    fs::copy(tiny(), work.path().join("tiny.gguf")).unwrap();
    let store = Store::new(work.path().join("models"), None);
    let lines = create_from(
        &store,
        work.path(),
        "tiny",
        "FROM ./tiny.gguf\nPARAMETER temperature 0.6\nPARAMETER stop \"<|eot_id|>\"\nPARAMETER stop User:\nSYSTEM \"\"\"Be brief.\"\"\"\nMESSAGE user hi\nMESSAGE assistant hello\nLICENSE MIT\n",
    )
    .unwrap();
    assert_eq!(lines.last().unwrap(), "success");
    assert!(lines.iter().any(|l| l == "parsing GGUF"));

    let e = store.open("tiny:latest").unwrap().expect("created model");
    assert_eq!(
        fs::read(&e.model_path).unwrap(),
        fs::read(tiny()).unwrap(),
        "model layer is the GGUF byte for byte"
    );
    assert!(e.model_path.starts_with(store.root.join("blobs")));
    assert_eq!(e.system.as_deref(), Some("Be brief."));
    assert_eq!(e.params["temperature"], serde_json::json!(0.6));
    assert_eq!(e.params["stop"], serde_json::json!(["<|eot_id|>", "User:"]));
    assert_eq!(e.messages.len(), 2);
    assert_eq!(e.license, vec!["MIT".to_string()]);
    assert_eq!(e.config.model_format, "gguf");
    assert!(!e.config.model_family.is_empty());
    assert_eq!(e.config.file_type, "I2_S");
    assert_eq!(e.digest.len(), 64);
    let manifest_path = store
        .root
        .join("manifests/registry.ollama.ai/library/tiny/latest");
    assert!(manifest_path.is_file());
    assert_eq!(
        e.size,
        e.manifest.config.size + e.manifest.layers.iter().map(|l| l.size).sum::<u64>()
    );

    // FROM a model name inherits its layers; new values override.
    let lines = create_from(
        &store,
        work.path(),
        "me/tiny-cold:v1",
        "from tiny\nparameter temperature 0\n",
    )
    .unwrap();
    assert!(lines.iter().any(|l| l.starts_with("using existing layer")));
    let d = store.open("me/tiny-cold:v1").unwrap().unwrap();
    assert_eq!(d.params["temperature"], serde_json::json!(0.0));
    assert_eq!(d.params["stop"], serde_json::json!(["<|eot_id|>", "User:"]));
    assert_eq!(d.system.as_deref(), Some("Be brief."));
    assert_eq!(d.model_path, e.model_path);

    store.copy("tiny", "tiny-copy").unwrap();
    let names: Vec<String> = store.list().iter().map(|e| e.name.to_string()).collect();
    for n in ["tiny:latest", "me/tiny-cold:v1", "tiny-copy:latest"] {
        assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
    }
    assert!(
        store.open("TINY-COPY").unwrap().is_some(),
        "names are case-insensitive"
    );

    let before = blobs(&store.root);
    store.delete("tiny").unwrap();
    assert_eq!(
        blobs(&store.root),
        before,
        "blobs still referenced by the copy stay"
    );
    store.delete("tiny-copy").unwrap();
    store.delete("me/tiny-cold:v1").unwrap();
    assert_eq!(blobs(&store.root), 0, "unreferenced blobs are pruned");
    assert!(store.list().is_empty());
    assert!(!store
        .root
        .join("manifests/registry.ollama.ai/library/tiny")
        .exists());
    assert!(store.delete("tiny").is_err());
}

#[test]
fn bad_inputs_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let store = Store::new(work.path().join("models"), None);
    fs::copy(tiny(), work.path().join("tiny.gguf")).unwrap();
    assert!(create_from(&store, work.path(), "../escape", "FROM ./tiny.gguf\n").is_err());
    assert!(create_from(&store, work.path(), "x", "FROM ./missing.gguf\n").is_err());
    assert!(create_from(&store, work.path(), "x", "FROM no-such-model\n").is_err());
    assert!(create_from(
        &store,
        work.path(),
        "x",
        "FROM ./tiny.gguf\nPARAMETER bogus 1\n"
    )
    .is_err());
    assert!(create_from(
        &store,
        work.path(),
        "x",
        "FROM ./tiny.gguf\nADAPTER ./lora.gguf\n"
    )
    .is_err());
    fs::write(work.path().join("junk.gguf"), b"not a gguf").unwrap();
    assert!(create_from(&store, work.path(), "x", "FROM ./junk.gguf\n").is_err());
    assert!(store.list().is_empty());
    assert!(!work.path().join("escape").exists());
}

#[test]
fn ollama_store_is_read_only() {
    let work = tempfile::tempdir().unwrap();
    fs::copy(tiny(), work.path().join("tiny.gguf")).unwrap();
    // An "Ollama" store, written the same way.
    let ollama = Store::new(work.path().join("ollama"), None);
    create_from(&ollama, work.path(), "olla", "FROM ./tiny.gguf\n").unwrap();
    let ours = Store::new(work.path().join("ours"), Some(work.path().join("ollama")));
    let e = ours
        .open("olla")
        .unwrap()
        .expect("found through the Ollama store");
    assert!(e.read_only);
    assert!(e.model_path.starts_with(work.path().join("ollama")));
    assert!(ours
        .list()
        .iter()
        .any(|e| e.name.to_string() == "olla:latest"));
    assert!(
        ours.delete("olla").is_err(),
        "never deletes from Ollama's store"
    );
    // Copying brings the blobs into our store.
    ours.copy("olla", "mine").unwrap();
    let m = ours.open("mine").unwrap().unwrap();
    assert!(!m.read_only && m.model_path.starts_with(work.path().join("ours")));
    assert!(ollama.open("olla").unwrap().is_some());
    assert!(ollama.open("mine").unwrap().is_none());
}
