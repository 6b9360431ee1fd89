//! Horizontal operations: adding and removing brokers, as a resumable state machine driven
//! by reconcile calls. Its durable state is the operation in the `KafkaAutopilot` status
//! (`fromBrokers`, `toBrokers`, and the rebalance journal of `kpilot-reassign` in
//! `status.operation.journal`, written through the API before every action the executor
//! takes), so a restarted operator resumes where the last one stopped and never starts a
//! second operation. Performs Kubernetes API and Kafka I/O.
//!
//! **Add k brokers**: patch the target's `spec.replicas` (StatefulSet or `KafkaNodePool`) ->
//! requeue until the new broker ids are registered in the Kafka metadata -> plan
//! `BrokerChange::Add` with the minimal-movement planner -> run the throttled executor (the
//! throttle from the capacity model's headroom; throttle removed after, also on failure;
//! preferred leaders elected at the end) -> `Completed`.
//!
//! **Remove k brokers** (the highest ids: a StatefulSet shrinks from its top ordinal, broker id
//! = `firstBrokerId` + ordinal) -> plan `BrokerChange::Remove` -> run the executor (drain) ->
//! check again that the removed brokers hold no replica -> only then patch `spec.replicas`
//! down -> `Completed`. The replicas are never patched down while a removed broker holds a
//! replica.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use kpilot_capacity::{Shape, Workload};
use kpilot_cluster::{BrokerId, TopicPartition};
use kpilot_kafka::{AdminClient, ConfigOp, ConfigResource};
use kpilot_reassign::{
    BatchState, Cancel, CancelHandle, ElectionSummary, Event, ExecuteError, Executor, Journal,
    JournalStore, PortError, ReassignPort, RunStatus, StoreError, prepare, read_plan_input,
};
use kpilot_rebalance::{BatchLimits, BrokerChange, planned_throttle};
use kpilot_units::{Span, Throughput};
use kube::ResourceExt as _;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::events::EventType;
use serde_json::{Value, json};
use thiserror::Error;
use tracing::{info, warn};

use crate::crd::{
    BrokerProgress, KafkaAutopilot, KafkaAutopilotStatus, OperationStatus, ShapeStatus,
};
use crate::fleet::{StatusJournal, StatusRecord};
use crate::reconcile::{
    Context, FIELD_MANAGER, Observed, ReconcileError, Scope, kube_err, node_pool_resource,
    now_rfc3339, operation_completed, operation_halted, operation_started, publish, shape_of,
    write_status,
};
use crate::validate::{Target, ValidSpec};

/// Operation kind: adding brokers.
pub const OP_ADD: &str = "horizontal-add";
/// Operation kind: removing brokers.
pub const OP_REMOVE: &str = "horizontal-remove";

/// The Strimzi annotation naming the node ids a `KafkaNodePool` scale-down removes.
pub const STRIMZI_REMOVE_NODE_IDS: &str = "strimzi.io/remove-node-ids";

/// Whether an operation kind is horizontal.
pub fn is_horizontal(kind: &str) -> bool {
    kind == OP_ADD || kind == OP_REMOVE
}

/// Bounds of horizontal operations.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How the executor paces itself (polling, batch timeout).
    pub executor: kpilot_reassign::Settings,
    /// Partition moves per broker and per batch.
    pub limits: BatchLimits,
    /// The throttle when the capacity model cannot choose one (ingress unknown, or no
    /// headroom left: the cluster is overloaded, which is why brokers are added).
    pub default_throttle: Throughput,
    /// An upper bound on the throttle the capacity model chooses, if any.
    pub max_throttle: Option<Throughput>,
    /// The shortest move, as planned at the throttle, that is timed into `status.moves`
    /// ([`kpilot_policy::MOVE_TIMED_FROM`]; tests lower it to time their small moves).
    pub timed_from: Span,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            executor: kpilot_reassign::Settings::default(),
            limits: BatchLimits::default(),
            default_throttle: Throughput::from_mb_per_s(50.0),
            max_throttle: None,
            timed_from: kpilot_policy::MOVE_TIMED_FROM,
        }
    }
}

