//! The option names of Ollama's `options` object and Modelfile `PARAMETER`s, with their types.

use serde_json::{Map, Value};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Int,
    Float,
    Bool,
    /// Repeatable string (`stop`): accumulates into an array.
    StringList,
}

/// Every name Ollama accepts, including deprecated ones that are accepted and ignored.
pub const OPTIONS: &[(&str, Kind)] = &[
    ("num_keep", Kind::Int),
    ("seed", Kind::Int),
    ("num_predict", Kind::Int),
    ("top_k", Kind::Int),
    ("top_p", Kind::Float),
    ("min_p", Kind::Float),
    ("typical_p", Kind::Float),
    ("repeat_last_n", Kind::Int),
    ("temperature", Kind::Float),
    ("repeat_penalty", Kind::Float),
    ("presence_penalty", Kind::Float),
    ("frequency_penalty", Kind::Float),
    ("stop", Kind::StringList),
    ("num_ctx", Kind::Int),
    ("num_batch", Kind::Int),
    ("num_gpu", Kind::Int),
    ("main_gpu", Kind::Int),
    ("num_thread", Kind::Int),
    ("use_mmap", Kind::Bool),
    ("numa", Kind::Bool),
    ("draft_num_predict", Kind::Int),
    ("penalize_newline", Kind::Bool),
    ("mirostat", Kind::Int),
    ("mirostat_tau", Kind::Float),
    ("mirostat_eta", Kind::Float),
    ("tfs_z", Kind::Float),
    ("low_vram", Kind::Bool),
    ("f16_kv", Kind::Bool),
    ("logits_all", Kind::Bool),
    ("vocab_only", Kind::Bool),
    ("use_mlock", Kind::Bool),
    ("num_gqa", Kind::Int),
];

pub fn kind_of(name: &str) -> Option<Kind> {
    OPTIONS.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
}

/// Types `PARAMETER name value` pairs into a JSON object (`stop` becomes an array).
pub fn typed_parameters(pairs: &[(String, String)]) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (name, raw) in pairs {
        let kind = kind_of(name).ok_or_else(|| format!("unknown parameter '{name}'"))?;
        let bad = || format!("invalid value for parameter {name}: {raw:?}");
        let v = match kind {
            Kind::Int => Value::from(raw.trim().parse::<i64>().map_err(|_| bad())?),
            Kind::Float => {
                let f = raw.trim().parse::<f64>().map_err(|_| bad())?;
                serde_json::Number::from_f64(f)
                    .map(Value::Number)
                    .ok_or_else(bad)?
            }
            Kind::Bool => Value::Bool(match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return Err(bad()),
            }),
            Kind::StringList => {
                let entry = out
                    .entry(name.clone())
                    .or_insert_with(|| Value::Array(vec![]));
                if let Value::Array(a) = entry {
                    a.push(Value::String(raw.clone()));
                }
                continue;
            }
        };
        out.insert(name.clone(), v);
    }
    Ok(out)
}

/// Formats a value the way Go's `%v` prints it in `ollama show --parameters`.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.to_string()
            } else {
                let f = n.as_f64().unwrap_or(0.0);
                // Go prints float32 options with the shortest representation.
                let f32v = f as f32;
                format!("{f32v}")
            }
        }
        other => other.to_string(),
    }
}

/// `ollama show` parameter lines: name padded to 30 columns, a space, the value.
pub fn parameter_lines(params: &Map<String, Value>) -> Vec<(String, String)> {
    let mut keys: Vec<&String> = params.keys().collect();
    keys.sort();
    let mut lines = Vec::new();
    for k in keys {
        match &params[k] {
            Value::Array(items) => {
                for it in items {
                    lines.push((k.clone(), go_value(it)));
                }
            }
            v => lines.push((k.clone(), go_value(v))),
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_accumulates() {
        let pairs = vec![
            ("temperature".to_string(), "0.6".to_string()),
            ("num_ctx".to_string(), "4096".to_string()),
            ("stop".to_string(), "<|eot_id|>".to_string()),
            ("stop".to_string(), "User:".to_string()),
        ];
        let m = typed_parameters(&pairs).unwrap();
        assert_eq!(
            serde_json::Value::Object(m.clone()),
            serde_json::json!({"temperature":0.6,"num_ctx":4096,"stop":["<|eot_id|>","User:"]})
        );
        let lines = parameter_lines(&m);
        assert_eq!(lines[0], ("num_ctx".into(), "4096".into()));
        assert_eq!(lines[1], ("stop".into(), "\"<|eot_id|>\"".into()));
        assert_eq!(lines[3], ("temperature".into(), "0.6".into()));
        assert!(typed_parameters(&[("bogus".into(), "1".into())]).is_err());
        assert!(typed_parameters(&[("top_k".into(), "x".into())]).is_err());
    }
}
