//! `kpilot recommend`: measures a live cluster's load (from Prometheus, or from Kafka itself),
//! sets it against the current shape's limits with the capacity model, asks the policy what to
//! do, and lists the cheapest shapes that hold the load. Performs network I/O (Kafka, and
//! Prometheus when given) and prints.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow};
use clap::Args as ClapArgs;
use kpilot_capacity::{
    Catalog, Fanout, Resource, Shape, SizeRequest, Storage, StorageKind, Workload, evaluate, size,
};
use kpilot_kafka::{AdminClient, ClientConfig};
use kpilot_metrics::{
    KafkaSource, Measurement, MetricsSource, PrometheusSettings, PrometheusSource, RateHistory,
    Reading,
};
use kpilot_policy::{
    ClusterState, Constraints, DecisionInput, DemandHistory, FanoutSource, Sample, Settings,
    Timestamp, decide,
};
use kpilot_units::{ByteSize, InstanceType, Span, Throughput};
use serde::{Deserialize, Serialize};

use super::common::{
    CatalogArgs, ResourceUse, WorkloadArgs, considered_table, kafka_client_config, mbps, name_list,
    pct, resource_table, resource_uses, unused_storage_flag, usd,
};
use crate::output::{Table, check_output_path, print_json, print_text, usage};

/// Recommend a shape for a live cluster from its measured load.
///
/// Measures the cluster's load over a window: with --prometheus, from the brokers' JMX
/// exporter series in Prometheus (bytes in and out, replication, CPU per broker; the history
/// Prometheus keeps, so it answers at once); without, from Kafka itself (log sizes and
/// log-end offsets per topic, consumer groups' committed offsets), watching the cluster for
/// the whole window. Then shows the utilization of the current shape (--instance and
/// --brokers, or --shape FILE) against the capacity model's limits and its bottleneck, the
/// autoscaling policy's decision with its reasons, and the cheapest shapes that hold the
/// measured load.
///
/// A metric that is missing or stale (wrong name, empty result, a broker that stopped
/// reporting, Prometheus down) is reported as such and nothing is recommended: it is never
/// read as zero load. See docs/metrics.md for the metric names and how to change them.
///
/// Examples:
///   kpilot recommend -b 127.0.0.1:9092 --prometheus http://127.0.0.1:9090 -i m7g.large
///   kpilot recommend -b 127.0.0.1:9092 -i m7g.xlarge --window 60s --json
///   kpilot recommend -b kafka:9092 --prometheus http://prom:9090 --shape shape.toml
///     --prom-selector 'namespace="kafka"' --prom-broker-label pod
#[derive(Debug, ClapArgs)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Brokers to contact first, comma separated, e.g. 127.0.0.1:9092,127.0.0.1:9093.
    /// Overrides bootstrap.servers from --command-config.
    #[arg(long, short = 'b', value_name = "HOST:PORT[,...]")]
    pub bootstrap: Option<String>,

    /// Kafka client properties file with security settings (and optionally bootstrap.servers),
    /// as for `kpilot status`, e.g. client.properties.
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<PathBuf>,

    /// Timeout of each Kafka or Prometheus request, e.g. 30s.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub timeout: Span,

    /// Prometheus HTTP API base URL, e.g. http://127.0.0.1:9090. Without it the load is
    /// measured from Kafka itself.
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,

    /// Window the load is averaged over, e.g. 5m or 30s. Default: 5m with --prometheus (looked
    /// back over), 30s without (kpilot watches Kafka that long).
    #[arg(long, value_name = "DURATION")]
    pub window: Option<Span>,

    /// With --prometheus: also read the cluster ingress over this much of the past (range
    /// queries, one point per --window), so the policy forecasts from the daily and weekly
    /// curve instead of the one measurement, e.g. 7d or 28d (at most 35d). Without it the
    /// measurement is the only history and the policy falls back to its reactive forecast.
    #[arg(long, value_name = "DURATION")]
    pub history: Option<Span>,

    /// With --history: also write that history as a `kpilot simulate --trace` CSV
    /// (`t_seconds` in Unix time, the ingress and, where Prometheus has it for every step, the
    /// consumer egress, in MB/s, one row per --window), to replay your own cluster's days
    /// through the policy: `kpilot simulate --trace FILE --history 3d`.
    #[arg(long, value_name = "FILE", requires = "history")]
    pub save_trace: Option<PathBuf>,

    /// Instance type of the brokers now, e.g. m7g.xlarge.
    #[arg(
        long,
        short = 'i',
        value_name = "TYPE",
        required_unless_present = "shape"
    )]
    pub instance: Option<InstanceType>,

    /// Number of brokers now. Default: the live brokers Kafka reports.
    #[arg(long, value_name = "N")]
    pub brokers: Option<u32>,

    /// Storage kind: gp3, st1, io2 or local-nvme. Default: local-nvme for types with local
    /// disks, gp3 otherwise.
    #[arg(long, value_name = "KIND")]
    pub storage: Option<StorageKind>,

    /// Provisioned throughput per broker volume (gp3, io2), e.g. 250MB/s. Default: gp3's
    /// included 125 MiB/s, io2 1000 MiB/s.
    #[arg(long, value_name = "RATE")]
    pub storage_throughput: Option<Throughput>,

    /// Volume size per broker, e.g. 2TB. Default 1TB.
    #[arg(long, value_name = "SIZE")]
    pub storage_size: Option<ByteSize>,

    /// The current shape from a TOML or JSON file instead of the shape flags, with the keys
    /// instance, brokers, storage, storage_throughput and storage_size, e.g.
    /// instance = "m7g.large" / brokers = 3 / storage = "gp3" / storage_throughput = "250MB/s".
    #[arg(long, value_name = "FILE", conflicts_with_all = ["instance", "storage", "storage_throughput", "storage_size"])]
    pub shape: Option<PathBuf>,

    /// Consumer groups reading from the head of the log (fixes the fan-out). Default: the
    /// measured egress / ingress, else 1.
    #[arg(long, short = 'c', value_name = "N")]
    pub consumer_groups: Option<u32>,

    /// Availability zones: broker counts are multiples of it.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub zones: u32,

    /// Fewest brokers the policy may choose. Default: the replication factor.
    #[arg(long, value_name = "N")]
    pub min_brokers: Option<u32>,

    /// Most brokers the policy may choose (at most 1000).
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub max_brokers: u32,

    /// Instance families the policy may move to, comma separated. Default: the current one.
    #[arg(long, value_delimiter = ',', value_name = "FAMILY,...")]
    pub families: Vec<String>,

    /// How many of the cheapest shapes that hold the measured load to list (0: none).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub top: usize,

    /// How long a broker is out in a roll before it catches up (stop, new node, start): the
    /// policy times rolls with it. `kpilot roll` measures it (stop + resize + start per
    /// broker in its report); the operator learns it from its own rolls.
    #[arg(long, default_value = "3m", value_name = "DURATION")]
    pub restart_time: Span,

    /// Counter of producer bytes in (broker-wide series: no topic label).
    #[arg(long, default_value = kpilot_metrics::promql::defaults::BYTES_IN, value_name = "NAME")]
    pub prom_bytes_in: String,

    /// Counter of consumer bytes out.
    #[arg(long, default_value = kpilot_metrics::promql::defaults::BYTES_OUT, value_name = "NAME")]
    pub prom_bytes_out: String,

    /// Counter of replication bytes in.
    #[arg(long, default_value = kpilot_metrics::promql::defaults::REPLICATION_IN, value_name = "NAME")]
    pub prom_replication_in: String,

    /// Counter of replication bytes out.
    #[arg(long, default_value = kpilot_metrics::promql::defaults::REPLICATION_OUT, value_name = "NAME")]
    pub prom_replication_out: String,

    /// Counter of the broker process' CPU seconds.
    #[arg(long, default_value = kpilot_metrics::promql::defaults::CPU, value_name = "NAME")]
    pub prom_cpu: String,

    /// Label that tells brokers apart, e.g. instance, pod or kafka_broker_id.
    #[arg(long, default_value = kpilot_metrics::promql::defaults::BROKER_LABEL, value_name = "LABEL")]
    pub prom_broker_label: String,

    /// Label of per-topic series (the broker-wide series are those without it).
    #[arg(long, default_value = kpilot_metrics::promql::defaults::TOPIC_LABEL, value_name = "LABEL")]
    pub prom_topic_label: String,

    /// Extra label matchers for every query, e.g. 'job="kafka",namespace="prod"'.
    #[arg(long, default_value = "", value_name = "MATCHERS")]
    pub prom_selector: String,

    /// A series whose latest sample is older than this is stale, e.g. 60s.
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub prom_max_age: Span,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub workload: WorkloadArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub catalog: CatalogArgs,

    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// The `--shape` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShapeFile {
    instance: String,
    brokers: Option<u32>,
    storage: Option<String>,
    storage_throughput: Option<String>,
    storage_size: Option<String>,
}

