//! The self-contained HTML report of a simulation: the results table (policy, reactive
//! baseline, static peak shape, oracle bound), charts of demand, capacity, target and forecast
//! over time with the shape changes marked, cost over time, and the policy's actions with their
//! reasons. Pure: returns the page as a string (inline SVG, no scripts, no external resources).

use kpilot_policy::{Settings, Timestamp};
use kpilot_report::{AxisFormat, Chart, Page, Series};

use crate::compare::Runs;
use crate::engine::{ActionRecord, Minute, Run, RunSummary};

/// What the report says about the run besides the runs themselves.
#[derive(Debug, Clone, Copy)]
pub struct ReportContext<'a> {
    /// What was simulated (scenario description or trace file).
    pub description: &'a str,
    /// Notable moments (seconds, label), marked on the charts.
    pub events: &'a [(f64, String)],
    /// The policy's settings.
    pub settings: &'a Settings,
}

/// Most points per chart series.
const MAX_POINTS: usize = 2000;

/// Renders the report.
pub fn render(runs: &Runs, ctx: &ReportContext<'_>) -> String {
    let c = &runs.comparison;
    let mut page = Page::new(&format!("kpilot simulate: {}", c.origin));
    page.paragraph(ctx.description);
    let s = ctx.settings;
    page.paragraph(&format!(
        "{} minutes ({:.1} days), peak {:.0} MB/s, mean {:.0} MB/s. Every run starts on the static peak shape {}{}. Policy settings: target utilization {:.0}%, safety margin at least {:.0}%, horizon {}, cooldown {}, decisions every {}, broker restart {}, reassignment throttle {} per broker.",
        c.minutes,
        c.minutes as f64 / 1440.0,
        c.peak_mb_per_s,
        c.mean_mb_per_s,
        c.static_shape,
        c.volume_gb
            .map(|gb| format!(" ({gb:.0} GB volumes)"))
            .unwrap_or_default(),
        s.target_utilization * 100.0,
        s.forecast.safety_margin * 100.0,
        s.horizon,
        s.cooldown,
        s.decision_interval,
        s.transition.restart,
        s.transition.max_move_rate_per_broker,
    ));

    page.heading("Results");
    let row = |r: &RunSummary, savings: f64| {
        vec![
            r.controller.to_string(),
            format!("{:.2}", r.cost_usd),
            format!("{:.1}%", savings * 100.0),
            format!("{:.2}", r.instance_cost_usd),
            r.minutes_over_target.to_string(),
            format!(
                "{:.3}%",
                100.0 * r.minutes_over_target as f64 / r.minutes.max(1) as f64
            ),
            r.minutes_over_sustained.to_string(),
            r.minutes_unserved.to_string(),
            format!("{:.1}", r.unserved_gb),
            r.scaling_actions.to_string(),
            r.transition_minutes.to_string(),
        ]
    };
    let mut rows = vec![
        row(&c.policy, c.savings_ratio),
        row(&c.reactive, c.reactive_savings_ratio),
        row(&c.static_peak, 0.0),
    ];
    rows.push(vec![
        "oracle (bound)".to_string(),
        format!("{:.2}", c.oracle_cost_usd),
        format!("{:.1}%", c.oracle_savings_ratio * 100.0),
        "-".into(),
        "0".into(),
        "0.000%".into(),
        "0".into(),
        "0".into(),
        "0.0".into(),
        "-".into(),
        "-".into(),
    ]);
    page.table(
        &[
            "run",
            "cost USD",
            "savings",
            "instances USD",
            "min over target",
            "share",
            "min over sustained",
            "min unserved",
            "unserved GB",
            "actions",
            "min in transition",
        ],
        rows,
    );
    page.paragraph(
        "Over target: demand above the target utilization of what the serving brokers sustain (one broker down and reserved transfers included during transitions). Over sustained: above the sustained (baseline) limit; burst credits may still serve it. Unserved: above what sustained capacity plus the remaining burst credits can serve that minute. The oracle is a bound, not a policy: each minute the cheapest shape that holds that minute's demand and data, with free, instant changes.",
    );

    page.heading("Policy: demand, capacity, target and forecast");
    page.chart(&capacity_chart("policy", &runs.policy, ctx.events, true));
    page.heading("Reactive baseline: demand, capacity and target");
    page.chart(&capacity_chart(
        "reactive",
        &runs.reactive,
        ctx.events,
        false,
    ));

    page.heading("Cost");
    let bucket = bucket_size(runs.policy.minutes.len());
    let rate = |r: &Run| downsample(&r.minutes, bucket, |m| f64::from(m.usd_per_hour), Agg::Mean);
    page.chart(
        &Chart::new("Cost rate", "time", "USD per hour")
            .x_format(AxisFormat::Seconds)
            .series(Series::step("policy", rate(&runs.policy)))
            .series(Series::step("reactive", rate(&runs.reactive)))
            .series(Series::step("static peak", rate(&runs.static_peak)).dashed()),
    );
    let cumulative = |r: &Run| {
        let mut total = 0.0;
        let pts: Vec<(f64, f64)> = r
            .minutes
            .iter()
            .map(|m| {
                total += f64::from(m.usd_per_hour) / 60.0;
                (m.t, total)
            })
            .collect();
        thin(pts, bucket)
    };
    page.chart(
        &Chart::new("Cumulative cost", "time", "USD")
            .x_format(AxisFormat::Seconds)
            .series(Series::line("policy", cumulative(&runs.policy)))
            .series(Series::line("reactive", cumulative(&runs.reactive)))
            .series(Series::line("static peak", cumulative(&runs.static_peak)).dashed()),
    );

    page.heading("Policy actions");
    let actions: Vec<Vec<String>> = runs
        .policy
        .actions
        .iter()
        .map(|a| {
            let mut cells = action_cells(a).to_vec();
            cells.push(a.reasons.join("; "));
            cells
        })
        .collect();
    if actions.is_empty() {
        page.paragraph(NO_ACTIONS);
    } else {
        let mut columns = ACTION_COLUMNS.to_vec();
        columns.push("why");
        page.table(&columns, actions);
    }
    page.render()
}

