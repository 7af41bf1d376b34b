//! The command line's two streams. Standard output carries what a command produces (records, a
//! decoded body, a certificate, a dump) so that it can be redirected or piped; standard error
//! carries everything said to the person at the terminal: the `tracing` log, the start-up banner,
//! warnings and errors. `-q` keeps standard error to errors only.
//!
//! Owns the log set-up and [`note`]; it must not decide what a command prints.

use std::fmt::Display;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// How much goes to standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Verbosity {
    /// `-v` count: 1 debug, 2 or more trace.
    pub verbose: u8,
    /// `-q`: errors only.
    pub quiet: bool,
}

impl Verbosity {
    /// The `tracing` level directive used when `RUST_LOG` is not set.
    pub fn directive(self) -> &'static str {
        match (self.quiet, self.verbose) {
            (true, _) => "error",
            (false, 0) => "info",
            (false, 1) => "debug",
            (false, _) => "trace",
        }
    }
}

/// Sets up the log on standard error (colours only when standard error is a terminal and
/// `NO_COLOR` is unset or empty, as <https://no-color.org> asks) and
/// remembers `-q` for [`note`]. `RUST_LOG`, when set, picks the levels; `-q` still silences
/// [`note`]. Calling it again changes nothing (the first set-up stays).
pub fn init(verbosity: Verbosity) {
    QUIET.store(verbosity.quiet, Ordering::Relaxed);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(verbosity.directive()));
    // Log lines go out through a bounded queue and a thread of their own: a stderr nobody reads
    // drops (and counts) lines instead of stalling the proxy.
    let writer = match crate::headless::LogOutput::stderr() {
        Some(out) => tracing_subscriber::fmt::writer::BoxMakeWriter::new(out),
        None => tracing_subscriber::fmt::writer::BoxMakeWriter::new(std::io::stderr),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(colour(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR"),
        ))
        .with_target(false)
        .without_time()
        .try_init();
}

/// Whether the log may use colour.
fn colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Whether `-q` was given.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// One line for the person at the terminal (the banner, "capture saved"): standard error, not
/// shown under `-q`.
pub fn note(line: impl Display) {
    if !quiet() {
        eprintln!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some("".into())));
        assert!(!colour(true, Some("1".into())));
        assert!(!colour(false, None));
    }

    #[test]
    fn quiet_wins_over_verbose_and_verbose_counts_up() {
        let v = |verbose, quiet| Verbosity { verbose, quiet }.directive();
        assert_eq!(v(0, false), "info");
        assert_eq!(v(1, false), "debug");
        assert_eq!(v(5, false), "trace");
        assert_eq!(v(2, true), "error");
    }
}
