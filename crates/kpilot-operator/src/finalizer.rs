//! The operator's finalizer, held only while an operation is in progress, so that deleting an
//! autopilot in the middle of one leaves the cluster as safe as it was before the operation:
//!
//! - [`add`] runs before an operation's intent is recorded (nothing changes in the cluster
//!   before the finalizer is on the object); the reconcile [`release`]s it once no operation
//!   is in progress.
//! - An operation running in this process sees the deletion through its status journal
//!   ([`crate::fleet::StatusJournal::deleting`]): a rebalance cancels its batch in flight
//!   and removes its throttles; a StatefulSet roll restarts no further broker.
//! - [`clean_up`] runs for an autopilot being deleted that still holds the finalizer (also
//!   when the operator was down at the deletion): it cancels what a rebalance has in flight
//!   and removes its throttles (from the journal in the status), lifts the rebuild throttles
//!   of a roll onto local disks (a StatefulSet roll's journal, a Strimzi roll's
//!   `rebuildThrottle`), lifts the Strimzi pause the gate may have set, records the
//!   operation `Cancelled`, and releases the finalizer. When it cannot (Kafka unreachable,
//!   say) the finalizer stays, the error is in `status.lastError`, and it is retried.
//!
//! Performs Kubernetes API and Kafka I/O.

use std::time::Duration;

use kpilot_reassign::{Cancel, Executor, Journal, RunStatus};
use kube::ResourceExt as _;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use serde_json::json;
use tracing::{info, warn};

use crate::crd::{KafkaAutopilot, KafkaAutopilotStatus, OperationStatus};
use crate::fleet::StatusJournal;
use crate::horizontal::{JournaledPort, RebalanceStore, is_horizontal};
use crate::reconcile::{
    Context, ReconcileError, connection, kube_err, now_rfc3339, publish, strimzi_pause,
    write_status,
};
use crate::validate::{Target, validate};

/// The finalizer the operator puts on an autopilot while an operation is in progress.
pub const FINALIZER: &str = "kpilot.io/operation";

/// Whether the autopilot carries the operator's finalizer.
pub fn holds(ap: &KafkaAutopilot) -> bool {
    ap.finalizers().iter().any(|f| f == FINALIZER)
}

/// Whether an operation is in progress (not yet completed or cancelled).
pub fn in_progress(status: &KafkaAutopilotStatus) -> bool {
    status.operation.as_ref().is_some_and(active)
}

fn active(op: &OperationStatus) -> bool {
    matches!(op.phase.as_str(), "Running" | "Paused" | "Halted")
}

/// Puts the finalizer on autopilot `name` (read fresh; the write carries its
/// `resourceVersion`, so a concurrent change makes it fail and the operation does not start).
/// The API server refuses it once the autopilot is being deleted, which is what we want.
pub async fn add(api: &Api<KafkaAutopilot>, name: &str) -> Result<(), ReconcileError> {
    let ap = api
        .get(name)
        .await
        .map_err(kube_err("reading KafkaAutopilot", name))?;
    if holds(&ap) {
        return Ok(());
    }
    let mut finalizers = ap.finalizers().to_vec();
    finalizers.push(FINALIZER.to_owned());
    write_finalizers(api, &ap, finalizers)
        .await
        .map_err(kube_err("adding the finalizer to KafkaAutopilot", name))
}

/// Takes the finalizer off autopilot `name`, if it is there (and the autopilot still exists).
pub async fn release(api: &Api<KafkaAutopilot>, name: &str) -> Result<(), ReconcileError> {
    let Some(ap) = api
        .get_opt(name)
        .await
        .map_err(kube_err("reading KafkaAutopilot", name))?
    else {
        return Ok(());
    };
    if !holds(&ap) {
        return Ok(());
    }
    let finalizers: Vec<String> = ap
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    match write_finalizers(api, &ap, finalizers).await {
        // An autopilot that went away meanwhile holds nothing.
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        result => result.map_err(kube_err("removing the finalizer from KafkaAutopilot", name)),
    }
}

/// Writes `finalizers` as the autopilot's list, conditional on the `resourceVersion` it was
/// read at.
async fn write_finalizers(
    api: &Api<KafkaAutopilot>,
    ap: &KafkaAutopilot,
    finalizers: Vec<String>,
) -> Result<(), kube::Error> {
    let patch = json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": ap.resource_version(),
    }});
    api.patch(
        &ap.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(|_| ())
}

