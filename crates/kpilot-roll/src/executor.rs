//! The roll executor: applies the plan one node at a time through the [`KafkaPort`] and the
//! [`Fleet`], recording every step in the journal before and after it happens. Async; all
//! I/O goes through the ports and the journal store.
//!
//! Per node: wait for the gate (bounded, re-checked right before the stop) -> graceful stop ->
//! resize -> start -> wait until registered and unfenced -> wait until back in the ISR of every
//! partition it hosts (progress: partitions and bytes behind) -> preferred leader election for
//! the partitions it prefers -> verify. Then the next node. At the end, a preferred election
//! over the whole cluster and a verification. Any failure halts the roll with the journal
//! saying where; no other node is touched until a rerun continues at the same step.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kpilot_cluster::{BrokerId, TopicPartition};
use kpilot_units::InstanceType;
use serde::{Deserialize, Serialize};
use tracing::{info, info_span, warn};

use crate::gate::{self, GateVerdict, Observation};
use crate::journal::{Action, Journal, JournalError, Phase, Rebuild, RollStatus, Selection};
use crate::plan::{self, PlanError, RollOptions, RollPlan};
use crate::ports::{Fleet, FleetError, KafkaPort, KafkaPortError};
use crate::report::{RollReport, human, human_ms};
use crate::store::{JournalStore, StoreError};

/// Bounds and pacing of the executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How long to wait for the gate to open before halting.
    pub gate_timeout: Duration,
    /// How long a started node may take to register and be unfenced.
    pub start_timeout: Duration,
    /// How long a node may take to rejoin every ISR.
    pub catch_up_timeout: Duration,
    /// How long a preferred election may take to be verified.
    pub election_timeout: Duration,
    /// How often to re-read the cluster while waiting.
    pub poll: Duration,
    /// How often to report progress while waiting.
    pub progress_every: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            gate_timeout: Duration::from_secs(300),
            start_timeout: Duration::from_secs(300),
            catch_up_timeout: Duration::from_secs(1800),
            election_timeout: Duration::from_secs(60),
            poll: Duration::from_millis(250),
            progress_every: Duration::from_secs(5),
        }
    }
}

/// Why the roll stopped.
#[derive(Debug, thiserror::Error)]
pub enum RollError {
    /// Reading the cluster failed.
    #[error(transparent)]
    Observe(KafkaPortError),
    /// The preferred leader election failed.
    #[error(transparent)]
    Elect(KafkaPortError),
    /// Setting or lifting a rebuild's replication throttle failed.
    #[error(transparent)]
    Throttle(KafkaPortError),
    /// The principal may not elect leaders; found before any broker was stopped.
    #[error(
        "refusing to roll (this run stopped no broker): every broker's restart ends with a preferred leader election, and {}",
        may_not_elect(.0)
    )]
    MayNotElect(#[source] KafkaPortError),
    /// The principal may not set the rebuilds' replication throttles; found before any
    /// broker was stopped.
    #[error(
        "refusing to roll (this run stopped no broker): every broker comes back on an empty disk and its rebuild is throttled, and {0}"
    )]
    MayNotThrottle(#[source] KafkaPortError),
    /// No plan can be made.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The journal could not be saved or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The journal refused a transition.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The fleet failed.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// Rebuilds would be throttled, and someone else's replication throttles are set.
    #[error(
        "refusing to roll onto empty disks (this run stopped no broker): replication throttles are already set ({}); \
         each rebuild sets the throttle configs of its broker, the others and its topics and then removes them, \
         which would lose these. Finish or cancel the reassignment that set them (or delete them with \
         kafka-configs --delete-config), then rerun",
        .found.join(", ")
    )]
    ThrottlesSet {
        /// What is set, `"<resource> <key>=<value>"`.
        found: Vec<String>,
    },
    /// Rebuilds are throttled, and replication throttles were set during the roll: the next
    /// node's rebuild would overwrite and then remove them.
    #[error(
        "halted before node {node}, which was not stopped: replication throttles were set during the roll ({}); \
         its rebuild would overwrite them and then remove them. Finish or cancel the reassignment that set them \
         (or delete them with kafka-configs --delete-config), then rerun to continue the roll",
        .found.join(", ")
    )]
    ThrottlesSetDuringRoll {
        /// The node that would have been stopped next.
        node: BrokerId,
        /// What is set, `"<resource> <key>=<value>"`.
        found: Vec<String>,
    },
    /// `--abandon` found no unfinished roll in the journal.
    #[error("there is no unfinished roll to abandon in the journal {journal}: {why}")]
    NothingToAbandon {
        /// The journal, as the caller names it.
        journal: String,
        /// Why not: no journal, or the roll in it is over.
        why: String,
    },
    /// The journal holds an unfinished roll to another size.
    #[error(
        "an unfinished roll to {journal_target} is recorded in the journal (node {node} at {phase}); \
         rerun with --to {journal_target} to finish it first, or give it up with `kpilot roll --abandon`"
    )]
    ResumeConflict {
        /// The journal's target.
        journal_target: InstanceType,
        /// The node in flight.
        node: BrokerId,
        /// Its phase.
        phase: Phase,
    },
    /// The journal holds an unfinished roll of other nodes, with one in flight.
    #[error(
        "an unfinished roll of {journal_selection} is recorded in the journal (node {node} at {phase}), \
         and this run asks for {requested}; rerun {} to finish it first, or give it up with `kpilot roll --abandon`",
        .journal_selection.rerun()
    )]
    SelectionConflict {
        /// The journal's selection.
        journal_selection: Selection,
        /// This run's.
        requested: Selection,
        /// The node in flight.
        node: BrokerId,
        /// Its phase.
        phase: Phase,
    },
    /// The gate stayed closed.
    #[error("the gate stayed closed for {}; {verdict}", human(*.waited))]
    GateTimeout {
        /// The node that was to be stopped.
        node: BrokerId,
        /// How long the roll waited.
        waited: Duration,
        /// The last verdict.
        verdict: GateVerdict,
    },
    /// A started node did not register (or stayed fenced).
    #[error(
        "node {node} did not come back within {} ({detail}); the roll is halted and no other node was stopped",
        human(*.waited)
    )]
    NotBack {
        /// The node.
        node: BrokerId,
        /// How long the roll waited.
        waited: Duration,
        /// What was seen last.
        detail: String,
    },
    /// A node did not rejoin every ISR in time.
    #[error(
        "node {node} is still out of the ISR of {behind} partition(s) after {} (e.g. {examples}); the roll is halted",
        human(*.waited)
    )]
    CatchUpTimeout {
        /// The node.
        node: BrokerId,
        /// How long the roll waited.
        waited: Duration,
        /// How many partitions are behind.
        behind: usize,
        /// A few of them.
        examples: String,
    },
}

