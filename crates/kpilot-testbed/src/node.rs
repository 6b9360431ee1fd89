//! One KRaft node's process: formatting its log directory, spawning the broker JVM with its
//! output appended to a log file, readiness checks, SIGTERM/SIGKILL and reaping. Performs I/O
//! (files, processes, TCP connects to 127.0.0.1).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustix::process::{Pid, Signal};

use crate::config::{NodeLayout, NodeRole};
use crate::error::TestbedError;

/// The log line a KRaft node prints once it is fully started; for a broker it comes after
/// "The broker has been unfenced" (Kafka 4.x `KafkaRaftServer`).
pub(crate) const READY_LINE: &[u8] = b"Kafka Server started";

/// The system property that marks a testbed JVM; its value is the node directory. The
/// watchdog and `kpilot-testbed down` only signal processes whose command line carries it.
pub(crate) const NODE_MARKER: &str = "-Dkpilot.testbed.node=";

/// How often readiness and exit are polled.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// How to launch JVMs for a cluster (shared by every node).
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub(crate) java: PathBuf,
    pub(crate) classpath: String,
    pub(crate) heap_mb: u32,
    pub(crate) jvm_args: Vec<String>,
    pub(crate) jit_c1_only: bool,
    /// The class-data-sharing archive (`-XX:SharedArchiveFile`), when one exists.
    pub(crate) cds_archive: Option<PathBuf>,
    pub(crate) broker_log4j: PathBuf,
    pub(crate) tools_log4j: PathBuf,
    /// The JMX exporter agent, for nodes with a metrics port.
    pub(crate) jmx_exporter: Option<JmxAgent>,
}

/// The Prometheus JMX exporter java agent and its rules file.
#[derive(Debug, Clone)]
pub(crate) struct JmxAgent {
    pub(crate) jar: PathBuf,
    pub(crate) rules: PathBuf,
}

impl JmxAgent {
    /// `-javaagent:<jar>=127.0.0.1:<port>:<rules>`: serve on loopback only.
    pub(crate) fn jvm_arg(&self, port: u16) -> String {
        format!(
            "-javaagent:{}=127.0.0.1:{port}:{}",
            self.jar.display(),
            self.rules.display()
        )
    }
}

impl Launch {
    /// `java` with the Kafka classpath and quiet logging, for a tool's main class.
    /// `short_lived` tools run with the C1 compiler only, which starts faster.
    pub(crate) fn tool(&self, main_class: &str, heap_mb: u32, short_lived: bool) -> Command {
        let mut cmd = Command::new(&self.java);
        if short_lived {
            cmd.arg("-XX:TieredStopAtLevel=1");
        }
        if let Some(archive) = &self.cds_archive {
            cmd.arg(format!("-XX:SharedArchiveFile={}", archive.display()));
        }
        // JVM warnings (e.g. a stale archive) to stderr, so the tool's stdout stays parseable.
        cmd.arg("-Xlog:disable").arg("-Xlog:all=warning:stderr");
        cmd.arg(format!("-Xmx{heap_mb}m"))
            .arg("-XX:+UseSerialGC")
            .arg("-Djava.awt.headless=true")
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                self.tools_log4j.display()
            ))
            .arg("-cp")
            .arg(&self.classpath)
            .arg(main_class);
        cmd
    }
}

/// One node of a testbed cluster and, while it runs, its process.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) layout: NodeLayout,
    /// `<cluster dir>/node-<id>`.
    pub(crate) dir: PathBuf,
    /// The running (or exited but not yet reaped) broker process.
    child: Mutex<Option<Child>>,
}

impl Node {
    pub(crate) fn new(layout: NodeLayout, dir: PathBuf) -> Self {
        Node {
            layout,
            dir,
            child: Mutex::new(None),
        }
    }

    pub(crate) fn id(&self) -> i32 {
        self.layout.id
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.join("broker.log")
    }

    pub(crate) fn properties_path(&self) -> PathBuf {
        self.dir.join("server.properties")
    }

