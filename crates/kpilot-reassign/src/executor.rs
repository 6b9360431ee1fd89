//! The executor: applies a plan's batches one after another on a live cluster through a
//! [`ReassignPort`], in this order: refuse if someone else's reassignment is running (a new
//! run, before it saves its journal, also when throttle overrides are set already); set the
//! replication throttle rate on every live broker; for each batch, set the throttled replica
//! lists of its topics, submit it, and poll until every partition reached its new replicas;
//! remove every throttle config (each throttle write is waited on until every broker applies
//! it: KRaft spreads config changes through the metadata log); elect the preferred leaders of the moved partitions; for a
//! removal, check the removed brokers hold no replica. The journal is saved before and after
//! each step. On an error or a cancel, the in-flight reassignments are cancelled (Kafka puts
//! those partitions back on their old replicas) and the throttles are removed before the
//! executor returns; rerunning with the same journal resumes at the first unfinished batch.
//! Performs I/O through the port and the journal store; waits with tokio timers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use kpilot_cluster::{BrokerId, TopicName, TopicPartition};
use kpilot_kafka::{ConfigOp, ConfigResource};
use kpilot_rebalance::{BrokerChange, throttled_replicas};
use serde::Serialize;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::journal::{BatchState, Journal, RunStatus};
use crate::port::{ElectionSummary, PortError, ReassignPort};
use crate::store::{JournalStore, StoreError};

pub use kpilot_kafka::{FOLLOWER_RATE, FOLLOWER_REPLICAS, LEADER_RATE, LEADER_REPLICAS};

/// How the executor paces itself.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How often to poll the reassignments in progress.
    pub poll_interval: Duration,
    /// How long one batch may take before the run fails (and is cancelled).
    pub batch_timeout: Duration,
    /// How long cancelled reassignments may take to clear, and metadata to show a finished
    /// batch's new replicas.
    pub cancel_timeout: Duration,
    /// How long a throttle config change may take to reach every broker (KRaft applies it
    /// through the metadata log): no batch is submitted before its throttle holds on every
    /// broker, and a removal is done only once no broker applies it any more. Also how long
    /// a drained broker may take to delete the logs moved off it.
    pub config_timeout: Duration,
    /// How often progress is reported while a batch copies, even when no partition finished:
    /// the new replicas' log sizes (DescribeLogDirs on their brokers) say how far they got.
    pub progress_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(500),
            batch_timeout: Duration::from_secs(6 * 3600),
            cancel_timeout: Duration::from_secs(60),
            config_timeout: Duration::from_secs(30),
            progress_interval: Duration::from_secs(10),
        }
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// Saving or loading the journal failed.
    #[error(transparent)]
    Journal(#[from] StoreError),
    /// Reassignments not started by this run are in progress.
    #[error(
        "{} reassignment(s) not started by this rebalance are in progress ({}); a plan made now would start from their half-moved state: wait for them to finish, or cancel them (kafka-reassign-partitions.sh --cancel --reassignment-json-file FILE naming them), then run again",
        partitions.len(),
        list_some(partitions)
    )]
    OtherReassignments {
        /// The partitions.
        partitions: Vec<String>,
    },
    /// A new run would throttle brokers or topics that carry replication-throttle overrides
    /// already (someone else's): it would overwrite them, then delete them at the end.
    #[error(
        "replication throttle overrides are set already ({}); a rebalance sets these configs and deletes them when it ends, so it would overwrite and then remove them: remove them first (kafka-configs.sh --bootstrap-server HOST:PORT --alter --entity-type brokers --entity-name ID --delete-config leader.replication.throttled.rate,follower.replication.throttled.rate; for a topic --entity-type topics --entity-name TOPIC --delete-config leader.replication.throttled.replicas,follower.replication.throttled.replicas), or wait for whoever set them to finish, then run again",
        list_some(found)
    )]
    ThrottlesSet {
        /// The overrides, as `broker 1: leader.replication.throttled.rate=1000`.
        found: Vec<String>,
    },
    /// A partition's replicas are neither the plan's old nor new ones.
    #[error(
        "{partition} has replicas {found:?}, but the plan expected {expected:?}: the cluster changed since planning; plan again (move the journal away)"
    )]
    AssignmentChanged {
        /// The partition.
        partition: TopicPartition,
        /// What the plan expected.
        expected: Vec<i32>,
        /// What the cluster has.
        found: Vec<i32>,
    },
    /// A cluster operation failed.
    #[error("{step} failed: {source}{}", cleanup_note(cleanup))]
    Step {
        /// The step.
        step: &'static str,
        /// The cause.
        #[source]
        source: PortError,
        /// Cleanup actions that failed too (throttles or reassignments possibly left behind).
        cleanup: Vec<String>,
    },
    /// A batch did not finish in time.
    #[error(
        "batch {index} did not finish within {after:?} ({remaining} partition(s) still moving); its reassignments were cancelled{}",
        cleanup_note(cleanup)
    )]
    BatchTimeout {
        /// The batch (1-based).
        index: usize,
        /// The timeout.
        after: Duration,
        /// Partitions still moving.
        remaining: usize,
        /// Cleanup actions that failed.
        cleanup: Vec<String>,
    },
    /// A throttle config was accepted but a broker did not apply it in time; nothing was
    /// submitted unthrottled.
    #[error(
        "the brokers did not all apply the throttle on {resource} within {after:?} ({detail}); no data was moved without it{}",
        cleanup_note(cleanup)
    )]
    ThrottleNotApplied {
        /// The broker or topic.
        resource: String,
        /// What differed last, per broker.
        detail: String,
        /// The timeout.
        after: Duration,
        /// Cleanup actions that failed.
        cleanup: Vec<String>,
    },
    /// A removed broker's log dirs still list partitions after the run, though the metadata
    /// places none on it.
    #[error(
        "broker {broker} still stores {} partition(s) after the drain (e.g. {}){}; it is NOT safe to remove",
        partitions.len(),
        partitions.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
        still_stores_hint(*hidden)
    )]
    StillStores {
        /// The broker.
        broker: BrokerId,
        /// The partitions its log dirs list.
        partitions: Vec<String>,
        /// How many of them belong to topics absent from the metadata.
        hidden: usize,
    },
    /// A removed broker still holds replicas after the run.
    #[error(
        "broker {broker} still holds {replicas} replica(s) after the drain; it is NOT safe to remove"
    )]
    NotDrained {
        /// The broker.
        broker: BrokerId,
        /// Replicas it still holds.
        replicas: usize,
    },
}

