//! `capscope ca`. (Being built: see the issue that owns it.)

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct CaArgs {}

pub fn run(_args: CaArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("capscope ca is not built yet")
}
