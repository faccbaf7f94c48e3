//! The `eval --json` and `run` verbs end to end on the committed tiny model.

mod cli_common;
mod engine_support;

use cli_common::bitnet_gguf;
use engine_support::{load_prompts, TOL};

#[test]
fn eval_json_matches_the_reference() {
    let p = &load_prompts("tests/fixtures/tiny-reference/tiny-bitnet-b1.58.prompts.json")[1];
    let out = bitnet_gguf(&[
        "eval",
        "-m",
        "models/tiny-bitnet-b1.58.gguf",
        "-p",
        &p.text,
        "--json",
        "--top-k",
        "5",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Exactly the two documented keys.
    assert_eq!(v.as_object().unwrap().len(), 2);
    let ids: Vec<u32> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(ids, p.input_ids);
    let positions = v["positions"].as_array().unwrap();
    assert_eq!(positions.len(), ids.len());
    for (pos, entry) in positions.iter().enumerate() {
        let top = entry["top"].as_array().unwrap();
        assert_eq!(top.len(), 5);
        let logits: Vec<f64> = top.iter().map(|t| t[1].as_f64().unwrap()).collect();
        assert!(
            logits.windows(2).all(|w| w[0] >= w[1]),
            "position {pos} not sorted"
        );
        let (ref_ids, ref_logits) = &p.top20[pos];
        let id0 = top[0][0].as_u64().unwrap() as u32;
        if ref_logits[0] - ref_logits[1] > TOL {
            assert_eq!(id0, ref_ids[0], "position {pos}");
        }
        let i = ref_ids
            .iter()
            .position(|&r| r == id0)
            .expect("our top-1 is in the reference top 20");
        assert!((logits[0] as f32 - ref_logits[i]).abs() <= TOL);
    }
}

#[test]
fn run_uses_the_default_model_and_streams_text() {
    let out = bitnet_gguf(&[
        "run",
        "-p",
        "It is a truth universally acknowledged",
        "-n",
        "12",
        "--temp",
        "0",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("It is a truth universally acknowledged"),
        "{text}"
    );
    assert!(
        text.len() > "It is a truth universally acknowledged".len() + 12,
        "{text}"
    );
}

#[test]
fn eval_refuses_a_missing_model() {
    let out = bitnet_gguf(&["eval", "-m", "no-such-model.gguf", "-p", "x", "--json"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-model"));
}

#[test]
fn serve_takes_llama_cpp_style_np() {
    // `-np N` is llama.cpp's spelling of --parallel: it must reach that flag (clap alone
    // would read it as `-n -p`), which the bad value proves without starting a server.
    for flag in [&["-np", "x"][..], &["-np=x"][..]] {
        let out = bitnet_gguf(&[&["serve"][..], flag].concat());
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("invalid value 'x' for '--parallel"),
            "{flag:?}: {err}"
        );
    }
}
