//! The store under concurrent writers, crashes and bad input, through the real binary: a
//! `create` and a blob upload paused by `BITNET_FAILPOINT` while `rm` garbage-collects, a
//! `create` killed mid-copy, refused `FROM` files, broken templates, case-insensitive names,
//! the store format version, and Ctrl-C during `quantize`.

mod cli_common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cli_common::{cli, tiny, ServeProcess};
use sha2::{Digest, Sha256};

struct Work {
    dir: tempfile::TempDir,
}

impl Work {
    fn new() -> Work {
        Work {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn store(&self) -> PathBuf {
        self.path().join("models")
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = cli(args);
        c.env("BITNET_MODELS", self.store())
            .env("HOME", self.path())
            .env_remove("OLLAMA_MODELS")
            .env_remove("BITNET_FAILPOINT")
            .stdin(Stdio::null());
        c
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }
    /// A distinct GGUF: the tiny model with `pad` trailing bytes derived from `seed`.
    fn gguf(&self, seed: u8, pad: usize) -> PathBuf {
        let p = self.path().join(format!("m{seed}.gguf"));
        let mut bytes = fs::read(tiny()).unwrap();
        bytes.extend((0..pad).map(|i| (i as u8).wrapping_mul(31) ^ seed));
        fs::write(&p, bytes).unwrap();
        p
    }
    fn modelfile(&self, name: &str, text: &str) -> String {
        let p = self.path().join(format!("{name}.Modelfile"));
        fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }
    fn create(&self, name: &str, text: &str) -> Output {
        let mf = self.modelfile(name, text);
        self.run(&["create", name, "-f", &mf])
    }
}

fn wait_for(path: &Path, what: &str) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{what}: {} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Every manifest's layers exist, every blob is referenced, and no temporary file is left.
fn assert_store_clean(store: &Path) {
    let mut used = std::collections::HashSet::new();
    for m in files_under(&store.join("manifests")) {
        let v: serde_json::Value = serde_json::from_slice(&fs::read(&m).unwrap()).unwrap();
        let layers = v["layers"].as_array().unwrap().iter().chain([&v["config"]]);
        for l in layers {
            let name = l["digest"].as_str().unwrap().replacen(':', "-", 1);
            assert!(
                store.join("blobs").join(&name).is_file(),
                "{} references missing blob {name}",
                m.display()
            );
            used.insert(name);
        }
    }
    for b in files_under(&store.join("blobs")) {
        let n = b.file_name().unwrap().to_string_lossy().into_owned();
        assert!(used.contains(&n), "orphan or temporary blob file {n}");
    }
    for f in files_under(store) {
        let n = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!n.contains(".tmp"), "temporary file left: {}", f.display());
    }
    assert!(files_under(&store.join("tmp")).is_empty(), "tmp/ not empty");
}

fn serve(w: &Work, failpoint: Option<&str>) -> ServeProcess {
    let mut c = w.cmd(&["serve"]);
    c.stderr(Stdio::null());
    if let Some(f) = failpoint {
        c.env("BITNET_FAILPOINT", f);
    }
    ServeProcess::start(c)
}

fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    read_response(s)
}

fn read_response(mut s: TcpStream) -> (u16, String) {
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (code, body)
}

