//! Arguments shared by several commands (catalog, workload, Kafka connection) and their
//! conversion into the library crates' validated types. No I/O except loading a `--catalog` or
//! `--command-config` file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use kpilot_capacity::{Catalog, Resource, Shape, Workload, loads_at};
use kpilot_kafka::{BrokerAddress, ClientConfig, ConfigError};
use kpilot_units::{Span, Throughput};
use serde::Serialize;

use crate::output::{Table, usage};

/// The environment variable `--catalog` falls back to.
pub const CATALOG_ENV: &str = "KPILOT_CATALOG";

/// Where instance types and prices come from.
#[derive(Debug, Clone, Args)]
pub struct CatalogArgs {
    /// A catalog TOML file to use instead of the built-in AWS us-east-1 catalog (other regions,
    /// prices, measured NVMe throughput). `kpilot catalog --export` prints the built-in one as a
    /// starting point.
    #[arg(long, value_name = "FILE", env = CATALOG_ENV, value_parser = catalog_path())]
    pub catalog: Option<PathBuf>,
}

/// Parses `--catalog` (or `KPILOT_CATALOG`): any path but an empty one, which clap refused
/// as a missing value of `--catalog` without a word of the environment variable.
fn catalog_path() -> impl clap::builder::TypedValueParser<Value = PathBuf> {
    use clap::builder::TypedValueParser as _;
    clap::builder::OsStringValueParser::new().try_map(|s| {
        if s.is_empty() {
            Err(format!(
                "the path is empty (is {CATALOG_ENV} set to nothing?): name a catalog TOML file, or unset {CATALOG_ENV} to use the built-in catalog"
            ))
        } else {
            Ok(PathBuf::from(s))
        }
    })
}

impl CatalogArgs {
    /// Loads the chosen catalog. A bad file is a usage error (exit code 2) that names where
    /// the path came from: `--catalog`, or the `KPILOT_CATALOG` environment variable.
    pub fn load(&self) -> anyhow::Result<Catalog> {
        match &self.catalog {
            Some(path) => Catalog::load(path).map_err(|e| {
                // Given as a flag, or else it came from the environment.
                let flag = std::env::args_os().skip(1).any(|a| {
                    a.to_str()
                        .is_some_and(|a| a == "--catalog" || a.starts_with("--catalog="))
                });
                usage(anyhow::Error::new(e).context(catalog_source_problem(path, flag)))
            }),
            None => Catalog::builtin().context("the built-in catalog is invalid (a bug)"),
        }
    }
}

/// What to say about a catalog file at `path` that cannot be used: where the path came from
/// (`--catalog` when `flag`, else the environment variable) and what to do.
fn catalog_source_problem(path: &Path, flag: bool) -> String {
    let path = path.display();
    if !flag {
        format!(
            "cannot use the catalog file {path} named by the {CATALOG_ENV} environment variable; fix the file or the variable, or unset {CATALOG_ENV} to use the built-in catalog"
        )
    } else {
        format!(
            "cannot use the catalog file {path} given with --catalog; fix the file or the path, or leave --catalog out to use the built-in catalog"
        )
    }
}

/// The workload parameters every capacity question needs.
#[derive(Debug, Clone, Args)]
pub struct WorkloadArgs {
    /// Replication factor of the topics.
    #[arg(long, short = 'r', default_value_t = 3, value_name = "N")]
    pub replication_factor: u16,

    /// min.insync.replicas of the topics (producers use acks=all). Default: replication factor
    /// minus one (2 for r = 3).
    #[arg(long, value_name = "N")]
    pub min_insync_replicas: Option<u16>,

    /// Fraction of the sustained limit to run at, at most (the sizing guide's 80%).
    #[arg(
        long,
        allow_negative_numbers = true,
        default_value_t = 0.8,
        value_name = "FRACTION",
        value_parser = fraction
    )]
    pub target_utilization: f64,
}

impl WorkloadArgs {
    /// The validated workload for a consumer fan-out.
    pub fn workload(&self, consumer_fanout: f64) -> anyhow::Result<Workload> {
        let min_isr = self
            .min_insync_replicas
            .unwrap_or_else(|| Workload::default_min_isr(self.replication_factor));
        Workload::new(
            self.replication_factor,
            min_isr,
            consumer_fanout,
            self.target_utilization,
        )
        .map_err(usage)
    }

    /// The min ISR to use.
    pub fn min_isr(&self) -> u16 {
        self.min_insync_replicas
            .unwrap_or_else(|| Workload::default_min_isr(self.replication_factor))
    }
}

