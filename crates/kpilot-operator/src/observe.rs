//! The observation port: what the reconcile needs to know about a Kafka cluster
//! ([`KafkaFacts`]: data stored, replication, health, the ingress rate) and the demand history
//! a forecast can start from, behind the [`Observer`] trait, with the live adapter
//! [`KafkaObserver`] (Kafka admin protocol; ingress from Prometheus when the spec names one,
//! else from the growth of the partitions' log sizes between two observations; history from
//! Prometheus range queries) and an in-memory one ([`FixedObserver`]) for tests. The live
//! adapter performs network I/O.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::future::LocalBoxFuture;
use kpilot_cluster::{Finding, Issue};
use kpilot_kafka::config::{CaSource, SaslCredentials, TlsSettings};
use kpilot_kafka::{
    AdminClient, BrokerAddress, ClientConfig, Secret, SecurityProtocol, SnapshotGap,
};
use kpilot_metrics::{
    KafkaSample, KafkaSource, Measurement, MetricsSource, PrometheusSource, RateHistory,
};
use kpilot_units::{ByteSize, Throughput};
use thiserror::Error;

use crate::preflight::Write;
use crate::validate::PrometheusSpec;

/// Observing a cluster failed.
#[derive(Debug, Error)]
pub enum ObserveError {
    /// Connecting to Kafka failed.
    #[error("connecting to Kafka at {bootstrap} failed: {message}")]
    Connect {
        /// The bootstrap list.
        bootstrap: String,
        /// The client's message.
        message: String,
    },
    /// The preferred leader election failed.
    #[error("electing preferred leaders in the Kafka cluster at {bootstrap} failed: {message}")]
    Elect {
        /// The bootstrap list.
        bootstrap: String,
        /// The client's message.
        message: String,
    },
    /// Reading the load or its history from Prometheus failed.
    #[error("reading the load from Prometheus at {url} failed: {message}")]
    Prometheus {
        /// The Prometheus URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// Reading the cluster state failed.
    #[error("reading the state of the Kafka cluster at {bootstrap} failed: {message}")]
    Snapshot {
        /// The bootstrap list.
        bootstrap: String,
        /// The client's message.
        message: String,
    },
    /// The cluster state was read, but without parts a decision needs: partition sizes (the
    /// ingress from log growth, the data to fit), `min.insync.replicas`, or topics Metadata
    /// left out. A decision on such a view could shrink a cluster whose load it cannot see.
    #[error(
        "the Kafka cluster at {bootstrap} is only partly visible, so no decision is made: {missing}"
    )]
    Incomplete {
        /// The bootstrap list.
        bootstrap: String,
        /// What is missing and why, naming the ACL where one is missing.
        missing: String,
    },
}

/// What the reconcile knows about the Kafka cluster after one observation.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaFacts {
    /// Data stored, all replicas.
    pub stored: ByteSize,
    /// Largest replication factor over the topics (1 when there are none).
    pub replication_factor: u16,
    /// Largest `min.insync.replicas` over the topics (1 when unknown).
    pub min_insync_replicas: u16,
    /// Partitions whose ISR is smaller than their replicas.
    pub under_replicated: usize,
    /// Partitions without a leader.
    pub offline: usize,
    /// The produce ingress, when measured.
    pub ingress: Option<Throughput>,
    /// Where the ingress came from.
    pub source: &'static str,
    /// Why the ingress is absent, when the source says (e.g. a missing Prometheus series).
    pub ingress_problem: Option<String>,
    /// The consumer egress, when measured: Prometheus' bytes-out counters, or (Kafka only)
    /// the consumer groups' committed offsets since the previous observation.
    pub egress: Option<Throughput>,
    /// Where replication throttles are set while no reassignment runs, e.g. `broker 2, topic
    /// orders` (left behind by an interrupted reassignment tool).
    pub throttles_left: Option<String>,
}

/// The demand over time the forecast can start from: the cluster's ingress, and its consumer
/// egress when the source has it (the fan-out is measured from the two).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoadHistory {
    /// Producer ingress.
    pub ingress: RateHistory,
    /// Consumer egress (empty when not measured).
    pub egress: RateHistory,
}

impl KafkaFacts {
    /// Whether no partition is under-replicated or offline.
    pub fn healthy(&self) -> bool {
        self.under_replicated == 0 && self.offline == 0
    }
}

