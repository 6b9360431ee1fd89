//! The comparison a `kpilot simulate` run prints: the predictive policy against the cheapest
//! static shape for the demand's peak and against the reactive threshold baseline, all three on
//! the same demand and the same cluster model, all starting from the static peak shape. Pure.

use kpilot_capacity::{BrokerCapacity, Catalog, Limit, LoadFactors, Shape, Workload};
use kpilot_policy::{ReactiveSettings, Settings, Timestamp, all_shapes, holds, hourly_cost};
use kpilot_units::Throughput;
use serde::Serialize;

use crate::engine::{Controller, Run, RunSummary, SimConfig, SimError, run};
use crate::setup::ClusterSetup;
use crate::trace::Demand;

/// The three runs and the headline figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The demand's origin.
    pub origin: String,
    /// Minutes simulated.
    pub minutes: usize,
    /// Minutes of history the controllers knew at the start (see [`Demand::history`]).
    pub history_minutes: usize,
    /// Peak ingress, MB/s.
    pub peak_mb_per_s: f64,
    /// Mean ingress, MB/s.
    pub mean_mb_per_s: f64,
    /// The static peak shape.
    pub static_shape: String,
    /// Volume size per broker, GB; `None` with local disks (their size comes with the
    /// instance type).
    pub volume_gb: Option<f64>,
    /// The predictive policy.
    pub policy: RunSummary,
    /// The static peak shape.
    pub static_peak: RunSummary,
    /// The reactive baseline.
    pub reactive: RunSummary,
    /// `1 - policy cost / static peak cost` (instances and volumes).
    pub savings_ratio: f64,
    /// The same on instance cost alone.
    pub instance_savings_ratio: f64,
    /// `1 - reactive cost / static peak cost`.
    pub reactive_savings_ratio: f64,
    /// A lower bound, not a policy: each minute the cheapest allowed shape that holds that
    /// minute's demand and data (instant, free transitions and a perfect forecast), USD.
    pub oracle_cost_usd: f64,
    /// `1 - oracle cost / static peak cost`: the most any policy could save here.
    pub oracle_savings_ratio: f64,
}

/// The three runs in full (minutes and actions, for the report).
#[derive(Debug, Clone, PartialEq)]
pub struct Runs {
    /// The headline figures.
    pub comparison: Comparison,
    /// The predictive policy's run.
    pub policy: Run,
    /// The static run.
    pub static_peak: Run,
    /// The reactive run.
    pub reactive: Run,
}

/// The data on disk at the end of each minute (the local retention's worth of writes, all
/// replicas), bytes; before the start the rates are the history's (as at the start where it
/// does not reach), as the engine does.
fn stored_series(demand: &Demand, setup: &ClusterSetup) -> Vec<f64> {
    let rf = f64::from(setup.replication_factor);
    let window = (setup.retention.minutes().round() as usize).max(1);
    let before: Vec<f64> = demand
        .before_start(window)
        .iter()
        .map(|d| d * rf * 60.0)
        .collect();
    let bytes: Vec<f64> = demand.ingress.iter().map(|d| d * rf * 60.0).collect();
    let mut sum: f64 = before.iter().sum();
    bytes
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let leaving = if i >= window {
                bytes[i - window]
            } else {
                before[i]
            };
            sum += b - leaving;
            sum
        })
        .collect()
}

/// The most data the demand ever keeps on disk (the local retention's worth of writes, all
/// replicas), bytes.
pub fn max_stored_bytes(demand: &Demand, setup: &ClusterSetup) -> f64 {
    let window = (setup.retention.minutes().round() as usize).max(1);
    let rf = f64::from(setup.replication_factor);
    let at_start = demand.before_start(window).iter().sum::<f64>() * rf * 60.0;
    stored_series(demand, setup)
        .into_iter()
        .fold(at_start, f64::max)
}

