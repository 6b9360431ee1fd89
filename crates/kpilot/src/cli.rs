//! Command-line definitions (clap). No logic lives here: each command's arguments are a struct
//! in its own module under `commands/`, and this file only lists the commands.

use clap::{Parser, Subcommand};

use crate::commands;

/// kafka-autopilot: keep an Apache Kafka cluster at the right size, automatically.
///
/// Exit codes: 0 success; 1 the command failed (the message says why); 2 invalid arguments or
/// input (a bad unit, an unknown instance type, a malformed file).
#[derive(Debug, Parser)]
#[command(
    name = "kpilot",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Every `kpilot` command.
#[derive(Debug, Subcommand)]
pub enum Command {
    // Each command's help (summary line and long description) is the doc comment of its
    // `Args` struct; a doc comment here would replace it.
    #[allow(missing_docs)]
    Capacity(commands::capacity::Args),
    #[allow(missing_docs)]
    Catalog(commands::catalog::Args),
    #[allow(missing_docs)]
    Size(commands::size::Args),
    #[allow(missing_docs)]
    Status(commands::status::Args),
    #[allow(missing_docs)]
    Recommend(commands::recommend::Args),
    #[allow(missing_docs)]
    Perf(commands::perf::Args),
    #[allow(missing_docs)]
    Simulate(commands::simulate::Args),
    #[allow(missing_docs)]
    Roll(commands::roll::Args),
    #[allow(missing_docs)]
    Rebalance(commands::rebalance::Args),
    #[allow(missing_docs)]
    Operator(commands::operator::Args),
    #[command(hide = true)]
    #[allow(missing_docs)]
    Generate(commands::generate::Args),
}
