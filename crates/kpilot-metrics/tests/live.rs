//! Integration test on the real testbed: 3 KRaft brokers with the JMX exporter agent, a real
//! Prometheus server scraping them every second, and a bounded producer sending a known rate
//! (5 MB/s for 30 s, loopback only). Both sources must measure the ingress within 10% of it.
//! Then the failure modes: a wrong metric name, a selector that matches nothing, and
//! Prometheus down must give clear missing readings or errors, never a zero load.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kpilot_cluster::{TopicName, TopicPartition};
use kpilot_kafka::{AdminClient, BrokerAddress, ClientConfig, NewTopic};
use kpilot_metrics::{
    KafkaSource, MetricsError, MetricsSource, PrometheusSettings, PrometheusSource, Reading,
};
use kpilot_testbed::{ClusterConfig, KafkaCluster, Prometheus, PrometheusConfig, ScrapeTarget};
use kpilot_units::Span;

/// The rate produced: 5 MB/s as 100 kB records, 5 per 100 ms tick.
const RATE_BYTES_PER_S: f64 = 5_000_000.0;
const RECORD: usize = 100_000;
const RECORDS_PER_TICK: usize = 5;
const TICK: Duration = Duration::from_millis(100);
const PRODUCE_FOR: Duration = Duration::from_secs(30);
const PARTITIONS: i32 = 3;

/// Produces on an absolute schedule (tick i at start + i x TICK) for `PRODUCE_FOR`, rotating
/// over the partitions. Bounded in ticks and time. Returns (bytes acknowledged, elapsed).
async fn produce(admin: AdminClient, topic: TopicName) -> (u64, Duration) {
    let payload = Bytes::from(vec![0x5a_u8; RECORD]);
    let records: Vec<(Option<Bytes>, Option<Bytes>)> = (0..RECORDS_PER_TICK)
        .map(|_| (None, Some(payload.clone())))
        .collect();
    let ticks = (PRODUCE_FOR.as_millis() / TICK.as_millis()) as u32;
    let start = tokio::time::Instant::now();
    let mut sent = 0u64;
    for i in 0..ticks {
        tokio::time::sleep_until(start + TICK * i).await;
        let tp = TopicPartition::new(topic.clone(), (i as i32) % PARTITIONS);
        admin.produce(&tp, &records).await.expect("produce");
        sent += (RECORD * RECORDS_PER_TICK) as u64;
        assert!(
            start.elapsed() < PRODUCE_FOR + Duration::from_secs(15),
            "the producer fell far behind its schedule"
        );
    }
    (sent, start.elapsed())
}

fn within(measured: &Reading, expected: f64, what: &str) -> f64 {
    let value = measured
        .value()
        .unwrap_or_else(|| panic!("{what}: no value: {measured:?}"))
        .bytes_per_s();
    let error = (value - expected).abs() / expected;
    eprintln!(
        "{what}: measured {:.3} MB/s, produced {:.3} MB/s, error {:.1}%",
        value / 1e6,
        expected / 1e6,
        error * 100.0
    );
    assert!(
        error <= 0.10,
        "{what}: {value} B/s is not within 10% of {expected} B/s"
    );
    value
}

#[test]
fn both_sources_measure_a_known_rate_and_report_missing_metrics() {
    let t = Instant::now();
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

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let bootstrap = BrokerAddress::parse_list(&cluster.bootstrap()).expect("bootstrap");
    let admin = rt
        .block_on(AdminClient::connect(ClientConfig::new(bootstrap)))
        .expect("connect");
    let topic = TopicName::new("metrics-load").expect("topic name");
    rt.block_on(admin.create_topics(&[NewTopic::new(topic.clone(), PARTITIONS, 3)]))
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
        let producer = tokio::spawn(produce(admin.clone(), topic.clone()));
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
        RATE_BYTES_PER_S / 1e6
    );
    assert!(
        (actual - RATE_BYTES_PER_S).abs() / RATE_BYTES_PER_S < 0.03,
        "the producer did not hold its rate"
    );

    within(&prom_m.ingress, RATE_BYTES_PER_S, "Prometheus ingress");
    within(&kafka_m.ingress, RATE_BYTES_PER_S, "Kafka ingress");
    assert_eq!(prom_m.brokers.len(), 3, "{prom_m:#?}");
    // Replication factor 3: followers fetch twice the ingress.
    within(
        &prom_m.replication,
        2.0 * RATE_BYTES_PER_S,
        "Prometheus replication",
    );
    within(
        &kafka_m.replication,
        2.0 * RATE_BYTES_PER_S,
        "Kafka replication",
    );
    assert!(
        prom_m.brokers.iter().all(|b| b.cpu_cores.is_some()),
        "CPU per broker: {prom_m:#?}"
    );
    let topic_load = prom_m
        .topics
        .iter()
        .find(|t| t.topic == "metrics-load")
        .expect("per-topic series");
    within(
        &topic_load.ingress,
        RATE_BYTES_PER_S,
        "Prometheus topic ingress",
    );

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
            (x - RATE_BYTES_PER_S).abs() / RATE_BYTES_PER_S <= 0.15,
            "a history point {x} B/s is not within 15% of {RATE_BYTES_PER_S} B/s: {history:?}"
        );
    }

    let stored = kafka_m.stored.expect("stored bytes").bytes();
    assert!(stored > 3.0 * 20.0 * RATE_BYTES_PER_S, "stored {stored}");

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
