//! `capscope decode`: reads one LLSD body from a file or standard input and writes it in another form
//! (the pretty view, typed JSON, or any of the three wire formats).
//!
//! Wiring only: all LLSD work is in [`crate::llsd`]. Must not hold codec logic of its own.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use crate::llsd::{self, Format};

#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// The body to decode: a file, or `-` for standard input.
    #[arg(value_name = "FILE", default_value = "-")]
    pub input: PathBuf,
    /// The body's format; `auto` judges from the bytes (headers, `<llsd>` root, binary tags).
    #[arg(long, value_enum, default_value_t = FromFormat::Auto)]
    pub from: FromFormat,
    /// What to write: the indented human view, typed JSON, or a wire format (binary is written
    /// raw, even to a terminal).
    #[arg(long, value_enum, default_value_t = ToFormat::Pretty)]
    pub to: ToFormat,
}

/// The input format of `capscope decode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FromFormat {
    Auto,
    Xml,
    Binary,
    Notation,
}

/// The output form of `capscope decode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ToFormat {
    Pretty,
    TypedJson,
    Xml,
    Binary,
    Notation,
}

pub fn run(args: DecodeArgs) -> anyhow::Result<ExitCode> {
    let stdin = args.input.as_os_str() == "-";
    let name = if stdin {
        "standard input".to_string()
    } else {
        args.input.display().to_string()
    };
    let bytes = if stdin {
        let mut buf = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .context("reading standard input")?;
        buf
    } else {
        std::fs::read(&args.input).with_context(|| format!("reading {name}"))?
    };

    let format = match args.from {
        FromFormat::Auto => llsd::detect(None, &bytes).ok_or_else(|| {
            anyhow::anyhow!(
                "{name} is not LLSD (no <llsd> root, LLSD header, binary or notation value) at byte 0; \
                 name the format with --from if you know it"
            )
        })?,
        FromFormat::Xml => Format::Xml,
        FromFormat::Binary => Format::Binary,
        FromFormat::Notation => Format::Notation,
    };
    let wire = match args.to {
        ToFormat::Xml => Format::Xml,
        ToFormat::Binary => Format::Binary,
        ToFormat::Notation => Format::Notation,
        // The human view and typed JSON are written as the body is read too.
        ToFormat::Pretty => {
            let mut out = Vec::with_capacity(bytes.len().saturating_mul(2));
            llsd::transcode_pretty(&bytes, format, &mut out)
                .with_context(|| format!("decoding {name} as LLSD {format}"))?;
            out.push(b'\n');
            return write_stdout(&out);
        }
        ToFormat::TypedJson => {
            let mut out = Vec::with_capacity(bytes.len().saturating_mul(3));
            llsd::typed_json::transcode(&bytes, format, &mut out)
                .with_context(|| format!("decoding {name} as LLSD {format}"))?;
            out.push(b'\n');
            return write_stdout(&out);
        }
    };
    // A wire format is written as the body is read, without the tree (the same decoder, checks and
    // errors, the same writer: see `llsd::transcode`).
    let mut out = Vec::with_capacity(output_guess(bytes.len(), format, wire));
    llsd::transcode(&bytes, format, wire, &mut out)
        .with_context(|| format!("decoding {name} as LLSD {format}"))?;
    // Text formats end with a newline so a terminal prompt starts on its own line (decoders skip it).
    if wire != Format::Binary {
        out.push(b'\n');
    }
    write_stdout(&out)
}

fn write_stdout(out: &[u8]) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(out).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // A closed pipe (`capscope decode x | head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("writing to standard output"),
    }
}

/// The environment variable glibc reads its malloc tunables from, and the setting that asks it to back
/// the heap with transparent huge pages (`madvise(MADV_HUGEPAGE)`; glibc 2.35 and later).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const GLIBC_TUNABLES: &str = "GLIBC_TUNABLES";
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const HUGE_PAGE_HEAP: &str = "glibc.malloc.hugetlb=1";

/// Restarts `capscope decode` with a heap on transparent huge pages, when glibc can give one.
///
/// Decoding a large body builds a tree of millions of small nodes in fresh memory: with 4 KiB pages,
/// half of the process's time went to the kernel faulting pages in (a 31 MB binary inventory body:
/// 0.06 s of 0.12 s in `sys`). Huge pages take that to almost nothing. glibc reads the setting only
/// at start-up, so the process executes itself again with it; nothing else changes (same program,
/// arguments and `argv[0]`). A `GLIBC_TUNABLES` the user set is left alone, and if the restart fails
/// decoding simply goes on in this process. Only `decode` does this: `run` keeps the ordinary heap
/// (its memory is bounded and tested as it is).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn prefer_huge_pages() {
    use std::os::unix::process::CommandExt as _;

    let mut args = std::env::args_os();
    let argv0 = args.next();
    if args.next().as_deref() != Some(std::ffi::OsStr::new("decode"))
        || std::env::var_os(GLIBC_TUNABLES).is_some()
    {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut again = std::process::Command::new(exe);
    if let Some(argv0) = argv0 {
        again.arg0(argv0);
    }
    // `exec` returns only on failure (nothing is logged: logging is not set up yet); decoding then
    // goes on in this process, on the ordinary heap.
    let _failed = again
        .args(std::env::args_os().skip(1))
        .env(GLIBC_TUNABLES, HUGE_PAGE_HEAP)
        .exec();
}

/// Elsewhere the heap stays as it is.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn prefer_huge_pages() {}

/// How much to reserve for the output of a body of `len` bytes in `from`, written in `to`: enough for
/// an inventory-like body (XML is about twice binary or notation), so that a large output is not
/// grown through a chain of copies. Reserved memory that is never written costs nothing (its pages
/// are never touched); a larger output still grows the buffer.
fn output_guess(len: usize, from: Format, to: Format) -> usize {
    let factor = match (from, to) {
        (Format::Binary | Format::Notation, Format::Xml) => 3,
        (Format::Binary, Format::Notation) => 2,
        _ => 1,
    };
    len.saturating_mul(factor).saturating_add(64)
}
