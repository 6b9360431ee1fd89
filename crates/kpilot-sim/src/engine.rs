//! The minute-by-minute cluster model with a controller in the loop. Pure: no clock, no I/O.
//!
//! Every minute:
//!
//! 1. At each decision interval, when no transition runs, the controller decides, seeing the
//!    demand of the minutes before (never the current one): the predictive policy
//!    ([`kpilot_policy::decide()`]), the reactive baseline, or nothing (static).
//! 2. The brokers of the current shape — or of the running transition's phase: one broker down,
//!    mixed instance types, joining or leaving brokers — carry the minute's demand, spread
//!    evenly, so the weakest serving broker sets the limits (the policy crate's
//!    [`serving_limit`]). Transfers of the phase (catch-up, rebuild, reassignment) run at their
//!    planned throttle, but only on capacity the clients leave, and add their load.
//! 3. Limits: *sustained* (baseline network, EBS link and volume throughput), *target*
//!    (target utilization x sustained), and *available* (what the network and EBS-link credit
//!    buckets allow this minute, see [`kpilot_capacity::burst`]). The cluster serves
//!    `min(demand, available)`; the buckets drain above baseline and refill below.
//! 4. Cost: every broker's instance price and volume, per minute, by the type it runs (during a
//!    roll, broker by broker).
//! 5. The transition advances: a restart for its fixed time, a transfer by its bytes at its
//!    rate (a throttled one at most [`ClusterSetup::move_rate`] per receiving broker); when
//!    the last phase ends the new shape is in place. The predictive policy learns from what it
//!    measures: each restart's time and each throttled transfer's share of its planned rate
//!    ([`ClusterSetup::learn_restart`], [`ClusterSetup::learn_moves`]).

use kpilot_capacity::{
    BrokerCapacity, Catalog, CreditBucket, Resource, Shape, StorageError, Workload,
    burst::broker_buckets,
};
use kpilot_policy::transition::{
    phase_factors, serving_limit, spare_transfer_rate, transfer_loads,
};
use kpilot_policy::{
    Action, BrokerRole, ClusterState, Decision, DecisionInput, DemandHistory, FanoutSource,
    HistoryError, Mechanism, PhaseKind, Plan, PolicyError, ReactiveSettings, Reason, Sample,
    Settings, Slot, Timestamp, broker_capacity, decide, reactive_decide,
};
use kpilot_units::{ByteSize, Throughput};
use serde::Serialize;
use thiserror::Error;

use crate::setup::ClusterSetup;
use crate::trace::Demand;

/// Who changes the shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Controller {
    /// The predictive policy.
    Predictive,
    /// The reactive threshold baseline.
    Reactive,
    /// Nobody: the shape never changes.
    Static,
}

impl Controller {
    /// The name used in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Controller::Predictive => "policy",
            Controller::Reactive => "reactive",
            Controller::Static => "static-peak",
        }
    }
}

/// Why a simulation could not run.
#[derive(Debug, Error)]
pub enum SimError {
    /// The demand has no minute.
    #[error("the demand is empty: nothing to simulate")]
    EmptyDemand,
    /// The controller refused to decide.
    #[error("the {controller} controller failed at {at}: {source}")]
    Decide {
        /// The controller.
        controller: &'static str,
        /// When.
        at: Timestamp,
        /// Why.
        source: PolicyError,
    },
    /// A demand sample was refused.
    #[error("demand sample refused: {0}")]
    History(#[from] HistoryError),
    /// A storage of the setup is impossible.
    #[error("invalid storage in the setup: {0}")]
    Storage(#[from] StorageError),
    /// The workload parameters are invalid.
    #[error("invalid workload: {0}")]
    Workload(#[from] kpilot_capacity::ModelError),
    /// `min.insync.replicas` leaves no replica to spare: with a broker down (a roll, a
    /// failure) no partition takes writes, so no shape holds any load with one broker down.
    #[error(
        "min.insync.replicas {min_insync_replicas} with replication factor {replication_factor} leaves no replica to spare: with one broker down (every roll takes one out) no partition takes writes; use min.insync.replicas {} or a replication factor of {}",
        replication_factor - 1,
        min_insync_replicas + 1
    )]
    NoReplicaToSpare {
        /// The replication factor.
        replication_factor: u16,
        /// `min.insync.replicas`.
        min_insync_replicas: u16,
    },
    /// No allowed shape holds the demand's peak and its data.
    #[error(
        "no allowed shape holds the peak of {peak} (with one broker down) and the {data_gb:.0} GB the retention keeps on volumes of {volume_gb:.0} GB; allow more brokers or larger families, or larger volumes"
    )]
    NoStaticShape {
        /// The peak.
        peak: Throughput,
        /// The most data the demand keeps on the brokers, GB.
        data_gb: f64,
        /// The volume size per broker, GB.
        volume_gb: f64,
    },
}

