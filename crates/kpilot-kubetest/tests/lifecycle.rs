//! Lifecycle tests of the test control plane itself: it serves the pinned version on loopback
//! only, `Drop` leaves nothing behind, a crashed test process leaves nothing behind (watchdog),
//! and the `kpilot-kubetest up|status|down` commands work.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kpilot_kubetest::{ControlPlane, repo_root};

/// The Kubernetes version pinned in testbed/kube/go.mod.
fn pinned_version() -> String {
    let go_mod = std::fs::read_to_string(repo_root().join("testbed/kube/go.mod")).expect("go.mod");
    go_mod
        .lines()
        .find_map(|l| {
            let l = l.trim().trim_start_matches("require").trim();
            l.strip_prefix("k8s.io/kubernetes ")
                .map(|v| v.trim().to_owned())
        })
        .expect("k8s.io/kubernetes requirement")
}

fn pid_in(dir: &Path, name: &str) -> u32 {
    std::fs::read_to_string(dir.join(format!("{name}.pid")))
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid")
}

/// Alive and not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// The local addresses of the TCP sockets `pid` listens on, e.g. `127.0.0.1` or `[::]`.
fn listening_addresses(pid: u32) -> Vec<String> {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .map(str::to_owned)
        })
        .collect();
    let mut addresses = Vec::new();
    for (table, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address, rem_address, st, ..., inode at index 9.
            if fields.len() > 9 && fields[3] == "0A" && inodes.contains(fields[9]) {
                let hex = fields[1].split(':').next().unwrap_or("");
                addresses.push(if v6 {
                    format!("[{hex}]")
                } else {
                    ipv4_from_proc(hex)
                });
            }
        }
    }
    addresses
}

/// `/proc/net/tcp` prints IPv4 addresses as little-endian hex.
fn ipv4_from_proc(hex: &str) -> String {
    let n = u32::from_str_radix(hex, 16).expect("hex address");
    std::net::Ipv4Addr::from(n.swap_bytes()).to_string()
}

#[tokio::test]
async fn serves_the_pinned_version_on_loopback_only_and_drop_leaves_nothing() {
    let cp = ControlPlane::start().await.expect("control plane starts");
    eprintln!("control plane started in {:?}", cp.startup_duration());
    assert!(
        cp.server_url().starts_with("https://127.0.0.1:"),
        "{}",
        cp.server_url()
    );
    assert!(
        cp.etcd_url().starts_with("http://127.0.0.1:"),
        "{}",
        cp.etcd_url()
    );

    let client = cp.client().await.expect("client");
    let version = client.apiserver_version().await.expect("/version");
    assert_eq!(version.git_version, pinned_version());

    let dir = cp.dir().to_owned();
    let pids = [pid_in(&dir, "kube-apiserver"), pid_in(&dir, "etcd")];
    for pid in pids {
        let addresses = listening_addresses(pid);
        assert!(!addresses.is_empty(), "pid {pid} listens somewhere");
        assert!(
            addresses.iter().all(|a| a.starts_with("127.")),
            "pid {pid} listens only on loopback: {addresses:?}"
        );
    }
    let kubeconfig = std::fs::read_to_string(cp.kubeconfig_path()).expect("kubeconfig");
    assert!(kubeconfig.contains(cp.server_url()));

    drop(client);
    drop(cp);
    for pid in pids {
        assert!(!alive(pid), "pid {pid} stopped by Drop");
    }
    assert!(!dir.exists(), "{} removed by Drop", dir.display());
}

const CRASH_HELPER_ENV: &str = "KPILOT_KUBETEST_CRASH_HELPER_OUT";

/// Run only as a child process by `a_crashed_test_process_leaves_nothing_behind`.
#[tokio::test]
#[ignore = "helper: started as a child process by a_crashed_test_process_leaves_nothing_behind"]
async fn crash_helper() {
    let out = std::env::var(CRASH_HELPER_ENV).expect("run only by the crash test");
    let cp = ControlPlane::start().await.expect("control plane starts");
    std::fs::write(&out, cp.dir().to_string_lossy().as_bytes()).expect("write dir");
    // Die without running any destructor, as a SIGKILLed or aborted test binary would.
    std::process::abort();
}

