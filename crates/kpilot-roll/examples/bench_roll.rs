//! Measures a real roll: starts a 3-broker testbed cluster, produces at a steady rate with
//! acks=all through kpilot's admin client (one record per request, latency measured from the
//! *intended* send time, so stalls are not hidden), first in steady state, then while the
//! whole cluster is rolled to a new size, and prints per-broker phase durations, the
//! orchestration overhead and produce latency percentiles during the roll against steady
//! state. Run through `scripts/bench-roll`; writes JSON with `--out FILE`.
//!
//! Usage: bench_roll [--rate N] [--steady-secs S] [--to INSTANCE] [--out FILE]

use std::time::{Duration, Instant};

use bytes::Bytes;
use kpilot_cluster::{TopicName, TopicPartition};
use kpilot_kafka::{AdminClient, BrokerAddress, ClientConfig, NewTopic};
use kpilot_roll::{
    FileStore, LocalFleet, LocalSizing, RollEvent, RollOptions, RollReport, Roller, Settings,
};
use kpilot_testbed::{ClusterConfig, KafkaCluster};
use serde::Serialize;

#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Intended send time, ms since the probe started.
    at_ms: f64,
    /// Ack time minus intended send time, ms.
    latency_ms: f64,
    ok: bool,
}

#[derive(Debug, Serialize)]
struct LatencyStats {
    samples: usize,
    errors: usize,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
}

fn stats(samples: &[Sample]) -> LatencyStats {
    let mut lat: Vec<f64> = samples
        .iter()
        .filter(|s| s.ok)
        .map(|s| s.latency_ms)
        .collect();
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((p * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i]
    };
    LatencyStats {
        samples: samples.len(),
        errors: samples.iter().filter(|s| !s.ok).count(),
        p50_ms: q(0.50),
        p99_ms: q(0.99),
        p999_ms: q(0.999),
        max_ms: lat.last().copied().unwrap_or(0.0),
    }
}

/// The summary line of Kafka's ProducerPerformance (the standard Java client).
#[derive(Debug, Clone, Default, Serialize)]
struct JavaPerf {
    records: u64,
    avg_ms: f64,
    max_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    summary: String,
}

fn parse_perf(output: &str) -> Option<JavaPerf> {
    let line = output.lines().rev().find(|l| l.contains("50th"))?;
    let num = |marker: &str| -> Option<f64> {
        let i = line.find(marker)?;
        line[..i]
            .trim_end()
            .rsplit([' ', ','])
            .next()?
            .trim()
            .parse()
            .ok()
    };
    Some(JavaPerf {
        records: line.split_whitespace().next()?.parse().ok()?,
        avg_ms: num(" ms avg latency")?,
        max_ms: num(" ms max latency")?,
        p50_ms: num(" ms 50th")?,
        p99_ms: num(" ms 99th")?,
        p999_ms: num(" ms 99.9th")?,
        summary: line.trim().to_string(),
    })
}

/// A running ProducerPerformance whose stdout lines are timestamped as they arrive.
struct JavaRun {
    child: std::process::Child,
    reader: std::thread::JoinHandle<Vec<(Instant, String)>>,
}

/// Runs Kafka's ProducerPerformance (acks=all, idempotent) for `records` at `rate`.
fn java_perf(
    bootstrap: &str,
    topic: &str,
    rate: u32,
    records: u64,
) -> Result<JavaRun, Box<dyn std::error::Error>> {
    use std::io::BufRead as _;
    let libs = kpilot_testbed::kafka_libs_dir()?;
    let mut child = std::process::Command::new(kpilot_testbed::java_executable())
        .args(["-Xmx256m", "-XX:+UseSerialGC", "-cp"])
        .arg(format!("{}/*", libs.display()))
        .arg("org.apache.kafka.tools.ProducerPerformance")
        .args(["--topic", topic, "--record-size", "100"])
        .args(["--num-records", &records.to_string()])
        .args(["--throughput", &rate.to_string()])
        .args([
            "--producer-props",
            &format!("bootstrap.servers={bootstrap}"),
        ])
        .args(["acks=all", "enable.idempotence=true", "linger.ms=0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::spawn(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .map(|l| (Instant::now(), l))
            .collect()
    });
    Ok(JavaRun { child, reader })
}

impl JavaRun {
    fn finish(mut self) -> Vec<(Instant, String)> {
        let _ = self.child.wait();
        self.reader.join().unwrap_or_default()
    }
}