/// Why a horizontal operation halted. Each variant names the action and the object.
#[derive(Debug, Error)]
pub enum HorizontalError {
    /// The operation in the status lacks its broker counts.
    #[error(
        "the {kind} operation in the status has no fromBrokers/toBrokers; delete status.operation to start over"
    )]
    Incomplete {
        /// The operation kind.
        kind: String,
    },
    /// The target cannot say which broker ids come or go.
    #[error("cannot tell which broker ids the {kind} operation concerns: {message}")]
    BrokerIds {
        /// The operation kind.
        kind: String,
        /// What is missing.
        message: String,
    },
    /// The rebalance journal in the status is not readable.
    #[error(
        "the rebalance journal in status.operation.journal is not valid: {message}; delete status.operation to start over"
    )]
    Journal {
        /// The parse error.
        message: String,
    },
    /// The journal in the status is for another change.
    #[error(
        "the rebalance journal in the status is for {recorded}, but the operation needs {wanted}; delete status.operation to start over"
    )]
    JournalMismatch {
        /// The change in the journal.
        recorded: String,
        /// The change the operation needs.
        wanted: String,
    },
    /// Reading the cluster for the plan failed.
    #[error(
        "reading the partitions of the Kafka cluster at {bootstrap} to plan {change} failed: {message}"
    )]
    ReadPlanInput {
        /// The bootstrap list.
        bootstrap: String,
        /// The change.
        change: String,
        /// The client's message.
        message: String,
    },
    /// The planner refused.
    #[error("planning {change} failed: {message}")]
    Plan {
        /// The change.
        change: String,
        /// The planner's message.
        message: String,
    },
    /// The executor failed (it removed its throttle and cancelled in-flight moves first).
    #[error("the rebalance to {change} halted: {message}; the next reconcile resumes it")]
    Execute {
        /// The change.
        change: String,
        /// The executor's message.
        message: String,
    },
    /// Reading the brokers' replicas before patching the replicas down failed.
    #[error("checking that broker(s) {brokers} hold no replica failed: {message}")]
    DrainCheck {
        /// The brokers.
        brokers: String,
        /// The client's message.
        message: String,
    },
}

/// The rebalance journal shown in the status: per added or removed broker, `pending`,
/// `moving` or `done`.
impl StatusRecord for Journal {
    fn to_json(&self) -> String {
        Journal::to_json(self)
    }

    fn progress(&self) -> Vec<BrokerProgress> {
        let ids = match &self.change {
            BrokerChange::Add(ids) | BrokerChange::Remove(ids) => ids.clone(),
            BrokerChange::Rebalance => BTreeSet::new(),
        };
        let phase = if self.status == RunStatus::Completed {
            "done"
        } else if self.batches.iter().any(|b| b.state != BatchState::Pending) {
            "moving"
        } else {
            "pending"
        };
        ids.iter()
            .map(|id| BrokerProgress {
                id: id.0,
                phase: phase.to_owned(),
                down_since: None,
            })
            .collect()
    }
}

/// The executor's store over a [`StatusJournal`] of the rebalance.
pub struct RebalanceStore<'a>(pub &'a StatusJournal<Journal>);

impl JournalStore<Journal> for RebalanceStore<'_> {
    fn load(&self) -> Result<Option<Journal>, StoreError> {
        Ok(self.0.journal())
    }

    fn save(&mut self, journal: &Journal) -> Result<(), StoreError> {
        self.0.record(journal);
        Ok(())
    }
}

/// The executor's port: the Kafka admin client, writing the journal saved last into the
/// status before every request, so that nothing reaches the cluster before the journal that
/// announces it is durable (a batch is recorded `issued` before it is submitted).
///
/// When the autopilot is being deleted (the operator's finalizer holds it until the cleanup
/// is done) or is gone, new moves, new throttles and elections are refused and the run is
/// asked to cancel (see [`JournaledPort::cancelling`]); reads and the requests that only make
/// the cluster safer (cancelling reassignments, removing throttle configs) go through, so the
/// executor's cleanup is not blocked by the deletion that stopped it.
pub struct JournaledPort<'a> {
    admin: &'a AdminClient,
    journal: &'a StatusJournal<Journal>,
    stopping: std::cell::Cell<bool>,
    cancel: Option<CancelHandle>,
}

impl<'a> JournaledPort<'a> {
    /// The port over `admin` recording `journal`.
    pub fn new(admin: &'a AdminClient, journal: &'a StatusJournal<Journal>) -> Self {
        JournaledPort {
            admin,
            journal,
            stopping: std::cell::Cell::new(false),
            cancel: None,
        }
    }

    /// Raises `cancel` (the executor's) as soon as the autopilot is seen being deleted, so a
    /// batch in flight is cancelled instead of waited for.
    pub fn cancelling(mut self, cancel: CancelHandle) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// Writes the journal first; `safe` requests go on when the autopilot is being deleted
    /// or gone, the others are refused.
    async fn flush(&self, safe: bool) -> Result<(), PortError> {
        let stopping = match self.journal.flush().await {
            Ok(()) => self.journal.deleting().await.map_err(|e| PortError::Read {
                what: "the KafkaAutopilot (is it being deleted?)",
                source: Box::new(e),
            })?,
            Err(kube::Error::Api(s)) if s.code == 404 => true,
            Err(e) => {
                return Err(PortError::Read {
                    what: "the KafkaAutopilot status while recording the rebalance journal",
                    source: Box::new(e),
                });
            }
        };
        if !stopping {
            return Ok(());
        }
        if !self.stopping.replace(true) {
            warn!(
                "the KafkaAutopilot is being deleted or gone: only reads and cleanup reach the cluster now"
            );
            if let Some(cancel) = &self.cancel {
                cancel.cancel();
            }
        }
        if safe {
            Ok(())
        } else {
            Err(PortError::Read {
                what: "the KafkaAutopilot status while recording the rebalance journal",
                source: "the KafkaAutopilot is being deleted or gone: no new moves, throttles or elections".into(),
            })
        }
    }
}

