//! Integration test on the real testbed: 3 KRaft brokers with the JMX exporter agent, a real
//! Prometheus server scraping them every second, and a bounded producer sending a known rate
//! (5 MB/s for 30 s, loopback only). Both sources must measure the ingress within 10% of it.
//! Then the failure modes: a wrong metric name, a selector that matches nothing, and
//! Prometheus down must give clear missing readings or errors, never a zero load.

mod common;

use std::time::{Duration, Instant};

use common::{Load, connect, within};
use kpilot_cluster::TopicName;
use kpilot_kafka::NewTopic;
use kpilot_metrics::{
    KafkaSource, MetricsError, MetricsSource, PrometheusSettings, PrometheusSource, Reading,
};
use kpilot_testbed::{ClusterConfig, KafkaCluster, Prometheus, PrometheusConfig, ScrapeTarget};
use kpilot_units::Span;

/// The load: 5 MB/s as 100 kB records, 5 per 100 ms tick, for 30 s.
const LOAD: Load = Load {
    partitions: 3,
    records_per_tick: 5,
    seconds: 30,
    sizes: &[common::RECORD],
};

#[test]
fn both_sources_measure_a_known_rate_and_report_missing_metrics() {
    let t = Instant::now();
    let rate = LOAD.rate();
    let cluster =
        KafkaCluster::start(ClusterConfig::default().with_metrics()).expect("start 3 brokers");
    let mut prometheus = Prometheus::start(
        &ScrapeTarget::of_cluster(&cluster),
        &PrometheusConfig::default(),
    )
    .expect("start Prometheus");
    prometheus
        .wait_for_targets(Duration::from_secs(60))
        .expect("every broker is scraped");
    eprintln!(
        "testbed with exporter and Prometheus up in {:?}",
        t.elapsed()
    );

    let (rt, admin) = connect(&cluster);
    let topic = TopicName::new("metrics-load").expect("topic name");
    rt.block_on(admin.create_topics(&[NewTopic::new(topic.clone(), LOAD.partitions, 3)]))
        .expect("create topic");
    rt.block_on(admin.wait_for_topic(&topic))
        .expect("topic ready");

    let mut settings = PrometheusSettings::new(prometheus.url());
    settings.expected_brokers = Some(3);
    let prom = PrometheusSource::new(settings.clone()).expect("settings");
    let kafka = KafkaSource::new(admin.clone());

    let wall = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64()
    };
    let produce_start = wall();
    let (produced, kafka_m, prom_m) = rt.block_on(async {
        let producer = tokio::spawn(LOAD.produce(admin.clone(), topic.clone()));
        // Kafka watches 20 s inside the 30 s of production; Prometheus then looks back 20 s.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let kafka_m = kafka
            .measure(Span::from_secs(20.0))
            .await
            .expect("Kafka source");
        let prom_m = prom
            .measure(Span::from_secs(20.0))
            .await
            .expect("Prometheus source");
        let produced = producer.await.expect("producer task");
        (produced, kafka_m, prom_m)
    });
    let produce_end = wall();
    let (bytes, elapsed) = produced;
    let actual = bytes as f64 / elapsed.as_secs_f64();
    eprintln!(
        "producer: {bytes} bytes in {elapsed:?} = {:.3} MB/s (target {:.1} MB/s)",
        actual / 1e6,
        rate / 1e6
    );
    assert!(
        (actual - rate).abs() / rate < 0.03,
        "the producer did not hold its rate"
    );

    within(&prom_m.ingress, rate, "Prometheus ingress");
    within(&kafka_m.ingress, rate, "Kafka ingress");
    assert_eq!(prom_m.brokers.len(), 3, "{prom_m:#?}");
    // Replication factor 3: followers fetch twice the ingress.
    within(&prom_m.replication, 2.0 * rate, "Prometheus replication");
    within(&kafka_m.replication, 2.0 * rate, "Kafka replication");
    assert!(
        prom_m.brokers.iter().all(|b| b.cpu_cores.is_some()),
        "CPU per broker: {prom_m:#?}"
    );
    let topic_load = prom_m
        .topics
        .iter()
        .find(|t| t.topic == "metrics-load")
        .expect("per-topic series");
    within(&topic_load.ingress, rate, "Prometheus topic ingress");

    // The ingress over time (range queries, 5 s steps): every step wholly inside the
    // production holds the rate; none is summed short.
    let step = Span::from_secs(5.0);
    let history = rt
        .block_on(prom.ingress_history(Span::from_secs(60.0), step))
        .expect("ingress history");
    let inside: Vec<f64> = history
        .points
        .iter()
        .filter(|(t, _)| *t - step.secs() >= produce_start + 2.0 && *t <= produce_end - 1.0)
        .map(|(_, x)| x.bytes_per_s())
        .collect();
    eprintln!(
        "ingress history: {} points, {} gaps, inside the production (MB/s): {:?}",
        history.points.len(),
        history.gaps,
        inside
            .iter()
            .map(|x| (x / 1e4).round() / 100.0)
            .collect::<Vec<_>>()
    );
    assert!(inside.len() >= 3, "{history:?}");
    for x in &inside {
        assert!(
            (x - rate).abs() / rate <= 0.15,
            "a history point {x} B/s is not within 15% of {rate} B/s: {history:?}"
        );
    }

    let stored = kafka_m.stored.expect("stored bytes").bytes();
    assert!(stored > 3.0 * 20.0 * rate, "stored {stored}");

    // A wrong metric name: missing, named, with the real name suggested; never zero.
    let mut wrong = settings.clone();
    wrong.bytes_in = "kafka_server_brokertopicmetrics_bytesin_typo_total".into();
    let m = rt
        .block_on(
            PrometheusSource::new(wrong)
                .expect("settings")
                .measure(Span::from_secs(20.0)),
        )
        .expect("query works");
    assert!(
        matches!(m.ingress, Reading::Missing { .. }),
        "{:?}",
        m.ingress
    );
    let why = m.ingress.problem().expect("reason");
    assert!(why.contains("bytesin_typo_total"), "{why}");
    assert!(
        why.contains("kafka_server_brokertopicmetrics_bytesin_total"),
        "the real name is suggested: {why}"
    );
    eprintln!("wrong metric name: {why}");

    // A selector that matches nothing: an empty result is missing, not zero.
    let mut empty = settings.clone();
    empty.selector = "job=\"not-kafka\"".into();
    let m = rt
        .block_on(
            PrometheusSource::new(empty)
                .expect("settings")
                .measure(Span::from_secs(20.0)),
        )
        .expect("query works");
    assert_eq!(m.ingress.value(), None, "{:?}", m.ingress);
    assert!(
        m.warnings.iter().any(|w| w.contains("not-kafka")),
        "{:?}",
        m.warnings
    );

    // A query Prometheus rejects: its message comes through.
    let err = rt
        .block_on(prom.query("rate(x[", 0.0))
        .expect_err("bad PromQL");
    assert!(
        matches!(err, MetricsError::QueryPrometheus { status: 400, .. }),
        "{err}"
    );

    // Prometheus down: an error naming the URL, not a measurement.
    prometheus.stop();
    let err = rt
        .block_on(prom.measure(Span::from_secs(20.0)))
        .expect_err("Prometheus is down");
    assert!(
        matches!(err, MetricsError::ConnectPrometheus { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&prometheus.url()), "{err}");
    eprintln!("Prometheus down: {err}");
    eprintln!("test took {:?}", t.elapsed());
}
