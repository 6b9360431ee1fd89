//! [`LocalFleet`]: the [`Fleet`] of a local testbed cluster (the brokers `scripts/testbed up`
//! leaves running, described by their `state.json`). An **emulation** of instance sizes: a
//! size maps to resources the local JVM really gets, scaled down to fit one machine: the heap
//! (`-Xms`/`-Xmx`), the processor count the JVM sizes its thread pools for
//! (`-XX:ActiveProcessorCount`), and, where the machine allows it (a writable cgroup v1 `cpu`
//! hierarchy, usually root only), a CFS CPU quota. Without cgroups the quota is skipped and
//! the fleet says so ([`LocalFleet::quota_note`]). Performs I/O (files, processes, signals).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use kpilot_capacity::{Catalog, Instance};
use kpilot_cluster::BrokerId;
use kpilot_testbed::{ClusterState as TestbedState, DiskLoss, NodeLaunch};
use kpilot_units::InstanceType;
use serde::{Deserialize, Serialize};

use crate::ports::{Fleet, FleetError};

/// How sizes map to local resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalSizing {
    /// Heap MiB per GiB of the instance's memory (default 32: m7g.large, 8 GiB -> 256 MiB).
    pub heap_mib_per_gib: f64,
    /// Smallest heap, MiB (default 256).
    pub min_heap_mb: u32,
    /// Largest heap, MiB (default 1024).
    pub max_heap_mb: u32,
    /// CPU quota in cores per vCPU of the instance (`None`: no quota; default `None`).
    pub cpu_cores_per_vcpu: Option<f64>,
    /// The cgroup v1 `cpu` hierarchy (default `/sys/fs/cgroup/cpu`).
    pub cgroup_cpu_root: PathBuf,
}

impl Default for LocalSizing {
    fn default() -> Self {
        LocalSizing {
            heap_mib_per_gib: 32.0,
            min_heap_mb: 256,
            max_heap_mb: 1024,
            cpu_cores_per_vcpu: None,
            cgroup_cpu_root: PathBuf::from("/sys/fs/cgroup/cpu"),
        }
    }
}

/// What one size gets locally.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalResources {
    /// JVM heap, MiB.
    pub heap_mb: u32,
    /// `-XX:ActiveProcessorCount`: the instance's vCPUs, capped at this machine's CPUs.
    pub active_processors: u32,
    /// CPU quota in cores, if requested.
    pub cpu_quota_cores: Option<f64>,
}

impl LocalSizing {
    /// The local resources for an instance (pure).
    pub fn resources(&self, instance: &Instance, host_cpus: u32) -> LocalResources {
        let heap = (instance.memory_gib * self.heap_mib_per_gib).round();
        let heap = if heap.is_finite() { heap as u32 } else { 0 };
        LocalResources {
            heap_mb: heap.clamp(self.min_heap_mb, self.max_heap_mb.max(self.min_heap_mb)),
            active_processors: instance.vcpu.clamp(1, host_cpus.max(1)),
            cpu_quota_cores: self
                .cpu_cores_per_vcpu
                .map(|c| (c * f64::from(instance.vcpu)).max(0.05)),
        }
    }
}

/// The sizes recorded for a local cluster's nodes (`<cluster dir>/kpilot-sizes.json`).
type SizeFile = BTreeMap<i32, InstanceType>;

/// The fleet of a local testbed cluster.
#[derive(Debug)]
pub struct LocalFleet {
    state_path: PathBuf,
    sizing: LocalSizing,
    catalog: Catalog,
    stop_timeout: Duration,
    ready_timeout: Duration,
    extra_jvm_args: BTreeMap<BrokerId, Vec<String>>,
    notes: Mutex<Vec<String>>,
    lock: tokio::sync::Mutex<()>,
    fresh_disks: bool,
}