/// Up to 10 items joined, with how many more there are.
fn list_some(items: &[String]) -> String {
    let mut out = items
        .iter()
        .take(10)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > 10 {
        out.push_str(&format!(" and {} more", items.len() - 10));
    }
    out
}

fn still_stores_hint(hidden: usize) -> String {
    if hidden > 0 {
        format!(
            "; {hidden} of them belong to topics missing from the metadata, which is what a topic \
             this principal lacks the Describe ACL on looks like: grant Describe on every topic \
             (or run as a principal that has it), then plan again so that the plan moves \
             them too"
        )
    } else {
        "; the metadata places none of them on it, but the broker has not deleted their logs \
         within the config timeout: check the broker's log, then check again"
            .to_string()
    }
}

fn cleanup_note(cleanup: &[String]) -> String {
    if cleanup.is_empty() {
        String::new()
    } else {
        format!(
            "; cleanup also failed ({}): run `kpilot rebalance --cancel` to retry it",
            cleanup.join("; ")
        )
    }
}

impl ExecuteError {
    fn with_cleanup(mut self, errors: Vec<String>) -> Self {
        match &mut self {
            ExecuteError::Step { cleanup, .. }
            | ExecuteError::BatchTimeout { cleanup, .. }
            | ExecuteError::ThrottleNotApplied { cleanup, .. } => cleanup.extend(errors),
            _ => {}
        }
        self
    }
}

/// A progress event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Resuming a journal.
    Resumed {
        /// The first batch not done (1-based).
        batch: usize,
        /// Batches in all.
        of: usize,
    },
    /// The throttle rate is set on the brokers.
    ThrottleSet {
        /// Bytes per second.
        bytes_per_s: u64,
        /// Brokers configured.
        brokers: usize,
    },
    /// A batch was submitted.
    BatchStarted {
        /// The batch (1-based).
        batch: usize,
        /// Batches in all.
        of: usize,
        /// Partitions in it.
        partitions: usize,
        /// Bytes it copies.
        bytes: u64,
    },
    /// Progress within a batch: when a partition finishes, and every
    /// `Settings::progress_interval` while one copies.
    Progress {
        /// The batch (1-based).
        batch: usize,
        /// Partitions of the batch still moving.
        moving: usize,
        /// Bytes copied: those of finished partitions (all batches) plus `copying_bytes`.
        done_bytes: u64,
        /// Bytes the new replicas of the partitions still moving hold so far (their log
        /// sizes; 0 when they could not be read).
        copying_bytes: u64,
        /// Bytes of the whole plan.
        total_bytes: u64,
        /// Time left at the rate this run has copied so far, once it has copied something.
        eta_secs: Option<f64>,
    },
    /// A batch finished.
    BatchDone {
        /// The batch (1-based).
        batch: usize,
        /// How long it took, seconds.
        secs: f64,
    },
    /// Every throttle config was removed.
    ThrottleRemoved,
    /// Cancelling in-flight reassignments.
    Cancelling {
        /// Partitions cancelled.
        partitions: usize,
    },
    /// The preferred leader election ran.
    LeadersElected(ElectionSummary),
    /// The removed brokers hold nothing.
    Drained {
        /// The brokers.
        brokers: Vec<BrokerId>,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Resumed { batch, of } => write!(f, "resuming at batch {batch}/{of}"),
            Event::ThrottleSet {
                bytes_per_s,
                brokers,
            } => write!(
                f,
                "replication throttle {:.1} MB/s set on {brokers} broker(s)",
                *bytes_per_s as f64 / 1e6
            ),
            Event::BatchStarted {
                batch,
                of,
                partitions,
                bytes,
            } => write!(
                f,
                "batch {batch}/{of}: {partitions} partition(s), {:.1} MB",
                *bytes as f64 / 1e6
            ),
            Event::Progress {
                batch,
                moving,
                done_bytes,
                total_bytes,
                eta_secs,
                ..
            } => {
                write!(
                    f,
                    "batch {batch}: {moving} partition(s) moving; {:.1}/{:.1} MB done ({:.0}%)",
                    *done_bytes as f64 / 1e6,
                    *total_bytes as f64 / 1e6,
                    if *total_bytes == 0 {
                        100.0
                    } else {
                        *done_bytes as f64 * 100.0 / *total_bytes as f64
                    }
                )?;
                match eta_secs {
                    Some(secs) if *done_bytes < *total_bytes && *secs < 0.5 => {
                        f.write_str(", under 1s left")
                    }
                    Some(secs) if *done_bytes < *total_bytes => {
                        write!(f, ", about {} left", human_secs(*secs))
                    }
                    _ => Ok(()),
                }
            }
            Event::BatchDone { batch, secs } => write!(f, "batch {batch} done in {secs:.1}s"),
            Event::ThrottleRemoved => f.write_str("throttle configs removed"),
            Event::Cancelling { partitions } => {
                write!(f, "cancelling {partitions} in-flight reassignment(s)")
            }
            Event::LeadersElected(s) => write!(
                f,
                "preferred leaders: {} elected, {} already leading, {} failed",
                s.elected,
                s.not_needed,
                s.failed.len()
            ),
            Event::Drained { brokers } => {
                let ids: Vec<String> = brokers.iter().map(ToString::to_string).collect();
                write!(
                    f,
                    "broker(s) {} hold no replica: safe to remove",
                    ids.join(",")
                )
            }
        }
    }
}

