//! Rolls onto empty disks against the in-memory cluster: each node's rebuild is throttled
//! from before its stop until it is back in every ISR, recorded in the journal, and a run
//! interrupted at any save still ends with every throttle lifted.

mod common;

use std::collections::BTreeMap;

use kpilot_cluster::BrokerId;
use kpilot_cluster::fixtures::uniform_cluster;
use kpilot_roll::fake::{FakeCluster, FakeOp};
use kpilot_roll::{
    Fleet, GateRules, MemoryStore, RollError, RollEvent, RollOptions, RollStatus, Roller,
};

use common::{CheckedFleet, CrashingStore, fast, size};

const STORED: u64 = 5_000_000;
const THROTTLE: u64 = 1_000_000;

fn fake() -> FakeCluster {
    FakeCluster::new(
        uniform_cluster(3, &[("orders", 6, 3, 2), ("events", 4, 3, 2)]),
        Some(size("m7g.large")),
    )
    .with_fresh_disks(STORED)
}

fn options() -> RollOptions {
    RollOptions {
        rebuild_throttle_bytes_per_s: Some(THROTTLE),
        ..RollOptions::new(size("m7g.xlarge"))
    }
}

/// How many journal saves a whole roll of [`fake`] makes.
async fn saves_of_a_whole_roll() -> usize {
    let fake = fake();
    let mut store = MemoryStore::default();
    Roller::new(&fake, &fake, fast(), |_: &RollEvent| {})
        .run(&options(), &mut store)
        .await
        .expect("roll");
    store.history.len()
}

/// The journals of a roll of `fake` that crashed at save `crash_at` (that save not made).
async fn crashed_at(fake: &FakeCluster, fleet: &impl Fleet, crash_at: usize) -> MemoryStore {
    let mut memory = MemoryStore::default();
    let mut crashing = CrashingStore {
        inner: &mut memory,
        saves: 0,
        crash_at,
    };
    let result = Roller::new(fake, fleet, fast(), |_: &RollEvent| {})
        .run(&options(), &mut crashing)
        .await;
    assert!(result.is_err(), "crash at save {crash_at} interrupts");
    memory
}

/// Per node, whether its rebuild throttle is still set after `ops`.
fn throttled_after(ops: &[FakeOp]) -> BTreeMap<BrokerId, bool> {
    let mut set = BTreeMap::new();
    for op in ops {
        match op {
            FakeOp::Throttle(n, _) => {
                set.insert(*n, true);
            }
            FakeOp::Lift(n) => {
                set.insert(*n, false);
            }
            _ => {}
        }
    }
    set
}

#[tokio::test]
async fn each_rebuild_is_throttled_from_before_the_stop_until_the_node_is_back() {
    let fake = fake();
    let fleet = CheckedFleet {
        fake: &fake,
        rules: GateRules::default(),
    };
    let mut events = Vec::new();
    let mut store = MemoryStore::default();
    let report = Roller::new(&fake, &fleet, fast(), |e: &RollEvent| {
        events.push(e.clone())
    })
    .run(&options(), &mut store)
    .await
    .expect("roll");
    assert_eq!(report.status, RollStatus::Completed);
    let ops = fake.ops();
    assert_eq!(ops.len(), 15, "{ops:?}");
    for chunk in ops.chunks(5) {
        let FakeOp::Throttle(b, rate) = chunk[0] else {
            panic!("the throttle comes first: {ops:?}")
        };
        assert_eq!(rate, Some(THROTTLE));
        assert_eq!(chunk[1], FakeOp::Stop(b));
        assert_eq!(chunk[2], FakeOp::Resize(b, size("m7g.xlarge")));
        assert_eq!(chunk[3], FakeOp::Start(b));
        assert_eq!(
            chunk[4],
            FakeOp::Lift(b),
            "lifted before the next node: {ops:?}"
        );
    }
    assert_eq!(fake.max_down(), 1);
    let journal = store.history.last().expect("saved");
    for n in &journal.nodes {
        let r = n.rebuild.as_ref().expect("rebuild recorded");
        assert_eq!(r.bytes, Some(STORED));
        assert!(!r.applied);
        assert_eq!(r.throttle_bytes_per_s, Some(THROTTLE));
        assert_eq!(r.topics, ["events", "orders"]);
        // Every partition it hosts, with its replicas, for the throttled-replica lists.
        for (topic, partitions) in &r.partitions {
            assert!(!partitions.is_empty(), "{topic}: {r:?}");
            assert!(partitions.values().all(|rs| rs.contains(&n.id)), "{r:?}");
        }
        assert_eq!(
            r.partitions.keys().collect::<Vec<_>>(),
            ["events", "orders"]
        );
        assert_eq!(r.senders.len(), 2);
        assert!(!r.senders.contains(&n.id));
    }
    let rebuilt = events
        .iter()
        .filter(|e| matches!(e, RollEvent::Rebuilt { bytes: STORED, .. }))
        .count();
    assert_eq!(rebuilt, 3, "{events:?}");
}

