//! The [`KafkaPort`] adapter for `kpilot_kafka::AdminClient`: a cluster snapshot plus
//! DescribeCluster (for fenced brokers), ElectLeaders, the replication throttle of a rebuild
//! (IncrementalAlterConfigs) and a node's stored bytes (DescribeLogDirs). Performs network
//! I/O.

use kpilot_cluster::{BrokerId, TopicName, TopicPartition};
use kpilot_kafka::{
    AdminClient, ConfigOp, ConfigResource, ConfigSource, ElectionOutcome, FOLLOWER_RATE,
    FOLLOWER_REPLICAS, LEADER_RATE, LEADER_REPLICAS,
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
        let mut summary = ElectionSummary::default();
        for (tp, outcome) in outcomes {
            match outcome {
                ElectionOutcome::Elected => summary.elected += 1,
                ElectionOutcome::NotNeeded => summary.not_needed += 1,
                ElectionOutcome::Failed { error, message } => {
                    summary.failed.insert(
                        tp.to_string(),
                        message.unwrap_or_else(|| format!("{error:?}")),
                    );
                }
            }
        }
        Ok(summary)
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
    ) -> Result<(), KafkaPortError> {
        ReplicationThrottle::of_rebuild(node, rebuild)
            .lift(self)
            .await
            .map_err(|e| KafkaPortError::Throttle {
                action: "lifting",
                node,
                source: Box::new(e),
            })
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
        let keys = [
            LEADER_RATE,
            FOLLOWER_RATE,
            LEADER_REPLICAS,
            FOLLOWER_REPLICAS,
        ];
        let configs = self
            .describe_configs(&resources, Some(&keys))
            .await
            .map_err(observe)?;
        // Only a broker's or a topic's own overrides: a cluster-wide default (which every
        // broker reports too) is left as it was by a rebuild's override and its removal.
        Ok(configs
            .into_iter()
            .flat_map(|(resource, entries)| {
                entries.into_iter().filter_map(move |(key, e)| {
                    let own = matches!(
                        e.source,
                        ConfigSource::DynamicBrokerConfig | ConfigSource::DynamicTopicConfig
                    );
                    let value = e.value.filter(|v| own && !v.is_empty())?;
                    Some(format!("{resource} {key}={value}"))
                })
            })
            .collect())
    }
}

/// Where a replication throttle for rebuilding replicas goes: the follower rate on the
/// brokers that receive, the leader rate on the brokers that send, and `*` as both throttled
/// replica lists of the topics. Kafka throttles only replicas out of the ISR, so the rest of
/// the replication runs as before. A roll's rebuild throttles one receiver; a roll run by
/// someone else (Strimzi) throttles every broker both ways.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicationThrottle {
    /// Brokers that get `follower.replication.throttled.rate`.
    pub receivers: Vec<BrokerId>,
    /// Brokers that get `leader.replication.throttled.rate`.
    pub senders: Vec<BrokerId>,
    /// Topics whose throttled replica lists are set to `*`.
    pub topics: Vec<String>,
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
    /// The throttle of one node's rebuild.
    pub fn of_rebuild(node: BrokerId, rebuild: &Rebuild) -> Self {
        Self {
            receivers: vec![node],
            senders: rebuild.senders.clone(),
            topics: rebuild.topics.clone(),
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
    /// set, the `*` lists throttle nothing). A broker's own configs can only be altered while
    /// it runs.
    pub async fn set(&self, admin: &AdminClient, rate: u64) -> Result<(), ThrottleError> {
        for topic in &self.topics {
            let ops = [
                ConfigOp::set(LEADER_REPLICAS, "*"),
                ConfigOp::set(FOLLOWER_REPLICAS, "*"),
            ];
            alter(admin, &Self::topic(topic)?, &ops).await?;
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

    /// What of it at `rate` is not set now, as `"<resource> <key>=<value>"` (empty when all
    /// is): for noticing that something removed it. Fails when a broker cannot answer (a
    /// broker's own configs are read from that broker, so not while it is down).
    pub async fn missing(
        &self,
        admin: &AdminClient,
        rate: u64,
    ) -> Result<Vec<String>, ThrottleError> {
        let mut resources: Vec<ConfigResource> = Vec::new();
        for (broker, _) in self.rates() {
            if !resources.contains(&ConfigResource::Broker(broker)) {
                resources.push(ConfigResource::Broker(broker));
            }
        }
        for topic in &self.topics {
            resources.push(Self::topic(topic)?);
        }
        let set: std::collections::BTreeSet<String> = admin
            .throttle_overrides(&resources)
            .await
            .map_err(|e| ThrottleError {
                resource: "the brokers and topics of the throttle".to_owned(),
                source: Box::new(e),
            })?
            .into_iter()
            .map(|(r, k, v)| format!("{r} {k}={v}"))
            .collect();
        let rates = self
            .rates()
            .map(|(b, key)| format!("{} {key}={rate}", ConfigResource::Broker(b)));
        let lists = self.topics.iter().flat_map(|t| {
            [LEADER_REPLICAS, FOLLOWER_REPLICAS].map(|key| format!("topic {t} {key}=*"))
        });
        Ok(rates.chain(lists).filter(|e| !set.contains(e)).collect())
    }

    /// Deletes what [`ReplicationThrottle::set`] set: the rates first, then the lists. A topic
    /// deleted meanwhile has nothing left to lift.
    pub async fn lift(&self, admin: &AdminClient) -> Result<(), ThrottleError> {
        for (broker, key) in self.rates() {
            let ops = [ConfigOp::Delete(key.into())];
            alter(admin, &ConfigResource::Broker(broker), &ops).await?;
        }
        for topic in &self.topics {
            let ops = [
                ConfigOp::Delete(LEADER_REPLICAS.into()),
                ConfigOp::Delete(FOLLOWER_REPLICAS.into()),
            ];
            match alter(admin, &Self::topic(topic)?, &ops).await {
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
