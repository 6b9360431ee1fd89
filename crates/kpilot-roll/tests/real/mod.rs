//! Helpers for the tests against real Kafka brokers (kpilot-testbed): a detached 3-node
//! cluster whose `state.json` the local fleet drives, stopped and removed on drop; an admin
//! client; Kafka's own verifiable producer and consumer; a monitor of how many brokers are
//! down at once.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use kpilot_cluster::TopicName;
use kpilot_kafka::{AdminClient, BrokerAddress, ClientConfig, NewTopic};
use kpilot_testbed::{ClusterConfig, ClusterState as TestbedState, KafkaCluster};

/// A detached testbed cluster described by a state file in a temp dir.
pub struct Testbed {
    pub state_path: PathBuf,
    pub dir: PathBuf,
    pub bootstrap: String,
}

impl Testbed {
    pub fn start(brokers: usize) -> Testbed {
        Self::start_plus(brokers, 0)
    }

    /// `brokers` combined nodes (ids `1..=brokers`) and `broker_only` broker-only nodes
    /// after them.
    pub fn start_plus(brokers: usize, broker_only: usize) -> Testbed {
        Self::start_config(Self::config(brokers), broker_only)
    }

    /// `brokers` broker-only nodes (ids `1..=brokers`) and `controllers` dedicated
    /// controller-only nodes (ids `101..`).
    pub fn start_dedicated(brokers: usize, controllers: usize) -> Testbed {
        Self::start_config(Self::config(brokers).with_controllers(controllers), 0)
    }

    fn config(brokers: usize) -> ClusterConfig {
        ClusterConfig {
            brokers,
            min_insync_replicas: 2,
            auto_leader_rebalance: false,
            ready_timeout: Duration::from_secs(120),
            ..ClusterConfig::default()
        }
    }

