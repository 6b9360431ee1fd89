//! The rebalance journal: the durable record of a reassignment run, saved before and after
//! every step so that a rerun resumes at the right batch and a `--cancel` (or a rerun after a
//! crash) knows which throttles and reassignments are ours to clean up. Pure: the format and
//! its transitions only; `crate::store` writes it.
//!
//! Rules: `throttle_applied` is set (and saved) *before* any throttle config is written and
//! cleared only after every throttle config was removed, so a throttle can never be left
//! behind unrecorded. A batch is `Issued` (saved) before its reassignment is submitted, so a
//! crash right after submitting still knows which partitions are in flight.

use std::collections::BTreeSet;

use kpilot_cluster::{BrokerId, TopicName};
use kpilot_rebalance::{Batch, BrokerChange};
use serde::{Deserialize, Serialize};

/// The journal format version.
pub const JOURNAL_VERSION: u32 = 1;

/// Where a batch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchState {
    /// Not submitted yet.
    Pending,
    /// Submitted (or about to be); its partitions may be moving.
    Issued,
    /// Every partition reached its target replicas.
    Done,
    /// Cancelled: its partitions went back to their old replicas (a rerun submits it again).
    Cancelled,
}

/// One batch and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchEntry {
    /// The moves.
    pub batch: Batch,
    /// Where it is.
    pub state: BatchState,
}

/// How the run ended, or that it is still running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
pub enum RunStatus {
    /// In progress (or interrupted without a chance to record why).
    Running,
    /// Every batch done, throttles removed, leaders elected.
    Completed,
    /// Stopped by an error; throttles removed and in-flight moves cancelled where possible.
    Failed(String),
    /// Cancelled on request.
    Cancelled,
}

/// The journal of one rebalance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    /// Format version ([`JOURNAL_VERSION`]).
    pub version: u32,
    /// The cluster it belongs to.
    pub cluster_id: Option<String>,
    /// The broker set change.
    pub change: BrokerChange,
    /// The replication throttle in bytes per second (`None`: unthrottled).
    pub throttle_bytes_per_s: Option<u64>,
    /// Whether throttle configs may be present on the brokers and topics below.
    pub throttle_applied: bool,
    /// Brokers whose throttle rates were (or are being) set.
    pub throttled_brokers: BTreeSet<BrokerId>,
    /// Topics whose throttled replica lists were (or are being) set.
    pub throttled_topics: BTreeSet<TopicName>,
    /// The batches in order.
    pub batches: Vec<BatchEntry>,
    /// Whether the final preferred leader election ran.
    pub leaders_elected: bool,
    /// How the run stands.
    pub status: RunStatus,
}

impl Journal {
    /// A fresh journal for `batches`.
    pub fn new(
        cluster_id: Option<String>,
        change: BrokerChange,
        throttle_bytes_per_s: Option<u64>,
        batches: Vec<Batch>,
    ) -> Self {
        Self {
            version: JOURNAL_VERSION,
            cluster_id,
            change,
            throttle_bytes_per_s,
            throttle_applied: false,
            throttled_brokers: BTreeSet::new(),
            throttled_topics: BTreeSet::new(),
            batches: batches
                .into_iter()
                .map(|batch| BatchEntry {
                    batch,
                    state: BatchState::Pending,
                })
                .collect(),
            leaders_elected: false,
            status: RunStatus::Running,
        }
    }

    /// Whether there is nothing left to do.
    pub fn is_finished(&self) -> bool {
        self.status == RunStatus::Completed
    }

    /// Whether no run of this journal has changed anything yet: no batch submitted, cancelled
    /// or done, no throttle marked, no election made.
    pub fn is_new(&self) -> bool {
        !self.throttle_applied
            && self.throttled_brokers.is_empty()
            && self.throttled_topics.is_empty()
            && !self.leaders_elected
            && self.batches.iter().all(|b| b.state == BatchState::Pending)
    }

    /// Unmarks throttles that were marked before writing but never set, because the broker
    /// refused the write: there is nothing of this run to remove there.
    pub fn unmark_throttles(&mut self, brokers: &BTreeSet<BrokerId>, topics: &BTreeSet<TopicName>) {
        self.throttled_brokers.retain(|b| !brokers.contains(b));
        self.throttled_topics.retain(|t| !topics.contains(t));
        self.throttle_applied =
            !self.throttled_brokers.is_empty() || !self.throttled_topics.is_empty();
    }

    /// The index of the first batch not done.
    pub fn next_batch(&self) -> Option<usize> {
        self.batches
            .iter()
            .position(|b| b.state != BatchState::Done)
    }

    /// Indexes of batches whose partitions may be moving now.
    pub fn in_flight(&self) -> Vec<usize> {
        self.batches
            .iter()
            .enumerate()
            .filter(|(_, b)| b.state == BatchState::Issued)
            .map(|(i, _)| i)
            .collect()
    }

    /// Bytes of all batches.
    pub fn total_bytes(&self) -> u64 {
        self.batches.iter().map(|b| b.batch.bytes()).sum()
    }

    /// Bytes of the batches done.
    pub fn done_bytes(&self) -> u64 {
        self.batches
            .iter()
            .filter(|b| b.state == BatchState::Done)
            .map(|b| b.batch.bytes())
            .sum()
    }

    /// Serializes the journal.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Parses a journal, checking its version.
    pub fn from_json(text: &str) -> Result<Self, JournalError> {
        let journal: Journal = serde_json::from_str(text).map_err(JournalError::Parse)?;
        if journal.version != JOURNAL_VERSION {
            return Err(JournalError::Version(journal.version));
        }
        Ok(journal)
    }
}

/// Why a journal text is not a journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Not valid JSON for a journal.
    #[error("not a rebalance journal: {0}")]
    Parse(#[source] serde_json::Error),
    /// Written by another format version.
    #[error("journal format version {0} is not supported (this kpilot writes {JOURNAL_VERSION})")]
    Version(u32),
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpilot_cluster::TopicPartition;
    use kpilot_rebalance::PartitionMove;

    #[test]
    fn journal_round_trips_and_tracks_batches() {
        let tp = TopicPartition::new(TopicName::new("t").expect("topic"), 0);
        let batch = Batch {
            moves: vec![PartitionMove {
                partition: tp,
                from: vec![BrokerId(1)],
                to: vec![BrokerId(2)],
                bytes: 42,
            }],
        };
        let mut j = Journal::new(
            Some("c".into()),
            BrokerChange::Add([BrokerId(2)].into()),
            Some(1_000_000),
            vec![batch.clone(), batch],
        );
        assert_eq!(j.next_batch(), Some(0));
        j.batches[0].state = BatchState::Done;
        j.batches[1].state = BatchState::Issued;
        assert_eq!(j.next_batch(), Some(1));
        assert_eq!(j.in_flight(), vec![1]);
        assert_eq!((j.done_bytes(), j.total_bytes()), (42, 84));
        j.status = RunStatus::Failed("boom".into());
        let back = Journal::from_json(&j.to_json()).expect("parse");
        assert_eq!(back, j);
        let mut v = serde_json::to_value(&j).expect("value");
        v["version"] = 99.into();
        assert!(matches!(
            Journal::from_json(&v.to_string()),
            Err(JournalError::Version(99))
        ));
    }
}
