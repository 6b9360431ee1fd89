//! The [`KafkaPort`] adapter for `kpilot_kafka::AdminClient`: a cluster snapshot plus
//! DescribeCluster (for fenced brokers), ElectLeaders, the replication throttle of a rebuild
//! (IncrementalAlterConfigs) and a node's stored bytes (DescribeLogDirs). Performs network
//! I/O.

use kpilot_cluster::{BrokerId, TopicName, TopicPartition};
use kpilot_kafka::{
    AdminClient, ConfigOp, ConfigResource, FOLLOWER_RATE, FOLLOWER_REPLICAS, LEADER_RATE,
    LEADER_REPLICAS,
};

use crate::executor::now_ms;
use crate::gate::Observation;
use crate::journal::Rebuild;
use crate::ports::{ElectionSummary, KafkaPort, KafkaPortError};

impl KafkaPort for AdminClient {
    async fn observe(&self) -> Result<Observation, KafkaPortError> {
        let (snapshot, cluster) = tokio::join!(self.snapshot(), self.describe_cluster());
        let snapshot = snapshot.map_err(|e| KafkaPortError::Observe {
            source: Box::new(e),
        })?;
        for gap in &snapshot.gaps {
            tracing::debug!(what = %gap.what, error = %gap.error, "snapshot gap");
        }
        let cluster = cluster.map_err(|e| KafkaPortError::Observe {
            source: Box::new(e),
        })?;
        let fenced = cluster
            .brokers
            .iter()
            .filter(|(_, fenced)| *fenced)
            .map(|(b, _)| b.id)
            .collect();
        Ok(Observation {
            state: snapshot.state,
            fenced,
            now_ms: now_ms(),
            down: std::collections::BTreeSet::new(),
        })
    }

    /// An ElectLeaders request that names no partition: the controller authorizes it (Alter
    /// on the cluster) and then has nothing to elect.
    async fn check_may_elect(&self) -> Result<(), KafkaPortError> {
        self.elect_preferred_leaders(Some(&[]))
            .await
            .map(|_| ())
            .map_err(|e| KafkaPortError::Elect {
                source: Box::new(e),
            })
    }

    /// One broker's throttle rate and every topic's throttled replicas, with `validateOnly`.
    async fn check_may_throttle(&self) -> Result<(), KafkaPortError> {
        let metadata = self.metadata().await.map_err(|e| KafkaPortError::Observe {
            source: Box::new(e),
        })?;
        let refused = |what| {
            move |e: kpilot_kafka::AdminError| KafkaPortError::MayNotAlter {
                what,
                source: Box::new(e),
            }
        };
        self.may_set_throttle_rates(&metadata)
            .await
            .map_err(refused("set the brokers' throttle rates"))?;
        self.may_set_throttled_replicas(&metadata)
            .await
            .map_err(refused("set the topics' throttled replicas"))
    }

