//! The reconcile against a real kube-apiserver with the real Strimzi and Karpenter CRDs (no
//! Kafka: the observation is an in-memory port returning an overload of 3 x m7g.large):
//! recommend mode writes status and Events only; apply mode patches the KafkaNodePool and
//! the Karpenter NodePool exactly as intended (the real schemas accept the patches), holds
//! Strimzi with its pause annotation while the cluster is unhealthy, follows the pods Strimzi
//! rolls (timing each restart by the pods' own timestamps) and finishes with a preferred leader
//! election; an invalid spec sets `Valid=False` with a clear message and touches nothing.

mod common;

use std::rc::Rc;

use common::*;
use k8s_openapi::api::core::v1::Pod;
use kpilot_operator::FixedObserver;
use kpilot_operator::crd::Mode;
use kpilot_operator::reconcile::{
    kafka_resource, karpenter_resource, node_pool_resource, reconcile,
};
use kpilot_operator::target::{instance_type_in_affinity, karpenter_instance_types, resources_for};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// 3 x m7g.large holds 63 MB/s: a forecast of 60 MB/s plus its margin needs a larger m7g.
const INGRESS: f64 = 60.0;

#[tokio::test]
async fn recommend_mode_writes_status_and_events_only() {
    let cp = control_plane().await;
    let ns = cp.create_unique_namespace("recommend").await.expect("ns");
    let client = cp.client().await.expect("client");
    let karpenter = format!("recommend-{}", std::process::id());
    create_strimzi(&client, &ns, "m7g.large").await;
    create_karpenter(&client, &karpenter, "m7g.large").await;
    create_autopilot(
        &client,
        &ns,
        "auto",
        spec_strimzi(Mode::Recommend, Some(&karpenter)),
    )
    .await;
    let before = (
        dynamic(&client, Some(&ns), &kafka_resource(), "my-cluster").await,
        dynamic(&client, Some(&ns), &node_pool_resource(), "brokers").await,
        dynamic(&client, None, &karpenter_resource(), &karpenter).await,
    );

    let observer = FixedObserver::new(facts(INGRESS, 0));
    let ctx = context(client.clone(), Rc::new(observer.clone()));
    for _ in 0..2 {
        let ap = get_autopilot(&client, &ns, "auto").await;
        reconcile(&ap, &ctx).await.expect("reconcile");
    }

    let ap = get_autopilot(&client, &ns, "auto").await;
    let status = ap.status.clone().expect("status");
    eprintln!("{}", serde_json::to_string_pretty(&status).expect("json"));
    assert_eq!(condition(&ap, "Valid").status, "True");
    assert_eq!(condition(&ap, "Ready").status, "True");
    let shape = status.current_shape.expect("shape");
    assert_eq!(
        (shape.instance_type.as_str(), shape.brokers),
        ("m7g.large", 3)
    );
    assert_eq!(status.load.expect("load").ingress_mb_per_s, Some(INGRESS));
    assert!(status.limits.expect("limits").holds_mb_per_s < INGRESS * 1.1);
    let decision = status.last_decision.expect("decision");
    assert_eq!(decision.action, "change");
    assert_eq!(decision.mechanism.as_deref(), Some("vertical-roll"));
    assert!(
        decision.disposition.contains("recommend"),
        "{}",
        decision.disposition
    );
    let target = decision.target.expect("target");
    assert!(target.instance_type.starts_with("m7g.") && target.instance_type != "m7g.large");
    assert!(!decision.reasons.is_empty());
    // The shapes it evaluated, each with a verdict. The load is already near the target, so
    // no roll stays within it throughout (each is `unsafe during`), and the chosen one is
    // taken by the `late` rule, as the reasons say.
    let chosen = format!("{} x {},", target.brokers, target.instance_type);
    assert!(
        decision
            .considered
            .iter()
            .any(|c| c.shape.starts_with(&chosen)
                && c.mechanism == "vertical-roll"
                && c.verdict.starts_with("unsafe during: ")
                && c.estimated_minutes.is_some_and(|m| m > 0.0)),
        "{chosen} not considered: {:#?}",
        decision.considered
    );
    assert!(
        decision.reasons.iter().any(|r| r.starts_with("late: ")),
        "{:?}",
        decision.reasons
    );
    assert!(
        decision
            .considered
            .iter()
            .all(|c| c.usd_per_hour > 0.0 && !c.verdict.is_empty()),
        "{:#?}",
        decision.considered
    );
    assert!(status.operation.is_none(), "recommend mode starts nothing");
    // The two reconciles, a moment apart, keep one sample: the status keeps one per 5-minute
    // step (two if they happened to straddle a step's end).
    let steps: std::collections::BTreeSet<i64> = status
        .history
        .iter()
        .map(|s| {
            s.t.div_euclid(kpilot_operator::reconcile::HISTORY_STEP_SECS)
        })
        .collect();
    assert!(
        matches!(status.history.len(), 1 | 2) && steps.len() == status.history.len(),
        "{:?}",
        status.history
    );

    // One Recommendation event (the second identical decision does not repeat it).
    let events = event_reasons(&client, &ns, "auto").await;
    let recommendations: Vec<_> = events
        .iter()
        .filter(|(r, _)| r == "Recommendation")
        .collect();
    assert_eq!(recommendations.len(), 1, "{events:?}");
    assert!(
        recommendations[0].1.contains(&target.instance_type),
        "{events:?}"
    );

    // Nothing else changed: same resourceVersion on the Kafka, the pool and Karpenter's pool.
    let after = (
        dynamic(&client, Some(&ns), &kafka_resource(), "my-cluster").await,
        dynamic(&client, Some(&ns), &node_pool_resource(), "brokers").await,
        dynamic(&client, None, &karpenter_resource(), &karpenter).await,
    );
    assert_eq!(
        before.0.metadata.resource_version,
        after.0.metadata.resource_version
    );
    assert_eq!(
        before.1.metadata.resource_version,
        after.1.metadata.resource_version
    );
    assert_eq!(
        before.2.metadata.resource_version,
        after.2.metadata.resource_version
    );
    assert!(
        ctx.metrics
            .render()
            .contains("kpilot_decisions_total{action=\"change\",mode=\"recommend\"} 2")
    );
}

