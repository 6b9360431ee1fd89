//! The finalizer `kpilot.io/operation`, on the real kube-apiserver (and, for the rebalance, a
//! real 4-broker testbed). An autopilot deleted in the middle of an operation stays until the
//! operator has made the cluster safe:
//!
//! - a rebalance running in the operator when its autopilot is deleted cancels the batch in
//!   flight at once (it does not wait for it) and removes its throttles;
//! - a rebalance left in flight by an operator that was down is cancelled from the journal in
//!   the status, and its throttles removed, by the controller's cleanup when it comes back;
//! - a Strimzi roll whose gate had paused Strimzi leaves Strimzi unpaused;
//! - the rebuild throttles of rolls onto local disks (a StatefulSet roll's journal, a Strimzi
//!   roll's `rebuildThrottle`) are lifted by the cleanup;
//! - a StatefulSet roll deletes no further pod;
//! - no operation starts on an autopilot already being deleted;
//!
//! and only then is the finalizer released and the autopilot gone.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use k8s_openapi::api::core::v1::Pod;
use kpilot_cluster::{BrokerId, TopicName, TopicPartition};
use kpilot_kafka::{AdminClient, NewTopic};
use kpilot_operator::crd::{KafkaAutopilot, KafkaAutopilotSpec, Mode};
use kpilot_operator::finalizer::{self, FINALIZER};
use kpilot_operator::fleet::{StatefulSetFleet, StatusJournal};
use kpilot_operator::horizontal::{JournaledPort, OP_ADD, RebalanceStore};
use kpilot_operator::reconcile::{kafka_resource, node_pool_resource, reconcile};
use kpilot_operator::target::STRIMZI_PAUSE_ANNOTATION;
use kpilot_operator::{FixedObserver, LoopSettings};
use kpilot_reassign::{Cancel, Event, Executor, Journal, RunStatus, prepare, read_plan_input};
use kpilot_rebalance::{BatchLimits, BrokerChange};
use kpilot_roll::Fleet as _;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt as _};
use serde_json::json;

const TOPIC: &str = "logs";
const PARTITIONS: i32 = 4;

fn executor_settings() -> kpilot_reassign::Settings {
    kpilot_reassign::Settings {
        poll_interval: Duration::from_millis(300),
        ..kpilot_reassign::Settings::default()
    }
}

/// An autopilot on `bootstrap` whose status holds a running horizontal add with `journal`,
/// and the operator's finalizer (as `operation_started` leaves them).
async fn autopilot_adding(
    client: &kube::Client,
    ns: &str,
    name: &str,
    bootstrap: &str,
    journal: &Journal,
) {
    let mut spec = spec_strimzi(Mode::Apply, None);
    spec.kafka.bootstrap = bootstrap.to_owned();
    create_autopilot(client, ns, name, spec).await;
    let api: Api<KafkaAutopilot> = Api::namespaced(client.clone(), ns);
    finalizer::add(&api, name).await.expect("finalizer added");
    let running = json!({"status": {"operation": {
        "kind": OP_ADD,
        "fromInstanceType": "m7g.large",
        "toInstanceType": "m7g.large",
        "phase": "Running",
        "startedAt": "2026-11-23T00:00:00Z",
        "journal": journal.to_json(),
        "fromBrokers": 3,
        "toBrokers": 4,
    }}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&running))
        .await
        .expect("an operation in status");
}

/// The plan that balances broker 4 in, throttled to 100 KB/s per broker so every batch takes
/// tens of seconds.
async fn plan(admin: &AdminClient) -> Journal {
    let input = read_plan_input(admin, BrokerChange::Add([BrokerId(4)].into()))
        .await
        .expect("plan input");
    let prepared = prepare(
        &input,
        BatchLimits {
            max_per_broker: 2,
            max_per_batch: 50,
        },
    )
    .expect("plan");
    assert!(
        prepared.summary.partitions_to_move >= 2,
        "{:?}",
        prepared.summary
    );
    prepared.journal(None, Some(100_000))
}

