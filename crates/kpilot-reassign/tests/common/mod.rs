//! Helpers for the tests against real Kafka brokers (kpilot-testbed): a cluster, an admin
//! client, topics filled with data, a bounded acks=all producer loop, end offsets, the
//! throttle configs present on brokers and topics, and a port wrapper that watches the
//! throttles while reassignments run and can fail on demand.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kpilot_cluster::{BrokerId, TopicName, TopicPartition};
use kpilot_kafka::{
    AdminClient, BrokerAddress, ClientConfig, ConfigOp, ConfigResource, NewTopic, OffsetSpec,
};
use kpilot_reassign::{ElectionSummary, PortError, ReassignPort, throttle_overrides};
use kpilot_testbed::{ClusterConfig, KafkaCluster};

pub fn start_cluster() -> KafkaCluster {
    KafkaCluster::start(ClusterConfig {
        brokers: 3,
        min_insync_replicas: 2,
        auto_leader_rebalance: false,
        ready_timeout: Duration::from_secs(120),
        ..ClusterConfig::default()
    })
    .expect("start a Kafka testbed (run scripts/setup-kafka if the jars are missing)")
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

pub async fn admin(bootstrap: &str) -> AdminClient {
    let mut config = ClientConfig::new(BrokerAddress::parse_list(bootstrap).expect("bootstrap"));
    config.api_timeout = Duration::from_secs(30);
    config.request_timeout = Duration::from_secs(15);
    AdminClient::connect(config).await.expect("connect")
}

pub fn topic(name: &str) -> TopicName {
    TopicName::new(name).expect("topic name")
}

pub fn tp(name: &str, p: i32) -> TopicPartition {
    TopicPartition::new(topic(name), p)
}

/// Creates a topic (RF 3, min ISR 2), with explicit assignments if given.
pub async fn create_topic(
    admin: &AdminClient,
    name: &str,
    partitions: i32,
    assignments: Option<Vec<Vec<i32>>>,
) {
    let mut t = NewTopic::new(topic(name), partitions, 3).with_config("min.insync.replicas", 2);
    t.assignments = assignments.map(|a| {
        a.into_iter()
            .map(|r| r.into_iter().map(BrokerId).collect())
            .collect()
    });
    admin.create_topics(&[t]).await.expect("create topic");
    admin
        .wait_for_topic(&topic(name))
        .await
        .expect("topic ready");
}

/// Writes about `bytes` into each partition of `name` in 100 KB requests of 10 KB records;
/// returns the records written per partition.
pub async fn fill(
    admin: &AdminClient,
    name: &str,
    partitions: i32,
    bytes: usize,
) -> BTreeMap<i32, i64> {
    let value = Bytes::from(vec![b'x'; 10_000]);
    let batch: Vec<(Option<Bytes>, Option<Bytes>)> =
        (0..10).map(|_| (None, Some(value.clone()))).collect();
    let mut out = BTreeMap::new();
    for p in 0..partitions {
        let mut n = 0i64;
        while (n as usize) * 10_000 < bytes {
            admin.produce(&tp(name, p), &batch).await.expect("fill");
            n += 10;
        }
        out.insert(p, n);
    }
    out
}

/// What a producer loop achieved.
#[derive(Debug, Default, Clone)]
pub struct LoadResult {
    /// Records acknowledged (acks=all) per partition.
    pub acked: BTreeMap<i32, i64>,
    /// Sends that failed, with the error.
    pub errors: Vec<String>,
}

/// A bounded acks=all producer loop: 10 records of 100 bytes per request, round-robin over the
/// partitions, every 20 ms, until stopped, `max_requests` sent or `max_time` passed.
pub struct Load {
    stop: Arc<AtomicBool>,
    handle: tokio::task::JoinHandle<LoadResult>,
}

impl Load {
    pub fn start(
        rt: &tokio::runtime::Runtime,
        admin: AdminClient,
        name: &str,
        partitions: i32,
        max_requests: usize,
        max_time: Duration,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let name = name.to_string();
        let handle = rt.spawn(async move {
            let started = Instant::now();
            let value = Bytes::from(vec![b'v'; 100]);
            let batch: Vec<(Option<Bytes>, Option<Bytes>)> =
                (0..10).map(|_| (None, Some(value.clone()))).collect();
            let mut result = LoadResult::default();
            for i in 0..max_requests {
                if flag.load(Ordering::Relaxed) || started.elapsed() > max_time {
                    break;
                }
                let p = (i as i32) % partitions;
                match admin.produce(&tp(&name, p), &batch).await {
                    Ok(_) => *result.acked.entry(p).or_insert(0) += 10,
                    Err(e) => result.errors.push(format!("{}: {e}", tp(&name, p))),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            result
        });
        Load { stop, handle }
    }

    pub async fn finish(self) -> LoadResult {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.await.expect("load task")
    }
}

pub async fn end_offsets(
    admin: &AdminClient,
    name: &str,
    partitions: i32,
    spec: OffsetSpec,
) -> BTreeMap<i32, i64> {
    let tps: Vec<TopicPartition> = (0..partitions).map(|p| tp(name, p)).collect();
    // Retrying: a broker just stopped may still be in the cached metadata.
    admin.metadata().await.expect("metadata");
    admin
        .list_offsets(&tps, spec)
        .await
        .expect("offsets")
        .into_iter()
        .map(|(tp, o)| (tp.partition, o))
        .collect()
}

/// Asserts that every acknowledged record is still there: the log starts at 0 and ends at
/// exactly what was written (fill + acked; the client's producer is idempotent, so a batch it
/// retried after leadership moved is not appended twice) for every partition.
pub async fn assert_nothing_lost(
    admin: &AdminClient,
    name: &str,
    partitions: i32,
    filled: &BTreeMap<i32, i64>,
    load: &LoadResult,
) {
    assert!(load.errors.is_empty(), "producer errors: {:?}", load.errors);
    let start = end_offsets(admin, name, partitions, OffsetSpec::Earliest).await;
    let end = end_offsets(admin, name, partitions, OffsetSpec::Latest).await;
    for p in 0..partitions {
        let expected =
            filled.get(&p).copied().unwrap_or(0) + load.acked.get(&p).copied().unwrap_or(0);
        assert_eq!(start[&p], 0, "{name}-{p} lost its head");
        assert_eq!(
            end[&p], expected,
            "{name}-{p}: end offset {} but {expected} records acknowledged",
            end[&p]
        );
    }
    let acked: i64 = load.acked.values().sum();
    eprintln!("{name}: {acked} records acknowledged under load, all present (end offsets match)");
}

/// The throttle configs overridden now: `(resource, key, value)`.
pub async fn throttle_configs(
    admin: &AdminClient,
    brokers: &[i32],
    topics: &[&str],
) -> Vec<(String, String, String)> {
    let mut resources: Vec<ConfigResource> = brokers
        .iter()
        .map(|b| ConfigResource::Broker(BrokerId(*b)))
        .collect();
    resources.extend(topics.iter().map(|t| ConfigResource::Topic(topic(t))));
    throttle_overrides(admin, &resources)
        .await
        .expect("describe configs")
        .into_iter()
        .map(|(r, k, v)| (r.to_string(), k, v))
        .collect()
}

/// Asserts that no throttle config is left. Read once: the executor returns only after every
/// broker applies its removals.
pub async fn assert_no_throttles(admin: &AdminClient, brokers: &[i32], topics: &[&str]) {
    let left = throttle_configs(admin, brokers, topics).await;
    assert!(left.is_empty(), "throttle configs left behind: {left:?}");
}

pub async fn wait_no_reassignments(admin: &AdminClient) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = admin.list_partition_reassignments().await.expect("list");
        if list.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "reassignments still running: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Replicas per broker now.
pub async fn replicas_per_broker(admin: &AdminClient) -> BTreeMap<i32, usize> {
    let a = ReassignPort::assignment(admin).await.expect("assignment");
    kpilot_reassign::replicas_per_broker(&a)
        .into_iter()
        .map(|(b, n)| (b.0, n))
        .collect()
}

/// Partitions seen moving, and the throttle configs present at that moment.
pub type Sighting = (BTreeSet<TopicPartition>, Vec<(String, String, String)>);

/// A port over the admin client that records the throttle configs each time it sees a
/// reassignment in progress, and fails the `fail_on_ongoing_call`-th `ongoing` call.
pub struct Watched<'a> {
    pub admin: &'a AdminClient,
    pub brokers: Vec<i32>,
    pub topics: Vec<&'static str>,
    pub seen: RefCell<Vec<Sighting>>,
    pub ongoing_calls: Cell<usize>,
    pub fail_on_ongoing_call: Option<usize>,
    /// A topic left out of the assignment, as Metadata leaves out a topic the principal may
    /// not Describe.
    pub hidden: Option<&'static str>,
}

impl<'a> Watched<'a> {
    pub fn new(admin: &'a AdminClient, brokers: Vec<i32>, topics: Vec<&'static str>) -> Self {
        Self {
            admin,
            brokers,
            topics,
            seen: RefCell::new(Vec::new()),
            ongoing_calls: Cell::new(0),
            fail_on_ongoing_call: None,
            hidden: None,
        }
    }
}

impl ReassignPort for Watched<'_> {
    async fn live_brokers(&self) -> Result<BTreeSet<BrokerId>, PortError> {
        self.admin.live_brokers().await
    }
    async fn assignment(&self) -> Result<BTreeMap<TopicPartition, Vec<BrokerId>>, PortError> {
        let mut assignment = ReassignPort::assignment(self.admin).await?;
        if let Some(hidden) = self.hidden {
            assignment.retain(|tp, _| tp.topic.as_str() != hidden);
        }
        Ok(assignment)
    }
    async fn ongoing(&self) -> Result<BTreeSet<TopicPartition>, PortError> {
        let n = self.ongoing_calls.get() + 1;
        self.ongoing_calls.set(n);
        if self.fail_on_ongoing_call == Some(n) {
            return Err(PortError::Read {
                what: "the reassignments in progress",
                source: "injected failure".into(),
            });
        }
        let ongoing = self.admin.ongoing().await?;
        if !ongoing.is_empty() {
            // Read once: the executor submits a batch only after every broker applies its
            // throttle, so any broker answering must show it.
            let configs = throttle_configs(self.admin, &self.brokers, &self.topics).await;
            self.seen.borrow_mut().push((ongoing.clone(), configs));
        }
        Ok(ongoing)
    }
    async fn reassign(
        &self,
        changes: &[(TopicPartition, Option<Vec<BrokerId>>)],
    ) -> Result<(), PortError> {
        self.admin.reassign(changes).await
    }
    async fn configure(
        &self,
        resource: &ConfigResource,
        ops: &[ConfigOp],
    ) -> Result<(), PortError> {
        self.admin.configure(resource, ops).await
    }
    async fn validate(
        &self,
        resources: &[ConfigResource],
        ops: &[ConfigOp],
    ) -> Result<(), PortError> {
        self.admin.validate(resources, ops).await
    }
    async fn overrides_seen(
        &self,
        resource: &ConfigResource,
        keys: &[&str],
    ) -> Result<BTreeMap<BrokerId, BTreeMap<String, String>>, PortError> {
        self.admin.overrides_seen(resource, keys).await
    }
    async fn stored(&self, broker: BrokerId) -> Result<BTreeSet<TopicPartition>, PortError> {
        self.admin.stored(broker).await
    }
    async fn replica_sizes(
        &self,
        broker: BrokerId,
    ) -> Result<BTreeMap<TopicPartition, u64>, PortError> {
        self.admin.replica_sizes(broker).await
    }
    async fn elect_preferred(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<ElectionSummary, PortError> {
        self.admin.elect_preferred(partitions).await
    }
}
