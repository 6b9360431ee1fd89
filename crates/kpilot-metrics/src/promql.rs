//! The Prometheus side without I/O: which series hold a Kafka broker's load (defaults matching
//! the JMX exporter's example Kafka rules), the PromQL queries for rates and sample ages, the
//! query API's JSON, and turning query results into a [`Measurement`] where a missing, stale
//! or partial series is reported as such. Pure: no I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use kpilot_units::{Span, Throughput};
use serde::Serialize;

use crate::error::MetricsError;
use crate::measurement::{BrokerLoad, Measurement, Reading, TopicLoad};

/// Default metric names: those the Prometheus JMX exporter's example Kafka rules
/// (`kafka-2_0_0.yml`, `kafka-kraft-3_0_0.yml`) and the testbed's rules produce from the
/// brokers' `kafka.server:type=BrokerTopicMetrics` meters, and the JVM's CPU counter the agent
/// exports.
pub mod defaults {
    /// `BytesInPerSec`: producer bytes appended by leaders.
    pub const BYTES_IN: &str = "kafka_server_brokertopicmetrics_bytesin_total";
    /// `BytesOutPerSec`: bytes fetched by consumers.
    pub const BYTES_OUT: &str = "kafka_server_brokertopicmetrics_bytesout_total";
    /// `ReplicationBytesInPerSec`: bytes a follower fetched.
    pub const REPLICATION_IN: &str = "kafka_server_brokertopicmetrics_replicationbytesin_total";
    /// `ReplicationBytesOutPerSec`: bytes a leader served to followers.
    pub const REPLICATION_OUT: &str = "kafka_server_brokertopicmetrics_replicationbytesout_total";
    /// The JVM process' CPU seconds.
    pub const CPU: &str = "process_cpu_seconds_total";
    /// The label that tells brokers apart.
    pub const BROKER_LABEL: &str = "instance";
    /// The label of per-topic series (broker-wide series do not have it).
    pub const TOPIC_LABEL: &str = "topic";
}

/// What the user calls each setting, so messages point at the right knob: the CLI's flags
/// ([`SettingNames::CLI`]) or the operator's spec fields ([`SettingNames::SPEC`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SettingNames {
    /// The Prometheus URL.
    pub url: &'static str,
    /// The producer bytes-in counter.
    pub bytes_in: &'static str,
    /// The consumer bytes-out counter.
    pub bytes_out: &'static str,
    /// The replication bytes-in counter.
    pub replication_in: &'static str,
    /// The replication bytes-out counter.
    pub replication_out: &'static str,
    /// The label selector.
    pub selector: &'static str,
}

impl SettingNames {
    /// The `kpilot recommend` flags.
    pub const CLI: SettingNames = SettingNames {
        url: "--prometheus",
        bytes_in: "--prom-bytes-in",
        bytes_out: "--prom-bytes-out",
        replication_in: "--prom-replication-in",
        replication_out: "--prom-replication-out",
        selector: "--prom-selector",
    };
    /// The `KafkaAutopilot` spec fields (the operator reads only bytes in from Prometheus).
    pub const SPEC: SettingNames = SettingNames {
        url: "spec.metrics.prometheusUrl",
        bytes_in: "spec.metrics.bytesInMetric",
        bytes_out: "the default bytes-out metric name",
        replication_in: "the default replication-in metric name",
        replication_out: "the default replication-out metric name",
        selector: "spec.metrics.selector",
    };
}

/// Where a cluster's load is in Prometheus.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrometheusSettings {
    /// Base URL of the HTTP API, e.g. `http://127.0.0.1:9090` (plain HTTP).
    pub url: String,
    /// Counter of producer bytes in.
    pub bytes_in: String,
    /// Counter of consumer bytes out.
    pub bytes_out: String,
    /// Counter of replication bytes in.
    pub replication_in: String,
    /// Counter of replication bytes out.
    pub replication_out: String,
    /// Counter of CPU seconds of the broker process.
    pub cpu: String,
    /// The label that tells brokers apart (`instance`, `pod`, `kafka_broker_id`...).
    pub broker_label: String,
    /// The per-topic label; the broker-wide series are those without it.
    pub topic_label: String,
    /// Extra label matchers for every query, e.g. `job="kafka",namespace="prod"`.
    pub selector: String,
    /// A series whose latest sample is older than this is stale.
    pub max_age: Span,
    /// How many brokers should report; fewer is a partial (stale) total.
    pub expected_brokers: Option<usize>,
    /// Timeout of each HTTP request.
    pub timeout: Duration,
    /// What the user calls the settings, for messages.
    pub names: SettingNames,
}

