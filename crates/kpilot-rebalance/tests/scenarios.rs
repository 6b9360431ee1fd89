//! Planning scenarios: adding, removing and rebalancing brokers on realistic assignments, with
//! the bytes moved compared to the lower bound (target: at most 1.1x).

mod common;

use std::collections::BTreeSet;

use common::{add, assignment, brokers, size_of};
use kpilot_cluster::BrokerId;
use kpilot_rebalance::{BrokerChange, PlanError, PlanInput, plan};

#[test]
fn adding_three_brokers_to_three_moves_little_more_than_the_bound() {
    let parts = assignment(3, 300, 3, |p| size_of(p, 100_000_000, 2_000_000_000));
    let input = add(3, &[4, 5, 6], parts);
    let plan = plan(&input).expect("plan");
    let s = &plan.stats;
    assert!(s.balanced, "{s:#?}");
    assert!(s.zones_distinct);
    assert!(s.bytes_moved >= s.lower_bound.bytes);
    assert!(s.ratio_to_bound <= 1.1, "ratio {}", s.ratio_to_bound);
    // Every new broker gets data; leaders spread within one.
    for b in [4, 5, 6] {
        assert!(s.after.bytes[&BrokerId(b)] > 0);
    }
    assert!(s.after.leader_spread() <= 1, "{:?}", s.after.leaders);
}

#[test]
fn adding_one_broker_to_three() {
    let parts = assignment(3, 120, 3, |p| size_of(p, 1_000_000, 50_000_000));
    let plan = plan(&add(3, &[4], parts)).expect("plan");
    let s = &plan.stats;
    assert!(s.balanced, "{s:#?}");
    assert!(s.ratio_to_bound <= 1.1, "ratio {}", s.ratio_to_bound);
}

#[test]
fn removing_a_broker_drains_it_completely() {
    let parts = assignment(6, 240, 3, |p| size_of(p, 10_000_000, 500_000_000));
    let input = PlanInput {
        partitions: parts,
        brokers: brokers(6),
        change: BrokerChange::Remove(BTreeSet::from([BrokerId(6)])),
    };
    let plan = plan(&input).expect("plan");
    let s = &plan.stats;
    assert!(!s.after.bytes.contains_key(&BrokerId(6)));
    for (tp, replicas) in &plan.assignment {
        assert!(!replicas.contains(&BrokerId(6)), "{tp}");
    }
    assert!(s.balanced, "{s:#?}");
    assert!(s.zones_distinct);
    assert!(s.ratio_to_bound <= 1.1, "ratio {}", s.ratio_to_bound);
}

#[test]
fn a_balanced_cluster_needs_no_moves() {
    let parts = assignment(6, 600, 3, |_| 1_000_000);
    let input = PlanInput {
        partitions: parts,
        brokers: brokers(6),
        change: BrokerChange::Rebalance,
    };
    let plan = plan(&input).expect("plan");
    assert_eq!(plan.stats.bytes_moved, 0);
    assert!(plan.moves.is_empty());
}

#[test]
fn a_skewed_cluster_is_rebalanced() {
    // Partitions on brokers 1-3 are ten times bigger than on 4-6.
    let parts = assignment(6, 300, 3, |p| {
        if p % 6 < 3 {
            1_000_000_000
        } else {
            100_000_000
        }
    });
    let input = PlanInput {
        partitions: parts,
        brokers: brokers(6),
        change: BrokerChange::Rebalance,
    };
    let before = plan(&input).expect("plan");
    assert!(before.stats.balanced, "{:#?}", before.stats);
    assert!(before.stats.after.bytes_ratio() < before.stats.before.bytes_ratio());
}

#[test]
fn bad_changes_are_refused_with_the_broker_named() {
    let parts = assignment(3, 30, 3, |_| 1);
    let err = plan(&PlanInput {
        partitions: parts.clone(),
        brokers: brokers(3),
        change: BrokerChange::Remove(BTreeSet::from([BrokerId(3)])),
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            PlanError::TooFewBrokers {
                replicas: 3,
                brokers: 2,
                ..
            }
        ),
        "{err}"
    );
    let err = plan(&PlanInput {
        partitions: parts.clone(),
        brokers: brokers(3),
        change: BrokerChange::Remove(BTreeSet::from([BrokerId(9)])),
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "broker 9 is not in the cluster, so it cannot be removed"
    );
    let err = plan(&add(3, &[3], parts)).unwrap_err();
    assert!(
        err.to_string().contains("broker 3 already holds replicas"),
        "{err}"
    );
}

#[test]
fn same_input_same_plan() {
    let parts = assignment(3, 90, 3, |p| size_of(p, 1, 1000));
    let a = plan(&add(3, &[4, 5], parts.clone())).expect("plan");
    let b = plan(&add(3, &[4, 5], parts)).expect("plan");
    assert_eq!(a, b);
}
