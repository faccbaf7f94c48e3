//! `bitnet-gguf inspect FILE`: header, architecture, tokenizer, tensors and known defects of
//! a GGUF file, as text or as one JSON document (docs/inspect-json.md).

mod json;
mod report;

use std::fmt::Write as _;
use std::path::PathBuf;

use bitnet_formats::{GgufFile, Value};

use report::{file_type_name, Report, ARRAY_PREVIEW_LEN, ARRAY_SUMMARY_LEN};

#[derive(clap::Args)]
pub struct InspectArgs {
    /// The GGUF file.
    pub file: PathBuf,
    /// Print one JSON document (header, metadata, tensors, totals, warnings) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Show long arrays (vocabularies, merges) in full instead of a summary.
    #[arg(long)]
    pub full: bool,
    /// Text output: show only the tensor table and the totals.
    #[arg(long)]
    pub tensors: bool,
    /// Text output: show only the metadata, every key with its type and value.
    #[arg(long)]
    pub metadata: bool,
}

pub fn main(args: InspectArgs) -> anyhow::Result<()> {
    let file = GgufFile::open(&args.file)?;
    let report = report::analyse(&file);
    let mut out = String::new();
    if args.json {
        let doc = json::document(&file, &report, args.full);
        out = serde_json::to_string_pretty(&doc)?;
        out.push('\n');
    } else {
        let everything = !args.tensors && !args.metadata;
        if everything {
            header(&mut out, &file, &report);
        }
        if args.metadata {
            metadata(&mut out, &file, args.full);
        }
        if everything || args.tensors {
            tensors(&mut out, &file, &report);
        }
        if everything {
            warnings(&mut out, &report);
        }
    }
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth reporting.
    match stdout
        .write_all(out.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[unit])
    }
}

fn human_count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=9_999_999 => format!("{:.1}K", n as f64 / 1e3),
        10_000_000..=9_999_999_999 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.2}G", n as f64 / 1e9),
    }
}

/// One metadata value on one line; arrays are summarised unless `full`.
fn value_text(v: &Value, full: bool) -> String {
    match v {
        Value::String(s) => {
            let escaped = format!("{s:?}");
            if full || escaped.chars().count() <= 100 {
                escaped
            } else {
                let head: String = escaped.chars().take(96).collect();
                format!("{head}…\" ({} bytes)", s.len())
            }
        }
        Value::Array(a) => {
            let shown = if full || a.len() <= ARRAY_SUMMARY_LEN {
                a.len()
            } else {
                ARRAY_PREVIEW_LEN
            };
            let items: Vec<String> = a.values[..shown]
                .iter()
                .map(|e| value_text(e, full))
                .collect();
            let more = if shown < a.len() { ", …" } else { "" };
            format!(
                "[{} × {}] [{}{more}]",
                a.elem_type,
                a.len(),
                items.join(", ")
            )
        }
        Value::F32(x) => x.to_string(),
        Value::F64(x) => x.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other
            .as_i64()
            .map(|i| i.to_string())
            .or_else(|| other.as_u64().map(|u| u.to_string()))
            .unwrap_or_default(),
    }
}

