//! Helpers shared by the tests that run kpilot under Kafka ACLs.
#![allow(dead_code)]

use std::process::Command;

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Grants `principal` the `operations` on `resource` (`["--cluster"]`, `["--topic", "x"]`)
/// with Kafka's own `AclCommand` on the testbed's Kafka jars, over `bootstrap` (the PLAINTEXT
/// listener, the super user).
pub fn grant(bootstrap: &str, principal: &str, operations: &[&str], resource: &[&str]) {
    let libs = kpilot_testbed::kafka_libs_dir().expect("kafka jars");
    let mut command = Command::new(kpilot_testbed::java_executable());
    command.args([
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-cp",
    ]);
    command.arg(format!("{}/*", libs.display()));
    command.arg("org.apache.kafka.tools.AclCommand");
    command.args(["--bootstrap-server", bootstrap, "--add", "--force"]);
    command.args(["--allow-principal", principal]);
    for operation in operations {
        command.args(["--operation", operation]);
    }
    let output = command.args(resource).output().expect("AclCommand runs");
    assert!(
        output.status.success(),
        "AclCommand {operations:?} {resource:?} failed: {}",
        text(&output.stderr)
    );
}
