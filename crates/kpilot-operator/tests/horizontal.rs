//! Horizontal operations end to end: a real 3-broker Kafka cluster (kpilot-testbed) behind a
//! StatefulSet on the real kube-apiserver, the test playing the kubelet (pod ordinal *i* is
//! broker *i + 1*: when `spec.replicas` grows it starts a new broker, when it shrinks it
//! first records how many replicas the leaving broker still holds, then stops it). The
//! decisions are injected (an in-memory observation: 70 MB/s on 3 x m7g.large needs a 4th
//! broker of the only allowed size; 5 MB/s on 4 lets one go); the rebalance goes to the real
//! Kafka through the autopilot's bootstrap. Shown: 3 -> 4 in apply mode (replicas patched,
//! partitions balanced onto broker 4 under the throttle, the throttle gone afterwards), with
//! the operator killed mid-rebalance and a new one resuming the same operation from the
//! journal in the status; then 4 -> 3 (broker 4 drained before the replicas go down). A
//! VerifiableProducer (acks=all) runs throughout and every acknowledged record is read back.

mod common;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kpilot_cluster::{BrokerId, TopicName, TopicPartition};
use kpilot_kafka::{AdminClient, BrokerAddress, ClientConfig, ConfigResource, NewTopic};
use kpilot_kubetest::ControlPlane;
use kpilot_operator::crd::*;
use kpilot_operator::reconcile::reconcile;
use kpilot_operator::{Context, FixedObserver};
use kpilot_reassign::{BatchState, FOLLOWER_RATE, LEADER_RATE, RunStatus};
use kpilot_testbed::KafkaCluster;
use kpilot_units::Throughput;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const TOPIC: &str = "orders";
const BULK: &str = "bulk";
const FINALIZER: &str = "kpilot.test/kubelet";
/// The throttle the test caps the rebalance at, bytes per second: small, so that moving a few
/// MB takes seconds and the throttle is seen in force.
const THROTTLE: i64 = 1_000_000;
/// What the test cluster stores, all replicas, GB (the bulk topic's 9 MB three times, and
/// the producer's records): what the decisions plan the data moves with, at the throttle.
const STORED_GB: f64 = 0.03;

/// What the fake kubelet saw.
#[derive(Default)]
struct KubeletLog {
    /// Brokers started for a grown StatefulSet.
    added: Mutex<Vec<i32>>,
    /// Per broker stopped for a shrunk StatefulSet: the replicas it held when the kubelet saw
    /// the replicas go down (before stopping it).
    removed: Mutex<Vec<(i32, usize)>>,
    /// The most replicas broker 4 held, sampled every tick.
    most_on_4: AtomicI64,
}

async fn connect_admin(bootstrap: &str) -> AdminClient {
    let mut config = ClientConfig::new(BrokerAddress::parse_list(bootstrap).expect("bootstrap"));
    config.api_timeout = Duration::from_secs(30);
    AdminClient::connect(config).await.expect("connect")
}

async fn replicas_on(admin: &AdminClient, id: i32) -> usize {
    let m = admin.metadata().await.expect("metadata");
    m.topics
        .values()
        .flat_map(|t| t.partitions.values())
        .filter(|p| p.replicas.contains(&BrokerId(id)))
        .count()
}

