//! The share of the replication throttle the policy plans data moves at, learned from this
//! autopilot's own horizontal operations.
//!
//! The policy times adding and removing brokers (and rebuilding local disks) as the data to
//! move over the throttle times the brokers receiving it. Replica fetchers, disks or latency
//! can hold a cluster below its throttle, and a move planned at the throttle then ends late.
//! So every completed horizontal operation whose rebalance ran from its first batch in one
//! run is timed into `status.moves.measured` (the latest 12): its bytes, its seconds from the
//! start of the rebalance to its end, the throttle and the receivers, and the share of the
//! planned rate it reached. The policy plans with the lowest share of the last six
//! ([`kpilot_policy::learned_move_share`], the rule the simulator learns with too). A move
//! planned shorter than [`kpilot_policy::MOVE_TIMED_FROM`] (a minute) is not timed: its time
//! is mostly the steps around the data. Pure: no I/O.

use kpilot_units::Span;

use crate::crd::{MeasuredMove, MoveStatus};

/// How many measured moves the status keeps.
pub const KEPT: usize = 12;

/// One completed rebalance of a horizontal operation, as the executor reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rebalance<'a> {
    /// The operation's `startedAt`.
    pub at: &'a str,
    /// The operation kind.
    pub kind: &'a str,
    /// Bytes moved.
    pub bytes: u64,
    /// Seconds the run took.
    pub seconds: f64,
    /// The throttle per broker, bytes per second (`None`: unthrottled).
    pub throttle_bytes_per_s: Option<u64>,
    /// The brokers receiving the data.
    pub receivers: u32,
    /// Whether this run started from the first batch (a resumed run timed only its part).
    pub whole: bool,
    /// The shortest move, as planned, that is timed ([`kpilot_policy::MOVE_TIMED_FROM`]).
    pub timed_from: Span,
}

/// The move to record for `r`, or why it is not timed.
pub fn measured(r: &Rebalance<'_>) -> Result<MeasuredMove, String> {
    if !r.whole {
        return Err("resumed after a restart: only part of it was timed".to_owned());
    }
    let Some(throttle) = r.throttle_bytes_per_s.filter(|t| *t > 0) else {
        return Err("unthrottled: no planned rate to compare with".to_owned());
    };
    let planned_rate = throttle as f64 * f64::from(r.receivers.max(1));
    let planned = r.bytes as f64 / planned_rate;
    if planned < r.timed_from.secs() {
        return Err(format!(
            "too short to time: {:.1} s at the throttle, under {:.0} s",
            planned,
            r.timed_from.secs()
        ));
    }
    if r.seconds <= 0.0 || !r.seconds.is_finite() {
        return Err("no time measured".to_owned());
    }
    // The share from the seconds as recorded, so that the record is consistent in itself.
    let seconds = ((r.seconds * 1000.0).round() / 1000.0).max(0.001);
    let share = r.bytes as f64 / seconds / planned_rate;
    Ok(MeasuredMove {
        at: r.at.to_owned(),
        kind: r.kind.to_owned(),
        bytes: r.bytes,
        seconds,
        throttle_bytes_per_s: throttle,
        receivers: r.receivers,
        share: (share * 1000.0).round() / 1000.0,
    })
}

/// The rebuilds of a roll onto local disks that can be timed, as moves of one receiver at
/// the rebuild's throttle: the bytes each broker copied from registered to back in every
/// ISR, over that time. A broker whose roll spans runs, an unthrottled rebuild, or one
/// planned shorter than `timed_from` is not timed (logged).
pub fn rebuilds(journal: &kpilot_roll::Journal, timed_from: Span) -> Vec<MeasuredMove> {
    journal
        .nodes
        .iter()
        .filter_map(|n| {
            let r = n.rebuild.as_ref()?;
            let at = n
                .began_ms
                .and_then(|ms| k8s_openapi::jiff::Timestamp::from_millisecond(ms).ok())?
                .to_string();
            let rebalance = Rebalance {
                at: &at,
                kind: "rebuild",
                bytes: r.copied_while_catching_up()?,
                seconds: n.timings.catch_up_ms? as f64 / 1000.0,
                throttle_bytes_per_s: r.throttle_bytes_per_s,
                receivers: 1,
                whole: !n.resumed,
                timed_from,
            };
            measured(&rebalance)
                .inspect_err(|why| tracing::info!(broker = n.id.0, %why, "rebuild not timed"))
                .ok()
        })
        .collect()
}

