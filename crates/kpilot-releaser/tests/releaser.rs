//! Integration tests of the PVC releaser against a real kube-apiserver + etcd
//! (`kpilot-kubetest`). No kubelet, scheduler or controller-manager runs: the tests create
//! nodes, local PVs, bound PVCs and StatefulSet-owned pods as objects, and play the
//! PVC-protection controller (finalizers) and the StatefulSet controller (recreating deleted
//! pods) themselves (`support::spawn_players`).
//!
//! Each test works in its own namespace and the releaser under test is scoped to it, so tests
//! sharing the control plane do not see each other's PVCs.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kpilot_cluster::BrokerId;
use kpilot_kubetest::k8s_openapi::api::core::v1::{
    ConfigMap, Node, ObjectReference, PersistentVolumeClaim, Pod,
};
use kpilot_kubetest::kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kpilot_releaser::{ApiOps, GateDecision, GateError, GateRequest, NoKafkaCheck, SafetyGate};
use serde_json::json;
use support::{BrokerSpec, Env, FaultyOps, Played, Running, spawn_players, wait_for};

/// Taken by the latency measurement and the 100-node test so that the heavy test does not
/// saturate the shared API server while latency is measured.
static EXCLUSIVE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Gives the releaser time to list and start watching before the test changes nodes.
const SETTLE: Duration = Duration::from_millis(800);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "kpilot_releaser=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Waits until the PVC `name` with `uid` is deleted or being deleted; returns when seen.
async fn wait_released(env: &Env, name: &str, uid: &str, timeout: Duration) -> Instant {
    let pvcs = env.pvcs();
    wait_for(timeout, &format!("PVC {name} released"), || {
        let pvcs = pvcs.clone();
        async move {
            match pvcs.get_opt(name).await.expect("get PVC") {
                None => Some(Instant::now()),
                Some(p)
                    if p.metadata.deletion_timestamp.is_some()
                        || p.metadata.uid.as_deref() != Some(uid) =>
                {
                    Some(Instant::now())
                }
                Some(_) => None,
            }
        }
    })
    .await
}

/// Asserts the PVC still exists, unchanged (same UID) and not being deleted.
async fn assert_intact(env: &Env, name: &str, uid: &str) {
    let pvc = env
        .live_pvc(name)
        .await
        .unwrap_or_else(|| panic!("PVC {name} must not be deleted"));
    assert_eq!(
        pvc.metadata.uid.as_deref(),
        Some(uid),
        "PVC {name} replaced"
    );
}

async fn pod_uid(env: &Env, name: &str) -> Option<String> {
    env.pods()
        .get_opt(name)
        .await
        .expect("get pod")
        .and_then(|p| p.metadata.uid)
}

