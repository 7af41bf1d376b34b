//! `capscope decode`. (Being built: see the issue that owns it.)

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct DecodeArgs {}

pub fn run(_args: DecodeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("capscope decode is not built yet")
}