    fn pid_path(&self) -> PathBuf {
        self.dir.join("broker.pid")
    }

    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Formats the node's log directory with the storage tool (a separate JVM), returning the
    /// running tool; `Node::finish_format` waits for it.
    pub(crate) fn start_format(
        &self,
        launch: &Launch,
        cluster_id: &str,
        extra_args: &[String],
    ) -> Result<Child, TestbedError> {
        let mut cmd = launch.tool("kafka.tools.StorageTool", 128, true);
        cmd.arg("format")
            .arg("-t")
            .arg(cluster_id)
            .arg("-c")
            .arg(self.properties_path());
        cmd.args(extra_args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().map_err(|source| TestbedError::RunJava {
            java: launch.java.clone(),
            source,
        })
    }

    /// Gives this stopped broker-only node a new, empty disk: its whole log directory
    /// deleted and formatted again with `cluster_id` and its node id (see
    /// `KafkaCluster::replace_disk`). The caller checks that it is stopped.
    pub(crate) fn replace_disk(
        &self,
        launch: &Launch,
        cluster_id: &str,
    ) -> Result<(), TestbedError> {
        let id = self.id();
        let holds = match self.layout.role {
            NodeRole::Broker => None,
            NodeRole::Combined => Some(
                "a combined broker and controller: its disk holds controller-quorum state (wipe_partition_data empties a combined node's partitions)",
            ),
            NodeRole::Controller => Some(
                "a dedicated controller: its disk holds the controller-quorum state and no partitions",
            ),
        };
        if let Some(holds) = holds {
            return Err(TestbedError::InvalidConfig {
                reason: format!("node {id} is {holds}; replace_disk only takes broker-only nodes"),
            });
        }
        let dir = &self.layout.data_dir;
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(TestbedError::write(dir))?;
        }
        let tool = self.start_format(launch, cluster_id, &[])?;
        self.finish_format(tool)
    }

    /// Waits for a storage tool started by [`Node::start_format`].
    pub(crate) fn finish_format(&self, tool: Child) -> Result<(), TestbedError> {
        let output = tool
            .wait_with_output()
            .map_err(|source| TestbedError::WaitBroker {
                id: self.id(),
                pid: 0,
                source,
            })?;
        if output.status.success() {
            return Ok(());
        }
        Err(TestbedError::FormatStorage {
            id: self.id(),
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        })
    }