/// The current shape as given, before the catalog resolves it.
#[derive(Debug, Clone)]
struct ShapeSpec {
    instance: InstanceType,
    brokers: Option<u32>,
    storage: Option<StorageKind>,
    storage_throughput: Option<Throughput>,
    storage_size: Option<ByteSize>,
    /// The `--shape` file it was read from (`None`: the flags).
    file: Option<PathBuf>,
}

fn parse_field<T: FromStr>(
    path: &Path,
    key: &str,
    value: Option<String>,
) -> anyhow::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    value
        .map(|v| {
            v.parse::<T>()
                .map_err(|e| usage(anyhow!("{}: invalid {key} {v:?}: {e}", path.display())))
        })
        .transpose()
}

fn read_shape_file(path: &Path) -> anyhow::Result<ShapeSpec> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(anyhow!("cannot read --shape {}: {e}", path.display())))?;
    let is_json =
        path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    let file: ShapeFile = if is_json {
        serde_json::from_str(&text)
            .map_err(|e| usage(anyhow!("{} is not a valid JSON shape: {e}", path.display())))?
    } else {
        toml::from_str(&text)
            .map_err(|e| usage(anyhow!("{} is not a valid TOML shape: {e}", path.display())))?
    };
    Ok(ShapeSpec {
        instance: parse_field(path, "instance", Some(file.instance))?
            .ok_or_else(|| usage(anyhow!("{}: instance is required", path.display())))?,
        brokers: file.brokers,
        storage: parse_field(path, "storage", file.storage)?,
        storage_throughput: parse_field(path, "storage_throughput", file.storage_throughput)?,
        storage_size: parse_field(path, "storage_size", file.storage_size)?,
        file: Some(path.to_path_buf()),
    })
}

impl ShapeSpec {
    fn resolve(
        &self,
        catalog: &Catalog,
        brokers: u32,
        workload: &Workload,
    ) -> anyhow::Result<Shape> {
        let instance = catalog.instance(&self.instance).map_err(usage)?.clone();
        let kind = self.storage_kind(&instance)?;
        let size_gb = self.storage_size.map_or(1000.0, |s| s.gb());
        let storage = match kind {
            StorageKind::Gp3 => Storage::gp3(
                catalog,
                size_gb.max(catalog.gp3.min_size_gb),
                self.storage_throughput
                    .unwrap_or(Throughput::from_mib_per_s(catalog.gp3.baseline_mib_per_s)),
            ),
            StorageKind::Io2 => Storage::io2(
                catalog,
                size_gb.max(catalog.io2.min_size_gb),
                self.storage_throughput
                    .unwrap_or(Throughput::from_mib_per_s(1000.0)),
            ),
            StorageKind::St1 => Storage::st1(catalog, size_gb.max(catalog.st1.min_size_gb)),
            StorageKind::LocalNvme => Storage::local_nvme(&instance, None),
        }
        .map_err(usage)?;
        Shape::new(instance, brokers, storage, workload).map_err(usage)
    }

    /// How a setting is named where it was given: `--storage-size`, or `storage_size in
    /// shape.toml`.
    fn named(&self, key: &str) -> String {
        match &self.file {
            Some(path) => format!("{key} in {}", path.display()),
            None => format!("--{}", key.replace('_', "-")),
        }
    }

