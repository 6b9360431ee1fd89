//! Helpers shared by kpilot-kafka's integration tests: testbed clusters, client configs for
//! them, and bounded polling. Performs I/O.

#![allow(dead_code, missing_docs)]

use std::future::Future;
use std::time::{Duration, Instant};

use kpilot_kafka::{AdminClient, BrokerAddress, ClientConfig};
use kpilot_testbed::{ClusterConfig, KafkaCluster};

/// Starts a testbed cluster, failing the test with the testbed's message (which says how to
/// install what is missing) if it cannot.
pub fn start_cluster(config: ClusterConfig) -> KafkaCluster {
    let started = Instant::now();
    let cluster = KafkaCluster::start(config)
        .unwrap_or_else(|e| panic!("testbed cluster did not start: {e}"));
    eprintln!(
        "testbed cluster up in {:.1?}: {}",
        started.elapsed(),
        cluster.bootstrap()
    );
    cluster
}

/// A plaintext client config for a cluster, with test-sized timeouts.
pub fn plaintext_config(cluster: &KafkaCluster) -> ClientConfig {
    let mut config = ClientConfig::new(
        BrokerAddress::parse_list(&cluster.bootstrap()).expect("testbed bootstrap parses"),
    );
    config.connect_timeout = Duration::from_secs(5);
    config.request_timeout = Duration::from_secs(15);
    config.api_timeout = Duration::from_secs(30);
    config
}

/// A multi-threaded runtime for one test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

pub async fn admin(config: ClientConfig) -> AdminClient {
    AdminClient::connect(config)
        .await
        .expect("admin client connects")
}

/// Polls `check` every 250 ms until it returns `Some`, or panics after `timeout` with `what`
/// and the last observation.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await {
            Ok(value) => return value,
            Err(observation) => observation,
        };
        if Instant::now() >= deadline {
            panic!("{what}: not reached within {timeout:?}; last observation: {last}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
