//! Not yet implemented.

#[derive(clap::Args)]
pub struct BenchArgs {}

#[derive(clap::Args)]
pub struct DummyArgs {}

pub fn bench(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("`bench` is not implemented yet")
}

pub fn dummy(_args: DummyArgs) -> anyhow::Result<()> {
    anyhow::bail!("`dummy` is not implemented yet")
}