/// Parses a fraction flag (`--target-utilization`, `--max-disk-fill`...): a number (`0.8`) or
/// a percentage (`80%` is 0.8). Each setting checks its own range and says it; a negative
/// value passes through to that check.
pub fn fraction(input: &str) -> Result<f64, String> {
    let trimmed = input.trim();
    let (number, divisor) = match trimmed.strip_suffix('%') {
        Some(number) => (number.trim_end(), 100.0),
        None => (trimmed, 1.0),
    };
    number
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(|v| v / divisor)
        .ok_or_else(|| {
            format!(
                "'{input}' is not a fraction: write it as a number or a percentage, e.g. 0.8 or 80%"
            )
        })
}

/// The names of a comma-separated list flag (`--families m7g,c7g`, `--sizes xlarge`), trimmed
/// and lower-cased as instance types are. An empty name (`m7g,`, `m7g,,c7g`, `""`) is a usage
/// error that quotes the list, rather than an unknown name `''`.
pub fn name_list(flag: &str, what: &str, items: &[String]) -> anyhow::Result<Vec<String>> {
    if items.iter().any(|i| i.trim().is_empty()) {
        return Err(usage(anyhow::anyhow!(
            "empty {what} name in {flag} '{}': separate the names with single commas, e.g. {flag} {}",
            items.join(","),
            match what {
                "size" => "xlarge,2xlarge",
                _ => "m7g,c7g",
            }
        )));
    }
    Ok(items
        .iter()
        .map(|i| i.trim().to_ascii_lowercase())
        .collect())
}

/// A storage flag the chosen storage does not use, refused (exit 2) rather than ignored: what
/// the flag sets, why it does not apply here, and what to pass instead.
pub fn unused_storage_flag(flag: &str, sets: &str, why: &str, instead: &str) -> anyhow::Error {
    usage(anyhow::anyhow!("{flag} sets {sets}, but {why}; {instead}"))
}