/// Everything a run needs apart from the demand and the controller.
#[derive(Debug, Clone, Copy)]
pub struct SimConfig<'a> {
    /// Instance types and prices.
    pub catalog: &'a Catalog,
    /// The cluster's fixed facts.
    pub setup: &'a ClusterSetup,
    /// The predictive policy's settings (the decision interval and transition model are used by
    /// every controller).
    pub settings: &'a Settings,
    /// The reactive baseline's thresholds.
    pub reactive: &'a ReactiveSettings,
    /// When set, the predictive run keeps its first decision made at or after this time, with
    /// every shape it considered ([`Run::explained`]).
    pub explain: Option<Timestamp>,
}

/// One simulated minute (rates in MB/s).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Minute {
    /// Start of the minute, seconds.
    pub t: f64,
    /// Demand (ingress).
    pub demand: f32,
    /// Sustained limit of the serving brokers (transfers included).
    pub sustained: f32,
    /// Target limit.
    pub target: f32,
    /// Ingress served.
    pub served: f32,
    /// The latest forecast for this minute (predictive only; NaN otherwise).
    pub forecast: f32,
    /// Cost rate, USD per hour.
    pub usd_per_hour: f32,
    /// Brokers running (paid for).
    pub brokers: u16,
    /// Brokers down (out of the ISR).
    pub down: u8,
    /// Whether a transition runs.
    pub in_transition: bool,
}

/// One shape change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActionRecord {
    /// When it started, seconds.
    pub started: f64,
    /// When it finished, seconds (`None`: still running at the end).
    pub finished: Option<f64>,
    /// The shape before.
    pub from: String,
    /// The shape after.
    pub to: String,
    /// How.
    pub mechanism: Mechanism,
    /// The plan's estimate, seconds.
    pub estimated_secs: f64,
    /// The decision's reasons.
    pub reasons: Vec<String>,
    /// The reason that says why it moved: the first one but the caveat that a shape is kept
    /// only up to where a roll out of it is safe (which many decisions list first).
    pub why: String,
}

/// The figures of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// The controller.
    pub controller: &'static str,
    /// The shape the run started with.
    pub initial_shape: String,
    /// Minutes simulated.
    pub minutes: usize,
    /// Total cost, USD (instances and volumes).
    pub cost_usd: f64,
    /// Instance cost, USD.
    pub instance_cost_usd: f64,
    /// Volume cost, USD.
    pub storage_cost_usd: f64,
    /// Minutes with demand above the target limit.
    pub minutes_over_target: usize,
    /// Minutes with demand above the sustained limit (served, or not, by burst credits).
    pub minutes_over_sustained: usize,
    /// Minutes with demand above what sustained capacity plus burst credits could serve.
    pub minutes_unserved: usize,
    /// Data that could not be produced in time, GB.
    pub unserved_gb: f64,
    /// Transitions started.
    pub scaling_actions: usize,
    /// Minutes with a transition running.
    pub transition_minutes: usize,
    /// Most brokers down at once.
    pub max_brokers_down: usize,
    /// Highest demand / sustained limit.
    pub peak_utilization: f64,
    /// Decisions made.
    pub decisions: usize,
    /// Decisions that found the cluster needing more capacity but no safe move.
    pub no_safe_move_decisions: usize,
    /// Highest fraction of the brokers' disks the data filled (data stored / brokers x volume).
    pub max_disk_fill: f64,
    /// Minutes with the data above the constraints' maximum disk fill.
    pub minutes_over_disk_fill: usize,
}