/// Appends `new` unless a move of the same operation is kept, dropping the oldest beyond
/// [`KEPT`]. Returns whether it was added.
pub fn record(status: &mut Option<MoveStatus>, new: MeasuredMove) -> bool {
    let kept = &mut status.get_or_insert_with(MoveStatus::default).measured;
    if kept.iter().any(|k| k.at == new.at) {
        return false;
    }
    kept.push(new);
    if kept.len() > KEPT {
        kept.drain(..kept.len() - KEPT);
    }
    true
}

/// Sets `status` to the throttle moves are planned at (`throttle`, bytes per second, the one
/// the operator will set, with where it comes from) and the share of it (the one learned from
/// the measured moves, else 1), keeping what was measured; returns the share.
pub fn plan_with(status: &mut Option<MoveStatus>, throttle: (u64, String)) -> f64 {
    let entry = status.get_or_insert_with(MoveStatus::default);
    entry.throttle_bytes_per_s = Some(throttle.0);
    entry.throttle_source = Some(throttle.1);
    let shares: Vec<f64> = entry.measured.iter().map(|m| m.share).collect();
    let (share, source) = match kpilot_policy::learned_move_share(&shares) {
        Some(s) => (
            s,
            format!(
                "measured: the lowest of the last {} move(s) in this autopilot's horizontal operations and local-disk rebuilds",
                entry.measured.len().min(kpilot_policy::MOVES_LEARNED_FROM)
            ),
        ),
        None => (
            1.0,
            "default: the throttle (no move of this autopilot has been timed yet)".to_owned(),
        ),
    };
    entry.share = share;
    entry.source = source;
    share
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rebalance(bytes: u64, seconds: f64) -> Rebalance<'static> {
        Rebalance {
            at: "2026-11-24T00:00:00Z",
            kind: "horizontal-add",
            bytes,
            seconds,
            throttle_bytes_per_s: Some(1_000_000),
            receivers: 3,
            whole: true,
            timed_from: kpilot_policy::MOVE_TIMED_FROM,
        }
    }

    #[test]
    fn a_whole_throttled_move_long_enough_is_timed_as_a_share_of_its_planned_rate() {
        // 360 MB at 3 x 1 MB/s is planned at 120 s; it took 240 s: half the planned rate.
        let m = measured(&rebalance(360_000_000, 240.0)).expect("timed");
        assert_eq!((m.share, m.receivers, m.seconds), (0.5, 3, 240.0));
        // Planned at 59 s: too short.
        let short = measured(&rebalance(177_000_000, 100.0)).expect_err("too short");
        assert!(short.contains("too short"), "{short}");
        let resumed = Rebalance {
            whole: false,
            ..rebalance(360_000_000, 240.0)
        };
        assert!(measured(&resumed).is_err());
        let unthrottled = Rebalance {
            throttle_bytes_per_s: None,
            ..rebalance(360_000_000, 240.0)
        };
        assert!(measured(&unthrottled).is_err());
    }

    #[test]
    fn plans_with_the_lowest_share_of_the_latest_and_keeps_twelve_moves_once_each() {
        let mut status = None;
        assert_eq!(plan_with(&mut status, (1_000_000, "test".into())), 1.0);
        assert!(status.as_ref().expect("set").source.starts_with("default"));
        let at = |i: usize| format!("2026-11-24T00:{i:02}:00Z");
        for i in 0..14 {
            let m = MeasuredMove {
                at: at(i),
                kind: "horizontal-add".into(),
                bytes: 1,
                seconds: 1.0,
                throttle_bytes_per_s: 1,
                receivers: 1,
                share: if i == 3 { 0.2 } else { 0.9 },
            };
            assert!(record(&mut status, m.clone()));
            assert!(!record(&mut status, m), "the same operation twice");
        }
        let s = status.as_ref().expect("status");
        assert_eq!(s.measured.len(), KEPT);
        assert_eq!(s.measured[0].at, at(2));
        // The slow move (0.2) is among the kept but no longer among the last six.
        assert_eq!(plan_with(&mut status, (1_000_000, "test".into())), 0.9);
        assert!(status.expect("set").source.starts_with("measured"));
    }
}