impl ReassignPort for JournaledPort<'_> {
    async fn live_brokers(&self) -> Result<BTreeSet<BrokerId>, PortError> {
        self.flush(true).await?;
        self.admin.live_brokers().await
    }

    async fn assignment(&self) -> Result<BTreeMap<TopicPartition, Vec<BrokerId>>, PortError> {
        self.flush(true).await?;
        self.admin.assignment().await
    }

    async fn ongoing(&self) -> Result<BTreeSet<TopicPartition>, PortError> {
        self.flush(true).await?;
        self.admin.ongoing().await
    }

    async fn reassign(
        &self,
        changes: &[(TopicPartition, Option<Vec<BrokerId>>)],
    ) -> Result<(), PortError> {
        let cancels_only = changes.iter().all(|(_, target)| target.is_none());
        self.flush(cancels_only).await?;
        self.admin.reassign(changes).await
    }

    async fn configure(
        &self,
        resource: &ConfigResource,
        ops: &[ConfigOp],
    ) -> Result<(), PortError> {
        let removes_only = ops.iter().all(|op| matches!(op, ConfigOp::Delete(_)));
        self.flush(removes_only).await?;
        self.admin.configure(resource, ops).await
    }

    async fn validate(
        &self,
        resources: &[ConfigResource],
        ops: &[ConfigOp],
    ) -> Result<(), PortError> {
        // Changes nothing: no journal to write first.
        self.admin.validate(resources, ops).await
    }

    async fn overrides_seen(
        &self,
        resource: &ConfigResource,
        keys: &[&str],
    ) -> Result<BTreeMap<BrokerId, BTreeMap<String, String>>, PortError> {
        self.flush(true).await?;
        self.admin.overrides_seen(resource, keys).await
    }

    async fn stored(&self, broker: BrokerId) -> Result<BTreeSet<TopicPartition>, PortError> {
        self.flush(true).await?;
        self.admin.stored(broker).await
    }

    async fn replica_sizes(
        &self,
        broker: BrokerId,
    ) -> Result<BTreeMap<TopicPartition, u64>, PortError> {
        // A read for progress only: no journal to write first.
        self.admin.replica_sizes(broker).await
    }

    async fn elect_preferred(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<ElectionSummary, PortError> {
        self.flush(false).await?;
        self.admin.elect_preferred(partitions).await
    }
}

/// The throttle for a rebalance of `shape` at `ingress` (bytes per second) and where it
/// came from ([`kpilot_rebalance::planned_throttle`] with this operator's default and cap).
/// Pure.
pub fn throttle_for(
    shape: &Shape,
    workload: &Workload,
    ingress: Option<Throughput>,
    settings: &Settings,
) -> (u64, String) {
    planned_throttle(
        shape,
        workload,
        ingress,
        settings.default_throttle,
        settings.max_throttle,
    )
}

/// Broker ids of a StatefulSet's ordinals `from..to` (ids `first + ordinal`). Pure.
pub fn ordinal_ids(first_broker_id: i32, from: u32, to: u32) -> BTreeSet<BrokerId> {
    (from..to)
        .map(|o| BrokerId(first_broker_id + o as i32))
        .collect()
}

/// A `KafkaNodePool`'s node ids (`status.nodeIds`), sorted. Pure.
pub fn node_pool_ids(pool: &Value) -> Vec<i32> {
    let mut ids: Vec<i32> = pool
        .pointer("/status/nodeIds")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_i64)
                .filter_map(|i| i32::try_from(i).ok())
                .collect()
        })
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

/// The broker ids that come (`to > from`) or go (`to < from`): for a StatefulSet the
/// ordinals between the counts; for a `KafkaNodePool` the highest `|to - from|` of its
/// `status.nodeIds` (after Strimzi scaled up, for an add). `None` while Strimzi has not
/// reported the new ids yet. Pure.
pub fn changed_ids(
    target: &Target,
    object: &Value,
    from: u32,
    to: u32,
) -> Option<BTreeSet<BrokerId>> {
    let k = from.abs_diff(to) as usize;
    match target {
        Target::StatefulSet {
            first_broker_id, ..
        } => Some(ordinal_ids(*first_broker_id, from.min(to), from.max(to))),
        Target::Strimzi { .. } => {
            let ids = node_pool_ids(object);
            let wanted = from.max(to) as usize;
            if ids.len() < wanted {
                return None;
            }
            Some(ids[ids.len() - k..].iter().map(|i| BrokerId(*i)).collect())
        }
    }
}

