//! Test fixtures for the releaser's integration tests against a real kube-apiserver + etcd:
//! nodes, StatefulSet-owned brokers (local PV + bound PVC + pod), and the parts of the absent
//! components the tests need (the PVC-protection controller removing finalizers, the
//! StatefulSet controller recreating deleted pods).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kpilot_kubetest::ControlPlane;
use kpilot_kubetest::k8s_openapi::api::apps::v1::StatefulSet;
use kpilot_kubetest::k8s_openapi::api::core::v1::{
    Node, PersistentVolume, PersistentVolumeClaim, Pod,
};
use kpilot_kubetest::k8s_openapi::api::events::v1::Event as K8sEvent;
use kpilot_kubetest::k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kpilot_kubetest::kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kpilot_kubetest::kube::{self, Client};
use kpilot_releaser::{
    KubeOps, Metrics, ReleaserConfig, ReleaserError, RetryPolicy, SafetyGate, run_with,
};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The storage class the tests allow-list.
pub const CLASS: &str = "local-nvme";

/// One test's namespace, admin client and unique name prefix.
pub struct Env {
    pub cp: &'static ControlPlane,
    pub admin: Client,
    pub ns: String,
    pub sts_uid: String,
}

impl Env {
    pub async fn new(prefix: &str) -> Env {
        let cp = ControlPlane::shared().await.expect("control plane starts");
        let admin = cp.client().await.expect("admin client");
        let ns = cp.create_unique_namespace(prefix).await.expect("namespace");
        let sts_uid = create_statefulset(&admin, &ns, "kafka", None).await;
        Env {
            cp,
            admin,
            ns,
            sts_uid,
        }
    }

    /// A node name unique to this test.
    pub fn node(&self, i: usize) -> String {
        format!("{}-node-{i}", self.ns)
    }

