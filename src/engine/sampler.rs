//! Token sampling in llama.cpp's order: repeat penalty → top-k → top-p → min-p →
//! temperature → draw. Temperature 0 (or below) is greedy argmax, ties to the lowest id.
//! A fixed seed makes the draws reproducible (xoshiro256++ seeded through splitmix64).

/// `seed` value meaning "pick a fresh random seed" (Ollama's and llama.cpp's `-1`).
pub const RANDOM_SEED: u64 = u64::MAX;

/// Sampling parameters: the one type the CLI flags, Modelfile `PARAMETER`s and the server's
/// Ollama and OpenAI options all fill in. `Default` is Ollama's defaults (llama.cpp's, except
/// top-p 0.9 and min-p 0): temperature 0.8, top-k 40, top-p 0.9, min-p 0, repeat penalty 1.0
/// (off) over the last 64 tokens, no presence or frequency penalty, random seed.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerConfig {
    /// 0 (or negative) = greedy.
    pub temperature: f32,
    /// 0 = off.
    pub top_k: usize,
    /// 1.0 = off.
    pub top_p: f32,
    /// 0.0 = off. Keeps tokens with probability >= min_p × the top probability.
    pub min_p: f32,
    /// 1.0 = off. Logits of recent tokens: positive ones divided, negative ones multiplied.
    pub repeat_penalty: f32,
    /// How many of the most recent tokens the penalty looks at (0 = off).
    pub repeat_last_n: usize,
    /// OpenAI's / llama.cpp's presence and frequency penalties over the same recent window as
    /// the repeat penalty (0 = off): a token seen `n` times there loses
    /// `n · frequency_penalty + presence_penalty` from its logit (after the repeat penalty), so
    /// positive values discourage repetition.
    pub presence_penalty: f32,
    pub frequency_penalty: f32,
    /// [`RANDOM_SEED`] = random.
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.9,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: RANDOM_SEED,
        }
    }
}

impl SamplerConfig {
    /// Greedy decoding (temperature 0), everything else off.
    pub fn greedy() -> Self {
        SamplerConfig {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_last_n: 0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: 0,
        }
    }
}

/// xoshiro256++: small, fast, and good enough for sampling.
#[derive(Clone, Debug)]
struct Rng {
    s: [u64; 4],
}

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            // splitmix64
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// A seed that differs from run to run (time and the process's hash keys).
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish()
}

/// Picks the next token from logits; `history` is every token of the sequence so far, most
/// recent last. The engine's [`Sampler`] is one; tests drive generation with simpler ones.
pub trait TokenSampler: Send {
    fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32;
}

/// A sampler with its own random state.
#[derive(Clone, Debug)]
pub struct Sampler {
    cfg: SamplerConfig,
    rng: Rng,
    seed: u64,
    candidates: Vec<(u32, f32)>,
}

impl TokenSampler for Sampler {
    fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        Sampler::sample(self, logits, history)
    }
}

/// A chosen token's log-probability and those of the most likely tokens at its position,
/// under the model's raw distribution: the log-softmax of the logits, before penalties,
/// truncation, temperature and any JSON constraint (what OpenAI reports).
#[derive(Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    pub token: u32,
    pub logprob: f32,
    /// Most likely first, lowest id first among equals.
    pub top: Vec<(u32, f32)>,
}

/// Log-probabilities of `token` and of the `top` most likely tokens (NaN logits count as
/// impossible).
pub fn token_logprob(logits: &[f32], token: u32, top: usize) -> TokenLogprob {
    let max = logits
        .iter()
        .copied()
        .filter(|v| !v.is_nan())
        .fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits
        .iter()
        .filter(|v| !v.is_nan())
        .map(|&v| (v as f64 - max).exp())
        .sum();
    let log_z = max + sum.ln();
    let lp = |v: f32| {
        if v.is_nan() {
            f32::NEG_INFINITY
        } else {
            (v as f64 - log_z) as f32
        }
    };
    let mut best: Vec<(u32, f32)> = Vec::new();
    if top > 0 {
        best = logits
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as u32, lp(v)))
            .collect();
        let by_prob = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if top < best.len() {
            best.select_nth_unstable_by(top - 1, by_prob);
            best.truncate(top);
        }
        best.sort_unstable_by(by_prob);
    }
    TokenLogprob {
        token,
        logprob: logits
            .get(token as usize)
            .map_or(f32::NEG_INFINITY, |&v| lp(v)),
        top: best,
    }
}

/// Index of the largest value, lowest index on ties; NaNs never win.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_value = f32::NEG_INFINITY;
    for (i, &v) in logits.iter().enumerate() {
        if v > best_value {
            best = i;
            best_value = v;
        }
    }
    best as u32
}

impl Sampler {
    pub fn new(cfg: SamplerConfig) -> Self {
        let seed = if cfg.seed == RANDOM_SEED {
            random_seed()
        } else {
            cfg.seed
        };
        Sampler {
            rng: Rng::new(seed),
            seed,
            cfg,
            candidates: Vec::new(),
        }
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// The seed in use (the drawn one when the configuration asked for a random seed).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Picks the next token from `logits` (one per vocabulary entry); `history` holds the
    /// tokens so far (prompt and generated), most recent last, for the repeat penalty.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        if logits.is_empty() {
            return 0;
        }
        let cfg = &self.cfg;
        let (presence, frequency) = (cfg.presence_penalty, cfg.frequency_penalty);
        let penalise = (cfg.repeat_penalty != 1.0 || presence != 0.0 || frequency != 0.0)
            && cfg.repeat_last_n > 0
            && !history.is_empty();
        if cfg.temperature <= 0.0 && !penalise {
            return argmax(logits);
        }

