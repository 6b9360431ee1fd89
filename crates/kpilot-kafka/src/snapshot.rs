//! Reading a whole-cluster snapshot: Metadata, then concurrently DescribeConfigs
//! (`min.insync.replicas` and the throttled replica lists of every topic, the throttle rates of
//! every live broker), DescribeLogDirs on every live broker, DescribeQuorum and
//! ListPartitionReassignments, assembled into a `kpilot_cluster::ClusterState` for the pure
//! analysis. Performs network I/O.
//!
//! Topics that the log dirs hold but Metadata does not list are read again once (after
//! half a second) to tell a topic this principal cannot see from one created or
//! deleted during the snapshot.
//!
//! Only Metadata is required. If another part fails, the snapshot records a [`SnapshotGap`] and
//! leaves that part empty; the analysis then treats what is missing conservatively (an unknown
//! `min.insync.replicas` makes no broker safe to stop).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kpilot_cluster::{
    BrokerId, ClusterState, HealthSnapshot, ReplicationThrottle, ThrottleScope, TopicName,
    TopicState, analyze,
};
use serde::Serialize;
use tracing::{debug, instrument};

use crate::admin::{AdminClient, AdminError, ConfigEntry, ConfigResource, ConfigSource};

/// The config key whose effective value decides stop safety.
pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";
/// Broker config: the rate at which leaders serve throttled replicas.
pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
/// Broker config: the rate at which followers fetch throttled replicas.
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
/// Topic config: the replicas throttled as leaders (`partition:broker,...` or `*`).
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
/// Topic config: the replicas throttled as followers (`partition:broker,...` or `*`).
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

/// Attempts for the parts a snapshot can do without (log dirs, quorum): a broker that just
/// died must not hold the whole snapshot up for the full retry budget.
const OPTIONAL_PART_ATTEMPTS: u32 = 2;

/// A cluster state read from the brokers, and what could not be read.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// The state.
    pub state: ClusterState,
    /// Parts that could not be read.
    pub gaps: Vec<SnapshotGap>,
    /// How long reading took.
    pub elapsed: Duration,
}

impl Snapshot {
    /// Runs the pure health analysis on the state.
    pub fn analyze(&self) -> HealthSnapshot {
        analyze(&self.state)
    }
}

/// A part of the snapshot that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotGap {
    /// What is missing, e.g. `log dirs of broker 2`.
    pub what: String,
    /// Why.
    pub error: String,
}

