//! Measurements: latency histograms in microseconds (HdrHistogram, 3 significant digits, up to
//! one hour), producer and consumer counters, per-window and per-phase recorders, and the
//! quantile summaries reports print. Pure: values are passed in.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency a histogram tracks, in microseconds (one hour); larger values are clamped.
pub const HIGHEST_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds.
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Self {
        Self(
            Histogram::new_with_bounds(1, HIGHEST_US, 3)
                .expect("constant bounds 1..1h with 3 digits are valid"),
        )
    }

    /// Records one value (clamped to [`HIGHEST_US`]).
    pub fn record(&mut self, us: u64) {
        self.0.saturating_record(us.min(HIGHEST_US));
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The value at quantile `q` (0 to 1), in microseconds; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.0.is_empty() {
            0
        } else {
            self.0.value_at_quantile(q)
        }
    }

    /// The largest value, in microseconds; 0 when empty.
    pub fn max(&self) -> u64 {
        if self.0.is_empty() { 0 } else { self.0.max() }
    }

    /// Count, mean and the usual quantiles.
    pub fn summary(&self) -> Summary {
        if self.0.is_empty() {
            return Summary::default();
        }
        Summary {
            count: self.0.len(),
            min_us: self.0.min(),
            mean_us: self.0.mean(),
            p50_us: self.0.value_at_quantile(0.50),
            p90_us: self.0.value_at_quantile(0.90),
            p99_us: self.0.value_at_quantile(0.99),
            p999_us: self.0.value_at_quantile(0.999),
            max_us: self.0.max(),
        }
    }
}

/// Quantiles of a latency histogram, in microseconds (all zero when there were no values).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Number of values.
    pub count: u64,
    /// Smallest value.
    pub min_us: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest value.
    pub max_us: u64,
}

/// What producers measured over some span (a window or a phase).
#[derive(Debug, Clone, Default)]
pub struct ProducerStats {
    /// Intended send time -> handed to the client.
    pub send_delay: Latency,
    /// Handed to the client -> acknowledged (successful records only).
    pub service: Latency,
    /// Intended send time -> acknowledged (successful records only).
    pub corrected: Latency,
    /// Records handed to the client.
    pub sent: u64,
    /// Records acknowledged by the cluster.
    pub acked: u64,
    /// Records the cluster did not acknowledge, by error name from the delivery report
    /// (timed out, purged, rejected...).
    pub errors: BTreeMap<String, u64>,
    /// Records the client refused outright (other than a full queue), by error name; they were
    /// never sent.
    pub send_errors: BTreeMap<String, u64>,
    /// Times the client refused a record because its queue was full (the record was retried
    /// later and its wait counts in the send delay).
    pub queue_full: u64,
}

impl ProducerStats {
    /// A record was handed to the client `send_delay_us` after its intended time.
    pub fn record_send(&mut self, send_delay_us: u64) {
        self.sent += 1;
        self.send_delay.record(send_delay_us);
    }

    /// A record was acknowledged.
    pub fn record_ack(&mut self, service_us: u64, corrected_us: u64) {
        self.acked += 1;
        self.service.record(service_us);
        self.corrected.record(corrected_us);
    }

    /// A sent record failed with `error` (delivery report).
    pub fn record_error(&mut self, error: &str) {
        *self.errors.entry(error.to_string()).or_default() += 1;
    }

    /// The client refused a record with `error`.
    pub fn record_send_error(&mut self, error: &str) {
        *self.send_errors.entry(error.to_string()).or_default() += 1;
    }

    /// Total failed records, refused or not acknowledged.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum::<u64>() + self.send_errors.values().sum::<u64>()
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &ProducerStats) {
        self.send_delay.merge(&other.send_delay);
        self.service.merge(&other.service);
        self.corrected.merge(&other.corrected);
        self.sent += other.sent;
        self.acked += other.acked;
        self.queue_full += other.queue_full;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.send_errors {
            *self.send_errors.entry(k.clone()).or_default() += v;
        }
    }
}

/// What consumers measured over some span.
#[derive(Debug, Clone, Default)]
pub struct ConsumerStats {
    /// Intended send time -> received by the consumer (records stamped by kpilot only).
    pub end_to_end: Latency,
    /// Records received.
    pub consumed: u64,
    /// Payload bytes received.
    pub consumed_bytes: u64,
    /// Records without a kpilot timestamp (other producers, or records under 16 bytes).
    pub unstamped: u64,
    /// Consumer errors, by name.
    pub errors: BTreeMap<String, u64>,
}

impl ConsumerStats {
    /// A record of `bytes` bytes arrived; `end_to_end_us` when it carried a kpilot stamp.
    pub fn record(&mut self, bytes: u64, end_to_end_us: Option<u64>) {
        self.consumed += 1;
        self.consumed_bytes += bytes;
        match end_to_end_us {
            Some(us) => self.end_to_end.record(us),
            None => self.unstamped += 1,
        }
    }

    /// A consumer error.
    pub fn record_error(&mut self, error: &str) {
        *self.errors.entry(error.to_string()).or_default() += 1;
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &ConsumerStats) {
        self.end_to_end.merge(&other.end_to_end);
        self.consumed += other.consumed;
        self.consumed_bytes += other.consumed_bytes;
        self.unstamped += other.unstamped;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }
}

/// Stats kept twice: for the current reporting window (by when things happened) and for each
/// phase (by the phase the record was intended in).
#[derive(Debug, Clone, Default)]
pub struct Recorder<S> {
    window: S,
    phases: Vec<S>,
}