impl LocalFleet {
    /// The fleet of the cluster whose state file is `state_path` (e.g. `.testbed/state.json`).
    pub fn new(state_path: impl Into<PathBuf>, sizing: LocalSizing) -> Result<Self, FleetError> {
        let state_path = state_path.into();
        let catalog = Catalog::builtin().map_err(|e| FleetError::Inspect {
            node: BrokerId(0),
            message: format!("the built-in instance catalog is invalid: {e}"),
        })?;
        let fleet = LocalFleet {
            state_path,
            sizing,
            catalog,
            stop_timeout: Duration::from_secs(60),
            ready_timeout: Duration::from_secs(120),
            extra_jvm_args: BTreeMap::new(),
            notes: Mutex::new(Vec::new()),
            lock: tokio::sync::Mutex::new(()),
            fresh_disks: false,
        };
        fleet.load(BrokerId(0))?;
        Ok(fleet)
    }

    /// How long a graceful stop may take before the broker is killed (default 60 s).
    pub fn with_stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = timeout;
        self
    }

    /// How long a started broker may take to be ready (default 120 s).
    pub fn with_ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Extra JVM arguments for one node's next starts (tests use a bad one to make a broker
    /// that does not come back).
    pub fn with_extra_jvm_args(mut self, node: BrokerId, args: Vec<String>) -> Self {
        self.extra_jvm_args.insert(node, args);
        self
    }

    /// Emulates instance-local disks: a node's new size is a new machine with an empty disk.
    /// A broker-only node's `resize` replaces its whole disk (`ClusterState::replace_disk`:
    /// partitions, metadata log and identity gone, formatted again); a combined node, whose
    /// disk also holds controller-quorum state, loses its partitions only
    /// (`BrokerState::wipe_partition_data`). Kafka rebuilds the replicas from the others
    /// when the node starts.
    pub fn with_fresh_disks(mut self) -> Self {
        self.fresh_disks = true;
        self
    }

    /// What the emulation could not do (e.g. no writable cgroup for the CPU quota).
    pub fn quota_note(&self) -> Vec<String> {
        self.notes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The local resources `size` maps to on this machine.
    pub fn resources_for(
        &self,
        node: BrokerId,
        size: &InstanceType,
    ) -> Result<LocalResources, FleetError> {
        let instance = self
            .catalog
            .instance(size)
            .map_err(|e| FleetError::UnknownSize {
                node,
                size: size.clone(),
                reason: e.to_string(),
            })?;
        Ok(self.sizing.resources(instance, host_cpus()))
    }

    fn load(&self, node: BrokerId) -> Result<TestbedState, FleetError> {
        let mut state = self.load_raw(node)?;
        // A broker started by an earlier kpilot that died before saving the state runs
        // anyway: adopt it, so it is never started twice.
        if !state.adopt_running().is_empty() {
            state
                .save(&self.state_path)
                .map_err(|e| FleetError::Inspect {
                    node,
                    message: e.to_string(),
                })?;
        }
        Ok(state)
    }

    fn load_raw(&self, node: BrokerId) -> Result<TestbedState, FleetError> {
        TestbedState::load(&self.state_path)
            .map_err(|e| FleetError::Inspect {
                node,
                message: e.to_string(),
            })?
            .ok_or_else(|| FleetError::Inspect {
                node,
                message: format!(
                    "no testbed state at {}; start one with `scripts/testbed up`",
                    self.state_path.display()
                ),
            })
    }

    fn sizes_path(state: &TestbedState) -> PathBuf {
        state.dir.join("kpilot-sizes.json")
    }

    fn read_sizes(state: &TestbedState) -> SizeFile {
        std::fs::read_to_string(Self::sizes_path(state))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    fn write_sizes(
        state: &TestbedState,
        sizes: &SizeFile,
        node: BrokerId,
    ) -> Result<(), FleetError> {
        let path = Self::sizes_path(state);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(sizes).unwrap_or_default();
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| FleetError::Inspect {
                node,
                message: format!("writing {} failed: {e}", path.display()),
            })
    }

    fn note(&self, text: String) {
        let mut notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        if !notes.contains(&text) {
            tracing::warn!("{text}");
            notes.push(text);
        }
    }

    /// Creates (or reuses) the node's cgroup with the quota; `None` when not possible.
    fn cgroup_for(&self, state: &TestbedState, node: BrokerId, cores: f64) -> Option<PathBuf> {
        let name: String = format!("kpilot-{}-{}", state.cluster_id, node.0)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let dir = self.sizing.cgroup_cpu_root.join(name);
        let period: u64 = 100_000;
        let quota = (cores * period as f64).round() as u64;
        let result = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join("cpu.cfs_period_us"), period.to_string()))
            .and_then(|()| {
                std::fs::write(dir.join("cpu.cfs_quota_us"), quota.max(1000).to_string())
            });
        match result {
            Ok(()) => Some(dir.join("cgroup.procs")),
            Err(e) => {
                self.note(format!(
                    "no CPU quota for local brokers: cannot use the cgroup {} ({e}); heap and processor count still apply",
                    dir.display()
                ));
                None
            }
        }
    }
}

