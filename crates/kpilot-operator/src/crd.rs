//! The `KafkaAutopilot` custom resource (`kpilot.io/v1alpha1`): its spec (what to manage and
//! within which limits) and its status (what was measured, decided and done), with the CRD
//! generated from these types. Pure: types and serialization only.

use kube::CustomResource;
use kube::CustomResourceExt as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of the CRD.
pub const GROUP: &str = "kpilot.io";
/// The file name of the committed CRD (under `deploy/crds/`).
pub const CRD_FILE: &str = "kafkaautopilots.kpilot.io.yaml";

/// Keeps one Kafka cluster at the right size: observes its load, decides with the same policy
/// as `kpilot simulate`, and (in `apply` mode) resizes it with zero downtime.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "kpilot.io",
    version = "v1alpha1",
    kind = "KafkaAutopilot",
    plural = "kafkaautopilots",
    shortname = "kap",
    namespaced,
    status = "KafkaAutopilotStatus",
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
    printcolumn = r#"{"name":"Shape","type":"string","jsonPath":".status.currentShape.label"}"#,
    printcolumn = r#"{"name":"Decision","type":"string","jsonPath":".status.lastDecision.summary"}"#,
    printcolumn = r#"{"name":"Operation","type":"string","jsonPath":".status.operation.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaAutopilotSpec {
    /// The Kubernetes objects that run the brokers: exactly one of `strimzi` or `statefulSet`.
    pub target: TargetSpec,
    /// How the operator reaches Kafka (admin protocol: metadata, ISR, log sizes, elections).
    pub kafka: KafkaSpec,
    /// Where the load is measured.
    #[serde(default)]
    pub metrics: MetricsSpec,
    /// `observe` (measure and report), `recommend` (also decide and report the decision) or
    /// `apply` (also carry the decision out). Default `recommend`.
    #[serde(default)]
    pub mode: Mode,
    /// What the policy may choose from.
    pub constraints: ConstraintsSpec,
    /// How the policy decides.
    #[serde(default)]
    pub policy: PolicySpec,
    /// When changes may start (UTC). Empty: any time. An operation already running continues
    /// outside the windows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub maintenance_windows: Vec<MaintenanceWindow>,
    /// Pause: keep observing and reporting, start nothing, and hold an operation in progress
    /// before its next broker.
    #[serde(default)]
    pub paused: bool,
}

/// The brokers' Kubernetes objects.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct TargetSpec {
    /// A Strimzi cluster: the `Kafka` resource and the `KafkaNodePool` of its brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strimzi: Option<StrimziTarget>,
    /// A StatefulSet with `updateStrategy: OnDelete`: the operator rolls its pods itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stateful_set: Option<StatefulSetTarget>,
}

/// A Strimzi-managed cluster (same namespace as the autopilot).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StrimziTarget {
    /// Name of the `Kafka` resource, e.g. `my-cluster`.
    pub kafka: String,
    /// Name of the `KafkaNodePool` of the brokers, e.g. `brokers`.
    pub node_pool: String,
    /// Name of the Karpenter `NodePool` (cluster-scoped) whose instance-type requirement
    /// follows the brokers' instance type, if Karpenter provisions the nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub karpenter_node_pool: Option<String>,
}

/// A plain StatefulSet (same namespace as the autopilot).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetTarget {
    /// Name of the StatefulSet, e.g. `kafka`.
    pub name: String,
    /// Broker id of pod ordinal 0 (pod `<name>-i` runs broker `firstBrokerId + i`). Default 0.
    #[serde(default)]
    pub first_broker_id: i32,
    /// Name of the Karpenter `NodePool` whose instance-type requirement follows the brokers'
    /// instance type, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub karpenter_node_pool: Option<String>,
}

/// How to reach Kafka.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSpec {
    /// Bootstrap servers, e.g. `my-cluster-kafka-bootstrap:9093`.
    pub bootstrap: String,
    /// TLS to the brokers; absent: plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// SASL authentication; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<SaslSpec>,
}

/// A key of a Secret in the autopilot's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    pub name: String,
    /// The key, e.g. `ca.crt`.
    pub key: String,
}

/// TLS settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// PEM CA certificates to trust (e.g. Strimzi's `<cluster>-cluster-ca-cert`, key
    /// `ca.crt`); absent: the system trust store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<SecretKeyRef>,
    /// Check that the certificate names the host connected to. Default true.
    #[serde(default = "yes")]
    pub verify_hostname: bool,
}

