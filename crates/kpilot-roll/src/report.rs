//! The final report of a roll, derived from its journal: per node the phases and their
//! durations, and the orchestration overhead beyond the brokers' own shutdown, restart and
//! catch-up time. Pure: no I/O.

use std::fmt::Write as _;

use kpilot_cluster::BrokerId;
use kpilot_units::InstanceType;
use serde::{Deserialize, Serialize};

use crate::journal::{Journal, Phase, Rebuild, RollStatus, Timings};

/// One node in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// The node.
    pub id: BrokerId,
    /// Its size before.
    pub from_size: Option<InstanceType>,
    /// Where it got to.
    pub phase: Phase,
    /// Durations.
    pub timings: Timings,
    /// Leaders moved back to it by its election.
    pub leaders_moved: Option<usize>,
    /// The error that halted it, if any.
    pub error: Option<String>,
    /// Its rebuild, when it came back on an empty disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuild: Option<Rebuild>,
}

/// The report of a roll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollReport {
    /// The cluster.
    pub cluster_id: Option<String>,
    /// The target size.
    pub target: InstanceType,
    /// How it ended.
    pub status: RollStatus,
    /// How many runs it took (1 + resumes).
    pub runs: u32,
    /// Time the runs took, ms: wall time from the first run's start to the last journal
    /// write, less `between_runs_ms`.
    pub total_ms: u64,
    /// Time between the runs (from a halt or crash to the rerun), in no run's time, ms.
    #[serde(default)]
    pub between_runs_ms: u64,
    /// Sum over nodes of shutdown + start + catch-up: the brokers' own time, ms.
    pub broker_own_ms: u64,
    /// `total_ms - broker_own_ms`: everything the orchestration added (gate checks, polling
    /// latency, resizing, elections, verification), ms.
    pub overhead_ms: u64,
    /// `overhead_ms` as a percentage of `total_ms`.
    pub overhead_pct: f64,
    /// The longest restart measured (a node's stop, resize and start in one run, see
    /// [`crate::journal::NodeEntry::restart_ms`]), ms: what the policy's restart time stands
    /// for (`--restart-time` of `kpilot recommend` and `kpilot simulate`).
    pub longest_restart_ms: Option<u64>,
    /// The final election and verification, ms.
    pub final_election_ms: Option<u64>,
    /// Partitions not led by their preferred replica after the final election.
    pub final_not_preferred: Vec<String>,
    /// Every node.
    pub nodes: Vec<NodeReport>,
}

impl RollReport {
    /// Builds the report from a journal.
    pub fn from_journal(journal: &Journal) -> Self {
        let total_ms = u64::try_from(journal.updated_ms - journal.started_ms)
            .unwrap_or(0)
            .saturating_sub(journal.between_runs_ms);
        let broker_own_ms: u64 = journal
            .nodes
            .iter()
            .map(|n| {
                n.timings.shutdown_ms.unwrap_or(0)
                    + n.timings.start_ms.unwrap_or(0)
                    + n.timings.catch_up_ms.unwrap_or(0)
            })
            .sum();
        let overhead_ms = total_ms.saturating_sub(broker_own_ms);
        let overhead_pct = if total_ms == 0 {
            0.0
        } else {
            overhead_ms as f64 * 100.0 / total_ms as f64
        };
        RollReport {
            cluster_id: journal.cluster_id.clone(),
            target: journal.target.clone(),
            status: journal.status.clone(),
            runs: journal.runs,
            total_ms,
            between_runs_ms: journal.between_runs_ms,
            broker_own_ms,
            overhead_ms,
            overhead_pct,
            longest_restart_ms: journal.nodes.iter().filter_map(|n| n.restart_ms()).max(),
            final_election_ms: journal.final_election_ms,
            final_not_preferred: journal.final_not_preferred.clone(),
            nodes: journal
                .nodes
                .iter()
                .map(|n| NodeReport {
                    id: n.id,
                    from_size: n.from_size.clone(),
                    phase: n.phase,
                    timings: n.timings.clone(),
                    leaders_moved: n.leaders_moved,
                    error: n.error.clone(),
                    rebuild: n.rebuild.clone(),
                })
                .collect(),
        }
    }

