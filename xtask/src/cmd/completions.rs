//! `cargo xtask completions <shell>`: the completion script for the whole CLI, on stdout.

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};

pub fn run(args: &CompletionsArgs) -> Result<()> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "cargo-xtask", &mut buf);
    crate::ui::out!("{}", String::from_utf8_lossy(&buf).trim_end());
    Ok(())
}