/// The consumer fan-out for the whole demand: with egress, the highest egress / ingress of its
/// minutes (what the static peak shape is sized for, and the reference the oracle scales each
/// minute's own from; the setup's consumer groups do not count then); else the setup's.
pub fn demand_fanout(demand: &Demand, setup: &ClusterSetup) -> f64 {
    demand
        .egress
        .as_ref()
        .map(|e| {
            e.iter()
                .zip(&demand.ingress)
                .filter(|(_, i)| **i > 0.0)
                .map(|(e, i)| e / i)
                .fold(0.0, f64::max)
        })
        .unwrap_or(setup.consumer_fanout)
}

/// The cheapest allowed shape whose recommended limit (target x sustained) covers the demand's
/// peak and whose one-broker-down limit still carries it — the `kpilot size` criteria — and
/// whose disks hold the data at the maximum fill.
pub fn static_peak_shape(
    demand: &Demand,
    catalog: &Catalog,
    setup: &ClusterSetup,
    target_utilization: f64,
) -> Result<(Shape, f64), SimError> {
    if setup.min_insync_replicas >= setup.replication_factor {
        return Err(SimError::NoReplicaToSpare {
            replication_factor: setup.replication_factor,
            min_insync_replicas: setup.min_insync_replicas,
        });
    }
    let peak = demand.peak();
    let fanout = demand_fanout(demand, setup);
    let workload = Workload::new(
        setup.replication_factor,
        setup.min_insync_replicas,
        fanout,
        target_utilization,
    )?;
    let stored = max_stored_bytes(demand, setup);
    let volume_gb = setup.volume_gb(catalog, stored);
    let none = || SimError::NoStaticShape {
        peak,
        data_gb: stored / 1e9,
        volume_gb,
    };
    let family = setup
        .constraints
        .families
        .first()
        .cloned()
        .unwrap_or_else(|| "m7g".to_string());
    let first = catalog
        .instances()
        .find(|i| i.name.family().eq_ignore_ascii_case(family.trim()))
        .ok_or_else(none)?;
    let template = setup.shape(catalog, first, 3, volume_gb)?;
    let mut best: Option<(f64, Shape)> = None;
    for shape in all_shapes(&template, catalog, &setup.constraints, &workload) {
        let cap = BrokerCapacity::sustained(&shape);
        let up = Limit::compute(&cap, &LoadFactors::all_up(shape.brokers, &workload)).ingress;
        let one_down = LoadFactors::one_down(shape.brokers, &workload)
            .map(|f| Limit::compute(&cap, &f).ingress)
            .unwrap_or(Throughput::ZERO);
        let fits = stored / f64::from(shape.brokers) / setup.constraints.max_disk_fill
            <= shape.storage.size_gb * 1e9;
        if up.bytes_per_s() * target_utilization >= peak.bytes_per_s() && one_down >= peak && fits {
            let cost = hourly_cost(&shape, catalog);
            if best.as_ref().is_none_or(|(c, _)| cost < *c) {
                best = Some((cost, shape));
            }
        }
    }
    best.map(|(_, s)| (s, volume_gb)).ok_or_else(none)
}