    /// A human table of the report.
    pub fn render(&self) -> String {
        fn secs(ms: Option<u64>) -> String {
            ms.map_or("-".to_string(), human_ms)
        }
        let mut out = String::new();
        let status = match &self.status {
            RollStatus::Completed => "completed".to_string(),
            RollStatus::Running => "interrupted (rerun to continue)".to_string(),
            RollStatus::Halted { node, reason } => format!(
                "HALTED{}: {reason}",
                node.map(|n| format!(" at node {n}")).unwrap_or_default()
            ),
            RollStatus::Abandoned { node, phase } => format!(
                "abandoned{}",
                node.zip(*phase)
                    .map(|(n, p)| format!(" with node {n} in flight ({p})"))
                    .unwrap_or_default()
            ),
        };
        let _ = writeln!(
            out,
            "Roll to {} of cluster {}: {status}",
            self.target,
            self.cluster_id.as_deref().unwrap_or("(unknown)")
        );
        if self.nodes.is_empty() {
            let _ = writeln!(
                out,
                "nothing to roll: every selected node is already {}",
                self.target
            );
            return out;
        }
        let _ = writeln!(
            out,
            "{:<6} {:<12} {:<16} {:>8} {:>9} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8}",
            "NODE",
            "FROM",
            "PHASE",
            "GATE",
            "SHUTDOWN",
            "RESIZE",
            "START",
            "CATCH-UP",
            "ELECTION",
            "LEADERS",
            "TOTAL"
        );
        for n in &self.nodes {
            let t = &n.timings;
            let _ = writeln!(
                out,
                "{:<6} {:<12} {:<16} {:>8} {:>9} {:>8} {:>8} {:>9} {:>9} {:>8} {:>8}",
                n.id.to_string(),
                n.from_size
                    .as_ref()
                    .map_or("?".to_string(), ToString::to_string),
                n.phase.to_string(),
                secs(t.gate_wait_ms),
                secs(t.shutdown_ms),
                secs(t.resize_ms),
                secs(t.start_ms),
                secs(t.catch_up_ms),
                secs(t.election_ms),
                n.leaders_moved.map_or("-".to_string(), |l| l.to_string()),
                secs(t.total_ms),
            );
            // The halting error is on the status line already.
            let halted_by = matches!(
                &self.status,
                RollStatus::Halted { node: Some(id), reason } if *id == n.id && n.error.as_ref() == Some(reason)
            );
            if let Some(e) = n.error.as_ref().filter(|_| !halted_by) {
                let _ = writeln!(out, "       error: {e}");
            }
            if let Some(r) = &n.rebuild {
                let _ = writeln!(out, "       {}", rebuild_line(r, t));
            }
        }
        let _ = writeln!(
            out,
            "total {}, brokers' own shutdown+start+catch-up {}, orchestration overhead {} ({:.1}%), runs {}{}",
            secs(Some(self.total_ms)),
            secs(Some(self.broker_own_ms)),
            secs(Some(self.overhead_ms)),
            self.overhead_pct,
            self.runs,
            if self.between_runs_ms > 0 {
                format!(
                    " ({} between them not counted)",
                    human_ms(self.between_runs_ms)
                )
            } else {
                String::new()
            }
        );
        if let Some(ms) = self.longest_restart_ms {
            let _ = writeln!(
                out,
                "longest broker restart (shutdown+resize+start) {}: the policy's --restart-time",
                secs(Some(ms))
            );
        }
        if let Some(ms) = self.final_election_ms {
            let _ = writeln!(
                out,
                "final preferred leader election {}: {}",
                secs(Some(ms)),
                if self.final_not_preferred.is_empty() {
                    "every partition led by its preferred replica".to_string()
                } else {
                    format!("not preferred: {}", self.final_not_preferred.join(", "))
                }
            );
        }
        out
    }
}

/// A duration as roll prints it everywhere (progress, report, errors): `12.2s` under a
/// minute, `5m 00s` under an hour, `1h 02m 05s` beyond.
pub fn human_ms(ms: u64) -> String {
    if ms < 60_000 {
        // Rounded to a tenth, so 59.96 s reads 60.0s rather than 1m 00s.
        return format!("{:.1}s", ms as f64 / 1000.0);
    }
    let secs = (ms + 500) / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h == 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{h}h {m:02}m {s:02}s")
    }
}

/// [`human_ms`] of a [`std::time::Duration`].
pub fn human(d: std::time::Duration) -> String {
    human_ms(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One line on a node's rebuild: what it copied, how fast, under which throttle.
fn rebuild_line(r: &Rebuild, t: &Timings) -> String {
    let mut line = match r.bytes {
        Some(b) => format!("rebuilt {:.1} MB onto an empty disk", b as f64 / 1e6),
        None => "rebuilding onto an empty disk".to_string(),
    };
    if let Some(rate) = r.rate_bytes_per_s(t.catch_up_ms) {
        let _ = write!(line, ", {:.2} MB/s while catching up", rate / 1e6);
    }
    match r.throttle_bytes_per_s {
        Some(th) => {
            let _ = write!(line, ", throttle {:.1} MB/s", th as f64 / 1e6);
            if r.applied {
                line.push_str(" (still set: a rerun lifts it once the broker is back)");
            }
        }
        None => line.push_str(", unthrottled"),
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_between_runs_is_no_overhead() {
        let mut j = Journal::new(
            None,
            "m7g.xlarge".parse().expect("size"),
            Vec::new(),
            vec![(BrokerId(1), None)],
            0,
        );
        j.node_mut(BrokerId(1)).expect("node").timings.shutdown_ms = Some(4_000);
        j.halt(Some(BrokerId(1)), "broke".to_string(), 10_000);
        // Rerun a minute after the halt, done 10 s later.
        j.resume(70_000);
        j.node_mut(BrokerId(1)).expect("node").timings.start_ms = Some(6_000);
        j.finish(Vec::new(), 0, 80_000);
        let r = RollReport::from_journal(&j);
        assert_eq!(r.total_ms, 20_000);
        assert_eq!(r.between_runs_ms, 60_000);
        assert_eq!(r.overhead_ms, 10_000);
        assert_eq!(r.overhead_pct, 50.0);
        assert!(
            r.render()
                .contains("overhead 10.0s (50.0%), runs 2 (1m 00s between them not counted)"),
            "{}",
            r.render()
        );
    }

    #[test]
    fn durations_read_in_seconds_then_minutes_then_hours() {
        assert_eq!(human_ms(0), "0.0s");
        assert_eq!(human_ms(12_249), "12.2s");
        assert_eq!(human_ms(59_900), "59.9s");
        assert_eq!(human_ms(60_000), "1m 00s");
        assert_eq!(human_ms(300_000), "5m 00s");
        assert_eq!(human_ms(305_600), "5m 06s");
        assert_eq!(human_ms(3_725_000), "1h 02m 05s");
        assert_eq!(
            human(std::time::Duration::from_secs_f64(12.249707638)),
            "12.2s"
        );
    }
}