/// Cleans up after the operation an autopilot being deleted was running, then releases the
/// finalizer (see the module documentation). Returns when to look again if it could not.
pub async fn clean_up(ap: &KafkaAutopilot, ctx: &Context) -> Result<Duration, ReconcileError> {
    let span = tracing::info_span!(
        "cleanup",
        autopilot = %format!("{}/{}", ap.namespace().unwrap_or_default(), ap.name_any())
    );
    let result = tracing::Instrument::instrument(clean_up_inner(ap, ctx), span).await;
    if let Err(e) = &result {
        ctx.metrics
            .inc("kpilot_errors_total", &[("step", e.step())]);
    }
    result
}

async fn clean_up_inner(ap: &KafkaAutopilot, ctx: &Context) -> Result<Duration, ReconcileError> {
    let name = ap.name_any();
    let namespace = ap.namespace().unwrap_or_else(|| "default".to_owned());
    let api: Api<KafkaAutopilot> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut status = ap.status.clone().unwrap_or_default();
    let Some(op) = status.operation.clone().filter(active) else {
        release(&api, &name).await?;
        info!("finalizer released (no operation in progress)");
        return Ok(ctx.busy_requeue);
    };
    let message = match undo(ap, ctx, &api, &namespace, &op).await {
        Ok(message) => message,
        Err(e) => {
            let message = format!(
                "cleaning up before the deletion: {e}; it is retried. To give up: `kpilot rebalance --cancel` (for a rebalance), then remove the finalizer {FINALIZER}"
            );
            warn!(%message, "cleanup failed");
            if status.last_error.as_deref() != Some(message.as_str()) {
                publish(
                    ctx,
                    ap,
                    EventType::Warning,
                    "CleanupFailed",
                    message.clone(),
                )
                .await;
            }
            status.last_error = Some(message);
            write_status(&api, &name, &status).await?;
            return Err(e);
        }
    };
    if let Some(o) = status.operation.as_mut() {
        o.phase = "Cancelled".to_owned();
        o.finished_at = Some(now_rfc3339());
        o.message = Some(message.clone());
    }
    status.last_error = None;
    write_status(&api, &name, &status).await?;
    ctx.metrics.inc(
        "kpilot_operations_total",
        &[("kind", &op.kind), ("event", "cancelled")],
    );
    ctx.metrics.set("kpilot_operation_in_progress", &[], 0.0);
    info!(%message, "operation cancelled: the autopilot is being deleted");
    publish(ctx, ap, EventType::Normal, "OperationCancelled", message).await;
    release(&api, &name).await?;
    info!("finalizer released");
    Ok(ctx.busy_requeue)
}

