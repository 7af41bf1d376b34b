//! `capscope completions SHELL` and `capscope man`: shell completion scripts and manual pages,
//! generated from the same clap definitions that parse the command line (so they cannot drift).
//!
//! Owns only the wiring to `clap_complete` and `clap_mangen`.

use std::io::{ErrorKind, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use clap_complete::Shell;

/// The binary's name in completions and pages.
const BIN: &str = "capscope";

#[derive(Debug, Args)]
#[command(after_long_help = COMPLETIONS_HELP)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

const COMPLETIONS_HELP: &str = "\
Where to put the script:
  bash:       capscope completions bash > ~/.local/share/bash-completion/completions/capscope
  zsh:        capscope completions zsh > ~/.zfunc/_capscope   (with fpath+=~/.zfunc before compinit)
  fish:       capscope completions fish > ~/.config/fish/completions/capscope.fish
  PowerShell: capscope completions powershell >> $PROFILE
  elvish:     capscope completions elvish >> ~/.config/elvish/rc.elv";

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command (capscope.1, capscope-run.1, ...) into DIR instead of the main
    /// page to standard output.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Writes the completion script for `args.shell` to standard output.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut super::command(), BIN, &mut script);
    write_stdout(&script)
}

/// Writes the main manual page to standard output, or every page into `--dir`.
pub fn man(args: ManArgs) -> anyhow::Result<ExitCode> {
    match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(super::command(), &dir)
                .with_context(|| format!("cannot write the manual pages into {}", dir.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(super::command())
                .render(&mut page)
                .context("cannot render the manual page")?;
            write_stdout(&page)
        }
    }
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // `capscope man | head` closes the pipe early: not a failure.
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("cannot write to standard output"),
    }
}
