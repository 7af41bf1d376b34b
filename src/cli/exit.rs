//! Exit codes, and how an error picks one: 0 success, 1 a failure at run time, 2 a usage error.
//!
//! clap exits with 2 for the errors it finds while parsing. A value that parses but is refused
//! afterwards (a `--filter` that is not an expression, a remote `--listen` without `--allow-remote`)
//! is the same kind of mistake, so such errors are wrapped in [`UsageError`] and also exit with 2.
//! Everything else (a file that cannot be read, a port in use, a capture that does not parse) is 1.
//! Owns only this mapping; it must not print.

use std::fmt;
use std::process::ExitCode;

/// Success.
pub const SUCCESS: u8 = 0;
/// A failure at run time.
pub const FAILURE: u8 = 1;
/// The command line is wrong (clap's own exit code for usage errors).
pub const USAGE: u8 = 2;

/// What `--help` says about exit codes and streams (every command shows it).
pub const AFTER_HELP: &str = "\
Exit status: 0 success, 1 failure at run time, 2 usage error (a bad flag or value).
Records and command output go to standard output; logs, warnings and errors to standard error.";

/// A mistake in the command line found after parsing: exits with [`USAGE`].
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// An [`anyhow::Error`] that exits with [`USAGE`].
pub fn usage(message: impl fmt::Display) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.to_string()))
}

/// The exit code for an error that ended a command.
pub fn code_for(error: &anyhow::Error) -> u8 {
    if error.chain().any(|cause| cause.is::<UsageError>()) {
        USAGE
    } else {
        FAILURE
    }
}

/// Whether `error` is standard output going away (`capscope ca path | head -1`): the reader's
/// choice, so the command ends quietly with success, as `cat` and ripgrep do.
pub fn is_closed_output(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| {
            io.kind() == std::io::ErrorKind::BrokenPipe
                // Windows: ERROR_NO_DATA and ERROR_PIPE_NOT_CONNECTED, "the pipe is being closed".
                || (cfg!(windows) && matches!(io.raw_os_error(), Some(232 | 233)))
        })
    })
}

/// [`code_for`] as an [`ExitCode`].
pub fn exit_code_for(error: &anyhow::Error) -> ExitCode {
    ExitCode::from(code_for(error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn a_closed_pipe_is_recognised_through_context() {
        let pipe = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "closed");
        let e = Err::<(), _>(pipe).context("writing").unwrap_err();
        assert!(is_closed_output(&e));
        let other = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no");
        assert!(!is_closed_output(&anyhow::Error::new(other)));
        assert!(!is_closed_output(&usage("bad")));
    }

    #[test]
    fn usage_errors_exit_2_even_with_context_and_others_exit_1() {
        assert_eq!(code_for(&usage("--filter: bad")), USAGE);
        let wrapped = Err::<(), _>(usage("bad"))
            .context("while starting")
            .unwrap_err();
        assert_eq!(code_for(&wrapped), USAGE);
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let runtime = Err::<(), _>(io).context("cannot open x").unwrap_err();
        assert_eq!(code_for(&runtime), FAILURE);
        assert_eq!(code_for(&anyhow::anyhow!("anything else")), FAILURE);
    }
}
