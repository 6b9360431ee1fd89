//! `kpilot perf`: an open-loop load test against a real cluster, with flags for the simple case
//! or a workload file whose lists expand into several runs. Prints a live line per window
//! (stderr), a final table or JSON (stdout), and optionally JSON and HTML report files.
//! Performs network I/O (through librdkafka), writes files, prints.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{ArgGroup, Args as ClapArgs};
use kpilot_perf::file::{self, WorkloadFileError};
use kpilot_perf::report::{PerfReport, RunReport, WindowReport, fmt_ms, html};
use kpilot_perf::runner::{self, Observer, Target};
use kpilot_perf::schedule::{Phase, PhaseKind, phases};
use kpilot_perf::workload::{
    Acks, Compression, CreditDepletion, DEFAULT_STOP_RATIO, InvalidSetting, Rate, Step, Workload,
    parse_duration, parse_millis,
};
use kpilot_units::{ByteSize, Throughput};

use super::common::fraction;
use crate::output::{Table, check_output_path, print_json, print_text, usage};

/// Load-test a Kafka cluster with honest latency.
///
/// Producers send on an open-loop schedule: every record has an intended send time from the
/// requested rate, and kpilot records three latencies per record, in microseconds:
///   send delay         intended send time -> handed to the client (kpilot or the client
///                      fell behind, e.g. the client queue was full during a stall)
///   service time       handed to the client -> acknowledged by the cluster
///   corrected latency  intended send time -> acknowledged: what an application producing
///                      at this rate sees; a stall cannot hide from it
/// Consumer groups record end-to-end latency (intended send time -> read).
///
/// Each step holds a rate for a warm-up then a measured duration; stepping stops when a step
/// sent less than --stop-ratio of what it requested (saturation). An optional credit-depletion
/// phase first runs unthrottled until the throughput rose above --deplete-above and fell below
/// --deplete-below, so burst credits do not inflate the result.
///
/// Topics are created with the asked partitions and replication factor when missing, and
/// deleted at the end unless --keep-topics. Every run is bounded: steps, depletion (--deplete-max)
/// and the final flush (--flush-timeout) all have a length.
///
/// Examples:
///   kpilot perf -b 127.0.0.1:9092 --rate 5MB/s,10MB/s,20MB/s --duration 60s
///   kpilot perf -b 127.0.0.1:9092 --rate max --record-size 100B --duration 30s --json
///   kpilot perf -b kafka:9092 --workload examples/perf/sizing-guide.yaml --html report.html
///   kpilot perf --workload examples/perf/sizing-guide.yaml --dry-run
#[derive(Debug, ClapArgs)]
#[command(verbatim_doc_comment)]
#[command(group(ArgGroup::new("flags").multiple(true)))]
pub struct Args {
    /// Brokers to contact first, comma separated, e.g. 127.0.0.1:9092,127.0.0.1:9093.
    #[arg(
        long,
        short = 'b',
        env = "KPILOT_BOOTSTRAP",
        value_name = "HOST:PORT[,...]",
        required_unless_present = "dry_run"
    )]
    pub bootstrap: Option<String>,

    /// A workload file (YAML) instead of the workload flags; values may be lists, and every
    /// combination runs. See docs/perf.md and examples/perf/. Example: --workload steps.yaml
    #[arg(long, short = 'w', value_name = "FILE", conflicts_with = "flags")]
    pub workload: Option<PathBuf>,

    /// Check the workload and print its runs and steps without connecting to anything.
    #[arg(long)]
    pub dry_run: bool,

    /// Target rates, one step each, in order: data rates (5MB/s), record rates (2000msg/s) or
    /// max (unthrottled). Example: --rate 10MB/s,20MB/s,40MB/s
    #[arg(long, value_delimiter = ',', value_name = "RATE,...", group = "flags", required_unless_present_any = ["workload"])]
    pub rate: Vec<Rate>,

    /// Warm-up of each step (same rate, not measured), e.g. 10s or 0s.
    #[arg(long, default_value = "10s", value_name = "DURATION", group = "flags")]
    pub warmup: String,

    /// Measured length of each step, e.g. 60s or 5m.
    #[arg(long, default_value = "60s", value_name = "DURATION", group = "flags")]
    pub duration: String,

    /// Payload bytes per record, e.g. 100B, 1KiB, 16KB.
    #[arg(long, default_value = "1KiB", value_name = "SIZE", group = "flags")]
    pub record_size: ByteSize,

    /// Fraction of each payload that compresses away: 0 is random bytes, 0.5 about half zeros.
    #[arg(
        long,
        allow_negative_numbers = true,
        default_value_t = 0.0,
        value_name = "FRACTION",
        value_parser = fraction,
        group = "flags"
    )]
    pub compressibility: f64,

    /// Topic name (with --topics > 1, the prefix of NAME-0, NAME-1...).
    #[arg(
        long,
        default_value = "kpilot-perf",
        value_name = "NAME",
        group = "flags"
    )]
    pub topic: String,

    /// Number of topics.
    #[arg(long, default_value_t = 1, value_name = "N", group = "flags")]
    pub topics: u32,

    /// Partitions per topic (when kpilot creates it; at most 100000 over all topics).
    #[arg(long, default_value_t = 6, value_name = "N", group = "flags")]
    pub partitions: i32,

    /// Replication factor (when kpilot creates the topic).
    #[arg(long, default_value_t = 3, value_name = "N", group = "flags")]
    pub replication_factor: i32,

    /// Producer threads, each with its own client, sharing the rate equally (1 to 256).
    #[arg(long, default_value_t = 1, value_name = "N", group = "flags")]
    pub producers: u32,

    /// Consumer groups, each reading every record.
    #[arg(long, default_value_t = 0, value_name = "N", group = "flags")]
    pub consumer_groups: u32,

    /// Consumers per group (threads, each with its own client; at most 256 over all groups).
    #[arg(long, default_value_t = 1, value_name = "N", group = "flags")]
    pub consumers_per_group: u32,

    /// acks: all (or -1), 1, or 0.
    #[arg(long, default_value = "all", value_name = "ACKS", value_parser = parse_acks, group = "flags")]
    pub acks: Acks,

    /// batch.size, e.g. 256KiB. Default: librdkafka's (1000000 bytes).
    #[arg(long, value_name = "SIZE", group = "flags")]
    pub batch_size: Option<ByteSize>,

    /// linger.ms, e.g. 5ms or 0. Default: librdkafka's (5 ms).
    #[arg(long, value_name = "DURATION", group = "flags")]
    pub linger: Option<String>,

    /// compression.type: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_name = "CODEC", value_parser = parse_compression, group = "flags")]
    pub compression: Compression,

    /// enable.idempotence: true or false. Default: librdkafka's (false).
    #[arg(long, value_name = "BOOL", group = "flags")]
    pub idempotence: Option<bool>,

    /// Any other librdkafka producer property, repeatable. Example: --producer-property
    /// queue.buffering.max.kbytes=32768
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_property, group = "flags")]
    pub producer_property: Vec<(String, String)>,

    /// Any librdkafka consumer property, repeatable. Example: --consumer-property
    /// fetch.min.bytes=1
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_property, group = "flags")]
    pub consumer_property: Vec<(String, String)>,

    /// Stop stepping when a step sent less than this fraction of the records it requested.
    #[arg(long, default_value_t = DEFAULT_STOP_RATIO, value_name = "FRACTION", value_parser = fraction, group = "flags")]
    pub stop_ratio: f64,

    /// Credit depletion: the throughput that shows the cluster is bursting, e.g. 200MB/s.
    /// Needs --deplete-below and --deplete-max.
    #[arg(long, value_name = "RATE", requires_all = ["deplete_below", "deplete_max"], group = "flags")]
    pub deplete_above: Option<Throughput>,

    /// Credit depletion: the throughput that shows the credits are spent, e.g. 80MB/s.
    #[arg(long, value_name = "RATE", requires = "deplete_above", group = "flags")]
    pub deplete_below: Option<Throughput>,

    /// Credit depletion: the longest it may take, e.g. 30m.
    #[arg(
        long,
        value_name = "DURATION",
        requires = "deplete_above",
        group = "flags"
    )]
    pub deplete_max: Option<String>,

    /// Length of a reporting window (one live line, one JSON window), e.g. 5s or 1s.
    #[arg(long, default_value = "5s", value_name = "DURATION", group = "flags")]
    pub interval: String,

    /// How long to wait at the end for records in flight (and consumers catching up).
    #[arg(long, default_value = "30s", value_name = "DURATION", group = "flags")]
    pub flush_timeout: String,

    /// A librdkafka property for every client (producers, consumers, admin), repeatable,
    /// e.g. --client-property socket.keepalive.enable=true. This build has no TLS or SASL.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_property)]
    pub client_property: Vec<(String, String)>,

    /// Keep the topics kpilot created (default: delete them at the end).
    #[arg(long)]
    pub keep_topics: bool,

    /// Write the JSON report (every window and step) to this file.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Write a self-contained HTML report with charts to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,

    /// Print the JSON report on stdout instead of the tables (live lines still go to stderr).
    #[arg(long)]
    pub json: bool,

    /// No live lines on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