#[tokio::test]
async fn node_deleted_releases_exactly_its_opted_in_pvcs_after_the_grace_period() {
    init_tracing();
    let _exclusive = EXCLUSIVE.lock().await;
    let env = Env::new("rel-main").await;
    let nodes: Vec<String> = (0..3).map(|i| env.node(i)).collect();
    for n in &nodes {
        env.create_node(n, n).await;
    }
    let mut brokers = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let (pvc, pod) = (format!("data-kafka-{i}"), format!("kafka-{i}"));
        brokers.push(env.create_broker(BrokerSpec::new(&pvc, &pod, n)).await);
    }
    // Also on the node that will be lost: a PVC outside the scope and a controller volume.
    let outside = env
        .create_broker(BrokerSpec {
            class: "standard-local",
            pod: None,
            ..BrokerSpec::new("data-other-0", "", &nodes[0])
        })
        .await;
    let controller = env
        .create_broker(BrokerSpec {
            pvc_labels: &[("kpilot.io/kafka-roles", "controller")],
            pod: None,
            ..BrokerSpec::new("data-controller-0", "", &nodes[0])
        })
        .await;

    // The releaser runs as a service account with exactly deploy/rbac/pvc-releaser.yaml.
    let client = env.releaser_service_account_client().await;
    let forbidden = Api::<Node>::all(client.clone())
        .delete(&nodes[2], &DeleteParams::default())
        .await;
    assert!(
        matches!(&forbidden, Err(kpilot_kubetest::kube::Error::Api(s)) if s.code == 403),
        "the releaser's role must not delete nodes: {forbidden:?}"
    );

    let grace = Duration::from_secs(2);
    let releaser = Running::start_real(client, NoKafkaCheck, env.config(grace));
    let pods: Vec<(String, String)> = (0..3)
        .map(|i| (format!("kafka-{i}"), format!("data-kafka-{i}")))
        .collect();
    let (played, players) =
        spawn_players(env.admin.clone(), env.ns.clone(), env.sts_uid.clone(), pods);
    tokio::time::sleep(SETTLE).await;

    env.delete_node(&nodes[0]).await;
    let deleted_at = Instant::now();
    let grace_end = deleted_at + grace;

    // Within the grace period nothing is touched.
    tokio::time::sleep_until((grace_end - Duration::from_millis(300)).into()).await;
    assert_intact(&env, "data-kafka-0", &brokers[0].pvc_uid).await;
    assert_eq!(pod_uid(&env, "kafka-0").await, brokers[0].pod_uid);

    // Then the lost node's broker PVC is released...
    let seen = wait_released(
        &env,
        "data-kafka-0",
        &brokers[0].pvc_uid,
        Duration::from_secs(10),
    )
    .await;
    let latency = seen.saturating_duration_since(grace_end);
    eprintln!("MEASURED grace end -> PVC deletion observed by the test: {latency:?}");
    assert!(
        seen >= grace_end - Duration::from_millis(50),
        "released {:?} before the grace period ended",
        grace_end - seen
    );
    assert!(
        latency < Duration::from_secs(2),
        "release took {latency:?} after the grace period"
    );

    // ...and its Pending pod deleted, then recreated (by the StatefulSet player).
    let new_uid = wait_for(Duration::from_secs(10), "kafka-0 recreated", || {
        let env = &env;
        let old = brokers[0].pod_uid.clone();
        async move {
            pod_uid(env, "kafka-0")
                .await
                .filter(|u| Some(u) != old.as_ref())
        }
    })
    .await;
    assert_ne!(Some(new_uid), brokers[0].pod_uid);

    // Give a resync (1 s) the chance to do something wrong, then check nothing else moved.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for b in &brokers[1..] {
        assert_intact(&env, &b.pvc, &b.pvc_uid).await;
        assert_eq!(
            pod_uid(&env, b.pod.as_deref().expect("pod")).await,
            b.pod_uid,
            "other brokers' pods untouched"
        );
    }
    assert_intact(&env, "data-other-0", &outside.pvc_uid).await;
    assert_intact(&env, "data-controller-0", &controller.pvc_uid).await;
    {
        let played = played.lock().expect("lock");
        let recreated: Vec<&str> = played
            .recreated
            .iter()
            .map(|(p, _, _)| p.as_str())
            .collect();
        assert_eq!(recreated, ["kafka-0"], "exactly one pod recreated");
    }

    let m = releaser.metrics.snapshot();
    assert_eq!(m.released, 1, "{m:?}");
    assert_eq!(m.pods_deleted, 1, "{m:?}");
    assert_eq!(m.skipped.get("controller_volume"), Some(&1), "{m:?}");
    assert_eq!(m.skipped.get("out_of_scope"), Some(&1), "{m:?}");
    assert_eq!(m.grace_end_to_release.count, 1);
    eprintln!(
        "MEASURED releaser's own grace end -> delete accepted: {:.3} s",
        m.grace_end_to_release.sum
    );
    let text = releaser.metrics.render_prometheus();
    assert!(
        text.contains("kpilot_pvc_releaser_released_total 1\n"),
        "{text}"
    );

    assert_eq!(env.events("data-kafka-0", "PvcReleased").await.len(), 1);
    assert_eq!(
        env.events("data-kafka-0", "PendingPodDeleted").await.len(),
        1
    );
    let skipped = env.events("data-controller-0", "PvcReleaseSkipped").await;
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].type_.as_deref(), Some("Warning"));
    assert!(
        env.events("data-other-0", "PvcReleaseSkipped")
            .await
            .is_empty()
    );

    releaser.stop().await;
    players.abort();
}

