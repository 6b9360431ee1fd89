//! One reconcile of a `KafkaAutopilot`, in named steps: **validate** the spec (pure; an
//! invalid spec sets `Valid=False` and nothing else happens) -> **dereference** the target
//! (KafkaNodePool or StatefulSet) and the Secrets -> **continue** an operation in progress
//! (it always comes first: one operation at a time) -> **observe** Kafka -> **decide** with
//! `kpilot_policy::decide` (the same function `kpilot simulate` runs) -> **apply** (mode
//! `apply`, unpaused, inside a maintenance window, cluster healthy): record the operation in
//! the status *first*, then patch (a vertical roll) or hand over to `crate::horizontal`
//! (adding or removing brokers) -> **status** and Events. Performs Kubernetes API and Kafka
//! I/O through the context.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::jiff::Timestamp as JiffTimestamp;
use kpilot_capacity::{Catalog, Shape, Workload};
use kpilot_policy::{
    Action, ClusterState, DecisionInput, DemandHistory, FanoutSource, Sample, Timestamp, decide,
    holds,
};
use kpilot_roll::journal::{Journal, RollStatus};
use kpilot_roll::{RollEvent, RollOptions, Roller};
use kpilot_units::{InstanceType, Span, Throughput};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource as _, ResourceExt as _};
use serde_json::{Value, json};
use thiserror::Error;
use tracing::{info, warn};

use crate::crd::{
    CandidateStatus, Condition, DecisionStatus, DemandSample, ForecastStatus, KafkaAutopilot,
    KafkaAutopilotStatus, LimitsStatus, LoadStatus, OperationStatus, ShapeStatus,
};
use crate::fleet::{StatefulSetFleet, StatusJournal, StatusStore, pod_instance_type, pod_ready};
use crate::metrics::Metrics;
use crate::observe::{Connection, KafkaFacts, LoadHistory, ObserveError, Observer};
use crate::restarts::PodSeen;
use crate::target::{
    STRIMZI_PAUSE_ANNOTATION, karpenter_instance_types, karpenter_patch, node_pool_instance_type,
    node_pool_patch, pod_spec_instance_type, stateful_set_patch,
};
use crate::validate::{SpecError, Target, ValidSpec, validate};

/// Field manager of every write.
pub const FIELD_MANAGER: &str = "kpilot-operator";
/// Demand samples kept in the status: 48 hours at one sample per [`HISTORY_STEP_SECS`], so
/// the forecast learns the daily curve (it needs a day) whatever the decision interval.
pub const HISTORY_KEPT: usize = 576;
/// The status keeps at most one sample per this many seconds, the forecast's bin: decisions
/// closer together merge into it, keeping the higher rates.
pub const HISTORY_STEP_SECS: i64 = kpilot_policy::DEFAULT_BIN.secs() as i64;

/// Adds a measurement to the status history: into the last sample when both fall in the same
/// [`HISTORY_STEP_SECS`] step (its time becomes the newer one, its rates the higher ones: the
/// peak the reactive forecast reads is kept, while the step's mean is raised to it), otherwise
/// as a new sample; then drops the oldest beyond [`HISTORY_KEPT`].
pub fn record_sample(history: &mut Vec<DemandSample>, sample: DemandSample) {
    let step = |t: i64| t.div_euclid(HISTORY_STEP_SECS);
    match history.last_mut() {
        Some(last) if step(last.t) == step(sample.t) && sample.t >= last.t => {
            last.t = sample.t;
            last.ingress_mb_per_s = last.ingress_mb_per_s.max(sample.ingress_mb_per_s);
            last.egress_mb_per_s = match (last.egress_mb_per_s, sample.egress_mb_per_s) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
        }
        _ => history.push(sample),
    }
    let excess = history.len().saturating_sub(HISTORY_KEPT);
    history.drain(..excess);
}

/// Operation kinds.
const OP_STRIMZI: &str = "vertical-strimzi";
const OP_STATEFULSET: &str = "vertical-statefulset";

/// Why a reconcile failed (the spec was valid). Each variant names the action and object.
#[derive(Debug, Error)]
pub enum ReconcileError {
    /// A Kubernetes API call failed.
    #[error("{action} {object} failed: {source}")]
    Kube {
        /// What was being done.
        action: &'static str,
        /// The object.
        object: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The target object does not exist.
    #[error("{kind} {name} not found in namespace {namespace}; create it or fix spec.target")]
    TargetNotFound {
        /// Kind.
        kind: &'static str,
        /// Name.
        name: String,
        /// Namespace.
        namespace: String,
    },
    /// A Secret or key is missing.
    #[error("secret {name} has no key {key} (spec.kafka); create it or fix the reference")]
    Secret {
        /// The Secret.
        name: String,
        /// The key.
        key: String,
    },
    /// The instance type cannot be known.
    #[error(
        "cannot tell the brokers' instance type: {object} has no {label} node affinity; set spec.constraints.instanceType"
    )]
    UnknownInstanceType {
        /// The target object.
        object: String,
        /// The label looked for.
        label: &'static str,
    },
    /// The instance type is not in the catalog.
    #[error("the brokers run on {instance}, which the catalog does not know: {message}")]
    Catalog {
        /// The instance type.
        instance: String,
        /// The catalog's message.
        message: String,
    },
    /// The storage cannot be built.
    #[error("the storage of spec.constraints does not fit {instance}: {message}")]
    Storage {
        /// The instance type.
        instance: String,
        /// What is wrong.
        message: String,
    },
    /// Observing Kafka failed.
    #[error(transparent)]
    Observe(#[from] ObserveError),
    /// The policy refused to decide.
    #[error("the policy cannot decide: {0}")]
    Policy(String),
    /// The roll halted.
    #[error("the roll to {target} halted: {message}")]
    Roll {
        /// The target instance type.
        target: String,
        /// Why.
        message: String,
    },
    /// A horizontal operation (adding or removing brokers) halted.
    #[error(transparent)]
    Horizontal(#[from] crate::horizontal::HorizontalError),
    /// The cleanup of an autopilot being deleted could not finish.
    #[error("{message}")]
    Cleanup {
        /// What stopped it.
        message: String,
    },
}

impl ReconcileError {
    /// A short CamelCase reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Kube { .. } => "KubernetesApiError",
            ReconcileError::TargetNotFound { .. } => "TargetNotFound",
            ReconcileError::Secret { .. } => "SecretMissing",
            ReconcileError::UnknownInstanceType { .. } | ReconcileError::Catalog { .. } => {
                "UnknownInstanceType"
            }
            ReconcileError::Storage { .. } => "InvalidStorage",
            ReconcileError::Observe(ObserveError::Incomplete { .. }) => "KafkaPartlyVisible",
            ReconcileError::Observe(_) => "KafkaUnreachable",
            ReconcileError::Policy(_) => "PolicyError",
            ReconcileError::Roll { .. } => "RollHalted",
            ReconcileError::Horizontal(_) => "HorizontalHalted",
            ReconcileError::Cleanup { .. } => "CleanupFailed",
        }
    }

    /// The metric label of the step that failed.
    pub fn step(&self) -> &'static str {
        match self {
            ReconcileError::Kube { .. }
            | ReconcileError::TargetNotFound { .. }
            | ReconcileError::Secret { .. }
            | ReconcileError::UnknownInstanceType { .. }
            | ReconcileError::Catalog { .. }
            | ReconcileError::Storage { .. } => "dereference",
            ReconcileError::Observe(_) => "observe",
            ReconcileError::Policy(_) => "decide",
            ReconcileError::Roll { .. } | ReconcileError::Horizontal(_) => "apply",
            ReconcileError::Cleanup { .. } => "cleanup",
        }
    }
}

