//! The transformer forward pass (docs/model.md, 'Forward pass'), written to be read top to bottom.
//!
//! One call processes a batch of tokens that may belong to several sequences: a prompt is one
//! sequence with many tokens (every matmul is then a mat-mat over the prompt), a server decode
//! step is many sequences with one token each. Only attention looks at the sequences
//! separately; everything else works on the stacked rows.

use bitnet_kernels::profile::{section, Op};
use bitnet_kernels::{ops, quantize_acts, rms_norm, QuantizedActs, Runtime, PARALLEL_MIN_TOKENS};

use bitnet_formats::GgufFile;

use super::attention::{attend_seqs, Heads, Rope, SeqAttention};
use super::config::{Activation, ModelConfig};
use super::kv_cache::KvCache;
use super::weights::{forward_many, Linear, Weights};

/// The new tokens of one sequence in a batch: the next `n_tokens` rows, at positions
/// `cache.len()..cache.len() + n_tokens`.
pub struct SeqSlot<'c> {
    pub cache: &'c mut KvCache,
    pub n_tokens: usize,
}

/// Scratch buffers, sized for `n` tokens.
struct Buffers {
    x: Vec<f32>,
    h: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    o: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    /// Where a sub-norm writes its input's normalised copy, which then swaps places with it.
    att_normed: Vec<f32>,
    gate_normed: Vec<f32>,
    acts: QuantizedActs,
    dequant: Vec<f32>,
}

/// Runs every layer over `tokens` (grouped per `seqs`, in order), appends their keys and
/// values to the caches, and returns the final normalised hidden states (`n · n_embd`).
/// The caller checked that the token ids are in range and the caches have room.
pub fn forward(
    rt: &Runtime,
    w: &Weights,
    cfg: &ModelConfig,
    rope: &Rope,
    tokens: &[u32],
    seqs: &mut [SeqSlot],
) -> Vec<f32> {
    rt.pool()
        .install(|| forward_in_pool(rt, w, cfg, rope, tokens, seqs))
}

