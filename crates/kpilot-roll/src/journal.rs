//! The roll journal: the durable record of a roll, written before and after every step, and
//! the state machine that says what to do next (so a rerun after a crash continues at the
//! right broker and step). Pure: the format and transitions only; `crate::store` writes it.
//!
//! Each node moves through [`Phase`]s one step at a time. `*Issued` phases are written
//! *before* an action, the next phase *after* it succeeded; a rerun repeats an issued action
//! (every action is idempotent: stopping a stopped broker, starting a running one, resizing to
//! the same size and electing leaders do nothing twice). At most one node is ever between
//! [`Phase::Pending`] and [`Phase::Done`]: [`Journal::advance`] refuses to start a second one,
//! which is what guarantees that a rerun never stops a second broker while one is down.

use std::fmt;

use kpilot_cluster::{BrokerId, TopicName};
use kpilot_units::InstanceType;
use serde::{Deserialize, Serialize};

/// The journal format version.
pub const JOURNAL_VERSION: u32 = 1;

/// Where one node is in its roll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Not touched yet.
    Pending,
    /// The gate was open and a graceful stop was requested.
    StopIssued,
    /// The process has exited.
    Stopped,
    /// The new size is being applied.
    ResizeIssued,
    /// The new size is applied.
    Resized,
    /// A start was requested.
    StartIssued,
    /// Registered and unfenced again.
    Started,
    /// Back in the ISR of every partition it hosts.
    CaughtUp,
    /// A preferred leader election for its partitions was requested.
    ElectionIssued,
    /// Finished and verified.
    Done,
}

impl Phase {
    /// The phase after this one.
    pub fn next(self) -> Option<Phase> {
        use Phase::*;
        Some(match self {
            Pending => StopIssued,
            StopIssued => Stopped,
            Stopped => ResizeIssued,
            ResizeIssued => Resized,
            Resized => StartIssued,
            StartIssued => Started,
            Started => CaughtUp,
            CaughtUp => ElectionIssued,
            ElectionIssued => Done,
            Done => return None,
        })
    }

    /// Whether the node is between its first stop and its end: possibly down or catching up.
    pub fn in_flight(self) -> bool {
        self != Phase::Pending && self != Phase::Done
    }

    /// Whether the node's process may be down in this phase.
    pub fn may_be_down(self) -> bool {
        matches!(
            self,
            Phase::StopIssued
                | Phase::Stopped
                | Phase::ResizeIssued
                | Phase::Resized
                | Phase::StartIssued
        )
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        f.write_str(&text)
    }
}

/// Durations of one node's roll, in milliseconds (absent until measured).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    /// Waiting for the gate to open.
    pub gate_wait_ms: Option<u64>,
    /// Graceful stop: request to process exit (controlled shutdown included).
    pub shutdown_ms: Option<u64>,
    /// Applying the new size.
    pub resize_ms: Option<u64>,
    /// Start request to registered and unfenced.
    pub start_ms: Option<u64>,
    /// Registered to back in every ISR.
    pub catch_up_ms: Option<u64>,
    /// Preferred leader election and its verification.
    pub election_ms: Option<u64>,
    /// From the gate opening to done.
    pub total_ms: Option<u64>,
}

/// One node's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// The node.
    pub id: BrokerId,
    /// Its size before the roll, if known.
    pub from_size: Option<InstanceType>,
    /// Where it is.
    pub phase: Phase,
    /// When its roll began (gate opened), ms since the Unix epoch.
    pub began_ms: Option<i64>,
    /// When it finished, ms since the Unix epoch.
    pub finished_ms: Option<i64>,
    /// How long each part took.
    pub timings: Timings,
    /// Leaders moved back by its election.
    pub leaders_moved: Option<usize>,
    /// The last error seen for this node, if any.
    pub error: Option<String>,
    /// Whether its roll was in flight when a run stopped and a later run took it over: its
    /// timings then cover the later run's steps only, so they are no measurement of it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resumed: bool,
    /// The rebuild of its replicas, when the fleet gives a rolled node an empty disk
    /// (instance-local NVMe on a new node): recorded before its stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuild: Option<Rebuild>,
}

