//! The admin client: a pool of connections (one per broker), routing of each request to the
//! right broker (any, the controller, a given broker, the partition leader), retries with
//! exponential backoff on retriable errors within an overall deadline, and typed wrappers of
//! the admin APIs kpilot needs. Performs network I/O.
//!
//! Routing in KRaft mode: brokers forward controller-bound requests (CreateTopics, DeleteTopics,
//! ElectLeaders, AlterPartitionReassignments, ListPartitionReassignments, IncrementalAlterConfigs)
//! to the active controller, so "the controller" here is the broker that Metadata names as
//! controller; a NOT_CONTROLLER answer refreshes metadata and retries.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kafka_protocol::messages::{self as kp, ApiKey};
use kafka_protocol::protocol::{Request, StrBytes};
use kpilot_cluster::{
    BrokerId, BrokerInfo, LogDir, NodeId, PartitionReassignment, PartitionState, QuorumReplica,
    QuorumState, ReplicaLog, TopicName, TopicPartition,
};
use serde::Serialize;
use tokio::time::Instant;
use tracing::{debug, instrument, warn};

use crate::config::{BrokerAddress, ClientConfig, ConfigError};
use crate::connection::{Connection, ConnectionError, ConnectionSettings};
use crate::error_code::KafkaErrorCode;
use crate::tls::{self, TlsError};

/// Why an admin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The client configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// None of the bootstrap servers could be reached.
    #[error("cannot reach any bootstrap server ({addresses}): {last_error}")]
    Bootstrap {
        /// The addresses tried.
        addresses: String,
        /// The last error, which names its address.
        last_error: Box<ConnectionError>,
    },
    /// Talking to a broker failed.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// A broker answered with an error code. An authorization failure also names the ACL
    /// the principal lacks.
    #[error("{operation} for {resource} failed: {error}{}{}", message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default(), acl_hint(operation, *error))]
    Broker {
        /// The operation (API) that failed.
        operation: &'static str,
        /// The topic, partition, broker or config resource concerned.
        resource: String,
        /// The Kafka error.
        error: KafkaErrorCode,
        /// The broker's message, if it sent one.
        message: Option<String>,
    },
    /// The topic does not exist.
    #[error("topic `{topic}` does not exist (list topics with `kpilot status --json`)")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// The partition does not exist.
    #[error("partition {partition} does not exist")]
    UnknownPartition {
        /// The partition.
        partition: TopicPartition,
    },
    /// The broker is not in the cluster metadata (unknown id, or it is down).
    #[error("broker {broker} is not in the cluster metadata (it is down or the id is wrong)")]
    BrokerNotAvailable {
        /// The broker.
        broker: BrokerId,
    },
    /// Metadata names no controller.
    #[error("the cluster metadata names no controller")]
    NoController,
    /// The partition has no leader right now.
    #[error("partition {partition} has no leader")]
    NoLeader {
        /// The partition.
        partition: TopicPartition,
    },
    /// A retriable failure did not clear up within the operation's deadline.
    #[error("{operation} did not succeed within {after:?}; last error: {last_error}")]
    Timeout {
        /// The operation.
        operation: &'static str,
        /// The deadline.
        after: Duration,
        /// The last error seen.
        last_error: Box<AdminError>,
    },
    /// The operation did not complete within its deadline (no error seen before).
    #[error("{operation} did not complete within {after:?}")]
    Deadline {
        /// The operation.
        operation: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// A response did not make sense.
    #[error("invalid {operation} response: {message}")]
    InvalidResponse {
        /// The operation.
        operation: &'static str,
        /// What was wrong.
        message: String,
    },
    /// Records could not be encoded for a produce request.
    #[error("cannot encode records for {partition}: {message}")]
    EncodeRecords {
        /// The partition.
        partition: TopicPartition,
        /// What went wrong.
        message: String,
    },
}

impl AdminError {
    /// Whether retrying may help.
    pub fn is_retriable(&self) -> bool {
        match self {
            AdminError::Connection(e) => e.is_retriable(),
            AdminError::Broker { error, .. } => error.is_retriable(),
            AdminError::NoController | AdminError::NoLeader { .. } => true,
            _ => false,
        }
    }

    /// The Kafka error code, if a broker returned one.
    pub fn kafka_error(&self) -> Option<KafkaErrorCode> {
        match self {
            AdminError::Broker { error, .. } => Some(*error),
            AdminError::Timeout { last_error, .. } => last_error.kafka_error(),
            _ => None,
        }
    }

    fn wants_metadata_refresh(&self) -> bool {
        match self {
            AdminError::Connection(_) | AdminError::NoController | AdminError::NoLeader { .. } => {
                true
            }
            AdminError::Broker { error, .. } => matches!(
                error,
                KafkaErrorCode::NotController
                    | KafkaErrorCode::NotLeaderOrFollower
                    | KafkaErrorCode::LeaderNotAvailable
                    | KafkaErrorCode::UnknownTopicOrPartition
                    | KafkaErrorCode::FencedLeaderEpoch
                    | KafkaErrorCode::UnknownLeaderEpoch
            ),
            _ => false,
        }
    }
}

/// For an authorization failure: which ACL the principal lacks for `operation` (the API name),
/// as `kafka-acls` names operations and resources. Empty for other errors.
fn acl_hint(operation: &str, error: KafkaErrorCode) -> String {
    let (resource, acl) = match error {
        KafkaErrorCode::ClusterAuthorizationFailed => (
            "the cluster",
            match operation {
                "DescribeConfigs" => "DescribeConfigs",
                "IncrementalAlterConfigs" => "AlterConfigs",
                "AlterPartitionReassignments" | "ElectLeaders" => "Alter",
                "CreateTopics" => "Create",
                "InitProducerId" => "IdempotentWrite",
                _ => "Describe",
            },
        ),
        KafkaErrorCode::TopicAuthorizationFailed => (
            "the topic",
            match operation {
                "DescribeConfigs" => "DescribeConfigs",
                "IncrementalAlterConfigs" => "AlterConfigs",
                "Produce" => "Write",
                "CreateTopics" => "Create",
                "DeleteTopics" => "Delete",
                "DescribeProducers" => "Read",
                _ => "Describe",
            },
        ),
        KafkaErrorCode::GroupAuthorizationFailed => ("the group", "Describe"),
        _ => return String::new(),
    };
    format!(
        "; this principal needs the {acl} ACL on {resource} (kafka-acls --add --operation {acl}; \
         see \"Permissions\" in docs/kafka-admin.md)"
    )
}

pub(crate) fn broker_error(
    operation: &'static str,
    resource: impl ToString,
    code: i16,
    message: Option<&StrBytes>,
) -> Result<(), AdminError> {
    match KafkaErrorCode::from_code(code) {
        None => Ok(()),
        Some(error) => Err(AdminError::Broker {
            operation,
            resource: resource.to_string(),
            error,
            message: message.map(|m| m.to_string()).filter(|m| !m.is_empty()),
        }),
    }
}

/// Cluster metadata: live brokers, controller and topics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterMetadata {
    /// The cluster id.
    pub cluster_id: Option<String>,
    /// The broker Metadata names as controller (in KRaft: a broker that forwards to the active
    /// controller; see [`AdminClient::describe_quorum`] for the real one).
    pub controller: Option<BrokerId>,
    /// Live brokers.
    pub brokers: BTreeMap<BrokerId, BrokerInfo>,
    /// Topics.
    pub topics: BTreeMap<TopicName, TopicMetadata>,
}