pub(crate) fn kube_err(
    action: &'static str,
    object: impl Into<String>,
) -> impl FnOnce(kube::Error) -> ReconcileError {
    let object = object.into();
    move |source| ReconcileError::Kube {
        action,
        object,
        source: Box::new(source),
    }
}

/// What the reconcile works with.
pub struct Context {
    /// The Kubernetes client.
    pub client: kube::Client,
    /// Instance types and prices.
    pub catalog: Catalog,
    /// How Kafka is observed.
    pub observer: Rc<dyn Observer>,
    /// Events.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Metrics,
    /// Bounds of the roll engine (StatefulSet rolls).
    pub roll: kpilot_roll::Settings,
    /// How long a pod may take to go or to come back Ready.
    pub pod_timeout: Duration,
    /// Requeue while an operation runs (Strimzi progress polling).
    pub busy_requeue: Duration,
    /// Bounds of horizontal operations (batches, throttle, executor pacing).
    pub rebalance: crate::horizontal::Settings,
}

/// The Strimzi `KafkaNodePool` resource.
pub fn node_pool_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kafka.strimzi.io", "v1", "KafkaNodePool"),
        "kafkanodepools",
    )
}

/// The Strimzi `Kafka` resource.
pub fn kafka_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kafka.strimzi.io", "v1", "Kafka"),
        "kafkas",
    )
}

/// The Karpenter `NodePool` resource (cluster-scoped).
pub fn karpenter_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("karpenter.sh", "v1", "NodePool"),
        "nodepools",
    )
}

/// Sets `status.restarts` to the restart time rolls are planned with (the spec's, else the
/// one learned from the rolls, else the default) and returns it.
fn plan_restart(status: &mut KafkaAutopilotStatus, spec: &ValidSpec) -> Span {
    crate::restarts::plan_with(
        &mut status.restarts,
        spec.restart_time,
        spec.settings.transition.restart,
    )
}

pub(crate) fn now_rfc3339() -> String {
    JiffTimestamp::now().to_string()
}

fn now_unix() -> i64 {
    JiffTimestamp::now().as_second()
}

/// When the pod's Ready condition last turned true, in Unix seconds.
fn ready_since(pod: &Pod) -> Option<i64> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0.as_second())
}

fn rfc3339_to_unix(s: &str) -> Option<i64> {
    s.parse::<JiffTimestamp>().ok().map(|t| t.as_second())
}

/// Sets a condition, keeping its transition time when the status did not change.
pub fn set_condition(
    status: &mut KafkaAutopilotStatus,
    type_: &str,
    value: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    let value = if value { "True" } else { "False" };
    let previous = status.conditions.iter().position(|c| c.type_ == type_);
    let time = match previous {
        Some(i) if status.conditions[i].status == value => {
            status.conditions[i].last_transition_time.clone()
        }
        _ => now_rfc3339(),
    };
    let c = Condition {
        type_: type_.to_owned(),
        status: value.to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
        last_transition_time: time,
        observed_generation: generation,
    };
    match previous {
        Some(i) => status.conditions[i] = c,
        None => status.conditions.push(c),
    }
}

/// The JSON merge patch writing `status` whole: absent optional fields become `null` so
/// that stale values are removed, at the top level and inside each object the status holds
/// (a merge patch merges nested objects key by key, so an absent key would keep its old value:
/// a stale ingress or a warning that no longer holds).
pub fn status_patch(status: &KafkaAutopilotStatus) -> Value {
    let mut value = serde_json::to_value(status).unwrap_or_else(|_| json!({}));
    if let Some(map) = value.as_object_mut() {
        for (key, fields) in status_fields() {
            let entry = map.entry(key.as_str()).or_insert(Value::Null);
            if let Some(object) = entry.as_object_mut() {
                for field in fields {
                    object.entry(field.as_str()).or_insert(Value::Null);
                }
            }
        }
    }
    json!({ "status": value })
}

/// The status' properties and, for those holding an object, that object's properties, from
/// the CRD's own schema: a field added to the status is cleared like the others without being
/// listed anywhere.
fn status_fields() -> &'static Vec<(String, Vec<String>)> {
    static FIELDS: std::sync::OnceLock<Vec<(String, Vec<String>)>> = std::sync::OnceLock::new();
    FIELDS.get_or_init(|| {
        use kube::CustomResourceExt as _;
        let crd = KafkaAutopilot::crd();
        let status = crd.spec.versions.iter().find_map(|v| {
            v.schema
                .as_ref()?
                .open_api_v3_schema
                .as_ref()?
                .properties
                .as_ref()?
                .get("status")
                .cloned()
        });
        status
            .and_then(|s| s.properties)
            .unwrap_or_default()
            .into_iter()
            .map(|(key, schema)| {
                let fields = schema
                    .properties
                    .map(|p| p.into_keys().collect())
                    .unwrap_or_default();
                (key, fields)
            })
            .collect()
    })
}

pub(crate) async fn write_status(
    api: &Api<KafkaAutopilot>,
    name: &str,
    status: &KafkaAutopilotStatus,
) -> Result<(), ReconcileError> {
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Merge(status_patch(status)),
    )
    .await
    .map(|_| ())
    .map_err(kube_err("writing the status of KafkaAutopilot", name))
}

pub(crate) async fn publish(
    ctx: &Context,
    ap: &KafkaAutopilot,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let reference = ap.object_ref(&());
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &reference).await {
        warn!(error = %e, reason, "could not publish an Event");
    }
}

/// Reconciles one autopilot; returns when to look again.
pub async fn reconcile(ap: &KafkaAutopilot, ctx: &Context) -> Result<Duration, ReconcileError> {
    let started = std::time::Instant::now();
    let span = tracing::info_span!(
        "reconcile",
        autopilot = %format!("{}/{}", ap.namespace().unwrap_or_default(), ap.name_any())
    );
    let result = tracing::Instrument::instrument(reconcile_inner(ap, ctx), span).await;
    ctx.metrics.observe_duration(started.elapsed());
    match &result {
        Ok(_) => ctx
            .metrics
            .inc("kpilot_reconciles_total", &[("result", "ok")]),
        Err(e) => {
            ctx.metrics
                .inc("kpilot_reconciles_total", &[("result", "error")]);
            ctx.metrics
                .inc("kpilot_errors_total", &[("step", e.step())]);
        }
    }
    result
}

async fn reconcile_inner(ap: &KafkaAutopilot, ctx: &Context) -> Result<Duration, ReconcileError> {
    let name = ap.name_any();
    let namespace = ap.namespace().unwrap_or_else(|| "default".to_owned());
    let api: Api<KafkaAutopilot> = Api::namespaced(ctx.client.clone(), &namespace);
    let generation = ap.metadata.generation;
    let mut status = ap.status.clone().unwrap_or_default();

    // 1. Validate (pure).
    let spec = match validate(&ap.spec, &ctx.catalog) {
        Ok(spec) => spec,
        Err(e) => return invalid(ap, ctx, &api, &mut status, &e).await,
    };
    set_condition(
        &mut status,
        "Valid",
        true,
        "SpecValid",
        "the spec is valid",
        generation,
    );
    status.observed_generation = generation;

    let outcome = steps(ap, &spec, ctx, &api, &namespace, &mut status).await;
    match outcome {
        Ok(requeue) => {
            status.last_error = None;
            write_status(&api, &name, &status).await?;
            if !crate::finalizer::in_progress(&status) && crate::finalizer::holds(ap) {
                crate::finalizer::release(&api, &name).await?;
            }
            Ok(requeue)
        }
        Err(e) => {
            let message = e.to_string();
            let repeated = status.last_error.as_deref() == Some(message.as_str());
            status.last_error = Some(message.clone());
            set_condition(
                &mut status,
                "Ready",
                false,
                e.reason(),
                &message,
                generation,
            );
            write_status(&api, &name, &status).await?;
            if !repeated {
                publish(ctx, ap, EventType::Warning, e.reason(), message).await;
            }
            Err(e)
        }
    }
}

