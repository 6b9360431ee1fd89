//! `kpilot roll` under ACLs: a real 3-broker cluster with KRaft's StandardAuthorizer, run as
//! the local testbed fleet, and kpilot connecting as a SASL user that has only the ACLs
//! granted here (with Kafka's own `AclCommand`, over the PLAINTEXT super-user listener). With
//! the read-only set of docs/kafka-admin.md ("Permissions") the roll is refused before it
//! stops anything, naming the missing Alter ACL (the dry run too); a roll onto empty disks
//! with Alter but not AlterConfigs is refused the same way, naming AlterConfigs; with the
//! `roll` row's set (plus Alter on the cluster) it rolls a broker to completion.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kpilot_kafka::{AdminClient, BrokerAddress, ClientConfig, NewTopic};
use kpilot_testbed::{ClusterConfig, ClusterState, KafkaCluster, SaslMechanism};

mod common;
use common::{grant, text};

/// A detached testbed cluster (the roll's local fleet drives it through its state file),
/// stopped and removed on drop.
struct Detached {
    state_path: PathBuf,
    dir: PathBuf,
}

impl Drop for Detached {
    fn drop(&mut self) {
        if let Ok(Some(mut s)) = ClusterState::load(&self.state_path) {
            s.adopt_running();
            let _ = s.stop(Duration::from_secs(30));
            if std::thread::panicking() {
                eprintln!("kept the cluster directory {}", s.dir.display());
            } else {
                let _ = std::fs::remove_dir_all(&s.dir);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pid_of(state_path: &Path, id: i32) -> Option<u32> {
    let state = ClusterState::load(state_path)
        .expect("load testbed state")
        .expect("testbed state exists");
    state
        .brokers
        .iter()
        .find(|b| b.id == id)
        .and_then(|b| b.pid)
}

#[test]
fn roll_is_refused_before_stopping_anything_without_alter_and_completes_with_it() {
    let cluster = KafkaCluster::start(ClusterConfig {
        secure: true,
        authorizer: true,
        min_insync_replicas: 2,
        auto_leader_rebalance: false,
        ..ClusterConfig::default()
    })
    .expect("start 3 brokers with the StandardAuthorizer");
    let security = cluster.security().expect("secure listener").clone();
    let user = security
        .user(SaslMechanism::Plain)
        .expect("a PLAIN user")
        .username
        .clone();
    let principal = format!("User:{user}");
    let root_bootstrap = cluster.bootstrap();
    let secure_bootstrap = cluster.secure_bootstrap().expect("secure bootstrap");
    let allow = |operations: &[&str], resource: &[&str]| {
        grant(&root_bootstrap, &principal, operations, resource)
    };

    // The super user creates the topic the roll must keep available.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let root = AdminClient::connect(ClientConfig::new(
            BrokerAddress::parse_list(&root_bootstrap).expect("bootstrap"),
        ))
        .await
        .expect("connect as the super user");
        let name = kpilot_cluster::TopicName::new("orders").expect("topic name");
        root.create_topics(&[
            NewTopic::new(name.clone(), 3, 3).with_config("min.insync.replicas", 2)
        ])
        .await
        .expect("create orders");
        root.wait_for_topic(&name).await.expect("orders ready");
        root.close();
    });

    // The read-only set of the `status` row.
    allow(&["Describe", "DescribeConfigs"], &["--cluster"]);
    allow(&["Describe", "DescribeConfigs"], &["--topic", "*"]);

    let dir = std::env::temp_dir().join(format!("kpilot-acls-roll-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let state_path = dir.join("state.json");
    cluster
        .detach()
        .save(&state_path)
        .expect("save the testbed state");
    let bed = Detached {
        state_path: state_path.clone(),
        dir: dir.clone(),
    };
    let journal = dir.join("roll.json");
    let properties = security.client_properties(SaslMechanism::Plain);
    let roll = |extra: &[&str]| -> Output {
        Command::new(env!("CARGO_BIN_EXE_kpilot"))
            .arg("roll")
            .args(["--bootstrap", &secure_bootstrap])
            .arg("--command-config")
            .arg(&properties)
            .arg("--testbed-state")
            .arg(&bed.state_path)
            .arg("--journal")
            .arg(&journal)
            .args(["--to", "m7g.xlarge", "--brokers", "3", "--timeout", "20s"])
            .args(extra)
            .output()
            .expect("run kpilot roll")
    };

    // 1. Read-only: refused before any broker stops, naming the ACL; no journal is left.
    let pid_before = pid_of(&state_path, 3).expect("broker 3 runs");
    for extra in [&["--dry-run"][..], &[]] {
        let out = roll(extra);
        let stderr = text(&out.stderr);
        eprintln!("kpilot roll {extra:?} with read-only ACLs:\n{stderr}");
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        for needed in [
            "this run stopped no broker",
            "CLUSTER_AUTHORIZATION_FAILED",
            "needs the Alter ACL on the cluster",
        ] {
            assert!(stderr.contains(needed), "{needed:?} not in:\n{stderr}");
        }
        if extra == ["--dry-run"] {
            // The dry run still shows what a run would do once the ACL is there.
            let stdout = text(&out.stdout);
            for needed in ["Plan: roll 1 node(s) to m7g.xlarge", "node 3", "REFUSED"] {
                assert!(stdout.contains(needed), "{needed:?} not in:\n{stdout}");
            }
        }
    }
    assert_eq!(pid_of(&state_path, 3), Some(pid_before));
    assert!(!journal.exists(), "a refused roll records nothing");

    // 2. The `roll` row: plus Alter on the cluster. The dry run passes once the ACL applies.
    allow(&["Alter"], &["--cluster"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = roll(&["--dry-run"]);
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the dry run still fails 30 s after granting Alter:\n{}",
            text(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // 3. Onto empty disks (--fresh-disks) every rebuild is throttled, which needs AlterConfigs
    // too: without it the roll is refused before anything stops, not halted at its first
    // rebuild with a broker rolled.
    for extra in [&["--fresh-disks", "--dry-run"][..], &["--fresh-disks"]] {
        let out = roll(extra);
        let stderr = text(&out.stderr);
        eprintln!("kpilot roll {extra:?} without AlterConfigs:\n{stderr}");
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        for needed in [
            "this run stopped no broker",
            "may not set the brokers' throttle rates",
            "needs the AlterConfigs ACL on the cluster",
        ] {
            assert!(stderr.contains(needed), "{needed:?} not in:\n{stderr}");
        }
    }
    assert_eq!(pid_of(&state_path, 3), Some(pid_before));
    assert!(!journal.exists(), "a refused roll records nothing");

    let out = roll(&["--json"]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "roll with the roll row's ACLs failed:\n{}\n{stdout}",
        text(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["status"]["state"], "completed", "{report:#}");
    assert_ne!(
        pid_of(&state_path, 3),
        Some(pid_before),
        "broker 3 restarted"
    );
}