impl AdminClient {
    /// Reads a snapshot of the cluster (see the module docs for what it asks and how).
    #[instrument(level = "debug", skip(self))]
    pub async fn snapshot(&self) -> Result<Snapshot, AdminError> {
        let started = Instant::now();
        let metadata = self.metadata().await?;
        let budget = self.config().request_timeout;
        let resources: Vec<ConfigResource> = metadata
            .topics
            .keys()
            .map(|t| ConfigResource::Topic(t.clone()))
            .collect();
        let configs = async {
            if resources.is_empty() {
                Ok(BTreeMap::new())
            } else {
                self.describe_configs(
                    &resources,
                    Some(&[MIN_INSYNC_REPLICAS, LEADER_REPLICAS, FOLLOWER_REPLICAS]),
                )
                .await
            }
        };
        // Per broker, concurrently: its log dirs and its throttle rates (both answered by that
        // broker only).
        let per_broker = async {
            let mut tasks = tokio::task::JoinSet::new();
            for broker in metadata.brokers.keys().copied() {
                let client = self.clone();
                tasks.spawn(async move {
                    let keys = [LEADER_RATE, FOLLOWER_RATE];
                    let (dirs, rates) = tokio::join!(
                        client.describe_log_dirs_within(broker, budget, OPTIONAL_PART_ATTEMPTS),
                        client.describe_broker_configs_within(
                            broker,
                            &keys,
                            budget,
                            OPTIONAL_PART_ATTEMPTS
                        ),
                    );
                    ((broker, dirs), (broker, rates))
                });
            }
            let mut out = Vec::new();
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok(result) => out.push(result),
                    Err(e) => debug!(error = %e, "per-broker read task failed"),
                }
            }
            out
        };
        let (configs, per_broker, quorum, reassignments) = tokio::join!(
            configs,
            per_broker,
            self.describe_quorum_within(budget, OPTIONAL_PART_ATTEMPTS),
            self.list_partition_reassignments(),
        );

        let mut gaps = Vec::new();
        let mut gap = |what: String, error: &AdminError| {
            gaps.push(SnapshotGap {
                what,
                error: error.to_string(),
            })
        };
        let configs = configs.unwrap_or_else(|e| {
            gap(
                "min.insync.replicas and throttled replicas of topics".to_string(),
                &e,
            );
            BTreeMap::new()
        });
        let mut state = ClusterState {
            cluster_id: metadata.cluster_id.clone(),
            brokers: metadata.brokers.clone(),
            ..ClusterState::default()
        };
        let (mut log_dirs, mut broker_configs): (Vec<(BrokerId, _)>, Vec<(BrokerId, _)>) =
            per_broker.into_iter().unzip();
        for (name, topic) in &metadata.topics {
            let min_insync_replicas = configs
                .get(&ConfigResource::Topic(name.clone()))
                .and_then(|entries| entries.get(MIN_INSYNC_REPLICAS))
                .and_then(|entry| entry.value.as_deref())
                .and_then(|value| value.parse::<u16>().ok());
            state.topics.insert(
                name.clone(),
                TopicState {
                    name: name.clone(),
                    topic_id: topic.topic_id.clone(),
                    internal: topic.internal,
                    min_insync_replicas,
                    partitions: topic.partitions.clone(),
                },
            );
            if let Some(entries) = configs.get(&ConfigResource::Topic(name.clone())) {
                state.throttles.extend(throttles(
                    ThrottleScope::Topic(name.clone()),
                    entries,
                    ConfigSource::DynamicTopicConfig,
                ));
            }
        }
        broker_configs.sort_by_key(|(b, _)| *b);
        for (broker, result) in broker_configs {
            match result {
                Ok(entries) => {
                    state.throttles.extend(throttles(
                        ThrottleScope::Broker(broker),
                        &entries,
                        ConfigSource::DynamicBrokerConfig,
                    ));
                    // The cluster-wide default shows on every broker: keep it once.
                    for t in throttles(
                        ThrottleScope::ClusterDefault,
                        &entries,
                        ConfigSource::DynamicDefaultBrokerConfig,
                    ) {
                        if !state.throttles.contains(&t) {
                            state.throttles.push(t);
                        }
                    }
                }
                Err(e) => gap(format!("throttle rates of broker {broker}"), &e),
            }
        }
        log_dirs.sort_by_key(|(b, _)| *b);
        for (broker, result) in log_dirs {
            match result {
                Ok(dirs) => {
                    state.log_dirs.insert(broker, dirs);
                }
                Err(e) => gap(format!("log dirs of broker {broker}"), &e),
            }
        }
        match quorum {
            Ok(q) => state.quorum = Some(q),
            Err(e) => gap("metadata quorum".to_string(), &e),
        }
        match reassignments {
            Ok(r) => state.reassignments = r,
            Err(e) => gap("partition reassignments".to_string(), &e),
        }
        self.settle_hidden_topics(&mut state, budget).await;
        let elapsed = started.elapsed();
        debug!(
            ?elapsed,
            partitions = state.partition_count(),
            gaps = gaps.len(),
            "snapshot read"
        );
        Ok(Snapshot {
            state,
            gaps,
            elapsed,
        })
    }
}

impl AdminClient {
    /// Replicas of topics Metadata did not list mean the principal cannot see those topics
    /// (see `ClusterState::replicas_not_in_metadata`), unless the topic was created or deleted
    /// while the snapshot was read: Metadata came from one broker first, the log dirs from
    /// every broker after, and each broker applies topic changes from the metadata log a moment
    /// apart. So the topics look hidden only if, read again, Metadata still lacks them and the
    /// log dirs still hold them; the replicas of the others are dropped from this snapshot (a
    /// topic that appears or disappears during it is not part of it).
    async fn settle_hidden_topics(&self, state: &mut ClusterState, budget: Duration) {
        let suspects: BTreeMap<TopicName, BTreeSet<BrokerId>> = state
            .replicas_not_in_metadata()
            .fold(BTreeMap::new(), |mut acc, (broker, tp)| {
                acc.entry(tp.topic.clone()).or_default().insert(broker);
                acc
            });
        if suspects.is_empty() {
            return;
        }
        tokio::time::sleep(HIDDEN_RECHECK_DELAY).await;
        let metadata = self.refresh_metadata().await.ok();
        let holders: BTreeSet<BrokerId> = suspects.values().flatten().copied().collect();
        let mut stored: BTreeMap<BrokerId, BTreeSet<TopicName>> = BTreeMap::new();
        for broker in holders {
            if let Ok(dirs) = self
                .describe_log_dirs_within(broker, budget, OPTIONAL_PART_ATTEMPTS)
                .await
            {
                let topics = dirs
                    .iter()
                    .flat_map(|d| d.replicas.iter())
                    .map(|r| r.topic_partition.topic.clone())
                    .collect();
                stored.insert(broker, topics);
            }
        }
        let listed: Option<BTreeSet<&TopicName>> =
            metadata.as_ref().map(|m| m.topics.keys().collect());
        for topic in changed_during_snapshot(&suspects, listed.as_ref(), &stored) {
            debug!(%topic, "topic created or deleted during the snapshot");
            for dirs in state.log_dirs.values_mut() {
                for dir in dirs.iter_mut() {
                    dir.replicas.retain(|r| r.topic_partition.topic != topic);
                }
            }
        }
    }
}