async fn invalid(
    ap: &KafkaAutopilot,
    ctx: &Context,
    api: &Api<KafkaAutopilot>,
    status: &mut KafkaAutopilotStatus,
    e: &SpecError,
) -> Result<Duration, ReconcileError> {
    let message = format!("invalid spec: {e}");
    let repeated = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Valid" && c.message == message);
    let generation = ap.metadata.generation;
    set_condition(status, "Valid", false, "InvalidSpec", &message, generation);
    set_condition(status, "Ready", false, "InvalidSpec", &message, generation);
    status.observed_generation = generation;
    status.last_error = Some(message.clone());
    write_status(api, &ap.name_any(), status).await?;
    ctx.metrics
        .inc("kpilot_errors_total", &[("step", "validate")]);
    if !repeated {
        publish(ctx, ap, EventType::Warning, "InvalidSpec", message).await;
    }
    info!(error = %e, "invalid spec: waiting for a change");
    // Nothing to do until the spec changes (the watch wakes us up).
    Ok(Duration::from_secs(3600))
}

/// What every step of an operation works with: the autopilot, its validated spec, the
/// operator's context, the autopilot API and namespace, the target as observed, and the
/// connection to the cluster. The status travels apart: the steps change it.
#[derive(Clone, Copy)]
pub(crate) struct Scope<'a> {
    pub ap: &'a KafkaAutopilot,
    pub spec: &'a ValidSpec,
    pub ctx: &'a Context,
    pub api: &'a Api<KafkaAutopilot>,
    pub namespace: &'a str,
    pub observed: &'a Observed,
    pub conn: &'a Connection,
}

/// The target as read.
pub(crate) struct Observed {
    /// The object (KafkaNodePool or StatefulSet) as JSON.
    pub(crate) object: Value,
    /// Broker count.
    pub(crate) brokers: u32,
    /// Instance type the object asks for now.
    pub(crate) instance: InstanceType,
}

async fn dereference(
    spec: &ValidSpec,
    ctx: &Context,
    namespace: &str,
    status: &KafkaAutopilotStatus,
) -> Result<Observed, ReconcileError> {
    let (object, label) = match &spec.target {
        Target::Strimzi { node_pool, .. } => {
            let api: Api<DynamicObject> =
                Api::namespaced_with(ctx.client.clone(), namespace, &node_pool_resource());
            let pool = api
                .get_opt(node_pool)
                .await
                .map_err(kube_err("reading KafkaNodePool", node_pool.clone()))?
                .ok_or_else(|| ReconcileError::TargetNotFound {
                    kind: "KafkaNodePool",
                    name: node_pool.clone(),
                    namespace: namespace.to_owned(),
                })?;
            (
                serde_json::to_value(&pool).unwrap_or_default(),
                format!("KafkaNodePool {node_pool}"),
            )
        }
        Target::StatefulSet { name, .. } => {
            let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), namespace);
            let sts = api
                .get_opt(name)
                .await
                .map_err(kube_err("reading StatefulSet", name.clone()))?
                .ok_or_else(|| ReconcileError::TargetNotFound {
                    kind: "StatefulSet",
                    name: name.clone(),
                    namespace: namespace.to_owned(),
                })?;
            (
                serde_json::to_value(&sts).unwrap_or_default(),
                format!("StatefulSet {name}"),
            )
        }
    };
    let brokers = object
        .pointer("/spec/replicas")
        .and_then(Value::as_u64)
        .unwrap_or(0) as u32;
    let asked = match &spec.target {
        Target::Strimzi { .. } => node_pool_instance_type(&object),
        Target::StatefulSet { .. } => object
            .pointer("/spec/template/spec")
            .and_then(pod_spec_instance_type),
    };
    // While an operation runs, the object already asks for the new type: the shape that
    // runs is the old one.
    let running = status
        .operation
        .as_ref()
        .filter(|o| o.phase != "Completed")
        .map(|o| o.from_instance_type.clone());
    let name = running
        .or(asked)
        .or_else(|| spec.fallback_instance.as_ref().map(ToString::to_string))
        .ok_or(ReconcileError::UnknownInstanceType {
            object: label,
            label: crate::target::INSTANCE_TYPE_LABEL,
        })?;
    let instance = name
        .parse()
        .map_err(|e: kpilot_units::ParseError| ReconcileError::Catalog {
            instance: name.clone(),
            message: e.to_string(),
        })?;
    Ok(Observed {
        object,
        brokers,
        instance,
    })
}

pub(crate) fn shape_of(
    spec: &ValidSpec,
    catalog: &Catalog,
    instance: &InstanceType,
    brokers: u32,
) -> Result<Shape, ReconcileError> {
    let inst = catalog
        .instance(instance)
        .map_err(|e| ReconcileError::Catalog {
            instance: instance.to_string(),
            message: e.to_string(),
        })?
        .clone();
    let storage = spec
        .storage_for(catalog, &inst)
        .map_err(|e| ReconcileError::Storage {
            instance: instance.to_string(),
            message: e.to_string(),
        })?;
    Ok(Shape {
        instance: inst,
        brokers: brokers.max(1),
        storage,
    })
}

pub(crate) fn shape_status(shape: &Shape, catalog: &Catalog) -> ShapeStatus {
    ShapeStatus {
        label: shape.label(),
        instance_type: shape.instance.name.to_string(),
        brokers: shape.brokers,
        usd_per_hour: (kpilot_policy::hourly_cost(shape, catalog) * 1000.0).round() / 1000.0,
    }
}

async fn secret_value(
    ctx: &Context,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<String, ReconcileError> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = api
        .get_opt(name)
        .await
        .map_err(kube_err("reading Secret", name))?;
    let missing = || ReconcileError::Secret {
        name: name.to_owned(),
        key: key.to_owned(),
    };
    let secret = secret.ok_or_else(missing)?;
    if let Some(v) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return String::from_utf8(v.0.clone()).map_err(|_| missing());
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key).cloned())
        .ok_or_else(missing)
}

pub(crate) async fn connection(
    spec: &ValidSpec,
    ctx: &Context,
    namespace: &str,
) -> Result<Connection, ReconcileError> {
    let tls = match &spec.kafka.tls {
        None => None,
        Some(t) => {
            let ca = match &t.ca_secret {
                None => None,
                Some(r) => Some(secret_value(ctx, namespace, &r.name, &r.key).await?),
            };
            Some((ca, t.verify_hostname))
        }
    };
    let sasl = match &spec.kafka.sasl {
        None => None,
        Some(s) => {
            let password = secret_value(
                ctx,
                namespace,
                &s.password_secret.name,
                &s.password_secret.key,
            )
            .await?;
            let mechanism = s
                .mechanism
                .parse()
                .map_err(|m: String| ReconcileError::Policy(m))?;
            Some((
                mechanism,
                s.username.clone(),
                kpilot_kafka::Secret::new(password),
            ))
        }
    };
    Connection::new(&spec.kafka.bootstrap, tls, sasl)
        .map(|c| c.with_prometheus(spec.prometheus.clone()))
        .map_err(|message| {
            ReconcileError::Observe(ObserveError::Connect {
                bootstrap: spec.kafka.bootstrap.clone(),
                message,
            })
        })
}

