//! On a real 3-broker cluster: the gate refuses to stop a broker while another is down (a
//! partition at min ISR), naming the partitions, and proceeds by itself once the cluster
//! recovers; then a broker that does not come back halts the roll with a clear report and no
//! other broker is stopped; rerunning continues at that broker and finishes.

mod real;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use kpilot_cluster::BrokerId;
use kpilot_roll::{
    FileStore, JournalStore, LocalFleet, LocalSizing, RollError, RollEvent, RollOptions,
    RollReport, RollStatus, Roller, Settings,
};
use real::{DownMonitor, Testbed, admin, create_topics};

#[test]
fn gate_waits_for_recovery_and_a_broker_that_does_not_return_halts() {
    let bed = Testbed::start(3);
    let runtime = real::runtime();
    let admin = runtime.block_on(async {
        let admin = admin(&bed.bootstrap).await;
        create_topics(&admin, &[("orders", 6), ("events", 3)]).await;
        admin
    });
    let settings = Settings {
        gate_timeout: Duration::from_secs(180),
        progress_every: Duration::from_secs(2),
        ..Settings::default()
    };

    // 1. Broker 3 is down; rolling broker 1 must wait, naming partitions, then proceed.
    bed.stop(3);
    let monitor = DownMonitor::start(&bed.state_path, 3);
    let pid_before = bed.pids()[&1];
    let (tx, rx) = mpsc::channel::<RollEvent>();
    let events = Arc::new(Mutex::new(Vec::new()));
    let healer = {
        let state_path = bed.state_path.clone();
        std::thread::spawn(move || {
            // Wait until the gate reports that it waits, then bring broker 3 back.
            let first = rx
                .iter()
                .find(|e| matches!(e, RollEvent::GateWaiting { .. }));
            std::thread::sleep(Duration::from_secs(3));
            let mut s = kpilot_testbed::ClusterState::load(&state_path)
                .expect("load")
                .expect("state");
            s.start_broker(
                3,
                &kpilot_testbed::NodeLaunch::default(),
                Duration::from_secs(120),
            )
            .expect("restart broker 3");
            s.save(&state_path).expect("save");
            first
        })
    };
    let fleet = LocalFleet::new(&bed.state_path, LocalSizing::default()).expect("fleet");
    let mut options = RollOptions::new("m7g.large".parse().expect("type"));
    options.only = Some([BrokerId(1)].into());
    let mut store = FileStore::new(bed.dir.join("gate.json"));
    let sink = events.clone();
    let report = runtime
        .block_on(async {
            Roller::new(&admin, &fleet, settings.clone(), |e: &RollEvent| {
                eprintln!("roll: {e}");
                sink.lock().expect("events").push(e.clone());
                let _ = tx.send(e.clone());
            })
            .run(&options, &mut store)
            .await
        })
        .expect("the roll proceeds once broker 3 is back");
    let first_wait = healer
        .join()
        .expect("healer")
        .expect("the gate made the roll wait");
    assert_eq!(report.status, RollStatus::Completed);
    let RollEvent::GateWaiting { verdict, .. } = &first_wait else {
        unreachable!()
    };
    let text = verdict.to_string();
    assert!(
        text.contains("would go below min.insync.replicas"),
        "{text}"
    );
    assert!(
        text.contains("orders-") || text.contains("events-"),
        "names partitions: {text}"
    );
    assert!(text.contains("broker(s) 3 are down"), "{text}");
    assert_ne!(bed.pids()[&1], pid_before, "broker 1 was restarted");
    assert_eq!(monitor.finish(), 1, "never two brokers down");

    // 2. A broker that does not come back halts the roll; no other broker is stopped.
    let mut options = RollOptions::new("m7g.xlarge".parse().expect("type"));
    options.only = Some([BrokerId(2), BrokerId(3)].into());
    let plan_first = runtime.block_on(async {
        let fleet = LocalFleet::new(&bed.state_path, LocalSizing::default()).expect("fleet");
        let store = FileStore::new(bed.dir.join("halt.json"));
        Roller::new(&admin, &fleet, settings.clone(), |_: &RollEvent| {})
            .dry_run(&options, &store)
            .await
            .expect("dry run")
            .plan
            .steps[0]
            .id
    });
    let other = if plan_first == BrokerId(2) {
        BrokerId(3)
    } else {
        BrokerId(2)
    };
    let other_pid = bed.pids()[&other.0];
    let broken = LocalFleet::new(&bed.state_path, LocalSizing::default())
        .expect("fleet")
        .with_extra_jvm_args(plan_first, vec!["-XX:+KpilotNoSuchJvmFlag".to_string()]);
    let mut store = FileStore::new(bed.dir.join("halt.json"));
    let err = runtime
        .block_on(async {
            Roller::new(&admin, &broken, settings.clone(), |e: &RollEvent| {
                eprintln!("roll: {e}")
            })
            .run(&options, &mut store)
            .await
        })
        .expect_err("the roll halts");
    assert!(
        matches!(&err, RollError::Fleet(kpilot_roll::FleetError::Start { node, .. }) if *node == plan_first),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&format!("starting node {plan_first} failed")),
        "{err}"
    );
    assert_eq!(
        bed.pids()[&other.0],
        other_pid,
        "no other broker was stopped"
    );
    let journal = store.load().expect("load").expect("journal");
    assert!(matches!(journal.status, RollStatus::Halted { node: Some(n), .. } if n == plan_first));
    let rendered = RollReport::from_journal(&journal).render();
    assert!(
        rendered.contains(&format!("HALTED at node {plan_first}")),
        "{rendered}"
    );
    eprintln!("{rendered}");

    // 3. Rerun with a working fleet: it continues at the halted broker and finishes.
    let fleet = LocalFleet::new(&bed.state_path, LocalSizing::default()).expect("fleet");
    let report = runtime
        .block_on(async {
            Roller::new(&admin, &fleet, settings, |e: &RollEvent| {
                eprintln!("roll: {e}")
            })
            .run(&options, &mut store)
            .await
        })
        .expect("the rerun finishes");
    assert_eq!(report.status, RollStatus::Completed);
    assert_eq!(report.runs, 2);
    let done: BTreeSet<BrokerId> = report.nodes.iter().map(|n| n.id).collect();
    assert_eq!(done, [BrokerId(2), BrokerId(3)].into());
    assert_ne!(
        bed.pids()[&other.0],
        other_pid,
        "the other broker was rolled after"
    );
    admin.close();
}
