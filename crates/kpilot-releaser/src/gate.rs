//! The safety gate asked before a broker's volumes are released: the [`SafetyGate`] port, the
//! pure Kafka rule [`release_verdict`] over a `kpilot_cluster` snapshot, and two adapters:
//! [`KafkaGate`] (reads a snapshot with `kpilot-kafka`'s admin client: network I/O) and
//! [`NoKafkaCheck`] (allows everything; for clusters the operator cannot reach).

use std::future::Future;

use kpilot_cluster::{BrokerId, ClusterState, analyze};
use kpilot_kafka::{AdminClient, AdminError};

/// What the gate is asked: may `broker`'s volumes be released now?
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateRequest {
    /// The broker whose node is gone.
    pub broker: BrokerId,
    /// The namespace of its PVCs.
    pub namespace: String,
    /// Its PVCs.
    pub claims: Vec<String>,
    /// Brokers this controller released earlier whose recovery the gate has not confirmed yet
    /// (one broker at a time: the gate should wait until they serve again).
    pub in_recovery: Vec<BrokerId>,
}

/// The gate's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateDecision {
    /// Release now. Also confirms that every broker in
    /// [`GateRequest::in_recovery`] has recovered.
    Allow,
    /// Not now; ask again later.
    Wait {
        /// Why, for Events and logs.
        reason: String,
    },
}

/// Why the gate could not decide (the controller treats it as "wait").
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// Reading the Kafka cluster snapshot failed.
    #[error("reading the Kafka cluster snapshot to check broker {broker}: {source}")]
    Snapshot {
        /// The broker being checked.
        broker: BrokerId,
        /// The admin client's error.
        #[source]
        source: AdminError,
    },
    /// A custom gate failed.
    #[error("safety gate failed for broker {broker}: {message}")]
    Other {
        /// The broker being checked.
        broker: BrokerId,
        /// What went wrong.
        message: String,
    },
}

/// The port: decides whether a broker's volumes may be released now.
pub trait SafetyGate: Send + Sync + 'static {
    /// Answers one request.
    fn check(
        &self,
        request: &GateRequest,
    ) -> impl Future<Output = Result<GateDecision, GateError>> + Send;
}

/// A gate that always allows: no Kafka safety check (the controller still releases one broker
/// unit at a time). Only for clusters the releaser cannot reach; prefer [`KafkaGate`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NoKafkaCheck;

impl SafetyGate for NoKafkaCheck {
    async fn check(&self, _request: &GateRequest) -> Result<GateDecision, GateError> {
        Ok(GateDecision::Allow)
    }
}

/// The gate over a live Kafka cluster: reads a snapshot (metadata is enough; other parts are
/// best effort) and applies [`release_verdict`].
#[derive(Debug, Clone)]
pub struct KafkaGate {
    admin: AdminClient,
}

impl KafkaGate {
    /// A gate reading snapshots through `admin`.
    pub fn new(admin: AdminClient) -> Self {
        KafkaGate { admin }
    }
}

impl SafetyGate for KafkaGate {
    async fn check(&self, request: &GateRequest) -> Result<GateDecision, GateError> {
        let snapshot = self
            .admin
            .snapshot()
            .await
            .map_err(|source| GateError::Snapshot {
                broker: request.broker,
                source,
            })?;
        Ok(release_verdict(
            &snapshot.state,
            request.broker,
            &request.in_recovery,
        ))
    }
}