/// The demand history of a decision: Prometheus' when it has one (with the egress where it
/// was measured at the same step), else the operator's own samples in status (with the egress
/// measured from consumer groups). Returns the history, its source and how many samples it
/// holds.
fn history_from(
    status: &KafkaAutopilotStatus,
    prometheus: Option<&LoadHistory>,
) -> (DemandHistory, &'static str, usize) {
    let mut history = DemandHistory::with_defaults();
    let samples: Vec<Sample> = match prometheus {
        Some(h) => {
            let egress: std::collections::HashMap<i64, Throughput> = h
                .egress
                .points
                .iter()
                .map(|(t, e)| ((t * 1000.0).round() as i64, *e))
                .collect();
            h.ingress
                .points
                .iter()
                .map(|(t, ingress)| Sample {
                    at: Timestamp::from_secs(*t),
                    ingress: *ingress,
                    egress: egress.get(&((t * 1000.0).round() as i64)).copied(),
                })
                .collect()
        }
        None => status
            .history
            .iter()
            .map(|s| Sample {
                at: Timestamp::from_secs(s.t as f64),
                ingress: Throughput::from_mb_per_s(s.ingress_mb_per_s),
                egress: s.egress_mb_per_s.map(Throughput::from_mb_per_s),
            })
            .collect(),
    };
    let count = samples.len();
    for sample in samples {
        let _ = history.push(sample);
    }
    let source = if prometheus.is_some() {
        "prometheus"
    } else {
        "status"
    };
    (history, source, count)
}

/// The consumer fan-out to plan with: the highest egress / ingress measured over the last
/// day of `history` (as the policy's `FanoutSource::Observed`), else the spec's.
fn fanout_of(history: &DemandHistory, now: i64, spec_fanout: f64) -> (f64, &'static str) {
    let now = Timestamp::from_secs(now as f64);
    match history.max_fanout_between(now - Span::from_hours(24.0), now) {
        Some(f) if f.is_finite() => (f, "measured"),
        _ => (spec_fanout, "spec"),
    }
}

async fn steps(
    ap: &KafkaAutopilot,
    spec: &ValidSpec,
    ctx: &Context,
    api: &Api<KafkaAutopilot>,
    namespace: &str,
    status: &mut KafkaAutopilotStatus,
) -> Result<Duration, ReconcileError> {
    let generation = ap.metadata.generation;
    let interval = Duration::from_secs_f64(spec.settings.decision_interval.secs());

    // 2. Dereference.
    let observed = dereference(spec, ctx, namespace, status).await?;
    let shape = shape_of(spec, &ctx.catalog, &observed.instance, observed.brokers)?;
    status.current_shape = Some(shape_status(&shape, &ctx.catalog));
    let conn = connection(spec, ctx, namespace).await?;
    let scope = Scope {
        ap,
        spec,
        ctx,
        api,
        namespace,
        observed: &observed,
        conn: &conn,
    };

    // 3. An operation in progress comes first.
    if crate::finalizer::in_progress(status) {
        // An operation recorded by an operator from before the finalizer gets it now.
        if !crate::finalizer::holds(ap) {
            crate::finalizer::add(api, &ap.name_any()).await?;
        }
        return continue_operation(&scope, status).await;
    }

    // 4. Observe.
    let key = format!("{namespace}/{}", ap.name_any());
    let facts = ctx.observer.observe(&key, &conn).await?;
    let now = now_unix();
    // With Prometheus the forecast reads its history there; otherwise the operator keeps
    // its own samples in status.
    let prometheus_history = ctx.observer.history(&key, &conn).await?;
    if let (Some(ingress), None) = (facts.ingress, &prometheus_history) {
        record_sample(
            &mut status.history,
            DemandSample {
                t: now,
                ingress_mb_per_s: (ingress.mb_per_s() * 1000.0).round() / 1000.0,
                egress_mb_per_s: facts
                    .egress
                    .map(|e| (e.mb_per_s() * 1000.0).round() / 1000.0),
            },
        );
    }
    let (history, history_source, history_samples) =
        history_from(status, prometheus_history.as_ref());
    let (fanout, fanout_source) = fanout_of(&history, now, spec.fanout);
    let workload = Workload::new(
        facts.replication_factor,
        facts.min_insync_replicas,
        fanout,
        spec.settings.target_utilization,
    )
    .map_err(|e| ReconcileError::Policy(e.to_string()))?;
    let holds_now = holds(&shape, &workload);
    status.load = Some(LoadStatus {
        measured_at: now_rfc3339(),
        ingress_mb_per_s: facts
            .ingress
            .map(|t| (t.mb_per_s() * 1000.0).round() / 1000.0),
        stored_gb: (facts.stored.gb() * 1000.0).round() / 1000.0,
        replication_factor: facts.replication_factor,
        under_replicated_partitions: facts.under_replicated as u32,
        source: facts.source.to_owned(),
        ingress_problem: facts.ingress_problem.clone(),
        egress_mb_per_s: facts
            .egress
            .map(|t| (t.mb_per_s() * 1000.0).round() / 1000.0),
        fanout: Some((fanout * 1000.0).round() / 1000.0),
        fanout_source: Some(fanout_source.to_owned()),
        throttles_left_behind: facts.throttles_left.clone(),
    });
    status.limits = Some(LimitsStatus {
        holds_mb_per_s: (holds_now.mb_per_s() * 1000.0).round() / 1000.0,
        headroom: facts
            .ingress
            .filter(|_| holds_now.mb_per_s() > 0.0)
            .map(|i| ((1.0 - i.mb_per_s() / holds_now.mb_per_s()) * 1000.0).round() / 1000.0),
    });
    let mut ready_message = format!(
        "{} holds {:.1} MB/s; {} under-replicated partition(s)",
        shape.label(),
        holds_now.mb_per_s(),
        facts.under_replicated
    );
    if let Some(problem) = &facts.ingress_problem {
        ready_message.push_str(&format!("; ingress not measured: {problem}"));
    }
    if let Some(on) = &facts.throttles_left {
        ready_message.push_str(&format!(
            "; replication throttles left behind with no reassignment running on {on} (they slow replicas catching up: remove them)"
        ));
    }
    set_condition(
        status,
        "Ready",
        true,
        "Observed",
        &ready_message,
        generation,
    );
    if spec.mode == crate::crd::Mode::Observe {
        return Ok(interval);
    }
    if history_samples == 0 {
        // The Kafka-only ingress needs two observations; Prometheus may have no data yet.
        return Ok(interval.min(Duration::from_secs(30)));
    }

    // 5. Decide, planning rolls with the restart time this cluster's own rolls measured.
    let mut settings = spec.settings.clone();
    settings.transition.restart = plan_restart(status, spec);
    // Moves are planned at the throttle the operator will set for them.
    let move_throttle =
        crate::horizontal::throttle_for(&shape, &workload, facts.ingress, &ctx.rebalance);
    settings.transition.max_move_rate_per_broker =
        kpilot_units::Throughput::from_bytes_per_s(move_throttle.0 as f64);
    settings.transition.move_share = crate::moves::plan_with(&mut status.moves, move_throttle);
    let cluster = ClusterState {
        shape: shape.clone(),
        stored: facts.stored,
        last_change_finished: status
            .last_change_finished
            .as_deref()
            .and_then(rfc3339_to_unix)
            .map(|t| Timestamp::from_secs(t as f64)),
        transition_in_progress: false,
    };
    let input = DecisionInput {
        now: Timestamp::from_secs(now as f64),
        history: &history,
        cluster: &cluster,
        replication_factor: facts.replication_factor,
        min_insync_replicas: facts.min_insync_replicas,
        fanout: FanoutSource::Fixed(fanout),
        catalog: &ctx.catalog,
        constraints: &spec.constraints,
        settings: &settings,
    };
    let decision = decide(&input).map_err(|e| ReconcileError::Policy(e.to_string()))?;
    let peak = decision
        .forecast
        .peak(decision.forecast.start, decision.forecast.end());
    status.forecast = Some(ForecastStatus {
        method: match decision.forecast.method {
            kpilot_policy::ForecastMethod::Daily { .. } => "daily",
            kpilot_policy::ForecastMethod::Weekly { .. } => "weekly",
            kpilot_policy::ForecastMethod::Reactive => "reactive",
        }
        .to_owned(),
        peak_mb_per_s: (peak.mb_per_s() * 1000.0).round() / 1000.0,
        margin: (decision.forecast.margin * 1000.0).round() / 1000.0,
        history_source: Some(history_source.to_owned()),
        history_samples: Some(history_samples.min(u32::MAX as usize) as u32),
    });
    let reasons: Vec<String> = decision.reasons.iter().map(ToString::to_string).collect();

    // 6. Apply (or say why not).
    let (action, summary, mechanism, target, disposition) = match &decision.action {
        Action::Keep => (
            "keep",
            format!("keep {}", shape.label()),
            None,
            None,
            "nothing to do".to_owned(),
        ),
        Action::Change(plan) => {
            let disposition = if spec.mode != crate::crd::Mode::Apply {
                "reported (mode recommend)".to_owned()
            } else if spec.paused {
                "not applied: spec.paused".to_owned()
            } else if !spec.in_window(now) {
                "not applied: outside the maintenance windows".to_owned()
            } else if !facts.healthy() {
                format!(
                    "not applied: the cluster is not healthy ({} under-replicated, {} offline partition(s))",
                    facts.under_replicated, facts.offline
                )
            } else if let Err(refused) = ctx
                .observer
                .may_write(
                    &conn,
                    crate::preflight::needed(
                        plan.to.brokers != shape.brokers,
                        spec.storage_kind == kpilot_capacity::StorageKind::LocalNvme,
                    ),
                )
                .await
            {
                // Nothing is touched: the operation would halt midway on the refused write.
                format!("not applied: {refused}")
            } else {
                "applied".to_owned()
            };
            (
                "change",
                format!("{} to {}", plan.mechanism, plan.to.label()),
                Some(plan.mechanism.as_str().to_owned()),
                Some(shape_status(&plan.to, &ctx.catalog)),
                disposition,
            )
        }
    };
    let changed = status
        .last_decision
        .as_ref()
        .is_none_or(|d| d.summary != summary || d.disposition != disposition);
    ctx.metrics.inc(
        "kpilot_decisions_total",
        &[("action", action), ("mode", spec.mode.as_str())],
    );
    status.last_decision = Some(DecisionStatus {
        at: now_rfc3339(),
        action: action.to_owned(),
        summary: summary.clone(),
        mechanism,
        target: target.clone(),
        reasons: reasons.clone(),
        disposition: disposition.clone(),
        considered: decision
            .considered
            .iter()
            .filter(|c| c.verdict != kpilot_policy::Verdict::Skipped)
            .map(|c| CandidateStatus {
                shape: c.shape.clone(),
                mechanism: c.mechanism.as_str().to_owned(),
                usd_per_hour: (c.usd_per_hour * 1000.0).round() / 1000.0,
                holds_mb_per_s: (c.holds.mb_per_s() * 10.0).round() / 10.0,
                estimated_minutes: c.estimated.map(|e| (e.minutes() * 10.0).round() / 10.0),
                verdict: c.verdict.to_string(),
            })
            .collect(),
    });
    if changed && action == "change" {
        publish(
            ctx,
            ap,
            EventType::Normal,
            "Recommendation",
            format!("{summary} ({disposition}): {}", reasons.join("; ")),
        )
        .await;
    }
    let Some(target) = target.filter(|_| disposition == "applied") else {
        return Ok(interval);
    };
    start_operation(&scope, status, &shape, &target).await
}

