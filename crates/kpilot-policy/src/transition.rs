//! The transition model: how a cluster gets from one shape to another, how long it takes, and
//! what it can carry meanwhile. The simulator executes these same phases minute by minute with
//! the same capacity functions, so a plan's estimate and its simulated outcome differ only by
//! the demand (forecast versus actual). Pure.
//!
//! Three mechanisms:
//!
//! - **Vertical roll** (instance type change, same broker count): one broker at a time is
//!   stopped (controlled shutdown: leadership moves away), replaced by a node of the new type,
//!   and started. With network-attached storage (EBS) the volume follows the broker, so the
//!   broker is down for [`TransitionSettings::restart`] and then *catches up* what was written
//!   to its replicas meanwhile. With local NVMe the new node's disk is empty: the broker
//!   *rebuilds* its whole share of the data from the other replicas, throttled. Until it has
//!   caught up it is out of the ISR, so it counts as down; only then does the next broker stop
//!   (a preferred leader election gives it its leadership back). During the roll the cluster is
//!   mixed: brokers already rolled run the new type, the others the old one.
//! - **Adding brokers**: the new brokers join empty and partitions are reassigned to them at a
//!   throttled rate; until the movement ends the old brokers carry the load.
//! - **Removing brokers**: the leaving brokers' partitions are reassigned to the staying ones at a
//!   throttled rate; the leaving brokers serve (and are paid for) until they are empty.
//!
//! Capacity during a phase: the serving brokers share the load evenly (Equation 1 per broker,
//! with the one-broker-down load factors while a broker is down), so the weakest broker sets the
//! limit. Transfers add network-out load on the senders and storage-write load on the
//! receivers. Rebuilds and reassignments run for hours under a replication throttle: their
//! rate is the smaller of the throttle and what keeps every broker involved within the target
//! utilization at the forecast peak, and that rate is reserved (it counts against the clients'
//! limits). A restarted follower's catch-up is brief and unthrottled: it runs in the capacity
//! the clients leave (up to the sustained limit) and slows down when they need it, so it does
//! not count against the clients' limits, but it makes the roll longer the busier the cluster
//! is.

use kpilot_capacity::{BrokerCapacity, Instance, LoadFactors, Resource, Shape, Storage, Workload};
use kpilot_units::{ByteSize, Span, Throughput};
use serde::Serialize;
use thiserror::Error;

/// How transitions are carried out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransitionSettings {
    /// How long a broker is down in a vertical roll before it starts catching up: controlled
    /// shutdown, a new node of the new type (Karpenter: under a minute), the volume detached and
    /// attached, the broker started and its logs recovered.
    pub restart: Span,
    /// Replication throttle per receiving broker for reassignments and local-disk rebuilds.
    pub max_move_rate_per_broker: Throughput,
    /// The share of its throttled rate a reassignment or rebuild really reaches (1: the
    /// throttle; the replica fetchers, the disks or the latency may hold it below).
    /// Learned from measured moves with [`learned_move_share`].
    pub move_share: f64,
    /// Cap on the rate at which a restarted broker catches up (`None`: as fast as the brokers
    /// allow; Kafka does not throttle ISR catch-up unless told to).
    pub max_catch_up_rate: Option<Throughput>,
    /// A transfer slower than this is considered impossible.
    pub min_transfer_rate: Throughput,
}

impl Default for TransitionSettings {
    fn default() -> Self {
        Self {
            restart: Span::from_minutes(3.0),
            max_move_rate_per_broker: Throughput::from_mb_per_s(100.0),
            move_share: 1.0,
            max_catch_up_rate: None,
            min_transfer_rate: Throughput::from_mb_per_s(1.0),
        }
    }
}

/// How many of the latest measured restarts [`learned_restart`] takes the longest of: two
/// rolls of three brokers.
pub const RESTARTS_LEARNED_FROM: usize = 6;

