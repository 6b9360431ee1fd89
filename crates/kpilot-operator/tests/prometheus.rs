//! The reconcile reading the load from a real Prometheus: 3 testbed brokers with the JMX
//! exporter agent, a Prometheus server scraping them every second, a bounded producer sending
//! a known rate (2 MB/s for 60 s, loopback only), and the real kube-apiserver with the
//! Strimzi CRDs. An autopilot with `spec.metrics.prometheusUrl` decides on its very first
//! reconcile (the history comes from Prometheus' range queries, not from samples the operator
//! must first collect), measures the ingress from the brokers' counters, and keeps nothing in
//! `status.history`. Two consumer groups (Kafka's ConsumerPerformance, bounded in records and
//! time) read the topic as it is written, so the egress and the fan-out (egress / ingress, 2
//! here; the spec says 4) are measured too; and a second autopilot without Prometheus measures the
//! same from Kafka alone (log growth, committed group offsets) between two reconciles. The
//! topic keeps 4 MiB per partition in 1 MiB segments and the brokers check retention every
//! second, so retention deletes segments throughout that interval, as on any cluster older
//! than its retention: the log sizes hardly grow, and the Kafka-only ingress must still be the
//! rate produced (records appended x average record size). A selector matching nothing gives a named missing ingress
//! and no decision, never a zero load; Prometheus down is an error naming its URL. A throttle
//! rate left on a broker with no reassignment running shows in status until it is deleted.

mod common;

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use kpilot_cluster::{BrokerId, TopicName, TopicPartition};
use kpilot_kafka::{AdminClient, ConfigOp, ConfigResource, LEADER_RATE, OffsetSpec};
use kpilot_operator::KafkaObserver;
use kpilot_operator::crd::{KafkaAutopilotSpec, Mode};
use kpilot_operator::reconcile::reconcile;
use kpilot_testbed::{ClusterConfig, KafkaCluster, Prometheus, PrometheusConfig, ScrapeTarget};

/// 2 MB/s as 50 kB records, 4 per 100 ms tick, for 60 s.
const RATE_BYTES_PER_S: f64 = 2_000_000.0;
const RECORD: usize = 50_000;
const RECORDS_PER_TICK: usize = 4;
const TICK: Duration = Duration::from_millis(100);
const PRODUCE_FOR: Duration = Duration::from_secs(60);
const PARTITIONS: i32 = 3;
/// Every record the producer sends (4 per tick, 600 ticks).
const RECORDS: u64 = (RECORDS_PER_TICK as u64) * 600;
/// Consumer groups reading the topic: the measured fan-out.
const GROUPS: usize = 2;
/// The fan-out the spec claims.
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

/// Reconciles the Kafka-only autopilot until `done` holds for its
/// `status.load.throttlesLeftBehind` (a config change reaches the broker through the metadata
/// log a moment after it was made), for at most 15 s; returns the last value.
async fn throttles_in_status(
    client: &kube::Client,
    ctx: &kpilot_operator::Context,
    ns: &str,
    done: impl Fn(&Option<String>) -> bool,
) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ap = get_autopilot(client, ns, "kafka").await;
        reconcile(&ap, ctx).await.expect("Kafka-only reconcile");
        let status = get_autopilot(client, ns, "kafka").await.status;
        let left = status
            .and_then(|s| s.load)
            .and_then(|l| l.throttles_left_behind);
        if done(&left) || Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// A consumer of `group` reading `topic` from the start as it is written: Kafka's