/// How to reach the cluster: Kafka connection settings with the Secrets already read, and
/// the Prometheus holding its metrics, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    /// The client configuration (`Debug` redacts the password).
    pub config: ClientConfig,
    /// Where the brokers' metrics are, if anywhere.
    pub prometheus: Option<PrometheusSpec>,
}

impl Connection {
    /// A connection to `bootstrap` with optional TLS (CA PEM) and SASL credentials.
    pub fn new(
        bootstrap: &str,
        tls: Option<(Option<String>, bool)>,
        sasl: Option<(kpilot_kafka::SaslMechanism, String, Secret)>,
    ) -> Result<Connection, String> {
        let mut config = ClientConfig::new(BrokerAddress::parse_list(bootstrap)?);
        config.client_id = "kpilot-operator".to_owned();
        config.api_timeout = Duration::from_secs(30);
        config.request_timeout = Duration::from_secs(15);
        config.connect_timeout = Duration::from_secs(5);
        config.security_protocol = match (&tls, &sasl) {
            (None, None) => SecurityProtocol::Plaintext,
            (Some(_), None) => SecurityProtocol::Ssl,
            (None, Some(_)) => SecurityProtocol::SaslPlaintext,
            (Some(_), Some(_)) => SecurityProtocol::SaslSsl,
        };
        if let Some((ca, verify_hostname)) = tls {
            config.tls = TlsSettings {
                ca: ca.map_or(CaSource::System, CaSource::PemText),
                verify_hostname,
                client_certificate: None,
            };
        }
        if let Some((mechanism, username, password)) = sasl {
            config.sasl = Some(SaslCredentials {
                mechanism,
                username,
                password,
            });
        }
        Ok(Connection {
            config,
            prometheus: None,
        })
    }

    /// The same connection, reading the load from Prometheus.
    pub fn with_prometheus(mut self, prometheus: Option<PrometheusSpec>) -> Self {
        self.prometheus = prometheus;
        self
    }

    /// The bootstrap list as text.
    pub fn bootstrap(&self) -> String {
        self.config
            .bootstrap
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Connects an admin client.
    pub async fn connect(&self) -> Result<AdminClient, ObserveError> {
        AdminClient::connect(self.config.clone())
            .await
            .map_err(|e| ObserveError::Connect {
                bootstrap: self.bootstrap(),
                message: e.to_string(),
            })
    }
}

/// Observes a Kafka cluster. `key` identifies the autopilot (rates need the previous
/// observation of the same cluster).
pub trait Observer {
    /// One observation.
    fn observe<'a>(
        &'a self,
        key: &'a str,
        connection: &'a Connection,
    ) -> LocalBoxFuture<'a, Result<KafkaFacts, ObserveError>>;

    /// Elects the preferred leader of every partition; returns how many moved.
    fn elect_preferred<'a>(
        &'a self,
        key: &'a str,
        connection: &'a Connection,
    ) -> LocalBoxFuture<'a, Result<usize, ObserveError>>;

    /// Probes the Kafka writes an operation will make before it starts, changing nothing
    /// (see [`crate::preflight`]); `Err` names the first refused write and the missing ACL.
    fn may_write<'a>(
        &'a self,
        connection: &'a Connection,
        writes: &'static [Write],
    ) -> LocalBoxFuture<'a, Result<(), String>>;

    /// The ingress over time the forecast can start from, when the source keeps one
    /// (Prometheus); `None` when it does not (Kafka only: the reconcile keeps its own samples
    /// in status).
    fn history<'a>(
        &'a self,
        _key: &'a str,
        _connection: &'a Connection,
    ) -> LocalBoxFuture<'a, Result<Option<LoadHistory>, ObserveError>> {
        Box::pin(async { Ok(None) })
    }
}

fn prometheus_source(p: &PrometheusSpec) -> Result<PrometheusSource, ObserveError> {
    PrometheusSource::new(p.settings.clone()).map_err(|e| ObserveError::Prometheus {
        url: p.settings.url.clone(),
        message: e.to_string(),
    })
}