fn list(ids: &BTreeSet<BrokerId>) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn describe(change: &BrokerChange) -> String {
    match change {
        BrokerChange::Add(ids) => format!("add broker(s) {}", list(ids)),
        BrokerChange::Remove(ids) => format!("remove broker(s) {}", list(ids)),
        BrokerChange::Rebalance => "a full rebalance".to_owned(),
    }
}

/// Records a horizontal operation in the status (durably, before anything changes) and
/// takes its first step.
pub(crate) async fn start(
    scope: &Scope<'_>,
    status: &mut KafkaAutopilotStatus,
    shape: &Shape,
    target: &ShapeStatus,
) -> Result<std::time::Duration, ReconcileError> {
    let Scope {
        ap,
        spec,
        ctx,
        api,
        observed,
        ..
    } = *scope;
    let (from, to) = (shape.brokers, target.brokers);
    let kind = if to > from { OP_ADD } else { OP_REMOVE };
    let ids = changed_ids(&spec.target, &observed.object, from, to).unwrap_or_default();
    status.operation = Some(OperationStatus {
        kind: kind.to_owned(),
        from_instance_type: shape.instance.name.to_string(),
        to_instance_type: shape.instance.name.to_string(),
        phase: "Running".to_owned(),
        started_at: now_rfc3339(),
        finished_at: None,
        message: Some(format!("{from} -> {to} broker(s)")),
        brokers: ids
            .iter()
            .map(|id| BrokerProgress {
                id: id.0,
                phase: "pending".to_owned(),
                down_since: None,
            })
            .collect(),
        journal: None,
        from_brokers: Some(from),
        to_brokers: Some(to),
        rebuild_throttle: None,
    });
    operation_started(
        ap,
        ctx,
        api,
        status,
        &format!(
            "{kind}: {from} -> {to} broker(s) of {}",
            shape.instance.name
        ),
        format!(
            "{kind}: from {from} to {to} broker(s) of {}{}",
            shape.instance.name,
            if ids.is_empty() {
                String::new()
            } else {
                format!(" (broker(s) {})", list(&ids))
            }
        ),
    )
    .await?;
    continue_operation(scope, status).await
}

/// Where one step left the operation.
enum Step {
    /// Wait and look again (the message says for what).
    Wait(String),
    /// The broker count is reached.
    Done,
}

/// Takes the next step of the horizontal operation in the status: `Paused` while
/// `spec.paused`; `Halted` (with the message and a condition) on a failure, which the next
/// reconcile retries; `Completed` at the end.
pub(crate) async fn continue_operation(
    scope: &Scope<'_>,
    status: &mut KafkaAutopilotStatus,
) -> Result<Duration, ReconcileError> {
    let Scope {
        ap,
        spec,
        ctx,
        observed,
        ..
    } = *scope;
    let Some(op) = status.operation.clone() else {
        return Ok(ctx.busy_requeue);
    };
    let kind = op.kind.clone();
    if spec.paused {
        if let Some(o) = status.operation.as_mut() {
            o.phase = "Paused".to_owned();
            o.message = Some("held before the next step: spec.paused".to_owned());
        }
        return Ok(ctx.busy_requeue);
    }
    let outcome = match (op.from_brokers, op.to_brokers) {
        (Some(from), Some(to)) => {
            if let Some(o) = status.operation.as_mut() {
                o.phase = "Running".to_owned();
            }
            step(scope, status, from, to).await
        }
        _ => Err(HorizontalError::Incomplete { kind: kind.clone() }.into()),
    };
    match outcome {
        Ok(Step::Wait(message)) => {
            info!(%message, "horizontal operation waiting");
            if let Some(o) = status.operation.as_mut() {
                o.message = Some(message);
            }
            Ok(ctx.busy_requeue)
        }
        Ok(Step::Done) => {
            finish(ap, spec, ctx, status, observed).await?;
            Ok(Duration::from_secs_f64(
                spec.settings.decision_interval.secs(),
            ))
        }
        Err(e) => {
            operation_halted(ap, ctx, status, "HorizontalHalted", &e);
            Err(e)
        }
    }
}

