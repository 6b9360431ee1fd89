//! Validates a `KafkaAutopilot` spec once into typed values ([`ValidSpec`]) so that the rest of
//! the reconcile never reads the raw spec; an invalid spec becomes a `Valid=False` condition
//! with the message of a [`SpecError`]. Pure: no client, no clock.

use kpilot_capacity::{Catalog, CatalogError, Instance, Storage, StorageError, StorageKind};
use kpilot_policy::{Constraints, PolicyError, Settings};
use kpilot_units::{InstanceType, Span, Throughput};
use thiserror::Error;

use kpilot_metrics::{PrometheusSettings, SettingNames};

use crate::crd::{KafkaAutopilotSpec, KafkaSpec, MetricsSpec, Mode};

/// What is wrong with a spec. Every message names the field and the value.
#[derive(Debug, Error)]
pub enum SpecError {
    /// Neither or both targets are set.
    #[error(
        "spec.target must set exactly one of strimzi or statefulSet (found {found}); e.g. target: {{strimzi: {{kafka: my-cluster, nodePool: brokers}}}}"
    )]
    Target {
        /// What was found.
        found: &'static str,
    },
    /// A field is empty.
    #[error("{field} must not be empty")]
    Empty {
        /// The field.
        field: &'static str,
    },
    /// A duration does not parse.
    #[error("{field} = {value:?} is not a duration: {message}; e.g. 30m, 1h, 2h30m")]
    Duration {
        /// The field.
        field: &'static str,
        /// The value.
        value: String,
        /// The parser's message.
        message: String,
    },
    /// A throughput does not parse.
    #[error("{field} = {value:?} is not a throughput: {message}; e.g. 250MB/s")]
    Throughput {
        /// The field.
        field: &'static str,
        /// The value.
        value: String,
        /// The parser's message.
        message: String,
    },
    /// The policy refuses the settings the spec makes.
    #[error("spec.policy: {0}")]
    Policy(#[source] PolicyError),
    /// A number is out of range.
    #[error("{field} = {value} is out of range: {expected}")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value.
        value: f64,
        /// What is allowed.
        expected: &'static str,
    },
    /// An instance type is not in the catalog.
    #[error("{field} = {value:?}: {source}")]
    Instance {
        /// The field.
        field: &'static str,
        /// The value.
        value: String,
        /// The catalog's answer (with suggestions).
        #[source]
        source: CatalogError,
    },
    /// A family or size is not in the catalog.
    #[error("spec.constraints: {0}")]
    Catalog(#[source] CatalogError),
    /// The storage kind is unknown.
    #[error("spec.constraints.storage.kind = {value:?} is not gp3, io2, st1 or local-nvme")]
    StorageKind {
        /// The value.
        value: String,
    },
    /// The storage cannot be built.
    #[error("spec.constraints.storage: {0}")]
    Storage(#[source] StorageError),
    /// Broker counts are inconsistent.
    #[error(
        "spec.constraints: minBrokers {min} > maxBrokers {max}, or no count in between is a multiple of zones {zones}"
    )]
    BrokerCounts {
        /// Fewest.
        min: u32,
        /// Most.
        max: u32,
        /// Zones.
        zones: u32,
    },
    /// A maintenance window is malformed.
    #[error("spec.maintenanceWindows[{index}]: {message}")]
    Window {
        /// Which window.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// The SASL mechanism is unknown.
    #[error("spec.kafka.sasl.mechanism = {value:?}: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")]
    SaslMechanism {
        /// The value.
        value: String,
    },
    /// The Prometheus settings are invalid.
    #[error("spec.metrics: {0}")]
    Metrics(#[source] kpilot_metrics::MetricsError),
    /// The bootstrap list does not parse.
    #[error("spec.kafka.bootstrap = {value:?}: {message}")]
    Bootstrap {
        /// The value.
        value: String,
        /// What is wrong.
        message: String,
    },
}

/// The brokers' Kubernetes objects.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Strimzi: `Kafka` + `KafkaNodePool`.
    Strimzi {
        /// The `Kafka` resource.
        kafka: String,
        /// The brokers' `KafkaNodePool`.
        node_pool: String,
        /// A Karpenter `NodePool`.
        karpenter: Option<String>,
    },
    /// A StatefulSet rolled by the operator.
    StatefulSet {
        /// Its name.
        name: String,
        /// Broker id of ordinal 0.
        first_broker_id: i32,
        /// A Karpenter `NodePool`.
        karpenter: Option<String>,
    },
}

