//! A Strimzi roll onto instance-local disks end to end: a real Kafka cluster of 3 broker-only
//! nodes (the brokers' node pool) and a dedicated KRaft controller (node 101, a pool of its
//! own, which the roll leaves alone), the real kube-apiserver with the real Strimzi CRDs, and
//! the test playing Strimzi. When the `KafkaNodePool` asks for the new type, it rolls one
//! broker pod at a time as Strimzi's roller does: only when no partition would fall below
//! `min.insync.replicas` without the broker; the broker comes back on a new node with a new,
//! empty disk (a new directory id, no metadata log) and its pod on the new type. The
//! autopilot's storage is `local-nvme`; the decision is injected (100 MB/s on 3 x
//! im4gn.large, whose target is 82 MB/s, needs im4gn.xlarge). Shown: the
//! operator sets the rebuild throttle before the pool changes (both rates on every broker,
//! `*` on the topic), keeps it while the last broker still rebuilds after every pod is on the
//! new type, and lifts it before the operation completes; each rebuild runs at the throttle.
//! Mid-roll, a rate it set is removed (set again at the next poll) and another is set to a
//! different value by "someone else" (left as it is, yielded, and not removed by the lift).

mod common;

use std::rc::Rc;
use std::time::{Duration, Instant};

use common::*;
use k8s_openapi::api::core::v1::Pod;
use kpilot_cluster::TopicName;
use kpilot_kafka::{
    AdminClient, ConfigOp, ConfigResource, FOLLOWER_RATE, FOLLOWER_REPLICAS, LEADER_RATE,
    LEADER_REPLICAS,
};
use kpilot_operator::FixedObserver;
use kpilot_operator::crd::*;
use kpilot_operator::reconcile::{node_pool_resource, reconcile};
use kpilot_operator::target::{INSTANCE_TYPE_ANNOTATION, instance_type_in_affinity};
use kpilot_units::Throughput;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

const TOPIC: &str = "bulk";
/// The throttle the test caps moves at, bytes per second: 36 MB per broker, of which about
/// 10 MB arrive while the broker starts (before it answers, and Kafka's quota window lets
/// more through in its first seconds), the rest at 2 MB/s.
const THROTTLE: u64 = 2_000_000;
/// From the broker answering to back in sync: at a 50 MB/s cap the same rebuilds took
/// 0.24-0.73 s in one run of this test; at 2 MB/s, about 13 s or more.
const THROTTLED_AT_LEAST: Duration = Duration::from_secs(8);

/// Broker `id`'s pod on `instance`, Ready.
async fn pod_up(pods: &Api<Pod>, id: i32, instance: &str) {
    let name = format!("my-cluster-brokers-{id}");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {
            "strimzi.io/cluster": "my-cluster", "strimzi.io/pool-name": "brokers"},
            "annotations": {INSTANCE_TYPE_ANNOTATION: instance}},
        "spec": {"containers": [{"name": "kafka", "image": "quay.io/strimzi/kafka:test"}]}
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True",
        "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string()}]}});
    pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&ready))
        .await
        .expect("ready");
}

/// Partitions whose ISR is short of their replicas.
async fn out_of_sync(admin: &AdminClient) -> usize {
    let m = admin.metadata().await.expect("metadata");
    m.topics
        .values()
        .flat_map(|t| t.partitions.values())
        .filter(|p| p.isr.len() < p.replicas.len())
        .count()
}

/// Whether Strimzi's roller may restart `id`: no partition would keep fewer than 2 in-sync
/// replicas without it.
async fn may_roll(admin: &AdminClient, id: i32) -> bool {
    let m = admin.metadata().await.expect("metadata");
    m.topics
        .values()
        .flat_map(|t| t.partitions.values())
        .filter(|p| p.isr.contains(&kpilot_cluster::BrokerId(id)))
        .all(|p| p.isr.len() > 2)
}