impl PrometheusSettings {
    /// The defaults for a Prometheus at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        PrometheusSettings {
            url: url.into(),
            bytes_in: defaults::BYTES_IN.into(),
            bytes_out: defaults::BYTES_OUT.into(),
            replication_in: defaults::REPLICATION_IN.into(),
            replication_out: defaults::REPLICATION_OUT.into(),
            cpu: defaults::CPU.into(),
            broker_label: defaults::BROKER_LABEL.into(),
            topic_label: defaults::TOPIC_LABEL.into(),
            selector: String::new(),
            max_age: Span::from_secs(60.0),
            expected_brokers: None,
            timeout: Duration::from_secs(10),
            names: SettingNames::CLI,
        }
    }

    /// Checks names and selector, so a typo fails here rather than as a PromQL error.
    pub fn validate(&self) -> Result<(), MetricsError> {
        let bad = |name, value: &str, expected| {
            Err(MetricsError::InvalidSetting {
                name,
                value: value.to_owned(),
                expected,
            })
        };
        if !self.url.starts_with("http://") {
            return bad(
                "prometheus url",
                &self.url,
                "a plain-HTTP base URL such as http://127.0.0.1:9090 (https is not supported yet)",
            );
        }
        for (name, value) in [
            ("bytes-in metric", &self.bytes_in),
            ("bytes-out metric", &self.bytes_out),
            ("replication-in metric", &self.replication_in),
            ("replication-out metric", &self.replication_out),
            ("cpu metric", &self.cpu),
        ] {
            if !is_metric_name(value) {
                return bad(
                    name,
                    value,
                    "a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
                );
            }
        }
        for (name, value) in [
            ("broker label", &self.broker_label),
            ("topic label", &self.topic_label),
        ] {
            if !is_label_name(value) {
                return bad(
                    name,
                    value,
                    "a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)",
                );
            }
        }
        if self.selector.contains(['{', '}', '[', ']']) {
            return bad(
                "selector",
                &self.selector,
                "label matchers without braces, e.g. job=\"kafka\",namespace=\"prod\"",
            );
        }
        if self.max_age.secs().is_nan() || self.max_age.secs() <= 0.0 {
            return bad("max age", &self.max_age.to_string(), "a positive duration");
        }
        Ok(())
    }

    /// The matchers of the broker-wide series of a counter: no topic label, plus the selector.
    pub(crate) fn broker_matchers(&self) -> String {
        join_matchers(&format!("{}=\"\"", self.topic_label), &self.selector)
    }

    fn topic_matchers(&self) -> String {
        join_matchers(&format!("{}!=\"\"", self.topic_label), &self.selector)
    }
}

fn join_matchers(a: &str, b: &str) -> String {
    let b = b.trim().trim_matches(',');
    if b.is_empty() {
        a.to_owned()
    } else {
        format!("{a},{b}")
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A PromQL range duration: whole seconds, at least 1.
pub fn range(window: Span) -> String {
    format!("{}s", window.secs().round().max(1.0) as u64)
}

/// Which traffic a counter measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Counter {
    /// Producer bytes in.
    BytesIn,
    /// Consumer bytes out.
    BytesOut,
    /// Replication bytes in.
    ReplicationIn,
    /// Replication bytes out.
    ReplicationOut,
}

impl Counter {
    /// Every counter.
    pub const ALL: [Counter; 4] = [
        Counter::BytesIn,
        Counter::BytesOut,
        Counter::ReplicationIn,
        Counter::ReplicationOut,
    ];

    /// The metric name configured for it.
    pub fn metric(self, s: &PrometheusSettings) -> &str {
        match self {
            Counter::BytesIn => &s.bytes_in,
            Counter::BytesOut => &s.bytes_out,
            Counter::ReplicationIn => &s.replication_in,
            Counter::ReplicationOut => &s.replication_out,
        }
    }

    /// The flag or field that sets its name.
    pub fn setting(self, names: &SettingNames) -> &'static str {
        match self {
            Counter::BytesIn => names.bytes_in,
            Counter::BytesOut => names.bytes_out,
            Counter::ReplicationIn => names.replication_in,
            Counter::ReplicationOut => names.replication_out,
        }
    }
}

