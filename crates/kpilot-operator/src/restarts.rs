//! The restart time the policy plans a roll with, learned from this autopilot's own rolls.
//!
//! The policy times a vertical roll as, per broker, a restart (the broker is out) followed by
//! a catch-up it computes from the load. The restart is what the cluster and its nodes take:
//! a controlled shutdown, a new node of the new type, the volume moved, the broker started and
//! its logs recovered. 3 minutes is a guess; a cluster whose nodes take 8 would be rolled too
//! late on a rising morning. So every roll's per-broker restarts, when it completes or halts, are kept in
//! `status.restarts.measured`, and the policy plans with the longest of the last six (two
//! rolls of three brokers, [`kpilot_policy::learned_restart`], the rule the simulator learns
//! with too): a slow one counts for a while before it is forgotten. `spec.policy.restartTime`
//! overrides the lot. Pure: no I/O.

use kpilot_roll::journal::Journal;
use kpilot_units::Span;

use crate::crd::{MeasuredRestart, RestartStatus};

/// How many measured restarts the status keeps.
pub const KEPT: usize = 12;

/// The restarts a roll's journal measured: every broker one run took from its stop to its
/// start (a broker in flight when an operator stopped is left out: its timings cover only the
/// resumed part). `at` is when the roll started (the operation's `startedAt`);
/// `instance_type` the roll's target.
pub fn measured(journal: &Journal, at: &str) -> Vec<MeasuredRestart> {
    journal
        .nodes
        .iter()
        .filter_map(|n| {
            Some(MeasuredRestart {
                broker_id: n.id.0,
                at: at.to_owned(),
                seconds: n.restart_ms()? as f64 / 1000.0,
                instance_type: journal.target.to_string(),
            })
        })
        .collect()
}

/// A Strimzi broker pod as one poll of the operator saw it, with what the pod's own
/// timestamps (Unix seconds, from the API server) say about its restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodSeen {
    /// Ready on the old instance type: not restarted yet.
    Old,
    /// Gone, being deleted or not Ready: restarting. `since` is when the pod says it went:
    /// its deletion request (`metadata.deletionTimestamp`, when Strimzi asked it to stop), or
    /// the creation of a replacement created during the roll (its predecessor had gone by
    /// then); `None` when the pod is gone or says nothing.
    Down {
        /// When the restart began, by the pod's own timestamps.
        since: Option<i64>,
    },
    /// Ready on the new instance type.
    New {
        /// `metadata.creationTimestamp`, when the pod was created during the roll: the old
        /// pod had gone by then.
        created: Option<i64>,
        /// When its Ready condition last turned true (`lastTransitionTime`).
        ready: Option<i64>,
    },
}

/// One broker of a Strimzi roll after a poll at `now` (Unix seconds): its phase (`pending`,
/// `restarting`, `done`), since when it has been down, and, when it is back on the new type,
/// how long it was down. Strimzi restarts the pods itself; the restart runs from the earliest
/// of what the operator saw (its first poll that found the pod down) and what the pods say
/// (the old pod's deletion request, the new pod's creation) to the new pod's Ready
/// transition. So a pod that went and came back between two polls is measured too, from its
/// creation: without the old pod's shutdown, which no poll saw. Only a broker that is back
/// with nothing saying when it went (a pod not recreated during the roll) is not measured.
pub fn strimzi_step(
    down_since: Option<i64>,
    seen: PodSeen,
    now: i64,
) -> (&'static str, Option<i64>, Option<f64>) {
    let earliest = |a: Option<i64>, b: Option<i64>| match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    match seen {
        PodSeen::Old => ("pending", None, None),
        PodSeen::Down { since } => (
            "restarting",
            Some(earliest(down_since, since).unwrap_or(now).min(now)),
            None,
        ),
        PodSeen::New { created, ready } => {
            let took = earliest(down_since, created).map(|went| {
                let back = ready.filter(|r| *r >= went).unwrap_or(now);
                (back - went).max(0) as f64
            });
            ("done", None, took)
        }
    }
}

