//! `bitnet-gguf dummy` writes each ternary type in the dialect of the tools that read it:
//! the TQ types under upstream llama.cpp's `bitnet` architecture (with the 2B4T activation
//! as a key), the fork's types under the fork's architecture names.

mod cli_common;

use cli_common::bitnet_gguf;

fn metadata(path: &std::path::Path) -> Vec<(String, serde_json::Value)> {
    let out = bitnet_gguf(&["inspect", "--json", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| (kv["key"].as_str().unwrap().to_string(), kv["value"].clone()))
        .collect()
}

fn get<'a>(meta: &'a [(String, serde_json::Value)], key: &str) -> Option<&'a serde_json::Value> {
    meta.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

#[test]
fn tq_dummies_use_the_upstream_architecture_and_still_run() {
    let dir = tempfile::tempdir().unwrap();
    for (ty, arch, act) in [
        ("tq2_0", "bitnet", Some("relu2")),
        ("tq1_0", "bitnet", Some("relu2")),
        ("i2_s", "bitnet-b1.58", None),
        ("tl2", "bitnet-b1.58", None),
    ] {
        let path = dir.path().join(format!("tiny-{ty}.gguf"));
        let out = bitnet_gguf(&[
            "dummy",
            "--shape",
            "tiny",
            "--type",
            ty,
            "-o",
            path.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{ty}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta = metadata(&path);
        assert_eq!(
            get(&meta, "general.architecture").and_then(|v| v.as_str()),
            Some(arch),
            "{ty}"
        );
        assert_eq!(
            get(&meta, &format!("{arch}.hidden_act")).and_then(|v| v.as_str()),
            act,
            "{ty}"
        );
        assert!(get(&meta, &format!("{arch}.block_count")).is_some(), "{ty}");
        // The engine loads it and produces finite next-token scores.
        let out = bitnet_gguf(&[
            "eval",
            "-m",
            path.to_str().unwrap(),
            "-p",
            "Emma",
            "--json",
            "--top-k",
            "2",
        ]);
        assert!(
            out.status.success(),
            "{ty}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let top = &v["positions"][0]["top"][0];
        assert!(top[1].as_f64().is_some_and(f64::is_finite), "{ty}: {v}");
    }
}
