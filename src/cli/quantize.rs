//! Not yet implemented.

#[derive(clap::Args)]
pub struct QuantizeArgs {}

pub fn main(_args: QuantizeArgs) -> anyhow::Result<()> {
    anyhow::bail!("`main` is not implemented yet")
}

