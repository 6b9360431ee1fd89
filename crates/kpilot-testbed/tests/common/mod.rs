//! Helpers shared by the testbed's integration tests: bounded runs of the Kafka Java tools
//! (through `KafkaCluster::java_command`) and parsing of their output. Performs I/O.

#![allow(dead_code, missing_docs)]

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use kpilot_testbed::KafkaCluster;

/// Runs `cmd` to completion, killing it past `timeout`.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn java tool");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait java tool") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let status = child.wait().expect("reap java tool");
            let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
            panic!(
                "java tool still running after {timeout:?}; killed ({status}); stderr:\n{stderr}"
            );
        }
        thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Runs a Kafka tool class with `args`, bounded to 90 s.
pub fn tool(cluster: &KafkaCluster, class: &str, args: &[&str]) -> Output {
    let mut cmd = cluster.java_command(class);
    cmd.args(args);
    run_bounded(cmd, Duration::from_secs(90))
}

/// Like [`tool`], panicking with the tool's output unless it succeeded; returns stdout.
pub fn tool_ok(cluster: &KafkaCluster, class: &str, args: &[&str]) -> String {
    let output = tool(cluster, class, args);
    assert!(
        output.status.success(),
        "{class} {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub const TOPIC_COMMAND: &str = "org.apache.kafka.tools.TopicCommand";

/// One partition as `TopicCommand --describe` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    /// `None` when the partition has no leader (`Leader: none`).
    pub leader: Option<i32>,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// Parses the partition lines of `TopicCommand --describe` output.
pub fn parse_describe(text: &str) -> Vec<PartitionInfo> {
    let ids = |s: &str| -> Vec<i32> {
        s.split(',')
            .filter(|x| !x.trim().is_empty())
            .map(|x| x.trim().parse().expect("broker id"))
            .collect()
    };
    text.lines()
        .filter(|l| l.contains("Partition:"))
        .map(|line| {
            let field = |name: &str| -> String {
                line.split('\t')
                    .map(str::trim)
                    .find_map(|f| f.strip_prefix(name))
                    .map(|v| v.trim().to_owned())
                    .unwrap_or_default()
            };
            PartitionInfo {
                partition: field("Partition:").parse().expect("partition number"),
                leader: field("Leader:").parse().ok(),
                replicas: ids(&field("Replicas:")),
                isr: ids(&field("Isr:")),
            }
        })
        .collect()
}

/// Describes `topic` over the PLAINTEXT listener.
pub fn describe(cluster: &KafkaCluster, topic: &str) -> Vec<PartitionInfo> {
    let bootstrap = cluster.bootstrap();
    let text = tool_ok(
        cluster,
        TOPIC_COMMAND,
        &[
            "--bootstrap-server",
            &bootstrap,
            "--describe",
            "--topic",
            topic,
        ],
    );
    parse_describe(&text)
}

/// Describes `topic` until `done` holds for its partitions, up to `timeout`; returns the last
/// description. Panics with it past the timeout.
pub fn describe_until(
    cluster: &KafkaCluster,
    topic: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(&[PartitionInfo]) -> bool,
) -> Vec<PartitionInfo> {
    let deadline = Instant::now() + timeout;
    loop {
        let parts = describe(cluster, topic);
        if !parts.is_empty() && done(&parts) {
            return parts;
        }
        assert!(
            Instant::now() < deadline,
            "{what} within {timeout:?}; last description: {parts:?}"
        );
        thread::sleep(Duration::from_millis(500));
    }
}

/// True when a process with this pid still runs (a zombie does not count).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            state.is_some_and(|s| s != 'Z' && s != 'X')
        }
        Err(_) => false,
    }
}

/// Waits up to `timeout` for `pid` to disappear.
pub fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while process_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
    true
}

pub fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}
