//! `--no-mmap` / `--mmap`: the model read into memory gives the same logits as the mapped
//! file, and `bench` says how the weights are held and how much of them sits in 2 MiB pages.

mod cli_common;

use cli_common::{bitnet_gguf, TINY};

fn stdout_of(args: &[&str]) -> String {
    let out = bitnet_gguf(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_model_read_into_memory_gives_the_mapped_logits() {
    let eval = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "-m",
            TINY,
            "-p",
            "It is a truth universally acknowledged",
            "--json",
            "--top-k",
            "100000",
        ];
        args.extend_from_slice(extra);
        stdout_of(&args)
    };
    let mapped = eval(&[]);
    let v: serde_json::Value = serde_json::from_str(&mapped).unwrap();
    assert!(v["positions"].as_array().unwrap().len() > 3, "{mapped}");
    assert_eq!(mapped, eval(&["--no-mmap"]));
}

#[test]
fn bench_reports_how_the_weights_are_held() {
    // By default the choice depends on how the page cache holds the file (a fresh checkout:
    // small pages, so copied; the policy itself is tested in bitnet-formats), but the field
    // says which it was either way.
    for (extra, no_mmap, in_memory) in [
        (None, false, None),
        (Some("--mmap"), false, Some(false)),
        (Some("--no-mmap"), true, Some(true)),
    ] {
        let mut args = vec![
            "bench", "-m", TINY, "-p", "0", "-n", "2", "-r", "1", "--json",
        ];
        args.extend(extra);
        let out = stdout_of(&args);
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(j["no_mmap"], no_mmap, "{out}");
        let held = j["weights_in_memory"].as_bool();
        assert!(held.is_some(), "{out}");
        if in_memory.is_some() {
            assert_eq!(held, in_memory, "{out}");
        }
        if cfg!(target_os = "linux") {
            let pct = j["weights_huge_page_pct"].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&pct), "{out}");
        }
    }
    let out = stdout_of(&[
        "bench",
        "-m",
        TINY,
        "-p",
        "0",
        "-n",
        "2",
        "-r",
        "1",
        "--no-mmap",
    ]);
    assert!(out.contains("weights: read into memory, "), "{out}");
}

#[test]
fn mmap_and_no_mmap_together_are_refused() {
    let out = bitnet_gguf(&["bench", "-m", TINY, "--mmap", "--no-mmap", "-n", "1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--mmap") && err.contains("--no-mmap"), "{err}");
}

#[test]
fn run_verbose_says_how_the_weights_are_held() {
    for (flag, says) in [
        ("--mmap", "weights mapped"),
        ("--no-mmap", "weights read into memory"),
    ] {
        let out = bitnet_gguf(&[
            "run",
            "-m",
            TINY,
            "-p",
            "It is",
            "-n",
            "1",
            "--raw",
            "--verbose",
            flag,
        ]);
        assert!(out.status.success(), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{flag}: {err}");
    }
}
