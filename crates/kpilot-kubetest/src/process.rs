//! Child processes of a control plane (etcd, kube-apiserver): spawning with a log file and a
//! pid file, stopping with SIGTERM then SIGKILL, log tails for error messages, free loopback
//! ports, and the watchdog that stops everything if the test process dies without `Drop`.
//! Performs I/O (processes, files, sockets).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use crate::error::KubetestError;

/// How long a process gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Reserves `n` distinct free TCP ports on 127.0.0.1 (bound all at once, then released for the
/// servers to bind; a start retries with fresh ports if one was taken in between).
pub(crate) fn free_ports(n: usize) -> Result<Vec<u16>, KubetestError> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(KubetestError::ReservePort)?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(KubetestError::ReservePort)
}

/// A running server process started by us, with its output in `log`.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    /// `etcd` or `kube-apiserver`.
    pub(crate) name: &'static str,
    /// The child, `None` once stopped or detached.
    child: Option<Child>,
    /// Its process id.
    pub(crate) pid: u32,
    /// Where its stdout and stderr go.
    pub(crate) log: PathBuf,
}

impl ServerProcess {
    /// Starts `binary args...` in `dir` with stdout and stderr appended to `dir/<name>.log`,
    /// stdin closed, in its own process group (a terminal's Ctrl-C does not reach it; the
    /// watchdog or `Drop` stops it), and writes its pid to `dir/<name>.pid`.
    pub(crate) fn spawn(
        name: &'static str,
        binary: &Path,
        args: &[String],
        dir: &Path,
    ) -> Result<Self, KubetestError> {
        let log = dir.join(format!("{name}.log"));
        let out = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(KubetestError::file("creating", &log))?;
        let err = out
            .try_clone()
            .map_err(KubetestError::file("opening", &log))?;
        let child = Command::new(binary)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|source| KubetestError::SpawnProcess {
                process: name,
                binary: binary.to_owned(),
                source,
            })?;
        let pid = child.id();
        let pid_file = dir.join(format!("{name}.pid"));
        std::fs::write(&pid_file, format!("{pid}\n"))
            .map_err(KubetestError::file("writing", &pid_file))?;
        tracing::debug!(process = name, pid, log = %log.display(), "started");
        Ok(ServerProcess {
            name,
            child: Some(child),
            pid,
            log,
        })
    }

    /// `Some(description)` if the process has exited (without waiting).
    pub(crate) fn exited(&mut self) -> Option<String> {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => Some(status.to_string()),
            Some(Ok(None)) => None,
            Some(Err(e)) => Some(format!("unknown state: {e}")),
            None => Some("stopped".to_owned()),
        }
    }

    /// The error for a process that exited during startup, with the end of its log.
    pub(crate) fn exited_error(&self, status: String) -> KubetestError {
        KubetestError::ProcessExited {
            process: self.name,
            status,
            log: self.log.clone(),
            tail: log_tail(&self.log, 25),
        }
    }

    /// Stops the process: SIGTERM, up to 10 s to exit, then SIGKILL; always reaps it.
    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        send(self.pid, Signal::TERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        tracing::warn!(
            process = self.name,
            pid = self.pid,
            "did not stop on SIGTERM; killing"
        );
        send(self.pid, Signal::KILL);
        let _ = child.wait();
    }

    /// Leaves the process running after we are gone (for `scripts/kubetest up`).
    pub(crate) fn detach(&mut self) {
        self.child = None;
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn send(pid: u32, signal: Signal) {
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return;
    };
    if let Err(e) = rustix::process::kill_process(pid, signal)
        && e != rustix::io::Errno::SRCH
    {
        tracing::warn!(%pid, ?signal, "sending a signal failed: {e}");
    }
}

/// Whether process `pid` exists and its command line contains `marker` (so that a recycled
/// pid is never signalled).
pub(crate) fn is_ours(pid: u32, marker: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains(marker))
        && !is_zombie(pid)
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // The state follows the parenthesised command name.
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
    })
}

/// Stops a process we did not spawn in this process (found through a state file): only if its
/// command line carries `marker`. SIGTERM, up to 10 s, then SIGKILL. Returns whether it had
/// been running.
pub(crate) fn stop_foreign(pid: u32, marker: &str) -> bool {
    if !is_ours(pid, marker) {
        return false;
    }
    send(pid, Signal::TERM);
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if !is_ours(pid, marker) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    send(pid, Signal::KILL);
    true
}