fn yes() -> bool {
    true
}

/// SASL settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SaslSpec {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    /// The user name.
    pub username: String,
    /// The Secret key holding the password.
    pub password_secret: SecretKeyRef,
}

/// Where the load comes from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSpec {
    /// Prometheus base URL (plain HTTP, e.g. `http://prometheus.monitoring:9090`): the
    /// ingress is read from the brokers' `BytesInPerSec` counters and the forecast from their
    /// history (`history`), so decisions start at once and survive operator restarts.
    /// Absent: Kafka only (ingress from the growth of the partitions' log sizes between
    /// observations, history kept in status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_url: Option<String>,
    /// Label matchers added to every query, to pick this cluster's brokers, e.g.
    /// `namespace="kafka",strimzi_io_cluster="my-cluster"` (no braces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The label that tells brokers apart (default `instance`; e.g. `pod`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker_label: Option<String>,
    /// The counter of producer bytes in (default
    /// `kafka_server_brokertopicmetrics_bytesin_total`, as the JMX exporter's Kafka rules and
    /// Strimzi's example metrics config name it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_in_metric: Option<String>,
    /// The averaging window of a measurement and the step of the history (default `5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// How far back the forecast reads the ingress from Prometheus (default `28d`, at most
    /// 35 days: four weeks of weekly seasonality).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<String>,
}

/// What the operator does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Measure and report the load, limits and headroom; no decision.
    Observe,
    /// Also decide and report the decision (status and an Event); change nothing.
    #[default]
    Recommend,
    /// Also carry decisions out: vertical rolls and adding or removing brokers.
    Apply,
}

impl Mode {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Observe => "observe",
            Mode::Recommend => "recommend",
            Mode::Apply => "apply",
        }
    }
}

/// Per-broker storage (kept through every move).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// `gp3`, `io2`, `st1` or `local-nvme`.
    pub kind: String,
    /// Volume size per broker, GB (ignored for `local-nvme`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_gb: Option<f64>,
    /// Provisioned throughput per volume (gp3, io2), e.g. `250MB/s`; absent: the volume
    /// type's included baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<String>,
}

/// What the policy may choose from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConstraintsSpec {
    /// The brokers' instance type now, when the target does not say (no
    /// `node.kubernetes.io/instance-type` node affinity or selector), e.g. `m7g.large`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Allowed instance families, e.g. `[m7g, r7g]`; empty: the current family.
    #[serde(default)]
    pub families: Vec<String>,
    /// Allowed sizes, e.g. `[large, xlarge, 2xlarge]`; empty: all.
    #[serde(default)]
    pub sizes: Vec<String>,
    /// Per-broker storage.
    pub storage: StorageSpec,
    /// Fewest brokers. Default 3.
    #[serde(default = "three")]
    pub min_brokers: u32,
    /// Most brokers, at most 1000. Default 30.
    #[serde(default = "thirty")]
    pub max_brokers: u32,
    /// Availability zones: broker counts are multiples of it. Default 3.
    #[serde(default = "three")]
    pub zones: u32,
    /// Largest fraction of a disk the data may fill. Default 0.8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_disk_fill: Option<f64>,
    /// How long data stays on the brokers' disks (with tiered storage: the local
    /// retention), e.g. `7d`; then a shape must also hold the data that ingress writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_retention: Option<String>,
    /// Allow instance-type rolls. Default true.
    #[serde(default = "yes")]
    pub allow_vertical: bool,
    /// Allow adding and removing brokers. Default true.
    #[serde(default = "yes")]
    pub allow_horizontal: bool,
}

fn three() -> u32 {
    3
}

fn thirty() -> u32 {
    30
}

/// Policy settings; each absent field takes the policy's default.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct PolicySpec {
    /// Fraction of the sustained limit to run at, at most, e.g. 0.8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_utilization: Option<f64>,
    /// Smallest margin added to the forecast, e.g. 0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_margin: Option<f64>,
    /// How long a new shape must hold the forecast after its transition, e.g. `1h` (at most
    /// `7d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon: Option<String>,
    /// Time after a change before a move to a cheaper shape, e.g. `30m` (at most `7d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<String>,
    /// Smallest saving worth a move to a cheaper shape, e.g. 0.05.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hysteresis: Option<f64>,
    /// How often to observe and decide, e.g. `5m` (10 s to `1d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_interval: Option<String>,
    /// Longest transition the policy starts, e.g. `2h` (at most `7d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_transition: Option<String>,
    /// Consumer fan-out (egress / ingress) when it is not measured. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_fanout: Option<f64>,
    /// How long a broker is out in a roll before it catches up (stop, new node, start), e.g.
    /// `4m` (at most `1d`). Absent: learned from this autopilot's own rolls (the longest of the
    /// last six brokers measured, see `status.restarts`), 3m until a roll has been measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_time: Option<String>,
}