fn may_not_elect(e: &KafkaPortError) -> String {
    match e {
        KafkaPortError::Elect { source } => {
            format!("this principal may not elect leaders: {source}")
        }
        other => format!("checking that this principal may elect leaders failed: {other}"),
    }
}

impl RollError {
    /// The node concerned, if any.
    pub fn node(&self) -> Option<BrokerId> {
        match self {
            RollError::GateTimeout { node, .. }
            | RollError::NotBack { node, .. }
            | RollError::CatchUpTimeout { node, .. }
            | RollError::ResumeConflict { node, .. }
            | RollError::SelectionConflict { node, .. }
            | RollError::ThrottlesSetDuringRoll { node, .. } => Some(*node),
            RollError::Fleet(
                FleetError::UnknownNode { node }
                | FleetError::UnknownSize { node, .. }
                | FleetError::Stop { node, .. }
                | FleetError::Resize { node, .. }
                | FleetError::Start { node, .. }
                | FleetError::Inspect { node, .. },
            ) => Some(*node),
            _ => None,
        }
    }
}

/// What the roll reports while it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RollEvent {
    /// The plan.
    Planned {
        /// The plan.
        plan: RollPlan,
    },
    /// An unfinished roll continues.
    Resumed {
        /// The node in flight, with its phase.
        node: Option<(BrokerId, Phase)>,
        /// Which run this is.
        run: u32,
    },
    /// The gate is closed for the next node; waiting.
    GateWaiting {
        /// The verdict.
        verdict: GateVerdict,
        /// Waited so far, ms.
        waited_ms: u64,
    },
    /// A phase of a node finished.
    Step {
        /// The node.
        node: BrokerId,
        /// The phase reached.
        phase: Phase,
        /// How long it took, ms.
        ms: u64,
    },
    /// A restarted node is not back in every ISR yet.
    CatchingUp {
        /// The node.
        node: BrokerId,
        /// Partitions behind.
        partitions_behind: usize,
        /// Of how many it hosts.
        hosted: usize,
        /// Bytes behind.
        bytes_behind: u64,
        /// Waited so far, ms.
        waited_ms: u64,
    },
    /// A restarted node is not registered yet.
    WaitingForRegistration {
        /// The node.
        node: BrokerId,
        /// Waited so far, ms.
        waited_ms: u64,
    },
    /// A node that comes back with an empty disk gets its rebuild throttled (before its stop).
    RebuildThrottled {
        /// The node.
        node: BrokerId,
        /// The throttle, bytes per second.
        throttle_bytes_per_s: u64,
        /// The brokers sending the data.
        senders: usize,
        /// The topics whose replicas are throttled.
        topics: usize,
    },
    /// A node's rebuild is over: it is back in every ISR (and its throttle lifted).
    Rebuilt {
        /// The node.
        node: BrokerId,
        /// What it stores now, bytes.
        bytes: u64,
        /// From its start request to back in every ISR, ms (`None` when resumed).
        since_start_ms: Option<u64>,
        /// The rate its catch-up reached, bytes per second (`None` when resumed: only part
        /// of it was timed).
        rate_bytes_per_s: Option<f64>,
        /// The throttle it ran under, bytes per second.
        throttle_bytes_per_s: Option<u64>,
        /// Configs of the throttle someone else set to another value meanwhile, left set.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        left_to_others: Vec<String>,
    },
    /// The final election is verified.
    Finished {
        /// Partitions still not led by their preferred replica.
        not_preferred: usize,
    },
    /// The roll halted.
    Halted {
        /// The node concerned.
        node: Option<BrokerId>,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for RollEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |ms: &u64| human_ms(*ms);
        match self {
            RollEvent::Planned { plan } if plan.steps.is_empty() => write!(
                f,
                "nothing to roll: every selected node is already {}",
                plan.target
            ),
            RollEvent::Planned { plan } => {
                let order: Vec<String> = plan
                    .steps
                    .iter()
                    .map(|s| format!("{} ({})", s.id, s.position))
                    .collect();
                write!(
                    f,
                    "plan: roll {} node(s) to {}: {}",
                    plan.steps.len(),
                    plan.target,
                    order.join(", ")
                )?;
                if !plan.controllers_not_named.is_empty() {
                    write!(
                        f,
                        "; dedicated controller(s) {} keep their size (name them to roll them)",
                        kpilot_cluster::sample_list(
                            &plan.controllers_not_named,
                            plan.controllers_not_named.len()
                        )
                    )?;
                }
                Ok(())
            }
            RollEvent::Resumed { node, run } => match node {
                Some((n, p)) => write!(f, "resuming (run {run}): node {n} is at {p}"),
                None => write!(f, "resuming (run {run})"),
            },
            RollEvent::GateWaiting { verdict, waited_ms } => {
                write!(f, "waiting {}: {verdict}", s(waited_ms))
            }
            RollEvent::Step { node, phase, ms } => {
                write!(f, "node {node}: {phase} ({})", s(ms))
            }
            RollEvent::CatchingUp {
                node,
                partitions_behind,
                hosted,
                bytes_behind,
                waited_ms,
            } => write!(
                f,
                "node {node}: catching up, {partitions_behind} of {hosted} partition(s) and {bytes_behind} byte(s) behind ({})",
                s(waited_ms)
            ),
            RollEvent::WaitingForRegistration { node, waited_ms } => write!(
                f,
                "node {node}: waiting to be registered and unfenced ({})",
                s(waited_ms)
            ),
            RollEvent::RebuildThrottled {
                node,
                throttle_bytes_per_s,
                senders,
                topics,
            } => write!(
                f,
                "node {node}: comes back with an empty disk; its rebuild is throttled at {:.1} MB/s (follower rate on it, leader rate on {senders} sender(s), {topics} topic(s))",
                *throttle_bytes_per_s as f64 / 1e6
            ),
            RollEvent::Rebuilt {
                node,
                bytes,
                since_start_ms,
                rate_bytes_per_s,
                throttle_bytes_per_s,
                left_to_others,
            } => {
                write!(f, "node {node}: rebuilt {:.1} MB", *bytes as f64 / 1e6)?;
                if let Some(ms) = since_start_ms {
                    write!(f, " in {} from its start", s(ms))?;
                }
                if let Some(r) = rate_bytes_per_s {
                    write!(f, ", {:.2} MB/s while catching up", r / 1e6)?;
                }
                match throttle_bytes_per_s {
                    Some(t) => write!(f, " (throttle {:.1} MB/s, lifted)", *t as f64 / 1e6)?,
                    None => f.write_str(" (unthrottled)")?,
                }
                if !left_to_others.is_empty() {
                    write!(
                        f,
                        "; left set, someone else's since: {}",
                        left_to_others.join(", ")
                    )?;
                }
                Ok(())
            }
            RollEvent::Finished { not_preferred } => {
                if *not_preferred == 0 {
                    f.write_str("final election: every partition led by its preferred replica")
                } else {
                    write!(
                        f,
                        "final election: {not_preferred} partition(s) not led by their preferred replica"
                    )
                }
            }
            RollEvent::Halted { node, reason } => match node {
                Some(n) => write!(f, "HALTED at node {n}: {reason}"),
                None => write!(f, "HALTED: {reason}"),
            },
        }
    }
}

