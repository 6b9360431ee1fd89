//! Integration test: a roll onto local disks (`--fresh-disks`) of a broker-only node gives it
//! a whole new disk, as a new node with instance-local NVMe has: no partitions, no KRaft
//! metadata log, a new directory id. Kafka rebuilds every replica the node held and the roll
//! waits for it. (`roll_rebuild.rs` covers combined nodes, whose quorum state stays.) Starts
//! a real 3-node cluster plus one broker-only node on 127.0.0.1.

mod real;

use kpilot_cluster::{BrokerId, TopicName};
use kpilot_roll::{
    FileStore, JournalStore, KafkaPort, LocalFleet, LocalSizing, RollOptions, RollStatus,
};
use real::{Testbed, admin, directory_id};

const TOPIC: &str = "onfour";
const BATCHES: usize = 100;

#[test]
fn a_broker_only_node_rolled_onto_a_new_disk_is_rebuilt_whole() {
    let bed = Testbed::start_plus(3, 1);
    let node = 4;
    let data_dir = bed.state().dir.join(format!("node-{node}/data"));
    let runtime = real::runtime();
    let admin = runtime.block_on(async {
        let admin = admin(&bed.bootstrap).await;
        let mut topic = kpilot_kafka::NewTopic::new(TopicName::new(TOPIC).expect("name"), 3, 3)
            .with_config("min.insync.replicas", 2);
        topic.assignments = Some(
            [[4, 1, 2], [2, 4, 3], [3, 1, 4]]
                .iter()
                .map(|r| r.iter().map(|b| BrokerId(*b)).collect())
                .collect(),
        );
        admin.create_topics(&[topic]).await.expect("create");
        admin
            .wait_for_topic(&TopicName::new(TOPIC).expect("name"))
            .await
            .expect("ready");
        real::fill(&admin, TOPIC, 3, BATCHES).await;
        admin
    });
    let before = runtime
        .block_on(admin.stored_bytes(BrokerId(node)))
        .expect("stored");
    assert!(before >= 30_000_000, "node {node} stores {before} bytes");
    let old_id = directory_id(&data_dir);

    let fleet = LocalFleet::new(&bed.state_path, LocalSizing::default())
        .expect("fleet")
        .with_fresh_disks();
    let mut store = FileStore::new(bed.dir.join("journal.json"));
    let options = RollOptions {
        only: Some([BrokerId(node)].into()),
        ..RollOptions::new("m7g.xlarge".parse().expect("type"))
    };
    let report = real::roll(&runtime, &admin, &fleet, &options, &mut store, "roll");
    assert_eq!(report.status, RollStatus::Completed);

    // A new disk: another directory id, no metadata log carried over (it was fetched anew),
    // and every replica rebuilt.
    let new_id = directory_id(&data_dir);
    assert_ne!(new_id, old_id, "the node got a new disk");
    let after = runtime
        .block_on(admin.stored_bytes(BrokerId(node)))
        .expect("stored");
    eprintln!("node {node}: {before} bytes before, {after} rebuilt onto the new disk");
    assert!(after >= before * 9 / 10, "rebuilt {after} of {before}");
    let in_sync = runtime.block_on(async {
        let m = admin.metadata().await.expect("metadata");
        let t = &m.topics[&TopicName::new(TOPIC).expect("name")];
        t.partitions
            .values()
            .all(|p| p.isr.contains(&BrokerId(node)))
    });
    assert!(in_sync, "node {node} back in every ISR");
    // The journal recorded the rebuild of all three partitions and what it copied.
    let journal = JournalStore::load(&store)
        .expect("journal")
        .expect("a journal");
    let entry = journal
        .nodes
        .iter()
        .find(|n| n.id == BrokerId(node))
        .expect("node 4 in the journal");
    let rebuild = entry.rebuild.as_ref().expect("a rebuild");
    assert_eq!(rebuild.partitions[TOPIC].len(), 3, "{rebuild:?}");
    assert!(
        rebuild.bytes.is_some_and(|b| b >= before * 9 / 10),
        "{rebuild:?}"
    );
    assert!(!rebuild.applied, "nothing throttled, nothing left set");
}
