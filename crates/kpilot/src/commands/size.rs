//! `kpilot size`: finds the cheapest cluster shapes for a workload and explains why cheaper
//! shapes were rejected. No I/O beyond printing (and reading a `--catalog` file).

use clap::Args as ClapArgs;
use kpilot_capacity::{Candidate, Fanout, Rejection, SizeReport, SizeRequest, StorageKind, size};
use kpilot_units::{Span, Throughput};
use serde::Serialize;

use super::common::{CatalogArgs, WorkloadArgs, fraction, mbps, name_list, pct, usd};
use crate::output::{Table, print_json, print_text, usage};

/// Find the cheapest cluster shapes that hold a workload.
///
/// Every instance type of the catalog, every storage option (gp3 and io2 throughput levels,
/// st1, local NVMe) and every broker count that is a multiple of --zones is evaluated. A shape
/// qualifies when its recommended limit (target utilization x sustained limit) covers the peak,
/// it still covers the peak with one broker down (unless --no-broker-loss-spare), its disks hold
/// the retention, and it has at least replication-factor brokers. Shapes are ranked by monthly
/// cost (instances, volume GB, provisioned throughput).
///
/// Example: kpilot size --ingress 200MB/s --consumer-groups 2 --retention 24h
#[derive(Debug, ClapArgs)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Peak cluster ingress (producer traffic, before replication), e.g. 200MB/s or 1.5GB/s.
    #[arg(long, value_name = "RATE", allow_hyphen_values = true)]
    pub ingress: Throughput,

    /// Average ingress, used for retention storage (default: the peak).
    #[arg(long, value_name = "RATE")]
    pub average_ingress: Option<Throughput>,

    /// Consumer groups reading from the head of the log (each reads all of the ingress).
    #[arg(
        long,
        short = 'c',
        default_value_t = 2,
        value_name = "N",
        conflicts_with = "egress"
    )]
    pub consumer_groups: u32,

    /// Peak consumer egress, instead of --consumer-groups, e.g. 500MB/s.
    #[arg(long, value_name = "RATE")]
    pub egress: Option<Throughput>,

    /// How long data is kept, e.g. 24h or 7d; disks must hold it at --max-disk-fill.
    #[arg(long, value_name = "DURATION")]
    pub retention: Option<Span>,

    /// Largest fraction of a disk that may be used.
    #[arg(
        long,
        allow_negative_numbers = true,
        default_value_t = 0.8,
        value_name = "FRACTION",
        value_parser = fraction
    )]
    pub max_disk_fill: f64,

    /// Availability zones; the broker count must be a multiple of it.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub zones: u32,

    /// Allowed instance families, comma separated (default: all), e.g. m7g,im4gn.
    #[arg(long, value_delimiter = ',', value_name = "FAMILY,...")]
    pub families: Vec<String>,

    /// Allowed instance sizes, comma separated (default: all), e.g. xlarge,2xlarge.
    #[arg(long, value_delimiter = ',', value_name = "SIZE,...")]
    pub sizes: Vec<String>,

    /// Allowed storage kinds, comma separated: gp3, st1, io2, local-nvme (default: all).
    #[arg(long, value_delimiter = ',', value_name = "KIND,...")]
    pub storage: Vec<StorageKind>,

    /// A fixed provisioned throughput per broker volume (gp3, io2; st1 is sized to reach it)
    /// instead of searching the catalog's levels, e.g. 250MB/s.
    #[arg(long, value_name = "RATE")]
    pub storage_throughput: Option<Throughput>,

    /// Measured sequential write throughput of local NVMe disks, overriding the catalog's
    /// conservative default.
    #[arg(long, value_name = "RATE")]
    pub nvme_write_throughput: Option<Throughput>,

    /// Fewest brokers (default: the replication factor, rounded up to a multiple of --zones).
    #[arg(long, value_name = "N")]
    pub min_brokers: Option<u32>,

    /// Most brokers (at most 1000).
    #[arg(long, default_value_t = 60, value_name = "N")]
    pub max_brokers: u32,

    /// Do not require the peak to fit with one broker down (during a roll or a failure).
    #[arg(long)]
    pub no_broker_loss_spare: bool,

    /// How many qualifying shapes to show (at least 1).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub top: usize,

    /// How many rejected cheaper shapes to show (0: none).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub show_rejected: usize,

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

