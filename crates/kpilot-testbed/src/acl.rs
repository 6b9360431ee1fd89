//! Granting ACLs on a testbed cluster that runs the StandardAuthorizer
//! ([`crate::ClusterConfig::authorizer`]), with Kafka's own `AclCommand`.

use std::process::Command;

use crate::error::TestbedError;
use crate::setup::{java_executable, kafka_libs_dir};

/// Grants `principal` (e.g. `User:alice`) the `operations` (e.g. `Describe`) on `resource`
/// (`["--cluster"]`, `["--topic", "orders"]`, `["--group", "*"]`), through `bootstrap`: the
/// PLAINTEXT listener, whose clients are the super user. The ACL then reaches each broker
/// through the metadata log a moment later.
pub fn grant_acl(
    bootstrap: &str,
    principal: &str,
    operations: &[&str],
    resource: &[&str],
) -> Result<(), TestbedError> {
    let java = java_executable();
    let mut command = Command::new(&java);
    command.args([
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-cp",
    ]);
    command.arg(format!("{}/*", kafka_libs_dir()?.display()));
    command.arg("org.apache.kafka.tools.AclCommand");
    command.args(["--bootstrap-server", bootstrap, "--add", "--force"]);
    command.args(["--allow-principal", principal]);
    for operation in operations {
        command.args(["--operation", operation]);
    }
    let output = command
        .args(resource)
        .output()
        .map_err(|source| TestbedError::RunJava { java, source })?;
    if output.status.success() {
        return Ok(());
    }
    Err(TestbedError::GrantAcl {
        principal: principal.to_owned(),
        operations: operations.join(","),
        resource: resource.join(" "),
        status: output.status.to_string(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    })
}