fn parse_acks(s: &str) -> Result<Acks, String> {
    s.parse()
        .map_err(|e: kpilot_perf::workload::Problem| e.to_string())
}

fn parse_compression(s: &str) -> Result<Compression, String> {
    s.parse()
        .map_err(|e: kpilot_perf::workload::Problem| e.to_string())
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("'{s}' is not KEY=VALUE (example: linger.ms=5)")),
    }
}

/// The flag that sets a workload key, for error messages.
fn flag_for(key: &str) -> String {
    let flag = match key {
        "steps.rates" => "--rate",
        "steps.warmup" => "--warmup",
        "steps.duration" => "--duration",
        "producer.acks" => "--acks",
        "producer.batch_size" => "--batch-size",
        "producer.linger" => "--linger",
        "producer.compression" => "--compression",
        "producer.idempotence" => "--idempotence",
        "credit_depletion.above" => "--deplete-above",
        "credit_depletion.below" => "--deplete-below",
        "credit_depletion.max_duration" => "--deplete-max",
        k if k.starts_with("producer.properties.") => "--producer-property",
        k if k.starts_with("consumer.properties.") => "--consumer-property",
        k => return format!("--{}", k.replace('_', "-")),
    };
    flag.to_string()
}

fn flag_error(e: InvalidSetting) -> anyhow::Error {
    usage(anyhow::anyhow!("{}: {}", flag_for(&e.key), e.problem))
}

