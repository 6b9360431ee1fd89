//! Balance targets and the lower bound on bytes moved. Pure.
//!
//! With `m` target brokers, `T` bytes of replicas in total and `R` replicas, a broker is
//! balanced when it holds between `mean - tol` and `mean + tol` bytes, `mean = T/m`,
//! `tol = max(tolerance * mean, largest partition)` (discrete sizes make exact byte balance
//! impossible in general), and a replica count within the same relative tolerance of `R/m`
//! (at least one either side). Bytes are what replication traffic and disks feel; the count
//! only keeps brokers from ending up with a few huge or very many tiny partitions.
//!
//! Every byte a plan moves leaves exactly one broker and lands on exactly one broker. So any
//! plan reaching the targets moves at least the larger of the bytes that must leave brokers
//! above `mean + tol` (all bytes of a removed broker) and the bytes that must arrive at brokers
//! below `mean - tol` (an added broker starts empty): that is [`LowerBound::bytes`].

use std::collections::{BTreeMap, BTreeSet};

use kpilot_cluster::BrokerId;
use serde::Serialize;

/// What "balanced" means for a plan.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BalanceTargets {
    /// Mean bytes per target broker.
    pub mean_bytes: f64,
    /// Allowed distance from the mean, bytes.
    pub tolerance_bytes: f64,
    /// Fewest replicas per broker.
    pub min_replicas: usize,
    /// Most replicas per broker.
    pub max_replicas: usize,
}

impl BalanceTargets {
    /// Targets for `brokers` target brokers holding `total_bytes` in `replicas` replicas whose
    /// largest is `largest` bytes, within `tolerance` (a fraction of the mean).
    pub fn new(
        brokers: usize,
        total_bytes: u64,
        replicas: usize,
        largest: u64,
        tolerance: f64,
    ) -> Self {
        let m = brokers.max(1);
        let mean_bytes = total_bytes as f64 / m as f64;
        let mean_replicas = replicas as f64 / m as f64;
        let slack = (tolerance * mean_replicas).max(1.0);
        Self {
            mean_bytes,
            tolerance_bytes: (tolerance * mean_bytes).max(largest as f64),
            min_replicas: (mean_replicas - slack).max(0.0).floor() as usize,
            max_replicas: (mean_replicas + slack).ceil() as usize,
        }
    }

    /// Highest balanced byte count.
    pub fn high_bytes(&self) -> f64 {
        self.mean_bytes + self.tolerance_bytes
    }

    /// Lowest balanced byte count.
    pub fn low_bytes(&self) -> f64 {
        (self.mean_bytes - self.tolerance_bytes).max(0.0)
    }
}

/// The lower bound on bytes any plan reaching the targets must move.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LowerBound {
    /// Bytes that must leave over-full (or removed) brokers.
    pub must_leave_bytes: u64,
    /// Bytes that must arrive at under-full (or added) brokers.
    pub must_arrive_bytes: u64,
    /// The bound: the larger of the two.
    pub bytes: u64,
}

impl LowerBound {
    /// The bound for per-broker byte counts `bytes` (every current broker, including removed
    /// ones, and every target broker), given the `target` set.
    pub fn compute(
        bytes: &BTreeMap<BrokerId, u64>,
        target: &BTreeSet<BrokerId>,
        targets: &BalanceTargets,
    ) -> Self {
        let mut leave = 0.0f64;
        let mut arrive = 0.0f64;
        for (b, &held) in bytes {
            let held = held as f64;
            if !target.contains(b) {
                leave += held;
            } else {
                leave += (held - targets.high_bytes()).max(0.0);
                arrive += (targets.low_bytes() - held).max(0.0);
            }
        }
        for b in target {
            if !bytes.contains_key(b) {
                arrive += targets.low_bytes();
            }
        }
        let must_leave_bytes = leave.ceil() as u64;
        let must_arrive_bytes = arrive.ceil() as u64;
        Self {
            must_leave_bytes,
            must_arrive_bytes,
            bytes: must_leave_bytes.max(must_arrive_bytes),
        }
    }
}

/// Per-broker balance figures of an assignment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Balance {
    /// Bytes per broker.
    pub bytes: BTreeMap<BrokerId, u64>,
    /// Replicas per broker.
    pub replicas: BTreeMap<BrokerId, usize>,
    /// Preferred leaderships per broker.
    pub leaders: BTreeMap<BrokerId, usize>,
}

impl Balance {
    /// Largest over smallest bytes per broker (1.0 is perfect; infinite if a broker is empty
    /// while another is not).
    pub fn bytes_ratio(&self) -> f64 {
        ratio(self.bytes.values().map(|&v| v as f64))
    }

    /// Largest minus smallest replica count.
    pub fn replica_spread(&self) -> usize {
        spread(self.replicas.values().copied())
    }

    /// Largest minus smallest preferred-leader count.
    pub fn leader_spread(&self) -> usize {
        spread(self.leaders.values().copied())
    }
}

fn ratio(values: impl Iterator<Item = f64>) -> f64 {
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if hi == 0.0 {
        1.0
    } else if lo == 0.0 {
        f64::INFINITY
    } else {
        hi / lo
    }
}

fn spread(values: impl Iterator<Item = usize>) -> usize {
    let (mut lo, mut hi) = (usize::MAX, 0usize);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    hi.saturating_sub(if lo == usize::MAX { hi } else { lo })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_an_empty_broker_must_receive_its_share() {
        // 3 brokers x 300 bytes, add a 4th: mean 225, tolerance max(22.5, 10) = 22.5.
        let bytes: BTreeMap<BrokerId, u64> =
            [(BrokerId(1), 300), (BrokerId(2), 300), (BrokerId(3), 300)].into();
        let target: BTreeSet<BrokerId> = (1..=4).map(BrokerId).collect();
        let t = BalanceTargets::new(4, 900, 9, 10, 0.1);
        let lb = LowerBound::compute(&bytes, &target, &t);
        assert_eq!(lb.must_arrive_bytes, 203); // 225 - 22.5, rounded up
        assert_eq!(lb.must_leave_bytes, 158); // 3 x (300 - 247.5), rounded up
        assert_eq!(lb.bytes, 203);
    }

    #[test]
    fn removing_a_broker_must_empty_it() {
        let bytes: BTreeMap<BrokerId, u64> = [
            (BrokerId(1), 100),
            (BrokerId(2), 100),
            (BrokerId(3), 100),
            (BrokerId(4), 100),
        ]
        .into();
        let target: BTreeSet<BrokerId> = (1..=3).map(BrokerId).collect();
        let t = BalanceTargets::new(3, 400, 8, 10, 0.1);
        assert_eq!(LowerBound::compute(&bytes, &target, &t).bytes, 100);
    }
}