async fn step(
    scope: &Scope<'_>,
    status: &mut KafkaAutopilotStatus,
    from: u32,
    to: u32,
) -> Result<Step, ReconcileError> {
    let Scope {
        ap,
        spec,
        ctx,
        namespace,
        observed,
        conn,
        ..
    } = *scope;
    let recorded = match status.operation.as_ref().and_then(|o| o.journal.as_deref()) {
        None => None,
        Some(text) => Some(
            Journal::from_json(text).map_err(|e| HorizontalError::Journal {
                message: e.to_string(),
            })?,
        ),
    };
    let adding = to > from;
    if adding {
        // 1. More replicas (idempotent).
        if observed.brokers < to {
            patch_replicas(spec, ctx, namespace, to, None).await?;
            return Ok(Step::Wait(format!(
                "replicas patched to {to}; waiting for the new broker(s) to join"
            )));
        }
    } else if observed.brokers <= to {
        // The replicas were patched down after the drain: nothing left to do.
        return Ok(Step::Done);
    }
    // The ids: the journal's once planned, else from the target.
    let ids = match recorded.as_ref().map(|j| &j.change) {
        Some(BrokerChange::Add(ids) | BrokerChange::Remove(ids)) => ids.clone(),
        _ => match changed_ids(&spec.target, &observed.object, from, to) {
            Some(ids) => ids,
            None if adding => {
                return Ok(Step::Wait(
                    "waiting for Strimzi to report the new node ids (KafkaNodePool status.nodeIds)"
                        .to_owned(),
                ));
            }
            None => {
                return Err(HorizontalError::BrokerIds {
                    kind: OP_REMOVE.to_owned(),
                    message: "the KafkaNodePool has no status.nodeIds".to_owned(),
                }
                .into());
            }
        },
    };
    let change = if adding {
        BrokerChange::Add(ids.clone())
    } else {
        BrokerChange::Remove(ids.clone())
    };
    if let Some(j) = &recorded
        && j.change != change
    {
        return Err(HorizontalError::JournalMismatch {
            recorded: describe(&j.change),
            wanted: describe(&change),
        }
        .into());
    }

    let admin = conn.connect().await?;
    let result = rebalance(scope, status, &admin, change, recorded, adding, &ids).await;
    admin.close();
    match result? {
        Step::Done if !adding => {
            // 4. Only now do the replicas go down.
            patch_replicas(spec, ctx, namespace, to, Some(&ids)).await?;
            publish(
                ctx,
                ap,
                EventType::Normal,
                "BrokersRemoved",
                format!(
                    "broker(s) {} hold no replica; replicas patched to {to}",
                    list(&ids)
                ),
            )
            .await;
            Ok(Step::Done)
        }
        other => Ok(other),
    }
}

