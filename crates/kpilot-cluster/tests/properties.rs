//! Property tests of the stop-safety analysis on random cluster states.

use std::collections::{BTreeMap, BTreeSet};

use kpilot_cluster::*;
use proptest::prelude::*;

const MAX_BROKER: i32 = 6;

prop_compose! {
    fn partition(index: i32)(
        replicas in proptest::sample::subsequence((1..=MAX_BROKER).collect::<Vec<_>>(), 1..=4)
            .prop_shuffle(),
        isr_mask in proptest::collection::vec(any::<bool>(), 4),
        leader_pick in proptest::option::weighted(0.9, 0usize..4),
    ) -> PartitionState {
        let replicas: Vec<BrokerId> = replicas.into_iter().map(BrokerId).collect();
        let isr: Vec<BrokerId> = replicas
            .iter()
            .zip(&isr_mask)
            .filter(|(_, keep)| **keep)
            .map(|(b, _)| *b)
            .collect();
        let leader = leader_pick.and_then(|i| isr.get(i % isr.len().max(1)).copied());
        PartitionState::new(index, leader, replicas, isr)
    }
}

fn topic(name: String) -> impl Strategy<Value = TopicState> {
    (
        proptest::option::weighted(0.95, 1u16..=3),
        proptest::collection::vec(any::<u8>(), 1..5),
    )
        .prop_flat_map(move |(min_isr, parts)| {
            let name = name.clone();
            let strategies: Vec<_> = (0..parts.len() as i32).map(partition).collect();
            strategies.prop_map(move |ps| TopicState {
                name: TopicName::new(name.clone()).unwrap(),
                topic_id: None,
                internal: false,
                min_insync_replicas: min_isr,
                partitions: ps.into_iter().map(|p| (p.partition, p)).collect(),
            })
        })
}

fn cluster() -> impl Strategy<Value = ClusterState> {
    (
        proptest::sample::subsequence((1..=MAX_BROKER).collect::<Vec<_>>(), 0..=6),
        proptest::collection::vec(topic("t0".into()), 0..1),
        topic("t1".into()),
        topic("t2".into()),
    )
        .prop_map(|(live, t0, t1, t2)| {
            let mut state = ClusterState::default();
            for id in live {
                state.brokers.insert(
                    BrokerId(id),
                    BrokerInfo {
                        id: BrokerId(id),
                        host: "127.0.0.1".into(),
                        port: 9000,
                        rack: None,
                    },
                );
            }
            for t in t0.into_iter().chain([t1, t2]) {
                state.topics.insert(t.name.clone(), t);
            }
            state
        })
}