impl Target {
    /// The Karpenter node pool, if any.
    pub fn karpenter(&self) -> Option<&str> {
        match self {
            Target::Strimzi { karpenter, .. } | Target::StatefulSet { karpenter, .. } => {
                karpenter.as_deref()
            }
        }
    }
}

/// A weekly window, UTC.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Days of the week (0 = Monday); empty: every day.
    pub days: Vec<u32>,
    /// Start, minutes after midnight.
    pub start_minute: u32,
    /// Length.
    pub length: Span,
}

/// The Prometheus side of a spec, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct PrometheusSpec {
    /// URL, metric names and selector.
    pub settings: PrometheusSettings,
    /// The averaging window of a measurement, and the step of the history.
    pub window: Span,
    /// How far back the history goes.
    pub history: Span,
}

/// The longest history read from Prometheus: what the policy's demand history keeps.
pub const MAX_HISTORY_DAYS: f64 = 35.0;

fn prometheus(m: &MetricsSpec) -> Result<Option<PrometheusSpec>, SpecError> {
    let Some(url) = &m.prometheus_url else {
        return Ok(None);
    };
    let mut settings = PrometheusSettings::new(url.trim());
    settings.names = SettingNames::SPEC;
    if let Some(selector) = &m.selector {
        settings.selector = selector.clone();
    }
    if let Some(label) = &m.broker_label {
        settings.broker_label = label.clone();
    }
    if let Some(name) = &m.bytes_in_metric {
        settings.bytes_in = name.clone();
    }
    settings.validate().map_err(SpecError::Metrics)?;
    let window = span("spec.metrics.window", &m.window, Span::from_minutes(5.0))?;
    if !(10.0..=3600.0).contains(&window.secs()) {
        return Err(SpecError::OutOfRange {
            field: "spec.metrics.window",
            value: window.secs(),
            expected: "between 10 s and 1 h (in seconds)",
        });
    }
    let history = span(
        "spec.metrics.history",
        &m.history,
        Span::from_hours(28.0 * 24.0),
    )?;
    if !(0.0..=MAX_HISTORY_DAYS * 86_400.0).contains(&history.secs()) {
        return Err(SpecError::OutOfRange {
            field: "spec.metrics.history",
            value: history.secs(),
            expected: "between 0 and 35 days (in seconds)",
        });
    }
    Ok(Some(PrometheusSpec {
        settings,
        window,
        history,
    }))
}

/// A spec checked and turned into typed values.
#[derive(Debug, Clone)]
pub struct ValidSpec {
    /// The target.
    pub target: Target,
    /// The mode.
    pub mode: Mode,
    /// Paused.
    pub paused: bool,
    /// Kafka connection (secrets are resolved later, by I/O).
    pub kafka: KafkaSpec,
    /// Where the load and its history come from in Prometheus, if anywhere.
    pub prometheus: Option<PrometheusSpec>,
    /// The policy's constraints.
    pub constraints: Constraints,
    /// The policy's settings.
    pub settings: Settings,
    /// Storage kind.
    pub storage_kind: StorageKind,
    /// Volume size per broker, GB.
    pub volume_gb: f64,
    /// Provisioned throughput, if set.
    pub storage_throughput: Option<Throughput>,
    /// The instance type when the target does not say.
    pub fallback_instance: Option<InstanceType>,
    /// Consumer fan-out.
    pub fanout: f64,
    /// Maintenance windows.
    pub windows: Vec<Window>,
    /// The restart time set in the spec; `None`: learned from the rolls (see
    /// `crate::restarts`).
    pub restart_time: Option<Span>,
}