    /// The storage kind of `instance` (as given, else local NVMe for types with local disks
    /// and gp3 otherwise). A throughput or size the kind does not use is refused, not ignored.
    fn storage_kind(&self, instance: &kpilot_capacity::Instance) -> anyhow::Result<StorageKind> {
        let kind = self.storage.unwrap_or(if instance.nvme_gb.is_some() {
            StorageKind::LocalNvme
        } else {
            StorageKind::Gp3
        });
        let name = &instance.name;
        let throughput = self.named("storage_throughput");
        let (storage, size) = (self.named("storage"), self.named("storage_size"));
        match kind {
            StorageKind::LocalNvme => {
                let why = match self.storage {
                    Some(_) => format!("{storage} local-nvme puts the data on {name}'s local NVMe"),
                    None => format!("{name} uses its local NVMe"),
                };
                let instead = format!(
                    "drop it, or set {storage} gp3 (or io2, st1) if the brokers use network volumes"
                );
                if self.storage_throughput.is_some() {
                    return Err(unused_storage_flag(
                        &throughput,
                        "a network volume's throughput",
                        &why,
                        &instead,
                    ));
                }
                if self.storage_size.is_some() {
                    return Err(unused_storage_flag(
                        &size,
                        "a network volume's size",
                        &why,
                        &instead,
                    ));
                }
            }
            StorageKind::St1 if self.storage_throughput.is_some() => {
                return Err(unused_storage_flag(
                    &throughput,
                    "a gp3 or io2 volume's provisioned throughput",
                    "an st1 volume's throughput follows its size",
                    &format!("drop it, and give the volumes' size with {size}"),
                ));
            }
            _ => {}
        }
        Ok(kind)
    }
}

/// The policy's constraints from the flags.
fn constraints_of(args: &Args, workload: &Workload) -> anyhow::Result<Constraints> {
    Ok(Constraints {
        families: name_list("--families", "family", &args.families)?,
        min_brokers: args
            .min_brokers
            .unwrap_or(u32::from(workload.replication_factor)),
        max_brokers: args.max_brokers,
        zones: args.zones,
        ..Constraints::default()
    })
}

fn client_config(args: &Args) -> anyhow::Result<ClientConfig> {
    kafka_client_config(
        args.bootstrap.as_deref(),
        args.command_config.as_deref(),
        args.timeout,
        None,
        || None,
    )
}

fn prometheus_settings(args: &Args, url: &str, brokers: usize) -> PrometheusSettings {
    let mut s = PrometheusSettings::new(url);
    s.bytes_in = args.prom_bytes_in.clone();
    s.bytes_out = args.prom_bytes_out.clone();
    s.replication_in = args.prom_replication_in.clone();
    s.replication_out = args.prom_replication_out.clone();
    s.cpu = args.prom_cpu.clone();
    s.broker_label = args.prom_broker_label.clone();
    s.topic_label = args.prom_topic_label.clone();
    s.selector = args.prom_selector.clone();
    s.max_age = args.prom_max_age;
    s.expected_brokers = Some(brokers);
    s.timeout = Duration::from_secs_f64(args.timeout.secs());
    s
}

/// What was measured, as the report shows it.
struct Measured {
    measurement: Measurement,
    live_brokers: u32,
    /// Brokers that partitions name as replicas but Metadata does not list as live (down,
    /// or fenced), lowest first.
    missing_brokers: Vec<i32>,
    stored: Option<ByteSize>,
    history: Option<RateHistory>,
    /// The egress over the same steps, read only for `--save-trace`: `Err` says why not.
    egress_history: Option<Result<RateHistory, String>>,
}

async fn measure(args: &Args, config: ClientConfig, window: Span) -> anyhow::Result<Measured> {
    let admin = AdminClient::connect(config)
        .await
        .context("cannot connect to the Kafka cluster")?;
    let metadata = admin
        .metadata()
        .await
        .context("cannot read cluster metadata")?;
    let live_brokers = u32::try_from(metadata.brokers.len()).unwrap_or(u32::MAX);
    let missing_brokers: Vec<i32> = metadata
        .topics
        .values()
        .flat_map(|t| t.partitions.values())
        .flat_map(|p| p.replicas.iter())
        .filter(|b| !metadata.brokers.contains_key(b))
        .map(|b| b.0)
        .collect::<std::collections::BTreeSet<i32>>()
        .into_iter()
        .collect();
    let kafka = KafkaSource::new(admin.clone());
    let (measurement, history, egress_history) = match &args.prometheus {
        Some(url) => {
            let settings = prometheus_settings(args, url, metadata.brokers.len());
            let source = PrometheusSource::new(settings).map_err(usage)?;
            let measurement = source.measure(window).await?;
            let history = match args.history {
                Some(lookback) if lookback.secs() > 0.0 => Some(
                    source
                        .ingress_history(lookback, window)
                        .await
                        .context("reading the ingress history from Prometheus")?,
                ),
                _ => None,
            };
            // The egress is only needed for the trace, and a trace without it still replays.
            let egress_history = match (&history, &args.save_trace) {
                (Some(_), Some(_)) => Some(
                    source
                        .egress_history(args.history.unwrap_or(Span::ZERO), window)
                        .await
                        .map_err(|e| format!("{e:#}")),
                ),
                _ => None,
            };
            (measurement, history, egress_history)
        }
        None => (kafka.measure(window).await?, None, None),
    };
    // Data stored (for the policy's transition plans): the Kafka source has it; otherwise one
    // sample of the log directories.
    let stored = match measurement.stored {
        Some(s) => Some(s),
        None => {
            let sample = kafka.sample().await?;
            sample
                .unreadable_brokers
                .is_empty()
                .then(|| ByteSize::from_bytes(sample.replica_sizes.values().sum::<u64>() as f64))
        }
    };
    admin.close();
    Ok(Measured {
        measurement,
        live_brokers,
        missing_brokers,
        stored,
        history,
        egress_history,
    })
}

/// A `kpilot simulate --trace` CSV of a history.
struct TraceCsv {
    /// The file's text: one row per ingress point, Unix seconds, MB/s.
    text: String,
    /// How many rows have the egress (the others have an empty cell, which the simulator
    /// fills from the rows around it; no egress column when none has).
    egress_rows: usize,
    /// What of an egress history given is missing.
    missing: Option<String>,
}

