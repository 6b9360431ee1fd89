//! Prints bytes moved against the lower bound for a few synthetic scenarios:
//! `cargo run -p kpilot-rebalance --example scenarios`. The comparison against Kafka's own
//! reassignment generator on a real cluster is a separate benchmark (issue 10).

use std::collections::{BTreeMap, BTreeSet};

use kpilot_cluster::{BrokerId, TopicName, TopicPartition};
use kpilot_rebalance::{BrokerChange, PartitionPlacement, PlanInput, plan};

fn zone(id: i32) -> Option<String> {
    Some(["a", "b", "c"][(id as usize - 1) % 3].to_string())
}

fn size_of(seed: i32, lo: u64, hi: u64) -> u64 {
    let mut x = (seed as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    lo + x % (hi - lo)
}

fn input(n: i32, partitions: i32, change: BrokerChange) -> PlanInput {
    let topic = TopicName::new("events").expect("topic");
    let parts = (0..partitions)
        .map(|p| PartitionPlacement {
            partition: TopicPartition::new(topic.clone(), p),
            replicas: (0..3).map(|k| BrokerId((p + k) % n + 1)).collect(),
            size_bytes: size_of(p, 100_000_000, 2_000_000_000),
        })
        .collect();
    let mut brokers: BTreeMap<BrokerId, Option<String>> =
        (1..=n).map(|i| (BrokerId(i), zone(i))).collect();
    if let BrokerChange::Add(ids) = &change {
        for b in ids {
            brokers.insert(*b, zone(b.0));
        }
    }
    PlanInput {
        partitions: parts,
        brokers,
        change,
    }
}

fn main() {
    let ids = |r: std::ops::RangeInclusive<i32>| r.map(BrokerId).collect::<BTreeSet<_>>();
    let cases = [
        (
            "3 brokers + 3, 300 partitions",
            input(3, 300, BrokerChange::Add(ids(4..=6))),
        ),
        (
            "3 brokers + 1, 300 partitions",
            input(3, 300, BrokerChange::Add(ids(4..=4))),
        ),
        (
            "6 brokers + 3, 600 partitions",
            input(6, 600, BrokerChange::Add(ids(7..=9))),
        ),
        (
            "6 brokers - 1, 600 partitions",
            input(6, 600, BrokerChange::Remove(ids(6..=6))),
        ),
        (
            "9 brokers - 3, 900 partitions",
            input(9, 900, BrokerChange::Remove(ids(7..=9))),
        ),
    ];
    println!(
        "| scenario | GB moved | lower bound GB | ratio | replicas moved | bytes max/min after | leader spread after |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, input) in cases {
        let p = plan(&input).expect("plan");
        let s = &p.stats;
        println!(
            "| {name} | {:.0} | {:.0} | {:.3} | {} | {:.3} | {} |",
            s.bytes_moved as f64 / 1e9,
            s.lower_bound.bytes as f64 / 1e9,
            s.ratio_to_bound,
            s.replicas_moved,
            s.after.bytes_ratio(),
            s.after.leader_spread()
        );
    }
}
