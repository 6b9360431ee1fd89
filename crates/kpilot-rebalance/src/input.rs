//! What the planner needs to know, validated: partitions with their replicas (preferred leader
//! first) and sizes, brokers with their zone, and the requested broker set change. Pure.

use std::collections::{BTreeMap, BTreeSet};

use kpilot_cluster::{BrokerId, ClusterState, TopicName, TopicPartition, sample_list};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a plan cannot be made.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PlanError {
    /// A broker to add already holds replicas.
    #[error(
        "broker {0} already holds replicas; --add-brokers is for new, empty brokers (use a full rebalance instead)"
    )]
    AddExisting(BrokerId),
    /// A broker to remove is not in the cluster.
    #[error("broker {0} is not in the cluster, so it cannot be removed")]
    RemoveUnknown(BrokerId),
    /// A broker is both added and removed.
    #[error("broker {0} is both added and removed")]
    AddAndRemove(BrokerId),
    /// Fewer brokers would remain than a partition has replicas.
    #[error(
        "{partition} has {replicas} replicas but only {brokers} brokers would remain; keep at least {replicas} brokers"
    )]
    TooFewBrokers {
        /// The partition with the highest replication factor.
        partition: TopicPartition,
        /// Its replica count.
        replicas: usize,
        /// Brokers left after the change.
        brokers: usize,
    },
    /// A replica is on a broker that is not in the broker list.
    #[error(
        "{partition} has a replica on broker {broker}, which is not among the cluster's brokers"
    )]
    UnknownReplica {
        /// The partition.
        partition: TopicPartition,
        /// The broker id.
        broker: BrokerId,
    },
    /// The brokers store topics the snapshot's Metadata did not list (the principal lacks
    /// DESCRIBE on them): a plan would not move their replicas, so a drained broker could still
    /// hold them and a balance would be wrong.
    #[error(
        "{count} topic(s) are stored on the brokers but not visible to this principal (no Describe ACL on them): {}; a plan would leave their replicas where they are. Grant Describe on every topic (kafka-acls --add --allow-principal User:<name> --operation Describe --topic '*') and plan again",
        sample_list(examples, *count)
    )]
    TopicsNotVisible {
        /// The first few of them.
        examples: Vec<TopicName>,
        /// How many.
        count: usize,
    },
    /// A partition lists the same broker twice.
    #[error("{partition} lists broker {broker} twice")]
    DuplicateReplica {
        /// The partition.
        partition: TopicPartition,
        /// The broker id.
        broker: BrokerId,
    },
}

/// The broker set change a plan is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "brokers")]
pub enum BrokerChange {
    /// New, empty brokers to balance data onto.
    Add(BTreeSet<BrokerId>),
    /// Brokers to drain completely.
    Remove(BTreeSet<BrokerId>),
    /// Keep the broker set; only rebalance.
    Rebalance,
}

/// One partition's current placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionPlacement {
    /// The partition.
    pub partition: TopicPartition,
    /// Its replicas; the first is the preferred leader.
    pub replicas: Vec<BrokerId>,
    /// Its size in bytes (the largest replica's log).
    pub size_bytes: u64,
}

/// The planner's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanInput {
    /// Every partition to consider.
    pub partitions: Vec<PartitionPlacement>,
    /// Every current broker (and the ones being added), with its zone (rack) if known.
    pub brokers: BTreeMap<BrokerId, Option<String>>,
    /// The change.
    pub change: BrokerChange,
}

impl PlanInput {
    /// Builds the input from a cluster snapshot: replicas from metadata, sizes from the log
    /// dirs (largest replica), zones from broker racks. `added` brokers may not be registered
    /// yet; give their zones in `added_racks` (missing = unknown). Fails when the log dirs hold
    /// replicas of topics Metadata did not list ([`PlanError::TopicsNotVisible`]).
    pub fn from_cluster(
        state: &ClusterState,
        change: BrokerChange,
        added_racks: &BTreeMap<BrokerId, Option<String>>,
    ) -> Result<Self, PlanError> {
        let hidden: BTreeSet<&TopicName> = state
            .replicas_not_in_metadata()
            .map(|(_, tp)| &tp.topic)
            .collect();
        if !hidden.is_empty() {
            return Err(PlanError::TopicsNotVisible {
                examples: hidden.iter().take(5).map(|t| (*t).clone()).collect(),
                count: hidden.len(),
            });
        }
        let mut sizes: BTreeMap<&TopicPartition, u64> = BTreeMap::new();
        for dirs in state.log_dirs.values() {
            for dir in dirs {
                for r in &dir.replicas {
                    if r.is_future {
                        continue;
                    }
                    let e = sizes.entry(&r.topic_partition).or_insert(0);
                    *e = (*e).max(r.size_bytes);
                }
            }
        }
        let mut partitions = Vec::new();
        for topic in state.topics.values() {
            for p in topic.partitions.values() {
                let tp = TopicPartition::new(topic.name.clone(), p.partition);
                let size_bytes = sizes.get(&tp).copied().unwrap_or(0);
                partitions.push(PartitionPlacement {
                    partition: tp,
                    replicas: p.replicas.clone(),
                    size_bytes,
                });
            }
        }
        let mut brokers: BTreeMap<BrokerId, Option<String>> = state
            .brokers
            .values()
            .map(|b| (b.id, b.rack.clone()))
            .collect();
        if let BrokerChange::Add(ids) = &change {
            for id in ids {
                brokers
                    .entry(*id)
                    .or_insert_with(|| added_racks.get(id).cloned().flatten());
            }
        }
        Ok(Self {
            partitions,
            brokers,
            change,
        })
    }

