//! Splitting a plan into batches the executor submits one after another: each batch starts at
//! most `max_per_broker` partition moves on any broker (as source or destination), so no broker
//! copies more than that many partitions at once; moves that only reorder replicas (a new
//! preferred leader, no data) go into a last batch of their own. Also which replicas the
//! replication throttle applies to. Pure.

use std::collections::{BTreeMap, BTreeSet};

use kpilot_cluster::{BrokerId, TopicName, TopicPartition};
use serde::{Deserialize, Serialize};

use crate::plan::Plan;

/// How much may move at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchLimits {
    /// Most partitions moving into or out of one broker at once (Kafka's own tool has no such
    /// limit; Cruise Control's default is 5).
    pub max_per_broker: usize,
    /// Most partitions in one batch, whatever their brokers.
    pub max_per_batch: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_per_broker: 5,
            max_per_batch: 50,
        }
    }
}

/// One partition's reassignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMove {
    /// The partition.
    pub partition: TopicPartition,
    /// Its replicas before (preferred leader first).
    pub from: Vec<BrokerId>,
    /// Its replicas after (preferred leader first).
    pub to: Vec<BrokerId>,
    /// Bytes to copy: its size times the number of new replicas.
    pub bytes: u64,
}

impl PartitionMove {
    /// Brokers gaining a replica.
    pub fn adding(&self) -> Vec<BrokerId> {
        self.to
            .iter()
            .copied()
            .filter(|b| !self.from.contains(b))
            .collect()
    }

    /// Brokers losing a replica.
    pub fn removing(&self) -> Vec<BrokerId> {
        self.from
            .iter()
            .copied()
            .filter(|b| !self.to.contains(b))
            .collect()
    }

    /// Whether data is copied (not just a reorder).
    pub fn copies_data(&self) -> bool {
        !self.adding().is_empty()
    }
}

/// A set of partition moves submitted together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The moves.
    pub moves: Vec<PartitionMove>,
}

impl Batch {
    /// Bytes this batch copies.
    pub fn bytes(&self) -> u64 {
        self.moves.iter().map(|m| m.bytes).sum()
    }
}

/// Splits `plan` into batches within `limits`: largest moves first, each into the first batch
/// where none of its brokers is at its limit; reorder-only moves last. Deterministic.
pub fn batches(
    plan: &Plan,
    current: &BTreeMap<TopicPartition, Vec<BrokerId>>,
    limits: BatchLimits,
) -> Vec<Batch> {
    let sizes: BTreeMap<&TopicPartition, u64> =
        plan.moves.iter().map(|m| (&m.partition, m.bytes)).collect();
    let mut data = Vec::new();
    let mut reorders = Vec::new();
    for (tp, to) in &plan.assignment {
        let from = current.get(tp).cloned().unwrap_or_default();
        let mut m = PartitionMove {
            partition: tp.clone(),
            from,
            to: to.clone(),
            bytes: 0,
        };
        let adding = m.adding().len() as u64;
        m.bytes = sizes.get(tp).copied().unwrap_or(0) * adding;
        if m.copies_data() {
            data.push(m);
        } else {
            reorders.push(m);
        }
    }
    data.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.partition.cmp(&b.partition)));
    let per_broker = limits.max_per_broker.max(1);
    let per_batch = limits.max_per_batch.max(1);
    let mut out: Vec<(Batch, BTreeMap<BrokerId, usize>)> = Vec::new();
    for m in data {
        let involved: BTreeSet<BrokerId> = m.adding().into_iter().chain(m.removing()).collect();
        let slot = out.iter().position(|(b, load)| {
            b.moves.len() < per_batch
                && involved
                    .iter()
                    .all(|x| load.get(x).copied().unwrap_or(0) < per_broker)
        });
        let i = match slot {
            Some(i) => i,
            None => {
                out.push((Batch { moves: Vec::new() }, BTreeMap::new()));
                out.len() - 1
            }
        };
        let (batch, load) = &mut out[i];
        for x in involved {
            *load.entry(x).or_insert(0) += 1;
        }
        batch.moves.push(m);
    }
    let mut batches: Vec<Batch> = out.into_iter().map(|(b, _)| b).collect();
    for chunk in reorders.chunks(per_batch) {
        batches.push(Batch {
            moves: chunk.to_vec(),
        });
    }
    batches
}

/// The replication-throttle replica lists of one topic, in Kafka's `partition:broker` form:
/// `leader.replication.throttled.replicas` (the current replicas, which serve the copies) and
/// `follower.replication.throttled.replicas` (the new replicas, which copy).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottledReplicas {
    /// `partition:broker` entries for `leader.replication.throttled.replicas`.
    pub leader: Vec<String>,
    /// `partition:broker` entries for `follower.replication.throttled.replicas`.
    pub follower: Vec<String>,
}