fn host_cpus() -> u32 {
    std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(1))
        .unwrap_or(1)
}

impl Fleet for LocalFleet {
    async fn check_size(&self, size: &InstanceType) -> Result<(), FleetError> {
        self.resources_for(BrokerId(0), size).map(|_| ())
    }

    async fn size(&self, node: BrokerId) -> Result<Option<InstanceType>, FleetError> {
        let state = self.load(node)?;
        if !state.brokers.iter().any(|b| b.id == node.0) {
            return Err(FleetError::UnknownNode { node });
        }
        Ok(Self::read_sizes(&state).get(&node.0).cloned())
    }

    async fn stop(&self, node: BrokerId) -> Result<(), FleetError> {
        let _guard = self.lock.lock().await;
        let mut state = self.load(node)?;
        let timeout = self.stop_timeout;
        let path = self.state_path.clone();
        let (result, saved) = tokio::task::spawn_blocking(move || {
            let result = state.stop_broker(node.0, timeout);
            // Save even after a failure: the pid is cleared either way.
            (result, state.save(&path))
        })
        .await
        .map_err(|e| FleetError::Stop {
            node,
            message: format!("the stopping task failed: {e}"),
        })?;
        result.map_err(|e| FleetError::Stop {
            node,
            message: e.to_string(),
        })?;
        saved.map_err(|e| FleetError::Stop {
            node,
            message: e.to_string(),
        })
    }

    async fn resize(&self, node: BrokerId, size: &InstanceType) -> Result<(), FleetError> {
        let _guard = self.lock.lock().await;
        self.resources_for(node, size)?;
        let state = self.load(node)?;
        let Some(b) = state.brokers.iter().find(|b| b.id == node.0) else {
            return Err(FleetError::UnknownNode { node });
        };
        if TestbedState::is_alive(b) {
            return Err(FleetError::Resize {
                node,
                size: size.clone(),
                message: "the broker is running; stop it first".to_string(),
            });
        }
        if self.fresh_disks {
            // By role: a broker-only node gets a whole new disk (identity and metadata log
            // too); a combined node keeps its controller-quorum state and loses its
            // partitions; a dedicated controller keeps its disk.
            let id = b.id;
            let state = state.clone();
            let loss = tokio::task::spawn_blocking(move || state.lose_disk(id))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
                .map_err(|message| FleetError::Resize {
                    node,
                    size: size.clone(),
                    message: format!("emptying its disk failed: {message}"),
                })?;
            match loss {
                DiskLoss::NewDisk => {
                    tracing::info!(node = node.0, "gave the node a new, formatted disk");
                }
                DiskLoss::PartitionsDeleted(partitions) => tracing::info!(
                    node = node.0,
                    partitions,
                    "emptied the node's disk (partitions only: it is a controller too)"
                ),
                DiskLoss::Kept => {
                    tracing::info!(node = node.0, "kept the disk of a dedicated controller");
                }
            }
        }
        let mut sizes = Self::read_sizes(&state);
        sizes.insert(node.0, size.clone());
        Self::write_sizes(&state, &sizes, node)
    }