async fn start_operation(
    scope: &Scope<'_>,
    status: &mut KafkaAutopilotStatus,
    shape: &Shape,
    target: &ShapeStatus,
) -> Result<Duration, ReconcileError> {
    let Scope {
        ap, spec, ctx, api, ..
    } = *scope;
    if target.brokers != shape.brokers {
        // Adding or removing brokers (the instance type stays).
        return crate::horizontal::start(scope, status, shape, target).await;
    }
    let kind = match spec.target {
        Target::Strimzi { .. } => OP_STRIMZI,
        Target::StatefulSet { .. } => OP_STATEFULSET,
    };
    status.operation = Some(OperationStatus {
        kind: kind.to_owned(),
        from_instance_type: shape.instance.name.to_string(),
        to_instance_type: target.instance_type.clone(),
        phase: "Running".to_owned(),
        started_at: now_rfc3339(),
        finished_at: None,
        message: Some("patching the target".to_owned()),
        brokers: Vec::new(),
        journal: None,
        from_brokers: None,
        to_brokers: None,
        rebuild_throttle: None,
    });
    operation_started(
        ap,
        ctx,
        api,
        status,
        &format!(
            "{kind}: {} -> {}",
            shape.instance.name, target.instance_type
        ),
        format!(
            "{kind}: moving {} broker(s) from {} to {}",
            shape.brokers, shape.instance.name, target.instance_type
        ),
    )
    .await?;
    continue_operation(scope, status).await
}

/// Records that the operation now in `status.operation` started: the `Progressing`
/// condition, the status written (the intent is durable before anything changes), the
/// metrics and an `OperationStarted` Event.
pub(crate) async fn operation_started(
    ap: &KafkaAutopilot,
    ctx: &Context,
    api: &Api<KafkaAutopilot>,
    status: &mut KafkaAutopilotStatus,
    condition: &str,
    event: String,
) -> Result<(), ReconcileError> {
    let kind = status
        .operation
        .as_ref()
        .map(|o| o.kind.clone())
        .unwrap_or_default();
    // The finalizer first: from here on a deletion waits for the cleanup. Without it the
    // operation does not start: the status keeps the previous (finished) operation, since the
    // error path writes it.
    if let Err(e) = crate::finalizer::add(api, &ap.name_any()).await {
        status.operation = ap.status.as_ref().and_then(|s| s.operation.clone());
        return Err(e);
    }
    set_condition(
        status,
        "Progressing",
        true,
        "OperationStarted",
        condition,
        ap.metadata.generation,
    );
    write_status(api, &ap.name_any(), status).await?;
    ctx.metrics.inc(
        "kpilot_operations_total",
        &[("kind", &kind), ("event", "started")],
    );
    ctx.metrics.set("kpilot_operation_in_progress", &[], 1.0);
    publish(ctx, ap, EventType::Normal, "OperationStarted", event).await;
    Ok(())
}

/// Records that the operation in `status.operation` halted on `error` (the next reconcile
/// retries it): phase, message, the `Progressing` condition with `reason`, the metrics.
pub(crate) fn operation_halted(
    ap: &KafkaAutopilot,
    ctx: &Context,
    status: &mut KafkaAutopilotStatus,
    reason: &str,
    error: &ReconcileError,
) {
    let kind = status
        .operation
        .as_ref()
        .map(|o| o.kind.clone())
        .unwrap_or_default();
    if let Some(o) = status.operation.as_mut() {
        o.phase = "Halted".to_owned();
        o.message = Some(error.to_string());
    }
    set_condition(
        status,
        "Progressing",
        false,
        reason,
        &error.to_string(),
        ap.metadata.generation,
    );
    ctx.metrics.inc(
        "kpilot_operations_total",
        &[("kind", &kind), ("event", "halted")],
    );
}

/// Records that the operation in `status.operation` completed with `to` as the shape now:
/// phase, end time, `lastChangeFinished`, `currentShape`, the `Progressing` condition, the
/// metrics and an `OperationCompleted` Event.
pub(crate) async fn operation_completed(
    ap: &KafkaAutopilot,
    ctx: &Context,
    status: &mut KafkaAutopilotStatus,
    to: &Shape,
    message: String,
) {
    let kind = status
        .operation
        .as_ref()
        .map(|o| o.kind.clone())
        .unwrap_or_default();
    if let Some(o) = status.operation.as_mut() {
        o.phase = "Completed".to_owned();
        o.finished_at = Some(now_rfc3339());
        o.message = Some(message.clone());
        for b in &mut o.brokers {
            b.phase = "done".to_owned();
        }
    }
    status.last_change_finished = Some(now_rfc3339());
    status.current_shape = Some(shape_status(to, &ctx.catalog));
    set_condition(
        status,
        "Progressing",
        false,
        "OperationCompleted",
        &message,
        ap.metadata.generation,
    );
    ctx.metrics.inc(
        "kpilot_operations_total",
        &[("kind", &kind), ("event", "completed")],
    );
    ctx.metrics.set("kpilot_operation_in_progress", &[], 0.0);
    publish(
        ctx,
        ap,
        EventType::Normal,
        "OperationCompleted",
        format!("{kind}: {message}"),
    )
    .await;
}

