//! Sampler properties: greedy is argmax, seeds reproduce, each filter does what it says.

use bitnet_gguf::engine::sampler::{argmax, Sampler, SamplerConfig};

fn logits() -> Vec<f32> {
    // A fixed, bumpy distribution over 1000 tokens.
    (0..1000)
        .map(|i| ((i as f32 * 0.37).sin() * 4.0) + ((i * 7919 % 101) as f32 / 50.0))
        .collect()
}

fn draw(cfg: SamplerConfig, n: usize) -> Vec<u32> {
    let mut s = Sampler::new(cfg);
    let l = logits();
    (0..n).map(|_| s.sample(&l, &[])).collect()
}

fn sampling(temperature: f32, top_k: usize, top_p: f32, min_p: f32, seed: u64) -> SamplerConfig {
    SamplerConfig {
        temperature,
        top_k,
        top_p,
        min_p,
        repeat_penalty: 1.0,
        repeat_last_n: 64,
        seed,
        ..SamplerConfig::default()
    }
}

#[test]
fn greedy_is_argmax_with_lowest_id_on_ties() {
    let l = logits();
    let best = argmax(&l);
    assert_eq!(l[best as usize], l.iter().cloned().fold(f32::MIN, f32::max));
    let mut s = Sampler::new(SamplerConfig::greedy());
    assert_eq!(s.sample(&l, &[]), best);
    let ties = [1.0, 3.0, 2.0, 3.0];
    assert_eq!(s.sample(&ties, &[]), 1);
    // Temperature 0 ignores every other setting except the repeat penalty.
    let mut s = Sampler::new(sampling(0.0, 5, 0.5, 0.2, 7));
    assert_eq!(s.sample(&l, &[]), best);
    // NaN never wins.
    assert_eq!(argmax(&[f32::NAN, 1.0, 0.5]), 1);
}

#[test]
fn same_seed_same_tokens_different_seed_different_tokens() {
    let cfg = sampling(1.0, 0, 1.0, 0.0, 1234);
    let a = draw(cfg.clone(), 200);
    let b = draw(cfg.clone(), 200);
    assert_eq!(a, b);
    let c = draw(SamplerConfig { seed: 1235, ..cfg }, 200);
    assert_ne!(a, c);
    // Sampling at temperature 1 over 1000 tokens is not stuck on one token.
    let distinct: std::collections::HashSet<_> = a.iter().collect();
    assert!(distinct.len() > 20, "{}", distinct.len());
}

#[test]
fn top_k_one_is_greedy_and_top_k_limits_the_support() {
    let l = logits();
    let best = argmax(&l);
    assert!(draw(sampling(1.5, 1, 1.0, 0.0, 9), 50)
        .iter()
        .all(|&t| t == best));
    let mut sorted: Vec<u32> = (0..l.len() as u32).collect();
    sorted.sort_by(|&a, &b| l[b as usize].total_cmp(&l[a as usize]));
    let top5: Vec<u32> = sorted[..5].to_vec();
    let drawn = draw(sampling(5.0, 5, 1.0, 0.0, 9), 500);
    assert!(drawn.iter().all(|t| top5.contains(t)));
    // With a high temperature all five show up.
    for t in &top5 {
        assert!(drawn.contains(t), "{t} never drawn");
    }
}

#[test]
fn top_p_keeps_the_smallest_nucleus() {
    // Probabilities 0.5, 0.3, 0.15, 0.05 (as logits).
    let l: Vec<f32> = [0.5f32, 0.3, 0.15, 0.05].iter().map(|p| p.ln()).collect();
    let mut s = Sampler::new(sampling(1.0, 0, 0.75, 0.0, 3));
    let drawn: Vec<u32> = (0..400).map(|_| s.sample(&l, &[])).collect();
    assert!(
        drawn.iter().all(|&t| t <= 1),
        "top-p 0.75 keeps tokens 0 and 1 only"
    );
    assert!(drawn.contains(&0) && drawn.contains(&1));
    let mut s = Sampler::new(sampling(1.0, 0, 0.4, 0.0, 3));
    assert!((0..100).all(|_| s.sample(&l, &[]) == 0));
}

#[test]
fn min_p_drops_unlikely_tokens() {
    let l: Vec<f32> = [0.5f32, 0.3, 0.15, 0.05].iter().map(|p| p.ln()).collect();
    // min_p 0.5: keep p >= 0.25, i.e. tokens 0 and 1.
    let mut s = Sampler::new(sampling(1.0, 0, 1.0, 0.5, 5));
    let drawn: Vec<u32> = (0..400).map(|_| s.sample(&l, &[])).collect();
    assert!(drawn.iter().all(|&t| t <= 1));
    assert!(drawn.contains(&1));
}

#[test]
fn temperature_follows_the_softmax() {
    // Two tokens with logit gap ln(3): at temperature 1, token 0 wins 75% of draws.
    let l = [3f32.ln(), 0.0];
    let mut s = Sampler::new(sampling(1.0, 0, 1.0, 0.0, 11));
    let n = 20_000;
    let zeros = (0..n).filter(|_| s.sample(&l, &[]) == 0).count() as f64 / n as f64;
    assert!((zeros - 0.75).abs() < 0.02, "{zeros}");
    // At temperature 0.5 the odds square: 9:1.
    let mut s = Sampler::new(sampling(0.5, 0, 1.0, 0.0, 11));
    let zeros = (0..n).filter(|_| s.sample(&l, &[]) == 0).count() as f64 / n as f64;
    assert!((zeros - 0.9).abs() < 0.02, "{zeros}");
}

#[test]
fn repeat_penalty_discourages_recent_tokens() {
    let l = [2.0f32, 1.9, -1.0];
    let mut cfg = SamplerConfig::greedy();
    cfg.repeat_penalty = 1.5;
    cfg.repeat_last_n = 2;
    let mut s = Sampler::new(cfg.clone());
    assert_eq!(s.sample(&l, &[]), 0);
    // 2.0 / 1.5 < 1.9: token 1 now wins.
    assert_eq!(s.sample(&l, &[0]), 1);
    // Only the last `repeat_last_n` tokens count.
    assert_eq!(s.sample(&l, &[0, 2, 2]), 0);
    // Negative logits are multiplied (pushed further down).
    let neg = [-1.0f32, -1.2];
    assert_eq!(s.sample(&neg, &[0]), 1);
}

#[test]
fn defaults_are_ollamas() {
    let d = SamplerConfig::default();
    assert_eq!(d.temperature, 0.8);
    assert_eq!(d.top_k, 40);
    assert_eq!(d.top_p, 0.9);
    assert_eq!(d.min_p, 0.0);
    assert_eq!(d.repeat_penalty, 1.0);
    assert_eq!(d.repeat_last_n, 64);
    // A random seed still samples valid ids.
    let mut s = Sampler::new(d);
    let l = logits();
    assert!((s.sample(&l, &[]) as usize) < l.len());
}