    pub fn pvcs(&self) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.admin.clone(), &self.ns)
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.admin.clone(), &self.ns)
    }

    pub fn nodes(&self) -> Api<Node> {
        Api::all(self.admin.clone())
    }

    /// A config for tests: this namespace only, the test storage class, short timings.
    pub fn config(&self, grace: Duration) -> ReleaserConfig {
        let mut config = ReleaserConfig::new()
            .with_grace_period(grace)
            .with_resync_interval(Duration::from_secs(1))
            .with_storage_class(CLASS)
            .with_namespaces([self.ns.clone()]);
        config.retry = RetryPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(400),
            attempts: 4,
        };
        config.gate_retry_interval = Duration::from_millis(200);
        config
    }

    pub async fn create_node(&self, name: &str, hostname: &str) {
        create_node(&self.admin, name, hostname).await;
    }

    pub async fn delete_node(&self, name: &str) {
        self.nodes()
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete node");
    }

    /// Creates a broker's storage and pod: a local PV pinned to `host`, a PVC bound to it
    /// (both ways, with status Bound), and a StatefulSet pod using it.
    pub async fn create_broker(&self, spec: BrokerSpec<'_>) -> Broker {
        let pv_name = format!("{}-{}", self.ns, spec.pvc);
        let pvs: Api<PersistentVolume> = Api::all(self.admin.clone());
        let source = if spec.host_path {
            json!({ "hostPath": { "path": format!("/var/lib/local-path/{pv_name}") } })
        } else {
            json!({ "local": { "path": "/mnt/nvme0" } })
        };
        let mut pv_spec = json!({
            "capacity": { "storage": "10Gi" },
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": spec.class,
            "nodeAffinity": { "required": { "nodeSelectorTerms": [ { "matchExpressions": [
                { "key": "kubernetes.io/hostname", "operator": "In", "values": [spec.host] }
            ] } ] } }
        });
        merge(&mut pv_spec, source);
        let pv: PersistentVolume =
            serde_json::from_value(json!({ "metadata": { "name": pv_name }, "spec": pv_spec }))
                .expect("pv json");
        pvs.create(&PostParams::default(), &pv)
            .await
            .expect("create PV");
        let mut annotations: BTreeMap<String, String> = spec
            .pvc_annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        annotations.insert(
            "volume.kubernetes.io/selected-node".into(),
            spec.host.to_string(),
        );
        let labels: BTreeMap<String, String> = spec
            .pvc_labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": { "name": spec.pvc, "labels": labels, "annotations": annotations },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": spec.class,
                "volumeName": pv_name,
                "resources": { "requests": { "storage": "10Gi" } }
            }
        }))
        .expect("pvc json");
        let created = self
            .pvcs()
            .create(&PostParams::default(), &pvc)
            .await
            .expect("create PVC");
        let pvc_uid = created.metadata.uid.expect("uid");
        bind(&self.admin, &self.ns, spec.pvc, &pv_name, &pvc_uid).await;
        let pod_uid = match spec.pod {
            Some(pod) => Some(
                create_pod(
                    &self.admin,
                    &self.ns,
                    &self.sts_uid,
                    pod,
                    spec.pvc,
                    spec.pod_on_node.then_some(spec.host),
                    spec.pod_labels,
                )
                .await,
            ),
            None => None,
        };
        Broker {
            pvc: spec.pvc.to_string(),
            pvc_uid,
            pv: pv_name,
            pod: spec.pod.map(str::to_string),
            pod_uid,
        }
    }

    /// The PVC, if it still exists and is not being deleted.
    pub async fn live_pvc(&self, name: &str) -> Option<PersistentVolumeClaim> {
        self.pvcs()
            .get_opt(name)
            .await
            .expect("get PVC")
            .filter(|p| p.metadata.deletion_timestamp.is_none())
    }

    /// Events in this namespace about `object` with `reason`.
    pub async fn events(&self, object: &str, reason: &str) -> Vec<K8sEvent> {
        let events: Api<K8sEvent> = Api::namespaced(self.admin.clone(), &self.ns);
        events
            .list(&ListParams::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(object)
            })
            .collect()
    }

    /// Grants the service account `ns/name` the roles of `deploy/rbac/pvc-releaser.yaml`
    /// (its ClusterRoles, bound to that account) and returns a client acting as it.
    pub async fn releaser_service_account_client(&self) -> Client {
        let path = kpilot_kubetest::repo_root().join("deploy/rbac/pvc-releaser.yaml");
        let text = std::fs::read_to_string(&path).expect("read RBAC manifest");
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("parse RBAC manifest");
        let roles: Api<ClusterRole> = Api::all(self.admin.clone());
        let bindings: Api<ClusterRoleBinding> = Api::all(self.admin.clone());
        let sa = "pvc-releaser";
        let ssa = PatchParams::apply("kpilot-releaser-test").force();
        let mut role_names = Vec::new();
        for doc in docs.into_iter().filter(|d| d["kind"] == "ClusterRole") {
            let role: ClusterRole = serde_json::from_value(doc).expect("ClusterRole");
            let name = role.metadata.name.clone().expect("role name");
            roles
                .patch(&name, &ssa, &Patch::Apply(&role))
                .await
                .expect("apply ClusterRole");
            role_names.push(name);
        }
        assert_eq!(role_names.len(), 2, "the manifest has two ClusterRoles");
        for role in role_names {
            let binding: ClusterRoleBinding = serde_json::from_value(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": { "name": format!("{}-{role}", self.ns) },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
                "subjects": [ { "kind": "ServiceAccount", "name": sa, "namespace": self.ns } ]
            }))
            .expect("binding json");
            bindings
                .create(&PostParams::default(), &binding)
                .await
                .expect("create binding");
        }
        self.cp
            .service_account_client(&self.ns, sa)
            .await
            .expect("service account client")
    }
}

/// What [`Env::create_broker`] creates.
#[derive(Clone, Copy)]
pub struct BrokerSpec<'a> {
    pub pvc: &'a str,
    pub host: &'a str,
    pub class: &'a str,
    pub pvc_labels: &'a [(&'a str, &'a str)],
    pub pvc_annotations: &'a [(&'a str, &'a str)],
    pub pod: Option<&'a str>,
    pub pod_on_node: bool,
    pub pod_labels: &'a [(&'a str, &'a str)],
    pub host_path: bool,
}

impl<'a> BrokerSpec<'a> {
    /// `data-kafka-<i>`-style PVC on `host` with the test class and a Pending pod.
    pub fn new(pvc: &'a str, pod: &'a str, host: &'a str) -> Self {
        BrokerSpec {
            pvc,
            host,
            class: CLASS,
            pvc_labels: &[],
            pvc_annotations: &[],
            pod: Some(pod),
            pod_on_node: false,
            pod_labels: &[],
            host_path: false,
        }
    }
}