/// A node whose disk comes back empty: its catch-up copies every replica it hosts from the
/// other replicas, under a replication throttle so that the copy leaves the other brokers
/// the network the workload needs (the rate the policy planned the roll with). Kafka applies
/// the throttle only to replicas out of the ISR, so the other partitions' replication is
/// untouched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rebuild {
    /// The throttle, bytes per second: the follower rate on the node, the leader rate on each
    /// sender. `None`: unthrottled.
    pub throttle_bytes_per_s: Option<u64>,
    /// The brokers that send the data: the other replicas of its partitions (any of them may
    /// lead one).
    pub senders: Vec<BrokerId>,
    /// The topics with a replica on the node.
    pub topics: Vec<String>,
    /// The node's partitions when the rebuild was recorded, topic -> partition -> replicas:
    /// the throttled-replicas lists name exactly these (the node as the follower, the other
    /// replicas as leaders), so replicas of other partitions that fall out of the ISR
    /// meanwhile are not throttled. A journal written before they were recorded has none:
    /// its topics' lists are `*`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub partitions:
        std::collections::BTreeMap<String, std::collections::BTreeMap<i32, Vec<BrokerId>>>,
    /// Whether the throttle may be in force: set before the configs are written (before the
    /// stop), cleared once they are removed (after the catch-up).
    pub applied: bool,
    /// What the node stored when it was registered and its catch-up began, bytes: a broker
    /// starts fetching as soon as it has the metadata, before it is unfenced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_at_catch_up: Option<u64>,
    /// What the node stored once back in every ISR, bytes: what it rebuilt.
    pub bytes: Option<u64>,
    /// Configs of the throttle someone else had set to another value by the time it was
    /// lifted, `"<resource> <key>=<value> (not <ours>)"`: theirs, left set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_to_others: Vec<String>,
}

impl Rebuild {
    /// The rate the rebuild reached during the catch-up (from registered to back in every
    /// ISR), bytes per second: the bytes copied in that time over it (`None` when nothing
    /// was left to copy by then). The copying before the broker was registered is not in
    /// it, nor its start.
    pub fn rate_bytes_per_s(&self, catch_up_ms: Option<u64>) -> Option<f64> {
        let ms = catch_up_ms.filter(|ms| *ms > 0)?;
        let copied = self.copied_while_catching_up()?;
        (copied > 0).then(|| copied as f64 * 1000.0 / ms as f64)
    }

    /// The bytes copied from registered to back in every ISR.
    pub fn copied_while_catching_up(&self) -> Option<u64> {
        Some(
            self.bytes?
                .saturating_sub(self.bytes_at_catch_up.unwrap_or(0)),
        )
    }
}

impl NodeEntry {
    /// How long the broker was out before it could catch up, in one run: its graceful stop,
    /// the resize and its start up to registered and unfenced, ms. `None` until it has
    /// started, and for a node whose roll spans runs (see [`NodeEntry::resumed`]).
    pub fn restart_ms(&self) -> Option<u64> {
        if self.resumed {
            return None;
        }
        let t = &self.timings;
        Some(t.shutdown_ms? + t.resize_ms? + t.start_ms?)
    }
}

/// How the roll stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RollStatus {
    /// In progress (or interrupted: a rerun continues it).
    Running,
    /// Stopped because something went wrong; a rerun continues at the same node and step.
    Halted {
        /// The node concerned, if any.
        node: Option<BrokerId>,
        /// What went wrong.
        reason: String,
    },
    /// Every node done and the final election verified.
    Completed,
    /// Given up (`kpilot roll --abandon`): its rebuild throttles lifted, nothing else
    /// undone. The next roll starts anew.
    Abandoned {
        /// The node that was in flight then, if any, and its phase.
        node: Option<BrokerId>,
        /// Its phase then.
        phase: Option<Phase>,
    },
}

impl RollStatus {
    /// Whether the roll is over (completed or abandoned): a run starts a new one.
    pub fn is_over(&self) -> bool {
        matches!(self, RollStatus::Completed | RollStatus::Abandoned { .. })
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The nodes a roll was asked to roll (`kpilot roll --brokers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "ids", rename_all = "snake_case")]
pub enum Selection {
    /// Every broker (no `--brokers`).
    Every,
    /// Only these node ids (`--brokers`), ascending.
    Only(Vec<BrokerId>),
}

impl Selection {
    /// The selection of `only` (`None`: every broker).
    pub fn of(only: Option<&std::collections::BTreeSet<BrokerId>>) -> Self {
        match only {
            None => Selection::Every,
            Some(ids) => Selection::Only(ids.iter().copied().collect()),
        }
    }

    /// How a rerun asks for it: `with --brokers 1,3`, or `without --brokers`.
    pub fn rerun(&self) -> String {
        match self {
            Selection::Every => "without --brokers".to_string(),
            only => format!("with {only}"),
        }
    }
}

impl fmt::Display for Selection {
    /// As the command line says it: `--brokers 1,3`, or `every broker (no --brokers)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selection::Every => f.write_str("every broker (no --brokers)"),
            Selection::Only(ids) => {
                let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
                write!(f, "--brokers {}", ids.join(","))
            }
        }
    }
}

