//! `kpilot rebalance` end to end: argument errors (exit code 2), then the real binary against a
//! real cluster that just got a 4th broker: the dry run's plan (bytes, lower bound, balance per
//! broker, as a table and as JSON), a run interrupted with SIGINT (rolled back, throttles
//! removed, exit 1), the same command resuming and completing it, and the errors for an
//! unregistered broker and a `--cancel` with no journal.

mod common;

use common::{kpilot, stderr};

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use kpilot_cluster::{BrokerId, TopicName, TopicPartition};
use kpilot_kafka::{AdminClient, BrokerAddress, ClientConfig, ConfigOp, ConfigResource, NewTopic};
use kpilot_testbed::{ClusterConfig, KafkaCluster};

#[test]
fn rebalance_needs_exactly_one_mode() {
    let none = kpilot(&["rebalance", "--bootstrap", "127.0.0.1:1"]);
    assert_eq!(none.status.code(), Some(2), "{}", stderr(&none));
    let both = kpilot(&[
        "rebalance",
        "--bootstrap",
        "127.0.0.1:1",
        "--add-brokers",
        "4",
        "--remove-brokers",
        "3",
    ]);
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
    let bad_rate = kpilot(&[
        "rebalance",
        "--bootstrap",
        "127.0.0.1:1",
        "--full",
        "--throttle",
        "fast",
    ]);
    assert_eq!(bad_rate.status.code(), Some(2), "{}", stderr(&bad_rate));
    // Throttle settings are checked before the cluster is asked (nobody answers at port 1:
    // the usage error comes first).
    for (bad, says) in [
        (&["--throttle", "0MB/s"][..], "too low to finish a move"),
        (&["--instance", "m7g.nope"][..], "invalid --instance"),
    ] {
        let o = kpilot(&[&["rebalance", "-b", "127.0.0.1:1", "--full"][..], bad].concat());
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{bad:?}: {}", stderr(&o));
    }
    let help = kpilot(&["rebalance", "--help"]);
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        text.contains("--add-brokers") && text.contains("Examples:"),
        "{text}"
    );
}

