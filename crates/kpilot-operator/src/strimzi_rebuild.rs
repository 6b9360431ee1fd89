//! The replication throttle around a Strimzi roll onto local disks.
//!
//! Each broker Strimzi restarts onto a new node comes back with an empty disk and copies all
//! its replicas back. The operator's own StatefulSet roll throttles each rebuild between the
//! broker's stop and its return to every ISR (`kpilot-roll`); Strimzi restarts the pods
//! itself, so here the operator throttles the whole roll instead:
//!
//! 1. before the node pool asks for the new type, it refuses while someone else's replication
//!    throttles are set (the roll would overwrite and then delete them);
//! 2. it records the throttle in `status.operation.rebuildThrottle`, written before anything
//!    is set, so an operator restarted at any point knows to lift it;
//! 3. it sets both rates on every broker and `*` as both replica lists of every topic. Kafka
//!    throttles only replicas out of the ISR, i.e. the rebuilding ones;
//! 4. each poll checks that the throttle is still all set and sets again what was removed
//!    (Strimzi reconciling dynamic configs, another tool), with a Warning Event ([`keep`]).
//!    A config someone else set to another value is theirs: it is left as it is, recorded in
//!    `rebuildThrottle.yielded` with a Warning Event, and not removed by the lift.
//!    It also times the rebuilds ([`time_rebuilds`]): from the first poll that sees a
//!    broker's pod Ready on the new type (and what it stores then) to the first that sees it
//!    back in every ISR; each is recorded in `status.moves` like a StatefulSet roll's
//!    rebuilds, so the policy learns the share of the throttle they reach;
//! 5. once every pod runs the new type, it waits for every partition to be back in sync
//!    (the last broker's rebuild is still throttled) and lifts the throttle before the
//!    operation completes. Deleting the autopilot mid-roll lifts it too.
//!
//! Performs Kafka I/O.

use kpilot_kafka::AdminClient;
use kpilot_roll::{Drift, KafkaPort as _, ReplicationThrottle, ThrottledTopic};
use tracing::info;

use crate::crd::{KafkaAutopilotStatus, RebuildThrottleStatus};
use crate::observe::Connection;
use crate::reconcile::{ReconcileError, Scope, now_rfc3339, write_status};

fn roll_error(status: &KafkaAutopilotStatus, message: String) -> ReconcileError {
    ReconcileError::Roll {
        target: status
            .operation
            .as_ref()
            .map(|o| o.to_instance_type.clone())
            .unwrap_or_default(),
        message,
    }
}

/// The throttle recorded as set and not lifted yet.
fn in_force(status: &KafkaAutopilotStatus) -> Option<&RebuildThrottleStatus> {
    status
        .operation
        .as_ref()
        .and_then(|o| o.rebuild_throttle.as_ref())
        .filter(|r| r.set_at.is_some() && r.lifted_at.is_none())
}

fn throttle_of(recorded: &RebuildThrottleStatus) -> ReplicationThrottle {
    let brokers: Vec<_> = recorded
        .brokers
        .iter()
        .map(|b| kpilot_cluster::BrokerId(*b))
        .collect();
    ReplicationThrottle {
        receivers: brokers.clone(),
        senders: brokers,
        topics: recorded
            .topics
            .iter()
            .map(|t| ThrottledTopic::all(t.clone()))
            .collect(),
    }
}

/// Steps 1-3: sets the throttle at `rate` bytes per second, once per operation (a reconcile
/// that stopped after recording it and before `setAt` sets the recorded one again).
pub(crate) async fn throttle(
    scope: &Scope<'_>,
    status: &mut KafkaAutopilotStatus,
    rate: u64,
) -> Result<(), ReconcileError> {
    let Some(op) = status.operation.as_ref() else {
        return Ok(());
    };
    match &op.rebuild_throttle {
        Some(r) if r.set_at.is_some() || r.lifted_at.is_some() => return Ok(()),
        Some(r) => {
            // An earlier reconcile recorded it and stopped before it was set whole.
            let (throttle, rate) = (throttle_of(r), r.bytes_per_s);
            let admin = scope.conn.connect().await?;
            let result = throttle.set(&admin, rate).await;
            admin.close();
            result.map_err(|e| roll_error(status, format!("setting the rebuild throttle: {e}")))?;
        }
        None => {
            let admin = scope.conn.connect().await?;
            let result = record_and_set(scope, &admin, status, rate).await;
            admin.close();
            result?;
        }
    }
    if let Some(r) = status
        .operation
        .as_mut()
        .and_then(|o| o.rebuild_throttle.as_mut())
    {
        r.set_at = Some(now_rfc3339());
    }
    Ok(())
}

