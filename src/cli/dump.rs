//! `capscope dump FILE`: print a capture, one greppable line (or one JSON object) per record.

use std::io::{BufWriter, ErrorKind, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::exit::usage;
use crate::capture::{Line, Reader};
use crate::filter::Filter;
use crate::record::{Kind, Record, State};
use crate::util::time::iso8601_millis as iso8601;

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// The capture to read (`.jsonl`, or `.jsonl.zst` for a compressed one).
    pub file: PathBuf,
    /// Show only the records this filter matches (e.g. 'cap:Fetch* & status:5xx').
    #[arg(short, long, value_name = "EXPR", long_help = filter_long_help())]
    pub filter: Option<String>,
    /// `text`: one aligned line per record; `json`: one record per line as JSON.
    #[arg(long, value_enum, default_value_t = DumpFormat::Text)]
    pub format: DumpFormat,
}

fn filter_long_help() -> String {
    format!(
        "Show only the records this filter matches (e.g. 'cap:Fetch* & status:5xx').\n\n{}",
        crate::filter::help()
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DumpFormat {
    Text,
    Json,
}

pub fn run(args: DumpArgs) -> anyhow::Result<ExitCode> {
    let filter = match &args.filter {
        Some(f) => Some(Filter::parse(f).map_err(|e| usage(format_args!("--filter: {e}")))?),
        None => None,
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    match dump(&args, filter.as_ref(), &mut out).and_then(|()| Ok(out.flush()?)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // `capscope dump x | head` closes the pipe early: that is not a failure.
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
}

/// Writes the dump of `args.file` to `out`; warnings go to stderr.
pub fn dump(args: &DumpArgs, filter: Option<&Filter>, out: &mut dyn Write) -> anyhow::Result<()> {
    let mut lines = Reader::stream(&args.file)
        .with_context(|| format!("cannot dump {}", args.file.display()))?;
    for line in lines.by_ref() {
        match line? {
            Line::Record(r) => {
                if filter.is_some_and(|f| !f.matches(&r)) {
                    continue;
                }
                match args.format {
                    DumpFormat::Text => writeln!(out, "{}", text_line(&r))?,
                    DumpFormat::Json => {
                        serde_json::to_writer(&mut *out, &r)?;
                        out.write_all(b"\n")?;
                    }
                }
            }
            Line::Lagged(l) => match args.format {
                DumpFormat::Text => writeln!(
                    out,
                    "# {} the capture writer fell behind and lost {} records here",
                    iso8601(l.at_us),
                    l.dropped
                )?,
                DumpFormat::Json => eprintln!(
                    "capscope: note: the capture writer lost {} records at {}",
                    l.dropped,
                    iso8601(l.at_us)
                ),
            },
        }
    }
    for w in &lines.warnings {
        eprintln!("capscope: warning: {}: {w}", args.file.display());
    }
    Ok(())
}

/// One record as an aligned line: time, kind, method, cap or event name, status, size, duration,
/// region, then any error and notes.
pub fn text_line(r: &Record) -> String {
    let kind = match r.kind {
        Kind::Http => "http",
        Kind::Event => "event",
        Kind::Login => "login",
        Kind::Tunnel => "tunnel",
        Kind::Error => "error",
    };
    let method = r
        .request
        .as_ref()
        .map(|q| q.method.as_str())
        .or(r.tunnel.as_ref().map(|_| "CONNECT"))
        .unwrap_or("-");
    let name = r
        .event
        .as_ref()
        .map(|e| e.message.clone())
        .or_else(|| r.cap.clone())
        .or_else(|| r.tunnel.as_ref().map(|t| t.target.clone()))
        .or_else(|| r.request.as_ref().map(|q| host_and_path(&q.url).to_owned()))
        .unwrap_or_else(|| "-".to_owned());
    let status = match (&r.response, r.state) {
        (Some(resp), _) => resp.status.to_string(),
        (None, State::Failed) => "ERR".to_owned(),
        _ => "-".to_owned(),
    };
    let size = if let Some(ev) = &r.event {
        ev.body.size.to_string()
    } else if let Some(resp) = &r.response {
        resp.body.size.to_string()
    } else if let Some(t) = &r.tunnel {
        (t.bytes_up + t.bytes_down).to_string()
    } else {
        "-".to_owned()
    };
    let duration = r
        .timings
        .done_us
        .map(|us| format!("{:.1}ms", us as f64 / 1000.0))
        .unwrap_or_else(|| "-".to_owned());
    let region = r.region.as_deref().unwrap_or("-");
    let mut line = format!(
        "{} {kind:<6} {method:<7} {name:<32} {status:>3} {size:>9} {duration:>10} {region}",
        iso8601(r.started_us)
    );
    if let Some(e) = &r.error {
        line.push_str("  error: ");
        line.push_str(&e.replace('\n', " "));
    }
    for n in &r.notes {
        line.push_str("  [");
        line.push_str(n);
        line.push(']');
    }
    line
}

/// A URL without its scheme (`127.0.0.1:9000/`), for records with no cap name.
fn host_and_path(url: &str) -> &str {
    url.split_once("://").map_or(url, |(_, r)| r)
}