/// One shape as `kpilot size --json` prints it.
#[derive(Debug, Serialize)]
struct ShapeOut {
    instance: String,
    brokers: u32,
    storage: kpilot_capacity::Storage,
    monthly_cost_usd: f64,
    instances_cost_usd: f64,
    storage_cost_usd: f64,
    sustained_limit_mb_per_s: f64,
    recommended_limit_mb_per_s: f64,
    bottleneck: kpilot_capacity::Resource,
    one_broker_down_limit_mb_per_s: f64,
    burst_limit_mb_per_s: Option<f64>,
    utilization_at_peak: f64,
    storage_needed_gb_per_broker: Option<f64>,
}

#[derive(Debug, Serialize)]
struct RejectedOut {
    instance: String,
    brokers: u32,
    storage: kpilot_capacity::Storage,
    monthly_cost_usd: f64,
    sustained_limit_mb_per_s: f64,
    reasons: Vec<String>,
    violations: Vec<kpilot_capacity::Violation>,
}

#[derive(Debug, Serialize)]
struct Out<'a> {
    request: &'a SizeRequest,
    consumer_fanout: f64,
    candidates: Vec<ShapeOut>,
    rejected_cheaper: Vec<RejectedOut>,
    closest_failures: Vec<RejectedOut>,
    shapes_evaluated: usize,
    catalog: String,
}

/// Runs `kpilot size`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let catalog = args.catalog.load()?;
    let workload = &args.workload;
    let mut req = SizeRequest::new(args.ingress);
    req.average_ingress = args.average_ingress;
    req.fanout = match args.egress {
        Some(e) => Fanout::Egress(e),
        None => Fanout::ConsumerGroups(args.consumer_groups),
    };
    req.retention = args.retention;
    req.max_disk_fill = args.max_disk_fill;
    req.replication_factor = workload.replication_factor;
    req.min_insync_replicas = workload.min_isr();
    req.target_utilization = workload.target_utilization;
    req.zones = args.zones;
    req.families = name_list("--families", "family", &args.families)?;
    req.sizes = name_list("--sizes", "size", &args.sizes)?;
    req.storage_kinds = args.storage.clone();
    req.min_brokers = args.min_brokers;
    req.max_brokers = args.max_brokers;
    req.broker_loss_spare = !args.no_broker_loss_spare;
    req.storage_throughput = args.storage_throughput;
    req.nvme_write = args.nvme_write_throughput;
    req.top = args.top;
    req.rejected = args.show_rejected;
    let report = size(&catalog, &req).map_err(usage)?;
    if args.json {
        return print_json(&Out {
            consumer_fanout: req.consumer_fanout(),
            request: &req,
            candidates: report.candidates.iter().map(shape_out).collect(),
            rejected_cheaper: report.rejected_cheaper.iter().map(rejected_out).collect(),
            closest_failures: report.closest_failures.iter().map(rejected_out).collect(),
            shapes_evaluated: report.shapes_evaluated,
            catalog: catalog.origin.clone(),
        });
    }
    print_text(&render(&req, &report))?;
    if report.candidates.is_empty() {
        anyhow::bail!(
            "no shape qualifies: relax a constraint (more --max-brokers, more families or sizes, --no-broker-loss-spare) or lower the peak"
        );
    }
    Ok(())
}

