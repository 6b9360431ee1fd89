//! Integration test: a real 3-node KRaft cluster through its whole life (start, readiness,
//! controlled stop and restart, crash and restart, a broker-only node joining, cleanup on
//! drop), checked at the Kafka level with the Kafka tools. Starts JVMs on 127.0.0.1.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{
    PartitionInfo, TOPIC_COMMAND, describe, describe_until, parse_describe, read_log, tool_ok,
};
use kpilot_testbed::{ClusterConfig, KafkaCluster, NodeRole, TestbedError};

fn connects(address: &str) -> bool {
    TcpStream::connect_timeout(
        &address.parse().expect("socket address"),
        Duration::from_secs(2),
    )
    .is_ok()
}

fn create_topic(cluster: &KafkaCluster, extra: &[&str]) {
    let bootstrap = cluster.bootstrap();
    let mut args = vec!["--bootstrap-server", bootstrap.as_str(), "--create"];
    args.extend_from_slice(extra);
    let out = tool_ok(cluster, TOPIC_COMMAND, &args);
    assert!(out.contains("Created topic"), "{out}");
}

#[test]
fn three_node_cluster_lifecycle() {
    let t = Instant::now();
    let mut cluster =
        KafkaCluster::start(ClusterConfig::default()).expect("start a 3-node cluster");
    eprintln!("KafkaCluster::start (3 brokers) took {:?}", t.elapsed());
    let dir = cluster.dir().to_owned();

    // Three combined nodes, each running, with its own pid and a PLAINTEXT port that answers.
    assert_eq!(cluster.broker_ids(), [1, 2, 3]);
    let bootstrap = cluster.bootstrap();
    let addresses: Vec<String> = (1..=3)
        .map(|id| cluster.broker_address(id).expect("known id"))
        .collect();
    assert_eq!(bootstrap, addresses.join(","));
    let mut pids = Vec::new();
    for id in 1..=3 {
        assert!(cluster.is_running(id), "broker {id} runs");
        assert_eq!(cluster.role(id), Some(NodeRole::Combined));
        assert!(
            connects(&addresses[id as usize - 1]),
            "broker {id} accepts TCP"
        );
        let log = read_log(&cluster.log_path(id).expect("log path"));
        assert!(
            log.contains("The broker has been unfenced"),
            "broker {id} unfenced:\n{log}"
        );
        pids.push(cluster.pid(id).expect("pid"));
    }
    pids.dedup();
    assert_eq!(pids.len(), 3, "three distinct JVMs");
    assert!(cluster.secure_bootstrap().is_none() && cluster.security().is_none());
    assert!(cluster.broker_address(7).is_none() && cluster.pid(7).is_none());

    // The brokers really run the configuration we asked for.
    let configs = tool_ok(
        &cluster,
        "kafka.admin.ConfigCommand",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--describe",
            "--entity-type",
            "brokers",
            "--entity-name",
            "1",
            "--all",
        ],
    );
    for expected in [
        "min.insync.replicas=2",
        "default.replication.factor=3",
        "auto.leader.rebalance.enable=false",
        "unclean.leader.election.enable=false",
    ] {
        assert!(
            configs.contains(expected),
            "broker 1 has {expected}:\n{configs}"
        );
    }

    // A replicated topic: every partition has 3 replicas, all in sync.
    create_topic(&cluster, &["--topic", "lifecycle", "--partitions", "3"]);
    let all_in_sync =
        |parts: &[PartitionInfo]| parts.iter().all(|p| p.isr.len() == 3 && p.leader.is_some());
    let parts = describe_until(
        &cluster,
        "lifecycle",
        Duration::from_secs(30),
        "3 in-sync replicas",
        all_in_sync,
    );
    assert_eq!(parts.len(), 3);
    assert!(parts.iter().all(|p| p.replicas.len() == 3), "{parts:?}");

    // Controlled stop: the process exits, its port closes, it leaves every ISR.
    let t = Instant::now();
    cluster.stop_broker(2).expect("stop broker 2");
    eprintln!("stop_broker took {:?}", t.elapsed());
    assert!(!cluster.is_running(2) && cluster.pid(2).is_none());
    assert!(!connects(&addresses[1]), "broker 2's port is closed");
    assert!(common::wait_gone(pids[1], Duration::from_secs(5)));
    let log = read_log(&cluster.log_path(2).expect("log path"));
    assert!(
        log.contains("Transition from STARTED to SHUTTING_DOWN"),
        "controlled shutdown:\n{log}"
    );
    cluster
        .stop_broker(2)
        .expect("stopping a stopped broker does nothing");
    describe_until(
        &cluster,
        "lifecycle",
        Duration::from_secs(30),
        "broker 2 out of every ISR",
        |parts| {
            parts
                .iter()
                .all(|p| !p.isr.contains(&2) && p.leader.is_some_and(|l| l != 2))
        },
    );

    // Restart with the same log directory and port.
    let t = Instant::now();
    cluster.start_broker(2).expect("restart broker 2");
    eprintln!("start_broker took {:?}", t.elapsed());
    assert!(cluster.is_running(2) && connects(&addresses[1]));
    assert_ne!(cluster.pid(2), Some(pids[1]), "a new process");
    let log = read_log(&cluster.log_path(2).expect("log path"));
    assert_eq!(
        log.matches("kpilot-testbed: starting node 2").count(),
        2,
        "log appended across restarts"
    );
    describe_until(
        &cluster,
        "lifecycle",
        Duration::from_secs(60),
        "broker 2 back in sync",
        all_in_sync,
    );
    match cluster.start_broker(2) {
        Err(TestbedError::BrokerAlreadyRunning { id: 2, .. }) => {}
        other => panic!("starting a running broker: {other:?}"),
    }

    // Crash: SIGKILL, then the controller fences it and moves its leaderships.
    let t = Instant::now();
    cluster.kill_broker(3).expect("kill broker 3");
    eprintln!("kill_broker took {:?}", t.elapsed());
    assert!(!cluster.is_running(3) && !connects(&addresses[2]));
    assert!(common::wait_gone(pids[2], Duration::from_secs(5)));
    describe_until(
        &cluster,
        "lifecycle",
        Duration::from_secs(30),
        "no leader on the killed broker 3",
        |parts| {
            parts
                .iter()
                .all(|p| p.leader.is_some_and(|l| l != 3) && !p.isr.contains(&3))
        },
    );
    cluster
        .start_broker(3)
        .expect("restart broker 3 after the crash");
    describe_until(
        &cluster,
        "lifecycle",
        Duration::from_secs(60),
        "broker 3 back in sync",
        all_in_sync,
    );

    match cluster.stop_broker(42) {
        Err(TestbedError::UnknownBroker { id: 42, known }) => assert_eq!(known, [1, 2, 3]),
        other => panic!("stopping an unknown broker: {other:?}"),
    }

    // A broker-only node joins; a partition placed on it gets it as leader.
    let t = Instant::now();
    let id = cluster.add_broker().expect("add a broker");
    eprintln!("add_broker took {:?}", t.elapsed());
    assert_eq!(id, 4);
    assert_eq!(cluster.broker_ids(), [1, 2, 3, 4]);
    assert_eq!(cluster.role(4), Some(NodeRole::Broker));
    assert!(cluster.is_running(4) && connects(&cluster.broker_address(4).expect("address")));
    assert_eq!(cluster.bootstrap().split(',').count(), 4);
    let props =
        std::fs::read_to_string(dir.join("node-4/server.properties")).expect("node 4 config");
    assert!(props.contains("process.roles=broker\n"), "{props}");
    create_topic(
        &cluster,
        &["--topic", "on-new-broker", "--replica-assignment", "4"],
    );
    let parts = describe(&cluster, "on-new-broker");
    assert_eq!(parts.len(), 1);
    assert_eq!(
        (parts[0].leader, parts[0].replicas.clone()),
        (Some(4), vec![4]),
        "{parts:?}"
    );

    // Drop kills every JVM and removes the directory.
    let pids: Vec<u32> = cluster
        .broker_ids()
        .iter()
        .filter_map(|&id| cluster.pid(id))
        .collect();
    assert_eq!(pids.len(), 4);
    drop(cluster);
    for pid in pids {
        assert!(
            common::wait_gone(pid, Duration::from_secs(5)),
            "pid {pid} gone after drop"
        );
    }
    assert!(!dir.exists(), "{} removed after drop", dir.display());
}

#[test]
fn describe_output_is_parsed() {
    let text = "Topic: t\tTopicId: x\tPartitionCount: 2\tReplicationFactor: 3\tConfigs: \n\
                \tTopic: t\tPartition: 0\tLeader: 1\tReplicas: 1,2,3\tIsr: 1,3\tElr: \tLastKnownElr: \n\
                \tTopic: t\tPartition: 1\tLeader: none\tReplicas: 2,3,1\tIsr: \tElr: \tLastKnownElr: \n";
    assert_eq!(
        parse_describe(text),
        [
            PartitionInfo {
                partition: 0,
                leader: Some(1),
                replicas: vec![1, 2, 3],
                isr: vec![1, 3]
            },
            PartitionInfo {
                partition: 1,
                leader: None,
                replicas: vec![2, 3, 1],
                isr: vec![]
            },
        ]
    );
}

#[test]
fn invalid_config_is_rejected_before_anything_starts() {
    let err = KafkaCluster::start(ClusterConfig {
        brokers: 0,
        ..ClusterConfig::default()
    })
    .expect_err("0 brokers is invalid");
    assert!(matches!(err, TestbedError::InvalidConfig { .. }), "{err}");
}