impl<S: Default> Recorder<S> {
    /// An empty recorder.
    pub fn new() -> Self {
        Self {
            window: S::default(),
            phases: Vec::new(),
        }
    }

    /// The window stats and the stats of `phase`, to record into both.
    pub fn both(&mut self, phase: u32) -> (&mut S, &mut S) {
        let i = phase as usize;
        if self.phases.len() <= i {
            self.phases.resize_with(i + 1, S::default);
        }
        (&mut self.window, &mut self.phases[i])
    }

    /// Takes the current window's stats and starts a new window.
    pub fn take_window(&mut self) -> S {
        std::mem::take(&mut self.window)
    }

    /// The stats of `phase` so far (empty if nothing was recorded for it).
    pub fn phase(&self, phase: u32) -> Option<&S> {
        self.phases.get(phase as usize)
    }
}

impl Recorder<ProducerStats> {
    /// See [`ProducerStats::record_send`].
    pub fn record_send(&mut self, phase: u32, send_delay_us: u64) {
        let (w, p) = self.both(phase);
        w.record_send(send_delay_us);
        p.record_send(send_delay_us);
    }

    /// See [`ProducerStats::record_ack`].
    pub fn record_ack(&mut self, phase: u32, service_us: u64, corrected_us: u64) {
        let (w, p) = self.both(phase);
        w.record_ack(service_us, corrected_us);
        p.record_ack(service_us, corrected_us);
    }

    /// See [`ProducerStats::record_error`].
    pub fn record_error(&mut self, phase: u32, error: &str) {
        let (w, p) = self.both(phase);
        w.record_error(error);
        p.record_error(error);
    }

    /// See [`ProducerStats::record_send_error`].
    pub fn record_send_error(&mut self, phase: u32, error: &str) {
        let (w, p) = self.both(phase);
        w.record_send_error(error);
        p.record_send_error(error);
    }

    /// The client refused a record (queue full) during `phase`.
    pub fn record_queue_full(&mut self, phase: u32) {
        let (w, p) = self.both(phase);
        w.queue_full += 1;
        p.queue_full += 1;
    }
}

impl Recorder<ConsumerStats> {
    /// See [`ConsumerStats::record`].
    pub fn record(&mut self, phase: Option<u32>, bytes: u64, end_to_end_us: Option<u64>) {
        match phase {
            Some(phase) => {
                let (w, p) = self.both(phase);
                w.record(bytes, end_to_end_us);
                p.record(bytes, end_to_end_us);
            }
            None => self.window.record(bytes, None),
        }
    }

    /// See [`ConsumerStats::record_error`].
    pub fn record_error(&mut self, error: &str) {
        self.window.record_error(error);
    }
}

/// Microseconds from `from_ns` to `to_ns` (0 if `to_ns` is earlier).
pub fn micros_between(from_ns: u64, to_ns: u64) -> u64 {
    to_ns.saturating_sub(from_ns) / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_report_quantiles_in_microseconds() {
        let mut h = Latency::new();
        for v in 1..=1000 {
            h.record(v);
        }
        let s = h.summary();
        assert_eq!(s.count, 1000);
        assert_eq!(s.min_us, 1);
        assert_eq!(s.p50_us, 500);
        assert_eq!(s.p99_us, 990);
        assert_eq!(s.max_us, 1000);
        assert_eq!(Latency::new().summary(), Summary::default());
    }

    #[test]
    fn huge_values_are_clamped_not_lost() {
        let mut h = Latency::new();
        h.record(u64::MAX);
        assert_eq!(h.count(), 1);
        assert!(h.max() >= HIGHEST_US);
    }

    #[test]
    fn recorders_keep_windows_and_phases_apart() {
        let mut r: Recorder<ProducerStats> = Recorder::new();
        r.record_send(0, 10);
        r.record_ack(0, 100, 110);
        r.record_send(2, 5);
        r.record_error(2, "MessageTimedOut");
        let w = r.take_window();
        assert_eq!((w.sent, w.acked, w.error_count()), (2, 1, 1));
        assert_eq!(r.take_window().sent, 0);
        assert_eq!(r.phase(0).unwrap().acked, 1);
        assert_eq!(r.phase(1).unwrap().sent, 0);
        assert_eq!(r.phase(2).unwrap().errors["MessageTimedOut"], 1);
        assert!(r.phase(3).is_none());
    }

    #[test]
    fn merging_adds_counts_and_histograms() {
        let mut a = ProducerStats::default();
        a.record_send(1);
        a.record_ack(10, 11);
        let mut b = ProducerStats::default();
        b.record_send(2);
        b.record_error("x");
        b.record_send_error("y");
        b.queue_full = 3;
        a.merge(&b);
        assert_eq!(
            (a.sent, a.acked, a.error_count(), a.queue_full),
            (2, 1, 2, 3)
        );
        assert_eq!(a.send_delay.count(), 2);

        let mut c = ConsumerStats::default();
        c.record(100, Some(5));
        c.record(100, None);
        let mut d = ConsumerStats::default();
        d.merge(&c);
        assert_eq!(
            (
                d.consumed,
                d.consumed_bytes,
                d.unstamped,
                d.end_to_end.count()
            ),
            (2, 200, 1, 1)
        );
    }

    #[test]
    fn micros_between_never_underflows() {
        assert_eq!(micros_between(5_000, 2_000), 0);
        assert_eq!(micros_between(1_000, 3_500), 2);
    }
}
