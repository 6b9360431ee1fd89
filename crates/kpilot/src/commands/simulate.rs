//! `kpilot simulate`: replays days of demand, minute by minute, through the predictive
//! autoscaling policy and two baselines (the cheapest static shape for the peak, a reactive
//! threshold autoscaler), prints the comparison and writes a self-contained HTML report.
//! I/O: reads a `--trace` file (and a `--catalog` file), writes the report, prints.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, anyhow};
use clap::Args as ClapArgs;
use kpilot_capacity::StorageKind;
use kpilot_policy::{Constraints, Decision, ReactiveSettings, Reason, Settings, Timestamp};
use kpilot_sim::report::{ACTION_COLUMNS, NO_ACTIONS, ReportContext, action_cells, render};
use kpilot_sim::{
    ActionRecord, ClusterSetup, Comparison, Demand, RunSummary, SCENARIOS, StorageSetup,
    compare_explaining,
};
use kpilot_units::{ByteSize, Span, Throughput};
use serde::Serialize;

use super::common::{
    CatalogArgs, considered_table, fraction, name_list, pct, unused_storage_flag, usd,
};
use crate::output::{Table, check_output_path, print_json, print_text, usage};

/// Replay days of demand through the autoscaling policy and compare it with baselines.
///
/// With no arguments, runs the built-in 7-day scenario: a weekday curve from 75 to 300 MB/s
/// (peak-to-trough 4), quieter weekends, noise, and one 1.5x spike on Friday 10:00 that no
/// history foresees. The same minute-by-minute cluster model (instance types, network and
/// EBS-link credit buckets, rolls with one broker down, catch-up, throttled data movement) runs
/// three controllers from the same start (the static peak shape): the predictive policy (the
/// very decision code of the operator), the cheapest static shape for the peak, and a reactive
/// threshold autoscaler. Prints cost, savings and violations; writes an HTML report with
/// charts.
///
/// Definitions: "over target" = demand above the target utilization of what the serving
/// brokers sustain; "over sustained" = above their baseline limit (burst credits may still
/// serve it); "over capacity" (unserved) = above what baseline plus the remaining burst credits
/// can serve that minute.
///
/// Examples:
///   kpilot simulate
///   kpilot simulate --scenario weekly --days 30 --no-report
///   kpilot simulate --trace load.csv --families m7g,c7g --json
///   kpilot simulate --no-report --actions
///   kpilot simulate --storage local-nvme --families im4gn --explain "day 1 10:30"
///
/// Trace format (CSV): a header `t_seconds,ingress_mb_per_s` (optionally
/// `,egress_mb_per_s`), then one row per point; `t_seconds` counts from a midnight, strictly
/// increasing; a row's rate holds until the next row. An empty egress cell is unknown
/// there: filled from the rows around it.
#[derive(Debug, ClapArgs)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Built-in scenario to run: weekly (default), steady or launch. See --list-scenarios.
    #[arg(long, value_name = "NAME", conflicts_with = "trace")]
    pub scenario: Option<String>,

    /// A CSV demand trace to replay instead of a scenario, e.g. load.csv.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,

    /// Length of the built-in scenario in days, 1 to 366 (its weekly pattern repeats), e.g. 30.
    #[arg(long, value_name = "N", conflicts_with = "trace")]
    pub days: Option<u32>,

    /// How much demand history the controllers know when the run starts, as the operator
    /// reads it from Prometheus at its first reconcile (`spec.metrics.history`). For a scenario:
    /// that much of the same pattern before its first day (default 28d; 0 starts cold, with
    /// the reactive forecast for the first day; at most 366d). For a trace: its first part
    /// (default 0); the rest is replayed and scored. E.g. 14d.
    #[arg(long, value_name = "DURATION")]
    pub history: Option<Span>,

    /// List the built-in scenarios and exit (with --json: a JSON array of name, description
    /// and default days).
    #[arg(long)]
    pub list_scenarios: bool,

    /// Fraction of the sustained limit to run at, at most.
    #[arg(
        long,
        allow_negative_numbers = true,
        default_value_t = 0.8,
        value_name = "FRACTION",
        value_parser = fraction
    )]
    pub target_utilization: f64,

    /// Smallest margin added to the forecast, e.g. 0.1 for +10% (it grows with the recent
    /// forecast error).
    #[arg(
        long,
        allow_negative_numbers = true,
        default_value_t = 0.1,
        value_name = "FRACTION",
        value_parser = fraction
    )]
    pub safety_margin: f64,

    /// How long a new shape must hold the forecast after its transition and the cooldown,
    /// e.g. 1h (at most 7d).
    #[arg(long, default_value = "1h", value_name = "DURATION")]
    pub horizon: Span,

    /// Time after a change before the policy may move to a cheaper shape, e.g. 30m (at most
    /// 7d).
    #[arg(long, default_value = "30m", value_name = "DURATION")]
    pub cooldown: Span,

    /// Smallest saving (fraction of the hourly cost) worth a move to a cheaper shape.
    #[arg(
        long,
        allow_negative_numbers = true,
        default_value_t = 0.05,
        value_name = "FRACTION",
        value_parser = fraction
    )]
    pub hysteresis: f64,

    /// A cheaper shape must hold the forecast plus this fraction (0.1 = 10% room), so the next
    /// forecast's wobble does not send the cluster straight back up.
    #[arg(
        long,
        allow_negative_numbers = true,
        default_value_t = 0.1,
        value_name = "FRACTION",
        value_parser = fraction
    )]
    pub down_headroom: f64,

    /// How often the controllers decide, e.g. 5m (at most 1d).
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    pub decision_interval: Span,

    /// Longest transition the policy starts, e.g. 2h (at most 7d).
    #[arg(long, default_value = "2h", value_name = "DURATION")]
    pub max_transition: Span,

    /// How long the policy expects a broker to be down in a roll before it catches up (new
    /// node, volume attach, start; at most 1d), e.g. 3m: until its first roll has measured one (see
    /// --no-restart-learning), and throughout for the reactive baseline.
    #[arg(long, default_value = "3m", value_name = "DURATION")]
    pub restart_time: Span,

    /// How long the simulated brokers really take to restart, when it differs from
    /// --restart-time, e.g. 12m: slow node launches or long log recovery the policy does not
    /// know about until it has rolled.
    #[arg(long, value_name = "DURATION")]
    pub actual_restart_time: Option<Span>,

    /// Plan every roll with --restart-time instead of the restarts the policy measured in
    /// its own earlier rolls (the operator with spec.policy.restartTime set).
    #[arg(long)]
    pub no_restart_learning: bool,

    /// Replication throttle per receiving broker for reassignments and rebuilds, e.g.
    /// 100MB/s.
    #[arg(long, default_value = "100MB/s", value_name = "RATE")]
    pub move_throttle: Throughput,

    /// The rate each receiving broker really reaches in reassignments and rebuilds, when it is
    /// below --move-throttle, e.g. 40MB/s: replica fetchers, disks or latency the policy does
    /// not know about until it has moved data.
    #[arg(long, value_name = "RATE")]
    pub actual_move_rate: Option<Throughput>,

    /// Plan every reassignment and rebuild at --move-throttle instead of the share of it the
    /// policy's own earlier moves reached.
    #[arg(long)]
    pub no_move_learning: bool,

    /// Replication factor (default: the scenario's, 3).
    #[arg(long, short = 'r', value_name = "N")]
    pub replication_factor: Option<u16>,

    /// min.insync.replicas (default: the scenario's, 2).
    #[arg(long, value_name = "N")]
    pub min_insync_replicas: Option<u16>,

    /// Consumer groups reading from the head of the log (default: 2). Not with a trace that
    /// has an egress column: its egress / ingress sets the fan-out minute by minute.
    #[arg(long, short = 'c', value_name = "N")]
    pub consumer_groups: Option<u32>,

    /// Allowed instance families, comma separated (default: m7g), e.g. m7g,c7g.
    #[arg(long, value_delimiter = ',', value_name = "FAMILY,...")]
    pub families: Vec<String>,

    /// Allowed instance sizes, comma separated (default: all), e.g. xlarge,2xlarge,4xlarge.
    #[arg(long, value_delimiter = ',', value_name = "SIZE,...")]
    pub sizes: Vec<String>,

    /// Fewest brokers (default: 3).
    #[arg(long, value_name = "N")]
    pub min_brokers: Option<u32>,

    /// Most brokers (default: 12; at most 1000).
    #[arg(long, value_name = "N")]
    pub max_brokers: Option<u32>,

    /// Availability zones; broker counts are multiples of it (default: 3).
    #[arg(long, value_name = "N")]
    pub zones: Option<u32>,

    /// Storage kind: gp3 (default), st1, io2 or local-nvme.
    #[arg(long, value_name = "KIND")]
    pub storage: Option<StorageKind>,

    /// Provisioned throughput per volume (gp3, io2), e.g. 500MiB/s (default: 500MiB/s).
    #[arg(long, value_name = "RATE")]
    pub storage_throughput: Option<Throughput>,

    /// Volume size per broker, e.g. 4TB (default: the local retention at the peak, on the
    /// fewest brokers, 80% full).
    #[arg(long, value_name = "SIZE")]
    pub volume_size: Option<ByteSize>,

    /// How long data stays on the brokers' disks (with tiered storage, the local retention),
    /// e.g. 2h or 24h (default: 2h; at most 3650d).
    #[arg(long, value_name = "DURATION")]
    pub retention: Option<Span>,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub catalog: CatalogArgs,

    /// Where to write the HTML report.
    #[arg(long, default_value = "kpilot-simulation.html", value_name = "FILE")]
    pub report: PathBuf,

    /// Do not write the HTML report.
    #[arg(long, conflicts_with = "report")]
    pub no_report: bool,

    /// Print the policy's actions after the summary: when each started and ended, the change,
    /// how, the minutes it was estimated to take and took, and the reason it moved. (With
    /// --json they are always in `actions`.)
    #[arg(long, conflicts_with = "json")]
    pub actions: bool,

    /// Explain the policy's decision at a time of the run: the first decision it made at or
    /// after WHEN, with its reasons and every shape it considered (and why each was or was not
    /// taken). WHEN is written as --actions prints the actions' times: "day 1 10:30" (days
    /// count from 0) or, for a trace in Unix seconds, "2026-11-22 14:05 UTC". With --json, in
    /// the `explained` field.
    #[arg(long, value_name = "WHEN", value_parser = parse_when)]
    pub explain: Option<Timestamp>,

    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Parses `--explain`: a time as the run's output prints it.
