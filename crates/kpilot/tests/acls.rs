//! Running under ACLs: a real cluster with KRaft's StandardAuthorizer, kpilot connecting as a
//! SASL user that has only the ACLs granted here (with Kafka's own `AclCommand`, over the
//! PLAINTEXT super-user listener). Shows that a snapshot with too few ACLs says what is missing
//! and which ACL to grant, that a topic the user cannot see still makes the brokers storing it
//! unsafe to stop (its replicas show in DescribeLogDirs) and makes `kpilot rebalance` refuse to
//! plan, that the read-only ACL set documented in docs/kafka-admin.md ("Permissions") is
//! enough for a complete snapshot and a healthy `kpilot status`, and that the idempotent
//! producer works with Write on a topic. Then the `rebalance` row: adding a broker is refused
//! at the first write, leaving nothing, and completes with that row's ACLs. One cluster for
//! the file.

use std::collections::BTreeSet;
use std::future::Future;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kpilot_cluster::{BrokerId, HealthStatus, Issue, StopBlockReason, TopicName, TopicPartition};
use kpilot_kafka::{
    AdminClient, BrokerAddress, ClientConfig, ConfigOp, ConfigResource, KafkaErrorCode, NewTopic,
};
use kpilot_testbed::{ClusterConfig, KafkaCluster, SaslMechanism};

mod common;
use common::{grant, text};

fn topic(name: &str) -> TopicName {
    TopicName::new(name).unwrap()
}

fn kpilot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpilot"))
        .args(args)
        .output()
        .expect("run kpilot")
}

