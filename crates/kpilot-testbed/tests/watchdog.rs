//! Integration test: when the process owning a `KafkaCluster` dies without dropping it
//! (SIGKILL here), the watchdog kills its broker JVMs and removes its directory. Starts JVMs
//! on 127.0.0.1.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{process_alive, wait_gone};
use kpilot_testbed::{ClusterConfig, KafkaCluster};

const CHILD_ENV: &str = "KPILOT_TESTBED_WATCHDOG_CHILD";

/// In the child process (`KPILOT_TESTBED_WATCHDOG_CHILD=1`): starts a cluster, reports its
/// broker pid and directory on stdout, then waits to be killed.
fn child_process() {
    let cluster = KafkaCluster::start(ClusterConfig::with_brokers(1)).expect("start");
    println!(
        "READY {} {}",
        cluster.pid(1).expect("pid"),
        cluster.dir().display()
    );
    // Bounded: the parent kills us long before this ends.
    thread::sleep(Duration::from_secs(180));
}

#[test]
fn crashed_owner_leaves_no_broker_behind() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return child_process();
    }
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "crashed_owner_leaves_no_broker_behind",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the child test process");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints "test crashed_owner_leaves_no_broker_behind ... " on the same line first.
            if let Some((_, rest)) = line.split_once("READY ") {
                let _ = tx.send(rest.trim().to_owned());
                return;
            }
        }
    });
    let ready = rx.recv_timeout(Duration::from_secs(150));
    let Ok(ready) = ready else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the child never reported a ready cluster");
    };
    let (pid, dir) = ready.split_once(' ').expect("READY <pid> <dir>");
    let pid: u32 = pid.parse().expect("pid");
    let dir = PathBuf::from(dir);
    assert!(process_alive(pid), "broker {pid} runs");
    assert!(dir.is_dir());

    // A crash of the owner: no Drop, no unwinding.
    child.kill().expect("SIGKILL the child");
    child.wait().expect("reap the child");

    assert!(
        wait_gone(pid, Duration::from_secs(15)),
        "the watchdog killed broker {pid}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while dir.exists() && std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    assert!(!dir.exists(), "the watchdog removed {}", dir.display());
}