/// ConsumerPerformance, stopping after every record the producer sends or after 20 s without
/// one.
fn consumer(cluster: &KafkaCluster, topic: &str, group: &str) -> std::process::Child {
    cluster
        .java_command("org.apache.kafka.tools.ConsumerPerformance")
        .args([
            "--bootstrap-server",
            &cluster.bootstrap(),
            "--topic",
            topic,
            "--group",
            group,
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
    let cluster = KafkaCluster::start(ClusterConfig {
        extra_broker_properties: vec![("log.retention.check.interval.ms".into(), "1000".into())],
        ..ClusterConfig::default().with_metrics()
    })
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

    on_local(async {
        let cp = control_plane().await;
        let ns = cp.create_unique_namespace("prometheus").await.expect("ns");
        let client = cp.client().await.expect("client");
        create_strimzi(&client, &ns, "m7g.large").await;
        let url = prometheus.url();
        create_autopilot(&client, &ns, "prom", spec(&cluster.bootstrap(), &url)).await;
        let mut nothing = spec(&cluster.bootstrap(), &url);
        nothing.metrics.selector = Some("job=\"not-kafka\"".into());
        create_autopilot(&client, &ns, "nothing", nothing).await;
        let mut kafka_only = spec(&cluster.bootstrap(), &url);
        kafka_only.metrics.prometheus_url = None;
        kafka_only.metrics.window = None;
        kafka_only.metrics.history = None;
        create_autopilot(&client, &ns, "kafka", kafka_only).await;
        let ctx = context(client.clone(), Rc::new(KafkaObserver::new()));

        let (admin, topic) =
            admin_with_topic(&cluster.bootstrap(), "operator-load", PARTITIONS, 3).await;
        admin
            .alter_configs(
                &ConfigResource::Topic(topic.clone()),
                &[
                    ConfigOp::set("segment.bytes", 1 << 20),
                    ConfigOp::set("retention.bytes", 4 << 20),
                ],
            )
            .await
            .expect("a topic retention trims");
        let partitions: Vec<TopicPartition> = (0..PARTITIONS)
            .map(|p| TopicPartition::new(topic.clone(), p))
            .collect();
        let log_starts = || async {
            admin
                .list_offsets(&partitions, OffsetSpec::Earliest)
                .await
                .expect("log start offsets")
        };
        let mut readers: Vec<_> = (0..GROUPS)
            .map(|g| consumer(&cluster, topic.as_str(), &format!("egress-reader-{g}")))
            .collect();
        let egress_rate = RATE_BYTES_PER_S * GROUPS as f64;
        // Let the consumers start and join their groups before the first record, so that
        // no step is mostly a catch-up (that would read as a higher fan-out).
        tokio::time::sleep(Duration::from_secs(10)).await;
        let producer = tokio::task::spawn_local(produce(admin.clone(), topic));
        // Kafka only: a first observation at least 10 s into the production, once retention
        // has deleted a segment of every partition (a broker's first retention check comes
        // 30 s after it starts), the second 20 s later (the consumer commits its offsets
        // every 5 s).
        let began = Instant::now();
        tokio::time::sleep(Duration::from_secs(10)).await;
        let mut starts = log_starts().await;
        while !starts.values().all(|s| *s > 0) {
            assert!(
                began.elapsed() < Duration::from_secs(30),
                "retention deleted nothing in 30 s: {starts:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            starts = log_starts().await;
        }
        eprintln!(
            "retention running {:?} into the production",
            began.elapsed()
        );
        let kafka_only = get_autopilot(&client, &ns, "kafka").await;
        reconcile(&kafka_only, &ctx)
            .await
            .expect("first Kafka-only reconcile");
        // At most 50 s into the production: the 10 s window and a few 10 s history steps lie
        // inside it.
        tokio::time::sleep(Duration::from_secs(20)).await;
        let kafka_only = get_autopilot(&client, &ns, "kafka").await;
        reconcile(&kafka_only, &ctx)
            .await
            .expect("second Kafka-only reconcile");
        let later = log_starts().await;
        assert!(
            starts.iter().all(|(tp, s)| later[tp] > *s),
            "retention deleted segments of every partition between the observations: {starts:?} -> {later:?}"
        );
        let status = get_autopilot(&client, &ns, "kafka")
            .await
            .status
            .expect("status");
        let load = status.load.clone().expect("load");
        eprintln!(
            "Kafka only: ingress {:?} MB/s, egress {:?} MB/s, fan-out {:?} ({:?})",
            load.ingress_mb_per_s, load.egress_mb_per_s, load.fanout, load.fanout_source
        );
        assert_eq!(load.source, "kafka");
        let within = |measured: Option<f64>, rate: f64, tolerance: f64| {
            measured.is_some_and(|m| (m * 1e6 - rate).abs() / rate <= tolerance)
        };
        assert!(
            within(load.ingress_mb_per_s, RATE_BYTES_PER_S, 0.25),
            "{load:?}"
        );
        assert!(within(load.egress_mb_per_s, egress_rate, 0.4), "{load:?}");
        assert_eq!(load.fanout_source.as_deref(), Some("measured"), "{load:?}");
        assert_eq!(status.history.len(), 1);
        assert_eq!(status.history[0].egress_mb_per_s, load.egress_mb_per_s);

        // A throttle rate left on broker 2 with no reassignment running (as an interrupted
        // reassignment tool leaves it) shows in status and in the Ready condition; once
        // deleted it is gone from both.
        let broker = ConfigResource::Broker(BrokerId(2));
        admin
            .alter_configs(&broker, &[ConfigOp::set(LEADER_RATE, 1_048_576)])
            .await
            .expect("set a throttle rate");
        let left = throttles_in_status(&client, &ctx, &ns, Option::is_some).await;
        assert_eq!(left.as_deref(), Some("broker 2"));
        let kafka_only = get_autopilot(&client, &ns, "kafka").await;
        let ready = condition(&kafka_only, "Ready");
        assert!(
            ready.message.contains("throttles left behind") && ready.message.contains("broker 2"),
            "{}",
            ready.message
        );
        admin
            .alter_configs(&broker, &[ConfigOp::delete(LEADER_RATE)])
            .await
            .expect("delete the throttle rate");
        let left = throttles_in_status(&client, &ctx, &ns, Option::is_none).await;
        assert_eq!(left, None);

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
            "operator egress from Prometheus: {:.3} MB/s ({GROUPS} consumer groups); fan-out {:?} ({:?})",
            egress / 1e6,
            load.fanout,
            load.fanout_source
        );
        assert!(
            (egress - egress_rate).abs() / egress_rate <= 0.3,
            "{egress} B/s is not within 30% of what {GROUPS} consumer groups read"
        );
        assert_eq!(load.fanout_source.as_deref(), Some("measured"));
        let fanout = load.fanout.expect("fan-out");
        assert!(
            (1.5..SPEC_FANOUT).contains(&fanout),
            "the highest egress / ingress step of {GROUPS} consumer groups (the spec says {SPEC_FANOUT}): {fanout}"
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
        for reader in &mut readers {
            let _ = reader.kill();
            let _ = reader.wait();
        }
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
