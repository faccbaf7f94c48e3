//! Request `options` (and Modelfile `PARAMETER`s) turned into engine settings, and
//! `keep_alive` durations.

use std::time::Duration;

use serde_json::{Map, Value};

use std::sync::Arc;

use crate::engine::json_constraint::schema::Shape;
use crate::engine::sampler::{SamplerConfig, RANDOM_SEED};
use crate::serve::store::params::{kind_of, Kind};

#[derive(Clone, Debug, PartialEq)]
pub struct RunOptions {
    pub sampling: SamplerConfig,
    /// `num_predict`: -1 (or any negative) = until stop/context.
    pub num_predict: i64,
    pub num_ctx: Option<usize>,
    /// `num_keep`: prompt tokens kept at the start when a long prompt is truncated.
    pub num_keep: Option<usize>,
    pub stop: Vec<String>,
    /// False when the request gave its own `stop` (then the template's stops are not added).
    pub stop_given: bool,
    /// Output constrained to one JSON object (Ollama `format`, OpenAI `response_format`).
    pub json: bool,
    /// The schema's shape when `format` / `json_schema` gave one.
    pub json_shape: Option<Arc<Shape>>,
}

impl RunOptions {
    /// Ollama's defaults (the sampler's own).
    pub fn ollama_defaults() -> RunOptions {
        RunOptions {
            sampling: SamplerConfig::default(),
            num_predict: -1,
            num_ctx: None,
            num_keep: None,
            stop: vec![],
            stop_given: false,
            json: false,
            json_shape: None,
        }
    }

    pub fn max_tokens(&self) -> Option<usize> {
        (self.num_predict >= 0).then_some(self.num_predict as usize)
    }

    /// Applies one options object over these values. Unknown names are ignored (clients send
    /// extras); a known name with a value of the wrong type is an error.
    pub fn apply(&mut self, opts: &Map<String, Value>) -> Result<(), String> {
        for (k, v) in opts {
            let Some(kind) = kind_of(k) else { continue };
            if v.is_null() {
                continue;
            }
            let bad = || format!("option \"{k}\": invalid value {v}");
            let f = || v.as_f64().ok_or_else(bad);
            let i = || match v.as_i64() {
                Some(i) => Ok(i),
                None => v
                    .as_f64()
                    .filter(|f| f.fract() == 0.0)
                    .map(|f| f as i64)
                    .ok_or_else(bad),
            };
            match (k.as_str(), kind) {
                ("temperature", _) => self.sampling.temperature = f()? as f32,
                ("top_k", _) => self.sampling.top_k = i()?.max(0) as usize,
                ("top_p", _) => self.sampling.top_p = f()? as f32,
                ("min_p", _) => self.sampling.min_p = f()? as f32,
                ("repeat_penalty", _) => self.sampling.repeat_penalty = f()? as f32,
                ("repeat_last_n", _) => {
                    let n = i()?;
                    self.sampling.repeat_last_n = if n < 0 { usize::MAX } else { n as usize };
                }
                ("presence_penalty", _) => self.sampling.presence_penalty = f()? as f32,
                ("frequency_penalty", _) => self.sampling.frequency_penalty = f()? as f32,
                ("seed", _) => {
                    let s = i()?;
                    self.sampling.seed = if s < 0 { RANDOM_SEED } else { s as u64 };
                }
                ("num_predict", _) => self.num_predict = i()?,
                ("num_keep", _) => {
                    let n = i()?;
                    self.num_keep = (n >= 0).then_some(n as usize);
                }
                ("num_ctx", _) => {
                    let n = i()?;
                    self.num_ctx = (n > 0).then_some(n as usize);
                }
                ("stop", _) => {
                    self.stop = match v {
                        Value::String(s) => vec![s.clone()],
                        Value::Array(a) => a
                            .iter()
                            .map(|x| x.as_str().map(String::from).ok_or_else(bad))
                            .collect::<Result<_, _>>()?,
                        _ => return Err(bad()),
                    };
                    self.stop.retain(|s| !s.is_empty());
                    self.stop_given = true;
                }
                (_, Kind::Int) => {
                    i()?;
                }
                (_, Kind::Float) => {
                    f()?;
                }
                (_, Kind::Bool) => {
                    v.as_bool().ok_or_else(bad)?;
                }
                (_, Kind::StringList) => {}
            }
        }
        Ok(())
    }
}

/// How long a model stays loaded after a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepAlive {
    Forever,
    For(Duration),
}

/// `keep_alive`: a Go duration string (`"5m"`, `"1h30m"`, `"0"`, `"-1"`) or a number of
/// seconds; negative = forever.
pub fn parse_keep_alive(v: &Value) -> Result<KeepAlive, String> {
    match v {
        Value::Number(n) => {
            let secs = n.as_f64().unwrap_or(0.0);
            Ok(if secs < 0.0 {
                KeepAlive::Forever
            } else {
                KeepAlive::For(Duration::from_secs_f64(secs))
            })
        }
        Value::String(s) => {
            parse_go_duration(s).ok_or_else(|| format!("invalid keep_alive duration {s:?}"))
        }
        _ => Err(format!("invalid keep_alive {v}")),
    }
}

pub fn parse_go_duration(s: &str) -> Option<KeepAlive> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Some(if secs < 0.0 {
            KeepAlive::Forever
        } else {
            KeepAlive::For(Duration::from_secs_f64(secs))
        });
    }
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += n * mult;
    }
    Some(if neg {
        KeepAlive::Forever
    } else {
        KeepAlive::For(Duration::from_secs_f64(total))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations() {
        assert_eq!(
            parse_go_duration("5m"),
            Some(KeepAlive::For(Duration::from_secs(300)))
        );
        assert_eq!(
            parse_go_duration("1h30m"),
            Some(KeepAlive::For(Duration::from_secs(5400)))
        );
        assert_eq!(parse_go_duration("0"), Some(KeepAlive::For(Duration::ZERO)));
        assert_eq!(parse_go_duration("-1"), Some(KeepAlive::Forever));
        assert_eq!(parse_go_duration("-1m"), Some(KeepAlive::Forever));
        assert_eq!(parse_go_duration("5x"), None);
        assert_eq!(
            parse_keep_alive(&json!(10)),
            Ok(KeepAlive::For(Duration::from_secs(10)))
        );
    }

    #[test]
    fn options_apply() {
        let mut o = RunOptions::ollama_defaults();
        let m = json!({"temperature": 0, "top_k": 5.0, "stop": "x", "num_predict": 8, "mirostat": 0, "whatever": [1]});
        o.apply(m.as_object().unwrap()).unwrap();
        assert_eq!(o.sampling.temperature, 0.0);
        assert_eq!(o.sampling.top_k, 5);
        assert_eq!(o.stop, vec!["x".to_string()]);
        assert_eq!(o.max_tokens(), Some(8));
        assert!(o.apply(json!({"top_k": "x"}).as_object().unwrap()).is_err());
    }
}
