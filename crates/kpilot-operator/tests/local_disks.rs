//! A roll onto instance-local disks end to end: a real Kafka cluster of 3 broker-only nodes
//! behind a StatefulSet and a dedicated KRaft controller (node 101, outside it), as a cluster
//! on local disks runs, on the real kube-apiserver, the test playing the kubelet (a recreated
//! pod is a new node: its broker gets a new, empty disk before it starts, as the local PV went
//! with the old node). The controller is not part of the roll and keeps running. The
//! autopilot's storage is `local-nvme`; the decision is injected (100 MB/s on 3 x
//! im4gn.large, whose target is 82 MB/s, needs im4gn.xlarge). Shown: every broker
//! rebuilt its data under the throttle the decision planned moves at (the rates and `*`
//! replica lists seen set while it ran, nothing left after), never two brokers down, each
//! rebuild timed into `status.moves`, and the next decision plans moves with what they
//! reached.

mod common;

use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::sts_kubelet::{KubeletLog, kubelet, roll_settings, three_pods_ready};
use common::*;
use k8s_openapi::api::apps::v1::StatefulSet;
use kpilot_kafka::{FOLLOWER_RATE, FOLLOWER_REPLICAS};
use kpilot_operator::crd::*;
use kpilot_operator::{FixedObserver, LoopSettings};
use kpilot_testbed::DiskLoss;
use kpilot_units::Throughput;
use kube::api::{Api, PostParams};

const TOPIC: &str = "bulk";
/// The rebuild throttle the test caps moves at, bytes per second: 36 MB per broker take
/// about 18 s each, two thirds of it after the broker is registered (Kafka's quota window
/// lets more through in the first seconds, while the broker starts).
const THROTTLE: u64 = 2_000_000;