impl ClusterMetadata {
    /// The state of one partition, if known.
    pub fn partition(&self, tp: &TopicPartition) -> Option<&PartitionState> {
        self.topics.get(&tp.topic)?.partitions.get(&tp.partition)
    }
}

/// One topic in cluster metadata.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopicMetadata {
    /// The topic.
    pub name: TopicName,
    /// Its id (Kafka's base64 form).
    pub topic_id: Option<String>,
    /// Whether it is internal.
    pub internal: bool,
    /// Partitions by index.
    pub partitions: BTreeMap<i32, PartitionState>,
}

/// The cluster as DescribeCluster reports it (includes fenced brokers on v2+).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterDescription {
    /// The cluster id.
    pub cluster_id: String,
    /// The controller id DescribeCluster reports.
    pub controller: Option<BrokerId>,
    /// Brokers, with whether each is fenced.
    pub brokers: Vec<(BrokerInfo, bool)>,
}

/// A config resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ConfigResource {
    /// A topic's configs.
    Topic(TopicName),
    /// One broker's configs.
    Broker(BrokerId),
    /// The cluster-wide dynamic broker defaults.
    BrokerDefaults,
}

impl ConfigResource {
    fn wire(&self) -> (i8, String) {
        match self {
            ConfigResource::Topic(t) => (2, t.to_string()),
            ConfigResource::Broker(b) => (4, b.0.to_string()),
            ConfigResource::BrokerDefaults => (4, String::new()),
        }
    }

    fn route(&self) -> Route {
        match self {
            ConfigResource::Broker(b) => Route::Broker(*b),
            _ => Route::Any,
        }
    }
}

impl std::fmt::Display for ConfigResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigResource::Topic(t) => write!(f, "topic {t}"),
            ConfigResource::Broker(b) => write!(f, "broker {b}"),
            ConfigResource::BrokerDefaults => f.write_str("broker defaults"),
        }
    }
}

/// A replication-throttle override set now: the broker or topic, the key, the value.
pub type ThrottleOverride = (ConfigResource, String, String);

/// Where a config value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConfigSource {
    /// Set on the topic.
    DynamicTopicConfig,
    /// Set dynamically on this broker.
    DynamicBrokerConfig,
    /// Set dynamically as a cluster-wide broker default.
    DynamicDefaultBrokerConfig,
    /// From the broker's `server.properties`.
    StaticBrokerConfig,
    /// Kafka's built-in default.
    DefaultConfig,
    /// A broker logger level.
    DynamicBrokerLoggerConfig,
    /// Anything else.
    Unknown,
}

impl ConfigSource {
    fn from_wire(source: i8) -> Self {
        match source {
            1 => ConfigSource::DynamicTopicConfig,
            2 => ConfigSource::DynamicBrokerConfig,
            3 => ConfigSource::DynamicDefaultBrokerConfig,
            4 => ConfigSource::StaticBrokerConfig,
            5 => ConfigSource::DefaultConfig,
            6 => ConfigSource::DynamicBrokerLoggerConfig,
            _ => ConfigSource::Unknown,
        }
    }
}

/// One config value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigEntry {
    /// The value (`None` for sensitive values, which brokers never return).
    pub value: Option<String>,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Whether it cannot be changed dynamically.
    pub read_only: bool,
    /// Whether it is a secret.
    pub sensitive: bool,
}

/// One incremental config change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    /// Set `name` to `value`.
    Set(String, String),
    /// Remove the override of `name` (back to the default).
    Delete(String),
}

impl ConfigOp {
    /// Sets a config.
    pub fn set(name: impl Into<String>, value: impl ToString) -> Self {
        ConfigOp::Set(name.into(), value.to_string())
    }

    /// Deletes a config override.
    pub fn delete(name: impl Into<String>) -> Self {
        ConfigOp::Delete(name.into())
    }
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// The name.
    pub name: TopicName,
    /// Partition count (ignored when `assignments` is set).
    pub partitions: i32,
    /// Replication factor (ignored when `assignments` is set); -1 for the broker default.
    pub replication_factor: i16,
    /// Explicit replica assignment per partition, if any.
    pub assignments: Option<Vec<Vec<BrokerId>>>,
    /// Topic configs.
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A topic with this many partitions and this replication factor.
    pub fn new(name: TopicName, partitions: i32, replication_factor: i16) -> Self {
        NewTopic {
            name,
            partitions,
            replication_factor,
            assignments: None,
            configs: Vec::new(),
        }
    }

    /// Adds a topic config.
    pub fn with_config(mut self, name: impl Into<String>, value: impl ToString) -> Self {
        self.configs.push((name.into(), value.to_string()));
        self
    }
}

/// The result of a preferred leader election for one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ElectionOutcome {
    /// The preferred replica is now the leader.
    Elected,
    /// The preferred replica already led.
    NotNeeded,
    /// The election failed (e.g. the preferred replica is not in the ISR).
    Failed {
        /// The error.
        error: KafkaErrorCode,
        /// The broker's message.
        message: Option<String>,
    },
}

/// Which offset ListOffsets looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (next offset to be written).
    Latest,
    /// The first offset whose timestamp is at or after this many ms since the epoch.
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(ts) => ts,
        }
    }
}

/// A partition and its new replica list (`None` cancels an ongoing reassignment).
pub type ReassignmentChange = (TopicPartition, Option<Vec<BrokerId>>);

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// Any live broker (round robin).
    Any,
    /// The controller named by metadata.
    Controller,
    /// A given broker.
    Broker(BrokerId),
}

type Slot = Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>;

struct Inner {
    config: ClientConfig,
    settings: ConnectionSettings,
    pool: Mutex<HashMap<BrokerAddress, Slot>>,
    metadata: RwLock<Option<Arc<ClusterMetadata>>>,
    round_robin: AtomicUsize,
    producer: crate::produce::ProducerState,
}

/// A Kafka admin client. Cheap to clone (clones share connections and metadata).
#[derive(Clone)]
pub struct AdminClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("bootstrap", &self.inner.config.bootstrap)
            .field("security_protocol", &self.inner.config.security_protocol)
            .finish_non_exhaustive()
    }
}

/// How many rounds over the bootstrap list before giving up.
const BOOTSTRAP_ROUNDS: u32 = 3;

impl AdminClient {
    /// Connects to the cluster: validates the configuration, builds TLS settings, and reads
    /// cluster metadata from the first bootstrap server that answers (a few rounds over the
    /// list, within the connect timeout per attempt).
    #[instrument(level = "debug", skip(config), fields(bootstrap = ?config.bootstrap))]
    pub async fn connect(config: ClientConfig) -> Result<AdminClient, AdminError> {
        config.validate()?;
        let tls = if config.security_protocol.uses_tls() {
            Some(tls::client_config(&config.tls)?)
        } else {
            None
        };
        let settings = ConnectionSettings {
            security_protocol: config.security_protocol,
            tls,
            sasl: config.sasl.clone(),
            client_id: config.client_id.clone(),
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
        };
        let client = AdminClient {
            inner: Arc::new(Inner {
                config,
                settings,
                pool: Mutex::new(HashMap::new()),
                metadata: RwLock::new(None),
                round_robin: AtomicUsize::new(0),
                producer: Default::default(),
            }),
        };
        client.bootstrap().await?;
        Ok(client)
    }