fn parse_when(s: &str) -> Result<Timestamp, String> {
    s.parse::<Timestamp>().map_err(|e| e.to_string())
}

/// The JSON document `kpilot simulate --json` prints.
#[derive(Debug, Serialize)]
struct Report<'a> {
    origin: &'a str,
    minutes: usize,
    days: f64,
    /// Days of demand history the controllers knew at the start.
    history_days: f64,
    peak_mb_per_s: f64,
    mean_mb_per_s: f64,
    static_shape: &'a str,
    /// The policy's total cost (instances and volumes).
    cost_usd: f64,
    static_peak_cost_usd: f64,
    reactive_cost_usd: f64,
    oracle_cost_usd: f64,
    savings_ratio: f64,
    instance_savings_ratio: f64,
    reactive_savings_ratio: f64,
    oracle_savings_ratio: f64,
    /// The policy's minutes with demand above the target.
    minutes_over_target: usize,
    /// The policy's minutes with demand above the sustained limit.
    minutes_over_sustained: usize,
    /// The policy's minutes with demand above what sustained capacity plus burst credits
    /// could serve (unserved demand).
    minutes_over_capacity: usize,
    unserved_gb: f64,
    scaling_actions: usize,
    policy: &'a RunSummary,
    reactive: &'a RunSummary,
    static_peak: &'a RunSummary,
    actions: &'a [ActionRecord],
    setup: SetupOut<'a>,
    settings: &'a Settings,
    report: Option<String>,
    elapsed_secs: f64,
    /// The decision asked for with --explain.
    #[serde(skip_serializing_if = "Option::is_none")]
    explained: Option<&'a Decision>,
}