#[tokio::test]
async fn apply_mode_patches_the_node_pool_and_karpenter_and_holds_the_gate() {
    let cp = control_plane().await;
    let ns = cp.create_unique_namespace("apply").await.expect("ns");
    let client = cp.client().await.expect("client");
    let karpenter = format!("apply-{}", std::process::id());
    create_strimzi(&client, &ns, "m7g.large").await;
    create_karpenter(&client, &karpenter, "m7g.large").await;
    create_autopilot(
        &client,
        &ns,
        "auto",
        spec_strimzi(Mode::Apply, Some(&karpenter)),
    )
    .await;
    let observer = FixedObserver::new(facts(INGRESS, 0));
    let ctx = context(client.clone(), Rc::new(observer.clone()));

    let ap = get_autopilot(&client, &ns, "auto").await;
    reconcile(&ap, &ctx)
        .await
        .expect("reconcile starts the operation");
    let ap = get_autopilot(&client, &ns, "auto").await;
    let status = ap.status.clone().expect("status");
    let op = status.operation.clone().expect("operation");
    assert_eq!(op.kind, "vertical-strimzi");
    assert_eq!(op.from_instance_type, "m7g.large");
    assert_eq!(op.phase, "Running");
    assert!(
        kpilot_operator::finalizer::holds(&ap),
        "the finalizer is on while the operation runs: {:?}",
        ap.metadata.finalizers
    );
    let to = op.to_instance_type.clone();
    assert_eq!(
        status.last_decision.expect("decision").disposition,
        "applied"
    );

    // The pool asks for the new type (the zone requirement kept) with its resources.
    let catalog = kpilot_capacity::Catalog::builtin().expect("catalog");
    let instance = catalog.instance(&to.parse().expect("type")).expect("known");
    let pool =
        serde_json::to_value(dynamic(&client, Some(&ns), &node_pool_resource(), "brokers").await)
            .expect("json");
    let affinity = &pool["spec"]["template"]["pod"]["affinity"];
    assert_eq!(
        instance_type_in_affinity(affinity).as_deref(),
        Some(to.as_str())
    );
    let exprs = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"]
        .as_array()
        .expect("expressions");
    assert_eq!(exprs.len(), 2, "{exprs:?}");
    assert_eq!(exprs[0]["key"], "topology.kubernetes.io/zone");
    assert_eq!(pool["spec"]["resources"], resources_for(instance));
    assert_eq!(
        pool["spec"]["storage"]["size"], "1000Gi",
        "storage untouched"
    );
    assert_eq!(
        pool["metadata"]["annotations"]["kpilot.io/instance-type"],
        to.as_str()
    );
    // Karpenter may provision both types during the roll; other requirements kept.
    let kp = serde_json::to_value(dynamic(&client, None, &karpenter_resource(), &karpenter).await)
        .expect("json");
    assert_eq!(
        karpenter_instance_types(&kp),
        vec!["m7g.large".to_owned(), to.clone()]
    );
    assert_eq!(
        kp["spec"]["template"]["spec"]["requirements"][0]["key"],
        "kubernetes.io/arch"
    );

    // Unhealthy cluster: Strimzi is paused with its own annotation; healthy again: resumed.
    observer.set(facts(INGRESS, 2));
    reconcile(&get_autopilot(&client, &ns, "auto").await, &ctx)
        .await
        .expect("reconcile");
    let kafka = dynamic(&client, Some(&ns), &kafka_resource(), "my-cluster").await;
    assert_eq!(
        kafka
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("strimzi.io/pause-reconciliation"))
            .map(String::as_str),
        Some("true")
    );
    let op = get_autopilot(&client, &ns, "auto")
        .await
        .status
        .expect("status")
        .operation
        .expect("op");
    assert_eq!(op.phase, "Paused");
    assert!(
        op.message
            .as_deref()
            .unwrap_or("")
            .contains("2 under-replicated"),
        "{op:?}"
    );
    observer.set(facts(INGRESS, 0));
    reconcile(&get_autopilot(&client, &ns, "auto").await, &ctx)
        .await
        .expect("reconcile");
    let kafka = dynamic(&client, Some(&ns), &kafka_resource(), "my-cluster").await;
    assert!(
        kafka
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("strimzi.io/pause-reconciliation"))
            .is_none()
    );

    // Play Strimzi: the three broker pods come back on the new type and Ready, each timed
    // by the pods' own timestamps (whole seconds, from the API server):
    // - broker 0 is seen terminating (its deletion request), then gone, then back;
    // - broker 1 is seen not Ready after its pod was created, then back;
    // - broker 2 goes and comes back between two polls.
    // Each Ready transition is set `2 + id` seconds after the pod's creation.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let poll = || async {
        reconcile(&get_autopilot(&client, &ns, "auto").await, &ctx)
            .await
            .expect("reconcile");
        get_autopilot(&client, &ns, "auto")
            .await
            .status
            .expect("status")
            .operation
            .expect("op")
    };
    let seconds = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.as_ref().expect("a timestamp").0.as_second()
    };
    let rfc3339 = |secs: i64| {
        k8s_openapi::jiff::Timestamp::from_second(secs)
            .expect("a time")
            .to_string()
    };
    let pod_of = |id: usize, finalizers: serde_json::Value| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("my-cluster-brokers-{id}"), "labels": {
                "strimzi.io/cluster": "my-cluster", "strimzi.io/pool-name": "brokers"},
                "finalizers": finalizers},
            "spec": {
                "containers": [{"name": "kafka", "image": "quay.io/strimzi/kafka:test"}],
                "affinity": pool["spec"]["template"]["pod"]["affinity"].clone()
            }
        }))
        .expect("pod")
    };
    let mut expected = Vec::new();
    for id in 0..3 {
        let name = format!("my-cluster-brokers-{id}");
        let mut went = None;
        if id == 0 {
            // The old pod, held by a finalizer while Strimzi deletes it.
            pods.create(
                &PostParams::default(),
                &pod_of(id, json!(["kpilot.test/hold"])),
            )
            .await
            .expect("old pod");
            pods.delete(&name, &Default::default())
                .await
                .expect("delete");
            let deleting = pods.get(&name).await.expect("terminating");
            let deleted = seconds(&deleting.metadata.deletion_timestamp);
            let op = poll().await;
            let this = op.brokers.iter().find(|b| b.id == 0).expect("seen");
            assert_eq!(
                (this.phase.as_str(), this.down_since.clone()),
                ("restarting", Some(rfc3339(deleted))),
                "down since the deletion request: {op:?}"
            );
            pods.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
            )
            .await
            .expect("release");
            went = Some(deleted);
        }
        let created = pods
            .create(&PostParams::default(), &pod_of(id, json!([])))
            .await
            .expect("pod");
        let created = seconds(&created.metadata.creation_timestamp);
        if id == 1 {
            // A poll sees it not Ready yet: restarting since its creation.
            let op = poll().await;
            let this = op.brokers.iter().find(|b| b.id == 1).expect("seen");
            assert_eq!(
                (this.phase.as_str(), this.down_since.clone()),
                ("restarting", Some(rfc3339(created))),
                "{op:?}"
            );
        }
        let ready_at = created + 2 + id as i64;
        let ready = json!({"status": {"conditions": [{"type": "Ready", "status": "True",
            "lastTransitionTime": rfc3339(ready_at)}]}});
        pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&ready))
            .await
            .expect("ready");
        expected.push((id as i32, (ready_at - went.unwrap_or(created)) as f64));
        // Before the last pod is Ready the operation is still running.
        let op = poll().await;
        let done = op.brokers.iter().filter(|b| b.phase == "done").count();
        assert_eq!(done, id + 1, "{op:?}");
        assert_eq!(
            op.phase,
            if id < 2 { "Running" } else { "Completed" },
            "{op:?}"
        );
    }
    let ap = get_autopilot(&client, &ns, "auto").await;
    assert!(
        !kpilot_operator::finalizer::holds(&ap),
        "the finalizer is released once the operation completed: {:?}",
        ap.metadata.finalizers
    );
    let status = ap.status.clone().expect("status");
    // Three restarts, to the second of the pods' timestamps, the one that came back between
    // two polls included (from its creation); the policy now plans with the longest.
    let restarts = status.restarts.clone().expect("status.restarts");
    let measured: Vec<(i32, f64)> = restarts
        .measured
        .iter()
        .map(|m| (m.broker_id, m.seconds))
        .collect();
    assert_eq!(measured, expected, "{restarts:#?}");
    assert!(
        restarts.measured.iter().all(|m| m.instance_type == to),
        "{restarts:#?}"
    );
    assert!(restarts.source.starts_with("measured"), "{restarts:#?}");
    assert_eq!(status.current_shape.expect("shape").instance_type, to);
    assert!(status.last_change_finished.is_some());
    assert_eq!(
        observer.elections(),
        1,
        "one preferred leader election at the end"
    );
    let kp = serde_json::to_value(dynamic(&client, None, &karpenter_resource(), &karpenter).await)
        .expect("json");
    assert_eq!(karpenter_instance_types(&kp), vec![to.clone()]);
    let events = event_reasons(&client, &ns, "auto").await;
    for reason in ["OperationStarted", "OperationCompleted"] {
        assert!(
            events.iter().any(|(r, _)| r == reason),
            "{reason} missing from {events:?}"
        );
    }
    let metrics = ctx.metrics.render();
    assert!(
        metrics
            .contains("kpilot_operations_total{kind=\"vertical-strimzi\",event=\"completed\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_invalid_spec_sets_a_condition_and_takes_no_action() {
    let cp = control_plane().await;
    let ns = cp.create_unique_namespace("invalid").await.expect("ns");
    let client = cp.client().await.expect("client");
    create_strimzi(&client, &ns, "m7g.large").await;
    let mut spec = spec_strimzi(Mode::Apply, None);
    spec.constraints.families = vec!["m99z".into()];
    spec.policy.cooldown = Some("30m".into());
    create_autopilot(&client, &ns, "auto", spec).await;
    let pool_before = dynamic(&client, Some(&ns), &node_pool_resource(), "brokers").await;
    let observer = FixedObserver::new(facts(INGRESS, 0));
    let ctx = context(client.clone(), Rc::new(observer));

    for _ in 0..2 {
        reconcile(&get_autopilot(&client, &ns, "auto").await, &ctx)
            .await
            .expect("an invalid spec is not a reconcile error");
    }
    let ap = get_autopilot(&client, &ns, "auto").await;
    let valid = condition(&ap, "Valid");
    assert_eq!(
        (valid.status.as_str(), valid.reason.as_str()),
        ("False", "InvalidSpec")
    );
    assert!(valid.message.contains("m99z"), "{}", valid.message);
    let status = ap.status.clone().expect("status");
    assert!(status.last_decision.is_none() && status.operation.is_none());
    let pool_after = dynamic(&client, Some(&ns), &node_pool_resource(), "brokers").await;
    assert_eq!(
        pool_before.metadata.resource_version,
        pool_after.metadata.resource_version
    );
    let events = event_reasons(&client, &ns, "auto").await;
    assert_eq!(
        events.iter().filter(|(r, _)| r == "InvalidSpec").count(),
        1,
        "{events:?}"
    );

    // A spec the schema accepts but that names neither target is refused the same way.
    let api: Api<kpilot_operator::KafkaAutopilot> = Api::namespaced(client.clone(), &ns);
    api.patch(
        "auto",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {
            "constraints": {"families": ["m7g"]}, "target": {"strimzi": null}
        }})),
    )
    .await
    .expect("patch");
    reconcile(&get_autopilot(&client, &ns, "auto").await, &ctx)
        .await
        .expect("reconcile");
    let ap = get_autopilot(&client, &ns, "auto").await;
    assert!(
        condition(&ap, "Valid")
            .message
            .contains("exactly one of strimzi or statefulSet")
    );

    // Fixed: valid again, and it decides.
    api.patch("auto", &PatchParams::default(), &Patch::Merge(json!({"spec": {
        "target": {"strimzi": {"kafka": "my-cluster", "nodePool": "brokers"}}, "mode": "recommend"
    }})))
    .await
    .expect("patch");
    reconcile(&get_autopilot(&client, &ns, "auto").await, &ctx)
        .await
        .expect("reconcile");
    let ap = get_autopilot(&client, &ns, "auto").await;
    assert_eq!(condition(&ap, "Valid").status, "True");
    assert!(ap.status.expect("status").last_decision.is_some());
}
