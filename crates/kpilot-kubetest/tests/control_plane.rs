//! Integration tests against one real kube-apiserver + etcd shared by this test binary: the
//! upstream Strimzi and Karpenter CRDs install and validate for real, core objects can be
//! created as a kubelet-less test would, and RBAC is enforced.

use std::collections::BTreeMap;

use kpilot_kubetest::k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kpilot_kubetest::k8s_openapi::api::core::v1::{
    Node, PersistentVolume, PersistentVolumeClaim, Pod,
};
use kpilot_kubetest::k8s_openapi::api::rbac::v1::{
    PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use kpilot_kubetest::kube;
use kpilot_kubetest::kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kpilot_kubetest::kube::core::ObjectMeta;
use kpilot_kubetest::{ControlPlane, Identity, RESTRICTED_USER};
use serde_json::json;

fn kafka_node_pool() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kafka.strimzi.io", "v1", "KafkaNodePool"),
        "kafkanodepools",
    )
}

fn karpenter_node_pool() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("karpenter.sh", "v1", "NodePool"),
        "nodepools",
    )
}

async fn control_plane_with_crds() -> &'static ControlPlane {
    let cp = ControlPlane::shared().await.expect("control plane starts");
    // Idempotent (server-side apply), so every test may call it.
    cp.install_upstream_crds()
        .await
        .expect("upstream CRDs install");
    cp
}

/// The status code of an API error, or a panic naming what succeeded unexpectedly.
fn api_status<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.message.clone()),
        other => panic!("{what}: expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn all_six_upstream_crds_install_and_are_established() {
    let cp = ControlPlane::shared().await.expect("control plane starts");
    let started = std::time::Instant::now();
    let mut names = cp.install_upstream_crds().await.expect("install");
    eprintln!("installed {} CRDs in {:?}", names.len(), started.elapsed());
    names.sort();
    assert_eq!(
        names,
        [
            "kafkanodepools.kafka.strimzi.io",
            "kafkarebalances.kafka.strimzi.io",
            "kafkas.kafka.strimzi.io",
            "nodeclaims.karpenter.sh",
            "nodepools.karpenter.sh",
            "strimzipodsets.core.strimzi.io",
        ]
    );
    // Installing again is a no-op that still succeeds.
    cp.install_upstream_crds().await.expect("re-install");
}

#[tokio::test]
async fn kafka_node_pool_is_validated_by_the_real_strimzi_schema() {
    let cp = control_plane_with_crds().await;
    let ns = cp.create_unique_namespace("knp").await.expect("namespace");
    let api: Api<DynamicObject> =
        Api::namespaced_with(cp.client().await.expect("client"), &ns, &kafka_node_pool());
    let mut pool = DynamicObject::new("brokers", &kafka_node_pool()).within(&ns);
    pool.metadata.labels = Some(BTreeMap::from([(
        "strimzi.io/cluster".into(),
        "demo".into(),
    )]));
    pool.data = json!({
        "spec": {
            "replicas": 3,
            "roles": ["broker"],
            "storage": { "type": "persistent-claim", "size": "100Gi", "deleteClaim": false },
            "resources": { "requests": { "cpu": "2", "memory": "8Gi" } }
        }
    });
    let created = api
        .create(&PostParams::default(), &pool)
        .await
        .expect("valid pool is accepted");
    assert_eq!(created.data["spec"]["replicas"], 3);

    // A valid change is accepted...
    let patch = Patch::Merge(json!({ "spec": { "replicas": 5 } }));
    let scaled = api
        .patch("brokers", &PatchParams::default(), &patch)
        .await
        .expect("scale");
    assert_eq!(scaled.data["spec"]["replicas"], 5);

    // ...a wrong type and a value below the minimum are rejected by the schema.
    let wrong_type = Patch::Merge(json!({ "spec": { "replicas": "three" } }));
    let (code, message) = api_status(
        api.patch("brokers", &PatchParams::default(), &wrong_type)
            .await,
        "string replicas",
    );
    assert_eq!(code, 422, "{message}");
    assert!(message.contains("spec.replicas"), "{message}");
    let negative = Patch::Merge(json!({ "spec": { "replicas": -1 } }));
    let (code, message) = api_status(
        api.patch("brokers", &PatchParams::default(), &negative)
            .await,
        "negative replicas",
    );
    assert_eq!(code, 422, "{message}");
    let bad_role = Patch::Merge(json!({ "spec": { "roles": ["zookeeper"] } }));
    let (code, message) = api_status(
        api.patch("brokers", &PatchParams::default(), &bad_role)
            .await,
        "unknown role",
    );
    assert_eq!(code, 422, "{message}");
    assert!(message.contains("spec.roles"), "{message}");

    // A pool without the required `storage` is refused at creation.
    let mut incomplete = DynamicObject::new("no-storage", &kafka_node_pool()).within(&ns);
    incomplete.data = json!({ "spec": { "replicas": 1, "roles": ["broker"] } });
    let (code, message) = api_status(
        api.create(&PostParams::default(), &incomplete).await,
        "pool without storage",
    );
    assert_eq!(code, 422, "{message}");
    assert!(message.contains("spec.storage"), "{message}");

    let unchanged = api.get("brokers").await.expect("get");
    assert_eq!(
        unchanged.data["spec"]["replicas"], 5,
        "rejected patches changed nothing"
    );
}