fn duration_flag(flag: &str, value: &str) -> anyhow::Result<Duration> {
    parse_duration(value).map_err(|e| usage(anyhow::anyhow!("{flag}: {e}")))
}

/// Builds the single workload the flags describe.
fn workload_from_flags(args: &Args) -> anyhow::Result<Workload> {
    let warmup = duration_flag("--warmup", &args.warmup)?;
    let duration = duration_flag("--duration", &args.duration)?;
    let steps = args
        .rate
        .iter()
        .map(|&rate| Step {
            rate,
            warmup,
            duration,
        })
        .collect();
    let mut w = Workload::with_steps(steps);
    w.name = "kpilot-perf".into();
    w.topic = args.topic.clone();
    w.topics = args.topics;
    w.partitions = args.partitions;
    w.replication_factor = args.replication_factor;
    let size = args.record_size.bytes();
    if size.fract() != 0.0 || size < 1.0 {
        return Err(usage(anyhow::anyhow!(
            "--record-size {} must be a whole number of bytes, at least 1",
            args.record_size
        )));
    }
    w.record_size = size as u64;
    w.compressibility = args.compressibility;
    w.producers = args.producers;
    w.consumer_groups = args.consumer_groups;
    w.consumers_per_group = args.consumers_per_group;
    w.producer.acks = args.acks;
    w.producer.batch_size = args.batch_size.map(|b| b.bytes() as u64);
    w.producer.linger_ms = match &args.linger {
        Some(l) => Some(parse_millis(l).map_err(|e| usage(anyhow::anyhow!("--linger: {e}")))?),
        None => None,
    };
    w.producer.compression = args.compression;
    w.producer.idempotence = args.idempotence;
    w.producer.properties = args.producer_property.iter().cloned().collect();
    w.consumer.properties = args.consumer_property.iter().cloned().collect();
    w.stop_ratio = args.stop_ratio;
    if let (Some(above), Some(below), Some(max)) =
        (args.deplete_above, args.deplete_below, &args.deplete_max)
    {
        w.credit_depletion = Some(CreditDepletion {
            above,
            below,
            max_duration: duration_flag("--deplete-max", max)?,
        });
    }
    w.interval = duration_flag("--interval", &args.interval)?;
    w.flush_timeout = duration_flag("--flush-timeout", &args.flush_timeout)?;
    w.validate().map_err(flag_error)?;
    Ok(w)
}

