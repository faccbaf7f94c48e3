//! The verbs that read and write the model store: `create`, `list`, `show`, `rm`, `cp`, and
//! the table formatting they share with `ps`.

use std::path::PathBuf;
use std::time::SystemTime;

use bitnet_gguf::serve::http::{self, client};
use bitnet_gguf::serve::store::{self, gguf_info, modelfile, params, CreateSpec, Store};

#[derive(clap::Args)]
pub struct CreateArgs {
    /// Name of the new model (`name[:tag]`).
    pub name: String,
    /// The Modelfile (default ./Modelfile).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Storage of the ternary weights when FROM is a Hugging Face checkpoint (a directory, or
    /// an hf.co/ORG/REPO of safetensors), converted on the fly: i2_s (default), tq2_0, …
    /// A GGUF is re-quantised with `bitnet-gguf quantize` instead.
    #[arg(short = 'q', long = "quantize")]
    pub quantize: Option<String>,
}

pub fn create(args: CreateArgs) -> anyhow::Result<()> {
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
    let mut spec = CreateSpec::from_modelfile(&mf, &dir.unwrap_or_else(|| PathBuf::from(".")))?;
    let store = Store::from_env(None);
    let mut view = super::pull_verb::PullView::new();
    // Held until `create` has written the manifest that references a converted checkpoint.
    let lease = store.lease()?;
    store::checkpoint::prepare_base(
        &lease,
        &store,
        &mut spec,
        args.quantize.as_deref(),
        &bitnet_gguf::serve::hub::HubConfig::from_env(),
        &mut |e| view.event(e),
    )?;
    let created = store::create::create(&store, &args.name, spec, &mut |s| println!("{s}"));
    drop(lease);
    created
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
    store.prepare()?;
    let entries = store.list();
    let rows: Vec<Vec<String>> = entries
        .iter()
        .cloned()
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
    let twins: Vec<String> = entries
        .iter()
        .filter(|e| e.case_twin)
        .map(|e| e.name.to_string())
        .collect();
    if !twins.is_empty() {
        println!(
            "\nnote: {} differ only in case; each answers to its exact name, `rm` removes exactly the one named",
            twins.join(", ")
        );
    }
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
    store.prepare()?;
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
            http::routes_store::modelfile_text(&args.model, &path, e)
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
        if let Ok(addr) = client::server_addr(None, None) {
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