        let candidates = &mut self.candidates;
        candidates.clear();
        candidates.extend(logits.iter().enumerate().map(|(i, &v)| (i as u32, v)));
        if penalise {
            // Indexed by id until the NaN filter below.
            let recent = &history[history.len().saturating_sub(cfg.repeat_last_n)..];
            let mut counts = std::collections::HashMap::with_capacity(recent.len());
            for &id in recent {
                *counts.entry(id).or_insert(0usize) += 1;
            }
            for (&id, &n) in &counts {
                if let Some(c) = candidates.get_mut(id as usize) {
                    if cfg.repeat_penalty != 1.0 {
                        c.1 = if c.1 <= 0.0 {
                            c.1 * cfg.repeat_penalty
                        } else {
                            c.1 / cfg.repeat_penalty
                        };
                    }
                    c.1 -= n as f32 * frequency + presence;
                }
            }
        }
        candidates.retain(|c| !c.1.is_nan());
        if candidates.is_empty() {
            return 0;
        }

        // Highest logit first, lowest id first among equals.
        let by_logit = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));

        if cfg.temperature <= 0.0 {
            return candidates
                .iter()
                .min_by(|a, b| by_logit(a, b))
                .expect("non-empty")
                .0;
        }

        if cfg.top_k > 0 && cfg.top_k < candidates.len() {
            candidates.select_nth_unstable_by(cfg.top_k - 1, by_logit);
            candidates.truncate(cfg.top_k);
        }
        candidates.sort_unstable_by(by_logit);

        if cfg.top_p < 1.0 {
            let max = candidates[0].1 as f64;
            let weights: Vec<f64> = candidates
                .iter()
                .map(|c| (c.1 as f64 - max).exp())
                .collect();
            let total: f64 = weights.iter().sum();
            let mut cumulative = 0.0;
            let mut keep = candidates.len();
            for (i, w) in weights.iter().enumerate() {
                cumulative += w / total;
                if cumulative >= cfg.top_p as f64 {
                    keep = i + 1;
                    break;
                }
            }
            candidates.truncate(keep.max(1));
        }

        if cfg.min_p > 0.0 {
            // p_i >= min_p * p_max  ⇔  logit_i >= logit_max + ln(min_p)
            let threshold = candidates[0].1 as f64 + (cfg.min_p as f64).ln();
            let keep = candidates
                .iter()
                .take_while(|c| c.1 as f64 >= threshold)
                .count();
            candidates.truncate(keep.max(1));
        }

        let inv_t = 1.0 / cfg.temperature as f64;
        let max = candidates[0].1 as f64;
        let weights: Vec<f64> = candidates
            .iter()
            .map(|c| ((c.1 as f64 - max) * inv_t).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        let mut r = self.rng.next_f64() * total;
        for (c, w) in candidates.iter().zip(&weights) {
            if r < *w {
                return c.0;
            }
            r -= w;
        }
        candidates.last().expect("non-empty").0
    }
}

#[cfg(test)]
mod penalty_tests {
    use super::*;

    #[test]
    fn logprobs_are_the_raw_log_softmax() {
        let l = token_logprob(&[0.0, 2.0, 2.0, f32::NAN], 2, 3);
        let z = (1.0f64 + 2.0 * 2f64.exp()).ln();
        assert!((l.logprob as f64 - (2.0 - z)).abs() < 1e-6);
        assert_eq!(l.top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 2, 0]);
        assert!((l.top[2].1 as f64 + z).abs() < 1e-6);
        assert_eq!(token_logprob(&[1.0], 0, 0).top, vec![]);
    }

    /// Greedy with the penalties over a 64-token window.
    fn penalised(presence: f32, frequency: f32) -> Sampler {
        Sampler::new(SamplerConfig {
            repeat_last_n: 64,
            presence_penalty: presence,
            frequency_penalty: frequency,
            ..SamplerConfig::greedy()
        })
    }

    #[test]
    fn presence_and_frequency_penalties_follow_counts_in_the_window() {
        // Token 0 leads by 1.0; it was seen twice, token 1 once.
        let logits = [3.0, 2.0, 1.5];
        let history = [0, 1, 0];
        assert_eq!(penalised(0.0, 0.0).sample(&logits, &history), 0);
        // Frequency 0.6: token 0 loses 1.2, token 1 loses 0.6 → 1.8, 1.4, 1.5.
        assert_eq!(penalised(0.0, 0.6).sample(&logits, &history), 0);
        // Frequency 0.8: 1.4, 1.2, 1.5 → the unseen token 2 wins.
        assert_eq!(penalised(0.0, 0.8).sample(&logits, &history), 2);
        // Presence 1.2 counts each seen token once: 1.8, 0.8, 1.5.
        assert_eq!(penalised(1.2, 0.0).sample(&logits, &history), 0);
        // Presence 1.6: 1.4, 0.4, 1.5.
        assert_eq!(penalised(1.6, 0.0).sample(&logits, &history), 2);
        // Outside the window nothing is penalised; negative values encourage repetition.
        let mut s = penalised(5.0, 5.0);
        s.cfg.repeat_last_n = 0;
        assert_eq!(s.sample(&logits, &history), 0);
        assert_eq!(penalised(0.0, -1.0).sample(&[1.0, 2.0, 0.0], &[0]), 0);
    }
}