fn load_workloads(args: &Args) -> anyhow::Result<Vec<Workload>> {
    match &args.workload {
        Some(path) => file::load(path).map_err(|e| match e {
            WorkloadFileError::ReadFile { .. } => usage(e),
            other => usage(other),
        }),
        None => Ok(vec![workload_from_flags(args)?]),
    }
}

/// Runs `kpilot perf`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let workloads = load_workloads(&args)?;
    for (flag, path) in [("--output", &args.output), ("--html", &args.html)] {
        if let Some(path) = path {
            check_output_path(flag, path)?;
        }
    }
    if args.dry_run {
        return print_plan(&workloads, args.json);
    }
    let bootstrap = args.bootstrap.clone().ok_or_else(|| {
        usage(anyhow::anyhow!(
            "--bootstrap is required (or set KPILOT_BOOTSTRAP)"
        ))
    })?;
    reachable(&bootstrap, &args.client_property)?;
    let target = Target {
        bootstrap: bootstrap.clone(),
        client_properties: args.client_property.clone(),
        keep_topics: args.keep_topics,
    };
    let total: Duration = workloads.iter().map(Workload::max_duration).sum();
    let mut live = Live {
        quiet: args.quiet,
        run: 0,
        runs: workloads.len(),
    };
    live.note(&format!(
        "{} run(s), at most {} in total; librdkafka {}",
        workloads.len(),
        human_duration(total),
        runner::librdkafka_version()
    ));
    let mut runs = Vec::with_capacity(workloads.len());
    for (i, w) in workloads.iter().enumerate() {
        live.run = i + 1;
        let report = runner::run(w, &target, &mut live)
            .with_context(|| format!("run {} of {} ({}) failed", i + 1, workloads.len(), w.name))?;
        runs.push(report);
    }
    let report = PerfReport {
        kpilot_version: env!("CARGO_PKG_VERSION").to_string(),
        librdkafka_version: runner::librdkafka_version(),
        bootstrap,
        runs,
    };
    if let Some(path) = &args.output {
        let text = serde_json::to_string_pretty(&report)?;
        write_file(path, &text)?;
    }
    if let Some(path) = &args.html {
        write_file(path, &html(&report))?;
    }
    if args.json {
        print_json(&report)?;
    } else {
        let mut text = render(&report);
        if let Some(p) = &args.output {
            let _ = writeln!(text, "JSON report: {}", p.display());
        }
        if let Some(p) = &args.html {
            let _ = writeln!(text, "HTML report: {}", p.display());
        }
        print_text(&text)?;
    }
    Ok(())
}

/// Fails at once, naming each address's error, when no bootstrap server accepts a TCP
/// connection, or when none answers as a Kafka broker (librdkafka would only time out
/// creating the topic, 30 s later). The Kafka answer is checked on PLAINTEXT only (this
/// build's librdkafka has no TLS or SASL); with another `security.protocol` among the client
/// properties, the socket only.
fn reachable(bootstrap: &str, client_properties: &[(String, String)]) -> anyhow::Result<()> {
    use std::net::{TcpStream, ToSocketAddrs as _};
    let servers = servers_from(bootstrap);
    if servers.is_empty() {
        return Err(usage(anyhow::anyhow!(
            "--bootstrap '{bootstrap}' names no server, e.g. 127.0.0.1:9092"
        )));
    }
    let mut errors = Vec::new();
    for server in &servers {
        let addrs = match server.as_str().to_socket_addrs() {
            Ok(addrs) => addrs.collect::<Vec<_>>(),
            Err(e) => {
                errors.push(format!("{server}: {e}"));
                continue;
            }
        };
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
                Ok(stream) => {
                    drop(stream);
                    return answers_as_kafka(&servers, client_properties);
                }
                Err(e) => errors.push(format!("{server} ({addr}): {e}")),
            }
        }
    }
    Err(anyhow::anyhow!(
        "cannot reach any bootstrap server: {}",
        errors.join("; ")
    ))
}