    async fn elect_preferred(
        &self,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<ElectionSummary, KafkaPortError> {
        if partitions.is_some_and(<[TopicPartition]>::is_empty) {
            return Ok(ElectionSummary::default());
        }
        let outcomes = self
            .elect_preferred_leaders(partitions)
            .await
            .map_err(|e| KafkaPortError::Elect {
                source: Box::new(e),
            })?;
        Ok(ElectionSummary::of(outcomes))
    }

    async fn throttle_rebuild(
        &self,
        node: BrokerId,
        rebuild: &Rebuild,
    ) -> Result<(), KafkaPortError> {
        let Some(rate) = rebuild.throttle_bytes_per_s else {
            return Ok(());
        };
        ReplicationThrottle::of_rebuild(node, rebuild)
            .set(self, rate)
            .await
            .map_err(|e| KafkaPortError::Throttle {
                action: "setting",
                node,
                source: Box::new(e),
            })
    }

    async fn lift_rebuild_throttle(
        &self,
        node: BrokerId,
        rebuild: &Rebuild,
    ) -> Result<Vec<String>, KafkaPortError> {
        let throttle = ReplicationThrottle::of_rebuild(node, rebuild);
        // Someone else's values on the same keys are theirs. When they cannot be read (a
        // broker does not answer), everything is lifted, as before there was this check.
        let theirs: Vec<Drift> = match rebuild.throttle_bytes_per_s {
            Some(rate) => match throttle.drift(self, rate).await {
                Ok(drifted) => drifted.into_iter().filter(|d| d.found.is_some()).collect(),
                Err(e) => {
                    tracing::warn!(node = node.0, error = %e, "could not check the rebuild throttle for other values before lifting it");
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        let keep: Vec<String> = theirs.iter().map(Drift::name).collect();
        throttle
            .lift_except(self, &keep)
            .await
            .map_err(|e| KafkaPortError::Throttle {
                action: "lifting",
                node,
                source: Box::new(e),
            })?;
        Ok(theirs.iter().map(ToString::to_string).collect())
    }

    async fn stored_bytes(&self, node: BrokerId) -> Result<u64, KafkaPortError> {
        let dirs = self
            .describe_log_dirs(node)
            .await
            .map_err(|e| KafkaPortError::Observe {
                source: Box::new(e),
            })?;
        Ok(dirs
            .iter()
            .flat_map(|d| d.replicas.iter())
            .map(|r| r.size_bytes)
            .sum())
    }

    async fn throttles_set(&self) -> Result<Vec<String>, KafkaPortError> {
        let observe = |e: kpilot_kafka::AdminError| KafkaPortError::Observe {
            source: Box::new(e),
        };
        let metadata = self.metadata().await.map_err(observe)?;
        let mut resources: Vec<ConfigResource> = metadata
            .brokers
            .keys()
            .map(|b| ConfigResource::Broker(*b))
            .collect();
        resources.extend(
            metadata
                .topics
                .keys()
                .map(|t| ConfigResource::Topic(t.clone())),
        );
        // Only a broker's or a topic's own overrides: a cluster-wide default (which every
        // broker reports too) is left as it was by a rebuild's override and its removal.
        Ok(self
            .own_throttle_overrides(&resources)
            .await
            .map_err(observe)?
            .into_iter()
            .map(|(resource, key, value)| format!("{resource} {key}={value}"))
            .collect())
    }
}

/// Where a replication throttle for rebuilding replicas goes: the follower rate on the
/// brokers that receive, the leader rate on the brokers that send, and the throttled replica
/// lists of the topics. Kafka throttles only listed replicas out of the ISR, so the rest of
/// the replication runs as before. A roll's rebuild throttles one receiver and lists exactly
/// its partitions; a roll run by someone else (Strimzi) throttles every broker both ways and
/// lists `*`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicationThrottle {
    /// Brokers that get `follower.replication.throttled.rate`.
    pub receivers: Vec<BrokerId>,
    /// Brokers that get `leader.replication.throttled.rate`.
    pub senders: Vec<BrokerId>,
    /// Topics and their throttled replica lists.
    pub topics: Vec<ThrottledTopic>,
}

/// One topic's throttled replica lists, as Kafka takes them: `*` (every replica) or
/// `partition:broker` pairs separated by commas. An empty list is not set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThrottledTopic {
    /// The topic.
    pub name: String,
    /// `leader.replication.throttled.replicas`: the replicas that send.
    pub leader_replicas: String,
    /// `follower.replication.throttled.replicas`: the replicas that receive.
    pub follower_replicas: String,
}

impl ThrottledTopic {
    /// Every replica of `name`, both ways.
    pub fn all(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            leader_replicas: "*".to_owned(),
            follower_replicas: "*".to_owned(),
        }
    }

    /// The lists of `node` rebuilding its replicas of `partitions` (partition -> replicas):
    /// `node` receives each, the other replicas send.
    pub fn of_rebuild(
        name: impl Into<String>,
        node: BrokerId,
        partitions: &std::collections::BTreeMap<i32, Vec<BrokerId>>,
    ) -> Self {
        let pairs = |keep: &dyn Fn(BrokerId) -> bool| {
            partitions
                .iter()
                .flat_map(|(p, replicas)| {
                    let mut brokers: Vec<BrokerId> =
                        replicas.iter().copied().filter(|b| keep(*b)).collect();
                    brokers.sort();
                    brokers.into_iter().map(move |b| format!("{p}:{}", b.0))
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        Self {
            name: name.into(),
            leader_replicas: pairs(&|b| b != node),
            follower_replicas: pairs(&|b| b == node),
        }
    }

    fn lists(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            (LEADER_REPLICAS, self.leader_replicas.as_str()),
            (FOLLOWER_REPLICAS, self.follower_replicas.as_str()),
        ]
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
    }
}

/// One config of a [`ReplicationThrottle`] that is not as it was set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    /// The broker or topic.
    pub resource: ConfigResource,
    /// The config.
    pub key: &'static str,
    /// The value the throttle sets.
    pub want: String,
    /// The value set now: `None` when it was removed, another value when someone else set
    /// it.
    pub found: Option<String>,
}

impl Drift {
    /// `"<resource> <key>"`, e.g. `broker 3 follower.replication.throttled.rate`.
    pub fn name(&self) -> String {
        format!("{} {}", self.resource, self.key)
    }
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.found {
            None => write!(f, "{} {}={}", self.resource, self.key, self.want),
            Some(v) => write!(f, "{} {}={v} (not {})", self.resource, self.key, self.want),
        }
    }
}

/// Setting or lifting a [`ReplicationThrottle`] failed on one resource.
#[derive(Debug, thiserror::Error)]
#[error("{resource}: {source}")]
pub struct ThrottleError {
    /// The broker or topic whose configs could not be altered.
    pub resource: String,
    /// The cause.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl ReplicationThrottle {
    /// The throttle of one node's rebuild: its recorded partitions listed exactly, or `*` on
    /// its topics for a journal that recorded no partitions.
    pub fn of_rebuild(node: BrokerId, rebuild: &Rebuild) -> Self {
        let topics = rebuild
            .topics
            .iter()
            .map(|t| match rebuild.partitions.get(t) {
                Some(partitions) => ThrottledTopic::of_rebuild(t.clone(), node, partitions),
                None => ThrottledTopic::all(t.clone()),
            })
            .collect();
        Self {
            receivers: vec![node],
            senders: rebuild.senders.clone(),
            topics,
        }
    }

