//! What a testbed cluster looks like ([`ClusterConfig`]) and the broker `server.properties`
//! rendered from it. Pure: no I/O.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::TestbedError;
use crate::tls::SaslMechanism;

/// How to build a testbed cluster. `ClusterConfig::default()` is the 3-node cluster most
/// integration tests want; override fields with struct-update syntax:
///
/// ```
/// use kpilot_testbed::ClusterConfig;
/// let config = ClusterConfig { brokers: 1, secure: true, ..ClusterConfig::default() };
/// assert_eq!(config.min_insync_replicas, 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Number of brokers (ids `1..=brokers`). Without dedicated controllers they are combined
    /// broker+controller KRaft nodes forming the controller quorum. Default 3.
    pub brokers: usize,
    /// Number of dedicated controller-only nodes (ids `101..`, see [`CONTROLLER_ID_BASE`]).
    /// 0 (the default): the brokers are combined nodes and form the quorum. 1 to
    /// [`MAX_CONTROLLERS`]: these nodes alone form the quorum and the brokers are broker-only
    /// nodes, whose disks hold no quorum state, as in a production cluster whose brokers keep
    /// their data on instance-local disks.
    pub controllers: usize,
    /// `min.insync.replicas` (capped at `brokers`). Default 2.
    pub min_insync_replicas: u16,
    /// `default.replication.factor` (capped at `brokers`). Default 3.
    pub default_replication_factor: u16,
    /// `auto.leader.rebalance.enable`. Default false, so tests can check their own elections.
    pub auto_leader_rebalance: bool,
    /// JVM heap of each broker in MiB (`-Xms` = `-Xmx`). Default 384.
    pub heap_mb: u32,
    /// Also open a `SASL_SSL` listener (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 over TLS with a CA
    /// generated for this cluster). Default false.
    pub secure: bool,
    /// Enforce ACLs with KRaft's `StandardAuthorizer`. The PLAINTEXT and controller listeners
    /// (principal `User:ANONYMOUS`) are super users, so the brokers, the controllers and tests
    /// on the PLAINTEXT bootstrap may do anything; the `SASL_SSL` users may do only what ACLs
    /// grant them. Needs `secure`. Default false.
    pub authorizer: bool,
    /// Extra `server.properties` entries for every broker; they override the testbed's defaults.
    pub extra_broker_properties: Vec<(String, String)>,
    /// Extra JVM arguments for every broker (e.g. `-javaagent:...`), placed before the main class.
    pub jvm_args: Vec<String>,
    /// Run the brokers' JIT with the C1 compiler only (`-XX:TieredStopAtLevel=1`): about 40%
    /// less CPU to start, lower peak throughput. Default true; set false for throughput
    /// measurements.
    pub jit_c1_only: bool,
    /// Run the Prometheus JMX exporter java agent in every broker, serving the broker's
    /// metrics on a free loopback port ([`crate::KafkaCluster::metrics_address`]) with the
    /// testbed's rules ([`crate::JMX_EXPORTER_RULES`]). Default false.
    pub jmx_exporter: bool,
    /// How long to wait for each broker to become ready. Default 60 s.
    pub ready_timeout: Duration,
    /// How long `stop_broker` waits after SIGTERM before it kills the broker and reports an
    /// error. Default 30 s.
    pub stop_timeout: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            brokers: 3,
            controllers: 0,
            min_insync_replicas: 2,
            default_replication_factor: 3,
            auto_leader_rebalance: false,
            heap_mb: 384,
            secure: false,
            authorizer: false,
            extra_broker_properties: Vec::new(),
            jvm_args: Vec::new(),
            jit_c1_only: true,
            jmx_exporter: false,
            ready_timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(30),
        }
    }
}

/// The largest cluster the testbed starts (each node is a JVM; the CI machine has 2 cores).
pub const MAX_BROKERS: usize = 9;

/// The most dedicated controllers the testbed starts.
pub const MAX_CONTROLLERS: usize = 3;

