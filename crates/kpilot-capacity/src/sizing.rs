//! The search for the cheapest cluster shapes that hold a workload: every allowed instance
//! type, storage option and broker count is evaluated with the model; shapes that qualify are
//! ranked by monthly cost, and the cheaper shapes that did not qualify are kept with the reason.
//! Pure.

use std::collections::BTreeSet;

use kpilot_units::{Span, Throughput};
use serde::Serialize;
use thiserror::Error;

use crate::catalog::{Catalog, CatalogError, Instance};
use crate::model::{
    BrokerCapacity, Evaluation, Limit, LoadFactors, ModelError, MonthlyCost, Resource, Shape,
    Workload, evaluate, storage_needed_gb,
};
use crate::storage::{Storage, StorageError, StorageKind};

/// The most brokers a cluster may be planned with (sizing, the policy, the operator): every
/// count up to it is a candidate, so a typo'd bound must not make a search of billions.
pub const MAX_BROKERS: u32 = 1000;

/// Why a sizing request cannot be answered.
#[derive(Debug, Error)]
pub enum SizingError {
    /// The peak ingress is zero.
    #[error("peak ingress must be above zero (e.g. --ingress 200MB/s)")]
    ZeroIngress,
    /// The average ingress exceeds the peak.
    #[error("average ingress {average} is above the peak ingress {peak}")]
    AverageAbovePeak {
        /// The average given.
        average: Throughput,
        /// The peak given.
        peak: Throughput,
    },
    /// A fill ratio outside (0, 1].
    #[error("maximum disk fill {0} must be above 0 and at most 1 (e.g. 0.8 or 80%)")]
    MaxFillOutOfRange(f64),
    /// Zero availability zones.
    #[error("zones must be at least 1")]
    ZeroZones,
    /// No qualifying shape asked for.
    #[error("--top 0 shows no shape: ask for at least 1")]
    ZeroTop,
    /// More brokers than any plan considers.
    #[error(
        "--max-brokers {0} is above {MAX_BROKERS}, the most brokers kpilot plans a cluster for"
    )]
    TooManyBrokers(u32),
    /// The broker count bounds exclude everything.
    #[error("--min-brokers {min} is above --max-brokers {max}")]
    BrokerBoundsInverted {
        /// The minimum.
        min: u32,
        /// The maximum.
        max: u32,
    },
    /// An unknown family or size in the constraints.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The workload is invalid.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A fixed storage throughput that no volume type allows.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// No broker count within the bounds is a multiple of the zones.
    #[error(
        "no broker count between {min} and {max} is a multiple of {zones} zones and at least the replication factor {rf}; raise --max-brokers to {fewest} or lower --zones"
    )]
    NoBrokerCount {
        /// Fewest brokers (the replication factor at least).
        min: u32,
        /// Most brokers.
        max: u32,
        /// Zones.
        zones: u32,
        /// Replication factor.
        rf: u16,
        /// The fewest brokers that would do.
        fewest: u32,
    },
    /// The allowed families have none of the allowed sizes.
    #[error(
        "no instance type matches both --families {} and --sizes {}: {}; allow another size or family",
        .families.join(","),
        .sizes.join(","),
        .available.join("; ")
    )]
    NoInstanceType {
        /// The families allowed.
        families: Vec<String>,
        /// The sizes allowed.
        sizes: Vec<String>,
        /// Each allowed family with its sizes, e.g. `m7g comes in large, xlarge`.
        available: Vec<String>,
    },
    /// No allowed storage kind can be built on any allowed instance type.
    #[error("no shape can be evaluated: {}", .reasons.join("; and "))]
    NoStorageOption {
        /// Why each allowed storage kind offers nothing, with what to change.
        reasons: Vec<String>,
    },
    /// A storage flag that none of the allowed storage options uses.
    #[error("{flag} sets {sets}, but {why}; {instead}")]
    UnusedStorageFlag {
        /// The flag, e.g. `--storage-throughput`.
        flag: &'static str,
        /// What it sets.
        sets: &'static str,
        /// Why nothing allowed uses it.
        why: String,
        /// What to do.
        instead: String,
    },
}

/// How consumers read: a number of consumer groups reading from the head of the log, or an
/// egress rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fanout {
    /// Consumer groups, each reading all of the ingress.
    ConsumerGroups(u32),
    /// Total consumer egress at the peak.
    Egress(Throughput),
}

