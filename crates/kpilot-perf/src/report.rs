//! What a run reports: per-window and per-step figures (rates, errors, latency quantiles), the
//! JSON document `kpilot perf --json` prints, and the self-contained HTML report with charts
//! (put latency against requested throughput; rates and latency over time). Pure: builds
//! values and strings.

use std::collections::BTreeMap;

use kpilot_report::{AxisFormat, Chart, Page, Series};
use serde::Serialize;

use crate::schedule::{DepletionState, Phase, PhaseKind};
use crate::stats::{ConsumerStats, ProducerStats, Summary};
use crate::workload::{Rate, Workload};

/// One reporting window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowReport {
    /// Window start, seconds since the run started.
    pub start_s: f64,
    /// Window end, seconds since the run started.
    pub end_s: f64,
    /// The phase id.
    pub phase: u32,
    /// What the phase is for.
    pub kind: PhaseKind,
    /// The step (1-based), for warm-up and measured windows.
    pub step: Option<usize>,
    /// Requested records per second (`None` when unthrottled).
    pub requested_msgs_per_s: Option<f64>,
    /// Requested MB/s of payload.
    pub requested_mb_per_s: Option<f64>,
    /// Records handed to the client in the window.
    pub sent: u64,
    /// Acknowledgements received in the window.
    pub acked: u64,
    /// Records handed to the client per second.
    pub sent_msgs_per_s: f64,
    /// Records acknowledged per second (by acknowledgement time).
    pub acked_msgs_per_s: f64,
    /// Acknowledged payload MB/s.
    pub acked_mb_per_s: f64,
    /// Records read per second, all consumer groups together.
    pub consumed_msgs_per_s: f64,
    /// Payload MB/s read, all consumer groups together.
    pub consumed_mb_per_s: f64,
    /// Failed records (refused or not acknowledged).
    pub errors: u64,
    /// Times the client's queue was full.
    pub queue_full: u64,
    /// Records already due but not yet sent at the end of the window (producers are behind).
    pub late_records: u64,
    /// How late the oldest of them was, microseconds (a stall in progress shows here before
    /// any of its records completes).
    pub oldest_late_us: u64,
    /// The phase's time is up and producers are sending its late records.
    pub draining: bool,
    /// Intended -> handed to the client.
    pub send_delay: Summary,
    /// Handed to the client -> acknowledged.
    pub service: Summary,
    /// Intended -> acknowledged.
    pub corrected: Summary,
    /// Intended -> consumed.
    pub end_to_end: Summary,
}

impl WindowReport {
    /// Summarizes one window of `phase`, from `start_s` to `end_s`.
    pub fn new(
        start_s: f64,
        end_s: f64,
        phase: &Phase,
        requested_msgs_per_s: Option<f64>,
        record_size: u64,
        p: &ProducerStats,
        c: &ConsumerStats,
    ) -> Self {
        let secs = (end_s - start_s).max(1e-9);
        Self {
            start_s,
            end_s,
            phase: phase.id,
            kind: phase.kind,
            step: phase.step.map(|s| s + 1),
            requested_msgs_per_s,
            requested_mb_per_s: requested_msgs_per_s.map(|m| m * record_size as f64 / 1e6),
            sent: p.sent,
            acked: p.acked,
            sent_msgs_per_s: p.sent as f64 / secs,
            acked_msgs_per_s: p.acked as f64 / secs,
            acked_mb_per_s: p.acked as f64 * record_size as f64 / secs / 1e6,
            consumed_msgs_per_s: c.consumed as f64 / secs,
            consumed_mb_per_s: c.consumed_bytes as f64 / secs / 1e6,
            errors: p.error_count(),
            queue_full: p.queue_full,
            late_records: 0,
            oldest_late_us: 0,
            draining: false,
            send_delay: p.send_delay.summary(),
            service: p.service.summary(),
            corrected: p.corrected.summary(),
            end_to_end: c.end_to_end.summary(),
        }
    }
}