impl ThrottledReplicas {
    /// The leader list as a config value.
    pub fn leader_value(&self) -> String {
        self.leader.join(",")
    }

    /// The follower list as a config value.
    pub fn follower_value(&self) -> String {
        self.follower.join(",")
    }
}

/// The throttled replicas per topic for the data-copying moves of `batch`.
pub fn throttled_replicas(batch: &Batch) -> BTreeMap<TopicName, ThrottledReplicas> {
    let mut out: BTreeMap<TopicName, ThrottledReplicas> = BTreeMap::new();
    for m in batch.moves.iter().filter(|m| m.copies_data()) {
        let t = out.entry(m.partition.topic.clone()).or_default();
        let p = m.partition.partition;
        t.leader
            .extend(m.from.iter().map(|b| format!("{p}:{}", b.0)));
        t.follower
            .extend(m.adding().iter().map(|b| format!("{p}:{}", b.0)));
    }
    out
}

/// The brokers whose replication a batch throttles: everyone sending or receiving a copy.
pub fn throttled_brokers(batch: &Batch) -> BTreeSet<BrokerId> {
    batch
        .moves
        .iter()
        .filter(|m| m.copies_data())
        .flat_map(|m| m.from.iter().chain(m.to.iter()).copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BrokerChange, PartitionPlacement, PlanInput, plan};

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new(TopicName::new("t").expect("topic"), p)
    }

    fn input(n: i32, parts: i32, add: &[i32]) -> PlanInput {
        PlanInput {
            partitions: (0..parts)
                .map(|p| PartitionPlacement {
                    partition: tp(p),
                    replicas: (0..3).map(|k| BrokerId((p + k) % n + 1)).collect(),
                    size_bytes: 1000 + p as u64,
                })
                .collect(),
            brokers: (1..=n)
                .chain(add.iter().copied())
                .map(|b| (BrokerId(b), None))
                .collect(),
            change: BrokerChange::Add(add.iter().map(|b| BrokerId(*b)).collect()),
        }
    }

    #[test]
    fn batches_respect_per_broker_limits_and_cover_the_plan() {
        let input = input(3, 60, &[4, 5]);
        let plan = plan(&input).expect("plan");
        let current: BTreeMap<_, _> = input
            .partitions
            .iter()
            .map(|p| (p.partition.clone(), p.replicas.clone()))
            .collect();
        let limits = BatchLimits {
            max_per_broker: 3,
            max_per_batch: 10,
        };
        let bs = batches(&plan, &current, limits);
        let covered: BTreeSet<_> = bs
            .iter()
            .flat_map(|b| b.moves.iter().map(|m| m.partition.clone()))
            .collect();
        assert_eq!(covered.len(), plan.assignment.len());
        let bytes: u64 = bs.iter().map(Batch::bytes).sum();
        assert_eq!(bytes, plan.stats.bytes_moved);
        for b in &bs {
            assert!(b.moves.len() <= 10);
            let mut load: BTreeMap<BrokerId, usize> = BTreeMap::new();
            for m in &b.moves {
                for x in m.adding().into_iter().chain(m.removing()) {
                    *load.entry(x).or_insert(0) += 1;
                }
            }
            assert!(load.values().all(|&n| n <= 3), "{load:?}");
        }
        // Reorder-only moves come last.
        let first_reorder = bs
            .iter()
            .position(|b| b.moves.iter().any(|m| !m.copies_data()));
        if let Some(i) = first_reorder {
            assert!(
                bs[i..]
                    .iter()
                    .all(|b| b.moves.iter().all(|m| !m.copies_data()))
            );
        }
    }

    #[test]
    fn throttled_replicas_list_sources_and_destinations() {
        let batch = Batch {
            moves: vec![PartitionMove {
                partition: tp(7),
                from: vec![BrokerId(1), BrokerId(2), BrokerId(3)],
                to: vec![BrokerId(4), BrokerId(2), BrokerId(3)],
                bytes: 10,
            }],
        };
        let t = &throttled_replicas(&batch)[&TopicName::new("t").expect("topic")];
        assert_eq!(t.leader_value(), "7:1,7:2,7:3");
        assert_eq!(t.follower_value(), "7:4");
        assert_eq!(
            throttled_brokers(&batch),
            [1, 2, 3, 4].into_iter().map(BrokerId).collect()
        );
    }
}
