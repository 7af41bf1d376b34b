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
    let value = llsd::from_slice_as(&bytes, format)
        .with_context(|| format!("decoding {name} as LLSD {format}"))?;

    let out = match args.to {
        ToFormat::Pretty => {
            let mut s = llsd::pretty(&value);
            s.push('\n');
            s.into_bytes()
        }
        ToFormat::TypedJson => {
            let mut s = serde_json::to_string_pretty(&llsd::typed_json::to_json(&value))
                .context("writing typed JSON")?;
            s.push('\n');
            s.into_bytes()
        }
        ToFormat::Xml => with_newline(encode(&value, Format::Xml, bytes.len())),
        ToFormat::Notation => with_newline(encode(&value, Format::Notation, bytes.len())),
        ToFormat::Binary => encode(&value, Format::Binary, bytes.len()),
    };
    // The process ends right after this: giving a tree of millions of nodes back to the allocator
    // one by one would cost more than decoding it took (a large inventory body is about 1.5 M
    // allocations). The operating system takes the whole heap back at exit.
    std::mem::forget(value);
    std::mem::forget(bytes);
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&out).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // A closed pipe (`capscope decode x | head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("writing to standard output"),
    }
}

/// Encodes into a buffer sized from the input: bodies keep roughly their size across formats, so
/// one reservation replaces a chain of reallocations and copies on a large body.
fn encode(value: &llsd::Value, format: Format, input_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(input_len.saturating_add(64));
    llsd::write_to(value, format, &mut out);
    out
}

/// Text formats end with a newline so a terminal prompt starts on its own line (decoders skip it).
fn with_newline(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.push(b'\n');
    bytes
}
