//! Built-in scenarios: generated demand (deterministic: a fixed-seed generator) and the cluster
//! setup it runs on. Pure.
//!
//! - `weekly` (the default): seven days starting on a Monday. Weekdays follow a daily curve from
//!   75 MB/s at 04:00 up to 300 MB/s at 14:00 and back (peak-to-trough 4.0; raised-cosine rise
//!   over 10 hours, fall over 14); Saturday and Sunday run at 60% of it (the change happens
//!   smoothly over the nights, Friday 22:00 to Saturday 04:00 and Sunday 22:00 to Monday
//!   04:00). Multiplicative noise:
//!   an AR(1) process (4% standard deviation, about 20 minutes of correlation) plus 1.5% white
//!   noise per minute. On Friday at 10:00 an unforecast spike (a backfill job) multiplies
//!   ingress by 1.5 for 40 minutes, with 2-minute ramps: nothing like it is in the history.
//! - `steady`: seven days at 150 MB/s with the same noise and no pattern.
//! - `launch`: the weekly curve, but from Wednesday 09:00 on a new service adds 50% to the
//!   load for good: a level shift the history cannot know.
//!
//! All run on the same setup: replication factor 3, `min.insync.replicas` 2, two consumer
//! groups, m7g brokers (3 to 12, multiples of 3 zones), gp3 volumes with 500 MiB/s provisioned,
//! 2 hours of local retention (tiered storage keeps the rest in object storage, whose cost does
//! not depend on the cluster shape and is left out).

use kpilot_capacity::StorageKind;
use kpilot_policy::Constraints;
use kpilot_units::{Span, Throughput};
use serde::Serialize;
use thiserror::Error;

use crate::setup::{ClusterSetup, StorageSetup};
use crate::trace::Demand;

const DAY: f64 = 86_400.0;

/// The names and one-line descriptions of the built-in scenarios.
pub const SCENARIOS: &[(&str, &str)] = &[
    (
        "weekly",
        "7 days: weekday curve 75 -> 300 MB/s (peak/trough 4), weekends at 60%, noise, one unforecast 1.5x spike for 40 min on Friday 10:00",
    ),
    ("steady", "7 days at 150 MB/s with noise, no daily pattern"),
    (
        "launch",
        "the weekly curve, plus 50% more load for good from Wednesday 09:00 (a level shift the history cannot know)",
    ),
];

/// How many days a built-in scenario runs unless told otherwise.
pub const DEFAULT_DAYS: u32 = 7;

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// The description of the built-in scenario `name` run for `days` days (from a Monday): the
/// [`SCENARIOS`] text for the default seven days; for other lengths, only the events inside the
/// run (an event after its end is said to be missing, with the length that includes it).
/// `None` for an unknown name.
pub fn describe(name: &str, days: u32) -> Option<String> {
    let default = SCENARIOS.iter().find(|s| s.0 == name)?.1;
    if days == DEFAULT_DAYS {
        return Some(default.to_string());
    }
    let span = match days {
        1 => "1 day (a Monday)".to_string(),
        2 => "2 days (Monday and Tuesday)".to_string(),
        3..=6 => format!("{days} days (Monday to {})", WEEKDAYS[days as usize - 1]),
        _ => format!("{days} days"),
    };
    Some(match name {
        "steady" => format!(
            "{} at 150 MB/s with noise, no daily pattern",
            if days == 1 {
                "1 day".to_string()
            } else {
                format!("{days} days")
            }
        ),
        "launch" if days >= 3 => default.to_string(),
        "launch" => format!(
            "{span} of the weekly curve with noise; no launch (the new service starts on Wednesday 09:00, after this run's end: 3 days or more include it)"
        ),
        _ => {
            let weekends = match days {
                0..=5 => "",
                6 => ", Saturday at 60%",
                _ => ", weekends at 60%",
            };
            let spike = match days {
                0..=4 => {
                    "; no spike (the unforecast spike is on Friday 10:00, after this run's end: 5 days or more include it)"
                }
                5..=11 => ", one unforecast 1.5x spike for 40 min on Friday 10:00",
                _ => ", one unforecast 1.5x spike for 40 min on the first Friday 10:00",
            };
            format!("{span}: weekday curve 75 -> 300 MB/s (peak/trough 4){weekends}, noise{spike}")
        }
    })
}

