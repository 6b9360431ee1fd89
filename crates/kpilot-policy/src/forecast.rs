//! The demand forecast: seasonality learned from the history (the same time of day over the last
//! days, or the same time of week over the last weeks once two weeks are known), corrected for
//! the current level and trend, times a safety margin that grows with the recent forecast
//! error. While the history is shorter than a day, a reactive fallback holds the recent maximum
//! and extrapolates a rising trend. Pure.
//!
//! The model works on bin maxima (the highest rate within each history bin), so a forecast
//! value is "the highest one-sample rate expected in that bin".
//!
//! 1. **Seasonal base** `b(i)` for bin `i`: the median of the bins one day, two days, ... (up to
//!    [`ForecastSettings::seasonal_days`]) before it, each smoothed with its two neighbours;
//!    with at least two weeks of history, the same over one, two, ... weeks before (up to
//!    [`ForecastSettings::seasonal_weeks`]) instead.
//! 2. **Level** `k`: actual / base over the last 15 minutes (`k_fast`) and over the last hour
//!    (`k_slow`): `k = max(k_fast, min(k_slow, 1))`. The level follows a rise at once, drops
//!    back as soon as the rise has ended, and follows a fall only slowly. Ahead in time: the
//!    part of a rise that has lasted the whole [`ForecastSettings::persistence_window`]
//!    (2 hours; the lowest level of its 15-minute slices) is kept as a new level, a more
//!    recent rise fades with [`ForecastSettings::upward_level_decay`] (1 hour: a spike is
//!    taken to pass; while it lasts it is measured again at every decision), and a fall fades
//!    back to 1 with [`ForecastSettings::downward_level_decay`] (2 hours: a quiet hour never
//!    promises a quiet day).
//! 3. **Trend**: the least-squares slope of the residual `actual - k * b` over the last hour,
//!    when rising, extrapolated for at most [`ForecastSettings::trend_cap`].
//! 4. **Margin** `m`: the larger of [`ForecastSettings::safety_margin`] and
//!    `error_sigmas x` the RMS relative error of the level-corrected base over the last day,
//!    capped at [`ForecastSettings::max_margin`].
//!
//! Forecast `f(t) = (k(t) * b(t) + trend(t)) * (1 + m)`.

use kpilot_units::{Span, Throughput};
use serde::Serialize;
use thiserror::Error;

use crate::history::DemandHistory;
use crate::time::Timestamp;

const DAY: f64 = 86_400.0;
const WEEK: f64 = 7.0 * DAY;
/// Most periods the seasonal median looks back.
const MAX_SEASONS: usize = 14;

/// How the forecast is made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForecastSettings {
    /// Smallest relative margin added to every forecast value (0.1 = +10%).
    pub safety_margin: f64,
    /// The margin is at least this many times the recent RMS relative forecast error.
    pub error_sigmas: f64,
    /// Largest margin.
    pub max_margin: f64,
    /// History needed before seasonality is used; shorter histories use the reactive fallback.
    pub min_seasonal_history: Span,
    /// Days of daily seasonality to take the median of.
    pub seasonal_days: u32,
    /// Weeks of weekly seasonality to take the median of (used from two weeks of history on).
    pub seasonal_weeks: u32,
    /// Window of the slow level correction.
    pub level_window: Span,
    /// Window of the fast (rising) level correction.
    pub fast_level_window: Span,
    /// Window of the trend fit.
    pub trend_window: Span,
    /// Longest time a rising trend is extrapolated.
    pub trend_cap: Span,
    /// Time constant with which a level below 1 decays back to 1.
    pub downward_level_decay: Span,
    /// Time constant with which a level above 1 decays back to 1.
    pub upward_level_decay: Span,
    /// A rise that has lasted this long (in every fast-window slice of it) is taken as a new
    /// level and kept over the whole forecast.
    pub persistence_window: Span,
}

impl Default for ForecastSettings {
    fn default() -> Self {
        Self {
            safety_margin: 0.10,
            error_sigmas: 2.0,
            max_margin: 0.5,
            min_seasonal_history: Span::from_hours(24.0),
            seasonal_days: 7,
            seasonal_weeks: 4,
            level_window: Span::from_hours(1.0),
            fast_level_window: Span::from_minutes(15.0),
            trend_window: Span::from_minutes(30.0),
            trend_cap: Span::from_minutes(30.0),
            downward_level_decay: Span::from_hours(2.0),
            upward_level_decay: Span::from_hours(1.0),
            persistence_window: Span::from_hours(2.0),
        }
    }
}