/// Patches the target (idempotent) and the Karpenter node pool for an operation.
async fn patch_target(
    spec: &ValidSpec,
    ctx: &Context,
    namespace: &str,
    observed: &Observed,
    to: &Shape,
    karpenter_types: &[String],
) -> Result<(), ReconcileError> {
    if let Some(pool) = spec.target.karpenter() {
        let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &karpenter_resource());
        let current = api
            .get_opt(pool)
            .await
            .map_err(kube_err("reading Karpenter NodePool", pool))?
            .ok_or_else(|| ReconcileError::TargetNotFound {
                kind: "NodePool (karpenter.sh)",
                name: pool.to_owned(),
                namespace: "(cluster)".to_owned(),
            })?;
        let current = serde_json::to_value(&current).unwrap_or_default();
        if karpenter_instance_types(&current) != karpenter_types {
            api.patch(
                pool,
                &PatchParams::apply(FIELD_MANAGER),
                &Patch::Merge(karpenter_patch(&current, karpenter_types)),
            )
            .await
            .map_err(kube_err("patching Karpenter NodePool", pool))?;
        }
    }
    match &spec.target {
        Target::Strimzi { node_pool, .. } => {
            let api: Api<DynamicObject> =
                Api::namespaced_with(ctx.client.clone(), namespace, &node_pool_resource());
            if node_pool_instance_type(&observed.object) != Some(to.instance.name.to_string())
                || observed.object.pointer("/spec/resources")
                    != Some(&crate::target::resources_for(&to.instance))
            {
                api.patch(
                    node_pool,
                    &PatchParams::apply(FIELD_MANAGER),
                    &Patch::Merge(node_pool_patch(&observed.object, &to.instance)),
                )
                .await
                .map_err(kube_err("patching KafkaNodePool", node_pool.clone()))?;
            }
        }
        Target::StatefulSet { name, .. } => {
            let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), namespace);
            let asks = observed
                .object
                .pointer("/spec/template/spec")
                .and_then(pod_spec_instance_type);
            if asks != Some(to.instance.name.to_string()) {
                api.patch(
                    name,
                    &PatchParams::apply(FIELD_MANAGER),
                    &Patch::Strategic(stateful_set_patch(&observed.object, &to.instance)),
                )
                .await
                .map_err(kube_err("patching StatefulSet", name.clone()))?;
            }
        }
    }
    Ok(())
}

async fn continue_operation(
    scope: &Scope<'_>,
    status: &mut KafkaAutopilotStatus,
) -> Result<Duration, ReconcileError> {
    let Scope {
        ap,
        spec,
        ctx,
        api,
        namespace,
        observed,
        conn,
    } = *scope;
    let Some(op) = status.operation.clone() else {
        return Ok(ctx.busy_requeue);
    };
    if crate::horizontal::is_horizontal(&op.kind) {
        return crate::horizontal::continue_operation(scope, status).await;
    }
    let to_type: InstanceType =
        op.to_instance_type
            .parse()
            .map_err(|e: kpilot_units::ParseError| ReconcileError::Catalog {
                instance: op.to_instance_type.clone(),
                message: e.to_string(),
            })?;
    let to = shape_of(spec, &ctx.catalog, &to_type, observed.brokers)?;
    let local = spec.storage_kind == kpilot_capacity::StorageKind::LocalNvme;
    if local && matches!(spec.target, Target::Strimzi { .. }) {
        // Strimzi restarts the pods and every restarted broker rebuilds its data: the
        // throttle goes on before the node pool asks for the new type.
        let rate = rebuild_throttle(status, ctx);
        if let Err(e) = crate::strimzi_rebuild::throttle(scope, status, rate).await {
            operation_halted(ap, ctx, status, e.reason(), &e);
            return Err(e);
        }
    }
    let both = vec![op.from_instance_type.clone(), op.to_instance_type.clone()];
    patch_target(spec, ctx, namespace, observed, &to, &both).await?;
    let name = ap.name_any();

    let outcome: Result<(), ReconcileError> = match &spec.target {
        Target::Strimzi {
            kafka, node_pool, ..
        } => {
            return strimzi_progress(
                ap, spec, ctx, api, namespace, status, conn, &to, kafka, node_pool,
            )
            .await;
        }
        Target::StatefulSet {
            name: sts,
            first_broker_id,
            ..
        } => {
            if spec.paused {
                if let Some(o) = status.operation.as_mut() {
                    o.phase = "Paused".to_owned();
                    o.message = Some("held before the next broker: spec.paused".to_owned());
                }
                return Ok(ctx.busy_requeue);
            }
            if let Some(o) = status.operation.as_mut() {
                o.phase = "Running".to_owned();
            }
            write_status(api, &name, status).await?;
            let initial = op
                .journal
                .as_deref()
                .and_then(|j| Journal::from_json(j).ok());
            let journal = StatusJournal::new(api.clone(), &name, initial);
            let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
            // On local disks every rolled broker rebuilds its data, throttled at the rate
            // the decision planned moves at.
            let fleet = StatefulSetFleet::new(
                pods,
                sts,
                *first_broker_id,
                to_type.clone(),
                &journal,
                ctx.pod_timeout,
            )
            .with_fresh_disks(local);
            let options = RollOptions {
                rebuild_throttle_bytes_per_s: local.then(|| rebuild_throttle(status, ctx)),
                ..RollOptions::new(to_type.clone())
            };
            let admin = conn.connect().await?;
            let result = {
                let mut roller = Roller::new(&admin, &fleet, ctx.roll.clone(), |e: &RollEvent| {
                    journal.set_message(e.to_string());
                });
                roller.run(&options, &mut StatusStore(&journal)).await
            };
            admin.close();
            if let Err(e) = journal.flush().await {
                warn!(error = %e, "could not record the final roll journal");
            }
            if let Some(o) = status.operation.as_mut() {
                o.journal = journal.journal().map(|j| j.to_json());
                o.brokers = journal
                    .journal()
                    .map(|j| crate::fleet::progress(&j))
                    .unwrap_or_default();
            }
            // Every broker this roll restarted teaches the restart time, whether the roll
            // completed or halted (its retry continues the same journal: no broker twice).
            // Its rebuilds (on local disks) teach the share of the throttle moves reach.
            if let Some(j) = journal.journal() {
                let new = crate::restarts::measured(&j, &op.started_at);
                if crate::restarts::record(&mut status.restarts, new) > 0 {
                    plan_restart(status, spec);
                }
                for m in crate::moves::rebuilds(&j, ctx.rebalance.timed_from) {
                    crate::moves::record(&mut status.moves, m);
                }
            }
            match result {
                Ok(report) if report.status == RollStatus::Completed => Ok(()),
                Ok(report) => Err(ReconcileError::Roll {
                    target: to_type.to_string(),
                    message: format!("the roll ended as {:?}", report.status),
                }),
                Err(e) => Err(ReconcileError::Roll {
                    target: to_type.to_string(),
                    message: e.to_string(),
                }),
            }
        }
    };
    match outcome {
        Ok(()) => {
            finish_operation(ap, spec, ctx, namespace, status, observed, &to).await?;
            Ok(Duration::from_secs_f64(
                spec.settings.decision_interval.secs(),
            ))
        }
        Err(e) => {
            operation_halted(ap, ctx, status, "RollHalted", &e);
            Err(e)
        }
    }
}