/// The live adapter: a Kafka cluster snapshot per observation; the ingress from Prometheus
/// (averaged over the spec's window) when the connection names one, otherwise from
/// `kpilot-metrics`' Kafka source between this observation and the previous one of the same
/// autopilot: the growth of each partition's log (records appended times the average record
/// size where retention removed data meanwhile), and the egress from the consumer groups'
/// committed offsets over the same interval.
#[derive(Debug)]
pub struct KafkaObserver {
    samples: RefCell<HashMap<String, KafkaSample>>,
    epoch: Instant,
    /// One Prometheus client per autopilot, shared by its measurement and its history, and
    /// kept while its settings stay the same.
    prometheus: RefCell<HashMap<String, PrometheusSource>>,
}

impl Default for KafkaObserver {
    fn default() -> Self {
        Self {
            samples: RefCell::default(),
            epoch: Instant::now(),
            prometheus: RefCell::default(),
        }
    }
}

impl KafkaObserver {
    /// A new observer with no previous observations.
    pub fn new() -> Self {
        Self::default()
    }

    /// The Prometheus client of `key` for `p`: the kept one while the settings are the same.
    fn prometheus(&self, key: &str, p: &PrometheusSpec) -> Result<PrometheusSource, ObserveError> {
        let mut sources = self.prometheus.borrow_mut();
        if let Some(s) = sources.get(key).filter(|s| s.settings() == &p.settings) {
            return Ok(s.clone());
        }
        let source = prometheus_source(p)?;
        sources.insert(key.to_owned(), source.clone());
        Ok(source)
    }

    /// The load since the previous Kafka sample of `key` (see [`KafkaObserver`]); `None` on
    /// the first sample, or when sampling failed (logged: the observation goes on, without
    /// rates).
    async fn kafka_load(&self, key: &str, admin: &AdminClient) -> Option<Measurement> {
        let mut sample = match KafkaSource::new(admin.clone()).sample().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "could not sample the partitions and groups for the load");
                return None;
            }
        };
        // One clock for every sample of this observer (each source counts from its creation).
        sample.at_secs = self.epoch.elapsed().as_secs_f64();
        let previous = self
            .samples
            .borrow_mut()
            .insert(key.to_owned(), sample.clone())?;
        Some(kpilot_metrics::deltas::measure_between(
            &previous,
            &sample,
            "kafka".to_owned(),
            0.0,
        ))
    }
}

