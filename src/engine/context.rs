//! Fitting a prompt or a conversation into a context, shared by the server and the CLI's
//! `run` and `chat`: room is left for the reply, the oldest messages go first (system messages
//! and the last one stay), and a prompt still too long is cut from the front with its start
//! (BOS, the system prompt) kept.

/// Prompt tokens kept when a prompt does not fit the context: room is left for the reply (the
/// token limit, at most half the context; a quarter of it without a limit).
pub fn prompt_budget(n_ctx: usize, max_tokens: Option<usize>) -> usize {
    let room = max_tokens.unwrap_or(n_ctx / 4).clamp(1, (n_ctx / 2).max(1));
    n_ctx.saturating_sub(room).max(1)
}

/// Cuts a prompt longer than `budget` from the front, as Ollama's runner does: the first
/// `keep` tokens (BOS, the system message; at most half the budget) and the most recent ones
/// stay.
pub fn truncate_front(tokens: Vec<u32>, keep: usize, budget: usize) -> Vec<u32> {
    if tokens.len() <= budget {
        return tokens;
    }
    let keep = keep.min(budget / 2);
    let mut out = tokens[..keep].to_vec();
    out.extend_from_slice(&tokens[tokens.len() - (budget - keep)..]);
    out
}

/// The tokens of a conversation of `n_messages` fitted to `budget`: `tokenize(dropped)`
/// renders and tokenises it without the messages whose indices are in `dropped`. The fewest
/// of the `droppable` messages (in order, oldest first) are dropped so that it fits — found
/// by bisection, since fewer messages never render longer — or all of them when nothing
/// fits (the caller then cuts the rest with [`truncate_front`]).
pub fn drop_oldest<E>(
    droppable: &[usize],
    budget: usize,
    mut tokenize: impl FnMut(&[usize]) -> Result<Vec<u32>, E>,
) -> Result<Vec<u32>, E> {
    let whole = tokenize(&[])?;
    if whole.len() <= budget || droppable.is_empty() {
        return Ok(whole);
    }
    let (mut lo, mut hi) = (1, droppable.len());
    let mut fitting = None;
    while lo <= hi {
        let mid = (lo + hi) / 2;
        let t = tokenize(&droppable[..mid])?;
        if t.len() <= budget {
            fitting = Some(t);
            hi = mid - 1;
        } else {
            lo = mid + 1;
        }
    }
    match fitting {
        Some(t) => Ok(t),
        None => tokenize(droppable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_the_fewest_oldest_messages_that_make_it_fit() {
        // Message i renders as 10 tokens; message 0 (system) and the last stay.
        let render = |dropped: &[usize]| -> Result<Vec<u32>, ()> {
            Ok((0..6u32)
                .filter(|i| !dropped.contains(&(*i as usize)))
                .flat_map(|i| [i; 10])
                .collect())
        };
        let droppable = [1, 2, 3, 4];
        let t = drop_oldest(&droppable, 35, render).unwrap();
        assert_eq!(t.len(), 30);
        assert_eq!(t[0], 0, "the system message stays");
        assert_eq!(t[10], 4, "messages 1-3 went, oldest first");
        assert_eq!(drop_oldest(&droppable, 60, render).unwrap().len(), 60);
        assert_eq!(drop_oldest(&droppable, 5, render).unwrap().len(), 20);
        assert_eq!(truncate_front((0..10).collect(), 2, 6), [0, 1, 6, 7, 8, 9]);
    }
}
