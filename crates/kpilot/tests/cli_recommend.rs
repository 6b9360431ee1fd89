//! `kpilot recommend` end to end on the real testbed: 3 KRaft brokers with the JMX exporter,
//! a real Prometheus scraping them, and `kpilot perf` producing a known rate (1 MB/s, then
//! 5 MB/s; bounded, loopback only). The measured ingress must be within 10% of the rate, from
//! Prometheus and from Kafka itself, and the recommendation must change when the rate does
//! (a tiny test catalog makes a few MB/s matter). Then a wrong metric name, an empty result
//! and Prometheus down must fail with a clear message instead of recommending on zeros.

mod common;

use common::{kpilot, stderr};

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use kpilot_testbed::{ClusterConfig, KafkaCluster, Prometheus, PrometheusConfig, ScrapeTarget};

/// A catalog with one family of very small brokers ("testbed"), so that a few MB/s matter:
/// 3 x tb.small holds about 5 MB/s at an 80% target, 3 x tb.medium about 19 MB/s.
const CATALOG: &str = r#"
schema_version = 1
region = "testbed"
currency = "USD"
hours_per_month = 730.0
network_mb_per_s_per_gbit = 128.0

[burst]
ebs_minutes_at_full_burst = 30.0
network_minutes_at_full_burst = 5.0

[local_nvme]
io_size_bytes = 4096

[storage.gp3]
baseline_mib_per_s = 125.0
max_mib_per_s = 1000.0
usd_per_gb_month = 0.08
usd_per_mib_per_s_month = 0.04
min_size_gb = 1.0
max_size_gb = 16384.0
search_mib_per_s = [125.0]

[storage.st1]
baseline_mib_per_s_per_tib = 40.0
burst_mib_per_s_per_tib = 250.0
max_mib_per_s = 500.0
usd_per_gb_month = 0.045
min_size_gb = 125.0
max_size_gb = 16384.0

[storage.io2]
max_mib_per_s = 4000.0
io_size_kib = 256.0
usd_per_gb_month = 0.125
usd_per_iops_month = 0.065
min_size_gb = 4.0
max_size_gb = 65536.0
search_mib_per_s = [500.0]

[[family]]
name = "tb"
description = "testbed-sized brokers"
sizes = [
  { size = "small", vcpu = 1, memory_gib = 1, network_gbit = 0.05, ebs_mb_per_s = 10, usd_per_hour = 0.01 },
  { size = "medium", vcpu = 2, memory_gib = 2, network_gbit = 0.2, ebs_mb_per_s = 40, usd_per_hour = 0.02 },
  { size = "large", vcpu = 4, memory_gib = 4, network_gbit = 0.8, ebs_mb_per_s = 160, usd_per_hour = 0.04 },
]
"#;

