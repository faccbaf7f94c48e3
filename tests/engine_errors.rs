//! Bad input gives clear errors, never a panic: prompts longer than the context, empty
//! prompts, out-of-range ids, a GGUF missing a tensor or with inconsistent hyper-parameters,
//! an unknown architecture.

mod engine_support;

use bitnet_formats::{GgufFile, GgufWriter, TensorSource, Value};
use bitnet_gguf::engine::model::{forward_batch, forward_seqs, LoadOptions, Model};
use engine_support::{load_model, repo_path};

const TINY: &str = "models/tiny-bitnet-b1.58.gguf";

fn err_text<T>(r: anyhow::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn prompt_longer_than_context() {
    let model = Model::load(
        &repo_path(TINY),
        &LoadOptions {
            n_ctx: Some(8),
            threads: None,
            ..Default::default()
        },
    )
    .unwrap();
    let mut s = model.new_session(model.default_n_ctx());
    let msg = err_text(s.forward(&[1; 9]));
    assert!(
        msg.contains("9 tokens") && msg.contains("context holds only 8"),
        "{msg}"
    );
    // Filling the context exactly works; one more token is refused with the counts.
    s.forward(&[1; 8]).unwrap();
    let msg = err_text(s.forward(&[1]));
    assert!(msg.contains("context full"), "{msg}");
}

#[test]
fn empty_prompt_and_bad_ids() {
    let model = load_model(TINY);
    let mut s = model.new_session(64);
    assert!(err_text(s.forward(&[])).contains("empty"));
    let msg = err_text(s.forward(&[5, 4096]));
    assert!(
        msg.contains("4096") && msg.contains("out of range"),
        "{msg}"
    );
    // A failed call leaves the session usable and unchanged.
    assert_eq!(s.n_past(), 0);
    s.forward(&[4080]).unwrap();
    assert_eq!(s.n_past(), 1);
}

/// Rewrites the tiny model with `edit` applied to its metadata and tensor list.
fn rewritten(
    edit: impl FnOnce(&mut bitnet_formats::Metadata, &mut Vec<String>),
) -> (tempfile::TempDir, std::path::PathBuf) {
    let src = GgufFile::open(repo_path(TINY)).unwrap();
    let mut meta = src.metadata().clone();
    let mut names: Vec<String> = src.tensors().iter().map(|t| t.name.clone()).collect();
    edit(&mut meta, &mut names);
    let mut w = GgufWriter::new(src.dialect());
    *w.metadata_mut() = meta;
    for name in &names {
        let t = src.tensor(name).unwrap();
        w.add_tensor_raw(
            name,
            &t.ne,
            t.raw_type,
            t.nbytes,
            TensorSource::Borrowed(src.tensor_data(t)),
        )
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edited.gguf");
    w.write(&path).unwrap();
    (dir, path)
}

fn load_err(path: &std::path::Path) -> String {
    err_text(Model::load(path, &LoadOptions::default()))
}

#[test]
fn missing_tensor_is_named() {
    let (_d, path) = rewritten(|_, names| names.retain(|n| n != "blk.3.ffn_down.weight"));
    let msg = load_err(&path);
    assert!(
        msg.contains("blk.3.ffn_down.weight") && msg.contains("missing"),
        "{msg}"
    );
}

#[test]
fn inconsistent_hyper_parameters_are_reported() {
    let (_d, path) = rewritten(|m, _| m.set("bitnet-b1.58.feed_forward_length", Value::U32(512)));
    let msg = load_err(&path);
    assert!(
        msg.contains("blk.0.ffn_gate.weight") && msg.contains("shape"),
        "{msg}"
    );

    let (_d, path) = rewritten(|m, _| m.set("bitnet-b1.58.block_count", Value::U32(5)));
    let msg = load_err(&path);
    assert!(msg.contains("block_count"), "{msg}");

    let (_d, path) = rewritten(|m, _| {
        m.remove("bitnet-b1.58.attention.layer_norm_rms_epsilon");
    });
    let msg = load_err(&path);
    assert!(
        msg.contains("layer_norm_rms_epsilon") && msg.contains("missing"),
        "{msg}"
    );
}

#[test]
fn unknown_architecture_is_refused() {
    let (_d, path) =
        rewritten(|m, _| m.set("general.architecture", Value::String("gpt-neo".into())));
    let msg = load_err(&path);
    assert!(
        msg.contains("gpt-neo") && msg.contains("not supported"),
        "{msg}"
    );
}

#[test]
fn bitnet_arch_with_unknown_activation_is_refused() {
    // `bitnet` picks the FFN activation from metadata; an unknown one must not be guessed.
    let (_d, path) = rewritten(|m, _| {
        let keys: Vec<(String, Value)> = m
            .iter()
            .filter(|(k, _)| k.starts_with("bitnet-b1.58."))
            .map(|(k, v)| (k.replacen("bitnet-b1.58.", "bitnet.", 1), v.clone()))
            .collect();
        for (k, v) in keys {
            m.set(k, v);
        }
        m.set("general.architecture", Value::String("bitnet".into()));
        m.set("bitnet.hidden_act", Value::String("gelu".into()));
    });
    let msg = load_err(&path);
    assert!(msg.contains("gelu"), "{msg}");
}

#[test]
fn batched_decode_equals_separate_sessions() {
    let model = load_model(TINY);
    let prompts: [&[u32]; 3] = [&[4080, 1431, 363], &[4080, 2110], &[4080, 39, 566, 78, 11]];
    let mut sessions: Vec<_> = prompts.iter().map(|_| model.new_session(64)).collect();
    for (s, p) in sessions.iter_mut().zip(prompts) {
        s.forward(p).unwrap();
    }
    let next = [258, 1056, 282];
    let batched = {
        let mut refs: Vec<_> = sessions.iter_mut().collect();
        forward_batch(&mut refs, &next).unwrap()
    };
    for (i, p) in prompts.iter().enumerate() {
        let mut s = model.new_session(64);
        s.forward(p).unwrap();
        let alone = s.forward(&[next[i]]).unwrap();
        assert_eq!(alone, batched[i], "session {i}");
        assert_eq!(sessions[i].n_past(), p.len() + 1);
    }
}

#[test]
fn prompts_and_decode_tokens_in_one_batch_equal_separate_sessions() {
    // A server step: two prompts being admitted (one with a cached prefix) and two
    // sequences decoding, in one pass; and a prompt longer than one pass's token budget.
    let model = load_model(TINY);
    let ids = |n: usize, seed: u32| -> Vec<u32> {
        (0..n as u32)
            .map(|i| 4 + (i * 7919 + seed * 104_729) % 4000)
            .collect()
    };
    let history = [ids(5, 1), ids(0, 0), ids(9, 2), ids(3, 3), ids(0, 0)];
    let new = [ids(1, 4), ids(12, 5), ids(7, 6), ids(1, 7), ids(600, 8)];
    let mut sessions: Vec<_> = history.iter().map(|_| model.new_session(700)).collect();
    for (s, h) in sessions.iter_mut().zip(&history) {
        if !h.is_empty() {
            s.forward(h).unwrap();
        }
    }
    let lists: Vec<&[u32]> = new.iter().map(|t| &t[..]).collect();
    let batched = {
        let mut refs: Vec<_> = sessions.iter_mut().collect();
        forward_seqs(&mut refs, &lists).unwrap()
    };
    for i in 0..history.len() {
        let mut s = model.new_session(700);
        if !history[i].is_empty() {
            s.forward(&history[i]).unwrap();
        }
        let alone = s.forward(&new[i]).unwrap();
        assert_eq!(alone, batched[i], "session {i}");
        assert_eq!(sessions[i].n_past(), history[i].len() + new[i].len());
        assert_eq!(sessions[i].tokens(), s.tokens(), "session {i}");
    }
    // Nothing is evaluated when one list is empty or too long for its context.
    let n_past: Vec<usize> = sessions.iter().map(|s| s.n_past()).collect();
    let mut refs: Vec<_> = sessions.iter_mut().collect();
    let empty: [&[u32]; 5] = [&[5], &[], &[5], &[5], &[5]];
    assert!(forward_seqs(&mut refs, &empty).is_err());
    let too_long = vec![5u32; 700];
    let long: [&[u32]; 5] = [&[5], &[5], &too_long, &[5], &[5]];
    assert!(forward_seqs(&mut refs, &long).is_err());
    let after: Vec<usize> = refs.iter().map(|s| s.n_past()).collect();
    assert_eq!(after, n_past);
}

#[test]
fn prompt_in_one_batch_equals_token_by_token() {
    let model = load_model(TINY);
    let ids = [4080, 1431, 363, 258, 1934, 472, 72, 1188];
    let all = model.new_session(64).forward_all(&ids).unwrap();
    let mut s = model.new_session(64);
    let vocab = model.config().n_vocab;
    for (i, &t) in ids.iter().enumerate() {
        let one = s.forward(&[t]).unwrap();
        let max = one
            .iter()
            .zip(&all[i * vocab..])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max < 1e-4, "position {i}: {max}");
    }
    // Truncating and re-evaluating reproduces the same logits.
    s.truncate(4);
    let again = s.forward(&ids[4..]).unwrap();
    let last = &all[(ids.len() - 1) * vocab..];
    assert!(again.iter().zip(last).all(|(a, b)| (a - b).abs() < 1e-4));
}