/// A sizing request.
#[derive(Debug, Clone, Serialize)]
pub struct SizeRequest {
    /// Peak cluster ingress to hold.
    pub peak_ingress: Throughput,
    /// Average ingress, for retention storage (default: the peak).
    pub average_ingress: Option<Throughput>,
    /// Consumer fan-out.
    pub fanout: Fanout,
    /// How long data is kept; `None` ignores storage capacity.
    pub retention: Option<Span>,
    /// Largest fraction of a disk that may be used.
    pub max_disk_fill: f64,
    /// Replication factor.
    pub replication_factor: u16,
    /// `min.insync.replicas`.
    pub min_insync_replicas: u16,
    /// Fraction of the sustained limit to run at, at most.
    pub target_utilization: f64,
    /// Availability zones: the broker count must be a multiple.
    pub zones: u32,
    /// Allowed families (empty: all).
    pub families: Vec<String>,
    /// Allowed sizes, e.g. `xlarge` (empty: all).
    pub sizes: Vec<String>,
    /// Allowed storage kinds (empty: all).
    pub storage_kinds: Vec<StorageKind>,
    /// Fewest brokers (default: the larger of the replication factor and the zone count).
    pub min_brokers: Option<u32>,
    /// Most brokers (at most [`MAX_BROKERS`]).
    pub max_brokers: u32,
    /// Require the peak to fit with one broker down.
    pub broker_loss_spare: bool,
    /// A fixed EBS throughput per broker (gp3, io2) instead of searching levels.
    pub storage_throughput: Option<Throughput>,
    /// Override for local NVMe write throughput.
    pub nvme_write: Option<Throughput>,
    /// How many qualifying shapes to return.
    pub top: usize,
    /// How many rejected cheaper shapes to return.
    pub rejected: usize,
}

impl SizeRequest {
    /// A request with the product's defaults: r = 3, min ISR 2, 2 consumer groups, 80% target,
    /// 3 zones, 80% disk fill, up to 60 brokers, one-broker-down spare on.
    pub fn new(peak_ingress: Throughput) -> Self {
        Self {
            peak_ingress,
            average_ingress: None,
            fanout: Fanout::ConsumerGroups(2),
            retention: None,
            max_disk_fill: 0.8,
            replication_factor: 3,
            min_insync_replicas: 2,
            target_utilization: 0.8,
            zones: 3,
            families: Vec::new(),
            sizes: Vec::new(),
            storage_kinds: Vec::new(),
            min_brokers: None,
            max_brokers: 60,
            broker_loss_spare: true,
            storage_throughput: None,
            nvme_write: None,
            top: 5,
            rejected: 5,
        }
    }

    /// The consumer fan-out factor `c` of the model.
    pub fn consumer_fanout(&self) -> f64 {
        match self.fanout {
            Fanout::ConsumerGroups(n) => f64::from(n),
            Fanout::Egress(e) => {
                if self.peak_ingress.is_zero() {
                    0.0
                } else {
                    e.bytes_per_s() / self.peak_ingress.bytes_per_s()
                }
            }
        }
    }
}

/// A constraint a shape failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "constraint", rename_all = "kebab-case")]
pub enum Violation {
    /// The recommended limit (target utilization) is below the peak.
    Throughput {
        /// The recommended limit.
        recommended: Throughput,
        /// The peak.
        peak: Throughput,
        /// What limits it.
        bottleneck: Resource,
    },
    /// With one broker down the sustained limit is below the peak.
    BrokerLoss {
        /// The one-broker-down limit.
        limit: Throughput,
        /// The peak.
        peak: Throughput,
        /// Why, when the limit is zero for a structural reason.
        reason: Option<String>,
    },
    /// The disks cannot hold the retention.
    StorageCapacity {
        /// GB needed per broker (at the maximum fill).
        needed_gb: f64,
        /// GB available per broker.
        available_gb: f64,
    },
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::Throughput {
                recommended,
                peak,
                bottleneck,
            } => write!(
                f,
                "recommended limit {recommended} < peak {peak} (bottleneck: {bottleneck})"
            ),
            Violation::BrokerLoss {
                limit,
                peak,
                reason,
            } => match reason {
                Some(r) => write!(f, "one broker down: {r}"),
                None => write!(f, "one broker down: limit {limit} < peak {peak}"),
            },
            Violation::StorageCapacity {
                needed_gb,
                available_gb,
            } => write!(
                f,
                "retention needs {needed_gb:.0} GB per broker, only {available_gb:.0} GB available"
            ),
        }
    }
}