fn trace_csv(ingress: &RateHistory, egress: Option<&RateHistory>) -> TraceCsv {
    let key = |t: f64| (t * 1000.0).round() as i64;
    let out: std::collections::BTreeMap<i64, Throughput> = egress
        .map(|e| e.points.iter().map(|(t, r)| (key(*t), *r)).collect())
        .unwrap_or_default();
    let rows: Vec<kpilot_sim::trace::Row> = ingress
        .points
        .iter()
        .map(|(t, rate)| kpilot_sim::trace::Row {
            t: *t,
            ingress: rate.bytes_per_s(),
            egress: out.get(&key(*t)).map(|r| r.bytes_per_s()),
        })
        .collect();
    let covered = rows.iter().filter(|r| r.egress.is_some()).count();
    let missing = (egress.is_some() && covered < rows.len()).then(|| {
        if covered == 0 {
            format!(
                "Prometheus has the egress for none of the {} steps: the trace has no egress column",
                rows.len()
            )
        } else {
            format!(
                "Prometheus has the egress for {covered} of the {} steps: the others are empty cells, which `kpilot simulate` fills from the steps around them",
                rows.len()
            )
        }
    });
    TraceCsv {
        text: kpilot_sim::trace::to_csv(&rows),
        egress_rows: covered,
        missing,
    }
}

#[derive(Debug, Serialize)]
struct Utilization {
    ingress_mb_per_s: f64,
    sustained_limit_mb_per_s: f64,
    recommended_limit_mb_per_s: f64,
    of_sustained: f64,
    within_recommended: bool,
    bottleneck: Resource,
    resources: Vec<ResourceUse>,
}

#[derive(Debug, Serialize)]
struct FanoutOut {
    value: f64,
    from: &'static str,
}

/// What the policy's forecast was made from.
#[derive(Debug, Serialize)]
struct HistoryOut {
    /// `prometheus` (range queries plus the measurement) or `measurement` (the one).
    source: &'static str,
    /// Samples, the measurement included.
    samples: usize,
    /// Steps Prometheus had with a broker missing, left out.
    gaps: usize,
    /// How far back the oldest sample is.
    hours: f64,
}

#[derive(Debug, Serialize)]
struct DecisionOut {
    action: &'static str,
    target: Option<String>,
    mechanism: Option<String>,
    estimated_minutes: Option<f64>,
    /// The replication throttle per broker data moves were planned at: the one `kpilot
    /// rebalance --instance ... --ingress ...` (and the operator) would set.
    move_throttle_mb_per_s: f64,
    /// Where it comes from.
    move_throttle_source: String,
    reasons: Vec<String>,
    reactive_fallback: bool,
    current_holds_mb_per_s: f64,
    current_usd_per_hour: f64,
    forecast_peak_mb_per_s: f64,
    decision: kpilot_policy::Decision,
}

#[derive(Debug, Serialize)]
struct ShapeOut {
    shape: String,
    instance: String,
    brokers: u32,
    storage: Storage,
    monthly_cost_usd: f64,
    recommended_limit_mb_per_s: f64,
    utilization_at_peak: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    source: String,
    window_s: f64,
    measurement: Measurement,
    current_shape: ShapeOut,
    workload: Workload,
    fanout: FanoutOut,
    stored_gb: Option<f64>,
    utilization: Utilization,
    history: HistoryOut,
    /// The trace written for `--save-trace`.
    trace: Option<TraceOut>,
    decision: DecisionOut,
    cheapest: Vec<ShapeOut>,
    warnings: Vec<String>,
    catalog: String,
}

/// A trace written for `kpilot simulate --trace`.
#[derive(Debug, Serialize)]
struct TraceOut {
    file: PathBuf,
    rows: usize,
    hours: f64,
    /// Whether it has the egress column.
    egress: bool,
    /// How many rows have the egress (the others have an empty cell).
    egress_rows: usize,
}

fn ingress_of(m: &Measurement) -> anyhow::Result<Throughput> {
    match &m.ingress {
        Reading::Measured { rate } => Ok(*rate),
        Reading::Missing { reason } | Reading::Stale { reason } => {
            let kind = if matches!(m.ingress, Reading::Stale { .. }) {
                "stale"
            } else {
                "missing"
            };
            let fix = if m.source.starts_with("kafka") {
                "Fix what the reason names, or measure with --prometheus, whose broker counters see every topic"
            } else {
                "Fix the metric (see docs/metrics.md), or measure from Kafka itself by leaving out --prometheus"
            };
            Err(anyhow!(
                "cannot recommend: the cluster ingress from {} is {kind}: {reason}\n\
                 Nothing was recommended: a missing or stale metric is never read as zero load. {fix}",
                m.source
            ))
        }
    }
}

fn shape_out(
    shape: &Shape,
    catalog: &Catalog,
    workload: &Workload,
    ingress: Throughput,
) -> ShapeOut {
    let e = evaluate(shape, workload, catalog);
    ShapeOut {
        shape: shape.label(),
        instance: shape.instance.name.to_string(),
        brokers: shape.brokers,
        storage: shape.storage,
        monthly_cost_usd: e.monthly_cost.total,
        recommended_limit_mb_per_s: e.recommended.mb_per_s(),
        utilization_at_peak: ingress.bytes_per_s() / e.sustained.ingress.bytes_per_s(),
    }
}

