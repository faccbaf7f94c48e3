//! Not yet implemented.

#[derive(clap::Args)]
pub struct RunArgs {}

#[derive(clap::Args)]
pub struct ChatArgs {}

#[derive(clap::Args)]
pub struct EvalArgs {}

#[derive(clap::Args)]
pub struct PerplexityArgs {}

pub fn run(_args: RunArgs) -> anyhow::Result<()> {
    anyhow::bail!("`run` is not implemented yet")
}

pub fn chat(_args: ChatArgs) -> anyhow::Result<()> {
    anyhow::bail!("`chat` is not implemented yet")
}

pub fn eval(_args: EvalArgs) -> anyhow::Result<()> {
    anyhow::bail!("`eval` is not implemented yet")
}

pub fn perplexity(_args: PerplexityArgs) -> anyhow::Result<()> {
    anyhow::bail!("`perplexity` is not implemented yet")
}