/// The Kafka rule, pure. Releasing `broker`'s disk is allowed only when:
///
/// 1. `broker` is not live (registered and unfenced): a live broker is not lost;
/// 2. every broker in `in_recovery` is live again and in the ISR of every partition it hosts
///    (one broker at a time);
/// 3. no other live broker is catching up (missing from the ISR of a partition it hosts): a
///    rebuild is in progress, even one this process does not remember (after a restart or a
///    leader change);
/// 4. every partition `broker` hosts has a leader and at least one live in-sync replica other
///    than `broker` (no partition loses its last in-sync copy when the disk is dropped).
///
/// Partition conditions come from `kpilot_cluster::analyze`.
pub fn release_verdict(
    state: &ClusterState,
    broker: BrokerId,
    in_recovery: &[BrokerId],
) -> GateDecision {
    if state.is_live(broker) {
        return GateDecision::Wait {
            reason: format!("broker {broker} is still registered and unfenced in Kafka"),
        };
    }
    let health = analyze(state);
    for recovering in in_recovery.iter().filter(|b| **b != broker) {
        if !state.is_live(*recovering) {
            return GateDecision::Wait {
                reason: format!(
                    "broker {recovering}, released earlier, has not rejoined the cluster yet"
                ),
            };
        }
        let behind = health
            .partitions
            .iter()
            .filter(|p| p.replicas.contains(recovering) && !p.isr.contains(recovering))
            .count();
        if behind > 0 {
            return GateDecision::Wait {
                reason: format!(
                    "broker {recovering}, released earlier, is still catching up on {behind} partition(s)"
                ),
            };
        }
    }
    if let Some(rebuilding) = health
        .brokers
        .iter()
        .find(|b| b.id != broker && b.live && b.out_of_sync_replicas > 0)
    {
        return GateDecision::Wait {
            reason: format!(
                "broker {} is catching up on {} replica(s); one rebuild at a time",
                rebuilding.id, rebuilding.out_of_sync_replicas
            ),
        };
    }
    let mut offline = Vec::new();
    let mut last_copy = Vec::new();
    for p in health
        .partitions
        .iter()
        .filter(|p| p.replicas.contains(&broker))
    {
        if p.offline {
            offline.push(p.topic_partition.to_string());
            continue;
        }
        let others = p
            .isr
            .iter()
            .filter(|b| **b != broker && state.is_live(**b))
            .count();
        if others == 0 {
            last_copy.push(p.topic_partition.to_string());
        }
    }
    if !offline.is_empty() || !last_copy.is_empty() {
        let examples = |v: &[String]| v.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
        let mut parts = Vec::new();
        if !offline.is_empty() {
            parts.push(format!(
                "{} partition(s) offline (e.g. {})",
                offline.len(),
                examples(&offline)
            ));
        }
        if !last_copy.is_empty() {
            parts.push(format!(
                "{} partition(s) with no other live in-sync replica (e.g. {})",
                last_copy.len(),
                examples(&last_copy)
            ));
        }
        return GateDecision::Wait {
            reason: format!(
                "releasing broker {broker}'s disk would lose data: {}",
                parts.join("; ")
            ),
        };
    }
    GateDecision::Allow
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpilot_cluster::fixtures::uniform_cluster;

    /// 3 brokers (1, 2, 3), topic `t` with 3 partitions, RF 3, min ISR 2, all in sync.
    fn healthy() -> ClusterState {
        uniform_cluster(3, &[("t", 3, 3, 2)])
    }

    fn is_wait(d: &GateDecision, needle: &str) -> bool {
        matches!(d, GateDecision::Wait { reason } if reason.contains(needle))
    }

    #[test]
    fn a_dead_broker_with_live_in_sync_peers_may_be_released() {
        let state = healthy().with_broker_stopped(BrokerId(3));
        assert_eq!(
            release_verdict(&state, BrokerId(3), &[]),
            GateDecision::Allow
        );
    }

    #[test]
    fn a_live_broker_is_never_released() {
        let d = release_verdict(&healthy(), BrokerId(3), &[]);
        assert!(is_wait(&d, "still registered"), "{d:?}");
    }

    #[test]
    fn the_last_in_sync_copy_blocks() {
        // RF 2, min ISR 1: replicas on (1,2), (2,3), (3,1). Brokers 2 and 3 die: the partition
        // on (2,3) keeps its last in-sync replica on a dead broker and goes offline.
        let state = uniform_cluster(3, &[("t", 3, 2, 1)])
            .with_broker_stopped(BrokerId(2))
            .with_broker_stopped(BrokerId(3));
        let d = release_verdict(&state, BrokerId(3), &[]);
        assert!(is_wait(&d, "would lose data"), "{d:?}");
        assert!(is_wait(&d, "offline"), "{d:?}");
        // With only broker 3 dead, every partition it hosts has a live in-sync copy.
        let state = uniform_cluster(3, &[("t", 3, 2, 1)]).with_broker_stopped(BrokerId(3));
        assert_eq!(
            release_verdict(&state, BrokerId(3), &[]),
            GateDecision::Allow
        );
    }

    #[test]
    fn one_broker_at_a_time() {
        let state = healthy()
            .with_broker_stopped(BrokerId(2))
            .with_broker_stopped(BrokerId(3));
        // Broker 1 was released earlier and has not come back: broker 2 waits.
        let d = release_verdict(&state, BrokerId(3), &[BrokerId(2)]);
        assert!(is_wait(&d, "has not rejoined"), "{d:?}");
        // Broker 1 is back but not in sync yet: still wait.
        let mut back = healthy().with_broker_stopped(BrokerId(3));
        for topic in back.topics.values_mut() {
            for p in topic.partitions.values_mut() {
                p.isr.retain(|b| *b != BrokerId(2));
            }
        }
        let d = release_verdict(&back, BrokerId(3), &[BrokerId(2)]);
        assert!(is_wait(&d, "catching up"), "{d:?}");
        // Even when this process forgot that it released broker 2 (restart): still wait.
        let d = release_verdict(&back, BrokerId(3), &[]);
        assert!(is_wait(&d, "broker 2 is catching up"), "{d:?}");
        // Caught up: go.
        let caught_up = healthy().with_broker_stopped(BrokerId(3));
        assert_eq!(
            release_verdict(&caught_up, BrokerId(3), &[BrokerId(2)]),
            GateDecision::Allow
        );
    }
}