    /// The configuration in use.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    async fn bootstrap(&self) -> Result<(), AdminError> {
        let config = &self.inner.config;
        let deadline = Instant::now() + config.api_timeout;
        let mut backoff = config.retry_backoff;
        let mut last_error = None;
        for round in 0..BOOTSTRAP_ROUNDS {
            // The API timeout bounds the rounds too, not only the pauses between them.
            if round > 0 && Instant::now() >= deadline {
                break;
            }
            for address in &config.bootstrap {
                match self.connection(address).await {
                    Ok(connection) => match self.fetch_metadata(&connection).await {
                        Ok(metadata) => {
                            self.store_metadata(metadata);
                            return Ok(());
                        }
                        Err(AdminError::Connection(e)) => last_error = Some(e),
                        Err(other) => return Err(other),
                    },
                    Err(e) if e.is_retriable() => {
                        debug!(%address, error = %e, "bootstrap server not reachable");
                        last_error = Some(e);
                    }
                    Err(e) => return Err(AdminError::Connection(e)),
                }
            }
            if round + 1 < BOOTSTRAP_ROUNDS && Instant::now() + backoff < deadline {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(config.retry_backoff_max);
            }
        }
        let addresses = config
            .bootstrap
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        Err(match last_error {
            Some(e) => AdminError::Bootstrap {
                addresses,
                last_error: Box::new(e),
            },
            None => AdminError::Config(ConfigError::MissingBootstrap),
        })
    }

    /// An open connection to `address`, reusing a pooled one.
    async fn connection(
        &self,
        address: &BrokerAddress,
    ) -> Result<Arc<Connection>, ConnectionError> {
        let slot = {
            let mut pool = self.inner.pool.lock().unwrap_or_else(|e| e.into_inner());
            pool.entry(address.clone()).or_default().clone()
        };
        let mut guard = slot.lock().await;
        if let Some(connection) = guard.as_ref()
            && connection.is_open()
        {
            return Ok(connection.clone());
        }
        let connection = Arc::new(Connection::open(address, &self.inner.settings).await?);
        *guard = Some(connection.clone());
        Ok(connection)
    }

    pub(crate) fn cached_metadata(&self) -> Option<Arc<ClusterMetadata>> {
        self.inner
            .metadata
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn store_metadata(&self, metadata: ClusterMetadata) -> Arc<ClusterMetadata> {
        let metadata = Arc::new(metadata);
        *self
            .inner
            .metadata
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(metadata.clone());
        metadata
    }

    fn address_of(&self, broker: BrokerId) -> Option<BrokerAddress> {
        let metadata = self.cached_metadata()?;
        let info = metadata.brokers.get(&broker)?;
        Some(BrokerAddress::new(info.host.clone(), info.port))
    }

    pub(crate) async fn route(&self, route: Route) -> Result<Arc<Connection>, AdminError> {
        let address = match route {
            Route::Any => {
                let live: Vec<BrokerAddress> = self
                    .cached_metadata()
                    .map(|m| {
                        m.brokers
                            .values()
                            .map(|b| BrokerAddress::new(b.host.clone(), b.port))
                            .collect()
                    })
                    .filter(|v: &Vec<BrokerAddress>| !v.is_empty())
                    .unwrap_or_else(|| self.inner.config.bootstrap.clone());
                if live.is_empty() {
                    return Err(AdminError::Config(ConfigError::MissingBootstrap));
                }
                // Any broker will do: one that cannot be reached (stopped, removed since the
                // metadata was cached) gives way to the next, and only when none can be
                // reached is the last error returned.
                let start = self.inner.round_robin.fetch_add(1, Ordering::Relaxed);
                let mut last = None;
                for k in 0..live.len() {
                    let address = &live[(start + k) % live.len()];
                    match self.connection(address).await {
                        Ok(connection) => return Ok(connection),
                        Err(e) => last = Some(e),
                    }
                }
                return Err(last
                    .map(AdminError::from)
                    .unwrap_or(AdminError::Config(ConfigError::MissingBootstrap)));
            }
            Route::Controller => {
                let controller = self
                    .cached_metadata()
                    .and_then(|m| m.controller)
                    .ok_or(AdminError::NoController)?;
                self.address_of(controller)
                    .ok_or(AdminError::NoController)?
            }
            Route::Broker(broker) => self
                .address_of(broker)
                .ok_or(AdminError::BrokerNotAvailable { broker })?,
        };
        Ok(self.connection(&address).await?)
    }

    /// The partition's leader, from cached metadata or, if the partition is not in it, fresh.
    pub(crate) async fn leader_of(&self, tp: &TopicPartition) -> Result<BrokerId, AdminError> {
        let metadata = match self.cached_metadata() {
            Some(m) => m,
            None => self.refresh_metadata().await?,
        };
        let partition = match metadata.partition(tp) {
            Some(p) => p.clone(),
            None => {
                let fresh = self.refresh_metadata().await?;
                if !fresh.topics.contains_key(&tp.topic) {
                    return Err(AdminError::UnknownTopic {
                        topic: tp.topic.to_string(),
                    });
                }
                fresh
                    .partition(tp)
                    .cloned()
                    .ok_or_else(|| AdminError::UnknownPartition {
                        partition: tp.clone(),
                    })?
            }
        };
        partition.leader.ok_or_else(|| AdminError::NoLeader {
            partition: tp.clone(),
        })
    }

    /// Sends one request along a route (one attempt).
    pub(crate) async fn call<R: Request>(
        &self,
        route: Route,
        request: &R,
    ) -> Result<R::Response, AdminError> {
        let connection = self.route(route).await?;
        Ok(connection.send(request).await?)
    }

    /// Runs `attempt` until it succeeds, fails with a non-retriable error, or `budget` runs
    /// out; backs off exponentially between attempts and refreshes metadata when the error
    /// says it is stale.
    pub(crate) async fn retrying<T, F, Fut>(
        &self,
        operation: &'static str,
        budget: Duration,
        attempt: F,
    ) -> Result<T, AdminError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AdminError>>,
    {
        self.retrying_at_most(operation, budget, u32::MAX, attempt)
            .await
    }

    /// Like [`AdminClient::retrying`], with at most `max_attempts` attempts.
    pub(crate) async fn retrying_at_most<T, F, Fut>(
        &self,
        operation: &'static str,
        budget: Duration,
        max_attempts: u32,
        mut attempt: F,
    ) -> Result<T, AdminError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AdminError>>,
    {
        let config = &self.inner.config;
        let deadline = Instant::now() + budget;
        let mut backoff = config.retry_backoff;
        let mut last_error: Option<AdminError> = None;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let outcome = tokio::time::timeout_at(deadline, attempt()).await;
            let error = match outcome {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) if !e.is_retriable() => return Err(e),
                Ok(Err(e)) => e,
                Err(_) => {
                    return Err(match last_error {
                        Some(e) => AdminError::Timeout {
                            operation,
                            after: budget,
                            last_error: Box::new(e),
                        },
                        None => AdminError::Deadline {
                            operation,
                            after: budget,
                        },
                    });
                }
            };
            if attempts >= max_attempts || Instant::now() + backoff >= deadline {
                return Err(AdminError::Timeout {
                    operation,
                    after: budget,
                    last_error: Box::new(error),
                });
            }
            debug!(operation, error = %error, ?backoff, "retrying");
            let refresh = error.wants_metadata_refresh();
            last_error = Some(error);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(config.retry_backoff_max);
            if refresh && let Err(e) = self.refresh_metadata().await {
                debug!(error = %e, "metadata refresh failed");
            }
        }
    }

    pub(crate) fn producer_state(&self) -> &crate::produce::ProducerState {
        &self.inner.producer
    }

    pub(crate) fn api_timeout(&self) -> Duration {
        self.inner.config.api_timeout
    }

    pub(crate) fn timeout_ms(&self) -> i32 {
        i32::try_from(self.inner.config.request_timeout.as_millis()).unwrap_or(i32::MAX)
    }

    // ----- Metadata -----

    async fn fetch_metadata(&self, connection: &Connection) -> Result<ClusterMetadata, AdminError> {
        let request = kp::MetadataRequest::default()
            .with_topics(None)
            .with_allow_auto_topic_creation(false);
        let response = connection.send(&request).await?;
        metadata_from_response(response)
    }

    /// Reads fresh metadata (one attempt, from any broker) and caches it.
    pub async fn refresh_metadata(&self) -> Result<Arc<ClusterMetadata>, AdminError> {
        let connection = self.route(Route::Any).await?;
        let metadata = self.fetch_metadata(&connection).await?;
        Ok(self.store_metadata(metadata))
    }

    /// Cluster metadata: live brokers, controller, every topic's partitions with leader,
    /// replicas, ISR and offline replicas. Retries within the API timeout.
    pub async fn metadata(&self) -> Result<Arc<ClusterMetadata>, AdminError> {
        self.retrying("Metadata", self.api_timeout(), || self.refresh_metadata())
            .await
    }

    /// Metadata of the given topics; fails with [`AdminError::UnknownTopic`] for a topic that
    /// does not exist.
    pub async fn describe_topics(
        &self,
        topics: &[TopicName],
    ) -> Result<BTreeMap<TopicName, TopicMetadata>, AdminError> {
        self.retrying("Metadata", self.api_timeout(), || async {
            let request = kp::MetadataRequest::default()
                .with_allow_auto_topic_creation(false)
                .with_topics(Some(
                    topics
                        .iter()
                        .map(|t| {
                            kp::metadata_request::MetadataRequestTopic::default()
                                .with_name(Some(kp_topic(t)))
                        })
                        .collect(),
                ));
            let response = self.call(Route::Any, &request).await?;
            for topic in &response.topics {
                let name = topic
                    .name
                    .as_ref()
                    .map(|n| n.0.to_string())
                    .unwrap_or_default();
                if topic.error_code == KafkaErrorCode::UnknownTopicOrPartition.code() {
                    return Err(AdminError::UnknownTopic { topic: name });
                }
                broker_error("Metadata", format!("topic {name}"), topic.error_code, None)?;
            }
            Ok(metadata_from_response(response)?.topics)
        })
        .await
    }

    /// DescribeCluster: brokers including fenced ones (v2+), cluster id and controller.
    pub async fn describe_cluster(&self) -> Result<ClusterDescription, AdminError> {
        self.retrying("DescribeCluster", self.api_timeout(), || async {
            let request = kp::DescribeClusterRequest::default().with_include_fenced_brokers(true);
            let response = self.call(Route::Any, &request).await?;
            broker_error(
                "DescribeCluster",
                "the cluster",
                response.error_code,
                response.error_message.as_ref(),
            )?;
            let brokers = response
                .brokers
                .iter()
                .map(|b| {
                    Ok((
                        BrokerInfo {
                            id: BrokerId(b.broker_id.0),
                            host: b.host.to_string(),
                            port: port(b.port, "DescribeCluster")?,
                            rack: b.rack.as_ref().map(|r| r.to_string()),
                        },
                        b.is_fenced,
                    ))
                })
                .collect::<Result<Vec<_>, AdminError>>()?;
            Ok(ClusterDescription {
                cluster_id: response.cluster_id.to_string(),
                controller: broker_id(response.controller_id),
                brokers,
            })
        })
        .await
    }

    // ----- Configs -----

    /// DescribeConfigs. `keys` limits the configs returned (`None` = all). Broker resources
    /// go to that broker; topics to any broker.
    pub async fn describe_configs(
        &self,
        resources: &[ConfigResource],
        keys: Option<&[&str]>,
    ) -> Result<BTreeMap<ConfigResource, BTreeMap<String, ConfigEntry>>, AdminError> {
        let mut by_route: BTreeMap<String, (Route, Vec<ConfigResource>)> = BTreeMap::new();
        for resource in resources {
            let route = resource.route();
            by_route
                .entry(format!("{route:?}"))
                .or_insert_with(|| (route, Vec::new()))
                .1
                .push(resource.clone());
        }
        let mut out = BTreeMap::new();
        for (_, (route, group)) in by_route {
            out.extend(self.describe_configs_routed(route, &group, keys).await?);
        }
        Ok(out)
    }

    /// DescribeConfigs answered by `broker` itself. A topic's configs reach each broker through
    /// the metadata log, a moment after the controller accepted a change; asking every broker
    /// in turn tells when all of them apply it. A broker resource can only be asked of that
    /// broker (any other answers INVALID_REQUEST).
    pub async fn describe_configs_at(
        &self,
        broker: BrokerId,
        resources: &[ConfigResource],
        keys: Option<&[&str]>,
    ) -> Result<BTreeMap<ConfigResource, BTreeMap<String, ConfigEntry>>, AdminError> {
        self.describe_configs_routed(Route::Broker(broker), resources, keys)
            .await
    }

    /// A broker's own configs (`keys`), with at most `max_attempts` attempts: for the parts of
    /// a snapshot that can do without one broker.
    pub(crate) async fn describe_broker_configs_within(
        &self,
        broker: BrokerId,
        keys: &[&str],
        budget: Duration,
        max_attempts: u32,
    ) -> Result<BTreeMap<String, ConfigEntry>, AdminError> {
        let resource = [ConfigResource::Broker(broker)];
        let mut out = self
            .retrying_at_most("DescribeConfigs", budget, max_attempts, || {
                self.describe_configs_once(Route::Broker(broker), &resource, Some(keys))
            })
            .await?;
        Ok(out.remove(&resource[0]).unwrap_or_default())
    }

    async fn describe_configs_routed(
        &self,
        route: Route,
        resources: &[ConfigResource],
        keys: Option<&[&str]>,
    ) -> Result<BTreeMap<ConfigResource, BTreeMap<String, ConfigEntry>>, AdminError> {
        let mut out = BTreeMap::new();
        for chunk in resources.chunks(1000) {
            let result = self
                .retrying("DescribeConfigs", self.api_timeout(), || {
                    self.describe_configs_once(route, chunk, keys)
                })
                .await?;
            out.extend(result);
        }
        Ok(out)
    }

    async fn describe_configs_once(
        &self,
        route: Route,
        resources: &[ConfigResource],
        keys: Option<&[&str]>,
    ) -> Result<BTreeMap<ConfigResource, BTreeMap<String, ConfigEntry>>, AdminError> {
        let request = kp::DescribeConfigsRequest::default().with_resources(
            resources
                .iter()
                .map(|r| {
                    let (kind, name) = r.wire();
                    kp::describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(kind)
                        .with_resource_name(StrBytes::from_string(name))
                        .with_configuration_keys(keys.map(|keys| {
                            keys.iter()
                                .map(|k| StrBytes::from_string((*k).to_string()))
                                .collect()
                        }))
                })
                .collect(),
        );
        let response = self.call(route, &request).await?;
        let mut out = BTreeMap::new();
        for (resource, result) in resources.iter().zip(&response.results) {
            if result.error_code == KafkaErrorCode::UnknownTopicOrPartition.code()
                && let ConfigResource::Topic(t) = resource
            {
                return Err(AdminError::UnknownTopic {
                    topic: t.to_string(),
                });
            }
            broker_error(
                "DescribeConfigs",
                resource,
                result.error_code,
                result.error_message.as_ref(),
            )?;
            let entries = result
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        ConfigEntry {
                            value: c.value.as_ref().map(|v| v.to_string()),
                            source: ConfigSource::from_wire(c.config_source),
                            read_only: c.read_only,
                            sensitive: c.is_sensitive,
                        },
                    )
                })
                .collect();
            out.insert(resource.clone(), entries);
        }
        if response.results.len() != resources.len() {
            return Err(AdminError::InvalidResponse {
                operation: "DescribeConfigs",
                message: format!(
                    "{} results for {} resources",
                    response.results.len(),
                    resources.len()
                ),
            });
        }
        Ok(out)
    }

    /// The replication-throttle overrides set now on `resources` (the rates on brokers, the
    /// replica lists on topics, cluster-wide rate defaults included), as the broker that
    /// answers DescribeConfigs sees them.
    pub async fn throttle_overrides(
        &self,
        resources: &[ConfigResource],
    ) -> Result<Vec<ThrottleOverride>, AdminError> {
        self.throttle_configs(resources, true).await
    }

    /// [`AdminClient::throttle_overrides`] without the cluster-wide defaults: only what is set
    /// on each broker or topic itself.
    pub async fn own_throttle_overrides(
        &self,
        resources: &[ConfigResource],
    ) -> Result<Vec<ThrottleOverride>, AdminError> {
        self.throttle_configs(resources, false).await
    }

    async fn throttle_configs(
        &self,
        resources: &[ConfigResource],
        with_defaults: bool,
    ) -> Result<Vec<ThrottleOverride>, AdminError> {
        use crate::snapshot::{FOLLOWER_RATE, FOLLOWER_REPLICAS, LEADER_RATE, LEADER_REPLICAS};
        let keys = [
            LEADER_RATE,
            FOLLOWER_RATE,
            LEADER_REPLICAS,
            FOLLOWER_REPLICAS,
        ];
        let configs = self.describe_configs(resources, Some(&keys)).await?;
        Ok(configs
            .into_iter()
            .flat_map(|(resource, entries)| {
                entries.into_iter().filter_map(move |(key, e)| {
                    let set = match e.source {
                        ConfigSource::DynamicBrokerConfig | ConfigSource::DynamicTopicConfig => {
                            true
                        }
                        ConfigSource::DynamicDefaultBrokerConfig => with_defaults,
                        _ => false,
                    };
                    let value = e.value.filter(|v| set && !v.is_empty())?;
                    Some((resource.clone(), key, value))
                })
            })
            .collect())
    }

    /// [`AdminClient::throttle_overrides`] asked of each resource on its own, skipping those
    /// that cannot answer now (a broker's own configs while it is down): for watching
    /// throttles during a roll.
    pub async fn throttle_overrides_answering(
        &self,
        resources: &[ConfigResource],
    ) -> Vec<ThrottleOverride> {
        let mut set = Vec::new();
        for r in resources {
            if let Ok(found) = self.throttle_overrides(std::slice::from_ref(r)).await {
                set.extend(found);
            }
        }
        set
    }

    /// IncrementalAlterConfigs on one resource (set or delete config overrides), e.g.
    /// replication throttles: `leader.replication.throttled.rate` on brokers,
    /// `leader.replication.throttled.replicas` on topics.
    pub async fn alter_configs(
        &self,
        resource: &ConfigResource,
        ops: &[ConfigOp],
    ) -> Result<(), AdminError> {
        self.incremental_alter_configs(std::slice::from_ref(resource), ops, false)
            .await
    }

    /// IncrementalAlterConfigs with `validateOnly`: the brokers authorize and validate `ops` on
    /// every resource and apply nothing. Probes the AlterConfigs ACL before a change that needs
    /// it; topics are authorized one by one (an ACL may cover some by prefix and not others),
    /// so all of them go in one request. Fails with the first resource refused.
    pub async fn validate_configs(
        &self,
        resources: &[ConfigResource],
        ops: &[ConfigOp],
    ) -> Result<(), AdminError> {
        // A broker's own configs go to that broker; everything else to any broker.
        let (brokers, elsewhere): (Vec<_>, Vec<_>) = resources
            .iter()
            .cloned()
            .partition(|r| matches!(r, ConfigResource::Broker(_)));
        for broker in &brokers {
            self.incremental_alter_configs(std::slice::from_ref(broker), ops, true)
                .await?;
        }
        if !elsewhere.is_empty() {
            self.incremental_alter_configs(&elsewhere, ops, true)
                .await?;
        }
        Ok(())
    }

    /// Whether this principal may set the brokers' replication throttle rates, asked with
    /// `validateOnly` (nothing changes). AlterConfigs on the cluster covers every broker, so
    /// one broker of `metadata` is asked; with none known there is nothing to ask.
    pub async fn may_set_throttle_rates(
        &self,
        metadata: &ClusterMetadata,
    ) -> Result<(), AdminError> {
        let Some(id) = metadata.brokers.keys().next() else {
            return Ok(());
        };
        self.validate_configs(
            &[ConfigResource::Broker(*id)],
            &[ConfigOp::set(crate::snapshot::FOLLOWER_RATE, "1")],
        )
        .await
    }

    /// Whether this principal may set the throttled-replica lists of every topic of
    /// `metadata` but the internal ones, asked with `validateOnly` (nothing changes).
    /// AlterConfigs on topics may be granted per topic or prefix: every topic is asked, in
    /// one request, and the first one refused is named.
    pub async fn may_set_throttled_replicas(
        &self,
        metadata: &ClusterMetadata,
    ) -> Result<(), AdminError> {
        let topics: Vec<ConfigResource> = metadata
            .topics
            .keys()
            .filter(|t| !t.is_internal_name())
            .map(|t| ConfigResource::Topic(t.clone()))
            .collect();
        self.validate_configs(
            &topics,
            &[ConfigOp::set(crate::snapshot::LEADER_REPLICAS, "*")],
        )
        .await
    }

    /// One request for `resources`, which share a route (one broker's own configs, or any
    /// number of other resources).
    async fn incremental_alter_configs(
        &self,
        resources: &[ConfigResource],
        ops: &[ConfigOp],
        validate_only: bool,
    ) -> Result<(), AdminError> {
        use kp::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
        let Some(route) = resources.first().map(ConfigResource::route) else {
            return Ok(());
        };
        let configs: Vec<AlterableConfig> = ops
            .iter()
            .map(|op| {
                let (name, operation, value) = match op {
                    ConfigOp::Set(n, v) => (n, 0, Some(v)),
                    ConfigOp::Delete(n) => (n, 1, None),
                };
                AlterableConfig::default()
                    .with_name(StrBytes::from_string(name.clone()))
                    .with_config_operation(operation)
                    .with_value(value.map(|v| StrBytes::from_string(v.clone())))
            })
            .collect();
        let request = kp::IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(
                resources
                    .iter()
                    .map(|resource| {
                        let (kind, name) = resource.wire();
                        AlterConfigsResource::default()
                            .with_resource_type(kind)
                            .with_resource_name(StrBytes::from_string(name))
                            .with_configs(configs.clone())
                    })
                    .collect(),
            );
        self.retrying("IncrementalAlterConfigs", self.api_timeout(), || async {
            let response = self.call(route, &request).await?;
            for r in &response.responses {
                // The response names each resource; errors are reported on ours.
                let resource = resources
                    .iter()
                    .find(|res| {
                        let (kind, name) = res.wire();
                        kind == r.resource_type && name == r.resource_name.as_str()
                    })
                    .unwrap_or(&resources[0]);
                if r.error_code == KafkaErrorCode::UnknownTopicOrPartition.code()
                    && let ConfigResource::Topic(t) = resource
                {
                    return Err(AdminError::UnknownTopic {
                        topic: t.to_string(),
                    });
                }
                broker_error(
                    "IncrementalAlterConfigs",
                    resource,
                    r.error_code,
                    r.error_message.as_ref(),
                )?;
            }
            Ok(())
        })
        .await
    }

    // ----- Topics -----

    /// CreateTopics; fails on the first topic the controller rejects (including
    /// TOPIC_ALREADY_EXISTS).
    pub async fn create_topics(&self, topics: &[NewTopic]) -> Result<(), AdminError> {
        let request = kp::CreateTopicsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        use kp::create_topics_request::{
                            CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
                        };
                        let mut topic = CreatableTopic::default()
                            .with_name(kp_topic(&t.name))
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(StrBytes::from_string(k.clone()))
                                            .with_value(Some(StrBytes::from_string(v.clone())))
                                    })
                                    .collect(),
                            );
                        match &t.assignments {
                            Some(assignments) => {
                                topic = topic
                                    .with_num_partitions(-1)
                                    .with_replication_factor(-1)
                                    .with_assignments(
                                        assignments
                                            .iter()
                                            .enumerate()
                                            .map(|(i, replicas)| {
                                                CreatableReplicaAssignment::default()
                                                    .with_partition_index(
                                                        i32::try_from(i).unwrap_or(i32::MAX),
                                                    )
                                                    .with_broker_ids(
                                                        replicas
                                                            .iter()
                                                            .map(|b| kp::BrokerId(b.0))
                                                            .collect(),
                                                    )
                                            })
                                            .collect(),
                                    );
                            }
                            None => {
                                topic = topic
                                    .with_num_partitions(t.partitions)
                                    .with_replication_factor(t.replication_factor);
                            }
                        }
                        topic
                    })
                    .collect(),
            );
        self.retrying("CreateTopics", self.api_timeout(), || async {
            let response = self.call(Route::Controller, &request).await?;
            for t in &response.topics {
                broker_error(
                    "CreateTopics",
                    format!("topic {}", t.name.0),
                    t.error_code,
                    t.error_message.as_ref(),
                )?;
            }
            Ok(())
        })
        .await
    }

    /// DeleteTopics.
    pub async fn delete_topics(&self, topics: &[TopicName]) -> Result<(), AdminError> {
        let request = kp::DeleteTopicsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topic_names(topics.iter().map(kp_topic).collect())
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        kp::delete_topics_request::DeleteTopicState::default()
                            .with_name(Some(kp_topic(t)))
                    })
                    .collect(),
            );
        self.retrying("DeleteTopics", self.api_timeout(), || async {
            let response = self.call(Route::Controller, &request).await?;
            for r in &response.responses {
                let name = r.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                if r.error_code == KafkaErrorCode::UnknownTopicOrPartition.code() {
                    return Err(AdminError::UnknownTopic { topic: name });
                }
                broker_error(
                    "DeleteTopics",
                    format!("topic {name}"),
                    r.error_code,
                    r.error_message.as_ref(),
                )?;
            }
            Ok(())
        })
        .await
    }

    /// Waits until every live broker's metadata shows every partition of `topic` with a
    /// leader. After CreateTopics the brokers learn about the topic through the metadata log,
    /// each a moment later; requests go to any broker in turn, so one broker knowing it is
    /// not enough for the next request to find it (nor the topic's configs, created with it).
    pub async fn wait_for_topic(&self, topic: &TopicName) -> Result<TopicMetadata, AdminError> {
        self.retrying("waiting for topic leaders", self.api_timeout(), || async {
            let metadata = self.refresh_metadata().await?;
            let ready = topic_with_leaders(&metadata, topic)?.clone();
            for id in metadata.brokers.keys() {
                let connection = self.route(Route::Broker(*id)).await?;
                let seen = self.fetch_metadata(&connection).await?;
                topic_with_leaders(&seen, topic)?;
            }
            Ok(ready)
        })
        .await
    }

    // ----- Leadership and reassignment -----

    /// ElectLeaders (preferred): moves leadership of the given partitions (`None`: every
    /// partition) back to their preferred replica where it is in sync.
    pub async fn elect_preferred_leaders(
        &self,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, ElectionOutcome>, AdminError> {
        let topic_partitions = partitions.map(|ps| {
            group_by_topic(ps)
                .into_iter()
                .map(|(topic, indexes)| {
                    kp::elect_leaders_request::TopicPartitions::default()
                        .with_topic(kp_topic(&topic))
                        .with_partitions(indexes)
                })
                .collect()
        });
        let request = kp::ElectLeadersRequest::default()
            .with_election_type(0)
            .with_topic_partitions(topic_partitions)
            .with_timeout_ms(self.timeout_ms());
        self.retrying("ElectLeaders", self.api_timeout(), || async {
            let response = self.call(Route::Controller, &request).await?;
            broker_error("ElectLeaders", "the cluster", response.error_code, None)?;
            let mut out = BTreeMap::new();
            for topic in &response.replica_election_results {
                let name = topic_name(&topic.topic, "ElectLeaders")?;
                for p in &topic.partition_result {
                    let outcome = match KafkaErrorCode::from_code(p.error_code) {
                        None => ElectionOutcome::Elected,
                        Some(KafkaErrorCode::ElectionNotNeeded) => ElectionOutcome::NotNeeded,
                        Some(error) => ElectionOutcome::Failed {
                            error,
                            message: p.error_message.as_ref().map(|m| m.to_string()),
                        },
                    };
                    out.insert(TopicPartition::new(name.clone(), p.partition_id), outcome);
                }
            }
            Ok(out)
        })
        .await
    }

    /// AlterPartitionReassignments: for each partition, the new replica list, or `None` to
    /// cancel an ongoing reassignment. Returns once the controller accepted the change; the
    /// data moves in the background (see [`AdminClient::list_partition_reassignments`]).
    pub async fn alter_partition_reassignments(
        &self,
        changes: &[ReassignmentChange],
    ) -> Result<(), AdminError> {
        let mut topics: BTreeMap<&TopicName, Vec<&ReassignmentChange>> = BTreeMap::new();
        for change in changes {
            topics.entry(&change.0.topic).or_default().push(change);
        }
        let request = kp::AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(
                topics
                    .into_iter()
                    .map(|(topic, changes)| {
                        kp::alter_partition_reassignments_request::ReassignableTopic::default()
                            .with_name(kp_topic(topic))
                            .with_partitions(
                                changes
                                    .iter()
                                    .map(|(tp, replicas)| {
                                        kp::alter_partition_reassignments_request::ReassignablePartition::default()
                                            .with_partition_index(tp.partition)
                                            .with_replicas(replicas.as_ref().map(|r| {
                                                r.iter().map(|b| kp::BrokerId(b.0)).collect()
                                            }))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        self.retrying(
            "AlterPartitionReassignments",
            self.api_timeout(),
            || async {
                let response = self.call(Route::Controller, &request).await?;
                broker_error(
                    "AlterPartitionReassignments",
                    "the cluster",
                    response.error_code,
                    response.error_message.as_ref(),
                )?;
                for topic in &response.responses {
                    for p in &topic.partitions {
                        broker_error(
                            "AlterPartitionReassignments",
                            format!("{}-{}", topic.name.0, p.partition_index),
                            p.error_code,
                            p.error_message.as_ref(),
                        )?;
                    }
                }
                Ok(())
            },
        )
        .await
    }

    /// ListPartitionReassignments: every reassignment in progress.
    pub async fn list_partition_reassignments(
        &self,
    ) -> Result<Vec<PartitionReassignment>, AdminError> {
        let request = kp::ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(None);
        self.retrying("ListPartitionReassignments", self.api_timeout(), || async {
            let response = self.call(Route::Controller, &request).await?;
            broker_error(
                "ListPartitionReassignments",
                "the cluster",
                response.error_code,
                response.error_message.as_ref(),
            )?;
            let mut out = Vec::new();
            for topic in &response.topics {
                let name = topic_name(&topic.name, "ListPartitionReassignments")?;
                for p in &topic.partitions {
                    out.push(PartitionReassignment {
                        topic_partition: TopicPartition::new(name.clone(), p.partition_index),
                        replicas: brokers(&p.replicas),
                        adding: brokers(&p.adding_replicas),
                        removing: brokers(&p.removing_replicas),
                    });
                }
            }
            out.sort_by(|a, b| a.topic_partition.cmp(&b.topic_partition));
            Ok(out)
        })
        .await
    }

    // ----- Log dirs, offsets, quorum -----

    /// DescribeLogDirs on one broker: its log directories with replica sizes.
    pub async fn describe_log_dirs(&self, broker: BrokerId) -> Result<Vec<LogDir>, AdminError> {
        self.describe_log_dirs_within(broker, self.api_timeout(), u32::MAX)
            .await
    }

    pub(crate) async fn describe_log_dirs_within(
        &self,
        broker: BrokerId,
        budget: Duration,
        max_attempts: u32,
    ) -> Result<Vec<LogDir>, AdminError> {
        let request = kp::DescribeLogDirsRequest::default().with_topics(None);
        self.retrying_at_most("DescribeLogDirs", budget, max_attempts, || async {
            let response = self.call(Route::Broker(broker), &request).await?;
            broker_error(
                "DescribeLogDirs",
                format!("broker {broker}"),
                response.error_code,
                None,
            )?;
            let mut dirs = Vec::new();
            for result in &response.results {
                let mut replicas = Vec::new();
                for topic in &result.topics {
                    let name = topic_name(&topic.name, "DescribeLogDirs")?;
                    for p in &topic.partitions {
                        replicas.push(ReplicaLog {
                            topic_partition: TopicPartition::new(name.clone(), p.partition_index),
                            size_bytes: u64::try_from(p.partition_size).unwrap_or(0),
                            offset_lag: p.offset_lag,
                            is_future: p.is_future_key,
                        });
                    }
                }
                replicas.sort_by(|a, b| a.topic_partition.cmp(&b.topic_partition));
                dirs.push(LogDir {
                    path: result.log_dir.to_string(),
                    error: KafkaErrorCode::from_code(result.error_code)
                        .map(|e| e.name().to_string()),
                    total_bytes: u64::try_from(result.total_bytes).ok(),
                    usable_bytes: u64::try_from(result.usable_bytes).ok(),
                    replicas,
                });
            }
            Ok(dirs)
        })
        .await
    }

    /// ListOffsets: the earliest / latest / by-timestamp offset of each partition, asking each
    /// partition's leader.
    pub async fn list_offsets(
        &self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
    ) -> Result<BTreeMap<TopicPartition, i64>, AdminError> {
        self.retrying("ListOffsets", self.api_timeout(), || async {
            let mut by_leader: BTreeMap<BrokerId, Vec<&TopicPartition>> = BTreeMap::new();
            for tp in partitions {
                let leader = self.leader_of(tp).await?;
                by_leader.entry(leader).or_default().push(tp);
            }
            let mut tasks = tokio::task::JoinSet::new();
            for (leader, tps) in by_leader {
                let client = self.clone();
                let request = kp::ListOffsetsRequest::default()
                    .with_replica_id(kp::BrokerId(-1))
                    .with_isolation_level(0)
                    .with_timeout_ms(self.timeout_ms())
                    .with_topics(
                        group_by_topic(&tps.iter().map(|tp| (*tp).clone()).collect::<Vec<_>>())
                            .into_iter()
                            .map(|(topic, indexes)| {
                                kp::list_offsets_request::ListOffsetsTopic::default()
                                    .with_name(kp_topic(&topic))
                                    .with_partitions(
                                        indexes
                                            .into_iter()
                                            .map(|i| {
                                                kp::list_offsets_request::ListOffsetsPartition::default()
                                                    .with_partition_index(i)
                                                    .with_timestamp(spec.wire())
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    );
                tasks.spawn(async move { client.call(Route::Broker(leader), &request).await });
            }
            let mut out = BTreeMap::new();
            while let Some(joined) = tasks.join_next().await {
                let response = joined.map_err(|e| AdminError::InvalidResponse {
                    operation: "ListOffsets",
                    message: format!("task failed: {e}"),
                })??;
                for topic in &response.topics {
                    let name = topic_name(&topic.name, "ListOffsets")?;
                    for p in &topic.partitions {
                        let tp = TopicPartition::new(name.clone(), p.partition_index);
                        broker_error("ListOffsets", &tp, p.error_code, None)?;
                        out.insert(tp, p.offset);
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    /// DescribeQuorum: the KRaft metadata quorum (active controller, voters, observers and
    /// their replication progress).
    pub async fn describe_quorum(&self) -> Result<QuorumState, AdminError> {
        self.describe_quorum_within(self.api_timeout(), u32::MAX)
            .await
    }

    pub(crate) async fn describe_quorum_within(
        &self,
        budget: Duration,
        max_attempts: u32,
    ) -> Result<QuorumState, AdminError> {
        use kp::describe_quorum_request::{PartitionData, TopicData};
        let request = kp::DescribeQuorumRequest::default().with_topics(vec![
            TopicData::default()
                .with_topic_name(kp::TopicName(StrBytes::from_static_str(
                    "__cluster_metadata",
                )))
                .with_partitions(vec![PartitionData::default().with_partition_index(0)]),
        ]);
        self.retrying_at_most("DescribeQuorum", budget, max_attempts, || async {
            let response = self.call(Route::Any, &request).await?;
            broker_error(
                "DescribeQuorum",
                "__cluster_metadata",
                response.error_code,
                response.error_message.as_ref(),
            )?;
            let partition = response
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .next()
                .ok_or_else(|| AdminError::InvalidResponse {
                    operation: "DescribeQuorum",
                    message: "no partition in the response".to_string(),
                })?;
            broker_error(
                "DescribeQuorum",
                "__cluster_metadata-0",
                partition.error_code,
                partition.error_message.as_ref(),
            )?;
            let replica = |r: &kp::describe_quorum_response::ReplicaState| QuorumReplica {
                id: NodeId(r.replica_id.0),
                log_end_offset: (r.log_end_offset >= 0).then_some(r.log_end_offset),
                last_fetch_timestamp_ms: (r.last_fetch_timestamp >= 0)
                    .then_some(r.last_fetch_timestamp),
                last_caught_up_timestamp_ms: (r.last_caught_up_timestamp >= 0)
                    .then_some(r.last_caught_up_timestamp),
            };
            Ok(QuorumState {
                leader: (partition.leader_id.0 >= 0).then_some(NodeId(partition.leader_id.0)),
                leader_epoch: partition.leader_epoch,
                high_watermark: partition.high_watermark,
                voters: partition.current_voters.iter().map(replica).collect(),
                observers: partition.observers.iter().map(replica).collect(),
            })
        })
        .await
    }

    /// The API versions negotiated with one broker for the APIs this client uses:
    /// `(api, chosen version, broker's max)`.
    pub async fn negotiated_versions(
        &self,
        broker: BrokerId,
    ) -> Result<Vec<(String, i16, i16)>, AdminError> {
        let connection = self.route(Route::Broker(broker)).await?;
        fn row<R: Request>(c: &Connection) -> Option<(String, i16, i16)> {
            let api = ApiKey::try_from(R::KEY).ok()?;
            let chosen = c.version_for::<R>().ok()?;
            Some((format!("{api:?}"), chosen, c.broker_versions(api)?.max))
        }
        Ok([
            row::<kp::ApiVersionsRequest>(&connection),
            row::<kp::MetadataRequest>(&connection),
            row::<kp::DescribeClusterRequest>(&connection),
            row::<kp::DescribeConfigsRequest>(&connection),
            row::<kp::IncrementalAlterConfigsRequest>(&connection),
            row::<kp::CreateTopicsRequest>(&connection),
            row::<kp::DeleteTopicsRequest>(&connection),
            row::<kp::ElectLeadersRequest>(&connection),
            row::<kp::AlterPartitionReassignmentsRequest>(&connection),
            row::<kp::ListPartitionReassignmentsRequest>(&connection),
            row::<kp::DescribeLogDirsRequest>(&connection),
            row::<kp::ListOffsetsRequest>(&connection),
            row::<kp::DescribeQuorumRequest>(&connection),
            row::<kp::ProduceRequest>(&connection),
            row::<kp::InitProducerIdRequest>(&connection),
            row::<kp::DescribeProducersRequest>(&connection),
            row::<kp::SaslHandshakeRequest>(&connection),
            row::<kp::SaslAuthenticateRequest>(&connection),
        ]
        .into_iter()
        .flatten()
        .collect())
    }

    /// Closes every pooled connection.
    pub fn close(&self) {
        let pool = std::mem::take(&mut *self.inner.pool.lock().unwrap_or_else(|e| e.into_inner()));
        for slot in pool.into_values() {
            if let Ok(guard) = slot.try_lock()
                && let Some(connection) = guard.as_ref()
            {
                connection.close("client closed");
            }
        }
    }
}

fn metadata_from_response(response: kp::MetadataResponse) -> Result<ClusterMetadata, AdminError> {
    broker_error("Metadata", "the cluster", response.error_code, None)?;
    let mut brokers = BTreeMap::new();
    for b in &response.brokers {
        let id = BrokerId(b.node_id.0);
        brokers.insert(
            id,
            BrokerInfo {
                id,
                host: b.host.to_string(),
                port: port(b.port, "Metadata")?,
                rack: b.rack.as_ref().map(|r| r.to_string()),
            },
        );
    }
    let mut topics = BTreeMap::new();
    for t in &response.topics {
        let Some(raw_name) = &t.name else { continue };
        if t.error_code != 0 {
            // Topics being created or deleted can carry errors; leave them out.
            if let Some(error) = KafkaErrorCode::from_code(t.error_code) {
                warn!(topic = %raw_name.0, %error, "topic left out of metadata");
            }
            continue;
        }
        let name = topic_name(raw_name, "Metadata")?;
        let mut partitions = BTreeMap::new();
        for p in &t.partitions {
            partitions.insert(
                p.partition_index,
                PartitionState {
                    partition: p.partition_index,
                    leader: broker_id(p.leader_id),
                    leader_epoch: p.leader_epoch,
                    replicas: brokers_of(&p.replica_nodes),
                    isr: brokers_of(&p.isr_nodes),
                    offline_replicas: brokers_of(&p.offline_replicas),
                },
            );
        }
        let topic_id = (!t.topic_id.is_nil()).then(|| topic_id_string(t.topic_id.as_bytes()));
        topics.insert(
            name.clone(),
            TopicMetadata {
                name,
                topic_id,
                internal: t.is_internal,
                partitions,
            },
        );
    }
    Ok(ClusterMetadata {
        cluster_id: response.cluster_id.map(|c| c.to_string()),
        controller: broker_id(response.controller_id),
        brokers,
        topics,
    })
}

/// Kafka prints topic ids as URL-safe base64 without padding.
fn topic_id_string(bytes: &[u8; 16]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn port(port: i32, operation: &'static str) -> Result<u16, AdminError> {
    u16::try_from(port).map_err(|_| AdminError::InvalidResponse {
        operation,
        message: format!("broker port {port} out of range"),
    })
}

fn broker_id(id: kp::BrokerId) -> Option<BrokerId> {
    (id.0 >= 0).then_some(BrokerId(id.0))
}

fn brokers_of(ids: &[kp::BrokerId]) -> Vec<BrokerId> {
    ids.iter().map(|b| BrokerId(b.0)).collect()
}

fn brokers(ids: &[kp::BrokerId]) -> Vec<BrokerId> {
    brokers_of(ids)
}

pub(crate) fn kp_topic(topic: &TopicName) -> kp::TopicName {
    kp::TopicName(StrBytes::from_string(topic.to_string()))
}

pub(crate) fn topic_name(
    name: &kp::TopicName,
    operation: &'static str,
) -> Result<TopicName, AdminError> {
    TopicName::new(name.0.as_str()).map_err(|e| AdminError::InvalidResponse {
        operation,
        message: e.to_string(),
    })
}

/// `topic` in `metadata` when it has partitions and each has a leader; else the retriable
/// error that says what is missing.
fn topic_with_leaders<'a>(
    metadata: &'a ClusterMetadata,
    topic: &TopicName,
) -> Result<&'a TopicMetadata, AdminError> {
    let Some(t) = metadata.topics.get(topic) else {
        return Err(AdminError::Broker {
            operation: "Metadata",
            resource: format!("topic {topic}"),
            error: KafkaErrorCode::UnknownTopicOrPartition,
            message: None,
        });
    };
    if let Some(p) = t.partitions.values().find(|p| p.leader.is_none()) {
        return Err(AdminError::NoLeader {
            partition: TopicPartition::new(topic.clone(), p.partition),
        });
    }
    if t.partitions.is_empty() {
        return Err(AdminError::Broker {
            operation: "Metadata",
            resource: format!("topic {topic}"),
            error: KafkaErrorCode::LeaderNotAvailable,
            message: None,
        });
    }
    Ok(t)
}

fn group_by_topic(partitions: &[TopicPartition]) -> BTreeMap<TopicName, Vec<i32>> {
    let mut out: BTreeMap<TopicName, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        out.entry(tp.topic.clone()).or_default().push(tp.partition);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(operation: &'static str, error: KafkaErrorCode) -> String {
        AdminError::Broker {
            operation,
            resource: "broker 2".to_string(),
            error,
            message: None,
        }
        .to_string()
    }

    #[test]
    fn an_authorization_failure_names_the_missing_acl() {
        let text = broker(
            "DescribeConfigs",
            KafkaErrorCode::ClusterAuthorizationFailed,
        );
        assert!(
            text.starts_with("DescribeConfigs for broker 2 failed: CLUSTER_AUTHORIZATION_FAILED")
                && text.contains("needs the DescribeConfigs ACL on the cluster"),
            "{text}"
        );
        let text = broker(
            "IncrementalAlterConfigs",
            KafkaErrorCode::TopicAuthorizationFailed,
        );
        assert!(
            text.contains("needs the AlterConfigs ACL on the topic"),
            "{text}"
        );
        let text = broker(
            "DescribeLogDirs",
            KafkaErrorCode::ClusterAuthorizationFailed,
        );
        assert!(
            text.contains("needs the Describe ACL on the cluster"),
            "{text}"
        );
        let text = broker("DescribeConfigs", KafkaErrorCode::NotController);
        assert!(!text.contains("ACL"), "{text}");
    }
}