/// Formats a number of MB/s for tables: whole numbers above 100, one decimal below.
pub fn mbps(value: f64) -> String {
    if value.is_infinite() {
        "unlimited".to_string()
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// Formats a ratio as a percentage.
pub fn pct(value: f64) -> String {
    format!("{:.0}%", value * 100.0)
}

/// One resource's load per broker at an ingress, as `kpilot capacity --ingress` and
/// `kpilot recommend` report it.
#[derive(Debug, Serialize)]
pub struct ResourceUse {
    /// Storage, storage link or network.
    pub resource: Resource,
    /// Its load on each broker.
    pub per_broker_mb_per_s: f64,
    /// What each broker sustains.
    pub capacity_mb_per_s: f64,
    /// Load over capacity.
    pub utilization: f64,
}

/// Each resource's load per broker of `shape` at `ingress` (the capacity model's `loads_at`).
pub fn resource_uses(shape: &Shape, workload: &Workload, ingress: Throughput) -> Vec<ResourceUse> {
    loads_at(shape, workload, ingress)
        .iter()
        .map(|r| ResourceUse {
            resource: r.resource,
            per_broker_mb_per_s: r.per_broker.mb_per_s(),
            capacity_mb_per_s: r.capacity.mb_per_s(),
            utilization: r.utilization,
        })
        .collect()
}

/// The table of [`ResourceUse`]s, the `bottleneck` (if given) marked.
pub fn resource_table(uses: &[ResourceUse], bottleneck: Option<Resource>) -> String {
    let mut t = Table::new([
        "resource",
        "load per broker MB/s",
        "capacity MB/s",
        "utilization",
    ]);
    for x in uses {
        let marker = if Some(x.resource) == bottleneck {
            "  <- bottleneck"
        } else {
            ""
        };
        t.row([
            x.resource.to_string(),
            mbps(x.per_broker_mb_per_s),
            mbps(x.capacity_mb_per_s),
            format!("{}{marker}", pct(x.utilization)),
        ]);
    }
    t.render()
}

/// The shapes a decision evaluated, cheapest first, with the policy's verdict on each, as
/// `kpilot simulate --explain` and `kpilot recommend` print them, each line after `indent`;
/// the more expensive shapes it did not need to evaluate are counted, not listed (`keep`: the
/// decision was to keep the current shape, which none of them is).
pub fn considered_table(
    considered: &[kpilot_policy::CandidateReport],
    keep: bool,
    indent: &str,
) -> String {
    let mut out = format!("{indent}shapes considered, cheapest first:\n");
    let mut t = Table::new(["shape", "how", "cost", "holds", "takes", "verdict"]);
    let skipped =
        |c: &&kpilot_policy::CandidateReport| matches!(c.verdict, kpilot_policy::Verdict::Skipped);
    for c in considered.iter().filter(|c| !skipped(c)) {
        t.row([
            c.shape.clone(),
            c.mechanism.to_string(),
            format!("{}/h", usd(c.usd_per_hour)),
            c.holds.to_string(),
            c.estimated
                .map_or("-".to_string(), |e| format!("{:.0} min", e.minutes())),
            c.verdict.to_string(),
        ]);
    }
    for line in t.render().lines() {
        out.push_str(&format!("{indent}  {line}\n"));
    }
    let more = considered.iter().filter(skipped).count();
    if more > 0 {
        let why = if keep {
            "the cheaper ones already settled the decision to keep the current shape"
        } else {
            "a cheaper one decided"
        };
        out.push_str(&format!(
            "{indent}  and {more} more expensive shape(s), not evaluated: {why}\n"
        ));
    }
    out
}

/// Formats a cost in dollars: whole dollars from $100, cents below.
pub fn usd(value: f64) -> String {
    if value >= 100.0 {
        format!("${value:.0}")
    } else {
        format!("${value:.2}")
    }
}

/// The Kafka client configuration of a command: the `--command-config` properties file (its
/// warnings printed), `--bootstrap` over its bootstrap.servers (else `fallback`, e.g. the local
/// testbed's), `--timeout` (at least 1 s) for requests and the whole call, and the client id.
/// Every problem is a usage error (exit code 2).
pub fn kafka_client_config(
    bootstrap: Option<&str>,
    command_config: Option<&Path>,
    timeout: Span,
    client_id: Option<&str>,
    fallback: impl FnOnce() -> Option<String>,
) -> anyhow::Result<ClientConfig> {
    let mut config = match command_config {
        Some(path) => {
            let loaded = ClientConfig::from_file(path).map_err(usage)?;
            for warning in &loaded.warnings {
                eprintln!("warning: {warning}");
            }
            loaded.config
        }
        None => ClientConfig::default(),
    };
    let list = match bootstrap {
        Some(list) => Some(list.to_string()),
        None if config.bootstrap.is_empty() => fallback(),
        None => None,
    };
    if let Some(list) = list {
        config.bootstrap = BrokerAddress::parse_list(&list)
            .map_err(|e| usage(anyhow::anyhow!("invalid --bootstrap `{list}`: {e}")))?;
    }
    if config.bootstrap.is_empty() {
        return Err(usage(ConfigError::MissingBootstrap));
    }
    let secs = timeout.secs();
    if !(secs.is_finite() && secs >= 1.0) {
        return Err(usage(anyhow::anyhow!(
            "--timeout must be at least 1s, got {timeout}"
        )));
    }
    let timeout = Duration::from_secs_f64(secs);
    config.api_timeout = timeout;
    config.request_timeout = timeout;
    config.connect_timeout = config.connect_timeout.min(timeout);
    if let Some(id) = client_id {
        config.client_id = id.to_string();
    }
    config.validate().map_err(usage)?;
    Ok(config)
}

/// The single-threaded async runtime a command runs its I/O on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Connects to the cluster; the error names the bootstrap addresses tried.
pub async fn connect_admin(config: ClientConfig) -> anyhow::Result<kpilot_kafka::AdminClient> {
    let bootstrap: Vec<String> = config.bootstrap.iter().map(ToString::to_string).collect();
    kpilot_kafka::AdminClient::connect(config)
        .await
        .with_context(|| {
            format!(
                "cannot connect to the cluster through {}",
                bootstrap.join(",")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::{fraction, name_list};

    /// "80%" was refused with "invalid float literal" by every fraction flag.
    #[test]
    fn fractions_are_numbers_or_percentages() {
        for (input, want) in [
            ("0.8", 0.8),
            ("80%", 0.8),
            (" 80 % ", 0.8),
            ("12.5%", 0.125),
            ("1", 1.0),
            ("150%", 1.5),
            ("-1", -1.0),
            ("0%", 0.0),
        ] {
            assert_eq!(fraction(input), Ok(want), "{input}");
        }
        for input in ["", "%", "abc", "80 pct", "0.8%%", "inf", "NaN"] {
            assert_eq!(
                fraction(input),
                Err(format!(
                    "'{input}' is not a fraction: write it as a number or a percentage, e.g. 0.8 or 80%"
                )),
                "{input}"
            );
        }
    }

    /// `--families M7G` was unknown and `--families m7g,` an unknown family `''`.
    #[test]
    fn name_lists_are_lower_cased_and_refuse_empty_names() {
        let list =
            |items: &[&str]| -> Vec<String> { items.iter().map(|s| s.to_string()).collect() };
        assert_eq!(
            name_list("--families", "family", &list(&["M7G", " c7g "])).unwrap(),
            ["m7g", "c7g"]
        );
        assert_eq!(
            name_list("--families", "family", &list(&["m7g", ""]))
                .unwrap_err()
                .to_string(),
            "empty family name in --families 'm7g,': separate the names with single commas, e.g. --families m7g,c7g"
        );
        assert_eq!(
            name_list("--sizes", "size", &list(&[""]))
                .unwrap_err()
                .to_string(),
            "empty size name in --sizes '': separate the names with single commas, e.g. --sizes xlarge,2xlarge"
        );
    }
}
