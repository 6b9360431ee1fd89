//! Integration test: a broker with the JMX exporter agent and a real Prometheus server scraping
//! it on loopback; the broker-wide `kafka_server_brokertopicmetrics_*` series exist under the
//! names the metrics adapter expects. Starts a JVM and Prometheus on 127.0.0.1.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use kpilot_testbed::{ClusterConfig, KafkaCluster, Prometheus, PrometheusConfig, ScrapeTarget};

fn get(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").expect("write");
    let mut out = String::new();
    stream.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn exporter_and_prometheus_expose_broker_metrics() {
    let t = Instant::now();
    let cluster = KafkaCluster::start(ClusterConfig::with_brokers(1).with_metrics())
        .expect("start a broker with the JMX exporter");
    eprintln!("broker with exporter ready in {:?}", t.elapsed());
    let targets = ScrapeTarget::of_cluster(&cluster);
    assert_eq!(targets.len(), 1);
    assert_eq!(
        cluster.metrics_address(1).as_deref(),
        Some(targets[0].address.as_str())
    );

    // The exporter itself: the broker-wide byte meters and the JVM's CPU counter.
    let metrics = get(&targets[0].address, "/metrics");
    for name in [
        "kafka_server_brokertopicmetrics_bytesin_total",
        "kafka_server_brokertopicmetrics_bytesout_total",
        "kafka_server_brokertopicmetrics_replicationbytesin_total",
        "kafka_server_brokertopicmetrics_replicationbytesout_total",
        "process_cpu_seconds_total",
    ] {
        assert!(
            metrics.lines().any(|l| l.starts_with(name)),
            "{name} missing from the exporter's output:\n{metrics}"
        );
    }

    // Prometheus scrapes it.
    let t = Instant::now();
    let mut prometheus =
        Prometheus::start(&targets, &PrometheusConfig::default()).expect("start Prometheus");
    prometheus
        .wait_for_targets(Duration::from_secs(30))
        .expect("the exporter is scraped");
    eprintln!("Prometheus ready and scraping in {:?}", t.elapsed());
    let address = prometheus.url().trim_start_matches("http://").to_owned();
    let answer = get(
        &address,
        "/api/v1/query?query=kafka_server_brokertopicmetrics_bytesin_total%7Btopic%3D%22%22%7D",
    );
    assert!(answer.contains("\"kafka_broker_id\":\"1\""), "{answer}");
    let dir = prometheus.dir().to_owned();
    prometheus.stop();
    assert!(TcpStream::connect(&address).is_err(), "Prometheus stopped");
    drop(prometheus);
    assert!(!dir.exists(), "the Prometheus directory is removed on drop");
}