/// `setup` as `kpilot simulate --json` prints it: the cluster setup, with the volume size and
/// the consumer fan-out the run used.
#[derive(Debug, Serialize)]
struct SetupOut<'a> {
    replication_factor: u16,
    min_insync_replicas: u16,
    /// The consumer fan-out (consumer groups reading from the head of the log); `None` when
    /// the trace's egress column set it, minute by minute.
    consumer_fanout: Option<f64>,
    /// Where the fan-out came from: `consumer-groups` or `trace-egress`.
    consumer_fanout_source: &'static str,
    /// The volume size used (`None` with local NVMe, which comes with the instance).
    storage: StorageSetup,
    retention: Span,
    constraints: &'a Constraints,
    restart: Option<Span>,
    learn_restart: bool,
    move_rate: Option<Throughput>,
    learn_moves: bool,
}

impl<'a> SetupOut<'a> {
    /// `setup` as the run used it: with volumes of `volume_gb` (`None`: local NVMe), and
    /// the fan-out from the trace's egress when `egress`.
    fn new(setup: &'a ClusterSetup, volume_gb: Option<f64>, egress: bool) -> Self {
        // Every field named, so that a new one is not left out of the JSON.
        let ClusterSetup {
            replication_factor,
            min_insync_replicas,
            consumer_fanout,
            storage,
            retention,
            constraints,
            restart,
            learn_restart,
            move_rate,
            learn_moves,
        } = setup;
        Self {
            replication_factor: *replication_factor,
            min_insync_replicas: *min_insync_replicas,
            consumer_fanout: (!egress).then_some(*consumer_fanout),
            consumer_fanout_source: if egress {
                "trace-egress"
            } else {
                "consumer-groups"
            },
            storage: StorageSetup {
                volume_gb,
                ..storage.clone()
            },
            retention: *retention,
            constraints,
            restart: *restart,
            learn_restart: *learn_restart,
            move_rate: *move_rate,
            learn_moves: *learn_moves,
        }
    }
}

