//! The releaser's metrics: counters (released, dry-run, pods deleted, skipped by reason,
//! failed by step, API retries, gate waits), the lost-host gauge and two latency histograms,
//! rendered in the Prometheus text exposition format for the operator's `/metrics`. Pure
//! in-memory state: no I/O.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Histogram bucket upper bounds, in seconds.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// A cloneable handle to the releaser's metrics (clones share the same values).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    released: AtomicU64,
    dry_run: AtomicU64,
    pods_deleted: AtomicU64,
    api_retries: AtomicU64,
    gate_waits: AtomicU64,
    lost_hosts: AtomicU64,
    skipped: Mutex<BTreeMap<&'static str, u64>>,
    failed: Mutex<BTreeMap<&'static str, u64>>,
    node_loss_to_release: Mutex<Histogram>,
    grace_end_to_release: Mutex<Histogram>,
}

/// A fixed-bucket histogram.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Cumulative-free counts per bucket of [`LATENCY_BUCKETS`] (plus one for `+Inf`).
    pub counts: Vec<u64>,
    /// Sum of observations, in seconds.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
    /// The largest observation, in seconds.
    pub max: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; LATENCY_BUCKETS.len() + 1];
        }
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[i] += 1;
        self.sum += seconds;
        self.count += 1;
        self.max = self.max.max(seconds);
    }
}