/// Counts the runner gathers for a phase beyond its records' stats.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PhaseTotals {
    /// How long the phase ran before any late records were sent, seconds.
    pub duration_s: f64,
    /// Records the schedule asked for (`None` when unthrottled).
    pub requested: Option<u64>,
    /// Records handed to the client (or refused) before the phase's time was up.
    pub sent_on_time: u64,
    /// Acknowledgements received during the phase's time.
    pub acked_during: u64,
}

/// The measured part of one step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepReport {
    /// Step number, 1-based.
    pub step: usize,
    /// The requested rate as written.
    pub rate: Rate,
    /// Requested records per second (`None` when unthrottled).
    pub requested_msgs_per_s: Option<f64>,
    /// Requested payload MB/s.
    pub requested_mb_per_s: Option<f64>,
    /// How long the measured part lasted, seconds.
    pub duration_s: f64,
    /// Records the schedule asked for (`None` when unthrottled).
    pub requested: Option<u64>,
    /// Records handed to the client, on time or late.
    pub sent: u64,
    /// Records handed to the client (or refused) before the step's time was up.
    pub sent_on_time: u64,
    /// Scheduled records never handed to the client (the late ones still unsent when the
    /// flush timeout ran out, or the refused ones).
    pub unsent: u64,
    /// Records of this step acknowledged (possibly after the step ended).
    pub acked: u64,
    /// Acknowledgements received during the step (whichever step the records were sent in).
    pub acked_during: u64,
    /// `sent_on_time / requested`: the stop rule's figure.
    pub sent_ratio: Option<f64>,
    /// Achieved throughput: acknowledgements received during the step per second. Below the
    /// requested rate when the cluster falls behind, even if every record is acknowledged
    /// eventually.
    pub achieved_msgs_per_s: f64,
    /// Achieved payload MB/s (as `achieved_msgs_per_s`).
    pub achieved_mb_per_s: f64,
    /// Records the cluster did not acknowledge, by error.
    pub errors: BTreeMap<String, u64>,
    /// Records the client refused, by error.
    pub send_errors: BTreeMap<String, u64>,
    /// Sent records with neither an acknowledgement nor an error when the run ended.
    pub unacknowledged: u64,
    /// Times the client's queue was full.
    pub queue_full: u64,
    /// Intended -> handed to the client.
    pub send_delay: Summary,
    /// Handed to the client -> acknowledged.
    pub service: Summary,
    /// Intended -> acknowledged.
    pub corrected: Summary,
    /// Records read by consumers (all groups).
    pub consumed: u64,
    /// Intended -> consumed.
    pub end_to_end: Summary,
    /// The stop rule ended the run after this step.
    pub saturated: bool,
}

impl StepReport {
    /// Summarizes the measured `phase` of `workload`; `p` and `c` hold the stats of the
    /// step's own records.
    pub fn new(
        phase: &Phase,
        workload: &Workload,
        t: &PhaseTotals,
        p: &ProducerStats,
        c: &ConsumerStats,
    ) -> Self {
        let size = workload.record_size;
        let requested_msgs_per_s = phase.rate.messages_per_s(size);
        let (duration_s, requested, acked_during) = (t.duration_s, t.requested, t.acked_during);
        let secs = duration_s.max(1e-9);
        let refused: u64 = p.send_errors.values().sum();
        let delivered_errors: u64 = p.errors.values().sum();
        Self {
            step: phase.step.map(|s| s + 1).unwrap_or(0),
            rate: phase.rate,
            requested_msgs_per_s,
            requested_mb_per_s: phase.rate.bytes_per_s(size).map(|b| b / 1e6),
            duration_s,
            requested,
            sent: p.sent,
            sent_on_time: t.sent_on_time,
            unsent: requested
                .map(|r| r.saturating_sub(p.sent))
                .unwrap_or(refused),
            acked: p.acked,
            acked_during,
            sent_ratio: requested
                .filter(|&r| r > 0)
                .map(|r| t.sent_on_time as f64 / r as f64),
            achieved_msgs_per_s: acked_during as f64 / secs,
            achieved_mb_per_s: acked_during as f64 * size as f64 / secs / 1e6,
            errors: p.errors.clone(),
            send_errors: p.send_errors.clone(),
            unacknowledged: p.sent.saturating_sub(p.acked + delivered_errors),
            queue_full: p.queue_full,
            send_delay: p.send_delay.summary(),
            service: p.service.summary(),
            corrected: p.corrected.summary(),
            consumed: c.consumed,
            end_to_end: c.end_to_end.summary(),
            saturated: false,
        }
    }