/// The largest "max latency" of the 5-second windows ProducerPerformance printed between
/// `from` and `to` (a window line is printed at the end of its window).
fn worst_window(lines: &[(Instant, String)], from: Instant, to: Instant) -> Option<f64> {
    lines
        .iter()
        .filter(|(t, l)| {
            *t >= from
                && *t <= to + Duration::from_secs(5)
                && l.contains("max latency")
                && !l.contains("50th")
        })
        .filter_map(|(_, l)| {
            let i = l.find(" ms max latency")?;
            l[..i].rsplit([' ', ',']).next()?.trim().parse::<f64>().ok()
        })
        .reduce(f64::max)
}

#[derive(Debug, Serialize)]
struct BenchResult {
    rate_per_s: u32,
    steady: LatencyStats,
    during_roll: LatencyStats,
    roll: RollReport,
    cpus: usize,
    load_average_before: String,
    /// Kafka's own producer (ProducerPerformance, acks=all, idempotent) in steady state.
    java_steady: Option<JavaPerf>,
    /// The same, started with the roll; it runs `java_during_secs`, covering the whole roll
    /// and some steady traffic after it.
    java_during_roll: Option<JavaPerf>,
    java_during_secs: u64,
    /// The worst 5-second-window max latency of the Java producer, steady vs during the roll.
    java_worst_window_steady_ms: Option<f64>,
    java_worst_window_during_roll_ms: Option<f64>,
    java_rate_per_s: u32,
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let rate: u32 = arg(&args, "--rate").map_or(Ok(20), |v| v.parse())?;
    let steady_secs: u64 = arg(&args, "--steady-secs").map_or(Ok(30), |v| v.parse())?;
    let to = arg(&args, "--to").unwrap_or_else(|| "m7g.xlarge".to_string());
    let out = arg(&args, "--out");