/// `42s`, `7m 05s`, `3h 12m`.
fn human_secs(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Asks the brokers whether the writes the rest of `journal` makes would be allowed, with
/// requests that change nothing: the throttled-replica configs of every topic its remaining
/// batches move and one broker's throttle rate (`validateOnly`; AlterConfigs on the topics
/// and on the cluster), and a reassignment naming no partition (Alter on the cluster, which
/// the elections need too). A write refused midway would stop a run with throttles set or
/// batches moved; the executor runs this before its first write, and `--dry-run` reports it.
/// Nothing to check when no batch is left.
pub async fn check_writes(port: &impl ReassignPort, journal: &Journal) -> Result<(), PortError> {
    let Some(next) = journal.next_batch() else {
        return Ok(());
    };
    if let Some(rate) = journal.throttle_bytes_per_s {
        let topics: BTreeSet<TopicName> = journal.batches[next..]
            .iter()
            .flat_map(|b| throttled_replicas(&b.batch).into_keys())
            .collect();
        let topics: Vec<ConfigResource> = topics.into_iter().map(ConfigResource::Topic).collect();
        if !topics.is_empty() {
            port.validate(
                &topics,
                &[
                    ConfigOp::set(LEADER_REPLICAS, "*"),
                    ConfigOp::set(FOLLOWER_REPLICAS, "*"),
                ],
            )
            .await?;
        }
        // AlterConfigs on the cluster covers every broker: one is asked.
        if let Some(broker) = port.live_brokers().await?.first() {
            port.validate(
                &[ConfigResource::Broker(*broker)],
                &[
                    ConfigOp::set(LEADER_RATE, rate),
                    ConfigOp::set(FOLLOWER_RATE, rate),
                ],
            )
            .await?;
        }
    }
    port.reassign(&[]).await
}

/// The partitions with a reassignment in progress that `journal` did not start (its batches
/// in flight are its own), as text.
pub async fn other_reassignments(
    port: &impl ReassignPort,
    journal: &Journal,
) -> Result<Vec<String>, PortError> {
    let ours = in_flight_partitions(journal);
    Ok(port
        .ongoing()
        .await?
        .iter()
        .filter(|tp| !ours.contains(tp))
        .map(ToString::to_string)
        .collect())
}

/// The replication-throttle overrides set now on what the rest of `journal` would throttle:
/// the rates on every live broker and the replica lists on every topic its remaining batches
/// move, as `broker 1: leader.replication.throttled.rate=1000`. Nothing when the journal
/// does not throttle or no batch is left.
pub async fn throttles_in_the_way(
    port: &impl ReassignPort,
    journal: &Journal,
) -> Result<Vec<String>, PortError> {
    let Some(next) = journal.next_batch() else {
        return Ok(Vec::new());
    };
    if journal.throttle_bytes_per_s.is_none() {
        return Ok(Vec::new());
    }
    let topics: BTreeSet<TopicName> = journal.batches[next..]
        .iter()
        .flat_map(|b| throttled_replicas(&b.batch).into_keys())
        .collect();
    let mut resources: Vec<ConfigResource> = port
        .live_brokers()
        .await?
        .into_iter()
        .map(ConfigResource::Broker)
        .collect();
    resources.extend(topics.into_iter().map(ConfigResource::Topic));
    Ok(port
        .throttles_set(&resources)
        .await?
        .into_iter()
        .map(|(resource, key, value)| format!("{resource}: {key}={value}"))
        .collect())
}

/// Refuses a new run of `journal` (one that has changed nothing yet) while someone else's
/// reassignment is in progress, or while replication-throttle overrides are set on the
/// brokers or topics it would throttle. Asks only; the executor runs it before it saves a new
/// journal, and `--dry-run` reports it.
pub async fn check_new_run(
    port: &impl ReassignPort,
    journal: &Journal,
) -> Result<(), ExecuteError> {
    let step = |source| ExecuteError::Step {
        step: "the check for reassignments and throttles in progress",
        source,
        cleanup: Vec::new(),
    };
    let partitions = other_reassignments(port, journal).await.map_err(step)?;
    if !partitions.is_empty() {
        return Err(ExecuteError::OtherReassignments { partitions });
    }
    let found = throttles_in_the_way(port, journal).await.map_err(step)?;
    if !found.is_empty() {
        return Err(ExecuteError::ThrottlesSet { found });
    }
    Ok(())
}

/// The partitions of `journal`'s batches in flight.
fn in_flight_partitions(journal: &Journal) -> BTreeSet<TopicPartition> {
    journal
        .in_flight()
        .into_iter()
        .flat_map(|i| {
            journal.batches[i]
                .batch
                .moves
                .iter()
                .map(|m| m.partition.clone())
        })
        .collect()
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// How the run ended.
    pub status: RunStatus,
    /// The change.
    pub change: BrokerChange,
    /// Batches in all.
    pub batches: usize,
    /// Batches done.
    pub batches_done: usize,
    /// Partitions whose reassignment finished.
    pub partitions_moved: usize,
    /// Bytes of finished batches.
    pub bytes_moved: u64,
    /// Bytes of the whole plan.
    pub bytes_total: u64,
    /// The throttle used, bytes per second.
    pub throttle_bytes_per_s: Option<u64>,
    /// Whether throttle configs may remain (only after a failed cleanup).
    pub throttle_left: bool,
    /// The final election, when it ran.
    pub election: Option<ElectionSummary>,
    /// Removed brokers now holding no replica (safe to shut down).
    pub removable: Vec<BrokerId>,
    /// Wall time of this run, seconds.
    pub elapsed_secs: f64,
}

impl Report {
    fn of(
        journal: &Journal,
        election: Option<ElectionSummary>,
        removable: Vec<BrokerId>,
        started: Instant,
    ) -> Self {
        let done: Vec<_> = journal
            .batches
            .iter()
            .filter(|b| b.state == BatchState::Done)
            .collect();
        Self {
            status: journal.status.clone(),
            change: journal.change.clone(),
            batches: journal.batches.len(),
            batches_done: done.len(),
            partitions_moved: done
                .iter()
                .flat_map(|b| b.batch.moves.iter())
                .filter(|m| m.copies_data())
                .count(),
            bytes_moved: journal.done_bytes(),
            bytes_total: journal.total_bytes(),
            throttle_bytes_per_s: journal.throttle_bytes_per_s,
            throttle_left: journal.throttle_applied,
            election,
            removable,
            elapsed_secs: started.elapsed().as_secs_f64(),
        }
    }
}

/// A cancel request the executor watches (Ctrl-C in the CLI).
#[derive(Debug, Clone)]
pub struct Cancel {
    rx: watch::Receiver<bool>,
    _keep: Option<std::sync::Arc<watch::Sender<bool>>>,
}

/// Requests a cancel.
#[derive(Debug, Clone)]
pub struct CancelHandle(std::sync::Arc<watch::Sender<bool>>);

impl CancelHandle {
    /// Asks the run to cancel.
    pub fn cancel(&self) {
        let _ = self.0.send(true);
    }
}

impl Cancel {
    /// A cancel signal and the handle that raises it.
    pub fn new() -> (CancelHandle, Cancel) {
        let (tx, rx) = watch::channel(false);
        let tx = std::sync::Arc::new(tx);
        (
            CancelHandle(tx.clone()),
            Cancel {
                rx,
                _keep: Some(tx),
            },
        )
    }

    /// A signal that never fires.
    pub fn never() -> Cancel {
        Cancel::new().1
    }

    /// Whether a cancel was requested.
    pub fn requested(&self) -> bool {
        *self.rx.borrow()
    }

    /// Sleeps for `d`, or less when a cancel arrives.
    async fn sleep(&mut self, d: Duration) {
        let sleep = tokio::time::sleep(d);
        tokio::pin!(sleep);
        tokio::select! {
            _ = &mut sleep => {}
            _ = self.rx.wait_for(|c| *c) => {}
        }
    }
}

enum Outcome {
    Completed(Option<ElectionSummary>, Vec<BrokerId>),
    Cancelled,
}

/// Applies journals through a port.
pub struct Executor<'a, P, F> {
    port: &'a P,
    settings: Settings,
    progress: F,
    cancel: Cancel,
}

