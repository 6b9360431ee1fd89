//! The Kafka source on a topic that retention trims while it is measured, as every topic of a
//! cluster older than its retention is: 3 real brokers checking retention every second, topics
//! with 1 MiB segments that keep about 2 MiB per partition, and a bounded producer sending
//! 3 MB/s (loopback only). Each window starts once retention has deleted a segment of every
//! partition (a broker's first retention check comes 30 s after it starts); over its 20 s the
//! logs hardly grow, since retention deletes about what is appended; the Kafka source must
//! still measure the ingress within 10% (records appended times the average record size
//! retained) and say that it estimated it. Two topics in turn on the same brokers: records of
//! one size (where the estimate is exact), then a mix of sizes from 10 kB to 190 kB. Before
//! the estimate, a log that shrank made the ingress missing, and one that grew less than was
//! appended understated it.

mod common;

use std::time::{Duration, Instant};

use common::{Load, connect, within};
use kpilot_cluster::{TopicName, TopicPartition};
use kpilot_kafka::{NewTopic, OffsetSpec};
use kpilot_metrics::{KafkaSource, MetricsSource};
use kpilot_testbed::{ClusterConfig, KafkaCluster};
use kpilot_units::Span;

/// 3 MB/s as 100 kB records, 3 per 100 ms tick, for 65 s (past the first retention check):
/// 1 MB/s per partition.
const LOAD: Load = Load {
    partitions: 3,
    records_per_tick: 3,
    seconds: 65,
    sizes: &[common::RECORD],
};
/// The same 3 MB/s as records of seven sizes, 100 kB on average, every partition getting
/// each size in turn; 35 s, retention already running.
const MIXED: Load = Load {
    partitions: 3,
    records_per_tick: 3,
    seconds: 35,
    sizes: &[10_000, 190_000, 60_000, 140_000, 30_000, 170_000, 100_000],
};
const SEGMENT_BYTES: u64 = 1 << 20;
const RETENTION_BYTES: u64 = 2 << 20;

#[test]
fn the_kafka_source_measures_the_ingress_of_a_topic_retention_trims_meanwhile() {
    let t = Instant::now();
    let cluster = KafkaCluster::start(ClusterConfig {
        extra_broker_properties: vec![("log.retention.check.interval.ms".into(), "1000".into())],
        ..ClusterConfig::default()
    })
    .expect("start 3 brokers");
    let (rt, admin) = connect(&cluster);
    measure_while_retention_trims(&rt, &admin, "trimmed", LOAD);
    measure_while_retention_trims(&rt, &admin, "trimmed-mixed", MIXED);
    eprintln!("test took {:?}", t.elapsed());
}

/// Produces `load` to a new topic `name` that retention trims, and measures it with the Kafka
/// source once retention has deleted from every partition.
fn measure_while_retention_trims(
    rt: &tokio::runtime::Runtime,
    admin: &kpilot_kafka::AdminClient,
    name: &str,
    load: Load,
) {
    eprintln!("topic {name}: {:?}", load.sizes);
    let topic = TopicName::new(name).expect("topic name");
    rt.block_on(
        admin.create_topics(&[NewTopic::new(topic.clone(), load.partitions, 3)
            .with_config("segment.bytes", SEGMENT_BYTES)
            .with_config("retention.bytes", RETENTION_BYTES)]),
    )
    .expect("create topic");
    rt.block_on(admin.wait_for_topic(&topic))
        .expect("topic ready");
    let kafka = KafkaSource::new(admin.clone());

    let (produced, m) = rt.block_on(async {
        let producer = tokio::spawn(load.produce(admin.clone(), topic.clone()));
        // Past the first retention deletions: every partition's log start has moved up.
        let partitions: Vec<TopicPartition> = (0..load.partitions)
            .map(|p| TopicPartition::new(topic.clone(), p))
            .collect();
        let began = Instant::now();
        loop {
            let starts = admin
                .list_offsets(&partitions, OffsetSpec::Earliest)
                .await
                .expect("log start offsets");
            if starts.values().all(|s| *s > 0) {
                eprintln!(
                    "retention running after {:?} of production",
                    began.elapsed()
                );
                break;
            }
            assert!(
                began.elapsed() < Duration::from_secs(40),
                "retention deleted nothing in 40 s: {starts:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let m = kafka
            .measure(Span::from_secs(20.0))
            .await
            .expect("Kafka source");
        (producer.await.expect("producer task"), m)
    });
    let (bytes, elapsed) = produced;
    let actual = bytes as f64 / elapsed.as_secs_f64();
    eprintln!(
        "producer: {bytes} bytes in {elapsed:?} = {:.3} MB/s; warnings: {:?}",
        actual / 1e6,
        m.warnings
    );
    assert!(
        (actual - load.rate()).abs() / load.rate() < 0.03,
        "the producer did not hold its rate"
    );

    // Retention did run: what is stored is a small part of what the window appended (20 s x
    // 3 MB/s x 3 replicas = 180 MB).
    let stored = m.stored.expect("stored bytes").bytes();
    eprintln!("stored at the end of the window: {:.1} MB", stored / 1e6);
    assert!(
        stored < 0.5 * 20.0 * load.rate() * 3.0,
        "retention did not trim the logs: {stored} bytes stored"
    );
    within(&m.ingress, load.rate(), "Kafka ingress with retention");
    assert!(
        m.warnings
            .iter()
            .any(|w| w.contains("retention or compaction removed data") && w.contains("estimated")),
        "the estimate is said: {:?}",
        m.warnings
    );
    // Each follower fetched what was appended: replication is twice the ingress.
    within(
        &m.replication,
        2.0 * load.rate(),
        "Kafka replication with retention",
    );
}
