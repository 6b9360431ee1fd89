//! The Prometheus adapter: instant queries over Prometheus' HTTP API (plain HTTP, hyper) for
//! each broker's byte counters and CPU, turned into a [`Measurement`] by [`crate::promql`],
//! and range queries for the ingress over time ([`crate::range`]). Performs network I/O.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kpilot_units::Span;

use crate::MetricsSource;
use crate::error::MetricsError;
use crate::measurement::Measurement;
use crate::promql::{self, ApiAnswer, CounterResults, PrometheusSettings, Results, VectorSample};
use crate::range::{self, RangeSeries, RateHistory};

/// Reads a cluster's load from Prometheus.
#[derive(Debug, Clone)]
pub struct PrometheusSource {
    settings: PrometheusSettings,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl PrometheusSource {
    /// A source for these settings (validated here; no request is sent yet).
    pub fn new(settings: PrometheusSettings) -> Result<Self, MetricsError> {
        settings.validate()?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.timeout));
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(PrometheusSource { settings, client })
    }

    /// The settings in use.
    pub fn settings(&self) -> &PrometheusSettings {
        &self.settings
    }

    fn base(&self) -> &str {
        self.settings.url.trim_end_matches('/')
    }

    /// GET `path_and_query` under the base URL: `(status, body)`.
    async fn get(&self, path_and_query: &str, query: &str) -> Result<(u16, String), MetricsError> {
        let url = format!("{}{path_and_query}", self.base());
        let uri: hyper::Uri = url.parse().map_err(|_| MetricsError::InvalidSetting {
            name: "prometheus url",
            value: self.settings.url.clone(),
            expected: "a valid http:// URL such as http://127.0.0.1:9090",
        })?;
        let send = async {
            let response =
                self.client
                    .get(uri)
                    .await
                    .map_err(|e| MetricsError::ConnectPrometheus {
                        url: self.settings.url.clone(),
                        setting: self.settings.names.url,
                        message: error_chain(&e),
                    })?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| MetricsError::ConnectPrometheus {
                    url: self.settings.url.clone(),
                    setting: self.settings.names.url,
                    message: format!("reading the answer failed: {}", error_chain(&e)),
                })?
                .to_bytes();
            Ok((status, String::from_utf8_lossy(&body).into_owned()))
        };
        tokio::time::timeout(self.settings.timeout, send)
            .await
            .map_err(|_| MetricsError::PrometheusTimeout {
                url: self.settings.url.clone(),
                query: query.to_owned(),
                after: self.settings.timeout,
            })?
    }

    /// One instant query evaluated at `at` (seconds since the epoch).
    pub async fn query(&self, promql: &str, at: f64) -> Result<Vec<VectorSample>, MetricsError> {
        let path = format!(
            "/api/v1/query?query={}&time={at:.3}",
            promql::encode(promql)
        );
        let (status, body) = self.get(&path, promql).await?;
        self.answer(promql, status, &body, promql::parse_vector(&body))
    }

    /// One range query from `start` to `end` (seconds since the epoch) every `step`; at most
    /// 11 000 points per series (Prometheus' limit), see [`Self::ingress_history`] for more.
    pub async fn query_range(
        &self,
        promql: &str,
        start: f64,
        end: f64,
        step: Span,
    ) -> Result<Vec<RangeSeries>, MetricsError> {
        let path = format!(
            "/api/v1/query_range?query={}&start={start:.3}&end={end:.3}&step={}",
            promql::encode(promql),
            promql::range(step)
        );
        let (status, body) = self.get(&path, promql).await?;
        self.answer(promql, status, &body, range::parse_matrix(&body))
    }

    /// The cluster's producer ingress over the last `lookback`, one point per `step` (each the
    /// average over the step before it), read in as many range queries as Prometheus' point
    /// limit needs. Steps where brokers are missing are left out and counted, never summed
    /// short; an empty history (no such series) is an empty result, not zeros.
    pub async fn ingress_history(
        &self,
        lookback: Span,
        step: Span,
    ) -> Result<RateHistory, MetricsError> {
        let promql = range::ingress_query(&self.settings, step);
        self.rate_history(&promql, lookback, step).await
    }

    /// The same for the consumer egress (bytes out).
    pub async fn egress_history(
        &self,
        lookback: Span,
        step: Span,
    ) -> Result<RateHistory, MetricsError> {
        let promql = range::egress_query(&self.settings, step);
        self.rate_history(&promql, lookback, step).await
    }

    async fn rate_history(
        &self,
        promql: &str,
        lookback: Span,
        step: Span,
    ) -> Result<RateHistory, MetricsError> {
        let step_secs = step.secs().round().max(1.0);
        let end = (now_secs() / step_secs).floor() * step_secs;
        let start = end - lookback.secs().max(0.0);
        let mut series = Vec::new();
        for (from, to) in range::chunks(start, end, Span::from_secs(step_secs)) {
            series.extend(self.query_range(promql, from, to, step).await?);
        }
        Ok(range::total(&series, self.settings.expected_brokers))
    }

    /// An answer's parse result, or the error naming the query.
    fn answer<T>(
        &self,
        promql: &str,
        status: u16,
        body: &str,
        parsed: Result<T, ApiAnswer>,
    ) -> Result<T, MetricsError> {
        match parsed {
            Ok(v) if status == 200 => Ok(v),
            Ok(_) => Err(self.rejected(promql, status, body)),
            Err(ApiAnswer::Error(message)) => Err(MetricsError::QueryPrometheus {
                url: self.settings.url.clone(),
                query: promql.to_owned(),
                status,
                message,
            }),
            Err(ApiAnswer::Invalid(_)) if status != 200 => Err(self.rejected(promql, status, body)),
            Err(ApiAnswer::Invalid(message)) => Err(MetricsError::ParsePrometheus {
                url: self.settings.url.clone(),
                query: promql.to_owned(),
                message,
            }),
        }
    }

    fn rejected(&self, promql: &str, status: u16, body: &str) -> MetricsError {
        MetricsError::QueryPrometheus {
            url: self.settings.url.clone(),
            query: promql.to_owned(),
            status,
            message: body.chars().take(200).collect(),
        }
    }

    /// Metric names Prometheus knows that contain `part` (case-insensitive), at most 5; empty
    /// when the lookup fails (it only improves an error message).
    pub async fn similar_names(&self, part: &str) -> Vec<String> {
        let matcher = format!("{{__name__=~\"(?i).*{part}.*\"}}");
        let path = format!(
            "/api/v1/label/__name__/values?match[]={}",
            promql::encode(&matcher)
        );
        match self.get(&path, &matcher).await {
            Ok((200, body)) => promql::parse_names(&body)
                .map(|mut names| {
                    names.truncate(5);
                    names
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// Distinctive words of a metric name to look for similar names with, most specific first:
/// its words of four letters or more, last first, without `total` and the common prefixes,
/// e.g. `bytesin`, `brokertopicmetrics` for `kafka_server_brokertopicmetrics_bytesin_total`.
fn name_hints(name: &str) -> Vec<String> {
    name.rsplit(['_', ':'])
        .filter(|w| w.len() >= 4 && !matches!(*w, "total" | "kafka" | "server"))
        .take(3)
        .map(str::to_owned)
        .collect()
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl MetricsSource for PrometheusSource {
    fn describe(&self) -> String {
        format!("prometheus {}", self.settings.url)
    }

    /// Averages over the last `window` (Prometheus keeps the history; this returns at once).
    async fn measure(&self, window: Span) -> Result<Measurement, MetricsError> {
        let at = now_secs();
        let q = promql::queries(&self.settings, window);
        let mut results = Results::default();
        for (counter, rate, age) in &q.counters {
            let ages = self.query(age, at).await?;
            let rates = self.query(rate, at).await?;
            let mut similar = Vec::new();
            if ages.is_empty() {
                for hint in name_hints(counter.metric(&self.settings)) {
                    similar = self.similar_names(&hint).await;
                    if !similar.is_empty() {
                        break;
                    }
                }
            }
            results.counters.insert(
                *counter,
                CounterResults {
                    rates,
                    ages,
                    similar,
                },
            );
        }
        results.topics = self.query(&q.topics, at).await?;
        results.cpu = self.query(&q.cpu, at).await?;
        let m = promql::assemble(&self.settings, window, at, &results);
        for w in &m.warnings {
            tracing::warn!(source = %self.describe(), "{w}");
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::promql::Counter;

    #[test]
    fn hints_are_the_distinctive_words() {
        assert_eq!(
            name_hints("kafka_server_brokertopicmetrics_bytesin_typo_total"),
            ["typo", "bytesin", "brokertopicmetrics"]
        );
        assert_eq!(
            name_hints("process_cpu_seconds_total"),
            ["seconds", "process"]
        );
        assert!(name_hints("up").is_empty());
    }

    #[test]
    fn counters_have_flags() {
        use crate::promql::SettingNames;
        assert!(
            Counter::ALL
                .iter()
                .all(|c| c.setting(&SettingNames::CLI).starts_with("--prom-"))
        );
        assert_eq!(
            Counter::BytesIn.setting(&SettingNames::SPEC),
            "spec.metrics.bytesInMetric"
        );
    }
}
