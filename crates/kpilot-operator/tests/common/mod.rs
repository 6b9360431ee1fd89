//! Helpers for the operator's integration tests against the real kube-apiserver + etcd of
//! `kpilot-kubetest` (one control plane per test binary, a fresh namespace per test): our CRD
//! installed next to the real Strimzi and Karpenter CRDs, fixtures for the objects, and a
//! context with an in-memory or real Kafka observer.
#![allow(dead_code)]

use std::rc::Rc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::events::v1::Event;
use kpilot_kubetest::ControlPlane;
use kpilot_operator::crd::*;
use kpilot_operator::reconcile::{kafka_resource, karpenter_resource, node_pool_resource};
use kpilot_operator::{Context, KafkaFacts, Metrics, Observer};
use kpilot_units::{ByteSize, Throughput};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use serde_json::json;

pub mod sts_kubelet;

/// Runs `test` to completion on a current-thread runtime inside a `LocalSet` (the operator's
/// context is `!Send`).
pub fn on_local<F: std::future::Future>(test: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    tokio::task::LocalSet::new().block_on(&rt, test)
}

pub async fn control_plane() -> &'static ControlPlane {
    let cp = ControlPlane::shared().await.expect("control plane starts");
    cp.install_upstream_crds().await.expect("upstream CRDs");
    let dir = std::env::temp_dir().join(format!("kpilot-operator-crd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("crd dir");
    std::fs::write(dir.join(CRD_FILE), crd_yaml()).expect("write crd");
    cp.install_crds(&dir)
        .await
        .expect("our CRD installs and is Established");
    cp
}

pub fn facts(ingress_mb_per_s: f64, under_replicated: usize) -> KafkaFacts {
    KafkaFacts {
        stored: ByteSize::from_gb(300.0),
        replication_factor: 3,
        min_insync_replicas: 2,
        under_replicated,
        offline: 0,
        ingress: Some(Throughput::from_mb_per_s(ingress_mb_per_s)),
        source: "test",
        ingress_problem: None,
        egress: None,
        throttles_left: None,
    }
}

/// [`facts`] for a test cluster that really stores `stored_gb` (all replicas): what a
/// decision to move data plans with.
pub fn facts_storing(ingress_mb_per_s: f64, stored_gb: f64) -> KafkaFacts {
    KafkaFacts {
        stored: ByteSize::from_gb(stored_gb),
        ..facts(ingress_mb_per_s, 0)
    }
}

/// A `status.history` of a quiet day: `ingress_mb_per_s` every 5 minutes over the 25 hours
/// before now. The policy scales down only once its history shows a day (before that, a quiet
/// hour does not promise a quiet day), so a test that wants a scale-down replaces the history
/// of its high load with this.
pub fn quiet_day(ingress_mb_per_s: f64) -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64;
    let samples: Vec<serde_json::Value> = (1..=300)
        .rev()
        .map(|i| json!({"t": now - i * 300, "ingressMbPerS": ingress_mb_per_s}))
        .collect();
    serde_json::Value::Array(samples)
}

pub fn context(client: kube::Client, observer: Rc<dyn Observer>) -> Context {
    let mut ctx = kpilot_operator::context(
        client,
        kpilot_capacity::Catalog::builtin().expect("catalog"),
        observer,
        Metrics::new(),
        "test",
    );
    ctx.busy_requeue = Duration::from_millis(500);
    ctx
}