impl<'a, P: ReassignPort, F: FnMut(&Event)> Executor<'a, P, F> {
    /// An executor over `port` reporting to `progress`, watching `cancel`.
    pub fn new(port: &'a P, settings: Settings, progress: F, cancel: Cancel) -> Self {
        Self {
            port,
            settings,
            progress,
            cancel,
        }
    }

    /// Runs (or resumes) `journal`, saving it to `store` at every step. Returns the report of a
    /// completed or cancelled run; a failed run returns the error after cleaning up (the
    /// journal records it; rerun to resume).
    pub async fn run(
        &mut self,
        mut journal: Journal,
        store: &mut impl JournalStore<Journal>,
    ) -> Result<Report, ExecuteError> {
        let started = Instant::now();
        if journal.is_finished() {
            return Ok(Report::of(&journal, None, Vec::new(), started));
        }
        if journal
            .batches
            .iter()
            .any(|b| b.state != BatchState::Pending)
            && let Some(i) = journal.next_batch()
        {
            (self.progress)(&Event::Resumed {
                batch: i + 1,
                of: journal.batches.len(),
            });
        }
        let new = journal.is_new();
        if new {
            // Nothing of this run exists yet: a refusal leaves no journal behind, and a plan
            // made from someone else's half-moved state is not kept to be resumed later.
            check_new_run(self.port, &journal).await?;
        }
        journal.status = RunStatus::Running;
        store.save(&journal)?;
        match self.drive(&mut journal, store, new).await {
            Ok(Outcome::Completed(election, removable)) => {
                journal.status = RunStatus::Completed;
                store.save(&journal)?;
                Ok(Report::of(&journal, election, removable, started))
            }
            Ok(Outcome::Cancelled) => {
                let errors = self.clean_up(&mut journal, store).await?;
                journal.status = RunStatus::Cancelled;
                store.save(&journal)?;
                for e in &errors {
                    warn!(error = %e, "cleanup after cancel");
                }
                Ok(Report::of(&journal, None, Vec::new(), started))
            }
            Err(e) => {
                warn!(error = %e, "rebalance failed; cleaning up");
                let errors = match self.clean_up(&mut journal, store).await {
                    Ok(errors) => errors,
                    Err(store_error) => vec![store_error.to_string()],
                };
                journal.status = RunStatus::Failed(e.to_string());
                store.save(&journal)?;
                Err(e.with_cleanup(errors))
            }
        }
    }

    /// Cancels whatever `journal` has in flight and removes its throttles (`--cancel`, also
    /// after a crash); records the run as cancelled.
    pub async fn cancel(
        &mut self,
        mut journal: Journal,
        store: &mut impl JournalStore<Journal>,
    ) -> Result<Report, ExecuteError> {
        let started = Instant::now();
        let errors = self.clean_up(&mut journal, store).await?;
        if journal.status != RunStatus::Completed {
            journal.status = RunStatus::Cancelled;
        }
        store.save(&journal)?;
        if let Some(first) = errors.first() {
            return Err(ExecuteError::Step {
                step: "cleaning up",
                source: PortError::Read {
                    what: "the cleanup result",
                    source: first.clone().into(),
                },
                cleanup: errors[1..].to_vec(),
            });
        }
        Ok(Report::of(&journal, None, Vec::new(), started))
    }

    /// Applies `journal`; `checked`: [`check_new_run`] passed just now (a new run), so
    /// someone else's reassignments were looked for already.
    async fn drive(
        &mut self,
        journal: &mut Journal,
        store: &mut impl JournalStore<Journal>,
        checked: bool,
    ) -> Result<Outcome, ExecuteError> {
        let step = |step: &'static str| {
            move |source: PortError| ExecuteError::Step {
                step,
                source,
                cleanup: Vec::new(),
            }
        };
        let foreign = if checked {
            Vec::new()
        } else {
            other_reassignments(self.port, journal)
                .await
                .map_err(step("reading the reassignments in progress"))?
        };
        if !foreign.is_empty() {
            return Err(ExecuteError::OtherReassignments {
                partitions: foreign,
            });
        }