/// A shape that qualifies.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// The shape.
    pub shape: Shape,
    /// The model's evaluation.
    pub evaluation: Evaluation,
    /// Peak / sustained limit.
    pub utilization_at_peak: f64,
    /// GB per broker the retention needs, if a retention was given.
    pub storage_needed_gb: Option<f64>,
}

/// A shape cheaper than the best candidate that failed a constraint.
#[derive(Debug, Clone, Serialize)]
pub struct Rejection {
    /// The shape.
    pub shape: Shape,
    /// Its monthly cost.
    pub monthly_cost: f64,
    /// Its sustained limit.
    pub sustained_limit: Throughput,
    /// Every constraint it failed.
    pub violations: Vec<Violation>,
}

/// The answer to a sizing request.
#[derive(Debug, Clone, Serialize)]
pub struct SizeReport {
    /// Qualifying shapes, cheapest first: for each instance type and storage option, the
    /// fewest brokers that qualify.
    pub candidates: Vec<Candidate>,
    /// Shapes cheaper than the best candidate that failed, most expensive (closest) first.
    pub rejected_cheaper: Vec<Rejection>,
    /// How many shapes were evaluated.
    pub shapes_evaluated: usize,
    /// When nothing qualifies: the shapes that came closest (highest sustained limit).
    pub closest_failures: Vec<Rejection>,
}