/// A copy of every value, for tests and status output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// PVCs deleted (for real).
    pub released: u64,
    /// PVCs that a dry-run delete accepted.
    pub dry_run: u64,
    /// Pending pods deleted after their PVC was released.
    pub pods_deleted: u64,
    /// API calls retried after a transient failure.
    pub api_retries: u64,
    /// Times the safety gate said "wait" (or could not decide).
    pub gate_waits: u64,
    /// Hosts currently gone that local volumes are pinned to.
    pub lost_hosts: u64,
    /// PVCs skipped, by reason (each PVC counted once per reason).
    pub skipped: BTreeMap<&'static str, u64>,
    /// Failed operations (after their retries), by step.
    pub failed: BTreeMap<&'static str, u64>,
    /// Node loss observed -> PVC deleted.
    pub node_loss_to_release: Histogram,
    /// Grace period over -> PVC deleted.
    pub grace_end_to_release: Histogram,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    /// Fresh, all zero.
    pub fn new() -> Self {
        Metrics::default()
    }

    /// A PVC was released; `since_loss` and `since_grace_end` are the latencies.
    pub fn record_released(&self, dry_run: bool, since_loss: Duration, since_grace_end: Duration) {
        if dry_run {
            self.inner.dry_run.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.inner.released.fetch_add(1, Ordering::Relaxed);
        lock(&self.inner.node_loss_to_release).observe(since_loss.as_secs_f64());
        lock(&self.inner.grace_end_to_release).observe(since_grace_end.as_secs_f64());
    }

    /// A Pending pod was deleted.
    pub fn record_pod_deleted(&self) {
        self.inner.pods_deleted.fetch_add(1, Ordering::Relaxed);
    }

    /// A PVC was skipped for `reason` (a metric label).
    pub fn record_skipped(&self, reason: &'static str) {
        *lock(&self.inner.skipped).entry(reason).or_default() += 1;
    }

    /// An operation failed after its retries at `step` (a metric label).
    pub fn record_failed(&self, step: &'static str) {
        *lock(&self.inner.failed).entry(step).or_default() += 1;
    }

    /// An API call is being retried.
    pub fn record_api_retry(&self) {
        self.inner.api_retries.fetch_add(1, Ordering::Relaxed);
    }

    /// The safety gate said wait.
    pub fn record_gate_wait(&self) {
        self.inner.gate_waits.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the number of lost hosts being tracked.
    pub fn set_lost_hosts(&self, n: usize) {
        self.inner
            .lost_hosts
            .store(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// A copy of every value.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            released: self.inner.released.load(Ordering::Relaxed),
            dry_run: self.inner.dry_run.load(Ordering::Relaxed),
            pods_deleted: self.inner.pods_deleted.load(Ordering::Relaxed),
            api_retries: self.inner.api_retries.load(Ordering::Relaxed),
            gate_waits: self.inner.gate_waits.load(Ordering::Relaxed),
            lost_hosts: self.inner.lost_hosts.load(Ordering::Relaxed),
            skipped: lock(&self.inner.skipped).clone(),
            failed: lock(&self.inner.failed).clone(),
            node_loss_to_release: lock(&self.inner.node_loss_to_release).clone(),
            grace_end_to_release: lock(&self.inner.grace_end_to_release).clone(),
        }
    }

    /// Renders every metric in the Prometheus text exposition format (version 0.0.4).
    pub fn render_prometheus(&self) -> String {
        let s = self.snapshot();
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            &mut out,
            "kpilot_pvc_releaser_released_total",
            "PVCs deleted because the node their local volume was pinned to is gone.",
            s.released,
        );
        counter(
            &mut out,
            "kpilot_pvc_releaser_dry_run_total",
            "PVCs a dry-run delete (dryRun=All) accepted; nothing was changed.",
            s.dry_run,
        );
        counter(
            &mut out,
            "kpilot_pvc_releaser_pods_deleted_total",
            "Pending pods deleted after their PVC was released, so their owner recreates them.",
            s.pods_deleted,
        );
        counter(
            &mut out,
            "kpilot_pvc_releaser_api_retries_total",
            "Kubernetes API calls retried after a transient failure.",
            s.api_retries,
        );
        counter(
            &mut out,
            "kpilot_pvc_releaser_gate_waits_total",
            "Times the Kafka safety gate said wait or could not decide.",
            s.gate_waits,
        );
        let labelled = |out: &mut String,
                        name: &str,
                        help: &str,
                        label: &str,
                        values: &BTreeMap<&'static str, u64>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (k, v) in values {
                let _ = writeln!(out, "{name}{{{label}=\"{k}\"}} {v}");
            }
        };
        labelled(
            &mut out,
            "kpilot_pvc_releaser_skipped_total",
            "PVCs pinned to a lost node that were left alone, by reason.",
            "reason",
            &s.skipped,
        );
        labelled(
            &mut out,
            "kpilot_pvc_releaser_failed_total",
            "Operations that failed after their retries (retried later), by step.",
            "step",
            &s.failed,
        );
        let _ = writeln!(
            out,
            "# HELP kpilot_pvc_releaser_lost_hosts Hosts that local volumes are pinned to and no node answers to.\n# TYPE kpilot_pvc_releaser_lost_hosts gauge\nkpilot_pvc_releaser_lost_hosts {}",
            s.lost_hosts
        );
        histogram(
            &mut out,
            "kpilot_pvc_releaser_node_loss_to_release_seconds",
            "Time from observing a node gone to deleting its PVC.",
            &s.node_loss_to_release,
        );
        histogram(
            &mut out,
            "kpilot_pvc_releaser_grace_end_to_release_seconds",
            "Time from the end of the grace period to deleting the PVC.",
            &s.grace_end_to_release,
        );
        out
    }
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    let mut cumulative = 0;
    for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
        cumulative += h.counts.get(i).copied().unwrap_or(0);
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum {}", h.sum);
    let _ = writeln!(out, "{name}_count {}", h.count);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_labels_and_cumulative_buckets() {
        let m = Metrics::new();
        m.record_released(false, Duration::from_secs(65), Duration::from_millis(300));
        m.record_released(false, Duration::from_secs(61), Duration::from_millis(40));
        m.record_released(true, Duration::ZERO, Duration::ZERO);
        m.record_skipped("controller_volume");
        m.record_failed("delete_pvc");
        let text = m.render_prometheus();
        assert!(
            text.contains("kpilot_pvc_releaser_released_total 2\n"),
            "{text}"
        );
        assert!(
            text.contains("kpilot_pvc_releaser_dry_run_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("kpilot_pvc_releaser_skipped_total{reason=\"controller_volume\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("kpilot_pvc_releaser_failed_total{step=\"delete_pvc\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "kpilot_pvc_releaser_grace_end_to_release_seconds_bucket{le=\"0.05\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "kpilot_pvc_releaser_grace_end_to_release_seconds_bucket{le=\"0.5\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("kpilot_pvc_releaser_node_loss_to_release_seconds_count 2\n"),
            "{text}"
        );
        // Every metric line is `name{labels} value` or a comment.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().expect("value");
            assert!(value.parse::<f64>().is_ok(), "bad line {line}");
        }
    }
}