        check_writes(self.port, journal).await.map_err(step(
            "the check that this principal may make the run's writes",
        ))?;

        if let Some(rate) = journal.throttle_bytes_per_s
            && journal.next_batch().is_some()
        {
            let live = self
                .port
                .live_brokers()
                .await
                .map_err(step("reading the live brokers"))?;
            let newly: BTreeSet<BrokerId> = live
                .iter()
                .filter(|b| !journal.throttled_brokers.contains(b))
                .copied()
                .collect();
            journal.throttle_applied = true;
            journal.throttled_brokers.extend(live.iter().copied());
            store.save(journal)?;
            for (i, b) in live.iter().enumerate() {
                let written = self
                    .port
                    .configure(
                        &ConfigResource::Broker(*b),
                        &[
                            ConfigOp::set(LEADER_RATE, rate),
                            ConfigOp::set(FOLLOWER_RATE, rate),
                        ],
                    )
                    .await;
                if let Err(e) = written {
                    if e.refused() {
                        // Refused: this broker and the ones not yet written have no throttle
                        // of this run to remove.
                        let untouched = live.iter().skip(i).filter(|b| newly.contains(b));
                        journal.unmark_throttles(&untouched.copied().collect(), &BTreeSet::new());
                        store.save(journal)?;
                    }
                    return Err(step("setting the replication throttle rate")(e));
                }
            }
            let value = rate.to_string();
            for b in &live {
                self.await_applied(
                    &ConfigResource::Broker(*b),
                    &[(LEADER_RATE, Some(&value)), (FOLLOWER_RATE, Some(&value))],
                )
                .await?;
            }
            (self.progress)(&Event::ThrottleSet {
                bytes_per_s: rate,
                brokers: live.len(),
            });
        }

        let total = journal.batches.len();
        // Where this run's copying rate is measured from: now and the bytes earlier runs of the
        // journal finished; when resuming a batch in flight (whose new replicas hold what the
        // earlier run copied), from the first progress reading instead.
        let mut rate_from = journal
            .in_flight()
            .is_empty()
            .then(|| (Instant::now(), journal.done_bytes()));
        while let Some(i) = journal.next_batch() {
            if self.cancel.requested() {
                return Ok(Outcome::Cancelled);
            }
            let batch = journal.batches[i].batch.clone();
            let own = journal.batches[i].state == BatchState::Issued;
            // A batch in flight when an earlier run stopped is resumed: its moves still in
            // progress are adopted and waited for, not submitted again nor cancelled.
            let mut rereads = 1;
            let todo = loop {
                let (ongoing, current) = self
                    .cluster_now()
                    .await
                    .map_err(step("reading the reassignments in progress"))?;
                match submissions(&batch, &ongoing, &current, own) {
                    Ok(todo) => break todo,
                    // A move that finishes (or a metadata broker that lags) between the two
                    // reads looks like a change: read both once more before saying so.
                    Err(e) if rereads > 0 => {
                        rereads -= 1;
                        info!(error = %e, "re-reading the assignment");
                        tokio::time::sleep(self.settings.poll_interval).await;
                    }
                    Err(e) => return Err(e),
                }
            };
            if journal.throttle_bytes_per_s.is_some() {
                let lists = throttled_replicas(&batch);
                let newly: BTreeSet<TopicName> = lists
                    .keys()
                    .filter(|t| !journal.throttled_topics.contains(*t))
                    .cloned()
                    .collect();
                journal.throttled_topics.extend(lists.keys().cloned());
                store.save(journal)?;
                for (i, (topic, t)) in lists.iter().enumerate() {
                    let written = self
                        .port
                        .configure(
                            &ConfigResource::Topic(topic.clone()),
                            &[
                                ConfigOp::set(LEADER_REPLICAS, t.leader_value()),
                                ConfigOp::set(FOLLOWER_REPLICAS, t.follower_value()),
                            ],
                        )
                        .await;
                    if let Err(e) = written {
                        if e.refused() {
                            // Refused: this topic and the ones not yet written have no lists
                            // of this batch, and none of an earlier one if they are new.
                            let untouched = lists.keys().skip(i).filter(|t| newly.contains(*t));
                            journal
                                .unmark_throttles(&BTreeSet::new(), &untouched.cloned().collect());
                            store.save(journal)?;
                        }
                        return Err(step("setting the throttled replicas")(e));
                    }
                }
                for (topic, t) in &lists {
                    let (leader, follower) = (t.leader_value(), t.follower_value());
                    self.await_applied(
                        &ConfigResource::Topic(topic.clone()),
                        &[
                            (LEADER_REPLICAS, Some(&leader)),
                            (FOLLOWER_REPLICAS, Some(&follower)),
                        ],
                    )
                    .await?;
                }
            }
            journal.batches[i].state = BatchState::Issued;
            store.save(journal)?;
            let batch_started = Instant::now();
            if !todo.is_empty() {
                self.port
                    .reassign(&todo)
                    .await
                    .map_err(step("submitting a batch"))?;
            }
            (self.progress)(&Event::BatchStarted {
                batch: i + 1,
                of: total,
                partitions: batch.moves.len(),
                bytes: batch.bytes(),
            });
            info!(batch = i + 1, partitions = todo.len(), "batch submitted");
            let names: BTreeSet<&TopicPartition> =
                batch.moves.iter().map(|m| &m.partition).collect();
            let mut last_moving = usize::MAX;
            let mut last_report = Instant::now();
            loop {
                let ongoing = self
                    .port
                    .ongoing()
                    .await
                    .map_err(step("polling the reassignments"))?;
                let moving: Vec<&TopicPartition> = names
                    .iter()
                    .copied()
                    .filter(|tp| ongoing.contains(*tp))
                    .collect();
                let due =
                    !moving.is_empty() && last_report.elapsed() >= self.settings.progress_interval;
                if moving.len() != last_moving || due {
                    last_moving = moving.len();
                    last_report = Instant::now();
                    let finished: u64 = batch
                        .moves
                        .iter()
                        .filter(|m| !ongoing.contains(&m.partition))
                        .map(|m| m.bytes)
                        .sum();
                    let copying = if moving.is_empty() {
                        0
                    } else {
                        self.copied(&batch, &ongoing).await
                    };
                    let done = journal.done_bytes() + finished + copying;
                    let (since, from_bytes) = *rate_from.get_or_insert((Instant::now(), done));
                    let copied_here = done.saturating_sub(from_bytes);
                    let elapsed = since.elapsed().as_secs_f64();
                    let total = journal.total_bytes();
                    (self.progress)(&Event::Progress {
                        batch: i + 1,
                        moving: moving.len(),
                        done_bytes: done,
                        copying_bytes: copying,
                        total_bytes: total,
                        eta_secs: (copied_here > 0 && elapsed > 0.0).then(|| {
                            total.saturating_sub(done) as f64 * elapsed / copied_here as f64
                        }),
                    });
                }
                if moving.is_empty() {
                    break;
                }
                if batch_started.elapsed() > self.settings.batch_timeout {
                    return Err(ExecuteError::BatchTimeout {
                        index: i + 1,
                        after: self.settings.batch_timeout,
                        remaining: moving.len(),
                        cleanup: Vec::new(),
                    });
                }
                if self.cancel.requested() {
                    return Ok(Outcome::Cancelled);
                }
                self.cancel.sleep(self.settings.poll_interval).await;
                if self.cancel.requested() {
                    return Ok(Outcome::Cancelled);
                }
            }
            // The broker answering Metadata may lag the controller by a moment: wait (bounded)
            // until it shows every partition on its new replicas.
            let verify_deadline = Instant::now() + self.settings.cancel_timeout;
            loop {
                let after = self
                    .port
                    .assignment()
                    .await
                    .map_err(step("reading the new assignment"))?;
                let wrong = batch.moves.iter().find_map(|m| {
                    let found = after.get(&m.partition).cloned().unwrap_or_default();
                    (found != m.to).then_some((m, found))
                });
                let Some((m, found)) = wrong else {
                    break;
                };
                if Instant::now() > verify_deadline {
                    return Err(ExecuteError::AssignmentChanged {
                        partition: m.partition.clone(),
                        expected: m.to.iter().map(|b| b.0).collect(),
                        found: found.iter().map(|b| b.0).collect(),
                    });
                }
                tokio::time::sleep(self.settings.poll_interval).await;
            }
            journal.batches[i].state = BatchState::Done;
            store.save(journal)?;
            (self.progress)(&Event::BatchDone {
                batch: i + 1,
                secs: batch_started.elapsed().as_secs_f64(),
            });
        }