fn shape_out(c: &Candidate) -> ShapeOut {
    let e = &c.evaluation;
    ShapeOut {
        instance: c.shape.instance.name.to_string(),
        brokers: c.shape.brokers,
        storage: c.shape.storage,
        monthly_cost_usd: e.monthly_cost.total,
        instances_cost_usd: e.monthly_cost.instances,
        storage_cost_usd: e.monthly_cost.storage,
        sustained_limit_mb_per_s: e.sustained.ingress.mb_per_s(),
        recommended_limit_mb_per_s: e.recommended.mb_per_s(),
        bottleneck: e.sustained.bottleneck,
        one_broker_down_limit_mb_per_s: e.one_broker_down.ingress.mb_per_s(),
        burst_limit_mb_per_s: e.burst.as_ref().map(|b| b.limit.ingress.mb_per_s()),
        utilization_at_peak: c.utilization_at_peak,
        storage_needed_gb_per_broker: c.storage_needed_gb,
    }
}

fn rejected_out(r: &Rejection) -> RejectedOut {
    RejectedOut {
        instance: r.shape.instance.name.to_string(),
        brokers: r.shape.brokers,
        storage: r.shape.storage,
        monthly_cost_usd: r.monthly_cost,
        sustained_limit_mb_per_s: r.sustained_limit.mb_per_s(),
        reasons: r.violations.iter().map(ToString::to_string).collect(),
        violations: r.violations.clone(),
    }
}

fn render(req: &SizeRequest, report: &SizeReport) -> String {
    let fanout = match req.fanout {
        Fanout::ConsumerGroups(n) => format!("{n} consumer groups"),
        Fanout::Egress(e) => format!("egress {e} (fan-out {:.2})", req.consumer_fanout()),
    };
    let mut out = format!(
        "workload: peak {}, {}, replication factor {}, min.insync.replicas {}, {} zones{}\n",
        req.peak_ingress,
        fanout,
        req.replication_factor,
        req.min_insync_replicas,
        req.zones,
        req.retention
            .map(|r| format!(", retention {r}"))
            .unwrap_or_default()
    );
    out.push_str(&format!(
        "rules: recommended limit ({} of sustained) >= peak{}{}; {} shapes evaluated\n\n",
        pct(req.target_utilization),
        if req.broker_loss_spare {
            "; one broker down >= peak"
        } else {
            ""
        },
        if req.retention.is_some() {
            format!("; retention fits at {} disk fill", pct(req.max_disk_fill))
        } else {
            String::new()
        },
        report.shapes_evaluated
    ));
    if report.candidates.is_empty() {
        out.push_str("no shape qualifies. The closest:\n");
        out.push_str(&rejected_table(&report.closest_failures));
        return out;
    }
    let mut t = Table::new([
        "#",
        "shape",
        "storage",
        "$/month",
        "sustained MB/s",
        "recommended",
        "1 down",
        "bottleneck",
        "peak util",
    ]);
    for (i, c) in report.candidates.iter().enumerate() {
        let e = &c.evaluation;
        t.row([
            (i + 1).to_string(),
            format!("{} x {}", c.shape.brokers, c.shape.instance.name),
            c.shape.storage.to_string(),
            usd(e.monthly_cost.total),
            mbps(e.sustained.ingress.mb_per_s()),
            mbps(e.recommended.mb_per_s()),
            mbps(e.one_broker_down.ingress.mb_per_s()),
            e.sustained.bottleneck.to_string(),
            pct(c.utilization_at_peak),
        ]);
    }
    out.push_str(&t.render());
    if !report.rejected_cheaper.is_empty() {
        out.push_str("\ncheaper shapes rejected:\n");
        out.push_str(&rejected_table(&report.rejected_cheaper));
    }
    out
}

fn rejected_table(rows: &[Rejection]) -> String {
    let mut t = Table::new(["shape", "storage", "$/month", "why not"]);
    for r in rows {
        t.row([
            format!("{} x {}", r.shape.brokers, r.shape.instance.name),
            r.shape.storage.to_string(),
            usd(r.monthly_cost),
            r.violations
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        ]);
    }
    t.render()
}