/// `kpilot perf` at `rate` for `secs` (no warm-up), one consumer group, in the background.
fn perf(bootstrap: &str, rate: &str, secs: u32) -> Load {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kpilot"))
        .args([
            "perf",
            "-b",
            bootstrap,
            "--rate",
            rate,
            "--warmup",
            "0s",
            "--duration",
            &format!("{secs}s"),
            "--record-size",
            "10KB",
            "--topic",
            "recommend-load",
            "--partitions",
            "3",
            "--replication-factor",
            "3",
            "--consumer-groups",
            "1",
            "--keep-topics",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kpilot perf");
    // Return once the measured phase has begun (its "step 1/1: ..." line): creating the topic
    // and joining the consumer group take seconds on a loaded machine, and a fixed sleep from
    // the spawn would put that idle time into the measurement window.
    let stderr = child.stderr.take().expect("piped stderr");
    let (started, started_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("step 1/") {
                let _ = started.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    if started_rx.recv_timeout(Duration::from_secs(90)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "kpilot perf did not start sending within 90 s: {}",
            reader.join().unwrap_or_default()
        );
    }
    Load { child, reader }
}

/// A running `kpilot perf` and the thread collecting its stderr.
struct Load {
    child: Child,
    reader: std::thread::JoinHandle<String>,
}

fn finish(load: Load) {
    let status = load.child.wait_with_output().expect("kpilot perf").status;
    let stderr = load.reader.join().unwrap_or_default();
    assert!(status.success(), "kpilot perf failed: {stderr}");
}

fn recommend_json(args: &[&str]) -> serde_json::Value {
    let o = kpilot(args);
    assert!(
        o.status.success(),
        "kpilot recommend failed: {}",
        stderr(&o)
    );
    serde_json::from_slice(&o.stdout).expect("JSON")
}

fn ingress(v: &serde_json::Value) -> f64 {
    v["measurement"]["ingress"]["mb_per_s"]
        .as_f64()
        .unwrap_or_else(|| panic!("no measured ingress: {}", v["measurement"]))
}

fn assert_within(measured: f64, expected: f64, what: &str) {
    let error = (measured - expected).abs() / expected;
    eprintln!(
        "{what}: measured {measured:.3} MB/s, produced {expected:.1} MB/s, error {:.1}%",
        error * 100.0
    );
    assert!(
        error <= 0.10,
        "{what}: {measured} MB/s not within 10% of {expected}"
    );
}

#[test]
fn recommend_follows_the_measured_load_and_refuses_missing_metrics() {
    let t = Instant::now();
    let cluster =
        KafkaCluster::start(ClusterConfig::default().with_metrics()).expect("start 3 brokers");
    let mut prometheus = Prometheus::start(
        &ScrapeTarget::of_cluster(&cluster),
        &PrometheusConfig::default(),
    )
    .expect("start Prometheus");
    prometheus
        .wait_for_targets(Duration::from_secs(60))
        .expect("every broker is scraped");
    let bootstrap = cluster.bootstrap();
    let url = prometheus.url();
    let catalog_path = cluster.dir().join("tiny-catalog.toml");
    std::fs::write(&catalog_path, CATALOG).expect("write catalog");
    let catalog = catalog_path.to_str().expect("utf-8 path");
    eprintln!("testbed up in {:?}", t.elapsed());

    let prom_args = |window: &'static str| -> Vec<String> {
        [
            "recommend",
            "-b",
            &bootstrap,
            "--prometheus",
            &url,
            "-i",
            "tb.large",
            "--catalog",
            catalog,
            "--window",
            window,
            "-c",
            "1",
            "--json",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let run =
        |args: &[String]| recommend_json(&args.iter().map(String::as_str).collect::<Vec<_>>());

    // The cluster runs as 3 x tb.large. At 1 MB/s that is oversized: scale down to tb.small.
    // Measure from 14 s after the producer began sending to 32 s: well inside its 40 s.
    let load = perf(&bootstrap, "1MB/s", 40);
    sleep(Duration::from_secs(32));
    let low = run(&prom_args("18s"));
    finish(load);
    assert_within(ingress(&low), 1.0, "Prometheus ingress at 1 MB/s");
    eprintln!("decision at 1 MB/s: {}", low["decision"]["reasons"]);
    assert_eq!(low["decision"]["action"], "change", "{}", low["decision"]);
    let low_target = low["decision"]["target"].as_str().expect("target");
    assert!(low_target.contains("3 x tb.small"), "{low_target}");
    assert_eq!(low["decision"]["reactive_fallback"], true);
    // Data moves are planned at the throttle `kpilot rebalance` would set for this shape.
    let throttle = low["decision"]["move_throttle_mb_per_s"]
        .as_f64()
        .expect("move throttle");
    let source = low["decision"]["move_throttle_source"]
        .as_str()
        .unwrap_or("");
    assert!(
        throttle > 0.0 && source.starts_with("capacity model"),
        "{throttle} MB/s: {source}"
    );
    assert_eq!(low["current_shape"]["brokers"], 3, "live broker count");

    // 5 MB/s: tb.small would not hold it: the recommendation becomes tb.medium, and the Kafka
    // source agrees on the rate.
    let load = perf(&bootstrap, "5MB/s", 48);
    sleep(Duration::from_secs(30));
    let high = run(&prom_args("16s"));
    // With --history the policy reads Prometheus' ingress over time (8 s steps over 2 min),
    // the measurement last.
    // It also saves that history as a simulator trace.
    let trace_path = cluster.dir().join("trace.csv");
    let mut with_history = prom_args("8s");
    with_history.extend([
        "--history".to_owned(),
        "2m".to_owned(),
        "--save-trace".to_owned(),
        trace_path.to_str().expect("utf-8 path").to_owned(),
    ]);
    let hist = run(&with_history);
    // A recommendation that fails after the history was read keeps the trace, and says so:
    // replication factor 4 does not fit the 3 live brokers (found only once they are counted).
    let kept_path = cluster.dir().join("kept.csv");
    let mut failing = with_history.clone();
    *failing.last_mut().expect("the trace path") =
        kept_path.to_str().expect("utf-8 path").to_owned();
    failing.extend(["--replication-factor".to_owned(), "4".to_owned()]);
    let failed = kpilot(&failing.iter().map(String::as_str).collect::<Vec<_>>());
    let from_kafka = recommend_json(&[
        "recommend",
        "-b",
        &bootstrap,
        "-i",
        "tb.large",
        "--catalog",
        catalog,
        "--window",
        "10s",
        "-c",
        "1",
        "--json",
    ]);
    finish(load);
    assert_within(ingress(&high), 5.0, "Prometheus ingress at 5 MB/s");
    assert_eq!(high["history"]["source"], "measurement");
    assert_eq!(high["history"]["samples"], 1);
    eprintln!("with --history: {}", hist["history"]);
    assert_eq!(
        hist["history"]["source"], "prometheus",
        "{}",
        hist["history"]
    );
    let samples = hist["history"]["samples"].as_u64().expect("samples");
    assert!(
        (6..=17).contains(&samples),
        "2 min at 8 s steps is at most 16 points plus the measurement: {samples}"
    );
    assert!(hist["history"]["hours"].as_f64() > Some(0.01));
    // The trace: one row per history step, Unix seconds 8 s apart, the ingress in MB/s (5
    // MB/s in its last steps, all within the producer's run) and the perf consumer's egress.
    let trace = std::fs::read_to_string(&trace_path).expect("the trace was written");
    eprintln!("trace:\n{trace}{}", hist["trace"]);
    let mut lines = trace.lines();
    assert_eq!(
        lines.next(),
        Some("t_seconds,ingress_mb_per_s,egress_mb_per_s"),
        "{trace}"
    );
    let rows: Vec<Vec<f64>> = lines
        .map(|l| l.split(',').map(|v| v.parse().expect("number")).collect())
        .collect();
    assert_eq!(hist["trace"]["rows"].as_u64(), Some(rows.len() as u64));
    assert_eq!(hist["trace"]["egress"], true, "{}", hist["trace"]);
    assert_eq!(
        hist["trace"]["egress_rows"].as_u64(),
        Some(rows.len() as u64),
        "{}",
        hist["trace"]
    );
    assert_eq!(
        rows.len() as u64,
        samples - 1,
        "the history's points, the measurement aside"
    );
    assert!(rows.windows(2).all(|w| w[1][0] - w[0][0] == 8.0), "{trace}");
    assert_eq!(failed.status.code(), Some(2), "{}", stderr(&failed));
    assert!(failed.stdout.is_empty(), "no report");
    let e = stderr(&failed);
    assert!(
        e.contains("replication factor 4 is above the broker count 3"),
        "{e}"
    );
    // The failing run read Prometheus a moment after the first: its 2-minute window may hold
    // one 8 s step more or less. The note names what it wrote.
    let kept = std::fs::read_to_string(&kept_path).expect("the trace was kept");
    assert_eq!(kept.lines().next(), trace.lines().next(), "{kept}");
    let kept_rows = kept.lines().count() - 1;
    assert!(
        kept_rows.abs_diff(rows.len()) <= 1,
        "{kept}\nagainst\n{trace}"
    );
    assert!(
        e.contains(&format!(
            "the trace was saved: {kept_rows} row(s) written to {}",
            kept_path.display()
        )),
        "{e}"
    );
    let last = rows.last().expect("a row");
    assert_within(last[1], 5.0, "the trace's last ingress");
    assert_within(last[2], 5.0, "the trace's last egress (one consumer group)");
    // ... and the simulator replays it.
    let sim = kpilot(&[
        "simulate",
        "--trace",
        trace_path.to_str().expect("utf-8 path"),
        "--no-report",
        "--json",
    ]);
    assert!(sim.status.success(), "{}", stderr(&sim));
    let sim: serde_json::Value = serde_json::from_slice(&sim.stdout).expect("simulate json");
    // The simulator averages each minute of the rows: its peak is within theirs.
    let (peak, row_max) = (
        sim["peak_mb_per_s"].as_f64().expect("peak"),
        rows.iter().map(|r| r[1]).fold(0.0, f64::max),
    );
    assert!(
        peak > 0.0 && peak <= row_max * 1.001,
        "{peak} vs {row_max}: {sim}"
    );
    assert!(sim["minutes"].as_u64() >= Some(1), "{sim}");
    assert_within(ingress(&from_kafka), 5.0, "Kafka ingress at 5 MB/s");
    eprintln!("decision at 5 MB/s: {}", high["decision"]["reasons"]);
    assert_eq!(high["decision"]["action"], "change", "{}", high["decision"]);
    let high_target = high["decision"]["target"].as_str().expect("target");
    assert!(high_target.contains("3 x tb.medium"), "{high_target}");
    // The cheapest shapes listed hold what was measured.
    for v in [&low, &high] {
        let cheapest = v["cheapest"].as_array().expect("cheapest shapes");
        assert!(!cheapest.is_empty(), "{v}");
        for c in cheapest {
            let limit = c["recommended_limit_mb_per_s"].as_f64().expect("limit");
            assert!(limit >= ingress(v), "{c} does not hold {}", ingress(v));
        }
    }
    assert_eq!(from_kafka["decision"]["target"], high["decision"]["target"]);
    assert!(
        from_kafka["measurement"]["consumer_groups"]
            .as_array()
            .is_some_and(|g| !g.is_empty()),
        "the Kafka source sees the perf consumer group: {}",
        from_kafka["measurement"]
    );
    assert!(
        high["utilization"]["of_sustained"].as_f64() > low["utilization"]["of_sustained"].as_f64()
    );
    eprintln!(
        "1 MB/s: {} -> {low_target}; 5 MB/s: -> {high_target} ({})",
        low["current_shape"]["shape"], high["decision"]["mechanism"]
    );

    // The table for people, against the data Prometheus still holds.
    let table = kpilot(&[
        "recommend",
        "-b",
        &bootstrap,
        "--prometheus",
        &url,
        "-i",
        "tb.large",
        "--catalog",
        catalog,
        "--window",
        "60s",
        "-c",
        "1",
    ]);
    assert!(table.status.success(), "{}", stderr(&table));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("decision:") && text.contains("bottleneck"),
        "{text}"
    );
    // With every shape the policy weighed and its verdict on each.
    assert!(
        text.contains("shapes considered, cheapest first") && text.contains("feasible"),
        "{text}"
    );
    eprintln!("{text}");

    // A wrong metric name: exit 1, the name and the reason, no recommendation.
    let o = kpilot(&[
        "recommend",
        "-b",
        &bootstrap,
        "--prometheus",
        &url,
        "-i",
        "tb.large",
        "--catalog",
        catalog,
        "--window",
        "60s",
        "--prom-bytes-in",
        "kafka_server_bytes_in_wrong_total",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "nothing recommended");
    let e = stderr(&o);
    assert!(e.contains("kafka_server_bytes_in_wrong_total"), "{e}");
    assert!(e.contains("never read as zero"), "{e}");

    // An empty result (a selector that matches nothing): exit 1 as well.
    let o = kpilot(&[
        "recommend",
        "-b",
        &bootstrap,
        "--prometheus",
        &url,
        "-i",
        "tb.large",
        "--catalog",
        catalog,
        "--window",
        "60s",
        "--prom-selector",
        "job=\"elsewhere\"",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("job=\"elsewhere\""), "{}", stderr(&o));

    // Prometheus down: exit 1 naming the URL.
    prometheus.stop();
    let o = kpilot(&[
        "recommend",
        "-b",
        &bootstrap,
        "--prometheus",
        &url,
        "-i",
        "tb.large",
        "--catalog",
        catalog,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("cannot reach Prometheus at {url}")),
        "{}",
        stderr(&o)
    );

    // Invalid input: exit 2 before anything is measured (text mode says when it measures).
    let base = [
        "recommend",
        "-b",
        &bootstrap,
        "-i",
        "tb.large",
        "--catalog",
        catalog,
    ];
    for bad in [
        &["--max-brokers", "2"][..],
        &["--families", "nosuch"][..],
        &["--brokers", "2"][..],
    ] {
        let o = kpilot(&[&base[..], bad].concat());
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("measuring"), "{bad:?}: {}", stderr(&o));
    }
    let o = kpilot(&[
        "recommend",
        "-b",
        &bootstrap,
        "-i",
        "tb.huge",
        "--catalog",
        catalog,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = kpilot(&[
        "recommend",
        "-b",
        &bootstrap,
        "--shape",
        "/nonexistent/shape.toml",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = kpilot(&[
        "recommend",
        "-b",
        &bootstrap,
        "-i",
        "tb.large",
        "--catalog",
        catalog,
        "--history",
        "7d",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--history 7d needs --prometheus"),
        "{}",
        stderr(&o)
    );
    // A trace needs a history to save.
    let no_history = cluster.dir().join("never.csv");
    let no_history = no_history.to_str().expect("utf-8 path");
    for extra in [&[][..], &["--history", "0"][..]] {
        let trace = [
            "--prometheus",
            "http://127.0.0.1:1",
            "--save-trace",
            no_history,
        ];
        let o = kpilot(&[&base[..], &trace[..], extra].concat());
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("--history"), "{}", stderr(&o));
        assert!(!Path::new(no_history).exists());
    }
    // Bad Prometheus settings are refused before Kafka is asked: with a bootstrap nobody
    // answers, the usage error (2) comes first, not the connection's failure (1).
    for bad in [
        &["--prometheus", "notaurl"][..],
        &[
            "--prometheus",
            "http://127.0.0.1:1",
            "--prom-bytes-in",
            "no such",
        ][..],
    ] {
        let unreachable = [
            "recommend",
            "-b",
            "127.0.0.1:1",
            "-i",
            "tb.large",
            "--catalog",
            catalog,
        ];
        let o = kpilot(&[&unreachable[..], bad].concat());
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("invalid metrics setting"),
            "{}",
            stderr(&o)
        );
    }
    assert!(Path::new(catalog).exists());
    eprintln!("test took {:?}", t.elapsed());
}
