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
    /// Log-probabilities with this many alternatives per token (`logprobs`/`top_logprobs`).
    pub logprobs: Option<usize>,
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
            logprobs: None,
        }
    }

    pub fn max_tokens(&self) -> Option<usize> {
        (self.num_predict >= 0).then_some(self.num_predict as usize)
    }

    /// Applies one options object over these values. Unknown names are ignored (clients send
    /// extras); a known name with a value of the wrong type or out of its range is an error
    /// naming it.
    pub fn apply(&mut self, opts: &Map<String, Value>) -> Result<(), String> {
        for (k, v) in opts {
            if let Some(kind) = kind_of(k) {
                if !v.is_null() {
                    self.set(k, kind, v)?;
                }
            }
        }
        Ok(())
    }

    fn set(&mut self, k: &str, kind: Kind, v: &Value) -> Result<(), String> {
        let range = |what: &str| format!("invalid option \"{k}\": {v} (expected {what})");
        // Integers: JSON integers or numbers without a fraction, within `lo..=hi`.
        let int = |lo: i64, hi: i64, what: &str| {
            let i = match v.as_i64() {
                Some(i) => Some(i),
                None => v
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                    .map(|f| f as i64),
            };
            i.filter(|i| (lo..=hi).contains(i))
                .ok_or_else(|| range(what))
        };
        // Floats: finite as f32, within `lo..=hi`.
        let float = |lo: f32, hi: f32, what: &str| {
            v.as_f64()
                .map(|f| f as f32)
                .filter(|f| f.is_finite() && (lo..=hi).contains(f))
                .ok_or_else(|| range(what))
        };
        const I32: i64 = i32::MAX as i64;
        match (k, kind) {
            ("temperature", _) => {
                self.sampling.temperature = float(0.0, f32::MAX, "a number >= 0")?
            }
            ("top_k", _) => self.sampling.top_k = int(0, I32, "an integer >= 0")? as usize,
            ("top_p", _) => self.sampling.top_p = float(0.0, 1.0, "a number from 0 to 1")?,
            ("min_p", _) => self.sampling.min_p = float(0.0, 1.0, "a number from 0 to 1")?,
            ("typical_p", _) => {
                float(0.0, 1.0, "a number from 0 to 1")?;
            }
            ("repeat_penalty", _) => {
                self.sampling.repeat_penalty = float(f32::MIN_POSITIVE, f32::MAX, "a number > 0")?
            }
            ("repeat_last_n", _) => {
                let n = int(-1, I32, "-1 (the whole context) or an integer >= 0")?;
                self.sampling.repeat_last_n = if n < 0 { usize::MAX } else { n as usize };
            }
            ("presence_penalty", _) => {
                self.sampling.presence_penalty = float(f32::MIN, f32::MAX, "a finite number")?
            }
            ("frequency_penalty", _) => {
                self.sampling.frequency_penalty = float(f32::MIN, f32::MAX, "a finite number")?
            }
            ("seed", _) => {
                let s = int(i64::MIN, i64::MAX, "an integer; negative = random")?;
                self.sampling.seed = if s < 0 { RANDOM_SEED } else { s as u64 };
            }
            ("num_predict", _) => {
                let n = int(-2, I32, "-1 (no limit), -2 (fill the context) or >= 0")?;
                self.num_predict = n;
            }
            ("num_keep", _) => {
                let n = int(-1, I32, "-1 or an integer >= 0")?;
                self.num_keep = (n >= 0).then_some(n as usize);
            }
            ("num_ctx", _) => {
                let n = int(1, MAX_NUM_CTX, "an integer from 1 to 16777216")?;
                self.num_ctx = Some(n as usize);
            }
            ("stop", _) => {
                let bad = || range("a string or a list of strings");
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
                int(i64::MIN, i64::MAX, "an integer")?;
            }
            (_, Kind::Float) => {
                float(f32::MIN, f32::MAX, "a finite number")?;
            }
            (_, Kind::Bool) => {
                v.as_bool().ok_or_else(|| range("true or false"))?;
            }
            (_, Kind::StringList) => {}
        }
        Ok(())
    }
}