/// The durable record of one roll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    /// Format version ([`JOURNAL_VERSION`]).
    pub version: u32,
    /// The cluster the roll is for.
    pub cluster_id: Option<String>,
    /// The target size.
    pub target: InstanceType,
    /// The nodes it was asked to roll; `None` in a journal written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Selection>,
    /// Topics accepted by name although they cannot survive a stop.
    pub accepted_topics: Vec<TopicName>,
    /// When the roll started, ms since the Unix epoch.
    pub started_ms: i64,
    /// When the journal was last written, ms since the Unix epoch.
    pub updated_ms: i64,
    /// How many times `kpilot` ran this roll (1 + resumes).
    pub runs: u32,
    /// The time between its runs, ms: from each run's last journal write (its halt, or the
    /// last save before it died) to the next run's start. No run was working then.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub between_runs_ms: u64,
    /// How it stands.
    pub status: RollStatus,
    /// Every node to roll, in planned order (the executor may re-order the pending ones).
    pub nodes: Vec<NodeEntry>,
    /// Whether the final election and verification are done.
    pub final_election_done: bool,
    /// Partitions still not led by their preferred replica after the final election.
    pub final_not_preferred: Vec<String>,
    /// Duration of the final election and verification, ms.
    pub final_election_ms: Option<u64>,
}

/// What the roll must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Choose the next pending node (in planned order, re-evaluated), wait for the gate, and
    /// stop it. Carries the pending nodes.
    StartNext(Vec<BrokerId>),
    /// (Re)issue the graceful stop of the node.
    Stop(BrokerId),
    /// (Re)apply the new size.
    Resize(BrokerId),
    /// (Re)issue the start.
    Start(BrokerId),
    /// Wait until it is registered and back in every ISR.
    WaitCatchUp(BrokerId),
    /// Elect preferred leaders for its partitions and verify.
    Elect(BrokerId),
    /// Elect preferred leaders everywhere and verify.
    FinalElection,
    /// Nothing left to do.
    Finished,
}

/// An illegal journal transition (a bug in the caller, or a journal edited by hand).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// The node is not in the journal.
    #[error("node {node} is not part of this roll")]
    UnknownNode {
        /// The node.
        node: BrokerId,
    },
    /// A transition that skips or repeats a step.
    #[error("node {node} cannot go from {from} to {to}")]
    IllegalTransition {
        /// The node.
        node: BrokerId,
        /// Its phase.
        from: Phase,
        /// The phase asked for.
        to: Phase,
    },
    /// Starting a node while another is in flight.
    #[error("node {node} cannot start while node {in_flight} is still being rolled")]
    AnotherInFlight {
        /// The node asked for.
        node: BrokerId,
        /// The node in flight.
        in_flight: BrokerId,
    },
    /// The journal is not valid JSON of this format.
    #[error("the roll journal is not readable: {message}")]
    Parse {
        /// The parser's message.
        message: String,
    },
    /// The journal was written by another format version.
    #[error(
        "the roll journal has format version {found}, this kpilot reads version {JOURNAL_VERSION}"
    )]
    Version {
        /// The version found.
        found: u32,
    },
}

impl Journal {
    /// A new journal for `nodes` (in planned order, with their current sizes).
    pub fn new(
        cluster_id: Option<String>,
        target: InstanceType,
        accepted_topics: Vec<TopicName>,
        nodes: Vec<(BrokerId, Option<InstanceType>)>,
        now_ms: i64,
    ) -> Self {
        Journal {
            version: JOURNAL_VERSION,
            cluster_id,
            target,
            selection: None,
            accepted_topics,
            started_ms: now_ms,
            updated_ms: now_ms,
            runs: 1,
            between_runs_ms: 0,
            status: RollStatus::Running,
            nodes: nodes
                .into_iter()
                .map(|(id, from_size)| NodeEntry {
                    id,
                    from_size,
                    phase: Phase::Pending,
                    began_ms: None,
                    finished_ms: None,
                    timings: Timings::default(),
                    leaders_moved: None,
                    error: None,
                    resumed: false,
                    rebuild: None,
                })
                .collect(),
            final_election_done: false,
            final_not_preferred: Vec::new(),
            final_election_ms: None,
        }
    }