/// A run: its summary, its minutes and its actions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    /// The figures.
    pub summary: RunSummary,
    /// Every minute.
    pub minutes: Vec<Minute>,
    /// Every shape change.
    pub actions: Vec<ActionRecord>,
    /// The decision asked for with [`SimConfig::explain`] (predictive runs only; `None` when
    /// not asked for, or when the run made no decision at or after that time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explained: Option<Decision>,
}

/// One broker as simulated.
#[derive(Debug, Clone)]
struct BrokerSim {
    cap: BrokerCapacity,
    network: Option<CreditBucket>,
    link: Option<CreditBucket>,
    instance_usd_per_min: f64,
    storage_usd_per_min: f64,
}

impl BrokerSim {
    fn new(shape: &Shape, catalog: &Catalog) -> Self {
        let mut network = None;
        let mut link = None;
        for (r, b) in broker_buckets(shape, catalog) {
            match r {
                Resource::Network => network = Some(b),
                Resource::StorageLink => link = Some(b),
                Resource::Storage => {}
            }
        }
        let per_min = 1.0 / (catalog.hours_per_month * 60.0);
        Self {
            cap: broker_capacity(&shape.instance, &shape.storage),
            network,
            link,
            instance_usd_per_min: shape.instance.usd_per_hour / 60.0,
            storage_usd_per_min: shape.storage.monthly_cost(catalog) * per_min,
        }
    }

    fn sustained(&self, r: Resource) -> Option<f64> {
        self.cap.get(r).map(Throughput::bytes_per_s)
    }

    fn available(&self, r: Resource) -> Option<f64> {
        let bucket = match r {
            Resource::Network => self.network.as_ref(),
            Resource::StorageLink => self.link.as_ref(),
            Resource::Storage => None,
        };
        match bucket {
            Some(b) => Some(b.available(60.0).bytes_per_s()),
            None => self.sustained(r),
        }
    }
}

/// A transition being carried out.
#[derive(Debug)]
struct Active {
    plan: Plan,
    phase: usize,
    elapsed: f64,
    bytes_left: f64,
    missed: f64,
    action: usize,
    /// The bytes the current transfer phase started with, and the seconds it has run.
    phase_bytes: f64,
    phase_secs: f64,
}

/// Tolerance for comparing demand with limits.
fn over(demand: f64, limit: f64) -> bool {
    demand > limit * (1.0 + 1e-9) + 1.0
}

