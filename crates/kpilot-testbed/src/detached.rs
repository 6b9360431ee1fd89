//! Stopping and restarting one node of a *detached* cluster (the one `scripts/testbed up`
//! leaves running, described by its `state.json`) from any process, optionally with a
//! different heap and extra JVM arguments: what an orchestrator such as `kpilot roll` needs to
//! "resize" a local broker. Performs I/O (files, processes, signals, loopback TCP).

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::config::{NodeLayout, NodeRole};
use crate::error::TestbedError;
use crate::node::{self, Launch, Node, POLL};
use crate::setup::{self, kafka_libs_dir};
use crate::state::{BrokerState, ClusterState, StopOutcome, signal};

/// How to launch one node's JVM when it is restarted with [`ClusterState::start_broker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLaunch {
    /// Heap in MiB (`-Xms` = `-Xmx`); at least 128.
    pub heap_mb: u32,
    /// Extra JVM arguments, e.g. `-XX:ActiveProcessorCount=2`.
    pub jvm_args: Vec<String>,
    /// `-XX:TieredStopAtLevel=1` (the testbed's default, see `ClusterConfig::jit_c1_only`).
    pub jit_c1_only: bool,
    /// Files the new process id is written to right after the spawn, e.g. a cgroup's
    /// `cgroup.procs` to put the JVM under a CPU quota. A failed write is an error (the JVM is
    /// then killed).
    pub pid_files: Vec<PathBuf>,
}

impl Default for NodeLaunch {
    fn default() -> Self {
        NodeLaunch {
            heap_mb: 384,
            jvm_args: Vec::new(),
            jit_c1_only: true,
            pid_files: Vec::new(),
        }
    }
}

impl ClusterState {
    fn broker(&self, id: i32) -> Result<&BrokerState, TestbedError> {
        self.brokers
            .iter()
            .find(|b| b.id == id)
            .ok_or_else(|| TestbedError::UnknownBroker {
                id,
                known: self.brokers.iter().map(|b| b.id).collect(),
            })
    }

