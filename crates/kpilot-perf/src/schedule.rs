//! When records should be sent: the run's phases (credit depletion, then warm-up and measured
//! part of each step), the open-loop pacer that gives every record its intended send time, the
//! stop rule and the credit-depletion detector. Pure: time is passed in as nanoseconds since the
//! start of the phase.

use std::time::Duration;

use serde::Serialize;

use crate::workload::{CreditDepletion, Rate, Workload};

/// What a phase is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseKind {
    /// Unthrottled production until burst credits are spent; not measured.
    Depletion,
    /// A step's warm-up: same rate, not measured.
    Warmup,
    /// A step's measured part.
    Measure,
}

impl std::fmt::Display for PhaseKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PhaseKind::Depletion => "depletion",
            PhaseKind::Warmup => "warmup",
            PhaseKind::Measure => "measure",
        })
    }
}

/// One phase of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Phase {
    /// Index in the run's phase list (records carry it).
    pub id: u32,
    /// What the phase is for.
    pub kind: PhaseKind,
    /// The step it belongs to (0-based), for warm-up and measure phases.
    pub step: Option<usize>,
    /// The requested rate.
    pub rate: Rate,
    /// How long the phase lasts (for depletion: at most).
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
}

/// The phases of a workload, in order: depletion (if asked), then each step's warm-up (if
/// non-zero) and measured part.
pub fn phases(workload: &Workload) -> Vec<Phase> {
    let mut out = Vec::new();
    let mut push = |kind, step, rate, duration| {
        let id = out.len() as u32;
        out.push(Phase {
            id,
            kind,
            step,
            rate,
            duration,
        });
    };
    if let Some(d) = workload.credit_depletion {
        push(PhaseKind::Depletion, None, Rate::Max, d.max_duration);
    }
    for (i, s) in workload.steps.iter().enumerate() {
        if !s.warmup.is_zero() {
            push(PhaseKind::Warmup, Some(i), s.rate, s.warmup);
        }
        push(PhaseKind::Measure, Some(i), s.rate, s.duration);
    }
    out
}

/// Open-loop timing for one producer thread in one phase: record `n` of the thread is due at
/// `offset + n * interval` nanoseconds after the phase start, whatever happened to the records
/// before it. Threads interleave: thread `i` of `k` starts `i` total-rate intervals late.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacer {
    interval_ns: f64,
    offset_ns: f64,
    end_ns: f64,
}

impl Pacer {
    /// The pacer of thread `index` of `threads` sharing `total_per_s` records per second for
    /// `duration`. `None` when the rate is not positive.
    pub fn new(total_per_s: f64, threads: u32, index: u32, duration: Duration) -> Option<Self> {
        if !(total_per_s > 0.0 && total_per_s.is_finite()) || threads == 0 {
            return None;
        }
        let total_interval = 1e9 / total_per_s;
        Some(Self {
            interval_ns: total_interval * f64::from(threads),
            offset_ns: total_interval * f64::from(index.min(threads - 1)),
            end_ns: duration.as_nanos() as f64,
        })
    }

    /// Intended send time of record `n`, in nanoseconds after the phase start.
    pub fn intended_ns(&self, n: u64) -> u64 {
        (self.offset_ns + n as f64 * self.interval_ns) as u64
    }

    /// True when record `n` is due before the end of the phase.
    pub fn in_phase(&self, n: u64) -> bool {
        self.offset_ns + (n as f64) * self.interval_ns < self.end_ns
    }

    /// How many records this thread is asked to send in the phase.
    pub fn requested(&self) -> u64 {
        if self.offset_ns >= self.end_ns {
            return 0;
        }
        ((self.end_ns - self.offset_ns) / self.interval_ns).ceil() as u64
    }

