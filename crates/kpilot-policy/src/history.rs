//! The demand history the policy learns from: timestamped samples of cluster ingress (and,
//! when measured, consumer egress), kept as fixed-width bins (maximum, minimum and mean per
//! bin) over a bounded retention. A live observer pushes what it reads from metrics; the
//! simulator pushes its trace minute by minute. Pure.

use std::collections::VecDeque;

use kpilot_units::{Span, Throughput};
use serde::Serialize;
use thiserror::Error;

use crate::time::Timestamp;

/// One observation of the cluster's demand.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// When it was observed (the start of the interval it describes).
    pub at: Timestamp,
    /// Cluster ingress (producer traffic, before replication).
    pub ingress: Throughput,
    /// Consumer egress (traffic to consumers, not replication), when measured.
    pub egress: Option<Throughput>,
}

/// Why a sample or a history was refused.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum HistoryError {
    /// Bin width or retention not a positive number of seconds, or retention shorter than a bin.
    #[error(
        "history bin {bin_secs}s and retention {keep_secs}s must be positive, with the retention at least one bin"
    )]
    InvalidLayout {
        /// The bin width asked for.
        bin_secs: f64,
        /// The retention asked for.
        keep_secs: f64,
    },
    /// A timestamp that is not a finite number.
    #[error("sample time {0} is not a finite number of seconds")]
    InvalidTimestamp(f64),
    /// A sample older than the one before it.
    #[error(
        "sample at {at}s is older than the previous sample at {previous}s: time must not go backwards"
    )]
    TimeWentBackwards {
        /// The new sample's time, seconds.
        at: f64,
        /// The previous sample's time, seconds.
        previous: f64,
    },
    /// A negative or non-finite rate.
    #[error("sample at {at}s: {what} {value} MB/s must be a finite rate of zero or more")]
    InvalidRate {
        /// The sample's time, seconds.
        at: f64,
        /// `ingress` or `egress`.
        what: &'static str,
        /// The value, MB/s.
        value: f64,
    },
}

/// One bin of the history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bin {
    /// Highest ingress in the bin, bytes/s.
    pub max: f64,
    /// Lowest ingress in the bin, bytes/s.
    pub min: f64,
    /// Sum of ingress samples, bytes/s (for the mean).
    pub sum: f64,
    /// Samples in the bin (0: no data).
    pub count: u32,
    /// Highest egress / ingress of the bin's samples, when egress was measured.
    pub max_fanout: Option<f64>,
}

impl Bin {
    const EMPTY: Bin = Bin {
        max: 0.0,
        min: f64::INFINITY,
        sum: 0.0,
        count: 0,
        max_fanout: None,
    };
}

/// Demand samples, binned. Bins are dense from the oldest kept to the newest; bins without
/// samples (gaps in the metrics) are kept empty and ignored by the forecast.
#[derive(Debug, Clone)]
pub struct DemandHistory {
    bin_secs: f64,
    keep_bins: usize,
    first_index: i64,
    bins: VecDeque<Bin>,
    first_at: Option<Timestamp>,
    latest: Option<Sample>,
}

/// The bin width of [`DemandHistory::with_defaults`]: each bin keeps the maximum, minimum and
/// mean of the samples in it.
pub const DEFAULT_BIN: Span = Span::from_secs(300.0);

impl DemandHistory {
    /// An empty history with bins of `bin` and at most `keep` of data (older bins are dropped).
    pub fn new(bin: Span, keep: Span) -> Result<Self, HistoryError> {
        let (b, k) = (bin.secs(), keep.secs());
        if !(b.is_finite() && b > 0.0 && k.is_finite() && k >= b) {
            return Err(HistoryError::InvalidLayout {
                bin_secs: b,
                keep_secs: k,
            });
        }
        Ok(Self {
            bin_secs: b,
            keep_bins: (k / b).ceil() as usize,
            first_index: 0,
            bins: VecDeque::new(),
            first_at: None,
            latest: None,
        })
    }

    /// The default layout: [`DEFAULT_BIN`] bins, 35 days kept (enough for four weeks of
    /// weekly seasonality).
    pub fn with_defaults() -> Self {
        Self {
            bin_secs: DEFAULT_BIN.secs(),
            keep_bins: 35 * 288,
            first_index: 0,
            bins: VecDeque::new(),
            first_at: None,
            latest: None,
        }
    }

    /// Builds a history from samples in time order.
    pub fn from_samples(
        bin: Span,
        keep: Span,
        samples: impl IntoIterator<Item = Sample>,
    ) -> Result<Self, HistoryError> {
        let mut h = Self::new(bin, keep)?;
        for s in samples {
            h.push(s)?;
        }
        Ok(h)
    }