/// What the action table says when the policy made no move.
pub const NO_ACTIONS: &str = "The policy kept the initial shape throughout.";

/// The columns of [`action_cells`], as the report's action table (and `kpilot simulate
/// --actions`) heads them; both add a last column with the reasons.
pub const ACTION_COLUMNS: [&str; 6] = ["start", "end", "change", "how", "est. min", "took min"];

/// One action as the report's action table (and `kpilot simulate --actions`) shows it: when
/// it started and ended (as the run prints times), the change, how, and the minutes it was
/// estimated to take and took (`-` while it runs at the end of the run).
pub fn action_cells(a: &ActionRecord) -> [String; 6] {
    [
        Timestamp::from_secs(a.started).to_string(),
        a.finished.map_or("(running)".to_string(), |f| {
            Timestamp::from_secs(f).to_string()
        }),
        change(&a.from, &a.to),
        a.mechanism.to_string(),
        format!("{:.0}", a.estimated_secs / 60.0),
        a.finished.map_or("-".to_string(), |f| {
            format!("{:.0}", (f - a.started) / 60.0)
        }),
    ]
}

/// `from -> to`, the storage written once when the move keeps it: "3 x m7g.2xlarge -> 3 x
/// m7g.4xlarge, gp3 2800 GB, 524 MB/s".
fn change(from: &str, to: &str) -> String {
    match (from.split_once(", "), to.split_once(", ")) {
        (Some((from_head, from_rest)), Some((_, to_rest))) if from_rest == to_rest => {
            format!("{from_head} -> {to}")
        }
        _ => format!("{from} -> {to}"),
    }
}