/// Runs `kpilot recommend`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let catalog = args.catalog.load()?;
    let spec = match &args.shape {
        Some(path) => read_shape_file(path)?,
        None => ShapeSpec {
            instance: args
                .instance
                .clone()
                .ok_or_else(|| usage(anyhow!("--instance or --shape is required")))?,
            brokers: args.brokers,
            storage: args.storage,
            storage_throughput: args.storage_throughput,
            storage_size: args.storage_size,
            file: None,
        },
    };
    // Check the instance type and its storage before measuring for minutes.
    spec.storage_kind(catalog.instance(&spec.instance).map_err(usage)?)?;
    let window = args.window.unwrap_or(if args.prometheus.is_some() {
        Span::from_minutes(5.0)
    } else {
        Span::from_secs(30.0)
    });
    if !(window.secs() >= 1.0 && window.secs() <= 86_400.0) {
        return Err(usage(anyhow!(
            "--window {window} must be between 1s and 24h"
        )));
    }
    if let Some(history) = args.history {
        if args.prometheus.is_none() {
            return Err(usage(anyhow!(
                "--history {history} needs --prometheus: Kafka itself keeps no record of past load"
            )));
        }
        if !(history.secs() >= 0.0 && history.secs() <= 35.0 * 86_400.0) {
            return Err(usage(anyhow!(
                "--history {history} must be between 0 and 35d (what the policy keeps)"
            )));
        }
        if let Some(path) = &args.save_trace
            && history.secs() <= 0.0
        {
            return Err(usage(anyhow!(
                "--save-trace {} needs a --history to save, e.g. --history 7d",
                path.display()
            )));
        }
    }
    if let Some(path) = &args.save_trace {
        check_output_path("--save-trace", path)?;
    }
    // The policy's constraints and a given broker count are checked before measuring, too:
    // the consumer fan-out, only known after, does not change them.
    let before = args.workload.workload(1.0)?;
    constraints_of(&args, &before)?
        .validate(&catalog, &before)
        .map_err(usage)?;
    if let Some(brokers) = spec.brokers {
        spec.resolve(&catalog, brokers, &before)?;
    }
    // So are the Prometheus settings: a typo in the URL or a metric name is a usage error
    // now, not after connecting to Kafka.
    if let Some(url) = &args.prometheus {
        prometheus_settings(&args, url, 0)
            .validate()
            .map_err(usage)?;
    }
    let config = client_config(&args)?;
    let runtime = super::common::runtime()?;
    if args.prometheus.is_none() && !args.json {
        eprintln!("measuring from Kafka for {window} (no --prometheus)...");
    }
    let measured = runtime.block_on(measure(&args, config, window))?;
    let m = &measured.measurement;
    let mut warnings = m.warnings.clone();
    // The trace first: the history is worth keeping even when no recommendation follows.
    let trace = match (&args.save_trace, &measured.history) {
        (Some(path), Some(history)) if !history.points.is_empty() => {
            let egress = match &measured.egress_history {
                Some(Ok(e)) => Some(e),
                Some(Err(why)) => {
                    warnings.push(format!("trace without egress: {why}"));
                    None
                }
                None => None,
            };
            let csv = trace_csv(history, egress);
            if let Some(why) = &csv.missing {
                warnings.push(format!("trace egress incomplete: {why}"));
            }
            std::fs::write(path, &csv.text)
                .with_context(|| format!("cannot write the trace {}", path.display()))?;
            let first = history.points.first().map_or(0.0, |p| p.0);
            let last = history.points.last().map_or(0.0, |p| p.0);
            Some(TraceOut {
                file: path.clone(),
                rows: history.points.len(),
                hours: (last - first + window.secs()) / 3600.0,
                egress: csv.egress_rows > 0,
                egress_rows: csv.egress_rows,
            })
        }
        (Some(path), _) => {
            warnings.push(format!(
                "no trace written to {}: Prometheus has no ingress history for the --history asked",
                path.display()
            ));
            None
        }
        _ => None,
    };
    // A recommendation that fails from here on still leaves the trace written: say so.
    let written = trace
        .as_ref()
        .map(|t| format!("{} row(s) written to {}", t.rows, t.file.display()));
    let outcome = (|| -> anyhow::Result<()> {
        let ingress = ingress_of(m)?;

        let (fanout, from) = match (args.consumer_groups, m.fanout()) {
            (Some(n), _) => (f64::from(n), "--consumer-groups"),
            (None, Some(f)) => (f, "measured egress / ingress"),
            (None, None) => {
                warnings.push(
                    "egress not measured: consumer fan-out 1 assumed (set --consumer-groups)"
                        .into(),
                );
                (1.0, "egress not measured: the default")
            }
        };
        let workload = args.workload.workload(fanout)?;
        let brokers = spec.brokers.unwrap_or(measured.live_brokers);
        warnings.extend(missing_brokers_warning(
            &measured.missing_brokers,
            measured.live_brokers,
            spec.brokers,
        ));
        let shape = spec.resolve(&catalog, brokers, &workload)?;
        let evaluation = evaluate(&shape, &workload, &catalog);
        let resources = resource_uses(&shape, &workload, ingress);
        let utilization = Utilization {
            ingress_mb_per_s: ingress.mb_per_s(),
            sustained_limit_mb_per_s: evaluation.sustained.ingress.mb_per_s(),
            recommended_limit_mb_per_s: evaluation.recommended.mb_per_s(),
            of_sustained: ingress.bytes_per_s() / evaluation.sustained.ingress.bytes_per_s(),
            within_recommended: ingress <= evaluation.recommended,
            bottleneck: evaluation.sustained.bottleneck,
            resources,
        };

        // The policy, with Prometheus' history (if asked for) and the measurement.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(m.at_unix_secs);
        let mut history = DemandHistory::with_defaults();
        let past: Vec<(f64, Throughput)> = measured
            .history
            .as_ref()
            .map(|h| h.points.iter().copied().filter(|(t, _)| *t < now).collect())
            .unwrap_or_default();
        for (t, ingress) in &past {
            history
                .push(Sample {
                    at: Timestamp::from_secs(*t),
                    ingress: *ingress,
                    egress: None,
                })
                .context("recording Prometheus' ingress history")?;
        }
        let history_out = HistoryOut {
            source: if measured.history.is_some() {
                "prometheus"
            } else {
                "measurement"
            },
            samples: past.len() + 1,
            gaps: measured.history.as_ref().map_or(0, |h| h.gaps),
            hours: past.first().map_or(0.0, |(t, _)| (now - t) / 3600.0),
        };
        history
            .push(Sample {
                at: Timestamp::from_secs(now),
                ingress,
                egress: m.egress.value(),
            })
            .context("recording the measurement in the demand history")?;
        let stored = measured.stored.unwrap_or_else(|| {
            warnings.push("data stored unknown: transition plans assume an empty cluster".into());
            ByteSize::from_bytes(0.0)
        });
        let cluster = ClusterState {
            shape: shape.clone(),
            stored,
            last_change_finished: None,
            transition_in_progress: false,
        };
        let constraints = constraints_of(&args, &workload)?;
        let mut settings = Settings {
            target_utilization: workload.target_utilization,
            // A one-off answer a person reviews: without history it may still say a smaller
            // shape holds the load (unless the load is rising), where the operator, acting
            // on its own, waits for a day of history before it scales down.
            hold_without_seasonality: false,
            ..Settings::default()
        };
        settings.transition.restart = args.restart_time;
        // Moves are planned at the throttle `kpilot rebalance` would set for this shape now.
        let (move_throttle, move_throttle_source) = kpilot_rebalance::planned_throttle(
            &shape,
            &workload,
            Some(ingress),
            Throughput::from_mb_per_s(50.0),
            None,
        );
        settings.transition.max_move_rate_per_broker =
            Throughput::from_bytes_per_s(move_throttle as f64);
        let decision = decide(&DecisionInput {
            now: Timestamp::from_secs(now),
            history: &history,
            cluster: &cluster,
            replication_factor: workload.replication_factor,
            min_insync_replicas: workload.min_insync_replicas,
            fanout: FanoutSource::Fixed(fanout),
            catalog: &catalog,
            constraints: &constraints,
            settings: &settings,
        })
        .map_err(usage)?;
        let reactive = decision
            .reasons
            .iter()
            .any(|r| matches!(r, kpilot_policy::Reason::ShortHistory { .. }));
        let plan = decision.plan();
        let decision_out = DecisionOut {
            action: if plan.is_some() { "change" } else { "keep" },
            target: plan.map(|p| p.to.label()),
            mechanism: plan.map(|p| p.mechanism.as_str().to_string()),
            estimated_minutes: plan.map(|p| p.estimated.minutes()),
            move_throttle_mb_per_s: move_throttle as f64 / 1e6,
            move_throttle_source,
            reasons: decision.reasons.iter().map(ToString::to_string).collect(),
            reactive_fallback: reactive,
            current_holds_mb_per_s: decision.current_holds.mb_per_s(),
            current_usd_per_hour: decision.current_usd_per_hour,
            forecast_peak_mb_per_s: decision
                .forecast
                .values
                .iter()
                .map(|v| v.mb_per_s())
                .fold(0.0, f64::max),
            decision: decision.clone(),
        };

        // The cheapest shapes that hold the measured ingress.
        let mut req = SizeRequest::new(ingress);
        req.fanout = match (args.consumer_groups, m.egress.value()) {
            (Some(n), _) => Fanout::ConsumerGroups(n),
            (None, Some(e)) => Fanout::Egress(e),
            (None, None) => Fanout::ConsumerGroups(1),
        };
        req.replication_factor = workload.replication_factor;
        req.min_insync_replicas = workload.min_insync_replicas;
        req.target_utilization = workload.target_utilization;
        req.zones = args.zones;
        req.families = constraints.families.clone();
        req.max_brokers = args.max_brokers.max(req.replication_factor.into());
        req.top = args.top;
        req.rejected = 0;
        // --top 0 lists none.
        let cheapest = if args.top == 0 {
            Vec::new()
        } else if ingress.bytes_per_s() <= 0.0 {
            warnings.push("no cheapest shapes: the measured ingress is zero".into());
            Vec::new()
        } else {
            match size(&catalog, &req) {
                Ok(report) => report
                    .candidates
                    .iter()
                    .map(|c| shape_out(&c.shape, &catalog, &workload, ingress))
                    .collect(),
                Err(e) => {
                    warnings.push(format!("no cheapest shapes: {e}"));
                    Vec::new()
                }
            }
        };

        let report = Report {
            source: m.source.clone(),
            window_s: m.window.secs(),
            measurement: m.clone(),
            current_shape: shape_out(&shape, &catalog, &workload, ingress),
            workload: workload.clone(),
            fanout: FanoutOut {
                value: fanout,
                from,
            },
            stored_gb: measured.stored.map(|s| s.gb()),
            utilization,
            history: history_out,
            trace,
            decision: decision_out,
            cheapest,
            warnings,
            catalog: catalog.origin.clone(),
        };
        if args.json {
            print_json(&report)
        } else {
            print_text(&render(&report))
        }
    })();
    if let (Err(_), Some(written)) = (&outcome, written) {
        eprintln!(
            "note: no recommendation, but the trace was saved: {written}; \
             replay it with `kpilot simulate --trace`"
        );
    }
    outcome
}