impl Observer for KafkaObserver {
    fn observe<'a>(
        &'a self,
        key: &'a str,
        connection: &'a Connection,
    ) -> LocalBoxFuture<'a, Result<KafkaFacts, ObserveError>> {
        Box::pin(async move {
            let admin = connection.connect().await?;
            let snapshot = match admin.snapshot().await {
                Ok(snapshot) => snapshot,
                Err(e) => {
                    admin.close();
                    return Err(ObserveError::Snapshot {
                        bootstrap: connection.bootstrap(),
                        message: e.to_string(),
                    });
                }
            };
            let health = snapshot.analyze();
            if let Some(missing) = blind_spots(&snapshot.gaps, &health.findings) {
                admin.close();
                // The next rate must not span a view with parts missing. The consumer groups
                // are not sampled for such a view either.
                self.samples.borrow_mut().remove(key);
                return Err(ObserveError::Incomplete {
                    bootstrap: connection.bootstrap(),
                    missing,
                });
            }
            let kafka_load = match &connection.prometheus {
                None => self.kafka_load(key, &admin).await,
                Some(_) => None,
            };
            admin.close();
            let from_prometheus = match &connection.prometheus {
                None => None,
                Some(p) => {
                    let m = self
                        .prometheus(key, p)?
                        .measure(p.window)
                        .await
                        .map_err(|e| ObserveError::Prometheus {
                            url: p.settings.url.clone(),
                            message: e.to_string(),
                        })?;
                    Some((
                        m.ingress.value(),
                        m.ingress.problem().map(str::to_owned),
                        m.egress.value(),
                    ))
                }
            };
            let (ingress, ingress_problem, egress, source) = match from_prometheus {
                Some((ingress, problem, egress)) => (ingress, problem, egress, "prometheus"),
                None => match &kafka_load {
                    Some(m) => (
                        m.ingress.value(),
                        m.ingress.problem().map(str::to_owned),
                        m.egress.value(),
                        "kafka",
                    ),
                    None => (None, None, None, "kafka"),
                },
            };
            let replication_factor = health
                .partitions
                .iter()
                .map(|p| p.replicas.len())
                .max()
                .unwrap_or(1)
                .clamp(1, usize::from(u16::MAX)) as u16;
            let min_insync_replicas = health
                .partitions
                .iter()
                .filter_map(|p| p.min_insync_replicas)
                .max()
                .unwrap_or(1)
                .clamp(1, replication_factor);
            Ok(KafkaFacts {
                stored: ByteSize::from_bytes(health.totals.bytes_on_disk as f64),
                replication_factor,
                min_insync_replicas,
                under_replicated: health.counts.under_replicated,
                offline: health.counts.offline,
                ingress,
                source,
                ingress_problem,
                egress,
                throttles_left: throttles_left(&health),
            })
        })
    }

    fn history<'a>(
        &'a self,
        key: &'a str,
        connection: &'a Connection,
    ) -> LocalBoxFuture<'a, Result<Option<LoadHistory>, ObserveError>> {
        Box::pin(async move {
            let Some(p) = &connection.prometheus else {
                return Ok(None);
            };
            if p.history.secs() <= 0.0 {
                return Ok(None);
            }
            let source = self.prometheus(key, p)?;
            let failed = |e: kpilot_metrics::MetricsError| ObserveError::Prometheus {
                url: p.settings.url.clone(),
                message: e.to_string(),
            };
            let ingress = source
                .ingress_history(p.history, p.window)
                .await
                .map_err(failed)?;
            let egress = source
                .egress_history(p.history, p.window)
                .await
                .map_err(failed)?;
            Ok(Some(LoadHistory { ingress, egress }))
        })
    }

    fn may_write<'a>(
        &'a self,
        connection: &'a Connection,
        writes: &'static [Write],
    ) -> LocalBoxFuture<'a, Result<(), String>> {
        Box::pin(crate::preflight::may_apply(connection, writes))
    }

    fn elect_preferred<'a>(
        &'a self,
        _key: &'a str,
        connection: &'a Connection,
    ) -> LocalBoxFuture<'a, Result<usize, ObserveError>> {
        Box::pin(async move {
            let admin = connection.connect().await?;
            let outcomes = admin.elect_preferred_leaders(None).await;
            admin.close();
            let outcomes = outcomes.map_err(|e| ObserveError::Elect {
                bootstrap: connection.bootstrap(),
                message: e.to_string(),
            })?;
            Ok(outcomes
                .iter()
                .filter(|(_, o)| matches!(o, kpilot_kafka::ElectionOutcome::Elected))
                .count())
        })
    }
}

/// What a snapshot lacks that a decision needs, as one line, or `None` when it lacks
/// nothing of that: the log dirs of any broker (partition sizes), `min.insync.replicas` of
/// any topic, and topics the brokers store but Metadata left out. Throttle rates, the quorum
/// and the reassignments in progress do not feed a decision. Pure.
pub fn blind_spots(gaps: &[SnapshotGap], findings: &[Finding]) -> Option<String> {
    let log_dirs: Vec<&SnapshotGap> = gaps
        .iter()
        .filter(|g| g.what.starts_with("log dirs"))
        .collect();
    let mut missing = Vec::new();
    match log_dirs.as_slice() {
        [] => {}
        [one] => missing.push(format!("{}: {}", one.what, one.error)),
        [first, ..] => missing.push(format!(
            "log dirs of {} brokers ({}), e.g. {}: {}",
            log_dirs.len(),
            log_dirs
                .iter()
                .map(|g| g.what.trim_start_matches("log dirs of "))
                .collect::<Vec<_>>()
                .join(", "),
            first.what,
            first.error
        )),
    }
    missing.extend(
        findings
            .iter()
            .filter(|f| {
                matches!(
                    f.issue,
                    Issue::MinIsrUnknown { .. } | Issue::TopicsNotVisible { .. }
                )
            })
            .map(|f| f.message.clone()),
    );
    (!missing.is_empty()).then(|| missing.join("; "))
}

/// An in-memory observer for tests: returns the facts it holds (changeable at any time);
/// elections are counted, and permission probes pass unless [`FixedObserver::probing_kafka`].
#[derive(Debug, Clone)]
pub struct FixedObserver {
    facts: Rc<RefCell<KafkaFacts>>,
    elections: Rc<RefCell<usize>>,
    probe_kafka: bool,
}

impl FixedObserver {
    /// An observer returning `facts`.
    pub fn new(facts: KafkaFacts) -> Self {
        FixedObserver {
            facts: Rc::new(RefCell::new(facts)),
            elections: Rc::new(RefCell::new(0)),
            probe_kafka: false,
        }
    }