/// A dry run: the plan and the gate's verdict for every planned node now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DryRun {
    /// The plan.
    pub plan: RollPlan,
    /// The gate's verdict per node, in plan order.
    pub verdicts: Vec<GateVerdict>,
    /// An unfinished roll found in the journal, if any.
    pub unfinished: Option<Journal>,
    /// Why a run would be refused before it stops anything (the principal may not elect
    /// leaders; replication throttles already set when rebuilds would be throttled), or
    /// `None`. The plan above is still what such a run would do once the
    /// cause is fixed.
    pub refused: Option<String>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The executor, over a Kafka port and a fleet.
pub struct Roller<'a, K, F> {
    kafka: &'a K,
    fleet: &'a F,
    settings: Settings,
    progress: Box<dyn FnMut(&RollEvent) + 'a>,
}

impl<'a, K: KafkaPort, F: Fleet> Roller<'a, K, F> {
    /// An executor reporting progress to `progress`.
    pub fn new(
        kafka: &'a K,
        fleet: &'a F,
        settings: Settings,
        progress: impl FnMut(&RollEvent) + 'a,
    ) -> Self {
        Roller {
            kafka,
            fleet,
            settings,
            progress: Box::new(progress),
        }
    }

    fn emit(&mut self, event: RollEvent) {
        info!(%event, "roll");
        (self.progress)(&event);
    }

    /// Observes the cluster and asks the fleet which of the nodes that are not serving are
    /// down (a stopped broker stays registered but fenced in KRaft, like one recovering its
    /// logs). A node the fleet cannot answer for counts as running: the conservative choice.
    async fn observe(&self) -> Result<Observation, RollError> {
        let mut obs = self.kafka.observe().await.map_err(RollError::Observe)?;
        for node in obs.nodes() {
            if !obs.is_serving(node) && matches!(self.fleet.is_running(node).await, Ok(false)) {
                obs.down.insert(node);
            }
        }
        Ok(obs)
    }

    async fn check_may_elect(&self) -> Result<(), RollError> {
        self.kafka
            .check_may_elect()
            .await
            .map_err(RollError::MayNotElect)
    }