/// Reassignments in progress and throttle configs set on brokers 1-4 and the topic.
async fn leftovers(admin: &AdminClient) -> (usize, Vec<String>) {
    let moving = admin
        .list_partition_reassignments()
        .await
        .expect("list reassignments")
        .len();
    (moving, throttle_left(admin, &[1, 2, 3, 4], &[TOPIC]).await)
}

async fn gone(api: &Api<KafkaAutopilot>, name: &str) -> bool {
    api.get_opt(name).await.expect("read autopilot").is_none()
}

#[test]
fn a_rebalance_is_undone_before_its_deleted_autopilot_goes() {
    let mut cluster = kpilot_testbed::KafkaCluster::start(kpilot_testbed::ClusterConfig::default())
        .expect("start a Kafka testbed (scripts/setup-kafka must work)");
    assert_eq!(cluster.add_broker().expect("add broker 4"), 4);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let bootstrap = cluster.bootstrap();
        let addresses = kpilot_kafka::BrokerAddress::parse_list(&bootstrap).expect("bootstrap");
        let admin = AdminClient::connect(kpilot_kafka::ClientConfig::new(addresses))
            .await
            .expect("connect");
        let topic = TopicName::new(TOPIC).expect("topic");
        let mut new = NewTopic::new(topic.clone(), PARTITIONS, 3);
        new.assignments = Some(
            (0..PARTITIONS)
                .map(|p| (0..3).map(|r| BrokerId((p + r) % 3 + 1)).collect())
                .collect(),
        );
        admin.create_topics(&[new]).await.expect("create topic");
        admin.wait_for_topic(&topic).await.expect("topic ready");
        // 2 MB per partition: at 100 KB/s a move takes about 20 s.
        let value = Bytes::from(vec![b'x'; 10_000]);
        let batch: Vec<(Option<Bytes>, Option<Bytes>)> =
            (0..10).map(|_| (None, Some(value.clone()))).collect();
        for p in 0..PARTITIONS {
            for _ in 0..20 {
                admin
                    .produce(&TopicPartition::new(topic.clone(), p), &batch)
                    .await
                    .expect("fill");
            }
        }

        let cp = control_plane().await;
        let ns = cp.create_unique_namespace("finalizer").await.expect("ns");
        let client = cp.client().await.expect("client");
        let api: Api<KafkaAutopilot> = Api::namespaced(client.clone(), &ns);

        // 1. The operator runs the rebalance when the autopilot is deleted.
        let journal = plan(&admin).await;
        autopilot_adding(&client, &ns, "running", &bootstrap, &journal).await;
        let store = StatusJournal::new(api.clone(), "running", Some(journal.clone()));
        let (handle, cancel) = Cancel::new();
        let port = JournaledPort::new(&admin, &store).cancelling(handle);
        let moving = Cell::new(false);
        let mut executor = Executor::new(
            &port,
            executor_settings(),
            |e: &Event| {
                eprintln!("running: {e}");
                if matches!(e, Event::Progress { moving, .. } if *moving > 0) {
                    moving.set(true);
                }
            },
            cancel,
        );
        let mut rebalance_store = RebalanceStore(&store);
        let run = executor.run(journal, &mut rebalance_store);
        let delete = async {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while !moving.get() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(moving.get(), "data never started moving");
            api.delete("running", &DeleteParams::default())
                .await
                .expect("delete");
        };
        let (report, ()) = tokio::join!(run, delete);
        let report = report.expect("the run reports");
        // Cancelled, not completed (the batch in flight was not waited for) nor failed (the
        // next batch refused).
        assert_eq!(report.status, RunStatus::Cancelled, "{report:?}");
        assert!(!report.throttle_left);
        let left = leftovers(&admin).await;
        assert_eq!(left, (0, vec![]), "nothing left in Kafka");
        let held = api.get("running").await.expect("still there");
        assert!(held.metadata.deletion_timestamp.is_some() && finalizer::holds(&held));

        // 2. An operator that was down: its run "died" mid-batch (the future is dropped),
        // leaving moves and throttles behind, and the autopilot was deleted meanwhile.
        let journal = plan(&admin).await;
        autopilot_adding(&client, &ns, "crashed", &bootstrap, &journal).await;
        {
            let store = StatusJournal::new(api.clone(), "crashed", Some(journal.clone()));
            let port = JournaledPort::new(&admin, &store);
            let moving = Cell::new(false);
            let mut executor = Executor::new(
                &port,
                executor_settings(),
                |e: &Event| {
                    eprintln!("crashed: {e}");
                    if matches!(e, Event::Progress { moving, .. } if *moving > 0) {
                        moving.set(true);
                    }
                },
                Cancel::never(),
            );
            let mut rebalance_store = RebalanceStore(&store);
            let run = executor.run(journal, &mut rebalance_store);
            tokio::pin!(run);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while !moving.get() && tokio::time::Instant::now() < deadline {
                tokio::select! {
                    r = &mut run => panic!("the run ended before the simulated crash: {r:?}"),
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
            assert!(moving.get(), "data never started moving");
        }
        let (moves, throttles) = leftovers(&admin).await;
        assert!(
            moves > 0 && !throttles.is_empty(),
            "the crash left {moves} move(s), {throttles:?}"
        );
        api.delete("crashed", &DeleteParams::default())
            .await
            .expect("delete");
        assert!(!gone(&api, "crashed").await, "the finalizer holds it");

        // 3. The operator comes back: its cleanup undoes both, then lets them go.
        let ctx = context(client.clone(), Rc::new(FixedObserver::new(facts(1.0, 0))));
        let settings = LoopSettings {
            namespace: Some(ns.clone()),
            ..LoopSettings::default()
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let controller = kpilot_operator::run_autopilot(ctx, settings, async move {
            let _ = stopped.await;
        });
        let wait = async {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                if gone(&api, "running").await && gone(&api, "crashed").await {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the autopilots are still there: {:?}",
                    api.get_opt("crashed")
                        .await
                        .ok()
                        .flatten()
                        .and_then(|a| a.status)
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let _ = stop.send(());
        };
        tokio::join!(controller, wait);
        let left = leftovers(&admin).await;
        assert_eq!(left, (0, vec![]), "nothing left in Kafka");
        let events = event_reasons(&client, &ns, "crashed").await;
        assert!(
            events.iter().any(|(r, _)| r == "OperationCancelled"),
            "{events:?}"
        );
        // Every partition is back on its replicas before the plan (a cancel reverts).
        let assignment = kpilot_reassign::ReassignPort::assignment(&admin)
            .await
            .expect("assignment");
        for p in 0..PARTITIONS {
            let mut replicas = assignment[&TopicPartition::new(topic.clone(), p)].clone();
            replicas.sort();
            assert_eq!(
                replicas,
                [BrokerId(1), BrokerId(2), BrokerId(3)],
                "partition {p}"
            );
        }

        rebuild_throttles_are_lifted(&client, &ns, &bootstrap, &admin).await;
        admin.close();
    });
}

/// Rolls onto local disks whose operator stopped while a rebuild was throttled: the
/// cleanup lifts what the status records as possibly in force. A StatefulSet roll's journal
/// with broker 2's rebuild `applied`, then a Strimzi roll's `rebuildThrottle` on every broker.
async fn rebuild_throttles_are_lifted(
    client: &kube::Client,
    ns: &str,
    bootstrap: &str,
    admin: &AdminClient,
) {
    use kpilot_roll::ReplicationThrottle;
    use kpilot_roll::journal::Rebuild;
    let api: Api<KafkaAutopilot> = Api::namespaced(client.clone(), ns);
    let brokers: Vec<BrokerId> = (1..=4).map(BrokerId).collect();
    let rebuild = Rebuild {
        throttle_bytes_per_s: Some(1_000_000),
        senders: vec![BrokerId(1), BrokerId(3), BrokerId(4)],
        topics: vec![TOPIC.to_owned()],
        applied: true,
        ..Rebuild::default()
    };
    let mut journal = kpilot_roll::Journal::new(
        None,
        "m7g.xlarge".parse().expect("type"),
        vec![],
        brokers.iter().map(|b| (*b, None)).collect(),
        0,
    );
    journal.nodes[1].rebuild = Some(rebuild.clone());
    let whole = ReplicationThrottle {
        receivers: brokers.clone(),
        senders: brokers.clone(),
        topics: vec![kpilot_roll::ThrottledTopic::all(TOPIC)],
    };
    let cases = [
        (
            "sts-rebuilding",
            ReplicationThrottle::of_rebuild(BrokerId(2), &rebuild),
            KafkaAutopilotSpec {
                target: statefulset_target("kafka"),
                ..spec_strimzi(Mode::Apply, None)
            },
            json!({"kind": "vertical-statefulset", "journal": journal.to_json()}),
            "the rebuild throttle of broker(s) 2 is lifted",
        ),
        (
            "strimzi-rebuilding",
            whole,
            spec_strimzi(Mode::Apply, None),
            json!({"kind": "vertical-strimzi", "rebuildThrottle": {
                "bytesPerS": 1_000_000, "brokers": [1, 2, 3, 4], "topics": [TOPIC],
                "setAt": "2026-11-23T00:00:01Z"}}),
            "the rebuild throttle is lifted",
        ),
    ];
    for (name, throttle, mut spec, operation, said) in cases {
        throttle
            .set(admin, 1_000_000)
            .await
            .expect("set the throttle");
        let set = settled(
            || throttle_left(admin, &[1, 2, 3, 4], &[TOPIC]),
            |l| l.len() == throttle.receivers.len() + throttle.senders.len() + 2,
        )
        .await;
        assert_eq!(
            set.len(),
            throttle.receivers.len() + throttle.senders.len() + 2,
            "{set:?}"
        );
        spec.kafka.bootstrap = bootstrap.to_owned();
        create_autopilot(client, ns, name, spec).await;
        finalizer::add(&api, name).await.expect("finalizer added");
        let mut op = json!({
            "fromInstanceType": "m7g.large",
            "toInstanceType": "m7g.xlarge",
            "phase": "Running",
            "startedAt": "2026-11-23T00:00:00Z",
        });
        op.as_object_mut()
            .expect("object")
            .extend(operation.as_object().expect("object").clone());
        api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"operation": op}})),
        )
        .await
        .expect("an operation in status");
        api.delete(name, &DeleteParams::default())
            .await
            .expect("delete");
        let ap = api.get(name).await.expect("held by the finalizer");
        let ctx = context(client.clone(), Rc::new(FixedObserver::new(facts(1.0, 0))));
        finalizer::clean_up(&ap, &ctx).await.expect("cleanup");
        assert!(gone(&api, name).await, "{name}: released and gone");
        let left = settled(
            || throttle_left(admin, &[1, 2, 3, 4], &[TOPIC]),
            Vec::is_empty,
        )
        .await;
        assert!(left.is_empty(), "{name}: left behind: {left:?}");
        let events = event_reasons(client, ns, name).await;
        let cancelled = events
            .iter()
            .find(|(r, _)| r == "OperationCancelled")
            .unwrap_or_else(|| panic!("{events:?}"));
        assert!(cancelled.1.contains(said), "{name}: {cancelled:?}");
    }
}

