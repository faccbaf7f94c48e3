//! The committed tiny model against its transformers reference on every kernel path this
//! CPU supports, each on a runtime of its own; and models loaded side by side keep their
//! own runtimes.

mod engine_support;

use std::sync::Arc;

use bitnet_gguf::engine::model::{LoadOptions, Model};
use bitnet_kernels::testing::check_required_paths;
use bitnet_kernels::{KernelPath, Runtime, RuntimeOptions};
use engine_support::{check_prompt_with, load_prompts, repo_path, TOL};

const TINY: &str = "models/tiny-bitnet-b1.58.gguf";

fn load_on(opts: RuntimeOptions) -> Model {
    let runtime = Arc::new(Runtime::new(opts).unwrap());
    let opts = LoadOptions {
        runtime: Some(runtime),
        ..Default::default()
    };
    Model::load(&repo_path(TINY), &opts).unwrap()
}

#[test]
fn reference_logits_match_on_every_kernel_path() {
    let prompts = load_prompts("tests/fixtures/tiny-reference/tiny-bitnet-b1.58.prompts.json");
    assert!(!prompts.is_empty());
    let paths: Vec<KernelPath> = KernelPath::ALL
        .into_iter()
        .filter(|p| p.is_supported())
        .collect();
    eprintln!("kernel paths under test: {paths:?}");
    if let Err(e) = check_required_paths(&paths) {
        panic!("{e}");
    }
    for path in paths {
        let model = load_on(RuntimeOptions {
            path: Some(path),
            ..Default::default()
        });
        assert_eq!(model.runtime().path(), path);
        for p in &prompts {
            let c = check_prompt_with(&model, p, TOL);
            eprintln!(
                "{}: {}: max |Δlogit| {:.4}, {} argmax checks",
                path.name(),
                p.name,
                c.max_abs_diff,
                c.top1_checked
            );
            assert!(c.max_abs_diff <= TOL, "{}: {}", path.name(), p.name);
        }
    }
}

/// Loading a second model with another thread count leaves the first one's pool alone, and
/// both run at once, each giving what it gives alone.
#[test]
fn two_models_keep_their_own_pools() {
    let threads = |n| RuntimeOptions {
        threads: Some(n),
        ..Default::default()
    };
    let one = Model::load(
        &repo_path(TINY),
        &LoadOptions {
            threads: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    let three = load_on(threads(3));
    assert_eq!(one.runtime().threads(), 1);
    assert_eq!(three.runtime().threads(), 3);
    assert!(!Arc::ptr_eq(one.runtime(), three.runtime()));

    let prompt = [1u32, 45, 96, 173, 17, 43, 172];
    let alone = |m: &Model| m.new_session(32).forward_all(&prompt).unwrap();
    let (want_one, want_three) = (alone(&one), alone(&three));
    let (got_one, got_three) = std::thread::scope(|s| {
        let a = s.spawn(|| alone(&one));
        let b = s.spawn(|| alone(&three));
        (a.join().unwrap(), b.join().unwrap())
    });
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&got_one), bits(&want_one));
    assert_eq!(bits(&got_three), bits(&want_three));
    // Ternary matmuls give the same bits whatever the thread count; the rest is split by
    // rows, so the two models agree too.
    assert_eq!(bits(&want_one), bits(&want_three));
    assert_eq!(
        one.runtime().threads(),
        1,
        "the first model's pool was resized"
    );
}
