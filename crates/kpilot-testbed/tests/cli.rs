//! Integration test: the `kpilot-testbed` binary (behind `scripts/testbed`) starts a detached
//! cluster that outlives the command, is idempotent, reports status, and stops it. Starts JVMs
//! on 127.0.0.1.

mod common;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{process_alive, run_bounded, wait_gone};
use serde_json::Value;

fn testbed(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kpilot-testbed"));
    cmd.args(args).env("KPILOT_TESTBED_DIR", dir);
    run_bounded(cmd, Duration::from_secs(120))
}

fn testbed_ok(dir: &Path, args: &[&str]) -> String {
    let out = testbed(dir, args);
    assert!(
        out.status.success(),
        "kpilot-testbed {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// Runs `down` even if an assertion fails, so no detached broker outlives the test.
struct Down(PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = testbed(&self.0, &["down"]);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn up_status_down() {
    let dir = std::env::temp_dir().join(format!("kpilot-testbed-cli-{}", std::process::id()));
    let _down = Down(dir.clone());

    let status = json(&testbed_ok(&dir, &["status", "--json"]));
    assert_eq!(status["up"], false, "{status}");

    let up = json(&testbed_ok(&dir, &["up", "--brokers", "1", "--json"]));
    assert_eq!(up["up"], true, "{up}");
    let brokers = up["brokers"].as_array().expect("brokers");
    assert_eq!(brokers.len(), 1);
    let pid = u32::try_from(brokers[0]["pid"].as_u64().expect("pid")).expect("pid fits");
    let bootstrap = up["bootstrap"].as_str().expect("bootstrap").to_owned();
    // The broker outlived the `up` command.
    assert!(process_alive(pid), "broker {pid} runs after `up` returned");
    assert!(
        TcpStream::connect(bootstrap.as_str()).is_ok(),
        "{bootstrap} answers"
    );
    assert!(dir.join("state.json").is_file());

    // `up` again: idempotent, same broker.
    let again = testbed_ok(&dir, &["up", "--brokers", "1"]);
    assert!(again.contains("already up"), "{again}");
    assert!(again.contains(&bootstrap), "{again}");
    let status = json(&testbed_ok(&dir, &["status", "--json"]));
    assert_eq!(
        status["brokers"][0]["pid"].as_u64(),
        Some(u64::from(pid)),
        "{status}"
    );
    assert_eq!(status["running"], serde_json::json!([1]));
    let text = testbed_ok(&dir, &["status"]);
    assert!(
        text.contains("1 of 1 nodes running") && text.contains("broker.log"),
        "{text}"
    );

    // `down` stops it with SIGTERM and removes the files; `down` again does nothing.
    let down = json(&testbed_ok(&dir, &["down", "--json"]));
    assert_eq!(down["brokers"][0]["outcome"], "stopped", "{down}");
    assert!(
        wait_gone(pid, Duration::from_secs(5)),
        "broker {pid} stopped"
    );
    assert!(!dir.join("state.json").exists() && !dir.join("cluster").exists());
    let text = testbed_ok(&dir, &["down"]);
    assert!(text.contains("not running"), "{text}");
    assert_eq!(json(&testbed_ok(&dir, &["status", "--json"]))["up"], false);
}

#[test]
fn invalid_arguments_exit_with_2() {
    let dir = std::env::temp_dir().join(format!("kpilot-testbed-cli-bad-{}", std::process::id()));
    let out = testbed(&dir, &["up", "--brokers", "0"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("brokers = 0"));
    assert!(!dir.exists(), "nothing created for invalid input");
    let out = testbed(&dir, &["up", "--brokers", "many"]);
    assert_eq!(out.status.code(), Some(2));
}