/// Plays the kubelet and the StatefulSet controller until `stop`: pods `kafka-<i>` for
/// `i < spec.replicas` exist and are Ready with broker `i + 1` running (a new ordinal starts a
/// new testbed broker); a pod beyond `spec.replicas` gets its broker stopped (after recording
/// how many replicas it still held) and is deleted.
fn kubelet(
    cp: &'static ControlPlane,
    ns: String,
    bootstrap: String,
    mut cluster: KafkaCluster,
    stop: Arc<AtomicBool>,
    log: Arc<KubeletLog>,
) -> KafkaCluster {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = cp.client().await.expect("client");
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
        let admin = connect_admin(&bootstrap).await;
        while !stop.load(Ordering::Relaxed) {
            let sts = sets.get("kafka").await.expect("sts");
            let spec = sts.spec.clone().expect("spec");
            let replicas = spec.replicas.unwrap_or(1);
            let on_4 = if cluster.is_running(4) {
                replicas_on(&admin, 4).await as i64
            } else {
                0
            };
            log.most_on_4.fetch_max(on_4, Ordering::Relaxed);
            let mut present: BTreeSet<i32> = BTreeSet::new();
            for p in pods.list(&Default::default()).await.expect("pods").items {
                if let Some(i) = p
                    .metadata
                    .name
                    .as_deref()
                    .and_then(|n| n.strip_prefix("kafka-"))
                    .and_then(|s| s.parse().ok())
                {
                    present.insert(i);
                }
            }
            // Scale-down: the pods above the replicas go, their brokers first.
            for &i in present.iter().filter(|i| **i >= replicas) {
                let id = i + 1;
                if cluster.is_running(id) {
                    let held = replicas_on(&admin, id).await;
                    eprintln!("kubelet: replicas {replicas}: stopping broker {id} (holds {held} replica(s))");
                    log.removed.lock().expect("log").push((id, held));
                    cluster.stop_broker(id).expect("stop broker");
                }
                pods.patch(
                    &format!("kafka-{i}"),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                )
                .await
                .expect("remove finalizer");
                let _ = pods.delete(&format!("kafka-{i}"), &Default::default()).await;
            }
            // Scale-up: missing pods, their brokers started (a new one for a new ordinal).
            for i in 0..replicas {
                if present.contains(&i) {
                    continue;
                }
                let id = i + 1;
                if !cluster.broker_ids().contains(&id) {
                    eprintln!("kubelet: replicas {replicas}: starting a new broker for kafka-{i}");
                    let new = cluster.add_broker().expect("add a broker");
                    assert_eq!(new, id, "the new broker's id follows the ordinal");
                    log.added.lock().expect("log").push(id);
                } else if !cluster.is_running(id) {
                    cluster.start_broker(id).expect("start broker");
                }
                let template = spec.template.clone();
                let mut meta = template.metadata.unwrap_or_default();
                meta.name = Some(format!("kafka-{i}"));
                meta.finalizers = Some(vec![FINALIZER.to_owned()]);
                let pod = Pod {
                    metadata: meta,
                    spec: template.spec,
                    status: None,
                };
                pods.create(&PostParams::default(), &pod)
                    .await
                    .expect("create pod");
                pods.patch_status(
                    &format!("kafka-{i}"),
                    &PatchParams::default(),
                    &Patch::Merge(
                        json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
                    ),
                )
                .await
                .expect("ready");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        admin.close();
    });
    cluster
}

async fn status(client: &kube::Client, ns: &str) -> KafkaAutopilotStatus {
    get_autopilot(client, ns, "auto")
        .await
        .status
        .unwrap_or_default()
}

/// Plays the controller: reconciles, then again after the requeue (at most 300 ms here),
/// until `done` holds for the status; fails after `limit`.
async fn drive(
    client: &kube::Client,
    ns: &str,
    ctx: &Context,
    limit: Duration,
    what: &str,
    done: impl Fn(&KafkaAutopilotStatus) -> bool,
) -> KafkaAutopilotStatus {
    let began = Instant::now();
    loop {
        let ap = get_autopilot(client, ns, "auto").await;
        let requeue = match reconcile(&ap, ctx).await {
            Ok(d) => d,
            Err(e) => {
                eprintln!("reconcile failed: {e}");
                Duration::from_millis(300)
            }
        };
        let s = status(client, ns).await;
        if done(&s) {
            return s;
        }
        assert!(
            began.elapsed() < limit,
            "timed out waiting for {what}: {s:#?}"
        );
        tokio::time::sleep(requeue.min(Duration::from_millis(300))).await;
    }
}

fn journal_of(s: &KafkaAutopilotStatus) -> Option<kpilot_reassign::Journal> {
    s.operation
        .as_ref()?
        .journal
        .as_deref()
        .and_then(|j| kpilot_reassign::Journal::from_json(j).ok())
}

fn phase(s: &KafkaAutopilotStatus) -> Option<(&str, &str)> {
    s.operation
        .as_ref()
        .map(|o| (o.kind.as_str(), o.phase.as_str()))
}

/// The throttle rates set on the brokers now (broker, key, value); a broker that cannot be
/// asked (not started yet) shows none.
async fn throttle_rates(admin: &AdminClient, brokers: &[i32]) -> Vec<(i32, String, String)> {
    let mut out = Vec::new();
    for b in brokers {
        let configs = match admin
            .describe_configs(
                &[ConfigResource::Broker(BrokerId(*b))],
                Some(&[LEADER_RATE, FOLLOWER_RATE]),
            )
            .await
        {
            Ok(c) => c,
            Err(_) => continue,
        };
        for entries in configs.into_values() {
            for (k, e) in entries {
                if let Some(v) = e.value.filter(|v| !v.is_empty()) {
                    out.push((*b, k, v));
                }
            }
        }
    }
    out
}