    fn start_config(config: ClusterConfig, broker_only: usize) -> Testbed {
        let mut cluster = KafkaCluster::start(config)
            .expect("start a Kafka testbed (scripts/setup-kafka must work)");
        for _ in 0..broker_only {
            cluster.add_broker().expect("add a broker-only node");
        }
        let state = cluster.detach();
        let dir = std::env::temp_dir().join(format!(
            "kpilot-roll-test-{}-{}",
            std::process::id(),
            state.cluster_id
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let state_path = dir.join("state.json");
        state.save(&state_path).expect("save state");
        Testbed {
            state_path,
            dir,
            bootstrap: state.bootstrap.clone(),
        }
    }

    pub fn state(&self) -> TestbedState {
        let mut s = TestbedState::load(&self.state_path)
            .expect("load")
            .expect("state exists");
        s.adopt_running();
        s
    }

    pub fn pids(&self) -> BTreeMap<i32, Option<u32>> {
        self.state().brokers.iter().map(|b| (b.id, b.pid)).collect()
    }

    /// Stops broker `id` (SIGTERM) through the state file.
    pub fn stop(&self, id: i32) {
        let mut s = self.state();
        s.stop_broker(id, Duration::from_secs(60)).expect("stop");
        s.save(&self.state_path).expect("save");
    }

    /// Starts broker `id` with the default launch through the state file.
    pub fn start_broker(&self, id: i32) {
        let mut s = self.state();
        s.start_broker(
            id,
            &kpilot_testbed::NodeLaunch::default(),
            Duration::from_secs(120),
        )
        .expect("start");
        s.save(&self.state_path).expect("save");
    }

    /// `java` with the Kafka classpath for a tool.
    pub fn tool(&self, main_class: &str) -> Command {
        let libs = kpilot_testbed::kafka_libs_dir().expect("kafka jars");
        let mut cmd = Command::new(kpilot_testbed::java_executable());
        cmd.arg("-Xmx256m")
            .arg("-XX:+UseSerialGC")
            .arg("-XX:TieredStopAtLevel=1")
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                self.state().dir.join("log4j2-tools.properties").display()
            ))
            .arg("-cp")
            .arg(format!("{}/*", libs.display()))
            .arg(main_class);
        cmd
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if let Ok(Some(mut s)) = TestbedState::load(&self.state_path) {
            s.adopt_running();
            let _ = s.stop(Duration::from_secs(30));
            if !thread::panicking() {
                let _ = std::fs::remove_dir_all(&s.dir);
            } else {
                eprintln!("kept the cluster directory {}", s.dir.display());
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The tests' runtime: two worker threads, I/O and timers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The `directory.id` in a log directory's `meta.properties`: a new one means a new disk.
pub fn directory_id(data_dir: &Path) -> String {
    let meta = std::fs::read_to_string(data_dir.join("meta.properties")).expect("meta");
    meta.lines()
        .find_map(|l| l.strip_prefix("directory.id="))
        .expect("directory.id")
        .to_string()
}

/// Runs a roll to its end with the default settings, printing its events after `label`.
pub fn roll(
    runtime: &tokio::runtime::Runtime,
    admin: &AdminClient,
    fleet: &kpilot_roll::LocalFleet,
    options: &kpilot_roll::RollOptions,
    store: &mut kpilot_roll::FileStore,
    label: &str,
) -> kpilot_roll::RollReport {
    runtime
        .block_on(
            kpilot_roll::Roller::new(
                admin,
                fleet,
                kpilot_roll::Settings::default(),
                |e: &kpilot_roll::RollEvent| eprintln!("{label}: {e}"),
            )
            .run(options, store),
        )
        .unwrap_or_else(|e| panic!("{label}: the roll did not complete: {e}"))
}

/// Appends `batches` batches of ten 10 kB records to each of `partitions` partitions of
/// `topic` (100 kB a batch).
pub async fn fill(admin: &AdminClient, topic: &str, partitions: i32, batches: usize) {
    let value = bytes::Bytes::from(vec![b'x'; 10_000]);
    let batch: Vec<(Option<bytes::Bytes>, Option<bytes::Bytes>)> =
        (0..10).map(|_| (None, Some(value.clone()))).collect();
    for p in 0..partitions {
        let tp = kpilot_cluster::TopicPartition::new(TopicName::new(topic).expect("topic"), p);
        for _ in 0..batches {
            admin.produce(&tp, &batch).await.expect("fill");
        }
    }
}

pub async fn admin(bootstrap: &str) -> AdminClient {
    let mut config = ClientConfig::new(BrokerAddress::parse_list(bootstrap).expect("bootstrap"));
    config.api_timeout = Duration::from_secs(30);
    config.request_timeout = Duration::from_secs(15);
    AdminClient::connect(config).await.expect("connect")
}

pub async fn create_topics(admin: &AdminClient, topics: &[(&str, i32)]) {
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions)| {
            NewTopic::new(TopicName::new(*name).expect("name"), *partitions, 3)
                .with_config("min.insync.replicas", 2)
        })
        .collect();
    admin.create_topics(&new).await.expect("create topics");
    for (name, _) in topics {
        admin
            .wait_for_topic(&TopicName::new(*name).expect("name"))
            .await
            .expect("topic ready");
    }
}

/// Counts how many brokers are down at once, polling the processes every 50 ms.
pub struct DownMonitor {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicUsize>,
    handle: Option<JoinHandle<()>>,
}

impl DownMonitor {
    /// Samples, every 50 ms until [`DownMonitor::finish`], how many nodes are down. A node is
    /// down while its process is not running; a broker also while the cluster's metadata does
    /// not list it among its `brokers` live ones: the local fleet relaunches a JVM right after
    /// the old one exits, so the process gap alone can fall between two samples, while a
    /// restarted broker is missing from the metadata for the seconds it takes to register
    /// again. Dedicated controllers count by their processes only.
    pub fn start(state_path: &Path, brokers: usize) -> DownMonitor {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicUsize::new(0));
        let (s, m, path) = (stop.clone(), max.clone(), state_path.to_owned());
        let bootstrap = TestbedState::load(state_path)
            .ok()
            .flatten()
            .map(|state| state.bootstrap)
            .expect("the testbed state names a bootstrap");
        let handle = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let mut config =
                ClientConfig::new(BrokerAddress::parse_list(&bootstrap).expect("bootstrap"));
            config.api_timeout = Duration::from_secs(2);
            config.request_timeout = Duration::from_secs(1);
            let admin = runtime
                .block_on(AdminClient::connect(config))
                .expect("connect the down monitor");
            while !s.load(Ordering::Relaxed) {
                // Node dirs and pids come from the state file; a restarted JVM is found
                // through its node directory's broker.pid.
                if let Ok(Some(mut state)) = TestbedState::load(&path) {
                    state.adopt_running();
                    let up = state.running().len();
                    m.fetch_max(state.brokers.len().saturating_sub(up), Ordering::Relaxed);
                }
                // One metadata answer is one broker's consistent view; a failed request (a
                // broker going away under the connection) is no sample.
                if let Ok(metadata) = runtime.block_on(admin.refresh_metadata()) {
                    m.fetch_max(
                        brokers.saturating_sub(metadata.brokers.len()),
                        Ordering::Relaxed,
                    );
                }
                thread::sleep(Duration::from_millis(50));
            }
        });
        DownMonitor {
            stop,
            max,
            handle: Some(handle),
        }
    }

    pub fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.max.load(Ordering::Relaxed)
    }
}

/// A running Java tool whose stdout JSON lines are collected by a thread.
pub struct JsonTool {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<serde_json::Value>>>,
    reader: Option<JoinHandle<()>>,
}

impl JsonTool {
    pub fn spawn(mut cmd: Command) -> JsonTool {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn java tool");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    sink.lock().expect("lines").push(v);
                }
            }
        });
        JsonTool {
            child,
            lines,
            reader: Some(reader),
        }
    }

    pub fn count(&self, name: &str) -> usize {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .filter(|v| v["name"] == name)
            .count()
    }

    pub fn events(&self, name: &str) -> Vec<serde_json::Value> {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .filter(|v| v["name"] == name)
            .cloned()
            .collect()
    }

    /// SIGTERM (the tools flush and print their final events), wait up to 30 s, else kill.
    pub fn terminate(&mut self) {
        let pid = self.child.id();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

impl Drop for JsonTool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `cond` holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(100));
    }
    cond()
}