/// Plans (or resumes) and runs the rebalance; for a removal, checks the drain again.
async fn rebalance(
    scope: &Scope<'_>,
    status: &mut KafkaAutopilotStatus,
    admin: &AdminClient,
    change: BrokerChange,
    recorded: Option<Journal>,
    adding: bool,
    ids: &BTreeSet<BrokerId>,
) -> Result<Step, ReconcileError> {
    let Scope {
        ap,
        spec,
        ctx,
        api,
        observed,
        conn,
        ..
    } = *scope;
    let name = ap.name_any();
    let metadata = admin
        .metadata()
        .await
        .map_err(|e| crate::observe::ObserveError::Snapshot {
            bootstrap: conn.bootstrap(),
            message: e.to_string(),
        })?;
    if adding {
        // 2. The new brokers must be registered before planning.
        let missing: BTreeSet<BrokerId> = ids
            .iter()
            .filter(|id| !metadata.brokers.contains_key(id))
            .copied()
            .collect();
        if !missing.is_empty() {
            return Ok(Step::Wait(format!(
                "waiting for broker(s) {} to register in the Kafka cluster",
                list(&missing)
            )));
        }
    }
    let _completed: Journal = match recorded {
        Some(j) if j.status == RunStatus::Completed => j,
        Some(j) => run(ctx, api, &name, status, admin, j, &change).await?,
        None => {
            // 3. Plan, with the same health gate as the start of a vertical roll.
            let key = format!("{}/{name}", ap.namespace().unwrap_or_default());
            let facts = ctx.observer.observe(&key, conn).await?;
            if !facts.healthy() {
                return Ok(Step::Wait(format!(
                    "waiting for a healthy cluster before moving partitions ({} under-replicated, {} offline partition(s))",
                    facts.under_replicated, facts.offline
                )));
            }
            let input = read_plan_input(admin, change.clone()).await.map_err(|e| {
                HorizontalError::ReadPlanInput {
                    bootstrap: conn.bootstrap(),
                    change: describe(&change),
                    message: e.to_string(),
                }
            })?;
            let prepared =
                prepare(&input, ctx.rebalance.limits).map_err(|e| HorizontalError::Plan {
                    change: describe(&change),
                    message: e.to_string(),
                })?;
            let shape = shape_of(spec, &ctx.catalog, &observed.instance, observed.brokers)?;
            // The fan-out the last decision planned with (measured, or the spec's).
            let fanout = status
                .load
                .as_ref()
                .and_then(|l| l.fanout)
                .unwrap_or(spec.fanout);
            let workload = Workload::new(
                facts.replication_factor,
                facts.min_insync_replicas,
                fanout,
                spec.settings.target_utilization,
            )
            .map_err(|e| ReconcileError::Policy(e.to_string()))?;
            let (throttle, source) = throttle_for(&shape, &workload, facts.ingress, &ctx.rebalance);
            let journal = prepared.journal(metadata.cluster_id.clone(), Some(throttle));
            let s = &prepared.summary;
            let note = format!(
                "{}: {} partition(s), {:.1} MB in {} batch(es) (lower bound {:.1} MB); throttle {:.1} MB/s per broker ({source})",
                describe(&change),
                s.partitions_to_move,
                s.bytes_to_move as f64 / 1e6,
                s.batches,
                s.lower_bound_bytes as f64 / 1e6,
                throttle as f64 / 1e6,
            );
            info!(%note, "rebalance planned");
            if let Some(o) = status.operation.as_mut() {
                o.journal = Some(journal.to_json());
                o.brokers = journal.progress();
                o.message = Some(note.clone());
            }
            write_status(api, &name, status).await?;
            publish(ctx, ap, EventType::Normal, "RebalanceStarted", note).await;
            run(ctx, api, &name, status, admin, journal, &change).await?
        }
    };
    if adding {
        return Ok(Step::Done);
    }
    // The drain check, again right before the replicas go down: a topic created since the
    // executor's own check may have placed a replica on a removed broker. The log dirs too,
    // since Metadata leaves out topics the principal may not Describe.
    let check_failed = |e: PortError| HorizontalError::DrainCheck {
        brokers: list(ids),
        message: e.to_string(),
    };
    let assignment = ReassignPort::assignment(admin)
        .await
        .map_err(check_failed)?;
    let mut holding = Vec::new();
    for id in ids {
        let n = assignment.values().filter(|r| r.contains(id)).count();
        if n > 0 {
            holding.push(format!("broker {id} holds {n} replica(s)"));
            continue;
        }
        let stored = ReassignPort::stored(admin, *id)
            .await
            .map_err(check_failed)?;
        if let Some(example) = stored.first() {
            holding.push(format!(
                "broker {id} stores {} partition(s) the metadata does not show (e.g. {example})",
                stored.len()
            ));
        }
    }
    if !holding.is_empty() {
        warn!(
            ?holding,
            "removed brokers hold replicas again; planning the drain again"
        );
        if let Some(o) = status.operation.as_mut() {
            o.journal = None;
        }
        write_status(api, &name, status).await?;
        return Ok(Step::Wait(format!(
            "{}; draining again before the replicas go down",
            holding.join(", ")
        )));
    }
    Ok(Step::Done)
}

/// Runs (or resumes) `journal` through the executor with the journal kept in the status;
/// returns the completed journal.
async fn run(
    ctx: &Context,
    api: &Api<KafkaAutopilot>,
    name: &str,
    status: &mut KafkaAutopilotStatus,
    admin: &AdminClient,
    journal: Journal,
    change: &BrokerChange,
) -> Result<Journal, ReconcileError> {
    // A run from the first batch times the whole move; a resumed one only its part.
    let whole = journal
        .batches
        .iter()
        .all(|b| b.state == BatchState::Pending);
    let store = StatusJournal::new(api.clone(), name, Some(journal.clone()));
    let (cancel_handle, cancel) = Cancel::new();
    let port = JournaledPort::new(admin, &store).cancelling(cancel_handle);
    let result = Executor::new(
        &port,
        ctx.rebalance.executor.clone(),
        |e: &Event| {
            info!(event = %e, "rebalance");
            store.set_message(e.to_string());
        },
        cancel,
    )
    .run(journal, &mut RebalanceStore(&store))
    .await;
    if let Err(e) = store.flush().await {
        warn!(error = %e, "could not record the final rebalance journal");
    }
    let last = store.journal();
    if let Some(o) = status.operation.as_mut() {
        o.journal = last.as_ref().map(Journal::to_json);
        o.brokers = last
            .as_ref()
            .map(StatusRecord::progress)
            .unwrap_or_default();
    }
    let failed = |message: String| {
        ReconcileError::from(HorizontalError::Execute {
            change: describe(change),
            message,
        })
    };
    match result {
        Ok(report) if report.status == RunStatus::Completed => {
            time_the_move(status, change, &report, whole, ctx.rebalance.timed_from);
            if let Some(o) = status.operation.as_mut() {
                o.message = Some(format!(
                    "{}: {} partition(s), {:.1} MB moved in {:.1}s{}",
                    describe(change),
                    report.partitions_moved,
                    report.bytes_moved as f64 / 1e6,
                    report.elapsed_secs,
                    report
                        .election
                        .as_ref()
                        .map(|e| format!("; {} preferred leader(s) elected", e.elected))
                        .unwrap_or_default()
                ));
            }
            last.ok_or_else(|| failed("the executor saved no journal".to_owned()))
        }
        Ok(report) => Err(failed(format!(
            "the rebalance ended as {:?}",
            report.status
        ))),
        Err(e) => {
            if matches!(e, ExecuteError::StillStores { .. })
                && let Some(o) = status.operation.as_mut()
            {
                // Every move of this plan is made; what is left is data the plan did not see.
                // The next reconcile plans again, which moves it once the metadata shows it
                // or names the missing ACL.
                o.journal = None;
                write_status(api, name, status).await?;
            }
            Err(failed(e.to_string()))
        }
    }
}