pub fn spec_strimzi(mode: Mode, karpenter: Option<&str>) -> KafkaAutopilotSpec {
    KafkaAutopilotSpec {
        target: TargetSpec {
            strimzi: Some(StrimziTarget {
                kafka: "my-cluster".into(),
                node_pool: "brokers".into(),
                karpenter_node_pool: karpenter.map(str::to_owned),
            }),
            stateful_set: None,
        },
        kafka: KafkaSpec {
            bootstrap: "127.0.0.1:9".into(),
            tls: None,
            sasl: None,
        },
        metrics: MetricsSpec::default(),
        mode,
        constraints: ConstraintsSpec {
            instance_type: None,
            families: vec!["m7g".into()],
            sizes: vec![],
            storage: StorageSpec {
                kind: "gp3".into(),
                size_gb: Some(1000.0),
                throughput: Some("250MB/s".into()),
            },
            min_brokers: 3,
            max_brokers: 3,
            zones: 3,
            max_disk_fill: None,
            local_retention: None,
            allow_vertical: true,
            allow_horizontal: false,
        },
        policy: PolicySpec::default(),
        maintenance_windows: vec![],
        paused: false,
    }
}

pub async fn create_autopilot(
    client: &kube::Client,
    ns: &str,
    name: &str,
    spec: KafkaAutopilotSpec,
) -> KafkaAutopilot {
    let api: Api<KafkaAutopilot> = Api::namespaced(client.clone(), ns);
    api.create(&PostParams::default(), &KafkaAutopilot::new(name, spec))
        .await
        .expect("the autopilot passes its own CRD schema")
}

pub async fn get_autopilot(client: &kube::Client, ns: &str, name: &str) -> KafkaAutopilot {
    Api::<KafkaAutopilot>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .expect("autopilot")
}

/// A 3-replica StatefulSet `kafka` (`OnDelete`) whose pods ask for `instance` (annotation and
/// node affinity).
pub fn statefulset(instance: &str) -> StatefulSet {
    serde_json::from_value(json!({
        "metadata": {"name": "kafka"},
        "spec": {
            "replicas": 3,
            "serviceName": "kafka",
            "updateStrategy": {"type": "OnDelete"},
            "selector": {"matchLabels": {"app": "kafka"}},
            "template": {
                "metadata": {"labels": {"app": "kafka"}, "annotations": {"kpilot.io/instance-type": instance}},
                "spec": {
                    "containers": [{"name": "kafka", "image": "apache/kafka:test"}],
                    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [
                            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": [instance]}
                        ]}]}}}
                }
            }
        }
    }))
    .expect("statefulset")
}

/// The instance type the pod template of the StatefulSet `name` asks for (its
/// `kpilot.io/instance-type` annotation).
pub async fn template_type(sets: &Api<StatefulSet>, name: &str) -> Option<String> {
    sets.get(name)
        .await
        .expect("StatefulSet")
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .and_then(|a| a.get("kpilot.io/instance-type").cloned())
}

/// The last decision's disposition (`applied`, `not applied: ...`), empty before any.
pub fn disposition(ap: &KafkaAutopilot) -> String {
    ap.status
        .as_ref()
        .and_then(|s| s.last_decision.as_ref())
        .map(|d| d.disposition.clone())
        .unwrap_or_default()
}

/// `status.lastError`, empty when there is none.
pub fn last_error(ap: &KafkaAutopilot) -> String {
    ap.status
        .as_ref()
        .and_then(|s| s.last_error.clone())
        .unwrap_or_default()
}

/// The target of an autopilot on the StatefulSet `name` (broker ids from 1, no Karpenter).
pub fn statefulset_target(name: &str) -> TargetSpec {
    TargetSpec {
        strimzi: None,
        stateful_set: Some(StatefulSetTarget {
            name: name.into(),
            first_broker_id: 1,
            karpenter_node_pool: None,
        }),
    }
}