/// Runs `kpilot simulate`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.list_scenarios {
        return list_scenarios(args.json);
    }
    let catalog = args.catalog.load()?;
    if !args.no_report {
        check_output_path("--report", &args.report)?;
    }
    let (demand, mut setup, description, events) = match &args.trace {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read trace file {}", path.display()))
                .map_err(usage)?;
            let demand = kpilot_sim::parse(&text, &path.display().to_string())
                .and_then(|d| d.split_history(args.history.unwrap_or(Span::ZERO)))
                .map_err(usage)?;
            let description = match egress_fanout(&demand) {
                None => format!("Trace {}.", path.display()),
                Some(range) => {
                    if let Some(c) = args.consumer_groups {
                        return Err(usage(anyhow!(
                            "--consumer-groups {c} is not used with --trace {}: its egress_mb_per_s column sets the consumer fan-out minute by minute (egress / ingress); drop --consumer-groups, or drop the egress column to simulate {c} consumer groups",
                            path.display()
                        )));
                    }
                    format!(
                        "Trace {}. Its egress column sets the consumer fan-out minute by minute (egress / ingress: {range}).",
                        path.display()
                    )
                }
            };
            (demand, kpilot_sim::default_setup(), description, Vec::new())
        }
        None => {
            let name = args.scenario.as_deref().unwrap_or("weekly");
            let history = args.history.unwrap_or(kpilot_sim::DEFAULT_HISTORY);
            let s = kpilot_sim::builtin(name, args.days, history).map_err(usage)?;
            let description = format!("Scenario {}: {}.", s.name, s.description);
            (s.demand, s.setup, description, s.events)
        }
    };
    apply_overrides(&args, &mut setup)?;
    if let Some(r) = setup.move_rate
        && r.bytes_per_s() <= 0.0
    {
        return Err(usage(anyhow!(
            "--actual-move-rate {r} must be above 0: moves that never progress cannot be simulated"
        )));
    }
    // The engine keeps the retention's worth of minutes in memory.
    if setup.retention.hours() > 3650.0 * 24.0 {
        return Err(usage(anyhow!(
            "--retention {} is too long: at most 3650d (10 years) of local retention can be \
             simulated",
            setup.retention
        )));
    }
    let settings = Settings {
        target_utilization: args.target_utilization,
        horizon: args.horizon,
        cooldown: args.cooldown,
        hysteresis: args.hysteresis,
        down_headroom: args.down_headroom,
        decision_interval: args.decision_interval,
        max_transition: args.max_transition,
        forecast: kpilot_policy::ForecastSettings {
            safety_margin: args.safety_margin,
            ..Default::default()
        },
        transition: kpilot_policy::TransitionSettings {
            restart: args.restart_time,
            max_move_rate_per_broker: args.move_throttle,
            ..Default::default()
        },
        ..Settings::default()
    };
    settings.validate().map_err(usage)?;
    let workload = kpilot_capacity::Workload::new(
        setup.replication_factor,
        setup.min_insync_replicas,
        setup.consumer_fanout,
        settings.target_utilization,
    )
    .map_err(usage)?;
    setup
        .constraints
        .validate(&catalog, &workload)
        .map_err(usage)?;
    let reactive = ReactiveSettings {
        scale_up_above: settings.target_utilization,
        ..ReactiveSettings::default()
    };

    let restarts = match (setup.restart, setup.learn_restart) {
        (Some(actual), true) => format!(
            " The brokers take {actual} to restart in a roll; the policy assumes {} until it has measured its own rolls, then plans with what it measured.",
            settings.transition.restart
        ),
        (Some(actual), false) => format!(
            " The brokers take {actual} to restart in a roll; the policy plans with {} throughout.",
            settings.transition.restart
        ),
        (None, _) => String::new(),
    };
    let moves = match (setup.move_rate, setup.learn_moves) {
        (Some(actual), true) => format!(
            " Each receiving broker reaches {actual} in reassignments and rebuilds; the policy plans with the {} throttle until it has measured its own moves, then with the share of it they reached.",
            settings.transition.max_move_rate_per_broker
        ),
        (Some(actual), false) => format!(
            " Each receiving broker reaches {actual} in reassignments and rebuilds; the policy plans with the {} throttle throughout.",
            settings.transition.max_move_rate_per_broker
        ),
        (None, _) => String::new(),
    };
    let description = format!("{description}{restarts}{moves}");
    let start = Timestamp::from_secs(demand.start_secs);
    let end = start + Span::from_minutes(demand.minutes() as f64);
    if let Some(at) = args.explain
        && (at < start || at >= end)
    {
        return Err(usage(anyhow!(
            "--explain {at} is outside the run, which goes from {start} to {end}; pick a time within it"
        )));
    }
    let started = Instant::now();
    let runs = compare_explaining(
        &demand,
        &catalog,
        &setup,
        &settings,
        &reactive,
        args.explain,
    )
    .map_err(|e| match e {
        // Settings that cannot work whatever the demand: the user's to change (exit 2).
        kpilot_sim::SimError::NoReplicaToSpare { .. }
        | kpilot_sim::SimError::NoStaticShape { .. }
        | kpilot_sim::SimError::Storage(_)
        | kpilot_sim::SimError::Workload(_) => usage(e),
        e => anyhow::Error::new(e).context("the simulation failed"),
    })?;
    let elapsed = started.elapsed().as_secs_f64();

    let report_path = if args.no_report {
        None
    } else {
        let description = match runs.comparison.history_minutes {
            0 => format!("{description} The controllers start cold, with no history."),
            m => format!(
                "{description} The controllers start with {:.1} days of history, as the operator reads it from Prometheus.",
                m as f64 / 1440.0
            ),
        };
        let html = render(
            &runs,
            &ReportContext {
                description: &description,
                events: &events,
                settings: &settings,
            },
        );
        std::fs::write(&args.report, html)
            .with_context(|| format!("cannot write the report to {}", args.report.display()))?;
        Some(args.report.display().to_string())
    };
    let c = &runs.comparison;
    if args.json {
        let mut report = json_report(
            c,
            &runs.policy.actions,
            SetupOut::new(&setup, c.volume_gb, demand.egress.is_some()),
            &settings,
            report_path,
            elapsed,
        );
        report.explained = runs.policy.explained.as_ref();
        print_json(&report)
    } else {
        print!(
            "{}",
            render_text(c, &description, report_path.as_deref(), elapsed)
        );
        if args.actions {
            print!("{}", render_actions(&runs.policy.actions));
        }
        if let Some(at) = args.explain {
            print!(
                "{}",
                render_explained(
                    at,
                    runs.policy.explained.as_ref(),
                    &runs.policy.actions,
                    end,
                    settings.decision_interval,
                )
            );
        }
        Ok(())
    }
}

