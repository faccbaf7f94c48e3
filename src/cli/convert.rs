//! Not yet implemented.

#[derive(clap::Args)]
pub struct ConvertArgs {}

pub fn main(_args: ConvertArgs) -> anyhow::Result<()> {
    anyhow::bail!("`main` is not implemented yet")
}

