//! The metrics adapters' error type: one variant per action that can fail, naming the URL,
//! query or cluster involved and what to do. No I/O.

use std::time::Duration;

/// Why measuring the cluster's load failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// A setting of the source is invalid (a metric or label name, a selector, a window).
    #[error("invalid metrics setting {name} = {value:?}: {expected}")]
    InvalidSetting {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },

    /// Connecting to Prometheus or sending the query failed (it is down, or the URL is
    /// wrong).
    #[error(
        "cannot reach Prometheus at {url}: {message}\n\
         Check that Prometheus runs and that {setting} names its HTTP address (e.g. http://127.0.0.1:9090)"
    )]
    ConnectPrometheus {
        /// The base URL.
        url: String,
        /// What the user calls the URL setting (a flag or a spec field).
        setting: &'static str,
        /// What went wrong.
        message: String,
    },

    /// Prometheus did not answer within the timeout.
    #[error("Prometheus at {url} did not answer the query `{query}` within {after:?}")]
    PrometheusTimeout {
        /// The base URL.
        url: String,
        /// The PromQL query.
        query: String,
        /// The timeout.
        after: Duration,
    },

    /// Prometheus answered the query with an error (HTTP status and its message).
    #[error("Prometheus at {url} rejected the query `{query}` (HTTP {status}): {message}")]
    QueryPrometheus {
        /// The base URL.
        url: String,
        /// The PromQL query.
        query: String,
        /// The HTTP status.
        status: u16,
        /// Prometheus' error message, or the start of the body.
        message: String,
    },

    /// Prometheus' answer was not the JSON the query API documents.
    #[error("invalid answer from Prometheus at {url} to `{query}`: {message}")]
    ParsePrometheus {
        /// The base URL.
        url: String,
        /// The PromQL query.
        query: String,
        /// What was wrong.
        message: String,
    },

    /// A Kafka admin call failed.
    #[error("reading {what} from Kafka failed: {source}")]
    Kafka {
        /// What was being read (metadata, offsets, log dirs of broker N...).
        what: String,
        /// The admin client's error.
        #[source]
        source: kpilot_kafka::AdminError,
    },
}