#[tokio::test]
async fn a_strimzi_roll_paused_by_the_gate_leaves_strimzi_unpaused() {
    let cp = control_plane().await;
    let ns = cp
        .create_unique_namespace("finalizer-strimzi")
        .await
        .expect("ns");
    let client = cp.client().await.expect("client");
    create_strimzi(&client, &ns, "m7g.large").await;
    create_autopilot(&client, &ns, "roll", spec_strimzi(Mode::Apply, None)).await;
    let api: Api<KafkaAutopilot> = Api::namespaced(client.clone(), &ns);
    finalizer::add(&api, "roll").await.expect("finalizer");
    finalizer::add(&api, "roll")
        .await
        .expect("adding twice is harmless");
    let paused = json!({"status": {"operation": {
        "kind": "vertical-strimzi",
        "fromInstanceType": "m7g.large",
        "toInstanceType": "m7g.xlarge",
        "phase": "Paused",
        "startedAt": "2026-11-23T00:00:00Z",
        "message": "Strimzi reconciliation paused: 1 under-replicated and 0 offline partition(s)",
    }}});
    api.patch_status("roll", &PatchParams::default(), &Patch::Merge(&paused))
        .await
        .expect("status");
    let kafkas: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &kafka_resource());
    kafkas
        .patch(
            "my-cluster",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {STRIMZI_PAUSE_ANNOTATION: "true"}}})),
        )
        .await
        .expect("pause Strimzi as the gate does");

    api.delete("roll", &DeleteParams::default())
        .await
        .expect("delete");
    let ap = api.get("roll").await.expect("held by the finalizer");
    assert_eq!(ap.finalizers(), [FINALIZER]);
    let ctx = context(client.clone(), Rc::new(FixedObserver::new(facts(1.0, 0))));
    finalizer::clean_up(&ap, &ctx).await.expect("cleanup");

    assert!(gone(&api, "roll").await, "released and gone");
    let kafka = kafkas.get("my-cluster").await.expect("Kafka");
    assert!(
        !kafka.annotations().contains_key(STRIMZI_PAUSE_ANNOTATION),
        "{:?}",
        kafka.annotations()
    );
    let events = event_reasons(&client, &ns, "roll").await;
    let cancelled = events
        .iter()
        .find(|(r, _)| r == "OperationCancelled")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert!(cancelled.1.contains("not paused"), "{cancelled:?}");

    // No operation can start on an autopilot being deleted: the API server refuses the
    // finalizer the operation would need first.
    create_autopilot(&client, &ns, "late", spec_strimzi(Mode::Apply, None)).await;
    api.patch(
        "late",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": ["test.kpilot.io/hold"]}})),
    )
    .await
    .expect("someone else's finalizer");
    api.delete("late", &DeleteParams::default())
        .await
        .expect("delete");
    let err = finalizer::add(&api, "late")
        .await
        .expect_err("no new finalizer on an object being deleted");
    eprintln!("refused as expected: {err}");
    // A reconcile deciding to roll (60 MB/s on 3 x m7g.large) therefore starts nothing: no
    // operation in the status, the KafkaNodePool untouched.
    let pools: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &node_pool_resource());
    let before = pools.get("brokers").await.expect("pool").resource_version();
    let busy = context(client.clone(), Rc::new(FixedObserver::new(facts(60.0, 0))));
    let err = reconcile(&api.get("late").await.expect("late"), &busy)
        .await
        .expect_err("the operation cannot start without its finalizer");
    eprintln!("reconcile refused as expected: {err}");
    let late = api.get("late").await.expect("late");
    let status = late.status.expect("status");
    assert_eq!(
        status.last_decision.map(|d| d.action),
        Some("change".to_owned()),
        "it did decide to change"
    );
    assert!(status.operation.is_none(), "{:?}", status.operation);
    assert_eq!(
        pools.get("brokers").await.expect("pool").resource_version(),
        before
    );
    api.patch(
        "late",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release the test's finalizer");
}