#[tokio::test]
async fn karpenter_node_pool_is_validated_including_cel_rules() {
    let cp = control_plane_with_crds().await;
    let api: Api<DynamicObject> =
        Api::all_with(cp.client().await.expect("client"), &karpenter_node_pool());
    let name = format!("kafka-brokers-{}", std::process::id());
    let mut pool = DynamicObject::new(&name, &karpenter_node_pool());
    pool.data = json!({
        "spec": {
            "template": {
                "spec": {
                    "nodeClassRef": { "group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default" },
                    "requirements": [
                        { "key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["m7g.xlarge"] }
                    ],
                    "expireAfter": "Never"
                }
            },
            "disruption": { "consolidationPolicy": "WhenEmpty", "budgets": [{ "nodes": "1" }] }
        }
    });
    api.create(&PostParams::default(), &pool)
        .await
        .expect("valid NodePool is accepted");

    // Changing the instance type (what vertical scaling does) is accepted.
    let resize = Patch::Merge(json!({ "spec": { "template": { "spec": { "requirements": [
        { "key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["m7g.2xlarge"] }
    ] } } } }));
    let resized = api
        .patch(&name, &PatchParams::default(), &resize)
        .await
        .expect("resize");
    assert_eq!(
        resized.data["spec"]["template"]["spec"]["requirements"][0]["values"][0],
        "m7g.2xlarge"
    );

    // The CEL rule "requirements with operator 'In' must have a value defined" is enforced.
    let empty = Patch::Merge(json!({ "spec": { "template": { "spec": { "requirements": [
        { "key": "node.kubernetes.io/instance-type", "operator": "In", "values": [] }
    ] } } } }));
    let (code, message) = api_status(
        api.patch(&name, &PatchParams::default(), &empty).await,
        "empty In requirement",
    );
    assert_eq!(code, 422, "{message}");
    assert!(message.contains("must have a value defined"), "{message}");

    // An enum violation is rejected too.
    let bad_operator = Patch::Merge(json!({ "spec": { "template": { "spec": { "requirements": [
        { "key": "node.kubernetes.io/instance-type", "operator": "Around", "values": ["x"] }
    ] } } } }));
    let (code, message) = api_status(
        api.patch(&name, &PatchParams::default(), &bad_operator)
            .await,
        "unknown operator",
    );
    assert_eq!(code, 422, "{message}");

    api.delete(&name, &DeleteParams::default())
        .await
        .expect("delete NodePool");
}

#[tokio::test]
async fn node_local_pv_bound_pvc_and_pod_can_be_created_and_deleted_as_objects() {
    let cp = ControlPlane::shared().await.expect("control plane starts");
    let client = cp.client().await.expect("client");
    let ns = cp
        .create_unique_namespace("storage")
        .await
        .expect("namespace");
    let node_name = format!("ip-10-0-1-{}.kpilot.test", std::process::id() % 250);

    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": { "name": node_name, "labels": {
            "kubernetes.io/hostname": node_name,
            "node.kubernetes.io/instance-type": "i4i.xlarge",
            "topology.kubernetes.io/zone": "eu-west-1a"
        } }
    }))
    .expect("node json");
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("create node");

    let pv_name = format!("local-pv-{}", std::process::id());
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pv: PersistentVolume = serde_json::from_value(json!({
        "metadata": { "name": pv_name },
        "spec": {
            "capacity": { "storage": "100Gi" },
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "local-storage",
            "local": { "path": "/mnt/disks/nvme0" },
            "nodeAffinity": { "required": { "nodeSelectorTerms": [ { "matchExpressions": [
                { "key": "kubernetes.io/hostname", "operator": "In", "values": [node_name] }
            ] } ] } }
        }
    }))
    .expect("pv json");
    pvs.create(&PostParams::default(), &pv)
        .await
        .expect("create local PV");

    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": { "name": "data-kafka-0", "annotations": {
            "volume.kubernetes.io/selected-node": node_name
        } },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "local-storage",
            "volumeName": pv_name,
            "resources": { "requests": { "storage": "100Gi" } }
        }
    }))
    .expect("pvc json");
    let created_pvc = pvcs
        .create(&PostParams::default(), &pvc)
        .await
        .expect("create PVC");
    // No PV controller runs: the test binds both sides and sets their status itself.
    let claim_ref = json!({
        "kind": "PersistentVolumeClaim", "namespace": ns, "name": "data-kafka-0",
        "uid": created_pvc.metadata.uid, "apiVersion": "v1"
    });
    pvs.patch(
        &pv_name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "claimRef": claim_ref } })),
    )
    .await
    .expect("bind PV");
    pvs.patch_status(
        &pv_name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": { "phase": "Bound" } })),
    )
    .await
    .expect("PV status");
    let bound = pvcs
        .patch_status(
            "data-kafka-0",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "phase": "Bound" } })),
        )
        .await
        .expect("PVC status");
    assert_eq!(bound.status.and_then(|s| s.phase).as_deref(), Some("Bound"));

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "kafka-0", "labels": { "app": "kafka" } },
        "spec": {
            "nodeName": node_name,
            "containers": [ { "name": "kafka", "image": "kafka:never-pulled",
                "volumeMounts": [ { "name": "data", "mountPath": "/var/lib/kafka" } ] } ],
            "volumes": [ { "name": "data", "persistentVolumeClaim": { "claimName": "data-kafka-0" } } ]
        }
    }))
    .expect("pod json");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    // Playing the kubelet: report the pod running and ready.
    let running = pods
        .patch_status(
            "kafka-0",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "phase": "Running", "conditions": [
                { "type": "Ready", "status": "True" }
            ] } })),
        )
        .await
        .expect("pod status");
    assert_eq!(
        running.status.and_then(|s| s.phase).as_deref(),
        Some("Running")
    );
    let listed = pods
        .list(&ListParams::default().labels("app=kafka"))
        .await
        .expect("list pods");
    assert_eq!(listed.items.len(), 1);

    // Deleting: a pod on a node waits for its kubelet unless force-deleted (grace period 0);
    // PVC and PV carry protection finalizers that only the (absent) controllers remove.
    pods.delete(
        "kafka-0",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        },
    )
    .await
    .expect("delete pod");
    pvcs.delete("data-kafka-0", &DeleteParams::default())
        .await
        .expect("delete PVC");
    let terminating = pvcs.get("data-kafka-0").await.expect("PVC still there");
    assert!(
        terminating.metadata.deletion_timestamp.is_some(),
        "PVC is terminating"
    );
    assert_eq!(
        terminating.metadata.finalizers.as_deref(),
        Some(&["kubernetes.io/pvc-protection".to_owned()][..])
    );
    let clear = Patch::Merge(json!({ "metadata": { "finalizers": null } }));
    pvcs.patch("data-kafka-0", &PatchParams::default(), &clear)
        .await
        .expect("drop PVC finalizer");
    pvs.delete(&pv_name, &DeleteParams::default())
        .await
        .expect("delete PV");
    pvs.patch(&pv_name, &PatchParams::default(), &clear)
        .await
        .expect("drop PV finalizer");
    nodes
        .delete(&node_name, &DeleteParams::default())
        .await
        .expect("delete node");

    for _ in 0..50 {
        let gone = pods.get_opt("kafka-0").await.expect("get pod").is_none()
            && pvcs
                .get_opt("data-kafka-0")
                .await
                .expect("get pvc")
                .is_none()
            && pvs.get_opt(&pv_name).await.expect("get pv").is_none()
            && nodes.get_opt(&node_name).await.expect("get node").is_none();
        if gone {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("objects were not deleted within 5 s");
}

#[tokio::test]
async fn rbac_denies_the_restricted_identity_and_honours_role_bindings() {
    let cp = ControlPlane::shared().await.expect("control plane starts");
    let ns = cp.create_unique_namespace("rbac").await.expect("namespace");
    let other = cp
        .create_unique_namespace("rbac-other")
        .await
        .expect("namespace");

    // The restricted user has no bindings: listing pods is forbidden.
    let restricted = cp
        .client_as(Identity::Restricted)
        .await
        .expect("restricted client");
    let pods: Api<Pod> = Api::namespaced(restricted.clone(), &ns);
    let (code, message) = api_status(
        pods.list(&ListParams::default()).await,
        "restricted list pods",
    );
    assert_eq!(code, 403, "{message}");
    assert!(message.contains(RESTRICTED_USER), "{message}");

    // Its own access review agrees, and the admin's says allowed.
    let review = |verb: &str| SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(ns.clone()),
                verb: Some(verb.to_owned()),
                resource: Some("pods".to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let reviews: Api<SelfSubjectAccessReview> = Api::all(restricted);
    let denied = reviews
        .create(&PostParams::default(), &review("delete"))
        .await
        .expect("review");
    assert!(!denied.status.expect("status").allowed);
    let admin_reviews: Api<SelfSubjectAccessReview> = Api::all(cp.client().await.expect("admin"));
    let allowed = admin_reviews
        .create(&PostParams::default(), &review("delete"))
        .await
        .expect("review");
    assert!(allowed.status.expect("status").allowed);

    // A least-privilege Role bound to a service account works in its namespace only.
    let admin = cp.client().await.expect("admin");
    let role = Role {
        metadata: ObjectMeta {
            name: Some("pod-reader".into()),
            ..ObjectMeta::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["pods".into()]),
            verbs: vec!["get".into(), "list".into()],
            ..PolicyRule::default()
        }]),
    };
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("role");
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("pod-reader".into()),
            ..ObjectMeta::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "pod-reader".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: "kpilot-operator".into(),
            namespace: Some(ns.clone()),
            ..Subject::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(admin, &ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding");
    let operator = cp
        .service_account_client(&ns, "kpilot-operator")
        .await
        .expect("sa client");
    // RBAC caches refresh immediately on a single apiserver; retry briefly anyway.
    let mut listed = None;
    for _ in 0..20 {
        match Api::<Pod>::namespaced(operator.clone(), &ns)
            .list(&ListParams::default())
            .await
        {
            Ok(list) => {
                listed = Some(list);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    assert!(
        listed.is_some(),
        "the bound service account may list pods in {ns}"
    );
    let (code, message) = api_status(
        Api::<Pod>::namespaced(operator.clone(), &other)
            .list(&ListParams::default())
            .await,
        "service account in another namespace",
    );
    assert_eq!(code, 403, "{message}");
    let (code, message) = api_status(
        Api::<Pod>::namespaced(operator, &ns)
            .delete("x", &DeleteParams::default())
            .await,
        "delete with a read-only role",
    );
    assert_eq!(code, 403, "{message}");
}
