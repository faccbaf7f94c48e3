//! Not yet implemented.

#[derive(clap::Args)]
pub struct ServeArgs {}

#[derive(clap::Args)]
pub struct CreateArgs {}

#[derive(clap::Args)]
pub struct ListArgs {}

#[derive(clap::Args)]
pub struct ShowArgs {}

#[derive(clap::Args)]
pub struct RmArgs {}

#[derive(clap::Args)]
pub struct CpArgs {}

#[derive(clap::Args)]
pub struct PsArgs {}

#[derive(clap::Args)]
pub struct StopArgs {}

#[derive(clap::Args)]
pub struct PullArgs {}

pub fn serve(_args: ServeArgs) -> anyhow::Result<()> {
    anyhow::bail!("`serve` is not implemented yet")
}

pub fn create(_args: CreateArgs) -> anyhow::Result<()> {
    anyhow::bail!("`create` is not implemented yet")
}

pub fn list(_args: ListArgs) -> anyhow::Result<()> {
    anyhow::bail!("`list` is not implemented yet")
}

pub fn show(_args: ShowArgs) -> anyhow::Result<()> {
    anyhow::bail!("`show` is not implemented yet")
}

pub fn rm(_args: RmArgs) -> anyhow::Result<()> {
    anyhow::bail!("`rm` is not implemented yet")
}

pub fn cp(_args: CpArgs) -> anyhow::Result<()> {
    anyhow::bail!("`cp` is not implemented yet")
}

pub fn ps(_args: PsArgs) -> anyhow::Result<()> {
    anyhow::bail!("`ps` is not implemented yet")
}

pub fn stop(_args: StopArgs) -> anyhow::Result<()> {
    anyhow::bail!("`stop` is not implemented yet")
}

pub fn pull(_args: PullArgs) -> anyhow::Result<()> {
    anyhow::bail!("`pull` is not implemented yet")
}