/// Most alternatives per token a request may ask for (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// `top_logprobs` (or OpenAI completions' `logprobs`): an integer from 0 to 20.
pub fn top_logprobs(field: &str, v: Option<&Value>) -> Result<usize, String> {
    match v {
        None | Some(Value::Null) => Ok(0),
        Some(x) => x
            .as_u64()
            .filter(|&n| n <= MAX_TOP_LOGPROBS as u64)
            .map(|n| n as usize)
            .ok_or_else(|| format!("invalid {field}: {x} (expected an integer from 0 to 20)")),
    }
}

/// The largest `num_ctx` a request may ask for (the slots' context caps it further).
const MAX_NUM_CTX: i64 = 1 << 24;

/// How long a model stays loaded after a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeepAlive {
    Forever,
    For(Duration),
}

/// The longest duration accepted, Go's largest `time.Duration` (about 292 years).
const MAX_DURATION_SECS: f64 = i64::MAX as f64 / 1e9;

/// A non-negative number of seconds as a duration, or `None` past [`MAX_DURATION_SECS`].
fn seconds(secs: f64) -> Option<KeepAlive> {
    if secs < 0.0 {
        return Some(KeepAlive::Forever);
    }
    (secs <= MAX_DURATION_SECS)
        .then(|| Duration::try_from_secs_f64(secs).ok())
        .flatten()
        .map(KeepAlive::For)
}

/// `keep_alive`: a Go duration string (`"5m"`, `"1h30m"`, `"0"`, `"-1"`) or a number of
/// seconds; negative = forever.
pub fn parse_keep_alive(v: &Value) -> Result<KeepAlive, String> {
    match v {
        Value::Number(n) => n.as_f64().and_then(seconds).ok_or_else(|| {
            format!("invalid keep_alive {n}: at most {MAX_DURATION_SECS:.0} seconds")
        }),
        Value::String(s) => parse_go_duration(s).map_err(|e| format!("invalid keep_alive: {e}")),
        _ => Err(format!(
            "invalid keep_alive {v}: expected a duration string or a number of seconds"
        )),
    }
}

/// A Go duration (`"5m"`, `"1h30m"`, `"-1"`) or a plain number of seconds; negative = forever.
pub fn parse_go_duration(s: &str) -> Result<KeepAlive, String> {
    let bad = || format!("{s:?} is not a duration (like 5m, 1h30m, 0 or -1)");
    let too_long = || format!("{s:?} is longer than the longest duration (about 292 years)");
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_nan() {
            return Err(bad());
        }
        return seconds(secs).ok_or_else(too_long);
    }
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
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
            _ => return Err(bad()),
        };
        rest = &rest[unit_end..];
        total += n * mult;
    }
    if neg {
        return Ok(KeepAlive::Forever);
    }
    seconds(total).ok_or_else(too_long)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations() {
        assert_eq!(
            parse_go_duration("5m"),
            Ok(KeepAlive::For(Duration::from_secs(300)))
        );
        assert_eq!(
            parse_go_duration("1h30m"),
            Ok(KeepAlive::For(Duration::from_secs(5400)))
        );
        assert_eq!(parse_go_duration("0"), Ok(KeepAlive::For(Duration::ZERO)));
        assert_eq!(parse_go_duration("-1"), Ok(KeepAlive::Forever));
        assert_eq!(parse_go_duration("-1m"), Ok(KeepAlive::Forever));
        assert!(parse_go_duration("5x").is_err());
        for huge in ["1e300", "999999999999999999h", "inf", "NaN"] {
            assert!(parse_go_duration(huge).is_err(), "{huge}");
        }
        assert!(parse_keep_alive(&json!(1e300)).is_err());
        assert!(parse_keep_alive(&json!(u64::MAX)).is_err());
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
