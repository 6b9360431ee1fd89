//! Integration test: a broker-only node loses its whole disk (partitions, KRaft metadata log,
//! identity) and comes back formatted anew with the same node id, as a Strimzi broker on
//! instance-local NVMe does after its node is gone and its PVC released. Kafka must rebuild
//! every replica it held from the other replicas. Starts JVMs on 127.0.0.1.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{PartitionInfo, TOPIC_COMMAND, describe_until, tool_ok};
use kpilot_testbed::{ClusterConfig, KafkaCluster, TestbedError};

const PRODUCER: &str = "org.apache.kafka.tools.ProducerPerformance";

/// The `directory.id` a formatted log directory records in its `meta.properties`.
fn directory_id(data_dir: &Path) -> String {
    let meta = fs::read_to_string(data_dir.join("meta.properties")).expect("meta.properties");
    meta.lines()
        .find_map(|l| l.strip_prefix("directory.id="))
        .expect("directory.id in meta.properties")
        .to_string()
}

/// Bytes of log segments (`.log` files; index files are preallocated) under the partition
/// directories of `topic` in `data_dir`.
fn topic_bytes(data_dir: &Path, topic: &str) -> u64 {
    let mut total = 0;
    for entry in fs::read_dir(data_dir).expect("data dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(&format!("{topic}-")) {
            continue;
        }
        for file in fs::read_dir(entry.path()).expect("partition dir").flatten() {
            if file.file_name().to_string_lossy().ends_with(".log") {
                total += file.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}

#[test]
fn a_broker_with_a_new_empty_disk_rebuilds_its_replicas() {
    let mut cluster = KafkaCluster::start(ClusterConfig::default()).expect("start a cluster");
    let id = cluster.add_broker().expect("add a broker-only node");
    let data_dir = cluster.dir().join(format!("node-{id}/data"));
    let bootstrap = cluster.bootstrap();

    // Three partitions, each with a replica on the broker-only node.
    tool_ok(
        &cluster,
        TOPIC_COMMAND,
        &[
            "--bootstrap-server",
            &bootstrap,
            "--create",
            "--topic",
            "lost",
            "--replica-assignment",
            &format!("{id}:1:2,2:{id}:3,3:1:{id}"),
            "--config",
            "min.insync.replicas=2",
        ],
    );
    tool_ok(
        &cluster,
        PRODUCER,
        &[
            "--topic",
            "lost",
            "--num-records",
            "60000",
            "--record-size",
            "1000",
            "--throughput",
            "-1",
            "--producer-props",
            &format!("bootstrap.servers={bootstrap}"),
            "acks=all",
        ],
    );
    let all_in_sync =
        |parts: &[PartitionInfo]| parts.len() == 3 && parts.iter().all(|p| p.isr.len() == 3);
    describe_until(
        &cluster,
        "lost",
        Duration::from_secs(30),
        "all in sync",
        all_in_sync,
    );
    let before = topic_bytes(&data_dir, "lost");
    assert!(
        before > 50_000_000,
        "node {id} holds {before} bytes of lost"
    );
    let old_dir_id = directory_id(&data_dir);

    // The running node's disk is not replaced, nor a combined node's.
    match cluster.replace_disk(id) {
        Err(TestbedError::BrokerAlreadyRunning { id: got, .. }) => assert_eq!(got, id),
        other => panic!("replacing a running node's disk: {other:?}"),
    }
    cluster.stop_broker(1).expect("stop broker 1");
    match cluster.replace_disk(1) {
        Err(TestbedError::InvalidConfig { reason }) => {
            assert!(reason.contains("combined"), "{reason}")
        }
        other => panic!("replacing a combined node's disk: {other:?}"),
    }
    cluster.start_broker(1).expect("start broker 1");
    describe_until(
        &cluster,
        "lost",
        Duration::from_secs(60),
        "broker 1 back in sync",
        all_in_sync,
    );

    cluster.stop_broker(id).expect("stop the broker-only node");
    cluster.replace_disk(id).expect("replace its disk");
    assert_eq!(topic_bytes(&data_dir, "lost"), 0, "the new disk is empty");
    assert!(!data_dir.join("__cluster_metadata-0").exists());
    let new_dir_id = directory_id(&data_dir);
    assert_ne!(new_dir_id, old_dir_id, "a new disk has a new directory id");

    let t = Instant::now();
    cluster.start_broker(id).expect("start it on the new disk");
    describe_until(
        &cluster,
        "lost",
        Duration::from_secs(120),
        "the node back in every ISR",
        all_in_sync,
    );
    let after = topic_bytes(&data_dir, "lost");
    eprintln!(
        "node {id} rebuilt {after} bytes (had {before}) in {:.1} s from start",
        t.elapsed().as_secs_f64()
    );
    assert!(
        after >= before * 9 / 10,
        "node {id} rebuilt only {after} of {before} bytes"
    );
}