fn capacity_chart(name: &str, run: &Run, events: &[(f64, String)], forecast: bool) -> Chart {
    let bucket = bucket_size(run.minutes.len());
    let mut chart = Chart::new(&format!("{name}: ingress"), "time", "MB/s")
        .x_format(AxisFormat::Seconds)
        .size(960, 360)
        .series(Series::line(
            "demand",
            downsample(&run.minutes, bucket, |m| f64::from(m.demand), Agg::Max),
        ))
        .series(Series::step(
            "sustained limit",
            downsample(&run.minutes, bucket, |m| f64::from(m.sustained), Agg::Min),
        ))
        .series(
            Series::step(
                "target",
                downsample(&run.minutes, bucket, |m| f64::from(m.target), Agg::Min),
            )
            .dashed(),
        );
    if forecast {
        chart = chart.series(
            Series::line(
                "forecast (with margin)",
                downsample(&run.minutes, bucket, |m| f64::from(m.forecast), Agg::Mean),
            )
            .dashed(),
        );
    }
    for a in &run.actions {
        // "3 x m7g.4xlarge, gp3 ..." -> "3x4xlarge"
        let head = a.to.split(',').next().unwrap_or(&a.to);
        let label = match head.split_once(" x ") {
            Some((n, instance)) => {
                format!(
                    "{n}x{}",
                    instance.split_once('.').map_or(instance, |(_, size)| size)
                )
            }
            None => head.to_string(),
        };
        chart = chart.marker(a.started, &label);
    }
    for (t, label) in events {
        chart = chart.marker(*t, label);
    }
    chart
}

#[derive(Clone, Copy)]
enum Agg {
    Max,
    Min,
    Mean,
}

fn bucket_size(minutes: usize) -> usize {
    minutes.div_ceil(MAX_POINTS).max(1)
}

/// One point per bucket of minutes (NaN values skipped).
fn downsample(
    minutes: &[Minute],
    bucket: usize,
    f: impl Fn(&Minute) -> f64,
    agg: Agg,
) -> Vec<(f64, f64)> {
    minutes
        .chunks(bucket)
        .filter_map(|chunk| {
            let vals: Vec<f64> = chunk.iter().map(&f).filter(|v| v.is_finite()).collect();
            if vals.is_empty() {
                return None;
            }
            let v = match agg {
                Agg::Max => vals.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                Agg::Min => vals.iter().copied().fold(f64::INFINITY, f64::min),
                Agg::Mean => vals.iter().sum::<f64>() / vals.len() as f64,
            };
            Some((chunk[0].t, v))
        })
        .collect()
}

fn thin(points: Vec<(f64, f64)>, bucket: usize) -> Vec<(f64, f64)> {
    let last = points.last().copied();
    let mut out: Vec<(f64, f64)> = points.into_iter().step_by(bucket.max(1)).collect();
    if let (Some(l), Some(o)) = (last, out.last())
        && l.0 > o.0
    {
        out.push(l);
    }
    out
}

#[cfg(test)]
mod tests {
    use kpilot_policy::Mechanism;

    use super::*;

    /// The action table's cells, shared by the report and `kpilot simulate --actions`: times
    /// as the run prints them, the storage written once when the move keeps it.
    #[test]
    fn action_cells_as_both_tables_show_them() {
        let a = ActionRecord {
            started: 86_400.0 + 9.0 * 3600.0 + 25.0 * 60.0,
            finished: Some(86_400.0 + 9.0 * 3600.0 + 39.0 * 60.0),
            from: "3 x m7g.2xlarge, gp3 2800 GB, 524 MB/s".into(),
            to: "3 x m7g.4xlarge, gp3 2800 GB, 524 MB/s".into(),
            mechanism: Mechanism::VerticalRoll,
            estimated_secs: 16.4 * 60.0,
            reasons: vec!["why".into()],
            why: String::new(),
        };
        assert_eq!(
            action_cells(&a),
            [
                "day 1 09:25",
                "day 1 09:39",
                "3 x m7g.2xlarge -> 3 x m7g.4xlarge, gp3 2800 GB, 524 MB/s",
                "vertical-roll",
                "16",
                "14",
            ]
        );
        // Other storage, and still running at the end.
        let a = ActionRecord {
            to: "6 x m7g.large, gp3 1400 GB, 524 MB/s".into(),
            finished: None,
            ..a
        };
        let cells = action_cells(&a);
        assert_eq!(
            cells[2],
            "3 x m7g.2xlarge, gp3 2800 GB, 524 MB/s -> 6 x m7g.large, gp3 1400 GB, 524 MB/s"
        );
        assert_eq!((cells[1].as_str(), cells[5].as_str()), ("(running)", "-"));
    }
}
