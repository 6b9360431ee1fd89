//! From a plan input to what the executor runs and what a dry run prints: the plan, its
//! batches, and a summary that serializes to JSON (partition names as `topic-N` strings).
//! Pure.

use std::collections::BTreeMap;

use kpilot_cluster::{BrokerId, TopicPartition};
use kpilot_rebalance::{
    Balance, Batch, BatchLimits, BrokerChange, Plan, PlanError, PlanInput, batches, plan,
};
use serde::Serialize;

use crate::journal::Journal;

/// A plan and its batches.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The plan.
    pub plan: Plan,
    /// Its batches, in order.
    pub batches: Vec<Batch>,
    /// The summary.
    pub summary: Summary,
}

/// One broker's figures before and after.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrokerRow {
    /// The broker.
    pub broker: BrokerId,
    /// Replicas before.
    pub replicas_before: usize,
    /// Replicas after (0 for a removed broker).
    pub replicas_after: usize,
    /// Preferred leaderships before.
    pub leaders_before: usize,
    /// Preferred leaderships after.
    pub leaders_after: usize,
    /// Bytes before.
    pub bytes_before: u64,
    /// Bytes after.
    pub bytes_after: u64,
}

/// One partition move, for people and JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MoveRow {
    /// `topic-N`.
    pub partition: String,
    /// Replicas before.
    pub from: Vec<BrokerId>,
    /// Replicas after.
    pub to: Vec<BrokerId>,
    /// Bytes copied.
    pub bytes: u64,
}

/// What a dry run shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The change.
    pub change: BrokerChange,
    /// Partitions whose replicas change (data copied).
    pub partitions_to_move: usize,
    /// Partitions whose replica order only changes (new preferred leader, no data).
    pub leader_only_changes: usize,
    /// Replicas copied.
    pub replicas_to_move: usize,
    /// Bytes copied.
    pub bytes_to_move: u64,
    /// The lower bound on bytes any balanced plan copies.
    pub lower_bound_bytes: u64,
    /// `bytes_to_move / lower_bound_bytes`.
    pub ratio_to_bound: f64,
    /// Whether every broker ends within the balance targets.
    pub balanced: bool,
    /// Largest over smallest bytes per broker, after.
    pub bytes_max_over_min_after: f64,
    /// Batches.
    pub batches: usize,
    /// Per broker, before and after.
    pub brokers: Vec<BrokerRow>,
    /// Every move.
    pub moves: Vec<MoveRow>,
}

/// Current replicas of every partition of `input`.
pub fn current_assignment(input: &PlanInput) -> BTreeMap<TopicPartition, Vec<BrokerId>> {
    input
        .partitions
        .iter()
        .map(|p| (p.partition.clone(), p.replicas.clone()))
        .collect()
}

/// Plans, batches and summarizes.
pub fn prepare(input: &PlanInput, limits: BatchLimits) -> Result<Prepared, PlanError> {
    let plan = plan(input)?;
    let current = current_assignment(input);
    let batches = batches(&plan, &current, limits);
    let summary = summarize(input, &plan, &batches);
    Ok(Prepared {
        plan,
        batches,
        summary,
    })
}

impl Prepared {
    /// A fresh journal for this plan.
    pub fn journal(
        &self,
        cluster_id: Option<String>,
        throttle_bytes_per_s: Option<u64>,
    ) -> Journal {
        Journal::new(
            cluster_id,
            self.summary.change.clone(),
            throttle_bytes_per_s,
            self.batches.clone(),
        )
    }
}

fn summarize(input: &PlanInput, plan: &Plan, batches: &[Batch]) -> Summary {
    let s = &plan.stats;
    let moves: Vec<MoveRow> = batches
        .iter()
        .flat_map(|b| b.moves.iter())
        .map(|m| MoveRow {
            partition: m.partition.to_string(),
            from: m.from.clone(),
            to: m.to.clone(),
            bytes: m.bytes,
        })
        .collect();
    let partitions_to_move = batches
        .iter()
        .flat_map(|b| b.moves.iter())
        .filter(|m| m.copies_data())
        .count();
    Summary {
        change: input.change.clone(),
        partitions_to_move,
        leader_only_changes: moves.len() - partitions_to_move,
        replicas_to_move: s.replicas_moved,
        bytes_to_move: s.bytes_moved,
        lower_bound_bytes: s.lower_bound.bytes,
        ratio_to_bound: s.ratio_to_bound,
        balanced: s.balanced,
        bytes_max_over_min_after: s.after.bytes_ratio(),
        batches: batches.len(),
        brokers: rows(&s.before, &s.after),
        moves,
    }
}

fn rows(before: &Balance, after: &Balance) -> Vec<BrokerRow> {
    let mut ids: Vec<BrokerId> = before
        .bytes
        .keys()
        .chain(after.bytes.keys())
        .copied()
        .collect();
    ids.sort();
    ids.dedup();
    ids.into_iter()
        .map(|b| BrokerRow {
            broker: b,
            replicas_before: before.replicas.get(&b).copied().unwrap_or(0),
            replicas_after: after.replicas.get(&b).copied().unwrap_or(0),
            leaders_before: before.leaders.get(&b).copied().unwrap_or(0),
            leaders_after: after.leaders.get(&b).copied().unwrap_or(0),
            bytes_before: before.bytes.get(&b).copied().unwrap_or(0),
            bytes_after: after.bytes.get(&b).copied().unwrap_or(0),
        })
        .collect()
}
