//! The [`ReassignPort`] adapter over `kpilot-kafka`'s admin client, and reading a plan input
//! (placements, sizes, racks) from a live cluster. Performs network I/O.

use std::collections::{BTreeMap, BTreeSet};

use kpilot_cluster::{BrokerId, TopicPartition};
use kpilot_kafka::{AdminClient, AdminError, ConfigOp, ConfigResource, ConfigSource};
use kpilot_rebalance::{BrokerChange, PlanInput};

use crate::port::{ElectionSummary, PortError, ReassignPort};

impl ReassignPort for AdminClient {
    async fn live_brokers(&self) -> Result<BTreeSet<BrokerId>, PortError> {
        let m = self
            .metadata()
            .await
            .map_err(|e| read("the cluster metadata", e))?;
        Ok(m.brokers.keys().copied().collect())
    }

    async fn assignment(&self) -> Result<BTreeMap<TopicPartition, Vec<BrokerId>>, PortError> {
        let m = self
            .metadata()
            .await
            .map_err(|e| read("the cluster metadata", e))?;
        Ok(m.topics
            .values()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|(p, s)| (TopicPartition::new(t.name.clone(), *p), s.replicas.clone()))
            })
            .collect())
    }

    async fn ongoing(&self) -> Result<BTreeSet<TopicPartition>, PortError> {
        let list = self
            .list_partition_reassignments()
            .await
            .map_err(|e| read("the reassignments in progress", e))?;
        Ok(list.into_iter().map(|r| r.topic_partition).collect())
    }

    async fn reassign(
        &self,
        changes: &[(TopicPartition, Option<Vec<BrokerId>>)],
    ) -> Result<(), PortError> {
        self.alter_partition_reassignments(changes)
            .await
            .map_err(|e| PortError::Reassign {
                action: if !changes.is_empty() && changes.iter().all(|c| c.1.is_none()) {
                    "cancelling"
                } else {
                    "submitting"
                },
                partitions: changes.len(),
                source: Box::new(e),
            })
    }

    async fn configure(
        &self,
        resource: &ConfigResource,
        ops: &[ConfigOp],
    ) -> Result<(), PortError> {
        self.alter_configs(resource, ops)
            .await
            .map_err(|e| PortError::Configure {
                resource: resource.to_string(),
                source: Box::new(e),
            })
    }

    async fn validate(
        &self,
        resources: &[ConfigResource],
        ops: &[ConfigOp],
    ) -> Result<(), PortError> {
        self.validate_configs(resources, ops)
            .await
            .map_err(|e| PortError::Validate {
                resource: match (&e, resources) {
                    (kpilot_kafka::AdminError::Broker { resource, .. }, _) => resource.clone(),
                    (_, [one]) => one.to_string(),
                    _ => format!("{} resources", resources.len()),
                },
                source: Box::new(e),
            })
    }

    async fn overrides_seen(
        &self,
        resource: &ConfigResource,
        keys: &[&str],
    ) -> Result<BTreeMap<BrokerId, BTreeMap<String, String>>, PortError> {
        let brokers = match resource {
            ConfigResource::Broker(b) => BTreeSet::from([*b]),
            _ => self.live_brokers().await?,
        };
        let mut out = BTreeMap::new();
        for b in brokers {
            let configs = match self
                .describe_configs_at(b, std::slice::from_ref(resource), Some(keys))
                .await
            {
                Ok(configs) => configs,
                Err(AdminError::UnknownTopic { .. }) => BTreeMap::new(),
                Err(e) => return Err(read("the config overrides each broker applies", e)),
            };
            let seen = configs
                .into_values()
                .flatten()
                .filter(|(_, e)| {
                    matches!(
                        e.source,
                        ConfigSource::DynamicBrokerConfig | ConfigSource::DynamicTopicConfig
                    )
                })
                .filter_map(|(k, e)| e.value.filter(|v| !v.is_empty()).map(|v| (k, v)))
                .collect();
            out.insert(b, seen);
        }
        Ok(out)
    }

    async fn throttles_set(
        &self,
        resources: &[ConfigResource],
    ) -> Result<Vec<(ConfigResource, String, String)>, PortError> {
        if resources.is_empty() {
            return Ok(Vec::new());
        }
        self.own_throttle_overrides(resources)
            .await
            .map_err(|e| read("the replication throttle overrides", e))
    }

    async fn stored(&self, broker: BrokerId) -> Result<BTreeSet<TopicPartition>, PortError> {
        Ok(log_sizes(self, broker, "the drained broker's log dirs")
            .await?
            .into_keys()
            .collect())
    }

    async fn replica_sizes(
        &self,
        broker: BrokerId,
    ) -> Result<BTreeMap<TopicPartition, u64>, PortError> {
        log_sizes(self, broker, "the new replicas' log dirs").await
    }

    async fn elect_preferred(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<ElectionSummary, PortError> {
        let outcomes = self
            .elect_preferred_leaders(Some(partitions))
            .await
            .map_err(|e| PortError::Elect {
                source: Box::new(e),
            })?;
        Ok(ElectionSummary::of(outcomes))
    }
}

/// Every replica log `broker` stores (DescribeLogDirs), with its size (the largest when a
/// partition is in two of its dirs); `what` names the read in an error.
async fn log_sizes(
    admin: &AdminClient,
    broker: BrokerId,
    what: &'static str,
) -> Result<BTreeMap<TopicPartition, u64>, PortError> {
    let dirs = admin
        .describe_log_dirs(broker)
        .await
        .map_err(|e| read(what, e))?;
    let mut sizes: BTreeMap<TopicPartition, u64> = BTreeMap::new();
    for r in dirs.into_iter().flat_map(|d| d.replicas) {
        let size = sizes.entry(r.topic_partition).or_default();
        *size = (*size).max(r.size_bytes);
    }
    Ok(sizes)
}

fn read(what: &'static str, e: AdminError) -> PortError {
    PortError::Read {
        what,
        source: Box::new(e),
    }
}

/// Reads what the planner needs from the cluster: every partition's replicas, its size (the
/// largest replica's log, from DescribeLogDirs on every broker) and every broker's rack.
/// Fails when a broker's log dirs cannot be read, since sizes drive the plan.
pub async fn read_plan_input(
    admin: &AdminClient,
    change: BrokerChange,
) -> Result<PlanInput, PortError> {
    let snapshot = admin
        .snapshot()
        .await
        .map_err(|e| read("the cluster snapshot", e))?;
    if let Some(gap) = snapshot
        .gaps
        .iter()
        .find(|g| g.what.starts_with("log dirs"))
    {
        return Err(PortError::Read {
            what: "the partition sizes (log dirs)",
            source: format!("{}: {}", gap.what, gap.error).into(),
        });
    }
    PlanInput::from_cluster(&snapshot.state, change, &BTreeMap::new()).map_err(|e| {
        PortError::Read {
            what: "every topic's placement",
            source: Box::new(e),
        }
    })
}

/// A replication-throttle override set now: the broker or topic, the key, the value.
pub type ThrottleOverride = kpilot_kafka::ThrottleOverride;

/// The replication-throttle overrides set now on `resources`
/// ([`AdminClient::throttle_overrides`]). The executor returns only once every broker
/// applies its removals, so right after a run this is empty unless a throttle was left
/// behind.
pub async fn throttle_overrides(
    admin: &AdminClient,
    resources: &[ConfigResource],
) -> Result<Vec<ThrottleOverride>, AdminError> {
    admin.throttle_overrides(resources).await
}