    /// Checks the input and returns the target broker set.
    pub(crate) fn validate(&self) -> Result<BTreeSet<BrokerId>, PlanError> {
        let all: BTreeSet<BrokerId> = self.brokers.keys().copied().collect();
        let mut current = all.clone();
        let mut target = all.clone();
        match &self.change {
            BrokerChange::Add(ids) => {
                for id in ids {
                    if self.partitions.iter().any(|p| p.replicas.contains(id)) {
                        return Err(PlanError::AddExisting(*id));
                    }
                    current.remove(id);
                    target.insert(*id);
                }
            }
            BrokerChange::Remove(ids) => {
                for id in ids {
                    if !all.contains(id) {
                        return Err(PlanError::RemoveUnknown(*id));
                    }
                    target.remove(id);
                }
            }
            BrokerChange::Rebalance => {}
        }
        for p in &self.partitions {
            let mut seen = BTreeSet::new();
            for b in &p.replicas {
                if !current.contains(b) && !all.contains(b) {
                    return Err(PlanError::UnknownReplica {
                        partition: p.partition.clone(),
                        broker: *b,
                    });
                }
                if !seen.insert(*b) {
                    return Err(PlanError::DuplicateReplica {
                        partition: p.partition.clone(),
                        broker: *b,
                    });
                }
            }
        }
        if let Some(p) = self.partitions.iter().max_by_key(|p| p.replicas.len())
            && p.replicas.len() > target.len()
        {
            return Err(PlanError::TooFewBrokers {
                partition: p.partition.clone(),
                replicas: p.replicas.len(),
                brokers: target.len(),
            });
        }
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use kpilot_cluster::fixtures::uniform_cluster;
    use kpilot_cluster::{LogDir, ReplicaLog};

    use super::*;

    fn dir(replicas: &[(&str, i32, u64)]) -> Vec<LogDir> {
        vec![LogDir {
            path: "/data".into(),
            error: None,
            total_bytes: None,
            usable_bytes: None,
            replicas: replicas
                .iter()
                .map(|(t, p, size)| ReplicaLog {
                    topic_partition: TopicPartition::new(TopicName::new(*t).unwrap(), *p),
                    size_bytes: *size,
                    offset_lag: 0,
                    is_future: false,
                })
                .collect(),
        }]
    }

    #[test]
    fn sizes_come_from_the_largest_replica() {
        let mut state = uniform_cluster(3, &[("orders", 1, 2, 1)]);
        state
            .log_dirs
            .insert(BrokerId(1), dir(&[("orders", 0, 700)]));
        state
            .log_dirs
            .insert(BrokerId(2), dir(&[("orders", 0, 900)]));
        let input =
            PlanInput::from_cluster(&state, BrokerChange::Rebalance, &BTreeMap::new()).unwrap();
        assert_eq!(input.partitions.len(), 1);
        assert_eq!(input.partitions[0].size_bytes, 900);
    }

    #[test]
    fn a_topic_stored_but_not_in_metadata_refuses_the_plan() {
        // Without DESCRIBE on `secret`, Metadata leaves it out; a drain of broker 3 would
        // leave its replica there.
        let mut state = uniform_cluster(3, &[("orders", 1, 2, 1)]);
        state
            .log_dirs
            .insert(BrokerId(3), dir(&[("secret", 0, 100), ("secret", 1, 100)]));
        let change = BrokerChange::Remove([BrokerId(3)].into());
        let err = PlanInput::from_cluster(&state, change, &BTreeMap::new()).unwrap_err();
        assert_eq!(
            err,
            PlanError::TopicsNotVisible {
                examples: vec![TopicName::new("secret").unwrap()],
                count: 1
            }
        );
        let text = err.to_string();
        assert!(
            text.starts_with("1 topic(s) are stored on the brokers but not visible")
                && text.contains(": secret;")
                && text.contains("--operation Describe --topic '*'"),
            "{text}"
        );
    }
}
