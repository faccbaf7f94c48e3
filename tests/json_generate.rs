//! `GenerateParams::json`: with the committed tiny model, constrained generation yields one
//! JSON object for several seeds and temperatures, and a token cap hit first ends as `Length`.

use std::path::Path;

use bitnet_gguf::generate::{generate, FinishReason, GenerateParams};
use bitnet_gguf::json_constraint::{JsonStatus, JsonValidator};
use bitnet_gguf::model::{LoadOptions, Model};
use bitnet_gguf::sampler::SamplerConfig;

fn tiny_model() -> Model {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/tiny-bitnet-b1.58.gguf");
    Model::load(&path, &LoadOptions::default()).expect("loading the tiny model")
}

fn run(model: &Model, params: &GenerateParams) -> (String, FinishReason) {
    let prompt = model
        .tokenizer()
        .encode("{\"a\": 1}\n{\"b\": 2}\n{\"c\": 3}\n", true, false)
        .unwrap();
    let mut session = model.new_session(512);
    let mut text = String::new();
    let stats = generate(&mut session, &prompt, params, &mut |t| {
        text.push_str(t);
        true
    })
    .unwrap();
    (text, stats.finish)
}

#[test]
fn json_output_parses_as_an_object() {
    let model = tiny_model();
    let mut completed = 0;
    for (seed, temperature) in [(1, 0.0), (2, 0.7), (3, 1.0), (4, 1.5), (5, 0.8), (6, 2.0)] {
        let params = GenerateParams {
            max_tokens: Some(300),
            sampler: SamplerConfig {
                temperature,
                seed,
                ..SamplerConfig::default()
            },
            stop: vec![],
            json: true,
        };
        let (text, finish) = run(&model, &params);
        let status = JsonValidator::new().push_bytes(text.as_bytes());
        match finish {
            FinishReason::Stop => {
                let v: serde_json::Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("seed {seed}: {e}: {text:?}"));
                assert!(v.is_object(), "{text:?}");
                assert_eq!(status, JsonStatus::Complete);
                completed += 1;
            }
            // The cap came first: the text is still a valid prefix, nothing closed for it.
            FinishReason::Length => {
                assert_eq!(status, JsonStatus::Prefix, "{text:?}")
            }
        }
    }
    eprintln!("completed {completed} of 6");
}

#[test]
fn token_cap_before_completion_reports_length() {
    let model = tiny_model();
    let params = GenerateParams {
        max_tokens: Some(1),
        sampler: SamplerConfig::greedy(),
        stop: vec![],
        json: true,
    };
    let (text, finish) = run(&model, &params);
    assert_eq!(finish, FinishReason::Length);
    assert_eq!(
        JsonValidator::new().push_bytes(text.as_bytes()),
        JsonStatus::Prefix,
        "{text:?}"
    );
}
