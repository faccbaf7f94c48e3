//! `bitnet-gguf`: the command-line front end. Each verb lives in its own `cli` module.

use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(
    name = "bitnet-gguf",
    version,
    about = "Run 1.58-bit (ternary) LLMs from GGUF files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a GGUF file's header, metadata, tensors and known defects.
    Inspect(cli::inspect::InspectArgs),
    /// Re-quantise a GGUF, or transcode its ternary tensors to another ternary format.
    Quantize(cli::quantize::QuantizeArgs),
    /// Convert a Hugging Face BitNet checkpoint directory to GGUF.
    Convert(cli::convert::ConvertArgs),
    /// Generate text from a prompt.
    Run(cli::run::RunArgs),
    /// Interactive multi-turn chat using the model's chat template.
    Chat(cli::run::ChatArgs),
    /// Print the token ids of a text.
    Tokenize(cli::tokenize::TokenizeArgs),
    /// Turn token ids back into text.
    Detokenize(cli::tokenize::DetokenizeArgs),
    /// Print the prompt's token ids and the top logits at every position (JSON).
    Eval(cli::run::EvalArgs),
    /// Measure perplexity on a text file (llama-perplexity's method).
    Perplexity(cli::run::PerplexityArgs),
    /// Measure prefill and decode speed against the machine's compute rate and memory bandwidth.
    Bench(cli::bench::BenchArgs),
    /// Write a random ternary model of a known shape, for benchmarks.
    Dummy(cli::dummy::DummyArgs),
    /// Serve the Ollama- and OpenAI-compatible HTTP API.
    Serve(cli::serve::ServeArgs),
    /// Create a named model from a Modelfile.
    Create(cli::serve::CreateArgs),
    /// List named models.
    #[command(alias = "ls")]
    List(cli::serve::ListArgs),
    /// Show a named model's details.
    Show(cli::serve::ShowArgs),
    /// Remove named models.
    Rm(cli::serve::RmArgs),
    /// Copy a named model.
    Cp(cli::serve::CpArgs),
    /// List models loaded by a running server.
    Ps(cli::serve::PsArgs),
    /// Unload a model from a running server.
    Stop(cli::serve::StopArgs),
    /// Pull a model from the Hugging Face Hub (hf.co/ORG/REPO[:TYPE]) into the store.
    Pull(cli::serve::PullArgs),
    /// Not available: models are not uploaded anywhere.
    Push(cli::serve::PushArgs),
}

/// llama.cpp's single-dash long flag `-np N` (clap would read it as `-n -p`), accepted as
/// `--np N`, and `-np=N` likewise.
fn llama_style_args(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    args.map(|a| match a.to_str() {
        Some("-np") => "--np".into(),
        Some(s) if s.starts_with("-np=") => format!("-{s}").into(),
        _ => a,
    })
    .collect()
}

fn main() {
    let cli = Cli::parse_from(llama_style_args(std::env::args_os()));
    let result = match cli.command {
        Command::Inspect(a) => cli::inspect::main(a),
        Command::Quantize(a) => cli::quantize::main(a),
        Command::Convert(a) => cli::convert::main(a),
        Command::Run(a) => cli::run::run(a),
        Command::Chat(a) => cli::run::chat(a),
        Command::Tokenize(a) => cli::tokenize::tokenize(a),
        Command::Detokenize(a) => cli::tokenize::detokenize(a),
        Command::Eval(a) => cli::run::eval(a),
        Command::Perplexity(a) => cli::run::perplexity(a),
        Command::Bench(a) => cli::bench::bench(a),
        Command::Dummy(a) => cli::dummy::dummy(a),
        Command::Serve(a) => cli::serve::serve(a),
        Command::Create(a) => cli::serve::create(a),
        Command::List(a) => cli::serve::list(a),
        Command::Show(a) => cli::serve::show(a),
        Command::Rm(a) => cli::serve::rm(a),
        Command::Cp(a) => cli::serve::cp(a),
        Command::Ps(a) => cli::serve::ps(a),
        Command::Stop(a) => cli::serve::stop(a),
        Command::Pull(a) => cli::serve::pull(a),
        Command::Push(a) => cli::serve::push(a),
    };
    if let Err(err) = result {
        // Errors are for people: the whole cause chain on one line each, no backtrace.
        eprintln!("error: {err}");
        for cause in err.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
        std::process::exit(1);
    }
}