/// A Strimzi `Kafka` and a broker `KafkaNodePool` on `instance` (node affinity), both valid
/// under the real Strimzi schemas.
pub async fn create_strimzi(client: &kube::Client, ns: &str, instance: &str) {
    let kafkas: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &kafka_resource());
    let mut kafka = DynamicObject::new("my-cluster", &kafka_resource()).within(ns);
    kafka.data = json!({"spec": {"kafka": {"listeners": [
        {"name": "tls", "port": 9093, "type": "internal", "tls": true}
    ]}}});
    kafkas
        .create(&PostParams::default(), &kafka)
        .await
        .expect("Kafka");
    let pools: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &node_pool_resource());
    let mut pool = DynamicObject::new("brokers", &node_pool_resource()).within(ns);
    pool.metadata.labels =
        Some([("strimzi.io/cluster".to_owned(), "my-cluster".to_owned())].into());
    pool.data = json!({"spec": {
        "replicas": 3,
        "roles": ["broker"],
        "storage": {"type": "persistent-claim", "size": "1000Gi", "deleteClaim": false},
        "resources": {"requests": {"cpu": "1500m", "memory": "6Gi"}},
        "template": {"pod": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["eu-west-1a", "eu-west-1b", "eu-west-1c"]},
                {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": [instance]}
            ]}]}}}}}
    }});
    pools
        .create(&PostParams::default(), &pool)
        .await
        .expect("KafkaNodePool");
}

/// A Karpenter `NodePool` (cluster-scoped) allowing `instance` on arm64.
pub async fn create_karpenter(client: &kube::Client, name: &str, instance: &str) {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &karpenter_resource());
    let mut pool = DynamicObject::new(name, &karpenter_resource());
    pool.data = json!({"spec": {
        "template": {"spec": {
            "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"},
            "requirements": [
                {"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]},
                {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": [instance]}
            ]
        }},
        "disruption": {"consolidationPolicy": "WhenEmpty", "budgets": [{"nodes": "1"}]}
    }});
    api.create(&PostParams::default(), &pool)
        .await
        .expect("Karpenter NodePool");
}

pub async fn dynamic(
    client: &kube::Client,
    ns: Option<&str>,
    resource: &kube::api::ApiResource,
    name: &str,
) -> DynamicObject {
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    };
    api.get(name).await.expect("object")
}

/// Event reasons recorded in `ns` about the autopilot `name`.
pub async fn event_reasons(client: &kube::Client, ns: &str, name: &str) -> Vec<(String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    api.list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

pub fn condition<'a>(ap: &'a KafkaAutopilot, type_: &str) -> &'a Condition {
    ap.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {:#?}", ap.status))
}

