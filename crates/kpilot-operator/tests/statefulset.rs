//! StatefulSet mode end to end: a real 3-broker Kafka cluster (kpilot-testbed) behind a
//! StatefulSet (`updateStrategy: OnDelete`) on the real kube-apiserver, the test playing the
//! kubelet and the StatefulSet controller (pod *i* is backed by broker *i + 1*: a deleted pod
//! stops its broker; a recreated pod restarts it and is marked Ready). The decision is
//! injected (an in-memory observation of 60 MB/s on 3 x m7g.large); everything the roll does
//! goes to the real Kafka and the real API server. The operator is killed (its task aborted)
//! in the middle of the roll and started again; the next operator's roll halts once on a pod
//! that does not come back in time and is retried: the roll finishes, each pod is replaced
//! exactly once, never two brokers (or pods) down at once, and every record Kafka's
//! VerifiableProducer had acknowledged while it ran throughout is read back.

mod common;

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::sts_kubelet::{KubeletLog, kubelet, roll_settings, three_pods_ready};
use common::*;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kpilot_cluster::TopicName;
use kpilot_kafka::NewTopic;
use kpilot_operator::crd::*;
use kpilot_operator::fleet::{pod_instance_type, pod_ready};
use kpilot_operator::{FixedObserver, LoopSettings};
use kube::api::{Api, PostParams};

const TOPIC: &str = "orders";
/// `(broker, seconds)` of the restarts `status` keeps, by broker.
fn restarts_of(status: &KafkaAutopilotStatus) -> Vec<(i32, f64)> {
    let mut measured: Vec<(i32, f64)> = status
        .restarts
        .iter()
        .flat_map(|r| &r.measured)
        .map(|m| (m.broker_id, m.seconds))
        .collect();
    measured.sort_by_key(|m| m.0);
    measured
}

