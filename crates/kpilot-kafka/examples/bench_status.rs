//! Benchmark of the cluster snapshot behind `kpilot status` on a real testbed cluster
//! (3 brokers, RF 3, min ISR 2) with N partitions. Run it through `scripts/bench-status`, which
//! builds it in release mode and passes the `kpilot` binary to time.
//!
//! It measures, on the same cluster: in-process time of connect + snapshot (what `kpilot status`
//! does), of a snapshot on an already connected client, and of the pure analysis; then wall
//! time and peak RSS of `kpilot status --json` runs via `/usr/bin/time -v`. Performs I/O
//! (starts Kafka brokers, network, subprocesses). Bounded: fixed number of runs.

use std::process::Command;
use std::time::{Duration, Instant};

use kpilot_cluster::{TopicName, analyze};
use kpilot_kafka::{AdminClient, BrokerAddress, ClientConfig, NewTopic};
use kpilot_testbed::{ClusterConfig, KafkaCluster};

struct Options {
    kpilot: Option<String>,
    partitions: i32,
    topics: i32,
    runs: usize,
}

fn options() -> Options {
    let mut o = Options {
        kpilot: None,
        partitions: 2000,
        topics: 20,
        runs: 10,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--kpilot" => o.kpilot = Some(value()),
            "--partitions" => o.partitions = value().parse().expect("--partitions N"),
            "--topics" => o.topics = value().parse().expect("--topics N"),
            "--runs" => o.runs = value().parse().expect("--runs N"),
            other => panic!(
                "unknown argument {other}; use --kpilot PATH --partitions N --topics N --runs N"
            ),
        }
    }
    assert!(
        o.partitions % o.topics == 0,
        "--partitions must be a multiple of --topics"
    );
    o
}

fn stats(samples: &mut [Duration]) -> String {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "min {:.1} ms, median {:.1} ms, max {:.1} ms ({} runs)",
        ms(samples[0]),
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() - 1]),
        samples.len()
    )
}

/// Runs `kpilot status --json` under `/usr/bin/time -v`; returns (wall seconds, max RSS KiB, stdout bytes).
fn time_kpilot(kpilot: &str, bootstrap: &str) -> (f64, u64, usize) {
    let output = Command::new("/usr/bin/time")
        .args(["-v", kpilot, "status", "--json", "--bootstrap", bootstrap])
        .output()
        .expect("run /usr/bin/time (apt-get install -y time)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "kpilot status failed:\n{stderr}");
    let field = |name: &str| {
        stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .unwrap_or_else(|| panic!("no `{name}` in /usr/bin/time output:\n{stderr}"))
            .trim()
            .to_string()
    };
    let wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss):");
    let seconds: f64 = wall
        .split(':')
        .map(|p| p.parse::<f64>().expect("time field"))
        .fold(0.0, |acc, p| acc * 60.0 + p);
    let rss: u64 = field("Maximum resident set size (kbytes):")
        .parse()
        .expect("rss");
    (seconds, rss, output.stdout.len())
}

fn main() {
    let o = options();
    let started = Instant::now();
    let cluster = KafkaCluster::start(ClusterConfig::default()).expect("testbed cluster starts");
    let bootstrap = cluster.bootstrap();
    println!(
        "cluster: 3 brokers (Kafka {}), started in {:.1?}",
        kpilot_testbed::kafka_version(),
        started.elapsed()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut config = ClientConfig::new(BrokerAddress::parse_list(&bootstrap).expect("bootstrap"));
    config.api_timeout = Duration::from_secs(120);
    config.request_timeout = Duration::from_secs(60);

    let report = |label: &str| {
        let mut cold = Vec::new();
        let mut warm = Vec::new();
        let mut analysis = Vec::new();
        let mut partitions = 0;
        rt.block_on(async {
            for _ in 0..o.runs {
                let t = Instant::now();
                let admin = AdminClient::connect(config.clone()).await.expect("connect");
                let snapshot = admin.snapshot().await.expect("snapshot");
                cold.push(t.elapsed());
                assert!(snapshot.gaps.is_empty(), "{:?}", snapshot.gaps);
                let t = Instant::now();
                let snapshot = admin.snapshot().await.expect("snapshot");
                warm.push(t.elapsed());
                let t = Instant::now();
                let health = analyze(&snapshot.state);
                analysis.push(t.elapsed());
                partitions = health.totals.partitions;
                admin.close();
            }
        });
        println!("\n## {label}: {partitions} partitions");
        println!("connect + snapshot (in process): {}", stats(&mut cold));
        println!("snapshot, connected client:      {}", stats(&mut warm));
        println!("analysis (pure):                 {}", stats(&mut analysis));
        if let Some(kpilot) = &o.kpilot {
            let mut walls = Vec::new();
            let mut rss = Vec::new();
            let mut bytes = 0;
            for _ in 0..o.runs.min(5) {
                let (wall, kib, out) = time_kpilot(kpilot, &bootstrap);
                walls.push(Duration::from_secs_f64(wall));
                rss.push(kib);
                bytes = out;
            }
            rss.sort();
            println!("`kpilot status --json` wall time: {}", stats(&mut walls));
            println!(
                "`kpilot status --json` peak RSS:  min {} KiB, max {} KiB; JSON output {} bytes",
                rss[0],
                rss[rss.len() - 1],
                bytes
            );
        }
    };

    report("empty cluster");

    let per_topic = o.partitions / o.topics;
    let t = Instant::now();
    rt.block_on(async {
        let admin = AdminClient::connect(config.clone()).await.expect("connect");
        let topics: Vec<NewTopic> = (0..o.topics)
            .map(|i| {
                NewTopic::new(
                    TopicName::new(format!("bench-{i:03}")).expect("name"),
                    per_topic,
                    3,
                )
            })
            .collect();
        admin.create_topics(&topics).await.expect("create topics");
        // Wait until every partition has a leader and a full ISR, so the measured cluster is
        // healthy.
        loop {
            let health = admin.snapshot().await.expect("snapshot").analyze();
            if health.totals.partitions == o.partitions as usize
                && health.counts.offline == 0
                && health.counts.under_replicated == 0
            {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(300),
                "topics not in sync after 5 min"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    println!(
        "\ncreated {} topics x {per_topic} partitions (RF 3) in {:.1?}",
        o.topics,
        t.elapsed()
    );

    report(&format!(
        "{} topics x {per_topic} partitions, RF 3",
        o.topics
    ));
    drop(cluster);
}