fn header(out: &mut String, file: &GgufFile, report: &Report) {
    let meta = file.metadata();
    let _ = writeln!(
        out,
        "file          {} ({})",
        file.path().display(),
        human_bytes(file.file_size())
    );
    let _ = writeln!(
        out,
        "GGUF          version {}, alignment {}, dialect {}, data section at byte {}",
        file.version(),
        file.alignment(),
        file.dialect(),
        file.data_start()
    );
    let _ = writeln!(
        out,
        "contents      {} metadata keys, {} tensors",
        meta.len(),
        file.tensors().len()
    );
    if let Some(name) = meta.get_str("general.name") {
        let _ = writeln!(out, "name          {name}");
    }
    if let Some(ft) = meta.get_u64("general.file_type") {
        let name = file_type_name(ft, file.dialect().is_bitnet()).unwrap_or("unknown");
        let _ = writeln!(out, "file type     {ft} ({name})");
    }
    match &report.architecture {
        Some(arch) => {
            let _ = writeln!(out, "\narchitecture  {arch}");
            let width = report
                .hparams
                .iter()
                .map(|(k, _)| k.len())
                .max()
                .unwrap_or(0);
            for (k, v) in &report.hparams {
                let _ = writeln!(out, "  {k:<width$}  {v}");
            }
        }
        None => {
            let _ = writeln!(out, "\narchitecture  (general.architecture missing)");
        }
    }
    if let Some(t) = &report.tokenizer {
        let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "(missing)".into());
        let _ = writeln!(out, "\ntokenizer");
        let _ = writeln!(out, "  model         {}", opt(&t.model));
        let _ = writeln!(out, "  pre           {}", opt(&t.pre));
        if let Some(n) = t.vocab_size {
            let _ = writeln!(out, "  vocab size    {n}");
        }
        if let Some(n) = t.merges {
            let _ = writeln!(out, "  merges        {n}");
        }
        for s in &t.specials {
            let text = s
                .text
                .as_deref()
                .map(|x| format!(" {x:?}"))
                .unwrap_or_default();
            let _ = writeln!(out, "  {:<13} {}{text}", format!("{} id", s.role), s.id);
        }
        let flag = |b: Option<bool>| b.map(|b| b.to_string()).unwrap_or_else(|| "(unset)".into());
        let _ = writeln!(out, "  add bos       {}", flag(t.add_bos));
        let _ = writeln!(out, "  add eos       {}", flag(t.add_eos));
        let template = match (t.chat_template_bytes, t.chat_template_is_placeholder) {
            (None, _) => "none".to_owned(),
            (Some(n), false) => format!("yes ({n} bytes)"),
            (Some(n), true) => format!("yes ({n} bytes, bitnet.cpp placeholder)"),
        };
        let _ = writeln!(out, "  chat template {template}");
    }
    out.push('\n');
}

fn metadata(out: &mut String, file: &GgufFile, full: bool) {
    let meta = file.metadata();
    let width = meta.keys().map(str::len).max().unwrap_or(0);
    let _ = writeln!(out, "metadata ({} keys)", meta.len());
    for (k, v) in meta.iter() {
        let _ = writeln!(
            out,
            "  {k:<width$}  {:<7}  {}",
            v.value_type().name(),
            value_text(v, full)
        );
    }
    out.push('\n');
}

fn tensors(out: &mut String, file: &GgufFile, report: &Report) {
    let ts = file.tensors();
    let name_w = ts.iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
    let shape = |ne: &[u64]| {
        format!(
            "[{}]",
            ne.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        )
    };
    let shape_w = ts
        .iter()
        .map(|t| shape(&t.ne).len())
        .max()
        .unwrap_or(5)
        .max(5);
    let _ = writeln!(
        out,
        "tensors ({}; shapes in ggml order, ne[0] first)",
        ts.len()
    );
    let _ = writeln!(
        out,
        "  {:<name_w$}  {:<7}  {:<shape_w$}  {:>12}  {:>12}",
        "name", "type", "shape", "bytes", "offset"
    );
    for t in ts {
        let _ = writeln!(
            out,
            "  {:<name_w$}  {:<7}  {:<shape_w$}  {:>12}  {:>12}",
            t.name,
            t.ty.name(),
            shape(&t.ne),
            t.nbytes,
            t.offset
        );
    }
    let totals = &report.totals;
    let _ = writeln!(out, "\ntotals by type");
    for t in &totals.by_type {
        let bpw = if t.n_elements > 0 {
            t.bytes as f64 * 8.0 / t.n_elements as f64
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "  {:<7}  {:>5} tensors  {:>9} weights  {:>12}  {bpw:>6.3} bits/weight",
            t.ty.name(),
            t.count,
            human_count(t.n_elements),
            human_bytes(t.bytes)
        );
    }
    let _ = writeln!(
        out,
        "  {:<7}  {:>5} tensors  {:>9} weights  {:>12}",
        "all",
        ts.len(),
        human_count(totals.n_elements),
        human_bytes(totals.bytes)
    );
    match totals.ternary_bits_per_weight() {
        Some(bpw) => {
            let _ = writeln!(
                out,
                "ternary part: {} weights in {} = {bpw:.4} bits/weight",
                human_count(totals.ternary_elements),
                human_bytes(totals.ternary_bytes)
            );
        }
        None => {
            let _ = writeln!(out, "ternary part: none");
        }
    }
    out.push('\n');
}

fn warnings(out: &mut String, report: &Report) {
    if report.warnings.is_empty() {
        let _ = writeln!(out, "warnings: none");
        return;
    }
    let _ = writeln!(out, "warnings");
    for w in &report.warnings {
        let _ = writeln!(out, "  [{}] {}", w.code, w.message);
    }
}
