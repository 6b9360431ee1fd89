//! [`KafkaCluster`]: a real Apache Kafka KRaft cluster on 127.0.0.1 in its own directory, with
//! per-broker start, stop (SIGTERM), kill (SIGKILL), restart and add. Performs I/O (files,
//! processes, sockets).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::Instant;

use crate::config::{self, CONTROLLER_ID_BASE, ClusterConfig, NodeLayout, NodeRole};
use crate::detached::DiskLoss;
use crate::error::TestbedError;
use crate::node::{self, JmxAgent, Launch, Node, ReadyWatch};
use crate::ports::free_ports;
use crate::prometheus::{JMX_EXPORTER_RULES, JMX_EXPORTER_RULES_FILE};
use crate::random::{hex_token, kafka_uuid};
use crate::setup::{self, kafka_libs_dir};
use crate::state::{BrokerState, ClusterState};
use crate::tls::{self, SecureListener};
use crate::watchdog::Watchdog;

/// `KPILOT_TESTBED_KEEP=1` keeps cluster directories (logs, data) after the cluster is dropped.
pub const KEEP_ENV: &str = "KPILOT_TESTBED_KEEP";

fn keep_requested() -> bool {
    std::env::var(KEEP_ENV).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// A running Kafka KRaft cluster on 127.0.0.1.
///
/// Nodes `1..=brokers` are combined broker+controller nodes forming the controller quorum;
/// [`KafkaCluster::add_broker`] adds broker-only nodes. Every method blocks. Dropping the
/// cluster kills its JVMs and removes its directory, unless the thread is panicking or
/// `KPILOT_TESTBED_KEEP=1`, in which case it prints where the logs are. A watchdog process
/// kills the JVMs if this process dies without dropping the cluster.
#[derive(Debug)]
pub struct KafkaCluster {
    config: ClusterConfig,
    dir: PathBuf,
    cluster_id: String,
    launch: Launch,
    voters: String,
    nodes: Vec<Node>,
    security: Option<SecureListener>,
    watchdog: Option<Watchdog>,
    /// Keep the directory on drop: set while starting, so a failed start leaves its logs.
    keep_dir: bool,
    /// Set by [`KafkaCluster::detach`]: drop leaves processes and files alone.
    detached: bool,
}

impl KafkaCluster {
    /// Starts a cluster in a fresh temporary directory and waits until every broker is ready
    /// (process alive, log shows "Kafka Server started" after being unfenced, client ports
    /// accept TCP), each within `config.ready_timeout`.
    pub fn start(config: ClusterConfig) -> Result<KafkaCluster, TestbedError> {
        Self::start_impl(config, None, true)
    }

    /// Like [`KafkaCluster::start`], in `dir` (created; it must be absent or empty).
    pub fn start_in_dir(
        config: ClusterConfig,
        dir: impl Into<PathBuf>,
    ) -> Result<KafkaCluster, TestbedError> {
        let dir = dir.into();
        if fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some()) {
            return Err(TestbedError::InvalidConfig {
                reason: format!("cluster directory {} is not empty", dir.display()),
            });
        }
        Self::start_impl(config, Some(dir), true)
    }

    fn start_impl(
        config: ClusterConfig,
        dir: Option<PathBuf>,
        use_cds: bool,
    ) -> Result<KafkaCluster, TestbedError> {
        config.validate()?;
        let libs = kafka_libs_dir()?;
        let classpath = setup::classpath(&libs)?;
        let java = setup::java_executable();
        let cds_archive = if use_cds {
            ensure_cds_archive(&java, &classpath)
        } else {
            None
        };
        let jmx_jar = if config.jmx_exporter {
            Some(setup::jmx_exporter_agent_jar()?)
        } else {
            None
        };
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            let dir = match &dir {
                Some(dir) => dir.clone(),
                None => new_temp_dir()?,
            };
            let launch = Launch {
                java: java.clone(),
                classpath: classpath.clone(),
                heap_mb: config.heap_mb,
                jvm_args: config.jvm_args.clone(),
                jit_c1_only: config.jit_c1_only,
                cds_archive: cds_archive.clone(),
                broker_log4j: dir.join("log4j2-broker.properties"),
                tools_log4j: dir.join("log4j2-tools.properties"),
                jmx_exporter: jmx_jar.clone().map(|jar| JmxAgent {
                    jar,
                    rules: dir.join(JMX_EXPORTER_RULES_FILE),
                }),
            };
            match Self::try_start(config.clone(), dir.clone(), launch) {
                Ok(cluster) => {
                    tracing::info!(
                        dir = %cluster.dir.display(),
                        bootstrap = %cluster.bootstrap(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "testbed Kafka cluster ready"
                    );
                    return Ok(cluster);
                }
                Err(e) if attempt == 1 && is_port_clash(&e) => {
                    tracing::warn!(
                        "a broker port was taken meanwhile; retrying with fresh ports: {e}"
                    );
                    let _ = fs::remove_dir_all(&dir);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn try_start(
        config: ClusterConfig,
        dir: PathBuf,
        launch: Launch,
    ) -> Result<Self, TestbedError> {
        fs::create_dir_all(&dir).map_err(TestbedError::write(&dir))?;
        fs::write(&launch.broker_log4j, setup::BROKER_LOG4J2)
            .map_err(TestbedError::write(&launch.broker_log4j))?;
        fs::write(&launch.tools_log4j, setup::TOOLS_LOG4J2)
            .map_err(TestbedError::write(&launch.tools_log4j))?;
        if let Some(agent) = &launch.jmx_exporter {
            fs::write(&agent.rules, JMX_EXPORTER_RULES)
                .map_err(TestbedError::write(&agent.rules))?;
        }
        let watchdog = Watchdog::spawn(&dir, keep_requested())?;
        let mut cluster = KafkaCluster {
            config,
            dir,
            cluster_id: kafka_uuid()?,
            launch,
            voters: String::new(),
            nodes: Vec::new(),
            security: None,
            watchdog: Some(watchdog),
            keep_dir: true,
            detached: false,
        };
        if cluster.config.secure {
            cluster.security = Some(tls::generate(&cluster.dir.join("tls"))?);
        }

        let n = cluster.config.brokers;
        let controllers = cluster.config.controllers;
        let role = NodeRole::of_brokers(controllers);
        let secure = cluster.config.secure;
        let metrics = cluster.launch.jmx_exporter.is_some();
        let combined = role == NodeRole::Combined;
        let per_node = 1 + usize::from(combined) + usize::from(secure) + usize::from(metrics);
        let ports = free_ports(n * per_node + controllers)?;
        let (broker_ports, controller_ports) = ports.split_at(n * per_node);
        let mut voters = Vec::with_capacity(n.max(controllers));
        for (index, chunk) in broker_ports.chunks(per_node).enumerate() {
            let id = i32::try_from(index + 1).expect("at most MAX_BROKERS nodes");
            let controller_port = combined.then(|| chunk[1]);
            voters.extend(controller_port.map(|port| (id, port)));
            let layout = NodeLayout {
                id,
                role,
                plaintext_port: chunk[0],
                controller_port,
                secure_port: secure.then(|| chunk[1 + usize::from(combined)]),
                metrics_port: metrics.then(|| chunk[per_node - 1]),
                data_dir: cluster.node_dir(id).join("data"),
            };
            cluster.nodes.push(Node::new(layout, cluster.node_dir(id)));
        }
        for (index, &port) in controller_ports.iter().enumerate() {
            let id = CONTROLLER_ID_BASE + i32::try_from(index + 1).expect("a few controllers");
            voters.push((id, port));
            let layout = NodeLayout {
                id,
                role: NodeRole::Controller,
                plaintext_port: port,
                controller_port: Some(port),
                secure_port: None,
                metrics_port: None,
                data_dir: cluster.node_dir(id).join("data"),
            };
            cluster.nodes.push(Node::new(layout, cluster.node_dir(id)));
        }
        cluster.voters = config::quorum_voters(&voters);
        for node in &cluster.nodes {
            cluster.write_node_files(node)?;
        }

        // Format every log directory in parallel (one short JVM each), then start every node:
        // the quorum's voters need each other, and brokers need the quorum, so they start
        // together.
        let scram = cluster
            .security
            .as_ref()
            .map(SecureListener::storage_tool_scram_args);
        let tools = cluster
            .nodes
            .iter()
            .map(|node| {
                node.start_format(
                    &cluster.launch,
                    &cluster.cluster_id,
                    scram.as_deref().unwrap_or(&[]),
                )
            })
            .collect::<Vec<_>>();
        finish_formats(&cluster.nodes, tools)?;
        let mut watches = Vec::with_capacity(cluster.nodes.len());
        for node in &cluster.nodes {
            watches.push(node.spawn(&cluster.launch)?);
        }
        cluster.wait_ready(watches)?;
        cluster.keep_dir = false;
        Ok(cluster)
    }

    fn node_dir(&self, id: i32) -> PathBuf {
        self.dir.join(format!("node-{id}"))
    }

    fn write_node_files(&self, node: &Node) -> Result<(), TestbedError> {
        fs::create_dir_all(&node.dir).map_err(TestbedError::write(&node.dir))?;
        let security = self
            .security
            .as_ref()
            .map(SecureListener::listener_security);
        let props =
            config::server_properties(&self.config, &node.layout, &self.voters, security.as_ref());
        let path = node.properties_path();
        fs::write(&path, props.render()).map_err(TestbedError::write(&path))
    }

    fn wait_ready(&self, watches: Vec<ReadyWatch>) -> Result<(), TestbedError> {
        let timeout = self.config.ready_timeout;
        let deadline = Instant::now() + timeout;
        let mut pending = watches;
        loop {
            let mut still = Vec::new();
            for mut watch in pending {
                let node = self.node(watch.id)?;
                if let Some(status) = node.exit_status() {
                    return Err(TestbedError::BrokerExited {
                        id: watch.id,
                        status: status.to_string(),
                        log: watch.log.clone(),
                        tail: node::log_tail(&watch.log),
                    });
                }
                if let Some(what) = watch.check()? {
                    still.push((watch, what));
                }
            }
            let Some((first, waiting_for)) = still.first() else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                return Err(TestbedError::BrokerNotReady {
                    id: first.id,
                    timeout,
                    waiting_for: waiting_for.clone(),
                    log: first.log.clone(),
                    tail: node::log_tail(&first.log),
                });
            }
            pending = still.into_iter().map(|(watch, _)| watch).collect();
            thread::sleep(node::POLL);
        }
    }

    fn node(&self, id: i32) -> Result<&Node, TestbedError> {
        self.nodes
            .iter()
            .find(|n| n.id() == id)
            .ok_or_else(|| TestbedError::UnknownBroker {
                id,
                known: self.nodes.iter().map(Node::id).collect(),
            })
    }

    /// The PLAINTEXT bootstrap list of every broker, in id order: `127.0.0.1:p1,127.0.0.1:p2,...`.
    pub fn bootstrap(&self) -> String {
        self.brokers()
            .map(|n| format!("127.0.0.1:{}", n.layout.plaintext_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The `SASL_SSL` bootstrap list when the cluster was started with `secure: true`.
    pub fn secure_bootstrap(&self) -> Option<String> {
        self.security.as_ref()?;
        let list: Vec<String> = self
            .nodes
            .iter()
            .filter_map(|n| n.layout.secure_port)
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        Some(list.join(","))
    }

    /// The CA certificate, users and passwords of the secure listener, if any.
    pub fn security(&self) -> Option<&SecureListener> {
        self.security.as_ref()
    }

    /// Every broker id (running or not), ascending; dedicated controllers are not brokers.
    pub fn broker_ids(&self) -> Vec<i32> {
        self.brokers().map(Node::id).collect()
    }

    /// The ids of the dedicated controller-only nodes (running or not), ascending; empty when
    /// the brokers are the controllers.
    pub fn controller_ids(&self) -> Vec<i32> {
        self.nodes
            .iter()
            .filter(|n| !n.layout.role.is_broker())
            .map(Node::id)
            .collect()
    }

    fn brokers(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.layout.role.is_broker())
    }

    /// The PLAINTEXT `host:port` of broker `id` (`None` for a controller-only node).
    pub fn broker_address(&self, id: i32) -> Option<String> {
        let node = self.node(id).ok()?;
        node.layout
            .role
            .is_broker()
            .then(|| format!("127.0.0.1:{}", node.layout.plaintext_port))
    }

    /// The `SASL_SSL` `host:port` of broker `id` when the cluster is secure.
    pub fn secure_broker_address(&self, id: i32) -> Option<String> {
        let port = self.node(id).ok()?.layout.secure_port?;
        Some(format!("127.0.0.1:{port}"))
    }

    /// The `host:port` where broker `id`'s JMX exporter serves `/metrics`, when the cluster
    /// was started with [`ClusterConfig::jmx_exporter`].
    pub fn metrics_address(&self, id: i32) -> Option<String> {
        let port = self.node(id).ok()?.layout.metrics_port?;
        Some(format!("127.0.0.1:{port}"))
    }

    /// Every node's `(id, JMX exporter host:port)`, in id order; empty without
    /// [`ClusterConfig::jmx_exporter`].
    pub fn metrics_targets(&self) -> Vec<(i32, String)> {
        self.nodes
            .iter()
            .filter_map(|n| {
                let port = n.layout.metrics_port?;
                Some((n.id(), format!("127.0.0.1:{port}")))
            })
            .collect()
    }

    /// The KRaft role of node `id`.
    pub fn role(&self, id: i32) -> Option<NodeRole> {
        self.node(id).ok().map(|n| n.layout.role)
    }

    /// Stops broker `id` with SIGTERM (Kafka's controlled shutdown) and waits for it to exit.
    /// Past `config.stop_timeout` it is killed and [`TestbedError::StopBrokerTimedOut`]
    /// returned. Stopping a broker that is not running does nothing.
    pub fn stop_broker(&mut self, id: i32) -> Result<(), TestbedError> {
        self.node(id)?.terminate(self.config.stop_timeout)
    }

    /// Deletes every partition the stopped broker `id` stores, as a new node with an empty
    /// instance-local disk would find it (its identity and the KRaft metadata log stay; see
    /// `BrokerState::wipe_partition_data`): Kafka rebuilds the replicas when it starts.
    /// Returns how many partition directories were deleted.
    pub fn wipe_partition_data(&mut self, id: i32) -> Result<usize, TestbedError> {
        let node = self.node(id)?;
        if let Some(pid) = node.pid() {
            return Err(TestbedError::BrokerAlreadyRunning { id, pid });
        }
        crate::state::wipe_partition_dir(&node.layout.data_dir)
    }

    /// Gives the stopped broker-only node `id` a new, empty disk, as a node that replaced a
    /// lost one with instance-local storage finds it: the whole log directory is deleted (its
    /// partitions, its KRaft metadata log, its identity with the directory id) and formatted
    /// again with the cluster id and node id, as Strimzi formats a new broker's volume. Kafka
    /// then learns the metadata from the controllers and rebuilds the replicas from the
    /// others when the node starts. Refused for a combined node: its disk also holds its
    /// controller-quorum state, which must not be lost (use
    /// [`KafkaCluster::wipe_partition_data`]).
    pub fn replace_disk(&mut self, id: i32) -> Result<(), TestbedError> {
        let node = self.node(id)?;
        if let Some(pid) = node.pid() {
            return Err(TestbedError::BrokerAlreadyRunning { id, pid });
        }
        node.replace_disk(&self.launch, &self.cluster_id)
    }

    /// What the stopped node `id` keeps when the node under it is replaced and its
    /// instance-local disk with it, by role, as [`ClusterState::lose_disk`] decides it: a new
    /// disk for a broker-only node, the partitions deleted for a combined one, nothing done
    /// to a dedicated controller.
    pub fn lose_disk(&mut self, id: i32) -> Result<DiskLoss, TestbedError> {
        let node = self.node(id)?;
        if let Some(pid) = node.pid() {
            return Err(TestbedError::BrokerAlreadyRunning { id, pid });
        }
        DiskLoss::by_role(
            node.layout.role,
            || node.replace_disk(&self.launch, &self.cluster_id),
            || crate::state::wipe_partition_dir(&node.layout.data_dir),
        )
    }

    /// Kills broker `id` with SIGKILL (a crash) and reaps it. Killing a broker that is not
    /// running does nothing.
    pub fn kill_broker(&mut self, id: i32) -> Result<(), TestbedError> {
        self.node(id)?.kill()
    }

    /// Starts a stopped or killed broker again with the same ports and log directory, and
    /// waits until it is ready.
    pub fn start_broker(&mut self, id: i32) -> Result<(), TestbedError> {
        let node = self.node(id)?;
        if let Some(pid) = node.pid() {
            return Err(TestbedError::BrokerAlreadyRunning { id, pid });
        }
        let watch = node.spawn(&self.launch)?;
        self.wait_ready(vec![watch])
    }

    /// Adds a broker-only node (`process.roles=broker`) with the next free id, waits until it
    /// is ready, and returns its id. It joins with no partitions; moving some to it is a
    /// reassignment.
    pub fn add_broker(&mut self) -> Result<i32, TestbedError> {
        match self.try_add_broker() {
            Err(e) if is_port_clash(&e) => {
                tracing::warn!("a port of the new broker was taken meanwhile; retrying: {e}");
                self.try_add_broker()
            }
            outcome => outcome,
        }
    }

    /// One attempt of [`KafkaCluster::add_broker`]: a broker that fails to start is removed
    /// again (process and files), so a retry starts clean.
    fn try_add_broker(&mut self) -> Result<i32, TestbedError> {
        let id = self.brokers().map(Node::id).max().unwrap_or(0) + 1;
        let secure = self.security.is_some();
        let metrics = self.launch.jmx_exporter.is_some();
        let ports = free_ports(1 + usize::from(secure) + usize::from(metrics))?;
        let layout = NodeLayout {
            id,
            role: NodeRole::Broker,
            plaintext_port: ports[0],
            controller_port: None,
            secure_port: secure.then(|| ports[1]),
            metrics_port: metrics.then(|| ports[ports.len() - 1]),
            data_dir: self.node_dir(id).join("data"),
        };
        let node = Node::new(layout, self.node_dir(id));
        self.write_node_files(&node)?;
        let tool = node.start_format(&self.launch, &self.cluster_id, &[]);
        finish_formats(std::slice::from_ref(&node), vec![tool])?;
        let watch = node.spawn(&self.launch)?;
        self.nodes.push(node);
        if let Err(e) = self.wait_ready(vec![watch]) {
            if let Some(node) = self.nodes.pop() {
                let _ = node.kill();
            }
            if is_port_clash(&e) {
                let _ = fs::remove_dir_all(self.node_dir(id));
            }
            return Err(e);
        }
        Ok(id)
    }

    /// True while broker `id`'s process runs.
    pub fn is_running(&self, id: i32) -> bool {
        self.pid(id).is_some()
    }

    /// The process id of broker `id` while it runs.
    pub fn pid(&self, id: i32) -> Option<u32> {
        self.node(id).ok()?.pid()
    }

    /// Broker `id`'s log file (its JVM's stdout and stderr, appended across restarts).
    pub fn log_path(&self, id: i32) -> Option<PathBuf> {
        self.node(id).ok().map(Node::log_path)
    }

    /// The cluster's directory (configs, data, logs, TLS material).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cluster id the log directories were formatted with.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// The configuration the cluster was started with.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// `java` with the Kafka classpath (`-Xmx512m`, warnings-only logging on stderr) ready for
    /// `main_class`; add the tool's arguments, e.g.
    /// `cluster.java_command("org.apache.kafka.tools.TopicCommand").args(["--bootstrap-server", &b, "--list"])`.
    pub fn java_command(&self, main_class: &str) -> Command {
        self.launch.tool(main_class, 512, false)
    }

    /// A snapshot of the cluster (addresses, pids, paths, secure listener) in the form
    /// `kpilot-testbed` saves.
    pub fn state(&self) -> ClusterState {
        ClusterState {
            kafka_version: setup::kafka_version().to_owned(),
            dir: self.dir.clone(),
            cluster_id: self.cluster_id.clone(),
            bootstrap: self.bootstrap(),
            secure_bootstrap: self.secure_bootstrap(),
            security: self.security.clone(),
            brokers: self
                .nodes
                .iter()
                .map(|n| BrokerState {
                    id: n.id(),
                    role: n.layout.role,
                    pid: n.pid(),
                    address: format!("127.0.0.1:{}", n.layout.plaintext_port),
                    secure_address: n.layout.secure_port.map(|p| format!("127.0.0.1:{p}")),
                    controller_port: n.layout.controller_port,
                    dir: n.dir.clone(),
                    log: n.log_path(),
                })
                .collect(),
        }
    }

    /// Lets the brokers outlive this value (and this process): disarms the watchdog and makes
    /// `Drop` leave processes and files alone. Use [`ClusterState::stop`] to stop them later.
    pub fn detach(mut self) -> ClusterState {
        let state = self.state();
        self.detached = true;
        for node in &self.nodes {
            node.release();
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            watchdog.disarm();
        }
        state
    }
}

impl Drop for KafkaCluster {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        for node in &self.nodes {
            if let Err(e) = node.kill() {
                eprintln!("kpilot-testbed: {e}");
            }
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            watchdog.disarm();
        }
        if self.keep_dir || thread::panicking() || keep_requested() {
            let logs: Vec<String> = self
                .nodes
                .iter()
                .map(|n| format!("  {}", n.log_path().display()))
                .collect();
            eprintln!(
                "kpilot-testbed: kept the cluster directory {} (remove it when done); broker logs:\n{}",
                self.dir.display(),
                logs.join("\n")
            );
        } else if let Err(e) = fs::remove_dir_all(&self.dir) {
            eprintln!(
                "kpilot-testbed: removing {} failed: {e}",
                self.dir.display()
            );
        }
    }
}

/// The brokers' class-data-sharing archive, created on first use: a single-node cluster runs
/// once with `-XX:ArchiveClassesAtExit` and is stopped, and the JVM writes the classes it
/// loaded. Later JVMs map them instead of loading ~40% of their startup CPU again. Returns
/// `None` (and the cluster starts without it) when the archive cannot be made; a JDK or
/// classpath change gets a new archive (see `setup::cds_archive_path`).
fn ensure_cds_archive(java: &Path, classpath: &str) -> Option<PathBuf> {
    static CREATE: Mutex<()> = Mutex::new(());
    let path = match setup::cds_archive_path(java, classpath) {
        Ok(path) => path,
        Err(e) => {
            tracing::warn!("no class-data-sharing archive: {e}");
            return None;
        }
    };
    let failed = path.with_extension("failed");
    if path.is_file() {
        return Some(path);
    }
    if failed.exists() {
        return None;
    }
    let _guard = CREATE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if path.is_file() {
        return Some(path);
    }
    let dir = path.parent()?;
    if let Err(e) = fs::create_dir_all(dir) {
        tracing::warn!(
            "no class-data-sharing archive: creating {} failed: {e}",
            dir.display()
        );
        return None;
    }
    eprintln!(
        "kpilot-testbed: creating the broker class-data-sharing archive {} (once per Kafka version and JDK)",
        path.display()
    );
    let tmp = path.with_extension(format!("jsa.tmp.{}", std::process::id()));
    let config = ClusterConfig {
        brokers: 1,
        jvm_args: vec![format!("-XX:ArchiveClassesAtExit={}", tmp.display())],
        ..ClusterConfig::default()
    };
    let t = Instant::now();
    let run = KafkaCluster::start_impl(config, None, false)
        .and_then(|mut cluster| cluster.stop_broker(1));
    match run {
        Ok(()) if tmp.is_file() => match fs::rename(&tmp, &path) {
            Ok(()) => {
                remove_other_archives(&path);
                tracing::info!(archive = %path.display(), elapsed_ms = t.elapsed().as_millis() as u64, "created the class-data-sharing archive");
                Some(path)
            }
            Err(e) => {
                tracing::warn!(
                    "no class-data-sharing archive: renaming {} failed: {e}",
                    tmp.display()
                );
                let _ = fs::remove_file(&tmp);
                None
            }
        },
        Ok(()) => {
            // The JVM ran and stopped cleanly but wrote nothing: it cannot, don't try again.
            let _ = fs::write(
                &failed,
                "the JVM wrote no archive with -XX:ArchiveClassesAtExit\n",
            );
            eprintln!(
                "kpilot-testbed: this JVM wrote no class-data-sharing archive; brokers start without one"
            );
            None
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            tracing::warn!("no class-data-sharing archive: the archiving broker failed: {e}");
            None
        }
    }
}

/// Removes archives made for an older JDK or older jars (JVMs still mapping one keep it open).
fn remove_other_archives(current: &Path) {
    let Some(dir) = current.parent() else { return };
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path != current && name.starts_with("broker-") && name.ends_with(".jsa") {
            let _ = fs::remove_file(&path);
        }
    }
}

/// Waits for storage tools started in parallel; the first failure wins.
fn finish_formats(
    nodes: &[Node],
    tools: Vec<Result<Child, TestbedError>>,
) -> Result<(), TestbedError> {
    let mut first_error = None;
    for (node, tool) in nodes.iter().zip(tools) {
        let result = tool.and_then(|child| node.finish_format(child));
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// A new, empty directory under the system temp dir.
fn new_temp_dir() -> Result<PathBuf, TestbedError> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "kpilot-testbed-{}-{seq}-{}",
        std::process::id(),
        hex_token::<3>()?
    ));
    fs::create_dir_all(dir.parent().unwrap_or(Path::new("/")))
        .map_err(TestbedError::write(&dir))?;
    fs::create_dir(&dir).map_err(TestbedError::write(&dir))?;
    Ok(dir)
}

/// Whether a broker failed because a port picked for it was taken in the meantime. The bind
/// error comes early in the log and the broker logs its whole shutdown after it, so the tail
/// in the error rarely shows it: the log file is searched too.
fn is_port_clash(e: &TestbedError) -> bool {
    const BIND_FAILED: &str = "Address already in use";
    match e {
        TestbedError::BrokerExited { tail, log, .. }
        | TestbedError::BrokerNotReady { tail, log, .. } => {
            tail.contains(BIND_FAILED)
                || fs::read_to_string(log).is_ok_and(|text| text.contains(BIND_FAILED))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_can_be_shared_between_tests() {
        fn shareable<T: Send + Sync>() {}
        shareable::<KafkaCluster>();
    }

    #[test]
    fn port_clash_is_recognized_from_the_log_tail() {
        let clash = TestbedError::BrokerExited {
            id: 1,
            status: "exit status: 1".into(),
            log: "/x".into(),
            tail: "java.net.BindException: Address already in use".into(),
        };
        assert!(is_port_clash(&clash));
        let other = TestbedError::BrokerExited {
            id: 1,
            status: "exit status: 1".into(),
            log: "/x".into(),
            tail: "OutOfMemoryError".into(),
        };
        assert!(!is_port_clash(&other));
    }

    #[test]
    fn port_clash_is_found_in_the_log_when_the_shutdown_pushed_it_out_of_the_tail() {
        let dir = new_temp_dir().expect("temp dir");
        let log = dir.join("broker.log");
        let mut text = String::from(
            "ERROR Unable to start acceptor for PLAINTEXT\n\
             org.apache.kafka.common.KafkaException: Socket server failed to bind to \
             127.0.0.1:37301: Address already in use.\n",
        );
        for i in 0..200 {
            text.push_str(&format!("INFO shutting down component {i}\n"));
        }
        fs::write(&log, text).expect("write log");
        let exited = |log: PathBuf| TestbedError::BrokerExited {
            id: 3,
            status: "exit status: 1".into(),
            log,
            tail: "INFO App info kafka.server for 3 unregistered".into(),
        };
        assert!(is_port_clash(&exited(log.clone())));
        fs::write(&log, "ERROR OutOfMemoryError\n").expect("write log");
        assert!(!is_port_clash(&exited(log)));
        assert!(!is_port_clash(&exited(dir.join("missing.log"))));
        fs::remove_dir_all(&dir).expect("remove temp dir");
    }

    #[test]
    fn temp_dirs_are_fresh_and_distinct() {
        let a = new_temp_dir().expect("temp dir");
        let b = new_temp_dir().expect("temp dir");
        assert_ne!(a, b);
        assert!(a.is_dir() && b.is_dir());
        fs::remove_dir(a).expect("empty");
        fs::remove_dir(b).expect("empty");
    }
}