    /// Failed records of the step, refused or not acknowledged.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum::<u64>() + self.send_errors.values().sum::<u64>()
    }
}

/// How the credit-depletion phase ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DepletionReport {
    /// `depleted` or `timed_out`.
    pub state: DepletionState,
    /// How long it lasted, seconds.
    pub duration_s: f64,
    /// Highest acknowledged throughput seen, MB/s.
    pub peak_mb_per_s: f64,
}

/// One run (one combination of a workload file's lists).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    /// Workload name.
    pub name: String,
    /// The list values that distinguish this run.
    pub labels: Vec<(String, String)>,
    /// The workload as run.
    pub workload: Workload,
    /// Topics used.
    pub topics: Vec<String>,
    /// Start, seconds since the Unix epoch.
    pub started_unix_s: f64,
    /// Length of the run, seconds.
    pub elapsed_s: f64,
    /// The measured steps, in order.
    pub steps: Vec<StepReport>,
    /// Why stepping stopped before the last step, if it did.
    pub stopped_early: Option<String>,
    /// The credit-depletion phase, if any.
    pub depletion: Option<DepletionReport>,
    /// Records sent over the whole run (warm-ups included).
    pub sent: u64,
    /// Records acknowledged over the whole run.
    pub acked: u64,
    /// Failed records over the whole run, by error.
    pub errors: BTreeMap<String, u64>,
    /// Records still unacknowledged at the flush timeout (purged; also counted in `errors`).
    pub unacknowledged: u64,
    /// Records read by consumers over the whole run.
    pub consumed: u64,
    /// Every reporting window, in order.
    pub windows: Vec<WindowReport>,
}

impl RunReport {
    /// The name with the distinguishing list values, e.g. `guide [producers=6]`.
    pub fn title(&self) -> String {
        if self.labels.is_empty() {
            self.name.clone()
        } else {
            let labels: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("{} [{}]", self.name, labels.join(", "))
        }
    }
}

/// Everything `kpilot perf` measured: the JSON document and the source of the HTML report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerfReport {
    /// kpilot's version.
    pub kpilot_version: String,
    /// librdkafka's version.
    pub librdkafka_version: String,
    /// The cluster.
    pub bootstrap: String,
    /// The runs, in order.
    pub runs: Vec<RunReport>,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Formats microseconds as milliseconds for tables: `0.42`, `12.3`, `1534`.