/// What was created for one broker.
#[derive(Debug, Clone)]
pub struct Broker {
    pub pvc: String,
    pub pvc_uid: String,
    pub pv: String,
    pub pod: Option<String>,
    pub pod_uid: Option<String>,
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

pub async fn create_node(admin: &Client, name: &str, hostname: &str) {
    let nodes: Api<Node> = Api::all(admin.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "kubernetes.io/hostname": hostname } }
    }))
    .expect("node json");
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("create node");
    // Playing the kubelet: Ready.
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "conditions": [
                { "type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready" }
            ] } })),
        )
        .await
        .expect("node status");
}

/// Creates a StatefulSet (claim template `data`) and returns its UID.
pub async fn create_statefulset(
    admin: &Client,
    ns: &str,
    name: &str,
    annotations: Option<BTreeMap<String, String>>,
) -> String {
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": { "name": name, "annotations": annotations },
        "spec": {
            "serviceName": "kafka",
            "replicas": 3,
            "selector": { "matchLabels": { "app": "kafka" } },
            "template": {
                "metadata": { "labels": { "app": "kafka" } },
                "spec": { "containers": [ { "name": "kafka", "image": "kafka:never-pulled" } ] }
            },
            "volumeClaimTemplates": [ {
                "metadata": { "name": "data" },
                "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": CLASS,
                          "resources": { "requests": { "storage": "10Gi" } } }
            } ]
        }
    }))
    .expect("sts json");
    Api::<StatefulSet>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &sts)
        .await
        .expect("create StatefulSet")
        .metadata
        .uid
        .expect("uid")
}

/// Binds PV and PVC both ways and reports both Bound, as the (absent) PV controller would.
pub async fn bind(admin: &Client, ns: &str, pvc: &str, pv: &str, pvc_uid: &str) {
    let pvs: Api<PersistentVolume> = Api::all(admin.clone());
    let claim_ref = json!({ "kind": "PersistentVolumeClaim", "apiVersion": "v1",
        "namespace": ns, "name": pvc, "uid": pvc_uid });
    pvs.patch(
        pv,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "claimRef": claim_ref } })),
    )
    .await
    .expect("bind PV");
    pvs.patch_status(
        pv,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": { "phase": "Bound" } })),
    )
    .await
    .expect("PV status");
    Api::<PersistentVolumeClaim>::namespaced(admin.clone(), ns)
        .patch_status(
            pvc,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "phase": "Bound" } })),
        )
        .await
        .expect("PVC status");
}

/// Creates a StatefulSet-owned pod using `claim`, scheduled on `node` (Running) or not
/// (Pending); returns its UID.
pub async fn create_pod(
    admin: &Client,
    ns: &str,
    sts_uid: &str,
    name: &str,
    claim: &str,
    node: Option<&str>,
    labels: &[(&str, &str)],
) -> String {
    let mut label_map: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    label_map.insert("app".into(), "kafka".into());
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": label_map,
            "ownerReferences": [ { "apiVersion": "apps/v1", "kind": "StatefulSet", "name": "kafka",
                "uid": sts_uid, "controller": true, "blockOwnerDeletion": true } ]
        },
        "spec": {
            "nodeName": node,
            "containers": [ { "name": "kafka", "image": "kafka:never-pulled",
                "volumeMounts": [ { "name": "data", "mountPath": "/var/lib/kafka" } ] } ],
            "volumes": [ { "name": "data", "persistentVolumeClaim": { "claimName": claim } } ]
        }
    }))
    .expect("pod json");
    let pods: Api<Pod> = Api::namespaced(admin.clone(), ns);
    let created = pods
        .create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    let phase = if node.is_some() { "Running" } else { "Pending" };
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": { "phase": phase } })),
    )
    .await
    .expect("pod status");
    created.metadata.uid.expect("uid")
}

/// What the component players saw and did.
#[derive(Debug, Default)]
pub struct Played {
    /// Pods recreated (name, new UID, when).
    pub recreated: Vec<(String, String, Instant)>,
    /// PVCs whose finalizer was removed (name, when).
    pub finalized: Vec<(String, Instant)>,
}