    /// Adds a sample; it must not be older than the previous one.
    pub fn push(&mut self, sample: Sample) -> Result<(), HistoryError> {
        let t = sample.at.secs();
        if !t.is_finite() {
            return Err(HistoryError::InvalidTimestamp(t));
        }
        if let Some(prev) = &self.latest
            && t < prev.at.secs()
        {
            return Err(HistoryError::TimeWentBackwards {
                at: t,
                previous: prev.at.secs(),
            });
        }
        let ingress = sample.ingress.bytes_per_s();
        if !(ingress.is_finite() && ingress >= 0.0) {
            return Err(HistoryError::InvalidRate {
                at: t,
                what: "ingress",
                value: sample.ingress.mb_per_s(),
            });
        }
        if let Some(e) = sample.egress
            && !(e.bytes_per_s().is_finite() && e.bytes_per_s() >= 0.0)
        {
            return Err(HistoryError::InvalidRate {
                at: t,
                what: "egress",
                value: e.mb_per_s(),
            });
        }
        let index = self.index_of(sample.at);
        if self.bins.is_empty() {
            self.first_index = index;
            self.bins.push_back(Bin::EMPTY);
            self.first_at = Some(sample.at);
        }
        let last_index = self.first_index + self.bins.len() as i64 - 1;
        if index > last_index {
            let gap = (index - last_index) as usize;
            if gap > self.keep_bins {
                // A gap longer than the retention: nothing kept is relevant any more.
                self.bins.clear();
                self.first_index = index;
                self.bins.push_back(Bin::EMPTY);
                self.first_at = Some(sample.at);
            } else {
                for _ in 0..gap {
                    self.bins.push_back(Bin::EMPTY);
                }
            }
        }
        while self.bins.len() > self.keep_bins {
            self.bins.pop_front();
            self.first_index += 1;
            self.first_at = Some(Timestamp::from_secs(
                self.first_index as f64 * self.bin_secs,
            ));
        }
        let bin = self.bins.back_mut().expect("a bin was pushed above");
        bin.max = bin.max.max(ingress);
        bin.min = bin.min.min(ingress);
        bin.sum += ingress;
        bin.count += 1;
        if let Some(e) = sample.egress
            && ingress > 0.0
        {
            let f = e.bytes_per_s() / ingress;
            bin.max_fanout = Some(bin.max_fanout.map_or(f, |m| m.max(f)));
        }
        self.latest = Some(sample);
        Ok(())
    }

    /// The bin width.
    pub fn bin(&self) -> Span {
        Span::from_secs(self.bin_secs)
    }

    /// The most recent sample.
    pub fn latest(&self) -> Option<&Sample> {
        self.latest.as_ref()
    }

    /// The oldest time still covered.
    pub fn first_at(&self) -> Option<Timestamp> {
        self.first_at
    }

    /// How much time the kept samples cover (oldest to newest).
    pub fn span(&self) -> Span {
        match (self.first_at, &self.latest) {
            (Some(first), Some(last)) => last.at.since(first),
            _ => Span::from_secs(0.0),
        }
    }

    /// True when no sample was pushed.
    pub fn is_empty(&self) -> bool {
        self.latest.is_none()
    }

    /// The highest ingress seen in bins overlapping `[from, to]`, if any.
    pub fn max_between(&self, from: Timestamp, to: Timestamp) -> Option<Throughput> {
        self.bins_between(from, to)
            .filter(|b| b.count > 0)
            .map(|b| b.max)
            .reduce(f64::max)
            .map(Throughput::from_bytes_per_s)
    }

    /// The mean ingress of the samples in bins overlapping `[from, to]`, if any.
    pub fn mean_between(&self, from: Timestamp, to: Timestamp) -> Option<Throughput> {
        let (sum, count) = self
            .bins_between(from, to)
            .fold((0.0, 0u32), |(s, n), b| (s + b.sum, n + b.count));
        (count > 0).then(|| Throughput::from_bytes_per_s(sum / f64::from(count)))
    }

    /// The lowest ingress seen in bins overlapping `[from, to]`, if any.
    pub fn min_between(&self, from: Timestamp, to: Timestamp) -> Option<Throughput> {
        self.bins_between(from, to)
            .filter(|b| b.count > 0)
            .map(|b| b.min)
            .reduce(f64::min)
            .map(Throughput::from_bytes_per_s)
    }

