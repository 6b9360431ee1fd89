//! The releaser's configuration: grace period, scope (which PVCs may ever be released), how a
//! broker id is read from a PVC, retries, dry-run and the well-known label and annotation keys.
//! Pure: no I/O.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;

/// PVC (or StatefulSet) annotation that opts a volume in (`"true"`) or out (`"false"`).
/// An explicit `"false"` on the PVC wins over every other opt-in.
pub const OPT_IN_ANNOTATION: &str = "kpilot.io/release-on-node-loss";

/// Label (or annotation) on a PVC or pod listing the Kafka process roles of the broker that
/// uses it, comma separated: `broker`, `controller` or `broker,controller`.
pub const KAFKA_ROLES_LABEL: &str = "kpilot.io/kafka-roles";

/// Strimzi's label marking a node-pool pod (and its PVCs) as a KRaft controller.
pub const STRIMZI_CONTROLLER_ROLE_LABEL: &str = "strimzi.io/controller-role";

/// Strimzi's label marking a node-pool pod (and its PVCs) as a broker.
pub const STRIMZI_BROKER_ROLE_LABEL: &str = "strimzi.io/broker-role";

/// Strimzi's label naming the Kafka cluster an object belongs to.
pub const STRIMZI_CLUSTER_LABEL: &str = "strimzi.io/cluster";

/// The annotation the scheduler sets on a `WaitForFirstConsumer` PVC: the node it chose.
pub const SELECTED_NODE_ANNOTATION: &str = "volume.kubernetes.io/selected-node";

/// The well-known node label holding the node's hostname (what local PVs pin to).
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// The default name the releaser reports Events and field managers under.
pub const DEFAULT_REPORTER: &str = "kpilot-pvc-releaser";

/// Everything the releaser needs to run. Build one with [`ReleaserConfig::new`] and the `with_`
/// helpers, or fill the fields; [`ReleaserConfig::validate`] checks it before [`crate::run`]
/// starts.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaserConfig {
    /// How long a node must have been gone before its volumes are released. The node is then
    /// looked up again, by name and by hostname label, straight from the API server.
    pub grace_period: Duration,
    /// How often every PV, PVC and node is listed again (the node watch is not trusted alone).
    pub resync_interval: Duration,
    /// Which PVCs may be released at all.
    pub scope: Scope,
    /// Send every delete with `dryRun=All`: the API server validates it, nothing changes, and
    /// Events say what would have happened.
    pub dry_run: bool,
    /// How a broker id is read from a PVC.
    pub broker_id: BrokerIdRule,
    /// Owner kinds (controller owner reference) whose Pending pods are deleted after their PVC
    /// was released, so that the owner recreates them with a fresh PVC.
    pub workload_kinds: BTreeSet<String>,
    /// Retries of each API call.
    pub retry: RetryPolicy,
    /// How long to wait before asking the safety gate again after it said "wait", and the
    /// longest wait before retrying a node whose release failed.
    pub gate_retry_interval: Duration,
    /// An object (e.g. the autopilot resource) that receives a copy of every Event.
    pub event_target: Option<ObjectReference>,
    /// The controller name in Events.
    pub reporter: String,
    /// The instance (pod) name in Events, if known.
    pub reporter_instance: Option<String>,
}

/// Which PVCs the releaser may ever touch.
///
/// A PVC is in scope when its namespace is allowed and it opts in: the PVC (or the StatefulSet
/// whose claim template made it) has [`OPT_IN_ANNOTATION`]`: "true"`, or its storage class is
/// in [`Scope::storage_classes`]. A PVC annotated `"false"` is never in scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Storage classes whose PVCs are released without a per-PVC annotation.
    pub storage_classes: BTreeSet<String>,
    /// Namespaces to act in; `None` means every namespace.
    pub namespaces: Option<BTreeSet<String>>,
}

/// How a PVC's broker id is found (the safety gate reasons per broker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerIdRule {
    /// The number at the end of the PVC name (`data-kafka-3` -> 3, Strimzi's
    /// `data-0-my-cluster-brokers-3` -> 3) plus `offset`.
    Ordinal {
        /// Added to the ordinal (for a StatefulSet whose broker ids do not start at 0).
        offset: i32,
    },
    /// An integer label on the PVC, else on the pod using it; falls back to the ordinal rule
    /// with `fallback_offset` when given.
    Label {
        /// The label key.
        key: String,
        /// Ordinal fallback offset, or `None` to require the label.
        fallback_offset: Option<i32>,
    },
}

/// Exponential backoff for one API call: `initial`, doubling up to `max`, at most `attempts`
/// tries in all. Only transient failures (5xx, 429, conflicts other than a failed UID
/// precondition, transport errors) are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
    /// Tries in all, at least 1.
    pub attempts: u32,
}

