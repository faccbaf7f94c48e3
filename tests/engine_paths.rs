//! The committed tiny model against its transformers reference on every kernel path this
//! CPU supports, each forced in turn (one test function: forcing a path is process-wide).

mod engine_support;

use bitnet_kernels::testing::check_required_paths;
use bitnet_kernels::{force_path, kernel_path, KernelPath};
use engine_support::{check_prompt_with, load_model, load_prompts, TOL};

#[test]
fn reference_logits_match_on_every_kernel_path() {
    let model = load_model("models/tiny-bitnet-b1.58.gguf");
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
        force_path(path).unwrap();
        assert_eq!(kernel_path(), path.name());
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