/// Why no forecast could be made.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ForecastError {
    /// The history has no sample.
    #[error("the demand history is empty: at least one sample is needed to forecast")]
    NoHistory,
    /// A setting out of range.
    #[error("forecast setting {name} = {value} is out of range: {expected}")]
    InvalidSetting {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: f64,
        /// What is allowed.
        expected: &'static str,
    },
}

/// Which model produced a forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum ForecastMethod {
    /// Same time of day over the last days.
    Daily {
        /// Days the median was taken over.
        days: u32,
    },
    /// Same time of week over the last weeks.
    Weekly {
        /// Weeks the median was taken over.
        weeks: u32,
    },
    /// History too short: recent maximum plus rising trend.
    Reactive,
}

impl std::fmt::Display for ForecastMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ForecastMethod::Daily { days } => {
                write!(f, "daily (median of the same time over {days} days)")
            }
            ForecastMethod::Weekly { weeks } => {
                write!(f, "weekly (median of the same time over {weeks} weeks)")
            }
            ForecastMethod::Reactive => write!(f, "reactive (recent maximum and rising trend)"),
        }
    }
}

/// A forecast of cluster ingress, bin by bin from the bin holding `now`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Forecast {
    /// The model used.
    pub method: ForecastMethod,
    /// When it was made.
    pub now: Timestamp,
    /// Width of a forecast step (the history's bin).
    pub step: Span,
    /// Start of the first step (the bin holding `now`).
    pub start: Timestamp,
    /// Forecast ingress per step, margin included.
    pub values: Vec<Throughput>,
    /// The latest observed ingress.
    pub current: Throughput,
    /// The relative margin included in `values`.
    pub margin: f64,
    /// The level correction `k`.
    pub level: f64,
    /// The rising trend extrapolated, MB/s per hour (0 when not rising).
    pub trend_mb_per_s_per_hour: f64,
    /// The highest measured consumer egress / ingress over the last day, if egress is measured.
    pub observed_fanout: Option<f64>,
}

impl Forecast {
    /// The end of the last step.
    pub fn end(&self) -> Timestamp {
        self.start + Span::from_secs(self.step.secs() * self.values.len() as f64)
    }

    /// The highest forecast ingress over `[from, to]`, never below the latest observed ingress
    /// when the window starts at or before `now`. A window reaching past the forecast's end is
    /// cut at the end.
    pub fn peak(&self, from: Timestamp, to: Timestamp) -> Throughput {
        let step = self.step.secs();
        let lo = ((from.secs() - self.start.secs()) / step).floor().max(0.0) as usize;
        let hi = ((to.secs() - self.start.secs()) / step).floor();
        let mut peak = if from <= self.now {
            self.current.bytes_per_s()
        } else {
            0.0
        };
        if hi >= 0.0 {
            let hi = (hi as usize).min(self.values.len().saturating_sub(1));
            for v in self.values.iter().take(hi + 1).skip(lo) {
                peak = peak.max(v.bytes_per_s());
            }
        }
        Throughput::from_bytes_per_s(peak)
    }
}