/// The queries of one measurement, each an instant query at the end of the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queries {
    /// Per counter: (rate per broker, age of the latest sample per broker).
    pub counters: Vec<(Counter, String, String)>,
    /// Producer bytes in per topic.
    pub topics: String,
    /// CPU cores per broker.
    pub cpu: String,
}

/// Builds the queries for a window.
pub fn queries(s: &PrometheusSettings, window: Span) -> Queries {
    let r = range(window);
    let by = &s.broker_label;
    let m = s.broker_matchers();
    let counters = Counter::ALL
        .iter()
        .map(|&c| {
            let name = c.metric(s);
            (
                c,
                format!("sum by ({by}) (rate({name}{{{m}}}[{r}]))"),
                format!("max by ({by}) (time() - timestamp({name}{{{m}}}))"),
            )
        })
        .collect();
    let topic = &s.topic_label;
    let topics = format!(
        "sum by ({topic}) (rate({}{{{}}}[{r}]))",
        s.bytes_in,
        s.topic_matchers()
    );
    let sel = s.selector.trim().trim_matches(',');
    let cpu = format!("sum by ({by}) (rate({}{{{sel}}}[{r}]))", s.cpu);
    Queries {
        counters,
        topics,
        cpu,
    }
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorSample {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value (may be NaN or infinite, as Prometheus sends them).
    pub value: f64,
}

/// Why a query API answer could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiAnswer {
    /// `status: error`: Prometheus' error type and message.
    Error(String),
    /// Not the documented JSON.
    Invalid(String),
}

/// The JSON of a query API answer whose `status` is `success`; Prometheus' error type and
/// message otherwise.
pub(crate) fn success_data(body: &str) -> Result<serde_json::Value, ApiAnswer> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| ApiAnswer::Invalid(format!("not JSON: {e}")))?;
    match v["status"].as_str() {
        Some("success") => Ok(v),
        Some("error") => Err(ApiAnswer::Error(format!(
            "{}: {}",
            v["errorType"].as_str().unwrap_or("error"),
            v["error"].as_str().unwrap_or("(no message)")
        ))),
        _ => Err(ApiAnswer::Invalid("no `status` field".into())),
    }
}

/// The labels (`metric`) of one element of a query answer.
pub(crate) fn labels_of(item: &serde_json::Value) -> BTreeMap<String, String> {
    item["metric"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Parses an instant-query answer (`resultType` `vector` or `scalar`).
pub fn parse_vector(body: &str) -> Result<Vec<VectorSample>, ApiAnswer> {
    let v = success_data(body)?;
    let data = &v["data"];
    let number = |pair: &serde_json::Value| -> Result<f64, ApiAnswer> {
        let text = pair
            .get(1)
            .and_then(|x| x.as_str())
            .ok_or_else(|| ApiAnswer::Invalid("a sample is not [time, \"value\"]".into()))?;
        parse_value(text).ok_or_else(|| ApiAnswer::Invalid(format!("sample value {text:?}")))
    };
    match data["resultType"].as_str() {
        Some("vector") => {
            let result = data["result"]
                .as_array()
                .ok_or_else(|| ApiAnswer::Invalid("`data.result` is not a list".into()))?;
            result
                .iter()
                .map(|item| {
                    Ok(VectorSample {
                        labels: labels_of(item),
                        value: number(&item["value"])?,
                    })
                })
                .collect()
        }
        Some("scalar") => Ok(vec![VectorSample {
            labels: BTreeMap::new(),
            value: number(&data["result"])?,
        }]),
        other => Err(ApiAnswer::Invalid(format!(
            "result type {other:?}, expected a vector"
        ))),
    }
}

/// Parses the `/api/v1/label/__name__/values` answer.
pub fn parse_names(body: &str) -> Result<Vec<String>, ApiAnswer> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| ApiAnswer::Invalid(format!("not JSON: {e}")))?;
    if v["status"].as_str() != Some("success") {
        return Err(ApiAnswer::Error(
            v["error"].as_str().unwrap_or("(no message)").to_owned(),
        ));
    }
    Ok(v["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

pub(crate) fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}

/// The results of one counter's two queries.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CounterResults {
    /// Rate per broker.
    pub rates: Vec<VectorSample>,
    /// Seconds since the latest sample, per broker.
    pub ages: Vec<VectorSample>,
    /// Metric names that look alike, for the message when the series is missing.
    pub similar: Vec<String>,
}

/// Everything the queries returned.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Results {
    /// Per counter.
    pub counters: BTreeMap<Counter, CounterResults>,
    /// Bytes in per topic.
    pub topics: Vec<VectorSample>,
    /// CPU cores per broker.
    pub cpu: Vec<VectorSample>,
}