/// Runs one controller over the demand from `initial`.
pub fn run(
    demand: &Demand,
    config: &SimConfig<'_>,
    controller: Controller,
    initial: &Shape,
) -> Result<Run, SimError> {
    if demand.ingress.is_empty() {
        return Err(SimError::EmptyDemand);
    }
    let catalog = config.catalog;
    let setup = config.setup;
    let settings = config.settings;
    let mut workload = Workload::new(
        setup.replication_factor,
        setup.min_insync_replicas,
        setup.consumer_fanout,
        settings.target_utilization,
    )?;
    let target = settings.target_utilization;
    let fanout = if demand.egress.is_some() {
        FanoutSource::Observed(setup.consumer_fanout)
    } else {
        FanoutSource::Fixed(setup.consumer_fanout)
    };
    let interval = (settings.decision_interval.minutes().round() as usize).max(1);
    let retention_min = (setup.retention.minutes().round() as usize).max(1);
    let rf = f64::from(setup.replication_factor);
    // The controller plans for the data the retention keeps, not only for the data stored now.
    let constraints = kpilot_policy::Constraints {
        local_retention: Some(setup.retention),
        ..setup.constraints.clone()
    };

    // The restart the brokers really take, and the settings the controller plans with: with
    // `learn_restart`, the predictive policy's restart becomes what its own rolls measured.
    let actual_restart = setup.restart.unwrap_or(settings.transition.restart);
    let mut measured_restarts: Vec<f64> = Vec::new();
    // Likewise for throttled transfers: with `move_rate`, each receiving broker reaches at most
    // that; with `learn_moves`, the policy plans at the share of the plan's rate its own
    // transfers reached.
    let actual_move_rate = setup.move_rate.map(Throughput::bytes_per_s);
    let mut measured_moves: Vec<f64> = Vec::new();
    let mut planning = settings.clone();

    let mut shape = initial.clone();
    let mut brokers: Vec<BrokerSim> = (0..shape.brokers)
        .map(|_| BrokerSim::new(&shape, catalog))
        .collect();
    let mut steady_slots = vec![
        Slot {
            new_instance: false,
            role: BrokerRole::Serving,
        };
        shape.brokers as usize
    ];
    // What the controllers know at the start: the demand's history (see `Demand::history`),
    // with its egress when the trace has it.
    let mut history = DemandHistory::with_defaults();
    let first_known = demand.start_secs - demand.history.len() as f64 * 60.0;
    for (i, &d) in demand.history.iter().enumerate() {
        history.push(Sample {
            at: Timestamp::from_secs(first_known + i as f64 * 60.0),
            ingress: Throughput::from_bytes_per_s(d),
            egress: demand
                .history_egress
                .as_ref()
                .and_then(|e| e.get(i))
                .map(|&e| Throughput::from_bytes_per_s(e)),
        })?;
    }
    // Data on disk: the last `retention` minutes of writes, from the history (or, where it
    // does not reach, as at the start).
    let mut written: std::collections::VecDeque<f64> = demand
        .before_start(retention_min)
        .into_iter()
        .map(|d| d * rf * 60.0)
        .collect();
    let mut stored: f64 = written.iter().sum();
    let mut last_change: Option<Timestamp> = None;
    let mut active: Option<Active> = None;
    let mut forecast: Option<kpilot_policy::Forecast> = None;

    let mut minutes = Vec::with_capacity(demand.minutes());
    let mut actions: Vec<ActionRecord> = Vec::new();
    let mut explained: Option<Decision> = None;
    let mut s = RunSummary {
        controller: controller.as_str(),
        initial_shape: initial.label(),
        minutes: demand.minutes(),
        cost_usd: 0.0,
        instance_cost_usd: 0.0,
        storage_cost_usd: 0.0,
        minutes_over_target: 0,
        minutes_over_sustained: 0,
        minutes_unserved: 0,
        unserved_gb: 0.0,
        scaling_actions: 0,
        transition_minutes: 0,
        max_brokers_down: 0,
        peak_utilization: 0.0,
        decisions: 0,
        no_safe_move_decisions: 0,
        max_disk_fill: 0.0,
        minutes_over_disk_fill: 0,
    };

    for m in 0..demand.minutes() {
        let t = demand.start_secs + m as f64 * 60.0;
        let now = Timestamp::from_secs(t);
        let d = demand.ingress[m];
        let egress = demand.egress.as_ref().map(|e| e[m]);
        workload.consumer_fanout = match egress {
            Some(e) if d > 0.0 => e / d,
            _ => setup.consumer_fanout,
        };

        // 1. Decide.
        if controller != Controller::Static
            && active.is_none()
            && m % interval == 0
            && !history.is_empty()
        {
            let cluster = ClusterState {
                shape: shape.clone(),
                stored: ByteSize::from_bytes(stored),
                last_change_finished: last_change,
                transition_in_progress: false,
            };
            let input = DecisionInput {
                now,
                history: &history,
                cluster: &cluster,
                replication_factor: setup.replication_factor,
                min_insync_replicas: setup.min_insync_replicas,
                fanout,
                catalog,
                constraints: &constraints,
                settings: &planning,
            };
            let decision = match controller {
                Controller::Predictive => decide(&input),
                _ => reactive_decide(&input, config.reactive),
            }
            .map_err(|source| SimError::Decide {
                controller: controller.as_str(),
                at: now,
                source,
            })?;
            s.decisions += 1;
            if controller == Controller::Predictive
                && explained.is_none()
                && config.explain.is_some_and(|at| now >= at)
            {
                explained = Some(decision.clone());
            }
            if decision
                .reasons
                .iter()
                .any(|r| matches!(r, Reason::NoSafeMove { .. }))
            {
                s.no_safe_move_decisions += 1;
            }
            if controller == Controller::Predictive {
                forecast = Some(decision.forecast.clone());
            }
            if let Action::Change(plan) = decision.action {
                actions.push(ActionRecord {
                    started: t,
                    finished: None,
                    from: plan.from.label(),
                    to: plan.to.label(),
                    mechanism: plan.mechanism,
                    estimated_secs: plan.estimated.secs(),
                    reasons: decision.reasons.iter().map(ToString::to_string).collect(),
                    why: decision
                        .reasons
                        .iter()
                        .find(|r| !matches!(r, Reason::RollHeadroom { .. }))
                        .or(decision.reasons.first())
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                });
                s.scaling_actions += 1;
                if plan.mechanism == Mechanism::AddBrokers {
                    for _ in shape.brokers..plan.to.brokers {
                        brokers.push(BrokerSim::new(&plan.to, catalog));
                    }
                }
                let mut a = Active {
                    plan: *plan,
                    phase: 0,
                    elapsed: 0.0,
                    bytes_left: 0.0,
                    missed: 0.0,
                    action: actions.len() - 1,
                    phase_bytes: 0.0,
                    phase_secs: 0.0,
                };
                enter_phase(&mut a, &mut brokers, catalog, stored);
                active = Some(a);
            }
        }

        // 2-3. Carry the minute.
        let slots: &[Slot] = match &active {
            Some(a) => &a.plan.phases[a.phase].slots,
            None => &steady_slots,
        };
        let kind = active.as_ref().map(|a| a.plan.phases[a.phase].kind);
        let factors = phase_factors(slots, &workload).ok();
        let (sustained, target_limit, available, loads, rate) = match &factors {
            Some(f) => {
                let rate = match (&active, kind) {
                    (Some(a), Some(k)) => {
                        transfer_rate(a, k, slots, f, d, &brokers, settings, actual_move_rate)
                    }
                    _ => 0.0,
                };
                let loads = match kind {
                    Some(k) => transfer_loads(slots, k, rate),
                    None => vec![Default::default(); slots.len()],
                };
                // A catch-up yields to the clients; a throttled transfer takes its share first.
                let none = vec![Default::default(); slots.len()];
                let reserved = if kind.is_some_and(PhaseKind::yields) {
                    &none
                } else {
                    &loads
                };
                let sus = serving_limit(slots, f, reserved, |i, r| brokers[i].sustained(r)).0;
                let tgt = serving_limit(slots, f, reserved, |i, r| {
                    brokers[i].sustained(r).map(|c| c * target)
                })
                .0;
                let avail = serving_limit(slots, f, reserved, |i, r| brokers[i].available(r)).0;
                (sus, tgt, avail, loads, rate)
            }
            None => (0.0, 0.0, 0.0, vec![Default::default(); slots.len()], 0.0),
        };
        let served = d.min(available);
        if let Some(f) = &factors {
            for (i, slot) in slots.iter().enumerate() {
                let b = &mut brokers[i];
                let live = if slot.role.serves() { served } else { 0.0 };
                // A follower catching up or rebuilding also writes its share of live data.
                let follows = slot.role == BrokerRole::Down
                    && matches!(
                        kind,
                        Some(PhaseKind::CatchUp { .. } | PhaseKind::Rebuild { .. })
                    );
                let net = f.network * live + loads[i].network;
                let write = f.storage * if follows { served } else { live } + loads[i].storage;
                if let Some(bucket) = b.network.as_mut() {
                    bucket.advance(Throughput::from_bytes_per_s(net), 60.0);
                }
                if let Some(bucket) = b.link.as_mut() {
                    bucket.advance(Throughput::from_bytes_per_s(write), 60.0);
                }
            }
        }
        let down = slots.iter().filter(|x| x.role == BrokerRole::Down).count();
        s.max_brokers_down = s.max_brokers_down.max(down);
        if over(d, target_limit) {
            s.minutes_over_target += 1;
        }
        if over(d, sustained) {
            s.minutes_over_sustained += 1;
        }
        if over(d, served) {
            s.minutes_unserved += 1;
            s.unserved_gb += (d - served) * 60.0 / 1e9;
        }
        let disk_bytes = shape.storage.size_gb * 1e9 * brokers.len() as f64;
        if disk_bytes > 0.0 {
            let fill = stored / disk_bytes;
            s.max_disk_fill = s.max_disk_fill.max(fill);
            if fill > setup.constraints.max_disk_fill * (1.0 + 1e-9) {
                s.minutes_over_disk_fill += 1;
            }
        }
        if sustained > 0.0 {
            s.peak_utilization = s.peak_utilization.max(d / sustained);
        } else if d > 0.0 {
            s.peak_utilization = f64::INFINITY;
        }

        // 4. Cost.
        let (mut inst, mut stor) = (0.0, 0.0);
        for b in &brokers {
            inst += b.instance_usd_per_min;
            stor += b.storage_usd_per_min;
        }
        s.instance_cost_usd += inst;
        s.storage_cost_usd += stor;
        let fc_value = forecast
            .as_ref()
            .and_then(|f| {
                let i = ((t - f.start.secs()) / f.step.secs()).floor();
                (i >= 0.0).then(|| f.values.get(i as usize)).flatten()
            })
            .map_or(f32::NAN, |v| v.mb_per_s() as f32);
        minutes.push(Minute {
            t,
            demand: (d / 1e6) as f32,
            sustained: (sustained / 1e6) as f32,
            target: (target_limit / 1e6) as f32,
            served: (served / 1e6) as f32,
            forecast: fc_value,
            usd_per_hour: ((inst + stor) * 60.0) as f32,
            brokers: brokers.len() as u16,
            down: down as u8,
            in_transition: active.is_some(),
        });
        if active.is_some() {
            s.transition_minutes += 1;
        }

        // 5. Advance the transition.
        if let Some(mut a) = active.take() {
            let share = factors.as_ref().map_or(0.0, |f| f.storage);
            let mut dt = 60.0;
            let mut rate_now = rate;
            let mut done = false;
            while dt > 0.0 {
                let kind = a.plan.phases[a.phase].kind;
                let used = match kind {
                    PhaseKind::Restart { .. } => {
                        let need = (actual_restart.secs() - a.elapsed).max(0.0);
                        let used = need.min(dt);
                        a.elapsed += used;
                        a.missed += share * d * used;
                        if used < need {
                            dt = 0.0;
                            continue;
                        }
                        measured_restarts.push(a.elapsed);
                        if setup.learn_restart
                            && controller == Controller::Predictive
                            && let Some(t) = kpilot_policy::learned_restart(&measured_restarts)
                        {
                            planning.transition.restart = t;
                        }
                        used
                    }
                    _ => {
                        if rate_now <= 0.0 {
                            a.phase_secs += dt;
                            dt = 0.0;
                            continue;
                        }
                        let need = a.bytes_left / rate_now;
                        if need > dt {
                            a.bytes_left -= rate_now * dt;
                            a.phase_secs += dt;
                            dt = 0.0;
                            continue;
                        }
                        a.phase_secs += need;
                        let phase = &a.plan.phases[a.phase];
                        if !kind.yields()
                            && phase.estimated.secs() >= kpilot_policy::MOVE_TIMED_FROM.secs()
                            && a.phase_secs > 0.0
                            && phase.rate.bytes_per_s() > 0.0
                        {
                            measured_moves
                                .push(a.phase_bytes / a.phase_secs / phase.rate.bytes_per_s());
                            if setup.learn_moves
                                && controller == Controller::Predictive
                                && let Some(share) =
                                    kpilot_policy::learned_move_share(&measured_moves)
                            {
                                planning.transition.move_share = share;
                            }
                        }
                        need
                    }
                };
                dt -= used;
                a.phase += 1;
                if a.phase == a.plan.phases.len() {
                    done = true;
                    break;
                }
                enter_phase(&mut a, &mut brokers, catalog, stored);
                let next = &a.plan.phases[a.phase];
                rate_now = match &factors {
                    Some(_) => match phase_factors(&next.slots, &workload) {
                        Ok(f) => transfer_rate(
                            &a,
                            next.kind,
                            &next.slots,
                            &f,
                            d,
                            &brokers,
                            settings,
                            actual_move_rate,
                        ),
                        Err(_) => 0.0,
                    },
                    None => 0.0,
                };
            }
            if done {
                let end = t + 60.0 - dt;
                actions[a.action].finished = Some(end);
                last_change = Some(Timestamp::from_secs(end));
                shape = a.plan.to.clone();
                brokers.truncate(shape.brokers as usize);
                steady_slots = vec![
                    Slot {
                        new_instance: false,
                        role: BrokerRole::Serving,
                    };
                    shape.brokers as usize
                ];
            } else {
                active = Some(a);
            }
        }

        // Observe the minute (the controller sees it from the next minute on) and keep the
        // data stored up to date.
        history.push(Sample {
            at: now,
            ingress: Throughput::from_bytes_per_s(d),
            egress: egress.map(Throughput::from_bytes_per_s),
        })?;
        let bytes = d * rf * 60.0;
        written.push_back(bytes);
        stored += bytes - written.pop_front().unwrap_or(0.0);
    }
    s.cost_usd = s.instance_cost_usd + s.storage_cost_usd;
    Ok(Run {
        summary: s,
        minutes,
        actions,
        explained,
    })
}