/// Records the completed rebalance's data move in `status.moves` when it can be timed (see
/// [`crate::moves`]); logs why not otherwise.
fn time_the_move(
    status: &mut KafkaAutopilotStatus,
    change: &BrokerChange,
    report: &kpilot_reassign::Report,
    whole: bool,
    timed_from: Span,
) {
    let Some(o) = status.operation.as_ref() else {
        return;
    };
    let receivers = match (change, o.from_brokers, o.to_brokers) {
        (BrokerChange::Add(ids), _, _) => ids.len() as u32,
        (BrokerChange::Remove(_), _, Some(to)) => to,
        _ => return,
    };
    let rebalance = crate::moves::Rebalance {
        at: &o.started_at,
        kind: &o.kind,
        bytes: report.bytes_moved,
        seconds: report.elapsed_secs,
        throttle_bytes_per_s: report.throttle_bytes_per_s,
        receivers,
        whole,
        timed_from,
    };
    match crate::moves::measured(&rebalance) {
        Ok(m) => {
            info!(
                share = m.share,
                bytes = m.bytes,
                seconds = m.seconds,
                "data move timed"
            );
            crate::moves::record(&mut status.moves, m);
        }
        Err(why) => info!(%why, "data move not timed"),
    }
}

/// Patches the target's `spec.replicas` to `replicas`; for a Strimzi scale-down, also names
/// the node ids to remove.
async fn patch_replicas(
    spec: &ValidSpec,
    ctx: &Context,
    namespace: &str,
    replicas: u32,
    removed: Option<&BTreeSet<BrokerId>>,
) -> Result<(), ReconcileError> {
    info!(replicas, "patching the target's replicas");
    match &spec.target {
        Target::StatefulSet { name, .. } => {
            let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), namespace);
            api.patch(
                name,
                &PatchParams::apply(FIELD_MANAGER),
                &Patch::Merge(json!({"spec": {"replicas": replicas}})),
            )
            .await
            .map_err(kube_err(
                "patching the replicas of StatefulSet",
                name.clone(),
            ))?;
        }
        Target::Strimzi { node_pool, .. } => {
            let api: Api<DynamicObject> =
                Api::namespaced_with(ctx.client.clone(), namespace, &node_pool_resource());
            let mut patch = json!({"spec": {"replicas": replicas}});
            if let Some(ids) = removed {
                let ids: Vec<i32> = ids.iter().map(|b| b.0).collect();
                patch["metadata"] = json!({"annotations": {
                    STRIMZI_REMOVE_NODE_IDS: serde_json::to_string(&ids).unwrap_or_default()
                }});
            }
            api.patch(
                node_pool,
                &PatchParams::apply(FIELD_MANAGER),
                &Patch::Merge(patch),
            )
            .await
            .map_err(kube_err(
                "patching the replicas of KafkaNodePool",
                node_pool.clone(),
            ))?;
        }
    }
    Ok(())
}

