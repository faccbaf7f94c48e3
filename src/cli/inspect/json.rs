//! The `--json` document (schema: docs/inspect-json.md). Field names and nesting are a
//! stable interface: add fields, never rename or remove them.

use serde_json::{json, Map, Value as Json};

use super::report::{file_type_name, Report, ARRAY_PREVIEW_LEN, ARRAY_SUMMARY_LEN};
use bitnet_formats::{GgufFile, Value};

pub const FORMAT_VERSION: u32 = 1;

fn float(x: f64) -> Json {
    if x.is_finite() {
        json!(x)
    } else if x.is_nan() {
        json!("nan")
    } else if x > 0.0 {
        json!("inf")
    } else {
        json!("-inf")
    }
}

/// A metadata value as JSON; arrays longer than the summary length keep only a preview
/// unless `full`.
pub fn value_json(v: &Value, full: bool) -> Json {
    match v {
        Value::U8(x) => json!(x),
        Value::I8(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::U64(x) => json!(x),
        Value::I64(x) => json!(x),
        // Through the shortest decimal of the f32, so 1e-5 prints as 1e-5, not 9.99e-6.
        Value::F32(x) => float(x.to_string().parse::<f64>().unwrap_or(f64::from(*x))),
        Value::F64(x) => float(*x),
        Value::Bool(b) => json!(b),
        Value::String(s) => json!(s),
        Value::Array(a) => {
            let shown = if full || a.len() <= ARRAY_SUMMARY_LEN {
                a.len()
            } else {
                ARRAY_PREVIEW_LEN
            };
            Json::Array(
                a.values[..shown]
                    .iter()
                    .map(|e| value_json(e, full))
                    .collect(),
            )
        }
    }
}

pub fn document(file: &GgufFile, report: &Report, full: bool) -> Json {
    let meta = file.metadata();
    let metadata: Vec<Json> = meta
        .iter()
        .map(|(key, v)| {
            let mut m = Map::new();
            m.insert("key".into(), json!(key));
            m.insert("type".into(), json!(v.value_type().name()));
            if let Value::Array(a) = v {
                m.insert("element_type".into(), json!(a.elem_type.name()));
                m.insert("length".into(), json!(a.len()));
                let truncated = !full && a.len() > ARRAY_SUMMARY_LEN;
                m.insert("truncated".into(), json!(truncated));
            }
            m.insert("value".into(), value_json(v, full));
            Json::Object(m)
        })
        .collect();
    let tensors: Vec<Json> = file
        .tensors()
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "type": t.ty.name(),
                "type_id": t.raw_type,
                "shape": t.ne,
                "n_elements": t.n_elements(),
                "bytes": t.nbytes,
                "offset": t.offset,
                "file_offset": file.data_start() + t.offset,
            })
        })
        .collect();
    let totals = &report.totals;
    let by_type: Vec<Json> = totals
        .by_type
        .iter()
        .map(|t| {
            json!({
                "type": t.ty.name(),
                "count": t.count,
                "n_elements": t.n_elements,
                "bytes": t.bytes,
                "bits_per_weight": (t.n_elements > 0).then(|| t.bytes as f64 * 8.0 / t.n_elements as f64),
            })
        })
        .collect();
    let ternary = totals.ternary_bits_per_weight().map(|bpw| {
        json!({ "n_elements": totals.ternary_elements, "bytes": totals.ternary_bytes, "bits_per_weight": bpw })
    });
    let tokenizer = report.tokenizer.as_ref().map(|t| {
        let specials: Map<String, Json> = t
            .specials
            .iter()
            .map(|s| (s.role.to_owned(), json!({ "id": s.id, "text": s.text })))
            .collect();
        json!({
            "model": t.model,
            "pre": t.pre,
            "vocab_size": t.vocab_size,
            "merges": t.merges,
            "special_tokens": specials,
            "add_bos_token": t.add_bos,
            "add_eos_token": t.add_eos,
            "chat_template": t.chat_template_bytes.is_some(),
            "chat_template_bytes": t.chat_template_bytes,
            "chat_template_is_placeholder": t.chat_template_is_placeholder,
        })
    });
    let file_type = meta.get_u64("general.file_type");
    let hparams: Map<String, Json> = match &report.architecture {
        Some(arch) => {
            let prefix = format!("{arch}.");
            meta.iter()
                .filter_map(|(k, v)| {
                    Some((k.strip_prefix(&prefix)?.to_owned(), value_json(v, false)))
                })
                .filter(|(_, v)| !v.is_array())
                .collect()
        }
        None => Map::new(),
    };
    json!({
        "format": "bitnet-gguf-inspect",
        "format_version": FORMAT_VERSION,
        "file": file.path().display().to_string(),
        "file_size": file.file_size(),
        "header": {
            "version": file.version(),
            "alignment": file.alignment(),
            "dialect": file.dialect().name(),
            "data_start": file.data_start(),
            "kv_count": meta.len(),
            "tensor_count": file.tensors().len(),
        },
        "architecture": report.architecture,
        "name": meta.get_str("general.name"),
        "file_type": file_type.map(|v| json!({
            "value": v,
            "name": file_type_name(v, file.dialect().is_bitnet()),
        })),
        "hyperparameters": hparams,
        "tokenizer": tokenizer,
        "metadata": metadata,
        "tensors": tensors,
        "totals": {
            "n_elements": totals.n_elements,
            "bytes": totals.bytes,
            "by_type": by_type,
            "ternary": ternary,
        },
        "warnings": report.warnings.iter().map(|w| json!({ "code": w.code, "message": w.message })).collect::<Vec<_>>(),
    })
}
