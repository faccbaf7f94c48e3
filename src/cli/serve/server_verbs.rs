//! The verbs that talk to a running server (`ps`, `stop`) and the refused `push`.

use std::time::{Duration, SystemTime};

use bitnet_gguf::serve::http::client;
use bitnet_gguf::serve::store;

use super::store_verbs::{human_bytes, human_time, table};

/// Where the running server is, resolved as `serve` resolves it.
#[derive(clap::Args)]
pub struct ServerAddrArgs {
    /// The server's host (default from OLLAMA_HOST, else 127.0.0.1).
    #[arg(long)]
    pub host: Option<String>,
    /// The server's port (default from OLLAMA_HOST, else 11434).
    #[arg(long)]
    pub port: Option<u16>,
}

impl ServerAddrArgs {
    fn addr(&self) -> anyhow::Result<String> {
        client::server_addr(self.host.as_deref(), self.port)
    }
}

#[derive(clap::Args)]
pub struct PsArgs {
    #[command(flatten)]
    pub server: ServerAddrArgs,
}

fn parse_rfc3339_secs(s: &str) -> Option<SystemTime> {
    // YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    );
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let mut secs = days * 86400 + h * 3600 + mi * 60 + se;
    let tz = s[19..].trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    if let Some(off) = tz.strip_prefix('+').or_else(|| tz.strip_prefix('-')) {
        let sign = if tz.starts_with('+') { 1 } else { -1 };
        let oh: i64 = off.get(0..2)?.parse().ok()?;
        let om: i64 = off.get(3..5)?.parse().ok()?;
        secs -= sign * (oh * 3600 + om * 60);
    }
    (secs >= 0).then(|| std::time::UNIX_EPOCH + Duration::from_secs(secs as u64))
}

pub fn ps(args: PsArgs) -> anyhow::Result<()> {
    let addr = args.server.addr()?;
    let r = client::request(&addr, "GET", "/api/ps", None)?;
    let v = r.json()?;
    if r.status != 200 {
        anyhow::bail!("{}", v["error"].as_str().unwrap_or("request failed"));
    }
    let mut rows = Vec::new();
    for m in v["models"].as_array().cloned().unwrap_or_default() {
        let digest = m["digest"].as_str().unwrap_or("");
        let until = match m["expires_at"].as_str().and_then(parse_rfc3339_secs) {
            Some(t) if t > SystemTime::now() + Duration::from_secs(20 * 365 * 86400) => {
                "Forever".to_string()
            }
            Some(t) if t <= SystemTime::now() => "Stopping...".to_string(),
            Some(t) => human_time(t),
            None => String::new(),
        };
        rows.push(vec![
            m["name"].as_str().unwrap_or("").to_string(),
            digest[..12.min(digest.len())].to_string(),
            human_bytes(m["size"].as_u64().unwrap_or(0)),
            "100% CPU".to_string(),
            m["context_length"]
                .as_u64()
                .map(|c| c.to_string())
                .unwrap_or_default(),
            until,
        ]);
    }
    print!(
        "{}",
        table(
            &["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"],
            &rows
        )
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct StopArgs {
    pub model: String,
    #[command(flatten)]
    pub server: ServerAddrArgs,
}

pub fn stop(args: StopArgs) -> anyhow::Result<()> {
    let addr = args.server.addr()?;
    let ps = client::request(&addr, "GET", "/api/ps", None)?.json()?;
    let wanted = store::ModelName::parse(&args.model).ok();
    let loaded = ps["models"].as_array().cloned().unwrap_or_default().iter().any(|m| {
        let n = m["name"].as_str().unwrap_or("");
        n == args.model || matches!((&wanted, store::ModelName::parse(n)), (Some(a), Ok(b)) if a.same_as(&b))
    });
    if !loaded {
        anyhow::bail!("couldn't find model \"{}\" to stop", args.model);
    }
    let r = client::post_json(
        &addr,
        "/api/generate",
        &serde_json::json!({"model": args.model, "keep_alive": 0}),
    )?;
    if r.status != 200 {
        anyhow::bail!("couldn't find model \"{}\" to stop", args.model);
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct PushArgs {
    pub model: Option<String>,
}

pub fn push(_args: PushArgs) -> anyhow::Result<()> {
    anyhow::bail!("push is not available: bitnet-gguf does not upload models to registries")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_tables() {
        assert_eq!(human_bytes(1_187_801_280), "1.2 GB");
        assert_eq!(human_bytes(13_000_000_000), "13 GB");
        assert_eq!(human_bytes(2_000_000), "2 MB");
        assert_eq!(human_bytes(999), "999 B");
        let t = table(
            &["NAME", "ID"],
            &[vec!["bitnet:latest".into(), "abc".into()]],
        );
        assert_eq!(t, "NAME             ID\nbitnet:latest    abc\n");
        let t0 = parse_rfc3339_secs("2026-11-22T01:52:00.5+01:00").unwrap();
        assert_eq!(
            bitnet_gguf::serve::http::reply::rfc3339(t0),
            "2026-11-22T00:52:00Z"
        );
    }
}