fn span(field: &'static str, value: &Option<String>, default: Span) -> Result<Span, SpecError> {
    match value {
        None => Ok(default),
        Some(v) => v.parse::<Span>().map_err(|e| SpecError::Duration {
            field,
            value: v.clone(),
            message: e.to_string(),
        }),
    }
}

fn fraction(field: &'static str, value: Option<f64>, default: f64) -> Result<f64, SpecError> {
    let v = value.unwrap_or(default);
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(SpecError::OutOfRange {
            field,
            value: v,
            expected: "above 0 and at most 1",
        })
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Validates `spec` against `catalog`.
pub fn validate(spec: &KafkaAutopilotSpec, catalog: &Catalog) -> Result<ValidSpec, SpecError> {
    let target = match (&spec.target.strimzi, &spec.target.stateful_set) {
        (Some(s), None) => {
            if s.kafka.is_empty() {
                return Err(SpecError::Empty {
                    field: "spec.target.strimzi.kafka",
                });
            }
            if s.node_pool.is_empty() {
                return Err(SpecError::Empty {
                    field: "spec.target.strimzi.nodePool",
                });
            }
            Target::Strimzi {
                kafka: s.kafka.clone(),
                node_pool: s.node_pool.clone(),
                karpenter: s.karpenter_node_pool.clone(),
            }
        }
        (None, Some(s)) => {
            if s.name.is_empty() {
                return Err(SpecError::Empty {
                    field: "spec.target.statefulSet.name",
                });
            }
            Target::StatefulSet {
                name: s.name.clone(),
                first_broker_id: s.first_broker_id,
                karpenter: s.karpenter_node_pool.clone(),
            }
        }
        (None, None) => return Err(SpecError::Target { found: "neither" }),
        (Some(_), Some(_)) => return Err(SpecError::Target { found: "both" }),
    };
    kpilot_kafka::BrokerAddress::parse_list(&spec.kafka.bootstrap).map_err(|message| {
        SpecError::Bootstrap {
            value: spec.kafka.bootstrap.clone(),
            message,
        }
    })?;
    if let Some(sasl) = &spec.kafka.sasl
        && sasl
            .mechanism
            .parse::<kpilot_kafka::SaslMechanism>()
            .is_err()
    {
        return Err(SpecError::SaslMechanism {
            value: sasl.mechanism.clone(),
        });
    }

    let c = &spec.constraints;
    let fallback_instance = match &c.instance_type {
        None => None,
        Some(name) => {
            let parsed: InstanceType =
                name.parse()
                    .map_err(|e: kpilot_units::ParseError| SpecError::Instance {
                        field: "spec.constraints.instanceType",
                        value: name.clone(),
                        source: CatalogError::UnknownInstance {
                            name: format!("{name} ({e})"),
                            suggestions: Vec::new(),
                        },
                    })?;
            catalog
                .instance(&parsed)
                .map_err(|source| SpecError::Instance {
                    field: "spec.constraints.instanceType",
                    value: name.clone(),
                    source,
                })?;
            Some(parsed)
        }
    };
    for f in &c.families {
        catalog.family(f).map_err(SpecError::Catalog)?;
    }
    for s in &c.sizes {
        catalog.check_size_name(s).map_err(SpecError::Catalog)?;
    }
    if c.max_brokers > kpilot_capacity::MAX_BROKERS {
        return Err(SpecError::OutOfRange {
            field: "spec.constraints.maxBrokers",
            value: f64::from(c.max_brokers),
            expected: "at most 1000, the most brokers kpilot plans a cluster for",
        });
    }
    let zones = c.zones.max(1);
    if c.zones == 0
        || c.min_brokers > c.max_brokers
        || !(c.min_brokers..=c.max_brokers).any(|n| n % zones == 0)
    {
        return Err(SpecError::BrokerCounts {
            min: c.min_brokers,
            max: c.max_brokers,
            zones: c.zones,
        });
    }
    let max_disk_fill = fraction("spec.constraints.maxDiskFill", c.max_disk_fill, 0.8)?;
    let storage_kind: StorageKind = c.storage.kind.parse().map_err(|_| SpecError::StorageKind {
        value: c.storage.kind.clone(),
    })?;
    let volume_gb = match (storage_kind, c.storage.size_gb) {
        (StorageKind::LocalNvme, _) => 0.0,
        (_, Some(gb)) if gb > 0.0 && gb.is_finite() => gb,
        (_, value) => {
            return Err(SpecError::OutOfRange {
                field: "spec.constraints.storage.sizeGb",
                value: value.unwrap_or(0.0),
                expected: "a volume size above 0 GB (required for network-attached storage)",
            });
        }
    };
    let storage_throughput = match &c.storage.throughput {
        None => None,
        Some(v) => Some(v.parse::<Throughput>().map_err(|e| SpecError::Throughput {
            field: "spec.constraints.storage.throughput",
            value: v.clone(),
            message: e.to_string(),
        })?),
    };

    let local_retention = match &c.local_retention {
        None => None,
        Some(_) => Some(span(
            "spec.constraints.localRetention",
            &c.local_retention,
            Span::from_hours(0.0),
        )?),
    };
    let p = &spec.policy;
    let defaults = Settings::default();
    let mut settings = Settings {
        target_utilization: fraction(
            "spec.policy.targetUtilization",
            p.target_utilization,
            defaults.target_utilization,
        )?,
        horizon: span("spec.policy.horizon", &p.horizon, defaults.horizon)?,
        cooldown: span("spec.policy.cooldown", &p.cooldown, defaults.cooldown)?,
        hysteresis: fraction("spec.policy.hysteresis", p.hysteresis, defaults.hysteresis)?,
        decision_interval: span(
            "spec.policy.decisionInterval",
            &p.decision_interval,
            defaults.decision_interval,
        )?,
        max_transition: span(
            "spec.policy.maxTransition",
            &p.max_transition,
            defaults.max_transition,
        )?,
        ..defaults
    };
    if let Some(m) = p.safety_margin {
        if !(0.0..=1.0).contains(&m) {
            return Err(SpecError::OutOfRange {
                field: "spec.policy.safetyMargin",
                value: m,
                expected: "between 0 and 1",
            });
        }
        settings.forecast.safety_margin = m;
    }
    if settings.decision_interval.secs() < 10.0 {
        return Err(SpecError::OutOfRange {
            field: "spec.policy.decisionInterval",
            value: settings.decision_interval.secs(),
            expected: "at least 10 s",
        });
    }
    let restart_time = match &p.restart_time {
        None => None,
        Some(_) => {
            let t = span("spec.policy.restartTime", &p.restart_time, Span::ZERO)?;
            if t.secs() <= 0.0 {
                return Err(SpecError::OutOfRange {
                    field: "spec.policy.restartTime",
                    value: t.secs(),
                    expected: "a duration above 0, e.g. 4m (or leave it out to learn it from the rolls)",
                });
            }
            Some(t)
        }
    };
    check_policy(&settings, restart_time)?;
    let fanout = p.consumer_fanout.unwrap_or(1.0);
    if !(fanout.is_finite() && fanout >= 0.0) {
        return Err(SpecError::OutOfRange {
            field: "spec.policy.consumerFanout",
            value: fanout,
            expected: "0 or more",
        });
    }

    let mut windows = Vec::new();
    for (index, w) in spec.maintenance_windows.iter().enumerate() {
        let bad = |message: String| SpecError::Window { index, message };
        let mut days = Vec::new();
        for d in &w.days {
            let lower = d.to_ascii_lowercase();
            let i = DAYS
                .iter()
                .position(|n| lower.starts_with(n))
                .ok_or_else(|| bad(format!("day {d:?} is not one of Mon..Sun")))?;
            days.push(i as u32);
        }
        let (h, m) = w
            .start
            .split_once(':')
            .and_then(|(h, m)| Some((h.parse::<u32>().ok()?, m.parse::<u32>().ok()?)))
            .filter(|(h, m)| *h < 24 && *m < 60)
            .ok_or_else(|| bad(format!("start {:?} is not HH:MM, e.g. 22:00", w.start)))?;
        let length: Span = w.duration.parse().map_err(|e: kpilot_units::ParseError| {
            bad(format!("duration {:?}: {e}", w.duration))
        })?;
        if length.secs() <= 0.0 || length.hours() > 168.0 {
            return Err(bad(format!(
                "duration {:?} must be above 0 and at most a week",
                w.duration
            )));
        }
        windows.push(Window {
            days,
            start_minute: h * 60 + m,
            length,
        });
    }

    Ok(ValidSpec {
        target,
        mode: spec.mode,
        paused: spec.paused,
        kafka: spec.kafka.clone(),
        prometheus: prometheus(&spec.metrics)?,
        constraints: Constraints {
            families: c.families.clone(),
            sizes: c.sizes.clone(),
            min_brokers: c.min_brokers,
            max_brokers: c.max_brokers,
            zones: c.zones,
            max_disk_fill,
            allow_vertical: c.allow_vertical,
            allow_horizontal: c.allow_horizontal,
            local_retention,
        },
        settings,
        storage_kind,
        volume_gb,
        storage_throughput,
        fallback_instance,
        fanout,
        windows,
        restart_time,
    })
}

/// The policy's own range checks on the settings the spec makes (a `horizon: 3000d` would
/// make every decision scan years of minutes), reported under the spec's field names.
fn check_policy(settings: &Settings, restart_time: Option<Span>) -> Result<(), SpecError> {
    let mut settings = settings.clone();
    if let Some(t) = restart_time {
        settings.transition.restart = t;
    }
    match settings.validate() {
        Ok(()) => Ok(()),
        Err(PolicyError::InvalidSetting {
            name,
            value,
            expected,
        }) => Err(SpecError::OutOfRange {
            field: match name {
                "horizon" => "spec.policy.horizon",
                "cooldown" => "spec.policy.cooldown",
                "decision_interval" => "spec.policy.decisionInterval",
                "max_transition" => "spec.policy.maxTransition",
                "restart" => "spec.policy.restartTime",
                "target_utilization" => "spec.policy.targetUtilization",
                "hysteresis" => "spec.policy.hysteresis",
                other => other,
            },
            value,
            expected,
        }),
        Err(other) => Err(SpecError::Policy(other)),
    }
}

impl ValidSpec {
    /// The per-broker storage on `instance`.
    pub fn storage_for(
        &self,
        catalog: &Catalog,
        instance: &Instance,
    ) -> Result<Storage, StorageError> {
        match self.storage_kind {
            StorageKind::Gp3 => Storage::gp3(
                catalog,
                self.volume_gb,
                self.storage_throughput
                    .unwrap_or(Throughput::from_mib_per_s(catalog.gp3.baseline_mib_per_s)),
            ),
            StorageKind::Io2 => Storage::io2(
                catalog,
                self.volume_gb,
                self.storage_throughput
                    .unwrap_or(Throughput::from_mib_per_s(1000.0)),
            ),
            StorageKind::St1 => Storage::st1(catalog, self.volume_gb),
            StorageKind::LocalNvme => Storage::local_nvme(instance, None),
        }
    }

    /// Whether a change may start at `unix_secs` (inside a window, or no windows).
    pub fn in_window(&self, unix_secs: i64) -> bool {
        if self.windows.is_empty() {
            return true;
        }
        let minute_of_week = |t: i64| -> i64 {
            // 1970-01-01 was a Thursday (day 3 with Monday = 0).
            let days = t.div_euclid(86_400);
            let dow = (days + 3).rem_euclid(7);
            dow * 1440 + t.rem_euclid(86_400) / 60
        };
        let now = minute_of_week(unix_secs);
        self.windows.iter().any(|w| {
            let days: Vec<u32> = if w.days.is_empty() {
                (0..7).collect()
            } else {
                w.days.clone()
            };
            days.iter().any(|d| {
                let start = i64::from(*d) * 1440 + i64::from(w.start_minute);
                let len = (w.length.secs() / 60.0) as i64;
                // The window may wrap past Sunday midnight.
                let since = (now - start).rem_euclid(7 * 1440);
                since < len
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::*;

    fn spec() -> KafkaAutopilotSpec {
        KafkaAutopilotSpec {
            target: TargetSpec {
                strimzi: Some(StrimziTarget {
                    kafka: "my-cluster".into(),
                    node_pool: "brokers".into(),
                    karpenter_node_pool: None,
                }),
                stateful_set: None,
            },
            kafka: KafkaSpec {
                bootstrap: "127.0.0.1:9092".into(),
                tls: None,
                sasl: None,
            },
            metrics: MetricsSpec::default(),
            mode: Mode::Recommend,
            constraints: ConstraintsSpec {
                instance_type: Some("m7g.large".into()),
                families: vec!["m7g".into()],
                sizes: vec![],
                storage: StorageSpec {
                    kind: "gp3".into(),
                    size_gb: Some(1000.0),
                    throughput: None,
                },
                min_brokers: 3,
                max_brokers: 9,
                zones: 3,
                max_disk_fill: None,
                local_retention: None,
                allow_vertical: true,
                allow_horizontal: true,
            },
            policy: PolicySpec::default(),
            maintenance_windows: vec![],
            paused: false,
        }
    }

    #[test]
    fn a_good_spec_validates() {
        let catalog = Catalog::builtin().expect("catalog");
        let v = validate(&spec(), &catalog).expect("valid");
        assert_eq!(v.constraints.max_brokers, 9);
        assert_eq!(v.fallback_instance.expect("type").to_string(), "m7g.large");
    }

    #[test]
    fn errors_name_the_field_and_value() {
        let catalog = Catalog::builtin().expect("catalog");
        let mut s = spec();
        s.constraints.families = vec!["m99z".into()];
        let e = validate(&s, &catalog).expect_err("bad family").to_string();
        assert!(e.contains("m99z"), "{e}");
        let mut s = spec();
        s.policy.cooldown = Some("soon".into());
        let e = validate(&s, &catalog)
            .expect_err("bad duration")
            .to_string();
        assert!(
            e.contains("spec.policy.cooldown") && e.contains("soon"),
            "{e}"
        );
        let mut s = spec();
        s.target.stateful_set = Some(StatefulSetTarget {
            name: "kafka".into(),
            first_broker_id: 0,
            karpenter_node_pool: None,
        });
        let e = validate(&s, &catalog).expect_err("two targets").to_string();
        assert!(e.contains("exactly one"), "{e}");
        // The policy's own bounds, under the spec's field names: a typo'd week is refused,
        // not left to make every decision scan years of minutes.
        for (field, value) in [
            ("spec.policy.horizon", "3000d"),
            ("spec.policy.maxTransition", "8d"),
            ("spec.policy.restartTime", "2d"),
        ] {
            let mut s = spec();
            match field {
                "spec.policy.horizon" => s.policy.horizon = Some(value.into()),
                "spec.policy.maxTransition" => s.policy.max_transition = Some(value.into()),
                _ => s.policy.restart_time = Some(value.into()),
            }
            let e = validate(&s, &catalog).expect_err(field).to_string();
            assert!(
                e.starts_with(&format!("{field} = ")) && e.contains("is out of range"),
                "{e}"
            );
        }
        let mut s = spec();
        s.policy.horizon = Some("7d".into());
        validate(&s, &catalog).expect("a week's horizon is allowed");
        let mut s = spec();
        s.constraints.max_brokers = 100_000;
        let e = validate(&s, &catalog).expect_err("too many").to_string();
        assert!(
            e.starts_with("spec.constraints.maxBrokers = 100000 is out of range: at most 1000"),
            "{e}"
        );
    }

    #[test]
    fn the_restart_time_is_learned_unless_the_spec_sets_one_above_zero() {
        let catalog = Catalog::builtin().expect("catalog");
        assert_eq!(
            validate(&spec(), &catalog).expect("valid").restart_time,
            None
        );
        let mut s = spec();
        s.policy.restart_time = Some("4m".into());
        let v = validate(&s, &catalog).expect("valid");
        assert_eq!(v.restart_time, Some(Span::from_minutes(4.0)));
        for bad in ["0s", "later"] {
            s.policy.restart_time = Some(bad.into());
            let e = validate(&s, &catalog).expect_err(bad).to_string();
            assert!(
                e.contains("spec.policy.restartTime") && e.contains(&bad[..1]),
                "{e}"
            );
        }
    }

    #[test]
    fn prometheus_settings_are_checked_with_field_and_value() {
        let catalog = Catalog::builtin().expect("catalog");
        let mut s = spec();
        assert!(validate(&s, &catalog).expect("valid").prometheus.is_none());
        s.metrics.prometheus_url = Some("http://prometheus.monitoring:9090".into());
        s.metrics.selector = Some("namespace=\"kafka\"".into());
        let p = validate(&s, &catalog)
            .expect("valid")
            .prometheus
            .expect("prometheus");
        assert_eq!(p.settings.selector, "namespace=\"kafka\"");
        assert_eq!(p.window.secs(), 300.0);
        assert_eq!(p.history.secs(), 28.0 * 86_400.0);
        for (change, needle) in [
            (
                (|m: &mut MetricsSpec| m.selector = Some("{job=\"kafka\"}".into()))
                    as fn(&mut MetricsSpec),
                "without braces",
            ),
            (
                |m: &mut MetricsSpec| m.prometheus_url = Some("https://p:9090".into()),
                "https://p:9090",
            ),
            (
                |m: &mut MetricsSpec| m.window = Some("1s".into()),
                "spec.metrics.window",
            ),
            (
                |m: &mut MetricsSpec| m.history = Some("90d".into()),
                "spec.metrics.history",
            ),
            (
                |m: &mut MetricsSpec| m.bytes_in_metric = Some("bytes-in".into()),
                "bytes-in",
            ),
        ] {
            let mut bad = s.clone();
            change(&mut bad.metrics);
            let e = validate(&bad, &catalog).expect_err(needle).to_string();
            assert!(e.contains(needle) && e.starts_with("spec.metrics"), "{e}");
        }
    }

    #[test]
    fn maintenance_windows_wrap_the_week() {
        let catalog = Catalog::builtin().expect("catalog");
        let mut s = spec();
        s.maintenance_windows = vec![MaintenanceWindow {
            days: vec!["Sun".into()],
            start: "22:00".into(),
            duration: "4h".into(),
        }];
        let v = validate(&s, &catalog).expect("valid");
        // 2024-01-07 was a Sunday; 23:00 UTC is inside, Monday 01:30 too, Monday 03:00 not.
        let sunday = 1_704_585_600; // 2024-01-07T00:00:00Z
        assert!(v.in_window(sunday + 23 * 3600));
        assert!(v.in_window(sunday + 86_400 + 90 * 60));
        assert!(!v.in_window(sunday + 86_400 + 3 * 3600));
        assert!(!v.in_window(sunday + 12 * 3600));
    }
}