    /// Stops node `id` with SIGTERM (a controlled shutdown) and waits up to `timeout` for it to
    /// exit; past that it is killed with SIGKILL and [`TestbedError::StopBrokerTimedOut`]
    /// returned. A node that is not running is left alone ([`StopOutcome::NotRunning`]).
    /// The recorded pid is cleared; save the state afterwards.
    pub fn stop_broker(&mut self, id: i32, timeout: Duration) -> Result<StopOutcome, TestbedError> {
        let b = self.broker(id)?.clone();
        if !Self::is_alive(&b) {
            self.set_pid(id, None);
            return Ok(StopOutcome::NotRunning);
        }
        let pid = b.pid.unwrap_or(0);
        signal(&b, Signal::TERM, "SIGTERM")?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !Self::is_alive(&b) {
                self.set_pid(id, None);
                return Ok(StopOutcome::Stopped);
            }
            thread::sleep(POLL);
        }
        signal(&b, Signal::KILL, "SIGKILL")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Self::is_alive(&b) && Instant::now() < deadline {
            thread::sleep(POLL);
        }
        self.set_pid(id, None);
        Err(TestbedError::StopBrokerTimedOut {
            id,
            pid,
            timeout,
            log: b.log.clone(),
            tail: node::log_tail(&b.log),
        })
    }

    /// Starts node `id` again (same ports, data and `server.properties`) with `launch`, in
    /// its own process group so it outlives this process, and waits up to `ready_timeout`
    /// until it is ready (log line "Kafka Server started" after this start, client ports
    /// accept TCP). Records the new pid in the state (save it afterwards) and in
    /// `node-<id>/broker.pid`. A node that already runs is an error
    /// ([`TestbedError::BrokerAlreadyRunning`]).
    pub fn start_broker(
        &mut self,
        id: i32,
        launch: &NodeLaunch,
        ready_timeout: Duration,
    ) -> Result<u32, TestbedError> {
        let b = self.broker(id)?.clone();
        refuse_running(&b)?;
        if launch.heap_mb < 128 {
            return Err(TestbedError::InvalidConfig {
                reason: format!(
                    "heap_mb = {} is too small for a broker; use at least 128",
                    launch.heap_mb
                ),
            });
        }
        let jvm = self.launch(launch)?;
        let node = node_of(&b)?;
        let mut watch = node.spawn(&jvm)?;
        let pid_path = b.dir.join("broker.pid");
        let pid = std::fs::read_to_string(&pid_path)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(0);
        self.set_pid(id, Some(pid));
        for file in &launch.pid_files {
            if let Err(source) = std::fs::write(file, format!("{pid}\n")) {
                let _ = node.kill();
                self.set_pid(id, None);
                return Err(TestbedError::WriteFile {
                    path: file.clone(),
                    source,
                });
            }
        }
        let deadline = Instant::now() + ready_timeout;
        loop {
            if let Some(status) = node.exit_status() {
                self.set_pid(id, None);
                return Err(TestbedError::BrokerExited {
                    id,
                    status: status.to_string(),
                    log: watch.log.clone(),
                    tail: node::log_tail(&watch.log),
                });
            }
            let waiting_for = match watch.check() {
                Ok(None) => break,
                Ok(Some(what)) => what,
                Err(e) => {
                    let _ = node.kill();
                    self.set_pid(id, None);
                    return Err(e);
                }
            };
            if Instant::now() >= deadline {
                let _ = node.kill();
                self.set_pid(id, None);
                return Err(TestbedError::BrokerNotReady {
                    id,
                    timeout: ready_timeout,
                    waiting_for,
                    log: watch.log.clone(),
                    tail: node::log_tail(&watch.log),
                });
            }
            thread::sleep(POLL);
        }
        // Let the JVM outlive this value (and this process), like a detached cluster's nodes.
        node.release();
        Ok(pid)
    }

    /// Gives the stopped broker-only node `id` a new, empty disk, as
    /// `KafkaCluster::replace_disk` does: its whole log directory deleted and formatted again
    /// with the cluster id and node id. Refuses a running node and a combined node.
    pub fn replace_disk(&self, id: i32) -> Result<(), TestbedError> {
        let b = self.broker(id)?;
        refuse_running(b)?;
        node_of(b)?.replace_disk(&self.launch(&NodeLaunch::default())?, &self.cluster_id)
    }

    /// What the stopped node `id` keeps when the node under it is replaced and its
    /// instance-local disk with it, by role: a broker-only node gets a new disk
    /// ([`ClusterState::replace_disk`]); a combined node loses its partitions and keeps its
    /// quorum state ([`BrokerState::wipe_partition_data`]); a dedicated controller, which
    /// holds no partitions, keeps its disk (a quorum voter must not come back empty).
    pub fn lose_disk(&self, id: i32) -> Result<DiskLoss, TestbedError> {
        let b = self.broker(id)?;
        refuse_running(b)?;
        DiskLoss::by_role(b.role, || self.replace_disk(id), || b.wipe_partition_data())
    }

    /// How to run a JVM of this cluster: the Kafka classpath, its log4j files, `launch`.
    fn launch(&self, launch: &NodeLaunch) -> Result<Launch, TestbedError> {
        let libs = kafka_libs_dir()?;
        let classpath = setup::classpath(&libs)?;
        let java = setup::java_executable();
        let cds_archive = setup::cds_archive_path(&java, &classpath)
            .ok()
            .filter(|p| p.is_file());
        Ok(Launch {
            java,
            classpath,
            heap_mb: launch.heap_mb,
            jvm_args: launch.jvm_args.clone(),
            jit_c1_only: launch.jit_c1_only,
            cds_archive,
            broker_log4j: self.dir.join("log4j2-broker.properties"),
            tools_log4j: self.dir.join("log4j2-tools.properties"),
            jmx_exporter: None,
        })
    }

    /// Records the pid of each node whose JVM runs although the state does not know it
    /// (started by a process that died before it saved the state): the pid in
    /// `node-<id>/broker.pid`, or, when the process died between starting the JVM and writing
    /// that file, the process whose command line names the node's directory. Returns the ids
    /// adopted; save the state afterwards.
    pub fn adopt_running(&mut self) -> Vec<i32> {
        let mut adopted = Vec::new();
        for b in self.brokers.iter_mut() {
            if Self::is_alive(b) {
                continue;
            }
            let recorded = std::fs::read_to_string(b.dir.join("broker.pid"))
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .filter(|pid| crate::state::process_is_node(*pid, &b.dir));
            if let Some(pid) = recorded.or_else(|| crate::state::find_node_process(&b.dir)) {
                b.pid = Some(pid);
                adopted.push(b.id);
            }
        }
        adopted
    }

    fn set_pid(&mut self, id: i32, pid: Option<u32>) {
        if let Some(b) = self.brokers.iter_mut().find(|b| b.id == id) {
            b.pid = pid;
        }
    }
}

/// What [`ClusterState::lose_disk`] did to a node's disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskLoss {
    /// A broker-only node: a whole new, formatted disk.
    NewDisk,
    /// A combined node: this many partition directories deleted, the quorum state kept.
    PartitionsDeleted(usize),
    /// A dedicated controller: its disk kept.
    Kept,
}

impl DiskLoss {
    /// The rule of [`ClusterState::lose_disk`] and `KafkaCluster::lose_disk`: a node of
    /// `role` gets `new_disk` (broker-only), `wipe` (combined: partitions only) or nothing
    /// (a dedicated controller).
    pub(crate) fn by_role(
        role: NodeRole,
        new_disk: impl FnOnce() -> Result<(), TestbedError>,
        wipe: impl FnOnce() -> Result<usize, TestbedError>,
    ) -> Result<DiskLoss, TestbedError> {
        match role {
            NodeRole::Broker => new_disk().map(|()| DiskLoss::NewDisk),
            NodeRole::Combined => wipe().map(DiskLoss::PartitionsDeleted),
            NodeRole::Controller => Ok(DiskLoss::Kept),
        }
    }
}