/// The bootstrap servers, librdkafka's default port 9092 added where none is given.
fn servers_from(bootstrap: &str) -> Vec<String> {
    bootstrap
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                s.to_string()
            } else {
                format!("{s}:9092")
            }
        })
        .collect()
}

/// Asks the bootstrap servers for the cluster's metadata over PLAINTEXT, within about 10 s.
fn answers_as_kafka(
    servers: &[String],
    client_properties: &[(String, String)],
) -> anyhow::Result<()> {
    let protocol = client_properties
        .iter()
        .rev()
        .find(|(k, _)| k == "security.protocol")
        .map(|(_, v)| v.as_str());
    if protocol.is_some_and(|p| !p.eq_ignore_ascii_case("plaintext")) {
        return Ok(());
    }
    let list = servers.join(",");
    let addresses = kpilot_kafka::BrokerAddress::parse_list(&list)
        .map_err(|e| usage(anyhow::anyhow!("--bootstrap '{list}': {e}")))?;
    let mut config = kpilot_kafka::ClientConfig::new(addresses);
    config.connect_timeout = Duration::from_secs(5);
    config.request_timeout = Duration::from_secs(5);
    // A second attempt may start before 8 s: at most about 10 s in all.
    config.api_timeout = Duration::from_secs(8);
    let runtime = crate::commands::common::runtime()?;
    runtime.block_on(async {
        match kpilot_kafka::AdminClient::connect(config).await {
            Ok(admin) => {
                admin.close();
                Ok(())
            }
            Err(e) => Err(anyhow::anyhow!(
                "{list} accepts TCP connections but no server answered as a Kafka broker \
                 (PLAINTEXT): {e}"
            )),
        }
    })
}

fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Prints the expanded runs and their phases (`--dry-run`).
fn print_plan(workloads: &[Workload], json: bool) -> anyhow::Result<()> {
    if json {
        #[derive(serde::Serialize)]
        struct Plan<'a> {
            workload: &'a Workload,
            phases: Vec<Phase>,
            max_duration_s: f64,
        }
        let plans: Vec<Plan<'_>> = workloads
            .iter()
            .map(|w| Plan {
                workload: w,
                phases: phases(w),
                max_duration_s: w.max_duration().as_secs_f64(),
            })
            .collect();
        return print_json(&plans);
    }
    let mut text = String::new();
    for (i, w) in workloads.iter().enumerate() {
        let title = if w.labels.is_empty() {
            w.name.clone()
        } else {
            let l: Vec<String> = w.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{} [{}]", w.name, l.join(", "))
        };
        let _ = writeln!(
            text,
            "run {}/{}: {title} (at most {})",
            i + 1,
            workloads.len(),
            human_duration(w.max_duration())
        );
        let _ = writeln!(
            text,
            "  topics {} x {} partitions, replication factor {}; {} B records; {} producer(s); {} group(s) x {} consumer(s)",
            w.topic_names().join(","),
            w.partitions,
            w.replication_factor,
            w.record_size,
            w.producers,
            w.consumer_groups,
            w.consumers_per_group
        );
        let props: Vec<String> = w
            .producer
            .client_properties()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(text, "  producer: {}", props.join(" "));
        let mut t = Table::new(["phase", "step", "rate", "records/s", "MB/s", "duration"]);
        for p in phases(w) {
            t.row([
                p.kind.to_string(),
                p.step
                    .map(|s| (s + 1).to_string())
                    .unwrap_or_else(|| "-".into()),
                p.rate.to_string(),
                p.rate
                    .messages_per_s(w.record_size)
                    .map(|m| format!("{m:.0}"))
                    .unwrap_or_else(|| "max".into()),
                p.rate
                    .bytes_per_s(w.record_size)
                    .map(|b| format!("{:.2}", b / 1e6))
                    .unwrap_or_else(|| "max".into()),
                human_duration(p.duration),
            ]);
        }
        for line in t.render().lines() {
            let _ = writeln!(text, "  {line}");
        }
    }
    print_text(&text)
}

