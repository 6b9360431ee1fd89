//! The executor against the in-memory cluster: the whole roll, the gate waiting for a crashed
//! broker, a broker that does not come back, and a resume after a crash.

mod common;

use kpilot_cluster::BrokerId;
use kpilot_cluster::fixtures::uniform_cluster;
use kpilot_roll::fake::{FakeCluster, FakeOp};
use kpilot_roll::gate;
use kpilot_roll::{GateRules, MemoryStore, RollError, RollEvent, RollOptions, RollStatus, Roller};

use common::{CheckedFleet, CrashingStore, fast, size};

#[tokio::test]
async fn rolls_every_broker_one_at_a_time_and_restores_preferred_leaders() {
    let fake = FakeCluster::new(
        uniform_cluster(3, &[("orders", 6, 3, 2), ("events", 4, 3, 2)]),
        Some(size("m7g.large")),
    );
    let fleet = CheckedFleet {
        fake: &fake,
        rules: GateRules::default(),
    };
    let mut events = Vec::new();
    let mut store = MemoryStore::default();
    let report = Roller::new(&fake, &fleet, fast(), |e: &RollEvent| {
        events.push(e.clone())
    })
    .run(&RollOptions::new(size("m7g.xlarge")), &mut store)
    .await
    .expect("roll");
    assert_eq!(report.status, RollStatus::Completed);
    assert!(report.final_not_preferred.is_empty());
    for b in 1..=3 {
        assert_eq!(fake.size_of(BrokerId(b)), Some(size("m7g.xlarge")));
    }
    // Stop, resize, start of one broker never interleave with another's.
    let ops = fake.ops();
    assert_eq!(ops.len(), 9, "{ops:?}");
    for chunk in ops.chunks(3) {
        let FakeOp::Stop(b) = chunk[0] else {
            panic!("{ops:?}")
        };
        assert_eq!(chunk[1], FakeOp::Resize(b, size("m7g.xlarge")));
        assert_eq!(chunk[2], FakeOp::Start(b));
    }
    // The active controller (broker 1 in the fixture) goes last.
    assert_eq!(ops[6], FakeOp::Stop(BrokerId(1)));
    assert_eq!(fake.max_down(), 1);
    assert!(gate::not_preferred(&fake.state(), None).is_empty());
    // Every step was recorded before and after: the store saw each phase of each broker.
    let last = store.history.last().expect("saved");
    assert!(
        last.nodes
            .iter()
            .all(|n| n.phase == kpilot_roll::Phase::Done)
    );
    assert!(store.history.len() >= 3 * 9 + 2);
}

#[tokio::test]
async fn the_gate_waits_for_a_crashed_broker_naming_partitions_then_proceeds() {
    let fake = FakeCluster::new(uniform_cluster(3, &[("orders", 6, 3, 2)]), None);
    fake.crash(BrokerId(3), Some(30));
    let fleet = CheckedFleet {
        fake: &fake,
        rules: GateRules::default(),
    };
    let mut events = Vec::new();
    let mut options = RollOptions::new(size("m7g.xlarge"));
    options.only = Some([BrokerId(1)].into());
    let report = Roller::new(&fake, &fleet, fast(), |e: &RollEvent| {
        events.push(e.clone())
    })
    .run(&options, &mut MemoryStore::default())
    .await
    .expect("roll proceeds once broker 3 is back");
    assert_eq!(report.status, RollStatus::Completed);
    let waiting: Vec<&RollEvent> = events
        .iter()
        .filter(|e| matches!(e, RollEvent::GateWaiting { .. }))
        .collect();
    let RollEvent::GateWaiting { verdict, .. } = waiting.first().expect("the gate made it wait")
    else {
        unreachable!()
    };
    assert!(
        verdict.to_string().contains("orders-"),
        "names partitions: {verdict}"
    );
    assert!(
        verdict.to_string().contains("broker(s) 3 are down"),
        "{verdict}"
    );
    // Never two down: broker 1 stopped only after broker 3 was back.
    assert_eq!(fake.max_down(), 1);
}