/// Dedicated controller `i` (from 1) has node id `CONTROLLER_ID_BASE + i`, so the brokers keep
/// ids `1..=brokers` whether or not the controllers are dedicated.
pub const CONTROLLER_ID_BASE: i32 = 100;

impl ClusterConfig {
    /// The default configuration with `brokers` combined nodes.
    pub fn with_brokers(brokers: usize) -> Self {
        ClusterConfig {
            brokers,
            ..ClusterConfig::default()
        }
    }

    /// The configuration with `controllers` dedicated controller-only nodes (see
    /// [`ClusterConfig::controllers`]).
    pub fn with_controllers(self, controllers: usize) -> Self {
        ClusterConfig {
            controllers,
            ..self
        }
    }

    /// The configuration with the JMX exporter agent on every broker (see
    /// [`ClusterConfig::jmx_exporter`]).
    pub fn with_metrics(self) -> Self {
        ClusterConfig {
            jmx_exporter: true,
            ..self
        }
    }

    /// Checks that the configuration can describe a working cluster.
    pub fn validate(&self) -> Result<(), TestbedError> {
        let invalid = |reason: String| Err(TestbedError::InvalidConfig { reason });
        if self.brokers == 0 || self.brokers > MAX_BROKERS {
            return invalid(format!(
                "brokers = {} but the testbed starts 1 to {MAX_BROKERS} brokers",
                self.brokers
            ));
        }
        if self.controllers > MAX_CONTROLLERS {
            return invalid(format!(
                "controllers = {} but the testbed starts 0 (the brokers are the controllers) to \
                 {MAX_CONTROLLERS} dedicated controllers",
                self.controllers
            ));
        }
        if self.min_insync_replicas == 0 {
            return invalid("min_insync_replicas = 0 but Kafka needs at least 1".to_owned());
        }
        if self.default_replication_factor == 0 {
            return invalid("default_replication_factor = 0 but Kafka needs at least 1".to_owned());
        }
        if self.authorizer && !self.secure {
            return invalid(
                "authorizer = true needs secure = true: without the SASL_SSL listener every \
                 client is the super user User:ANONYMOUS and no ACL is ever checked"
                    .to_owned(),
            );
        }
        if self.heap_mb < 128 {
            return invalid(format!(
                "heap_mb = {} is too small for a broker; use at least 128",
                self.heap_mb
            ));
        }
        for (key, value) in &self.extra_broker_properties {
            if key.is_empty()
                || key
                    .chars()
                    .any(|c| c.is_whitespace() || matches!(c, '=' | ':' | '#' | '!'))
            {
                return invalid(format!(
                    "extra broker property key {key:?} is not a plain Kafka property name"
                ));
            }
            if value.contains(['\n', '\r']) {
                return invalid(format!(
                    "extra broker property {key} has a line break in its value"
                ));
            }
        }
        Ok(())
    }

    /// `default.replication.factor` as applied: the configured value capped at `brokers`.
    pub fn effective_replication_factor(&self) -> u16 {
        self.default_replication_factor.min(self.brokers_u16())
    }

    /// `min.insync.replicas` as applied: the configured value capped at `brokers`.
    pub fn effective_min_insync_replicas(&self) -> u16 {
        self.min_insync_replicas.min(self.brokers_u16())
    }

    fn brokers_u16(&self) -> u16 {
        u16::try_from(self.brokers).unwrap_or(u16::MAX)
    }
}

/// The KRaft roles of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    /// `process.roles=broker,controller`: a broker that is also a controller-quorum voter.
    Combined,
    /// `process.roles=broker`: a broker only (added with `add_broker`, or every broker of a
    /// cluster with dedicated controllers).
    Broker,
    /// `process.roles=controller`: a dedicated controller-quorum voter; no client listener, no
    /// partitions.
    Controller,
}