/// Finds the cheapest shapes for a request.
pub fn size(catalog: &Catalog, req: &SizeRequest) -> Result<SizeReport, SizingError> {
    if req.peak_ingress.is_zero() {
        return Err(SizingError::ZeroIngress);
    }
    if let Some(avg) = req.average_ingress
        && avg > req.peak_ingress
    {
        return Err(SizingError::AverageAbovePeak {
            average: avg,
            peak: req.peak_ingress,
        });
    }
    if !(req.max_disk_fill > 0.0 && req.max_disk_fill <= 1.0) {
        return Err(SizingError::MaxFillOutOfRange(req.max_disk_fill));
    }
    if req.zones == 0 {
        return Err(SizingError::ZeroZones);
    }
    if req.top == 0 {
        return Err(SizingError::ZeroTop);
    }
    let workload = Workload::new(
        req.replication_factor,
        req.min_insync_replicas,
        req.consumer_fanout(),
        req.target_utilization,
    )?;
    for f in &req.families {
        catalog.family(f)?;
    }
    for s in &req.sizes {
        catalog.check_size_name(s)?;
    }
    let min_brokers = req
        .min_brokers
        .unwrap_or(0)
        .max(u32::from(req.replication_factor))
        .max(1);
    if req.max_brokers > MAX_BROKERS {
        return Err(SizingError::TooManyBrokers(req.max_brokers));
    }
    if min_brokers > req.max_brokers {
        return Err(SizingError::BrokerBoundsInverted {
            min: min_brokers,
            max: req.max_brokers,
        });
    }
    if let Some(t) = req.storage_throughput {
        // Validate once up front so a bad value is an error, not an empty answer.
        if t.is_zero() {
            return Err(StorageError::ZeroThroughput.into());
        }
    }
    let allowed = |k: StorageKind| req.storage_kinds.is_empty() || req.storage_kinds.contains(&k);
    let kinds_flag = || {
        req.storage_kinds
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    if req.storage_throughput.is_some()
        && !StorageKind::ALL
            .into_iter()
            .any(|k| k.is_network_attached() && allowed(k))
    {
        return Err(SizingError::UnusedStorageFlag {
            flag: "--storage-throughput",
            sets: "a network volume's throughput",
            why: format!("--storage {} allows only local NVMe disks", kinds_flag()),
            instead: "drop it, or allow volumes too (e.g. --storage gp3,local-nvme)".to_string(),
        });
    }
    if req.nvme_write.is_some() && !allowed(StorageKind::LocalNvme) {
        return Err(SizingError::UnusedStorageFlag {
            flag: "--nvme-write-throughput",
            sets: "the local NVMe disks' write throughput",
            why: format!("--storage {} allows no local NVMe", kinds_flag()),
            instead: "drop it, or add local-nvme to --storage".to_string(),
        });
    }
    let counts: Vec<u32> = (min_brokers..=req.max_brokers)
        .filter(|n| n % req.zones == 0)
        .collect();
    if counts.is_empty() {
        return Err(SizingError::NoBrokerCount {
            min: min_brokers,
            max: req.max_brokers,
            zones: req.zones,
            rf: req.replication_factor,
            fewest: min_brokers.div_ceil(req.zones) * req.zones,
        });
    }

    let family_ok = |i: &Instance| {
        req.families.is_empty()
            || req
                .families
                .iter()
                .any(|f| f.trim().eq_ignore_ascii_case(i.name.family()))
    };
    let size_ok = |i: &Instance| {
        req.sizes.is_empty()
            || req
                .sizes
                .iter()
                .any(|s| s.trim().eq_ignore_ascii_case(i.name.size()))
    };
    let instances: Vec<&Instance> = catalog
        .instances()
        .filter(|i| family_ok(i) && size_ok(i))
        .collect();
    if instances.is_empty() {
        return Err(SizingError::NoInstanceType {
            families: req.families.clone(),
            sizes: req.sizes.clone(),
            available: catalog
                .families
                .iter()
                .filter(|f| f.instances.iter().any(family_ok))
                .map(|f| {
                    let sizes: Vec<&str> = f.instances.iter().map(|i| i.name.size()).collect();
                    format!("{} comes in {}", f.name, sizes.join(", "))
                })
                .collect(),
        });
    }
    if instances
        .iter()
        .all(|i| storage_options(catalog, i, req).is_empty())
    {
        return Err(SizingError::NoStorageOption {
            reasons: no_option_reasons(catalog, &instances, req),
        });
    }
    if req.nvme_write.is_some() && instances.iter().all(|i| i.nvme_gb.is_none()) {
        return Err(SizingError::UnusedStorageFlag {
            flag: "--nvme-write-throughput",
            sets: "the local NVMe disks' write throughput",
            why: format!(
                "no allowed instance type has local NVMe ({})",
                family_list(&instances)
            ),
            instead: format!(
                "drop it, or allow a family with local NVMe in --families ({})",
                catalog.families_with_nvme().join(", ")
            ),
        });
    }

    // Pass 1, allocation-free: every (instance, storage option, broker count) as a `Trial`,
    // stopping at the first count that qualifies for each option.
    let mut trials: Vec<Trial> = Vec::new();
    let mut qualified: Vec<Trial> = Vec::new();
    for (index, instance) in instances.iter().enumerate() {
        for option in storage_options(catalog, instance, req) {
            for &n in &counts {
                let needed = req.retention.map(|r| {
                    storage_needed_gb(
                        req.average_ingress.unwrap_or(req.peak_ingress),
                        r.secs(),
                        req.replication_factor,
                        n,
                        req.max_disk_fill,
                    )
                });
                let Some((storage, capacity_violation)) = option.build(catalog, instance, needed)
                else {
                    continue;
                };
                let capacity = BrokerCapacity::of_parts(instance, &storage);
                let (sustained, _) =
                    Limit::ingress_only(&capacity, &LoadFactors::all_up(n, &workload));
                let one_down = match LoadFactors::one_down(n, &workload) {
                    Ok(f) => Limit::ingress_only(&capacity, &f).0,
                    Err(_) => Throughput::ZERO,
                };
                let recommended = Throughput::from_bytes_per_s(
                    sustained.bytes_per_s() * workload.target_utilization,
                );
                let fails = recommended < req.peak_ingress
                    || (req.broker_loss_spare && one_down < req.peak_ingress)
                    || capacity_violation.is_some();
                let trial = Trial {
                    instance: index,
                    brokers: n,
                    storage,
                    needed_gb: needed,
                    capacity_violation,
                    cost: MonthlyCost::of_parts(instance, n, &storage, catalog).total,
                    sustained,
                };
                if fails {
                    trials.push(trial);
                } else {
                    qualified.push(trial);
                    // More brokers of the same option only cost more.
                    break;
                }
            }
        }
    }
    let evaluated = trials.len() + qualified.len();
    qualified.sort_by(|a, b| a.cost.total_cmp(&b.cost).then(a.brokers.cmp(&b.brokers)));
    // Different search levels can land on the same volume (an st1 sized for retention, say).
    let mut seen = BTreeSet::new();
    qualified.retain(|t| {
        seen.insert((
            t.instance,
            t.brokers,
            t.storage.kind,
            t.storage.size_gb.to_bits(),
            t.storage.throughput.bytes_per_s().to_bits(),
        ))
    });

    // Pass 2: full evaluations, only for what is reported.
    let materialize = |t: &Trial| -> (Shape, Evaluation) {
        let shape = Shape {
            instance: instances[t.instance].clone(),
            brokers: t.brokers,
            storage: t.storage,
        };
        let evaluation = evaluate(&shape, &workload, catalog);
        (shape, evaluation)
    };
    let reject = |t: &Trial| -> Rejection {
        let (shape, evaluation) = materialize(t);
        let violations = check(req, &evaluation, t.capacity_violation.clone());
        Rejection {
            monthly_cost: t.cost,
            sustained_limit: t.sustained,
            shape,
            violations,
        }
    };
    let candidates: Vec<Candidate> = qualified
        .iter()
        .take(req.top)
        .map(|t| {
            let (shape, evaluation) = materialize(t);
            Candidate {
                utilization_at_peak: req.peak_ingress.bytes_per_s()
                    / evaluation.sustained.ingress.bytes_per_s(),
                shape,
                evaluation,
                storage_needed_gb: t.needed_gb,
            }
        })
        .collect();
    let (rejected_cheaper, closest_failures) = match qualified.first() {
        Some(best) => {
            let mut cheaper: Vec<&Trial> = trials.iter().filter(|t| t.cost < best.cost).collect();
            cheaper.sort_by(|a, b| b.cost.total_cmp(&a.cost));
            (
                dedup_by_option(&cheaper, req.rejected)
                    .into_iter()
                    .map(reject)
                    .collect(),
                Vec::new(),
            )
        }
        None => {
            let mut all: Vec<&Trial> = trials.iter().collect();
            all.sort_by(|a, b| {
                b.sustained
                    .bytes_per_s()
                    .total_cmp(&a.sustained.bytes_per_s())
                    .then(a.cost.total_cmp(&b.cost))
            });
            (
                Vec::new(),
                dedup_by_option(&all, req.rejected.max(3))
                    .into_iter()
                    .map(reject)
                    .collect(),
            )
        }
    };
    Ok(SizeReport {
        candidates,
        rejected_cheaper,
        shapes_evaluated: evaluated,
        closest_failures,
    })
}

/// One evaluated shape in the search's fast pass: indexes and numbers, no allocation.
#[derive(Debug, Clone)]
struct Trial {
    instance: usize,
    brokers: u32,
    storage: Storage,
    needed_gb: Option<f64>,
    capacity_violation: Option<Violation>,
    cost: f64,
    sustained: Throughput,
}

/// Keeps the first trial per (instance type, storage kind), up to `limit` (none for 0).
fn dedup_by_option<'a>(trials: &[&'a Trial], limit: usize) -> Vec<&'a Trial> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for &t in trials {
        if out.len() >= limit {
            break;
        }
        if seen.insert((t.instance, t.storage.kind)) {
            out.push(t);
        }
    }
    out
}