/// A weekly window in which changes may start (UTC).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindow {
    /// Days, e.g. `[Sat, Sun]`; empty: every day.
    #[serde(default)]
    pub days: Vec<String>,
    /// Start time, `HH:MM` UTC, e.g. `22:00`.
    pub start: String,
    /// Length, e.g. `4h`.
    pub duration: String,
}

/// What the operator measured, decided and did.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct KafkaAutopilotStatus {
    /// The spec generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The shape running now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_shape: Option<ShapeStatus>,
    /// The load measured last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadStatus>,
    /// What the current shape sustains and the headroom left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsStatus>,
    /// The forecast behind the last decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastStatus>,
    /// The last decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<DecisionStatus>,
    /// The operation in progress (or the last one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationStatus>,
    /// When the last change finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change_finished: Option<String>,
    /// Broker restarts measured in this autopilot's rolls, and the restart time the policy
    /// plans rolls with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarts: Option<RestartStatus>,
    /// Data moves measured in this autopilot's horizontal operations and local-disk
    /// rebuilds, the throttle moves are planned and run at, and the share of it the policy
    /// plans with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moves: Option<MoveStatus>,
    /// Recent demand samples (bounded), kept so a restarted operator keeps its history.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<DemandSample>,
    /// Conditions: `Valid`, `Ready`, `Progressing`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The last error, if the last reconcile failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// The restart time the policy plans a roll with, and the restarts it was learned from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RestartStatus {
    /// How long the policy takes a broker to be out in a roll, seconds.
    pub seconds: f64,
    /// Where that comes from: `spec.policy.restartTime`, the measured restarts, or the
    /// default while none is measured.
    pub source: String,
    /// The latest restarts measured in completed rolls, oldest first (at most 12).
    #[serde(default)]
    pub measured: Vec<MeasuredRestart>,
}

/// One broker's restart in a roll: graceful stop, new node and start, up to registered and
/// unfenced (the catch-up that follows is not in it).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeasuredRestart {
    /// The broker.
    pub broker_id: i32,
    /// When the roll it was part of started (RFC 3339, the operation's `startedAt`): with the
    /// broker id it names one restart, so a roll recorded when it halts and again when it
    /// completes counts each broker once.
    pub at: String,
    /// How long it was out, seconds.
    pub seconds: f64,
    /// The instance type it came back on.
    pub instance_type: String,
}

/// The share of the replication throttle the policy plans data moves at, and the moves it
/// was learned from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct MoveStatus {
    /// The share of the throttle reassignments and rebuilds are planned at (1 = the throttle).
    pub share: f64,
    /// Where that comes from: the measured moves, or the default while none is measured.
    pub source: String,
    /// The replication throttle per receiving broker, bytes per second, that the last
    /// decision planned reassignments and rebuilds at: the one the operator sets when it
    /// runs them (from the capacity model's headroom at the ingress measured, capped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_bytes_per_s: Option<u64>,
    /// Where the throttle comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_source: Option<String>,
    /// The latest moves measured in completed horizontal operations and in the rebuilds of
    /// rolls onto local disks, oldest first (at most 12).
    #[serde(default)]
    pub measured: Vec<MeasuredMove>,
}

/// One horizontal operation's data move, timed from the start of its rebalance to its end
/// (the throttle set and removed, preferred leaders elected), or one broker's rebuild in a
/// roll onto local disks, timed over its catch-up (registered to back in every ISR).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeasuredMove {
    /// When the operation started (RFC 3339, the operation's `startedAt`; for a rebuild,
    /// when its broker's turn in the roll began): it names the move.
    pub at: String,
    /// `horizontal-add`, `horizontal-remove` or `rebuild`.
    pub kind: String,
    /// Bytes moved.
    pub bytes: u64,
    /// How long the rebalance took, seconds.
    pub seconds: f64,
    /// The replication throttle per broker, bytes per second.
    pub throttle_bytes_per_s: u64,
    /// The brokers receiving the data (the added ones, the ones staying, or the rebuilt one).
    pub receivers: u32,
    /// The rate reached over the planned one (the throttle times the receivers).
    pub share: f64,
}

