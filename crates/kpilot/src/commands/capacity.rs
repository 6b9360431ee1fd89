//! `kpilot capacity`: evaluates one cluster shape with the capacity model and explains the
//! numbers. No I/O beyond printing (and reading a `--catalog` file).

use clap::Args as ClapArgs;
use kpilot_capacity::{
    Evaluation, Resource, Shape, Storage, StorageKind, Workload, burst, evaluate, storage_needed_gb,
};
use kpilot_units::{ByteSize, InstanceType, Span, Throughput};
use serde::Serialize;

use super::common::{
    CatalogArgs, ResourceUse, WorkloadArgs, fraction, mbps, pct, resource_table, resource_uses,
    unused_storage_flag, usd,
};
use crate::output::{Table, print_json, print_text, usage};

/// Evaluate one cluster shape.
///
/// Prints the sustained limit (the AWS sizing guide's Equation 1), the recommended limit at the
/// target utilization, the bottleneck (storage, storage-link or network), the limit with one
/// broker down (during a roll or a failure), the burst limit and how long credits hold it, and
/// the monthly cost. With --ingress it also shows each resource's utilization at that rate.
///
/// Example: kpilot capacity --instance m7g.large --brokers 3 --consumer-groups 2
/// --storage-throughput 250MB/s
#[derive(Debug, ClapArgs)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Instance type of every broker, e.g. m7g.xlarge.
    #[arg(long, short = 'i', value_name = "TYPE")]
    pub instance: InstanceType,

    /// Number of brokers.
    #[arg(long, short = 'b', value_name = "N")]
    pub brokers: u32,

    /// Consumer groups reading from the head of the log (each reads all of the ingress). The
    /// default, 2, is `size`'s and `simulate`'s (and the sizing guide's), so that a shape
    /// `size` proposes is checked here under the same load.
    #[arg(
        long,
        short = 'c',
        default_value_t = 2,
        value_name = "N",
        conflicts_with = "egress_ratio"
    )]
    pub consumer_groups: u32,

    /// Consumer egress as a multiple of ingress, instead of --consumer-groups (e.g. 2.5).
    #[arg(long, allow_negative_numbers = true, value_name = "RATIO")]
    pub egress_ratio: Option<f64>,

    /// Storage kind: gp3, st1, io2 or local-nvme. Default: local-nvme for types with local
    /// disks (i3, i3en, i4i, im4gn, is4gen), gp3 otherwise.
    #[arg(long, value_name = "KIND")]
    pub storage: Option<StorageKind>,

    /// Provisioned throughput per broker volume (gp3, io2), e.g. 250MB/s or 500MiB/s; for
    /// st1, the volume is sized to reach it. Default: gp3's included 125 MiB/s, io2 1000 MiB/s.
    #[arg(long, value_name = "RATE")]
    pub storage_throughput: Option<Throughput>,

    /// Volume size per broker (EBS), e.g. 2TB. Default: what --retention needs, else 1TB.
    #[arg(long, value_name = "SIZE")]
    pub storage_size: Option<ByteSize>,

    /// Measured sequential write throughput of the local NVMe disks, overriding the catalog's
    /// conservative default (published 4 KiB random-write IOPS x 4 KiB).
    #[arg(long, value_name = "RATE")]
    pub nvme_write_throughput: Option<Throughput>,

    /// Show per-resource load and utilization at this cluster ingress, e.g. 150MB/s.
    #[arg(long, value_name = "RATE", allow_hyphen_values = true)]
    pub ingress: Option<Throughput>,

    /// Retention to check storage against (needs --ingress), e.g. 24h or 7d.
    #[arg(long, value_name = "DURATION", requires = "ingress")]
    pub retention: Option<Span>,

    /// Largest fraction of a disk that may be used for retention.
    #[arg(
        long,
        allow_negative_numbers = true,
        default_value_t = 0.8,
        value_name = "FRACTION",
        value_parser = fraction
    )]
    pub max_disk_fill: f64,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub workload: WorkloadArgs,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub catalog: CatalogArgs,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The JSON document `kpilot capacity --json` prints.
#[derive(Debug, Serialize)]
struct Report {
    instance: String,
    brokers: u32,
    storage: Storage,
    workload: Workload,
    sustained_limit_mb_per_s: f64,
    recommended_limit_mb_per_s: f64,
    bottleneck: Resource,
    limits_by_resource_mb_per_s: Vec<ResourceLimit>,
    broker_capacity_mb_per_s: BrokerCapacityMb,
    one_broker_down_limit_mb_per_s: f64,
    one_broker_down_bottleneck: Option<Resource>,
    one_broker_down_reason: Option<String>,
    burst: Option<BurstReport>,
    monthly_cost_usd: CostReport,
    at_ingress: Option<AtIngress>,
    catalog: String,
}