/// Forecasts ingress from `now` for `span` (rounded up to whole bins).
pub fn forecast(
    history: &DemandHistory,
    now: Timestamp,
    settings: &ForecastSettings,
    span: Span,
) -> Result<Forecast, ForecastError> {
    check(settings)?;
    let latest = history.latest().ok_or(ForecastError::NoHistory)?;
    let bin = history.bin().secs();
    let i_now = history.index_of(now);
    let steps = ((span.secs() / bin).ceil() as usize).max(1) + 1;
    let observed_fanout =
        history.max_fanout_between(now - Span::from_secs(DAY), now + Span::from_secs(bin));
    let bins_in = |s: Span| ((s.secs() / bin).round() as i64).max(1);

    let known = history.span().secs();
    let method = if known + bin < settings.min_seasonal_history.secs() {
        ForecastMethod::Reactive
    } else if known + bin >= 2.0 * WEEK && settings.seasonal_weeks >= 2 {
        ForecastMethod::Weekly {
            weeks: settings
                .seasonal_weeks
                .min(((known + bin) / WEEK).floor() as u32),
        }
    } else {
        ForecastMethod::Daily {
            days: settings
                .seasonal_days
                .max(1)
                .min(((known + bin) / DAY).floor().max(1.0) as u32),
        }
    };

    // The recent maximum and the trend of bin maxima: the reactive model, and the fallback for
    // bins without a seasonal base.
    let level_bins = bins_in(settings.level_window);
    let recent_max = (i_now - level_bins + 1..=i_now)
        .filter_map(|i| history.max_at(i))
        .fold(latest.ingress.bytes_per_s(), f64::max);
    let trend_bins = bins_in(settings.trend_window);

    let (period, seasons) = match method {
        ForecastMethod::Daily { days } => ((DAY / bin).round() as i64, days),
        ForecastMethod::Weekly { weeks } => ((WEEK / bin).round() as i64, weeks),
        ForecastMethod::Reactive => (0, 0),
    };
    let base = |i: i64| -> Option<f64> {
        if seasons == 0 {
            return None;
        }
        // The same bin, smoothed with its two neighbours, one to `seasons` periods back.
        let mut v: [f64; MAX_SEASONS] = [0.0; MAX_SEASONS];
        let mut n = 0;
        for k in 1..=i64::from(seasons.min(MAX_SEASONS as u32)) {
            let (mut sum, mut count) = (0.0, 0.0);
            for j in -1..=1 {
                if let Some(x) = history.max_at(i + j - k * period) {
                    sum += x;
                    count += 1.0;
                }
            }
            if count > 0.0 {
                v[n] = sum / count;
                n += 1;
            }
        }
        median(&mut v[..n])
    };

    let (level, lasting, slope, margin) = if seasons == 0 {
        // Bin maxima are noisy: the reactive trend is fitted over the longer level window.
        let pts: Vec<(f64, f64)> = (i_now - level_bins.max(trend_bins) + 1..=i_now)
            .filter_map(|i| history.max_at(i).map(|x| (i as f64 * bin, x)))
            .collect();
        (1.0, 1.0, slope_of(&pts).max(0.0), settings.safety_margin)
    } else {
        let ratio_between = |from: i64, to: i64| -> Option<f64> {
            let (mut a, mut b) = (0.0, 0.0);
            for i in from..=to {
                if let (Some(x), Some(y)) = (history.max_at(i), base(i)) {
                    a += x;
                    b += y;
                }
            }
            (b > 0.0).then(|| a / b)
        };
        let ratio = |from: i64| ratio_between(from, i_now);
        let fast_bins = bins_in(settings.fast_level_window);
        let slow = ratio(i_now - level_bins + 1);
        let fast = ratio(i_now - fast_bins + 1);
        // The lowest level over the fast-window slices of the persistence window: what has
        // lasted the whole of it.
        let slices = (bins_in(settings.persistence_window) / fast_bins).max(1);
        let lasting_all = (0..slices)
            .filter_map(|k| {
                let to = i_now - k * fast_bins;
                ratio_between(to - fast_bins + 1, to)
            })
            .reduce(f64::min);
        // Up at once with the last minutes, down slowly with the last hour; a rise that has
        // ended no longer counts once it has left the fast window.
        let level = match (slow, fast) {
            (Some(s), Some(f)) => f.max(s.min(1.0)),
            (Some(s), None) => s,
            (None, Some(f)) => f,
            (None, None) => 1.0,
        };
        let lasting = lasting_all.unwrap_or(1.0);
        let level = level.clamp(0.25, 4.0);
        // The part of a rise that has lasted the whole slow window stays.
        let lasting = lasting.clamp(1.0, level.max(1.0));
        // The residual is noisy (two noisy series): fitted over the longer level window.
        let pts: Vec<(f64, f64)> = (i_now - level_bins.max(trend_bins) + 1..=i_now)
            .filter_map(|i| Some((i as f64 * bin, history.max_at(i)? - level * base(i)?)))
            .collect();
        let margin = (settings.error_sigmas * recent_error(history, i_now, period, &base, bin))
            .max(settings.safety_margin)
            .min(settings.max_margin.max(settings.safety_margin));
        (level, lasting, slope_of(&pts).max(0.0), margin)
    };

    let cap = settings.trend_cap.secs();
    let decay = settings.downward_level_decay.secs().max(1.0);
    let up_decay = settings.upward_level_decay.secs().max(1.0);
    let mut values = Vec::with_capacity(steps);
    for s in 0..steps as i64 {
        let i = i_now + s;
        let dt = (history.start_of(i).secs() - now.secs()).max(0.0);
        let trend = slope * dt.min(cap);
        let v = match base(i) {
            Some(b) => {
                // An unforecast deviation fades back towards the seasonal curve: a rise with
                // its own time constant (a persisting rise is measured again at every
                // decision), a fall more slowly.
                let k = if level >= 1.0 {
                    lasting + (level - lasting) * (-dt / up_decay).exp()
                } else {
                    1.0 + (level - 1.0) * (-dt / decay).exp()
                };
                k * b + trend
            }
            None => recent_max + trend,
        };
        values.push(Throughput::from_bytes_per_s(v.max(0.0) * (1.0 + margin)));
    }
    Ok(Forecast {
        method,
        now,
        step: Span::from_secs(bin),
        start: history.start_of(i_now),
        values,
        current: latest.ingress,
        margin,
        level,
        trend_mb_per_s_per_hour: slope * 3600.0 / 1e6,
        observed_fanout,
    })
}

