//! Not yet implemented.

#[derive(clap::Args)]
pub struct InspectArgs {}

pub fn main(_args: InspectArgs) -> anyhow::Result<()> {
    anyhow::bail!("`main` is not implemented yet")
}