#[derive(Debug, Serialize)]
struct ResourceLimit {
    resource: Resource,
    limit_mb_per_s: f64,
}

#[derive(Debug, Serialize)]
struct BrokerCapacityMb {
    storage: f64,
    storage_link: Option<f64>,
    network: f64,
}

#[derive(Debug, Serialize)]
struct BurstReport {
    limit_mb_per_s: f64,
    bottleneck: Resource,
    minutes_at_limit: f64,
    /// The resource whose credits run out first at the burst limit (network or storage-link:
    /// the instance's; volumes have none).
    credits_run_out: Option<Resource>,
}

#[derive(Debug, Serialize)]
struct CostReport {
    instances: f64,
    storage: f64,
    total: f64,
}

#[derive(Debug, Serialize)]
struct AtIngress {
    ingress_mb_per_s: f64,
    utilization: f64,
    within_recommended: bool,
    resources: Vec<ResourceUse>,
    burst_hold_minutes: Option<f64>,
    /// The resource whose credits run out first at this ingress, when it is above sustained.
    burst_credits_run_out: Option<Resource>,
    storage_needed_gb_per_broker: Option<f64>,
    storage_available_gb_per_broker: f64,
}

/// Runs `kpilot capacity`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let catalog = args.catalog.load()?;
    let instance = catalog.instance(&args.instance).map_err(usage)?.clone();
    let fanout = match args.egress_ratio {
        Some(r) if !(r.is_finite() && r >= 0.0) => {
            return Err(usage(anyhow::anyhow!(
                "--egress-ratio {r} must be zero or more"
            )));
        }
        Some(r) => r,
        None => f64::from(args.consumer_groups),
    };
    let workload = args.workload.workload(fanout)?;
    if let Some(i) = args.ingress
        && i.is_zero()
    {
        return Err(usage(anyhow::anyhow!(
            "--ingress must be above zero (e.g. --ingress 150MB/s)"
        )));
    }
    if !(args.max_disk_fill > 0.0 && args.max_disk_fill <= 1.0) {
        return Err(usage(anyhow::anyhow!(
            "--max-disk-fill {} must be above 0 and at most 1 (e.g. 0.8 or 80%)",
            args.max_disk_fill
        )));
    }
    if args.brokers == 0 {
        return Err(usage(anyhow::anyhow!("--brokers must be at least 1")));
    }
    let needed_gb = match (args.ingress, args.retention) {
        (Some(i), Some(r)) => Some(storage_needed_gb(
            i,
            r.secs(),
            workload.replication_factor,
            args.brokers,
            args.max_disk_fill,
        )),
        _ => None,
    };
    let kind = args.storage.unwrap_or(if instance.nvme_gb.is_some() {
        StorageKind::LocalNvme
    } else {
        StorageKind::Gp3
    });
    check_storage_flags(&args, &instance, kind, &catalog)?;
    let size_gb = args
        .storage_size
        .map(|s| s.gb())
        .or(needed_gb.map(f64::ceil))
        .unwrap_or(1000.0);
    let storage = match kind {
        StorageKind::Gp3 => Storage::gp3(
            &catalog,
            size_gb.max(catalog.gp3.min_size_gb),
            args.storage_throughput
                .unwrap_or(Throughput::from_mib_per_s(catalog.gp3.baseline_mib_per_s)),
        ),
        StorageKind::Io2 => Storage::io2(
            &catalog,
            size_gb.max(catalog.io2.min_size_gb),
            args.storage_throughput
                .unwrap_or(Throughput::from_mib_per_s(1000.0)),
        ),
        StorageKind::St1 => {
            let for_throughput = args
                .storage_throughput
                .map(|t| Storage::st1_size_for(&catalog, t).ceil())
                .unwrap_or(0.0);
            Storage::st1(
                &catalog,
                size_gb.max(for_throughput).max(catalog.st1.min_size_gb),
            )
        }
        StorageKind::LocalNvme => Storage::local_nvme(&instance, args.nvme_write_throughput),
    }
    .map_err(usage)?;
    let shape = Shape::new(instance, args.brokers, storage, &workload).map_err(usage)?;
    let evaluation = evaluate(&shape, &workload, &catalog);
    let at_ingress = args.ingress.map(|ingress| {
        let utilization = ingress.bytes_per_s() / evaluation.sustained.ingress.bytes_per_s();
        AtIngress {
            ingress_mb_per_s: ingress.mb_per_s(),
            utilization,
            within_recommended: ingress <= evaluation.recommended,
            resources: resource_uses(&shape, &workload, ingress),
            burst_hold_minutes: burst::hold_secs(&shape, &workload, &catalog, ingress)
                .map(|s| s / 60.0),
            burst_credits_run_out: burst::first_to_run_out(&shape, &workload, &catalog, ingress)
                .map(|(r, _)| r),
            storage_needed_gb_per_broker: needed_gb,
            storage_available_gb_per_broker: shape.storage.size_gb,
        }
    });
    let report = build_report(&shape, &workload, &evaluation, at_ingress, &catalog.origin);
    if args.json {
        print_json(&report)
    } else {
        print_text(&render(&shape, &report))
    }
}