impl NodeRole {
    /// The `process.roles` value.
    pub fn process_roles(self) -> &'static str {
        match self {
            NodeRole::Combined => "broker,controller",
            NodeRole::Broker => "broker",
            NodeRole::Controller => "controller",
        }
    }

    /// Whether the node is a broker (hosts partitions, serves clients).
    pub fn is_broker(self) -> bool {
        self != NodeRole::Controller
    }

    /// The role of every broker of a cluster with `controllers` dedicated controllers.
    pub(crate) fn of_brokers(controllers: usize) -> NodeRole {
        if controllers == 0 {
            NodeRole::Combined
        } else {
            NodeRole::Broker
        }
    }
}

/// Where one node listens and keeps its data: the input of [`server_properties`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeLayout {
    pub(crate) id: i32,
    pub(crate) role: NodeRole,
    /// The PLAINTEXT client listener; for a controller-only node, which has none, its
    /// CONTROLLER listener (the port its readiness is checked on).
    pub(crate) plaintext_port: u16,
    /// Set for combined and controller-only nodes.
    pub(crate) controller_port: Option<u16>,
    /// Set when the cluster is secure.
    pub(crate) secure_port: Option<u16>,
    /// The JMX exporter's HTTP port, when the cluster runs it.
    pub(crate) metrics_port: Option<u16>,
    pub(crate) data_dir: PathBuf,
}

/// The TLS and SASL material a secure listener points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListenerSecurity {
    /// PEM file with the broker's PKCS#8 private key followed by its certificate chain.
    pub(crate) keystore_pem: PathBuf,
    /// PEM file with the CA certificate.
    pub(crate) truststore_pem: PathBuf,
    /// `(user, password)` pairs accepted by the PLAIN mechanism.
    pub(crate) plain_users: Vec<(String, String)>,
}

