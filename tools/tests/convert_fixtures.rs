//! Every fixture checkpoint converts, and the output holds exactly the ternary codes and
//! scales computed independently from the safetensors.

mod common;

use bitnet_formats::{Dialect, GgufFile, TensorType};
use bitnet_tools::convert::WeightType;
use common::*;

#[test]
fn tiny_model_converts_to_i2s_with_independent_codes_and_scales() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tiny.gguf");
    let report = run(
        &tiny_dir(),
        &out,
        WeightType::I2s(Default::default()),
        "tiny",
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let f = GgufFile::open(&out).unwrap();
    assert_eq!(f.dialect(), Dialect::Bitnet);
    let m = f.metadata();
    assert_eq!(f.architecture(), Some("bitnet-b1.58"));
    assert_eq!(m.get_u32("general.file_type"), Some(40));
    assert_eq!(m.get_str("bitnet.i2s.layout"), Some("x86"));
    assert_eq!(m.get_str("bitnet-b1.58.hidden_act"), Some("relu2"));
    assert_eq!(m.get_u32("bitnet-b1.58.block_count"), Some(6));
    assert_eq!(m.get_u32("bitnet-b1.58.attention.head_count_kv"), Some(4));
    assert_eq!(m.get_u32("bitnet-b1.58.rope.dimension_count"), Some(32));
    assert_eq!(m.get_f32("bitnet-b1.58.rope.freq_base"), Some(500000.0));
    assert_eq!(f.tensors().len(), 1 + 6 * 11 + 1);
    assert!(
        f.tensor("output.weight").is_none(),
        "tied head must not be written"
    );

    let st = read_safetensors(&tiny_dir().join("model.safetensors"));
    for layer in 0..6 {
        for (hf, gg) in PROJECTIONS {
            let w = st[&format!("model.layers.{layer}.{hf}.weight")].floats();
            let (codes, scale) = absmean_reference(&w);
            let name = format!("blk.{layer}.{gg}.weight");
            assert_eq!(f.tensor(&name).unwrap().ty, TensorType::I2_S);
            let (got_codes, got_scale) = i2s_tensor(&f, &name);
            assert!(got_codes == codes, "{name}: codes differ");
            assert_eq!(got_scale.to_bits(), scale.to_bits(), "{name}: scale");
        }
        let sub = f32_tensor(&f, &format!("blk.{layer}.ffn_sub_norm.weight"));
        assert_eq!(
            sub,
            st[&format!("model.layers.{layer}.mlp.ffn_sub_norm.weight")].floats()
        );
        assert_eq!(
            f.tensor(&format!("blk.{layer}.attn_norm.weight"))
                .unwrap()
                .ty,
            TensorType::F32
        );
    }
    let emb = f.tensor("token_embd.weight").unwrap();
    assert_eq!(emb.ty, TensorType::F16);
    assert_eq!(emb.ne, vec![256, 4096]);
    let expect: Vec<u8> = st["model.embed_tokens.weight"]
        .floats()
        .iter()
        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        .collect();
    assert!(
        f.tensor_data(emb) == expect.as_slice(),
        "token_embd is not the f16 of the bf16 embedding"
    );
}

#[test]
fn tokenizer_metadata_is_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tiny.gguf");
    run(
        &tiny_dir(),
        &out,
        WeightType::I2s(Default::default()),
        "tiny",
    );
    let f = GgufFile::open(&out).unwrap();
    let m = f.metadata();
    assert_eq!(m.get_str("tokenizer.ggml.model"), Some("gpt2"));
    assert_eq!(m.get_str("tokenizer.ggml.pre"), Some("llama-bpe"));
    let tokens = m
        .get_array("tokenizer.ggml.tokens")
        .unwrap()
        .as_strs()
        .unwrap();
    assert_eq!(tokens.len(), 4096);
    assert_eq!(tokens[220], "Ġ");
    assert_eq!(tokens[4089], "<|eot_id|>");
    let types = m
        .get_array("tokenizer.ggml.token_type")
        .unwrap()
        .as_i32s()
        .unwrap();
    assert_eq!((types[100], types[4080], types[4095]), (1, 3, 3));
    let tok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tiny_dir().join("tokenizer.json")).unwrap())
            .unwrap();
    let merges = m
        .get_array("tokenizer.ggml.merges")
        .unwrap()
        .as_strs()
        .unwrap();
    assert_eq!(
        merges.len(),
        tok["model"]["merges"].as_array().unwrap().len()
    );
    assert_eq!(merges[0], "Ġ t");
    assert_eq!(m.get_u32("tokenizer.ggml.bos_token_id"), Some(4080));
    assert_eq!(m.get_u32("tokenizer.ggml.eos_token_id"), Some(4089));
    assert_eq!(m.get_u32("tokenizer.ggml.eot_token_id"), Some(4089));
    assert_eq!(m.get_u32("tokenizer.ggml.padding_token_id"), Some(4081));
    assert_eq!(m.get_bool("tokenizer.ggml.add_bos_token"), Some(true));
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tiny_dir().join("tokenizer_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        m.get_str("tokenizer.chat_template"),
        cfg["chat_template"].as_str()
    );
}