/// The oracle lower bound (see [`Comparison::oracle_cost_usd`]), USD.
pub fn oracle_cost(
    demand: &Demand,
    catalog: &Catalog,
    setup: &ClusterSetup,
    static_shape: &Shape,
    target_utilization: f64,
) -> Result<f64, SimError> {
    let workload = Workload::new(
        setup.replication_factor,
        setup.min_insync_replicas,
        demand_fanout(demand, setup),
        target_utilization,
    )?;
    // (cost per hour, ingress held, bytes the disks hold at the maximum fill)
    let mut shapes: Vec<(f64, f64, f64)> =
        all_shapes(static_shape, catalog, &setup.constraints, &workload)
            .iter()
            .map(|s| {
                (
                    hourly_cost(s, catalog),
                    holds(s, &workload).bytes_per_s(),
                    s.storage.size_gb
                        * 1e9
                        * f64::from(s.brokers)
                        * setup.constraints.max_disk_fill,
                )
            })
            .collect();
    shapes.sort_by(|a, b| a.0.total_cmp(&b.0));
    let strongest = shapes
        .iter()
        .map(|s| s.0)
        .fold(hourly_cost(static_shape, catalog), f64::max);
    let stored = stored_series(demand, setup);
    let mut total = 0.0;
    for (m, &d) in demand.ingress.iter().enumerate() {
        // With egress, the minute's own fan-out changes what a shape holds.
        let scale = match &demand.egress {
            Some(e) if d > 0.0 => {
                let f = e[m] / d;
                let w = Workload {
                    consumer_fanout: f,
                    ..workload.clone()
                };
                holds(static_shape, &w).bytes_per_s() / holds(static_shape, &workload).bytes_per_s()
            }
            _ => 1.0,
        };
        let cost = shapes
            .iter()
            .find(|(_, h, bytes)| h * scale >= d && *bytes >= stored[m])
            .map_or(strongest, |s| s.0);
        total += cost / 60.0;
    }
    Ok(total)
}

/// Runs the policy, the static peak shape and the reactive baseline on `demand`.
pub fn compare(
    demand: &Demand,
    catalog: &Catalog,
    setup: &ClusterSetup,
    settings: &Settings,
    reactive: &ReactiveSettings,
) -> Result<Runs, SimError> {
    compare_explaining(demand, catalog, setup, settings, reactive, None)
}

/// [`compare`], keeping the policy's first decision at or after `explain` in
/// `Runs::policy.explained`.
pub fn compare_explaining(
    demand: &Demand,
    catalog: &Catalog,
    setup: &ClusterSetup,
    settings: &Settings,
    reactive: &ReactiveSettings,
    explain: Option<Timestamp>,
) -> Result<Runs, SimError> {
    let (static_shape, volume_gb) =
        static_peak_shape(demand, catalog, setup, settings.target_utilization)?;
    let config = SimConfig {
        catalog,
        setup,
        settings,
        reactive,
        explain,
    };
    let policy = run(demand, &config, Controller::Predictive, &static_shape)?;
    let static_peak = run(demand, &config, Controller::Static, &static_shape)?;
    let reactive = run(demand, &config, Controller::Reactive, &static_shape)?;
    let oracle = oracle_cost(
        demand,
        catalog,
        setup,
        &static_shape,
        settings.target_utilization,
    )?;
    // Costs summed in different orders differ in the last bits: equal costs save 0, not
    // -1.8e-15 (which the summary printed as "-0%").
    let ratio = |a: f64, b: f64| {
        let r = if b > 0.0 { 1.0 - a / b } else { 0.0 };
        if r.abs() < 1e-9 { 0.0 } else { r }
    };
    let comparison = Comparison {
        origin: demand.origin.clone(),
        minutes: demand.minutes(),
        history_minutes: demand.history.len(),
        peak_mb_per_s: demand.peak().mb_per_s(),
        mean_mb_per_s: demand.mean().mb_per_s(),
        static_shape: static_shape.label(),
        volume_gb: static_shape
            .storage
            .kind
            .is_network_attached()
            .then_some(volume_gb),
        savings_ratio: ratio(policy.summary.cost_usd, static_peak.summary.cost_usd),
        instance_savings_ratio: ratio(
            policy.summary.instance_cost_usd,
            static_peak.summary.instance_cost_usd,
        ),
        reactive_savings_ratio: ratio(reactive.summary.cost_usd, static_peak.summary.cost_usd),
        oracle_cost_usd: oracle,
        oracle_savings_ratio: ratio(oracle, static_peak.summary.cost_usd),
        policy: policy.summary.clone(),
        static_peak: static_peak.summary.clone(),
        reactive: reactive.summary.clone(),
    };
    Ok(Runs {
        comparison,
        policy,
        static_peak,
        reactive,
    })
}
