//! The saved state of a detached cluster (`kpilot-testbed up`): addresses, pids, paths. Load,
//! save, liveness checks and stopping (SIGTERM, then SIGKILL past a bound). Performs I/O
//! (files, `/proc`, signals).

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};
use serde::{Deserialize, Serialize};

use crate::config::NodeRole;
use crate::error::TestbedError;
use crate::node::{NODE_MARKER, POLL};
use crate::tls::SecureListener;

/// A snapshot of a cluster, as `kpilot-testbed` writes it to `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The Kafka version the brokers run.
    pub kafka_version: String,
    /// The cluster directory.
    pub dir: PathBuf,
    /// The cluster id the log directories were formatted with.
    pub cluster_id: String,
    /// PLAINTEXT bootstrap list.
    pub bootstrap: String,
    /// `SASL_SSL` bootstrap list, if the cluster is secure.
    pub secure_bootstrap: Option<String>,
    /// The secure listener's CA, users and client property files, if the cluster is secure.
    pub security: Option<SecureListener>,
    /// Every node.
    pub brokers: Vec<BrokerState>,
}

/// One node in a [`ClusterState`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerState {
    /// The node id.
    pub id: i32,
    /// Combined broker+controller, broker only, or controller only.
    pub role: NodeRole,
    /// The process id when the snapshot was taken, if it was running.
    pub pid: Option<u32>,
    /// PLAINTEXT `host:port`; for a controller-only node, which serves no clients, its
    /// CONTROLLER listener.
    pub address: String,
    /// `SASL_SSL` `host:port`, if the cluster is secure.
    pub secure_address: Option<String>,
    /// The CONTROLLER listener port of a combined or controller-only node.
    pub controller_port: Option<u16>,
    /// The node directory.
    pub dir: PathBuf,
    /// The node's log file.
    pub log: PathBuf,
}

/// How [`ClusterState::stop`] ended each broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopOutcome {
    /// It was not running.
    NotRunning,
    /// It exited after SIGTERM.
    Stopped,
    /// It did not exit in time after SIGTERM and was killed with SIGKILL.
    Killed,
}

impl ClusterState {
    /// Reads a state file; `Ok(None)` when it does not exist.
    pub fn load(path: &Path) -> Result<Option<ClusterState>, TestbedError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(TestbedError::ReadFile {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| TestbedError::ParseState {
                path: path.to_owned(),
                source,
            })
    }

    /// Writes the state file (atomically: a temp file renamed over it).
    pub fn save(&self, path: &Path) -> Result<(), TestbedError> {
        let json =
            serde_json::to_string_pretty(self).map_err(|source| TestbedError::ParseState {
                path: path.to_owned(),
                source,
            })?;
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, json + "\n").map_err(TestbedError::write(&tmp))?;
        fs::rename(&tmp, path).map_err(TestbedError::write(path))
    }

    /// True when broker `b`'s recorded process still runs and is that broker's JVM (its
    /// command line carries the node marker), so a reused pid is never mistaken for it.
    pub fn is_alive(b: &BrokerState) -> bool {
        b.pid.is_some_and(|pid| process_is_node(pid, &b.dir))
    }

    /// The brokers whose processes still run.
    pub fn running(&self) -> Vec<&BrokerState> {
        self.brokers.iter().filter(|b| Self::is_alive(b)).collect()
    }

    /// Stops every running broker: SIGTERM to all, wait up to `timeout` for them to exit, then
    /// SIGKILL whatever remains (and wait up to 10 s more for those to disappear).
    pub fn stop(&self, timeout: Duration) -> Result<Vec<(i32, StopOutcome)>, TestbedError> {
        let mut outcomes: Vec<(i32, StopOutcome)> = Vec::new();
        let mut pending = Vec::new();
        for b in &self.brokers {
            if Self::is_alive(b) {
                signal(b, Signal::TERM, "SIGTERM")?;
                pending.push(b);
            } else {
                outcomes.push((b.id, StopOutcome::NotRunning));
            }
        }
        let deadline = Instant::now() + timeout;
        while !pending.is_empty() && Instant::now() < deadline {
            pending.retain(|b| {
                let alive = Self::is_alive(b);
                if !alive {
                    outcomes.push((b.id, StopOutcome::Stopped));
                }
                alive
            });
            if !pending.is_empty() {
                thread::sleep(POLL);
            }
        }
        for b in &pending {
            // It may have exited just now; only signal a live one.
            if Self::is_alive(b) {
                signal(b, Signal::KILL, "SIGKILL")?;
            }
            outcomes.push((b.id, StopOutcome::Killed));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while pending.iter().any(|b| Self::is_alive(b)) && Instant::now() < deadline {
            thread::sleep(POLL);
        }
        outcomes.sort_by_key(|(id, _)| *id);
        Ok(outcomes)
    }
}

/// What a node keeps when [`BrokerState::wipe_partition_data`] empties its disk: its
/// identity (`meta.properties`, with the log directory's id), the KRaft metadata log and
/// bootstrap snapshot a combined controller needs, and the directory lock.
const KEPT_ON_WIPE: &[&str] = &[
    "meta.properties",
    "__cluster_metadata-0",
    "bootstrap.checkpoint",
    ".lock",
];

impl BrokerState {
    /// The node's log directory (`log.dirs`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Deletes every partition the stopped node stores (see [`wipe_partition_dir`]). Refuses
    /// a running node. Returns how many partition directories were deleted.
    pub fn wipe_partition_data(&self) -> Result<usize, TestbedError> {
        if ClusterState::is_alive(self) {
            return Err(TestbedError::InvalidConfig {
                reason: format!(
                    "node {} is running: stop it before deleting its partition data",
                    self.id
                ),
            });
        }
        wipe_partition_dir(&self.data_dir())
    }
}