/// Why a scenario could not be built.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ScenarioError {
    /// No scenario of that name.
    #[error("unknown scenario '{name}': the built-in scenarios are {}", SCENARIOS.iter().map(|s| s.0).collect::<Vec<_>>().join(", "))]
    Unknown {
        /// The name asked for.
        name: String,
    },
    /// Zero days.
    #[error("a scenario needs at least one day (got {0})")]
    ZeroDays(u32),
    /// More days than a run holds.
    #[error(
        "a scenario runs at most {MAX_DAYS} days (got {0}): a year at one-minute steps takes seconds; longer runs only repeat the weekly pattern"
    )]
    TooManyDays(u32),
    /// More history than a run holds (the span asked for).
    #[error(
        "a scenario's history is at most {MAX_DAYS} days (got {0}): the forecast reads the last four weeks"
    )]
    TooMuchHistory(Span),
}

/// The longest scenario, and the longest history before it, in days.
pub const MAX_DAYS: u32 = 366;

/// A built-in scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    /// Its name.
    pub name: String,
    /// What it is.
    pub description: String,
    /// The demand.
    pub demand: Demand,
    /// The cluster it runs on.
    pub setup: ClusterSetup,
    /// Notable moments (seconds, label), e.g. the unforecast spike.
    pub events: Vec<(f64, String)>,
}

/// The history a built-in scenario comes with unless told otherwise: four weeks, what the
/// operator reads from Prometheus by default (`spec.metrics.history`).
pub const DEFAULT_HISTORY: Span = Span::from_hours(28.0 * 24.0);

/// The setup every built-in scenario uses, and the default for `--trace`.
pub fn default_setup() -> ClusterSetup {
    ClusterSetup {
        replication_factor: 3,
        min_insync_replicas: 2,
        consumer_fanout: 2.0,
        storage: StorageSetup {
            kind: StorageKind::Gp3,
            throughput: Some(Throughput::from_mib_per_s(500.0)),
            volume_gb: None,
        },
        retention: Span::from_hours(2.0),
        constraints: Constraints {
            families: vec!["m7g".to_string()],
            min_brokers: 3,
            max_brokers: 12,
            zones: 3,
            ..Constraints::default()
        },
        restart: None,
        learn_restart: true,
        move_rate: None,
        learn_moves: true,
    }
}

/// Builds a built-in scenario; `days` overrides its length (7 by default). `history` is how
/// much of the same pattern came before its first day (same curve and noise model, a different
/// noise draw, never the spike or the level shift): the controllers know it when the run starts,
/// as the operator knows its Prometheus history (see [`Demand::history`]).
pub fn builtin(name: &str, days: Option<u32>, history: Span) -> Result<Scenario, ScenarioError> {
    let days = days.unwrap_or(DEFAULT_DAYS);
    if days == 0 {
        return Err(ScenarioError::ZeroDays(days));
    }
    if days > MAX_DAYS {
        return Err(ScenarioError::TooManyDays(days));
    }
    if history.minutes() > f64::from(MAX_DAYS) * 1440.0 {
        return Err(ScenarioError::TooMuchHistory(history));
    }
    let description = describe(name, days).ok_or_else(|| ScenarioError::Unknown {
        name: name.to_string(),
    })?;
    let minutes = days as usize * 1440;
    let spike_at = 4.0 * DAY + 10.0 * 3600.0;
    let launch_at = 2.0 * DAY + 9.0 * 3600.0;
    let rate = |t: f64| match name {
        "steady" => 150.0,
        "launch" => weekly_curve(t) * if t >= launch_at { 1.5 } else { 1.0 },
        _ => weekly_curve(t) * spike(t, spike_at),
    };
    let mut noise = Noise::new(0x6b70_696c_6f74 ^ name.len() as u64);
    let ingress: Vec<f64> = (0..minutes)
        .map(|m| rate(m as f64 * 60.0) * noise.next() * 1e6)
        .collect();
    let history_minutes = history.minutes().round().max(0.0) as usize;
    let mut noise = Noise::new(0x0068_6973_746f_7279 ^ name.len() as u64);
    let history: Vec<f64> = (0..history_minutes)
        .map(|m| {
            let t = (m as f64 - history_minutes as f64) * 60.0;
            rate(t) * noise.next() * 1e6
        })
        .collect();
    let mut events = Vec::new();
    if name == "weekly" && spike_at < minutes as f64 * 60.0 {
        events.push((spike_at, "unforecast spike x1.5".to_string()));
    }
    if name == "launch" && launch_at < minutes as f64 * 60.0 {
        events.push((launch_at, "new service: +50% for good".to_string()));
    }
    Ok(Scenario {
        name: name.to_string(),
        description,
        demand: Demand {
            origin: format!("scenario {name}"),
            start_secs: 0.0,
            ingress,
            egress: None,
            history,
            history_egress: None,
        },
        setup: default_setup(),
        events,
    })
}

