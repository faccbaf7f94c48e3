//! What the store and the API report about a GGUF file: family, parameter count, quantisation
//! level and the `model_info` map of `/api/show`.

use std::collections::HashMap;
use std::path::Path;

use bitnet_formats::{GgufFile, Value};
use serde_json::{Map, Value as Json};

#[derive(Clone, Debug, Default)]
pub struct GgufSummary {
    pub architecture: String,
    pub parameter_count: u64,
    /// Name of the dominant weight type, e.g. `I2_S`, `TQ2_0`, `F16`.
    pub file_type: String,
    pub context_length: Option<u64>,
    pub embedding_length: Option<u64>,
}

pub fn summarize(file: &GgufFile) -> GgufSummary {
    let meta = file.metadata();
    let arch = file.architecture().unwrap_or("unknown").to_string();
    let parameter_count = meta
        .get_u64("general.parameter_count")
        .unwrap_or_else(|| file.tensors().iter().map(|t| t.n_elements()).sum());
    // Quantisation level: the type holding most bytes among 2-D weights, ternary types first.
    let mut by_type: HashMap<&'static str, (bool, u64)> = HashMap::new();
    for t in file.tensors() {
        if t.ne.len() >= 2 {
            let e = by_type.entry(t.ty.name()).or_insert((t.ty.is_ternary(), 0));
            e.1 += t.nbytes;
        }
    }
    let file_type = by_type
        .iter()
        .max_by_key(|(name, (ternary, bytes))| (*ternary, *bytes, std::cmp::Reverse(**name)))
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| "unknown".into());
    GgufSummary {
        context_length: meta.get_u64(&format!("{arch}.context_length")),
        embedding_length: meta.get_u64(&format!("{arch}.embedding_length")),
        architecture: arch,
        parameter_count,
        file_type,
    }
}

pub fn summarize_path(path: &Path) -> anyhow::Result<GgufSummary> {
    let file = GgufFile::open(path)?;
    Ok(summarize(&file))
}

fn to_json(v: &Value, verbose: bool) -> Json {
    match v {
        Value::U8(x) => Json::from(*x),
        Value::I8(x) => Json::from(*x),
        Value::U16(x) => Json::from(*x),
        Value::I16(x) => Json::from(*x),
        Value::U32(x) => Json::from(*x),
        Value::I32(x) => Json::from(*x),
        Value::U64(x) => Json::from(*x),
        Value::I64(x) => Json::from(*x),
        Value::F32(x) => serde_json::Number::from_f64(*x as f64)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Value::F64(x) => serde_json::Number::from_f64(*x)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Value::Bool(b) => Json::Bool(*b),
        Value::String(s) => Json::String(s.clone()),
        Value::Array(a) => {
            if a.values.len() > 5 && !verbose {
                Json::Array(vec![])
            } else {
                Json::Array(a.values.iter().map(|x| to_json(x, verbose)).collect())
            }
        }
    }
}

/// GGUF metadata minus `general.name` and `tokenizer.chat_template`; arrays longer than 5 are
/// emptied unless `verbose` (as Ollama does, so the reply stays small).
pub fn model_info(file: &GgufFile, verbose: bool) -> Map<String, Json> {
    let mut out = Map::new();
    for (k, v) in file.metadata().iter() {
        if k == "general.name" || k == "tokenizer.chat_template" {
            continue;
        }
        out.insert(k.to_string(), to_json(v, verbose));
    }
    if !out.contains_key("general.parameter_count") {
        out.insert(
            "general.parameter_count".into(),
            Json::from(summarize(file).parameter_count),
        );
    }
    out
}

/// `2.4B`, `8B`, `135.00M`, as Ollama's `format.HumanNumber`.
pub fn human_number(n: u64) -> String {
    let f = n as f64;
    let (v, unit, prec) = if n >= 1_000_000_000 {
        (f / 1e9, "B", 1)
    } else if n >= 1_000_000 {
        (f / 1e6, "M", 2)
    } else if n >= 1_000 {
        (f / 1e3, "K", 0)
    } else {
        return n.to_string();
    };
    if v == v.floor() {
        format!("{v:.0}{unit}")
    } else {
        format!("{v:.prec$}{unit}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_numbers() {
        assert_eq!(super::human_number(2_400_000_000), "2.4B");
        assert_eq!(super::human_number(8_000_000_000), "8B");
        assert_eq!(super::human_number(135_000_001), "135.00M");
        assert_eq!(super::human_number(5_800_000), "5.80M");
        assert_eq!(super::human_number(999), "999");
    }
}