fn check(
    req: &SizeRequest,
    e: &Evaluation,
    capacity_violation: Option<Violation>,
) -> Vec<Violation> {
    let mut v = Vec::new();
    if e.recommended < req.peak_ingress {
        v.push(Violation::Throughput {
            recommended: e.recommended,
            peak: req.peak_ingress,
            bottleneck: e.sustained.bottleneck,
        });
    }
    if req.broker_loss_spare && e.one_broker_down.ingress < req.peak_ingress {
        v.push(Violation::BrokerLoss {
            limit: e.one_broker_down.ingress,
            peak: req.peak_ingress,
            reason: e.one_broker_down.reason.clone(),
        });
    }
    v.extend(capacity_violation);
    v
}

/// One storage configuration to try on an instance; the volume size follows from the broker
/// count (retention) when it is built.
#[derive(Debug, Clone, Copy)]
enum StorageOption {
    Gp3(Throughput),
    Io2(Throughput),
    /// st1 sized for at least this baseline throughput (and the retention).
    St1(Throughput),
    LocalNvme(Option<Throughput>),
}

/// Smallest EBS volume the search provisions when no retention is given, GB.
const DEFAULT_VOLUME_GB: f64 = 1000.0;

impl StorageOption {
    /// The storage for one broker needing `needed_gb` (if known), and a capacity violation when
    /// it cannot hold it; `None` when the option is impossible.
    fn build(
        self,
        catalog: &Catalog,
        instance: &Instance,
        needed_gb: Option<f64>,
    ) -> Option<(Storage, Option<Violation>)> {
        let ebs_size = |min: f64, max: f64| -> (f64, Option<Violation>) {
            let want = needed_gb
                .map(f64::ceil)
                .unwrap_or(DEFAULT_VOLUME_GB)
                .max(min);
            if want > max {
                (
                    max,
                    Some(Violation::StorageCapacity {
                        needed_gb: needed_gb.unwrap_or(want),
                        available_gb: max,
                    }),
                )
            } else {
                (want, None)
            }
        };
        match self {
            StorageOption::Gp3(t) => {
                let (gb, v) = ebs_size(catalog.gp3.min_size_gb, catalog.gp3.max_size_gb);
                Storage::gp3(catalog, gb, t).ok().map(|s| (s, v))
            }
            StorageOption::Io2(t) => {
                let (gb, v) = ebs_size(catalog.io2.min_size_gb, catalog.io2.max_size_gb);
                Storage::io2(catalog, gb, t).ok().map(|s| (s, v))
            }
            StorageOption::St1(t) => {
                let for_throughput = Storage::st1_size_for(catalog, t).ceil();
                let (gb, v) = ebs_size(
                    catalog.st1.min_size_gb.max(for_throughput),
                    catalog.st1.max_size_gb,
                );
                Storage::st1(catalog, gb).ok().map(|s| (s, v))
            }
            StorageOption::LocalNvme(w) => {
                let s = Storage::local_nvme(instance, w).ok()?;
                let v = needed_gb
                    .filter(|&n| n > s.size_gb)
                    .map(|n| Violation::StorageCapacity {
                        needed_gb: n,
                        available_gb: s.size_gb,
                    });
                Some((s, v))
            }
        }
    }
}

