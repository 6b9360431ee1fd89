//! Ready-made cluster states for tests, examples, benchmarks and simulators: a healthy cluster
//! with replicas spread round-robin. Pure: no I/O.

use std::collections::BTreeMap;

use crate::ids::{BrokerId, NodeId, TopicName};
use crate::state::{
    BrokerInfo, ClusterState, PartitionState, QuorumReplica, QuorumState, TopicState,
};

/// A healthy cluster of brokers `1..=brokers` on `127.0.0.1:9091..`, all in sync, every
/// partition led by its preferred replica, with a combined-mode quorum led by broker 1.
///
/// `topics` lists `(name, partitions, replication_factor, min_insync_replicas)`. Replicas are
/// placed round-robin: partition `p` of the `t`-th topic starts on broker `(p + t) % brokers`.
///
/// # Panics
/// If a name is not a valid topic name or a replication factor exceeds `brokers`; fixtures
/// are built from literals in tests.
pub fn uniform_cluster(brokers: i32, topics: &[(&str, i32, usize, u16)]) -> ClusterState {
    let mut state = ClusterState {
        cluster_id: Some("fixture-cluster".to_string()),
        ..ClusterState::default()
    };
    for id in 1..=brokers {
        state.brokers.insert(
            BrokerId(id),
            BrokerInfo {
                id: BrokerId(id),
                host: "127.0.0.1".to_string(),
                port: u16::try_from(9090 + id).expect("fixture port fits in u16"),
                rack: None,
            },
        );
    }
    for (t, (name, partitions, rf, min_isr)) in topics.iter().enumerate() {
        assert!(
            i32::try_from(*rf).is_ok_and(|rf| rf <= brokers),
            "replication factor {rf} exceeds {brokers} brokers"
        );
        let name = TopicName::new(*name).expect("fixture topic name is valid");
        let offset = i32::try_from(t).expect("few fixture topics");
        let mut parts = BTreeMap::new();
        for p in 0..*partitions {
            let replicas: Vec<BrokerId> = (0..*rf)
                .map(|r| {
                    let r = i32::try_from(r).expect("small replication factor");
                    BrokerId((p + offset + r).rem_euclid(brokers) + 1)
                })
                .collect();
            parts.insert(
                p,
                PartitionState::new(p, replicas.first().copied(), replicas.clone(), replicas),
            );
        }
        state.topics.insert(
            name.clone(),
            TopicState {
                name,
                topic_id: None,
                internal: false,
                min_insync_replicas: Some(*min_isr),
                partitions: parts,
            },
        );
    }
    let member = |id: i32| QuorumReplica {
        id: NodeId(id),
        log_end_offset: Some(100),
        last_fetch_timestamp_ms: None,
        last_caught_up_timestamp_ms: None,
    };
    state.quorum = Some(QuorumState {
        leader: Some(NodeId(1)),
        leader_epoch: 1,
        high_watermark: 100,
        voters: (1..=brokers).map(member).collect(),
        observers: Vec::new(),
    });
    state
}