/// Sets up the phase `a.phase` is entering: a restart replaces the broker's node (new type,
/// full credit buckets); a transfer gets its bytes.
fn enter_phase(a: &mut Active, brokers: &mut [BrokerSim], catalog: &Catalog, stored: f64) {
    let phase = &a.plan.phases[a.phase];
    a.elapsed = 0.0;
    a.phase_secs = 0.0;
    match phase.kind {
        PhaseKind::Restart { broker } => {
            brokers[broker] = BrokerSim::new(&a.plan.to, catalog);
            a.missed = 0.0;
        }
        PhaseKind::CatchUp { .. } => a.bytes_left = a.missed,
        PhaseKind::Rebuild { .. } => a.bytes_left = stored / f64::from(a.plan.from.brokers),
        PhaseKind::MoveData => {
            let (n, m) = (f64::from(a.plan.from.brokers), f64::from(a.plan.to.brokers));
            a.bytes_left = if m > n {
                stored * (m - n) / m
            } else {
                stored * (n - m) / n
            };
        }
    }
    a.phase_bytes = a.bytes_left;
}

/// The rate of the phase's transfer this minute: a catch-up runs as fast as the capacity the
/// clients leave allows (up to the catch-up cap); a throttled transfer runs at its throttle
/// (as far as the brokers can, and at most `actual_move_rate` per receiving broker), whatever
/// the clients need.
#[allow(clippy::too_many_arguments)]
fn transfer_rate(
    a: &Active,
    kind: PhaseKind,
    slots: &[Slot],
    factors: &kpilot_capacity::LoadFactors,
    ingress: f64,
    brokers: &[BrokerSim],
    settings: &Settings,
    actual_move_rate: Option<f64>,
) -> f64 {
    if matches!(kind, PhaseKind::Restart { .. }) {
        return 0.0;
    }
    let cap = |i: usize, r: Resource| brokers[i].sustained(r);
    if kind.yields() {
        let max = settings
            .transition
            .max_catch_up_rate
            .map_or(f64::INFINITY, Throughput::bytes_per_s);
        spare_transfer_rate(slots, kind, factors, ingress, cap)
            .min(max)
            .max(0.0)
    } else {
        let throttle = a.plan.phases[a.phase].rate.bytes_per_s();
        let (from, to) = (a.plan.from.brokers, a.plan.to.brokers);
        let receivers = match kind {
            PhaseKind::MoveData if to > from => to - from,
            PhaseKind::MoveData => to,
            _ => 1,
        };
        let reached = actual_move_rate.map_or(f64::INFINITY, |r| r * f64::from(receivers));
        throttle
            .min(reached)
            .min(spare_transfer_rate(slots, kind, factors, 0.0, cap))
            .max(0.0)
    }
}