    /// The node currently being rolled, if any.
    pub fn in_flight(&self) -> Option<&NodeEntry> {
        self.nodes.iter().find(|n| n.phase.in_flight())
    }

    /// One node's entry.
    pub fn node(&self, id: BrokerId) -> Option<&NodeEntry> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// One node's entry, mutable.
    pub fn node_mut(&mut self, id: BrokerId) -> Result<&mut NodeEntry, JournalError> {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .ok_or(JournalError::UnknownNode { node: id })
    }

    /// What to do next.
    pub fn next_action(&self) -> Action {
        if let Some(n) = self.in_flight() {
            return match n.phase {
                Phase::StopIssued => Action::Stop(n.id),
                Phase::Stopped | Phase::ResizeIssued => Action::Resize(n.id),
                Phase::Resized | Phase::StartIssued => Action::Start(n.id),
                Phase::Started => Action::WaitCatchUp(n.id),
                Phase::CaughtUp | Phase::ElectionIssued => Action::Elect(n.id),
                Phase::Pending | Phase::Done => unreachable_in_flight(n.id),
            };
        }
        let pending: Vec<BrokerId> = self
            .nodes
            .iter()
            .filter(|n| n.phase == Phase::Pending)
            .map(|n| n.id)
            .collect();
        if !pending.is_empty() {
            return Action::StartNext(pending);
        }
        if !self.final_election_done {
            return Action::FinalElection;
        }
        Action::Finished
    }

    /// Moves `node` one step forward to `to`. Refuses skipping steps, going back, and
    /// starting a node while another is in flight.
    pub fn advance(&mut self, node: BrokerId, to: Phase, now_ms: i64) -> Result<(), JournalError> {
        if to == Phase::StopIssued
            && let Some(other) = self.in_flight()
            && other.id != node
        {
            return Err(JournalError::AnotherInFlight {
                node,
                in_flight: other.id,
            });
        }
        let entry = self.node_mut(node)?;
        if entry.phase.next() != Some(to) {
            return Err(JournalError::IllegalTransition {
                node,
                from: entry.phase,
                to,
            });
        }
        entry.phase = to;
        if to == Phase::StopIssued {
            entry.began_ms = Some(now_ms);
        }
        if to == Phase::Done {
            entry.finished_ms = Some(now_ms);
            entry.error = None;
        }
        self.updated_ms = now_ms;
        Ok(())
    }

    /// Marks the final election done.
    pub fn finish(&mut self, not_preferred: Vec<String>, election_ms: u64, now_ms: i64) {
        self.final_election_done = true;
        self.final_not_preferred = not_preferred;
        self.final_election_ms = Some(election_ms);
        self.status = RollStatus::Completed;
        self.updated_ms = now_ms;
    }

    /// Marks the roll halted.
    pub fn halt(&mut self, node: Option<BrokerId>, reason: String, now_ms: i64) {
        if let Some(id) = node
            && let Ok(entry) = self.node_mut(id)
        {
            entry.error = Some(reason.clone());
        }
        self.status = RollStatus::Halted { node, reason };
        self.updated_ms = now_ms;
    }

    /// Marks the roll abandoned, naming the node in flight (if any).
    pub fn abandon(&mut self, now_ms: i64) {
        let in_flight = self.in_flight().map(|n| (n.id, n.phase));
        self.status = RollStatus::Abandoned {
            node: in_flight.map(|(id, _)| id),
            phase: in_flight.map(|(_, phase)| phase),
        };
        self.updated_ms = now_ms;
    }

    /// Prepares a rerun: counts it and sets the status back to running.
    pub fn resume(&mut self, now_ms: i64) {
        self.runs += 1;
        self.between_runs_ms = self
            .between_runs_ms
            .saturating_add(u64::try_from(now_ms - self.updated_ms).unwrap_or(0));
        for n in &mut self.nodes {
            if n.phase.in_flight() {
                n.resumed = true;
            }
        }
        if !self.status.is_over() {
            self.status = RollStatus::Running;
        }
        self.updated_ms = now_ms;
    }

    /// The journal as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Reads a journal.
    pub fn from_json(text: &str) -> Result<Journal, JournalError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| JournalError::Parse {
                message: e.to_string(),
            })?;
        let version = value
            .get("version")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if version != u64::from(JOURNAL_VERSION) {
            return Err(JournalError::Version {
                found: u32::try_from(version).unwrap_or(u32::MAX),
            });
        }
        serde_json::from_value(value).map_err(|e| JournalError::Parse {
            message: e.to_string(),
        })
    }
}