/// Deletes every partition a stopped node's log directory `dir` holds, and the offset
/// checkpoints that name them, as a node whose instance-local disk was replaced would find
/// it: Kafka then rebuilds each replica from the other replicas when the node starts. The
/// node's identity (`meta.properties`, with the log directory's id), the KRaft metadata log
/// and bootstrap snapshot and the directory lock stay, so a combined controller keeps its
/// quorum state: this emulates losing the data disk, not the node. Returns how many
/// partition directories were deleted.
pub(crate) fn wipe_partition_dir(dir: &Path) -> Result<usize, TestbedError> {
    let entries = fs::read_dir(dir).map_err(TestbedError::write(dir))?;
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(TestbedError::write(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if KEPT_ON_WIPE.contains(&name.as_str()) {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            fs::remove_dir_all(&path).map_err(TestbedError::write(&path))?;
            removed += 1;
        } else if name.ends_with("-checkpoint") {
            fs::remove_file(&path).map_err(TestbedError::write(&path))?;
        }
    }
    Ok(removed)
}

/// Sends `signal` to a broker's process; a process that is already gone is not an error.
pub(crate) fn signal(
    b: &BrokerState,
    signal: Signal,
    name: &'static str,
) -> Result<(), TestbedError> {
    let pid = b.pid.unwrap_or(0);
    let target = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| TestbedError::SignalBroker {
            id: b.id,
            pid,
            signal: name,
            source: std::io::Error::other("not a valid pid"),
        })?;
    match rustix::process::kill_process(target, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(TestbedError::SignalBroker {
            id: b.id,
            pid,
            signal: name,
            source: e.into(),
        }),
    }
}

/// The process whose command line carries `-Dkpilot.testbed.node=<node_dir>`, if one runs:
/// found by scanning `/proc`, for a JVM started by a process that died before it recorded the
/// pid anywhere.
pub(crate) fn find_node_process(node_dir: &Path) -> Option<u32> {
    fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| process_is_node(*pid, node_dir))
}

/// True when `pid` runs and its command line contains `-Dkpilot.testbed.node=<node_dir>`.
/// A zombie has an empty command line, so it does not count.
pub(crate) fn process_is_node(pid: u32, node_dir: &Path) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let wanted = format!("{NODE_MARKER}{}", node_dir.display());
    cmdline
        .split(|&b| b == 0)
        .any(|arg| arg == wanted.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_state_file_is_none() {
        let path = Path::new("/nonexistent/kpilot/state.json");
        assert_eq!(ClusterState::load(path).expect("missing is fine"), None);
    }

    #[test]
    fn state_round_trips_and_dead_pids_are_not_alive() {
        let dir = std::env::temp_dir().join(format!("kpilot-testbed-state-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let state = ClusterState {
            kafka_version: "4.3.1".into(),
            dir: dir.clone(),
            cluster_id: "abc".into(),
            bootstrap: "127.0.0.1:1".into(),
            secure_bootstrap: None,
            security: None,
            brokers: vec![BrokerState {
                id: 1,
                role: NodeRole::Combined,
                // This test process: alive, but not a testbed node.
                pid: Some(std::process::id()),
                address: "127.0.0.1:1".into(),
                secure_address: None,
                controller_port: Some(2),
                dir: dir.join("node-1"),
                log: dir.join("node-1/broker.log"),
            }],
        };
        let path = dir.join("state.json");
        state.save(&path).expect("save");
        assert_eq!(
            ClusterState::load(&path).expect("load"),
            Some(state.clone())
        );
        assert!(
            state.running().is_empty(),
            "a pid without the node marker is not a broker"
        );
        let outcomes = state.stop(Duration::from_millis(10)).expect("stop");
        assert_eq!(outcomes, [(1, StopOutcome::NotRunning)]);
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn a_wipe_deletes_the_partitions_and_their_checkpoints_and_keeps_identity_and_metadata() {
        let dir = std::env::temp_dir().join(format!("kpilot-testbed-wipe-{}", std::process::id()));
        let node = BrokerState {
            id: 2,
            role: NodeRole::Combined,
            pid: None,
            address: "127.0.0.1:1".into(),
            secure_address: None,
            controller_port: None,
            dir: dir.clone(),
            log: dir.join("broker.log"),
        };
        let data = node.data_dir();
        for d in [
            "orders-0",
            "orders-11",
            "__consumer_offsets-3",
            "__cluster_metadata-0",
        ] {
            fs::create_dir_all(data.join(d)).expect("dir");
            fs::write(data.join(d).join("00000000000000000000.log"), b"x").expect("file");
        }
        let files = [
            "meta.properties",
            "bootstrap.checkpoint",
            ".lock",
            "recovery-point-offset-checkpoint",
            "replication-offset-checkpoint",
        ];
        for f in files {
            fs::write(data.join(f), b"x").expect("file");
        }
        assert_eq!(node.wipe_partition_data().expect("wipe"), 3);
        let mut left: Vec<String> = fs::read_dir(&data)
            .expect("read")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ".lock",
                "__cluster_metadata-0",
                "bootstrap.checkpoint",
                "meta.properties"
            ]
        );
        // Idempotent.
        assert_eq!(node.wipe_partition_data().expect("again"), 0);
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
