//! Horizontal moves on a Strimzi target, against the real kube-apiserver with the real Strimzi
//! CRDs and a real 3-broker Kafka testbed; the test plays Strimzi (it starts broker 4 when the
//! `KafkaNodePool` asks for 4 replicas, reports `status.nodeIds`, and stops the broker named in
//! `strimzi.io/remove-node-ids` when the pool goes back to 3). Shows that the replica patches
//! pass the real `KafkaNodePool` schema, that the operator waits for Strimzi's node ids before
//! planning, balances partitions onto the new broker, and on the way down drains broker 4
//! before it lowers the replicas and names it in the removal annotation.

mod common;

use std::rc::Rc;
use std::time::{Duration, Instant};

use common::*;
use kpilot_cluster::BrokerId;
use kpilot_kafka::AdminClient;
use kpilot_operator::FixedObserver;
use kpilot_operator::crd::{KafkaAutopilotStatus, Mode};
use kpilot_operator::reconcile::{node_pool_resource, reconcile};
use kpilot_units::Throughput;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;

/// What the test cluster stores, all replicas, GB (an empty topic): what the decisions plan
/// the data moves with.
const STORED_GB: f64 = 0.001;

async fn replicas_on(admin: &AdminClient, id: i32) -> usize {
    let m = admin.metadata().await.expect("metadata");
    m.topics
        .values()
        .flat_map(|t| t.partitions.values())
        .filter(|p| p.replicas.contains(&BrokerId(id)))
        .count()
}

fn phase(s: &KafkaAutopilotStatus) -> (String, String) {
    s.operation
        .as_ref()
        .map(|o| (o.kind.clone(), o.phase.clone()))
        .unwrap_or_default()
}

#[test]
fn a_node_pool_grows_with_strimzis_node_ids_and_shrinks_only_after_the_drain() {
    let mut cluster = three_brokers_min_isr_2();
    let bootstrap = cluster.bootstrap();
    on_local(async {
        let cp = control_plane().await;
        let ns = cp
            .create_unique_namespace("strimzi-horiz")
            .await
            .expect("ns");
        let client = cp.client().await.expect("client");
        let (admin, _topic) = admin_with_topic(&bootstrap, "events", 8, 3).await;

        create_strimzi(&client, &ns, "m7g.large").await;
        let pools: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &ns, &node_pool_resource());
        // Strimzi reports the pool's node ids in its status.
        let report_ids = |ids: Vec<i32>| {
            let pools = pools.clone();
            async move {
                pools
                    .patch_status(
                        "brokers",
                        &PatchParams::default(),
                        &Patch::Merge(json!({"status": {"nodeIds": ids}})),
                    )
                    .await
                    .expect("the real schema takes status.nodeIds");
            }
        };
        report_ids(vec![1, 2, 3]).await;

        let mut spec = spec_strimzi(Mode::Apply, None);
        spec.kafka.bootstrap = bootstrap.clone();
        spec.constraints.sizes = vec!["large".into()];
        spec.constraints.zones = 1;
        spec.constraints.min_brokers = 3;
        spec.constraints.max_brokers = 4;
        spec.constraints.allow_vertical = false;
        spec.constraints.allow_horizontal = true;
        spec.policy.cooldown = Some("1s".into());
        create_autopilot(&client, &ns, "auto", spec).await;
        let observer = FixedObserver::new(facts_storing(70.0, STORED_GB));
        let mut ctx = context(client.clone(), Rc::new(observer.clone()));
        ctx.rebalance.max_throttle = Some(Throughput::from_mb_per_s(20.0));
        ctx.rebalance.executor.poll_interval = Duration::from_millis(200);

        // Up: 3 -> 4.
        let began = Instant::now();
        let mut waited_for_ids = false;
        loop {
            let ap = get_autopilot(&client, &ns, "auto").await;
            if let Err(e) = reconcile(&ap, &ctx).await {
                eprintln!("reconcile failed: {e}");
            }
            let s = get_autopilot(&client, &ns, "auto")
                .await
                .status
                .expect("status");
            if phase(&s) == ("horizontal-add".into(), "Completed".into()) {
                break;
            }
            let pool = pools.get("brokers").await.expect("pool");
            let replicas = pool.data.pointer("/spec/replicas").and_then(|v| v.as_u64());
            if replicas == Some(4) && !cluster.broker_ids().contains(&4) {
                let message = s.operation.as_ref().and_then(|o| o.message.clone());
                assert!(
                    message
                        .as_deref()
                        .is_some_and(|m| m.contains("replicas patched to 4")),
                    "{message:?}"
                );
                // Strimzi starts the broker; until it reports the id the operator waits.
                assert_eq!(cluster.add_broker().expect("add broker 4"), 4);
                let ap = get_autopilot(&client, &ns, "auto").await;
                let _ = reconcile(&ap, &ctx).await;
                let s = get_autopilot(&client, &ns, "auto")
                    .await
                    .status
                    .expect("status");
                let message = s.operation.as_ref().and_then(|o| o.message.clone());
                assert!(
                    message
                        .as_deref()
                        .is_some_and(|m| m.contains("status.nodeIds")),
                    "the operator waits for Strimzi's node ids: {message:?}"
                );
                waited_for_ids = true;
                report_ids(vec![1, 2, 3, 4]).await;
            }
            assert!(
                began.elapsed() < Duration::from_secs(120),
                "the add did not complete: {s:#?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(waited_for_ids);
        let on_4 = replicas_on(&admin, 4).await;
        assert!(on_4 >= 4, "broker 4 got a share of the 24 replicas: {on_4}");
        eprintln!("added broker 4 through the KafkaNodePool: {on_4} replica(s) on it");

        // Down: 4 -> 3, after a quiet day of history (the policy scales down only once its
        // history shows one).
        observer.set(facts_storing(5.0, STORED_GB));
        Api::<kpilot_operator::KafkaAutopilot>::namespaced(client.clone(), &ns)
            .patch_status(
                "auto",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"history": quiet_day(5.0)}})),
            )
            .await
            .expect("a quiet day of history");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let began = Instant::now();
        let mut held_when_lowered = None;
        loop {
            let ap = get_autopilot(&client, &ns, "auto").await;
            if let Err(e) = reconcile(&ap, &ctx).await {
                eprintln!("reconcile failed: {e}");
            }
            let s = get_autopilot(&client, &ns, "auto")
                .await
                .status
                .expect("status");
            let pool = pools.get("brokers").await.expect("pool");
            let replicas = pool.data.pointer("/spec/replicas").and_then(|v| v.as_u64());
            if replicas == Some(3) && held_when_lowered.is_none() {
                held_when_lowered = Some(replicas_on(&admin, 4).await);
                assert_eq!(
                    pool.metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get("strimzi.io/remove-node-ids"))
                        .map(String::as_str),
                    Some("[4]"),
                    "Strimzi is told which node goes"
                );
                cluster.stop_broker(4).expect("Strimzi removes broker 4");
                report_ids(vec![1, 2, 3]).await;
            }
            if phase(&s) == ("horizontal-remove".into(), "Completed".into()) {
                break;
            }
            assert!(
                began.elapsed() < Duration::from_secs(120),
                "the removal did not complete: {s:#?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(
            held_when_lowered,
            Some(0),
            "broker 4 held no replica when the replicas went down"
        );
        let m = admin.metadata().await.expect("metadata");
        for p in m.topics.values().flat_map(|t| t.partitions.values()) {
            assert_eq!(p.replicas.len(), 3, "{p:?}");
            assert!(!p.replicas.contains(&BrokerId(4)), "{p:?}");
        }
        admin.close();
    });
}