/// One counter's reading per broker, or why there is none at all.
fn counter_readings(
    s: &PrometheusSettings,
    counter: Counter,
    r: &CounterResults,
) -> Result<BTreeMap<String, Reading>, String> {
    let name = counter.metric(s);
    let series = format!("{name}{{{}}}", s.broker_matchers());
    if r.ages.is_empty() {
        let mut reason = format!(
            "Prometheus has no series {series} (check the metric name, {}, and {})",
            counter.setting(&s.names),
            s.names.selector
        );
        if !r.similar.is_empty() {
            reason.push_str(&format!("; similar names: {}", r.similar.join(", ")));
        }
        return Err(reason);
    }
    let key = |x: &VectorSample| {
        x.labels
            .get(&s.broker_label)
            .cloned()
            .unwrap_or_else(|| "(no label)".to_owned())
    };
    let rates: BTreeMap<String, f64> = r.rates.iter().map(|x| (key(x), x.value)).collect();
    let mut out = BTreeMap::new();
    for a in &r.ages {
        let broker = key(a);
        let reading = if a.value > s.max_age.secs() {
            Reading::stale(format!(
                "{series} of {}={broker}: latest sample {:.0} s old (more than {:.0} s)",
                s.broker_label,
                a.value,
                s.max_age.secs()
            ))
        } else {
            match rates.get(&broker) {
                Some(v) if v.is_finite() && *v >= 0.0 => {
                    Reading::measured(Throughput::from_bytes_per_s(*v))
                }
                Some(v) => Reading::missing(format!(
                    "{series} of {}={broker}: rate is {v}",
                    s.broker_label
                )),
                None => Reading::missing(format!(
                    "{series} of {}={broker}: fewer than two samples in the window",
                    s.broker_label
                )),
            }
        };
        out.insert(broker, reading);
    }
    Ok(out)
}