fn unreachable_in_flight(id: BrokerId) -> Action {
    // `in_flight` only returns nodes strictly between Pending and Done.
    tracing::error!(node = %id, "journal in-flight node in a terminal phase");
    Action::Finished
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(n: i32) -> Journal {
        Journal::new(
            Some("c".into()),
            "m7g.xlarge".parse().expect("type"),
            vec![],
            (1..=n).map(|i| (BrokerId(i), None)).collect(),
            0,
        )
    }

    #[test]
    fn a_node_walks_every_phase_in_order() {
        let mut j = journal(2);
        assert_eq!(
            j.next_action(),
            Action::StartNext(vec![BrokerId(1), BrokerId(2)])
        );
        let mut phase = Phase::Pending;
        while let Some(next) = phase.next() {
            j.advance(BrokerId(2), next, 1).expect("forward");
            phase = next;
        }
        assert_eq!(j.next_action(), Action::StartNext(vec![BrokerId(1)]));
        assert!(
            j.advance(BrokerId(1), Phase::Stopped, 2).is_err(),
            "no skipping"
        );
    }

    #[test]
    fn a_second_node_cannot_start_while_one_is_in_flight() {
        let mut j = journal(3);
        j.advance(BrokerId(1), Phase::StopIssued, 1).expect("first");
        assert_eq!(
            j.advance(BrokerId(2), Phase::StopIssued, 1),
            Err(JournalError::AnotherInFlight {
                node: BrokerId(2),
                in_flight: BrokerId(1)
            })
        );
        assert_eq!(j.next_action(), Action::Stop(BrokerId(1)));
    }

    #[test]
    fn json_round_trip_and_resume_point() {
        let mut j = journal(2);
        j.advance(BrokerId(1), Phase::StopIssued, 1).expect("ok");
        j.advance(BrokerId(1), Phase::Stopped, 2).expect("ok");
        let back = Journal::from_json(&j.to_json()).expect("parse");
        assert_eq!(back, j);
        assert_eq!(back.next_action(), Action::Resize(BrokerId(1)));
        assert!(matches!(
            Journal::from_json("{\"version\": 7}"),
            Err(JournalError::Version { found: 7 })
        ));
    }

    #[test]
    fn final_election_comes_after_every_node() {
        let mut j = journal(1);
        let mut phase = Phase::Pending;
        while let Some(next) = phase.next() {
            j.advance(BrokerId(1), next, 1).expect("forward");
            phase = next;
        }
        assert_eq!(j.next_action(), Action::FinalElection);
        j.finish(vec![], 5, 9);
        assert_eq!(j.next_action(), Action::Finished);
        assert_eq!(j.status, RollStatus::Completed);
    }

    #[test]
    fn a_restart_is_measured_only_for_a_node_one_run_took_through_its_start() {
        let mut j = journal(3);
        for (id, ms) in [(1, 1_000), (2, 2_000)] {
            let n = j.node_mut(BrokerId(id)).expect("node");
            n.timings.shutdown_ms = Some(ms);
            n.timings.resize_ms = Some(10);
            n.timings.start_ms = Some(3 * ms);
        }
        // Node 2 is in flight when the run stops; node 3 has not begun.
        j.advance(BrokerId(2), Phase::StopIssued, 1).expect("ok");
        assert_eq!(
            j.node(BrokerId(2)).and_then(NodeEntry::restart_ms),
            Some(8_010)
        );
        j.resume(5);
        assert_eq!(
            j.node(BrokerId(1)).and_then(NodeEntry::restart_ms),
            Some(4_010)
        );
        assert_eq!(j.node(BrokerId(2)).and_then(NodeEntry::restart_ms), None);
        assert_eq!(j.node(BrokerId(3)).and_then(NodeEntry::restart_ms), None);
        // The mark survives the round trip; a journal written before it existed reads as
        // not resumed.
        let back = Journal::from_json(&j.to_json()).expect("parse");
        assert!(back.node(BrokerId(2)).is_some_and(|n| n.resumed));
        let mut value: serde_json::Value = serde_json::from_str(&j.to_json()).expect("json");
        for n in value["nodes"].as_array_mut().expect("nodes") {
            n.as_object_mut().expect("node").remove("resumed");
        }
        let old = Journal::from_json(&value.to_string()).expect("parse");
        assert!(old.nodes.iter().all(|n| !n.resumed));
    }
}
