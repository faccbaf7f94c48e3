//! `perplexity`: llama-perplexity's measurement over a text file.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use bitnet_gguf::engine::model::Model;

use super::run::{load, ModelArgs};

#[derive(clap::Args)]
pub struct PerplexityArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The text file to score.
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Score every token of each chunk (chunks of n_ctx − 1 text tokens behind a BOS), the
    /// method of transformers-based evaluations, instead of llama-perplexity's second half.
    #[arg(long = "all-tokens")]
    pub all_tokens: bool,
    /// Stop after this many chunks.
    #[arg(long = "chunks")]
    pub chunks: Option<usize>,
}

pub fn perplexity(args: PerplexityArgs) -> Result<()> {
    let model = load(&args.model, false, true)?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let tok = model.tokenizer();
    let tokens = tok.encode(&text, false, false)?;
    let n_ctx = model.default_n_ctx();
    let bos = tok.bos_id();
    let result = score_perplexity(
        &model,
        &tokens,
        n_ctx,
        bos,
        args.all_tokens,
        args.chunks,
        &mut |i, n, ppl| {
            eprint!("[{i}/{n}] {ppl:.4}\r");
        },
    )?;
    eprintln!();
    let method = if args.all_tokens {
        "every token scored"
    } else {
        "second half scored"
    };
    println!(
        "{} tokens scored in {} chunks of {n_ctx} ({method})",
        result.scored, result.chunks
    );
    println!(
        "Final estimate: PPL = {:.4} +/- {:.5}",
        result.ppl, result.ppl_err
    );
    Ok(())
}

pub struct PerplexityResult {
    pub ppl: f64,
    pub ppl_err: f64,
    pub chunks: usize,
    pub scored: usize,
}

/// llama-perplexity's method: non-overlapping chunks of `n_ctx` tokens whose first token is
/// replaced by BOS, the second half of each chunk scored. With `all_tokens`, chunks hold
/// `n_ctx − 1` text tokens behind an added BOS and every one is scored (the method of the
/// transformers reference). The error is llama.cpp's: `ppl · sqrt(var(nll) / (N − 1))`.
pub fn score_perplexity(
    model: &Model,
    tokens: &[u32],
    n_ctx: usize,
    bos: Option<u32>,
    all_tokens: bool,
    max_chunks: Option<usize>,
    progress: &mut dyn FnMut(usize, usize, f64),
) -> Result<PerplexityResult> {
    let stride = if all_tokens { n_ctx - 1 } else { n_ctx };
    if n_ctx < 2 || stride == 0 {
        bail!("perplexity needs a context of at least 2 tokens");
    }
    let mut n_chunks = tokens.len() / stride;
    if let Some(m) = max_chunks {
        n_chunks = n_chunks.min(m);
    }
    if n_chunks == 0 {
        bail!(
            "the text has {} tokens; at least {stride} are needed for one chunk of {n_ctx}",
            tokens.len()
        );
    }
    let vocab = model.config().n_vocab;
    let (mut nll, mut nll2, mut count) = (0.0f64, 0.0f64, 0usize);
    for c in 0..n_chunks {
        let text = &tokens[c * stride..(c + 1) * stride];
        let mut input = Vec::with_capacity(n_ctx);
        // Targets: input[j + 1] for each scored position j.
        let first = if all_tokens {
            input.extend(bos);
            input.extend_from_slice(text);
            0
        } else {
            input.extend_from_slice(text);
            if let Some(b) = bos {
                input[0] = b;
            }
            n_ctx / 2
        };
        let targets: Vec<u32> = if all_tokens {
            text.to_vec()
        } else {
            text[first + 1..].to_vec()
        };
        let mut session = model.new_session(n_ctx);
        // Without a BOS in all-tokens mode the first text token has no prediction.
        let (input, targets, first) = if all_tokens && bos.is_none() {
            (&input[..], &targets[1..], 0)
        } else {
            (&input[..], &targets[..], first)
        };
        let logits = session.forward_all(input)?;
        for (j, &target) in targets.iter().enumerate() {
            let row = &logits[(first + j) * vocab..(first + j + 1) * vocab];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let sum: f64 = row.iter().map(|&l| (l as f64 - max).exp()).sum();
            let logprob = row[target as usize] as f64 - max - sum.ln();
            nll -= logprob;
            nll2 += logprob * logprob;
            count += 1;
        }
        progress(c + 1, n_chunks, (nll / count as f64).exp());
    }
    let mean = nll / count as f64;
    let ppl = mean.exp();
    let var = nll2 / count as f64 - mean * mean;
    let ppl_err = if var > 0.0 && count > 1 {
        ppl * (var / (count - 1) as f64).sqrt()
    } else {
        0.0
    };
    Ok(PerplexityResult {
        ppl,
        ppl_err,
        chunks: n_chunks,
        scored: count,
    })
}