/// Refuses the storage flags that `kind` on `instance` does not use: the volume's throughput
/// and size on local NVMe, the NVMe write throughput on a volume.
fn check_storage_flags(
    args: &Args,
    instance: &kpilot_capacity::Instance,
    kind: StorageKind,
    catalog: &kpilot_capacity::Catalog,
) -> anyhow::Result<()> {
    let name = &instance.name;
    if kind == StorageKind::LocalNvme {
        let why = match args.storage {
            Some(_) => format!("--storage local-nvme puts the data on {name}'s local NVMe"),
            None => format!("{name} uses its local NVMe"),
        };
        let instead = "pass --storage gp3 to evaluate a gp3 volume instead";
        if args.storage_throughput.is_some() {
            return Err(unused_storage_flag(
                "--storage-throughput",
                "a network volume's throughput",
                &why,
                instead,
            ));
        }
        if args.storage_size.is_some() {
            let fixed = instance
                .nvme_gb
                .map(|gb| format!(" ({gb:.0} GB per broker, fixed by the instance type)"))
                .unwrap_or_default();
            return Err(unused_storage_flag(
                "--storage-size",
                "a network volume's size",
                &format!("{why}{fixed}"),
                instead,
            ));
        }
    } else if args.nvme_write_throughput.is_some() {
        let (why, instead) = if instance.nvme_gb.is_some() {
            (
                format!("--storage {kind} puts the data on {kind} volumes"),
                "drop it, or pass --storage local-nvme".to_string(),
            )
        } else {
            (
                format!("{name} has no local NVMe (it uses {kind} volumes)"),
                format!(
                    "drop it, or pick a type with local NVMe ({})",
                    catalog.families_with_nvme().join(", ")
                ),
            )
        };
        return Err(unused_storage_flag(
            "--nvme-write-throughput",
            "the local NVMe disks' write throughput",
            &why,
            &instead,
        ));
    }
    Ok(())
}

fn build_report(
    shape: &Shape,
    workload: &Workload,
    e: &Evaluation,
    at_ingress: Option<AtIngress>,
    catalog: &str,
) -> Report {
    Report {
        instance: shape.instance.name.to_string(),
        brokers: shape.brokers,
        storage: shape.storage,
        workload: workload.clone(),
        sustained_limit_mb_per_s: e.sustained.ingress.mb_per_s(),
        recommended_limit_mb_per_s: e.recommended.mb_per_s(),
        bottleneck: e.sustained.bottleneck,
        limits_by_resource_mb_per_s: e
            .sustained
            .by_resource
            .iter()
            .map(|&(resource, t)| ResourceLimit {
                resource,
                limit_mb_per_s: t.mb_per_s(),
            })
            .collect(),
        broker_capacity_mb_per_s: BrokerCapacityMb {
            storage: e.broker_capacity.storage.mb_per_s(),
            storage_link: e.broker_capacity.storage_link.map(Throughput::mb_per_s),
            network: e.broker_capacity.network.mb_per_s(),
        },
        one_broker_down_limit_mb_per_s: e.one_broker_down.ingress.mb_per_s(),
        one_broker_down_bottleneck: e.one_broker_down.bottleneck,
        one_broker_down_reason: e.one_broker_down.reason.clone(),
        burst: e.burst.as_ref().map(|b| BurstReport {
            limit_mb_per_s: b.limit.ingress.mb_per_s(),
            bottleneck: b.limit.bottleneck,
            minutes_at_limit: b.minutes_at_limit,
            credits_run_out: b.credits_run_out,
        }),
        monthly_cost_usd: CostReport {
            instances: e.monthly_cost.instances,
            storage: e.monthly_cost.storage,
            total: e.monthly_cost.total,
        },
        at_ingress,
        catalog: catalog.to_string(),
    }
}

/// Whose credits `resource`'s are: the instance's network or EBS-link credits (volumes have
/// none), e.g. "the network credits of m7g.large".
fn credits_of(resource: Resource, shape: &Shape) -> String {
    let what = match resource {
        Resource::Network => "network",
        Resource::StorageLink => "EBS-link",
        Resource::Storage => "storage",
    };
    format!("the {what} credits of {}", shape.instance.name)
}

