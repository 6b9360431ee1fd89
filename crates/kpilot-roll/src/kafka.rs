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
        let fail = |e: Box<dyn std::error::Error + Send + Sync>| KafkaPortError::Throttle {
            action: "setting",
            node,
            source: e,
        };
        // Topics first, then rates: until a rate is set, the `*` lists throttle nothing.
        for topic in &rebuild.topics {
            let resource =
                ConfigResource::Topic(TopicName::new(topic).map_err(|e| fail(e.into()))?);
            let ops = [
                ConfigOp::set(LEADER_REPLICAS, "*"),
                ConfigOp::set(FOLLOWER_REPLICAS, "*"),
            ];
            self.alter_configs(&resource, &ops)
                .await
                .map_err(|e| fail(Box::new(e)))?;
        }
        let rates = std::iter::once((node, FOLLOWER_RATE))
            .chain(rebuild.senders.iter().map(|s| (*s, LEADER_RATE)));
        for (broker, key) in rates {
            self.alter_configs(&ConfigResource::Broker(broker), &[ConfigOp::set(key, rate)])
                .await
                .map_err(|e| fail(Box::new(e)))?;
        }
        Ok(())
    }

    async fn lift_rebuild_throttle(
        &self,
        node: BrokerId,
        rebuild: &Rebuild,
    ) -> Result<(), KafkaPortError> {
        let fail = |e: Box<dyn std::error::Error + Send + Sync>| KafkaPortError::Throttle {
            action: "lifting",
            node,
            source: e,
        };
        let rates = std::iter::once((node, FOLLOWER_RATE))
            .chain(rebuild.senders.iter().map(|s| (*s, LEADER_RATE)));
        for (broker, key) in rates {
            self.alter_configs(
                &ConfigResource::Broker(broker),
                &[ConfigOp::Delete(key.into())],
            )
            .await
            .map_err(|e| fail(Box::new(e)))?;
        }
        for topic in &rebuild.topics {
            let resource =
                ConfigResource::Topic(TopicName::new(topic).map_err(|e| fail(e.into()))?);
            let ops = [
                ConfigOp::Delete(LEADER_REPLICAS.into()),
                ConfigOp::Delete(FOLLOWER_REPLICAS.into()),
            ];
            match self.alter_configs(&resource, &ops).await {
                // A topic deleted during the roll has nothing left to lift.
                Ok(()) | Err(kpilot_kafka::AdminError::UnknownTopic { .. }) => {}
                Err(e) => return Err(fail(Box::new(e))),
            }
        }
        Ok(())
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
