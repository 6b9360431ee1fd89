//! Shared fixtures: zone-aware assignments like Kafka's own rack-aware placement.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use kpilot_cluster::{BrokerId, TopicName, TopicPartition};
use kpilot_rebalance::{BrokerChange, PartitionPlacement, PlanInput};

/// Brokers 1..=n in zones a, b, c round-robin.
pub fn brokers(n: i32) -> BTreeMap<BrokerId, Option<String>> {
    (1..=n)
        .map(|i| {
            (
                BrokerId(i),
                Some(["a", "b", "c"][(i as usize - 1) % 3].to_string()),
            )
        })
        .collect()
}

/// `partitions` partitions of one topic on brokers 1..=n, replicas round-robin (consecutive
/// brokers are in different zones), sizes from `size(i)`.
pub fn assignment(
    n: i32,
    partitions: i32,
    rf: usize,
    size: impl Fn(i32) -> u64,
) -> Vec<PartitionPlacement> {
    let topic = TopicName::new("events").expect("valid topic name");
    (0..partitions)
        .map(|p| PartitionPlacement {
            partition: TopicPartition::new(topic.clone(), p),
            replicas: (0..rf as i32).map(|k| BrokerId((p + k) % n + 1)).collect(),
            size_bytes: size(p),
        })
        .collect()
}

/// A deterministic pseudo-random size in [lo, hi).
pub fn size_of(seed: i32, lo: u64, hi: u64) -> u64 {
    let mut x = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    lo + x % (hi - lo)
}

pub fn add(input_brokers: i32, new: &[i32], partitions: Vec<PartitionPlacement>) -> PlanInput {
    let mut b = brokers(input_brokers);
    for &id in new {
        b.insert(
            BrokerId(id),
            Some(["a", "b", "c"][(id as usize - 1) % 3].to_string()),
        );
    }
    PlanInput {
        partitions,
        brokers: b,
        change: BrokerChange::Add(new.iter().map(|&i| BrokerId(i)).collect::<BTreeSet<_>>()),
    }
}
