//! The command line: argument parsing (clap derive) and one module per subcommand.
//!
//! This is the binary's edge: it wires library modules together, turns their typed errors into
//! `anyhow` errors with context, and picks exit codes ([`exit`]). It holds no protocol logic of its
//! own. What goes to standard output and what to standard error is [`out`]'s rule; docs/cli.md is
//! the user's side of it all.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

pub mod ca;
pub mod decode;
pub mod demo;
pub mod dump;
pub mod exit;
pub mod export;
pub mod generate;
pub mod out;
pub mod run;
pub mod ui;

/// capscope: a man-in-the-middle debugging proxy for Second Life and OpenSimulator capabilities.
#[derive(Debug, Parser)]
#[command(name = "capscope", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub ca_dir: CaDirArg,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Try capscope with no viewer and no grid: a simulated grid, capscope and a scripted viewer in one
    /// process (takes `run`'s flags).
    Demo(demo::DemoArgs),
    /// Run the proxy (HTTP(S) forward proxy and login endpoint on one port).
    Run(run::RunArgs),
    /// Decode an LLSD body (XML, binary or notation) and write it in another form.
    Decode(decode::DecodeArgs),
    /// Manage capscope's certificate authority.
    Ca(ca::CaArgs),
    /// Print a capture file, one line per record (optionally filtered).
    Dump(dump::DumpArgs),
    /// Convert a capture file for other tools (HAR 1.2).
    Export(export::ExportArgs),
    /// Open a capture file in the terminal UI (`--follow` for one still being written).
    View(ui::ViewArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish).
    Completions(generate::CompletionsArgs),
    /// Print the manual page (roff), or write one per command with --dir.
    Man(generate::ManArgs),
}

/// Where the certificate authority lives; shared by every subcommand that needs it.
#[derive(Debug, Clone, Args)]
pub struct CaDirArg {
    /// Directory holding the CA certificate and key [default: $CAPSCOPE_HOME/ca, else the
    /// platform's data directory: $XDG_DATA_HOME/capscope/ca or ~/.local/share/capscope/ca on
    /// Linux, ~/Library/Application Support/capscope/ca on macOS, %APPDATA%\capscope\ca on Windows]
    #[arg(long, value_name = "DIR", global = true, env = "CAPSCOPE_CA_DIR")]
    pub ca_dir: Option<PathBuf>,
}

/// The whole command line as clap sees it, with what `--help` says about exit codes and streams
/// on every command (completions and the man page are made from this too).
pub fn command() -> clap::Command {
    with_after_help(Cli::command())
}

fn with_after_help(cmd: clap::Command) -> clap::Command {
    // `--help` shows a command's own long after-help instead of the short one: keep both texts.
    let long = cmd
        .get_after_long_help()
        .map(|own| format!("{own}\n\n{}", exit::AFTER_HELP));
    let cmd = cmd.after_help(exit::AFTER_HELP);
    let cmd = match long {
        Some(long) => cmd.after_long_help(long),
        None => cmd,
    };
    cmd.mut_subcommands(with_after_help)
}

/// Parses the process arguments and runs the chosen subcommand. Exit codes: [`exit`].
pub fn main() -> ExitCode {
    // clap prints help and version to stdout (exit 0) and usage errors to stderr (exit 2).
    let cli = match Cli::from_arg_matches(&command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) if exit::is_closed_output(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capscope: {e:#}");
            exit::exit_code_for(&e)
        }
    };
    crate::headless::finish_stdout(LOG_FLUSH);
    code
}

/// How long, at exit, the log may take to write the lines still queued.
const LOG_FLUSH: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs one parsed command line (tests call this with `Cli::parse_from`).
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let Cli { ca_dir, command } = cli;
    match command {
        Command::Run(args) => run::run(args, &ca_dir),
        Command::Decode(args) => decode::run(args),
        Command::Ca(args) => ca::run(args, &ca_dir),
        Command::Dump(args) => dump::run(args),
        Command::Export(args) => export::run(args),
        Command::Demo(args) => demo::run(args, &ca_dir),
        Command::View(args) => ui::view(args),
        Command::Completions(args) => generate::completions(args),
        Command::Man(args) => generate::man(args),
    }
}