    eprintln!("starting a 3-broker testbed cluster...");
    let cluster = KafkaCluster::start(ClusterConfig {
        brokers: 3,
        ready_timeout: Duration::from_secs(120),
        ..ClusterConfig::default()
    })?;
    let state = cluster.detach();
    let work = std::env::temp_dir().join(format!("kpilot-bench-roll-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let state_path = work.join("state.json");
    state.save(&state_path)?;
    let result = run(&state.bootstrap, &state_path, &work, rate, steady_secs, &to);
    // Always stop the brokers we started (the roll restarted them: re-read the state).
    if let Ok(Some(mut s)) = kpilot_testbed::ClusterState::load(&state_path) {
        s.adopt_running();
        let _ = s.stop(Duration::from_secs(30));
        let _ = std::fs::remove_dir_all(&s.dir);
    }
    let _ = std::fs::remove_dir_all(&work);
    let result = result?;

    println!("{}", result.roll.render());
    println!(
        "produce latency at {} records/s (acks=all, from intended send time):",
        result.rate_per_s
    );
    for (name, j) in [
        ("steady", &result.java_steady),
        ("during roll", &result.java_during_roll),
    ] {
        if let Some(j) = j {
            println!("  Kafka ProducerPerformance {name}: {}", j.summary);
        }
    }
    println!(
        "  Kafka producer worst 5-s window max latency: steady {:?} ms, during roll {:?} ms",
        result.java_worst_window_steady_ms, result.java_worst_window_during_roll_ms
    );
    println!("  kpilot admin client probe:");
    for (name, s) in [
        ("steady", &result.steady),
        ("during roll", &result.during_roll),
    ] {
        println!(
            "  {name:<12} samples {:>6}  errors {:>3}  p50 {:>7.1} ms  p99 {:>7.1} ms  p99.9 {:>7.1} ms  max {:>7.1} ms",
            s.samples, s.errors, s.p50_ms, s.p99_ms, s.p999_ms, s.max_ms
        );
    }
    if let Some(path) = out {
        std::fs::write(&path, serde_json::to_string_pretty(&result)? + "\n")?;
        eprintln!("wrote {path}");
    }
    Ok(())
}

fn run(
    bootstrap: &str,
    state_path: &std::path::Path,
    work: &std::path::Path,
    rate: u32,
    steady_secs: u64,
    to: &str,
) -> Result<BenchResult, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let load_before = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string();
    runtime.block_on(async {
        let mut config = ClientConfig::new(BrokerAddress::parse_list(bootstrap)?);
        config.api_timeout = Duration::from_secs(30);
        let admin = AdminClient::connect(config.clone()).await?;
        let topic = TopicName::new("bench")?;
        admin
            .create_topics(&[
                NewTopic::new(topic.clone(), 6, 3).with_config("min.insync.replicas", 2),
                NewTopic::new(TopicName::new("other-a")?, 3, 3)
                    .with_config("min.insync.replicas", 2),
                NewTopic::new(TopicName::new("other-b")?, 3, 3)
                    .with_config("min.insync.replicas", 2),
            ])
            .await?;
        admin.wait_for_topic(&topic).await?;

        // The probe: its own client, one record per request, on an intended schedule.
        let probe_admin = AdminClient::connect(config).await?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let probe_stop = stop.clone();
        let probe_topic = topic.clone();
        let started = Instant::now();
        let probe = tokio::spawn(async move {
            let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
            let payload = Bytes::from(vec![b'x'; 100]);
            let mut samples = Vec::new();
            let mut i: u64 = 0;
            while !probe_stop.load(std::sync::atomic::Ordering::Relaxed) {
                let intended = started + interval.mul_f64(i as f64);
                tokio::time::sleep_until(intended.into()).await;
                let tp = TopicPartition::new(probe_topic.clone(), (i % 6) as i32);
                let result = probe_admin
                    .produce(&tp, &[(None, Some(payload.clone()))])
                    .await;
                let done = Instant::now();
                samples.push(Sample {
                    at_ms: (intended - started).as_secs_f64() * 1000.0,
                    latency_ms: done.saturating_duration_since(intended).as_secs_f64() * 1000.0,
                    ok: result.is_ok(),
                });
                i += 1;
            }
            samples
        });

        eprintln!("steady state for {steady_secs}s at {rate} records/s...");
        let java_rate = rate * 4;
        let steady_from = Instant::now();
        let steady_java = java_perf(
            bootstrap,
            "other-a",
            java_rate,
            u64::from(java_rate) * steady_secs,
        )?;
        tokio::time::sleep(Duration::from_secs(steady_secs)).await;
        let steady_lines = tokio::task::spawn_blocking(move || steady_java.finish()).await?;
        let java_worst_window_steady_ms = worst_window(
            &steady_lines,
            steady_from + Duration::from_secs(5),
            Instant::now(),
        );
        let java_steady = parse_perf(
            &steady_lines
                .iter()
                .map(|(_, l)| l.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        );
        // Sized to outlast the roll; its tail after the roll is steady traffic, which can
        // only lower the percentiles it reports (the worst window below is not diluted).
        let java_during_secs = 90;
        let during_java = java_perf(
            bootstrap,
            "other-b",
            java_rate,
            u64::from(java_rate) * java_during_secs,
        )?;
        let roll_start_ms = started.elapsed().as_secs_f64() * 1000.0;
        let fleet = LocalFleet::new(state_path, LocalSizing::default())?;
        let mut store = FileStore::new(work.join("journal.json"));
        let t0 = Instant::now();
        let report = Roller::new(&admin, &fleet, Settings::default(), |e: &RollEvent| {
            eprintln!("[{:>6.1}s] {e}", t0.elapsed().as_secs_f64());
        })
        .run(&RollOptions::new(to.parse()?), &mut store)
        .await?;
        let roll_end_ms = started.elapsed().as_secs_f64() * 1000.0;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let samples = probe.await?;
        let roll_end = Instant::now();
        let during_lines = tokio::task::spawn_blocking(move || during_java.finish()).await?;
        let java_worst_window_during_roll_ms = worst_window(&during_lines, t0, roll_end);
        let java_during_roll = parse_perf(
            &during_lines
                .iter()
                .map(|(_, l)| l.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        );
        // The first 5 s warm up connections and the brokers' JIT; they are not steady state.
        let steady: Vec<Sample> = samples
            .iter()
            .copied()
            .filter(|s| s.at_ms >= 5000.0 && s.at_ms < roll_start_ms)
            .collect();
        let during: Vec<Sample> = samples
            .iter()
            .copied()
            .filter(|s| s.at_ms >= roll_start_ms && s.at_ms <= roll_end_ms)
            .collect();
        admin.close();
        Ok(BenchResult {
            rate_per_s: rate,
            steady: stats(&steady),
            during_roll: stats(&during),
            roll: report,
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            load_average_before: load_before,
            java_steady,
            java_during_roll,
            java_during_secs,
            java_worst_window_steady_ms,
            java_worst_window_during_roll_ms,
            java_rate_per_s: java_rate,
        })
    })
}