        let errors = self.remove_throttles(journal, store).await?;
        if let Some(first) = errors.into_iter().next() {
            return Err(ExecuteError::Step {
                step: "removing the throttle",
                source: PortError::Read {
                    what: "the throttle removal result",
                    source: first.into(),
                },
                cleanup: Vec::new(),
            });
        }

        let moved: Vec<TopicPartition> = journal
            .batches
            .iter()
            .flat_map(|b| b.batch.moves.iter().map(|m| m.partition.clone()))
            .collect();
        let election = if moved.is_empty() {
            None
        } else {
            let summary = self
                .port
                .elect_preferred(&moved)
                .await
                .map_err(step("electing the preferred leaders"))?;
            journal.leaders_elected = true;
            store.save(journal)?;
            (self.progress)(&Event::LeadersElected(summary.clone()));
            Some(summary)
        };

        let mut removable = Vec::new();
        if let BrokerChange::Remove(ids) = &journal.change {
            let assignment = self
                .port
                .assignment()
                .await
                .map_err(step("checking the drained brokers"))?;
            for id in ids {
                let replicas = assignment.values().filter(|r| r.contains(id)).count();
                if replicas > 0 {
                    return Err(ExecuteError::NotDrained {
                        broker: *id,
                        replicas,
                    });
                }
                self.stores_nothing(*id, &assignment)
                    .await
                    .map_err(step("reading the drained brokers' log dirs"))??;
                removable.push(*id);
            }
            (self.progress)(&Event::Drained {
                brokers: removable.clone(),
            });
        }
        Ok(Outcome::Completed(election, removable))
    }

    /// The reassignments in progress, then every partition's replicas: in this order, so that
    /// a partition not listed as moving shows its final replicas (or, from a lagging broker,
    /// those of its adding state), never its old ones after it started.
    async fn cluster_now(
        &self,
    ) -> Result<
        (
            BTreeSet<TopicPartition>,
            BTreeMap<TopicPartition, Vec<BrokerId>>,
        ),
        PortError,
    > {
        let ongoing = self.port.ongoing().await?;
        let current = self.port.assignment().await?;
        Ok((ongoing, current))
    }

    /// Cancels the in-flight reassignments of `journal` and removes its throttles; returns the
    /// cleanup actions that failed (as text).
    async fn clean_up(
        &mut self,
        journal: &mut Journal,
        store: &mut impl JournalStore<Journal>,
    ) -> Result<Vec<String>, StoreError> {
        let mut errors = Vec::new();
        let in_flight = journal.in_flight();
        let partitions: BTreeSet<TopicPartition> = in_flight
            .iter()
            .flat_map(|&i| {
                journal.batches[i]
                    .batch
                    .moves
                    .iter()
                    .map(|m| m.partition.clone())
            })
            .collect();
        if !partitions.is_empty() {
            let ongoing = match self.port.ongoing().await {
                Ok(o) => o,
                Err(e) => {
                    errors.push(e.to_string());
                    partitions.clone()
                }
            };
            let cancel: Vec<(TopicPartition, Option<Vec<BrokerId>>)> = partitions
                .iter()
                .filter(|tp| ongoing.contains(*tp))
                .map(|tp| (tp.clone(), None))
                .collect();
            let mut cancelled = true;
            if !cancel.is_empty() {
                (self.progress)(&Event::Cancelling {
                    partitions: cancel.len(),
                });
                if let Err(e) = self.port.reassign(&cancel).await {
                    errors.push(e.to_string());
                    cancelled = false;
                } else {
                    let deadline = Instant::now() + self.settings.cancel_timeout;
                    loop {
                        match self.port.ongoing().await {
                            Ok(o) if !cancel.iter().any(|(tp, _)| o.contains(tp)) => break,
                            Ok(_) if Instant::now() < deadline => {}
                            Ok(_) => {
                                errors.push(format!(
                                    "cancelled reassignments still listed after {:?}",
                                    self.settings.cancel_timeout
                                ));
                                cancelled = false;
                                break;
                            }
                            Err(e) => {
                                errors.push(e.to_string());
                                cancelled = false;
                                break;
                            }
                        }
                        tokio::time::sleep(self.settings.poll_interval).await;
                    }
                }
            }
            if cancelled {
                for i in in_flight {
                    journal.batches[i].state = BatchState::Cancelled;
                }
                store.save(journal)?;
            }
        }
        errors.extend(self.remove_throttles(journal, store).await?);
        Ok(errors)
    }

    /// Waits until every broker applies `expected` on `resource` (`Some(value)`: set to it;
    /// `None`: no override), or fails the run after `config_timeout`.
    async fn await_applied(
        &self,
        resource: &ConfigResource,
        expected: &[(&str, Option<&str>)],
    ) -> Result<(), ExecuteError> {
        match self.applied_within(resource, expected).await {
            Ok(None) => Ok(()),
            Ok(Some(detail)) => Err(ExecuteError::ThrottleNotApplied {
                resource: resource.to_string(),
                detail,
                after: self.settings.config_timeout,
                cleanup: Vec::new(),
            }),
            Err(source) => Err(ExecuteError::Step {
                step: "checking that the brokers apply the throttle",
                source,
                cleanup: Vec::new(),
            }),
        }
    }

    /// What the new replicas of `batch`'s partitions still moving (`ongoing`) hold so far:
    /// their log sizes, each move capped at the bytes it copies. Progress only: a broker whose
    /// log dirs cannot be read counts 0, and the run goes on.
    async fn copied(
        &self,
        batch: &kpilot_rebalance::Batch,
        ongoing: &BTreeSet<TopicPartition>,
    ) -> u64 {
        let moving: Vec<_> = batch
            .moves
            .iter()
            .filter(|m| ongoing.contains(&m.partition))
            .collect();
        let brokers: BTreeSet<BrokerId> = moving.iter().flat_map(|m| m.adding()).collect();
        let mut sizes: BTreeMap<BrokerId, BTreeMap<TopicPartition, u64>> = BTreeMap::new();
        for b in brokers {
            match self.port.replica_sizes(b).await {
                Ok(s) => {
                    sizes.insert(b, s);
                }
                Err(e) => warn!(broker = %b, error = %e, "cannot read the copy's progress"),
            }
        }
        moving
            .iter()
            .map(|m| {
                let held: u64 = m
                    .adding()
                    .iter()
                    .filter_map(|b| sizes.get(b)?.get(&m.partition))
                    .sum();
                held.min(m.bytes)
            })
            .sum()
    }

    /// Whether `broker`'s log dirs are empty, as they are once the broker deletes the logs of
    /// the replicas moved off it: re-read for at most `config_timeout` while they are not.
    /// Metadata alone cannot say so, since it leaves out topics the principal may not
    /// Describe; `assignment` (the metadata's) tells those from logs not yet deleted.
    async fn stores_nothing(
        &self,
        broker: BrokerId,
        assignment: &BTreeMap<TopicPartition, Vec<BrokerId>>,
    ) -> Result<Result<(), ExecuteError>, PortError> {
        let deadline = Instant::now() + self.settings.config_timeout;
        loop {
            let stored = self.port.stored(broker).await?;
            if stored.is_empty() {
                return Ok(Ok(()));
            }
            if Instant::now() >= deadline {
                let visible: BTreeSet<&TopicName> = assignment.keys().map(|tp| &tp.topic).collect();
                let hidden = stored
                    .iter()
                    .filter(|tp| !visible.contains(&tp.topic))
                    .count();
                return Ok(Err(ExecuteError::StillStores {
                    broker,
                    partitions: stored.iter().map(ToString::to_string).collect(),
                    hidden,
                }));
            }
            tokio::time::sleep(self.settings.poll_interval).await;
        }
    }

    /// Re-reads how each broker applies `keys` on `resource` until it matches `expected`, for
    /// at most `config_timeout`; returns what still differed then, per broker. An empty value
    /// is no override.
    async fn applied_within(
        &self,
        resource: &ConfigResource,
        expected: &[(&str, Option<&str>)],
    ) -> Result<Option<String>, PortError> {
        let keys: Vec<&str> = expected.iter().map(|(k, _)| *k).collect();
        let deadline = Instant::now() + self.settings.config_timeout;
        loop {
            let seen = self.port.overrides_seen(resource, &keys).await?;
            let differing: Vec<String> = seen
                .iter()
                .flat_map(|(broker, configs)| {
                    expected.iter().filter_map(move |(key, want)| {
                        let want = want.filter(|v| !v.is_empty());
                        let has = configs.get(*key).map(String::as_str);
                        (has != want).then(|| {
                            format!("broker {broker} has {key}={}", has.unwrap_or("(none)"))
                        })
                    })
                })
                .collect();
            if differing.is_empty() {
                return Ok(None);
            }
            if Instant::now() >= deadline {
                return Ok(Some(differing.join(", ")));
            }
            tokio::time::sleep(self.settings.poll_interval).await;
        }
    }

    /// `None` once no broker applies `keys` on `resource`; else why not, as text.
    async fn removal_seen(&self, resource: &ConfigResource, keys: [&str; 2]) -> Option<String> {
        match self
            .applied_within(resource, &[(keys[0], None), (keys[1], None)])
            .await
        {
            Ok(None) => None,
            Ok(Some(detail)) => Some(format!(
                "removing the throttle on {resource} was accepted, but not every broker applied it within {:?} ({detail})",
                self.settings.config_timeout
            )),
            Err(e) => Some(e.to_string()),
        }
    }

    /// Deletes every throttle config the journal records and waits until no broker applies
    /// them any more; returns failures as text.
    async fn remove_throttles(
        &mut self,
        journal: &mut Journal,
        store: &mut impl JournalStore<Journal>,
    ) -> Result<Vec<String>, StoreError> {
        if !journal.throttle_applied {
            return Ok(Vec::new());
        }
        let mut errors = Vec::new();
        let live = match self.port.live_brokers().await {
            Ok(l) => l,
            Err(e) => {
                errors.push(e.to_string());
                return Ok(errors);
            }
        };
        let mut left_brokers = BTreeSet::new();
        for b in journal.throttled_brokers.clone() {
            if !live.contains(&b) {
                // Per-broker dynamic configs are served by the broker itself; a broker that
                // is gone cannot be asked (its overrides no longer apply to anything).
                warn!(broker = %b, "broker gone; its throttle rate override cannot be removed");
                continue;
            }
            if let Err(e) = self
                .port
                .configure(
                    &ConfigResource::Broker(b),
                    &[
                        ConfigOp::delete(LEADER_RATE),
                        ConfigOp::delete(FOLLOWER_RATE),
                    ],
                )
                .await
            {
                errors.push(e.to_string());
                left_brokers.insert(b);
            }
        }
        for b in journal
            .throttled_brokers
            .iter()
            .filter(|b| live.contains(b))
        {
            if left_brokers.contains(b) {
                continue;
            }
            if let Some(e) = self
                .removal_seen(&ConfigResource::Broker(*b), [LEADER_RATE, FOLLOWER_RATE])
                .await
            {
                errors.push(e);
                left_brokers.insert(*b);
            }
        }
        let mut left_topics = BTreeSet::new();
        let mut removed_topics = Vec::new();
        for t in journal.throttled_topics.clone() {
            if let Err(e) = self
                .port
                .configure(
                    &ConfigResource::Topic(t.clone()),
                    &[
                        ConfigOp::delete(LEADER_REPLICAS),
                        ConfigOp::delete(FOLLOWER_REPLICAS),
                    ],
                )
                .await
            {
                let gone = matches!(&e, PortError::Configure { source, .. }
                    if source.downcast_ref::<kpilot_kafka::AdminError>()
                        .is_some_and(|a| matches!(a, kpilot_kafka::AdminError::UnknownTopic { .. })));
                if !gone {
                    errors.push(e.to_string());
                    left_topics.insert(t);
                }
                continue;
            }
            removed_topics.push(t);
        }
        for t in removed_topics {
            if let Some(e) = self
                .removal_seen(
                    &ConfigResource::Topic(t.clone()),
                    [LEADER_REPLICAS, FOLLOWER_REPLICAS],
                )
                .await
            {
                errors.push(e);
                left_topics.insert(t);
            }
        }
        journal.throttled_brokers = left_brokers;
        journal.throttled_topics = left_topics;
        journal.throttle_applied =
            !journal.throttled_brokers.is_empty() || !journal.throttled_topics.is_empty();
        store.save(journal)?;
        if errors.is_empty() {
            (self.progress)(&Event::ThrottleRemoved);
        }
        Ok(errors)
    }
}

