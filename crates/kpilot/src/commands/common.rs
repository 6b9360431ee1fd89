//! Arguments shared by several commands (catalog, workload) and their conversion into the
//! capacity crate's validated types. No I/O except loading a `--catalog` file.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use kpilot_capacity::{Catalog, Workload};

use crate::output::usage;

/// Where instance types and prices come from.
#[derive(Debug, Clone, Args)]
pub struct CatalogArgs {
    /// A catalog TOML file to use instead of the built-in AWS us-east-1 catalog (other regions,
    /// prices, measured NVMe throughput). `kpilot catalog --export` prints the built-in one as a
    /// starting point.
    #[arg(long, value_name = "FILE", env = "KPILOT_CATALOG")]
    pub catalog: Option<PathBuf>,
}

impl CatalogArgs {
    /// Loads the chosen catalog. A bad file is a usage error (exit code 2).
    pub fn load(&self) -> anyhow::Result<Catalog> {
        match &self.catalog {
            Some(path) => Catalog::load(path).map_err(usage),
            None => Catalog::builtin().context("the built-in catalog is invalid (a bug)"),
        }
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
    #[arg(long, default_value_t = 0.8, value_name = "FRACTION")]
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

/// Formats a monthly cost.
pub fn usd(value: f64) -> String {
    if value >= 100.0 {
        format!("${value:.0}")
    } else {
        format!("${value:.2}")
    }
}
