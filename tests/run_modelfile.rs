//! `bitnet-gguf run NAME PROMPT` with a model created from a Modelfile behaves like
//! `ollama run`: the Modelfile's PARAMETERs are the defaults, flags override them, and the
//! prompt is the user's message after its SYSTEM and MESSAGEs, rendered with the chat template.

mod cli_common;

use std::path::Path;
use std::process::{Command, Output};

use bitnet_gguf::engine::chat::ChatMessage;
use bitnet_gguf::engine::generate::{generate, GenerateParams};
use bitnet_gguf::engine::model::{LoadOptions, Model};
use bitnet_gguf::engine::sampler::SamplerConfig;
use cli_common::{output_with_stdin, succeeded, tiny, verbose_counts};

const QUESTION: &str = "Who is Mr. Knightley?";

/// The binary with `args` on the store `store`.
fn store_cli(store: &Path, args: &[&str]) -> Command {
    let mut cmd = cli_common::cli(args);
    cmd.env("BITNET_MODELS", store).env_remove("OLLAMA_MODELS");
    cmd
}

fn cli(store: &Path, args: &[&str]) -> Output {
    let out = store_cli(store, args)
        .output()
        .expect("running bitnet-gguf");
    succeeded(args, out)
}

/// Runs with `input` on standard input.
fn cli_stdin(store: &Path, args: &[&str], input: &str) -> Output {
    succeeded(args, output_with_stdin(store_cli(store, args), input))
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn create(store: &Path, name: &str, modelfile: &str) {
    let mf = store.join(format!("{name}.Modelfile"));
    std::fs::write(&mf, format!("FROM {}\n{modelfile}", tiny().display())).unwrap();
    cli(store, &["create", name, "-f", mf.to_str().unwrap()]);
}

/// The reply `ollama run` semantics call for, computed with the library directly.
fn expected_reply(
    model: &Model,
    messages: &[ChatMessage],
    params: &GenerateParams,
) -> (usize, String) {
    let rendered = model.chat_template().render(messages, true).unwrap();
    let tok = model.tokenizer();
    let ids = tok.encode(&rendered, tok.add_bos_default(), true).unwrap();
    let mut session = model.new_session(model.default_n_ctx());
    let mut text = String::new();
    generate(&mut session, &ids, params, &mut |t| {
        text.push_str(t);
        true
    })
    .unwrap();
    (ids.len(), text)
}

#[test]
fn run_applies_the_modelfile_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    create(
        store,
        "emma",
        "PARAMETER temperature 0\nPARAMETER num_predict 12\nSYSTEM \"\"\"You are Emma.\"\"\"\n\
         MESSAGE user Hello\nMESSAGE assistant Good day, sir.\n",
    );
    let model = Model::load(&tiny(), &LoadOptions::default()).unwrap();
    let messages = vec![
        ChatMessage::new("system", "You are Emma."),
        ChatMessage::new("user", "Hello"),
        ChatMessage::new("assistant", "Good day, sir."),
        ChatMessage::new("user", QUESTION),
    ];
    let greedy = |n: usize| GenerateParams {
        max_tokens: Some(n),
        sampler: SamplerConfig::greedy(),
        stop: model.chat_template().stop_strings().to_vec(),
        json: false,
        ..GenerateParams::default()
    };
    let (prompt_len, reply) = expected_reply(&model, &messages, &greedy(12));
    assert!(!reply.trim().is_empty());

    // PARAMETERs (greedy, 12 tokens) and SYSTEM + MESSAGEs around the prompt; only the reply
    // is printed.
    let out = cli(store, &["run", "emma", QUESTION, "--verbose"]);
    assert_eq!(stdout(&out), format!("{reply}\n"));
    assert_eq!(verbose_counts(&out), (prompt_len, 12));
    // The words after the name form the prompt; -m/-p say the same.
    let words: Vec<&str> = QUESTION.split(' ').collect();
    let mut args = vec!["run", "emma"];
    args.extend(&words);
    assert_eq!(stdout(&cli(store, &args)), format!("{reply}\n"));
    assert_eq!(
        stdout(&cli(store, &["run", "-m", "emma", "-p", QUESTION])),
        format!("{reply}\n")
    );

    // Piped standard input is the prompt; `chat` answers each line with the same Modelfile.
    let piped = cli_stdin(store, &["run", "emma"], QUESTION);
    assert_eq!(stdout(&piped), format!("{reply}\n"));
    let chat = cli_stdin(store, &["chat", "-m", "emma"], &format!("{QUESTION}\n"));
    assert_eq!(stdout(&chat), format!("{reply}\n"));

    // Flags win: -n, --system.
    let out = cli(store, &["run", "emma", QUESTION, "-n", "5", "--verbose"]);
    assert_eq!(verbose_counts(&out).1, 5);
    assert_eq!(
        stdout(&out),
        format!("{}\n", expected_reply(&model, &messages, &greedy(5)).1)
    );
    let mut other = messages.clone();
    other[0] = ChatMessage::new("system", "You are Harriet.");
    let out = cli(
        store,
        &[
            "run",
            "emma",
            QUESTION,
            "--system",
            "You are Harriet.",
            "--verbose",
        ],
    );
    let (other_len, other_reply) = expected_reply(&model, &other, &greedy(12));
    assert_eq!(verbose_counts(&out).0, other_len);
    assert_eq!(stdout(&out), format!("{other_reply}\n"));

    // --format json: one JSON object, within the Modelfile's 12 tokens.
    let out = cli(store, &["run", "emma", QUESTION, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim_end()).unwrap();
    assert!(v.is_object(), "{v}");

    // --raw continues the text itself, with the Modelfile's PARAMETERs.
    let out = cli(
        store,
        &["run", "emma", "--raw", "-p", "It is a truth", "--verbose"],
    );
    let tok = model.tokenizer();
    let raw_ids = tok
        .encode("It is a truth", tok.add_bos_default(), true)
        .unwrap();
    assert_eq!(verbose_counts(&out), (raw_ids.len(), 12));
    assert!(stdout(&out).starts_with("It is a truth"));
}

#[test]
fn run_applies_stop_seed_and_context_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    let model = Model::load(&tiny(), &LoadOptions::default()).unwrap();
    let messages = vec![ChatMessage::new("user", QUESTION)];
    let params = GenerateParams {
        max_tokens: Some(24),
        sampler: SamplerConfig::greedy(),
        stop: model.chat_template().stop_strings().to_vec(),
        json: false,
        ..GenerateParams::default()
    };
    let (_, reply) = expected_reply(&model, &messages, &params);
    // A stop string taken from the middle of the greedy reply cuts it there.
    let words: Vec<&str> = reply
        .split_whitespace()
        .filter(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
        .filter(|w| reply.find(*w).is_some_and(|at| at > 0))
        .collect();
    assert!(words.len() >= 2, "{reply:?}");
    let stop = words[words.len() / 2];
    let cut = &reply[..reply.find(stop).unwrap()];
    create(
        store,
        "stopper",
        &format!("PARAMETER temperature 0\nPARAMETER num_predict 24\nPARAMETER stop \"{stop}\"\n"),
    );
    assert_eq!(
        stdout(&cli(store, &["run", "stopper", QUESTION])),
        format!("{cut}\n")
    );

    // Penalties from the Modelfile change the greedy reply.
    create(
        store,
        "penalised",
        "PARAMETER temperature 0\nPARAMETER num_predict 24\nPARAMETER frequency_penalty 2\n",
    );
    let penalised = stdout(&cli(store, &["run", "penalised", QUESTION]));
    assert_ne!(penalised, format!("{reply}\n"));

    // A fixed seed makes sampled replies repeat; another seed on the command line changes it.
    create(
        store,
        "seeded",
        "PARAMETER temperature 1.5\nPARAMETER seed 7\nPARAMETER num_predict 32\nPARAMETER num_ctx 128\n",
    );
    let a = cli(store, &["run", "seeded", QUESTION, "--verbose"]);
    let b = cli(store, &["run", "seeded", QUESTION]);
    assert_eq!(stdout(&a), stdout(&b));
    let c = cli(store, &["run", "seeded", QUESTION, "--seed", "8"]);
    assert_ne!(stdout(&a), stdout(&c));
    // num_ctx sets the context; -c overrides it.
    assert!(String::from_utf8_lossy(&a.stderr).contains("context 128"));
    let d = cli(
        store,
        &["run", "seeded", QUESTION, "-c", "200", "--verbose"],
    );
    assert!(String::from_utf8_lossy(&d.stderr).contains("context 200"));
}