#[tokio::test]
async fn without_fresh_disks_or_without_a_throttle_nothing_is_throttled() {
    // Network storage: no rebuild at all.
    let plain = FakeCluster::new(uniform_cluster(3, &[("orders", 6, 3, 2)]), None);
    let mut store = MemoryStore::default();
    Roller::new(&plain, &plain, fast(), |_: &RollEvent| {})
        .run(&options(), &mut store)
        .await
        .expect("roll");
    assert!(
        !plain
            .ops()
            .iter()
            .any(|op| matches!(op, FakeOp::Throttle(..) | FakeOp::Lift(_)))
    );
    assert!(
        store
            .history
            .last()
            .expect("saved")
            .nodes
            .iter()
            .all(|n| n.rebuild.is_none())
    );
    // Empty disks, no throttle: the rebuild is measured, nothing is set.
    let fresh = fake();
    let mut store = MemoryStore::default();
    Roller::new(&fresh, &fresh, fast(), |_: &RollEvent| {})
        .run(&RollOptions::new(size("m7g.xlarge")), &mut store)
        .await
        .expect("roll");
    assert!(
        !fresh
            .ops()
            .iter()
            .any(|op| matches!(op, FakeOp::Throttle(..) | FakeOp::Lift(_)))
    );
    let journal = store.history.last().expect("saved");
    assert!(journal.nodes.iter().all(|n| {
        n.rebuild
            .as_ref()
            .is_some_and(|r| r.bytes == Some(STORED) && r.throttle_bytes_per_s.is_none())
    }));
}

#[tokio::test]
async fn a_crash_at_any_save_still_ends_with_every_throttle_lifted() {
    let total = saves_of_a_whole_roll().await;
    for crash_at in 1..=total {
        let fake = fake();
        let fleet = CheckedFleet {
            fake: &fake,
            rules: GateRules::default(),
        };
        let mut memory = crashed_at(&fake, &fleet, crash_at).await;
        let report = Roller::new(&fake, &fleet, fast(), |_: &RollEvent| {})
            .run(&options(), &mut memory)
            .await
            .unwrap_or_else(|e| panic!("resume after a crash at save {crash_at}: {e}"));
        assert_eq!(report.status, RollStatus::Completed, "crash at {crash_at}");
        assert_eq!(fake.max_down(), 1, "crash at {crash_at}");
        let ops = fake.ops();
        let left = throttled_after(&ops);
        assert!(
            left.values().all(|set| !set),
            "a throttle left set, crash at {crash_at}: {ops:?}"
        );
        // Every node that stopped was throttled before its (first) stop.
        for (i, op) in ops.iter().enumerate() {
            if let FakeOp::Stop(n) = op {
                assert!(
                    ops[..i]
                        .iter()
                        .any(|o| matches!(o, FakeOp::Throttle(m, _) if m == n)),
                    "node {n} stopped unthrottled, crash at {crash_at}: {ops:?}"
                );
            }
        }
        let journal = memory.history.last().expect("saved");
        assert!(
            journal.nodes.iter().all(|n| n
                .rebuild
                .as_ref()
                .is_some_and(|r| r.bytes == Some(STORED) && !r.applied)),
            "crash at {crash_at}: {journal:?}"
        );
    }
}