    /// Before a roll whose rebuilds would be throttled: refuses when the principal may not
    /// set the throttles, which would otherwise halt the roll at its first rebuild, with the
    /// nodes before it rolled already.
    async fn check_may_throttle(&self, options: &RollOptions) -> Result<(), RollError> {
        if !self.throttles_rebuilds(options) {
            return Ok(());
        }
        self.kafka
            .check_may_throttle()
            .await
            .map_err(RollError::MayNotThrottle)
    }

    /// Whether the rebuilds of this roll are throttled.
    fn throttles_rebuilds(&self, options: &RollOptions) -> bool {
        self.fleet.fresh_disks() && options.rebuild_throttle_bytes_per_s.is_some()
    }

    /// Before a new roll whose rebuilds would be throttled: refuses when replication
    /// throttles are set already (a reassignment's, or left behind), since each rebuild
    /// overwrites and then removes the configs it uses.
    async fn check_no_throttles(&self, options: &RollOptions) -> Result<(), RollError> {
        let found = self.throttles_in_the_way(options).await?;
        if found.is_empty() {
            Ok(())
        } else {
            Err(RollError::ThrottlesSet { found })
        }
    }

    /// Before the next node of a roll whose rebuilds are throttled leaves the gate: the last
    /// node's throttle is lifted by now, so any replication throttle set is someone else's,
    /// set since the roll began (a reassignment started meanwhile). The roll halts before the
    /// node is in flight, so that a rerun passes the gate again.
    async fn check_no_throttles_before(
        &self,
        node: BrokerId,
        options: &RollOptions,
    ) -> Result<(), RollError> {
        let found = self.throttles_in_the_way(options).await?;
        if found.is_empty() {
            Ok(())
        } else {
            Err(RollError::ThrottlesSetDuringRoll { node, found })
        }
    }

    /// The replication throttles set now, when the rebuilds would be throttled (none to look
    /// for otherwise).
    async fn throttles_in_the_way(&self, options: &RollOptions) -> Result<Vec<String>, RollError> {
        if !self.throttles_rebuilds(options) {
            return Ok(Vec::new());
        }
        self.kafka.throttles_set().await.map_err(RollError::Observe)
    }

    async fn sizes(
        &self,
        obs: &Observation,
    ) -> Result<std::collections::BTreeMap<BrokerId, Option<InstanceType>>, RollError> {
        let mut sizes = std::collections::BTreeMap::new();
        for node in obs.nodes() {
            sizes.insert(node, self.fleet.size(node).await?);
        }
        Ok(sizes)
    }

    /// Plans the roll and asks the gate about every planned node, without changing anything.
    /// A principal that may not elect leaders still gets the plan, with the refusal a run
    /// would meet in [`DryRun::refused`].
    pub async fn dry_run(
        &mut self,
        options: &RollOptions,
        store: &impl JournalStore,
    ) -> Result<DryRun, RollError> {
        self.fleet.check_size(&options.target).await?;
        let refused = match self.check_may_elect().await {
            Ok(()) => match self.check_may_throttle(options).await {
                Ok(()) => self.check_no_throttles(options).await.err(),
                Err(e) => Some(e),
            },
            Err(e) => Some(e),
        }
        .map(|e| e.to_string());
        let obs = self.observe().await?;
        let sizes = self.sizes(&obs).await?;
        let plan = plan::plan(&obs, options, &sizes)?;
        let verdicts = plan
            .steps
            .iter()
            .map(|s| gate::evaluate(&obs, s.id, &options.rules))
            .collect();
        let unfinished = store.load()?.filter(|j| !j.status.is_over());
        Ok(DryRun {
            plan,
            verdicts,
            unfinished,
            refused,
        })
    }

    /// Runs (or resumes) the roll to the end, saving the journal before and after every step.
    /// On failure the journal is saved as halted and the error returned; the report of what
    /// happened is then available from the journal ([`RollReport::from_journal`]).
    pub async fn run(
        &mut self,
        options: &RollOptions,
        store: &mut impl JournalStore,
    ) -> Result<RollReport, RollError> {
        let mut journal = self.open_journal(options, store).await?;
        store.save(&journal)?;
        match self.drive(&mut journal, options, store).await {
            Ok(()) => Ok(RollReport::from_journal(&journal)),
            Err(e) => {
                let node = e.node().or_else(|| journal.in_flight().map(|n| n.id));
                journal.halt(node, e.to_string(), now_ms());
                self.emit(RollEvent::Halted {
                    node,
                    reason: e.to_string(),
                });
                if let Err(save) = store.save(&journal) {
                    warn!(error = %save, "could not record the halt in the journal");
                }
                Err(e)
            }
        }
    }