async fn record_and_set(
    scope: &Scope<'_>,
    admin: &AdminClient,
    status: &mut KafkaAutopilotStatus,
    rate: u64,
) -> Result<(), ReconcileError> {
    let found = admin.throttles_set().await.map_err(|e| {
        roll_error(
            status,
            format!("reading the replication throttles already set: {e}"),
        )
    })?;
    if !found.is_empty() {
        return Err(roll_error(
            status,
            format!(
                "refusing to let Strimzi roll onto empty disks (no pod was restarted): replication throttles are already set ({}); \
                 the roll throttles every broker and topic and then removes those configs, which would lose these. \
                 Finish or cancel the reassignment that set them (or delete them with kafka-configs --delete-config); \
                 the operation is retried",
                found.join(", ")
            ),
        ));
    }
    let metadata = admin.metadata().await.map_err(|e| {
        roll_error(
            status,
            format!("reading the brokers and topics to throttle: {e}"),
        )
    })?;
    let mut brokers: std::collections::BTreeSet<i32> =
        metadata.brokers.keys().map(|b| b.0).collect();
    brokers.extend(
        metadata
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .flat_map(|p| p.replicas.iter().map(|b| b.0)),
    );
    let recorded = RebuildThrottleStatus {
        bytes_per_s: rate,
        brokers: brokers.into_iter().collect(),
        topics: metadata.topics.keys().map(ToString::to_string).collect(),
        set_at: None,
        lifted_at: None,
        rebuilds: Vec::new(),
        yielded: Vec::new(),
    };
    let throttle = throttle_of(&recorded);
    if let Some(o) = status.operation.as_mut() {
        o.rebuild_throttle = Some(recorded);
        o.message = Some(format!(
            "throttling the rebuilds at {:.1} MB/s per broker before Strimzi rolls the pods",
            rate as f64 / 1e6
        ));
    }
    write_status(scope.api, &kube::ResourceExt::name_any(scope.ap), status).await?;
    throttle
        .set(admin, rate)
        .await
        .map_err(|e| roll_error(status, format!("setting the rebuild throttle: {e}")))?;
    info!(
        rate,
        brokers = throttle.receivers.len(),
        topics = throttle.topics.len(),
        "rebuild throttle set for the Strimzi roll"
    );
    Ok(())
}

/// For an autopilot deleted mid-roll: lifts a throttle it set and has not lifted. Strimzi
/// rolls the remaining pods on its own, unthrottled. `Ok(true)` when it lifted one.
pub(crate) async fn lift_abandoned(
    conn: &Connection,
    op: &crate::crd::OperationStatus,
) -> Result<bool, ReconcileError> {
    let Some(recorded) = op
        .rebuild_throttle
        .as_ref()
        .filter(|r| r.lifted_at.is_none())
    else {
        return Ok(false);
    };
    let admin = conn.connect().await?;
    let result = throttle_of(recorded)
        .lift_except(&admin, &recorded.yielded)
        .await;
    admin.close();
    result.map_err(|e| ReconcileError::Cleanup {
        message: format!("lifting the rebuild throttle of the Strimzi roll: {e}"),
    })?;
    Ok(true)
}

/// What one progress poll did with the throttle.
#[derive(Debug, Default)]
pub(crate) struct Polled {
    /// The parts of the throttle that had been removed and were set again.
    pub restored: Vec<String>,
    /// The parts someone else set to another value since the last poll: left to them.
    pub yielded: Vec<String>,
    /// With `lift`: how many partitions are still out of sync, the throttle kept for them.
    pub behind: Option<usize>,
}