/// The last `lines` lines of a log file (at most its last 64 KiB), for error messages.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = File::open(path) else {
        return format!("(cannot read {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `sh -c SCRIPT kpilot-kubetest-watchdog <dir> <etcd data dir> <marker> <keep 0|1>`: waits
/// for a line on stdin; `disarm` means exit quietly, anything else (EOF: the test process is
/// gone) means stop the API server then etcd (only pids whose command line carries the marker),
/// remove etcd's data, and remove the control plane directory (logs) unless keep is 1.
const WATCHDOG_SCRIPT: &str = r#"
trap '' INT HUP TERM
dir=$1 data=$2 marker=$3 keep=$4
read -r cmd
[ "$cmd" = disarm ] && exit 0
for name in kube-apiserver etcd; do
  pid=$(cat "$dir/$name.pid" 2>/dev/null) || continue
  case "$pid" in ''|*[!0-9]*) continue ;; esac
  grep -qaF -- "$marker" "/proc/$pid/cmdline" 2>/dev/null || continue
  kill -TERM "$pid" 2>/dev/null
  i=0
  while [ $i -lt 50 ] && grep -qaF -- "$marker" "/proc/$pid/cmdline" 2>/dev/null; do
    sleep 0.1; i=$((i + 1))
  done
  kill -KILL "$pid" 2>/dev/null
done
rm -rf -- "$data"
[ "$keep" = 1 ] || rm -rf -- "$dir"
"#;

/// The watchdog of one control plane; see [`WATCHDOG_SCRIPT`].
#[derive(Debug)]
pub(crate) struct Watchdog {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Watchdog {
    /// Starts the watchdog for the control plane in `dir` (etcd data in `data_dir`).
    pub(crate) fn spawn(
        dir: &Path,
        data_dir: &Path,
        marker: &str,
        keep: bool,
    ) -> Result<Self, KubetestError> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG_SCRIPT)
            .arg("kpilot-kubetest-watchdog")
            .arg(dir)
            .arg(data_dir)
            .arg(marker)
            .arg(if keep { "1" } else { "0" })
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|source| KubetestError::SpawnProcess {
                process: "watchdog",
                binary: PathBuf::from("sh"),
                source,
            })?;
        let stdin = child.stdin.take();
        Ok(Watchdog { child, stdin })
    }

    /// Tells the watchdog to exit without doing anything, and reaps it.
    pub(crate) fn disarm(mut self) {
        if let Some(mut stdin) = self.stdin.take()
            && let Err(e) = stdin.write_all(b"disarm\n")
        {
            tracing::warn!("disarming the kubetest watchdog failed: {e}");
        }
        let _ = self.child.wait();
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Without `disarm`, closing the pipe makes the watchdog clean up, as after a crash.
        self.stdin.take();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let ports = free_ports(4).expect("loopback ports");
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 4);
        for port in ports {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("released port is bindable");
        }
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let dir = std::env::temp_dir().join(format!("kpilot-kubetest-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let log = dir.join("x.log");
        std::fs::write(&log, "a\nb\nc\nd\n").expect("write");
        assert_eq!(log_tail(&log, 2), "c\nd");
        assert_eq!(log_tail(&log, 10), "a\nb\nc\nd");
        std::fs::remove_dir_all(&dir).expect("cleanup");
        assert!(log_tail(&log, 2).starts_with("(cannot read"));
    }

    #[test]
    fn a_foreign_pid_without_the_marker_is_never_signalled() {
        // Our own process does not carry this marker: stop_foreign must leave it alone.
        assert!(!stop_foreign(std::process::id(), "no-such-marker-6d1f"));
        assert!(
            !is_ours(u32::MAX - 7, ""),
            "a pid that does not exist is not ours"
        );
    }

    #[test]
    fn the_watchdog_cleans_up_when_its_pipe_closes() {
        let base = std::env::temp_dir().join(format!(
            "kpilot-kubetest-wd-{}-{:?}",
            std::process::id(),
            Instant::now()
        ));
        let dir = base.join("cp");
        let data = base.join("data");
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::create_dir_all(&data).expect("data");
        let marker = format!("wd-marker-{}", std::process::id());
        // A stand-in server whose command line carries the marker.
        let mut sleeper = Command::new("sh")
            .arg("-c")
            .arg("sleep 30")
            .arg(&marker)
            .spawn()
            .expect("spawn sleeper");
        std::fs::write(dir.join("etcd.pid"), format!("{}\n", sleeper.id())).expect("pid");
        let watchdog = Watchdog::spawn(&dir, &data, &marker, false).expect("watchdog");
        drop(watchdog); // closes the pipe, as a crash would
        let status = sleeper.wait().expect("wait");
        assert!(
            !status.success(),
            "the stand-in server was stopped by a signal"
        );
        assert!(!dir.exists() && !data.exists(), "directories removed");
        std::fs::remove_dir_all(&base).expect("cleanup");
    }
}