#[test]
fn a_strimzi_roll_onto_local_disks_is_throttled_until_the_last_rebuild_is_in_sync() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("kpilot_operator=info")
        .with_test_writer()
        .try_init();
    let mut cluster = three_brokers_min_isr_2_and_controllers(1);
    let bootstrap = cluster.bootstrap();
    let controller_pid = cluster.pid(101).expect("the controller runs");
    on_local(async {
        let cp = control_plane().await;
        let ns = cp
            .create_unique_namespace("strimzi-local")
            .await
            .expect("ns");
        let client = cp.client().await.expect("client");
        // 6 partitions x 60 batches x 100 kB: 36 MB on every broker.
        fill_topic(&bootstrap, TOPIC, 6, 60).await;
        let admin = admin_at(&bootstrap).await;

        create_strimzi(&client, &ns, "im4gn.large").await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
        for id in 1..=3 {
            pod_up(&pods, id, "im4gn.large").await;
        }
        let pools: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &ns, &node_pool_resource());

        let mut spec = spec_strimzi(Mode::Apply, None);
        spec.kafka.bootstrap = bootstrap.clone();
        on_local_nvme(&mut spec);
        create_autopilot(&client, &ns, "auto", spec).await;
        let observer = FixedObserver::new(facts_storing(100.0, 0.11));
        let mut ctx = context(client.clone(), Rc::new(observer.clone()));
        ctx.rebalance.max_throttle = Some(Throughput::from_bytes_per_s(THROTTLE as f64));
        // The test's rebuilds take seconds: time them anyway (a real one, from a minute).
        ctx.rebalance.timed_from = kpilot_units::Span::from_secs(1.0);

        // Someone else's throttle (a list an interrupted reassignment left): the operation
        // halts before the pool changes, naming it; removed, the retry proceeds.
        let topic = ConfigResource::Topic(TopicName::new(TOPIC).expect("topic"));
        let foreign = format!("topic {TOPIC} {LEADER_REPLICAS}=0:1");
        admin
            .alter_configs(&topic, &[ConfigOp::set(LEADER_REPLICAS, "0:1")])
            .await
            .expect("set a replica list");
        let now = settled(
            || throttle_answering(&admin, &[1, 2, 3], &[TOPIC]),
            |s| s.contains(&foreign),
        )
        .await;
        assert!(now.contains(&foreign), "{now:?}");
        // The broker that answered has it; give the others' metadata a moment too.
        tokio::time::sleep(Duration::from_secs(1)).await;
        reconcile(&get_autopilot(&client, &ns, "auto").await, &ctx)
            .await
            .expect_err("refused");
        let op = get_autopilot(&client, &ns, "auto")
            .await
            .status
            .and_then(|s| s.operation)
            .expect("operation");
        let message = op.message.clone().unwrap_or_default();
        assert_eq!(op.phase, "Halted", "{op:#?}");
        assert!(
            message.contains("0:1") && message.contains("no pod was restarted"),
            "{message}"
        );
        let pool = pools.get("brokers").await.expect("pool");
        assert_eq!(
            pool.data
                .pointer("/spec/template/pod/affinity")
                .and_then(instance_type_in_affinity)
                .as_deref(),
            Some("im4gn.large"),
            "the pool was not touched"
        );
        admin
            .alter_configs(&topic, &[ConfigOp::delete(LEADER_REPLICAS)])
            .await
            .expect("delete the replica list");

        let removed = format!("broker 3 {FOLLOWER_RATE}={THROTTLE}");
        const THEIRS: u64 = 7_000_000;
        let theirs = format!("broker 1 {LEADER_RATE}={THEIRS}");
        let began = Instant::now();
        let mut set_before_the_pool_changed = None;
        // Broker being rebuilt: its id and when Strimzi restarted it.
        let mut rebuilding: Option<(i32, Instant)> = None;
        let mut rebuilt: Vec<(i32, Duration)> = Vec::new();
        let mut held_for_the_last = false;
        let done = loop {
            let ap = get_autopilot(&client, &ns, "auto").await;
            if let Err(e) = reconcile(&ap, &ctx).await {
                eprintln!("reconcile failed: {e}");
            }
            let status = get_autopilot(&client, &ns, "auto")
                .await
                .status
                .expect("status");
            if let Some(op) = &status.operation {
                // A broker may report the deleted list for a moment longer.
                let refused = op
                    .message
                    .as_deref()
                    .is_some_and(|m| m.contains("replication throttles are already set"));
                assert!(op.phase != "Halted" || refused, "{op:#?}");
                if op.phase == "Completed" {
                    break status;
                }
                if rebuilt.len() + usize::from(rebuilding.is_some()) == 3
                    && op
                        .message
                        .as_deref()
                        .is_some_and(|m| m.contains("still rebuilding under the throttle"))
                {
                    held_for_the_last = true;
                }
            }
            // Play Strimzi.
            let pool = pools.get("brokers").await.expect("pool");
            let asked = pool
                .data
                .pointer("/spec/template/pod/affinity")
                .and_then(instance_type_in_affinity);
            if asked.as_deref() == Some("im4gn.xlarge") && set_before_the_pool_changed.is_none() {
                let now = throttle_answering(&admin, &[1, 2, 3], &[TOPIC]).await;
                set_before_the_pool_changed = Some(now);
                // Something (Strimzi reconciling dynamic configs, say) removes a rate: the
                // operator's next poll sets it again.
                admin
                    .alter_configs(
                        &ConfigResource::Broker(kpilot_cluster::BrokerId(3)),
                        &[ConfigOp::delete(FOLLOWER_RATE)],
                    )
                    .await
                    .expect("remove a rate");
                let now = settled(
                    || throttle_answering(&admin, &[3], &[]),
                    |s| !s.contains(&removed),
                )
                .await;
                assert!(!now.contains(&removed), "{now:?}");
                // Someone else (a reassignment started meanwhile) sets another value on a
                // key the roll set: the operator leaves it to them.
                admin
                    .alter_configs(
                        &ConfigResource::Broker(kpilot_cluster::BrokerId(1)),
                        &[ConfigOp::set(LEADER_RATE, THEIRS)],
                    )
                    .await
                    .expect("set another rate");
            }
            if let Some((id, restarted)) = rebuilding
                && out_of_sync(&admin).await == 0
            {
                rebuilt.push((id, restarted.elapsed()));
                eprintln!("broker {id} rebuilt in {:.1?}", restarted.elapsed());
                rebuilding = None;
                // The next restart blocks this loop for seconds: let the operator poll first,
                // as it would every 10 s while Strimzi rolls.
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            let next = (1..=3).find(|id| !rebuilt.iter().any(|(b, _)| b == id));
            if let Some(id) = next
                && id > 1
                && rebuilding.is_none()
            {
                let now = throttle_answering(&admin, &[1, 3], &[]).await;
                assert!(
                    now.contains(&removed),
                    "set again before broker {id} rolls: {now:?}"
                );
                assert!(
                    now.contains(&theirs),
                    "someone else's value kept before broker {id} rolls: {now:?}"
                );
            }
            if asked.as_deref() == Some("im4gn.xlarge")
                && let Some(id) = next
                && rebuilding.is_none()
                && may_roll(&admin, id).await
            {
                pods.delete(&format!("my-cluster-brokers-{id}"), &Default::default())
                    .await
                    .expect("delete pod");
                cluster.stop_broker(id).expect("stop broker");
                let lost = cluster.lose_disk(id).expect("empty disk");
                assert_eq!(lost, kpilot_testbed::DiskLoss::NewDisk, "broker {id}");
                cluster.start_broker(id).expect("start broker");
                // Timed from the broker answering (the testbed waits for that).
                let restarted = Instant::now();
                pod_up(&pods, id, "im4gn.xlarge").await;
                rebuilding = Some((id, restarted));
            }
            assert!(
                began.elapsed() < Duration::from_secs(300),
                "the roll did not complete: {status:#?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        // The operation completed as the last broker came back in sync (the operator saw
        // it first): its rebuild ends now.
        if let Some((id, restarted)) = rebuilding {
            assert_eq!(out_of_sync(&admin).await, 0);
            rebuilt.push((id, restarted.elapsed()));
            eprintln!("broker {id} rebuilt in {:.1?}", restarted.elapsed());
        }

        let op = done.operation.clone().expect("operation");
        assert_eq!(op.to_instance_type, "im4gn.xlarge");
        let recorded = op
            .rebuild_throttle
            .clone()
            .expect("status.operation.rebuildThrottle");
        eprintln!("rebuild throttle: {recorded:?}; rebuilds: {rebuilt:?}");
        assert_eq!(recorded.bytes_per_s, THROTTLE);
        assert_eq!(recorded.brokers, [1, 2, 3]);
        assert!(recorded.topics.iter().any(|t| t == TOPIC), "{recorded:?}");
        assert!(
            recorded.set_at.is_some() && recorded.lifted_at.is_some(),
            "{recorded:?}"
        );

        // Set before Strimzi was asked to roll anything.
        let before = set_before_the_pool_changed.expect("the pool changed");
        for b in 1..=3 {
            for key in [FOLLOWER_RATE, LEADER_RATE] {
                let set = format!("broker {b} {key}={THROTTLE}");
                assert!(before.contains(&set), "{set} not set first: {before:?}");
            }
        }
        for key in [FOLLOWER_REPLICAS, LEADER_REPLICAS] {
            let set = format!("topic {TOPIC} {key}=*");
            assert!(before.contains(&set), "{set} not set first: {before:?}");
        }
        // Each rebuild ran at the throttle, and the last one kept it until in sync.
        assert_eq!(
            rebuilt.iter().map(|(b, _)| *b).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        for (b, took) in &rebuilt {
            assert!(
                *took >= THROTTLED_AT_LEAST,
                "broker {b} rebuilt 36 MB in {took:?}: not throttled"
            );
        }
        // The operator's polls timed each rebuild into status.moves.
        for r in &recorded.rebuilds {
            assert!(r.seconds.is_some() && r.bytes.is_some(), "{r:?}");
        }
        let moves = done.moves.clone().expect("status.moves");
        eprintln!("status.moves: {moves:#?}");
        timed_rebuilds(&moves, THROTTLE);
        assert!(
            held_for_the_last,
            "the operation waited for the last rebuild"
        );
        assert_eq!(observer.elections(), 1, "preferred leaders elected once");
        let events = event_reasons(&client, &ns, "auto").await;
        let restored = events
            .iter()
            .find(|(r, _)| r == "RebuildThrottleRestored")
            .unwrap_or_else(|| panic!("{events:?}"));
        assert!(restored.1.contains(&removed), "{restored:?}");
        let yielded = events
            .iter()
            .find(|(r, _)| r == "RebuildThrottleYielded")
            .unwrap_or_else(|| panic!("{events:?}"));
        assert!(
            yielded.1.contains(&format!("{theirs} (not {THROTTLE})")),
            "{yielded:?}"
        );
        assert_eq!(recorded.yielded, [format!("broker 1 {LEADER_RATE}")]);
        // Only someone else's rate is left set, and every partition is in sync.
        let left = throttle_left(&admin, &[1, 2, 3], &[TOPIC]).await;
        assert_eq!(left, [theirs.as_str()], "throttle overrides left behind");
        admin
            .alter_configs(
                &ConfigResource::Broker(kpilot_cluster::BrokerId(1)),
                &[ConfigOp::delete(LEADER_RATE)],
            )
            .await
            .expect("remove theirs");
        assert_eq!(out_of_sync(&admin).await, 0);
        admin.close();
    });
    // The dedicated controller was not rolled: the same process throughout.
    assert_eq!(cluster.pid(101), Some(controller_pid));
}