/// Undoes what makes an interrupted operation unsafe to leave; returns what was done.
async fn undo(
    ap: &KafkaAutopilot,
    ctx: &Context,
    api: &Api<KafkaAutopilot>,
    namespace: &str,
    op: &OperationStatus,
) -> Result<String, ReconcileError> {
    let name = ap.name_any();
    if is_horizontal(&op.kind) {
        let Some(text) = op.journal.as_deref() else {
            return Ok(format!(
                "{}: the autopilot was deleted before any partition moved",
                op.kind
            ));
        };
        let journal = Journal::from_json(text).map_err(|e| ReconcileError::Cleanup {
            message: format!("the rebalance journal in the status cannot be read: {e}"),
        })?;
        if journal.status == RunStatus::Completed {
            return Ok(format!(
                "{}: the autopilot was deleted after the partitions moved",
                op.kind
            ));
        }
        if journal.in_flight().is_empty() && !journal.throttle_applied {
            return Ok(format!(
                "{}: the autopilot was deleted; no reassignment was in flight and no throttle set",
                op.kind
            ));
        }
        let spec = validate(&ap.spec, &ctx.catalog).map_err(|e| ReconcileError::Cleanup {
            message: format!("the spec is invalid, so Kafka cannot be reached: {e}"),
        })?;
        let conn = connection(&spec, ctx, namespace).await?;
        let admin = conn.connect().await?;
        let store = StatusJournal::new(api.clone(), &name, Some(journal.clone()));
        let port = JournaledPort::new(&admin, &store);
        let result = Executor::new(
            &port,
            ctx.rebalance.executor.clone(),
            |e: &kpilot_reassign::Event| info!(event = %e, "cleanup"),
            Cancel::never(),
        )
        .cancel(journal, &mut RebalanceStore(&store))
        .await;
        if let Err(e) = store.flush().await {
            warn!(error = %e, "could not record the cancelled rebalance journal");
        }
        admin.close();
        let report = result.map_err(|e| ReconcileError::Cleanup {
            message: format!("cancelling the rebalance: {e}"),
        })?;
        return Ok(format!(
            "{}: the autopilot was deleted; the reassignments in flight were cancelled and the throttles removed ({} partition(s) had moved)",
            op.kind, report.partitions_moved
        ));
    }
    let spec = validate(&ap.spec, &ctx.catalog).map_err(|e| ReconcileError::Cleanup {
        message: format!("the spec is invalid, so the Kafka resource is unknown: {e}"),
    })?;
    if let Target::Strimzi { kafka, .. } = &spec.target {
        // The rebuild throttle of a roll onto local disks goes first: Strimzi rolls the
        // remaining pods on its own and nothing would lift it later.
        let lifted = if op.rebuild_throttle.is_some() {
            let conn = connection(&spec, ctx, namespace).await?;
            crate::strimzi_rebuild::lift_abandoned(&conn, op).await?
        } else {
            false
        };
        match strimzi_pause(ctx, namespace, kafka, false).await {
            Ok(()) | Err(ReconcileError::TargetNotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        return Ok(format!(
            "{}: the autopilot was deleted; Strimzi's reconciliation of Kafka {kafka} is not paused, and Strimzi rolls the remaining pods to {} on its own{}",
            op.kind,
            op.to_instance_type,
            if lifted {
                " (the rebuild throttle is lifted: their rebuilds run unthrottled)"
            } else {
                ""
            }
        ));
    }
    let lifted = lift_roll_rebuilds(&spec, ctx, namespace, op).await?;
    Ok(format!(
        "{}: the autopilot was deleted; no further pod is restarted (the StatefulSet's template asks for {}, pods restarted from now on get it){}",
        op.kind,
        op.to_instance_type,
        if lifted.is_empty() {
            String::new()
        } else {
            format!(
                "; the rebuild throttle of broker(s) {} is lifted (a rebuild still running goes on unthrottled)",
                lifted
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    ))
}

/// The rebuild throttles a StatefulSet roll onto local disks recorded as possibly in force
/// (`applied` in the roll journal: the operator stopped between setting and lifting one),
/// lifted: nothing else would lift them. Returns the brokers whose throttle was lifted.
async fn lift_roll_rebuilds(
    spec: &crate::validate::ValidSpec,
    ctx: &Context,
    namespace: &str,
    op: &OperationStatus,
) -> Result<Vec<i32>, ReconcileError> {
    let Some(journal) = op
        .journal
        .as_deref()
        .and_then(|j| kpilot_roll::Journal::from_json(j).ok())
    else {
        return Ok(Vec::new());
    };
    let applied: Vec<_> = journal
        .nodes
        .iter()
        .filter_map(|n| Some((n.id, n.rebuild.clone().filter(|r| r.applied)?)))
        .collect();
    if applied.is_empty() {
        return Ok(Vec::new());
    }
    let conn = connection(spec, ctx, namespace).await?;
    let admin = conn.connect().await?;
    let mut lifted = Vec::new();
    let mut result = Ok(());
    for (node, rebuild) in &applied {
        let throttle = kpilot_roll::ReplicationThrottle::of_rebuild(*node, rebuild);
        if let Err(e) = throttle.lift(&admin).await {
            result = Err(ReconcileError::Cleanup {
                message: format!("lifting the rebuild throttle of broker {node}: {e}"),
            });
            break;
        }
        lifted.push(node.0);
    }
    admin.close();
    result.map(|()| lifted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operation(phase: &str) -> KafkaAutopilotStatus {
        KafkaAutopilotStatus {
            operation: Some(OperationStatus {
                kind: "vertical-strimzi".into(),
                from_instance_type: "m7g.large".into(),
                to_instance_type: "m7g.xlarge".into(),
                phase: phase.into(),
                started_at: "2026-11-23T00:00:00Z".into(),
                finished_at: None,
                message: None,
                brokers: Vec::new(),
                journal: None,
                from_brokers: None,
                to_brokers: None,
                rebuild_throttle: None,
            }),
            ..KafkaAutopilotStatus::default()
        }
    }

    #[test]
    fn only_an_unfinished_operation_keeps_the_finalizer() {
        for phase in ["Running", "Paused", "Halted"] {
            assert!(in_progress(&operation(phase)), "{phase}");
        }
        for phase in ["Completed", "Cancelled"] {
            assert!(!in_progress(&operation(phase)), "{phase}");
        }
        assert!(!in_progress(&KafkaAutopilotStatus::default()));
    }
}