    /// How many records are due at `now_ns` after the phase start (at most the phase's).
    pub fn due_by(&self, now_ns: u64) -> u64 {
        if (now_ns as f64) < self.offset_ns {
            return 0;
        }
        let due = ((now_ns as f64 - self.offset_ns) / self.interval_ns).floor() as u64 + 1;
        due.min(self.requested())
    }
}

/// Records requested from all `threads` sharing `total_per_s` for `duration`.
pub fn requested(total_per_s: f64, threads: u32, duration: Duration) -> u64 {
    (0..threads)
        .filter_map(|i| Pacer::new(total_per_s, threads, i, duration))
        .map(|p| p.requested())
        .sum()
}

/// The stop rule: true when a step sent less than `ratio` of what it requested, i.e. the
/// cluster (or the client) could not keep up and higher steps would not mean anything.
pub fn below_stop_ratio(sent: u64, requested: u64, ratio: f64) -> bool {
    requested > 0 && (sent as f64) < ratio * requested as f64
}

/// Where the credit-depletion phase stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DepletionState {
    /// Waiting for the throughput to rise above `above` (the burst).
    WaitingForBurst,
    /// Bursting; waiting for the throughput to fall below `below`.
    Bursting,
    /// The throughput rose and fell: credits are spent, measuring can start.
    Depleted,
    /// `max_duration` passed first.
    TimedOut,
}

/// Watches the acknowledged throughput of the unthrottled depletion phase.
#[derive(Debug, Clone)]
pub struct DepletionDetector {
    spec: CreditDepletion,
    state: DepletionState,
    peak_bytes_per_s: f64,
}

impl DepletionDetector {
    /// A detector for this depletion spec.
    pub fn new(spec: CreditDepletion) -> Self {
        Self {
            spec,
            state: DepletionState::WaitingForBurst,
            peak_bytes_per_s: 0.0,
        }
    }

    /// Feeds one window's throughput, observed `elapsed` after the phase start.
    pub fn observe(&mut self, elapsed: Duration, bytes_per_s: f64) -> DepletionState {
        self.peak_bytes_per_s = self.peak_bytes_per_s.max(bytes_per_s);
        self.state = match self.state {
            DepletionState::WaitingForBurst if bytes_per_s > self.spec.above.bytes_per_s() => {
                DepletionState::Bursting
            }
            DepletionState::Bursting if bytes_per_s < self.spec.below.bytes_per_s() => {
                DepletionState::Depleted
            }
            s => s,
        };
        if !matches!(self.state, DepletionState::Depleted) && elapsed >= self.spec.max_duration {
            self.state = DepletionState::TimedOut;
        }
        self.state
    }

    /// The current state.
    pub fn state(&self) -> DepletionState {
        self.state
    }

    /// The highest throughput seen, bytes per second.
    pub fn peak_bytes_per_s(&self) -> f64 {
        self.peak_bytes_per_s
    }

    /// True once the phase should end.
    pub fn finished(&self) -> bool {
        matches!(
            self.state,
            DepletionState::Depleted | DepletionState::TimedOut
        )
    }
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use kpilot_units::Throughput;
    use proptest::prelude::*;

    use super::*;
    use crate::workload::Step;

    #[test]
    fn phases_follow_depletion_then_warmup_and_measure() {
        let mut w = Workload::with_steps(vec![
            Step {
                rate: Rate::Messages(10.0),
                warmup: Duration::from_secs(1),
                duration: Duration::from_secs(2),
            },
            Step {
                rate: Rate::Messages(20.0),
                warmup: Duration::ZERO,
                duration: Duration::from_secs(2),
            },
        ]);
        w.credit_depletion = Some(CreditDepletion {
            above: Throughput::from_mb_per_s(2.0),
            below: Throughput::from_mb_per_s(1.0),
            max_duration: Duration::from_secs(9),
        });
        let p = phases(&w);
        let kinds: Vec<_> = p.iter().map(|p| (p.kind, p.step)).collect();
        assert_eq!(
            kinds,
            vec![
                (PhaseKind::Depletion, None),
                (PhaseKind::Warmup, Some(0)),
                (PhaseKind::Measure, Some(0)),
                (PhaseKind::Measure, Some(1)),
            ]
        );
        assert!(p.iter().enumerate().all(|(i, p)| p.id as usize == i));
    }