fn render(shape: &Shape, r: &Report) -> String {
    let w = &r.workload;
    let mut out = format!(
        "{}\nworkload: replication factor {}, min.insync.replicas {}, consumer fan-out {}, target utilization {}\n\n",
        shape.label(),
        w.replication_factor,
        w.min_insync_replicas,
        w.consumer_fanout,
        pct(w.target_utilization),
    );
    let n = shape.brokers;
    let rf = w.replication_factor;
    let mut t = Table::new([
        "resource",
        "per broker MB/s",
        "load per broker",
        "cluster limit MB/s",
    ]);
    for l in &r.limits_by_resource_mb_per_s {
        let (cap, formula) = match l.resource {
            Resource::Storage => (r.broker_capacity_mb_per_s.storage, format!("t x {rf}/{n}")),
            Resource::StorageLink => (
                r.broker_capacity_mb_per_s.storage_link.unwrap_or(0.0),
                format!("t x {rf}/{n}"),
            ),
            Resource::Network => (
                r.broker_capacity_mb_per_s.network,
                format!("t x ({} + {rf} - 1)/{n}", w.consumer_fanout),
            ),
        };
        let marker = if l.resource == r.bottleneck {
            "  <- bottleneck"
        } else {
            ""
        };
        t.row([
            l.resource.to_string(),
            mbps(cap),
            formula,
            format!("{}{marker}", mbps(l.limit_mb_per_s)),
        ]);
    }
    out.push_str(&t.render());
    out.push('\n');
    let mut s = Table::new(["", "MB/s", "note"]);
    s.row([
        "sustained limit".to_string(),
        mbps(r.sustained_limit_mb_per_s),
        format!(
            "min of the cluster limits above (bottleneck: {})",
            r.bottleneck
        ),
    ]);
    s.row([
        "recommended limit".to_string(),
        mbps(r.recommended_limit_mb_per_s),
        format!("{} of sustained", pct(w.target_utilization)),
    ]);
    let one_note = match (&r.one_broker_down_reason, r.one_broker_down_bottleneck) {
        (Some(reason), _) => reason.clone(),
        (None, Some(b)) => format!("during a roll or a failure (bottleneck: {b})"),
        (None, None) => String::new(),
    };
    s.row([
        "one broker down".to_string(),
        mbps(r.one_broker_down_limit_mb_per_s),
        one_note,
    ]);
    match &r.burst {
        Some(b) => s.row([
            "burst limit".to_string(),
            mbps(b.limit_mb_per_s),
            match b.credits_run_out {
                Some(credits) if b.minutes_at_limit.is_finite() => format!(
                    "for ~{:.0} min on full credits, until {} run out (bottleneck meanwhile: {})",
                    b.minutes_at_limit,
                    credits_of(credits, shape),
                    b.bottleneck
                ),
                _ => format!(
                    "without draining any credits (bottleneck: {})",
                    b.bottleneck
                ),
            },
        ]),
        None => s.row([
            "burst limit".to_string(),
            mbps(r.sustained_limit_mb_per_s),
            "no burst credits help this shape".to_string(),
        ]),
    }
    out.push_str(&s.render());
    if let Some(a) = &r.at_ingress {
        out.push_str(&format!(
            "\nat {} MB/s ingress: {} of sustained ({})\n",
            mbps(a.ingress_mb_per_s),
            pct(a.utilization),
            if a.within_recommended {
                "within the recommended limit"
            } else {
                "ABOVE the recommended limit"
            }
        ));
        out.push_str(&resource_table(&a.resources, None));
        if a.utilization > 1.0 {
            match (a.burst_hold_minutes, a.burst_credits_run_out) {
                (Some(m), Some(credits)) if m > 0.0 => out.push_str(&format!(
                    "above sustained: full burst credits hold it for ~{m:.0} min, until {} run out\n",
                    credits_of(credits, shape)
                )),
                (Some(m), None) if m > 0.0 => out.push_str(&format!(
                    "above sustained: full burst credits hold it for ~{m:.0} min\n"
                )),
                _ => out.push_str("above sustained and beyond what burst credits can serve\n"),
            }
        }
        if let Some(needed) = a.storage_needed_gb_per_broker {
            out.push_str(&format!(
                "retention needs {:.0} GB per broker; {:.0} GB available{}\n",
                needed,
                a.storage_available_gb_per_broker,
                if needed > a.storage_available_gb_per_broker {
                    " (NOT ENOUGH)"
                } else {
                    ""
                }
            ));
        }
    }
    out.push_str(&format!(
        "\nmonthly cost: {} ({} instances + {} storage)\n",
        usd(r.monthly_cost_usd.total),
        usd(r.monthly_cost_usd.instances),
        usd(r.monthly_cost_usd.storage)
    ));
    if shape.storage.throughput_is_default {
        out.push_str(
            "note: local NVMe write throughput is the catalog's conservative default; pass --nvme-write-throughput with a measured value\n",
        );
    }
    out
}