/// The throttle of the rebuilds in a roll onto local disks: the one the decision that started
/// it planned moves at (`status.moves`), else the default rebalance throttle, capped.
fn rebuild_throttle(status: &KafkaAutopilotStatus, ctx: &Context) -> u64 {
    let planned = status.moves.as_ref().and_then(|m| m.throttle_bytes_per_s);
    let default = ctx.rebalance.default_throttle.bytes_per_s();
    let rate = planned.map_or(default, |p| p as f64);
    let capped = ctx
        .rebalance
        .max_throttle
        .map_or(rate, |max| rate.min(max.bytes_per_s()));
    capped.round() as u64
}

async fn finish_operation(
    ap: &KafkaAutopilot,
    spec: &ValidSpec,
    ctx: &Context,
    namespace: &str,
    status: &mut KafkaAutopilotStatus,
    observed: &Observed,
    to: &Shape,
) -> Result<(), ReconcileError> {
    patch_target(
        spec,
        ctx,
        namespace,
        observed,
        to,
        &[to.instance.name.to_string()],
    )
    .await?;
    operation_completed(
        ap,
        ctx,
        status,
        to,
        format!("every broker runs on {}", to.instance.name),
    )
    .await;
    Ok(())
}

/// Sets or clears Strimzi's pause annotation on the `Kafka` resource.
pub(crate) async fn strimzi_pause(
    ctx: &Context,
    namespace: &str,
    kafka: &str,
    pause: bool,
) -> Result<(), ReconcileError> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), namespace, &kafka_resource());
    let current = api
        .get_opt(kafka)
        .await
        .map_err(kube_err("reading Kafka", kafka))?
        .ok_or_else(|| ReconcileError::TargetNotFound {
            kind: "Kafka",
            name: kafka.to_owned(),
            namespace: namespace.to_owned(),
        })?;
    let paused = current
        .annotations()
        .get(STRIMZI_PAUSE_ANNOTATION)
        .is_some_and(|v| v == "true");
    if paused == pause {
        return Ok(());
    }
    let value = if pause { json!("true") } else { Value::Null };
    api.patch(
        kafka,
        &PatchParams::apply(FIELD_MANAGER),
        &Patch::Merge(json!({"metadata": {"annotations": {STRIMZI_PAUSE_ANNOTATION: value}}})),
    )
    .await
    .map_err(kube_err("annotating Kafka", kafka))?;
    Ok(())
}