/// A partition and its new replicas, as submitted.
type Submission = (TopicPartition, Option<Vec<BrokerId>>);

/// The reassignments to submit for `batch`, given the reassignments in progress (`ongoing`,
/// read first) and the replicas now (`current`). A move already on its new replicas needs
/// nothing; one still moving in a batch of this run (`own`: the journal says it was
/// submitted) is adopted and waited for; one on its old replicas (or on its new ones in
/// another order, or in the adding state of old plus new, which a finished or cancelled move
/// shows on a broker whose metadata lags) is submitted. Anything else changed since planning.
fn submissions(
    batch: &kpilot_rebalance::Batch,
    ongoing: &BTreeSet<TopicPartition>,
    current: &BTreeMap<TopicPartition, Vec<BrokerId>>,
    own: bool,
) -> Result<Vec<Submission>, ExecuteError> {
    let set = |r: &[BrokerId]| r.iter().copied().collect::<BTreeSet<_>>();
    let mut todo = Vec::new();
    for m in &batch.moves {
        let found = current.get(&m.partition).cloned().unwrap_or_default();
        if found == m.to {
            continue;
        }
        let moving = ongoing.contains(&m.partition);
        if moving && own {
            continue;
        }
        let adding: BTreeSet<BrokerId> = set(&m.from).union(&set(&m.to)).copied().collect();
        let expected = [set(&m.from), set(&m.to), adding];
        if !(moving || expected.contains(&set(&found)) && found.len() == set(&found).len()) {
            return Err(ExecuteError::AssignmentChanged {
                partition: m.partition.clone(),
                expected: m.from.iter().map(|b| b.0).collect(),
                found: found.iter().map(|b| b.0).collect(),
            });
        }
        todo.push((m.partition.clone(), Some(m.to.clone())));
    }
    Ok(todo)
}

/// Replicas per broker in an assignment (for drain checks and reports).
pub fn replicas_per_broker(
    assignment: &BTreeMap<TopicPartition, Vec<BrokerId>>,
) -> BTreeMap<BrokerId, usize> {
    let mut out = BTreeMap::new();
    for r in assignment.values() {
        for b in r {
            *out.entry(*b).or_insert(0) += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::human_secs;

    #[test]
    fn time_left_reads_as_seconds_minutes_or_hours() {
        assert_eq!(human_secs(-3.0), "0s");
        assert_eq!(human_secs(42.4), "42s");
        assert_eq!(human_secs(425.0), "7m 05s");
        assert_eq!(human_secs(11_520.0), "3h 12m");
    }
}