    async fn start(&self, node: BrokerId) -> Result<(), FleetError> {
        let _guard = self.lock.lock().await;
        let mut state = self.load(node)?;
        let Some(b) = state.brokers.iter().find(|b| b.id == node.0) else {
            return Err(FleetError::UnknownNode { node });
        };
        if TestbedState::is_alive(b) {
            return Ok(());
        }
        let mut launch = NodeLaunch::default();
        if let Some(size) = Self::read_sizes(&state).get(&node.0) {
            let r = self.resources_for(node, size)?;
            launch.heap_mb = r.heap_mb;
            launch
                .jvm_args
                .push(format!("-XX:ActiveProcessorCount={}", r.active_processors));
            if let Some(cores) = r.cpu_quota_cores
                && let Some(procs) = self.cgroup_for(&state, node, cores)
            {
                launch.pid_files.push(procs);
            }
        }
        if let Some(extra) = self.extra_jvm_args.get(&node) {
            launch.jvm_args.extend(extra.iter().cloned());
        }
        let timeout = self.ready_timeout;
        let path = self.state_path.clone();
        let (result, saved) = tokio::task::spawn_blocking(move || {
            let result = state.start_broker(node.0, &launch, timeout);
            (result, state.save(&path))
        })
        .await
        .map_err(|e| FleetError::Start {
            node,
            message: format!("the starting task failed: {e}"),
        })?;
        result.map_err(|e| FleetError::Start {
            node,
            message: e.to_string(),
        })?;
        saved.map_err(|e| FleetError::Start {
            node,
            message: e.to_string(),
        })?;
        Ok(())
    }

    fn fresh_disks(&self) -> bool {
        self.fresh_disks
    }

    async fn is_running(&self, node: BrokerId) -> Result<bool, FleetError> {
        let state = self.load(node)?;
        let b = state
            .brokers
            .iter()
            .find(|b| b.id == node.0)
            .ok_or(FleetError::UnknownNode { node })?;
        Ok(TestbedState::is_alive(b))
    }
}

/// The state file of the `scripts/testbed` cluster: `$KPILOT_TESTBED_DIR/state.json`, or
/// `<repo>/.testbed/state.json`.
pub fn default_testbed_state() -> PathBuf {
    std::env::var_os("KPILOT_TESTBED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| kpilot_testbed::repo_dir().join(".testbed"))
        .join("state.json")
}

/// Whether `path` exists (for the CLI's messages).
pub fn state_exists(path: &Path) -> bool {
    path.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_map_to_scaled_local_resources() {
        let catalog = Catalog::builtin().expect("catalog");
        let sizing = LocalSizing::default();
        let large = catalog
            .instance(&"m7g.large".parse().expect("t"))
            .expect("large");
        let xlarge = catalog
            .instance(&"m7g.xlarge".parse().expect("t"))
            .expect("xlarge");
        let r1 = sizing.resources(large, 2);
        let r2 = sizing.resources(xlarge, 2);
        assert_eq!(r1.heap_mb, 256);
        assert_eq!(r2.heap_mb, 512);
        assert_eq!(r1.active_processors, 2);
        assert_eq!(r2.active_processors, 2, "capped at the host's CPUs");
        assert_eq!(r1.cpu_quota_cores, None);
        let quota = LocalSizing {
            cpu_cores_per_vcpu: Some(0.25),
            ..LocalSizing::default()
        };
        assert_eq!(quota.resources(xlarge, 2).cpu_quota_cores, Some(1.0));
    }
}