/// The restart time to plan rolls with, learned from restarts measured in earlier rolls
/// (seconds, oldest first): the longest of the last [`RESTARTS_LEARNED_FROM`], so one slow
/// node launch counts for the next two rolls before it is forgotten. `None` when nothing was
/// measured (plan with [`TransitionSettings::restart`]). The operator learns from its rolls'
/// journals and the simulator from its own restarts, both with this rule.
pub fn learned_restart(measured_secs: &[f64]) -> Option<Span> {
    measured_secs[measured_secs.len().saturating_sub(RESTARTS_LEARNED_FROM)..]
        .iter()
        .copied()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .reduce(f64::max)
        .map(Span::from_secs)
}

/// How many of the latest measured moves [`learned_move_share`] takes the lowest of.
pub const MOVES_LEARNED_FROM: usize = 6;

/// The shortest move, as planned, whose rate is measured: below it the time says more about
/// the steps around the data (issuing the reassignment, polling for its end, electing
/// leaders) than about the rate the brokers reach.
pub const MOVE_TIMED_FROM: Span = Span::from_secs(60.0);

/// The share of the planned rate to plan reassignments and rebuilds with, learned from moves
/// measured earlier (each the rate it reached over the rate it was planned or throttled at,
/// oldest first): the lowest of the last [`MOVES_LEARNED_FROM`], at most 1. `None` when
/// nothing was measured (plan with [`TransitionSettings::move_share`]). The operator learns
/// from its horizontal operations and the simulator from its own moves, both with this rule.
pub fn learned_move_share(measured: &[f64]) -> Option<f64> {
    measured[measured.len().saturating_sub(MOVES_LEARNED_FROM)..]
        .iter()
        .copied()
        .filter(|s| s.is_finite() && *s > 0.0)
        .reduce(f64::min)
        .map(|s| s.min(1.0))
}

/// How a move is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mechanism {
    /// Change the instance type, one broker at a time.
    VerticalRoll,
    /// Add brokers and move partitions onto them.
    AddBrokers,
    /// Move partitions off brokers, then remove them.
    RemoveBrokers,
}

impl Mechanism {
    /// The name used in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::VerticalRoll => "vertical-roll",
            Mechanism::AddBrokers => "add-brokers",
            Mechanism::RemoveBrokers => "remove-brokers",
        }
    }
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a broker does during a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BrokerRole {
    /// In the ISR, leading and following its share.
    Serving,
    /// Out of the ISR: stopped, restarting, catching up or rebuilding. At most one per phase.
    Down,
    /// Added, receiving reassigned partitions, not yet carrying its share.
    Joining,
    /// Being emptied: still serving until its partitions have moved.
    Leaving,
}

impl BrokerRole {
    /// Whether the broker carries client and replication load.
    pub fn serves(self) -> bool {
        matches!(self, BrokerRole::Serving | BrokerRole::Leaving)
    }
}

/// One broker during a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Slot {
    /// Whether it runs the target shape's instance (and storage) rather than the source's.
    pub new_instance: bool,
    /// What it does.
    pub role: BrokerRole,
}

/// The step a phase performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum PhaseKind {
    /// The broker is stopped, replaced by a node of the new type, and started.
    Restart {
        /// Its index in the phase's slots.
        broker: usize,
    },
    /// The restarted broker fetches what was written to its replicas while it was down.
    CatchUp {
        /// Its index.
        broker: usize,
    },
    /// The broker came back with an empty local disk and re-replicates its whole share.
    Rebuild {
        /// Its index.
        broker: usize,
    },
    /// Partitions move to joining brokers or off leaving brokers.
    MoveData,
}

impl PhaseKind {
    /// Whether the phase's transfer only uses capacity the clients leave (a restarted
    /// follower's catch-up: unthrottled, brief, it slows down when clients need the
    /// bandwidth) rather than a reserved, throttled rate (rebuilds and reassignments, which run
    /// for hours and are throttled within the target utilization).
    pub fn yields(self) -> bool {
        matches!(self, PhaseKind::CatchUp { .. })
    }
}

/// One phase of a plan, with the estimate it was planned with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    /// The step.
    pub kind: PhaseKind,
    /// Every broker during the phase.
    pub slots: Vec<Slot>,
    /// Bytes to transfer (estimated for a catch-up; zero for a restart).
    pub bytes: ByteSize,
    /// Planned transfer rate: the throttle of a move or rebuild, the expected catch-up rate.
    pub rate: Throughput,
    /// Estimated duration.
    pub estimated: Span,
    /// Sustained ingress limit of the serving brokers during the phase, transfer included.
    pub limit: Throughput,
    /// Ingress that keeps every serving broker within the target utilization, transfer
    /// included.
    pub target_limit: Throughput,
}