/// Strimzi rolls the pods; the operator holds the gate (pauses Strimzi while the cluster is
/// unhealthy or the autopilot is paused), follows the pods, and at the end elects the
/// preferred leaders.
#[allow(clippy::too_many_arguments)]
async fn strimzi_progress(
    ap: &KafkaAutopilot,
    spec: &ValidSpec,
    ctx: &Context,
    api: &Api<KafkaAutopilot>,
    namespace: &str,
    status: &mut KafkaAutopilotStatus,
    conn: &Connection,
    to: &Shape,
    kafka: &str,
    node_pool: &str,
) -> Result<Duration, ReconcileError> {
    let _ = api;
    let key = format!("{namespace}/{}", ap.name_any());
    let facts: Result<KafkaFacts, ObserveError> = ctx.observer.observe(&key, conn).await;
    let unsafe_reason = match (&facts, spec.paused) {
        (_, true) => Some("spec.paused".to_owned()),
        (Err(e), _) => Some(format!("Kafka cannot be observed ({e})")),
        (Ok(f), _) if !f.healthy() => Some(format!(
            "{} under-replicated and {} offline partition(s)",
            f.under_replicated, f.offline
        )),
        _ => None,
    };
    strimzi_pause(ctx, namespace, kafka, unsafe_reason.is_some()).await?;

    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let list = pods
        .list(&ListParams::default().labels(&format!(
            "strimzi.io/cluster={kafka},strimzi.io/pool-name={node_pool}"
        )))
        .await
        .map_err(kube_err("listing the pods of KafkaNodePool", node_pool))?;
    let target = to.instance.name.to_string();
    // What this poll sees of each broker pod; a broker seen before whose pod is gone now is
    // being restarted by Strimzi.
    let previous: BTreeMap<i32, Option<i64>> = status
        .operation
        .iter()
        .flat_map(|o| &o.brokers)
        .map(|b| (b.id, b.down_since.as_deref().and_then(rfc3339_to_unix)))
        .collect();
    // Timestamps of pods created before the roll began say nothing about its restarts.
    let started = status
        .operation
        .as_ref()
        .and_then(|o| rfc3339_to_unix(&o.started_at));
    let mut seen: BTreeMap<i32, PodSeen> = BTreeMap::new();
    for pod in &list.items {
        let Some(id) = pod
            .metadata
            .name
            .as_deref()
            .and_then(|n| n.rsplit('-').next())
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let created = pod
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second())
            .filter(|c| started.is_some_and(|s| *c >= s));
        let state = match (
            pod.metadata.deletion_timestamp.as_ref(),
            pod_ready(pod),
            pod_instance_type(pod) == Some(target.clone()),
        ) {
            (Some(deleting), _, _) => PodSeen::Down {
                since: Some(deleting.0.as_second()),
            },
            (None, true, true) => PodSeen::New {
                created,
                ready: ready_since(pod),
            },
            (None, true, false) => PodSeen::Old,
            (None, false, _) => PodSeen::Down { since: created },
        };
        seen.insert(id, state);
    }
    for id in previous.keys() {
        seen.entry(*id).or_insert(PodSeen::Down { since: None });
    }
    let now = now_unix();
    // A restart is named by its broker and the operation it was part of.
    let at = status
        .operation
        .as_ref()
        .map_or_else(now_rfc3339, |o| o.started_at.clone());
    let mut progress: BTreeMap<i32, (&'static str, Option<i64>)> = BTreeMap::new();
    let mut measured = Vec::new();
    for (id, state) in seen {
        let since = previous.get(&id).copied().flatten();
        let (phase, since, took) = crate::restarts::strimzi_step(since, state, now);
        if let Some(seconds) = took {
            measured.push(crate::crd::MeasuredRestart {
                broker_id: id,
                at: at.clone(),
                seconds,
                instance_type: target.clone(),
            });
        }
        progress.insert(id, (phase, since));
    }
    crate::restarts::record(&mut status.restarts, measured);
    let ready: Vec<i32> = progress
        .iter()
        .filter(|(_, p)| p.0 == "done")
        .map(|(id, _)| *id)
        .collect();
    let done = progress.values().filter(|p| p.0 == "done").count();
    let all_done = done as u32 >= to.brokers && progress.values().all(|p| p.0 == "done");
    // On local disks: keep the rebuild throttle set, time the rebuilds and, once every pod
    // runs the new type, lift it when every partition is back in sync (the last broker may
    // still be rebuilding).
    let polled = crate::strimzi_rebuild::poll(
        conn,
        status,
        &ready,
        ctx.rebalance.timed_from,
        all_done && unsafe_reason.is_none(),
    )
    .await?;
    let warnings = [
        (
            "RebuildThrottleRestored",
            &polled.restored,
            "the rebuild throttle had been removed ({}); set again",
        ),
        (
            "RebuildThrottleYielded",
            &polled.yielded,
            "someone else set the rebuild throttle's {} during the roll: left as set, and not removed when the roll lifts its throttle",
        ),
    ];
    for (reason, configs, text) in warnings {
        if configs.is_empty() {
            continue;
        }
        let message = text.replace("{}", &configs.join(", "));
        warn!(%message, reason, "rebuild throttle changed by someone else");
        publish(ctx, ap, EventType::Warning, reason, message).await;
    }
    if let Some(o) = status.operation.as_mut() {
        o.brokers = progress
            .iter()
            .map(|(id, (phase, since))| crate::crd::BrokerProgress {
                id: *id,
                phase: (*phase).to_owned(),
                down_since: since
                    .and_then(|t| JiffTimestamp::from_second(t).ok().map(|t| t.to_string())),
            })
            .collect();
        o.phase = if unsafe_reason.is_some() {
            "Paused"
        } else {
            "Running"
        }
        .to_owned();
        o.message = Some(match &unsafe_reason {
            Some(r) => format!("Strimzi reconciliation paused: {r}"),
            None => format!("{done} of {} broker(s) on {target}", to.brokers),
        });
    }
    if all_done && unsafe_reason.is_none() {
        if let Some(behind) = polled.behind {
            if let Some(o) = status.operation.as_mut() {
                o.message = Some(format!(
                    "{done} of {} broker(s) on {target}; {behind} partition(s) still rebuilding under the throttle",
                    to.brokers
                ));
            }
            return Ok(ctx.busy_requeue);
        }
        let elected = ctx.observer.elect_preferred(&key, conn).await?;
        info!(elected, "preferred leader election after the roll");
        plan_restart(status, spec);
        // `observed` is re-read so the final patch compares against the current object.
        let observed = dereference(spec, ctx, namespace, status).await?;
        finish_operation(ap, spec, ctx, namespace, status, &observed, to).await?;
    }
    Ok(ctx.busy_requeue)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpilot_metrics::RateHistory;

    /// With decisions every 10 s the status used to keep 576 of them, 1.6 hours: the forecast
    /// never saw a day, so without Prometheus it never learned the daily curve (and the policy
    /// does not scale down before it has). Samples now merge per 5 minutes: 48 hours.
    #[test]
    fn the_status_history_keeps_two_days_whatever_the_decision_interval() {
        let mut h = Vec::new();
        let start = 1_700_000_100; // on a 5-minute step
        for i in 0..(3 * 8640) {
            let t = start + i * 10;
            // A 10 s burst to 50 MB/s once per 5 minutes over 5 MB/s.
            let ingress = if i % 30 == 7 { 50.0 } else { 5.0 };
            let egress = (i % 30 == 9).then_some(20.0);
            record_sample(
                &mut h,
                DemandSample {
                    t,
                    ingress_mb_per_s: ingress,
                    egress_mb_per_s: egress,
                },
            );
        }
        assert_eq!(h.len(), HISTORY_KEPT);
        let last = h.last().unwrap();
        let first = h.first().unwrap();
        assert_eq!(last.t, start + (3 * 8640 - 1) * 10);
        assert!(
            last.t - first.t >= 48 * 3600 - 300,
            "{} s",
            last.t - first.t
        );
        assert!(
            h.windows(2)
                .all(|w| w[1].t - w[0].t >= HISTORY_STEP_SECS - 10)
        );
        // Each step keeps its highest rates.
        assert!(
            h.iter().all(|s| s.ingress_mb_per_s == 50.0),
            "{:?}",
            &h[..2]
        );
        assert!(
            h.iter().all(|s| s.egress_mb_per_s == Some(20.0)),
            "{:?}",
            &h[..2]
        );
        // A decision every 5 minutes or more is kept one sample each.
        let mut h = Vec::new();
        for i in 0..10 {
            record_sample(
                &mut h,
                DemandSample {
                    t: start + i * 600,
                    ingress_mb_per_s: i as f64,
                    egress_mb_per_s: None,
                },
            );
        }
        assert_eq!(h.len(), 10);
        assert_eq!(h[3].ingress_mb_per_s, 3.0);
    }

    /// A merge patch keeps every key it does not name: each optional field of the objects in
    /// the status must be sent as null when absent, or a warning that no longer holds (or a
    /// stale ingress) would stay in status for good.
    #[test]
    fn the_status_patch_clears_absent_fields_inside_its_objects_too() {
        let status = KafkaAutopilotStatus {
            load: Some(LoadStatus {
                measured_at: "2026-01-01T00:00:00Z".into(),
                ingress_mb_per_s: None,
                stored_gb: 1.0,
                replication_factor: 3,
                under_replicated_partitions: 0,
                source: "kafka".into(),
                ingress_problem: None,
                egress_mb_per_s: None,
                fanout: None,
                fanout_source: None,
                throttles_left_behind: None,
            }),
            limits: Some(LimitsStatus {
                holds_mb_per_s: 10.0,
                headroom: None,
            }),
            ..KafkaAutopilotStatus::default()
        };
        let patch = status_patch(&status);
        let load = &patch["status"]["load"];
        for key in [
            "ingressMbPerS",
            "ingressProblem",
            "egressMbPerS",
            "fanout",
            "fanoutSource",
            "throttlesLeftBehind",
        ] {
            assert!(load.get(key).is_some_and(Value::is_null), "{key}: {load}");
        }
        assert_eq!(load["storedGb"], 1.0);
        assert!(patch["status"]["limits"]["headroom"].is_null());
        for key in [
            "forecast",
            "lastDecision",
            "operation",
            "history",
            "conditions",
        ] {
            assert!(
                patch["status"].get(key).is_some_and(Value::is_null),
                "{key}: {patch}"
            );
        }
    }

    /// Prometheus' egress joins the ingress of the same step, and the fan-out planned with is
    /// the highest egress / ingress of the last day; without egress it is the spec's.
    #[test]
    fn the_fanout_is_measured_from_the_prometheus_history() {
        let now: i64 = 10 * 86_400;
        let t = |ago: f64| now as f64 - ago;
        let load = LoadHistory {
            ingress: RateHistory::of_mb_per_s(&[
                (t(7200.0), 10.0),
                (t(3600.0), 20.0),
                (t(600.0), 20.0),
            ]),
            // No egress at the first step; 2.5x at the second; 2x at the last.
            egress: RateHistory::of_mb_per_s(&[
                (t(3600.0), 50.0),
                (t(600.0), 40.0),
                (t(300.0), 99.0),
            ]),
        };
        let status = KafkaAutopilotStatus::default();
        let (history, source, samples) = history_from(&status, Some(&load));
        assert_eq!((source, samples), ("prometheus", 3));
        let (fanout, from) = fanout_of(&history, now, 1.0);
        assert_eq!(from, "measured");
        assert!((fanout - 2.5).abs() < 1e-9, "{fanout}");

        let no_egress = LoadHistory {
            egress: RateHistory::default(),
            ..load.clone()
        };
        let (history, _, _) = history_from(&status, Some(&no_egress));
        assert_eq!(fanout_of(&history, now, 1.5), (1.5, "spec"));
        // A day later the measurement is too old to plan with.
        let (history, _, _) = history_from(&status, Some(&load));
        assert_eq!(fanout_of(&history, now + 2 * 86_400, 1.5), (1.5, "spec"));
    }

    /// Without Prometheus the operator's own samples carry the egress measured from the
    /// consumer groups' committed offsets.
    #[test]
    fn the_fanout_is_measured_from_the_samples_in_status() {
        let now: i64 = 10 * 86_400;
        let sample = |ago: i64, ingress: f64, egress: Option<f64>| DemandSample {
            t: now - ago,
            ingress_mb_per_s: ingress,
            egress_mb_per_s: egress,
        };
        let mut status = KafkaAutopilotStatus {
            history: vec![sample(900, 10.0, None), sample(600, 10.0, Some(30.0))],
            ..KafkaAutopilotStatus::default()
        };
        let (history, source, samples) = history_from(&status, None);
        assert_eq!((source, samples), ("status", 2));
        assert_eq!(fanout_of(&history, now, 1.0), (3.0, "measured"));
        status.history[1].egress_mb_per_s = None;
        let (history, _, _) = history_from(&status, None);
        assert_eq!(fanout_of(&history, now, 1.0), (1.0, "spec"));
    }
}
