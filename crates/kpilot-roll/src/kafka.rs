//! The [`KafkaPort`] adapter for `kpilot_kafka::AdminClient`: a cluster snapshot plus
//! DescribeCluster (for fenced brokers), and ElectLeaders. Performs network I/O.

use kpilot_cluster::TopicPartition;
use kpilot_kafka::{AdminClient, ElectionOutcome};

use crate::executor::now_ms;
use crate::gate::Observation;
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
}