#[tokio::test]
async fn a_not_ready_or_cordoned_node_releases_nothing() {
    init_tracing();
    let env = Env::new("rel-notready").await;
    let nodes: Vec<String> = (0..3).map(|i| env.node(i)).collect();
    let mut brokers = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        env.create_node(n, n).await;
        let (pvc, pod) = (format!("data-kafka-{i}"), format!("kafka-{i}"));
        brokers.push(env.create_broker(BrokerSpec::new(&pvc, &pod, n)).await);
    }
    let grace = Duration::from_secs(1);
    let releaser = Running::start_real(env.admin.clone(), NoKafkaCheck, env.config(grace));
    tokio::time::sleep(SETTLE).await;

    // Node 0 goes NotReady and unreachable (what the node lifecycle controller reports when
    // the kubelet stops); node 1 is cordoned.
    env.nodes()
        .patch_status(
            &nodes[0],
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "conditions": [
                { "type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                  "message": "Kubelet stopped posting node status." } ] } })),
        )
        .await
        .expect("NotReady");
    env.nodes()
        .patch(
            &nodes[0],
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "taints": [
                { "key": "node.kubernetes.io/unreachable", "effect": "NoExecute" } ] } })),
        )
        .await
        .expect("taint");
    env.nodes()
        .patch(
            &nodes[1],
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "unschedulable": true } })),
        )
        .await
        .expect("cordon");
    // Positive control: node 2 really goes away and is released, so the releaser was working.
    env.delete_node(&nodes[2]).await;
    wait_released(
        &env,
        "data-kafka-2",
        &brokers[2].pvc_uid,
        Duration::from_secs(10),
    )
    .await;
    // Three grace periods and two resyncs later, nodes 0 and 1 still keep their volumes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_intact(&env, "data-kafka-0", &brokers[0].pvc_uid).await;
    assert_intact(&env, "data-kafka-1", &brokers[1].pvc_uid).await;
    assert_eq!(pod_uid(&env, "kafka-0").await, brokers[0].pod_uid);
    assert_eq!(pod_uid(&env, "kafka-1").await, brokers[1].pod_uid);
    let m = releaser.metrics.snapshot();
    assert_eq!(m.released, 1, "{m:?}");
    releaser.stop().await;
}

#[tokio::test]
async fn a_node_back_within_the_grace_period_releases_nothing() {
    init_tracing();
    let env = Env::new("rel-back").await;
    let nodes: Vec<String> = (0..3).map(|i| env.node(i)).collect();
    let mut brokers = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        env.create_node(n, n).await;
        let (pvc, pod) = (format!("data-kafka-{i}"), format!("kafka-{i}"));
        brokers.push(env.create_broker(BrokerSpec::new(&pvc, &pod, n)).await);
    }
    let grace = Duration::from_secs(2);
    let releaser = Running::start_real(env.admin.clone(), NoKafkaCheck, env.config(grace));
    tokio::time::sleep(SETTLE).await;

    // Node 0 re-registers under the same name; node 1 comes back under another name with the
    // same hostname label (what a PV's node affinity pins to); node 2 stays gone (control).
    for n in &nodes {
        env.delete_node(n).await;
    }
    let deleted_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.create_node(&nodes[0], &nodes[0]).await;
    env.create_node(&format!("{}-replacement", nodes[1]), &nodes[1])
        .await;
    wait_released(
        &env,
        "data-kafka-2",
        &brokers[2].pvc_uid,
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep_until((deleted_at + 2 * grace + Duration::from_millis(500)).into()).await;
    assert_intact(&env, "data-kafka-0", &brokers[0].pvc_uid).await;
    assert_intact(&env, "data-kafka-1", &brokers[1].pvc_uid).await;
    assert_eq!(pod_uid(&env, "kafka-0").await, brokers[0].pod_uid);
    assert_eq!(pod_uid(&env, "kafka-1").await, brokers[1].pod_uid);
    let m = releaser.metrics.snapshot();
    assert_eq!(m.released, 1, "{m:?}");
    releaser.stop().await;
}

