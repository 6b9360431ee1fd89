//! The testbed's error type: one variant per action that can fail, each naming the broker,
//! file or command involved and saying what to do. No I/O.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Why starting, stopping or inspecting a testbed Kafka cluster failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestbedError {
    /// `scripts/setup-kafka` (which fetches the pinned Kafka jars with Maven) could not be run
    /// or failed.
    #[error(
        "setting up the Kafka {version} jars with {} failed: {detail}\n\
         Run `scripts/setup-kafka` by hand to see why (it needs `mvn` and access to Maven Central)",
        script.display()
    )]
    SetupKafka {
        /// The pinned Kafka version.
        version: String,
        /// The setup script that was run.
        script: PathBuf,
        /// Its exit status and output, or why it could not be started.
        detail: String,
    },

    /// The Kafka jars directory exists but lacks something the testbed needs.
    #[error("the Kafka jars directory {} has no {wanted}; remove it and run `scripts/setup-kafka`", dir.display())]
    FindKafkaJar {
        /// The jars directory.
        dir: PathBuf,
        /// What was looked for.
        wanted: String,
    },

    /// The configuration cannot describe a working cluster.
    #[error("invalid testbed configuration: {reason}")]
    InvalidConfig {
        /// What is wrong, with the offending value.
        reason: String,
    },

    /// Reserving a free TCP port on 127.0.0.1 failed.
    #[error("reserving a free TCP port on 127.0.0.1 failed: {source}")]
    ReservePort {
        /// The bind error.
        #[source]
        source: io::Error,
    },

    /// Creating or writing a file or directory failed.
    #[error("writing {} failed: {source}", path.display())]
    WriteFile {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// Reading a file or directory failed.
    #[error("reading {} failed: {source}", path.display())]
    ReadFile {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },

    /// The `java` executable could not be started.
    #[error(
        "running `{}` failed: {source}\n\
         Install a Java 17+ runtime (`apt-get install -y openjdk-17-jre-headless`) or set JAVA_HOME",
        java.display()
    )]
    RunJava {
        /// The java executable that was tried.
        java: PathBuf,
        /// The spawn error.
        #[source]
        source: io::Error,
    },

    /// The Kafka storage tool failed to format a node's log directory.
    #[error("formatting the log directory of broker {id} failed ({status}):\n{output}")]
    FormatStorage {
        /// The node id.
        id: i32,
        /// The tool's exit status.
        status: String,
        /// The tool's output.
        output: String,
    },

    /// Kafka's `AclCommand` failed to add an ACL.
    #[error(
        "granting {operations} on {resource} to {principal} with AclCommand failed ({status}):\n{output}"
    )]
    GrantAcl {
        /// The principal, e.g. `User:alice`.
        principal: String,
        /// The operations, comma separated.
        operations: String,
        /// The resource arguments, e.g. `--topic orders`.
        resource: String,
        /// The tool's exit status.
        status: String,
        /// The tool's output.
        output: String,
    },

    /// A broker process exited while the testbed waited for it to become ready.
    #[error("broker {id} exited during startup ({status}); last lines of {}:\n{tail}", log.display())]
    BrokerExited {
        /// The node id.
        id: i32,
        /// Its exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },

    /// A broker did not become ready within the configured timeout.
    #[error(
        "broker {id} was not ready within {timeout:?} (still waiting for: {waiting_for}); last lines of {}:\n{tail}",
        log.display()
    )]
    BrokerNotReady {
        /// The node id.
        id: i32,
        /// How long the testbed waited.
        timeout: Duration,
        /// Which readiness condition was still unmet.
        waiting_for: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },

    /// The node id is not part of this cluster.
    #[error("node {id} is not part of this cluster (its nodes are {known:?})")]
    UnknownBroker {
        /// The requested id.
        id: i32,
        /// The cluster's node ids (brokers and dedicated controllers).
        known: Vec<i32>,
    },

    /// `start_broker` was called for a broker that is still running.
    #[error("broker {id} is already running (pid {pid}); stop or kill it first")]
    BrokerAlreadyRunning {
        /// The node id.
        id: i32,
        /// Its process id.
        pid: u32,
    },

    /// Sending a signal to a broker process failed.
    #[error("sending {signal} to broker {id} (pid {pid}) failed: {source}")]
    SignalBroker {
        /// The node id.
        id: i32,
        /// Its process id.
        pid: u32,
        /// `SIGTERM` or `SIGKILL`.
        signal: &'static str,
        /// The error from kill(2).
        #[source]
        source: io::Error,
    },

    /// Waiting for a broker process to exit failed.
    #[error("waiting for broker {id} (pid {pid}) to exit failed: {source}")]
    WaitBroker {
        /// The node id.
        id: i32,
        /// Its process id.
        pid: u32,
        /// The error from wait(2).
        #[source]
        source: io::Error,
    },

    /// A broker did not exit within the bound after SIGTERM; it was then killed with SIGKILL.
    #[error(
        "broker {id} (pid {pid}) did not shut down within {timeout:?} after SIGTERM, so it was killed with SIGKILL; last lines of {}:\n{tail}",
        log.display()
    )]
    StopBrokerTimedOut {
        /// The node id.
        id: i32,
        /// Its process id.
        pid: u32,
        /// How long the testbed waited.
        timeout: Duration,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },

    /// Generating the CA and broker certificate with the `openssl` CLI failed.
    #[error(
        "generating TLS certificates in {} with `{command}` failed: {detail}\n\
         The secure listener needs the openssl CLI (`apt-get install -y openssl`)",
        dir.display()
    )]
    GenerateCertificates {
        /// Where the certificates were being written.
        dir: PathBuf,
        /// The openssl command line.
        command: String,
        /// Its exit status and output, or why it could not be started.
        detail: String,
    },

    /// Starting the watchdog process that kills the brokers if this process dies failed.
    #[error("starting the watchdog for the cluster in {} failed: {source}", dir.display())]
    SpawnWatchdog {
        /// The cluster directory.
        dir: PathBuf,
        /// The spawn error.
        #[source]
        source: io::Error,
    },

    /// No Prometheus server binary was found, and `scripts/setup-prometheus` could not
    /// install one.
    #[error(
        "no Prometheus server binary found (looked at $KPILOT_PROMETHEUS, /usr/bin/prometheus and PATH); \
         running {} failed: {detail}\n\
         Install it with `scripts/setup-prometheus` (as root: `apt-get install -y prometheus`) or set KPILOT_PROMETHEUS",
        script.display()
    )]
    SetupPrometheus {
        /// The setup script that was run.
        script: PathBuf,
        /// Its exit status and output, or why it could not be started.
        detail: String,
    },

    /// The Prometheus server binary could not be started.
    #[error("running the Prometheus server `{}` failed: {source}", binary.display())]
    RunPrometheus {
        /// The binary.
        binary: PathBuf,
        /// The spawn error.
        #[source]
        source: io::Error,
    },

    /// The Prometheus server exited or did not become ready in time.
    #[error(
        "the Prometheus server on 127.0.0.1:{port} was not ready within {timeout:?} ({why}); last lines of {}:\n{tail}",
        log.display()
    )]
    PrometheusNotReady {
        /// Its listen port.
        port: u16,
        /// How long the testbed waited.
        timeout: Duration,
        /// It exited (with which status), or what was still awaited.
        why: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },

    /// A testbed state file could not be parsed or written.
    #[error("the testbed state file {} is not valid JSON for this version: {source}", path.display())]
    ParseState {
        /// The state file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

impl TestbedError {
    /// Shorthand for [`TestbedError::WriteFile`].
    pub(crate) fn write(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> TestbedError {
        let path = path.into();
        move |source| TestbedError::WriteFile { path, source }
    }

    /// Shorthand for [`TestbedError::ReadFile`].
    pub(crate) fn read(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> TestbedError {
        let path = path.into();
        move |source| TestbedError::ReadFile { path, source }
    }
}