/// One built-in scenario as `kpilot simulate --list-scenarios --json` prints it.
#[derive(Debug, Serialize)]
struct ScenarioOut {
    name: &'static str,
    description: &'static str,
    default_days: u32,
}

/// `--list-scenarios`: a table, or with `json` a JSON array of the same.
fn list_scenarios(json: bool) -> anyhow::Result<()> {
    if json {
        let list: Vec<ScenarioOut> = SCENARIOS
            .iter()
            .map(|&(name, description)| ScenarioOut {
                name,
                description,
                default_days: kpilot_sim::DEFAULT_DAYS,
            })
            .collect();
        return print_json(&list);
    }
    let mut t = Table::new(["scenario", "description"]);
    for (name, description) in SCENARIOS {
        t.row([*name, *description]);
    }
    print_text(&t.render())
}

/// Refuses the storage flags the simulated storage does not use: a volume's throughput or
/// size on local NVMe, a provisioned throughput on st1 (which follows the size).
fn check_storage_flags(args: &Args, kind: StorageKind) -> anyhow::Result<()> {
    // Only an explicit --storage is local NVMe or st1: the default is gp3.
    let storage = format!("--storage {kind}");
    match kind {
        StorageKind::LocalNvme => {
            let why = format!("{storage} puts the data on the instances' local NVMe");
            let instead = "drop it, or pass --storage gp3 to simulate gp3 volumes";
            if args.storage_throughput.is_some() {
                return Err(unused_storage_flag(
                    "--storage-throughput",
                    "a network volume's throughput",
                    &why,
                    instead,
                ));
            }
            if args.volume_size.is_some() {
                return Err(unused_storage_flag(
                    "--volume-size",
                    "a network volume's size",
                    &format!("{why}, whose size the instance type fixes"),
                    instead,
                ));
            }
        }
        StorageKind::St1 if args.storage_throughput.is_some() => {
            return Err(unused_storage_flag(
                "--storage-throughput",
                "a gp3 or io2 volume's provisioned throughput",
                "--storage st1 is a volume whose throughput follows its size",
                "drop it, and give the size with --volume-size, or pass --storage gp3",
            ));
        }
        _ => {}
    }
    Ok(())
}

