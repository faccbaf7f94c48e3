//! `GenerateParams::json`: with the committed tiny model, constrained generation yields one
//! complete JSON object for several prompts, seeds, temperatures and token limits; a limit too
//! small for any object ends as `Length` with nothing written.

use std::path::Path;

use bitnet_gguf::engine::generate::{generate, FinishReason, GenerateParams};
use bitnet_gguf::engine::json_constraint::{JsonStatus, JsonValidator};
use bitnet_gguf::engine::model::{LoadOptions, Model};
use bitnet_gguf::engine::sampler::SamplerConfig;

fn tiny_model() -> Model {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-bitnet-b1.58.gguf");
    Model::load(&path, &LoadOptions::default()).expect("loading the tiny model")
}

fn run_prompt(model: &Model, prompt: &str, params: &GenerateParams) -> (String, FinishReason) {
    let prompt = model.tokenizer().encode(prompt, true, false).unwrap();
    let mut session = model.new_session(512);
    let mut text = String::new();
    let stats = generate(&mut session, &prompt, params, &mut |t| {
        text.push_str(t);
        true
    })
    .unwrap();
    assert!(stats.generated_tokens <= params.max_tokens.unwrap_or(usize::MAX));
    (text, stats.finish)
}

fn run(model: &Model, params: &GenerateParams) -> (String, FinishReason) {
    run_prompt(model, "{\"a\": 1}\n{\"b\": 2}\n{\"c\": 3}\n", params)
}

/// Every run, greedy or sampled, with or without a token limit, ends in one complete object,
/// also from prose prompts the model would rather continue as prose.
#[test]
fn json_output_parses_as_an_object() {
    let model = tiny_model();
    let prompts = [
        "{\"a\": 1}\n{\"b\": 2}\n{\"c\": 3}\n",
        "Emma Woodhouse, handsome, clever, and rich,",
        "Describe Mr. Knightley as JSON.",
    ];
    let mut runs = 0;
    for (i, prompt) in prompts.iter().enumerate() {
        for (seed, temperature, max_tokens) in [
            (1, 0.0, None),
            (2, 0.7, Some(300)),
            (3, 1.0, Some(40)),
            (4, 1.5, Some(12)),
            (5, 0.8, Some(4)),
            (6, 2.0, None),
        ] {
            let params = GenerateParams {
                max_tokens,
                sampler: SamplerConfig {
                    temperature,
                    seed: seed + 10 * i as u64,
                    ..SamplerConfig::default()
                },
                stop: vec![],
                json: true,
                ..GenerateParams::default()
            };
            let (text, finish) = run_prompt(&model, prompt, &params);
            let v: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{prompt:?} seed {seed}: {e}: {text:?}"));
            assert!(v.is_object(), "{text:?}");
            assert_eq!(finish, FinishReason::Stop, "{text:?}");
            assert_eq!(
                JsonValidator::new().push_bytes(text.as_bytes()),
                JsonStatus::Complete
            );
            runs += 1;
        }
    }
    assert_eq!(runs, 18);
}

#[test]
fn token_cap_before_completion_reports_length() {
    let model = tiny_model();
    let params = GenerateParams {
        max_tokens: Some(1),
        sampler: SamplerConfig::greedy(),
        stop: vec![],
        json: true,
        ..GenerateParams::default()
    };
    let (text, finish) = run(&model, &params);
    // No single token is a whole object: nothing may be written that cannot be closed.
    assert_eq!(finish, FinishReason::Length);
    assert_eq!(text, "");
}
