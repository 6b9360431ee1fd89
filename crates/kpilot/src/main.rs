//! `kpilot`: the command-line entry point. Wiring only: parse the arguments, run the chosen
//! command; `commands::run` prints errors with their causes and picks the exit code.

mod cli;
mod commands;
mod output;

use std::process::ExitCode;

fn main() -> ExitCode {
    commands::run(cli::parse())
}