    fn rates(&self) -> impl Iterator<Item = (BrokerId, &'static str)> + '_ {
        let receivers = self.receivers.iter().map(|b| (*b, FOLLOWER_RATE));
        receivers.chain(self.senders.iter().map(|b| (*b, LEADER_RATE)))
    }

    fn topic(name: &str) -> Result<ConfigResource, ThrottleError> {
        TopicName::new(name)
            .map(ConfigResource::Topic)
            .map_err(|e| ThrottleError {
                resource: format!("topic {name}"),
                source: e.into(),
            })
    }

    /// Sets it at `rate` bytes per second: the topics first, then the rates (until a rate is
    /// set, the lists throttle nothing). A broker's own configs can only be altered while
    /// it runs.
    pub async fn set(&self, admin: &AdminClient, rate: u64) -> Result<(), ThrottleError> {
        for topic in &self.topics {
            let ops: Vec<ConfigOp> = topic
                .lists()
                .map(|(key, value)| ConfigOp::set(key, value))
                .collect();
            alter(admin, &Self::topic(&topic.name)?, &ops).await?;
        }
        for (broker, key) in self.rates() {
            alter(
                admin,
                &ConfigResource::Broker(broker),
                &[ConfigOp::set(key, rate)],
            )
            .await?;
        }
        Ok(())
    }

    /// Every config it sets at `rate`: the resource, the key, the value.
    fn entries(
        &self,
        rate: u64,
    ) -> Result<Vec<(ConfigResource, &'static str, String)>, ThrottleError> {
        let mut entries: Vec<_> = self
            .rates()
            .map(|(b, key)| (ConfigResource::Broker(b), key, rate.to_string()))
            .collect();
        for t in &self.topics {
            let topic = Self::topic(&t.name)?;
            entries.extend(
                t.lists()
                    .map(|(key, value)| (topic.clone(), key, value.to_owned())),
            );
        }
        Ok(entries)
    }

    /// What of it at `rate` is not as it set it now (empty when all is): removed (`found`
    /// `None`), or set by someone else to another value. Only a broker's or a topic's own
    /// overrides count: a cluster-wide default the broker reports instead is a removal. Fails
    /// when a broker cannot answer (a broker's own configs are read from that broker, so not
    /// while it is down).
    pub async fn drift(&self, admin: &AdminClient, rate: u64) -> Result<Vec<Drift>, ThrottleError> {
        let entries = self.entries(rate)?;
        let mut resources: Vec<ConfigResource> = Vec::new();
        for (resource, _, _) in &entries {
            if !resources.contains(resource) {
                resources.push(resource.clone());
            }
        }
        let set: std::collections::BTreeMap<(ConfigResource, String), String> = admin
            .own_throttle_overrides(&resources)
            .await
            .map_err(|e| ThrottleError {
                resource: "the brokers and topics of the throttle".to_owned(),
                source: Box::new(e),
            })?
            .into_iter()
            .map(|(resource, key, value)| ((resource, key), value))
            .collect();
        Ok(entries
            .into_iter()
            .filter_map(|(resource, key, want)| {
                let found = set.get(&(resource.clone(), key.to_owned())).cloned();
                (found.as_deref() != Some(want.as_str())).then_some(Drift {
                    resource,
                    key,
                    want,
                    found,
                })
            })
            .collect())
    }

    /// Sets the configs of `drifted` to what this throttle wants.
    pub async fn set_again(admin: &AdminClient, drifted: &[Drift]) -> Result<(), ThrottleError> {
        for d in drifted {
            alter(admin, &d.resource, &[ConfigOp::set(d.key, &d.want)]).await?;
        }
        Ok(())
    }

    /// Deletes what [`ReplicationThrottle::set`] set: the rates first, then the lists. A topic
    /// deleted meanwhile has nothing left to lift.
    pub async fn lift(&self, admin: &AdminClient) -> Result<(), ThrottleError> {
        self.lift_except(admin, &[]).await
    }

    /// [`ReplicationThrottle::lift`], leaving the configs named in `keep` (as
    /// [`Drift::name`] names them: someone else's now).
    pub async fn lift_except(
        &self,
        admin: &AdminClient,
        keep: &[String],
    ) -> Result<(), ThrottleError> {
        let kept = |resource: &ConfigResource, key: &str| {
            keep.iter().any(|k| *k == format!("{resource} {key}"))
        };
        for (broker, key) in self.rates() {
            let resource = ConfigResource::Broker(broker);
            if kept(&resource, key) {
                continue;
            }
            alter(admin, &resource, &[ConfigOp::Delete(key.into())]).await?;
        }
        for topic in &self.topics {
            let resource = Self::topic(&topic.name)?;
            let ops: Vec<ConfigOp> = [LEADER_REPLICAS, FOLLOWER_REPLICAS]
                .into_iter()
                .filter(|key| !kept(&resource, key))
                .map(|key| ConfigOp::Delete(key.into()))
                .collect();
            if ops.is_empty() {
                continue;
            }
            match alter(admin, &resource, &ops).await {
                Err(e)
                    if matches!(
                        e.source.downcast_ref::<kpilot_kafka::AdminError>(),
                        Some(kpilot_kafka::AdminError::UnknownTopic { .. })
                    ) => {}
                other => other?,
            }
        }
        Ok(())
    }
}

async fn alter(
    admin: &AdminClient,
    resource: &ConfigResource,
    ops: &[ConfigOp],
) -> Result<(), ThrottleError> {
    admin
        .alter_configs(resource, ops)
        .await
        .map_err(|e| ThrottleError {
            resource: resource.to_string(),
            source: Box::new(e),
        })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn partitions(list: &[(i32, &[i32])]) -> BTreeMap<i32, Vec<BrokerId>> {
        list.iter()
            .map(|(p, bs)| (*p, bs.iter().map(|b| BrokerId(*b)).collect()))
            .collect()
    }

    #[test]
    fn a_rebuild_lists_its_node_as_follower_and_the_other_replicas_as_leaders() {
        let t = ThrottledTopic::of_rebuild(
            "orders",
            BrokerId(2),
            &partitions(&[(0, &[3, 2, 1]), (4, &[2, 5]), (7, &[2])]),
        );
        assert_eq!(t.follower_replicas, "0:2,4:2,7:2");
        assert_eq!(t.leader_replicas, "0:1,0:3,4:5");
        // A node that is the only replica has no leader to list.
        let alone = ThrottledTopic::of_rebuild("solo", BrokerId(2), &partitions(&[(0, &[2])]));
        assert_eq!(
            alone.lists().collect::<Vec<_>>(),
            [(FOLLOWER_REPLICAS, "0:2")]
        );
    }

    #[test]
    fn a_journal_without_partitions_throttles_its_topics_whole() {
        let mut rebuild = Rebuild {
            throttle_bytes_per_s: Some(1),
            senders: vec![BrokerId(1), BrokerId(3)],
            topics: vec!["old".into(), "new".into()],
            ..Rebuild::default()
        };
        rebuild
            .partitions
            .insert("new".into(), partitions(&[(1, &[1, 2, 3])]));
        let throttle = ReplicationThrottle::of_rebuild(BrokerId(2), &rebuild);
        assert_eq!(throttle.receivers, [BrokerId(2)]);
        assert_eq!(throttle.senders, [BrokerId(1), BrokerId(3)]);
        assert_eq!(
            throttle.topics,
            [
                ThrottledTopic::all("old"),
                ThrottledTopic {
                    name: "new".into(),
                    leader_replicas: "1:1,1:3".into(),
                    follower_replicas: "1:2".into(),
                },
            ]
        );
        // The journal reads the same without the field (written by an earlier version).
        let old = r#"{"throttle_bytes_per_s":1,"senders":[1,3],"topics":["old"],"applied":true,"bytes":null}"#;
        let parsed: Rebuild = serde_json::from_str(old).expect("old journal");
        assert!(parsed.partitions.is_empty());
    }
}