fn forward_in_pool(
    rt: &Runtime,
    w: &Weights,
    cfg: &ModelConfig,
    rope: &Rope,
    tokens: &[u32],
    seqs: &mut [SeqSlot],
) -> Vec<f32> {
    let n = tokens.len();
    debug_assert_eq!(seqs.iter().map(|s| s.n_tokens).sum::<usize>(), n);
    let (d, qd, kvd, ff) = (cfg.n_embd, cfg.q_dim(), cfg.kv_dim(), cfg.n_ff);
    let mut b = Buffers {
        x: vec![0.0; n * d],
        h: vec![0.0; n * d],
        q: vec![0.0; n * qd],
        k: vec![0.0; n * kvd],
        v: vec![0.0; n * kvd],
        att: vec![0.0; n * qd],
        o: vec![0.0; n * d],
        gate: vec![0.0; n * ff],
        up: vec![0.0; n * ff],
        att_normed: if w.layers.iter().any(|l| l.attn_sub_norm.is_some()) {
            vec![0.0; n * qd]
        } else {
            Vec::new()
        },
        gate_normed: if w.layers.iter().any(|l| l.ffn_sub_norm.is_some()) {
            vec![0.0; n * ff]
        } else {
            Vec::new()
        },
        acts: QuantizedActs::new(),
        dequant: Vec::new(),
    };

    // Embedding lookup.
    let embedding = section(Op::Norms);
    let embd = w.token_embd();
    for (t, &id) in tokens.iter().enumerate() {
        embd.row_to_f32(rt, id as usize, &mut b.x[t * d..(t + 1) * d]);
    }
    drop(embedding);
    let file = w.file();
    let heads = Heads {
        n_head: cfg.n_head,
        n_head_kv: cfg.n_head_kv,
        head_dim: cfg.head_dim,
    };

    let angles: Vec<Vec<(f32, f32)>> = seqs
        .iter()
        .flat_map(|s| (0..s.n_tokens).map(|t| rope.angles(s.cache.len() + t)))
        .collect();

    for (l, lw) in w.layers.iter().enumerate() {
        // --- attention ---
        norm_rows(rt, &b.x, &lw.attn_norm, cfg.eps, &mut b.h);
        let qkv = section(Op::Ternary);
        quantize_acts(rt, &b.h, d, &mut b.acts);
        forward_many(
            rt,
            file,
            &mut [(&lw.wq, &mut b.q), (&lw.wk, &mut b.k), (&lw.wv, &mut b.v)],
            &b.acts,
            &mut b.dequant,
        );
        drop(qkv);
        let attention = section(Op::Attention);

        let mut row = 0;
        let mut past = Vec::with_capacity(seqs.len());
        for seq in seqs.iter_mut() {
            let (n_past, m) = (seq.cache.len(), seq.n_tokens);
            for t in 0..m {
                let (r, a) = (row + t, &angles[row + t]);
                rope.rotate(&mut b.q[r * qd..(r + 1) * qd], cfg.head_dim, a);
                rope.rotate(&mut b.k[r * kvd..(r + 1) * kvd], cfg.head_dim, a);
            }
            seq.cache.append(
                rt,
                l,
                &b.k[row * kvd..(row + m) * kvd],
                &b.v[row * kvd..(row + m) * kvd],
            );
            past.push(n_past);
            row += m;
        }
        // Every sequence's attention in one region.
        let layers: Vec<_> = seqs.iter().map(|s| s.cache.layer(l)).collect();
        let mut row = 0;
        let parts: Vec<SeqAttention> = seqs
            .iter()
            .zip(&layers)
            .zip(&past)
            .map(|((s, kv), &n_past)| {
                let q = &b.q[row * qd..(row + s.n_tokens) * qd];
                row += s.n_tokens;
                SeqAttention { q, kv, n_past }
            })
            .collect();
        attend_seqs(rt, &parts, heads, &mut b.att[..n * qd]);
        drop(attention);

        if let Some(sub) = &lw.attn_sub_norm {
            norm_rows(rt, &b.att, sub, cfg.eps, &mut b.att_normed);
            std::mem::swap(&mut b.att, &mut b.att_normed);
        }
        let att = std::mem::take(&mut b.att);
        project_add(rt, file, &lw.wo, &att, qd, &mut b);
        b.att = att;

        // --- feed-forward ---
        norm_rows(rt, &b.x, &lw.ffn_norm, cfg.eps, &mut b.h);
        let gate_up = section(Op::Ternary);
        quantize_acts(rt, &b.h, d, &mut b.acts);
        forward_many(
            rt,
            file,
            &mut [(&lw.w_gate, &mut b.gate), (&lw.w_up, &mut b.up)],
            &b.acts,
            &mut b.dequant,
        );
        drop(gate_up);
        let activation = section(Op::Norms);
        let up = &b.up;
        per_token(rt, &mut b.gate, ff, |t, gate| {
            let up = &up[t * ff..(t + 1) * ff];
            match cfg.activation {
                Activation::Relu2 => {
                    for (g, &u) in gate.iter_mut().zip(up) {
                        let r = g.max(0.0);
                        *g = r * r * u;
                    }
                }
                // Vectorised exp: in scalar, SiLU took as long as all other serial work of a
                // layer.
                Activation::Silu => ops::silu_mul(rt, gate, up),
            }
        });
        drop(activation);
        if let Some(sub) = &lw.ffn_sub_norm {
            norm_rows(rt, &b.gate, sub, cfg.eps, &mut b.gate_normed);
            std::mem::swap(&mut b.gate, &mut b.gate_normed);
        }
        let gate = std::mem::take(&mut b.gate);
        project_add(rt, file, &lw.w_down, &gate, ff, &mut b);
        b.gate = gate;
    }

    for seq in seqs.iter_mut() {
        seq.cache.commit(seq.n_tokens);
    }
    norm_rows(rt, &b.x, &w.output_norm, cfg.eps, &mut b.h);
    b.h
}

/// `x += W · quant(input)` for the residual stream.
fn project_add(
    rt: &Runtime,
    file: &GgufFile,
    w: &Linear,
    input: &[f32],
    k: usize,
    b: &mut Buffers,
) {
    let _ternary = section(Op::Ternary);
    quantize_acts(rt, input, k, &mut b.acts);
    w.forward(rt, file, &b.acts, &mut b.dequant, &mut b.o);
    let d = b.x.len() / (input.len() / k).max(1);
    let o = &b.o;
    per_token(rt, &mut b.x, d, |t, x| {
        for (x, o) in x.iter_mut().zip(&o[t * d..(t + 1) * d]) {
            *x += o;
        }
    });
}

fn norm_rows(rt: &Runtime, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let _norms = section(Op::Norms);
    let d = weight.len();
    per_token(rt, out, d, |t, dst| {
        rms_norm(rt, &x[t * d..(t + 1) * d], weight, eps, dst)
    });
}

/// `f(t, row)` for every token's row of `width` values: on the pool for a prompt (the other
/// threads would only wait for this serial work), in place for decode's few tokens, for
/// which a region costs more than the work. Rows are independent, so the bits are the same.
fn per_token(
    rt: &Runtime,
    rows: &mut [f32],
    width: usize,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) {
    let n = rows.len() / width.max(1);
    if n < PARALLEL_MIN_TOKENS {
        for (t, row) in rows.chunks_exact_mut(width.max(1)).enumerate() {
            f(t, row);
        }
    } else {
        rt.pool()
            .parallel_chunks_mut(rows, width, (16384 / width.max(1)).max(1), f);
    }
}
