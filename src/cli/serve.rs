//! `serve` and the Ollama-style model verbs: `create`, `list`, `show`, `rm`, `cp`, `ps`, `stop`,
//! `pull`/`push` (refused: models are local files here).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::server::{self, client, options::KeepAlive, LoadSettings, ServeConfig};
use crate::store::{self, gguf_info, modelfile, params, CreateSpec, Store};

fn env_or<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[derive(clap::Args)]
#[command(after_help = "Environment (flags win over it):
  OLLAMA_HOST                 address to bind, host:port (default 127.0.0.1:11434)
  BITNET_MODELS               our model store (default ~/.bitnet/models)
  OLLAMA_MODELS               an Ollama store to read models from (never written)
  OLLAMA_KEEP_ALIVE           how long models stay loaded (default 5m)
  OLLAMA_CONTEXT_LENGTH       context length per sequence
  OLLAMA_NUM_PARALLEL         parallel sequences per model
  OLLAMA_MAX_LOADED_MODELS    models kept in memory at once
  OLLAMA_MAX_QUEUE            requests waiting for a slot before 503
  OLLAMA_ORIGINS              extra allowed CORS origins (comma separated)")]
pub struct ServeArgs {
    /// Address to listen on (default from OLLAMA_HOST, else 127.0.0.1).
    #[arg(long)]
    pub host: Option<String>,
    /// Port (default from OLLAMA_HOST, else 11434).
    #[arg(long)]
    pub port: Option<u16>,
    /// A GGUF file (or store name) to load at start and serve under --alias.
    #[arg(short = 'm', long)]
    pub model: Option<String>,
    /// Name of the -m model in the API (default: the file name without .gguf).
    #[arg(short = 'a', long)]
    pub alias: Option<String>,
    /// Parallel sequences per model (slots).
    #[arg(long = "parallel", visible_alias = "np")]
    pub parallel: Option<usize>,
    /// Context length of each sequence (default: the model's, at most 4096).
    #[arg(short = 'c', long = "ctx-size")]
    pub ctx_size: Option<usize>,
    /// Threads for the matmuls (default: all cores).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Requests that may wait for a slot; more get 503.
    #[arg(long)]
    pub max_queue: Option<usize>,
    /// How long an idle model stays loaded (Go duration: 5m, 1h, 0, -1 = forever).
    #[arg(long)]
    pub keep_alive: Option<String>,
    /// Models kept in memory at once.
    #[arg(long)]
    pub max_loaded: Option<usize>,
    /// Require `Authorization: Bearer KEY` on /api and /v1.
    #[arg(long)]
    pub api_key: Option<String>,
    /// An Ollama model store to read (never written).
    #[arg(long)]
    pub ollama_models: Option<PathBuf>,
    /// Largest accepted request body in bytes (blob uploads excepted).
    #[arg(long, default_value_t = 32 * 1024 * 1024)]
    pub body_limit: usize,
}

pub fn serve_config(args: &ServeArgs) -> anyhow::Result<ServeConfig> {
    let (env_host, env_port) =
        server::parse_host(&std::env::var("OLLAMA_HOST").unwrap_or_default())?;
    let host = args.host.clone().unwrap_or(env_host);
    let port = args.port.unwrap_or(env_port);
    let ip: std::net::IpAddr = match host.as_str() {
        "localhost" => std::net::IpAddr::from([127, 0, 0, 1]),
        h => h
            .parse()
            .map_err(|_| anyhow::anyhow!("--host must be an IP address, not {h:?}"))?,
    };
    let keep_alive = match args
        .keep_alive
        .clone()
        .or_else(|| std::env::var("OLLAMA_KEEP_ALIVE").ok())
    {
        Some(s) => server::options::parse_go_duration(&s)
            .ok_or_else(|| anyhow::anyhow!("bad keep-alive {s:?}"))?,
        None => KeepAlive::For(Duration::from_secs(300)),
    };
    let store = Store::from_env(args.ollama_models.clone());
    let default_model = match &args.model {
        Some(m) => {
            let path = store::resolve_model(m)?;
            let alias = args.alias.clone().unwrap_or_else(|| {
                let p = std::path::Path::new(m);
                if p.exists() {
                    p.file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_else(|| m.clone())
                } else {
                    m.clone()
                }
            });
            Some((alias, path))
        }
        None => None,
    };
    Ok(ServeConfig {
        addr: std::net::SocketAddr::new(ip, port),
        load: LoadSettings {
            n_slots: args
                .parallel
                .or_else(|| env_or("OLLAMA_NUM_PARALLEL"))
                .unwrap_or(4)
                .max(1),
            n_ctx: args
                .ctx_size
                .or_else(|| env_or("OLLAMA_CONTEXT_LENGTH"))
                .filter(|&c| c > 0),
            threads: args.threads,
            max_queue: args
                .max_queue
                .or_else(|| env_or("OLLAMA_MAX_QUEUE"))
                .unwrap_or(512),
        },
        keep_alive,
        max_loaded: args
            .max_loaded
            .or_else(|| env_or("OLLAMA_MAX_LOADED_MODELS"))
            .unwrap_or(1)
            .max(1),
        default_model,
        api_key: args
            .api_key
            .clone()
            .or_else(|| std::env::var("BITNET_API_KEY").ok())
            .filter(|k| !k.is_empty()),
        body_limit: args.body_limit,
        store,
    })
}

pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = serve_config(&args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    eprintln!(
        "bitnet-gguf {} listening on http://{} ({} slots per model, store {})",
        env!("CARGO_PKG_VERSION"),
        config.addr,
        config.load.n_slots,
        config.store.root.display()
    );
    rt.block_on(server::run(config, server::engine::loader()))
}

#[derive(clap::Args)]
pub struct CreateArgs {
    /// Name of the new model (`name[:tag]`).
    pub name: String,
    /// The Modelfile (default ./Modelfile).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Re-quantise while importing (not supported: use `bitnet-gguf quantize`).
    #[arg(short = 'q', long = "quantize")]
    pub quantize: Option<String>,
}

pub fn create(args: CreateArgs) -> anyhow::Result<()> {
    if args.quantize.is_some() {
        anyhow::bail!("--quantize is not supported by create; quantize the GGUF first with `bitnet-gguf quantize`");
    }
    let path = args.file.unwrap_or_else(|| PathBuf::from("Modelfile"));
    let src = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let mf = modelfile::parse(&src)?;
    let dir = path.parent().map(|p| {
        if p.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            p.to_path_buf()
        }
    });
    let spec = CreateSpec::from_modelfile(&mf, &dir.unwrap_or_else(|| PathBuf::from(".")))?;
    let store = Store::from_env(None);
    store::create::create(&store, &args.name, spec, &mut |s| println!("{s}"))
}

/// Powers of 1000: one decimal below 10 unless whole, as Ollama's `format.HumanBytes`.
pub fn human_bytes(b: u64) -> String {
    let units = [(1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "KB")];
    for (scale, unit) in units {
        let v = b as f64 / scale;
        if v >= 1.0 {
            return if v >= 10.0 || v == v.trunc() {
                format!("{} {unit}", v as u64)
            } else {
                format!("{v:.1} {unit}")
            };
        }
    }
    format!("{b} B")
}

/// Go-style relative times: `2 days ago`, `4 minutes from now`.
pub fn human_time(t: SystemTime) -> String {
    let now = SystemTime::now();
    let (d, suffix) = match now.duration_since(t) {
        Ok(d) => (d, "ago"),
        Err(e) => (e.duration(), "from now"),
    };
    let s = d.as_secs();
    let text = if s < 1 {
        "Less than a second".to_string()
    } else if s == 1 {
        "1 second".to_string()
    } else if s < 60 {
        format!("{s} seconds")
    } else if s / 60 == 1 {
        "About a minute".to_string()
    } else if s < 3600 {
        format!("{} minutes", s / 60)
    } else {
        let h = (d.as_secs_f64() / 3600.0).round() as u64;
        match h {
            1 => "About an hour".to_string(),
            h if h < 48 => format!("{h} hours"),
            h if h < 24 * 7 * 2 => format!("{} days", h / 24),
            h if h < 24 * 30 * 2 => format!("{} weeks", h / 24 / 7),
            h if h < 24 * 365 * 2 => format!("{} months", h / 24 / 30),
            _ => format!("{} years", s / 3600 / 24 / 365),
        }
    };
    format!("{text} {suffix}")
}

/// Left-aligned columns separated by 4 spaces, no borders (Ollama's tables).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let all = std::iter::once(header.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .chain(rows.iter().cloned());
    for r in all {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(widths[i] - c.chars().count() + 4));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// Only models whose name starts with this.
    pub prefix: Option<String>,
    /// An Ollama model store to list too (read-only).
    #[arg(long)]
    pub ollama_models: Option<PathBuf>,
}

pub fn list(args: ListArgs) -> anyhow::Result<()> {
    let store = Store::from_env(args.ollama_models);
    let rows: Vec<Vec<String>> = store
        .list()
        .into_iter()
        .map(|e| (e.name.to_string(), e))
        .filter(|(n, _)| {
            args.prefix
                .as_ref()
                .is_none_or(|p| n.starts_with(p.as_str()))
        })
        .map(|(n, e)| {
            vec![
                n,
                e.digest[..12.min(e.digest.len())].to_string(),
                human_bytes(e.size),
                human_time(e.modified),
            ]
        })
        .collect();
    print!("{}", table(&["NAME", "ID", "SIZE", "MODIFIED"], &rows));
    Ok(())
}

#[derive(clap::Args)]
pub struct ShowArgs {
    pub model: String,
    /// Print the Modelfile.
    #[arg(long)]
    pub modelfile: bool,
    /// Print the parameters.
    #[arg(long)]
    pub parameters: bool,
    /// Print the template.
    #[arg(long)]
    pub template: bool,
    /// Print the system prompt.
    #[arg(long)]
    pub system: bool,
    /// Print the license.
    #[arg(long)]
    pub license: bool,
    /// Also print the GGUF metadata.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    #[arg(long)]
    pub ollama_models: Option<PathBuf>,
}

