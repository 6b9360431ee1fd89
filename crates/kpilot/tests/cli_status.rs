//! `kpilot status` end to end: the real binary against a real 3-broker KRaft cluster, and its
//! exit codes for an unreachable address and a bad client configuration.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kpilot_testbed::{ClusterConfig, KafkaCluster};

fn kpilot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpilot"))
        .args(args)
        .output()
        .expect("run kpilot")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn status_reports_a_healthy_cluster_then_a_crashed_broker() {
    let mut cluster = KafkaCluster::start(ClusterConfig::default()).expect("start 3 brokers");
    let bootstrap = cluster.bootstrap();

    let o = kpilot(&["status", "--bootstrap", &bootstrap, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["health"]["status"], "healthy", "{v}");
    assert_eq!(
        v["health"]["safe_to_stop"].as_array().map(Vec::len),
        Some(3),
        "{v}"
    );

    let table = kpilot(&["status", "--bootstrap", &bootstrap, "--fail-on", "degraded"]);
    assert!(
        table.status.success(),
        "healthy passes --fail-on: {}",
        stderr(&table)
    );
    let out = String::from_utf8_lossy(&table.stdout);
    for id in ["1", "2", "3"] {
        assert!(out.contains(id), "broker {id} missing in:\n{out}");
    }

    // A crashed broker: the verdict must stop being healthy.
    cluster.kill_broker(3).expect("kill broker 3");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = kpilot(&["status", "--bootstrap", &bootstrap, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        if o.status.success()
            && v["health"]["status"] != "healthy"
            && !v["health"]["status"].is_null()
        {
            // --fail-on turns that verdict into exit code 1, the report still printed.
            let verdict = v["health"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let o = kpilot(&["status", "--bootstrap", &bootstrap, "--fail-on", "degraded"]);
            assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
            assert!(stderr(&o).contains("--fail-on degraded"), "{}", stderr(&o));
            assert!(String::from_utf8_lossy(&o.stdout).contains("Cluster "));
            let o = kpilot(&["status", "--bootstrap", &bootstrap, "--fail-on", "critical"]);
            let expected = if verdict == "critical" {
                Some(1)
            } else {
                Some(0)
            };
            assert_eq!(o.status.code(), expected, "{verdict}: {}", stderr(&o));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status never noticed the crash: {v}"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[test]
fn unreachable_bootstrap_fails_within_the_timeout_naming_the_address() {
    // A port nothing listens on (bind, note, close).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let address = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let o = kpilot(&["status", "--bootstrap", &address, "--timeout", "10s"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(stderr(&o).contains(&address), "{}", stderr(&o));
}

#[test]
fn bad_client_configuration_is_a_usage_error() {
    let o = kpilot(&["status"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = kpilot(&[
        "status",
        "--bootstrap",
        "127.0.0.1:9092",
        "--command-config",
        "/nonexistent/client.properties",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("/nonexistent/client.properties"),
        "{}",
        stderr(&o)
    );
}
