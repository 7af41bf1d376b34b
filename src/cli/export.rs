//! `capscope export --har FILE [-o OUT]`: convert a capture for other tools.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::exit::usage;
use crate::capture::{har, Reader};
use crate::filter::Filter;
use crate::record::Kind;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write HAR 1.2 (the only export format so far; browsers' dev tools and HAR viewers read it).
    #[arg(long, required = true)]
    pub har: bool,
    /// The capture to read (`.jsonl` or `.jsonl.zst`).
    pub file: PathBuf,
    /// Where to write [default: standard output].
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Export only the exchanges this filter matches (a kept poll keeps its events).
    #[arg(short, long, value_name = "EXPR")]
    pub filter: Option<String>,
}

pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let filter = match &args.filter {
        Some(f) => Some(Filter::parse(f).map_err(|e| usage(format_args!("--filter: {e}")))?),
        None => None,
    };
    let mut capture = Reader::open(&args.file)
        .with_context(|| format!("cannot export {}", args.file.display()))?;
    for w in &capture.warnings {
        eprintln!("capscope: warning: {}: {w}", args.file.display());
    }
    if let Some(f) = &filter {
        let kept: std::collections::HashSet<u64> = capture
            .records
            .iter()
            .filter(|r| r.kind != Kind::Event && f.matches(r))
            .map(|r| r.id)
            .collect();
        capture.records.retain(|r| match r.kind {
            Kind::Event => r.parent.is_some_and(|p| kept.contains(&p)),
            _ => kept.contains(&r.id),
        });
    }
    let doc = har::to_har(&capture);
    match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut out = BufWriter::new(file);
            serde_json::to_writer_pretty(&mut out, &doc)?;
            out.write_all(b"\n")?;
            out.flush()
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            let written = serde_json::to_writer_pretty(&mut out, &doc)
                .map_err(std::io::Error::from)
                .and_then(|()| out.write_all(b"\n"))
                .and_then(|()| out.flush());
            match written {
                Ok(()) => {}
                // `capscope export --har x | head` closes the pipe early: not a failure.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => return Err(e).context("cannot write the HAR to standard output"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