/// A shape.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShapeStatus {
    /// Human label, e.g. `3 x m7g.large, gp3 1000 GB, 125 MB/s`.
    pub label: String,
    /// Instance type.
    pub instance_type: String,
    /// Broker count.
    pub brokers: u32,
    /// Hourly cost, USD.
    pub usd_per_hour: f64,
}

/// The measured load.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadStatus {
    /// When (RFC 3339).
    pub measured_at: String,
    /// Produce ingress, MB/s (absent until two observations exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_mb_per_s: Option<f64>,
    /// Data stored, all replicas, GB.
    pub stored_gb: f64,
    /// Replication factor (largest over the topics).
    pub replication_factor: u16,
    /// Under-replicated partitions.
    pub under_replicated_partitions: u32,
    /// Where it was measured: `kafka` or `prometheus`.
    pub source: String,
    /// Why the ingress is absent (e.g. no such series in Prometheus, stale samples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_problem: Option<String>,
    /// Consumer egress, MB/s (Prometheus' bytes-out counters, or the consumer groups'
    /// committed offsets since the previous observation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_mb_per_s: Option<f64>,
    /// The consumer fan-out (egress / ingress) the limits and the decision use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fanout: Option<f64>,
    /// Where the fan-out comes from: `measured` (the highest egress / ingress over the last
    /// day of history) or `spec` (`policy.consumerFanout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fanout_source: Option<String>,
    /// Where replication throttles are set although no reassignment runs, e.g. `broker 2,
    /// topic orders`: left behind by an interrupted reassignment tool, they slow the replicas
    /// they name whenever those catch up. Remove them (`kpilot rebalance --cancel` for a kpilot
    /// run, else kafka-configs --alter --delete-config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttles_left_behind: Option<String>,
}

/// Limits of the current shape.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitsStatus {
    /// Ingress the shape holds within target (with one broker down), MB/s.
    pub holds_mb_per_s: f64,
    /// Headroom left: 1 - ingress / holds (absent without an ingress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headroom: Option<f64>,
}

/// The forecast.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForecastStatus {
    /// Method: seasonal or reactive.
    pub method: String,
    /// Peak over the forecast, MB/s.
    pub peak_mb_per_s: f64,
    /// Margin applied.
    pub margin: f64,
    /// Where the demand history came from: `prometheus` (range queries) or `status` (the
    /// operator's own samples in `status.history`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_source: Option<String>,
    /// Demand samples the forecast was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_samples: Option<u32>,
}

/// A decision.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionStatus {
    /// When (RFC 3339).
    pub at: String,
    /// `keep` or `change`.
    pub action: String,
    /// One line, e.g. `keep 3 x m7g.large` or `vertical-roll to 3 x m7g.xlarge`.
    pub summary: String,
    /// How (for a change): `vertical-roll`, `add-brokers`, `remove-brokers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<String>,
    /// Target shape (for a change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<ShapeStatus>,
    /// Why, one line per reason.
    #[serde(default)]
    pub reasons: Vec<String>,
    /// What was done with it: `reported`, `applied`, or why not (paused, outside the
    /// maintenance windows, horizontal not supported yet, mode).
    pub disposition: String,
    /// The shapes the policy evaluated, cheapest first, with its verdict on each: why it chose
    /// this shape and not another. Shapes it did not need to evaluate (more expensive than
    /// the move it found) are left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub considered: Vec<CandidateStatus>,
}

/// A shape the policy evaluated in a decision.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CandidateStatus {
    /// The shape, e.g. `3 x m7g.xlarge, gp3 2800 GB, 524 MB/s`.
    pub shape: String,
    /// How it would be reached: `vertical-roll`, `add-brokers`, `remove-brokers`.
    pub mechanism: String,
    /// Its cost, USD per hour (instances and volumes).
    pub usd_per_hour: f64,
    /// The ingress it is kept at, MB/s.
    pub holds_mb_per_s: f64,
    /// How long the move would take, minutes (when the policy planned it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_minutes: Option<f64>,
    /// `feasible`, or why not (e.g. `unsafe during: ...`, `too slow: ...`).
    pub verdict: String,
}