impl Phase {
    /// How many brokers are down (out of the ISR) in this phase.
    pub fn down_count(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.role == BrokerRole::Down)
            .count()
    }
}

/// A transition from one shape to another.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// How.
    pub mechanism: Mechanism,
    /// The shape now.
    pub from: Shape,
    /// The shape at the end.
    pub to: Shape,
    /// The phases, in order.
    pub phases: Vec<Phase>,
    /// Sum of the phases' estimates.
    pub estimated: Span,
    /// The ingress the plan was sized for (forecast peak over the transition).
    pub planned_ingress: Throughput,
}

impl Plan {
    /// The most brokers down at once in any phase.
    pub fn max_down(&self) -> usize {
        self.phases.iter().map(Phase::down_count).max().unwrap_or(0)
    }

    /// The lowest target limit over the phases.
    pub fn min_target_limit(&self) -> Throughput {
        self.phases
            .iter()
            .map(|p| p.target_limit)
            .min_by(|a, b| a.bytes_per_s().total_cmp(&b.bytes_per_s()))
            .unwrap_or(Throughput::ZERO)
    }

    /// The instance a slot runs.
    pub fn instance(&self, slot: Slot) -> &Instance {
        if slot.new_instance {
            &self.to.instance
        } else {
            &self.from.instance
        }
    }

    /// The storage a slot has.
    pub fn storage(&self, slot: Slot) -> &Storage {
        if slot.new_instance {
            &self.to.storage
        } else {
            &self.from.storage
        }
    }
}

/// Why no plan exists for a move.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TransitionError {
    /// The target differs in both instance type and broker count, or not at all.
    #[error(
        "{from} -> {to} is not a single move: change the instance type or the broker count, not both"
    )]
    NotASingleMove {
        /// The source shape.
        from: String,
        /// The target shape.
        to: String,
    },
    /// A broker cannot be taken down without refusing writes.
    #[error("a vertical roll of {shape} cannot take a broker down: {reason}")]
    BrokerDownRefused {
        /// The shape.
        shape: String,
        /// Why.
        reason: &'static str,
    },
    /// No spare capacity for the data transfer at the planned ingress.
    #[error("{step} would move data at only {rate} at {ingress} ingress: no headroom left for it")]
    NoTransferHeadroom {
        /// The phase.
        step: &'static str,
        /// The rate left.
        rate: Throughput,
        /// The ingress planned for.
        ingress: Throughput,
    },
}

/// Sustained per-broker capacity of an instance with a storage.
pub fn broker_capacity(instance: &Instance, storage: &Storage) -> BrokerCapacity {
    BrokerCapacity {
        storage: storage.throughput,
        storage_link: storage.kind.is_network_attached().then_some(instance.ebs),
        network: instance.network,
    }
}

/// The load factors of the serving brokers in a phase: one-broker-down factors of the whole
/// cluster while a broker is down, even spreading over the serving brokers otherwise.
pub fn phase_factors(slots: &[Slot], workload: &Workload) -> Result<LoadFactors, &'static str> {
    let serving = slots.iter().filter(|s| s.role.serves()).count() as u32;
    if serving == 0 {
        return Err("no broker is serving");
    }
    if slots.iter().any(|s| s.role == BrokerRole::Down) {
        LoadFactors::one_down(serving + 1, workload)
    } else {
        Ok(LoadFactors::all_up(serving, workload))
    }
}

/// Extra traffic per broker, bytes/s, of a transfer at `rate` during a phase.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TransferLoad {
    /// Network out (sending).
    pub network: f64,
    /// Storage writes, and the EBS link (receiving).
    pub storage: f64,
}

