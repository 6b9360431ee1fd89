//! `kpilot-testbed`: real Apache Kafka KRaft clusters on 127.0.0.1 for integration tests (and,
//! through the `kpilot-testbed` binary and `scripts/testbed`, for people).
//!
//! The broker is the pinned `org.apache.kafka:kafka_2.13` release (`testbed/pom.xml`), its jars
//! fetched once by `scripts/setup-kafka` into `~/.cache/kpilot`. Each [`KafkaCluster`] gets its
//! own directory and free ports; every call blocks. This crate performs I/O (files, processes,
//! loopback sockets). With [`ClusterConfig::jmx_exporter`] every broker runs the Prometheus JMX
//! exporter agent, and [`Prometheus`] runs a real Prometheus server scraping them. See
//! `docs/testbed.md`.
//!
//! ```no_run
//! use kpilot_testbed::{ClusterConfig, KafkaCluster};
//!
//! let mut cluster = KafkaCluster::start(ClusterConfig::default())?;
//! println!("bootstrap: {}", cluster.bootstrap());
//! cluster.stop_broker(2)?;
//! cluster.start_broker(2)?;
//! # Ok::<(), kpilot_testbed::TestbedError>(())
//! ```

mod acl;
mod cluster;
mod config;
mod detached;
mod error;
mod node;
mod ports;
mod prometheus;
mod random;
mod setup;
mod state;
mod tls;
mod watchdog;

pub use acl::grant_acl;
pub use cluster::{KEEP_ENV, KafkaCluster};
pub use config::{ClusterConfig, MAX_BROKERS, NodeRole};
pub use detached::{DiskLoss, NodeLaunch};
pub use error::TestbedError;
pub use prometheus::{
    JMX_EXPORTER_RULES, Prometheus, PrometheusConfig, ScrapeTarget, prometheus_executable,
};
pub use setup::{java_executable, jmx_exporter_agent_jar, kafka_libs_dir, kafka_version, repo_dir};
pub use state::{BrokerState, ClusterState, StopOutcome};
pub use tls::{SaslMechanism, SaslUser, SecureListener};