/// Steps 4 and 5 of one progress poll, over one Kafka connection (none when no throttle is
/// recorded or it is lifted already): sets again what is missing of the throttle ([`keep`]),
/// times the rebuilds of the brokers in `ready` (their pods Ready on the new type,
/// [`time_rebuilds`]) and, with `lift` (every pod runs the new type), lifts the throttle once
/// every partition is back in sync. Keeping and timing are best effort; only the lift can fail
/// the reconcile, and only when it is due.
pub(crate) async fn poll(
    conn: &Connection,
    status: &mut KafkaAutopilotStatus,
    ready: &[i32],
    timed_from: kpilot_units::Span,
    lift: bool,
) -> Result<Polled, ReconcileError> {
    let pending = status
        .operation
        .as_ref()
        .and_then(|o| o.rebuild_throttle.as_ref())
        .is_some_and(|r| r.lifted_at.is_none());
    if !pending {
        return Ok(Polled::default());
    }
    let admin = match conn.connect().await {
        Ok(admin) => admin,
        Err(e) if lift => return Err(e.into()),
        Err(_) => return Ok(Polled::default()),
    };
    let result = async {
        let Kept { restored, yielded } = keep(&admin, status).await;
        // One look at the ISRs serves the timing and the lift.
        let metadata = admin.metadata().await;
        let behind_brokers = metadata.as_ref().ok().map(|m| out_of_sync_brokers(m));
        time_rebuilds(&admin, status, behind_brokers.as_ref(), ready, timed_from).await;
        let behind = if lift {
            let metadata = metadata.map_err(|e| {
                roll_error(status, format!("reading the ISRs of the rebuilds: {e}"))
            })?;
            lift_when_in_sync(&admin, status, &metadata).await?
        } else {
            None
        };
        Ok(Polled {
            restored,
            yielded,
            behind,
        })
    }
    .await;
    admin.close();
    result
}

/// The brokers that are a replica of some partition and not in its ISR.
fn out_of_sync_brokers(
    metadata: &kpilot_kafka::ClusterMetadata,
) -> std::collections::BTreeSet<i32> {
    metadata
        .topics
        .values()
        .flat_map(|t| t.partitions.values())
        .flat_map(|p| p.replicas.iter().filter(|b| !p.isr.contains(b)))
        .map(|b| b.0)
        .collect()
}

/// Step 5, once every pod runs the new type: `Some(n)` while `n` partitions are not back in
/// sync (the throttle stays), `None` once the throttle is lifted (or there was none).
async fn lift_when_in_sync(
    admin: &AdminClient,
    status: &mut KafkaAutopilotStatus,
    metadata: &kpilot_kafka::ClusterMetadata,
) -> Result<Option<usize>, ReconcileError> {
    let Some(recorded) = status
        .operation
        .as_ref()
        .and_then(|o| o.rebuild_throttle.clone())
        .filter(|r| r.lifted_at.is_none())
    else {
        return Ok(None);
    };
    let behind = metadata
        .topics
        .values()
        .flat_map(|t| t.partitions.values())
        .filter(|p| p.isr.len() < p.replicas.len())
        .count();
    if behind > 0 {
        return Ok(Some(behind));
    }
    throttle_of(&recorded)
        .lift_except(admin, &recorded.yielded)
        .await
        .map_err(|e| roll_error(status, format!("lifting the rebuild throttle: {e}")))?;
    if let Some(r) = status
        .operation
        .as_mut()
        .and_then(|o| o.rebuild_throttle.as_mut())
    {
        r.lifted_at = Some(now_rfc3339());
    }
    info!("rebuild throttle lifted: every partition is back in sync");
    Ok(None)
}

