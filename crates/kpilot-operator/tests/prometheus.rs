//! The reconcile reading the load from a real Prometheus: 3 testbed brokers with the JMX
//! exporter agent, a Prometheus server scraping them every second, a bounded producer sending
//! a known rate (2 MB/s for 40 s, loopback only), and the real kube-apiserver with the
//! Strimzi CRDs. An autopilot with `spec.metrics.prometheusUrl` decides on its very first
//! reconcile (the history comes from Prometheus' range queries, not from samples the operator
//! must first collect), measures the ingress from the brokers' counters, and keeps nothing in
//! `status.history`. One consumer (Kafka's ConsumerPerformance, bounded in records and time)
//! reads the topic as it is written, so the egress and the fan-out (egress / ingress, 1 here;
//! the spec says 4) are measured too. A selector matching nothing gives a named missing ingress
//! and no decision, never a zero load; Prometheus down is an error naming its URL.

mod common;

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use kpilot_cluster::{TopicName, TopicPartition};
use kpilot_kafka::{AdminClient, BrokerAddress, ClientConfig, NewTopic};
use kpilot_operator::KafkaObserver;
use kpilot_operator::crd::{KafkaAutopilotSpec, Mode};
use kpilot_operator::reconcile::reconcile;
use kpilot_testbed::{ClusterConfig, KafkaCluster, Prometheus, PrometheusConfig, ScrapeTarget};

/// 2 MB/s as 50 kB records, 4 per 100 ms tick, for 40 s.
const RATE_BYTES_PER_S: f64 = 2_000_000.0;
const RECORD: usize = 50_000;
const RECORDS_PER_TICK: usize = 4;
const TICK: Duration = Duration::from_millis(100);
const PRODUCE_FOR: Duration = Duration::from_secs(40);
const PARTITIONS: i32 = 3;
/// Every record the producer sends (4 per tick, 400 ticks).
const RECORDS: u64 = (RECORDS_PER_TICK as u64) * 400;
/// The fan-out the spec claims; the measured one is 1 (one consumer).
const SPEC_FANOUT: f64 = 4.0;

