//! `kpilot status` end to end: the real binary against a real 3-broker KRaft cluster (healthy,
//! replication throttles left behind, a crashed broker), and its exit codes for an unreachable
//! address and a bad client configuration.

mod common;

use common::{kpilot, stderr};

use std::time::{Duration, Instant};

use kpilot_cluster::{BrokerId, TopicName};
use kpilot_kafka::{AdminClient, BrokerAddress, ClientConfig, ConfigOp, ConfigResource, NewTopic};
use kpilot_testbed::{ClusterConfig, KafkaCluster};

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

    throttles_left_behind_are_reported_until_removed(&bootstrap);

    // A crashed broker. Right after the kill the verdict may be degraded (replicas drop out of
    // the ISR first); once the controller fences the broker it is critical, naming broker 3.
    // Only that final verdict is asserted, so the test does not race the fencing.
    cluster.kill_broker(3).expect("kill broker 3");
    let finding = poll_status_for(&bootstrap, Duration::from_secs(60), |v| {
        findings(v)
            .find(|f| f["issue"]["kind"] == "broker_down" && f["issue"]["broker"] == 3)
            .cloned()
    });
    assert_eq!(finding["severity"], "critical", "{finding}");
    // --fail-on turns that verdict into exit code 1, the report still printed.
    for level in ["degraded", "critical"] {
        let o = kpilot(&["status", "--bootstrap", &bootstrap, "--fail-on", level]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "--fail-on {level}: {}",
            stderr(&o)
        );
        assert!(
            stderr(&o).contains(&format!("--fail-on {level}")),
            "{}",
            stderr(&o)
        );
        assert!(String::from_utf8_lossy(&o.stdout).contains("Cluster "));
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
    // A timeout too long for the clock: refused by the parser (it used to panic converting it).
    let o = kpilot(&[
        "status",
        "--bootstrap",
        "127.0.0.1:9092",
        "--timeout",
        "99999999999999999999d",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is too long: at most 36500d (100 years)"),
        "{}",
        stderr(&o)
    );
}

/// Throttles set as an interrupted reassignment tool leaves them (a rate on broker 2, replica
/// lists on a topic, no reassignment running): `status` turns degraded and names both; once
/// they are deleted it is healthy again. Config changes reach the brokers through the metadata
/// log, so each verdict is polled for, up to 15 s.
fn throttles_left_behind_are_reported_until_removed(bootstrap: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let topic = TopicName::new("clicks").expect("topic");
    let broker = ConfigResource::Broker(BrokerId(2));
    let lists = ConfigResource::Topic(topic.clone());
    let admin = runtime.block_on(async {
        let config = ClientConfig::new(BrokerAddress::parse_list(bootstrap).expect("bootstrap"));
        let admin = AdminClient::connect(config).await.expect("connect");
        admin
            .create_topics(&[NewTopic::new(topic.clone(), 3, 3)])
            .await
            .expect("create topic");
        admin.wait_for_topic(&topic).await.expect("topic ready");
        admin
            .alter_configs(
                &broker,
                &[ConfigOp::set(
                    "leader.replication.throttled.rate",
                    1_048_576,
                )],
            )
            .await
            .expect("set the rate");
        admin
            .alter_configs(
                &lists,
                &[ConfigOp::set(
                    "follower.replication.throttled.replicas",
                    "*",
                )],
            )
            .await
            .expect("set the replica list");
        admin
    });
    let finding = poll_status(bootstrap, |v| {
        findings(v)
            .find(|f| {
                f["issue"]["kind"] == "throttles_without_reassignment" && f["issue"]["count"] == 2
            })
            .cloned()
    });
    let message = finding["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("broker 2, topic clicks") && message.contains("kpilot rebalance --cancel"),
        "{finding}"
    );
    assert_eq!(finding["severity"], "warning", "{finding}");
    let o = kpilot(&["status", "--bootstrap", bootstrap]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("replication throttles are set"),
        "the table names the finding too"
    );
    // A warning-only cluster fails `--fail-on degraded` and passes `--fail-on critical`.
    let o = kpilot(&["status", "--bootstrap", bootstrap, "--fail-on", "degraded"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = kpilot(&["status", "--bootstrap", bootstrap, "--fail-on", "critical"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    runtime.block_on(async {
        admin
            .alter_configs(
                &broker,
                &[ConfigOp::delete("leader.replication.throttled.rate")],
            )
            .await
            .expect("delete the rate");
        admin
            .alter_configs(
                &lists,
                &[ConfigOp::delete("follower.replication.throttled.replicas")],
            )
            .await
            .expect("delete the replica list");
        admin.close();
    });
    poll_status(bootstrap, |v| {
        (v["health"]["status"] == "healthy").then_some(())
    });
}

/// The findings of a `kpilot status --json` report.
fn findings(v: &serde_json::Value) -> impl Iterator<Item = &serde_json::Value> {
    v["health"]["findings"].as_array().into_iter().flatten()
}

/// Runs `kpilot status --json` until `done` finds what it looks for (up to 15 s).
fn poll_status<T>(bootstrap: &str, done: impl Fn(&serde_json::Value) -> Option<T>) -> T {
    poll_status_for(bootstrap, Duration::from_secs(15), done)
}

/// [`poll_status`] with its own limit.
fn poll_status_for<T>(
    bootstrap: &str,
    limit: Duration,
    done: impl Fn(&serde_json::Value) -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let o = kpilot(&["status", "--bootstrap", bootstrap, "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
        if let Some(found) = done(&v) {
            return found;
        }
        assert!(Instant::now() < deadline, "status never got there: {v}");
        std::thread::sleep(Duration::from_millis(500));
    }
}