#[test]
fn rebalance_plans_then_moves_data_onto_a_new_broker() {
    let mut cluster = KafkaCluster::start(ClusterConfig::default()).expect("start 3 brokers");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let bootstrap = cluster.bootstrap();
    rt.block_on(async {
        let config = ClientConfig::new(BrokerAddress::parse_list(&bootstrap).expect("bootstrap"));
        let admin = AdminClient::connect(config).await.expect("connect");
        let topic = TopicName::new("clicks").expect("topic");
        admin
            .create_topics(&[NewTopic::new(topic.clone(), 4, 3)])
            .await
            .expect("create");
        admin.wait_for_topic(&topic).await.expect("ready");
        let value = bytes::Bytes::from(vec![b'x'; 10_000]);
        let batch: Vec<_> = (0..10).map(|_| (None, Some(value.clone()))).collect();
        for p in 0..4 {
            for _ in 0..5 {
                admin
                    .produce(&TopicPartition::new(topic.clone(), p), &batch)
                    .await
                    .expect("produce");
            }
        }
        admin.close();
    });
    assert_eq!(cluster.add_broker().expect("add broker 4"), 4);
    std::thread::sleep(Duration::from_secs(1));
    let journal = cluster.dir().join("rebalance-journal.json");
    let journal = journal.to_str().expect("utf-8 path");

    // Regression: throttles someone set before (a rate on a broker, `*` on a topic) were
    // overwritten, then deleted. A new run is refused and writes no journal; a dry run says
    // so and exits 1. Nothing of them is touched.
    let theirs = [
        (
            ConfigResource::Broker(BrokerId(2)),
            kpilot_reassign::LEADER_RATE,
            "5000000",
        ),
        (
            ConfigResource::Topic(TopicName::new("clicks").expect("topic")),
            kpilot_reassign::FOLLOWER_REPLICAS,
            "*",
        ),
    ];
    let set_theirs = |set: bool| {
        rt.block_on(async {
            let config =
                ClientConfig::new(BrokerAddress::parse_list(&bootstrap).expect("bootstrap"));
            let admin = AdminClient::connect(config).await.expect("connect");
            let resources: Vec<ConfigResource> = theirs.iter().map(|t| t.0.clone()).collect();
            for (r, k, v) in &theirs {
                let op = if set {
                    ConfigOp::set(*k, *v)
                } else {
                    ConfigOp::delete(*k)
                };
                admin.alter_configs(r, &[op]).await.expect("alter");
            }
            let want = if set { theirs.len() } else { 0 };
            let mut seen = Vec::new();
            for _ in 0..100 {
                seen = kpilot_reassign::throttle_overrides(&admin, &resources)
                    .await
                    .expect("configs");
                if seen.len() == want {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            admin.close();
            seen
        })
    };
    assert_eq!(set_theirs(true).len(), 2);

    let refused_dry = kpilot(&[
        "rebalance",
        "-b",
        &bootstrap,
        "--add-brokers",
        "4",
        "--dry-run",
        "--journal",
        journal,
    ]);
    let err = stderr(&refused_dry);
    assert_eq!(refused_dry.status.code(), Some(1), "{err}");
    assert!(
        String::from_utf8_lossy(&refused_dry.stdout).contains("Plan: add broker(s) 4"),
        "{err}"
    );
    for needed in [
        "a run would be refused",
        "broker 2: leader.replication.throttled.rate=5000000",
        "follower.replication.throttled.replicas=*",
        "--delete-config",
    ] {
        assert!(err.contains(needed), "{needed}: {err}");
    }
    let refused = kpilot(&[
        "rebalance",
        "-b",
        &bootstrap,
        "--add-brokers",
        "4",
        "--journal",
        journal,
    ]);
    let err = stderr(&refused);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(
        err.contains("refused before it changed anything") && err.contains("broker 2"),
        "{err}"
    );
    assert!(!std::path::Path::new(journal).exists(), "no journal: {err}");
    assert_eq!(set_theirs(false).len(), 0, "theirs were left to remove");

    let dry = kpilot(&[
        "rebalance",
        "-b",
        &bootstrap,
        "--add-brokers",
        "4",
        "--dry-run",
        "--json",
        "--journal",
        journal,
    ]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    let v: serde_json::Value = serde_json::from_slice(&dry.stdout).expect("JSON");
    let plan = &v["plan"];
    assert!(plan["partitions_to_move"].as_u64().unwrap_or(0) >= 1, "{v}");
    assert!(
        plan["bytes_to_move"].as_u64().unwrap_or(0)
            >= plan["lower_bound_bytes"].as_u64().unwrap_or(u64::MAX),
        "{v}"
    );
    let four = plan["brokers"]
        .as_array()
        .expect("brokers")
        .iter()
        .find(|b| b["broker"] == 4)
        .expect("broker 4 row");
    assert_eq!(four["replicas_before"], 0);
    assert!(four["replicas_after"].as_u64().unwrap_or(0) >= 2, "{four}");
    assert_eq!(v["throttle"]["source"], "default");
    assert!(
        !std::path::Path::new(journal).exists(),
        "a dry run writes no journal"
    );

    let table = kpilot(&[
        "rebalance",
        "-b",
        &bootstrap,
        "--add-brokers",
        "4",
        "--dry-run",
        "--instance",
        "m7g.large",
        "--ingress",
        "20MB/s",
        "--journal",
        journal,
    ]);
    assert!(table.status.success(), "{}", stderr(&table));
    let text = String::from_utf8_lossy(&table.stdout);
    eprintln!("{text}");
    assert!(
        text.contains("Plan: add broker(s) 4") && text.contains("lower bound"),
        "{text}"
    );
    assert!(text.contains("capacity model"), "{text}");

    // Interrupted mid-batch (SIGINT, as Ctrl-C sends): rolled back, throttles removed, exit 1.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kpilot"))
        .args([
            "rebalance",
            "-b",
            &bootstrap,
            "--add-brokers",
            "4",
            "--throttle",
            "0.1MB/s",
            "--journal",
            journal,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kpilot");
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr_pipe = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr_pipe).lines().map_while(Result::ok) {
            if line.contains("batch 1/") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the first batch starts");
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(killed.success());
    let status = child.wait().expect("wait");
    let err = reader.join().expect("stderr");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("was cancelled") && err.contains("rerun the same command"),
        "{err}"
    );
    rt.block_on(async {
        let config = ClientConfig::new(BrokerAddress::parse_list(&bootstrap).expect("bootstrap"));
        let admin = AdminClient::connect(config).await.expect("connect");
        assert!(
            admin
                .list_partition_reassignments()
                .await
                .expect("list")
                .is_empty()
        );
        let mut resources: Vec<ConfigResource> = (1..=4)
            .map(|b| ConfigResource::Broker(BrokerId(b)))
            .collect();
        resources.push(ConfigResource::Topic(
            TopicName::new("clicks").expect("topic"),
        ));
        // Read once: kpilot exits only after every broker applies the removals.
        let left = kpilot_reassign::throttle_overrides(&admin, &resources)
            .await
            .expect("configs");
        assert!(left.is_empty(), "left after the interrupt: {left:?}");
        admin.close();
    });

    // The same command resumes the recorded run and completes it.
    let run = kpilot(&[
        "rebalance",
        "-b",
        &bootstrap,
        "--add-brokers",
        "4",
        "--throttle",
        "20MB/s",
        "--json",
        "--journal",
        journal,
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("resuming"), "{}", stderr(&run));
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON");
    assert_eq!(v["report"]["status"]["status"], "completed", "{v}");
    assert_eq!(v["report"]["throttle_left"], false, "{v}");
    let rt_check = rt.block_on(async {
        let config = ClientConfig::new(BrokerAddress::parse_list(&bootstrap).expect("bootstrap"));
        let admin = AdminClient::connect(config).await.expect("connect");
        let m = admin.metadata().await.expect("metadata");
        let on_four = m
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.replicas.contains(&BrokerId(4)))
            .count();
        admin.close();
        on_four
    });
    assert!(rt_check >= 2, "broker 4 got {rt_check} replicas");

    let unknown = kpilot(&[
        "rebalance",
        "-b",
        &bootstrap,
        "--add-brokers",
        "9",
        "--journal",
        journal,
    ]);
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
    assert!(
        stderr(&unknown).contains("broker 9 is not registered"),
        "{}",
        stderr(&unknown)
    );
    let other = cluster.dir().join("none.json");
    let cancel = kpilot(&[
        "rebalance",
        "-b",
        &bootstrap,
        "--cancel",
        "--journal",
        other.to_str().expect("path"),
    ]);
    assert_eq!(cancel.status.code(), Some(2), "{}", stderr(&cancel));
}
