//! Prompt tokens for `run` and `chat` that fit the session's context, as the server fits them
//! (the shared rules live in `engine::context`), and how many leading tokens a context shift
//! keeps.

use anyhow::Result;

use bitnet_gguf::engine::chat::ChatMessage;
use bitnet_gguf::engine::context::{drop_oldest, prompt_budget, truncate_front};
use bitnet_gguf::engine::model::Model;
use bitnet_gguf::serve::store::Entry;

use crate::cli::run_modelfile;

/// A prompt fitted to the context and the tokens at its start that stay through a shift.
pub struct Fitted {
    pub ids: Vec<u32>,
    pub keep: usize,
}

/// Tokenises rendered chat text, adding BOS when the tokenizer wants it and the template did
/// not write it.
pub fn encode_rendered(model: &Model, text: &str) -> Result<Vec<u32>> {
    let tok = model.tokenizer();
    let bos = model.chat_template().bos_token();
    let has_bos = !bos.is_empty() && text.starts_with(bos);
    Ok(tok.encode(text, tok.add_bos_default() && !has_bos, true)?)
}

/// A conversation's tokens: when it does not fit `n_ctx`, the oldest messages go (system
/// messages and the last one stay) and what is still too long is cut from the front. `keep`
/// is `keep_flag` (`--keep`), else the tokens it shares with its system messages rendered
/// alone (BOS and the system prompt), else the BOS.
pub fn fit_chat(
    model: &Model,
    entry: Option<&Entry>,
    messages: &[ChatMessage],
    n_ctx: usize,
    max_tokens: Option<usize>,
    keep_flag: Option<usize>,
) -> Result<Fitted> {
    let tokenize = |dropped: &[usize]| -> Result<Vec<u32>> {
        let kept: Vec<ChatMessage> = messages
            .iter()
            .enumerate()
            .filter(|(i, _)| !dropped.contains(i))
            .map(|(_, m)| m.clone())
            .collect();
        encode_rendered(model, &run_modelfile::render(model, entry, &kept)?)
    };
    let mut ids = tokenize(&[])?;
    let budget = prompt_budget(n_ctx, max_tokens);
    if ids.len() >= n_ctx {
        let droppable: Vec<usize> = (0..messages.len().saturating_sub(1))
            .filter(|&i| messages[i].role != "system")
            .collect();
        ids = drop_oldest(&droppable, budget, tokenize)?;
    }
    let keep = match keep_flag {
        Some(k) => k,
        None => {
            let system: Vec<ChatMessage> = messages
                .iter()
                .filter(|m| m.role == "system")
                .cloned()
                .collect();
            if system.is_empty() {
                bos_len(model, &ids)
            } else {
                let prefix =
                    encode_rendered(model, &run_modelfile::render(model, entry, &system)?)?;
                prefix.iter().zip(&ids).take_while(|(a, b)| a == b).count()
            }
        }
    };
    Ok(fit_tokens(ids, keep, n_ctx, budget))
}

/// A plain prompt's tokens (`run --raw` or a file model): cut from the front when they do not
/// fit, keeping `keep_flag` tokens, else the BOS.
pub fn fit_raw(
    model: &Model,
    ids: Vec<u32>,
    n_ctx: usize,
    max_tokens: Option<usize>,
    keep_flag: Option<usize>,
) -> Fitted {
    let keep = keep_flag.unwrap_or_else(|| bos_len(model, &ids));
    fit_tokens(ids, keep, n_ctx, prompt_budget(n_ctx, max_tokens))
}

fn fit_tokens(ids: Vec<u32>, keep: usize, n_ctx: usize, budget: usize) -> Fitted {
    let ids = if ids.len() >= n_ctx {
        truncate_front(ids, keep, budget)
    } else {
        ids
    };
    // A shift must leave something to drop.
    let keep = keep.min(n_ctx / 2).min(ids.len());
    Fitted { ids, keep }
}

fn bos_len(model: &Model, ids: &[u32]) -> usize {
    let bos = model.tokenizer().bos_id();
    usize::from(bos.is_some() && ids.first().copied() == bos)
}