/// The weekday curve, MB/s, with weekends at 60%.
pub fn weekly_curve(t: f64) -> f64 {
    let day = (t / DAY).floor() as i64;
    let h = (t - day as f64 * DAY) / 3600.0;
    let s = if (4.0..14.0).contains(&h) {
        0.5 - 0.5 * (std::f64::consts::PI * (h - 4.0) / 10.0).cos()
    } else {
        let since_peak = if h >= 14.0 { h - 14.0 } else { h + 10.0 };
        0.5 + 0.5 * (std::f64::consts::PI * since_peak / 14.0).cos()
    };
    let weekday = 75.0 + 225.0 * s;
    weekday * (1.0 - 0.4 * weekend_weight(t))
}

/// How much of the weekend dip applies at `t`: 0 on weekdays, 1 on Saturday and Sunday, with
/// 6-hour raised-cosine transitions through the night (Friday 22:00 to Saturday 04:00, Sunday
/// 22:00 to Monday 04:00) so that the load never jumps at midnight.
fn weekend_weight(t: f64) -> f64 {
    let week = 7.0 * DAY;
    let x = t.rem_euclid(week) / 3600.0;
    let ramp =
        |from: f64| 0.5 - 0.5 * (std::f64::consts::PI * ((x - from) / 6.0).clamp(0.0, 1.0)).cos();
    let into = 4.0 * 24.0 + 22.0; // Friday 22:00
    let out = 6.0 * 24.0 + 22.0; // Sunday 22:00
    if x < into {
        // Monday morning: the end of the previous weekend's way out.
        if x < 4.0 { 1.0 - ramp(-2.0) } else { 0.0 }
    } else if x < out {
        ramp(into)
    } else {
        1.0 - ramp(out)
    }
}

/// The spike multiplier: 1.5 for 40 minutes from `at`, with 2-minute linear ramps.
fn spike(t: f64, at: f64) -> f64 {
    let (ramp, len) = (120.0, 40.0 * 60.0);
    let x = t - at;
    let up = if x < 0.0 || x > len + ramp {
        0.0
    } else if x < ramp {
        x / ramp
    } else if x > len {
        1.0 - (x - len) / ramp
    } else {
        1.0
    };
    1.0 + 0.5 * up
}

/// Multiplicative noise: AR(1) (4% standard deviation, phi 0.95 per minute) plus 1.5% white
/// noise, from a fixed-seed splitmix64 generator.
struct Noise {
    state: u64,
    ar: f64,
}

impl Noise {
    fn new(seed: u64) -> Self {
        Self {
            state: seed,
            ar: 0.0,
        }
    }

