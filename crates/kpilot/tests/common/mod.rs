//! Helpers shared by the tests that run kpilot under Kafka ACLs.
#![allow(dead_code)]

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