    async fn open_journal(
        &mut self,
        options: &RollOptions,
        store: &impl JournalStore,
    ) -> Result<Journal, RollError> {
        self.fleet.check_size(&options.target).await?;
        self.check_may_elect().await?;
        self.check_may_throttle(options).await?;
        if let Some(mut j) = store.load()?
            && !j.status.is_over()
        {
            let requested = Selection::of(options.only.as_ref());
            // A journal written before the selection was recorded resumes as before.
            let other_nodes = j.selection.as_ref().is_some_and(|s| *s != requested);
            if j.target != options.target {
                if let Some(n) = j.in_flight() {
                    return Err(RollError::ResumeConflict {
                        journal_target: j.target.clone(),
                        node: n.id,
                        phase: n.phase,
                    });
                }
            } else if other_nodes {
                // Like another --to: a node in flight is finished first; between nodes, the
                // run plans its own selection anew.
                if let (Some(n), Some(journal_selection)) = (j.in_flight(), j.selection.clone()) {
                    return Err(RollError::SelectionConflict {
                        journal_selection,
                        requested,
                        node: n.id,
                        phase: n.phase,
                    });
                }
            } else {
                j.resume(now_ms());
                let node = j.in_flight().map(|n| (n.id, n.phase));
                let run = j.runs;
                self.emit(RollEvent::Resumed { node, run });
                return Ok(j);
            }
        }
        self.check_no_throttles(options).await?;
        let obs = self.observe().await?;
        let sizes = self.sizes(&obs).await?;
        let plan = plan::plan(&obs, options, &sizes)?;
        let mut journal = Journal::new(
            obs.state.cluster_id.clone(),
            options.target.clone(),
            plan.accepted_topics.clone(),
            plan.steps
                .iter()
                .map(|s| (s.id, s.current_size.clone()))
                .collect(),
            now_ms(),
        );
        journal.selection = Some(Selection::of(options.only.as_ref()));
        self.emit(RollEvent::Planned { plan });
        Ok(journal)
    }

    async fn drive(
        &mut self,
        journal: &mut Journal,
        options: &RollOptions,
        store: &mut impl JournalStore,
    ) -> Result<(), RollError> {
        loop {
            let action = journal.next_action();
            let node = match &action {
                Action::Stop(n)
                | Action::Resize(n)
                | Action::Start(n)
                | Action::WaitCatchUp(n)
                | Action::Elect(n) => Some(*n),
                _ => None,
            };
            let span = info_span!("roll_step", node = ?node.map(|n| n.0), action = ?action);
            let _guard = span.enter();
            match action {
                Action::StartNext(pending) => {
                    let (next, waited) = self.wait_for_gate(&pending, options).await?;
                    self.check_no_throttles_before(next, options).await?;
                    journal.advance(next, Phase::StopIssued, now_ms())?;
                    journal.node_mut(next)?.timings.gate_wait_ms = Some(ms(waited));
                    store.save(journal)?;
                }
                Action::Stop(n) => {
                    self.prepare_rebuild(journal, store, n, options).await?;
                    let t = Instant::now();
                    self.fleet.stop(n).await?;
                    self.finish_step(journal, store, n, Phase::Stopped, t)?;
                }
                Action::Resize(n) => {
                    if journal.node(n).map(|e| e.phase) == Some(Phase::Stopped) {
                        journal.advance(n, Phase::ResizeIssued, now_ms())?;
                        store.save(journal)?;
                    }
                    let t = Instant::now();
                    self.fleet.resize(n, &options.target).await?;
                    self.finish_step(journal, store, n, Phase::Resized, t)?;
                }
                Action::Start(n) => {
                    if journal.node(n).map(|e| e.phase) == Some(Phase::Resized) {
                        journal.advance(n, Phase::StartIssued, now_ms())?;
                        store.save(journal)?;
                    }
                    let t = Instant::now();
                    self.fleet.start(n).await?;
                    self.wait_registered(n, t).await?;
                    self.finish_step(journal, store, n, Phase::Started, t)?;
                }
                Action::WaitCatchUp(n) => {
                    self.start_rebuild(journal, store, n).await?;
                    let t = Instant::now();
                    self.wait_caught_up(n).await?;
                    self.finish_step(journal, store, n, Phase::CaughtUp, t)?;
                    self.finish_rebuild(journal, store, n).await?;
                }
                Action::Elect(n) => {
                    // A run that stopped between the catch-up and the lift lifts it now.
                    self.finish_rebuild(journal, store, n).await?;
                    if journal.node(n).map(|e| e.phase) == Some(Phase::CaughtUp) {
                        journal.advance(n, Phase::ElectionIssued, now_ms())?;
                        store.save(journal)?;
                    }
                    let t = Instant::now();
                    let (moved, _left) = self.elect_and_verify(Some(n)).await?;
                    journal.node_mut(n)?.leaders_moved = Some(moved);
                    self.finish_step(journal, store, n, Phase::Done, t)?;
                }
                Action::FinalElection => {
                    let done: Vec<BrokerId> = journal.nodes.iter().map(|n| n.id).collect();
                    for n in done {
                        self.finish_rebuild(journal, store, n).await?;
                    }
                    let t = Instant::now();
                    let (_, left) = self.elect_and_verify(None).await?;
                    let not_preferred = left.len();
                    journal.finish(
                        left.iter().map(ToString::to_string).collect(),
                        ms(t.elapsed()),
                        now_ms(),
                    );
                    store.save(journal)?;
                    self.emit(RollEvent::Finished { not_preferred });
                }
                Action::Finished => return Ok(()),
            }
        }
    }

