//! The command line: argument parsing (clap derive) and one module per subcommand.
//!
//! This is the binary's edge: it wires library modules together, turns their typed errors into
//! `anyhow` errors with context, and picks exit codes. It holds no protocol logic of its own.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub mod ca;
pub mod decode;
pub mod demo;
pub mod dump;
pub mod export;
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
}

/// Where the certificate authority lives; shared by every subcommand that needs it.
#[derive(Debug, Clone, Args)]
pub struct CaDirArg {
    /// Directory holding the CA certificate and key [default: $CAPSCOPE_HOME/ca, else
    /// $XDG_DATA_HOME/capscope/ca, else ~/.local/share/capscope/ca]
    #[arg(long, value_name = "DIR", global = true)]
    pub ca_dir: Option<PathBuf>,
}

/// Parses the process arguments and runs the chosen subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("capscope: {e:#}");
            ExitCode::from(2)
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
    }
}