/// Senders and receivers of a phase's transfer.
fn transfer_parties(slots: &[Slot], kind: PhaseKind) -> (Vec<usize>, Vec<usize>) {
    match kind {
        PhaseKind::Restart { .. } => (Vec::new(), Vec::new()),
        PhaseKind::CatchUp { broker } | PhaseKind::Rebuild { broker } => (
            (0..slots.len())
                .filter(|&i| slots[i].role.serves())
                .collect(),
            vec![broker],
        ),
        PhaseKind::MoveData => {
            let joining: Vec<usize> = (0..slots.len())
                .filter(|&i| slots[i].role == BrokerRole::Joining)
                .collect();
            if joining.is_empty() {
                (
                    (0..slots.len())
                        .filter(|&i| slots[i].role == BrokerRole::Leaving)
                        .collect(),
                    (0..slots.len())
                        .filter(|&i| slots[i].role == BrokerRole::Serving)
                        .collect(),
                )
            } else {
                (
                    (0..slots.len())
                        .filter(|&i| slots[i].role == BrokerRole::Serving)
                        .collect(),
                    joining,
                )
            }
        }
    }
}

/// The extra load each broker carries for a transfer at `rate` bytes/s, spread evenly over the
/// senders (network out) and the receivers (storage writes).
pub fn transfer_loads(slots: &[Slot], kind: PhaseKind, rate: f64) -> Vec<TransferLoad> {
    let mut out = vec![TransferLoad::default(); slots.len()];
    let (senders, receivers) = transfer_parties(slots, kind);
    if rate <= 0.0 || senders.is_empty() || receivers.is_empty() {
        return out;
    }
    for &i in &senders {
        out[i].network += rate / senders.len() as f64;
    }
    for &i in &receivers {
        out[i].storage += rate / receivers.len() as f64;
    }
    out
}

fn factor(factors: &LoadFactors, resource: Resource) -> f64 {
    match resource {
        Resource::Storage | Resource::StorageLink => factors.storage,
        Resource::Network => factors.network,
    }
}

fn extra(load: &TransferLoad, resource: Resource) -> f64 {
    match resource {
        Resource::Storage | Resource::StorageLink => load.storage,
        Resource::Network => load.network,
    }
}

const RESOURCES: [Resource; 3] = [Resource::Storage, Resource::StorageLink, Resource::Network];

/// The highest cluster ingress (bytes/s) the serving brokers carry, with `cap(slot, resource)`
/// the capacity of each broker's resources (bytes/s; `None` when it has no such resource) and
/// `loads` the transfer's extra load. Returns the limit and the resource that sets it.
pub fn serving_limit(
    slots: &[Slot],
    factors: &LoadFactors,
    loads: &[TransferLoad],
    cap: impl Fn(usize, Resource) -> Option<f64>,
) -> (f64, Option<Resource>) {
    let mut best = (f64::INFINITY, None);
    let mut any = false;
    for (i, slot) in slots.iter().enumerate() {
        if !slot.role.serves() {
            continue;
        }
        any = true;
        for r in RESOURCES {
            let Some(c) = cap(i, r) else { continue };
            let f = factor(factors, r);
            if f <= 0.0 {
                continue;
            }
            let limit = ((c - loads.get(i).map_or(0.0, |l| extra(l, r))) / f).max(0.0);
            if limit < best.0 {
                best = (limit, Some(r));
            }
        }
    }
    if any { best } else { (0.0, None) }
}

/// The highest transfer rate (bytes/s) that keeps every sender's network and every receiver's
/// storage within `cap(slot, resource)` while the cluster carries `ingress` bytes/s.
pub fn spare_transfer_rate(
    slots: &[Slot],
    kind: PhaseKind,
    factors: &LoadFactors,
    ingress: f64,
    cap: impl Fn(usize, Resource) -> Option<f64>,
) -> f64 {
    let (senders, receivers) = transfer_parties(slots, kind);
    if senders.is_empty() || receivers.is_empty() {
        return 0.0;
    }
    let mut send = f64::INFINITY;
    for &i in &senders {
        if let Some(c) = cap(i, Resource::Network) {
            send = send.min(c - factors.network * ingress);
        }
    }
    let mut receive = f64::INFINITY;
    for &i in &receivers {
        // A receiving follower also writes its share of the live traffic (a joining broker
        // has none yet).
        let live = if slots[i].role == BrokerRole::Joining {
            0.0
        } else {
            factors.storage * ingress
        };
        for r in [Resource::Storage, Resource::StorageLink] {
            if let Some(c) = cap(i, r) {
                receive = receive.min(c - live);
            }
        }
    }
    (send.max(0.0) * senders.len() as f64).min(receive.max(0.0) * receivers.len() as f64)
}

