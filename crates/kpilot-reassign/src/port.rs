//! The port the executor drives: what it reads from and asks of the cluster. A trait and its
//! error only; no I/O here. The adapter for the Kafka admin client is `crate::kafka`; tests
//! wrap it to inject failures.

#![allow(async_fn_in_trait)] // Used with concrete types on one task; no `Send` bound needed.

use std::collections::{BTreeMap, BTreeSet};

use kpilot_cluster::{BrokerId, TopicPartition};
use kpilot_kafka::{ConfigOp, ConfigResource};

/// The cause of a port failure.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A failure talking to the cluster.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Reading the cluster (metadata, reassignments in progress) failed.
    #[error("reading {what} failed: {source}")]
    Read {
        /// What was read.
        what: &'static str,
        /// The cause.
        #[source]
        source: Cause,
    },
    /// Submitting or cancelling reassignments failed.
    #[error("{action} the reassignment of {partitions} partition(s) failed: {source}")]
    Reassign {
        /// "submitting" or "cancelling".
        action: &'static str,
        /// How many partitions the request named.
        partitions: usize,
        /// The cause.
        #[source]
        source: Cause,
    },
    /// Changing a config (throttle) failed.
    #[error("changing the configs of {resource} failed: {source}")]
    Configure {
        /// The broker or topic.
        resource: String,
        /// The cause.
        #[source]
        source: Cause,
    },
    /// Asking whether a config change may be made (`validateOnly`) failed or was refused.
    #[error("checking a config change of {resource} failed: {source}")]
    Validate {
        /// The broker or topic refused, or how many were asked.
        resource: String,
        /// The cause.
        #[source]
        source: Cause,
    },
    /// The preferred leader election failed.
    #[error("the preferred leader election failed: {source}")]
    Elect {
        /// The cause.
        #[source]
        source: Cause,
    },
}

impl PortError {
    /// Whether the broker answered and refused the request (a non-retriable Kafka error such
    /// as an authorization failure), so it changed nothing. False when the outcome is unknown
    /// (a timeout, a lost connection) or the request never reached a broker.
    pub fn refused(&self) -> bool {
        let source = match self {
            PortError::Read { source, .. }
            | PortError::Reassign { source, .. }
            | PortError::Configure { source, .. }
            | PortError::Validate { source, .. }
            | PortError::Elect { source } => source,
        };
        source
            .downcast_ref::<kpilot_kafka::AdminError>()
            .is_some_and(|e| matches!(e, kpilot_kafka::AdminError::Broker { error, .. } if !error.is_retriable()))
    }
}

pub use kpilot_roll::ports::ElectionSummary;

/// What the executor needs from the cluster.
pub trait ReassignPort {
    /// Brokers registered now.
    async fn live_brokers(&self) -> Result<BTreeSet<BrokerId>, PortError>;
    /// Every partition's replicas (preferred leader first), from fresh metadata.
    async fn assignment(&self) -> Result<BTreeMap<TopicPartition, Vec<BrokerId>>, PortError>;
    /// Partitions with a reassignment in progress.
    async fn ongoing(&self) -> Result<BTreeSet<TopicPartition>, PortError>;
    /// Submits new replica lists (`None` cancels that partition's reassignment).
    async fn reassign(
        &self,
        changes: &[(TopicPartition, Option<Vec<BrokerId>>)],
    ) -> Result<(), PortError>;
    /// Sets or deletes configs of a broker or topic.
    async fn configure(&self, resource: &ConfigResource, ops: &[ConfigOp])
    -> Result<(), PortError>;
    /// Asks whether `ops` may be applied to every one of `resources` (the brokers authorize
    /// and validate, and change nothing): a write refused later would otherwise stop a run
    /// midway.
    async fn validate(
        &self,
        resources: &[ConfigResource],
        ops: &[ConfigOp],
    ) -> Result<(), PortError>;
    /// The dynamic overrides of `keys` on `resource` as each broker applies them now: broker
    /// -> key -> value. A broker's configs are answered by that broker alone; a topic's by
    /// every live broker, since each applies a topic's throttle from its own copy of the
    /// metadata, which follows a change a moment after the controller accepted it. A topic
    /// that no longer exists has no overrides.
    async fn overrides_seen(
        &self,
        resource: &ConfigResource,
        keys: &[&str],
    ) -> Result<BTreeMap<BrokerId, BTreeMap<String, String>>, PortError>;
    /// The replication-throttle overrides set now on `resources` themselves (the rates on a
    /// broker, the replica lists on a topic; not the cluster-wide defaults): resource, key,
    /// value. By default each resource's [`ReassignPort::overrides_seen`], a value any broker
    /// applies counting; an adapter may ask in one request.
    async fn throttles_set(
        &self,
        resources: &[ConfigResource],
    ) -> Result<Vec<(ConfigResource, String, String)>, PortError> {
        let mut found = Vec::new();
        for r in resources {
            let keys = match r {
                ConfigResource::Broker(_) => {
                    [kpilot_kafka::LEADER_RATE, kpilot_kafka::FOLLOWER_RATE]
                }
                _ => [
                    kpilot_kafka::LEADER_REPLICAS,
                    kpilot_kafka::FOLLOWER_REPLICAS,
                ],
            };
            let mut set: BTreeMap<String, String> = BTreeMap::new();
            for configs in self.overrides_seen(r, &keys).await?.into_values() {
                for (k, v) in configs {
                    set.entry(k).or_insert(v);
                }
            }
            found.extend(set.into_iter().map(|(k, v)| (r.clone(), k, v)));
        }
        Ok(found)
    }
    /// The partitions whose logs `broker` stores now, from its log dirs (DescribeLogDirs),
    /// whether or not the metadata shows them: a topic the principal may not Describe is
    /// left out of Metadata without an error, but its logs are listed here.
    async fn stored(&self, broker: BrokerId) -> Result<BTreeSet<TopicPartition>, PortError>;
    /// The size of every replica log `broker` stores now (DescribeLogDirs; the largest when a
    /// partition is in two of its dirs). Read while a batch copies, to show how far each
    /// new replica has got.
    async fn replica_sizes(
        &self,
        broker: BrokerId,
    ) -> Result<BTreeMap<TopicPartition, u64>, PortError>;
    /// Elects the preferred leader of `partitions`.
    async fn elect_preferred(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<ElectionSummary, PortError>;
}