/// `(broker, seconds)` of every broker one run of the roll took from its stop through its
/// start (stop + resize + start in the journal's timings; not the resumed ones).
fn journal_restarts(journal: &str) -> Vec<(i32, f64)> {
    let parsed: serde_json::Value = serde_json::from_str(journal).expect("journal json");
    let mut restarts: Vec<(i32, f64)> = parsed["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| !n["resumed"].as_bool().unwrap_or(false))
        .filter_map(|n| {
            let t = &n["timings"];
            let ms = ["shutdown_ms", "resize_ms", "start_ms"]
                .iter()
                .map(|k| t[k].as_u64())
                .sum::<Option<u64>>()?;
            Some((n["id"].as_i64().expect("id") as i32, ms as f64 / 1000.0))
        })
        .collect();
    restarts.sort_by_key(|e| e.0);
    restarts
}

#[test]
fn statefulset_roll_survives_an_operator_kill_one_broker_at_a_time_losing_nothing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("kpilot_operator=info,kpilot_roll=info")
        .with_test_writer()
        .try_init();
    let cluster = three_brokers_min_isr_2();
    let bootstrap = cluster.bootstrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(KubeletLog::default());

    let (producer_cmd, consumer_cmd) = verifiable_clients(&cluster, TOPIC);

    let (cp, ns, client) = local.block_on(&rt, async {
        let cp = control_plane().await;
        let ns = cp.create_unique_namespace("sts").await.expect("ns");
        let client = cp.client().await.expect("client");
        let admin = admin_at(&bootstrap).await;
        admin
            .create_topics(&[NewTopic::new(TopicName::new(TOPIC).expect("topic"), 6, 3)
                .with_config("min.insync.replicas", 2)])
            .await
            .expect("topic");
        admin
            .wait_for_topic(&TopicName::new(TOPIC).expect("topic"))
            .await
            .expect("topic ready");
        admin.close();
        let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
        sets.create(&PostParams::default(), &statefulset("m7g.large"))
            .await
            .expect("sts");
        (cp, ns, client)
    });
    // The kubelet creates the three pods (brokers already running: start is a no-op).
    let kubelet_thread = {
        let (ns, stop, log) = (ns.clone(), stop.clone(), log.clone());
        std::thread::spawn(move || kubelet(cp, ns, cluster, stop, log))
    };
    let mut producer = JsonTool::spawn(producer_cmd);

    local.block_on(&rt, async {
        // Pods up and the producer going before the operator starts.
        three_pods_ready(&client, &ns).await;
        let began = Instant::now();
        while producer.count("producer_send_success") < 300 {
            assert!(
                began.elapsed() < Duration::from_secs(60),
                "the producer did not get going"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // From here on every replacement and every unavailable pod is the operator's doing.
        *log.replaced.lock().expect("log") = BTreeMap::new();
        log.max_pods_unavailable.store(0, Ordering::Relaxed);
        log.max_brokers_down.store(0, Ordering::Relaxed);

        let spec = KafkaAutopilotSpec {
            target: statefulset_target("kafka"),
            kafka: KafkaSpec {
                bootstrap: bootstrap.clone(),
                tls: None,
                sasl: None,
            },
            ..spec_strimzi(Mode::Apply, None)
        };
        create_autopilot(&client, &ns, "auto", spec).await;
        let observer = FixedObserver::new(facts(60.0, 0));
        let make_ctx = || {
            let mut ctx = context(client.clone(), Rc::new(observer.clone()));
            ctx.roll = roll_settings();
            ctx.pod_timeout = Duration::from_secs(120);
            ctx
        };
        let settings = LoopSettings {
            namespace: Some(ns.clone()),
            ..LoopSettings::default()
        };

        // First operator: killed once the first broker is done and the second is in flight.
        let first = tokio::task::spawn_local(kpilot_operator::run_autopilot(
            make_ctx(),
            settings.clone(),
            std::future::pending(),
        ));
        let status = wait_for_status(
            &client,
            &ns,
            Duration::from_secs(240),
            "one broker done, the next in flight",
            |s| {
                s.operation.as_ref().is_some_and(|o| {
                    o.brokers.iter().filter(|b| b.phase == "done").count() == 1
                        && o.brokers
                            .iter()
                            .any(|b| b.phase != "done" && b.phase != "pending")
                })
            },
        )
        .await;
        first.abort();
        let _ = first.await;
        eprintln!(
            "killed the operator at {:?}",
            status.operation.as_ref().map(|o| &o.brokers)
        );

        // Second operator: resumes from the journal in the status. The last broker's pod does
        // not come back within its (shorter) pod timeout: the roll halts with that broker
        // down, and every broker restarted so far is recorded. Then the pod may come back,
        // and the retry finishes the roll.
        let last = status
            .operation
            .as_ref()
            .and_then(|o| o.brokers.iter().find(|b| b.phase == "pending"))
            .map(|b| b.id)
            .expect("a broker still pending");
        *log.hold.lock().expect("log") = Some(last - 1);
        let second = tokio::task::spawn_local(kpilot_operator::run_autopilot(
            {
                let mut ctx = make_ctx();
                ctx.pod_timeout = Duration::from_secs(20);
                ctx
            },
            LoopSettings {
                error_requeue: Duration::from_secs(2),
                ..settings
            },
            std::future::pending(),
        ));
        let halted = wait_for_status(
            &client,
            &ns,
            Duration::from_secs(240),
            "the roll to halt",
            |s| s.operation.as_ref().is_some_and(|o| o.phase == "Halted"),
        )
        .await;
        let halted_journal = halted
            .operation
            .as_ref()
            .and_then(|o| o.journal.clone())
            .expect("journal");
        let at_halt = restarts_of(&halted);
        eprintln!("halted: measured restarts {at_halt:?}");
        assert_eq!(
            at_halt,
            journal_restarts(&halted_journal),
            "{halted_journal}"
        );
        assert_eq!(
            at_halt.len(),
            1,
            "the broker done before the kill: {halted:#?}"
        );
        *log.hold.lock().expect("log") = None;
        let status = wait_for_status(
            &client,
            &ns,
            Duration::from_secs(300),
            "the roll to complete",
            |s| s.operation.as_ref().is_some_and(|o| o.phase == "Completed"),
        )
        .await;
        second.abort();
        let _ = second.await;
        let op = status.operation.clone().expect("operation");
        assert_eq!(op.phase, "Completed", "{op:#?}");
        assert_eq!(op.to_instance_type, "m7g.xlarge");
        assert!(
            op.brokers.iter().all(|b| b.phase == "done") && op.brokers.len() == 3,
            "{op:#?}"
        );
        let journal = op.journal.as_deref().expect("journal");
        assert!(
            journal.contains("\"runs\": 3") || journal.contains("\"runs\":3"),
            "resumed twice (after the kill and after the halt): {journal}"
        );
        assert_eq!(
            status.current_shape.clone().expect("shape").instance_type,
            "m7g.xlarge"
        );
        // The restarts this roll measured: each broker one run took from its stop to its
        // start, as the journal timed it. The broker in flight when the first operator was
        // killed and the one the halt left down are left out (their timings cover a later
        // run only); the one recorded at the halt is not recorded twice. The policy now plans
        // rolls with the longest of them instead of the 3-minute default.
        let restarts = status.restarts.clone().expect("status.restarts");
        let measured = restarts_of(&status);
        eprintln!(
            "measured restarts: {measured:?}; planned {} s",
            restarts.seconds
        );
        assert_eq!(measured, at_halt, "{restarts:#?}\n{journal}");
        assert_eq!(measured, journal_restarts(journal), "{journal}");
        assert!(measured.iter().all(|m| m.1 > 0.0));
        assert!(
            restarts
                .measured
                .iter()
                .all(|m| m.instance_type == "m7g.xlarge"),
            "{restarts:#?}"
        );
        let longest = measured.iter().map(|m| m.1).fold(0.0, f64::max);
        assert!((restarts.seconds - longest).abs() < 0.06, "{restarts:#?}");
        assert!(restarts.source.starts_with("measured"), "{restarts:#?}");

        // Every pod runs the new template.
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        for p in pods.list(&Default::default()).await.expect("pods").items {
            assert_eq!(
                pod_instance_type(&p).as_deref(),
                Some("m7g.xlarge"),
                "{:?}",
                p.metadata.name
            );
            assert!(pod_ready(&p));
        }
        let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
        let template = serde_json::to_value(
            sts.get("kafka")
                .await
                .expect("sts")
                .spec
                .expect("spec")
                .template,
        )
        .expect("json");
        assert_eq!(
            template["spec"]["containers"][0]["resources"]["requests"]["cpu"],
            "3500m"
        );
        let events = event_reasons(&client, &ns, "auto").await;
        assert!(
            events.iter().any(|(r, _)| r == "OperationCompleted"),
            "{events:?}"
        );
    });

    // Keep producing a moment after the roll, then stop the producer (it flushes).
    std::thread::sleep(Duration::from_secs(2));
    producer.terminate();
    stop.store(true, Ordering::Relaxed);
    let cluster = kubelet_thread.join().expect("kubelet thread");

    let replaced = log.replaced.lock().expect("log").clone();
    assert_eq!(
        replaced,
        BTreeMap::from([(0, 1), (1, 1), (2, 1)]),
        "each pod replaced exactly once"
    );
    assert_eq!(
        log.max_brokers_down.load(Ordering::Relaxed),
        1,
        "never two brokers down"
    );
    assert_eq!(
        log.max_pods_unavailable.load(Ordering::Relaxed),
        1,
        "never two pods unavailable"
    );

    assert_eq!(
        producer.count("producer_send_error"),
        0,
        "{:?}",
        producer.events("producer_send_error")
    );
    let acked = acked_records(&producer);
    assert!(acked.len() >= 1000, "only {} acked", acked.len());
    let lost = missing_records(consumer_cmd, &acked);
    assert!(
        lost.is_empty(),
        "lost or changed records, e.g. {:?}",
        &lost[..lost.len().min(5)]
    );
    eprintln!(
        "acked {} records, read back every one, 0 lost, 0 send errors; replaced {replaced:?}",
        acked.len()
    );
    drop(cluster);
}
