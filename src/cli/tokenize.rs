//! Not yet implemented.

#[derive(clap::Args)]
pub struct TokenizeArgs {}

#[derive(clap::Args)]
pub struct DetokenizeArgs {}

pub fn tokenize(_args: TokenizeArgs) -> anyhow::Result<()> {
    anyhow::bail!("`tokenize` is not implemented yet")
}

pub fn detokenize(_args: DetokenizeArgs) -> anyhow::Result<()> {
    anyhow::bail!("`detokenize` is not implemented yet")
}