fn apply_overrides(args: &Args, setup: &mut ClusterSetup) -> anyhow::Result<()> {
    if let Some(t) = args.actual_restart_time {
        setup.restart = Some(t);
    }
    if args.no_restart_learning {
        setup.learn_restart = false;
    }
    if let Some(r) = args.actual_move_rate {
        setup.move_rate = Some(r);
    }
    if args.no_move_learning {
        setup.learn_moves = false;
    }
    if let Some(r) = args.replication_factor {
        setup.replication_factor = r;
        setup.min_insync_replicas = kpilot_capacity::Workload::default_min_isr(r);
    }
    if let Some(m) = args.min_insync_replicas {
        setup.min_insync_replicas = m;
    }
    if let Some(c) = args.consumer_groups {
        setup.consumer_fanout = f64::from(c);
    }
    if !args.families.is_empty() {
        setup.constraints.families = name_list("--families", "family", &args.families)?;
    }
    if !args.sizes.is_empty() {
        setup.constraints.sizes = name_list("--sizes", "size", &args.sizes)?;
    }
    if let Some(n) = args.min_brokers {
        setup.constraints.min_brokers = n;
    }
    if let Some(n) = args.max_brokers {
        setup.constraints.max_brokers = n;
    }
    if let Some(z) = args.zones {
        setup.constraints.zones = z;
    }
    if let Some(k) = args.storage {
        setup.storage.kind = k;
    }
    if let Some(t) = args.storage_throughput {
        setup.storage.throughput = Some(t);
    }
    if let Some(v) = args.volume_size {
        setup.storage.volume_gb = Some(v.gb());
    }
    if let Some(r) = args.retention {
        setup.retention = r;
    }
    check_storage_flags(args, setup.storage.kind)
}

fn json_report<'a>(
    c: &'a Comparison,
    actions: &'a [ActionRecord],
    setup: SetupOut<'a>,
    settings: &'a Settings,
    report: Option<String>,
    elapsed_secs: f64,
) -> Report<'a> {
    Report {
        origin: &c.origin,
        minutes: c.minutes,
        days: c.minutes as f64 / 1440.0,
        history_days: c.history_minutes as f64 / 1440.0,
        peak_mb_per_s: c.peak_mb_per_s,
        mean_mb_per_s: c.mean_mb_per_s,
        static_shape: &c.static_shape,
        cost_usd: c.policy.cost_usd,
        static_peak_cost_usd: c.static_peak.cost_usd,
        reactive_cost_usd: c.reactive.cost_usd,
        oracle_cost_usd: c.oracle_cost_usd,
        savings_ratio: c.savings_ratio,
        instance_savings_ratio: c.instance_savings_ratio,
        reactive_savings_ratio: c.reactive_savings_ratio,
        oracle_savings_ratio: c.oracle_savings_ratio,
        minutes_over_target: c.policy.minutes_over_target,
        minutes_over_sustained: c.policy.minutes_over_sustained,
        minutes_over_capacity: c.policy.minutes_unserved,
        unserved_gb: c.policy.unserved_gb,
        scaling_actions: c.policy.scaling_actions,
        policy: &c.policy,
        reactive: &c.reactive,
        static_peak: &c.static_peak,
        actions,
        setup,
        settings,
        report,
        elapsed_secs,
        explained: None,
    }
}

