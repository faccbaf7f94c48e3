//! `tokenize` and `detokenize`: the model's tokenizer on its own, built from the GGUF
//! metadata (no weights are read).

use std::io::Read;

use anyhow::Context;
use bitnet_formats::GgufFile;

use bitnet_gguf::engine::tokenizer::Tokenizer;
use bitnet_gguf::serve::store::resolve_model;

#[derive(clap::Args)]
pub struct TokenizeArgs {
    /// Model: a .gguf path or a model name.
    #[arg(short = 'm', long = "model")]
    pub model: String,
    /// Text to tokenize (read from standard input when omitted).
    pub text: Option<String>,
    /// Read the text from a file.
    #[arg(short = 'f', long = "file", conflicts_with = "text")]
    pub file: Option<std::path::PathBuf>,
    /// Print `{"ids": [...], "pieces": [...]}`.
    #[arg(long)]
    pub json: bool,
    /// Prepend the BOS token.
    #[arg(long)]
    pub bos: bool,
    /// Treat special-token strings such as `<|eot_id|>` as plain text.
    #[arg(long = "no-parse-special")]
    pub no_parse_special: bool,
}

#[derive(clap::Args)]
pub struct DetokenizeArgs {
    /// Model: a .gguf path or a model name.
    #[arg(short = 'm', long = "model")]
    pub model: String,
    /// Token ids, separated by spaces or commas (`1 2 3`, `1,2,3` or `[1, 2, 3]`).
    #[arg(required = true, num_args = 1..)]
    pub ids: Vec<String>,
    /// Leave out control tokens (BOS, EOS, `<|eot_id|>`, ...).
    #[arg(long = "skip-special")]
    pub skip_special: bool,
}

/// Loads only the tokenizer of a model.
pub fn load_tokenizer(model: &str) -> anyhow::Result<Tokenizer> {
    let path = resolve_model(model)?;
    let file = GgufFile::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let arch = file.architecture().unwrap_or("").to_string();
    Tokenizer::from_gguf(file.metadata(), &arch)
        .with_context(|| format!("building the tokenizer of {}", path.display()))
}

fn parse_ids(args: &[String]) -> anyhow::Result<Vec<u32>> {
    let mut ids = Vec::new();
    for arg in args {
        for part in arg.split(|c: char| c == ',' || c.is_whitespace() || c == '[' || c == ']') {
            if part.is_empty() {
                continue;
            }
            let id: u32 = part
                .parse()
                .with_context(|| format!("`{part}` is not a token id"))?;
            ids.push(id);
        }
    }
    Ok(ids)
}

pub fn tokenize(args: TokenizeArgs) -> anyhow::Result<()> {
    let text = match (&args.text, &args.file) {
        (Some(t), _) => t.clone(),
        (None, Some(path)) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        (None, None) => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading standard input")?;
            s
        }
    };
    let tok = load_tokenizer(&args.model)?;
    let ids = tok.encode(&text, args.bos, !args.no_parse_special)?;
    let pieces: Vec<String> = ids
        .iter()
        .map(|&id| String::from_utf8_lossy(&tok.token_bytes(id)).into_owned())
        .collect();
    if args.json {
        let out = serde_json::json!({ "ids": ids, "pieces": pieces });
        println!("{}", serde_json::to_string(&out)?);
    } else {
        for (id, piece) in ids.iter().zip(&pieces) {
            println!("{id:>6} -> '{}'", piece.escape_debug());
        }
        eprintln!("{} tokens", ids.len());
    }
    Ok(())
}

pub fn detokenize(args: DetokenizeArgs) -> anyhow::Result<()> {
    let ids = parse_ids(&args.ids)?;
    let tok = load_tokenizer(&args.model)?;
    if let Some(&bad) = ids.iter().find(|&&id| id as usize >= tok.vocab_size()) {
        anyhow::bail!(
            "token id {bad} is outside the vocabulary ({} tokens)",
            tok.vocab_size()
        );
    }
    println!("{}", tok.decode(&ids, args.skip_special));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_ids;

    #[test]
    fn ids_parse_in_every_spelling() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_ids(&args(&["1", "2", "3"])).unwrap(), [1, 2, 3]);
        assert_eq!(parse_ids(&args(&["[1, 2,3]"])).unwrap(), [1, 2, 3]);
        assert!(parse_ids(&args(&["1", "x"])).is_err());
    }
}