    /// Spawns the broker JVM (in its own process group, so a Ctrl-C aimed at a test run does
    /// not reach it; the watchdog or `Drop` ends it) and returns where readiness checks start
    /// reading its log.
    pub(crate) fn spawn(&self, launch: &Launch) -> Result<ReadyWatch, TestbedError> {
        let log_path = self.log_path();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(TestbedError::write(&log_path))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        writeln!(
            log,
            "===== kpilot-testbed: starting node {} at unix time {now} =====",
            self.id()
        )
        .map_err(TestbedError::write(&log_path))?;
        let offset = log.metadata().map_err(TestbedError::read(&log_path))?.len();
        let stderr = log.try_clone().map_err(TestbedError::write(&log_path))?;

        let heap = launch.heap_mb;
        let mut cmd = Command::new(&launch.java);
        cmd.arg(format!("-Xms{heap}m"))
            .arg(format!("-Xmx{heap}m"))
            .arg("-XX:+UseSerialGC")
            .arg("-XX:+ExitOnOutOfMemoryError")
            .args(launch.jit_c1_only.then_some("-XX:TieredStopAtLevel=1"))
            .args(
                launch
                    .cds_archive
                    .as_ref()
                    .map(|a| format!("-XX:SharedArchiveFile={}", a.display())),
            )
            .arg("-Djava.awt.headless=true")
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                launch.broker_log4j.display()
            ))
            .arg(format!("{NODE_MARKER}{}", self.dir.display()))
            .args(
                launch
                    .jmx_exporter
                    .as_ref()
                    .zip(self.layout.metrics_port)
                    .map(|(agent, port)| agent.jvm_arg(port)),
            )
            .args(&launch.jvm_args)
            .arg("-cp")
            .arg(&launch.classpath)
            .arg("kafka.Kafka")
            .arg(self.properties_path())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .process_group(0);
        let child = cmd.spawn().map_err(|source| TestbedError::RunJava {
            java: launch.java.clone(),
            source,
        })?;
        let pid = child.id();
        let pid_path = self.pid_path();
        *self.child() = Some(child);
        fs::write(&pid_path, format!("{pid}\n")).map_err(TestbedError::write(&pid_path))?;
        tracing::debug!(node = self.id(), pid, "broker started");

        let mut ports = vec![self.layout.plaintext_port];
        ports.extend(self.layout.secure_port);
        if launch.jmx_exporter.is_some() {
            ports.extend(self.layout.metrics_port);
        }
        Ok(ReadyWatch {
            id: self.id(),
            log: log_path,
            offset,
            tail: Vec::new(),
            log_ready: false,
            ports,
        })
    }

    /// The broker's pid while its process runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        let mut guard = self.child();
        match guard.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => guard.as_ref().map(Child::id),
            Some(Ok(Some(_)) | Err(_)) => {
                *guard = None;
                let _ = fs::remove_file(self.pid_path());
                None
            }
            None => None,
        }
    }

    /// The exit status if the process has exited (it is then reaped); `None` while it runs or
    /// when it was never started.
    pub(crate) fn exit_status(&self) -> Option<ExitStatus> {
        let mut guard = self.child();
        let status = guard.as_mut().and_then(|c| c.try_wait().ok().flatten())?;
        *guard = None;
        let _ = fs::remove_file(self.pid_path());
        Some(status)
    }

    /// SIGTERM (a controlled shutdown), then wait up to `timeout`; past it, SIGKILL and
    /// report [`TestbedError::StopBrokerTimedOut`]. A node that is not running is left alone.
    pub(crate) fn terminate(&self, timeout: Duration) -> Result<(), TestbedError> {
        let Some(pid) = self.pid() else { return Ok(()) };
        self.signal(pid, Signal::TERM, "SIGTERM")?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.exit_status().is_some() {
                tracing::debug!(node = self.id(), pid, "broker stopped");
                return Ok(());
            }
            thread::sleep(POLL);
        }
        self.kill()?;
        Err(TestbedError::StopBrokerTimedOut {
            id: self.id(),
            pid,
            timeout,
            log: self.log_path(),
            tail: log_tail(&self.log_path()),
        })
    }

    /// SIGKILL (a crash) and reap. A node that is not running is left alone.
    pub(crate) fn kill(&self) -> Result<(), TestbedError> {
        let mut guard = self.child();
        let Some(child) = guard.as_mut() else {
            return Ok(());
        };
        let pid = child.id();
        if matches!(child.try_wait(), Ok(None)) {
            child.kill().map_err(|source| TestbedError::SignalBroker {
                id: self.id(),
                pid,
                signal: "SIGKILL",
                source,
            })?;
        }
        child.wait().map_err(|source| TestbedError::WaitBroker {
            id: self.id(),
            pid,
            source,
        })?;
        *guard = None;
        let _ = fs::remove_file(self.pid_path());
        tracing::debug!(node = self.id(), pid, "broker killed");
        Ok(())
    }

    /// Forgets the process without stopping it (for a detached cluster).
    pub(crate) fn release(&self) {
        self.child().take();
    }

    fn signal(&self, pid: u32, signal: Signal, name: &'static str) -> Result<(), TestbedError> {
        let raw = i32::try_from(pid).ok().and_then(Pid::from_raw);
        let Some(raw) = raw else {
            return Err(TestbedError::SignalBroker {
                id: self.id(),
                pid,
                signal: name,
                source: std::io::Error::other("not a valid pid"),
            });
        };
        rustix::process::kill_process(raw, signal).map_err(|e| TestbedError::SignalBroker {
            id: self.id(),
            pid,
            signal: name,
            source: e.into(),
        })
    }
}