#[test]
fn a_crashed_test_process_leaves_nothing_behind() {
    let out = std::env::temp_dir().join(format!("kpilot-kubetest-crash-{}", std::process::id()));
    let _ = std::fs::remove_file(&out);
    // Output captured so that the helper's own test-harness lines do not mix with ours.
    let helper = Command::new(std::env::current_exe().expect("test exe"))
        .args([
            "--exact",
            "crash_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_HELPER_ENV, &out)
        .env_remove("KPILOT_KUBETEST_KEEP")
        .output()
        .expect("run the crash helper");
    let report = format!(
        "helper stdout:\n{}\nhelper stderr:\n{}",
        String::from_utf8_lossy(&helper.stdout),
        String::from_utf8_lossy(&helper.stderr)
    );
    assert!(!helper.status.success(), "the helper aborted; {report}");
    let dir = PathBuf::from(
        std::fs::read_to_string(&out)
            .unwrap_or_else(|e| panic!("helper wrote its dir ({e}); {report}")),
    );
    std::fs::remove_file(&out).expect("cleanup");
    let pids = [pid_in(&dir, "kube-apiserver"), pid_in(&dir, "etcd")];
    let deadline = Instant::now() + Duration::from_secs(20);
    while (dir.exists() || pids.iter().any(|p| alive(*p))) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for pid in pids {
        assert!(!alive(pid), "pid {pid} stopped by the watchdog");
    }
    assert!(!dir.exists(), "{} removed by the watchdog", dir.display());
}

#[test]
fn the_kubetest_command_starts_reports_and_stops_a_control_plane() {
    let bin = env!("CARGO_BIN_EXE_kpilot-kubetest");
    let state = std::env::temp_dir().join(format!("kpilot-kubetest-cli-{}", std::process::id()));
    let run = |args: &[&str]| {
        let output = Command::new(bin)
            .arg("--state-dir")
            .arg(&state)
            .args(args)
            .output()
            .expect("run kpilot-kubetest");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.code(), stdout, stderr)
    };

    let (code, stdout, stderr) = run(&["status"]);
    assert_eq!(code, Some(1), "not running yet: {stdout}{stderr}");
    let (code, stdout, stderr) = run(&["up"]);
    assert_eq!(code, Some(0), "up: {stdout}{stderr}");
    let kubeconfig = state.join("kubeconfig");
    assert_eq!(
        stdout.trim(),
        format!("export KUBECONFIG={}", kubeconfig.display())
    );
    assert!(kubeconfig.is_file());
    let (code, stdout, stderr) = run(&["up"]);
    assert_eq!(code, Some(0), "second up: {stdout}{stderr}");
    assert!(stderr.contains("already running"), "{stderr}");
    let (code, stdout, stderr) = run(&["--json", "status"]);
    assert_eq!(code, Some(0), "status: {stdout}{stderr}");
    let status: serde_json::Value = serde_json::from_str(&stdout).expect("json status");
    assert_eq!(status["status"], "running");
    assert_eq!(status["ready"], true);

    let state_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("state.json")).expect("state"))
            .expect("state json");
    let pids = [&state_json["apiserver_pid"], &state_json["etcd_pid"]]
        .map(|p| u32::try_from(p.as_u64().expect("pid")).expect("pid fits"));
    let (code, stdout, stderr) = run(&["down"]);
    assert_eq!(code, Some(0), "down: {stdout}{stderr}");
    for pid in pids {
        assert!(!alive(pid), "pid {pid} stopped by down");
    }
    let (code, stdout, _) = run(&["down"]);
    assert_eq!((code, stdout.trim()), (Some(0), "nothing was running"));
    assert!(
        !state.exists(),
        "down removed everything in {}",
        state.display()
    );
}

#[tokio::test]
async fn a_server_that_fails_to_start_reports_its_log_and_stops_etcd() {
    let options = kpilot_kubetest::Options {
        extra_apiserver_args: vec!["--no-such-flag=1".to_owned()],
        ..kpilot_kubetest::Options::default()
    };
    let err = ControlPlane::start_with(options)
        .await
        .expect_err("an unknown flag is fatal");
    let kpilot_kubetest::KubetestError::ProcessExited {
        process, log, tail, ..
    } = &err
    else {
        panic!("expected ProcessExited, got {err}");
    };
    assert_eq!(*process, "kube-apiserver");
    assert!(
        tail.contains("no-such-flag"),
        "the log tail explains the failure: {tail}"
    );
    let dir = log.parent().expect("log dir").to_owned();
    assert!(log.is_file(), "the log is kept for the reader");
    let etcd = pid_in(&dir, "etcd");
    assert!(!alive(etcd), "etcd of the failed start was stopped");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