#[test]
fn brokers_are_added_and_removed_with_a_throttled_rebalance_resumed_after_a_kill() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("kpilot_operator=info,kpilot_reassign=info")
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
        let ns = cp.create_unique_namespace("horiz").await.expect("ns");
        let client = cp.client().await.expect("client");
        let admin = connect_admin(&bootstrap).await;
        for (t, partitions) in [(TOPIC, 6), (BULK, 6)] {
            let name = TopicName::new(t).expect("topic");
            admin
                .create_topics(&[NewTopic::new(name.clone(), partitions, 3)
                    .with_config("min.insync.replicas", 2)])
                .await
                .expect("topic");
            admin.wait_for_topic(&name).await.expect("topic ready");
        }
        // About 1.5 MB per bulk partition: moving a quarter of the replicas to a new broker
        // takes seconds at the 1 MB/s throttle.
        let value = Bytes::from(vec![b'x'; 10_000]);
        let batch: Vec<(Option<Bytes>, Option<Bytes>)> =
            (0..10).map(|_| (None, Some(value.clone()))).collect();
        for p in 0..6 {
            let tp = TopicPartition::new(TopicName::new(BULK).expect("topic"), p);
            for _ in 0..15 {
                admin.produce(&tp, &batch).await.expect("fill");
            }
        }
        admin.close();
        let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
        sets.create(&PostParams::default(), &statefulset("m7g.large"))
            .await
            .expect("sts");
        (cp, ns, client)
    });
    let kubelet_thread = {
        let (ns, stop, log, bootstrap) = (ns.clone(), stop.clone(), log.clone(), bootstrap.clone());
        std::thread::spawn(move || kubelet(cp, ns, bootstrap, cluster, stop, log))
    };
    let mut producer = JsonTool::spawn(producer_cmd);

    local.block_on(&rt, async {
        let began = Instant::now();
        while producer.count("producer_send_success") < 300 {
            assert!(
                began.elapsed() < Duration::from_secs(60),
                "the producer did not get going"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let admin = connect_admin(&bootstrap).await;
        assert_eq!(replicas_on(&admin, 4).await, 0);

        // One size allowed, 3 or 4 brokers in one zone: only the broker count can change.
        let mut spec = KafkaAutopilotSpec {
            target: statefulset_target("kafka"),
            kafka: KafkaSpec {
                bootstrap: bootstrap.clone(),
                tls: None,
                sasl: None,
            },
            ..spec_strimzi(Mode::Apply, None)
        };
        spec.constraints.sizes = vec!["large".into()];
        spec.constraints.zones = 1;
        spec.constraints.min_brokers = 3;
        spec.constraints.max_brokers = 4;
        spec.constraints.allow_vertical = false;
        spec.constraints.allow_horizontal = true;
        spec.policy.cooldown = Some("1s".into());
        create_autopilot(&client, &ns, "auto", spec).await;
        let observer = FixedObserver::new(facts_storing(70.0, STORED_GB));
        let make_ctx = || {
            let mut ctx = context(client.clone(), Rc::new(observer.clone()));
            ctx.rebalance.limits.max_per_broker = 2;
            ctx.rebalance.max_throttle = Some(Throughput::from_bytes_per_s(THROTTLE as f64));
            ctx.rebalance.executor.poll_interval = Duration::from_millis(200);
            ctx.rebalance.executor.batch_timeout = Duration::from_secs(120);
            // The test's moves take seconds: time them anyway (a real one, from a minute).
            ctx.rebalance.timed_from = kpilot_units::Span::from_secs(1.0);
            ctx
        };

        // A watcher samples the brokers' throttle rates throughout.
        let seen_rates: Rc<RefCell<BTreeSet<(i32, String, String)>>> = Rc::default();
        let watching = Rc::new(std::cell::Cell::new(true));
        let watcher = {
            let (seen, watching, bootstrap) = (seen_rates.clone(), watching.clone(), bootstrap.clone());
            tokio::task::spawn_local(async move {
                let admin = connect_admin(&bootstrap).await;
                while watching.get() {
                    let now = throttle_rates(&admin, &[1, 2, 3, 4]).await;
                    seen.borrow_mut().extend(now);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                admin.close();
            })
        };

        // (a) + (c): 3 -> 4. The first operator is killed once a batch is in flight or done
        // but the rebalance is not finished.
        let first = make_ctx();
        let killed_at = tokio::select! {
            s = drive(&client, &ns, &first, Duration::from_secs(180), "the add to complete", |s| {
                phase(s).is_some_and(|(_, p)| p == "Completed")
            }) => panic!("the rebalance finished before the kill: {s:#?}"),
            s = async {
                let began = Instant::now();
                loop {
                    let s = status(&client, &ns).await;
                    if journal_of(&s).is_some_and(|j| {
                        j.status == RunStatus::Running
                            && j.batches.iter().any(|b| b.state != BatchState::Pending)
                            && j.batches.iter().any(|b| b.state != BatchState::Done)
                    }) {
                        break s;
                    }
                    assert!(began.elapsed() < Duration::from_secs(180), "no batch started: {s:#?}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            } => s,
        };
        drop(first);
        let op = killed_at.operation.clone().expect("operation");
        let journal_at_kill = journal_of(&killed_at).expect("journal");
        eprintln!(
            "killed the operator mid-rebalance: {:?}",
            journal_at_kill
                .batches
                .iter()
                .map(|b| b.state)
                .collect::<Vec<_>>()
        );
        assert_eq!((op.kind.as_str(), op.phase.as_str()), ("horizontal-add", "Running"));
        assert_eq!((op.from_brokers, op.to_brokers), (Some(3), Some(4)));
        assert_eq!(*log.added.lock().expect("log"), vec![4]);
        let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
        let replicas = |s: StatefulSet| s.spec.and_then(|s| s.replicas);
        assert_eq!(replicas(sts.get("kafka").await.expect("sts")), Some(4));
        assert_eq!(
            journal_at_kill.throttle_bytes_per_s,
            Some(THROTTLE as u64),
            "the throttle is recorded"
        );
        assert!(journal_at_kill.batches.len() >= 2, "{journal_at_kill:#?}");

        // A new operator resumes the same operation and finishes it.
        let second = make_ctx();
        let done = drive(&client, &ns, &second, Duration::from_secs(180), "the add to complete", |s| {
            phase(s).is_some_and(|(_, p)| p == "Completed" || p == "Halted")
        })
        .await;
        let op2 = done.operation.clone().expect("operation");
        assert_eq!((op2.kind.as_str(), op2.phase.as_str()), ("horizontal-add", "Completed"), "{op2:#?}");
        assert_eq!(op2.started_at, op.started_at, "the same operation, not a second one");
        let journal = journal_of(&done).expect("journal");
        assert_eq!(journal.status, RunStatus::Completed);
        assert!(journal.leaders_elected);
        assert_eq!(
            journal.batches.iter().map(|b| &b.batch).collect::<Vec<_>>(),
            journal_at_kill.batches.iter().map(|b| &b.batch).collect::<Vec<_>>(),
            "resumed the recorded plan, not a new one"
        );
        assert_eq!(
            second.metrics.get(
                "kpilot_operations_total",
                &[("kind", "horizontal-add"), ("event", "started")]
            ),
            None,
            "the second operator started nothing"
        );
        assert_eq!(
            second.metrics.get(
                "kpilot_operations_total",
                &[("kind", "horizontal-add"), ("event", "completed")]
            ),
            Some(1.0)
        );
        assert!(done.last_change_finished.is_some());
        assert_eq!(done.current_shape.as_ref().map(|s| s.brokers), Some(4));
        let on_4 = replicas_on(&admin, 4).await;
        assert!(on_4 >= 6, "broker 4 got its share: {on_4} replica(s)");
        let left = throttle_left(&admin, &[1, 2, 3, 4], &[TOPIC, BULK]).await;
        assert!(left.is_empty(), "throttle configs left behind: {left:?}");
        let m = admin.metadata().await.expect("metadata");
        for t in m.topics.values() {
            for p in t.partitions.values() {
                assert_eq!(p.leader, p.replicas.first().copied(), "preferred leader {p:?}");
            }
        }
        // The senders (brokers 1-3 lead every partition) had both rates set while data moved.
        let rates = seen_rates.borrow().clone();
        for b in 1..=3 {
            for key in [LEADER_RATE, FOLLOWER_RATE] {
                assert!(
                    rates.contains(&(b, key.to_owned(), THROTTLE.to_string())),
                    "{key} was never seen at {THROTTLE} on broker {b} while data moved: {rates:?}"
                );
            }
        }
        let started = event_reasons(&client, &ns, "auto")
            .await
            .into_iter()
            .filter(|(r, _)| r == "OperationStarted")
            .count();
        assert_eq!(started, 1, "one operation started");
        eprintln!(
            "added broker 4: {on_4} replica(s) moved onto it at {} B/s, resumed after a kill; {}",
            THROTTLE,
            op2.message.clone().unwrap_or_default()
        );

        // (b) 4 -> 3: low ingress; the history of the high one is replaced by a quiet day
        // (the policy scales down only once its history shows one).
        observer.set(facts_storing(5.0, STORED_GB));
        Api::<KafkaAutopilot>::namespaced(client.clone(), &ns)
            .patch_status(
                "auto",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"history": quiet_day(5.0)}})),
            )
            .await
            .expect("a quiet day of history");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let third = make_ctx();
        let done = drive(&client, &ns, &third, Duration::from_secs(180), "the removal to complete", |s| {
            phase(s).is_some_and(|(k, p)| k == "horizontal-remove" && (p == "Completed" || p == "Halted"))
        })
        .await;
        watching.set(false);
        let _ = watcher.await;
        let op3 = done.operation.clone().expect("operation");
        assert_eq!(op3.phase, "Completed", "{op3:#?}");
        assert_eq!((op3.from_brokers, op3.to_brokers), (Some(4), Some(3)));
        assert_eq!(replicas(sts.get("kafka").await.expect("sts")), Some(3));
        let journal = journal_of(&done).expect("journal");
        assert!(matches!(&journal.change, kpilot_rebalance::BrokerChange::Remove(ids) if ids == &BTreeSet::from([BrokerId(4)])));
        // The removal ran whole in one run: its data move is timed against the throttle on
        // the three brokers receiving it. (The add, resumed after the kill, is not: the second
        // run timed only its part.)
        let moves = done.moves.clone().expect("status.moves");
        assert_eq!(moves.measured.len(), 1, "{moves:#?}");
        let m = &moves.measured[0];
        assert_eq!((m.kind.as_str(), m.receivers, m.at.as_str()), ("horizontal-remove", 3, op3.started_at.as_str()));
        assert_eq!(Some(m.throttle_bytes_per_s), journal.throttle_bytes_per_s);
        assert_eq!(m.bytes, journal.total_bytes(), "{moves:#?}");
        let planned = m.bytes as f64 / (m.throttle_bytes_per_s as f64 * 3.0);
        assert!(m.seconds > 0.0 && m.share > 0.0, "{moves:#?}");
        assert!(
            (m.share - planned / m.seconds).abs() < 0.001,
            "the share is the planned time over the time taken: {moves:#?}"
        );
        // The throttle was in force: no faster than the three receivers' throttle allows
        // (the brokers' quota windows let a little more through at the start).
        assert!(m.share <= 1.2, "{moves:#?}");
        // The next decision plans moves at that share.
        let next = drive(&client, &ns, &third, Duration::from_secs(30), "a decision after the removal", |s| {
            s.moves.as_ref().is_some_and(|m| m.source.starts_with("measured"))
        })
        .await;
        let planned_with = next.moves.expect("status.moves");
        assert_eq!(planned_with.share, m.share.min(1.0), "{planned_with:#?}");
        eprintln!(
            "removal timed: {} bytes in {} s at {} B/s x 3 = {:.1} s planned, share {}",
            m.bytes, m.seconds, m.throttle_bytes_per_s, planned, m.share
        );
        // The kubelet stops broker 4 once it sees the replicas go down (asynchronously).
        let began = Instant::now();
        while log.removed.lock().expect("log").is_empty() {
            assert!(began.elapsed() < Duration::from_secs(60), "broker 4 was never stopped");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            *log.removed.lock().expect("log"),
            vec![(4, 0)],
            "broker 4 held no replica when the replicas went down"
        );
        let left = throttle_left(&admin, &[1, 2, 3], &[TOPIC, BULK]).await;
        assert!(left.is_empty(), "throttle configs left behind: {left:?}");
        let m = admin.metadata().await.expect("metadata");
        for t in m.topics.values() {
            for p in t.partitions.values() {
                assert!(!p.replicas.contains(&BrokerId(4)), "{p:?}");
                assert_eq!(p.replicas.len(), 3, "{p:?}");
            }
        }
        let events = event_reasons(&client, &ns, "auto").await;
        assert!(events.iter().any(|(r, _)| r == "BrokersRemoved"), "{events:?}");
        assert!(events.iter().any(|(r, n)| r == "RebalanceStarted" && n.contains("capacity model")), "{events:?}");
        admin.close();
    });

    std::thread::sleep(Duration::from_secs(2));
    producer.terminate();
    stop.store(true, Ordering::Relaxed);
    let cluster = kubelet_thread.join().expect("kubelet thread");
    eprintln!(
        "broker 4 held at most {} replica(s)",
        log.most_on_4.load(Ordering::Relaxed)
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
        "acked {} records, read back every one, 0 lost, 0 send errors",
        acked.len()
    );
    drop(cluster);
}
