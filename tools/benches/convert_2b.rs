//! Converts a generated checkpoint of the microsoft/bitnet-b1.58-2B-4T-bf16 shape (hidden
//! 2560, 30 layers, 20/5 heads, ffn 6912, vocab 128256, bf16, ~2.4 G parameters, 4.8 GB) to
//! I2_S and reports the time and throughput. Not a timed test: run it with
//! `cargo bench -p bitnet-tools --bench convert_2b`.
//!
//! `BITNET_BENCH_DIR=DIR` keeps the generated checkpoint there (and reuses it), so the CLI can
//! be measured on it as well, e.g. under `/usr/bin/time -v bitnet-gguf convert DIR -o x.gguf`.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use bitnet_tools::convert::{convert, ConvertOptions, Progress, WeightType};
use rayon::prelude::*;

const HIDDEN: usize = 2560;
const LAYERS: usize = 30;
const HEADS: usize = 20;
const KV_HEADS: usize = 5;
const FFN: usize = 6912;
const VOCAB: usize = 128256;

fn tensors() -> Vec<(String, Vec<usize>)> {
    let hd = HIDDEN / HEADS;
    let mut t = vec![("model.embed_tokens.weight".to_owned(), vec![VOCAB, HIDDEN])];
    for i in 0..LAYERS {
        let p = format!("model.layers.{i}");
        t.push((format!("{p}.input_layernorm.weight"), vec![HIDDEN]));
        t.push((format!("{p}.post_attention_layernorm.weight"), vec![HIDDEN]));
        t.push((
            format!("{p}.self_attn.q_proj.weight"),
            vec![HEADS * hd, HIDDEN],
        ));
        t.push((
            format!("{p}.self_attn.k_proj.weight"),
            vec![KV_HEADS * hd, HIDDEN],
        ));
        t.push((
            format!("{p}.self_attn.v_proj.weight"),
            vec![KV_HEADS * hd, HIDDEN],
        ));
        t.push((
            format!("{p}.self_attn.o_proj.weight"),
            vec![HIDDEN, HEADS * hd],
        ));
        t.push((format!("{p}.self_attn.attn_sub_norm.weight"), vec![HIDDEN]));
        t.push((format!("{p}.mlp.gate_proj.weight"), vec![FFN, HIDDEN]));
        t.push((format!("{p}.mlp.up_proj.weight"), vec![FFN, HIDDEN]));
        t.push((format!("{p}.mlp.down_proj.weight"), vec![HIDDEN, FFN]));
        t.push((format!("{p}.mlp.ffn_sub_norm.weight"), vec![FFN]));
    }
    t.push(("model.norm.weight".to_owned(), vec![HIDDEN]));
    t
}

/// Deterministic pseudo-random bf16 values in about ±0.1 (norm weights near 1).
fn fill(seed: u64, out: &mut [u8], norm: bool) {
    out.par_chunks_mut(1 << 16)
        .enumerate()
        .for_each(|(chunk, bytes)| {
            let mut x =
                seed ^ (chunk as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
            for b in bytes.chunks_exact_mut(2) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let u = (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                let v = if norm { 1.0 + 0.2 * u } else { 0.2 * u };
                b.copy_from_slice(&((v.to_bits() >> 16) as u16).to_le_bytes());
            }
        });
}

fn generate(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tiny-bitnet-b1.58");
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        std::fs::copy(tiny.join(f), dir.join(f)).unwrap();
    }
    let config = serde_json::json!({
        "architectures": ["BitNetForCausalLM"], "model_type": "bitnet", "hidden_act": "relu2",
        "hidden_size": HIDDEN, "intermediate_size": FFN, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "vocab_size": VOCAB,
        "max_position_embeddings": 4096, "rope_theta": 500000.0, "rms_norm_eps": 1e-5,
        "tie_word_embeddings": true, "torch_dtype": "bfloat16", "bos_token_id": 4080, "eos_token_id": 4081,
        "quantization_config": {"quant_method": "bitnet", "linear_class": "autobitlinear", "quantization_mode": "online"}
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();

    // safetensors written tensor by tensor: header with every offset, then the payloads.
    let list = tensors();
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape) in &list {
        let n: usize = shape.iter().product::<usize>() * 2;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + n]}),
        );
        offset += n;
    }
    let mut h = serde_json::Value::Object(header).to_string().into_bytes();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let tmp = dir.join("model.safetensors.partial");
    let mut f = std::io::BufWriter::with_capacity(1 << 22, std::fs::File::create(&tmp).unwrap());
    f.write_all(&(h.len() as u64).to_le_bytes()).unwrap();
    f.write_all(&h).unwrap();
    for (i, (name, shape)) in list.iter().enumerate() {
        let mut buf = vec![0u8; shape.iter().product::<usize>() * 2];
        fill(i as u64 + 1, &mut buf, name.contains("norm"));
        f.write_all(&buf).unwrap();
    }
    f.into_inner().unwrap().sync_all().unwrap();
    std::fs::rename(tmp, dir.join("model.safetensors")).unwrap();
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing useful either.
    let keep = std::env::var_os("BITNET_BENCH_DIR");
    let tmp = tempfile::tempdir().unwrap();
    let dir = keep
        .as_ref()
        .map(|d| Path::new(d).to_owned())
        .unwrap_or_else(|| tmp.path().join("ckpt"));
    if !dir.join("model.safetensors").exists() {
        let t = Instant::now();
        generate(&dir);
        eprintln!(
            "generated {} in {:.1} s",
            dir.display(),
            t.elapsed().as_secs_f64()
        );
    }
    let out = tmp.path().join("2b.gguf");
    let mut opts = ConvertOptions::new(&dir, &out);
    opts.weight_type = WeightType::I2s(Default::default());
    opts.force = true;
    let t = Instant::now();
    let mut input = 0u64;
    let report = convert(&opts, &mut |p| {
        if let Progress::Start { input_bytes, .. } = p {
            input = input_bytes;
        }
    })
    .unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "convert 2B4T-shaped bf16 checkpoint ({:.2} GB) -> I2_S ({:.2} GB, {} tensors): {:.2} s, {:.0} MB/s, {} threads",
        input as f64 / 1e9,
        report.output_bytes as f64 / 1e9,
        report.tensors,
        secs,
        input as f64 / 1e6 / secs,
        rayon::current_num_threads()
    );
}