impl RetryPolicy {
    /// The delay before try number `attempt + 1` (attempt counts from 0).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
            attempts: 6,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The grace period is shorter than the minimum.
    #[error(
        "grace period {given:?} is shorter than {minimum:?}; use at least {minimum:?} (60 s or more in production)"
    )]
    GracePeriodTooShort {
        /// The value given.
        given: Duration,
        /// The minimum accepted.
        minimum: Duration,
    },
    /// The resync interval is zero.
    #[error("resync interval must be positive, got {given:?}")]
    ResyncIntervalZero {
        /// The value given.
        given: Duration,
    },
    /// The retry policy allows no attempt.
    #[error("retry attempts must be at least 1, got {given}")]
    RetryAttemptsZero {
        /// The value given.
        given: u32,
    },
    /// The gate retry interval is zero.
    #[error("gate retry interval must be positive, got {given:?}")]
    GateRetryIntervalZero {
        /// The value given.
        given: Duration,
    },
    /// The label key of [`BrokerIdRule::Label`] is empty.
    #[error("the broker id label key is empty; name a label such as `kpilot.io/broker-id`")]
    BrokerIdLabelEmpty,
}

/// The shortest grace period accepted (tests use 1 s; production should use a minute or more).
pub const MIN_GRACE_PERIOD: Duration = Duration::from_secs(1);

impl ReleaserConfig {
    /// A configuration with the defaults: a 120 s grace period, resync every 60 s, no storage
    /// class opted in (annotation opt-in only), every namespace, broker id from the PVC
    /// ordinal, StatefulSet and StrimziPodSet pods unstuck, real deletes.
    pub fn new() -> Self {
        ReleaserConfig {
            grace_period: Duration::from_secs(120),
            resync_interval: Duration::from_secs(60),
            scope: Scope::default(),
            dry_run: false,
            broker_id: BrokerIdRule::Ordinal { offset: 0 },
            workload_kinds: ["StatefulSet", "StrimziPodSet"]
                .into_iter()
                .map(String::from)
                .collect(),
            retry: RetryPolicy::default(),
            gate_retry_interval: Duration::from_secs(10),
            event_target: None,
            reporter: DEFAULT_REPORTER.to_string(),
            reporter_instance: None,
        }
    }

    /// Sets the grace period.
    pub fn with_grace_period(mut self, grace: Duration) -> Self {
        self.grace_period = grace;
        self
    }

    /// Sets the resync interval.
    pub fn with_resync_interval(mut self, interval: Duration) -> Self {
        self.resync_interval = interval;
        self
    }

    /// Adds a storage class to the allow-list.
    pub fn with_storage_class(mut self, class: impl Into<String>) -> Self {
        self.scope.storage_classes.insert(class.into());
        self
    }

    /// Restricts the releaser to these namespaces.
    pub fn with_namespaces<I, S>(mut self, namespaces: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scope.namespaces = Some(namespaces.into_iter().map(Into::into).collect());
        self
    }

    /// Turns dry-run on or off.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Checks the values; [`crate::run`] calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.grace_period < MIN_GRACE_PERIOD {
            return Err(ConfigError::GracePeriodTooShort {
                given: self.grace_period,
                minimum: MIN_GRACE_PERIOD,
            });
        }
        if self.resync_interval.is_zero() {
            return Err(ConfigError::ResyncIntervalZero {
                given: self.resync_interval,
            });
        }
        if self.retry.attempts == 0 {
            return Err(ConfigError::RetryAttemptsZero {
                given: self.retry.attempts,
            });
        }
        if self.gate_retry_interval.is_zero() {
            return Err(ConfigError::GateRetryIntervalZero {
                given: self.gate_retry_interval,
            });
        }
        if let BrokerIdRule::Label { key, .. } = &self.broker_id
            && key.is_empty()
        {
            return Err(ConfigError::BrokerIdLabelEmpty);
        }
        Ok(())
    }

    /// Whether `namespace` is one the releaser may act in.
    pub fn namespace_allowed(&self, namespace: &str) -> bool {
        self.scope
            .namespaces
            .as_ref()
            .is_none_or(|allowed| allowed.contains(namespace))
    }
}

impl Default for ReleaserConfig {
    fn default() -> Self {
        ReleaserConfig::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_short_grace_is_refused() {
        assert_eq!(ReleaserConfig::new().validate(), Ok(()));
        let short = ReleaserConfig::new().with_grace_period(Duration::from_millis(200));
        assert!(matches!(
            short.validate(),
            Err(ConfigError::GracePeriodTooShort { .. })
        ));
        let mut no_retry = ReleaserConfig::new();
        no_retry.retry.attempts = 0;
        assert_eq!(
            no_retry.validate(),
            Err(ConfigError::RetryAttemptsZero { given: 0 })
        );
        let mut empty_label = ReleaserConfig::new();
        empty_label.broker_id = BrokerIdRule::Label {
            key: String::new(),
            fallback_offset: None,
        };
        assert_eq!(empty_label.validate(), Err(ConfigError::BrokerIdLabelEmpty));
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            attempts: 10,
        };
        assert_eq!(policy.delay(0), Duration::from_millis(100));
        assert_eq!(policy.delay(1), Duration::from_millis(200));
        assert_eq!(policy.delay(3), Duration::from_millis(800));
        assert_eq!(policy.delay(4), Duration::from_secs(1));
        assert_eq!(policy.delay(40), Duration::from_secs(1));
    }

    #[test]
    fn namespaces_restrict_scope() {
        let all = ReleaserConfig::new();
        assert!(all.namespace_allowed("kafka"));
        let some = ReleaserConfig::new().with_namespaces(["kafka"]);
        assert!(some.namespace_allowed("kafka"));
        assert!(!some.namespace_allowed("other"));
    }
}