    #[test]
    fn a_pacer_spaces_records_evenly_and_interleaves_threads() {
        let a = Pacer::new(1000.0, 2, 0, Duration::from_secs(1)).unwrap();
        let b = Pacer::new(1000.0, 2, 1, Duration::from_secs(1)).unwrap();
        assert_eq!(a.intended_ns(0), 0);
        assert_eq!(b.intended_ns(0), 1_000_000);
        assert_eq!(a.intended_ns(1), 2_000_000);
        assert_eq!(a.requested() + b.requested(), 1000);
        assert_eq!(a.due_by(0), 1);
        assert_eq!(a.due_by(1_999_999), 1);
        assert_eq!(a.due_by(2_000_000), 2);
        assert_eq!(b.due_by(999_999), 0);
        assert_eq!(a.due_by(u64::MAX / 2), 500);
        assert!(a.in_phase(499) && !a.in_phase(500));
        assert!(Pacer::new(0.0, 1, 0, Duration::from_secs(1)).is_none());
    }

    #[test]
    fn the_stop_rule_compares_sent_with_requested() {
        assert!(!below_stop_ratio(995, 1000, 0.995));
        assert!(below_stop_ratio(994, 1000, 0.995));
        assert!(!below_stop_ratio(0, 0, 0.995));
    }

    #[test]
    fn depletion_needs_a_rise_then_a_fall() {
        let spec = CreditDepletion {
            above: Throughput::from_mb_per_s(200.0),
            below: Throughput::from_mb_per_s(80.0),
            max_duration: Duration::from_secs(600),
        };
        let mut d = DepletionDetector::new(spec);
        let s = |secs| Duration::from_secs(secs);
        // Low throughput before the burst does not count as depleted.
        assert_eq!(d.observe(s(10), 50e6), DepletionState::WaitingForBurst);
        assert_eq!(d.observe(s(20), 250e6), DepletionState::Bursting);
        assert_eq!(d.observe(s(30), 150e6), DepletionState::Bursting);
        assert_eq!(d.observe(s(40), 70e6), DepletionState::Depleted);
        assert!(d.finished());
        assert_eq!(d.peak_bytes_per_s(), 250e6);

        let mut never = DepletionDetector::new(spec);
        assert_eq!(
            never.observe(s(300), 100e6),
            DepletionState::WaitingForBurst
        );
        assert_eq!(never.observe(s(600), 100e6), DepletionState::TimedOut);
    }

    proptest! {
        #[test]
        fn threads_together_send_the_requested_count(rate in 1.0f64..200_000.0, threads in 1u32..16, ms in 1u64..5_000) {
            let d = Duration::from_millis(ms);
            let total = requested(rate, threads, d);
            let expected = rate * d.as_secs_f64();
            // Each thread rounds up at most one record.
            prop_assert!((total as f64) >= expected - 1e-6 * expected - 1.0);
            prop_assert!((total as f64) <= expected + f64::from(threads) + 1e-6 * expected);
        }

        #[test]
        fn due_counts_never_decrease_and_match_intended_times(rate in 1.0f64..100_000.0, threads in 1u32..8, t in 0u64..3_000_000_000u64) {
            let p = Pacer::new(rate, threads, threads - 1, Duration::from_secs(3)).unwrap();
            let due = p.due_by(t);
            prop_assert!(due <= p.due_by(t + 1_000));
            if due > 0 {
                prop_assert!(p.intended_ns(due - 1) <= t + 1);
            }
            if due < p.requested() {
                prop_assert!(p.intended_ns(due) + 1 >= t);
            }
        }
    }
}
