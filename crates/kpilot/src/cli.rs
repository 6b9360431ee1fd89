//! Command-line definitions (clap). No logic lives here: each command's arguments are a struct
//! in its own module under `commands/`, and this file only lists the commands.

use std::ffi::OsString;

use clap::{CommandFactory, Parser, Subcommand};

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

/// Parses the command line, after [`join_negative_values`].
pub fn parse() -> Cli {
    Cli::parse_from(join_negative_values(std::env::args_os().collect()))
}

/// Joins `--option -5MB/s` into `--option=-5MB/s` when `--option` of the chosen command takes
/// a value and the next word is a negative quantity (a minus, then a digit or a point). Clap
/// takes `-5MB/s` for a flag and says `unexpected argument '-5' found`, which names neither
/// the option nor the rule; joined, the value reaches its parser, which says that it must be
/// zero or more (or what range it must be in). Only words that look like negative numbers are
/// joined, so a forgotten value (`--rate --duration 5s`, an empty shell variable) is still
/// reported as a missing value.
pub fn join_negative_values(args: Vec<OsString>) -> Vec<OsString> {
    let cli = Cli::command();
    let Some(sub_at) = args
        .iter()
        .skip(1)
        .position(|a| a.to_str().is_some_and(|a| !a.starts_with('-')))
        .map(|i| i + 1)
    else {
        return args;
    };
    let Some(sub) = args[sub_at]
        .to_str()
        .and_then(|name| cli.find_subcommand(name))
    else {
        return args;
    };
    let takes_value = |long: &str| {
        sub.get_arguments()
            .any(|a| a.get_long() == Some(long) && a.get_action().takes_values())
    };
    let negative = |word: &str| {
        word.strip_prefix('-')
            .and_then(|rest| rest.chars().next())
            .is_some_and(|c| c.is_ascii_digit() || c == '.')
    };
    let mut out: Vec<OsString> = Vec::with_capacity(args.len());
    let mut words = args.into_iter().enumerate().peekable();
    while let Some((i, word)) = words.next() {
        let joinable = i > sub_at
            && word
                .to_str()
                .and_then(|w| w.strip_prefix("--"))
                .is_some_and(|long| !long.contains('=') && takes_value(long));
        if joinable
            && let Some((_, next)) = words.peek()
            && next.to_str().is_some_and(negative)
        {
            let mut joined = word;
            joined.push("=");
            joined.push(words.next().map(|(_, v)| v).unwrap_or_default());
            out.push(joined);
        } else {
            out.push(word);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use clap::error::ErrorKind;
    use clap::{CommandFactory, Parser};

    use super::{Cli, join_negative_values};

    /// A negative duration, rate, size or fraction reaches its parser, which says what is
    /// wrong with it. Without a leading-hyphen allowance clap takes `-1s` for a flag and says
    /// `unexpected argument '-1' found`, which names neither the option nor the rule.
    #[test]
    fn negative_quantities_reach_their_parser() {
        let mut checked = Vec::new();
        let mut wrong = Vec::new();
        for sub in Cli::command().get_subcommands() {
            for arg in sub.get_arguments() {
                let Some(names) = arg.get_value_names() else {
                    continue;
                };
                let value = match names[0].as_str() {
                    "DURATION" => "-1s",
                    "RATE" | "RATE,..." => "-1MB/s",
                    "SIZE" | "SIZE,..." => "-1GB",
                    "FRACTION" | "RATIO" | "CORES" => "-1",
                    _ => continue,
                };
                let Some(long) = arg.get_long() else {
                    continue;
                };
                let flag = format!("--{long}");
                let args = ["kpilot", sub.get_name(), flag.as_str(), value];
                let argv = join_negative_values(args.iter().map(OsString::from).collect());
                if let Err(e) = Cli::try_parse_from(argv)
                    && e.kind() == ErrorKind::UnknownArgument
                {
                    wrong.push(args[1..].join(" "));
                }
                checked.push(args[1..].join(" "));
            }
        }
        assert!(wrong.is_empty(), "taken for a flag: {wrong:#?}");
        assert!(checked.len() > 50, "{checked:#?}");
    }

    /// Every fraction flag takes a percentage as well as a number: `--target-utilization 80%`
    /// was refused with "invalid float literal".
    #[test]
    fn every_fraction_flag_takes_a_percentage() {
        let mut checked = Vec::new();
        for sub in Cli::command().get_subcommands() {
            for arg in sub.get_arguments() {
                if arg
                    .get_value_names()
                    .is_none_or(|names| names[0].as_str() != "FRACTION")
                {
                    continue;
                }
                let Some(long) = arg.get_long() else {
                    continue;
                };
                let flag = format!("--{long}");
                for value in ["80%", "0.8", "12.5 %"] {
                    if let Err(e) = Cli::try_parse_from(["kpilot", sub.get_name(), &flag, value])
                        && matches!(
                            e.kind(),
                            ErrorKind::ValueValidation | ErrorKind::InvalidValue
                        )
                    {
                        panic!("{} {flag} {value}: {e}", sub.get_name());
                    }
                }
                let e = Cli::try_parse_from(["kpilot", sub.get_name(), &flag, "80 pct"])
                    .expect_err("not a fraction");
                assert!(
                    e.to_string()
                        .contains("write it as a number or a percentage, e.g. 0.8 or 80%"),
                    "{} {flag}: {e}",
                    sub.get_name()
                );
                checked.push(format!("{} {flag}", sub.get_name()));
            }
        }
        assert!(checked.len() >= 12, "{checked:#?}");
    }

    /// Only a negative quantity right after an option that takes a value is joined: a
    /// forgotten value is still reported as missing, and words after `--` or before the
    /// command are left alone.
    #[test]
    fn only_negative_quantities_are_joined_to_their_option() {
        let join = |args: &[&str]| -> Vec<String> {
            join_negative_values(args.iter().map(OsString::from).collect())
                .into_iter()
                .map(|a| a.into_string().expect("utf-8"))
                .collect()
        };
        assert_eq!(
            join(&["kpilot", "perf", "--warmup", "-1s", "--rate", "-.5MB/s"]),
            ["kpilot", "perf", "--warmup=-1s", "--rate=-.5MB/s"]
        );
        assert_eq!(
            join(&["kpilot", "perf", "--rate", "--duration", "5s"]),
            ["kpilot", "perf", "--rate", "--duration", "5s"]
        );
        assert_eq!(
            join(&["kpilot", "perf", "--json", "-1"]),
            ["kpilot", "perf", "--json", "-1"]
        );
        assert_eq!(
            join(&["kpilot", "perf", "--warmup=-1s"]),
            ["kpilot", "perf", "--warmup=-1s"]
        );
        assert_eq!(
            join(&["kpilot", "nosuch", "--x", "-1"]),
            ["kpilot", "nosuch", "--x", "-1"]
        );
        let e = Cli::try_parse_from(join(&[
            "kpilot",
            "perf",
            "-b",
            "h:1",
            "--rate",
            "--duration",
            "5s",
        ]))
        .expect_err("a missing value");
        assert_eq!(e.kind(), ErrorKind::InvalidValue, "{e}");
    }
}
