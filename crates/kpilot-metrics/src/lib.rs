//! `kpilot-metrics`: the live load of a Kafka cluster, for `kpilot recommend` and the
//! operator. The [`MetricsSource`] port and its two adapters:
//!
//! - [`PrometheusSource`]: PromQL over Prometheus' HTTP API; per-broker bytes in and out,
//!   replication in and out, CPU, averaged over a window of the history Prometheus keeps.
//!   Metric names and label selectors are configurable ([`PrometheusSettings`]); the defaults
//!   are the names the Prometheus JMX exporter's example Kafka rules produce.
//! - [`KafkaSource`]: Kafka itself; ingress per topic from log size and log-end offset
//!   deltas, replication from follower logs, egress from consumer groups' committed offsets,
//!   data stored per broker. No metrics system needed, but it watches for the whole window.
//!
//! A rate that cannot be measured (no such series, stale samples, a broker missing, a log
//! that shrank) is a [`Reading::Missing`] or [`Reading::Stale`] with the reason, never zero.
//!
//! Modules: [`measurement`] (the result, pure), [`promql`] (queries and parsing, pure),
//! [`range`] (the ingress over time from range queries, pure),
//! [`deltas`] (Kafka sample arithmetic, pure), [`prometheus`] and [`kafka`] (the adapters,
//! network I/O), [`error`].

pub mod deltas;
pub mod error;
pub mod kafka;
pub mod measurement;
pub mod prometheus;
pub mod promql;
pub mod range;

use std::future::Future;

use kpilot_units::Span;

pub use deltas::KafkaSample;
pub use error::MetricsError;
pub use kafka::KafkaSource;
pub use measurement::{BrokerLoad, Measurement, Reading, TopicLoad};
pub use prometheus::PrometheusSource;
pub use promql::{PrometheusSettings, SettingNames};
pub use range::RateHistory;

/// A source of the cluster's measured load (the port; adapters implement it).
pub trait MetricsSource {
    /// Names the source (kind and address), e.g. `prometheus http://127.0.0.1:9090`.
    fn describe(&self) -> String;

    /// The cluster's load averaged over the last `window` (ending now).
    fn measure(
        &self,
        window: Span,
    ) -> impl Future<Output = Result<Measurement, MetricsError>> + Send;
}
