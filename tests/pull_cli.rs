//! The `pull` and `create` verbs against a loopback mock of the Hub (`HF_ENDPOINT`): the pulled
//! model is listed and runs by its `hf.co/…` name; `create -q TYPE` converts a checkpoint
//! directory on the fly, and `FROM hf.co/…` pulls first.

mod pull_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bitnet_gguf::serve::store::Store;
use pull_support::{MockFile, MockHub};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn checkpoint_dir() -> PathBuf {
    root().join("tests/fixtures/hf/1bitllm-bitnet-style")
}

fn cli(work: &Path, hub: &MockHub, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bitnet-gguf"))
        .args(args)
        .current_dir(work)
        .env("BITNET_MODELS", work.join("models"))
        .env("HF_ENDPOINT", &hub.endpoint)
        .env("HF_HOME", work.join("hf"))
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_CACHE")
        .env_remove("OLLAMA_MODELS")
        .output()
        .expect("running bitnet-gguf")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn checkpoint_files() -> Vec<MockFile> {
    fs::read_dir(checkpoint_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            MockFile {
                lfs: name.ends_with(".safetensors"),
                bytes: fs::read(e.path()).unwrap(),
                name,
            }
        })
        .collect()
}

#[test]
fn pull_list_run_and_create_from_checkpoints() {
    let hub = MockHub::start();
    let gguf = fs::read(root().join("models/tiny-bitnet-b1.58.gguf")).unwrap();
    hub.add_repo(
        "org/tiny-gguf",
        &"a".repeat(40),
        vec![MockFile {
            name: "ggml-model-i2_s.gguf".into(),
            bytes: gguf.clone(),
            lfs: true,
        }],
    );
    hub.add_repo("org/tiny-st", &"b".repeat(40), checkpoint_files());
    let work = tempfile::tempdir().unwrap();
    let w = work.path();

    let out = ok(&cli(w, &hub, &["pull", "hf.co/org/tiny-gguf"]));
    assert_eq!(out.lines().next(), Some("pulling manifest"), "{out}");
    assert_eq!(out.lines().last(), Some("success"), "{out}");
    let list = ok(&cli(w, &hub, &["list"]));
    assert!(list.contains("hf.co/org/tiny-gguf:latest"), "{list}");
    let text = ok(&cli(
        w,
        &hub,
        &[
            "run",
            "-m",
            "hf.co/org/tiny-gguf",
            "-p",
            "Once upon a time",
            "-n",
            "4",
            "--temp",
            "0",
        ],
    ));
    // A named model answers through its chat template: some text, whatever it is.
    assert!(!text.trim().is_empty(), "{text:?}");
    // Positionally too, as `ollama run MODEL PROMPT`.
    let text = ok(&cli(
        w,
        &hub,
        &["run", "hf.co/org/tiny-gguf", "Once upon a time", "-n", "4"],
    ));
    assert!(!text.trim().is_empty(), "{text:?}");

    // A checkpoint directory, converted to the type -q names.
    let ckpt = w.join("ckpt");
    fs::create_dir_all(&ckpt).unwrap();
    for f in checkpoint_files() {
        fs::write(ckpt.join(&f.name), &f.bytes).unwrap();
    }
    fs::write(
        w.join("Modelfile"),
        "FROM ./ckpt\nPARAMETER temperature 0.5\n",
    )
    .unwrap();
    ok(&cli(
        w,
        &hub,
        &["create", "st-tq2", "-f", "Modelfile", "-q", "tq2_0"],
    ));
    let store = Store::new(w.join("models"), None);
    let e = store.open("st-tq2").unwrap().expect("created model");
    assert_eq!(e.config.file_type, "TQ2_0");
    assert_eq!(e.params["temperature"], serde_json::json!(0.5));

    // -q on a GGUF still refuses, naming the way that works.
    fs::write(w.join("tiny.gguf"), &gguf).unwrap();
    fs::write(w.join("Modelfile"), "FROM ./tiny.gguf\n").unwrap();
    let out = cli(w, &hub, &["create", "x", "-f", "Modelfile", "-q", "tq2_0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bitnet-gguf quantize"));

    // FROM a Hub repository of safetensors: pulled (converted) first, then inherited.
    fs::write(
        w.join("Modelfile"),
        "FROM hf.co/org/tiny-st\nSYSTEM be brief\n",
    )
    .unwrap();
    ok(&cli(w, &hub, &["create", "st-brief", "-f", "Modelfile"]));
    let base = store
        .open("hf.co/org/tiny-st")
        .unwrap()
        .expect("pulled base");
    let e = store.open("st-brief").unwrap().expect("created model");
    assert_eq!(e.model_path, base.model_path);
    assert_eq!(e.config.file_type, "I2_S");
    assert_eq!(e.system.as_deref(), Some("be brief"));

    let out = cli(w, &hub, &["pull", "llama3"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("hf.co/ORG/REPO"));
}
