//! Integration test: a cluster as it runs on instance-local disks, with 3 broker-only nodes and
//! 3 dedicated controllers (real Kafka KRaft on 127.0.0.1).
//!
//! 1. A roll with fresh disks and no nodes named rolls the brokers only: each gets a whole new
//!    disk (a new directory id), rebuilds every replica it held and is back in every ISR; the
//!    controllers keep their processes and disks.
//! 2. A roll naming the three controllers rolls them one at a time, the active one last,
//!    each keeping its quorum state (same directory id); the quorum has a leader and every
//!    voter caught up afterwards, and the cluster still takes metadata changes.
//!
//! At most one node is down at any time in either roll.

mod real;

use std::collections::{BTreeMap, BTreeSet};

use kpilot_cluster::{BrokerId, TopicName};
use kpilot_roll::{
    FileStore, JournalStore, KafkaPort, LocalFleet, LocalSizing, RollOptions, RollStatus,
};
use real::{DownMonitor, Testbed, admin, create_topics, directory_id};

const TOPIC: &str = "ondisk";
const BROKERS: [i32; 3] = [1, 2, 3];
const CONTROLLERS: [i32; 3] = [101, 102, 103];

fn directory_ids(bed: &Testbed, nodes: &[i32]) -> BTreeMap<i32, String> {
    let dir = bed.state().dir;
    nodes
        .iter()
        .map(|n| (*n, directory_id(&dir.join(format!("node-{n}/data")))))
        .collect()
}

fn pids(bed: &Testbed, nodes: &[i32]) -> BTreeMap<i32, Option<u32>> {
    let all = bed.pids();
    nodes.iter().map(|n| (*n, all[n])).collect()
}

/// The node ids of a journal, in the order the roll took them.
fn rolled(store: &FileStore) -> Vec<i32> {
    let journal = JournalStore::load(store)
        .expect("journal")
        .expect("a journal");
    journal.nodes.iter().map(|n| n.id.0).collect()
}

#[test]
fn brokers_roll_onto_new_disks_and_dedicated_controllers_only_when_named() {
    let bed = Testbed::start_dedicated(3, 3);
    let runtime = real::runtime();
    let admin = runtime.block_on(async {
        let admin = admin(&bed.bootstrap).await;
        create_topics(&admin, &[(TOPIC, 3)]).await;
        real::fill(&admin, TOPIC, 3, 100).await;
        admin
    });
    let stored = |b: i32| {
        runtime
            .block_on(admin.stored_bytes(BrokerId(b)))
            .expect("stored bytes")
    };
    let before: BTreeMap<i32, u64> = BROKERS.iter().map(|b| (*b, stored(*b))).collect();
    assert!(
        before.values().all(|b| *b >= 25_000_000),
        "each broker holds a copy of every partition: {before:?}"
    );
    let broker_disks = directory_ids(&bed, &BROKERS);
    let controller_disks = directory_ids(&bed, &CONTROLLERS);
    let controller_pids = pids(&bed, &CONTROLLERS);

    // 1. The brokers, onto new disks; the controllers are not named, so not rolled.
    let fleet = LocalFleet::new(&bed.state_path, LocalSizing::default())
        .expect("fleet")
        .with_fresh_disks();
    let monitor = DownMonitor::start(&bed.state_path, 3);
    let mut store = FileStore::new(bed.dir.join("brokers.json"));
    let options = RollOptions::new("m7g.xlarge".parse().expect("type"));
    let report = real::roll(&runtime, &admin, &fleet, &options, &mut store, "brokers");
    let most_down = monitor.finish();
    assert_eq!(report.status, RollStatus::Completed);
    assert_eq!(
        rolled(&store).into_iter().collect::<BTreeSet<_>>(),
        BROKERS.into(),
        "the brokers, and only they, were rolled"
    );
    assert_eq!(most_down, 1, "one node down at a time");
    let new_disks = directory_ids(&bed, &BROKERS);
    for b in BROKERS {
        assert_ne!(new_disks[&b], broker_disks[&b], "broker {b} got a new disk");
        let after = stored(b);
        eprintln!("broker {b}: {} bytes before, {after} rebuilt", before[&b]);
        assert!(after >= before[&b] * 9 / 10, "broker {b} rebuilt {after}");
    }
    assert_eq!(
        pids(&bed, &CONTROLLERS),
        controller_pids,
        "controllers untouched"
    );
    assert_eq!(directory_ids(&bed, &CONTROLLERS), controller_disks);
    let in_sync = runtime.block_on(async {
        let m = admin.metadata().await.expect("metadata");
        let t = &m.topics[&TopicName::new(TOPIC).expect("name")];
        t.partitions.values().all(|p| p.isr.len() == 3)
    });
    assert!(in_sync, "every replica back in the ISR");

    // 2. The controllers, named: one at a time, the active one last, their quorum state kept
    // (the fleet's fresh disks are for brokers).
    let active = runtime
        .block_on(admin.describe_quorum())
        .expect("quorum")
        .leader
        .expect("a leader")
        .0;
    let monitor = DownMonitor::start(&bed.state_path, 3);
    let mut store = FileStore::new(bed.dir.join("controllers.json"));
    let options = RollOptions {
        only: Some(CONTROLLERS.map(BrokerId).into()),
        ..RollOptions::new("m7g.large".parse().expect("type"))
    };
    let report = real::roll(
        &runtime,
        &admin,
        &fleet,
        &options,
        &mut store,
        "controllers",
    );
    let most_down = monitor.finish();
    assert_eq!(report.status, RollStatus::Completed);
    let order = rolled(&store);
    assert_eq!(order.len(), 3, "{order:?}");
    assert_eq!(order.last(), Some(&active), "the active controller last");
    assert_eq!(most_down, 1, "one node down at a time");
    let now = pids(&bed, &CONTROLLERS);
    for c in CONTROLLERS {
        assert_ne!(now[&c], controller_pids[&c], "controller {c} was restarted");
    }
    assert_eq!(
        directory_ids(&bed, &CONTROLLERS),
        controller_disks,
        "controllers keep their quorum state"
    );
    // Every voter catches up with the quorum's committed offset (polled: the log grows).
    let began = std::time::Instant::now();
    loop {
        let quorum = runtime.block_on(admin.describe_quorum()).expect("quorum");
        let caught_up = quorum.leader.is_some()
            && quorum
                .voters
                .iter()
                .all(|v| v.log_end_offset.is_some_and(|o| o >= quorum.high_watermark));
        if caught_up {
            break;
        }
        assert!(
            began.elapsed() < std::time::Duration::from_secs(30),
            "the voters did not catch up: {quorum:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // The quorum still commits metadata: a new topic appears.
    runtime.block_on(create_topics(&admin, &[("after", 1)]));
}