#[tokio::test]
async fn a_broker_that_does_not_come_back_halts_the_roll() {
    let fake = FakeCluster::new(uniform_cluster(3, &[("orders", 6, 3, 2)]), None);
    fake.never_return(BrokerId(2));
    let fleet = CheckedFleet {
        fake: &fake,
        rules: GateRules::default(),
    };
    let mut settings = fast();
    settings.start_timeout = std::time::Duration::from_millis(200);
    let mut store = MemoryStore::default();
    let err = Roller::new(&fake, &fleet, settings, |_: &RollEvent| {})
        .run(&RollOptions::new(size("m7g.xlarge")), &mut store)
        .await
        .expect_err("halts");
    assert!(
        matches!(
            err,
            RollError::NotBack {
                node: BrokerId(2),
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("no other node was stopped"));
    // Broker 2 is the first rolled (1 is the active controller, 2 < 3); nothing after it.
    assert_eq!(
        fake.ops(),
        vec![
            FakeOp::Stop(BrokerId(2)),
            FakeOp::Resize(BrokerId(2), size("m7g.xlarge")),
            FakeOp::Start(BrokerId(2)),
        ]
    );
    let journal = store.history.last().expect("saved");
    assert!(matches!(
        journal.status,
        RollStatus::Halted {
            node: Some(BrokerId(2)),
            ..
        }
    ));
    let report = kpilot_roll::RollReport::from_journal(journal);
    assert!(
        report.render().contains("HALTED at node 2"),
        "{}",
        report.render()
    );
    // The reason once (on the status line), not again as the node's error.
    assert_eq!(
        report
            .render()
            .matches("did not come back within 0.2s")
            .count(),
        1,
        "{}",
        report.render()
    );
}

#[tokio::test]
async fn a_crash_at_any_save_resumes_to_a_correct_roll() {
    // Count the saves of an uninterrupted roll, then crash at each one in turn.
    let total = {
        let fake = FakeCluster::new(uniform_cluster(3, &[("orders", 6, 3, 2)]), None);
        let mut store = MemoryStore::default();
        Roller::new(&fake, &fake, fast(), |_: &RollEvent| {})
            .run(&RollOptions::new(size("m7g.xlarge")), &mut store)
            .await
            .expect("roll");
        store.history.len()
    };
    for crash_at in 1..=total {
        let fake = FakeCluster::new(uniform_cluster(3, &[("orders", 6, 3, 2)]), None);
        let fleet = CheckedFleet {
            fake: &fake,
            rules: GateRules::default(),
        };
        let mut memory = MemoryStore::default();
        let options = RollOptions::new(size("m7g.xlarge"));
        {
            let mut crashing = CrashingStore {
                inner: &mut memory,
                saves: 0,
                crash_at,
            };
            let result = Roller::new(&fake, &fleet, fast(), |_: &RollEvent| {})
                .run(&options, &mut crashing)
                .await;
            assert!(result.is_err(), "crash at save {crash_at} interrupts");
        }
        let report = Roller::new(&fake, &fleet, fast(), |_: &RollEvent| {})
            .run(&options, &mut memory)
            .await
            .unwrap_or_else(|e| panic!("resume after a crash at save {crash_at}: {e}"));
        assert_eq!(report.status, RollStatus::Completed, "crash at {crash_at}");
        assert_eq!(fake.max_down(), 1, "crash at {crash_at}");
        for b in 1..=3 {
            assert_eq!(fake.size_of(BrokerId(b)), Some(size("m7g.xlarge")));
        }
        assert!(gate::not_preferred(&fake.state(), None).is_empty());
        let stops = fake
            .ops()
            .iter()
            .filter(|op| matches!(op, FakeOp::Stop(_)))
            .count();
        assert!(
            stops <= 4,
            "at most one repeated stop, crash at {crash_at}: {stops}"
        );
    }
}

#[tokio::test]
async fn fragile_topics_are_refused_before_anything_stops() {
    let fake = FakeCluster::new(
        uniform_cluster(3, &[("orders", 6, 3, 2), ("fragile", 2, 2, 2)]),
        None,
    );
    let err = Roller::new(&fake, &fake, fast(), |_: &RollEvent| {})
        .run(
            &RollOptions::new(size("m7g.xlarge")),
            &mut MemoryStore::default(),
        )
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains("fragile (RF 2, min ISR 2)"),
        "{err}"
    );
    assert!(fake.ops().is_empty());
}

#[tokio::test]
async fn a_principal_that_may_not_elect_is_refused_before_anything_stops() {
    let fake = FakeCluster::new(
        uniform_cluster(3, &[("orders", 6, 3, 2)]),
        Some(size("m7g.large")),
    );
    fake.refuse_elections();
    let options = RollOptions::new(size("m7g.xlarge"));
    let mut store = MemoryStore::default();
    let err = Roller::new(&fake, &fake, fast(), |_: &RollEvent| {})
        .run(&options, &mut store)
        .await
        .expect_err("refused");
    assert!(matches!(err, RollError::MayNotElect(_)), "{err}");
    let text = err.to_string();
    for needed in ["this run stopped no broker", "Alter ACL on the cluster"] {
        assert!(text.contains(needed), "{needed:?} not in {text}");
    }
    assert!(fake.ops().is_empty());
    assert!(
        store.history.is_empty(),
        "no journal for a roll that never started"
    );
    // The dry run still shows the plan, and the refusal a run would meet.
    let dry = Roller::new(&fake, &fake, fast(), |_: &RollEvent| {})
        .dry_run(&options, &store)
        .await
        .expect("a dry run plans even when a run would be refused");
    assert_eq!(dry.plan.steps.len(), 3);
    assert_eq!(dry.refused.as_deref(), Some(text.as_str()));
    assert!(fake.ops().is_empty());
    // With the permission, nothing is refused.
    let fake = FakeCluster::new(
        uniform_cluster(3, &[("orders", 6, 3, 2)]),
        Some(size("m7g.large")),
    );
    let dry = Roller::new(&fake, &fake, fast(), |_: &RollEvent| {})
        .dry_run(&options, &store)
        .await
        .expect("dry run");
    assert_eq!(dry.refused, None);
}

/// A rerun that names other nodes than the unfinished roll, between nodes (halted at the
/// gate): it rolls the nodes it names instead of resuming the others' journal.
#[tokio::test]
async fn a_rerun_naming_other_brokers_between_nodes_rolls_them_not_the_journals() {
    let fake = FakeCluster::new(uniform_cluster(3, &[("orders", 6, 3, 2)]), None);
    fake.crash(BrokerId(3), None);
    let mut settings = fast();
    settings.gate_timeout = std::time::Duration::from_millis(200);
    let mut store = MemoryStore::default();
    let mut first = RollOptions::new(size("m7g.xlarge"));
    first.only = Some([BrokerId(1)].into());
    let err = Roller::new(&fake, &fake, settings.clone(), |_: &RollEvent| {})
        .run(&first, &mut store)
        .await
        .expect_err("the gate stays closed while broker 3 is down");
    assert!(matches!(err, RollError::GateTimeout { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("the gate stayed closed for 0.2s; "),
        "{err}"
    );
    let mut second = RollOptions::new(size("m7g.xlarge"));
    second.only = Some([BrokerId(3)].into());
    let report = Roller::new(&fake, &fake, settings, |_: &RollEvent| {})
        .run(&second, &mut store)
        .await
        .expect("rolls broker 3, not the journal's broker 1");
    assert_eq!(report.status, RollStatus::Completed);
    let rolled: Vec<BrokerId> = report.nodes.iter().map(|n| n.id).collect();
    assert_eq!(rolled, vec![BrokerId(3)]);
    assert_eq!(fake.size_of(BrokerId(3)), Some(size("m7g.xlarge")));
}

/// A rerun that names other nodes while the journal's node is in flight is refused, naming
/// both selections and the ways out, and touches nothing.
#[tokio::test]
async fn a_rerun_naming_other_brokers_with_a_node_in_flight_is_refused() {
    let fake = FakeCluster::new(uniform_cluster(3, &[("orders", 6, 3, 2)]), None);
    fake.never_return(BrokerId(2));
    let mut settings = fast();
    settings.start_timeout = std::time::Duration::from_millis(200);
    let mut store = MemoryStore::default();
    let mut first = RollOptions::new(size("m7g.xlarge"));
    first.only = Some([BrokerId(2)].into());
    Roller::new(&fake, &fake, settings.clone(), |_: &RollEvent| {})
        .run(&first, &mut store)
        .await
        .expect_err("broker 2 does not come back");
    let ops = fake.ops().len();
    let saves = store.history.len();
    let mut second = RollOptions::new(size("m7g.xlarge"));
    second.only = Some([BrokerId(3), BrokerId(1)].into());
    let err = Roller::new(&fake, &fake, settings, |_: &RollEvent| {})
        .run(&second, &mut store)
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            RollError::SelectionConflict {
                node: BrokerId(2),
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    for needed in [
        "unfinished roll of --brokers 2",
        "this run asks for --brokers 1,3",
        "rerun with --brokers 2 to finish it first",
        "`kpilot roll --abandon`",
    ] {
        assert!(text.contains(needed), "{needed:?} not in {text}");
    }
    assert_eq!(fake.ops().len(), ops, "nothing touched");
    assert_eq!(store.history.len(), saves, "the journal is left as it was");
}

/// The time between a crash and the rerun is no run's time: the report's total and overhead
/// leave it out.
#[tokio::test]
async fn the_time_between_a_crash_and_the_rerun_is_not_overhead() {
    let fake = FakeCluster::new(uniform_cluster(3, &[("orders", 6, 3, 2)]), None);
    let mut memory = MemoryStore::default();
    let options = RollOptions::new(size("m7g.xlarge"));
    {
        let mut crashing = CrashingStore {
            inner: &mut memory,
            saves: 0,
            crash_at: 6,
        };
        Roller::new(&fake, &fake, fast(), |_: &RollEvent| {})
            .run(&options, &mut crashing)
            .await
            .expect_err("crashes");
    }
    let pause = std::time::Duration::from_millis(1500);
    tokio::time::sleep(pause).await;
    let report = Roller::new(&fake, &fake, fast(), |_: &RollEvent| {})
        .run(&options, &mut memory)
        .await
        .expect("resumes");
    assert_eq!(report.runs, 2);
    assert!(report.between_runs_ms >= 1500, "{report:?}");
    assert!(
        report.total_ms < 1500 && report.overhead_ms < 1500,
        "the pause is not counted: {report:?}"
    );
}

/// Every selected node already has the size: the plan says so instead of an empty list.
#[tokio::test]
async fn nothing_to_roll_says_so() {
    let fake = FakeCluster::new(
        uniform_cluster(3, &[("orders", 6, 3, 2)]),
        Some(size("m7g.large")),
    );
    let mut events = Vec::new();
    let report = Roller::new(&fake, &fake, fast(), |e: &RollEvent| events.push(e.clone()))
        .run(
            &RollOptions::new(size("m7g.large")),
            &mut MemoryStore::default(),
        )
        .await
        .expect("nothing to do");
    assert_eq!(report.status, RollStatus::Completed);
    let planned = events
        .iter()
        .find(|e| matches!(e, RollEvent::Planned { .. }))
        .expect("planned");
    assert_eq!(
        planned.to_string(),
        "nothing to roll: every selected node is already m7g.large"
    );
    assert!(fake.ops().is_empty());
}