    /// Before `node` stops, when the fleet gives it an empty disk and it hosts partitions:
    /// records its rebuild (the topics it hosts, the brokers that will send the data) and,
    /// with a throttle, sets it while the node can still take its own configs. Recorded
    /// before it is set, so a run that stops in between lifts it later.
    async fn prepare_rebuild(
        &mut self,
        journal: &mut Journal,
        store: &mut impl JournalStore,
        node: BrokerId,
        options: &RollOptions,
    ) -> Result<(), RollError> {
        if !self.fleet.fresh_disks() {
            return Ok(());
        }
        if journal.node_mut(node)?.rebuild.is_none() {
            let obs = self.observe().await?;
            let mut partitions: BTreeMap<String, BTreeMap<i32, Vec<BrokerId>>> = BTreeMap::new();
            for (t, p) in obs.state.partitions() {
                if p.replicas.contains(&node) {
                    partitions
                        .entry(t.name.to_string())
                        .or_default()
                        .insert(p.partition, p.replicas.clone());
                }
            }
            if partitions.is_empty() {
                // It hosts nothing (a dedicated controller, an empty broker): nothing to
                // rebuild, nothing to throttle or measure.
                return Ok(());
            }
            let senders: BTreeSet<BrokerId> = partitions
                .values()
                .flat_map(BTreeMap::values)
                .flatten()
                .copied()
                .filter(|b| *b != node)
                .collect();
            journal.node_mut(node)?.rebuild = Some(Rebuild {
                throttle_bytes_per_s: options.rebuild_throttle_bytes_per_s,
                senders: senders.into_iter().collect(),
                topics: partitions.keys().cloned().collect(),
                partitions,
                applied: options.rebuild_throttle_bytes_per_s.is_some(),
                ..Rebuild::default()
            });
            store.save(journal)?;
        }
        let rebuild = journal.node_mut(node)?.rebuild.clone().unwrap_or_default();
        if let Some(rate) = rebuild.throttle_bytes_per_s.filter(|_| rebuild.applied)
            && self.fleet.is_running(node).await?
        {
            self.kafka
                .throttle_rebuild(node, &rebuild)
                .await
                .map_err(RollError::Throttle)?;
            self.emit(RollEvent::RebuildThrottled {
                node,
                throttle_bytes_per_s: rate,
                senders: rebuild.senders.len(),
                topics: rebuild.topics.len(),
            });
        }
        Ok(())
    }

    /// When `node`'s catch-up begins (it is registered): records what it has already copied,
    /// so that the catch-up's rate counts only what it copied in that time.
    async fn start_rebuild(
        &mut self,
        journal: &mut Journal,
        store: &mut impl JournalStore,
        node: BrokerId,
    ) -> Result<(), RollError> {
        let entry = journal.node_mut(node)?;
        if entry
            .rebuild
            .as_ref()
            .is_none_or(|r| r.bytes_at_catch_up.is_some())
        {
            return Ok(());
        }
        self.record_stored(journal, store, node, |r| &mut r.bytes_at_catch_up)
            .await
    }

    /// Records what `node` stores now in the field `field` picks of its rebuild.
    async fn record_stored(
        &mut self,
        journal: &mut Journal,
        store: &mut impl JournalStore,
        node: BrokerId,
        field: impl FnOnce(&mut Rebuild) -> &mut Option<u64>,
    ) -> Result<(), RollError> {
        let bytes = self
            .kafka
            .stored_bytes(node)
            .await
            .map_err(RollError::Observe)?;
        if let Some(r) = journal.node_mut(node)?.rebuild.as_mut() {
            *field(r) = Some(bytes);
        }
        store.save(journal)?;
        Ok(())
    }

    /// Once `node` is back in every ISR: records what it rebuilt and lifts its throttle.
    /// Idempotent; nothing for a node without a rebuild.
    async fn finish_rebuild(
        &mut self,
        journal: &mut Journal,
        store: &mut impl JournalStore,
        node: BrokerId,
    ) -> Result<(), RollError> {
        let entry = journal.node_mut(node)?.clone();
        let Some(rebuild) = entry.rebuild.clone() else {
            return Ok(());
        };
        if entry.phase < Phase::CaughtUp || (rebuild.bytes.is_some() && !rebuild.applied) {
            return Ok(());
        }
        if rebuild.bytes.is_none() {
            self.record_stored(journal, store, node, |r| &mut r.bytes)
                .await?;
        }
        if rebuild.applied {
            let theirs = self
                .kafka
                .lift_rebuild_throttle(node, &rebuild)
                .await
                .map_err(RollError::Throttle)?;
            if let Some(r) = journal.node_mut(node)?.rebuild.as_mut() {
                r.applied = false;
                r.left_to_others = theirs;
            }
            store.save(journal)?;
        }
        let entry = journal.node_mut(node)?.clone();
        let rebuild = entry.rebuild.clone().unwrap_or_default();
        let t = &entry.timings;
        self.emit(RollEvent::Rebuilt {
            node,
            bytes: rebuild.bytes.unwrap_or(0),
            since_start_ms: if entry.resumed {
                None
            } else {
                t.start_ms.zip(t.catch_up_ms).map(|(a, b)| a + b)
            },
            rate_bytes_per_s: if entry.resumed {
                None
            } else {
                rebuild.rate_bytes_per_s(entry.timings.catch_up_ms)
            },
            throttle_bytes_per_s: rebuild.throttle_bytes_per_s,
            left_to_others: rebuild.left_to_others,
        });
        Ok(())
    }

    fn finish_step(
        &mut self,
        journal: &mut Journal,
        store: &mut impl JournalStore,
        node: BrokerId,
        phase: Phase,
        started: Instant,
    ) -> Result<(), RollError> {
        let took = ms(started.elapsed());
        let now = now_ms();
        journal.advance(node, phase, now)?;
        let entry = journal.node_mut(node)?;
        match phase {
            Phase::Stopped => entry.timings.shutdown_ms = Some(took),
            Phase::Resized => entry.timings.resize_ms = Some(took),
            Phase::Started => entry.timings.start_ms = Some(took),
            Phase::CaughtUp => entry.timings.catch_up_ms = Some(took),
            Phase::Done => {
                entry.timings.election_ms = Some(took);
                entry.timings.total_ms =
                    entry.began_ms.map(|b| u64::try_from(now - b).unwrap_or(0));
            }
            _ => {}
        }
        store.save(journal)?;
        self.emit(RollEvent::Step {
            node,
            phase,
            ms: took,
        });
        Ok(())
    }