/// Tracks one node's readiness: its log (from where this start began) shows [`READY_LINE`]
/// and its client ports accept TCP connections.
#[derive(Debug)]
pub(crate) struct ReadyWatch {
    pub(crate) id: i32,
    pub(crate) log: PathBuf,
    offset: u64,
    /// The last bytes already scanned, so a line split across reads is still found.
    tail: Vec<u8>,
    log_ready: bool,
    ports: Vec<u16>,
}

impl ReadyWatch {
    /// `Ok(None)` when ready, `Ok(Some(what))` naming what is still awaited.
    pub(crate) fn check(&mut self) -> Result<Option<String>, TestbedError> {
        if !self.log_ready {
            self.log_ready = self.scan_log()?;
            if !self.log_ready {
                return Ok(Some(format!(
                    "the log line {:?}",
                    String::from_utf8_lossy(READY_LINE)
                )));
            }
        }
        for &port in &self.ports {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err() {
                return Ok(Some(format!("a TCP connection to 127.0.0.1:{port}")));
            }
        }
        Ok(None)
    }

    fn scan_log(&mut self) -> Result<bool, TestbedError> {
        let mut file = File::open(&self.log).map_err(TestbedError::read(&self.log))?;
        file.seek(SeekFrom::Start(self.offset))
            .map_err(TestbedError::read(&self.log))?;
        let mut fresh = Vec::new();
        file.read_to_end(&mut fresh)
            .map_err(TestbedError::read(&self.log))?;
        self.offset += fresh.len() as u64;
        let mut window = std::mem::take(&mut self.tail);
        window.extend_from_slice(&fresh);
        let found = window.windows(READY_LINE.len()).any(|w| w == READY_LINE);
        let keep = window.len().saturating_sub(READY_LINE.len() - 1);
        self.tail = window.split_off(keep);
        Ok(found)
    }
}

/// The last lines of a log file (for error messages).
pub(crate) fn log_tail(path: &Path) -> String {
    const BYTES: u64 = 16 * 1024;
    const LINES: usize = 40;
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(BYTES)));
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file in a directory of its own, removed when the guard drops.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir()
                .join(format!("kpilot-testbed-node-{}-{name}", std::process::id()));
            fs::create_dir_all(&dir).expect("temp dir");
            TempFile(dir.join(name))
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            if let Some(dir) = self.0.parent() {
                let _ = fs::remove_dir_all(dir);
            }
        }
    }

    #[test]
    fn ready_line_split_across_reads_is_found() {
        let file = TempFile::new("split.log");
        let path = file.0.clone();
        fs::write(
            &path,
            "noise\n[x] INFO [KafkaRaftServer nodeId=1] Kafka Ser",
        )
        .expect("write");
        let mut watch = ReadyWatch {
            id: 1,
            log: path.clone(),
            offset: 0,
            tail: Vec::new(),
            log_ready: false,
            ports: Vec::new(),
        };
        assert!(!watch.scan_log().expect("scan"));
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"ver started (kafka.server.KafkaRaftServer)\n")
            .expect("append");
        assert!(watch.scan_log().expect("scan"));
    }

    #[test]
    fn ready_line_before_the_offset_is_ignored() {
        let file = TempFile::new("offset.log");
        let path = file.0.clone();
        let old = "Kafka Server started\n===== restart =====\n";
        fs::write(&path, old).expect("write");
        let mut watch = ReadyWatch {
            id: 1,
            log: path,
            offset: old.len() as u64,
            tail: Vec::new(),
            log_ready: false,
            ports: Vec::new(),
        };
        assert!(!watch.scan_log().expect("scan"));
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let file = TempFile::new("tail.log");
        let path = file.0.clone();
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        fs::write(&path, text).expect("write");
        let tail = log_tail(&path);
        assert!(
            tail.starts_with("line 60") && tail.ends_with("line 99"),
            "{tail}"
        );
        assert!(log_tail(Path::new("/nonexistent/x.log")).contains("no log"));
    }
}