/// Appends to the kept restarts those of `new` not kept yet (the same broker in the same
/// roll: a roll recorded when it halted and again when its retry completes), dropping the
/// oldest beyond [`KEPT`]. Returns how many were added.
pub fn record(status: &mut Option<RestartStatus>, new: Vec<MeasuredRestart>) -> usize {
    let fresh: Vec<MeasuredRestart> = {
        let kept = status.as_ref().map_or(&[][..], |s| &s.measured[..]);
        new.into_iter()
            .filter(|n| {
                !kept
                    .iter()
                    .any(|k| k.broker_id == n.broker_id && k.at == n.at)
            })
            .collect()
    };
    let added = fresh.len();
    if added == 0 {
        return 0;
    }
    let kept = &mut status.get_or_insert_with(RestartStatus::default).measured;
    kept.extend(fresh);
    if kept.len() > KEPT {
        kept.drain(..kept.len() - KEPT);
    }
    added
}

/// The restart time to plan with and where it comes from: the spec's, else the one learned
/// from the measured restarts, else `default`.
pub fn planned(spec: Option<Span>, measured: &[MeasuredRestart], default: Span) -> (Span, String) {
    if let Some(t) = spec {
        return (t, "spec.policy.restartTime".to_owned());
    }
    let seconds: Vec<f64> = measured.iter().map(|m| m.seconds).collect();
    match kpilot_policy::learned_restart(&seconds) {
        Some(longest) => (
            longest,
            format!(
                "measured: the longest of the last {} broker restart(s) in this autopilot's rolls",
                measured.len().min(kpilot_policy::RESTARTS_LEARNED_FROM)
            ),
        ),
        None => (
            default,
            "default: no roll of this autopilot has been measured yet".to_owned(),
        ),
    }
}

