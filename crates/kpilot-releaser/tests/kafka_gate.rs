//! The Kafka safety gate against a real KRaft cluster (testbed: 3 combined nodes plus broker-only
//! node 4; RF 3 and RF 1 topics, min ISR 2): a live broker is never released; after broker 4
//! crashes the gate refuses while a partition would lose its only copy (an RF 1 partition on
//! it), allows once that topic is gone; then, broker 4 counted as released, a second lost
//! broker waits until broker 4, back on a new empty disk, has rejoined and rebuilt its replicas
//! (one broker at a time).

use std::time::{Duration, Instant};

use kpilot_cluster::{BrokerId, TopicName};
use kpilot_kafka::{AdminClient, BrokerAddress, ClientConfig, NewTopic};
use kpilot_releaser::{GateDecision, GateRequest, KafkaGate, SafetyGate};
use kpilot_testbed::{ClusterConfig, KafkaCluster};

fn request(broker: i32, in_recovery: &[i32]) -> GateRequest {
    GateRequest {
        broker: BrokerId(broker),
        namespace: "kafka".into(),
        claims: vec![format!("data-kafka-{broker}")],
        in_recovery: in_recovery.iter().copied().map(BrokerId).collect(),
    }
}

async fn decision(gate: &KafkaGate, broker: i32, in_recovery: &[i32]) -> GateDecision {
    gate.check(&request(broker, in_recovery))
        .await
        .expect("gate decides")
}

/// Polls the gate every 250 ms until `want` holds, or panics after `timeout`.
async fn until(
    gate: &KafkaGate,
    broker: i32,
    in_recovery: &[i32],
    timeout: Duration,
    what: &str,
    want: impl Fn(&GateDecision) -> bool,
) -> GateDecision {
    let deadline = Instant::now() + timeout;
    loop {
        let d = decision(gate, broker, in_recovery).await;
        if want(&d) {
            return d;
        }
        assert!(Instant::now() < deadline, "{what}: last decision {d:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn is_wait(d: &GateDecision, needle: &str) -> bool {
    matches!(d, GateDecision::Wait { reason } if reason.contains(needle))
}

#[test]
fn kafka_gate_on_a_real_cluster() {
    let started = Instant::now();
    let mut cluster = KafkaCluster::start(ClusterConfig::default())
        .unwrap_or_else(|e| panic!("testbed cluster did not start: {e}"));
    eprintln!("testbed up in {:.1?}", started.elapsed());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut config = ClientConfig::new(
        BrokerAddress::parse_list(&cluster.bootstrap()).expect("bootstrap parses"),
    );
    config.connect_timeout = Duration::from_secs(2);
    config.request_timeout = Duration::from_secs(10);
    config.api_timeout = Duration::from_secs(20);
    let orders = TopicName::new("orders").expect("topic");
    let solo = TopicName::new("solo").expect("topic");
    let four = cluster.add_broker().expect("add broker-only node");
    assert_eq!(four, 4);
    let (admin, gate) = rt.block_on(async {
        let admin = AdminClient::connect(config).await.expect("connect");
        admin
            .create_topics(&[
                NewTopic::new(orders.clone(), 8, 3),
                // One partition per broker, each its only copy.
                NewTopic::new(solo.clone(), 4, 1),
            ])
            .await
            .expect("create topics");
        admin.wait_for_topic(&orders).await.expect("orders");
        admin.wait_for_topic(&solo).await.expect("solo");
        // 2.4 MB in `orders` (300 kB a partition), for a lost disk to rebuild.
        let value = bytes::Bytes::from(vec![b'o'; 10_000]);
        let batch: Vec<_> = (0..10).map(|_| (None, Some(value.clone()))).collect();
        for p in 0..8 {
            let tp = kpilot_cluster::TopicPartition::new(orders.clone(), p);
            for _ in 0..3 {
                admin.produce(&tp, &batch).await.expect("produce to orders");
            }
        }
        let gate = KafkaGate::new(admin.clone());
        // Every broker is live: none is "lost".
        for b in cluster.broker_ids() {
            let d = decision(&gate, b, &[]).await;
            assert!(is_wait(&d, "still registered"), "broker {b}: {d:?}");
        }
        (admin, gate)
    });

    // Broker 4 crashes; a `solo` partition (RF 1) lives only there.
    cluster.kill_broker(4).expect("kill 4");
    let d = rt.block_on(until(
        &gate,
        4,
        &[],
        Duration::from_secs(60),
        "broker 4 fenced",
        |d| !is_wait(d, "still registered"),
    ));
    assert!(is_wait(&d, "would lose data"), "{d:?}");
    eprintln!("gate with an RF 1 partition on the dead broker: {d:?}");

    // Without that topic, broker 4's data all has live in-sync copies: allowed.
    rt.block_on(async {
        admin
            .delete_topics(std::slice::from_ref(&solo))
            .await
            .expect("delete solo");
        let d = until(
            &gate,
            4,
            &[],
            Duration::from_secs(30),
            "allowed once solo is gone",
            |d| *d == GateDecision::Allow,
        )
        .await;
        assert_eq!(d, GateDecision::Allow);
    });

    // Broker 4 was released; broker 3 is lost next: it waits until broker 4 is back in sync.
    cluster.kill_broker(3).expect("kill 3");
    rt.block_on(async {
        let d = until(
            &gate,
            3,
            &[4],
            Duration::from_secs(60),
            "broker 3 fenced",
            |d| !is_wait(d, "still registered"),
        )
        .await;
        assert!(is_wait(&d, "broker 4"), "{d:?}");
        // Without a broker in recovery, broker 3 alone could go (1, 2 hold in-sync copies).
        // (Re-read: the broker answering may not have seen broker 3 fenced yet.)
        let d = until(
            &gate,
            3,
            &[],
            Duration::from_secs(30),
            "allowed without a broker in recovery",
            |d| *d == GateDecision::Allow,
        )
        .await;
        assert_eq!(d, GateDecision::Allow);
    });
    // Released, broker 4 comes back as on a new node: a new, empty disk (new directory id, no
    // metadata log), from which it rebuilds its replicas.
    cluster.replace_disk(4).expect("a new disk for 4");
    cluster.start_broker(4).expect("restart 4");
    rt.block_on(async {
        let d = until(
            &gate,
            3,
            &[4],
            Duration::from_secs(90),
            "allowed once broker 4 rejoined on its new disk and caught up",
            |d| *d == GateDecision::Allow,
        )
        .await;
        assert_eq!(d, GateDecision::Allow);
    });
    drop(cluster);
}