/// An operation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationStatus {
    /// `vertical-strimzi`, `vertical-statefulset`, `horizontal-add` or `horizontal-remove`.
    pub kind: String,
    /// Instance type before.
    pub from_instance_type: String,
    /// Instance type after.
    pub to_instance_type: String,
    /// `Running`, `Paused`, `Completed` or `Halted`.
    pub phase: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Last progress message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Per-broker progress.
    #[serde(default)]
    pub brokers: Vec<BrokerProgress>,
    /// The durable record a restarted operator resumes from (JSON): the roll journal
    /// (`kpilot-roll`'s format) of a StatefulSet roll, or the rebalance journal
    /// (`kpilot-reassign`'s format) of a horizontal operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<String>,
    /// Broker count before a horizontal operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_brokers: Option<u32>,
    /// Broker count after a horizontal operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_brokers: Option<u32>,
    /// The replication throttle around a Strimzi roll onto local disks, where every restarted
    /// broker rebuilds its data: recorded before it is set, so a restarted operator lifts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuild_throttle: Option<RebuildThrottleStatus>,
}

/// The replication throttle the operator set for the rebuilds of a roll it does not run itself
/// (Strimzi restarts the pods): both rates on every broker, `*` as the throttled replica lists
/// of every topic, from before the first pod moves until every partition is back in sync.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RebuildThrottleStatus {
    /// Bytes per second, per broker, each way.
    pub bytes_per_s: u64,
    /// The brokers whose rates are set.
    pub brokers: Vec<i32>,
    /// The topics whose replica lists are set.
    pub topics: Vec<String>,
    /// When it was set on all of them (RFC 3339); absent while a reconcile that stopped
    /// midway may have set only some (the next one sets it again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_at: Option<String>,
    /// When it was lifted (RFC 3339); absent while it is (or may be) set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifted_at: Option<String>,
    /// Each broker's rebuild as the operator's polls saw it, timed into `status.moves`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rebuilds: Vec<StrimziRebuild>,
    /// Configs of the throttle someone else set to another value during the roll, as
    /// `"<resource> <key>"` (e.g. `broker 1 leader.replication.throttled.rate`): left as they
    /// are, and not removed when the throttle is lifted. One that is removed again is set
    /// again and leaves this list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub yielded: Vec<String>,
}

/// One broker's rebuild in a Strimzi roll onto local disks, from the first poll that saw its
/// pod Ready on the new type to the first that saw it back in every ISR.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StrimziRebuild {
    /// The broker.
    pub broker_id: i32,
    /// When the poll saw its pod Ready on the new type (RFC 3339, milliseconds).
    pub started_at: String,
    /// What the broker stored then (DescribeLogDirs), bytes.
    pub bytes_at_start: u64,
    /// Seconds from `startedAt` until a poll saw it back in every ISR; absent until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Bytes it copied in that time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// One broker's progress.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerProgress {
    /// Broker id.
    pub id: i32,
    /// Phase, e.g. `pending`, `stopping`, `catching-up`, `done`.
    pub phase: String,
    /// Since when its pod has been seen down in a Strimzi roll (RFC 3339): the start of the
    /// restart measured when it is back on the new type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down_since: Option<String>,
}

/// One demand sample.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DemandSample {
    /// Unix seconds.
    pub t: i64,
    /// Ingress, MB/s.
    pub ingress_mb_per_s: f64,
    /// Consumer egress, MB/s, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_mb_per_s: Option<f64>,
}

/// A condition (the Kubernetes convention).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Valid`, `Ready` or `Progressing`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase reason, e.g. `InvalidSpec`.
    pub reason: String,
    /// Human message.
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The generation it was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The CRD as YAML (what `deploy/crds/kafkaautopilots.kpilot.io.yaml` holds).
pub fn crd_yaml() -> String {
    let crd = KafkaAutopilot::crd();
    let body = serde_saphyr::to_string(&crd).expect("a CRD always serializes to YAML");
    format!(
        "# Generated from crates/kpilot-operator/src/crd.rs by scripts/generate; do not edit.\n{body}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_names_and_status_subresource() {
        let crd = KafkaAutopilot::crd();
        assert_eq!(crd.spec.group, GROUP);
        assert_eq!(crd.spec.names.kind, "KafkaAutopilot");
        assert_eq!(crd.spec.versions[0].name, "v1alpha1");
        assert!(
            crd.spec.versions[0]
                .subresources
                .as_ref()
                .is_some_and(|s| s.status.is_some())
        );
        let yaml = crd_yaml();
        assert!(yaml.contains("kafkaautopilots.kpilot.io"), "{yaml}");
    }
}
