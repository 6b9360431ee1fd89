//! Least privilege, checked by the real API server's RBAC: a service account granted exactly
//! the rules of the Helm chart (`deploy/helm/kpilot/files/rules-*.yaml`, read here unchanged)
//! runs an apply-mode Strimzi operation from decision to completion and leader election, and
//! is refused what it was not granted (deleting the KafkaNodePool or the autopilot, listing
//! Secrets, touching StatefulSets' scale).

mod common;

use std::rc::Rc;

use common::*;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use kpilot_kubetest::repo_root;
use kpilot_operator::crd::Mode;
use kpilot_operator::reconcile::{node_pool_resource, reconcile};
use kpilot_operator::{FixedObserver, LeaderElection};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

fn rules(file: &str) -> Vec<PolicyRule> {
    let path = repo_root().join("deploy/helm/kpilot/files").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn the_charts_rules_suffice_and_nothing_more_is_granted() {
    let cp = control_plane().await;
    let ns = cp.create_unique_namespace("rbac").await.expect("ns");
    let admin = cp.client().await.expect("client");
    let id = std::process::id();
    let karpenter = format!("rbac-{id}");
    create_strimzi(&admin, &ns, "m7g.large").await;
    create_karpenter(&admin, &karpenter, "m7g.large").await;
    create_autopilot(
        &admin,
        &ns,
        "auto",
        spec_strimzi(Mode::Apply, Some(&karpenter)),
    )
    .await;

    // The chart's grants: namespaced rules by a Role, Karpenter by a ClusterRole, the Lease.
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns);
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "kpilot"}})).expect("sa"),
    )
    .await
    .expect("service account");
    let subject = json!([{"kind": "ServiceAccount", "name": "kpilot", "namespace": ns}]);
    let roles: Api<Role> = Api::namespaced(admin.clone(), &ns);
    let mut namespaced = rules("rules-namespaced.yaml");
    namespaced.extend(rules("rules-lease.yaml"));
    roles
        .create(
            &PostParams::default(),
            &Role {
                metadata: serde_json::from_value(json!({"name": "kpilot"})).expect("meta"),
                rules: Some(namespaced),
            },
        )
        .await
        .expect("role");
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), &ns);
    bindings.create(&PostParams::default(), &serde_json::from_value(json!({
        "metadata": {"name": "kpilot"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kpilot"},
        "subjects": subject
    })).expect("binding")).await.expect("role binding");
    let cluster_roles: Api<ClusterRole> = Api::all(admin.clone());
    cluster_roles
        .create(
            &PostParams::default(),
            &ClusterRole {
                metadata: serde_json::from_value(json!({"name": format!("kpilot-{ns}")}))
                    .expect("meta"),
                rules: Some(rules("rules-cluster.yaml")),
                aggregation_rule: None,
            },
        )
        .await
        .expect("cluster role");
    let cluster_bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    cluster_bindings.create(&PostParams::default(), &serde_json::from_value(json!({
        "metadata": {"name": format!("kpilot-{ns}")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": format!("kpilot-{ns}")},
        "subjects": subject
    })).expect("binding")).await.expect("cluster role binding");

    let sa = cp
        .service_account_client(&ns, "kpilot")
        .await
        .expect("sa client");
    let observer = FixedObserver::new(facts(60.0, 0));
    let ctx = context(sa.clone(), Rc::new(observer.clone()));
    // RBAC changes take effect at once on a single API server; retry briefly anyway.
    let ap = get_autopilot(&sa, &ns, "auto").await;
    reconcile(&ap, &ctx)
        .await
        .expect("the operation starts with the chart's rights");
    let op = get_autopilot(&sa, &ns, "auto")
        .await
        .status
        .expect("status")
        .operation
        .expect("op");
    assert_eq!(op.phase, "Running");
    observer.set(facts(60.0, 1));
    reconcile(&get_autopilot(&sa, &ns, "auto").await, &ctx)
        .await
        .expect("pausing Strimzi");
    observer.set(facts(60.0, 0));
    let pool =
        serde_json::to_value(dynamic(&admin, Some(&ns), &node_pool_resource(), "brokers").await)
            .expect("json");
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    for i in 0..3 {
        let name = format!("my-cluster-brokers-{i}");
        pods.create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"strimzi.io/cluster": "my-cluster", "strimzi.io/pool-name": "brokers"}},
            "spec": {"containers": [{"name": "kafka", "image": "x"}], "affinity": pool["spec"]["template"]["pod"]["affinity"].clone()}
        })).expect("pod")).await.expect("pod");
        pods.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})),
        )
        .await
        .expect("ready");
    }
    reconcile(&get_autopilot(&sa, &ns, "auto").await, &ctx)
        .await
        .expect("completes with the chart's rights");
    let op = get_autopilot(&sa, &ns, "auto")
        .await
        .status
        .expect("status")
        .operation
        .expect("op");
    assert_eq!(op.phase, "Completed", "{op:?}");
    let ap = get_autopilot(&admin, &ns, "auto").await;
    assert!(
        !kpilot_operator::finalizer::holds(&ap),
        "the account put the finalizer on and took it off: {:?}",
        ap.metadata.finalizers
    );

    // Leader election with the same account.
    let election = LeaderElection::new(
        sa.clone(),
        &ns,
        "kpilot-operator",
        "replica-a",
        std::time::Duration::from_secs(15),
    );
    assert!(election.acquire_or_renew().await.expect("lease"));
    assert!(election.acquire_or_renew().await.expect("renew"));

    // Nothing beyond the grants.
    let forbidden = |r: Result<(), kube::Error>, what: &str| match r {
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        other => panic!("{what}: expected 403, got {other:?}"),
    };
    let pools: Api<DynamicObject> = Api::namespaced_with(sa.clone(), &ns, &node_pool_resource());
    forbidden(
        pools
            .delete("brokers", &DeleteParams::default())
            .await
            .map(|_| ()),
        "delete KafkaNodePool",
    );
    let secrets: Api<Secret> = Api::namespaced(sa.clone(), &ns);
    forbidden(
        secrets.list(&ListParams::default()).await.map(|_| ()),
        "list Secrets",
    );
    let other_ns: Api<Pod> = Api::namespaced(sa.clone(), "default");
    forbidden(
        other_ns.list(&ListParams::default()).await.map(|_| ()),
        "list pods elsewhere",
    );
    // `patch` on autopilots is granted for the finalizer only (RBAC cannot narrow it to
    // metadata.finalizers); deleting or creating them is not granted.
    let autopilots: Api<kpilot_operator::KafkaAutopilot> = Api::namespaced(sa.clone(), &ns);
    forbidden(
        autopilots
            .delete("auto", &DeleteParams::default())
            .await
            .map(|_| ()),
        "delete an autopilot",
    );

    cluster_bindings
        .delete(&format!("kpilot-{ns}"), &DeleteParams::default())
        .await
        .expect("cleanup");
    cluster_roles
        .delete(&format!("kpilot-{ns}"), &DeleteParams::default())
        .await
        .expect("cleanup");
}