    /// The same, but the permission probe goes to the real Kafka of the connection (the
    /// facts stay injected): a test of the probe against a real authorizer.
    pub fn probing_kafka(mut self) -> Self {
        self.probe_kafka = true;
        self
    }

    /// Replaces the facts.
    pub fn set(&self, facts: KafkaFacts) {
        *self.facts.borrow_mut() = facts;
    }

    /// How many preferred elections were asked for.
    pub fn elections(&self) -> usize {
        *self.elections.borrow()
    }
}

impl Observer for FixedObserver {
    fn observe<'a>(
        &'a self,
        _key: &'a str,
        _connection: &'a Connection,
    ) -> LocalBoxFuture<'a, Result<KafkaFacts, ObserveError>> {
        let facts = self.facts.borrow().clone();
        Box::pin(async move { Ok(facts) })
    }

    fn elect_preferred<'a>(
        &'a self,
        _key: &'a str,
        _connection: &'a Connection,
    ) -> LocalBoxFuture<'a, Result<usize, ObserveError>> {
        *self.elections.borrow_mut() += 1;
        Box::pin(async move { Ok(0) })
    }

    fn may_write<'a>(
        &'a self,
        connection: &'a Connection,
        writes: &'static [Write],
    ) -> LocalBoxFuture<'a, Result<(), String>> {
        if self.probe_kafka {
            Box::pin(crate::preflight::may_apply(connection, writes))
        } else {
            Box::pin(async { Ok(()) })
        }
    }
}

/// Where the health analysis found replication throttles with no reassignment running.
fn throttles_left(health: &kpilot_cluster::HealthSnapshot) -> Option<String> {
    health.findings.iter().find_map(|f| match &f.issue {
        kpilot_cluster::Issue::ThrottlesWithoutReassignment { examples, count } => {
            Some(kpilot_cluster::sample_list(examples, *count))
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpilot_cluster::{Severity, TopicName};

    fn gap(what: &str) -> SnapshotGap {
        SnapshotGap {
            what: what.to_owned(),
            error: "CLUSTER_AUTHORIZATION_FAILED; this principal needs the Describe ACL".to_owned(),
        }
    }

    fn finding(issue: Issue) -> Finding {
        Finding {
            severity: Severity::Warning,
            message: issue.to_string(),
            issue,
        }
    }

    #[test]
    fn a_view_without_sizes_min_isr_or_some_topics_is_no_ground_for_a_decision() {
        let orders = TopicName::new("orders").expect("topic");
        // Parts a decision does not use are no blind spot.
        let harmless = [
            gap("throttle rates of broker 1"),
            gap("metadata quorum"),
            gap("partition reassignments"),
        ];
        let not_preferred = finding(Issue::LeadersNotPreferred {
            examples: vec![],
            count: 1,
        });
        assert_eq!(
            blind_spots(&harmless, std::slice::from_ref(&not_preferred)),
            None
        );

        let two = blind_spots(
            &[gap("log dirs of broker 1"), gap("log dirs of broker 3")],
            &[],
        )
        .expect("blind spots");
        assert!(
            two.starts_with("log dirs of 2 brokers (broker 1, broker 3), e.g. log dirs of broker 1: CLUSTER_AUTHORIZATION_FAILED"),
            "{two}"
        );
        assert_eq!(
            two.matches("CLUSTER_AUTHORIZATION_FAILED").count(),
            1,
            "{two}"
        );
        let missing = blind_spots(
            &[
                gap("throttle rates of broker 1"),
                gap("log dirs of broker 2"),
            ],
            &[
                not_preferred,
                finding(Issue::MinIsrUnknown {
                    topics: vec![orders.clone()],
                }),
                finding(Issue::TopicsNotVisible {
                    examples: vec![orders],
                    count: 1,
                }),
            ],
        )
        .expect("blind spots");
        assert!(
            missing.starts_with("log dirs of broker 2: CLUSTER_AUTHORIZATION_FAILED"),
            "{missing}"
        );
        assert!(missing.contains("min.insync.replicas could not be read for topic(s): orders"));
        assert!(missing.contains("grant this principal DESCRIBE on every topic"));
        assert!(!missing.contains("throttle rates"), "{missing}");
    }
}