/// Plays the PVC-protection controller (drops finalizers of deleting PVCs) and the
/// StatefulSet controller (recreates each listed pod, Pending, when it is gone and its PVC is
/// not being deleted, as the real controller waits for that) every 20 ms.
pub fn spawn_players(
    admin: Client,
    ns: String,
    sts_uid: String,
    pods: Vec<(String, String)>,
) -> (Arc<Mutex<Played>>, JoinHandle<()>) {
    let played = Arc::new(Mutex::new(Played::default()));
    let out = played.clone();
    let handle = tokio::spawn(async move {
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(admin.clone(), &ns);
        let pod_api: Api<Pod> = Api::namespaced(admin.clone(), &ns);
        loop {
            let mut terminating = BTreeSet::new();
            if let Ok(list) = pvcs.list(&ListParams::default()).await {
                for pvc in list.items {
                    if pvc.metadata.deletion_timestamp.is_some() {
                        let name = pvc.metadata.name.clone().expect("name");
                        terminating.insert(name.clone());
                        let clear = Patch::Merge(json!({ "metadata": { "finalizers": null } }));
                        if pvcs
                            .patch(&name, &PatchParams::default(), &clear)
                            .await
                            .is_ok()
                        {
                            out.lock()
                                .expect("lock")
                                .finalized
                                .push((name, Instant::now()));
                        }
                    }
                }
            }
            if let Ok(list) = pod_api.list(&ListParams::default()).await {
                let existing: BTreeSet<String> = list
                    .items
                    .iter()
                    .filter_map(|p| p.metadata.name.clone())
                    .collect();
                for (pod, claim) in &pods {
                    if !existing.contains(pod) && !terminating.contains(claim) {
                        let uid = create_pod(&admin, &ns, &sts_uid, pod, claim, None, &[]).await;
                        out.lock().expect("lock").recreated.push((
                            pod.clone(),
                            uid,
                            Instant::now(),
                        ));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    (played, handle)
}

/// A releaser running in the background.
pub struct Running {
    pub metrics: Metrics,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), ReleaserError>>,
}

impl Running {
    /// Starts `run_with` over `ops` with a Node watch made from `client`.
    pub fn start<O: KubeOps, G: SafetyGate>(
        client: Client,
        ops: O,
        gate: G,
        config: ReleaserConfig,
    ) -> Running {
        use futures::StreamExt;
        use kube::runtime::{WatchStreamExt, watcher};
        let metrics = Metrics::new();
        let (tx, rx) = oneshot::channel::<()>();
        let nodes = watcher(Api::<Node>::all(client), watcher::Config::default())
            .default_backoff()
            .boxed();
        let handle = tokio::spawn(run_with(ops, gate, config, metrics.clone(), nodes, async {
            let _ = rx.await;
        }));
        Running {
            metrics,
            stop: Some(tx),
            handle,
        }
    }

    /// Starts the real entry point [`kpilot_releaser::run`].
    pub fn start_real<G: SafetyGate>(client: Client, gate: G, config: ReleaserConfig) -> Running {
        let metrics = Metrics::new();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(kpilot_releaser::run(
            client,
            config,
            gate,
            metrics.clone(),
            async {
                let _ = rx.await;
            },
        ));
        Running {
            metrics,
            stop: Some(tx),
            handle,
        }
    }

    /// Stops it and checks it ended cleanly.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(10), &mut self.handle)
            .await
            .expect("releaser stops within 10 s")
            .expect("releaser task");
        result.expect("releaser ended without error");
    }
}

/// Polls `check` every 10 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A [`KubeOps`] wrapper that injects failures and counts deletes (the real calls go to
/// `inner`).
pub struct FaultyOps<O> {
    pub inner: O,
    /// Fail this many PVC deletes with a 500 before letting them through.
    pub claim_failures: Arc<std::sync::atomic::AtomicU32>,
    /// Fail this many pod deletes with a 409 conflict before letting them through.
    pub pod_conflicts: Arc<std::sync::atomic::AtomicU32>,
    /// Before the first delete of this PVC, run the hook (e.g. replace the PVC).
    pub before_claim_delete: Option<(String, Arc<tokio::sync::Mutex<Option<HookFuture>>>)>,
    /// Delete calls per PVC UID (all of them, failed or not).
    pub claim_deletes: Arc<Mutex<BTreeMap<String, u32>>>,
    /// Run before every pod list (e.g. to change the cluster between the releaser's claim
    /// and pod lists).
    pub before_list_pods: Option<Arc<dyn Fn() -> HookFuture + Send + Sync>>,
}

/// A one-shot async hook.
pub type HookFuture = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

impl<O> FaultyOps<O> {
    pub fn new(inner: O) -> Self {
        FaultyOps {
            inner,
            claim_failures: Arc::default(),
            pod_conflicts: Arc::default(),
            before_claim_delete: None,
            claim_deletes: Arc::default(),
            before_list_pods: None,
        }
    }
}

fn api_error(code: u16, message: &str) -> kube::Error {
    kube::Error::Api(
        kube::core::Status::failure(message, "Injected")
            .with_code(code)
            .boxed(),
    )
}

fn take_one(counter: &std::sync::atomic::AtomicU32) -> bool {
    counter
        .fetch_update(
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
            |n| n.checked_sub(1),
        )
        .is_ok()
}

impl<O: KubeOps> KubeOps for FaultyOps<O> {
    fn list_nodes(
        &self,
    ) -> impl Future<Output = Result<Vec<Node>, kpilot_releaser::OpsError>> + Send {
        self.inner.list_nodes()
    }
    fn node_answers(
        &self,
        host: &str,
    ) -> impl Future<Output = Result<bool, kpilot_releaser::OpsError>> + Send {
        self.inner.node_answers(host)
    }
    fn list_volumes(
        &self,
    ) -> impl Future<Output = Result<Vec<PersistentVolume>, kpilot_releaser::OpsError>> + Send {
        self.inner.list_volumes()
    }
    fn list_claims(
        &self,
        namespace: Option<&str>,
    ) -> impl Future<Output = Result<Vec<PersistentVolumeClaim>, kpilot_releaser::OpsError>> + Send
    {
        self.inner.list_claims(namespace)
    }
    fn list_pods(
        &self,
        namespace: &str,
    ) -> impl Future<Output = Result<Vec<Pod>, kpilot_releaser::OpsError>> + Send {
        let hook = self.before_list_pods.as_ref().map(|h| h());
        let list = self.inner.list_pods(namespace);
        async move {
            if let Some(hook) = hook {
                hook.await;
            }
            list.await
        }
    }
    fn list_statefulsets(
        &self,
        namespace: &str,
    ) -> impl Future<Output = Result<Vec<StatefulSet>, kpilot_releaser::OpsError>> + Send {
        self.inner.list_statefulsets(namespace)
    }
    async fn delete_claim(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        dry_run: bool,
    ) -> Result<kpilot_releaser::DeleteOutcome, kpilot_releaser::OpsError> {
        *self
            .claim_deletes
            .lock()
            .expect("lock")
            .entry(uid.to_string())
            .or_default() += 1;
        if let Some((target, hook)) = &self.before_claim_delete
            && target == name
            && let Some(hook) = hook.lock().await.take()
        {
            hook.await;
        }
        if take_one(&self.claim_failures) {
            return Err(kpilot_releaser::OpsError::new(
                kpilot_releaser::kube_ops::Action::DeleteClaim,
                format!("{namespace}/{name}"),
                api_error(500, "injected: etcdserver: request timed out"),
            ));
        }
        self.inner.delete_claim(namespace, name, uid, dry_run).await
    }
    async fn delete_pod(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        force: bool,
        dry_run: bool,
    ) -> Result<kpilot_releaser::DeleteOutcome, kpilot_releaser::OpsError> {
        if take_one(&self.pod_conflicts) {
            return Err(kpilot_releaser::OpsError::new(
                kpilot_releaser::kube_ops::Action::DeletePod,
                format!("{namespace}/{name}"),
                api_error(
                    409,
                    "injected: the object has been modified; please apply your changes to the latest version and try again",
                ),
            ));
        }
        self.inner
            .delete_pod(namespace, name, uid, force, dry_run)
            .await
    }
    fn publish(
        &self,
        event: &kpilot_releaser::kube_ops::EventSpec,
        regarding: &kpilot_kubetest::k8s_openapi::api::core::v1::ObjectReference,
    ) -> impl Future<Output = Result<(), kpilot_releaser::OpsError>> + Send {
        self.inner.publish(event, regarding)
    }
}
