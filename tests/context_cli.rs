//! `run` and `chat` with a context smaller than the prompt and the reply: the prompt loses its
//! oldest part and the reply shifts the context instead of ending (the committed tiny model).

mod cli_common;

use std::process::Output;

use bitnet_gguf::engine::model::{LoadOptions, Model};
use cli_common::{cli, output_with_stdin, succeeded, tiny, verbose_counts, TINY};

fn bitnet_gguf(args: &[&str], stdin: &str) -> Output {
    succeeded(args, output_with_stdin(cli(args), stdin))
}

fn long_prompt() -> String {
    let text = "the quick brown fox jumps over the lazy dog and runs away ".repeat(20);
    let model = Model::load(&tiny(), &LoadOptions::default()).unwrap();
    let n = model.tokenizer().encode(&text, true, true).unwrap().len();
    assert!(n >= 200, "the prompt has {n} tokens");
    text
}

/// `run --verbose` of the tiny model in a 64-token context, generating `n` tokens.
fn run_in_64(n: &str) -> [&str; 9] {
    [
        "run",
        "-m",
        TINY,
        "-c",
        "64",
        "-n",
        n,
        "--ignore-eos",
        "--verbose",
    ]
}

#[test]
fn a_prompt_longer_than_the_context_is_cut_and_generates() {
    let prompt = long_prompt();
    let out = bitnet_gguf(&[&run_in_64("10")[..], &["-p", &prompt]].concat(), "");
    let (prompt_tokens, generated) = verbose_counts(&out);
    assert!(prompt_tokens < 64, "{prompt_tokens} prompt tokens");
    assert_eq!(generated, 10);
    // Without a shift it still fits the prompt, and then stops at the full context.
    let no_shift = [
        &run_in_64("300")[..],
        &["--no-context-shift", "-p", &prompt],
    ]
    .concat();
    let (p, g) = verbose_counts(&bitnet_gguf(&no_shift, ""));
    assert_eq!(
        p + g,
        65,
        "prompt {p} + generated {g}: the context and the last token"
    );
}

#[test]
fn a_reply_longer_than_the_context_shifts_it() {
    let out = bitnet_gguf(
        &[&run_in_64("300")[..], &["-p", "Once upon a time"]].concat(),
        "",
    );
    assert_eq!(verbose_counts(&out).1, 300);
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