#[test]
fn committed_default_model_is_what_the_converter_produces() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tiny.gguf");
    run(
        &tiny_dir(),
        &out,
        WeightType::I2s(Default::default()),
        "tiny-bitnet-b1.58",
    );
    let committed = std::fs::read(repo().join("models/tiny-bitnet-b1.58.gguf")).unwrap();
    assert!(
        std::fs::read(&out).unwrap() == committed,
        "models/tiny-bitnet-b1.58.gguf is stale: run scripts/make-default-model"
    );
}

#[test]
fn llama_packed_fixture_unpacks_divides_and_permutes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("llama.gguf");
    let report = run(
        &llama_dir(),
        &out,
        WeightType::I2s(Default::default()),
        "llama",
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let f = GgufFile::open(&out).unwrap();
    assert_eq!(f.architecture(), Some("llama"));
    assert_eq!(f.metadata().get_str("llama.hidden_act"), Some("silu"));
    assert!(f.tensor("blk.0.attn_sub_norm.weight").is_none());
    let head = f.tensor("output.weight").expect("untied head is kept");
    assert_eq!(head.ty, TensorType::F16);

    let st = read_safetensors(&llama_dir().join("model.safetensors"));
    let (heads, kv_heads) = (8, 4);
    for layer in 0..2 {
        for (hf, gg) in PROJECTIONS {
            let base = format!("model.layers.{layer}.{hf}");
            let packed = &st[&format!("{base}.weight")];
            let ws = st[&format!("{base}.weight_scale")].floats()[0];
            let (pr, cols) = (packed.shape[0], packed.shape[1]);
            let mut codes = unpack_reference(&packed.data, pr, cols);
            let rows = pr * 4;
            let n_head = match *gg {
                "attn_q" => Some(heads),
                "attn_k" => Some(kv_heads),
                _ => None,
            };
            if let Some(nh) = n_head {
                // LLaMA permutation: per head, row (p * half + j) moves to (2j + p).
                let hd = rows / nh;
                let mut out = vec![0i8; codes.len()];
                for h in 0..nh {
                    for p in 0..2 {
                        for j in 0..hd / 2 {
                            let src = h * hd + p * hd / 2 + j;
                            let dst = h * hd + 2 * j + p;
                            out[dst * cols..(dst + 1) * cols]
                                .copy_from_slice(&codes[src * cols..(src + 1) * cols]);
                        }
                    }
                }
                codes = out;
            }
            let name = format!("blk.{layer}.{gg}.weight");
            let (got, scale) = i2s_tensor(&f, &name);
            assert!(got == codes, "{name}: codes differ");
            // BitLinear divides by weight_scale.
            assert_eq!(scale, 1.0 / ws, "{name}");
        }
    }
}

#[test]
fn onebitllm_fixture_maps_sub_norms_and_silu() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("1bit.gguf");
    let report = run(
        &onebit_dir(),
        &out,
        WeightType::I2s(Default::default()),
        "1bit",
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let f = GgufFile::open(&out).unwrap();
    assert_eq!(f.architecture(), Some("bitnet"));
    assert_eq!(f.metadata().get_str("bitnet.hidden_act"), Some("silu"));
    assert!(f.tensor("output.weight").is_none());
    let st = read_safetensors(&onebit_dir().join("model.safetensors"));
    assert_eq!(
        f32_tensor(&f, "blk.0.attn_sub_norm.weight"),
        st["model.layers.0.self_attn.inner_attn_ln.weight"].floats()
    );
    assert_eq!(
        f32_tensor(&f, "blk.0.ffn_sub_norm.weight"),
        st["model.layers.0.mlp.ffn_layernorm.weight"].floats()
    );
    for (hf, gg) in PROJECTIONS {
        let (codes, scale) =
            absmean_reference(&st[&format!("model.layers.0.{hf}.weight")].floats());
        let (got, got_scale) = i2s_tensor(&f, &format!("blk.0.{gg}.weight"));
        assert!(got == codes, "{gg}: codes differ");
        assert_eq!(got_scale.to_bits(), scale.to_bits(), "{gg}");
    }
}

#[test]
fn sharded_checkpoint_gives_the_same_file() {
    let tmp = tempfile::tempdir().unwrap();
    let sharded = tmp.path().join("sharded");
    copy_dir_files(&tiny_dir(), &sharded, &["config.json"]);
    copy_dir_files(&tiny_dir(), &sharded, TOKENIZER_FILES);
    let st = read_safetensors(&tiny_dir().join("model.safetensors"));
    let (a, b): (
        std::collections::BTreeMap<_, _>,
        std::collections::BTreeMap<_, _>,
    ) = st
        .into_iter()
        .partition(|(n, _)| n.contains("layers.0.") || n.contains("embed"));
    write_safetensors(&sharded.join("model-00001-of-00002.safetensors"), &a);
    write_safetensors(&sharded.join("model-00002-of-00002.safetensors"), &b);
    let mut map = serde_json::Map::new();
    for n in a.keys() {
        map.insert(n.clone(), "model-00001-of-00002.safetensors".into());
    }
    for n in b.keys() {
        map.insert(n.clone(), "model-00002-of-00002.safetensors".into());
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(
        sharded.join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();

    let one = tmp.path().join("one.gguf");
    let two = tmp.path().join("two.gguf");
    run(
        &tiny_dir(),
        &one,
        WeightType::I2s(Default::default()),
        "tiny",
    );
    run(&sharded, &two, WeightType::I2s(Default::default()), "tiny");
    assert!(std::fs::read(one).unwrap() == std::fs::read(two).unwrap());
}
