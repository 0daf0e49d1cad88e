//! `alp completions SHELL` and `alp man`: generated from the same
//! definitions as the parser, so they never drift from it.

use std::io::Write;

use clap::{Args, CommandFactory};

use crate::cli::Cli;
use crate::error::CliResult;

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell: bash, zsh, fish, powershell or elvish.
    /// Bash: `source <(alp completions bash)` (in ~/.bashrc to keep it)
    shell: clap_complete::Shell,
}

pub(crate) fn completions(args: &CompletionsArgs) -> CliResult {
    let mut cmd = Cli::command();
    // Into memory first: the generator panics on a closed pipe (`| head`).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "alp", &mut script);
    std::io::stdout().lock().write_all(&script)?;
    Ok(())
}

/// The manual page (roff) on stdout: `alp man | man -l -`.
pub(crate) fn man() -> CliResult {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    std::io::stdout().lock().write_all(&page)?;
    Ok(())
}
