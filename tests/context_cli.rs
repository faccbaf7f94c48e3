//! `run` and `chat` with a context smaller than the prompt and the reply: the prompt loses its
//! oldest part and the reply shifts the context instead of ending (the committed tiny model).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use bitnet_gguf::engine::model::{LoadOptions, Model};

const TINY: &str = "models/tiny-bitnet-b1.58.gguf";

fn bitnet_gguf(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitnet-gguf"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running bitnet-gguf");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The numbers after `prompt:` and `generation:` in `run --verbose`'s summary.
fn run_counts(out: &Output) -> (usize, usize) {
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().find(|l| l.starts_with("prompt: ")).unwrap();
    let n = |key: &str| -> usize {
        let rest = &line[line.find(key).unwrap() + key.len()..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    (n("prompt: "), n("generation: "))
}

fn long_prompt() -> String {
    let text = "the quick brown fox jumps over the lazy dog and runs away ".repeat(20);
    let model = Model::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(TINY),
        &LoadOptions::default(),
    )
    .unwrap();
    let n = model.tokenizer().encode(&text, true, true).unwrap().len();
    assert!(n >= 200, "the prompt has {n} tokens");
    text
}

#[test]
fn a_prompt_longer_than_the_context_is_cut_and_generates() {
    let prompt = long_prompt();
    let args = [
        "run",
        "-m",
        TINY,
        "-c",
        "64",
        "-n",
        "10",
        "--ignore-eos",
        "--verbose",
    ];
    let out = bitnet_gguf(&[&args[..], &["-p", &prompt]].concat(), "");
    let (prompt_tokens, generated) = run_counts(&out);
    assert!(prompt_tokens < 64, "{prompt_tokens} prompt tokens");
    assert_eq!(generated, 10);
    // Without a shift it still fits the prompt, and then stops at the full context.
    let args = [
        "run",
        "-m",
        TINY,
        "-c",
        "64",
        "-n",
        "300",
        "--ignore-eos",
        "--verbose",
    ];
    let no_shift = [&args[..], &["--no-context-shift", "-p", &prompt]].concat();
    let (p, g) = run_counts(&bitnet_gguf(&no_shift, ""));
    assert_eq!(
        p + g,
        65,
        "prompt {p} + generated {g}: the context and the last token"
    );
}

#[test]
fn a_reply_longer_than_the_context_shifts_it() {
    let args = [
        "run",
        "-m",
        TINY,
        "-c",
        "64",
        "-n",
        "300",
        "--ignore-eos",
        "--verbose",
    ];
    let out = bitnet_gguf(&[&args[..], &["-p", "Once upon a time"]].concat(), "");
    assert_eq!(run_counts(&out).1, 300);
}

#[test]
fn chat_answers_twenty_turns_in_a_small_context_keeping_the_system_prompt() {
    let turns: String = (0..20)
        .map(|i| format!("tell me about the number {i} and what follows it\n"))
        .collect();
    let args = [
        "chat",
        "-m",
        TINY,
        "-c",
        "64",
        "-n",
        "12",
        "--ignore-eos",
        "--verbose",
        "--system",
        "You are a helpful assistant who answers briefly.",
    ];
    let out = bitnet_gguf(&args, &turns);
    let err = String::from_utf8_lossy(&out.stderr);
    let stats: Vec<&str> = err.lines().filter(|l| l.contains("generated")).collect();
    assert_eq!(stats.len(), 20, "{err}");
    let number_before = |l: &str, key: &str| -> usize {
        let head = &l[..l.find(key).unwrap()];
        let mut word = head
            .split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty());
        word.next_back().unwrap().parse().unwrap()
    };
    let kept: Vec<usize> = stats.iter().map(|l| number_before(l, " kept")).collect();
    for l in &stats {
        assert!(number_before(l, " generated") >= 1, "{l}");
        assert!(number_before(l, " prompt tokens") < 64, "{l}");
    }
    // The system prompt is the protected start of every turn's prompt.
    assert!(kept[0] > 5, "{:?}", stats[0]);
    assert!(kept.iter().all(|&k| k == kept[0]), "{kept:?}");
}
