//! The two ports the roll executor drives: [`KafkaPort`] (observe the cluster, elect preferred
//! leaders) and [`Fleet`] (the infrastructure that stops, resizes and starts a node). Traits
//! and their errors only; no I/O here. Adapters: `crate::kafka` (the Kafka admin client),
//! `crate::local` (testbed processes), `crate::fake` (in memory, for unit tests).

#![allow(async_fn_in_trait)] // Used with concrete types on one task; no `Send` bound needed.

use std::collections::BTreeMap;

use kpilot_cluster::{BrokerId, TopicPartition};
use kpilot_kafka::ElectionOutcome;
use kpilot_units::InstanceType;
use serde::{Deserialize, Serialize};

use crate::gate::Observation;
use crate::journal::Rebuild;

/// A failure talking to Kafka.
#[derive(Debug, thiserror::Error)]
pub enum KafkaPortError {
    /// Reading the cluster's state failed.
    #[error("reading the cluster state failed: {source}")]
    Observe {
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Setting or lifting a rebuild's replication throttle failed.
    #[error("{action} the replication throttle of node {node}'s rebuild failed: {source}")]
    Throttle {
        /// `setting` or `lifting`.
        action: &'static str,
        /// The rebuilding node.
        node: BrokerId,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A `validateOnly` config change was refused: the principal may not make it.
    #[error("this principal may not {what}: {source}")]
    MayNotAlter {
        /// The change, e.g. `set the brokers' throttle rates`.
        what: &'static str,
        /// The broker's refusal (naming the ACL).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The preferred leader election request failed.
    #[error("the preferred leader election failed: {source}")]
    Elect {
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The outcome of a preferred leader election.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionSummary {
    /// Partitions whose leadership moved to the preferred replica.
    pub elected: usize,
    /// Partitions already led by it.
    pub not_needed: usize,
    /// Partitions where the election failed, with the broker's reason.
    pub failed: BTreeMap<String, String>,
}

impl ElectionSummary {
    /// Counts an election's outcomes; a failure keeps the broker's message, or else the
    /// error's name. The rebalance (`kpilot-reassign`) uses the same summary.
    pub fn of(outcomes: impl IntoIterator<Item = (TopicPartition, ElectionOutcome)>) -> Self {
        let mut summary = ElectionSummary::default();
        for (tp, outcome) in outcomes {
            match outcome {
                ElectionOutcome::Elected => summary.elected += 1,
                ElectionOutcome::NotNeeded => summary.not_needed += 1,
                ElectionOutcome::Failed { error, message } => {
                    summary.failed.insert(
                        tp.to_string(),
                        message.unwrap_or_else(|| error.name().to_string()),
                    );
                }
            }
        }
        summary
    }
}

/// The Kafka side of the roll.
pub trait KafkaPort {
    /// Reads the cluster: metadata, min ISR per topic, log dirs, reassignments, quorum, and
    /// which brokers are registered but fenced.
    async fn observe(&self) -> Result<Observation, KafkaPortError>;

    /// Checks, changing nothing, that the principal may elect leaders (Alter on the
    /// cluster): a roll that stops a broker and then cannot elect leaves leadership piled on
    /// the brokers that stayed up.
    async fn check_may_elect(&self) -> Result<(), KafkaPortError>;

    /// Checks, changing nothing, that the principal may set what
    /// [`KafkaPort::throttle_rebuild`] sets (AlterConfigs on the cluster and on every topic):
    /// a roll onto empty disks that cannot throttle the next rebuild halts with brokers
    /// already rolled.
    async fn check_may_throttle(&self) -> Result<(), KafkaPortError>;

    /// Elects the preferred leader of `partitions` (`None`: every partition).
    async fn elect_preferred(
        &self,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<ElectionSummary, KafkaPortError>;

    /// Sets the replication throttle of `node`'s rebuild (idempotent): the follower rate on
    /// `node`, the leader rate on the senders, `*` as the throttled replicas of the topics.
    /// Sent while `node` still runs: a broker's own configs go to that broker.
    async fn throttle_rebuild(
        &self,
        node: BrokerId,
        rebuild: &Rebuild,
    ) -> Result<(), KafkaPortError>;

    /// Removes what [`KafkaPort::throttle_rebuild`] set (idempotent), except the configs
    /// someone else set to another value meanwhile (a reassignment started during the
    /// rebuild): those are theirs, left set and returned, as `"<resource> <key>=<value> (not
    /// <ours>)"`.
    async fn lift_rebuild_throttle(
        &self,
        node: BrokerId,
        rebuild: &Rebuild,
    ) -> Result<Vec<String>, KafkaPortError>;

    /// The bytes `node`'s replica logs hold now.
    async fn stored_bytes(&self, node: BrokerId) -> Result<u64, KafkaPortError>;

    /// Every replication-throttle override set now on a broker, a topic or the brokers'
    /// defaults, as `"<resource> <key>=<value>"`.
    async fn throttles_set(&self) -> Result<Vec<String>, KafkaPortError>;
}

/// A failure of the infrastructure.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The node is not known to the fleet.
    #[error("node {node} is not part of this fleet")]
    UnknownNode {
        /// The node.
        node: BrokerId,
    },
    /// The size is not one the fleet can provide.
    #[error("cannot size node {node} as {size}: {reason}")]
    UnknownSize {
        /// The node.
        node: BrokerId,
        /// The size.
        size: InstanceType,
        /// Why.
        reason: String,
    },
    /// Stopping failed.
    #[error("stopping node {node} failed: {message}")]
    Stop {
        /// The node.
        node: BrokerId,
        /// What went wrong.
        message: String,
    },
    /// Applying the size failed.
    #[error("resizing node {node} to {size} failed: {message}")]
    Resize {
        /// The node.
        node: BrokerId,
        /// The size.
        size: InstanceType,
        /// What went wrong.
        message: String,
    },
    /// Starting failed (the process exited, or never became ready).
    #[error("starting node {node} failed: {message}")]
    Start {
        /// The node.
        node: BrokerId,
        /// What went wrong.
        message: String,
    },
    /// Inspecting the node failed.
    #[error("inspecting node {node} failed: {message}")]
    Inspect {
        /// The node.
        node: BrokerId,
        /// What went wrong.
        message: String,
    },
}

/// The infrastructure that runs the nodes. Every action must be idempotent: stopping a
/// stopped node, starting a running one (at the requested size), or resizing to the size it
/// already has succeeds without doing anything, so a rerun after a crash can repeat the step
/// the journal shows as issued.
pub trait Fleet {
    /// Checks that the fleet can provide `size` at all, before anything is stopped.
    async fn check_size(&self, size: &InstanceType) -> Result<(), FleetError> {
        let _ = size;
        Ok(())
    }
    /// The node's size now, if known.
    async fn size(&self, node: BrokerId) -> Result<Option<InstanceType>, FleetError>;
    /// Stops the node gracefully (Kafka's controlled shutdown) and waits until it is down.
    async fn stop(&self, node: BrokerId) -> Result<(), FleetError>;
    /// Gives the (stopped) node the new size; it applies from the next start.
    async fn resize(&self, node: BrokerId, size: &InstanceType) -> Result<(), FleetError>;
    /// Starts the node and waits until its process runs (Kafka readiness is the roll's job).
    async fn start(&self, node: BrokerId) -> Result<(), FleetError>;
    /// Whether the node's process runs.
    async fn is_running(&self, node: BrokerId) -> Result<bool, FleetError>;
    /// Whether a rolled node comes back with an empty disk (instance-local storage on a new
    /// node), so that its catch-up rebuilds every replica it hosts.
    fn fresh_disks(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpilot_kafka::KafkaErrorCode;

    #[test]
    fn an_election_summary_counts_outcomes_and_names_each_failure() {
        let tp = |p| TopicPartition::new("t".parse().expect("topic"), p);
        let failed = |message: Option<&str>| ElectionOutcome::Failed {
            error: KafkaErrorCode::PreferredLeaderNotAvailable,
            message: message.map(str::to_owned),
        };
        let summary = ElectionSummary::of([
            (tp(0), ElectionOutcome::Elected),
            (tp(1), ElectionOutcome::NotNeeded),
            (tp(2), ElectionOutcome::Elected),
            (tp(3), failed(Some("replica 2 is not in the ISR"))),
            (tp(4), failed(None)),
        ]);
        assert_eq!((summary.elected, summary.not_needed), (2, 1));
        assert_eq!(
            summary.failed,
            BTreeMap::from([
                ("t-3".to_string(), "replica 2 is not in the ISR".to_string()),
                (
                    "t-4".to_string(),
                    "PREFERRED_LEADER_NOT_AVAILABLE".to_string()
                ),
            ])
        );
    }
}