fn reading(r: &Reading) -> String {
    match r {
        Reading::Measured { rate } => mbps(rate.mb_per_s()),
        Reading::Missing { .. } => "missing".into(),
        Reading::Stale { .. } => "stale".into(),
    }
}

/// The warning for brokers that host replicas but are not live: the current shape then
/// counts only the live ones, unless `--brokers` (or the shape file) gave the count.
fn missing_brokers_warning(missing: &[i32], live: u32, given: Option<u32>) -> Option<String> {
    if missing.is_empty() {
        return None;
    }
    let ids: Vec<String> = missing.iter().map(ToString::to_string).collect();
    let shape = match given {
        Some(n) => format!("the shape has the {n} broker(s) given"),
        None => format!(
            "the current shape counts only the {live} live broker(s) (give --brokers {} to evaluate the whole cluster)",
            live as usize + missing.len()
        ),
    };
    Some(format!(
        "broker(s) {} host replicas but are not live (down or fenced): {shape}; see `kpilot status`",
        ids.join(", ")
    ))
}

/// A reading with its unit: `4.3 MB/s`, or `missing` / `stale` (no unit to a rate not read).
fn rate_reading(r: &Reading) -> String {
    match r {
        Reading::Measured { rate } => format!("{} MB/s", mbps(rate.mb_per_s())),
        _ => reading(r),
    }
}

