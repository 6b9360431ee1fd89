//! Helpers shared by the CLI tests: running the binary, and (for the tests that run kpilot
//! under Kafka ACLs) granting ACLs.
#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs the kpilot binary with `args`, without the environment variables that would change
/// its defaults (catalog, bootstrap, kubeconfig, operator namespace), and waits for it.
pub fn kpilot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpilot"))
        .args(args)
        .env_remove("KPILOT_CATALOG")
        .env_remove("KPILOT_BOOTSTRAP")
        .env_remove("KUBECONFIG")
        .env_remove("KPILOT_WATCH_NAMESPACE")
        .output()
        .expect("run kpilot")
}

/// What it printed on stderr.
pub fn stderr(o: &Output) -> String {
    text(&o.stderr)
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Grants `principal` the `operations` on `resource` (`["--cluster"]`, `["--topic", "x"]`)
/// over `bootstrap` (the PLAINTEXT listener, the super user); panics with the tool's output
/// when it fails.
pub fn grant(bootstrap: &str, principal: &str, operations: &[&str], resource: &[&str]) {
    kpilot_testbed::grant_acl(bootstrap, principal, operations, resource)
        .unwrap_or_else(|e| panic!("{e}"));
}