fn digest_of(bytes: &[u8]) -> String {
    let h = Sha256::digest(bytes);
    format!(
        "sha256:{}",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

#[test]
fn paused_create_and_upload_survive_rm_and_gc() {
    let w = Work::new();
    let keep = w.gguf(1, 0);
    let victim = w.gguf(2, 4096);
    let paused = w.gguf(3, 8192);
    let k = keep.display().to_string();
    assert!(w.create("keep", &format!("FROM {k}\n")).status.success());
    let v = victim.display().to_string();
    assert!(w
        .create("victim", &format!("FROM {v}\nSYSTEM only-victim\n"))
        .status
        .success());

    let create_go = w.path().join("create-go");
    let upload_go = w.path().join("upload-go");
    let server = serve(
        &w,
        Some(&format!("upload-mid-body={}", upload_go.display())),
    );
    let mf = w.modelfile(
        "paused",
        &format!("FROM {}\nSYSTEM paused\n", paused.display()),
    );
    let create = w
        .cmd(&["create", "paused", "-f", &mf])
        .env(
            "BITNET_FAILPOINT",
            format!("create-before-manifest={}", create_go.display()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&w.path().join("create-go.reached"), "create failpoint");

    // Half an upload of a fourth model, then the failpoint holds the handler.
    let upload = {
        let mut b = fs::read(tiny()).unwrap();
        b.extend(std::iter::repeat_n(7u8, 3 << 20));
        b
    };
    let digest = digest_of(&upload);
    let mut s = TcpStream::connect(&server.addr).unwrap();
    write!(
        s,
        "POST /api/blobs/{digest} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        upload.len()
    )
    .unwrap();
    let half = upload.len() / 2;
    s.write_all(&upload[..half]).unwrap();
    wait_for(&w.path().join("upload-go.reached"), "upload failpoint");

    // While both are paused: rm another model, which garbage-collects.
    w.ok(&["rm", "victim"]);
    assert!(!w.ok(&["list"]).contains("victim"));

    fs::write(&create_go, "").unwrap();
    fs::write(&upload_go, "").unwrap();
    s.write_all(&upload[half..]).unwrap();
    let (code, body) = read_response(s);
    assert!(code == 200 || code == 201, "upload answered {code}: {body}");
    let out = create.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "paused create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let req =
        serde_json::json!({"model": "uploaded", "files": {"m.gguf": digest}, "stream": false});
    let (code, body) = http(
        &server.addr,
        "POST",
        "/api/create",
        req.to_string().as_bytes(),
    );
    assert_eq!(code, 200, "create from the uploaded blob: {body}");

    let list = w.ok(&["list"]);
    for name in ["keep", "paused", "uploaded"] {
        assert!(
            list.contains(&format!("{name}:latest")),
            "{name} missing:\n{list}"
        );
        w.ok(&["show", name]);
    }
    assert_store_clean(&w.store());
}

#[test]
fn upload_mismatch_is_refused_and_big_uploads_stream() {
    let w = Work::new();
    let server = serve(&w, None);
    // Larger than the server's default body limit (32 MiB).
    let big = vec![5u8; 40 << 20];
    let digest = digest_of(&big);
    let (code, body) = http(&server.addr, "POST", &format!("/api/blobs/{digest}"), &big);
    assert_eq!(code, 201, "{body}");
    let (code, _) = http(&server.addr, "HEAD", &format!("/api/blobs/{digest}"), b"");
    assert_eq!(code, 200);
    let wrong = digest_of(b"something else");
    let (code, body) = http(
        &server.addr,
        "POST",
        &format!("/api/blobs/{wrong}"),
        b"not it",
    );
    assert_eq!(code, 400);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["error"].as_str().unwrap().contains("digest"), "{body}");
    assert!(!w
        .store()
        .join("blobs")
        .join(wrong.replacen(':', "-", 1))
        .exists());
    assert!(files_under(&w.store().join("tmp")).is_empty());
}

#[test]
fn killed_create_leaves_a_temp_the_next_open_sweeps() {
    let w = Work::new();
    let big = w.gguf(9, 8 << 20);
    let go = w.path().join("never");
    let mf = w.modelfile("k", &format!("FROM {}\n", big.display()));
    let mut child = w
        .cmd(&["create", "k", "-f", &mf])
        .env(
            "BITNET_FAILPOINT",
            format!("blob-copy-mid={}", go.display()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&w.path().join("never.reached"), "copy failpoint");
    let temps = files_under(&w.store().join("tmp"));
    assert!(!temps.is_empty(), "no temp file while copying");
    child.kill().unwrap();
    child.wait().unwrap();
    // A resumable download's partial file is not a leftover.
    fs::create_dir_all(w.store().join("partial")).unwrap();
    fs::write(w.store().join("partial/sha256-abc.part"), "x").unwrap();
    w.ok(&["list"]);
    for t in temps {
        assert!(!t.exists(), "{} survived the next store open", t.display());
    }
    assert!(w.store().join("partial/sha256-abc.part").exists());
    assert_store_clean(&w.store());
}

#[test]
fn create_refuses_non_gguf_files_at_once_and_leaves_nothing() {
    let w = Work::new();
    let text = w.path().join("notes.txt");
    fs::write(&text, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    let truncated = w.path().join("cut.gguf");
    fs::write(&truncated, &fs::read(tiny()).unwrap()[..4096]).unwrap();
    for (file, expect) in [
        (text.display().to_string(), "not a GGUF"),
        ("/dev/zero".to_string(), "not a regular file"),
        (truncated.display().to_string(), "cut.gguf"),
    ] {
        let mut child = w
            .cmd(&[
                "create",
                "bad",
                "-f",
                &w.modelfile("bad", &format!("FROM {file}\n")),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > Duration::from_secs(20) {
                child.kill().unwrap();
                panic!("create FROM {file} did not end");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(err.contains(&file), "error does not name {file}: {err}");
        assert!(
            err.contains(expect),
            "error for {file} lacks '{expect}': {err}"
        );
        assert!(!err.contains("sha256"), "error names a blob: {err}");
        assert!(
            files_under(&w.store().join("blobs")).is_empty(),
            "blob left by a failed create FROM {file}"
        );
    }
    assert_store_clean(&w.store());
}

#[test]
fn broken_template_is_refused_by_create() {
    let w = Work::new();
    let t = tiny().display().to_string();
    let out = w.create(
        "bt",
        &format!("FROM {t}\nTEMPLATE \"{{{{ if .System }}{{{{ .System\"\n"),
    );
    assert!(!out.status.success(), "broken template accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.to_lowercase().contains("template"), "{err}");
    assert!(!w.ok(&["list"]).contains("bt:"));
    assert_store_clean(&w.store());
}

#[test]
fn names_are_case_insensitive() {
    let w = Work::new();
    let t = tiny().display().to_string();
    assert!(w.create("bennet", &format!("FROM {t}\n")).status.success());
    w.ok(&["cp", "bennet", "BENNET"]);
    let list = w.ok(&["list"]);
    assert!(list.contains("BENNET:latest"), "{list}");
    assert!(
        !list.contains("bennet:latest"),
        "cp onto another case kept both:\n{list}"
    );
    w.ok(&["rm", "bennet"]);
    assert!(!w.run(&["show", "bennet"]).status.success());
    assert!(!w.run(&["show", "BENNET"]).status.success());

    // create onto another case replaces too.
    assert!(w.create("Mixed", &format!("FROM {t}\n")).status.success());
    assert!(w
        .create("mixed", &format!("FROM {t}\nSYSTEM s\n"))
        .status
        .success());
    let list = w.ok(&["list"]);
    assert!(
        list.contains("mixed:latest") && !list.contains("Mixed:latest"),
        "{list}"
    );

    // A store that already holds two such names (an older binary wrote them) keeps both.
    let dir = w.store().join("manifests/registry.ollama.ai/library");
    fs::create_dir_all(dir.join("MIXED")).unwrap();
    fs::copy(dir.join("mixed/latest"), dir.join("MIXED/latest")).unwrap();
    let list = w.ok(&["list"]);
    assert!(
        list.contains("mixed:latest") && list.contains("MIXED:latest"),
        "{list}"
    );
    assert!(list.contains("differ only in case"), "not flagged:\n{list}");
    let out = w.run(&["rm", "Mixed"]);
    assert!(
        !out.status.success(),
        "rm of an inexact name matching two succeeded"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("ambiguous"));
    w.ok(&["rm", "MIXED"]);
    assert!(
        dir.join("mixed/latest").is_file(),
        "rm removed the other one"
    );
    assert!(!dir.join("MIXED/latest").exists());
    w.ok(&["show", "mixed"]);
    assert_store_clean(&w.store());
}

#[test]
fn a_newer_store_format_is_refused() {
    let w = Work::new();
    fs::create_dir_all(w.store()).unwrap();
    fs::write(w.store().join("store-version"), "999\n").unwrap();
    let t = tiny().display().to_string();
    let out = w.create("x", &format!("FROM {t}\n"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("store-version") && err.contains("999"),
        "{err}"
    );
    assert!(!w.store().join("blobs").exists());
}

#[test]
fn serve_refuses_a_newer_store_and_sweeps_dead_temps_at_start() {
    let w = Work::new();
    fs::create_dir_all(w.store().join("tmp")).unwrap();
    fs::write(w.store().join("store-version"), "999\n").unwrap();
    let out = w.run(&["serve", "--host", "127.0.0.1", "--port", "0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("store-version") && err.contains("999"),
        "{err}"
    );

    // A temp file of a writer that is gone (no live lease holds its id) is removed when the
    // server starts, before any request.
    fs::write(w.store().join("store-version"), "1\n").unwrap();
    let stale = w.store().join("tmp").join("dead-writer.0");
    fs::write(&stale, b"half a blob").unwrap();
    let mut child = w
        .cmd(&["serve", "--host", "127.0.0.1", "--port", "0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while stale.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        !stale.exists(),
        "the dead writer's temp file survived the server's start"
    );
}

#[test]
fn a_store_gets_a_version_file() {
    let w = Work::new();
    let t = tiny().display().to_string();
    assert!(w.create("x", &format!("FROM {t}\n")).status.success());
    let v = fs::read_to_string(w.store().join("store-version")).unwrap();
    assert_eq!(v.trim(), "1");
}

#[test]
fn concurrent_creates_beside_a_copy_and_delete_storm() {
    let w = Work::new();
    let t = tiny().display().to_string();
    assert!(w.create("base", &format!("FROM {t}\n")).status.success());
    let creates: Vec<(String, Child)> = (0..8u8)
        .map(|i| {
            let name = format!("c{i}");
            let g = w.gguf(100 + i, 16 << 20);
            let mf = w.modelfile(&name, &format!("FROM {}\nSYSTEM s{i}\n", g.display()));
            let child = w
                .cmd(&["create", &name, "-f", &mf])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (name, child)
        })
        .collect();
    // The storm: every rm garbage-collects while the creates write their blobs.
    for i in 0..12 {
        let tmp = format!("storm{i}");
        w.ok(&["cp", "base", &tmp]);
        w.ok(&["rm", &tmp]);
    }
    for (name, child) in creates {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "create {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let list = w.ok(&["list"]);
    for i in 0..8 {
        assert!(list.contains(&format!("c{i}:latest")), "{list}");
        w.ok(&["show", &format!("c{i}")]);
    }
    assert_store_clean(&w.store());
}

#[test]
fn interrupted_quantize_leaves_no_temp_file() {
    let w = Work::new();
    let out_dir = w.path().join("out");
    fs::create_dir_all(&out_dir).unwrap();
    let go = w.path().join("never");
    let t = tiny().display().to_string();
    let dst = out_dir.join("q.gguf").display().to_string();
    let mut child = w
        .cmd(&["quantize", "--type", "tq2_0", &t, &dst])
        .env(
            "BITNET_FAILPOINT",
            format!("gguf-write-mid={}", go.display()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&w.path().join("never.reached"), "write failpoint");
    assert!(
        !files_under(&out_dir).is_empty(),
        "no temp file while writing"
    );
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(
        files_under(&out_dir).is_empty(),
        "left behind: {:?}",
        files_under(&out_dir)
    );
}