#[test]
fn a_roll_onto_local_disks_rebuilds_each_broker_under_the_planned_throttle_and_learns_its_rate() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("kpilot_operator=info,kpilot_roll=info")
        .with_test_writer()
        .try_init();
    let cluster = three_brokers_min_isr_2_and_controllers(1);
    let bootstrap = cluster.bootstrap();
    let controller_pid = cluster.pid(101).expect("the controller runs");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(KubeletLog::default());

    let (cp, ns, client) = local.block_on(&rt, async {
        let cp = control_plane().await;
        let ns = cp.create_unique_namespace("local").await.expect("ns");
        let client = cp.client().await.expect("client");
        // 6 partitions x 60 batches x 100 kB: 36 MB on every broker.
        fill_topic(&bootstrap, TOPIC, 6, 60).await;
        let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
        sets.create(&PostParams::default(), &statefulset("im4gn.large"))
            .await
            .expect("sts");
        (cp, ns, client)
    });
    let kubelet_thread = {
        let (ns, stop, log) = (ns.clone(), stop.clone(), log.clone());
        std::thread::spawn(move || kubelet(cp, ns, cluster, stop, log))
    };

    local.block_on(&rt, async {
        three_pods_ready(&client, &ns).await;
        // From here on a recreated pod is a new node with an empty disk.
        log.max_brokers_down.store(0, Ordering::Relaxed);
        log.fresh_disks.store(true, Ordering::Relaxed);

        let mut spec = KafkaAutopilotSpec {
            target: statefulset_target("kafka"),
            kafka: KafkaSpec {
                bootstrap: bootstrap.clone(),
                tls: None,
                sasl: None,
            },
            ..spec_strimzi(Mode::Apply, None)
        };
        on_local_nvme(&mut spec);
        spec.policy.decision_interval = Some("10s".into());
        create_autopilot(&client, &ns, "auto", spec).await;
        let observer = FixedObserver::new(facts_storing(100.0, 0.11));
        let mut ctx = context(client.clone(), Rc::new(observer.clone()));
        ctx.roll = roll_settings();
        ctx.pod_timeout = Duration::from_secs(120);
        ctx.rebalance.max_throttle = Some(Throughput::from_bytes_per_s(THROTTLE as f64));
        // The test's rebuilds take seconds: time them anyway (a real one, from a minute).
        ctx.rebalance.timed_from = kpilot_units::Span::from_secs(1.0);

        // A watcher samples the throttle overrides throughout.
        let seen: Rc<std::cell::RefCell<BTreeSet<String>>> = Rc::default();
        let watching = Rc::new(std::cell::Cell::new(true));
        let watcher = {
            let (seen, watching, bootstrap) = (seen.clone(), watching.clone(), bootstrap.clone());
            tokio::task::spawn_local(async move {
                let admin = admin_at(&bootstrap).await;
                while watching.get() {
                    let now = throttle_answering(&admin, &[1, 2, 3], &[TOPIC]).await;
                    seen.borrow_mut().extend(now);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                admin.close();
            })
        };
        let operator = tokio::task::spawn_local(kpilot_operator::run_autopilot(
            ctx,
            LoopSettings {
                namespace: Some(ns.clone()),
                ..LoopSettings::default()
            },
            std::future::pending(),
        ));
        let done = wait_for_status(
            &client,
            &ns,
            Duration::from_secs(300),
            "the roll to complete",
            |s| {
                s.operation
                    .as_ref()
                    .is_some_and(|o| o.phase == "Completed" || o.phase == "Halted")
            },
        )
        .await;
        let op = done.operation.clone().expect("operation");
        assert_eq!(op.phase, "Completed", "{op:#?}");
        assert_eq!(op.to_instance_type, "im4gn.xlarge");
        // The next decision plans moves with what the rebuilds reached.
        let next = wait_for_status(
            &client,
            &ns,
            Duration::from_secs(60),
            "a decision after the roll",
            |s| {
                s.moves
                    .as_ref()
                    .is_some_and(|m| m.source.starts_with("measured"))
            },
        )
        .await;
        operator.abort();
        let _ = operator.await;
        watching.set(false);
        let _ = watcher.await;

        let moves = next.moves.clone().expect("status.moves");
        eprintln!("status.moves: {moves:#?}");
        assert_eq!(moves.throttle_bytes_per_s, Some(THROTTLE), "{moves:#?}");
        let rebuilds = timed_rebuilds(&moves, THROTTLE);
        let lowest = rebuilds
            .iter()
            .map(|m| m.share)
            .fold(f64::INFINITY, f64::min);
        assert_eq!(moves.share, lowest.min(1.0), "{moves:#?}");

        // Each broker got one new disk; never two brokers down.
        let lost = log.lost.lock().expect("log").clone();
        assert_eq!(
            lost,
            (1..=3).map(|b| (b, vec![DiskLoss::NewDisk])).collect(),
            "{lost:?}"
        );
        assert_eq!(log.max_brokers_down.load(Ordering::Relaxed), 1);
        // The throttle was in force while the brokers rebuilt, and nothing is left set.
        let seen = seen.borrow().clone();
        for b in 1..=3 {
            let set = format!("broker {b} {FOLLOWER_RATE}={THROTTLE}");
            assert!(seen.contains(&set), "{set} never seen: {seen:?}");
        }
        // Each rebuild lists exactly the rebuilding broker's replicas (all 6 partitions).
        for b in 1..=3 {
            let list: Vec<String> = (0..6).map(|p| format!("{p}:{b}")).collect();
            let set = format!("topic {TOPIC} {FOLLOWER_REPLICAS}={}", list.join(","));
            assert!(seen.contains(&set), "{set} never seen: {seen:?}");
        }
        let admin = admin_at(&bootstrap).await;
        let left = throttle_left(&admin, &[1, 2, 3], &[TOPIC]).await;
        assert!(left.is_empty(), "throttle overrides left behind: {left:?}");
        let m = admin.metadata().await.expect("metadata");
        for t in m.topics.values() {
            for p in t.partitions.values() {
                assert_eq!(p.isr.len(), 3, "{p:?}");
            }
        }
        admin.close();
    });
    stop.store(true, Ordering::Relaxed);
    let cluster = kubelet_thread.join().expect("kubelet");
    // The dedicated controller was not rolled: the same process throughout.
    assert_eq!(cluster.pid(101), Some(controller_pid));
    drop(cluster);
}