/// Turns query results into a measurement.
pub fn assemble(s: &PrometheusSettings, window: Span, at: f64, results: &Results) -> Measurement {
    let mut warnings = Vec::new();
    let mut per_counter: BTreeMap<Counter, Result<BTreeMap<String, Reading>, String>> =
        BTreeMap::new();
    let empty = CounterResults::default();
    for c in Counter::ALL {
        per_counter.insert(
            c,
            counter_readings(s, c, results.counters.get(&c).unwrap_or(&empty)),
        );
    }
    let mut brokers: Vec<String> = per_counter
        .values()
        .filter_map(|r| r.as_ref().ok())
        .flat_map(|m| m.keys().cloned())
        .collect();
    brokers.sort();
    brokers.dedup();
    let cpu: BTreeMap<String, f64> = results
        .cpu
        .iter()
        .filter(|x| x.value.is_finite())
        .filter_map(|x| Some((x.labels.get(&s.broker_label)?.clone(), x.value)))
        .collect();
    if cpu.is_empty() {
        warnings.push(format!(
            "no CPU series {}{{{}}}: CPU not reported",
            s.cpu, s.selector
        ));
    }
    let reading = |c: Counter, broker: &str| -> Reading {
        match &per_counter[&c] {
            Err(reason) => Reading::missing(reason.clone()),
            Ok(m) => m.get(broker).cloned().unwrap_or_else(|| {
                Reading::missing(format!(
                    "no {} series for {}={broker}",
                    c.metric(s),
                    s.broker_label
                ))
            }),
        }
    };
    let broker_loads: Vec<BrokerLoad> = brokers
        .iter()
        .map(|b| BrokerLoad {
            broker: b.clone(),
            bytes_in: reading(Counter::BytesIn, b),
            bytes_out: reading(Counter::BytesOut, b),
            replication_in: reading(Counter::ReplicationIn, b),
            replication_out: reading(Counter::ReplicationOut, b),
            cpu_cores: cpu.get(b).copied(),
            stored: None,
        })
        .collect();
    let total = |c: Counter| -> Reading {
        let what = c.metric(s);
        let mut r = match &per_counter[&c] {
            Err(reason) => Reading::missing(reason.clone()),
            Ok(m) => Reading::sum(m.values(), what),
        };
        if let (Some(expected), Ok(m)) = (s.expected_brokers, &per_counter[&c])
            && m.len() < expected
            && r.value().is_some()
        {
            r = Reading::stale(format!(
                "only {} of {expected} brokers report {what} ({}: {})",
                m.len(),
                s.broker_label,
                m.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        r
    };
    let ingress = total(Counter::BytesIn);
    let egress = total(Counter::BytesOut);
    let replication = total(Counter::ReplicationIn);
    for (what, r) in [
        ("ingress", &ingress),
        ("egress", &egress),
        ("replication", &replication),
    ] {
        if let Some(p) = r.problem() {
            warnings.push(format!("{what}: {p}"));
        }
    }
    let topics = results
        .topics
        .iter()
        .filter_map(|x| {
            let topic = x.labels.get(&s.topic_label)?.clone();
            Some(TopicLoad {
                ingress: if x.value.is_finite() && x.value >= 0.0 {
                    Reading::measured(Throughput::from_bytes_per_s(x.value))
                } else {
                    Reading::missing(format!("rate is {}", x.value))
                },
                topic,
                messages_per_s: None,
                egress: None,
                consumer_groups: Vec::new(),
                stored: None,
            })
        })
        .filter(|t| !t.topic.starts_with("__"))
        .collect();
    Measurement {
        source: format!("prometheus {}", s.url),
        window,
        at_unix_secs: at,
        ingress,
        egress,
        replication,
        brokers: broker_loads,
        topics,
        stored: None,
        consumer_groups: Vec::new(),
        warnings,
    }
}

/// Percent-encodes a query parameter value (everything but RFC 3986 unreserved characters).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(label: &str, value: f64) -> VectorSample {
        VectorSample {
            labels: [("instance".to_owned(), label.to_owned())]
                .into_iter()
                .collect(),
            value,
        }
    }

    fn settings() -> PrometheusSettings {
        PrometheusSettings::new("http://127.0.0.1:9090")
    }

    fn fresh(brokers: &[(&str, f64)]) -> CounterResults {
        CounterResults {
            rates: brokers.iter().map(|(b, v)| sample(b, *v)).collect(),
            ages: brokers.iter().map(|(b, _)| sample(b, 1.5)).collect(),
            similar: Vec::new(),
        }
    }

    fn all_fresh(brokers: &[(&str, f64)]) -> Results {
        Results {
            counters: Counter::ALL.iter().map(|&c| (c, fresh(brokers))).collect(),
            topics: Vec::new(),
            cpu: brokers.iter().map(|(b, _)| sample(b, 0.25)).collect(),
        }
    }

    #[test]
    fn queries_use_the_broker_wide_series_and_the_selector() {
        let mut s = settings();
        s.selector = "job=\"kafka\"".into();
        let q = queries(&s, Span::from_secs(30.0));
        let (c, rate, age) = &q.counters[0];
        assert_eq!(*c, Counter::BytesIn);
        assert_eq!(
            rate,
            "sum by (instance) (rate(kafka_server_brokertopicmetrics_bytesin_total{topic=\"\",job=\"kafka\"}[30s]))"
        );
        assert_eq!(
            age,
            "max by (instance) (time() - timestamp(kafka_server_brokertopicmetrics_bytesin_total{topic=\"\",job=\"kafka\"}))"
        );
        assert_eq!(
            q.topics,
            "sum by (topic) (rate(kafka_server_brokertopicmetrics_bytesin_total{topic!=\"\",job=\"kafka\"}[30s]))"
        );
        assert_eq!(
            q.cpu,
            "sum by (instance) (rate(process_cpu_seconds_total{job=\"kafka\"}[30s]))"
        );
        assert_eq!(range(Span::from_minutes(5.0)), "300s");
    }

    #[test]
    fn validation_rejects_typos_before_any_query() {
        let mut s = settings();
        s.bytes_in = "kafka bytes".into();
        assert!(s.validate().is_err());
        let mut s = settings();
        s.selector = "{job=\"x\"}".into();
        let e = s.validate().expect_err("braces").to_string();
        assert!(e.contains("without braces"), "{e}");
        let s = PrometheusSettings::new("127.0.0.1:9090");
        assert!(
            s.validate()
                .expect_err("scheme")
                .to_string()
                .contains("http://")
        );
        settings().validate().expect("defaults are valid");
    }

    #[test]
    fn parses_vectors_scalars_and_errors() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"instance":"127.0.0.1:1"},"value":[1700000000.1,"5242880"]},
            {"metric":{"instance":"127.0.0.1:2"},"value":[1700000000.1,"NaN"]}]}}"#;
        let v = parse_vector(body).expect("vector");
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].labels["instance"], "127.0.0.1:1");
        assert_eq!(v[0].value, 5_242_880.0);
        assert!(v[1].value.is_nan());
        let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"42"]}}"#;
        assert_eq!(parse_vector(scalar).expect("scalar")[0].value, 42.0);
        let err = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        assert_eq!(
            parse_vector(err),
            Err(ApiAnswer::Error("bad_data: parse error at char 5".into()))
        );
        assert!(matches!(parse_vector("<html>"), Err(ApiAnswer::Invalid(_))));
        let names = r#"{"status":"success","data":["a_total","b_total"]}"#;
        assert_eq!(parse_names(names).expect("names"), ["a_total", "b_total"]);
    }

    #[test]
    fn fresh_series_sum_to_the_cluster_total() {
        let r = all_fresh(&[("b1", 2e6), ("b2", 3e6)]);
        let m = assemble(&settings(), Span::from_secs(30.0), 1.0, &r);
        assert_eq!(m.ingress.value(), Some(Throughput::from_bytes_per_s(5e6)));
        assert_eq!(m.brokers.len(), 2);
        assert_eq!(m.brokers[1].cpu_cores, Some(0.25));
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    }

    #[test]
    fn a_wrong_metric_name_is_missing_not_zero() {
        let mut r = all_fresh(&[("b1", 2e6)]);
        r.counters.insert(
            Counter::BytesIn,
            CounterResults {
                similar: vec!["kafka_server_brokertopicmetrics_bytesin_total".into()],
                ..CounterResults::default()
            },
        );
        let mut s = settings();
        s.bytes_in = "kafka_bytes_in_typo_total".into();
        let m = assemble(&s, Span::from_secs(30.0), 1.0, &r);
        assert_eq!(m.ingress.value(), None);
        let why = m.ingress.problem().expect("a reason");
        assert!(
            why.contains("kafka_bytes_in_typo_total") && why.contains("--prom-bytes-in"),
            "{why}"
        );
        assert!(why.contains("similar names"), "{why}");
        assert!(m.warnings.iter().any(|w| w.starts_with("ingress:")));
    }

    #[test]
    fn an_old_sample_makes_the_total_stale() {
        let mut r = all_fresh(&[("b1", 2e6), ("b2", 2e6)]);
        let c = r.counters.get_mut(&Counter::BytesIn).expect("bytes in");
        c.ages[1].value = 400.0;
        let m = assemble(&settings(), Span::from_secs(30.0), 1.0, &r);
        assert!(
            matches!(m.ingress, crate::Reading::Stale { .. }),
            "{:?}",
            m.ingress
        );
        assert!(
            m.ingress
                .problem()
                .is_some_and(|p| p.contains("b2") && p.contains("400 s")),
            "{:?}",
            m.ingress
        );
        assert_eq!(
            m.brokers[0].bytes_in.value(),
            Some(Throughput::from_bytes_per_s(2e6))
        );
    }

    #[test]
    fn too_few_samples_or_too_few_brokers_is_not_a_total() {
        let mut r = all_fresh(&[("b1", 2e6), ("b2", 2e6)]);
        r.counters
            .get_mut(&Counter::BytesIn)
            .expect("bytes in")
            .rates
            .pop();
        let m = assemble(&settings(), Span::from_secs(30.0), 1.0, &r);
        assert_eq!(m.ingress.value(), None);
        assert!(
            m.ingress
                .problem()
                .is_some_and(|p| p.contains("fewer than two samples")),
            "{:?}",
            m.ingress
        );

        let r = all_fresh(&[("b1", 2e6), ("b2", 2e6)]);
        let mut s = settings();
        s.expected_brokers = Some(3);
        let m = assemble(&s, Span::from_secs(30.0), 1.0, &r);
        assert_eq!(m.ingress.value(), None);
        assert!(
            m.ingress
                .problem()
                .is_some_and(|p| p.contains("only 2 of 3")),
            "{:?}",
            m.ingress
        );
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("a{b=\"c\"}[5s] x"), "a%7Bb%3D%22c%22%7D%5B5s%5D%20x");
    }
}