#[tokio::test]
async fn throttles_someone_else_set_refuse_a_throttled_rebuild_before_anything_stops() {
    let left = "topic orders leader.replication.throttled.replicas=0:1";
    let fake = fake();
    fake.leave_throttle(left);
    let mut store = MemoryStore::default();
    let err = Roller::new(&fake, &fake, fast(), |_: &RollEvent| {})
        .run(&options(), &mut store)
        .await
        .expect_err("refused");
    assert!(matches!(err, RollError::ThrottlesSet { .. }), "{err}");
    let text = err.to_string();
    for needed in ["this run stopped no broker", left] {
        assert!(text.contains(needed), "{needed:?} not in {text}");
    }
    assert!(fake.ops().is_empty(), "{:?}", fake.ops());
    assert!(
        store.history.is_empty(),
        "no journal for a roll that never started"
    );
    // The dry run shows the plan and the same refusal.
    let dry = Roller::new(&fake, &fake, fast(), |_: &RollEvent| {})
        .dry_run(&options(), &store)
        .await
        .expect("dry run");
    assert_eq!(dry.refused.as_deref(), Some(text.as_str()));
    // Unthrottled rebuilds touch no throttle config: nothing to refuse.
    Roller::new(&fake, &fake, fast(), |_: &RollEvent| {})
        .run(&RollOptions::new(size("m7g.xlarge")), &mut store)
        .await
        .expect("an unthrottled roll runs");
}

#[tokio::test]
async fn a_principal_that_may_not_throttle_is_refused_before_anything_stops() {
    let fake = fake();
    fake.refuse_throttles();
    let mut store = MemoryStore::default();
    let err = Roller::new(&fake, &fake, fast(), |_: &RollEvent| {})
        .run(&options(), &mut store)
        .await
        .expect_err("refused");
    assert!(matches!(err, RollError::MayNotThrottle(_)), "{err}");
    let text = err.to_string();
    for needed in [
        "this run stopped no broker",
        "may not set the brokers' throttle rates",
        "AlterConfigs ACL on the cluster",
    ] {
        assert!(text.contains(needed), "{needed:?} not in {text}");
    }
    assert!(fake.ops().is_empty(), "{:?}", fake.ops());
    assert!(
        store.history.is_empty(),
        "no journal for a roll that never started"
    );
    // The dry run shows the plan and the same refusal.
    let dry = Roller::new(&fake, &fake, fast(), |_: &RollEvent| {})
        .dry_run(&options(), &store)
        .await
        .expect("dry run");
    assert_eq!(dry.plan.steps.len(), 3);
    assert_eq!(dry.refused.as_deref(), Some(text.as_str()));
    // Unthrottled rebuilds set no throttle config: nothing to refuse.
    Roller::new(&fake, &fake, fast(), |_: &RollEvent| {})
        .run(&RollOptions::new(size("m7g.xlarge")), &mut store)
        .await
        .expect("an unthrottled roll runs");
}

