//! `kpilot-testbed`: start, inspect and stop a long-lived Kafka testbed cluster on 127.0.0.1
//! for people (wrapped by `scripts/testbed`). The brokers outlive the command; their pids,
//! ports and paths are kept in `<dir>/state.json`. Performs I/O (processes, files, stdout).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kpilot_testbed::{
    ClusterConfig, ClusterState, KafkaCluster, NodeRole, SaslMechanism, StopOutcome, TestbedError,
};
use serde::Serialize;

/// Exit code when a command failed while running.
const EXIT_FAILURE: u8 = 1;
/// Exit code for invalid arguments (clap uses it too).
const EXIT_USAGE: u8 = 2;

/// How long `down` waits after SIGTERM before it SIGKILLs the remaining brokers.
const DOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// A real Apache Kafka KRaft cluster on 127.0.0.1 for development: `up`, `status`, `down`.
///
/// The brokers run in the background until `down`. State (pids, ports, logs, TLS material)
/// lives in the testbed directory.
#[derive(Debug, Parser)]
#[command(name = "kpilot-testbed", version, about, long_about)]
struct Cli {
    /// Testbed directory holding `state.json` and the cluster files.
    /// Example: `--dir /tmp/my-testbed`.
    #[arg(long, global = true, env = "KPILOT_TESTBED_DIR", value_name = "DIR")]
    dir: Option<PathBuf>,

    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start the cluster and wait until every broker is ready; if it is already up, print its
    /// status. Example: `kpilot-testbed up --brokers 3 --secure`.
    Up {
        /// Number of brokers (ids 1..=N). Without --controllers they are combined
        /// broker+controller nodes. Example: `--brokers 1`.
        #[arg(long, default_value_t = 3, value_name = "N")]
        brokers: usize,
        /// Number of dedicated controller-only nodes (ids 101..; 0 to 3). With them the
        /// brokers are broker-only nodes whose disks hold no quorum state, as in a cluster on
        /// instance-local disks. Example: `--controllers 1`.
        #[arg(long, default_value_t = 0, value_name = "N")]
        controllers: usize,
        /// Also open a SASL_SSL listener (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 users; CA
        /// generated for the cluster).
        #[arg(long)]
        secure: bool,
        /// Enforce ACLs (needs --secure): the SASL_SSL users may do only what ACLs grant them;
        /// the PLAINTEXT bootstrap stays a super user, so grant with e.g.
        /// `kafka-acls --bootstrap-server <plaintext bootstrap> --add --allow-principal User:<user> --operation Describe --topic '*'`.
        #[arg(long, requires = "secure")]
        acls: bool,
        /// Heap of each broker in MiB. Example: `--heap-mb 512`.
        #[arg(long, default_value_t = 384, value_name = "MIB")]
        heap_mb: u32,
        /// Use the full JIT (C1 and C2): slower start, higher throughput (for benchmarks).
        #[arg(long)]
        full_jit: bool,
        /// Print the status as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Stop the cluster (SIGTERM, then SIGKILL after 30 s) and remove its files. Does nothing
    /// when it is not running. Example: `kpilot-testbed down`.
    Down {
        /// Keep the cluster files (logs, data) instead of removing them.
        #[arg(long)]
        keep_files: bool,
        /// Print what happened to each broker as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Print the bootstrap addresses, broker pids and log paths.
    /// Example: `kpilot-testbed status --json | jq -r .bootstrap`.
    Status {
        /// Print the status as JSON on stdout (includes the SASL passwords).
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let dir = cli
        .dir
        .clone()
        .unwrap_or_else(|| kpilot_testbed::repo_dir().join(".testbed"));
    let result = match cli.command {
        Cmd::Up {
            brokers,
            controllers,
            secure,
            acls,
            heap_mb,
            full_jit,
            json,
        } => {
            let config = ClusterConfig {
                brokers,
                controllers,
                secure,
                authorizer: acls,
                heap_mb,
                jit_c1_only: !full_jit,
                ..ClusterConfig::default()
            };
            up(&dir, config, json)
        }
        Cmd::Down { keep_files, json } => down(&dir, keep_files, json),
        Cmd::Status { json } => status(&dir, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let mut text = format!("error: {err}");
            let mut source = std::error::Error::source(&err);
            while let Some(cause) = source {
                let _ = write!(text, "\n  caused by: {cause}");
                source = cause.source();
            }
            eprintln!("{text}");
            match err {
                TestbedError::InvalidConfig { .. } => ExitCode::from(EXIT_USAGE),
                _ => ExitCode::from(EXIT_FAILURE),
            }
        }
    }
}

fn state_path(dir: &Path) -> PathBuf {
    dir.join("state.json")
}

fn cluster_dir(dir: &Path) -> PathBuf {
    dir.join("cluster")
}

fn up(dir: &Path, config: ClusterConfig, json: bool) -> Result<(), TestbedError> {
    config.validate()?;
    if let Some(state) = ClusterState::load(&state_path(dir))? {
        let running = state.running().len();
        if running == state.brokers.len() {
            if !json {
                println!("The testbed is already up (run `down` first to change its shape).");
            }
            return print_status(dir, Some(&state), json);
        }
        eprintln!(
            "kpilot-testbed: only {running} of {} nodes of the previous testbed run; replacing it",
            state.brokers.len()
        );
        state.stop(DOWN_TIMEOUT)?;
        remove_files(dir)?;
    } else if cluster_dir(dir).exists() {
        // Left by an `up` that died before writing its state.
        remove_files(dir)?;
    }
    fs::create_dir_all(dir).map_err(|source| TestbedError::WriteFile {
        path: dir.to_owned(),
        source,
    })?;
    let cluster = KafkaCluster::start_in_dir(config, cluster_dir(dir))?;
    // Save before detaching: if saving fails, dropping `cluster` stops the brokers.
    cluster.state().save(&state_path(dir))?;
    let state = cluster.detach();
    print_status(dir, Some(&state), json)
}

fn down(dir: &Path, keep_files: bool, json: bool) -> Result<(), TestbedError> {
    let outcomes = match ClusterState::load(&state_path(dir))? {
        Some(state) => state.stop(DOWN_TIMEOUT)?,
        None => Vec::new(),
    };
    if !keep_files {
        remove_files(dir)?;
    }
    if json {
        #[derive(Serialize)]
        struct Down {
            brokers: Vec<DownBroker>,
            files_kept: bool,
        }
        #[derive(Serialize)]
        struct DownBroker {
            id: i32,
            outcome: StopOutcome,
        }
        let report = Down {
            brokers: outcomes
                .iter()
                .map(|&(id, outcome)| DownBroker { id, outcome })
                .collect(),
            files_kept: keep_files,
        };
        println!("{}", to_json(&report));
    } else if outcomes.is_empty() {
        println!(
            "The testbed is not running (no state in {}).",
            dir.display()
        );
    } else {
        for (id, outcome) in &outcomes {
            let what = match outcome {
                StopOutcome::NotRunning => "was not running",
                StopOutcome::Stopped => "stopped",
                StopOutcome::Killed => "killed (did not stop within 30 s of SIGTERM)",
            };
            println!("broker {id}: {what}");
        }
        if keep_files {
            println!("Files kept in {}.", cluster_dir(dir).display());
        }
    }
    Ok(())
}

/// Removes the state file and the cluster directory (nothing else in `dir`).
fn remove_files(dir: &Path) -> Result<(), TestbedError> {
    for path in [state_path(dir), cluster_dir(dir)] {
        let result = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        match result {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(TestbedError::WriteFile { path, source: e });
            }
            _ => {}
        }
    }
    Ok(())
}

fn status(dir: &Path, json: bool) -> Result<(), TestbedError> {
    let state = ClusterState::load(&state_path(dir))?;
    print_status(dir, state.as_ref(), json)
}

#[derive(Serialize)]
struct StatusReport<'a> {
    up: bool,
    testbed_dir: &'a Path,
    #[serde(flatten)]
    state: Option<&'a ClusterState>,
    running: Vec<i32>,
}

fn print_status(dir: &Path, state: Option<&ClusterState>, json: bool) -> Result<(), TestbedError> {
    let running: Vec<i32> = state
        .map(|s| s.running().iter().map(|b| b.id).collect())
        .unwrap_or_default();
    if json {
        let report = StatusReport {
            up: !running.is_empty(),
            testbed_dir: dir,
            state,
            running,
        };
        println!("{}", to_json(&report));
        return Ok(());
    }
    let Some(state) = state else {
        println!(
            "The testbed is down (no state in {}). Start it with `scripts/testbed up`.",
            dir.display()
        );
        return Ok(());
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Kafka {} testbed: {} of {} nodes running ({})",
        state.kafka_version,
        running.len(),
        state.brokers.len(),
        state.dir.display()
    );
    let _ = writeln!(out, "bootstrap:         {}", state.bootstrap);
    if let (Some(secure), Some(sec)) = (&state.secure_bootstrap, &state.security) {
        let _ = writeln!(
            out,
            "secure bootstrap:  {secure}  (SASL_SSL; CA {})",
            sec.ca_cert_pem.display()
        );
        for mechanism in SaslMechanism::ALL {
            if let Some(user) = sec.user(mechanism) {
                let _ = writeln!(
                    out,
                    "  {:<14} user {:<16} --command-config {}",
                    mechanism.kafka_name(),
                    user.username,
                    sec.client_properties(mechanism).display()
                );
            }
        }
        let _ = writeln!(
            out,
            "  (passwords: `status --json` or the client properties files)"
        );
    }
    let _ = writeln!(
        out,
        "{:<4} {:<10} {:<8} {:<8} {:<22} LOG",
        "ID", "ROLE", "PID", "STATE", "ADDRESS"
    );
    for b in &state.brokers {
        let role = match b.role {
            NodeRole::Combined => "combined",
            NodeRole::Broker => "broker",
            NodeRole::Controller => "controller",
        };
        let pid = b.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
        let alive = if running.contains(&b.id) {
            "running"
        } else {
            "stopped"
        };
        let _ = writeln!(
            out,
            "{:<4} {:<10} {:<8} {:<8} {:<22} {}",
            b.id,
            role,
            pid,
            alive,
            b.address,
            b.log.display()
        );
    }
    print!("{out}");
    Ok(())
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("testbed reports serialize to JSON")
}