#[tokio::test]
async fn a_statefulset_roll_deletes_no_further_pod_once_its_autopilot_is_being_deleted() {
    let cp = control_plane().await;
    let ns = cp
        .create_unique_namespace("finalizer-sts")
        .await
        .expect("ns");
    let client = cp.client().await.expect("client");
    create_autopilot(&client, &ns, "roll", spec_strimzi(Mode::Apply, None)).await;
    let api: Api<KafkaAutopilot> = Api::namespaced(client.clone(), &ns);
    finalizer::add(&api, "roll").await.expect("finalizer");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "kafka-1", "annotations": {"kpilot.io/instance-type": "m7g.large"}},
        "spec": {"containers": [{"name": "kafka", "image": "kafka"}]},
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("pod");

    let journal = StatusJournal::new(api.clone(), "roll", None);
    let fleet = StatefulSetFleet::new(
        pods.clone(),
        "kafka",
        0,
        "m7g.xlarge".parse().expect("type"),
        &journal,
        Duration::from_secs(10),
    );
    api.delete("roll", &DeleteParams::default())
        .await
        .expect("delete");
    let err = fleet
        .stop(BrokerId(1))
        .await
        .expect_err("no pod is deleted for a deleted autopilot");
    assert!(err.to_string().contains("being deleted"), "{err}");
    let pod = pods.get("kafka-1").await.expect("the pod is still there");
    assert!(pod.metadata.deletion_timestamp.is_none());
    finalizer::release(&api, "roll").await.expect("release");
    assert!(gone(&api, "roll").await);
}