pub(crate) fn check(s: &ForecastSettings) -> Result<(), ForecastError> {
    let bad = |name, value, expected| {
        Err(ForecastError::InvalidSetting {
            name,
            value,
            expected,
        })
    };
    if !(s.safety_margin.is_finite() && (0.0..=5.0).contains(&s.safety_margin)) {
        return bad(
            "safety_margin",
            s.safety_margin,
            "between 0 and 5 (0.1 = +10%)",
        );
    }
    if !(s.error_sigmas.is_finite() && s.error_sigmas >= 0.0) {
        return bad("error_sigmas", s.error_sigmas, "zero or more");
    }
    if !(s.max_margin.is_finite() && s.max_margin >= 0.0) {
        return bad("max_margin", s.max_margin, "zero or more");
    }
    for (name, span) in [
        ("level_window", s.level_window),
        ("fast_level_window", s.fast_level_window),
        ("trend_window", s.trend_window),
    ] {
        if !(span.secs().is_finite() && span.secs() > 0.0) {
            return bad(name, span.secs(), "a positive duration");
        }
    }
    Ok(())
}

/// RMS relative error, over the last day, of predicting each bin by its seasonal base times the
/// level of the hour before it.
fn recent_error(
    history: &DemandHistory,
    i_now: i64,
    period: i64,
    base: &dyn Fn(i64) -> Option<f64>,
    bin: f64,
) -> f64 {
    let window = ((3600.0 / bin).round() as usize).max(1);
    let first = i_now - period.min((DAY / bin).round() as i64);
    let mut ring: std::collections::VecDeque<f64> =
        std::collections::VecDeque::with_capacity(window);
    let mut ring_sum = 0.0;
    let (mut sq, mut n) = (0.0, 0usize);
    for i in first - window as i64..i_now {
        let Some(q) = history
            .max_at(i)
            .zip(base(i))
            .and_then(|(x, b)| (b > 0.0).then(|| x / b))
        else {
            continue;
        };
        if i >= first && ring.len() == window {
            let level = ring_sum / window as f64;
            if level > 0.0 {
                let e = q / level - 1.0;
                sq += e * e;
                n += 1;
            }
        }
        ring.push_back(q);
        ring_sum += q;
        if ring.len() > window {
            ring_sum -= ring.pop_front().unwrap_or(0.0);
        }
    }
    if n == 0 { 0.0 } else { (sq / n as f64).sqrt() }
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Least-squares slope of `(x, y)` points (0 with fewer than two).
fn slope_of(pts: &[(f64, f64)]) -> f64 {
    if pts.len() < 2 {
        return 0.0;
    }
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for &(x, y) in pts {
        num += (x - mx) * (y - my);
        den += (x - mx) * (x - mx);
    }
    if den > 0.0 { num / den } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Sample;

    fn daily(t: f64) -> f64 {
        // 100 MB/s at midnight, 300 at noon.
        200.0 - 100.0 * (2.0 * std::f64::consts::PI * t / DAY).cos()
    }

    fn history(days: f64, f: impl Fn(f64) -> f64) -> DemandHistory {
        let mut h = DemandHistory::with_defaults();
        let mut t = 0.0;
        while t < days * DAY {
            h.push(Sample {
                at: Timestamp::from_secs(t),
                ingress: Throughput::from_mb_per_s(f(t)),
                egress: None,
            })
            .unwrap();
            t += 60.0;
        }
        h
    }

    #[test]
    fn daily_seasonality_predicts_the_coming_peak() {
        let h = history(3.0, daily);
        let now = Timestamp::from_secs(3.0 * DAY - 60.0);
        let f = forecast(
            &h,
            now,
            &ForecastSettings::default(),
            Span::from_hours(13.0),
        )
        .unwrap();
        assert_eq!(f.method, ForecastMethod::Daily { days: 3 });
        let peak = f.peak(now, now + Span::from_hours(13.0)).mb_per_s();
        // The true peak is 300; with the 10% margin about 330.
        assert!((300.0..=345.0).contains(&peak), "{peak}");
        assert!((f.margin - 0.10).abs() < 1e-9, "{}", f.margin);
        // In six hours the curve is at 200, the forecast near 220.
        let six = f
            .peak(now + Span::from_hours(6.0), now + Span::from_hours(6.0))
            .mb_per_s();
        assert!((205.0..=235.0).contains(&six), "{six}");
    }

    #[test]
    fn short_history_falls_back_to_reactive() {
        let h = history(0.25, |t| 100.0 + t / 60.0 * 0.1);
        let now = Timestamp::from_secs(0.25 * DAY - 60.0);
        let f = forecast(&h, now, &ForecastSettings::default(), Span::from_hours(2.0)).unwrap();
        assert_eq!(f.method, ForecastMethod::Reactive);
        // Rising 6 MB/s per hour: the trend is extrapolated for 30 minutes.
        assert!(
            (f.trend_mb_per_s_per_hour - 6.0).abs() < 0.5,
            "{}",
            f.trend_mb_per_s_per_hour
        );
        let last = h.latest().unwrap().ingress.mb_per_s();
        let far = f
            .peak(now + Span::from_hours(2.0), now + Span::from_hours(2.0))
            .mb_per_s();
        assert!((far - (last + 3.0) * 1.1).abs() < 1.0, "{far} vs {last}");
    }

    #[test]
    fn a_rise_above_the_seasonal_curve_lifts_the_forecast_at_once() {
        let spike_from = 3.0 * DAY + 10.0 * 3600.0;
        let h = history(3.0 * DAY / DAY + 10.25 / 24.0, |t| {
            daily(t) * if t >= spike_from { 1.5 } else { 1.0 }
        });
        let now = h.latest().unwrap().at;
        let f = forecast(&h, now, &ForecastSettings::default(), Span::from_hours(2.0)).unwrap();
        assert!(f.level > 1.2, "level {}", f.level);
        let soon = f
            .peak(
                now + Span::from_minutes(10.0),
                now + Span::from_minutes(20.0),
            )
            .mb_per_s();
        let actual = h.latest().unwrap().ingress.mb_per_s();
        assert!(
            soon >= actual,
            "forecast {soon} below the observed {actual}"
        );
    }

    #[test]
    fn weekly_seasonality_from_two_weeks() {
        // Weekends at 60%.
        let f = |t: f64| {
            let dow = (t / DAY).floor() as i64 % 7;
            daily(t) * if dow >= 5 { 0.6 } else { 1.0 }
        };
        let h = history(14.0 + 5.0, f);
        let now = Timestamp::from_secs(19.0 * DAY - 60.0);
        let fc = forecast(
            &h,
            now,
            &ForecastSettings::default(),
            Span::from_hours(24.0),
        )
        .unwrap();
        assert!(
            matches!(fc.method, ForecastMethod::Weekly { weeks: 2 }),
            "{:?}",
            fc.method
        );
        // Saturday noon: 300 * 0.6 = 180, forecast about 198.
        let sat = fc
            .peak(now + Span::from_hours(12.0), now + Span::from_hours(12.0))
            .mb_per_s();
        assert!((175.0..=215.0).contains(&sat), "{sat}");
    }

    #[test]
    fn the_peak_includes_the_current_observation() {
        let h = history(0.01, |_| 50.0);
        let now = h.latest().unwrap().at;
        let f = forecast(&h, now, &ForecastSettings::default(), Span::from_hours(1.0)).unwrap();
        assert!(f.peak(now, now).mb_per_s() >= 50.0);
        let empty = DemandHistory::with_defaults();
        assert_eq!(
            forecast(
                &empty,
                now,
                &ForecastSettings::default(),
                Span::from_hours(1.0)
            ),
            Err(ForecastError::NoHistory)
        );
    }
}