#[tokio::test]
async fn controller_out_of_scope_opted_out_and_recreated_pvcs_are_never_deleted() {
    init_tracing();
    let env = Env::new("rel-never").await;
    let lost = env.node(0);
    env.create_node(&lost, &lost).await;
    // A second StatefulSet whose annotation opts its claims in (storage class not listed).
    let sts2_uid = support::create_statefulset(
        &env.admin,
        &env.ns,
        "optin",
        Some(BTreeMap::from([(
            "kpilot.io/release-on-node-loss".to_string(),
            "true".to_string(),
        )])),
    )
    .await;
    let _ = sts2_uid;

    let good = env
        .create_broker(BrokerSpec::new("data-kafka-0", "kafka-0", &lost))
        .await;
    let by_workload = env
        .create_broker(BrokerSpec {
            class: "standard-local",
            pod: None,
            host_path: true,
            ..BrokerSpec::new("data-optin-7", "", &lost)
        })
        .await;
    let never = [
        // A combined broker+controller Strimzi volume.
        env.create_broker(BrokerSpec {
            pvc_labels: &[
                ("strimzi.io/cluster", "c"),
                ("strimzi.io/broker-role", "true"),
                ("strimzi.io/controller-role", "true"),
            ],
            pod: None,
            ..BrokerSpec::new("data-0-c-mixed-1", "", &lost)
        })
        .await,
        // A controller known only from its pod's labels.
        env.create_broker(BrokerSpec {
            pod_labels: &[("strimzi.io/controller-role", "true")],
            ..BrokerSpec::new("data-kafka-2", "kafka-2", &lost)
        })
        .await,
        // A Strimzi volume without role labels: role unknown.
        env.create_broker(BrokerSpec {
            pvc_labels: &[("strimzi.io/cluster", "c")],
            pod: None,
            ..BrokerSpec::new("data-0-c-pool-3", "", &lost)
        })
        .await,
        // Outside the scope.
        env.create_broker(BrokerSpec {
            class: "standard-local",
            pod: None,
            ..BrokerSpec::new("data-other-4", "", &lost)
        })
        .await,
        // Opted out although its class is allow-listed.
        env.create_broker(BrokerSpec {
            pvc_annotations: &[("kpilot.io/release-on-node-loss", "false")],
            pod: None,
            ..BrokerSpec::new("data-optout-5", "", &lost)
        })
        .await,
    ];
    // A PVC deleted and recreated under the same name (new UID) naming the same volume: the
    // PV's claimRef still holds the old UID.
    let old = env
        .create_broker(BrokerSpec {
            pod: None,
            ..BrokerSpec::new("data-recreated-6", "", &lost)
        })
        .await;
    let pvcs = env.pvcs();
    pvcs.delete("data-recreated-6", &DeleteParams::default())
        .await
        .expect("delete");
    // NotFound: the delete already completed (a player removed the finalizer first).
    match pvcs
        .patch(
            "data-recreated-6",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
        )
        .await
    {
        Ok(_) => {}
        Err(kpilot_kubetest::kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => panic!("removing the finalizer: {e}"),
    }
    wait_for(Duration::from_secs(5), "old PVC gone", || {
        let pvcs = pvcs.clone();
        async move {
            pvcs.get_opt("data-recreated-6")
                .await
                .expect("get")
                .is_none()
                .then_some(())
        }
    })
    .await;
    let recreated: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": { "name": "data-recreated-6", "annotations": {
            "volume.kubernetes.io/selected-node": lost } },
        "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": support::CLASS,
                  "volumeName": old.pv, "resources": { "requests": { "storage": "10Gi" } } }
    }))
    .expect("pvc json");
    let new_uid = pvcs
        .create(&PostParams::default(), &recreated)
        .await
        .expect("recreate")
        .metadata
        .uid
        .expect("uid");
    assert_ne!(new_uid, old.pvc_uid);

    let releaser = Running::start_real(
        env.admin.clone(),
        NoKafkaCheck,
        env.config(Duration::from_secs(1)),
    );
    tokio::time::sleep(SETTLE).await;
    env.delete_node(&lost).await;
    wait_released(&env, "data-kafka-0", &good.pvc_uid, Duration::from_secs(10)).await;
    wait_released(
        &env,
        "data-optin-7",
        &by_workload.pvc_uid,
        Duration::from_secs(10),
    )
    .await;
    // Two more resyncs.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    for b in &never {
        assert_intact(&env, &b.pvc, &b.pvc_uid).await;
    }
    assert_eq!(
        pod_uid(&env, "kafka-2").await,
        never[1].pod_uid,
        "controller pod kept"
    );
    assert_intact(&env, "data-recreated-6", &new_uid).await;

    let m = releaser.metrics.snapshot();
    assert_eq!(m.released, 2, "{m:?}");
    let expected: BTreeMap<&str, u64> = [
        ("controller_volume", 2),
        ("role_unknown", 1),
        ("out_of_scope", 1),
        ("opted_out", 1),
        ("claim_uid_mismatch", 1),
    ]
    .into();
    assert_eq!(m.skipped, expected, "each skipped PVC counted once");
    assert_eq!(
        env.events("data-0-c-mixed-1", "PvcReleaseSkipped")
            .await
            .len(),
        1
    );
    releaser.stop().await;
}