/// The families of `instances`, comma separated, in catalog order.
fn family_list(instances: &[&Instance]) -> String {
    let mut families: Vec<&str> = Vec::new();
    for i in instances {
        if !families.contains(&i.name.family()) {
            families.push(i.name.family());
        }
    }
    families.join(", ")
}

/// Why each allowed storage kind offers no option on any of `instances` (when none does), each
/// with what to change.
fn no_option_reasons(catalog: &Catalog, instances: &[&Instance], req: &SizeRequest) -> Vec<String> {
    let allowed = |k: StorageKind| req.storage_kinds.is_empty() || req.storage_kinds.contains(&k);
    let mut reasons = Vec::new();
    for kind in StorageKind::ALL.into_iter().filter(|&k| allowed(k)) {
        let max_mib = match kind {
            StorageKind::Gp3 => catalog.gp3.max_mib_per_s,
            StorageKind::St1 => catalog.st1.max_mib_per_s,
            StorageKind::Io2 => catalog.io2.max_mib_per_s,
            StorageKind::LocalNvme => {
                let families = family_list(instances);
                let verb = if families.contains(',') {
                    "have"
                } else {
                    "has"
                };
                reasons.push(format!(
                    "{families} {verb} no local NVMe storage; families with local NVMe: {}: add one to --families, or allow volumes (--storage gp3, st1 or io2)",
                    catalog.families_with_nvme().join(", ")
                ));
                continue;
            }
        };
        if let Some(t) = req.storage_throughput {
            reasons.push(format!(
                "--storage-throughput {t} is above {kind}'s maximum of {}: lower it, or allow another --storage",
                Throughput::from_mib_per_s(max_mib)
            ));
        }
    }
    if reasons.is_empty() {
        reasons.push(format!(
            "no allowed storage option fits the allowed instance types ({})",
            family_list(instances)
        ));
    }
    reasons
}