#[tokio::test]
async fn throttles_set_during_the_roll_halt_it_before_the_next_node_stops() {
    let left = "broker 3 leader.replication.throttled.rate=10000000";
    let fake = fake();
    let mut store = MemoryStore::default();
    // A reassignment sets its throttle while the first node rebuilds.
    let err = Roller::new(&fake, &fake, fast(), |e: &RollEvent| {
        if matches!(e, RollEvent::RebuildThrottled { .. }) && fake.ops().len() < 5 {
            fake.leave_throttle(left);
        }
    })
    .run(&options(), &mut store)
    .await
    .expect_err("halted");
    let RollError::ThrottlesSetDuringRoll { node, .. } = &err else {
        panic!("{err}")
    };
    let text = err.to_string();
    for needed in [
        &format!("before node {node}, which was not stopped"),
        left,
        "rerun",
    ] {
        assert!(text.contains(needed), "{needed:?} not in {text}");
    }
    // The first node rolled whole (its own throttle lifted); the next one never stopped.
    let ops = fake.ops();
    assert_eq!(ops.len(), 5, "{ops:?}");
    let FakeOp::Stop(first) = ops[1] else {
        panic!("{ops:?}")
    };
    assert_eq!(ops[4], FakeOp::Lift(first), "{ops:?}");
    assert!(!ops.contains(&FakeOp::Stop(*node)), "{ops:?}");
    let journal = store.history.last().expect("saved");
    assert!(
        journal.in_flight().is_none(),
        "no node in flight: {journal:?}"
    );
    assert!(matches!(journal.status, RollStatus::Halted { .. }));

    // Once it is gone, a rerun continues with that node and finishes.
    fake.clear_throttles();
    let report = Roller::new(&fake, &fake, fast(), |_: &RollEvent| {})
        .run(&options(), &mut store)
        .await
        .expect("the rerun finishes");
    assert_eq!(report.status, RollStatus::Completed);
    assert_eq!(fake.max_down(), 1);
    assert!(fake.ops().contains(&FakeOp::Stop(*node)));
}

#[tokio::test]
async fn abandoning_after_a_crash_at_any_save_leaves_no_throttle_set() {
    let total = saves_of_a_whole_roll().await;
    // The last save completes the roll: nothing is left to abandon after it.
    for crash_at in 1..total {
        let fake = fake();
        let mut memory = crashed_at(&fake, &fake, crash_at).await;
        let before = fake.ops().len();
        match kpilot_roll::abandon(&fake, &mut memory, "memory").await {
            Ok(abandoned) => {
                let journal = memory.history.last().expect("saved");
                assert!(
                    matches!(journal.status, RollStatus::Abandoned { .. }),
                    "crash at {crash_at}: {journal:?}"
                );
                assert!(
                    journal
                        .nodes
                        .iter()
                        .all(|n| n.rebuild.as_ref().is_none_or(|r| !r.applied)),
                    "crash at {crash_at}: {journal:?}"
                );
                assert_eq!(
                    abandoned.in_flight.map(|(n, _)| n),
                    match &journal.status {
                        RollStatus::Abandoned { node, .. } => *node,
                        _ => None,
                    }
                );
                let text = abandoned.to_string();
                assert!(text.contains("abandoned"), "{text}");
                // Abandoning it again: nothing to abandon.
                let again = kpilot_roll::abandon(&fake, &mut memory, "memory").await;
                assert!(
                    matches!(again, Err(RollError::NothingToAbandon { ref why, .. }) if why.contains("abandoned already")),
                    "{again:?}"
                );
            }
            Err(RollError::NothingToAbandon { why, .. }) => {
                assert!(memory.history.is_empty(), "crash at {crash_at}: {why}");
            }
            Err(e) => panic!("crash at {crash_at}: {e}"),
        }
        // Only lifts were added, and nothing is left throttled.
        let ops = fake.ops();
        assert!(
            ops[before..].iter().all(|o| matches!(o, FakeOp::Lift(_))),
            "crash at {crash_at}: {ops:?}"
        );
        let left = throttled_after(&ops);
        assert!(
            left.values().all(|set| !set),
            "a throttle left set after abandoning, crash at {crash_at}: {ops:?}"
        );
        // A node left down stays down (nothing is started): the user starts it. Then the
        // next roll starts anew and completes.
        if let Some((node, phase)) = memory.history.last().and_then(|j| match j.status {
            RollStatus::Abandoned { node, phase } => node.zip(phase),
            _ => None,
        }) && phase.may_be_down()
        {
            Fleet::start(&fake, node)
                .await
                .expect("start the node left down");
        }
        let report = Roller::new(&fake, &fake, fast(), |_: &RollEvent| {})
            .run(&options(), &mut memory)
            .await
            .unwrap_or_else(|e| panic!("a new roll after abandoning at {crash_at}: {e}"));
        assert_eq!(report.status, RollStatus::Completed);
        assert_eq!(
            memory.history.last().expect("saved").runs,
            1,
            "a new journal, crash at {crash_at}"
        );
    }
}