pub fn show(args: ShowArgs) -> anyhow::Result<()> {
    let store = Store::from_env(args.ollama_models.clone());
    let (entry, path) = match store.open(&args.model).ok().flatten() {
        Some(e) => {
            let p = e.model_path.clone();
            (Some(e), p)
        }
        None => {
            let p = store::expand_tilde(&args.model);
            if !p.is_file() {
                anyhow::bail!("model '{}' not found", args.model);
            }
            (None, p)
        }
    };
    let e = entry.as_ref();
    let file = bitnet_formats::GgufFile::open(&path)?;
    let template = e
        .and_then(|e| e.template.clone())
        .or_else(|| {
            file.metadata()
                .get_str("tokenizer.chat_template")
                .map(String::from)
        })
        .unwrap_or_default();
    let param_lines = e
        .map(|e| params::parameter_lines(&e.params))
        .unwrap_or_default();
    if args.modelfile {
        print!(
            "{}",
            server::routes_store::modelfile_text(&args.model, &path, e)
        );
        return Ok(());
    }
    if args.parameters {
        for (k, v) in &param_lines {
            println!("{k:<30} {v}");
        }
        return Ok(());
    }
    if args.template {
        println!("{template}");
        return Ok(());
    }
    if args.system {
        println!("{}", e.and_then(|e| e.system.clone()).unwrap_or_default());
        return Ok(());
    }
    if args.license {
        println!("{}", e.map(|e| e.license.join("\n")).unwrap_or_default());
        return Ok(());
    }
    let s = gguf_info::summarize(&file);
    let section = |title: &str, rows: Vec<(String, String)>| {
        println!("  {title}");
        let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        for (k, v) in rows {
            if v.is_empty() {
                println!("    {k}");
            } else {
                println!("    {k:<w$}    {v}");
            }
        }
        println!();
    };
    let mut model = vec![
        ("architecture".to_string(), s.architecture.clone()),
        (
            "parameters".to_string(),
            gguf_info::human_number(s.parameter_count),
        ),
    ];
    if let Some(c) = s.context_length {
        model.push(("context length".into(), c.to_string()));
    }
    if let Some(c) = s.embedding_length {
        model.push(("embedding length".into(), c.to_string()));
    }
    model.push(("quantization".into(), s.file_type.clone()));
    section("Model", model);
    section("Capabilities", vec![("completion".into(), String::new())]);
    if !param_lines.is_empty() {
        section("Parameters", param_lines.clone());
    }
    if let Some(sys) = e.and_then(|e| e.system.clone()) {
        section(
            "System",
            sys.lines()
                .take(2)
                .map(|l| (l.to_string(), String::new()))
                .collect(),
        );
    }
    if let Some(l) = e.and_then(|e| e.license.first().cloned()) {
        section(
            "License",
            l.lines()
                .take(2)
                .map(|l| (l.to_string(), String::new()))
                .collect(),
        );
    }
    if args.verbose {
        let info = gguf_info::model_info(&file, false);
        section(
            "Metadata",
            info.iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
        );
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct RmArgs {
    /// Models to delete.
    #[arg(required = true)]
    pub models: Vec<String>,
}

pub fn rm(args: RmArgs) -> anyhow::Result<()> {
    let store = Store::from_env(None);
    for m in &args.models {
        // Unload from a running server first, if there is one (ignore "no server").
        if let Ok(addr) = client::server_addr() {
            let _ = client::post_json(
                &addr,
                "/api/generate",
                &serde_json::json!({"model": m, "keep_alive": 0}),
            );
        }
        store.delete(m)?;
        println!("deleted '{m}'");
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct CpArgs {
    pub source: String,
    pub destination: String,
}

pub fn cp(args: CpArgs) -> anyhow::Result<()> {
    Store::from_env(None).copy(&args.source, &args.destination)?;
    println!("copied '{}' to '{}'", args.source, args.destination);
    Ok(())
}

#[derive(clap::Args)]
pub struct PsArgs {}

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

pub fn ps(_args: PsArgs) -> anyhow::Result<()> {
    let addr = client::server_addr()?;
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
}

pub fn stop(args: StopArgs) -> anyhow::Result<()> {
    let addr = client::server_addr()?;
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
pub struct PullArgs {
    pub model: Option<String>,
}

pub fn pull(args: PullArgs) -> anyhow::Result<()> {
    let m = args.model.unwrap_or_default();
    anyhow::bail!(
        "pull/push are not available: bitnet-gguf does not talk to model registries. \
         Download a GGUF yourself and import it with `bitnet-gguf create {} -f Modelfile` (FROM ./file.gguf)",
        if m.is_empty() { "NAME" } else { &m }
    )
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
        assert_eq!(crate::server::http::rfc3339(t0), "2026-11-22T00:52:00Z");
    }
}
