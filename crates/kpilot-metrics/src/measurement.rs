//! What a metrics source reports: a [`Measurement`] of the cluster's load over a window, per
//! cluster, per broker and per topic, where every rate is a [`Reading`] that is either
//! measured or says why it is missing or stale (never a silent zero). Pure: no I/O.

use kpilot_units::{ByteSize, Span, Throughput};
use serde::Serialize;

/// One rate as measured, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Reading {
    /// Measured over the window.
    Measured {
        /// The rate (serialized as MB/s).
        #[serde(rename = "mb_per_s")]
        rate: Throughput,
    },
    /// Nothing to measure it with: no such series, no samples in the window, no data.
    Missing {
        /// Why, naming the metric or object concerned.
        reason: String,
    },
    /// The data is there but too old (a broker or exporter stopped reporting), or covers only
    /// part of the cluster: a total would be too low.
    Stale {
        /// Why, naming the broker or series concerned.
        reason: String,
    },
}

impl Reading {
    /// A measured rate.
    pub fn measured(rate: Throughput) -> Self {
        Reading::Measured { rate }
    }

    /// A missing rate.
    pub fn missing(reason: impl Into<String>) -> Self {
        Reading::Missing {
            reason: reason.into(),
        }
    }

    /// A stale (or partial) rate.
    pub fn stale(reason: impl Into<String>) -> Self {
        Reading::Stale {
            reason: reason.into(),
        }
    }

    /// The rate when it was measured.
    pub fn value(&self) -> Option<Throughput> {
        match self {
            Reading::Measured { rate } => Some(*rate),
            _ => None,
        }
    }

    /// Why there is no value (`None` when measured).
    pub fn problem(&self) -> Option<&str> {
        match self {
            Reading::Measured { .. } => None,
            Reading::Missing { reason } | Reading::Stale { reason } => Some(reason),
        }
    }

    /// The sum of several readings: measured only when every part is; otherwise the first
    /// problem, with how many parts have one. An empty list is missing (`what` names it).
    pub fn sum<'a>(parts: impl IntoIterator<Item = &'a Reading>, what: &str) -> Reading {
        let mut total = 0.0;
        let mut n = 0usize;
        let mut problems: Vec<&Reading> = Vec::new();
        for p in parts {
            n += 1;
            match p {
                Reading::Measured { rate } => total += rate.bytes_per_s(),
                other => problems.push(other),
            }
        }
        if n == 0 {
            return Reading::missing(format!("no {what} series"));
        }
        match problems.first() {
            None => Reading::measured(Throughput::from_bytes_per_s(total)),
            Some(first) => {
                let reason = format!(
                    "{} of {n} {what} series without a value; first: {}",
                    problems.len(),
                    first.problem().unwrap_or_default()
                );
                if problems.len() == n
                    && problems
                        .iter()
                        .all(|p| matches!(p, Reading::Missing { .. }))
                {
                    Reading::missing(reason)
                } else {
                    Reading::stale(reason)
                }
            }
        }
    }
}

/// One broker's load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrokerLoad {
    /// The broker: its id (Kafka source) or the value of the broker label (Prometheus, e.g.
    /// `instance`).
    pub broker: String,
    /// Producer bytes in (leader appends, replication excluded).
    pub bytes_in: Reading,
    /// Bytes out to consumers.
    pub bytes_out: Reading,
    /// Replication bytes in (this broker as follower).
    pub replication_in: Reading,
    /// Replication bytes out (this broker as leader).
    pub replication_out: Reading,
    /// CPU used by the broker process, in cores, when exported.
    pub cpu_cores: Option<f64>,
    /// Data stored on the broker (all its replicas), when known.
    pub stored: Option<ByteSize>,
}

/// One topic's load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopicLoad {
    /// The topic.
    pub topic: String,
    /// Producer bytes in.
    pub ingress: Reading,
    /// Messages in per second, when known (Kafka source: log-end-offset deltas).
    pub messages_per_s: Option<f64>,
    /// Consumer bytes out, when known.
    pub egress: Option<Throughput>,
    /// Consumer groups with committed offsets on the topic (Kafka source).
    pub consumer_groups: Vec<String>,
    /// Data stored, all replicas, when known.
    pub stored: Option<ByteSize>,
}

/// The cluster's load over a window, as one source measured it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measurement {
    /// Which source, e.g. `prometheus http://127.0.0.1:9090` or `kafka 127.0.0.1:9092`.
    pub source: String,
    /// The window the rates are averaged over.
    pub window: Span,
    /// End of the window, seconds since the Unix epoch.
    pub at_unix_secs: f64,
    /// Cluster producer ingress (before replication).
    pub ingress: Reading,
    /// Cluster consumer egress.
    pub egress: Reading,
    /// Cluster replication traffic (bytes followers fetch).
    pub replication: Reading,
    /// Per broker.
    pub brokers: Vec<BrokerLoad>,
    /// Per topic (internal `__` topics left out).
    pub topics: Vec<TopicLoad>,
    /// Data stored in the cluster, all replicas, when known.
    pub stored: Option<ByteSize>,
    /// Consumer groups seen (Kafka source).
    pub consumer_groups: Vec<String>,
    /// Everything that was not measured cleanly, in words.
    pub warnings: Vec<String>,
}

impl Measurement {
    /// Egress / ingress, when both are measured and ingress is above zero.
    pub fn fanout(&self) -> Option<f64> {
        let i = self.ingress.value()?.bytes_per_s();
        let e = self.egress.value()?.bytes_per_s();
        (i > 0.0).then_some(e / i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_is_measured_only_when_every_part_is() {
        let a = Reading::measured(Throughput::from_mb_per_s(1.0));
        let b = Reading::measured(Throughput::from_mb_per_s(2.5));
        let s = Reading::sum([&a, &b], "bytes-in");
        assert_eq!(s.value(), Some(Throughput::from_mb_per_s(3.5)));

        let stale = Reading::stale("broker 2: last sample 90 s ago");
        let s = Reading::sum([&a, &stale], "bytes-in");
        assert_eq!(s.value(), None, "a partial total is never a value");
        assert!(matches!(s, Reading::Stale { .. }));
        assert!(
            s.problem()
                .is_some_and(|p| p.contains("1 of 2") && p.contains("broker 2")),
            "{s:?}"
        );

        let none = Reading::sum([], "bytes-in");
        assert!(matches!(none, Reading::Missing { .. }));
        assert_eq!(none.value(), None);
    }

    #[test]
    fn readings_serialize_with_their_status() {
        let json = serde_json::to_string(&Reading::measured(Throughput::from_mb_per_s(5.0)))
            .expect("json");
        assert_eq!(json, r#"{"status":"measured","mb_per_s":5.0}"#);
        let json = serde_json::to_string(&Reading::missing("no series")).expect("json");
        assert_eq!(json, r#"{"status":"missing","reason":"no series"}"#);
    }
}