/// Polls `check` every 500 ms until it returns `Ok`, or panics after `timeout` with `what` and
/// the last observation. (ACLs, like configs, reach each broker through the metadata log.)
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() >= deadline => {
                panic!("{what}: not reached within {timeout:?}; last observation: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

#[test]
fn snapshots_under_acls_say_what_is_missing_and_never_call_a_hidden_topic_safe() {
    let mut cluster = KafkaCluster::start(ClusterConfig {
        secure: true,
        authorizer: true,
        ..ClusterConfig::default()
    })
    .expect("start 3 brokers with the StandardAuthorizer");
    let security = cluster.security().expect("secure listener").clone();
    let user = security
        .user(SaslMechanism::Plain)
        .unwrap()
        .username
        .clone();
    let principal = format!("User:{user}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    // The super user (PLAINTEXT) creates a topic the user will see and one it will not.
    let root_config = ClientConfig::new(BrokerAddress::parse_list(&cluster.bootstrap()).unwrap());
    rt.block_on(async {
        let root = AdminClient::connect(root_config).await.unwrap();
        root.create_topics(&[
            NewTopic::new(topic("orders"), 3, 3),
            NewTopic::new(topic("secret"), 2, 3),
        ])
        .await
        .unwrap();
        root.wait_for_topic(&topic("orders")).await.unwrap();
        root.wait_for_topic(&topic("secret")).await.unwrap();
    });

    // Describe on the cluster, Describe and DescribeConfigs on `orders` only.
    grant(
        &cluster.bootstrap(),
        &principal,
        &["Describe"],
        &["--cluster"],
    );
    grant(
        &cluster.bootstrap(),
        &principal,
        &["Describe", "DescribeConfigs"],
        &["--topic", "orders"],
    );

    let mut config = ClientConfig::from_file(&security.client_properties(SaslMechanism::Plain))
        .unwrap()
        .config;
    config.bootstrap = BrokerAddress::parse_list(&cluster.secure_bootstrap().unwrap()).unwrap();
    config.connect_timeout = Duration::from_secs(5);
    config.request_timeout = Duration::from_secs(10);
    config.api_timeout = Duration::from_secs(20);
    let all: BTreeSet<BrokerId> = [1, 2, 3].map(BrokerId).into_iter().collect();

    rt.block_on(async {
        let user_admin = AdminClient::connect(config.clone()).await.unwrap();

        // 1. Too few ACLs: the parts that need more are gaps naming the ACL; `secret` is not
        //    in Metadata but its replicas are in every broker's log dirs, so no broker is safe.
        let snapshot = eventually(
            "the user's ACLs apply on every broker",
            Duration::from_secs(30),
            || async {
                let s = user_admin.snapshot().await.map_err(|e| e.to_string())?;
                let visible =
                    s.state.topics.contains_key(&topic("orders")) && s.state.log_dirs.len() == 3;
                visible
                    .then_some(s)
                    .ok_or_else(|| "orders not visible yet".to_string())
            },
        )
        .await;
        assert!(!snapshot.state.topics.contains_key(&topic("secret")));
        let gaps: Vec<&str> = snapshot.gaps.iter().map(|g| g.what.as_str()).collect();
        assert_eq!(
            gaps,
            [
                "throttle rates of broker 1",
                "throttle rates of broker 2",
                "throttle rates of broker 3"
            ],
            "{:#?}",
            snapshot.gaps
        );
        for gap in &snapshot.gaps {
            assert!(
                gap.error.contains("CLUSTER_AUTHORIZATION_FAILED")
                    && gap
                        .error
                        .contains("needs the DescribeConfigs ACL on the cluster"),
                "{}",
                gap.error
            );
        }
        let health = snapshot.analyze();
        assert!(
            health.safe_to_stop.is_empty(),
            "{:#?}",
            health.stop_blockers
        );
        assert!(health.blockers_of(BrokerId(1)).iter().all(|b| {
            b.reason == StopBlockReason::TopicNotVisible
                && b.topic_partition.topic == topic("secret")
        }));
        let hidden = health
            .findings
            .iter()
            .find(|f| matches!(f.issue, Issue::TopicsNotVisible { .. }))
            .unwrap_or_else(|| panic!("{:#?}", health.findings));
        assert_eq!(
            hidden.issue,
            Issue::TopicsNotVisible {
                examples: vec![topic("secret")],
                count: 1
            }
        );
        eprintln!("with too few ACLs: {}", hidden.message);
        eprintln!(
            "  gap: {}: {}",
            snapshot.gaps[0].what, snapshot.gaps[0].error
        );

        // A write it may not do names the ACL too, and changes nothing.
        let err = user_admin
            .alter_configs(
                &ConfigResource::Topic(topic("orders")),
                &[ConfigOp::set("leader.replication.throttled.replicas", "*")],
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.kafka_error(),
            Some(KafkaErrorCode::TopicAuthorizationFailed)
        );
        assert!(
            err.to_string()
                .contains("needs the AlterConfigs ACL on the topic"),
            "{err}"
        );
        let orders_0 = TopicPartition::new(topic("orders"), 0);
        let err = user_admin
            .produce(&orders_0, &[(None, Some(bytes::Bytes::from_static(b"x")))])
            .await
            .unwrap_err();
        assert_eq!(
            err.kafka_error(),
            Some(KafkaErrorCode::ClusterAuthorizationFailed)
        );
        assert!(err.to_string().contains("IdempotentWrite"), "{err}");
    });

    // The same through the CLI: `status` shows the gaps and the hidden topic, `rebalance`
    // refuses to plan a drain that would leave the hidden topic's replicas behind.
    let props = security.client_properties(SaslMechanism::Plain);
    let props = props.to_str().expect("UTF-8 path");
    let secure = cluster.secure_bootstrap().unwrap();
    let as_user = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--bootstrap", secure.as_str(), "--command-config", props]);
        kpilot(&all)
    };
    let o = as_user(&["status", "--json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["health"]["safe_to_stop"], serde_json::json!([]), "{v}");
    assert_eq!(v["health"]["status"], "degraded", "{v}");
    let kinds: Vec<&str> = v["health"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["issue"]["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"topics_not_visible"), "{kinds:?}");
    assert_eq!(v["gaps"].as_array().map(Vec::len), Some(3), "{v}");
    let o = as_user(&["status"]);
    let table = text(&o.stdout);
    eprintln!("kpilot status as {user} with too few ACLs:\n{table}");
    assert!(
        table.contains("not visible in Metadata") && table.contains("secret"),
        "{table}"
    );
    assert!(
        table.contains("needs the DescribeConfigs ACL on the cluster"),
        "{table}"
    );
    let o = as_user(&["rebalance", "--remove-brokers", "3", "--dry-run"]);
    let err = text(&o.stderr);
    eprintln!("kpilot rebalance as {user} with too few ACLs:\n{err}");
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not visible to this principal") && err.contains("secret"),
        "{err}"
    );
    // `recommend` measuring from Kafka alone: the hidden topic's load cannot be measured, so
    // there is no ingress to recommend from (not a smaller one).
    let recommend = ["recommend", "-i", "m7g.large", "--window", "2s", "-c", "1"];
    let o = as_user(&recommend);
    let err = text(&o.stderr);
    eprintln!("kpilot recommend as {user} with too few ACLs:\n{err}");
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot recommend")
            && err.contains("not in Metadata (e.g. secret)")
            && err.contains("or measure with --prometheus"),
        "{err}"
    );

    // 2. The read-only set of docs/kafka-admin.md: Describe and DescribeConfigs on the cluster
    //    and on every topic. Plus Write on `orders` for the producer.
    grant(
        &cluster.bootstrap(),
        &principal,
        &["DescribeConfigs"],
        &["--cluster"],
    );
    grant(
        &cluster.bootstrap(),
        &principal,
        &["Describe", "DescribeConfigs"],
        &["--topic", "*"],
    );
    grant(
        &cluster.bootstrap(),
        &principal,
        &["Write"],
        &["--topic", "orders"],
    );

    rt.block_on(async {
        let user_admin = AdminClient::connect(config).await.unwrap();
        let snapshot = eventually(
            "the read-only ACL set gives a complete snapshot",
            Duration::from_secs(30),
            || async {
                let s = user_admin.snapshot().await.map_err(|e| e.to_string())?;
                if s.gaps.is_empty() && s.state.topics.contains_key(&topic("secret")) {
                    Ok(s)
                } else {
                    Err(format!(
                        "gaps {:?}, topics {:?}",
                        s.gaps,
                        s.state.topics.keys()
                    ))
                }
            },
        )
        .await;
        let health = snapshot.analyze();
        assert_eq!(health.safe_to_stop, all, "{:#?}", health.stop_blockers);
        assert_eq!(
            health.status,
            HealthStatus::Healthy,
            "{:#?}",
            health.findings
        );

        // Write on a topic is enough for the idempotent producer's InitProducerId.
        let orders_0 = TopicPartition::new(topic("orders"), 0);
        let base = user_admin
            .produce(&orders_0, &[(None, Some(bytes::Bytes::from_static(b"x")))])
            .await
            .unwrap();
        assert_eq!(base, 0);
    });

    let o = as_user(&["status", "--fail-on", "degraded"]);
    assert!(
        o.status.success(),
        "status with the read-only ACL set: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let o = as_user(&recommend);
    assert!(
        o.status.success(),
        "recommend with the read-only ACL set: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );

    rebalance_needs_the_write_acls_of_its_row(&mut cluster, &principal, props, &secure);
}

/// The `rebalance` row of docs/kafka-admin.md's table: with the read-only set, adding a broker
/// is refused before the first write and leaves nothing behind; with AlterConfigs on the topic
/// of its first batches only it is refused naming the other, with no batch moved; with Alter and AlterConfigs on
/// the cluster and AlterConfigs on every topic it moves data onto the new broker.
fn rebalance_needs_the_write_acls_of_its_row(
    cluster: &mut KafkaCluster,
    principal: &str,
    props: &str,
    secure: &str,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let root_config = ClientConfig::new(BrokerAddress::parse_list(&cluster.bootstrap()).unwrap());
    let root = rt.block_on(AdminClient::connect(root_config)).unwrap();
    // Some data to move: 200 KB in every partition of `orders`, 300 KB in those of `secret`
    // (moves go largest first: `secret`'s before `orders`').
    rt.block_on(async {
        for (name, partitions, records) in [("orders", 3, 20), ("secret", 2, 30)] {
            let batch = vec![(None, Some(bytes::Bytes::from(vec![b'x'; 10_000]))); records];
            for p in 0..partitions {
                let tp = TopicPartition::new(topic(name), p);
                root.produce(&tp, &batch).await.expect("fill");
            }
        }
    });
    assert_eq!(cluster.add_broker().expect("add broker 4"), 4);
    let dir = std::env::temp_dir().join(format!("kpilot-acls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("journal dir");
    let journal = |n: u32| dir.join(format!("rebalance-{n}.json"));
    let rebalance = |journal: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "rebalance",
            "--add-brokers",
            "4",
            "--throttle",
            "10MB/s",
            "--json",
            "--journal",
            journal.to_str().unwrap(),
            "--bootstrap",
            secure,
            "--command-config",
            props,
        ];
        args.extend_from_slice(extra);
        kpilot(&args)
    };
    let replicas_on_4 = || {
        rt.block_on(async {
            let metadata = root.refresh_metadata().await.unwrap();
            metadata
                .topics
                .values()
                .flat_map(|t| t.partitions.values())
                .filter(|p| p.replicas.contains(&BrokerId(4)))
                .count()
        })
    };
    let resources: Vec<ConfigResource> = (1..=4)
        .map(|b| ConfigResource::Broker(BrokerId(b)))
        .chain(["orders", "secret"].map(|t| ConfigResource::Topic(topic(t))))
        .collect();
    let leftovers = || {
        rt.block_on(async {
            // Broker 4 is new to this client: read the metadata again before asking it.
            root.refresh_metadata().await.unwrap();
            let moving = root.list_partition_reassignments().await.unwrap().len();
            let throttles = kpilot_reassign::throttle_overrides(&root, &resources)
                .await
                .unwrap();
            (moving, throttles.len())
        })
    };

    // The read-only set: refused at the first write, nothing left behind.
    let o = rebalance(&journal(0), &[]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("AUTHORIZATION_FAILED") && err.contains("needs the AlterConfigs ACL"),
        "{err}"
    );
    assert!(
        !err.contains("cleanup also failed"),
        "nothing was written, so nothing is cleaned up: {err}"
    );
    assert_eq!(leftovers(), (0, 0), "a refused rebalance leaves nothing");
    eprintln!("rebalance as {principal} with the read-only ACLs:\n{err}");

    // One partition per batch, `secret`'s first (the plan says so), then `orders`'. With the
    // cluster's ACLs and AlterConfigs on `secret` only, the topics of every batch are asked
    // before the first: the run is refused naming `orders`, with no batch moved (it used to
    // move `secret`'s batches, then stop at the first of `orders`). ACLs reach each broker
    // through the metadata log: a run refused by a broker that has not applied them yet is
    // retried (it left nothing, as shown above), for at most 30 s.
    // The dry run, still with the read-only set: the plan, and the refusal a run would meet
    // (the same requests, which change nothing), exit 1.
    let o = rebalance(&journal(100), &["--max-per-batch", "1", "--dry-run"]);
    assert_eq!(o.status.code(), Some(1), "dry run: {}", text(&o.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).expect("dry-run JSON");
    let refused = plan["refused"].as_str().unwrap_or_default();
    assert!(
        refused.contains("needs the AlterConfigs ACL")
            && text(&o.stderr).contains("would be refused"),
        "{plan}"
    );
    assert_eq!(leftovers(), (0, 0), "a dry run leaves nothing");
    eprintln!("dry run with the read-only set: refused: {refused}");
    let moved: Vec<String> = plan["plan"]["moves"]
        .as_array()
        .expect("moves")
        .iter()
        .map(|m| m["partition"].as_str().expect("partition").to_owned())
        .collect();
    assert!(
        moved.first().is_some_and(|m| m.starts_with("secret-"))
            && moved.iter().any(|m| m.starts_with("orders-")),
        "the plan moves `secret` first, then `orders`: {moved:?}"
    );
    grant(
        &cluster.bootstrap(),
        principal,
        &["Alter", "AlterConfigs"],
        &["--cluster"],
    );
    grant(
        &cluster.bootstrap(),
        principal,
        &["AlterConfigs"],
        &["--topic", "secret"],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut attempt = 1;
    let err = loop {
        let o = rebalance(&journal(attempt), &["--max-per-batch", "1"]);
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        if err.contains("topic orders") || Instant::now() >= deadline {
            break err;
        }
        attempt += 1;
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        err.contains("topic orders") && err.contains("needs the AlterConfigs ACL on the topic"),
        "{err}"
    );
    assert_eq!(leftovers(), (0, 0), "a refused rebalance leaves nothing");
    assert_eq!(replicas_on_4(), 0, "no batch moved: {err}");
    eprintln!("rebalance as {principal} with AlterConfigs on `secret` only:\n{err}");

    grant(
        &cluster.bootstrap(),
        principal,
        &["AlterConfigs"],
        &["--topic", "*"],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    attempt += 1;
    let v: serde_json::Value = loop {
        let o = rebalance(&journal(attempt), &[]);
        if o.status.success() {
            break serde_json::from_slice(&o.stdout).expect("JSON");
        }
        let err = text(&o.stderr);
        assert!(
            err.contains("AUTHORIZATION_FAILED") && Instant::now() < deadline,
            "rebalance with the rebalance ACLs (attempt {attempt}): {err}"
        );
        attempt += 1;
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(v["report"]["status"]["status"], "completed", "{v}");
    let on_4 = replicas_on_4();
    assert!(on_4 >= 1, "broker 4 got no replica: {v}");
    assert_eq!(leftovers(), (0, 0), "a completed rebalance leaves nothing");
    eprintln!(
        "rebalance as {principal} with the rebalance ACLs: {on_4} replica(s) moved to broker 4 (attempt {attempt})"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
