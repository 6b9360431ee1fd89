//! `kpilot-cluster`: the typed model of a Kafka cluster's state and its health analysis.
//!
//! Pure crate: no I/O, no async, no Kafka client. Adapters (the Kafka admin client in
//! `kpilot-kafka`, a simulator) build a [`ClusterState`]; [`analyze`] turns it into a
//! [`HealthSnapshot`]: per-partition conditions, per-broker load, and the set of brokers that
//! can be stopped right now without taking any partition below `min.insync.replicas`
//! ([`HealthSnapshot::safe_to_stop`]), with the partitions that block each of the others.
//!
//! ```
//! use kpilot_cluster::{analyze, fixtures::uniform_cluster, BrokerId};
//!
//! // 3 brokers, one topic with 6 partitions, RF 3, min ISR 2: every broker may stop.
//! let state = uniform_cluster(3, &[("orders", 6, 3, 2)]);
//! let health = analyze(&state);
//! assert!(health.is_healthy());
//! assert_eq!(health.safe_to_stop.len(), 3);
//!
//! // Broker 3 crashes: now stopping broker 1 or 2 would leave some partitions with 1 ISR.
//! let health = analyze(&state.with_broker_stopped(BrokerId(3)));
//! assert!(health.safe_to_stop.is_empty());
//! assert_eq!(health.counts.at_min_isr, 6);
//! ```

pub mod fixtures;
pub mod health;
pub mod ids;
pub mod state;

pub use health::{
    BrokerHealth, Finding, HealthSnapshot, HealthStatus, Issue, PartitionCounts, PartitionHealth,
    QuorumHealth, QuorumMemberHealth, Severity, StopBlockReason, StopBlocker, TopicBlockingStops,
    Totals, analyze, sample_list, stop_block_reason,
};
pub use ids::{BrokerId, NodeId, TopicName, TopicNameError, TopicPartition};
pub use state::{
    BrokerInfo, ClusterState, LogDir, PartitionReassignment, PartitionState, QuorumReplica,
    QuorumState, ReplicaLog, ReplicationThrottle, ThrottleScope, TopicState,
};