/// The final tables, one per run.
fn render(report: &PerfReport) -> String {
    let mut out = String::new();
    for run in &report.runs {
        out.push_str(&format!("\n{} ({:.0} s)\n", run.title(), run.elapsed_s));
        out.push_str(&step_table(run).render());
        if let Some(reason) = &run.stopped_early {
            out.push_str(&format!("stopped early: {reason}\n"));
        }
        let errors: u64 = run.errors.values().sum();
        if errors > 0 {
            let list: Vec<String> = run.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
            out.push_str(&format!("failed records: {errors} ({})\n", list.join(", ")));
        }
        if run.unacknowledged > 0 {
            out.push_str(&format!(
                "unacknowledged at the flush timeout: {} (purged, counted as failed)\n",
                run.unacknowledged
            ));
        }
    }
    out.push_str("latency in ms; corrected = intended send time -> acknowledged\n");
    out
}

fn step_table(run: &RunReport) -> Table {
    let consumers = run.workload.consumer_groups > 0;
    let mut t = Table::new([
        "step",
        "rate",
        "MB/s",
        "rec/s",
        "sent/req",
        "errors",
        "p50",
        "p99",
        "p99.9",
        "max",
        "service p99",
        "send delay p99",
        "e2e p99",
    ]);
    for s in &run.steps {
        t.row([
            format!("{}{}", s.step, if s.saturated { "*" } else { "" }),
            s.rate.to_string(),
            format!("{:.2}", s.achieved_mb_per_s),
            format!("{:.0}", s.achieved_msgs_per_s),
            s.sent_ratio
                .map(|r| format!("{:.2}%", r * 100.0))
                .unwrap_or_else(|| "-".into()),
            s.error_count().to_string(),
            fmt_ms(s.corrected.p50_us),
            fmt_ms(s.corrected.p99_us),
            fmt_ms(s.corrected.p999_us),
            fmt_ms(s.corrected.max_us),
            fmt_ms(s.service.p99_us),
            fmt_ms(s.send_delay.p99_us),
            if consumers {
                fmt_ms(s.end_to_end.p99_us)
            } else {
                "-".into()
            },
        ]);
    }
    t
}

/// Prints live lines to stderr.
struct Live {
    quiet: bool,
    run: usize,
    runs: usize,
}

impl Live {
    fn prefix(&self) -> String {
        if self.runs > 1 {
            format!("[{}/{}] ", self.run, self.runs)
        } else {
            String::new()
        }
    }
}

impl Observer for Live {
    fn phase_started(&mut self, workload: &Workload, phase: &Phase, steps: usize) {
        if self.quiet {
            return;
        }
        let what = match phase.kind {
            PhaseKind::Depletion => "credit depletion (unthrottled)".to_string(),
            PhaseKind::Warmup => {
                format!("step {}/{steps} warm-up", phase.step.map_or(0, |s| s + 1))
            }
            PhaseKind::Measure => format!("step {}/{steps}", phase.step.map_or(0, |s| s + 1)),
        };
        let rate = match phase.rate.bytes_per_s(workload.record_size) {
            Some(b) => format!("{} ({:.2} MB/s)", phase.rate, b / 1e6),
            None => "max".into(),
        };
        eprintln!(
            "{}{what}: {rate} for {}",
            self.prefix(),
            human_duration(phase.duration)
        );
    }

    fn window(&mut self, _workload: &Workload, w: &WindowReport) {
        if self.quiet {
            return;
        }
        let requested = w
            .requested_mb_per_s
            .map(|r| format!("{r:.2}"))
            .unwrap_or_else(|| "max".into());
        let kind = if w.draining {
            "late".to_string()
        } else {
            w.kind.to_string()
        };
        let mut line = format!(
            "{}{:7.1}s {kind:<7} req {requested} MB/s  acked {:.2} MB/s ({:.0}/s)  err {}",
            self.prefix(),
            w.end_s,
            w.acked_mb_per_s,
            w.acked_msgs_per_s,
            w.errors,
        );
        if w.corrected.count > 0 {
            line.push_str(&format!(
                "  corrected p50 {} p99 {} p99.9 {} ms  service p99 {}  send-delay p99 {}",
                fmt_ms(w.corrected.p50_us),
                fmt_ms(w.corrected.p99_us),
                fmt_ms(w.corrected.p999_us),
                fmt_ms(w.service.p99_us),
                fmt_ms(w.send_delay.p99_us),
            ));
        } else {
            line.push_str("  no acknowledgements");
        }
        if w.late_records > 0 {
            line.push_str(&format!(
                "  BEHIND {} records, oldest {} ms late",
                w.late_records,
                fmt_ms(w.oldest_late_us)
            ));
        }
        if w.end_to_end.count > 0 {
            line.push_str(&format!("  e2e p99 {}", fmt_ms(w.end_to_end.p99_us)));
        }
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{line}");
    }