/// The `controller.quorum.voters` value for the given `(id, controller port)` voters.
pub(crate) fn quorum_voters(voters: &[(i32, u16)]) -> String {
    voters
        .iter()
        .map(|(id, port)| format!("{id}@127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// An ordered list of properties where a later `set` of the same key replaces the value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Properties(Vec<(String, String)>);

impl Properties {
    pub(crate) fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.0.push((key, value)),
        }
    }

    #[cfg(test)]
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The file text, in the `java.util.Properties` format.
    pub(crate) fn render(&self) -> String {
        let mut out = String::from("# Generated by kpilot-testbed; edits are overwritten.\n");
        for (key, value) in &self.0 {
            let _ = writeln!(out, "{key}={}", escape_value(value));
        }
        out
    }
}

/// Escapes a value for a `.properties` file (backslashes and line breaks).
fn escape_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The `server.properties` of one node.
///
/// `voters` is the `controller.quorum.voters` value shared by every node of the cluster.
pub(crate) fn server_properties(
    config: &ClusterConfig,
    node: &NodeLayout,
    voters: &str,
    security: Option<&ListenerSecurity>,
) -> Properties {
    let n = config.brokers_u16();
    let mut p = Properties::default();
    p.set("process.roles", node.role.process_roles());
    p.set("node.id", node.id.to_string());
    p.set("controller.quorum.voters", voters);
    p.set("controller.listener.names", "CONTROLLER");

    let mut listeners = Vec::new();
    let mut advertised = Vec::new();
    if node.role.is_broker() {
        listeners.push(format!("PLAINTEXT://127.0.0.1:{}", node.plaintext_port));
        advertised.push(format!("PLAINTEXT://127.0.0.1:{}", node.plaintext_port));
    }
    if let Some(port) = node.controller_port {
        listeners.push(format!("CONTROLLER://127.0.0.1:{port}"));
    }
    let secure = security.zip(node.secure_port);
    if let Some((_, port)) = secure {
        listeners.push(format!("SASL_SSL://127.0.0.1:{port}"));
        advertised.push(format!("SASL_SSL://127.0.0.1:{port}"));
    }
    p.set("listeners", listeners.join(","));
    if node.role.is_broker() {
        // A controller-only node advertises nothing and has no inter-broker listener.
        p.set("advertised.listeners", advertised.join(","));
        p.set("inter.broker.listener.name", "PLAINTEXT");
    }
    p.set(
        "listener.security.protocol.map",
        "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
    );
    p.set("log.dirs", path_str(&node.data_dir));

    // Replication and durability, from the config.
    p.set(
        "default.replication.factor",
        config.effective_replication_factor().to_string(),
    );
    p.set(
        "min.insync.replicas",
        config.effective_min_insync_replicas().to_string(),
    );
    p.set(
        "auto.leader.rebalance.enable",
        config.auto_leader_rebalance.to_string(),
    );
    p.set("unclean.leader.election.enable", "false");
    p.set("controlled.shutdown.enable", "true");
    p.set("num.partitions", "1");

    // Internal topics sized for a small cluster.
    let internal_rf = n.min(3).to_string();
    let internal_isr = n.min(2).to_string();
    p.set("offsets.topic.replication.factor", internal_rf.clone());
    p.set("offsets.topic.num.partitions", "10");
    p.set(
        "transaction.state.log.replication.factor",
        internal_rf.clone(),
    );
    p.set("transaction.state.log.min.isr", internal_isr.clone());
    p.set("transaction.state.log.num.partitions", "10");
    p.set(
        "share.coordinator.state.topic.replication.factor",
        internal_rf,
    );
    p.set("share.coordinator.state.topic.min.isr", internal_isr);
    p.set("share.coordinator.state.topic.num.partitions", "10");
    p.set("group.initial.rebalance.delay.ms", "0");

    // Fast failure detection, small footprint (2-core CI machine, several JVMs).
    p.set("broker.heartbeat.interval.ms", "1000");
    p.set("broker.session.timeout.ms", "6000");
    p.set("num.network.threads", "2");
    p.set("num.io.threads", "4");
    p.set("num.recovery.threads.per.data.dir", "1");
    p.set("group.coordinator.threads", "1");
    p.set("log.cleaner.dedupe.buffer.size", "16777216");

    if let Some((sec, _)) = secure {
        let l = "listener.name.sasl_ssl";
        let mechanisms = SaslMechanism::ALL.map(SaslMechanism::kafka_name).join(",");
        p.set(format!("{l}.sasl.enabled.mechanisms"), mechanisms);
        p.set(format!("{l}.ssl.keystore.type"), "PEM");
        p.set(
            format!("{l}.ssl.keystore.location"),
            path_str(&sec.keystore_pem),
        );
        p.set(format!("{l}.ssl.truststore.type"), "PEM");
        p.set(
            format!("{l}.ssl.truststore.location"),
            path_str(&sec.truststore_pem),
        );
        p.set(format!("{l}.ssl.client.auth"), "none");
        let mut plain =
            String::from("org.apache.kafka.common.security.plain.PlainLoginModule required");
        for (user, password) in &sec.plain_users {
            let _ = write!(plain, " user_{user}=\"{password}\"");
        }
        plain.push(';');
        p.set(format!("{l}.plain.sasl.jaas.config"), plain);
        for mechanism in [SaslMechanism::ScramSha256, SaslMechanism::ScramSha512] {
            p.set(
                format!(
                    "{l}.{}.sasl.jaas.config",
                    mechanism.kafka_name().to_ascii_lowercase()
                ),
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            );
        }
    }

    if config.authorizer {
        p.set(
            "authorizer.class.name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        );
        p.set("super.users", "User:ANONYMOUS");
        p.set("allow.everyone.if.no.acl.found", "false");
    }

    for (key, value) in &config.extra_broker_properties {
        p.set(key.clone(), value.clone());
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(role: NodeRole, secure: bool) -> NodeLayout {
        NodeLayout {
            id: 2,
            role,
            plaintext_port: 10002,
            controller_port: (role != NodeRole::Broker).then_some(20002),
            secure_port: secure.then_some(30002),
            metrics_port: None,
            data_dir: PathBuf::from("/tmp/c/node-2/data"),
        }
    }

    #[test]
    fn defaults_match_the_brief() {
        let c = ClusterConfig::default();
        assert_eq!(
            (
                c.brokers,
                c.min_insync_replicas,
                c.default_replication_factor
            ),
            (3, 2, 3)
        );
        assert!(!c.auto_leader_rebalance && !c.secure);
        c.validate().expect("default config is valid");
    }

    #[test]
    fn combined_node_properties() {
        let c = ClusterConfig::default();
        let voters = quorum_voters(&[(1, 20001), (2, 20002), (3, 20003)]);
        let p = server_properties(&c, &layout(NodeRole::Combined, false), &voters, None);
        assert_eq!(p.get("process.roles"), Some("broker,controller"));
        assert_eq!(p.get("node.id"), Some("2"));
        assert_eq!(
            p.get("controller.quorum.voters"),
            Some("1@127.0.0.1:20001,2@127.0.0.1:20002,3@127.0.0.1:20003")
        );
        assert_eq!(
            p.get("listeners"),
            Some("PLAINTEXT://127.0.0.1:10002,CONTROLLER://127.0.0.1:20002")
        );
        assert_eq!(
            p.get("advertised.listeners"),
            Some("PLAINTEXT://127.0.0.1:10002")
        );
        assert_eq!(p.get("min.insync.replicas"), Some("2"));
        assert_eq!(p.get("default.replication.factor"), Some("3"));
        assert_eq!(p.get("auto.leader.rebalance.enable"), Some("false"));
        assert_eq!(p.get("offsets.topic.replication.factor"), Some("3"));
        assert_eq!(p.get("log.dirs"), Some("/tmp/c/node-2/data"));
        assert_eq!(
            p.get("listener.name.sasl_ssl.sasl.enabled.mechanisms"),
            None
        );
    }

    #[test]
    fn broker_only_node_has_no_controller_listener() {
        let c = ClusterConfig::default();
        let p = server_properties(&c, &layout(NodeRole::Broker, false), "1@127.0.0.1:1", None);
        assert_eq!(p.get("process.roles"), Some("broker"));
        assert_eq!(p.get("listeners"), Some("PLAINTEXT://127.0.0.1:10002"));
        assert_eq!(p.get("controller.listener.names"), Some("CONTROLLER"));
    }

    #[test]
    fn controller_only_node_listens_for_the_quorum_only() {
        let c = ClusterConfig::default().with_controllers(3);
        c.validate().expect("3 brokers and 3 controllers");
        let p = server_properties(
            &c,
            &layout(NodeRole::Controller, false),
            "101@127.0.0.1:1",
            None,
        );
        assert_eq!(p.get("process.roles"), Some("controller"));
        assert_eq!(p.get("listeners"), Some("CONTROLLER://127.0.0.1:20002"));
        assert_eq!(p.get("advertised.listeners"), None);
        assert_eq!(p.get("inter.broker.listener.name"), None);
        assert_eq!(NodeRole::of_brokers(3), NodeRole::Broker);
        assert_eq!(NodeRole::of_brokers(0), NodeRole::Combined);
        let err = ClusterConfig::default()
            .with_controllers(MAX_CONTROLLERS + 1)
            .validate()
            .expect_err("too many controllers")
            .to_string();
        assert!(err.contains("controllers = 4"), "{err}");
    }

    #[test]
    fn small_cluster_caps_replication() {
        let c = ClusterConfig::with_brokers(1);
        let p = server_properties(
            &c,
            &layout(NodeRole::Combined, false),
            "2@127.0.0.1:1",
            None,
        );
        assert_eq!(p.get("default.replication.factor"), Some("1"));
        assert_eq!(p.get("min.insync.replicas"), Some("1"));
        assert_eq!(p.get("offsets.topic.replication.factor"), Some("1"));
        assert_eq!(p.get("transaction.state.log.min.isr"), Some("1"));
    }

    #[test]
    fn the_authorizer_makes_the_plaintext_principal_the_only_super_user() {
        let insecure = ClusterConfig {
            authorizer: true,
            ..ClusterConfig::default()
        };
        let err = insecure.validate().unwrap_err().to_string();
        assert!(
            err.contains("authorizer = true needs secure = true"),
            "{err}"
        );
        let c = ClusterConfig {
            authorizer: true,
            secure: true,
            ..ClusterConfig::default()
        };
        c.validate().unwrap();
        let p = server_properties(&c, &layout(NodeRole::Combined, true), "2@127.0.0.1:1", None);
        assert_eq!(
            p.get("authorizer.class.name"),
            Some("org.apache.kafka.metadata.authorizer.StandardAuthorizer")
        );
        assert_eq!(p.get("super.users"), Some("User:ANONYMOUS"));
        let plain = server_properties(
            &ClusterConfig::default(),
            &layout(NodeRole::Combined, false),
            "2@127.0.0.1:1",
            None,
        );
        assert_eq!(plain.get("authorizer.class.name"), None);
    }

    #[test]
    fn secure_listener_and_extra_properties() {
        let c = ClusterConfig {
            secure: true,
            auto_leader_rebalance: true,
            extra_broker_properties: vec![
                ("num.partitions".into(), "6".into()),
                ("log.retention.ms".into(), "1000".into()),
            ],
            ..ClusterConfig::default()
        };
        let sec = ListenerSecurity {
            keystore_pem: "/t/broker.pem".into(),
            truststore_pem: "/t/ca.pem".into(),
            plain_users: vec![("alice".into(), "s3cret".into())],
        };
        let p = server_properties(
            &c,
            &layout(NodeRole::Combined, true),
            "2@127.0.0.1:1",
            Some(&sec),
        );
        assert_eq!(
            p.get("advertised.listeners"),
            Some("PLAINTEXT://127.0.0.1:10002,SASL_SSL://127.0.0.1:30002")
        );
        assert_eq!(
            p.get("listener.name.sasl_ssl.sasl.enabled.mechanisms"),
            Some("PLAIN,SCRAM-SHA-256,SCRAM-SHA-512")
        );
        assert_eq!(
            p.get("listener.name.sasl_ssl.plain.sasl.jaas.config"),
            Some(
                "org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"s3cret\";"
            )
        );
        assert!(
            p.get("listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config")
                .is_some()
        );
        assert_eq!(p.get("auto.leader.rebalance.enable"), Some("true"));
        assert_eq!(
            p.get("num.partitions"),
            Some("6"),
            "extra properties override defaults"
        );
        assert_eq!(p.get("log.retention.ms"), Some("1000"));
    }

    #[test]
    fn render_escapes_values() {
        let mut p = Properties::default();
        p.set("a", "x\\y");
        p.set("b", "1");
        p.set("a", "C:\\z");
        assert_eq!(
            p.render().lines().skip(1).collect::<Vec<_>>(),
            ["a=C:\\\\z", "b=1"]
        );
    }

    #[test]
    fn validation_names_the_bad_value() {
        let err = ClusterConfig::with_brokers(0)
            .validate()
            .expect_err("0 brokers");
        assert!(err.to_string().contains("brokers = 0"), "{err}");
        let c = ClusterConfig {
            extra_broker_properties: vec![("bad key".into(), "1".into())],
            ..ClusterConfig::default()
        };
        assert!(
            c.validate()
                .expect_err("bad key")
                .to_string()
                .contains("\"bad key\"")
        );
        let c = ClusterConfig {
            heap_mb: 64,
            ..ClusterConfig::default()
        };
        assert!(
            c.validate()
                .expect_err("tiny heap")
                .to_string()
                .contains("heap_mb = 64")
        );
    }
}