    fn uniform(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    fn next(&mut self) -> f64 {
        let phi: f64 = 0.95;
        self.ar = phi * self.ar + 0.04 * (1.0 - phi * phi).sqrt() * self.normal();
        (1.0 + self.ar + 0.015 * self.normal()).max(0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weekly_curve_has_a_peak_to_trough_ratio_of_four() {
        let mut lo = f64::INFINITY;
        let mut hi: f64 = 0.0;
        for m in 0..1440 {
            let v = weekly_curve(m as f64 * 60.0);
            lo = lo.min(v);
            hi = hi.max(v);
        }
        assert!((hi / lo - 4.0).abs() < 0.01, "{hi} / {lo}");
        // Saturday at 60%, and no jump at midnight between the days.
        assert!((weekly_curve(5.0 * DAY + 14.0 * 3600.0) - 180.0).abs() < 1e-9);
        for day in 0..14 {
            let t = f64::from(day) * DAY;
            let jump = (weekly_curve(t) - weekly_curve(t - 60.0)).abs();
            assert!(jump < 1.0, "day {day}: {jump}");
        }
    }

    #[test]
    fn scenarios_are_deterministic_and_have_the_spike() {
        let a = builtin("weekly", None, Span::ZERO).unwrap();
        let b = builtin("weekly", None, Span::ZERO).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.demand.minutes(), 7 * 1440);
        let at = (4.0 * DAY + 10.0 * 3600.0) as usize / 60;
        let before = a.demand.ingress[at - 5];
        let during = a.demand.ingress[at + 20];
        assert!(during > 1.3 * before, "{during} vs {before}");
        assert_eq!(
            builtin("weekly", Some(30), Span::ZERO)
                .unwrap()
                .demand
                .minutes(),
            30 * 1440
        );
        assert!(matches!(
            builtin("nope", None, Span::ZERO),
            Err(ScenarioError::Unknown { .. })
        ));
        assert!(
            builtin("steady", None, Span::ZERO).is_ok()
                && builtin("launch", Some(3), Span::ZERO).is_ok()
        );
    }

    /// `--days 3` announced "7 days: ... spike ... on Friday 10:00" and `--scenario launch
    /// --days 2` a Wednesday launch: neither happens in the run.
    #[test]
    fn descriptions_follow_the_length_and_name_only_events_inside_the_run() {
        let d = |name, days| builtin(name, Some(days), Span::ZERO).unwrap().description;
        for (name, text) in SCENARIOS {
            assert_eq!(d(name, 7), *text, "the 7-day text is the documented one");
        }
        assert_eq!(
            d("weekly", 3),
            "3 days (Monday to Wednesday): weekday curve 75 -> 300 MB/s (peak/trough 4), noise; no spike (the unforecast spike is on Friday 10:00, after this run's end: 5 days or more include it)"
        );
        assert_eq!(
            d("weekly", 5),
            "5 days (Monday to Friday): weekday curve 75 -> 300 MB/s (peak/trough 4), noise, one unforecast 1.5x spike for 40 min on Friday 10:00"
        );
        assert_eq!(
            d("weekly", 30),
            "30 days: weekday curve 75 -> 300 MB/s (peak/trough 4), weekends at 60%, noise, one unforecast 1.5x spike for 40 min on the first Friday 10:00"
        );
        assert_eq!(
            d("launch", 2),
            "2 days (Monday and Tuesday) of the weekly curve with noise; no launch (the new service starts on Wednesday 09:00, after this run's end: 3 days or more include it)"
        );
        assert_eq!(
            d("steady", 1),
            "1 day at 150 MB/s with noise, no daily pattern"
        );
        // The events the report marks agree with the text.
        assert!(
            builtin("weekly", Some(4), Span::ZERO)
                .unwrap()
                .events
                .is_empty()
        );
        assert_eq!(
            builtin("weekly", Some(5), Span::ZERO).unwrap().events.len(),
            1
        );
        assert!(
            builtin("launch", Some(2), Span::ZERO)
                .unwrap()
                .events
                .is_empty()
        );
        assert_eq!(
            builtin("launch", Some(3), Span::ZERO).unwrap().events.len(),
            1
        );
    }

    #[test]
    fn lengths_beyond_a_year_are_refused_before_anything_is_generated() {
        assert_eq!(
            builtin("weekly", Some(0), Span::ZERO),
            Err(ScenarioError::ZeroDays(0))
        );
        assert_eq!(
            builtin("weekly", Some(MAX_DAYS + 1), Span::ZERO),
            Err(ScenarioError::TooManyDays(367))
        );
        // `--history 400d` printed "(got 400.0)": the span is shown as durations are written.
        let err = builtin("weekly", Some(1), "400d".parse().unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a scenario's history is at most 366 days (got 400d): the forecast reads the last four weeks"
        );
    }
}