    /// Waits until the gate opens for the first pending node in the (re-evaluated) order.
    async fn wait_for_gate(
        &mut self,
        pending: &[BrokerId],
        options: &RollOptions,
    ) -> Result<(BrokerId, Duration), RollError> {
        let started = Instant::now();
        let mut last_report: Option<Instant> = None;
        let mut last_blocks = None;
        let set: BTreeSet<BrokerId> = pending.iter().copied().collect();
        loop {
            let verdict = match self.observe().await {
                Ok(obs) => {
                    let next = plan::order(&obs, &set)
                        .first()
                        .copied()
                        .unwrap_or(pending[0]);
                    let verdict = gate::evaluate(&obs, next, &options.rules);
                    if verdict.is_open() {
                        return Ok((next, started.elapsed()));
                    }
                    Some(verdict)
                }
                Err(e) => {
                    warn!(error = %e, "observing the cluster failed while waiting for the gate");
                    None
                }
            };
            if let Some(verdict) = &verdict {
                let changed = last_blocks.as_ref() != Some(&verdict.blocks);
                if changed
                    || last_report.is_none_or(|t| t.elapsed() >= self.settings.progress_every)
                {
                    last_report = Some(Instant::now());
                    last_blocks = Some(verdict.blocks.clone());
                    self.emit(RollEvent::GateWaiting {
                        verdict: verdict.clone(),
                        waited_ms: ms(started.elapsed()),
                    });
                }
            }
            if started.elapsed() >= self.settings.gate_timeout {
                let verdict = verdict.unwrap_or(GateVerdict {
                    broker: pending[0],
                    blocks: vec![gate::GateBlock::QuorumUnknown],
                });
                return Err(RollError::GateTimeout {
                    node: verdict.broker,
                    waited: started.elapsed(),
                    verdict,
                });
            }
            tokio::time::sleep(self.settings.poll).await;
        }
    }

    async fn wait_registered(&mut self, node: BrokerId, started: Instant) -> Result<(), RollError> {
        let mut last_report = Instant::now();
        loop {
            let detail = match self.observe().await {
                Ok(obs) => {
                    let back = if obs.is_broker(node) {
                        obs.is_serving(node)
                    } else {
                        quorum_member_caught_up(&obs, node)
                    };
                    if back {
                        return Ok(());
                    }
                    if obs.fenced.contains(&node) {
                        "registered but fenced".to_string()
                    } else {
                        "not registered".to_string()
                    }
                }
                Err(e) => e.to_string(),
            };
            if !self.fleet.is_running(node).await? {
                return Err(RollError::NotBack {
                    node,
                    waited: started.elapsed(),
                    detail: format!("its process is not running; last seen: {detail}"),
                });
            }
            if started.elapsed() >= self.settings.start_timeout {
                return Err(RollError::NotBack {
                    node,
                    waited: started.elapsed(),
                    detail,
                });
            }
            if last_report.elapsed() >= self.settings.progress_every {
                last_report = Instant::now();
                self.emit(RollEvent::WaitingForRegistration {
                    node,
                    waited_ms: ms(started.elapsed()),
                });
            }
            tokio::time::sleep(self.settings.poll).await;
        }
    }

    async fn wait_caught_up(&mut self, node: BrokerId) -> Result<(), RollError> {
        let started = Instant::now();
        let mut last_report = Instant::now();
        let mut last = None;
        loop {
            match self.observe().await {
                Ok(obs) => {
                    let c = gate::catch_up(&obs, node);
                    if c.is_complete()
                        || (!obs.is_broker(node) && quorum_member_caught_up(&obs, node))
                    {
                        return Ok(());
                    }
                    last = Some(c);
                }
                Err(e) => {
                    warn!(error = %e, "observing the cluster failed while waiting for catch-up")
                }
            }
            if started.elapsed() >= self.settings.catch_up_timeout {
                let (behind, examples) = last.as_ref().map_or((0, String::new()), |c| {
                    (
                        c.behind.len(),
                        c.behind
                            .iter()
                            .take(gate::EXAMPLES)
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", "),
                    )
                });
                return Err(RollError::CatchUpTimeout {
                    node,
                    waited: started.elapsed(),
                    behind,
                    examples,
                });
            }
            if last_report.elapsed() >= self.settings.progress_every
                && let Some(c) = &last
            {
                last_report = Instant::now();
                self.emit(RollEvent::CatchingUp {
                    node,
                    partitions_behind: c.behind.len(),
                    hosted: c.hosted,
                    bytes_behind: c.bytes_behind,
                    waited_ms: ms(started.elapsed()),
                });
            }
            tokio::time::sleep(self.settings.poll).await;
        }
    }

    /// Elects preferred leaders (for the partitions `node` prefers, or all) until verified or
    /// the election timeout; returns the leaders moved and what is still not preferred.
    async fn elect_and_verify(
        &mut self,
        node: Option<BrokerId>,
    ) -> Result<(usize, Vec<TopicPartition>), RollError> {
        let started = Instant::now();
        let mut moved = 0;
        loop {
            let obs = self.observe().await?;
            let wrong = gate::not_preferred(&obs.state, node);
            if wrong.is_empty() {
                return Ok((moved, wrong));
            }
            if started.elapsed() >= self.settings.election_timeout {
                warn!(
                    count = wrong.len(),
                    "partitions still not led by their preferred replica"
                );
                return Ok((moved, wrong));
            }
            let summary = self
                .kafka
                .elect_preferred(Some(&wrong))
                .await
                .map_err(RollError::Elect)?;
            moved += summary.elected;
            if !summary.failed.is_empty() {
                warn!(failed = ?summary.failed, "some preferred elections failed; retrying");
            }
            tokio::time::sleep(self.settings.poll).await;
        }
    }
}

