//! Property tests: every plan keeps each partition's replication factor, never places two
//! replicas of a partition on one broker, keeps zones distinct, leaves nothing on removed
//! brokers, and never claims to beat its own lower bound.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use kpilot_cluster::{BrokerId, TopicName, TopicPartition};
use kpilot_rebalance::{BrokerChange, PartitionPlacement, PlanInput, plan};
use proptest::prelude::*;

fn arb_input() -> impl Strategy<Value = PlanInput> {
    (1i32..=4, 1usize..=3, 1usize..200, 0u8..3, 1i32..=3)
        .prop_flat_map(|(zones3, rf, parts, change_kind, k)| {
            // A multiple of 3 brokers, so consecutive ids are in different zones.
            let n = zones3 * 3;
            let sizes = prop::collection::vec(0u64..1_000_000, parts);
            let offsets = prop::collection::vec(0i32..n, parts);
            (Just((n, rf, change_kind, k)), sizes, offsets)
        })
        .prop_map(|((n, rf, change_kind, k), sizes, offsets)| {
            let topic = TopicName::new("t").expect("topic");
            // Consecutive broker ids are in different zones, so a round-robin start gives
            // zone-distinct replicas for rf <= 3.
            let partitions: Vec<PartitionPlacement> = sizes
                .iter()
                .zip(&offsets)
                .enumerate()
                .map(|(p, (&size, &off))| PartitionPlacement {
                    partition: TopicPartition::new(topic.clone(), p as i32),
                    replicas: (0..rf as i32)
                        .map(|j| BrokerId((off + j) % n + 1))
                        .collect(),
                    size_bytes: size,
                })
                .collect();
            let mut brokers = common::brokers(n);
            let change = match change_kind {
                0 => {
                    let new: BTreeSet<BrokerId> = (n + 1..=n + k).map(BrokerId).collect();
                    for b in &new {
                        brokers.insert(
                            *b,
                            Some(["a", "b", "c"][(b.0 as usize - 1) % 3].to_string()),
                        );
                    }
                    BrokerChange::Add(new)
                }
                1 if n - k >= rf as i32 => {
                    BrokerChange::Remove((n - k + 1..=n).map(BrokerId).collect())
                }
                _ => BrokerChange::Rebalance,
            };
            PlanInput {
                partitions,
                brokers,
                change,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn plans_keep_replication_factor_brokers_and_zones(input in arb_input()) {
        let plan = plan(&input).unwrap();
        let racks: BTreeMap<BrokerId, Option<String>> = input.brokers.clone();
        for p in &input.partitions {
            let after = plan.assignment.get(&p.partition).unwrap_or(&p.replicas);
            prop_assert_eq!(after.len(), p.replicas.len(), "RF of {}", p.partition);
            let distinct: BTreeSet<_> = after.iter().collect();
            prop_assert_eq!(distinct.len(), after.len(), "duplicate broker in {}", p.partition);
            for b in after {
                prop_assert!(plan.brokers.contains(b), "{} on non-target broker {}", p.partition, b);
            }
            let zones: BTreeSet<_> = after.iter().map(|b| racks[b].clone()).collect();
            prop_assert_eq!(zones.len(), after.len(), "zones not distinct for {}", p.partition);
        }
        let compact = |b: &kpilot_rebalance::Balance| format!(
            "bytes {:?} replicas {:?}",
            b.bytes.iter().map(|(k, v)| (k.0, *v)).collect::<Vec<_>>(),
            b.replicas.iter().map(|(k, v)| (k.0, *v)).collect::<Vec<_>>()
        );
        prop_assert!(
            plan.stats.balanced,
            "not balanced ({:?}): targets {:?}\nbefore {}\nafter  {}\nsizes {:?}",
            input.change,
            plan.stats.targets,
            compact(&plan.stats.before),
            compact(&plan.stats.after),
            input.partitions.iter().map(|p| (p.size_bytes, p.replicas.iter().map(|b| b.0).collect::<Vec<_>>())).collect::<Vec<_>>()
        );
        prop_assert!(plan.stats.bytes_moved >= plan.stats.lower_bound.bytes);
        if let BrokerChange::Remove(gone) = &input.change {
            for b in gone {
                prop_assert!(!plan.stats.after.bytes.contains_key(b));
            }
        }
        let moved: u64 = plan.moves.iter().map(|m| m.bytes).sum();
        prop_assert_eq!(moved, plan.stats.bytes_moved);
        prop_assert!(plan.stats.zones_distinct);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn batches_cover_the_plan_within_per_broker_limits(
        input in arb_input(),
        per_broker in 1usize..6,
        per_batch in 1usize..40,
    ) {
        let plan = plan(&input).unwrap();
        let current: BTreeMap<_, _> = input
            .partitions
            .iter()
            .map(|p| (p.partition.clone(), p.replicas.clone()))
            .collect();
        let limits = kpilot_rebalance::BatchLimits { max_per_broker: per_broker, max_per_batch: per_batch };
        let batches = kpilot_rebalance::batches(&plan, &current, limits);
        let mut seen = BTreeSet::new();
        for b in &batches {
            prop_assert!(!b.moves.is_empty() && b.moves.len() <= per_batch);
            let mut load: BTreeMap<BrokerId, usize> = BTreeMap::new();
            for m in &b.moves {
                prop_assert!(seen.insert(m.partition.clone()), "{} twice", m.partition);
                prop_assert_eq!(&plan.assignment[&m.partition], &m.to);
                prop_assert_eq!(&current[&m.partition], &m.from);
                for x in m.adding().into_iter().chain(m.removing()) {
                    *load.entry(x).or_insert(0) += 1;
                }
            }
            prop_assert!(load.values().all(|&n| n <= per_broker), "{:?}", load);
        }
        prop_assert_eq!(seen.len(), plan.assignment.len());
        let bytes: u64 = batches.iter().map(|b| b.bytes()).sum();
        prop_assert_eq!(bytes, plan.stats.bytes_moved);
    }
}
