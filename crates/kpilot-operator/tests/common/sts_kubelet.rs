//! A fake kubelet and StatefulSet controller for a StatefulSet named `kafka` whose pod *i*
//! is backed by broker *i + 1* of a real testbed cluster.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kpilot_kubetest::ControlPlane;
use kpilot_operator::fleet::pod_ready;
use kpilot_testbed::{DiskLoss, KafkaCluster};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// The finalizer the kubelet holds pods with until their broker is stopped.
pub const FINALIZER: &str = "kpilot.test/kubelet";

/// What the fake kubelet saw.
#[derive(Default)]
pub struct KubeletLog {
    /// Pods replaced, by ordinal.
    pub replaced: Mutex<BTreeMap<i32, usize>>,
    /// The most brokers down at once.
    pub max_brokers_down: AtomicUsize,
    /// The most pods unavailable at once.
    pub max_pods_unavailable: AtomicUsize,
    /// A pod ordinal not to recreate for now (a node that does not come up).
    pub hold: Mutex<Option<i32>>,
    /// Instance-local disks: a recreated pod is a new node, so its broker loses its disk
    /// before it starts again (the local PV went with the old node): a broker-only node gets
    /// a new, empty one; a combined node loses its partitions and keeps its quorum state.
    pub fresh_disks: AtomicBool,
    /// What each broker's disk lost that way, in order.
    pub lost: Mutex<BTreeMap<i32, Vec<DiskLoss>>>,
}

/// Plays the kubelet and the StatefulSet controller until `stop`: every tick, first stops the
/// broker of every pod being deleted and lets the pod go (all of them, so two deletions at
/// once would show as two brokers down), then recreates missing pods from the StatefulSet's
/// current template, restarts their brokers and marks them Ready.
pub fn kubelet(
    cp: &'static ControlPlane,
    ns: String,
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
        while !stop.load(Ordering::Relaxed) {
            let mut present: BTreeMap<i32, Pod> = BTreeMap::new();
            for p in pods.list(&Default::default()).await.expect("pods").items {
                if let Some(i) = p
                    .metadata
                    .name
                    .as_deref()
                    .and_then(|n| n.strip_prefix("kafka-"))
                    .and_then(|s| s.parse().ok())
                {
                    present.insert(i, p);
                }
            }
            let unavailable = (0..3)
                .filter(|i| !present.get(i).is_some_and(pod_ready))
                .count();
            log.max_pods_unavailable
                .fetch_max(unavailable, Ordering::Relaxed);
            // 1. Deleted pods: stop their brokers, then release the pods.
            for (i, p) in &present {
                if p.metadata.deletion_timestamp.is_some() {
                    let id = i + 1;
                    if cluster.is_running(id) {
                        cluster.stop_broker(id).expect("stop broker");
                    }
                    let down = (1..=3).filter(|b| !cluster.is_running(*b)).count();
                    log.max_brokers_down.fetch_max(down, Ordering::Relaxed);
                    pods.patch(
                        &format!("kafka-{i}"),
                        &PatchParams::default(),
                        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                    )
                    .await
                    .expect("remove finalizer");
                }
            }
            // 2. Missing pods: recreate from the template, restart the broker, Ready.
            for i in 0..3 {
                if present.contains_key(&i) || *log.hold.lock().expect("log") == Some(i) {
                    continue;
                }
                let sts = sets.get("kafka").await.expect("sts");
                let template = sts.spec.expect("spec").template;
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
                    .expect("recreate pod");
                if !cluster.is_running(i + 1) {
                    if log.fresh_disks.load(Ordering::Relaxed) {
                        let loss = cluster.lose_disk(i + 1).expect("empty the disk");
                        log.lost
                            .lock()
                            .expect("log")
                            .entry(i + 1)
                            .or_default()
                            .push(loss);
                    }
                    cluster.start_broker(i + 1).expect("restart broker");
                }
                pods.patch_status(
                    &format!("kafka-{i}"),
                    &PatchParams::default(),
                    &Patch::Merge(
                        json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
                    ),
                )
                .await
                .expect("ready");
                *log.replaced.lock().expect("log").entry(i).or_default() += 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    cluster
}

/// Waits (at most a minute) until the kubelet has the StatefulSet's three pods Ready.
pub async fn three_pods_ready(client: &kube::Client, ns: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let began = std::time::Instant::now();
    while pods
        .list(&Default::default())
        .await
        .expect("pods")
        .items
        .iter()
        .filter(|p| pod_ready(p))
        .count()
        < 3
    {
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "pods never Ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Roll settings for a testbed behind a StatefulSet: two minutes for each wait.
pub fn roll_settings() -> kpilot_roll::Settings {
    kpilot_roll::Settings {
        gate_timeout: Duration::from_secs(120),
        start_timeout: Duration::from_secs(120),
        catch_up_timeout: Duration::from_secs(120),
        election_timeout: Duration::from_secs(60),
        poll: Duration::from_millis(250),
        progress_every: Duration::from_secs(2),
    }
}