    /// The highest measured egress / ingress ratio in bins overlapping `[from, to]`.
    pub fn max_fanout_between(&self, from: Timestamp, to: Timestamp) -> Option<f64> {
        self.bins_between(from, to)
            .filter_map(|b| b.max_fanout)
            .reduce(f64::max)
    }

    /// The least-squares slope of the bin maxima over `[from, to]`, MB/s per hour (`None` with
    /// fewer than two bins of data).
    pub fn slope_between(&self, from: Timestamp, to: Timestamp) -> Option<f64> {
        let lo = self.index_of(from);
        let pts: Vec<(f64, f64)> = (lo..=self.index_of(to))
            .filter_map(|i| self.max_at(i).map(|m| (i as f64 * self.bin_secs, m)))
            .collect();
        if pts.len() < 2 {
            return None;
        }
        let n = pts.len() as f64;
        let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
        let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
        let (mut num, mut den) = (0.0, 0.0);
        for &(x, y) in &pts {
            num += (x - mx) * (y - my);
            den += (x - mx) * (x - mx);
        }
        (den > 0.0).then(|| num / den * 3600.0 / 1e6)
    }

    /// The bin index a time falls in.
    pub(crate) fn index_of(&self, t: Timestamp) -> i64 {
        (t.secs() / self.bin_secs).floor() as i64
    }

    /// The start of bin `index`.
    pub(crate) fn start_of(&self, index: i64) -> Timestamp {
        Timestamp::from_secs(index as f64 * self.bin_secs)
    }

    /// The maximum ingress of bin `index` (bytes/s), if it has samples.
    pub(crate) fn max_at(&self, index: i64) -> Option<f64> {
        let offset = index - self.first_index;
        if offset < 0 {
            return None;
        }
        self.bins
            .get(offset as usize)
            .filter(|b| b.count > 0)
            .map(|b| b.max)
    }

    fn bins_between(&self, from: Timestamp, to: Timestamp) -> impl Iterator<Item = &Bin> {
        let lo = (self.index_of(from) - self.first_index).max(0);
        let hi = self.index_of(to) - self.first_index;
        let (lo, hi) = (lo as usize, hi.min(self.bins.len() as i64 - 1));
        let take = if hi < lo as i64 {
            0
        } else {
            hi as usize - lo + 1
        };
        self.bins.iter().skip(lo).take(take)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: f64, mb: f64) -> Sample {
        Sample {
            at: Timestamp::from_secs(t),
            ingress: Throughput::from_mb_per_s(mb),
            egress: None,
        }
    }

    #[test]
    fn bins_keep_max_min_and_drop_old_data() {
        let mut h = DemandHistory::new(Span::from_secs(300.0), Span::from_secs(900.0)).unwrap();
        for (t, v) in [
            (0.0, 10.0),
            (60.0, 30.0),
            (240.0, 20.0),
            (300.0, 5.0),
            (1200.0, 7.0),
        ] {
            h.push(s(t, v)).unwrap();
        }
        // Retention of 3 bins: bins 2, 3, 4 remain (bin 2 and 3 empty).
        assert_eq!(
            h.max_between(Timestamp::from_secs(0.0), Timestamp::from_secs(600.0)),
            None
        );
        let m = h
            .max_between(Timestamp::from_secs(0.0), Timestamp::from_secs(1300.0))
            .unwrap();
        assert_eq!(m.mb_per_s(), 7.0);
        assert_eq!(h.span().secs(), 600.0);
    }

    #[test]
    fn refuses_bad_samples() {
        let mut h = DemandHistory::with_defaults();
        h.push(s(100.0, 1.0)).unwrap();
        assert!(matches!(
            h.push(s(50.0, 1.0)),
            Err(HistoryError::TimeWentBackwards { .. })
        ));
        let err = h.push(s(200.0, -1.0)).unwrap_err();
        assert!(err.to_string().contains("ingress -1 MB/s"), "{err}");
        assert!(matches!(
            h.push(s(f64::NAN, 1.0)),
            Err(HistoryError::InvalidTimestamp(_))
        ));
        assert!(DemandHistory::new(Span::from_secs(0.0), Span::from_hours(1.0)).is_err());
    }

    #[test]
    fn records_fanout_from_egress() {
        let mut h = DemandHistory::with_defaults();
        let mut x = s(0.0, 100.0);
        x.egress = Some(Throughput::from_mb_per_s(250.0));
        h.push(x).unwrap();
        let f = h
            .max_fanout_between(Timestamp::EPOCH, Timestamp::from_secs(10.0))
            .unwrap();
        assert!((f - 2.5).abs() < 1e-12);
    }
}
