//! `kpilot generate` (hidden): prints files derived from the code, so that CI can check the
//! committed copies are current (`scripts/generate --check`). No I/O beyond printing.

use clap::{Args as ClapArgs, CommandFactory, Subcommand};

use crate::cli::Cli;

/// Print a generated file (used by scripts/generate).
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// What to generate.
    #[command(subcommand)]
    pub what: What,
}

/// The generated artifacts.
#[derive(Debug, Subcommand)]
pub enum What {
    /// The command-line reference (docs/reference/cli.md): every command's --help.
    CliReference,
    /// The KafkaAutopilot CRD (deploy/crds/kafkaautopilots.kpilot.io.yaml and the Helm
    /// chart's copy in deploy/helm/kpilot/crds/).
    Crd,
}

/// Runs `kpilot generate`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::CliReference => crate::output::print_text(&cli_reference()),
        What::Crd => crate::output::print_text(&kpilot_operator::crd_yaml()),
    }
}

/// Markdown with the long help of `kpilot` and of every visible subcommand, at a fixed width so
/// the output does not depend on the terminal.
fn cli_reference() -> String {
    let mut root = Cli::command().term_width(100).max_term_width(100);
    root.build();
    let mut out = String::from(
        "# `kpilot` command reference\n\n\
         Generated from the code by `scripts/generate` (CI checks it is current); do not edit.\n\n",
    );
    out.push_str("## kpilot\n\n```text\n");
    out.push_str(&root.render_long_help().to_string());
    out.push_str("```\n");
    let subcommands: Vec<clap::Command> = root
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .cloned()
        .collect();
    for mut sub in subcommands {
        let name = sub.get_name().to_string();
        out.push_str(&format!("\n## kpilot {name}\n\n```text\n"));
        out.push_str(&sub.render_long_help().to_string());
        out.push_str("```\n");
    }
    out.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}