/// Produces on an absolute schedule for `PRODUCE_FOR`, rotating over the partitions; bounded
/// in ticks and time. Returns the bytes acknowledged and the time taken.
async fn produce(admin: AdminClient, topic: TopicName) -> (u64, Duration) {
    let payload = Bytes::from(vec![0x6b_u8; RECORD]);
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

fn spec(bootstrap: &str, prometheus: &str) -> KafkaAutopilotSpec {
    let mut spec = spec_strimzi(Mode::Recommend, None);
    spec.kafka.bootstrap = bootstrap.to_owned();
    spec.metrics.prometheus_url = Some(prometheus.to_owned());
    spec.metrics.window = Some("10s".into());
    spec.metrics.history = Some("2m".into());
    spec.policy.consumer_fanout = Some(SPEC_FANOUT);
    spec
}

/// One consumer reading `topic` from the start as it is written: Kafka's ConsumerPerformance,
/// stopping after every record the producer sends or after 20 s without one.
fn consumer(cluster: &KafkaCluster, topic: &str) -> std::process::Child {
    cluster
        .java_command("org.apache.kafka.tools.ConsumerPerformance")
        .args([
            "--bootstrap-server",
            &cluster.bootstrap(),
            "--topic",
            topic,
            "--group",
            "egress-reader",
            "--messages",
            &RECORDS.to_string(),
            "--timeout",
            "20000",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start ConsumerPerformance")
}

#[test]
fn prometheus_gives_the_ingress_and_a_history_to_decide_from_at_once() {
    let t = Instant::now();
    let cluster = KafkaCluster::start(ClusterConfig::default().with_metrics())
        .expect("start 3 brokers with the JMX exporter (scripts/setup-kafka must work)");
    let mut prometheus = Prometheus::start(
        &ScrapeTarget::of_cluster(&cluster),
        &PrometheusConfig::default(),
    )
    .expect("start Prometheus (scripts/setup-prometheus must work)");
    prometheus
        .wait_for_targets(Duration::from_secs(60))
        .expect("every broker is scraped");
    eprintln!("testbed and Prometheus up in {:?}", t.elapsed());

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let cp = control_plane().await;
        let ns = cp.create_unique_namespace("prometheus").await.expect("ns");
        let client = cp.client().await.expect("client");
        create_strimzi(&client, &ns, "m7g.large").await;
        let url = prometheus.url();
        create_autopilot(&client, &ns, "prom", spec(&cluster.bootstrap(), &url)).await;
        let mut nothing = spec(&cluster.bootstrap(), &url);
        nothing.metrics.selector = Some("job=\"not-kafka\"".into());
        create_autopilot(&client, &ns, "nothing", nothing).await;
        let ctx = context(client.clone(), Rc::new(KafkaObserver::new()));

        let bootstrap = BrokerAddress::parse_list(&cluster.bootstrap()).expect("bootstrap");
        let admin = AdminClient::connect(ClientConfig::new(bootstrap))
            .await
            .expect("connect");
        let topic = TopicName::new("operator-load").expect("topic name");
        admin
            .create_topics(&[NewTopic::new(topic.clone(), PARTITIONS, 3)])
            .await
            .expect("create topic");
        admin.wait_for_topic(&topic).await.expect("topic ready");
        let mut reader = consumer(&cluster, topic.as_str());
        let producer = tokio::task::spawn_local(produce(admin.clone(), topic));
        // 30 s into the production: the 10 s window and a few 10 s history steps lie
        // inside it.
        tokio::time::sleep(Duration::from_secs(30)).await;

        let ap = get_autopilot(&client, &ns, "prom").await;
        assert!(ap.status.is_none(), "never reconciled before");
        reconcile(&ap, &ctx).await.expect("reconcile");
        let ap = get_autopilot(&client, &ns, "prom").await;
        let status = ap.status.clone().expect("status");
        eprintln!("{}", serde_json::to_string_pretty(&status).expect("json"));
        let load = status.load.clone().expect("load");
        assert_eq!(load.source, "prometheus");
        let ingress = load.ingress_mb_per_s.expect("ingress measured") * 1e6;
        let error = (ingress - RATE_BYTES_PER_S).abs() / RATE_BYTES_PER_S;
        eprintln!(
            "operator ingress from Prometheus: {:.3} MB/s for {:.3} MB/s produced ({:.1}%)",
            ingress / 1e6,
            RATE_BYTES_PER_S / 1e6,
            error * 100.0
        );
        assert!(error <= 0.15, "{ingress} B/s is not within 15% of the rate");
        let egress = load.egress_mb_per_s.expect("egress measured") * 1e6;
        eprintln!(
            "operator egress from Prometheus: {:.3} MB/s (one consumer); fan-out {:?} ({:?})",
            egress / 1e6,
            load.fanout,
            load.fanout_source
        );
        assert!(
            (egress - RATE_BYTES_PER_S).abs() / RATE_BYTES_PER_S <= 0.3,
            "{egress} B/s is not within 30% of what one consumer reads"
        );
        assert_eq!(load.fanout_source.as_deref(), Some("measured"));
        let fanout = load.fanout.expect("fan-out");
        assert!(
            (0.7..2.5).contains(&fanout),
            "the highest egress / ingress step of one consumer (the spec says {SPEC_FANOUT}): {fanout}"
        );
        let forecast = status
            .forecast
            .clone()
            .expect("a forecast on the first reconcile");
        assert_eq!(forecast.history_source.as_deref(), Some("prometheus"));
        let samples = forecast.history_samples.expect("samples");
        assert!(
            (3..=13).contains(&samples),
            "2 min at 10 s steps, at most 13 points, some before the load: {samples}"
        );
        let decision = status.last_decision.clone().expect("a decision at once");
        assert_eq!(decision.action, "keep", "2 MB/s fits 3 x m7g.large");
        assert!(
            status.history.is_empty(),
            "with Prometheus the history is not kept in status: {:?}",
            status.history
        );

        // A selector matching nothing: the ingress is missing with the reason, not zero, and
        // there is nothing to decide from.
        let ap = get_autopilot(&client, &ns, "nothing").await;
        reconcile(&ap, &ctx).await.expect("reconcile");
        let ap = get_autopilot(&client, &ns, "nothing").await;
        let status = ap.status.clone().expect("status");
        let load = status.load.clone().expect("load");
        assert_eq!(load.ingress_mb_per_s, None, "{load:?}");
        let problem = load.ingress_problem.clone().expect("why it is missing");
        assert!(
            problem.contains("not-kafka") && problem.contains("spec.metrics.selector"),
            "the message names the series and the field to fix: {problem}"
        );
        let ready = condition(&ap, "Ready");
        assert!(
            ready.message.contains("ingress not measured"),
            "{}",
            ready.message
        );
        assert!(status.last_decision.is_none(), "no decision from no data");
        assert!(status.forecast.is_none());

        let (bytes, elapsed) = producer.await.expect("producer task");
        let _ = reader.kill();
        let _ = reader.wait();
        let actual = bytes as f64 / elapsed.as_secs_f64();
        assert!(
            (actual - RATE_BYTES_PER_S).abs() / RATE_BYTES_PER_S < 0.03,
            "the producer held {actual} B/s, not its rate"
        );

        // Prometheus down: an error naming the URL in status, the last decision kept.
        prometheus.stop();
        let ap = get_autopilot(&client, &ns, "prom").await;
        let err = reconcile(&ap, &ctx).await.expect_err("Prometheus is down");
        assert!(
            err.to_string().contains(&url)
                && err.to_string().contains("spec.metrics.prometheusUrl"),
            "{err}"
        );
        let ap = get_autopilot(&client, &ns, "prom").await;
        let status = ap.status.clone().expect("status");
        assert!(
            status
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains(&url)),
            "{:?}",
            status.last_error
        );
        assert_eq!(condition(&ap, "Ready").status, "False");
        assert!(status.last_decision.is_some());
        eprintln!("Prometheus down: {err}");
        admin.close();
    });
    eprintln!("test took {:?}", t.elapsed());
}
