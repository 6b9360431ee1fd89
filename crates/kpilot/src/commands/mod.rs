//! One module per `kpilot` command: its clap arguments (no logic) and its `run` function, which
//! turns arguments into calls on the library crates and renders the result.

pub mod capacity;
pub mod catalog;
mod common;
pub mod generate;
pub mod operator;
pub mod perf;
pub mod rebalance;
pub mod recommend;
pub mod roll;
pub mod simulate;
pub mod size;
pub mod status;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::output;

/// Runs the chosen command, prints any error with its causes, and returns the exit code.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Capacity(args) => capacity::run(args),
        Command::Catalog(args) => catalog::run(args),
        Command::Size(args) => size::run(args),
        Command::Status(args) => status::run(args),
        Command::Recommend(args) => recommend::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Operator(args) => operator::run(args),
        Command::Roll(args) => roll::run(args),
        Command::Rebalance(args) => rebalance::run(args),
        Command::Perf(args) => perf::run(args),
        Command::Simulate(args) => simulate::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            output::print_error(&err);
            ExitCode::from(output::exit_code_for(&err))
        }
    }
}