/// A running Java tool (Kafka's VerifiableProducer / VerifiableConsumer) whose stdout JSON
/// lines a thread collects.
pub struct JsonTool {
    child: std::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl JsonTool {
    pub fn spawn(mut cmd: std::process::Command) -> JsonTool {
        use std::io::BufRead as _;
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("spawn the Kafka tool");
        let stdout = child.stdout.take().expect("stdout");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    sink.lock().expect("lines").push(v);
                }
            }
        });
        JsonTool {
            child,
            lines,
            reader: Some(reader),
        }
    }

    pub fn events(&self, name: &str) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .filter(|v| v["name"] == name)
            .cloned()
            .collect()
    }

    pub fn count(&self, name: &str) -> usize {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .filter(|v| v["name"] == name)
            .count()
    }

    /// SIGTERM (the tools flush and print their last events), then wait up to 30 s.
    pub fn terminate(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

impl Drop for JsonTool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The records a Kafka VerifiableProducer had acknowledged, by (partition, offset).
pub fn acked_records(producer: &JsonTool) -> std::collections::BTreeMap<(i64, i64), String> {
    producer
        .events("producer_send_success")
        .iter()
        .map(|e| {
            (
                (
                    e["partition"].as_i64().expect("partition"),
                    e["offset"].as_i64().expect("offset"),
                ),
                e["value"].as_str().expect("value").to_owned(),
            )
        })
        .collect()
}

/// Reads the topic back with `consumer` (a VerifiableConsumer command, `--verbose`) until
/// every record of `acked` was seen with its value or 90 s passed; returns the records
/// missing or changed (empty: nothing lost).
pub fn missing_records(
    consumer: std::process::Command,
    acked: &std::collections::BTreeMap<(i64, i64), String>,
) -> Vec<((i64, i64), String)> {
    let mut consumer = JsonTool::spawn(consumer);
    let began = std::time::Instant::now();
    let seen = loop {
        let seen: std::collections::BTreeMap<(i64, i64), String> = consumer
            .events("record_data")
            .iter()
            .map(|e| {
                (
                    (
                        e["partition"].as_i64().unwrap_or(-1),
                        e["offset"].as_i64().unwrap_or(-1),
                    ),
                    e["value"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        if acked.keys().all(|k| seen.contains_key(k)) || began.elapsed() > Duration::from_secs(90) {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    consumer.terminate();
    acked
        .iter()
        .filter(|(k, v)| seen.get(k) != Some(v))
        .map(|(k, v)| (*k, v.clone()))
        .collect()
}

/// A real 3-broker KRaft testbed with `min.insync.replicas` 2 and no automatic leader
/// rebalancing (the tests elect leaders themselves).
pub fn three_brokers_min_isr_2() -> kpilot_testbed::KafkaCluster {
    three_brokers_min_isr_2_and_controllers(0)
}

/// Like [`three_brokers_min_isr_2`], with `controllers` dedicated controllers (ids `101..`)
/// and broker-only brokers when it is not 0.
pub fn three_brokers_min_isr_2_and_controllers(controllers: usize) -> kpilot_testbed::KafkaCluster {
    kpilot_testbed::KafkaCluster::start(kpilot_testbed::ClusterConfig {
        brokers: 3,
        controllers,
        min_insync_replicas: 2,
        auto_leader_rebalance: false,
        ready_timeout: Duration::from_secs(120),
        ..kpilot_testbed::ClusterConfig::default()
    })
    .expect("start a Kafka testbed (scripts/setup-kafka must work)")
}

/// Kafka's VerifiableProducer (acks=all, idempotent, unbounded retries within a 120 s
/// delivery timeout, 100 records/s, at most 30,000) and VerifiableConsumer (from the
/// earliest offset, every record printed) for `topic` on `cluster`.
pub fn verifiable_clients(
    cluster: &kpilot_testbed::KafkaCluster,
    topic: &str,
) -> (std::process::Command, std::process::Command) {
    let bootstrap = cluster.bootstrap();
    let producer_config = cluster.dir().join("producer.properties");
    std::fs::write(
        &producer_config,
        "enable.idempotence=true\nacks=all\nretries=2147483647\ndelivery.timeout.ms=120000\nlinger.ms=5\n",
    )
    .expect("producer config");
    let mut producer = cluster.java_command("org.apache.kafka.tools.VerifiableProducer");
    producer
        .args([
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            topic,
            "--acks",
            "-1",
            "--throughput",
            "100",
            "--max-messages",
            "30000",
            "--command-config",
        ])
        .arg(&producer_config);
    let mut consumer = cluster.java_command("org.apache.kafka.tools.VerifiableConsumer");
    consumer.args([
        "--bootstrap-server",
        &bootstrap,
        "--topic",
        topic,
        "--group-id",
        "verifier",
        "--reset-policy",
        "earliest",
        "--verbose",
    ]);
    (producer, consumer)
}

/// An admin client on `bootstrap` and a new topic `name` with `partitions` partitions of
/// `replicas` replicas, ready (every partition has a leader).
pub async fn admin_with_topic(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    replicas: i16,
) -> (kpilot_kafka::AdminClient, kpilot_cluster::TopicName) {
    let addresses = kpilot_kafka::BrokerAddress::parse_list(bootstrap).expect("bootstrap");
    let admin = kpilot_kafka::AdminClient::connect(kpilot_kafka::ClientConfig::new(addresses))
        .await
        .expect("connect");
    let topic = kpilot_cluster::TopicName::new(name).expect("topic name");
    admin
        .create_topics(&[kpilot_kafka::NewTopic::new(
            topic.clone(),
            partitions,
            replicas,
        )])
        .await
        .expect("create topic");
    admin.wait_for_topic(&topic).await.expect("topic ready");
    (admin, topic)
}

/// Re-reads with `read` until `done` holds, for at most 10 s, and returns the last value read
/// (the caller asserts on it). KRaft applies a config change through the controller and the
/// broker that answers DescribeConfigs learns it a moment later, so a read right after a
/// write (setting or removing a throttle) may still see the old value.
pub async fn settled<T, Fut: std::future::Future<Output = T>>(
    mut read: impl FnMut() -> Fut,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let value = read().await;
        if done(&value) || tokio::time::Instant::now() >= deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every dynamic throttle config (rates on the brokers, replica lists on the topics) set now,
/// as `"<resource> <key>=<value>"`.
pub async fn throttle_left(
    admin: &kpilot_kafka::AdminClient,
    brokers: &[i32],
    topics: &[&str],
) -> Vec<String> {
    kpilot_reassign::throttle_overrides(admin, &config_resources(brokers, topics))
        .await
        .expect("describe configs")
        .into_iter()
        .map(|(r, k, v)| format!("{r} {k}={v}"))
        .collect()
}

/// The local-disk tests' constraints: im4gn large or xlarge on `local-nvme` storage.
pub fn on_local_nvme(spec: &mut KafkaAutopilotSpec) {
    spec.constraints.families = vec!["im4gn".into()];
    spec.constraints.sizes = vec!["large".into(), "xlarge".into()];
    spec.constraints.storage = StorageSpec {
        kind: "local-nvme".into(),
        size_gb: None,
        throughput: None,
    };
}

/// The config resources of `brokers` and `topics`.
fn config_resources(brokers: &[i32], topics: &[&str]) -> Vec<kpilot_kafka::ConfigResource> {
    use kpilot_cluster::{BrokerId, TopicName};
    use kpilot_kafka::ConfigResource;
    let brokers = brokers.iter().map(|b| ConfigResource::Broker(BrokerId(*b)));
    let topics = topics
        .iter()
        .map(|t| ConfigResource::Topic(TopicName::new(*t).expect("topic name")));
    brokers.chain(topics).collect()
}

/// Kafka's replication quota measures the rate over the last `replication.quota.window.num`
/// (11) windows of `replication.quota.window.size.seconds` (1 s), so a follower may catch up
/// on what the quota left unused up to 11 s before a rebuild's timing began (while the
/// broker started): in a rebuild timed for `seconds`, at most `throttle x (seconds + 11 s)`.
const QUOTA_BURST_S: f64 = 11.0;

/// The shortest a rebuild of the tests may take from registered to back in sync, seconds.
/// Unthrottled, the same rebuilds take under a second (0.24-0.73 s at a 50 MB/s cap, in
/// `strimzi_local_disks.rs`); at 2 MB/s the shortest seen was 6.3 s (16.0 MB, in CI). With
/// most rebuilds timed under the 22 MB the quota's windows let through ([`QUOTA_BURST_S`]),
/// the bound on bytes alone would pass an unthrottled rebuild; this one does not. (Fewer
/// windows do not sharpen it: with `replication.quota.window.num=2` a rebuild reached 1.79
/// times the throttle, 24.0 MB in 6.7 s, as each large fetch passes whenever the short
/// window has room.)
const THROTTLED_REBUILD_MIN_S: f64 = 4.0;

/// The rebuilds timed into `moves`, after checking there is one per broker of the 3-broker
/// tests, each of one receiver at `throttle`, of the 36 MB the tests store per broker (more
/// than 10 MB: part comes before the timing starts, while the broker starts), not stalled
/// (above 0.3 of the throttle) and within what Kafka's quota lets through at the throttle
/// ([`QUOTA_BURST_S`]), and not shorter than an unthrottled one could be
/// ([`THROTTLED_REBUILD_MIN_S`]). A short rebuild may so reach a share above 1 (1.27 in one
/// CI run: 16.0 MB in 6.3 s at 2 MB/s); that the throttle was set at all, the tests check on
/// the brokers' configs.
pub fn timed_rebuilds(moves: &MoveStatus, throttle: u64) -> Vec<&MeasuredMove> {
    let rebuilds: Vec<&MeasuredMove> = moves
        .measured
        .iter()
        .filter(|m| m.kind == "rebuild")
        .collect();
    assert_eq!(rebuilds.len(), 3, "one per broker: {moves:#?}");
    for m in &rebuilds {
        assert_eq!(
            (m.receivers, m.throttle_bytes_per_s),
            (1, throttle),
            "{m:?}"
        );
        assert!(m.bytes > 10_000_000 && m.bytes <= 37_000_000, "{m:?}");
        let allowed = throttle as f64 * (m.seconds + QUOTA_BURST_S);
        assert!(m.share > 0.3 && m.bytes as f64 <= allowed, "{m:?}");
        assert!(m.seconds >= THROTTLED_REBUILD_MIN_S, "{m:?}");
    }
    rebuilds
}

/// [`throttle_left`] while brokers may be down: a resource that cannot answer is skipped.
/// What the tests' watchers sample during a roll.
pub async fn throttle_answering(
    admin: &kpilot_kafka::AdminClient,
    brokers: &[i32],
    topics: &[&str],
) -> std::collections::BTreeSet<String> {
    admin
        .throttle_overrides_answering(&config_resources(brokers, topics))
        .await
        .into_iter()
        .map(|(r, k, v)| format!("{r} {k}={v}"))
        .collect()
}

/// Creates `topic` (`partitions` x 3 replicas, min.insync.replicas 2) and writes `batches`
/// batches of ten 10 kB records to each partition: `partitions x batches x 100 kB` on every
/// broker.
pub async fn fill_topic(bootstrap: &str, topic: &str, partitions: i32, batches: usize) {
    use kpilot_cluster::{TopicName, TopicPartition};
    let admin = admin_at(bootstrap).await;
    let name = TopicName::new(topic).expect("topic");
    admin
        .create_topics(&[kpilot_kafka::NewTopic::new(name.clone(), partitions, 3)
            .with_config("min.insync.replicas", 2)])
        .await
        .expect("topic");
    admin.wait_for_topic(&name).await.expect("topic ready");
    let value = bytes::Bytes::from(vec![b'x'; 10_000]);
    let batch: Vec<(Option<bytes::Bytes>, Option<bytes::Bytes>)> =
        (0..10).map(|_| (None, Some(value.clone()))).collect();
    for p in 0..partitions {
        let tp = TopicPartition::new(name.clone(), p);
        for _ in 0..batches {
            admin.produce(&tp, &batch).await.expect("fill");
        }
    }
    admin.close();
}

/// An admin client for the testbed at `bootstrap` (30 s API timeout).
pub async fn admin_at(bootstrap: &str) -> kpilot_kafka::AdminClient {
    let mut config = kpilot_kafka::ClientConfig::new(
        kpilot_kafka::BrokerAddress::parse_list(bootstrap).expect("bootstrap"),
    );
    config.api_timeout = Duration::from_secs(30);
    kpilot_kafka::AdminClient::connect(config)
        .await
        .expect("connect")
}

/// Polls the status of the autopilot `auto` in `ns` until `f` holds; fails the test after
/// `limit`, saying it waited for `what` and showing the status.
pub async fn wait_for_status<F: FnMut(&KafkaAutopilotStatus) -> bool>(
    client: &kube::Client,
    ns: &str,
    limit: Duration,
    what: &str,
    mut f: F,
) -> KafkaAutopilotStatus {
    let began = std::time::Instant::now();
    loop {
        let status = get_autopilot(client, ns, "auto")
            .await
            .status
            .unwrap_or_default();
        if f(&status) {
            return status;
        }
        assert!(
            began.elapsed() < limit,
            "timed out waiting for {what}: {status:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