fn storage_options(
    catalog: &Catalog,
    instance: &Instance,
    req: &SizeRequest,
) -> Vec<StorageOption> {
    let allowed = |k: StorageKind| req.storage_kinds.is_empty() || req.storage_kinds.contains(&k);
    let mut out = Vec::new();
    let levels = |search: &[f64], max: f64| -> Vec<Throughput> {
        match req.storage_throughput {
            Some(t) if t.mib_per_s() <= max * (1.0 + 1e-9) => vec![t],
            Some(_) => Vec::new(),
            None => search
                .iter()
                .map(|&m| Throughput::from_mib_per_s(m))
                .collect(),
        }
    };
    if allowed(StorageKind::Gp3) {
        out.extend(
            levels(&catalog.gp3.search_mib_per_s, catalog.gp3.max_mib_per_s)
                .into_iter()
                .map(StorageOption::Gp3),
        );
    }
    if allowed(StorageKind::St1) {
        let st1_levels = match req.storage_throughput {
            Some(t) => vec![t],
            None => [40.0, 250.0, catalog.st1.max_mib_per_s]
                .iter()
                .map(|&m| Throughput::from_mib_per_s(m))
                .collect(),
        };
        out.extend(
            st1_levels
                .into_iter()
                .filter(|t| t.mib_per_s() <= catalog.st1.max_mib_per_s * (1.0 + 1e-9))
                .map(StorageOption::St1),
        );
    }
    if allowed(StorageKind::Io2) {
        out.extend(
            levels(&catalog.io2.search_mib_per_s, catalog.io2.max_mib_per_s)
                .into_iter()
                .map(StorageOption::Io2),
        );
    }
    if allowed(StorageKind::LocalNvme) && instance.nvme_gb.is_some() {
        out.push(StorageOption::LocalNvme(req.nvme_write));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_shape_for_200_mb_per_s_and_explains_cheaper_rejections() {
        let c = Catalog::builtin().unwrap();
        let mut req = SizeRequest::new(Throughput::from_mb_per_s(200.0));
        req.retention = Some(Span::from_hours(24.0));
        let report = size(&c, &req).unwrap();
        assert!(!report.candidates.is_empty());
        let best = &report.candidates[0];
        assert!(best.evaluation.recommended >= req.peak_ingress);
        assert_eq!(best.shape.brokers % 3, 0);
        for r in &report.rejected_cheaper {
            assert!(r.monthly_cost < best.evaluation.monthly_cost.total);
            assert!(!r.violations.is_empty());
        }
        assert!(
            report.shapes_evaluated > 1000,
            "{}",
            report.shapes_evaluated
        );
    }

    /// `kpilot size --show-rejected 0` listed every rejected shape (47 at 200 MB/s): the
    /// limit was only compared for equality after a shape was kept.
    #[test]
    fn show_rejected_zero_lists_no_rejected_shape() {
        let c = Catalog::builtin().unwrap();
        let mut req = SizeRequest::new(Throughput::from_mb_per_s(200.0));
        req.rejected = 0;
        let report = size(&c, &req).unwrap();
        assert!(!report.candidates.is_empty());
        assert!(
            report.rejected_cheaper.is_empty(),
            "{}",
            report.rejected_cheaper.len()
        );
        req.rejected = 2;
        assert_eq!(size(&c, &req).unwrap().rejected_cheaper.len(), 2);
    }

    /// When the constraints leave nothing to evaluate, the error says why, instead of an empty
    /// "no shape qualifies. The closest:" table.
    #[test]
    fn constraints_that_leave_nothing_to_evaluate_say_why() {
        let c = Catalog::builtin().unwrap();
        let err = |f: &dyn Fn(&mut SizeRequest)| {
            let mut req = SizeRequest::new(Throughput::from_mb_per_s(100.0));
            f(&mut req);
            size(&c, &req).unwrap_err().to_string()
        };
        assert_eq!(
            err(&|r| {
                r.families = vec!["m7g".into()];
                r.storage_kinds = vec![StorageKind::LocalNvme];
            }),
            "no shape can be evaluated: m7g has no local NVMe storage; families with local NVMe: i3, i3en, i4i, im4gn, is4gen: add one to --families, or allow volumes (--storage gp3, st1 or io2)"
        );
        assert_eq!(
            err(&|r| {
                r.zones = 7;
                r.max_brokers = 6;
            }),
            "no broker count between 3 and 6 is a multiple of 7 zones and at least the replication factor 3; raise --max-brokers to 7 or lower --zones"
        );
        assert_eq!(
            err(&|r| {
                r.storage_kinds = vec![StorageKind::Gp3];
                r.storage_throughput = Some(Throughput::from_mb_per_s(5000.0));
            }),
            "no shape can be evaluated: --storage-throughput 5000 MB/s is above gp3's maximum of 1049 MB/s: lower it, or allow another --storage"
        );
        assert_eq!(
            err(&|r| {
                r.families = vec!["m7g".into()];
                r.sizes = vec!["24xlarge".into()];
            }),
            "no instance type matches both --families m7g and --sizes 24xlarge: m7g comes in large, xlarge, 2xlarge, 4xlarge, 8xlarge, 12xlarge, 16xlarge; allow another size or family"
        );
    }

    /// Storage flags that no allowed storage option uses are refused, not ignored.
    #[test]
    fn storage_flags_nothing_allowed_uses_are_refused() {
        let c = Catalog::builtin().unwrap();
        let mut req = SizeRequest::new(Throughput::from_mb_per_s(100.0));
        req.storage_kinds = vec![StorageKind::LocalNvme];
        req.storage_throughput = Some(Throughput::from_mb_per_s(250.0));
        assert_eq!(
            size(&c, &req).unwrap_err().to_string(),
            "--storage-throughput sets a network volume's throughput, but --storage local-nvme allows only local NVMe disks; drop it, or allow volumes too (e.g. --storage gp3,local-nvme)"
        );
        let mut req = SizeRequest::new(Throughput::from_mb_per_s(100.0));
        req.storage_kinds = vec![StorageKind::Gp3];
        req.nvme_write = Some(Throughput::from_mb_per_s(1000.0));
        assert_eq!(
            size(&c, &req).unwrap_err().to_string(),
            "--nvme-write-throughput sets the local NVMe disks' write throughput, but --storage gp3 allows no local NVMe; drop it, or add local-nvme to --storage"
        );
        let mut req = SizeRequest::new(Throughput::from_mb_per_s(100.0));
        req.families = vec!["m7g".into(), "c7g".into()];
        req.nvme_write = Some(Throughput::from_mb_per_s(1000.0));
        assert_eq!(
            size(&c, &req).unwrap_err().to_string(),
            "--nvme-write-throughput sets the local NVMe disks' write throughput, but no allowed instance type has local NVMe (m7g, c7g); drop it, or allow a family with local NVMe in --families (i3, i3en, i4i, im4gn, is4gen)"
        );
    }

    /// Families and sizes match in any case, as instance types do.
    #[test]
    fn families_and_sizes_match_in_any_case() {
        let c = Catalog::builtin().unwrap();
        let mut req = SizeRequest::new(Throughput::from_mb_per_s(100.0));
        req.families = vec!["M7G".into()];
        req.sizes = vec!["XLarge".into()];
        let report = size(&c, &req).unwrap();
        assert!(!report.candidates.is_empty());
        for c in &report.candidates {
            assert_eq!(c.shape.instance.name.to_string(), "m7g.xlarge");
        }
    }

    #[test]
    fn nothing_qualifies_reports_the_closest_shapes() {
        let c = Catalog::builtin().unwrap();
        let mut req = SizeRequest::new(Throughput::from_mb_per_s(100_000.0));
        req.max_brokers = 6;
        let report = size(&c, &req).unwrap();
        assert!(report.candidates.is_empty());
        assert!(!report.closest_failures.is_empty());
    }

    #[test]
    fn bad_requests_are_refused() {
        let c = Catalog::builtin().unwrap();
        let req = SizeRequest::new(Throughput::ZERO);
        assert!(matches!(size(&c, &req), Err(SizingError::ZeroIngress)));
        let mut req = SizeRequest::new(Throughput::from_mb_per_s(10.0));
        req.families = vec!["m7gg".into()];
        let err = size(&c, &req).unwrap_err().to_string();
        assert!(err.contains("did you mean m7g"), "{err}");
        let mut req = SizeRequest::new(Throughput::from_mb_per_s(10.0));
        req.min_brokers = Some(9);
        req.max_brokers = 6;
        assert!(matches!(
            size(&c, &req),
            Err(SizingError::BrokerBoundsInverted { .. })
        ));
        let mut req = SizeRequest::new(Throughput::from_mb_per_s(10.0));
        req.top = 0;
        assert!(matches!(size(&c, &req), Err(SizingError::ZeroTop)));
        // 4000000000 once took 10 s and gigabytes listing the counts.
        let mut req = SizeRequest::new(Throughput::from_mb_per_s(10.0));
        req.max_brokers = MAX_BROKERS + 1;
        let err = size(&c, &req).unwrap_err();
        assert!(matches!(err, SizingError::TooManyBrokers(1001)), "{err}");
        assert_eq!(
            err.to_string(),
            "--max-brokers 1001 is above 1000, the most brokers kpilot plans a cluster for"
        );
        req.max_brokers = MAX_BROKERS;
        size(&c, &req).expect("up to 1000 brokers");
    }
}