pub fn fmt_ms(us: u64) -> String {
    let v = ms(us);
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The HTML report: a summary across runs (when there are several), then for each run its
/// settings, step table and charts. Self-contained (inline SVG, no scripts).
pub fn html(report: &PerfReport) -> String {
    let mut page = Page::new("kpilot perf report");
    page.paragraph(&format!(
        "Cluster {} - kpilot {} with librdkafka {}. Latency is in milliseconds. \
         Send delay: intended send time to handed to the client. Service time: handed to the \
         client to acknowledged. Corrected latency: intended send time to acknowledged (what a \
         caller producing at this rate would see). End-to-end: intended send time to read by a \
         consumer.",
        report.bootstrap, report.kpilot_version, report.librdkafka_version
    ));
    if report.runs.len() > 1 {
        page.heading("All runs: p99 corrected put latency against requested throughput");
        let mut chart = Chart::new("p99 corrected latency by run", "requested MB/s", "ms");
        for run in &report.runs {
            let points = latency_points(run, |s| s.corrected.p99_us);
            if !points.is_empty() {
                chart = chart.series(Series::line(&run.title(), points));
            }
        }
        page.chart(&chart);
    }
    for run in &report.runs {
        run_section(&mut page, run);
    }
    page.render()
}

fn latency_points(run: &RunReport, f: impl Fn(&StepReport) -> u64) -> Vec<(f64, f64)> {
    run.steps
        .iter()
        .filter_map(|s| {
            s.requested_mb_per_s
                .or(Some(s.achieved_mb_per_s))
                .map(|x| (x, ms(f(s))))
        })
        .collect()
}

fn run_section(page: &mut Page, run: &RunReport) {
    let w = &run.workload;
    page.heading(&run.title());
    page.paragraph(&format!(
        "{} producer thread(s), {} consumer group(s) of {}; topics {} ({} partitions, replication factor {}); \
         records of {} bytes, compressibility {}; acks={}, batch.size={}, linger.ms={}, compression={}, idempotence={}; \
         {} step(s), stop ratio {}; ran {:.0} s.",
        w.producers,
        w.consumer_groups,
        w.consumers_per_group,
        run.topics.join(", "),
        w.partitions,
        w.replication_factor,
        w.record_size,
        w.compressibility,
        w.producer.acks.property(),
        w.producer.batch_size.map(|b| b.to_string()).unwrap_or_else(|| "default".into()),
        w.producer.linger_ms.map(|l| l.to_string()).unwrap_or_else(|| "default".into()),
        w.producer.compression.property(),
        w.producer.idempotence.map(|b| b.to_string()).unwrap_or_else(|| "default".into()),
        w.steps.len(),
        w.stop_ratio,
        run.elapsed_s,
    ));
    if let Some(reason) = &run.stopped_early {
        page.paragraph(&format!("Stopped early: {reason}."));
    }
    if let Some(d) = &run.depletion {
        page.paragraph(&format!(
            "Credit depletion: {:?} after {:.0} s, peak {:.1} MB/s.",
            d.state, d.duration_s, d.peak_mb_per_s
        ));
    }
    let errors: u64 = run.errors.values().sum();
    if errors > 0 || run.unacknowledged > 0 {
        let list: Vec<String> = run
            .errors
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        page.paragraph(&format!(
            "Failed records: {errors} ({}); unacknowledged at the end: {}.",
            list.join(", "),
            run.unacknowledged
        ));
    }
    let rows = run
        .steps
        .iter()
        .map(|s| {
            vec![
                s.step.to_string(),
                s.rate.to_string(),
                s.requested_mb_per_s
                    .map(|v| format!("{v:.2}"))
                    .unwrap_or_else(|| "-".into()),
                format!("{:.2}", s.achieved_mb_per_s),
                format!("{:.0}", s.achieved_msgs_per_s),
                s.sent_ratio
                    .map(|r| format!("{:.2}%", r * 100.0))
                    .unwrap_or_else(|| "-".into()),
                s.error_count().to_string(),
                fmt_ms(s.corrected.p50_us),
                fmt_ms(s.corrected.p99_us),
                fmt_ms(s.corrected.p999_us),
                fmt_ms(s.service.p99_us),
                fmt_ms(s.send_delay.p99_us),
                if w.consumer_groups > 0 {
                    fmt_ms(s.end_to_end.p99_us)
                } else {
                    "-".into()
                },
            ]
        })
        .collect();
    page.table(
        &[
            "step",
            "rate",
            "requested MB/s",
            "achieved MB/s",
            "achieved rec/s",
            "sent/requested",
            "errors",
            "corrected p50",
            "corrected p99",
            "corrected p99.9",
            "service p99",
            "send delay p99",
            "end-to-end p99",
        ],
        rows,
    );
    let throttled = run.steps.iter().any(|s| s.requested_mb_per_s.is_some());
    if throttled {
        let xs: Vec<f64> = run
            .steps
            .iter()
            .filter_map(|s| s.requested_mb_per_s)
            .collect();
        let (lo, hi) = xs
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        let mut chart = Chart::new(
            "Put latency against requested throughput",
            "requested MB/s",
            "ms",
        );
        if lo > 0.0 && hi / lo >= 8.0 {
            chart = chart.log_x();
        }
        let chart = chart
            .series(Series::line(
                "corrected p50",
                latency_points(run, |s| s.corrected.p50_us),
            ))
            .series(Series::line(
                "corrected p99",
                latency_points(run, |s| s.corrected.p99_us),
            ))
            .series(
                Series::line(
                    "service time p99",
                    latency_points(run, |s| s.service.p99_us),
                )
                .dashed(),
            )
            .series(
                Series::line(
                    "send delay p99",
                    latency_points(run, |s| s.send_delay.p99_us),
                )
                .dashed(),
            );
        page.chart(&chart);
    }
    let mut rates =
        Chart::new("Throughput over time", "time", "MB/s").x_format(AxisFormat::Seconds);
    let requested: Vec<(f64, f64)> = run
        .windows
        .iter()
        .filter_map(|x| x.requested_mb_per_s.map(|r| (x.start_s, r)))
        .collect();
    if !requested.is_empty() {
        rates = rates.series(Series::step("requested", requested).dashed());
    }
    rates = rates.series(Series::line(
        "acknowledged",
        run.windows
            .iter()
            .map(|x| (x.end_s, x.acked_mb_per_s))
            .collect(),
    ));
    if w.consumer_groups > 0 {
        let groups = f64::from(w.consumer_groups);
        rates = rates.series(Series::line(
            "consumed per group",
            run.windows
                .iter()
                .map(|x| (x.end_s, x.consumed_mb_per_s / groups))
                .collect(),
        ));
    }
    // One marker where each measured step (or the depletion phase) starts; warm-ups show in
    // the requested line.
    let mut last: Option<(PhaseKind, Option<usize>)> = None;
    for x in &run.windows {
        if last != Some((x.kind, x.step)) {
            match (x.kind, x.step) {
                (PhaseKind::Depletion, _) => rates = rates.marker(x.start_s, "depletion"),
                (PhaseKind::Measure, Some(s)) => {
                    rates = rates.marker(x.start_s, &format!("step {s}"))
                }
                _ => {}
            }
            last = Some((x.kind, x.step));
        }
    }
    page.chart(&rates);
    let window_series = |name: &str, f: fn(&WindowReport) -> u64| {
        Series::line(
            name,
            run.windows.iter().map(|x| (x.end_s, ms(f(x)))).collect(),
        )
    };
    // Percentiles come from acknowledged records only; during a stall nothing is acknowledged,
    // and the age of the oldest record not yet sent shows the stall as it grows.
    let latency = Chart::new("Put latency over time (per window)", "time", "ms")
        .x_format(AxisFormat::Seconds)
        .series(window_series("corrected p99", |x| x.corrected.p99_us))
        .series(window_series("corrected p50", |x| x.corrected.p50_us))
        .series(window_series("service time p99", |x| x.service.p99_us).dashed())
        .series(window_series("send delay p99", |x| x.send_delay.p99_us).dashed())
        .series(window_series("oldest unsent record", |x| x.oldest_late_us).dashed());
    page.chart(&latency);
    if w.consumer_groups > 0 {
        let e2e = Chart::new("End-to-end latency over time", "time", "ms")
            .x_format(AxisFormat::Seconds)
            .series(window_series("end-to-end p99", |x| x.end_to_end.p99_us))
            .series(window_series("end-to-end p50", |x| x.end_to_end.p50_us));
        page.chart(&e2e);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::workload::Step;

    fn sample() -> PerfReport {
        let w = Workload::with_steps(vec![Step {
            rate: Rate::Messages(1000.0),
            warmup: Duration::ZERO,
            duration: Duration::from_secs(10),
        }]);
        let phase = Phase {
            id: 0,
            kind: PhaseKind::Measure,
            step: Some(0),
            rate: Rate::Messages(1000.0),
            duration: Duration::from_secs(10),
        };
        let mut p = ProducerStats::default();
        for i in 0..9_990 {
            p.record_send(10);
            p.record_ack(2_000 + i % 100, 2_010 + i % 100);
        }
        p.record_send(5);
        p.record_error("MessageTimedOut");
        let c = ConsumerStats::default();
        let totals = PhaseTotals {
            duration_s: 10.0,
            requested: Some(10_000),
            sent_on_time: 9_991,
            acked_during: 9_990,
        };
        let step = StepReport::new(&phase, &w, &totals, &p, &c);
        let window = WindowReport::new(0.0, 5.0, &phase, Some(1000.0), w.record_size, &p, &c);
        PerfReport {
            kpilot_version: "0.1.0".into(),
            librdkafka_version: "2.12.1".into(),
            bootstrap: "127.0.0.1:9092".into(),
            runs: vec![RunReport {
                name: "t".into(),
                labels: vec![("producers".into(), "2".into())],
                workload: w,
                topics: vec!["kpilot-perf".into()],
                started_unix_s: 0.0,
                elapsed_s: 10.0,
                steps: vec![step],
                stopped_early: None,
                depletion: None,
                sent: 9_991,
                acked: 9_990,
                errors: BTreeMap::from([("MessageTimedOut".to_string(), 1)]),
                unacknowledged: 0,
                consumed: 0,
                windows: vec![window],
            }],
        }
    }

    #[test]
    fn a_step_reports_rates_ratios_and_unaccounted_records() {
        let r = sample();
        let s = &r.runs[0].steps[0];
        assert_eq!(s.requested, Some(10_000));
        assert_eq!(s.sent, 9_991);
        assert!((s.sent_ratio.unwrap() - 0.9991).abs() < 1e-9);
        assert!((s.achieved_msgs_per_s - 999.0).abs() < 1e-9);
        assert!((s.achieved_mb_per_s - 999.0 * 1024.0 / 1e6).abs() < 1e-9);
        assert_eq!(s.error_count(), 1);
        assert_eq!(s.unacknowledged, 0);
        assert_eq!(s.corrected.count, 9_990);
        let w = &r.runs[0].windows[0];
        assert!((w.acked_msgs_per_s - 1998.0).abs() < 1e-9);
        assert_eq!(w.errors, 1);
    }

    #[test]
    fn json_has_steps_windows_and_workload() {
        let v = serde_json::to_value(sample()).unwrap();
        let run = &v["runs"][0];
        assert_eq!(run["steps"][0]["rate"], "1000msg/s");
        assert_eq!(run["steps"][0]["corrected"]["count"], 9_990);
        assert_eq!(run["windows"][0]["kind"], "measure");
        assert_eq!(run["workload"]["producer"]["acks"], "all");
        assert_eq!(run["errors"]["MessageTimedOut"], 1);
    }

    #[test]
    fn html_is_self_contained_with_charts() {
        let html = html(&sample());
        assert!(html.contains("<svg"));
        assert!(html.contains("Put latency against requested throughput"));
        assert!(html.contains("Throughput over time"));
        assert!(html.contains("t [producers=2]"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
    }

    #[test]
    fn milliseconds_are_formatted_by_magnitude() {
        assert_eq!(fmt_ms(420), "0.42");
        assert_eq!(fmt_ms(12_345), "12.3");
        assert_eq!(fmt_ms(1_534_000), "1534");
    }
}
