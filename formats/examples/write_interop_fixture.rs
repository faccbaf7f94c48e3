//! Writes a GGUF file with our writer plus a JSON description of what it contains, for
//! checking the file with other readers (scripts/ci/python-gguf-interop.sh).
//!
//! Usage: write_interop_fixture OUT.gguf OUT.json

use bitnet_formats::gguf::GgufWriter;
use bitnet_formats::{Dialect, GgufFile, TensorSource, TensorType, Value, ValueType};
use serde_json::{json, Value as Json};

fn value_json(v: &Value) -> Json {
    match v {
        Value::U8(x) => json!(x),
        Value::I8(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::U64(x) => json!(x),
        Value::I64(x) => json!(x),
        Value::F32(x) => json!(f64::from(*x)),
        Value::F64(x) => json!(x),
        Value::Bool(x) => json!(x),
        Value::String(s) => json!(s),
        Value::Array(a) => Json::Array(a.values.iter().map(value_json).collect()),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, gguf_path, json_path] = &args[..] else {
        return Err("usage: write_interop_fixture OUT.gguf OUT.json".into());
    };
    let mut w = GgufWriter::new(Dialect::Upstream);
    w.set("general.architecture", "llama");
    w.set("general.name", "interop ünïcödé");
    w.set("general.alignment", 64u32);
    w.set("llama.block_count", 2u32);
    w.set("llama.rope.freq_base", 500000.0f32);
    w.set("llama.attention.layer_norm_rms_epsilon", 1e-5f32);
    w.set("test.u8", 200u8);
    w.set("test.i8", -100i8);
    w.set("test.u16", 60000u16);
    w.set("test.i16", -30000i16);
    w.set("test.i32", -2_000_000_000i32);
    w.set("test.u64", 1u64 << 40);
    w.set("test.i64", -(1i64 << 40));
    w.set("test.f64", 0.1f64);
    w.set("test.bool", true);
    w.set("tokenizer.ggml.model", "gpt2");
    w.set(
        "tokenizer.ggml.tokens",
        Value::strings(["a", "b", "<|eot_id|>", "ĠThe", ""]),
    );
    w.set(
        "tokenizer.ggml.token_type",
        Value::array_of(ValueType::I32, [1, 1, 3, 1, 5].map(Value::I32)),
    );
    w.set(
        "tokenizer.ggml.scores",
        Value::array_of(
            ValueType::F32,
            [0.0, -1.5, 2.25, 3.0, -1000.0].map(Value::F32),
        ),
    );
    w.set("test.empty", Value::array_of(ValueType::U32, []));
    let tensors = [
        ("token_embd.weight", vec![64u64, 5], TensorType::F16),
        ("blk.0.attn_norm.weight", vec![64], TensorType::F32),
        ("blk.0.attn_q.weight", vec![256, 4], TensorType::Q8_0),
        ("blk.0.ffn_up.weight", vec![256, 3], TensorType::TQ2_0),
        ("blk.0.ffn_down.weight", vec![256, 2], TensorType::TQ1_0),
        ("blk.1.attn_k.weight", vec![256, 2], TensorType::Q6_K),
        ("blk.1.attn_v.weight", vec![32, 2, 3], TensorType::BF16),
    ];
    for (i, (name, ne, ty)) in tensors.iter().enumerate() {
        let n = ty.nbytes(ne).ok_or("bad shape")? as usize;
        let data: Vec<u8> = (0..n).map(|j| (j * 31 + i) as u8).collect();
        w.add_tensor(*name, ne, *ty, TensorSource::Owned(data))?;
    }
    w.write(gguf_path)?;

    // Describe the file as our reader sees it.
    let f = GgufFile::open(gguf_path)?;
    let metadata: serde_json::Map<String, Json> = f
        .metadata()
        .iter()
        .map(|(k, v)| {
            let elem = v.as_array().map(|a| a.elem_type.code());
            (k.to_owned(), json!({ "type": v.value_type().code(), "element_type": elem, "value": value_json(v) }))
        })
        .collect();
    let tensors: Vec<Json> = f
        .tensors()
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "shape": t.ne,
                "type": t.raw_type,
                "n_elements": t.n_elements(),
                "n_bytes": t.nbytes,
                "data_offset": f.data_start() + t.offset,
                "sum": f.tensor_data(t).iter().map(|&b| b as u64).sum::<u64>(),
            })
        })
        .collect();
    let doc = json!({ "version": f.version(), "metadata": metadata, "tensors": tensors });
    std::fs::write(json_path, serde_json::to_string_pretty(&doc)?)?;
    Ok(())
}