/// Per-slot capacity (bytes/s, times `fraction`) of a phase whose slots run the source
/// (`caps[0]`) or the target (`caps[1]`) instance.
fn slot_capacity<'a>(
    caps: &'a [BrokerCapacity; 2],
    slots: &'a [Slot],
    fraction: f64,
) -> impl Fn(usize, Resource) -> Option<f64> + 'a {
    move |i, r| {
        caps[usize::from(slots[i].new_instance)]
            .get(r)
            .map(|t| t.bytes_per_s() * fraction)
    }
}

/// Plans the move from `from` to `to` for a cluster holding `stored` bytes (all replicas), sized
/// for `ingress` (the forecast peak over the transition) at `workload`'s target utilization.
pub fn plan_transition(
    from: &Shape,
    to: &Shape,
    workload: &Workload,
    stored: ByteSize,
    ingress: Throughput,
    settings: &TransitionSettings,
) -> Result<Plan, TransitionError> {
    let same_instance = from.instance.name == to.instance.name;
    let mechanism = match (same_instance, from.brokers.cmp(&to.brokers)) {
        (false, std::cmp::Ordering::Equal) => Mechanism::VerticalRoll,
        (true, std::cmp::Ordering::Less) => Mechanism::AddBrokers,
        (true, std::cmp::Ordering::Greater) => Mechanism::RemoveBrokers,
        _ => {
            return Err(TransitionError::NotASingleMove {
                from: from.label(),
                to: to.label(),
            });
        }
    };
    let caps = [
        broker_capacity(&from.instance, &from.storage),
        broker_capacity(&to.instance, &to.storage),
    ];
    let target = workload.target_utilization;

    let t = ingress.bytes_per_s();
    let mut phases = Vec::new();
    let finish = |kind: PhaseKind,
                  slots: Vec<Slot>,
                  bytes: f64,
                  rate: f64,
                  secs: f64|
     -> Result<Phase, TransitionError> {
        let factors = phase_factors(&slots, workload).map_err(|reason| {
            TransitionError::BrokerDownRefused {
                shape: from.label(),
                reason,
            }
        })?;
        // A catch-up yields to the clients: it does not take capacity from them.
        let loads = if kind.yields() {
            vec![TransferLoad::default(); slots.len()]
        } else {
            transfer_loads(&slots, kind, rate)
        };
        let (limit, _) = serving_limit(&slots, &factors, &loads, slot_capacity(&caps, &slots, 1.0));
        let (target_limit, _) = serving_limit(
            &slots,
            &factors,
            &loads,
            slot_capacity(&caps, &slots, target),
        );
        Ok(Phase {
            kind,
            slots,
            bytes: ByteSize::from_bytes(bytes),
            rate: Throughput::from_bytes_per_s(rate),
            estimated: Span::from_secs(secs),
            limit: Throughput::from_bytes_per_s(limit),
            target_limit: Throughput::from_bytes_per_s(target_limit),
        })
    };
    let transfer_rate = |slots: &[Slot], kind: PhaseKind, throttle: f64, step: &'static str| {
        let factors = phase_factors(slots, workload).map_err(|reason| {
            TransitionError::BrokerDownRefused {
                shape: from.label(),
                reason,
            }
        })?;
        let fraction = if kind.yields() { 1.0 } else { target };
        let spare = spare_transfer_rate(
            slots,
            kind,
            &factors,
            t,
            slot_capacity(&caps, slots, fraction),
        );
        let rate = spare.min(throttle);
        if rate < settings.min_transfer_rate.bytes_per_s() {
            return Err(TransitionError::NoTransferHeadroom {
                step,
                rate: Throughput::from_bytes_per_s(rate.max(0.0)),
                ingress,
            });
        }
        Ok(rate)
    };
    let n = from.brokers as usize;
    match mechanism {
        Mechanism::VerticalRoll => {
            let rebuild = !to.storage.kind.is_network_attached();
            let restart = settings.restart.secs();
            let throttle = settings.max_move_rate_per_broker.bytes_per_s() * settings.move_share;
            let catch_up_cap = settings
                .max_catch_up_rate
                .map_or(f64::INFINITY, Throughput::bytes_per_s);
            for b in 0..n {
                let slots: Vec<Slot> = (0..n)
                    .map(|j| Slot {
                        new_instance: j <= b,
                        role: if j == b {
                            BrokerRole::Down
                        } else {
                            BrokerRole::Serving
                        },
                    })
                    .collect();
                let factors = phase_factors(&slots, workload).map_err(|reason| {
                    TransitionError::BrokerDownRefused {
                        shape: from.label(),
                        reason,
                    }
                })?;
                phases.push(finish(
                    PhaseKind::Restart { broker: b },
                    slots.clone(),
                    0.0,
                    0.0,
                    restart,
                )?);
                if rebuild {
                    let kind = PhaseKind::Rebuild { broker: b };
                    let rate = transfer_rate(&slots, kind, throttle, "rebuild")?;
                    let bytes = stored.bytes() / n as f64;
                    phases.push(finish(kind, slots, bytes, rate, bytes / rate)?);
                } else {
                    let kind = PhaseKind::CatchUp { broker: b };
                    let rate = transfer_rate(&slots, kind, catch_up_cap, "catch-up")?;
                    let bytes = factors.storage * t * restart;
                    phases.push(finish(kind, slots, bytes, rate, bytes / rate)?);
                }
            }
        }
        Mechanism::AddBrokers => {
            let k = to.brokers as usize - n;
            let slots: Vec<Slot> = (0..n + k)
                .map(|j| Slot {
                    new_instance: j >= n,
                    role: if j >= n {
                        BrokerRole::Joining
                    } else {
                        BrokerRole::Serving
                    },
                })
                .collect();
            let throttle =
                settings.max_move_rate_per_broker.bytes_per_s() * settings.move_share * k as f64;
            let rate = transfer_rate(&slots, PhaseKind::MoveData, throttle, "reassignment")?;
            let bytes = stored.bytes() * k as f64 / (n + k) as f64;
            phases.push(finish(
                PhaseKind::MoveData,
                slots,
                bytes,
                rate,
                bytes / rate,
            )?);
        }
        Mechanism::RemoveBrokers => {
            let m = to.brokers as usize;
            let slots: Vec<Slot> = (0..n)
                .map(|j| Slot {
                    new_instance: false,
                    role: if j >= m {
                        BrokerRole::Leaving
                    } else {
                        BrokerRole::Serving
                    },
                })
                .collect();
            let throttle =
                settings.max_move_rate_per_broker.bytes_per_s() * settings.move_share * m as f64;
            let rate = transfer_rate(&slots, PhaseKind::MoveData, throttle, "reassignment")?;
            let bytes = stored.bytes() * (n - m) as f64 / n as f64;
            phases.push(finish(
                PhaseKind::MoveData,
                slots,
                bytes,
                rate,
                bytes / rate,
            )?);
        }
    }
    let estimated = Span::from_secs(phases.iter().map(|p| p.estimated.secs()).sum());
    Ok(Plan {
        mechanism,
        from: from.clone(),
        to: to.clone(),
        phases,
        estimated,
        planned_ingress: ingress,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpilot_capacity::Catalog;

    fn shape(c: &Catalog, name: &str, n: u32, w: &Workload) -> Shape {
        let i = c.instance(&name.parse().unwrap()).unwrap().clone();
        let s = if i.nvme_gb.is_some() {
            Storage::local_nvme(&i, None).unwrap()
        } else {
            Storage::gp3(c, 2000.0, Throughput::from_mib_per_s(500.0)).unwrap()
        };
        Shape::new(i, n, s, w).unwrap()
    }

    #[test]
    fn the_learned_move_share_is_the_lowest_of_the_last_six_at_most_one() {
        assert_eq!(learned_move_share(&[]), None);
        assert_eq!(learned_move_share(&[1.4]), Some(1.0));
        assert_eq!(
            learned_move_share(&[0.3, 0.9, 0.8, 1.0, 0.7, 0.95, 0.9]),
            Some(0.7)
        );
        assert_eq!(learned_move_share(&[0.3, 0.9]), Some(0.3));
        assert_eq!(learned_move_share(&[f64::NAN, 0.0, -1.0]), None);
    }

    #[test]
    fn moves_are_planned_at_the_share_of_the_throttle_they_reach() {
        let c = Catalog::builtin().unwrap();
        let w = Workload::new(3, 2, 2.0, 0.8).unwrap();
        let from = shape(&c, "m7g.xlarge", 3, &w);
        let to = shape(&c, "m7g.xlarge", 6, &w);
        let plan_with = |move_share: f64| {
            let settings = TransitionSettings {
                move_share,
                ..TransitionSettings::default()
            };
            plan_transition(
                &from,
                &to,
                &w,
                ByteSize::from_gb(6000.0),
                Throughput::from_mb_per_s(1.0),
                &settings,
            )
            .unwrap()
        };
        let (full, half) = (plan_with(1.0), plan_with(0.5));
        // Three receivers at the 100 MB/s throttle, or half of it.
        assert!((full.phases[0].rate.mb_per_s() - 300.0).abs() < 1e-6);
        assert!((half.phases[0].rate.mb_per_s() - 150.0).abs() < 1e-6);
        assert!((half.estimated.secs() / full.estimated.secs() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn the_learned_restart_is_the_longest_of_the_last_six() {
        assert_eq!(learned_restart(&[]), None);
        assert_eq!(learned_restart(&[30.0]), Some(Span::from_secs(30.0)));
        // A 600 s restart seven rolls of a broker ago is forgotten; one in the last six is not.
        let mut m = vec![600.0, 40.0, 41.0, 42.0, 43.0, 44.0, 45.0];
        assert_eq!(learned_restart(&m), Some(Span::from_secs(45.0)));
        m.push(500.0);
        assert_eq!(learned_restart(&m), Some(Span::from_secs(500.0)));
        assert_eq!(
            learned_restart(&[f64::NAN, 20.0]),
            Some(Span::from_secs(20.0))
        );
    }

    #[test]
    fn a_vertical_roll_takes_one_broker_down_at_a_time_and_the_weakest_sets_the_limit() {
        let c = Catalog::builtin().unwrap();
        let w = Workload::new(3, 2, 2.0, 0.8).unwrap();
        let from = shape(&c, "m7g.xlarge", 3, &w);
        let to = shape(&c, "m7g.2xlarge", 3, &w);
        let ingress = Throughput::from_mb_per_s(80.0);
        let plan = plan_transition(
            &from,
            &to,
            &w,
            ByteSize::from_gb(3000.0),
            ingress,
            &Default::default(),
        )
        .unwrap();
        assert_eq!(plan.mechanism, Mechanism::VerticalRoll);
        assert_eq!(plan.phases.len(), 6);
        assert_eq!(plan.max_down(), 1);
        // The restart of broker 0: brokers 1, 2 are xlarge, storage link 156.25 MB/s with
        // t * 3/3 writes each: limit 156.25; network (2-1)/2 + 1 = 1.5 x t <= 240.1: 160.
        let first = &plan.phases[0];
        assert!(
            (first.limit.mb_per_s() - 156.25).abs() < 1e-6,
            "{}",
            first.limit
        );
        // Catch-up: 80 MB/s x 3/3 x 180 s = 14.4 GB at the spare of the new broker's link.
        let catch = &plan.phases[1];
        assert!(
            (catch.bytes.gb() - 14.4).abs() < 1e-6,
            "{}",
            catch.bytes.gb()
        );
        assert!(catch.estimated.secs() < 300.0, "{}", catch.estimated.secs());
        assert!(
            catch.target_limit >= ingress,
            "{} < {ingress}",
            catch.target_limit
        );
        // Broker 2's restart: brokers 0, 1 are already 2xlarge, but broker 2 is down, so the
        // limit is the new type's.
        assert!(plan.phases[4].limit > first.limit);
    }

    #[test]
    fn local_nvme_rolls_rebuild_the_whole_share_of_data() {
        let c = Catalog::builtin().unwrap();
        let w = Workload::new(3, 2, 1.0, 0.8).unwrap();
        let from = shape(&c, "im4gn.xlarge", 3, &w);
        let to = shape(&c, "im4gn.2xlarge", 3, &w);
        let s = Default::default();
        let plan = plan_transition(
            &from,
            &to,
            &w,
            ByteSize::from_gb(3000.0),
            Throughput::from_mb_per_s(20.0),
            &s,
        )
        .unwrap();
        let rebuild = &plan.phases[1];
        assert!(matches!(rebuild.kind, PhaseKind::Rebuild { broker: 0 }));
        assert!((rebuild.bytes.gb() - 1000.0).abs() < 1e-6);
        assert!(rebuild.rate.mb_per_s() <= 100.0 + 1e-9);
        // 1 TB at <= 100 MB/s: at least 10^4 s per broker.
        assert!(
            plan.estimated.secs() >= 3.0 * 10_000.0,
            "{}",
            plan.estimated.secs()
        );
    }

    #[test]
    fn adding_brokers_moves_a_share_of_the_data_throttled() {
        let c = Catalog::builtin().unwrap();
        let w = Workload::new(3, 2, 2.0, 0.8).unwrap();
        let from = shape(&c, "m7g.xlarge", 3, &w);
        let to = shape(&c, "m7g.xlarge", 6, &w);
        let plan = plan_transition(
            &from,
            &to,
            &w,
            ByteSize::from_gb(6000.0),
            Throughput::from_mb_per_s(50.0),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(plan.mechanism, Mechanism::AddBrokers);
        assert_eq!(plan.max_down(), 0);
        let p = &plan.phases[0];
        assert!((p.bytes.gb() - 3000.0).abs() < 1e-6);
        // Three receivers at 100 MB/s each at most, and the senders' spare network.
        assert!(p.rate.mb_per_s() <= 300.0 + 1e-9);
        assert!(
            p.target_limit.mb_per_s() >= 50.0 - 1e-6,
            "{}",
            p.target_limit
        );
        let back = plan_transition(
            &to,
            &from,
            &w,
            ByteSize::from_gb(6000.0),
            Throughput::from_mb_per_s(50.0),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(back.mechanism, Mechanism::RemoveBrokers);
        assert!((back.phases[0].bytes.gb() - 3000.0).abs() < 1e-6);
    }

    #[test]
    fn refuses_diagonal_moves_and_rolls_that_break_min_isr() {
        let c = Catalog::builtin().unwrap();
        let w = Workload::new(3, 2, 2.0, 0.8).unwrap();
        let a = shape(&c, "m7g.xlarge", 3, &w);
        let b = shape(&c, "m7g.2xlarge", 6, &w);
        let s = Default::default();
        assert!(matches!(
            plan_transition(&a, &b, &w, ByteSize::ZERO, Throughput::ZERO, &s),
            Err(TransitionError::NotASingleMove { .. })
        ));
        let strict = Workload::new(3, 3, 2.0, 0.8).unwrap();
        let b = shape(&c, "m7g.2xlarge", 3, &w);
        assert!(matches!(
            plan_transition(
                &a,
                &b,
                &strict,
                ByteSize::ZERO,
                Throughput::from_mb_per_s(1.0),
                &s
            ),
            Err(TransitionError::BrokerDownRefused { .. })
        ));
    }

    #[test]
    fn no_headroom_no_move() {
        let c = Catalog::builtin().unwrap();
        let w = Workload::new(3, 2, 2.0, 0.8).unwrap();
        let from = shape(&c, "m7g.large", 3, &w);
        let to = shape(&c, "m7g.large", 6, &w);
        // At 80 MB/s the senders' network is beyond its target: nothing to spare.
        let err = plan_transition(
            &from,
            &to,
            &w,
            ByteSize::from_gb(100.0),
            Throughput::from_mb_per_s(80.0),
            &Default::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, TransitionError::NoTransferHeadroom { .. }),
            "{err}"
        );
    }
}