/// Step 4: starts timing the rebuild of each broker in `ready` (its pod Ready on the new type)
/// not timed yet, and ends each started one whose broker is back in every ISR, recording it
/// in `status.moves` (through [`crate::moves::measured`]: a rebuild planned shorter than
/// `timed_from` is not recorded). Best effort: a broker that cannot answer now is timed at a
/// later poll, and nothing here fails the reconcile. The polls' interval bounds the precision.
/// `out_of_sync`: the brokers out of some partition's ISR now (`None` when unknown: nothing
/// ends this poll).
async fn time_rebuilds(
    admin: &AdminClient,
    status: &mut KafkaAutopilotStatus,
    out_of_sync: Option<&std::collections::BTreeSet<i32>>,
    ready: &[i32],
    timed_from: kpilot_units::Span,
) {
    let Some(recorded) = in_force(status) else {
        return;
    };
    let to_start: Vec<i32> = ready
        .iter()
        .copied()
        .filter(|id| !recorded.rebuilds.iter().any(|r| r.broker_id == *id))
        .collect();
    let running: Vec<i32> = recorded
        .rebuilds
        .iter()
        .filter(|r| r.seconds.is_none())
        .map(|r| r.broker_id)
        .collect();
    if to_start.is_empty() && running.is_empty() {
        return;
    }
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut finished = Vec::new();
    for id in running {
        let Some(behind) = out_of_sync else { break };
        if behind.contains(&id) {
            continue;
        }
        if let Ok(bytes) = admin.stored_bytes(kpilot_cluster::BrokerId(id)).await {
            finished.push((id, bytes));
        }
    }
    let mut started = Vec::new();
    for id in to_start {
        if let Ok(bytes) = admin.stored_bytes(kpilot_cluster::BrokerId(id)).await {
            started.push((id, bytes));
        }
    }

    let Some(recorded) = status
        .operation
        .as_mut()
        .and_then(|o| o.rebuild_throttle.as_mut())
    else {
        return;
    };
    let rate = recorded.bytes_per_s;
    let mut measured = Vec::new();
    for (id, bytes_now) in finished {
        let Some(r) = recorded.rebuilds.iter_mut().find(|r| r.broker_id == id) else {
            continue;
        };
        let Ok(from) = r.started_at.parse::<k8s_openapi::jiff::Timestamp>() else {
            continue;
        };
        let seconds = (now.as_millisecond() - from.as_millisecond()) as f64 / 1000.0;
        let bytes = bytes_now.saturating_sub(r.bytes_at_start);
        r.seconds = Some(seconds);
        r.bytes = Some(bytes);
        info!(broker = id, bytes, seconds, "rebuild back in every ISR");
        let rebalance = crate::moves::Rebalance {
            at: &r.started_at,
            kind: "rebuild",
            bytes,
            seconds,
            throttle_bytes_per_s: Some(rate),
            receivers: 1,
            whole: true,
            timed_from,
        };
        match crate::moves::measured(&rebalance) {
            Ok(m) => measured.push(m),
            Err(why) => info!(broker = id, %why, "rebuild not timed"),
        }
    }
    for (id, bytes_at_start) in started {
        let at = k8s_openapi::jiff::Timestamp::from_millisecond(now.as_millisecond())
            .unwrap_or(now)
            .to_string();
        recorded.rebuilds.push(crate::crd::StrimziRebuild {
            broker_id: id,
            started_at: at,
            bytes_at_start,
            seconds: None,
            bytes: None,
        });
    }
    for m in measured {
        crate::moves::record(&mut status.moves, m);
    }
}

/// What [`keep`] found and did.
#[derive(Debug, Default)]
struct Kept {
    /// Configs that had been removed and were set again, `"<resource> <key>=<value>"`.
    restored: Vec<String>,
    /// Configs someone else set to another value since the last poll, left to them.
    yielded: Vec<String>,
}

/// Step 4 (first part): while the throttle is set, sets again what was removed of it, and
/// yields what someone else set to another value (recorded in `yielded`, left as it is and
/// not lifted). A yielded config removed later is set again and reclaimed. Best effort:
/// nothing is checked while a broker cannot answer (the next poll does), and nothing here
/// fails the reconcile.
async fn keep(admin: &AdminClient, status: &mut KafkaAutopilotStatus) -> Kept {
    let Some(recorded) = in_force(status) else {
        return Kept::default();
    };
    let throttle = throttle_of(recorded);
    let drifted = match throttle.drift(admin, recorded.bytes_per_s).await {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!(error = %e, "rebuild throttle not checked this poll");
            return Kept::default();
        }
    };
    let yielded_before = recorded.yielded.clone();
    let (removed, changed): (Vec<Drift>, Vec<Drift>) =
        drifted.into_iter().partition(|d| d.found.is_none());
    let mut kept = Kept::default();
    // What was removed is set again: ours once more, also where it had been yielded.
    let mut reclaimed = Vec::new();
    if !removed.is_empty() {
        match ReplicationThrottle::set_again(admin, &removed).await {
            Ok(()) => {
                kept.restored = removed.iter().map(ToString::to_string).collect();
                reclaimed = removed.iter().map(Drift::name).collect();
            }
            Err(e) => tracing::warn!(error = %e, "could not set the rebuild throttle again"),
        }
    }
    let mut yielded: Vec<String> = yielded_before
        .into_iter()
        .filter(|n| !reclaimed.contains(n))
        .collect();
    for d in &changed {
        if !yielded.contains(&d.name()) {
            yielded.push(d.name());
            kept.yielded.push(d.to_string());
        }
    }
    if let Some(r) = status
        .operation
        .as_mut()
        .and_then(|o| o.rebuild_throttle.as_mut())
    {
        r.yielded = yielded;
    }
    kept
}