/// Sets `status` to the restart time planned with, keeping what was measured; returns it.
pub fn plan_with(status: &mut Option<RestartStatus>, spec: Option<Span>, default: Span) -> Span {
    let entry = status.get_or_insert_with(RestartStatus::default);
    let (t, source) = planned(spec, &entry.measured, default);
    entry.seconds = (t.secs() * 10.0).round() / 10.0;
    entry.source = source;
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpilot_cluster::BrokerId;
    use kpilot_roll::journal::Phase;

    fn restart(id: i32, seconds: f64) -> MeasuredRestart {
        MeasuredRestart {
            broker_id: id,
            at: "2026-11-23T10:00:00Z".into(),
            seconds,
            instance_type: "m7g.xlarge".into(),
        }
    }

    #[test]
    fn a_roll_measures_each_broker_one_run_took_through_its_start() {
        let mut j = Journal::new(
            None,
            "m7g.xlarge".parse().expect("type"),
            vec![],
            (0..3).map(|i| (BrokerId(i), None)).collect(),
            0,
        );
        for (id, stop, start) in [(0, 4_000, 20_500), (1, 5_000, 30_000)] {
            let t = &mut j.node_mut(BrokerId(id)).expect("node").timings;
            t.shutdown_ms = Some(stop);
            t.resize_ms = Some(500);
            t.start_ms = Some(start);
        }
        // Broker 1 was in flight when the operator stopped: a second run finished it.
        j.advance(BrokerId(1), Phase::StopIssued, 1).expect("ok");
        j.resume(2);
        let m = measured(&j, "2026-11-23T10:00:00Z");
        assert_eq!(m, vec![restart(0, 25.0)]);
    }

    #[test]
    fn a_roll_recorded_when_it_halts_and_when_it_completes_counts_each_broker_once() {
        let mut status = None;
        // The first run halted after broker 0.
        assert_eq!(record(&mut status, vec![restart(0, 25.0)]), 1);
        // Its retry completed: broker 0 again (same roll), then 1 and 2.
        let completed = vec![restart(0, 25.0), restart(1, 9.0), restart(2, 12.0)];
        assert_eq!(record(&mut status, completed), 2);
        let kept = &status.as_ref().expect("status").measured;
        assert_eq!(kept.len(), 3);
        // The same broker in a later roll is a new restart.
        let later = MeasuredRestart {
            at: "2026-11-24T10:00:00Z".into(),
            ..restart(0, 30.0)
        };
        assert_eq!(record(&mut status, vec![later]), 1);
    }

    #[test]
    fn plans_with_the_spec_else_the_longest_of_the_latest_else_the_default() {
        let default = Span::from_minutes(3.0);
        let (t, source) = planned(None, &[], default);
        assert_eq!((t, source.starts_with("default")), (default, true));

        // Eight measured: the first two (the slowest, 600 s) are older than the last six.
        let mut status = None;
        record(
            &mut status,
            (0..8)
                .map(|i| restart(i, if i < 2 { 600.0 } else { 40.0 + f64::from(i) }))
                .collect(),
        );
        let kept = &status.as_ref().expect("status").measured;
        let (t, source) = planned(None, kept, default);
        assert_eq!(t, Span::from_secs(47.0));
        assert!(source.contains("last 6 broker restart(s)"), "{source}");

        // The spec wins over what was measured.
        let (t, source) = planned(Some(Span::from_minutes(4.0)), kept, default);
        assert_eq!(
            (t, source.as_str()),
            (Span::from_minutes(4.0), "spec.policy.restartTime")
        );

        // The status shows what the policy plans with.
        let planned_now = plan_with(&mut status, None, default);
        let s = status.expect("status");
        assert_eq!((planned_now, s.seconds), (Span::from_secs(47.0), 47.0));
    }

    #[test]
    fn a_strimzi_pod_seen_down_then_back_on_the_new_type_is_one_restart() {
        let down = PodSeen::Down { since: None };
        let back = |created, ready| PodSeen::New { created, ready };
        assert_eq!(
            strimzi_step(None, PodSeen::Old, 100),
            ("pending", None, None)
        );
        // Seen down at 110 and still at 120: the first sighting counts.
        let (phase, since, _) = strimzi_step(None, down, 110);
        assert_eq!((phase, since), ("restarting", Some(110)));
        assert_eq!(
            strimzi_step(since, down, 120),
            ("restarting", Some(110), None)
        );
        // Back: until the poll that saw it, or until its Ready transition when it has one.
        assert_eq!(
            strimzi_step(Some(110), back(None, None), 150),
            ("done", None, Some(40.0))
        );
        assert_eq!(
            strimzi_step(Some(110), back(None, Some(131)), 150),
            ("done", None, Some(21.0))
        );
        // Back before a poll saw it down, with nothing saying when it went: not measured.
        assert_eq!(
            strimzi_step(None, back(None, Some(140)), 150),
            ("done", None, None)
        );
    }

    #[test]
    fn a_strimzi_restart_is_timed_by_the_pods_own_timestamps() {
        // Seen terminating: down since the deletion request, not since the poll.
        assert_eq!(
            strimzi_step(None, PodSeen::Down { since: Some(104) }, 110),
            ("restarting", Some(104), None)
        );
        // A replacement created before the first poll that saw it down starts it earlier.
        assert_eq!(
            strimzi_step(Some(110), PodSeen::Down { since: Some(107) }, 120),
            ("restarting", Some(107), None)
        );
        assert_eq!(
            strimzi_step(Some(104), PodSeen::Down { since: Some(107) }, 120),
            ("restarting", Some(104), None)
        );
        // Gone and back between two polls: from the new pod's creation to its Ready.
        let back = PodSeen::New {
            created: Some(112),
            ready: Some(119),
        };
        assert_eq!(strimzi_step(None, back, 150), ("done", None, Some(7.0)));
        // Seen going: from the deletion request on.
        assert_eq!(
            strimzi_step(Some(104), back, 150),
            ("done", None, Some(15.0))
        );
        // A Ready transition before the restart began is an older one: the poll's time counts.
        let stale = PodSeen::New {
            created: Some(112),
            ready: Some(90),
        };
        assert_eq!(strimzi_step(None, stale, 150), ("done", None, Some(38.0)));
        // A timestamp ahead of the operator's clock does not start a restart in the future.
        assert_eq!(
            strimzi_step(None, PodSeen::Down { since: Some(130) }, 120),
            ("restarting", Some(120), None)
        );
    }

    #[test]
    fn keeps_the_latest_twelve() {
        let mut status = None;
        record(&mut status, vec![]);
        assert_eq!(status, None, "nothing measured, nothing recorded");
        for round in 0..5 {
            let roll = |i| MeasuredRestart {
                at: format!("2026-11-2{round}T10:00:00Z"),
                ..restart(i, f64::from(round))
            };
            record(&mut status, (0..3).map(roll).collect());
        }
        let kept = status.expect("status").measured;
        assert_eq!(kept.len(), KEPT);
        assert_eq!(kept[0].seconds, 1.0, "the first round is dropped");
        assert_eq!(kept[KEPT - 1].seconds, 4.0);
    }
}