/// Whether a controller's metadata log is caught up with the quorum's high watermark.
fn quorum_member_caught_up(obs: &Observation, node: BrokerId) -> bool {
    obs.state.quorum.as_ref().is_some_and(|q| {
        q.leader.is_some()
            && q.voters
                .iter()
                .chain(q.observers.iter())
                .find(|v| BrokerId::from(v.id) == node)
                .and_then(|v| v.log_end_offset)
                .is_some_and(|leo| leo >= q.high_watermark)
    })
}

/// What [`abandon`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Abandoned {
    /// The size the roll was going to.
    pub target: InstanceType,
    /// Nodes whose rebuild throttle was lifted (a node still rebuilding goes on unthrottled).
    pub lifted: Vec<BrokerId>,
    /// Configs of those throttles someone else had set to another value, left set.
    pub left_to_others: Vec<String>,
    /// The node in flight, if any, and its phase: the roll may have left it stopped or
    /// resized; nothing of that is undone.
    pub in_flight: Option<(BrokerId, Phase)>,
    /// Nodes the roll had finished.
    pub done: Vec<BrokerId>,
    /// Nodes it had not begun.
    pub pending: Vec<BrokerId>,
}

impl fmt::Display for Abandoned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids = |ids: &[BrokerId]| {
            if ids.is_empty() {
                "none".to_owned()
            } else {
                ids.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        writeln!(f, "Roll to {} abandoned.", self.target)?;
        writeln!(
            f,
            "  done: {}; not begun: {}",
            ids(&self.done),
            ids(&self.pending)
        )?;
        if self.lifted.is_empty() {
            writeln!(f, "  rebuild throttles: none was set")?;
        } else {
            writeln!(
                f,
                "  rebuild throttle lifted for node(s) {} (a rebuild still running goes on unthrottled)",
                ids(&self.lifted)
            )?;
        }
        if !self.left_to_others.is_empty() {
            writeln!(
                f,
                "  left set, someone else's: {}",
                self.left_to_others.join(", ")
            )?;
        }
        match self.in_flight {
            Some((node, phase)) if phase.may_be_down() => writeln!(
                f,
                "  node {node} was in flight ({phase}) and may be down: start it; while it is down, a new roll's gate lets no other broker stop"
            ),
            Some((node, phase)) => {
                writeln!(f, "  node {node} was in flight ({phase}); it is running")
            }
            None => writeln!(f, "  no node was in flight"),
        }
    }
}

/// Gives up the unfinished roll in `store`: lifts the rebuild throttles it set (recorded as
/// applied; values someone else set meanwhile are left), then marks the journal abandoned so
/// that the next run starts a new roll. Stops, starts and resizes nothing: a node the roll left
/// down stays down (the result names it). `journal` names the store in the error.
pub async fn abandon(
    kafka: &impl KafkaPort,
    store: &mut impl JournalStore,
    journal: &str,
) -> Result<Abandoned, RollError> {
    let nothing = |why: String| RollError::NothingToAbandon {
        journal: journal.to_owned(),
        why,
    };
    let mut j = store
        .load()?
        .ok_or_else(|| nothing("there is no journal".to_owned()))?;
    if j.status.is_over() {
        return Err(nothing(format!(
            "the roll to {} in it is over ({})",
            j.target,
            if matches!(j.status, RollStatus::Completed) {
                "completed"
            } else {
                "abandoned already"
            }
        )));
    }
    let mut lifted = Vec::new();
    let mut left_to_others = Vec::new();
    for id in j.nodes.iter().map(|n| n.id).collect::<Vec<_>>() {
        let Some(rebuild) = j.node(id).and_then(|n| n.rebuild.clone()) else {
            continue;
        };
        if !rebuild.applied {
            continue;
        }
        let theirs = kafka
            .lift_rebuild_throttle(id, &rebuild)
            .await
            .map_err(RollError::Throttle)?;
        if let Some(r) = j.node_mut(id)?.rebuild.as_mut() {
            r.applied = false;
            r.left_to_others.clone_from(&theirs);
        }
        store.save(&j)?;
        lifted.push(id);
        left_to_others.extend(theirs);
    }
    let in_flight = j.in_flight().map(|n| (n.id, n.phase));
    j.abandon(now_ms());
    store.save(&j)?;
    let with = |phase: Phase| -> Vec<BrokerId> {
        j.nodes
            .iter()
            .filter(|n| n.phase == phase)
            .map(|n| n.id)
            .collect()
    };
    Ok(Abandoned {
        target: j.target.clone(),
        lifted,
        left_to_others,
        in_flight,
        done: with(Phase::Done),
        pending: with(Phase::Pending),
    })
}