async fn finish(
    ap: &KafkaAutopilot,
    spec: &ValidSpec,
    ctx: &Context,
    status: &mut KafkaAutopilotStatus,
    observed: &Observed,
) -> Result<(), ReconcileError> {
    let to = status
        .operation
        .as_ref()
        .and_then(|o| o.to_brokers)
        .unwrap_or(observed.brokers);
    let shape = shape_of(spec, &ctx.catalog, &observed.instance, to)?;
    let message = format!("{} broker(s) of {}", to, shape.instance.name);
    operation_completed(ap, ctx, status, &shape, message).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[i32]) -> BTreeSet<BrokerId> {
        v.iter().map(|i| BrokerId(*i)).collect()
    }

    #[test]
    fn a_statefulset_grows_and_shrinks_at_its_top_ordinals() {
        let sts = Target::StatefulSet {
            name: "kafka".into(),
            first_broker_id: 1,
            karpenter: None,
        };
        assert_eq!(changed_ids(&sts, &Value::Null, 3, 5), Some(ids(&[4, 5])));
        assert_eq!(changed_ids(&sts, &Value::Null, 4, 3), Some(ids(&[4])));
        let zero = Target::StatefulSet {
            name: "kafka".into(),
            first_broker_id: 0,
            karpenter: None,
        };
        assert_eq!(
            changed_ids(&zero, &Value::Null, 6, 3),
            Some(ids(&[3, 4, 5]))
        );
    }

    #[test]
    fn a_node_pool_uses_its_reported_node_ids() {
        let pool = Target::Strimzi {
            kafka: "k".into(),
            node_pool: "brokers".into(),
            karpenter: None,
        };
        let before = json!({"status": {"nodeIds": [12, 10, 11]}});
        // Strimzi has not scaled up yet.
        assert_eq!(changed_ids(&pool, &before, 3, 4), None);
        let after = json!({"status": {"nodeIds": [10, 11, 12, 13]}});
        assert_eq!(changed_ids(&pool, &after, 3, 4), Some(ids(&[13])));
        assert_eq!(changed_ids(&pool, &after, 4, 3), Some(ids(&[13])));
        assert_eq!(changed_ids(&pool, &json!({}), 4, 3), None);
    }

    #[test]
    fn the_throttle_comes_from_the_headroom_else_the_default_capped() {
        let catalog = kpilot_capacity::Catalog::builtin().expect("catalog");
        let instance = catalog
            .instance(&"m7g.large".parse().expect("type"))
            .expect("m7g.large")
            .clone();
        let storage =
            kpilot_capacity::Storage::gp3(&catalog, 1000.0, Throughput::from_mb_per_s(250.0))
                .expect("gp3");
        let shape = Shape {
            instance,
            brokers: 3,
            storage,
        };
        let workload = Workload::new(3, 2, 1.0, 0.8).expect("workload");
        let settings = Settings::default();
        let light = Throughput::from_mb_per_s(5.0);
        let (rate, source) = throttle_for(&shape, &workload, Some(light), &settings);
        let expected = kpilot_rebalance::choose_throttle(
            &kpilot_capacity::BrokerCapacity::sustained(&shape),
            3,
            &workload,
            light,
        )
        .expect("headroom");
        assert_eq!(rate, expected.rate.bytes_per_s().round() as u64);
        assert!(source.starts_with("capacity model"), "{source}");
        // More headroom at a lighter load.
        let (heavier, _) = throttle_for(
            &shape,
            &workload,
            Some(Throughput::from_mb_per_s(40.0)),
            &settings,
        );
        assert!(heavier < rate, "{heavier} < {rate}");
        // Overloaded: no headroom, the default.
        let (rate, source) = throttle_for(
            &shape,
            &workload,
            Some(Throughput::from_mb_per_s(500.0)),
            &settings,
        );
        assert_eq!(rate, 50_000_000);
        assert!(source.contains("default"), "{source}");
        let (rate, source) = throttle_for(&shape, &workload, None, &settings);
        assert_eq!(rate, 50_000_000);
        assert!(source.contains("not measured"), "{source}");
        // The cap.
        let capped = Settings {
            max_throttle: Some(Throughput::from_mb_per_s(1.0)),
            ..Settings::default()
        };
        let (rate, source) = throttle_for(&shape, &workload, Some(light), &capped);
        assert_eq!(rate, 1_000_000);
        assert!(
            source.contains("capped") && source.contains("capacity model"),
            "{source}"
        );
    }

    #[test]
    fn a_new_operation_clears_the_previous_journal_in_the_stored_status() {
        let status = KafkaAutopilotStatus {
            operation: Some(OperationStatus {
                kind: OP_REMOVE.into(),
                from_instance_type: "m7g.large".into(),
                to_instance_type: "m7g.large".into(),
                phase: "Running".into(),
                started_at: "2026-01-01T00:00:00Z".into(),
                finished_at: None,
                message: None,
                brokers: vec![],
                journal: None,
                from_brokers: Some(4),
                to_brokers: Some(3),
                rebuild_throttle: None,
            }),
            ..KafkaAutopilotStatus::default()
        };
        let patch = crate::reconcile::status_patch(&status);
        let op = &patch["status"]["operation"];
        // JSON merge patch: only an explicit null removes the stored journal.
        assert!(op.get("journal").is_some_and(Value::is_null), "{op}");
        assert!(op.get("finishedAt").is_some_and(Value::is_null), "{op}");
        assert_eq!(op["toBrokers"], 3);
    }

    #[test]
    fn the_rebalance_journal_shows_per_broker_progress() {
        let mut j = Journal::new(None, BrokerChange::Add(ids(&[4])), Some(1), vec![]);
        assert_eq!(j.progress()[0].phase, "pending");
        j.status = RunStatus::Completed;
        assert_eq!(
            j.progress(),
            vec![BrokerProgress {
                id: 4,
                phase: "done".into(),
                down_since: None,
            }]
        );
    }
}