#[tokio::test]
async fn dry_run_only_publishes_events() {
    init_tracing();
    let env = Env::new("rel-dry").await;
    let lost = env.node(0);
    env.create_node(&lost, &lost).await;
    let broker = env
        .create_broker(BrokerSpec {
            pod_on_node: true,
            ..BrokerSpec::new("data-kafka-0", "kafka-0", &lost)
        })
        .await;
    // A stand-in for the autopilot object: Events are copied to it.
    let target: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "autopilot" } })).expect("json");
    let target = Api::<ConfigMap>::namespaced(env.admin.clone(), &env.ns)
        .create(&PostParams::default(), &target)
        .await
        .expect("create target");
    let mut config = env.config(Duration::from_secs(1)).with_dry_run(true);
    config.event_target = Some(ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("ConfigMap".into()),
        namespace: Some(env.ns.clone()),
        name: Some("autopilot".into()),
        uid: target.metadata.uid.clone(),
        ..ObjectReference::default()
    });
    let releaser = Running::start_real(env.admin.clone(), NoKafkaCheck, config);
    tokio::time::sleep(SETTLE).await;
    env.delete_node(&lost).await;
    wait_for(Duration::from_secs(10), "dry-run events", || {
        let env = &env;
        async move {
            let pvc = env.events("data-kafka-0", "PvcReleaseDryRun").await;
            let pod = env.events("data-kafka-0", "PendingPodDeleteDryRun").await;
            (!pvc.is_empty() && !pod.is_empty()).then_some(())
        }
    })
    .await;
    // Two resyncs later: still only events, each once; nothing deleted.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_intact(&env, "data-kafka-0", &broker.pvc_uid).await;
    assert_eq!(pod_uid(&env, "kafka-0").await, broker.pod_uid);
    let pod = env.pods().get("kafka-0").await.expect("pod");
    assert!(pod.metadata.deletion_timestamp.is_none());
    assert_eq!(
        env.events("data-kafka-0", "PvcReleaseDryRun").await.len(),
        1
    );
    assert!(env.events("data-kafka-0", "PvcReleased").await.is_empty());
    let m = releaser.metrics.snapshot();
    assert_eq!((m.released, m.dry_run, m.pods_deleted), (0, 1, 0), "{m:?}");
    releaser.stop().await;
}