/// The `--explain` section: the decision, its reasons, and every shape it considered; when
/// there was none at or after `at`, why (the run ends at `end`; the policy decides every
/// `interval` from its start, when no transition is running).
fn render_explained(
    at: Timestamp,
    d: Option<&Decision>,
    actions: &[ActionRecord],
    end: Timestamp,
    interval: Span,
) -> String {
    let mut out = String::from("\n");
    // A transition running at `at` defers the decision to its end.
    let running = actions
        .iter()
        .find(|a| a.started < at.secs() && a.finished.is_none_or(|f| f > at.secs()));
    if let Some(a) = running {
        let until = a.finished.map_or("the end of the run".to_string(), |f| {
            Timestamp::from_secs(f).to_string()
        });
        out.push_str(&format!(
            "At {at} a transition was running ({} to {}, from {} to {until}); the policy decides again once it is over.\n",
            a.mechanism,
            a.to,
            Timestamp::from_secs(a.started)
        ));
    }
    let Some(d) = d else {
        let why = match running.map(|a| a.finished) {
            Some(None) => "a transition ran until the end of the run".to_string(),
            Some(Some(f)) => format!(
                "the transition ended at {}, and no decision time (every {interval} from the start of the run) falls between then and the end of the run at {end}; pick an earlier time",
                Timestamp::from_secs(f)
            ),
            None => format!(
                "no decision time (every {interval} from the start of the run) falls between {at} and the end of the run at {end}; pick an earlier time"
            ),
        };
        out.push_str(&format!(
            "The policy made no decision at or after {at}: {why}.\n"
        ));
        return out;
    };
    out.push_str(&format!("Decision at {}", d.at));
    if d.at != at {
        out.push_str(&format!(" (the first at or after {at})"));
    }
    out.push_str(":\n");
    match d.plan() {
        Some(p) => out.push_str(&format!(
            "  action: {} to {}, about {:.0} min\n",
            p.mechanism,
            p.to.label(),
            p.estimated.minutes()
        )),
        None => out.push_str("  action: keep the current shape\n"),
    }
    // Below what it holds when a roll out of it would be unsafe higher up: both, as the
    // reason says.
    let holds = d
        .reasons
        .iter()
        .find_map(|r| match r {
            Reason::RollHeadroom { holds, escape } => Some(format!("{holds}, kept up to {escape}")),
            _ => None,
        })
        .unwrap_or_else(|| d.current_holds.to_string());
    out.push_str(&format!(
        "  current shape holds {holds} at {}/h; demand now {}; forecast {} with a {} margin\n",
        usd(d.current_usd_per_hour),
        d.forecast.current,
        d.forecast.method,
        pct(d.forecast.margin)
    ));
    out.push_str("  reasons:\n");
    for r in &d.reasons {
        out.push_str(&format!("    - {r}\n"));
    }
    out.push_str(&considered_table(&d.considered, d.plan().is_none(), "  "));
    out
}

/// The egress / ingress range of a trace with egress ("2.0" or "1.5 to 2.0", over the minutes
/// with ingress), `None` without.
fn egress_fanout(demand: &Demand) -> Option<String> {
    let egress = demand.egress.as_ref()?;
    let (lo, hi) = egress
        .iter()
        .zip(&demand.ingress)
        .filter(|(_, i)| **i > 0.0)
        .map(|(e, i)| e / i)
        .fold((f64::INFINITY, 0.0_f64), |(lo, hi), f| {
            (lo.min(f), hi.max(f))
        });
    Some(if lo > hi {
        "no minute with ingress".to_string()
    } else if format!("{lo:.1}") == format!("{hi:.1}") {
        format!("{hi:.1}")
    } else {
        format!("{lo:.1} to {hi:.1}")
    })
}

/// Longest reason `--actions` prints whole; longer ones are cut at a word.
const MAX_WHY: usize = 120;

/// The `--actions` section: the policy's actions as the HTML report's table has them, with
/// the reason each moved (cut when long).
fn render_actions(actions: &[ActionRecord]) -> String {
    let mut out = String::from("\npolicy actions:\n");
    if actions.is_empty() {
        out.push_str(&format!("{NO_ACTIONS}\n"));
        return out;
    }
    let mut columns = ACTION_COLUMNS.to_vec();
    columns.push("why");
    let mut t = Table::new(columns);
    for a in actions {
        let [start, end, change, how, estimated, took] = action_cells(a);
        t.row([
            start,
            end,
            change,
            how,
            estimated,
            took,
            short(&a.why, MAX_WHY),
        ]);
    }
    out.push_str(&t.render());
    out.push_str(
        "--explain WHEN (a start above) prints every reason and every shape considered.\n",
    );
    out
}

/// `text` whole when at most `max` characters, else cut at the last space before them, with
/// "...".
fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
    format!("{}...", cut.trim_end_matches([',', ';', ':']))
}