/// [`TestbedError::BrokerAlreadyRunning`] when a JVM of the node runs: the one the state
/// records, or one whose pid nobody recorded (its starter died right after the spawn), which
/// holds the node's ports and directory all the same.
fn refuse_running(b: &BrokerState) -> Result<(), TestbedError> {
    let recorded = b.pid.filter(|_| ClusterState::is_alive(b));
    match recorded.or_else(|| crate::state::find_node_process(&b.dir)) {
        Some(pid) => Err(TestbedError::BrokerAlreadyRunning { id: b.id, pid }),
        None => Ok(()),
    }
}

/// The node a saved broker entry describes (its ports, role and directory).
fn node_of(b: &BrokerState) -> Result<Node, TestbedError> {
    let id = b.id;
    let layout = NodeLayout {
        id,
        role: b.role,
        plaintext_port: port_of(&b.address, id)?,
        controller_port: b.controller_port,
        secure_port: b
            .secure_address
            .as_deref()
            .map(|a| port_of(a, id))
            .transpose()?,
        metrics_port: None,
        data_dir: b.dir.join("data"),
    };
    Ok(Node::new(layout, b.dir.clone()))
}

fn port_of(address: &str, id: i32) -> Result<u16, TestbedError> {
    address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .ok_or_else(|| TestbedError::InvalidConfig {
            reason: format!("broker {id} has an address without a port: {address:?}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_process_whose_pid_was_never_recorded_is_adopted_not_started_twice() {
        use crate::node::NODE_MARKER;
        let dir = std::env::temp_dir().join(format!("kpilot-adopt-{}", std::process::id()));
        let node_dir = dir.join("node-1");
        std::fs::create_dir_all(&node_dir).expect("dir");
        // Stands in for a broker JVM: its command line names the node directory; no
        // broker.pid was written and the state has no pid.
        // (Two commands, so that bash stays and keeps the marker as its `$0`.)
        let mut orphan = std::process::Command::new("bash")
            .args(["-c", "sleep 30; true"])
            .arg(format!("{NODE_MARKER}{}", node_dir.display()))
            .spawn()
            .expect("spawn");
        let began = Instant::now();
        while !crate::state::process_is_node(orphan.id(), &node_dir) {
            assert!(
                began.elapsed() < Duration::from_secs(10),
                "the stand-in never showed its command line"
            );
            thread::sleep(Duration::from_millis(10));
        }
        let mut state = ClusterState {
            kafka_version: "4.3.1".into(),
            dir: dir.clone(),
            cluster_id: "abc".into(),
            bootstrap: "127.0.0.1:1".into(),
            secure_bootstrap: None,
            security: None,
            brokers: vec![BrokerState {
                id: 1,
                role: crate::config::NodeRole::Combined,
                pid: None,
                address: "127.0.0.1:1".into(),
                secure_address: None,
                controller_port: Some(2),
                dir: node_dir.clone(),
                log: node_dir.join("broker.log"),
            }],
        };
        let started = state.start_broker(1, &NodeLaunch::default(), Duration::from_secs(1));
        assert!(
            matches!(started, Err(TestbedError::BrokerAlreadyRunning { id: 1, pid }) if pid == orphan.id()),
            "{started:?}"
        );
        assert_eq!(state.adopt_running(), vec![1]);
        assert_eq!(state.brokers[0].pid, Some(orphan.id()));
        let _ = orphan.kill();
        let _ = orphan.wait();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_lost_disk_is_what_the_role_keeps() {
        let dir = std::env::temp_dir().join(format!("kpilot-lose-{}", std::process::id()));
        let node = |id: i32, role: NodeRole| {
            let node_dir = dir.join(format!("node-{id}"));
            std::fs::create_dir_all(node_dir.join("data/orders-0")).expect("partition dir");
            std::fs::create_dir_all(node_dir.join("data/__cluster_metadata-0")).expect("meta");
            BrokerState {
                id,
                role,
                pid: None,
                address: format!("127.0.0.1:{}", 9000 + id),
                secure_address: None,
                controller_port: Some(9100),
                dir: node_dir.clone(),
                log: node_dir.join("broker.log"),
            }
        };
        let state = ClusterState {
            kafka_version: "4.3.1".into(),
            dir: dir.clone(),
            cluster_id: "abc".into(),
            bootstrap: "127.0.0.1:9001".into(),
            secure_bootstrap: None,
            security: None,
            brokers: vec![node(1, NodeRole::Combined), node(101, NodeRole::Controller)],
        };
        assert_eq!(
            state.lose_disk(1).expect("combined"),
            DiskLoss::PartitionsDeleted(1)
        );
        assert!(dir.join("node-1/data/__cluster_metadata-0").is_dir());
        assert_eq!(state.lose_disk(101).expect("controller"), DiskLoss::Kept);
        assert!(dir.join("node-101/data/orders-0").is_dir(), "untouched");
        assert!(matches!(
            state.lose_disk(7),
            Err(TestbedError::UnknownBroker { id: 7, .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ports_are_read_from_addresses() {
        assert_eq!(port_of("127.0.0.1:9092", 1).expect("port"), 9092);
        assert!(port_of("127.0.0.1", 1).is_err());
    }
}
