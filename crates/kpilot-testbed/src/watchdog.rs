//! The watchdog that keeps broker JVMs from outliving the process that started them.
//!
//! Each cluster starts one tiny `sh` process (own process group, ignores SIGINT/SIGHUP) whose
//! stdin is a pipe from this process. `Drop` of the cluster stops the brokers itself and then
//! disarms the watchdog. If this process dies without running `Drop` (a crash, SIGKILL, a
//! `static` cluster that is never dropped, Ctrl-C), the kernel closes the pipe, `read` in the
//! watchdog returns, and it SIGKILLs every JVM listed in `node-*/broker.pid` whose command line
//! carries this cluster's node marker, then removes the cluster directory (unless
//! `KPILOT_TESTBED_KEEP=1`). Performs I/O (a child process).

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use crate::error::TestbedError;
use crate::node::NODE_MARKER;

/// `sh -c SCRIPT watchdog <cluster dir> <keep 0|1>`.
const SCRIPT: &str = r#"
trap '' INT HUP
dir=$1
keep=$2
marker=$3
read -r cmd
[ "$cmd" = disarm ] && exit 0
for f in "$dir"/node-*/broker.pid; do
  [ -f "$f" ] || continue
  pid=$(cat "$f" 2>/dev/null) || continue
  case "$pid" in ''|*[!0-9]*) continue ;; esac
  if grep -qaF -- "$marker$dir/node-" "/proc/$pid/cmdline" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null
  fi
done
if [ "$keep" != 1 ]; then
  sleep 0.5
  rm -rf -- "$dir"
fi
"#;

/// A running watchdog; see the module documentation.
#[derive(Debug)]
pub(crate) struct Watchdog {
    child: Child,
    stdin: Option<ChildStdin>,
    dir: PathBuf,
}

impl Watchdog {
    /// Starts the watchdog for the cluster in `dir`.
    pub(crate) fn spawn(dir: &Path, keep: bool) -> Result<Self, TestbedError> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("kpilot-testbed-watchdog")
            .arg(dir)
            .arg(if keep { "1" } else { "0" })
            .arg(NODE_MARKER)
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|source| TestbedError::SpawnWatchdog {
                dir: dir.to_owned(),
                source,
            })?;
        let stdin = child.stdin.take();
        Ok(Watchdog {
            child,
            stdin,
            dir: dir.to_owned(),
        })
    }

    /// Tells the watchdog to exit without touching anything, and reaps it.
    pub(crate) fn disarm(&mut self) {
        if let Some(mut stdin) = self.stdin.take()
            && let Err(e) = stdin.write_all(b"disarm\n")
        {
            tracing::warn!(dir = %self.dir.display(), "disarming the testbed watchdog failed: {e}");
        }
        let _ = self.child.wait();
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Dropping without `disarm` closes the pipe: the watchdog cleans up, as after a crash.
        self.stdin.take();
        let _ = self.child.wait();
    }
}