fn render_text(c: &Comparison, description: &str, report: Option<&str>, elapsed: f64) -> String {
    let history = match c.history_minutes {
        0 => "from a cold start (no history)".to_string(),
        m => format!("after {:.1} days of history", m as f64 / 1440.0),
    };
    let mut out = format!(
        "{description}\n{} minutes ({:.1} days) {history}, peak {:.0} MB/s, mean {:.0} MB/s; static peak shape: {}\n\n",
        c.minutes,
        c.minutes as f64 / 1440.0,
        c.peak_mb_per_s,
        c.mean_mb_per_s,
        c.static_shape
    );
    let mut t = Table::new([
        "run",
        "cost",
        "savings",
        "instance savings",
        "min over target",
        "min over sustained",
        "min unserved",
        "max disk fill",
        "actions",
    ]);
    let instance_savings = |r: &RunSummary| {
        if c.static_peak.instance_cost_usd > 0.0 {
            pct(1.0 - r.instance_cost_usd / c.static_peak.instance_cost_usd)
        } else {
            "-".to_string()
        }
    };
    for (r, savings) in [
        (&c.policy, c.savings_ratio),
        (&c.reactive, c.reactive_savings_ratio),
        (&c.static_peak, 0.0),
    ] {
        t.row([
            r.controller.to_string(),
            usd(r.cost_usd),
            pct(savings),
            instance_savings(r),
            r.minutes_over_target.to_string(),
            r.minutes_over_sustained.to_string(),
            r.minutes_unserved.to_string(),
            pct(r.max_disk_fill),
            r.scaling_actions.to_string(),
        ]);
    }
    t.row([
        "oracle bound".to_string(),
        usd(c.oracle_cost_usd),
        pct(c.oracle_savings_ratio),
        "-".to_string(),
        "-".to_string(),
        "-".to_string(),
        "-".to_string(),
        "-".to_string(),
        "-".to_string(),
    ]);
    out.push_str(&t.render());
    out.push_str(&format!(
        "\nover target: demand above the target utilization of the serving brokers; over sustained: above their baseline limit (credits may serve it); unserved: beyond baseline plus remaining credits; max disk fill: the most data stored / the brokers' disks.\noracle bound: each minute the cheapest shape that holds its demand and data, with free instant changes (not a policy).\nsimulated 3 x {} minutes in {:.2} s\n",
        c.minutes, elapsed
    ));
    if let Some(path) = report {
        out.push_str(&format!("report: {path}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use kpilot_policy::{Mechanism, Timestamp};
    use kpilot_sim::ActionRecord;
    use kpilot_units::Span;

    use super::render_explained;

    fn roll(started: f64, finished: Option<f64>) -> ActionRecord {
        ActionRecord {
            started,
            finished,
            from: "3 x m7g.4xlarge".into(),
            to: "3 x m7g.2xlarge".into(),
            mechanism: Mechanism::VerticalRoll,
            estimated_secs: 1800.0,
            reasons: Vec::new(),
            why: String::new(),
        }
    }

    /// `--explain "day 6 23:56"` said that "a transition ran until the end of the run" when
    /// the last one had ended at 22:08: the policy decides every 5 minutes, and none of those
    /// times is left between 23:56 and the end.
    #[test]
    fn no_decision_after_a_time_says_the_true_reason() {
        let day = |d: f64, h: f64, m: f64| d * 86_400.0 + h * 3600.0 + m * 60.0;
        let at = Timestamp::from_secs(day(6.0, 23.0, 56.0));
        let end = Timestamp::from_secs(day(7.0, 0.0, 0.0));
        let five = Span::from_minutes(5.0);
        let ended = [roll(day(6.0, 21.0, 30.0), Some(day(6.0, 22.0, 8.0)))];
        assert_eq!(
            render_explained(at, None, &ended, end, five),
            "\nThe policy made no decision at or after day 6 23:56: no decision time (every 5m from the start of the run) falls between day 6 23:56 and the end of the run at day 7 00:00; pick an earlier time.\n"
        );
        // A transition running at that time, and over before the end.
        let running = [roll(day(6.0, 23.0, 30.0), Some(day(6.0, 23.0, 58.0)))];
        let text = render_explained(at, None, &running, end, five);
        assert!(
            text.ends_with("The policy made no decision at or after day 6 23:56: the transition ended at day 6 23:58, and no decision time (every 5m from the start of the run) falls between then and the end of the run at day 7 00:00; pick an earlier time.\n"),
            "{text}"
        );
        // Still running at the end.
        let open = [roll(day(6.0, 23.0, 30.0), None)];
        let text = render_explained(at, None, &open, end, five);
        assert!(
            text.ends_with("The policy made no decision at or after day 6 23:56: a transition ran until the end of the run.\n"),
            "{text}"
        );
    }
}