    fn note(&mut self, text: &str) {
        if !self.quiet {
            eprintln!("{}{text}", self.prefix());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        let mut full = vec!["perf"];
        full.extend_from_slice(argv);
        Cli::try_parse_from(full).map(|c| c.args)
    }

    #[test]
    fn flags_build_a_workload() {
        let args = parse(&[
            "-b",
            "127.0.0.1:9092",
            "--rate",
            "1MB/s,2000msg/s,max",
            "--duration",
            "5s",
            "--warmup",
            "0s",
            "--linger",
            "5ms",
            "--batch-size",
            "256KiB",
            "--producer-property",
            "queue.buffering.max.messages=50",
            "--deplete-above",
            "20MB/s",
            "--deplete-below",
            "10MB/s",
            "--deplete-max",
            "1m",
        ])
        .unwrap();
        let w = workload_from_flags(&args).unwrap();
        assert_eq!(w.steps.len(), 3);
        assert_eq!(w.steps[2].rate, Rate::Max);
        assert_eq!(w.producer.linger_ms, Some(5.0));
        assert_eq!(w.producer.batch_size, Some(262_144));
        assert_eq!(w.producer.properties["queue.buffering.max.messages"], "50");
        assert_eq!(
            w.credit_depletion.unwrap().max_duration,
            Duration::from_secs(60)
        );
    }

    #[test]
    fn bad_flags_name_the_flag() {
        let args = parse(&["-b", "x:1", "--rate", "1MB/s", "--producers", "0"]).unwrap();
        let err = workload_from_flags(&args).unwrap_err();
        assert_eq!(crate::output::exit_code_for(&err), 2);
        assert!(err.to_string().starts_with("--producers:"), "{err}");
        let args = parse(&["-b", "x:1", "--rate", "1MB/s", "--linger", "5 fortnights"]).unwrap();
        assert!(
            workload_from_flags(&args)
                .unwrap_err()
                .to_string()
                .contains("--linger")
        );
        let args = parse(&[
            "-b",
            "x:1",
            "--rate",
            "1MB/s",
            "--producer-property",
            "acks=1",
        ])
        .unwrap();
        assert!(
            workload_from_flags(&args)
                .unwrap_err()
                .to_string()
                .contains("--producer-property")
        );
        assert!(parse(&["-b", "x:1", "--rate", "5MB"]).is_err());
    }

    #[test]
    fn an_invalid_workload_file_is_a_usage_error_naming_file_key_and_reason() {
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../kpilot-perf/tests/fixtures/unknown-key.yaml"
        );
        let args = parse(&["--workload", fixture, "--dry-run"]).unwrap();
        let err = load_workloads(&args).unwrap_err();
        assert_eq!(crate::output::exit_code_for(&err), 2);
        let text = err.to_string();
        assert!(text.contains("unknown-key.yaml:6:3"), "{text}");
        assert!(text.contains("`producer.lingr`"), "{text}");
        assert!(text.contains("unknown key"), "{text}");
    }

    #[test]
    fn a_workload_file_excludes_workload_flags() {
        assert!(parse(&["-b", "x:1", "--workload", "w.yaml", "--rate", "1MB/s"]).is_err());
        assert!(parse(&["-b", "x:1", "--workload", "w.yaml", "--json"]).is_ok());
        assert!(parse(&["--workload", "w.yaml", "--dry-run"]).is_ok());
        assert!(
            parse(&["-b", "x:1"]).is_err(),
            "--rate or --workload is required"
        );
    }
}