/// Of the topics that looked hidden in a snapshot (`suspects`: topic -> brokers whose log dirs
/// held it while Metadata lacked it), those read again to be no hidden topic after all: listed
/// by Metadata now (`listed`; `None` when Metadata could not be read again), or no longer
/// stored by any of those brokers (`stored`: topics per broker, read again; a broker missing
/// there could not be read and counts as still storing them). Pure.
fn changed_during_snapshot(
    suspects: &BTreeMap<TopicName, BTreeSet<BrokerId>>,
    listed: Option<&BTreeSet<&TopicName>>,
    stored: &BTreeMap<BrokerId, BTreeSet<TopicName>>,
) -> Vec<TopicName> {
    suspects
        .iter()
        .filter(|(topic, brokers)| {
            let listed_now = listed.is_some_and(|l| l.contains(topic));
            let held_now = brokers
                .iter()
                .any(|b| stored.get(b).is_none_or(|topics| topics.contains(*topic)));
            listed_now || !held_now
        })
        .map(|(topic, _)| topic.clone())
        .collect()
}

/// How long to wait before reading again a topic that looks hidden: long enough for every
/// broker to apply a topic creation or deletion from the metadata log.
const HIDDEN_RECHECK_DELAY: Duration = Duration::from_millis(500);

/// The throttle overrides among `entries` that come from `source` (a value Kafka reports for
/// an unset list is empty: not an override).
fn throttles(
    scope: ThrottleScope,
    entries: &BTreeMap<String, ConfigEntry>,
    source: ConfigSource,
) -> Vec<ReplicationThrottle> {
    entries
        .iter()
        .filter(|(key, e)| key.contains(".replication.throttled.") && e.source == source)
        .filter_map(|(key, e)| {
            let value = e.value.as_deref().filter(|v| !v.is_empty())?;
            Some(ReplicationThrottle {
                scope: scope.clone(),
                key: key.clone(),
                value: value.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str) -> TopicName {
        TopicName::new(name).expect("topic name")
    }

    #[test]
    fn a_topic_read_again_as_listed_or_gone_was_created_or_deleted_during_the_snapshot() {
        let suspects: BTreeMap<TopicName, BTreeSet<BrokerId>> = [
            // Still stored by broker 1, still not listed: hidden.
            ("secret", vec![1]),
            // Listed now: created while the snapshot was read.
            ("created", vec![1, 2]),
            // Stored by neither broker any more: deleted while the snapshot was read.
            ("deleted", vec![1, 2]),
            // Gone from broker 2 but still on broker 1: hidden.
            ("moving", vec![1, 2]),
            // Broker 3 could not be read again: counts as still storing it.
            ("unread", vec![3]),
        ]
        .into_iter()
        .map(|(t, b)| (topic(t), b.into_iter().map(BrokerId).collect()))
        .collect();
        let stored: BTreeMap<BrokerId, BTreeSet<TopicName>> = BTreeMap::from([
            (
                BrokerId(1),
                ["secret", "created", "moving"].map(topic).into(),
            ),
            (BrokerId(2), ["created"].map(topic).into()),
        ]);
        let created = topic("created");
        let listed = BTreeSet::from([&created]);
        assert_eq!(
            changed_during_snapshot(&suspects, Some(&listed), &stored),
            vec![topic("created"), topic("deleted")]
        );
        // Metadata not read again: only what the log dirs say counts.
        assert_eq!(
            changed_during_snapshot(&suspects, None, &stored),
            vec![topic("deleted")]
        );
    }
}