fn render(r: &Report) -> String {
    let m = &r.measurement;
    let mut out = format!(
        "measured by {} over {:.0} s: ingress {}, egress {}, replication {}\n",
        r.source,
        r.window_s,
        rate_reading(&m.ingress),
        rate_reading(&m.egress),
        rate_reading(&m.replication)
    );
    let mut t = Table::new([
        "broker",
        "bytes in MB/s",
        "bytes out MB/s",
        "repl in MB/s",
        "repl out MB/s",
        "cpu cores",
        "stored GB",
    ]);
    for b in &m.brokers {
        t.row([
            b.broker.clone(),
            reading(&b.bytes_in),
            reading(&b.bytes_out),
            reading(&b.replication_in),
            reading(&b.replication_out),
            b.cpu_cores.map_or("-".into(), |c| format!("{c:.2}")),
            b.stored.map_or("-".into(), |s| format!("{:.2}", s.gb())),
        ]);
    }
    out.push_str(&t.render());
    let topics: Vec<_> = m.topics.iter().take(10).collect();
    if !topics.is_empty() {
        let mut t = Table::new(["topic", "ingress MB/s", "egress MB/s", "consumer groups"]);
        for x in topics {
            t.row([
                x.topic.clone(),
                reading(&x.ingress),
                x.egress.map_or("-".into(), |e| mbps(e.mb_per_s())),
                if x.consumer_groups.is_empty() {
                    "-".into()
                } else {
                    x.consumer_groups.join(",")
                },
            ]);
        }
        out.push('\n');
        out.push_str(&t.render());
    }

    let u = &r.utilization;
    out.push_str(&format!(
        "\ncurrent shape: {} ({}/month)\nconsumer fan-out {:.2} ({}), replication factor {}\n",
        r.current_shape.shape,
        usd(r.current_shape.monthly_cost_usd),
        r.fanout.value,
        r.fanout.from,
        r.workload.replication_factor
    ));
    out.push_str(&resource_table(&u.resources, Some(u.bottleneck)));
    out.push_str(&format!(
        "ingress {} MB/s is {} of the sustained limit {} MB/s ({} the recommended {} MB/s)\n",
        mbps(u.ingress_mb_per_s),
        pct(u.of_sustained),
        mbps(u.sustained_limit_mb_per_s),
        if u.within_recommended {
            "within"
        } else {
            "ABOVE"
        },
        mbps(u.recommended_limit_mb_per_s)
    ));

    let d = &r.decision;
    out.push_str(&match (&d.target, &d.mechanism) {
        (Some(target), Some(mechanism)) => format!(
            "\ndecision: CHANGE by {mechanism} to {target} (about {:.0} min; data moves planned at {:.1} MB/s per broker, {})\n",
            d.estimated_minutes.unwrap_or(0.0),
            d.move_throttle_mb_per_s,
            d.move_throttle_source
        ),
        _ => "\ndecision: KEEP the current shape\n".to_string(),
    });
    for reason in &d.reasons {
        out.push_str(&format!("  - {reason}\n"));
    }
    out.push_str(&considered_table(
        &d.decision.considered,
        d.decision.plan().is_none(),
        "  ",
    ));
    let h = &r.history;
    if h.source == "prometheus" {
        out.push_str(&format!(
            "  history: {} sample(s) over {:.1} h from Prometheus ({} step(s) with a broker missing left out)\n",
            h.samples, h.hours, h.gaps
        ));
    }
    if let Some(t) = &r.trace {
        out.push_str(&format!(
            "  trace: {} row(s) over {:.1} h{} written to {}; replay them with `kpilot simulate --trace {}`\n",
            t.rows,
            t.hours,
            match (t.egress_rows, t.rows) {
                (0, _) => String::new(),
                (e, n) if e == n => " with the egress".to_owned(),
                (e, _) => format!(" with the egress in {e} of them"),
            },
            t.file.display(),
            t.file.display()
        ));
    }
    if d.reactive_fallback {
        out.push_str(if h.source == "prometheus" {
            "  note: under a day of history, so the policy used its reactive fallback (recent \
             maximum plus margin), not daily seasonality\n"
        } else {
            "  note: one measurement is all the history there is, so the policy used its reactive \
             fallback (recent maximum plus margin), not daily seasonality; with --prometheus, \
             --history 7d forecasts from the daily curve\n"
        });
    }

    if !r.cheapest.is_empty() {
        out.push_str(&format!(
            "\ncheapest shapes that hold {} MB/s:\n",
            mbps(u.ingress_mb_per_s)
        ));
        let mut t = Table::new([
            "shape",
            "monthly cost",
            "recommended limit MB/s",
            "utilization",
        ]);
        for c in &r.cheapest {
            t.row([
                c.shape.clone(),
                usd(c.monthly_cost_usd),
                mbps(c.recommended_limit_mb_per_s),
                pct(c.utilization_at_peak),
            ]);
        }
        out.push_str(&t.render());
    }
    if !r.warnings.is_empty() {
        out.push_str("\nwarnings:\n");
        for w in &r.warnings {
            out.push_str(&format!("  - {w}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_has_the_egress_where_prometheus_has_it_and_replays() {
        let ingress = RateHistory::of_mb_per_s(&[(1_800_000_000.0, 10.0), (1_800_000_300.0, 12.5)]);
        let full = RateHistory::of_mb_per_s(&[(1_800_000_000.0, 20.0), (1_800_000_300.0, 25.0)]);
        let csv = trace_csv(&ingress, Some(&full));
        assert_eq!(
            csv.text,
            "t_seconds,ingress_mb_per_s,egress_mb_per_s\n\
             1800000000,10.000000,20.000000\n\
             1800000300,12.500000,25.000000\n"
        );
        assert!(csv.egress_rows == 2 && csv.missing.is_none());
        let demand = kpilot_sim::parse(&csv.text, "trace.csv").expect("the simulator reads it");
        assert_eq!(demand.minutes(), 10);
        // A step without egress: an empty cell, the other step's egress kept.
        let partial = RateHistory::of_mb_per_s(&[(1_800_000_300.0, 25.0)]);
        let csv = trace_csv(&ingress, Some(&partial));
        assert!(csv.text.starts_with(
            "t_seconds,ingress_mb_per_s,egress_mb_per_s\n1800000000,10.000000,\n1800000300,12.500000,25.000000\n"
        ));
        assert_eq!(csv.egress_rows, 1);
        assert!(
            csv.missing
                .as_deref()
                .is_some_and(|m| m.starts_with("Prometheus has the egress for 1 of the 2 steps")),
            "{:?}",
            csv.missing
        );
        let demand = kpilot_sim::parse(&csv.text, "trace.csv").expect("the simulator reads it");
        assert_eq!(demand.egress, Some(vec![25e6; 10]));
        // None at all: no column.
        let csv = trace_csv(&ingress, Some(&RateHistory::of_mb_per_s(&[])));
        assert!(csv.text.starts_with("t_seconds,ingress_mb_per_s\n"));
        assert!(
            csv.missing
                .is_some_and(|m| m.contains("none of the 2 steps"))
        );
        assert!(trace_csv(&ingress, None).missing.is_none());
    }

    #[test]
    fn shape_files_in_toml_and_json() {
        let dir = std::env::temp_dir().join(format!("kpilot-recommend-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let toml_path = dir.join("shape.toml");
        std::fs::write(
            &toml_path,
            "instance = \"m7g.large\"\nbrokers = 6\nstorage = \"gp3\"\nstorage_throughput = \"250MB/s\"\n",
        )
        .expect("write");
        let s = read_shape_file(&toml_path).expect("toml shape");
        assert_eq!(s.instance.to_string(), "m7g.large");
        assert_eq!(s.brokers, Some(6));
        assert_eq!(s.storage, Some(StorageKind::Gp3));
        assert_eq!(s.storage_throughput, Some(Throughput::from_mb_per_s(250.0)));

        let json_path = dir.join("shape.json");
        std::fs::write(&json_path, r#"{"instance": "m7g.xlarge", "brokers": 3}"#).expect("write");
        let s = read_shape_file(&json_path).expect("json shape");
        assert_eq!(s.instance.to_string(), "m7g.xlarge");

        std::fs::write(&toml_path, "instance = \"m7g.large\"\nbrokerz = 3\n").expect("write");
        let e = read_shape_file(&toml_path).expect_err("unknown key");
        assert!(e.to_string().contains("brokerz"), "{e}");
        std::fs::write(
            &toml_path,
            "instance = \"m7g.large\"\nstorage_throughput = \"fast\"\n",
        )
        .expect("write");
        let e = read_shape_file(&toml_path).expect_err("bad rate");
        assert!(e.to_string().contains("storage_throughput"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A volume's throughput or size given for a shape on local NVMe (or a throughput for
    /// st1, which follows the size) was silently ignored.
    #[test]
    fn storage_settings_the_storage_does_not_use_are_refused() {
        let catalog = Catalog::builtin().expect("catalog");
        let spec =
            |instance: &str, storage, throughput: Option<f64>, size: Option<f64>| ShapeSpec {
                instance: instance.parse().expect("type"),
                brokers: Some(3),
                storage,
                storage_throughput: throughput.map(Throughput::from_mb_per_s),
                storage_size: size.map(|gb| ByteSize::from_bytes(gb * 1e9)),
                file: None,
            };
        let kind = |s: &ShapeSpec| {
            s.storage_kind(catalog.instance(&s.instance).expect("known"))
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            kind(&spec("im4gn.large", None, Some(250.0), None)),
            Err("--storage-throughput sets a network volume's throughput, but im4gn.large uses its local NVMe; drop it, or set --storage gp3 (or io2, st1) if the brokers use network volumes".to_string())
        );
        assert_eq!(
            kind(&spec("im4gn.large", Some(StorageKind::LocalNvme), None, Some(2000.0))),
            Err("--storage-size sets a network volume's size, but --storage local-nvme puts the data on im4gn.large's local NVMe; drop it, or set --storage gp3 (or io2, st1) if the brokers use network volumes".to_string())
        );
        assert_eq!(
            kind(&spec("m7g.large", Some(StorageKind::St1), Some(250.0), None)),
            Err("--storage-throughput sets a gp3 or io2 volume's provisioned throughput, but an st1 volume's throughput follows its size; drop it, and give the volumes' size with --storage-size".to_string())
        );
        let mut from_file = spec("im4gn.large", None, Some(250.0), None);
        from_file.file = Some(PathBuf::from("shape.toml"));
        assert!(
            kind(&from_file)
                .unwrap_err()
                .starts_with("storage_throughput in shape.toml sets a network volume's throughput"),
        );
        assert_eq!(
            kind(&spec(
                "im4gn.large",
                Some(StorageKind::Gp3),
                Some(250.0),
                Some(2000.0)
            )),
            Ok(StorageKind::Gp3)
        );
        assert_eq!(
            kind(&spec("m7g.large", None, None, Some(2000.0))),
            Ok(StorageKind::Gp3)
        );
    }

    #[test]
    fn a_missing_ingress_is_an_error_not_zero() {
        let m = Measurement {
            source: "prometheus http://x".into(),
            window: Span::from_secs(60.0),
            at_unix_secs: 0.0,
            ingress: Reading::missing("Prometheus has no series foo_total"),
            egress: Reading::missing("x"),
            replication: Reading::missing("x"),
            brokers: Vec::new(),
            topics: Vec::new(),
            stored: None,
            consumer_groups: Vec::new(),
            warnings: Vec::new(),
        };
        let e = ingress_of(&m).expect_err("missing");
        assert!(e.to_string().contains("foo_total"), "{e}");
        assert!(e.to_string().contains("never read as zero"), "{e}");
    }

    /// A broker down (partitions name it, Metadata does not list it) was silently left out of
    /// the current shape.
    #[test]
    fn brokers_hosting_replicas_but_not_live_are_named() {
        assert_eq!(missing_brokers_warning(&[], 3, None), None);
        assert_eq!(
            missing_brokers_warning(&[4], 3, None).as_deref(),
            Some(
                "broker(s) 4 host replicas but are not live (down or fenced): the current shape counts only the 3 live broker(s) (give --brokers 4 to evaluate the whole cluster); see `kpilot status`"
            )
        );
        assert!(
            missing_brokers_warning(&[4, 5], 3, Some(5)).is_some_and(|w| w
                .starts_with("broker(s) 4, 5 ")
                && w.contains("the 5 broker(s) given"))
        );
    }
}