/// Live in-sync replicas of a partition in a state.
fn live_isr(state: &ClusterState, p: &PartitionState) -> usize {
    p.isr.iter().filter(|b| state.is_live(**b)).count()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Safe and unsafe brokers partition the live brokers.
    #[test]
    fn safe_and_blocked_partition_the_live_brokers(state in cluster()) {
        let h = analyze(&state);
        let live: BTreeSet<BrokerId> = state.brokers.keys().copied().collect();
        let blocked: BTreeSet<BrokerId> = h.stop_blockers.keys().copied().collect();
        prop_assert!(h.safe_to_stop.is_disjoint(&blocked));
        let union: BTreeSet<BrokerId> = h.safe_to_stop.union(&blocked).copied().collect();
        prop_assert_eq!(union, live);
    }

    /// Soundness: stopping a safe broker leaves every partition at or above min ISR with a
    /// replication factor above min ISR.
    #[test]
    fn stopping_a_safe_broker_keeps_min_isr(state in cluster()) {
        let h = analyze(&state);
        for broker in &h.safe_to_stop {
            let after = state.with_broker_stopped(*broker);
            for (topic, p) in after.partitions() {
                if !p.replicas.contains(broker) {
                    continue;
                }
                let min = topic.min_insync_replicas.expect("safe implies known min ISR");
                prop_assert!(topic.replication_factor() > usize::from(min));
                prop_assert!(
                    live_isr(&after, p) >= usize::from(min),
                    "broker {} stop leaves {}-{} with ISR {:?}", broker, topic.name, p.partition, p.isr
                );
            }
        }
    }

    /// Precision: every blocker names a partition the broker hosts that really would be
    /// unsafe without it.
    #[test]
    fn every_blocker_is_real(state in cluster()) {
        let h = analyze(&state);
        for (broker, blockers) in &h.stop_blockers {
            prop_assert!(!blockers.is_empty());
            let after = state.with_broker_stopped(*broker);
            for blocker in blockers {
                let p = state.partition(&blocker.topic_partition).expect("blocker exists");
                prop_assert!(p.replicas.contains(broker));
                let topic = &state.topics[&blocker.topic_partition.topic];
                match (&blocker.reason, topic.min_insync_replicas) {
                    (StopBlockReason::MinIsrUnknown, None) => {}
                    (StopBlockReason::ReplicationFactorNotAboveMinIsr { .. }, Some(min)) => {
                        prop_assert!(topic.replication_factor() <= usize::from(min));
                    }
                    (StopBlockReason::WouldGoBelowMinIsr { isr_after_stop, .. }, Some(min)) => {
                        let p_after = after.partition(&blocker.topic_partition).unwrap();
                        prop_assert_eq!(*isr_after_stop, live_isr(&after, p_after));
                        prop_assert!(*isr_after_stop < usize::from(min));
                    }
                    (reason, min) => prop_assert!(false, "reason {:?} with min {:?}", reason, min),
                }
            }
        }
    }

    /// Monotonicity: a replica rejoining the ISR never makes a safe broker unsafe.
    #[test]
    fn isr_recovery_never_removes_safety(state in cluster(), pick in any::<proptest::sample::Index>()) {
        let before = analyze(&state);
        let mut healed = state.clone();
        let candidates: Vec<(TopicName, i32, BrokerId)> = healed
            .partitions()
            .flat_map(|(t, p)| {
                p.replicas
                    .iter()
                    .filter(|r| !p.isr.contains(r))
                    .map(|r| (t.name.clone(), p.partition, *r))
                    .collect::<Vec<_>>()
            })
            .collect();
        prop_assume!(!candidates.is_empty());
        let (topic, partition, replica) = pick.get(&candidates).clone();
        healed.topics.get_mut(&topic).unwrap().partitions.get_mut(&partition).unwrap().isr.push(replica);
        let after = analyze(&healed);
        prop_assert!(before.safe_to_stop.is_subset(&after.safe_to_stop));
    }

    /// Counts agree with the per-partition flags and per-broker tallies.
    #[test]
    fn counts_are_consistent(state in cluster()) {
        let h = analyze(&state);
        prop_assert_eq!(h.counts.offline, h.partitions.iter().filter(|p| p.offline).count());
        prop_assert_eq!(h.counts.under_min_isr, h.partitions.iter().filter(|p| p.under_min_isr).count());
        let led: usize = h.brokers.iter().map(|b| b.leaders).sum();
        prop_assert_eq!(led, h.partitions.len() - h.counts.offline);
        let replicas: usize = h.brokers.iter().map(|b| b.replicas).sum();
        prop_assert_eq!(replicas, h.totals.replicas);
        let mut per_topic: BTreeMap<&TopicName, bool> = BTreeMap::new();
        for t in &h.topics_blocking_stops {
            per_topic.insert(&t.topic, true);
        }
        for (name, topic) in &state.topics {
            let expected = topic.min_insync_replicas
                .is_some_and(|m| topic.replication_factor() <= usize::from(m));
            prop_assert_eq!(per_topic.contains_key(name), expected);
        }
        prop_assert_eq!(h.is_healthy(), h.findings.iter().all(|f| f.severity == Severity::Info));
    }
}