#[tokio::test]
async fn api_errors_midway_are_retried_until_done_and_a_pvc_replaced_at_delete_time_survives() {
    init_tracing();
    let env = Env::new("rel-faults").await;
    let lost = env.node(0);
    env.create_node(&lost, &lost).await;
    let b0 = env
        .create_broker(BrokerSpec::new("data-kafka-0", "kafka-0", &lost))
        .await;
    let b1 = env
        .create_broker(BrokerSpec {
            pod: None,
            ..BrokerSpec::new("data-kafka-1", "", &lost)
        })
        .await;

    let mut ops = FaultyOps::new(ApiOps::new(env.admin.clone(), "kpilot-pvc-releaser", None));
    // 6 server errors on PVC deletes: more than one call's 4 attempts, so the first release
    // fails as a whole and the host is retried later.
    ops.claim_failures
        .store(6, std::sync::atomic::Ordering::SeqCst);
    ops.pod_conflicts
        .store(1, std::sync::atomic::Ordering::SeqCst);
    // Right before data-kafka-1 is first deleted, someone replaces it (new UID).
    let admin = env.admin.clone();
    let ns = env.ns.clone();
    let replaced_uid = Arc::new(Mutex::new(None::<String>));
    let replaced_out = replaced_uid.clone();
    let hook: support::HookFuture = Box::pin(async move {
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(admin, &ns);
        pvcs.delete("data-kafka-1", &DeleteParams::default())
            .await
            .expect("delete");
        // NotFound: the delete already completed (the test's PVC-protection player removed the
        // finalizer first).
        match pvcs
            .patch(
                "data-kafka-1",
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
            )
            .await
        {
            Ok(_) => {}
            Err(kpilot_kubetest::kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => panic!("removing the finalizer: {e}"),
        }
        for _ in 0..200 {
            if pvcs.get_opt("data-kafka-1").await.expect("get").is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let fresh: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": { "name": "data-kafka-1" },
            "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": support::CLASS,
                      "resources": { "requests": { "storage": "10Gi" } } }
        }))
        .expect("json");
        let created = pvcs
            .create(&PostParams::default(), &fresh)
            .await
            .expect("recreate");
        *replaced_out.lock().expect("lock") = created.metadata.uid;
    });
    ops.before_claim_delete = Some((
        "data-kafka-1".to_string(),
        Arc::new(tokio::sync::Mutex::new(Some(hook))),
    ));
    let deletes = ops.claim_deletes.clone();

    let (_played, players) = spawn_players(
        env.admin.clone(),
        env.ns.clone(),
        env.sts_uid.clone(),
        vec![("kafka-0".into(), "data-kafka-0".into())],
    );
    let releaser = Running::start(
        env.admin.clone(),
        ops,
        NoKafkaCheck,
        env.config(Duration::from_secs(1)),
    );
    tokio::time::sleep(SETTLE).await;
    env.delete_node(&lost).await;
    wait_released(&env, "data-kafka-0", &b0.pvc_uid, Duration::from_secs(15)).await;
    wait_for(Duration::from_secs(10), "kafka-0 recreated", || {
        let env = &env;
        let old = b0.pod_uid.clone();
        async move {
            pod_uid(env, "kafka-0")
                .await
                .filter(|u| Some(u) != old.as_ref())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let replaced = replaced_uid
        .lock()
        .expect("lock")
        .clone()
        .expect("hook ran");
    assert_ne!(replaced, b1.pvc_uid);
    assert_intact(&env, "data-kafka-1", &replaced).await;

    let m = releaser.metrics.snapshot();
    assert_eq!(m.released, 1, "{m:?}");
    assert_eq!(m.pods_deleted, 1, "{m:?}");
    assert!(
        m.failed.get("delete_pvc").copied().unwrap_or(0) >= 1,
        "{m:?}"
    );
    assert!(m.api_retries >= 5, "{m:?}");
    assert_eq!(m.skipped.get("uid_changed_at_delete"), Some(&1), "{m:?}");
    assert!(
        !env.events("data-kafka-0", "PvcReleaseFailed")
            .await
            .is_empty()
    );
    let deletes = deletes.lock().expect("lock").clone();
    assert_eq!(
        deletes.get(&b1.pvc_uid),
        Some(&1),
        "the replaced PVC's old UID was tried once: {deletes:?}"
    );
    assert!(
        !deletes.contains_key(&replaced),
        "the new PVC was never targeted"
    );
    releaser.stop().await;
    players.abort();
}

/// A gate that allows a broker only once every broker in `in_recovery` has its pod back
/// (recreated by the StatefulSet player), and records violations of one-at-a-time.
struct OneAtATime {
    played: Arc<Mutex<Played>>,
    allowed: Arc<Mutex<Vec<BrokerId>>>,
    violations: Arc<Mutex<Vec<String>>>,
}

impl OneAtATime {
    fn recovered(&self) -> BTreeSet<BrokerId> {
        self.played
            .lock()
            .expect("lock")
            .recreated
            .iter()
            .filter_map(|(pod, _, _)| pod.rsplit('-').next()?.parse().ok().map(BrokerId))
            .collect()
    }
}

impl SafetyGate for OneAtATime {
    async fn check(&self, request: &GateRequest) -> Result<GateDecision, GateError> {
        let recovered = self.recovered();
        if let Some(b) = request.in_recovery.iter().find(|b| !recovered.contains(b)) {
            return Ok(GateDecision::Wait {
                reason: format!("broker {b} has not recovered"),
            });
        }
        let mut allowed = self.allowed.lock().expect("lock");
        let mut violations = self.violations.lock().expect("lock");
        if allowed.contains(&request.broker) {
            violations.push(format!("broker {} allowed twice", request.broker));
        }
        if let Some(b) = allowed.iter().find(|b| !recovered.contains(b)) {
            violations.push(format!(
                "broker {} allowed while broker {b} had not recovered",
                request.broker
            ));
        }
        allowed.push(request.broker);
        Ok(GateDecision::Allow)
    }
}

#[tokio::test]
async fn hundred_nodes_lost_at_once_release_every_pvc_once_one_broker_at_a_time() {
    init_tracing();
    const N: usize = 100;
    let _exclusive = EXCLUSIVE.lock().await;
    let env = Env::new("rel-hundred").await;
    let started = Instant::now();
    let mut brokers = Vec::new();
    for chunk in (0..N).collect::<Vec<_>>().chunks(10) {
        let made = futures::future::join_all(chunk.iter().map(|&i| {
            let env = &env;
            async move {
                let node = env.node(i);
                env.create_node(&node, &node).await;
                let (pvc, pod) = (format!("data-kafka-{i}"), format!("kafka-{i}"));
                env.create_broker(BrokerSpec::new(&pvc, &pod, &node)).await
            }
        }))
        .await;
        brokers.extend(made);
    }
    eprintln!("created {N} nodes and brokers in {:?}", started.elapsed());

    let ops = FaultyOps::new(ApiOps::new(env.admin.clone(), "kpilot-pvc-releaser", None));
    let deletes = ops.claim_deletes.clone();
    let pods: Vec<(String, String)> = (0..N)
        .map(|i| (format!("kafka-{i}"), format!("data-kafka-{i}")))
        .collect();
    let (played, players) =
        spawn_players(env.admin.clone(), env.ns.clone(), env.sts_uid.clone(), pods);
    let gate = OneAtATime {
        played: played.clone(),
        allowed: Arc::default(),
        violations: Arc::default(),
    };
    let (allowed, violations) = (gate.allowed.clone(), gate.violations.clone());
    let grace = Duration::from_secs(2);
    let mut config = env.config(grace);
    config.gate_retry_interval = Duration::from_millis(30);
    config.resync_interval = Duration::from_secs(2);
    let releaser = Running::start(env.admin.clone(), ops, gate, config);
    tokio::time::sleep(SETTLE).await;

    let deleting = Instant::now();
    futures::future::join_all((0..N).map(|i| {
        let env = &env;
        async move { env.delete_node(&env.node(i)).await }
    }))
    .await;
    let grace_end = Instant::now() + grace;
    eprintln!("deleted {N} nodes in {:?}", deleting.elapsed());

    let pvcs = env.pvcs();
    let done_at = wait_for(Duration::from_secs(90), "all PVCs released", || {
        let pvcs = pvcs.clone();
        let brokers = &brokers;
        async move {
            let live: BTreeSet<String> = pvcs
                .list(&Default::default())
                .await
                .expect("list")
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter_map(|p| p.metadata.uid)
                .collect();
            brokers
                .iter()
                .all(|b| !live.contains(&b.pvc_uid))
                .then(Instant::now)
        }
    })
    .await;
    // Let the last pods come back and one more resync pass.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    eprintln!(
        "MEASURED {N} brokers released one at a time in {:?} after the grace period",
        done_at.saturating_duration_since(grace_end)
    );

    let violations = violations.lock().expect("lock").clone();
    assert!(violations.is_empty(), "{violations:?}");
    let allowed = allowed.lock().expect("lock").clone();
    let distinct: BTreeSet<BrokerId> = allowed.iter().copied().collect();
    assert_eq!(allowed.len(), N, "each broker allowed once");
    assert_eq!(distinct.len(), N);
    let deletes = deletes.lock().expect("lock").clone();
    assert_eq!(deletes.len(), N, "one delete per PVC UID");
    assert!(
        deletes.values().all(|n| *n == 1),
        "no PVC deleted twice: {deletes:?}"
    );
    for b in &brokers {
        assert_eq!(deletes.get(&b.pvc_uid), Some(&1), "{}", b.pvc);
    }
    let m = releaser.metrics.snapshot();
    assert_eq!(m.released, N as u64, "{m:?}");
    assert_eq!(m.pods_deleted, N as u64, "{m:?}");
    assert!(m.gate_waits > 0, "the gate made brokers wait: {m:?}");
    let recreated = played.lock().expect("lock").recreated.len();
    assert_eq!(recreated, N, "every Pending pod recreated once");
    eprintln!(
        "grace end -> release (releaser's histogram): count {} max {:.3} s mean {:.3} s",
        m.grace_end_to_release.count,
        m.grace_end_to_release.max,
        m.grace_end_to_release.sum / m.grace_end_to_release.count.max(1) as f64
    );
    releaser.stop().await;
    players.abort();
}

#[tokio::test]
async fn a_node_gone_before_the_releaser_started_is_found_by_the_initial_resync() {
    init_tracing();
    let env = Env::new("rel-start").await;
    let (lost, kept) = (env.node(0), env.node(1));
    env.create_node(&lost, &lost).await;
    env.create_node(&kept, &kept).await;
    let b0 = env
        .create_broker(BrokerSpec::new("data-kafka-0", "kafka-0", &lost))
        .await;
    let b1 = env
        .create_broker(BrokerSpec::new("data-kafka-1", "kafka-1", &kept))
        .await;
    // The node disappears while no releaser runs: no watch event will ever say so.
    env.delete_node(&lost).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let grace = Duration::from_secs(1);
    let started = Instant::now();
    let releaser = Running::start_real(env.admin.clone(), NoKafkaCheck, env.config(grace));
    let seen = wait_released(&env, "data-kafka-0", &b0.pvc_uid, Duration::from_secs(10)).await;
    let after = seen.duration_since(started);
    assert!(
        after >= grace,
        "released {after:?} after start, before the grace period"
    );
    eprintln!("released {after:?} after the releaser started (grace {grace:?})");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_intact(&env, "data-kafka-1", &b1.pvc_uid).await;
    assert_eq!(releaser.metrics.snapshot().released, 1);
    releaser.stop().await;
}

/// The race a CI run of the 100-node test hit once: a pass lists the claims while the released
/// PVC is still terminating, then the PVC goes and the StatefulSet recreates the pod, then the
/// pass lists the pods. The recreated pod is not stuck (it will get a new claim) and must not
/// be deleted again. The hook makes that interleaving happen on every run.
#[tokio::test]
async fn a_pod_recreated_after_its_claim_went_is_not_deleted_again() {
    recreated_pod_is_left_alone("rel-recreated", true).await;
}

/// The other order, hit once by another CI run of the 100-node test (101 pod deletions): the
/// StatefulSet recreates the pod while the released PVC is still terminating, and later
/// passes list both. The claim is still there, so only the pod's creation time, not before the
/// claim's deletion was requested, says that it is the replacement.
#[tokio::test]
async fn a_pod_recreated_while_its_claim_terminates_is_not_deleted_again() {
    recreated_pod_is_left_alone("rel-recreated-early", false).await;
}

/// Releases broker 0's PVC; when a pod list finds the PVC terminating and the old pod gone, a
/// hook recreates the pod, first dropping the PVC's finalizers if `claim_goes_first`. Checks
/// that the recreated pod survives two more resync passes.
async fn recreated_pod_is_left_alone(name: &str, claim_goes_first: bool) {
    init_tracing();
    let env = Env::new(name).await;
    let lost = env.node(0);
    env.create_node(&lost, &lost).await;
    let broker = env
        .create_broker(BrokerSpec::new("data-kafka-0", "kafka-0", &lost))
        .await;

    // No players: the released PVC stays terminating (its pvc-protection finalizer is never
    // dropped) until the hook, run before a pod list, finds it terminating with the old pod
    // gone. It then plays the StatefulSet controller (the pod comes back) and, if
    // `claim_goes_first`, the pvc-protection controller before it (the PVC goes).
    let recreated: Arc<Mutex<Option<String>>> = Arc::default();
    let fired = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hook = {
        let (admin, ns, sts_uid) = (env.admin.clone(), env.ns.clone(), env.sts_uid.clone());
        let recreated = recreated.clone();
        move || -> support::HookFuture {
            let (admin, ns, sts_uid) = (admin.clone(), ns.clone(), sts_uid.clone());
            let (recreated, fired) = (recreated.clone(), fired.clone());
            Box::pin(async move {
                if fired.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), &ns);
                let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
                let terminating = pvcs
                    .get_opt("data-kafka-0")
                    .await
                    .expect("get PVC")
                    .is_some_and(|p| p.metadata.deletion_timestamp.is_some());
                let pod_gone = pods.get_opt("kafka-0").await.expect("get pod").is_none();
                if !(terminating && pod_gone) {
                    return;
                }
                fired.store(true, std::sync::atomic::Ordering::SeqCst);
                if claim_goes_first {
                    let clear = Patch::Merge(json!({ "metadata": { "finalizers": null } }));
                    pvcs.patch("data-kafka-0", &PatchParams::default(), &clear)
                        .await
                        .expect("drop the PVC's finalizers");
                }
                let uid = support::create_pod(
                    &admin,
                    &ns,
                    &sts_uid,
                    "kafka-0",
                    "data-kafka-0",
                    None,
                    &[],
                )
                .await;
                *recreated.lock().expect("lock") = Some(uid);
            })
        }
    };
    let mut ops = FaultyOps::new(ApiOps::new(env.admin.clone(), "kpilot-pvc-releaser", None));
    ops.before_list_pods = Some(Arc::new(hook));
    let releaser = Running::start(
        env.admin.clone(),
        ops,
        NoKafkaCheck,
        env.config(Duration::from_secs(1)),
    );
    tokio::time::sleep(SETTLE).await;
    env.delete_node(&lost).await;
    wait_released(
        &env,
        "data-kafka-0",
        &broker.pvc_uid,
        Duration::from_secs(15),
    )
    .await;
    let new_uid = wait_for(Duration::from_secs(15), "the pod recreated", || {
        let recreated = recreated.clone();
        async move { recreated.lock().expect("lock").clone() }
    })
    .await;
    // Two more resync passes (1 s each) in which the releaser could delete it again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        pod_uid(&env, "kafka-0").await,
        Some(new_uid),
        "the recreated pod was deleted again"
    );
    let m = releaser.metrics.snapshot();
    assert_eq!(m.released, 1, "{m:?}");
    assert_eq!(m.pods_deleted, 1, "only the stuck pod: {m:?}");
    releaser.stop().await;
}
