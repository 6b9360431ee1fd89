//! End to end on a real 3-broker KRaft cluster (RF 3, min ISR 2, several topics): while Kafka's
//! own VerifiableProducer (acks=all, idempotence) sends at a steady rate and a
//! VerifiableConsumer reads every record, the whole cluster is rolled onto a new size. Zero
//! records lost, zero duplicates, zero send errors, never two brokers down, every partition
//! led by its preferred replica at the end, and each broker really runs with the new heap.

mod real;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kpilot_roll::{
    FileStore, LocalFleet, LocalSizing, RollEvent, RollOptions, RollStatus, Roller, Settings, gate,
};
use real::{DownMonitor, JsonTool, Testbed, admin, create_topics, wait_until};

const TOPIC: &str = "orders";
const RATE: u32 = 100;

#[test]
fn roll_under_load_loses_nothing_and_restores_leadership() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("kpilot_roll=info")
        .with_test_writer()
        .try_init();
    let bed = Testbed::start(3);
    let runtime = real::runtime();
    let admin = runtime.block_on(async {
        let admin = admin(&bed.bootstrap).await;
        create_topics(&admin, &[(TOPIC, 6), ("events", 3), ("audit", 2)]).await;
        admin
    });

    let config = bed.dir.join("producer.properties");
    std::fs::write(
        &config,
        "enable.idempotence=true\nacks=all\nretries=2147483647\ndelivery.timeout.ms=120000\nlinger.ms=5\nmax.in.flight.requests.per.connection=5\n",
    )
    .expect("producer config");
    let mut consumer = {
        let mut cmd = bed.tool("org.apache.kafka.tools.VerifiableConsumer");
        cmd.args([
            "--bootstrap-server",
            &bed.bootstrap,
            "--topic",
            TOPIC,
            "--group-id",
            "roll-verifier",
            "--verbose",
            "--reset-policy",
            "earliest",
        ]);
        JsonTool::spawn(cmd)
    };
    let mut producer = {
        let mut cmd = bed.tool("org.apache.kafka.tools.VerifiableProducer");
        cmd.args([
            "--bootstrap-server",
            &bed.bootstrap,
            "--topic",
            TOPIC,
            "--acks",
            "-1",
            "--throughput",
            &RATE.to_string(),
            "--max-messages",
            "60000",
            "--command-config",
        ])
        .arg(&config);
        JsonTool::spawn(cmd)
    };
    assert!(
        wait_until(Duration::from_secs(60), || producer
            .count("producer_send_success")
            >= 300),
        "the producer did not get going"
    );

    let monitor = DownMonitor::start(&bed.state_path, 3);
    let fleet = LocalFleet::new(&bed.state_path, LocalSizing::default()).expect("fleet");
    let mut store = FileStore::new(bed.dir.join("journal.json"));
    let report = runtime
        .block_on(async {
            let mut roller = Roller::new(&admin, &fleet, Settings::default(), |e: &RollEvent| {
                eprintln!("roll: {e}");
            });
            roller
                .run(
                    &RollOptions::new("m7g.xlarge".parse().expect("type")),
                    &mut store,
                )
                .await
        })
        .expect("the roll completes");
    let max_down = monitor.finish();
    eprintln!("{}", report.render());
    // Keep producing a moment after the roll, then stop the producer (it flushes).
    std::thread::sleep(Duration::from_secs(2));
    producer.terminate();

    assert_eq!(report.status, RollStatus::Completed);
    assert_eq!(max_down, 1, "never more than one broker down");
    assert_eq!(report.nodes.len(), 3);

    // Zero send failures reported to the application.
    assert_eq!(
        producer.count("producer_send_error"),
        0,
        "{:?}",
        producer.events("producer_send_error")
    );
    let acked: BTreeMap<(i64, i64), String> = producer
        .events("producer_send_success")
        .iter()
        .map(|e| {
            (
                (
                    e["partition"].as_i64().expect("partition"),
                    e["offset"].as_i64().expect("offset"),
                ),
                e["value"].as_str().expect("value").to_string(),
            )
        })
        .collect();
    assert!(acked.len() >= 1000, "only {} acked", acked.len());

    // Every acknowledged record is consumed at the offset the producer was told; no value is
    // stored twice (idempotence), whatever the consumer re-reads after rebalances.
    let complete = wait_until(Duration::from_secs(90), || {
        let seen: BTreeSet<(i64, i64)> = consumer
            .events("record_data")
            .iter()
            .map(|e| {
                (
                    e["partition"].as_i64().unwrap_or(-1),
                    e["offset"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        acked.keys().all(|k| seen.contains(k))
    });
    consumer.terminate();
    let consumed = consumer.events("record_data");
    let mut at_offset: BTreeMap<(i64, i64), String> = BTreeMap::new();
    let mut offsets_of_value: BTreeMap<String, BTreeSet<(i64, i64)>> = BTreeMap::new();
    for e in &consumed {
        let key = (
            e["partition"].as_i64().expect("partition"),
            e["offset"].as_i64().expect("offset"),
        );
        let value = e["value"].as_str().expect("value").to_string();
        at_offset.insert(key, value.clone());
        offsets_of_value.entry(value).or_default().insert(key);
    }
    let lost: Vec<_> = acked
        .iter()
        .filter(|(k, v)| at_offset.get(k) != Some(v))
        .take(5)
        .collect();
    assert!(
        complete && lost.is_empty(),
        "lost or changed records, e.g. {lost:?}"
    );
    let duplicates: Vec<_> = offsets_of_value
        .iter()
        .filter(|(_, offsets)| offsets.len() > 1)
        .take(5)
        .collect();
    assert!(duplicates.is_empty(), "values stored twice: {duplicates:?}");
    eprintln!(
        "acked {} records, consumed {} distinct offsets, 0 lost, 0 duplicates, 0 send errors",
        acked.len(),
        at_offset.len()
    );

    // Preferred leadership everywhere, and the new size really applied (heap 512 MiB).
    runtime.block_on(async {
        let state = admin.snapshot().await.expect("snapshot").state;
        assert!(gate::not_preferred(&state, None).is_empty());
        for (_, p) in state.partitions() {
            assert_eq!(p.leader, p.preferred_leader(), "{p:?}");
            assert_eq!(p.isr.len(), 3);
        }
    });
    for b in bed.state().running() {
        let cmdline =
            std::fs::read(format!("/proc/{}/cmdline", b.pid.expect("pid"))).expect("cmdline");
        let args: Vec<String> = cmdline
            .split(|c| *c == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        assert!(
            args.contains(&"-Xmx512m".to_string()),
            "broker {}: {args:?}",
            b.id
        );
    }
    admin.close();
}
