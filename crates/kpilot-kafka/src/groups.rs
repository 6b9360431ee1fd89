//! Consumer groups: listing every group of the cluster (ListGroups on every live broker) and
//! reading a group's committed offsets (FindCoordinator, then OffsetFetch on the group's
//! coordinator), with the admin client's routing and retries. Performs network I/O.

use std::collections::BTreeMap;

use kafka_protocol::messages::{self as kp};
use kafka_protocol::protocol::StrBytes;
use kpilot_cluster::{BrokerId, TopicPartition};
use serde::Serialize;

use crate::admin::{AdminClient, AdminError, Route, broker_error, topic_name};

/// One group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupListing {
    /// The group id.
    pub group_id: String,
    /// The protocol type: `consumer` for consumer groups, `connect` for Kafka Connect, empty
    /// for groups that only commit offsets.
    pub protocol_type: String,
    /// The group's state (`Stable`, `Empty`, ...), when the broker reports it.
    pub state: Option<String>,
    /// The group's type (`classic`, `consumer`, `share`...), when the broker reports it.
    pub group_type: Option<String>,
    /// The broker that coordinates it (the one that listed it).
    pub coordinator: BrokerId,
}

/// The committed offsets of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupOffsets {
    /// The group id.
    pub group_id: String,
    /// Committed offset per partition (partitions without a commit are left out).
    pub offsets: BTreeMap<TopicPartition, i64>,
}

impl GroupOffsets {
    /// The topics the group has committed offsets for.
    pub fn topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self.offsets.keys().map(|tp| tp.topic.to_string()).collect();
        topics.dedup();
        topics
    }
}

fn text(s: &StrBytes) -> Option<String> {
    Some(s.to_string()).filter(|s| !s.is_empty())
}

impl AdminClient {
    /// ListGroups on every live broker (each lists the groups it coordinates): every group of
    /// the cluster, sorted by id.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, AdminError> {
        let metadata = self.metadata().await?;
        let mut groups = Vec::new();
        for &broker in metadata.brokers.keys() {
            let request = kp::ListGroupsRequest::default();
            let listed = self
                .retrying("ListGroups", self.api_timeout(), || async {
                    let response = self.call(Route::Broker(broker), &request).await?;
                    broker_error(
                        "ListGroups",
                        format!("broker {broker}"),
                        response.error_code,
                        None,
                    )?;
                    Ok(response.groups)
                })
                .await?;
            groups.extend(listed.iter().map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: text(&g.group_state),
                group_type: text(&g.group_type),
                coordinator: broker,
            }));
        }
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        groups.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(groups)
    }

    /// The broker coordinating `group` (FindCoordinator).
    pub async fn group_coordinator(&self, group: &str) -> Result<BrokerId, AdminError> {
        self.retrying("FindCoordinator", self.api_timeout(), || async {
            let connection = self.route(Route::Any).await?;
            let version = connection.version_for::<kp::FindCoordinatorRequest>()?;
            let key = StrBytes::from_string(group.to_owned());
            let mut request = kp::FindCoordinatorRequest::default().with_key_type(0);
            if version >= 4 {
                request = request.with_coordinator_keys(vec![key]);
            } else {
                request = request.with_key(key);
            }
            let response = connection.send_version(&request, version).await?;
            let resource = format!("group {group}");
            if version >= 4 {
                let c =
                    response
                        .coordinators
                        .first()
                        .ok_or_else(|| AdminError::InvalidResponse {
                            operation: "FindCoordinator",
                            message: format!("no coordinator entry for group {group}"),
                        })?;
                broker_error(
                    "FindCoordinator",
                    resource,
                    c.error_code,
                    c.error_message.as_ref(),
                )?;
                Ok(BrokerId(c.node_id.0))
            } else {
                broker_error(
                    "FindCoordinator",
                    resource,
                    response.error_code,
                    response.error_message.as_ref(),
                )?;
                Ok(BrokerId(response.node_id.0))
            }
        })
        .await
    }

    /// The committed offsets of `group` for every partition it committed to (OffsetFetch on
    /// the group's coordinator).
    pub async fn group_offsets(&self, group: &str) -> Result<GroupOffsets, AdminError> {
        let coordinator = self.group_coordinator(group).await?;
        let offsets = self
            .retrying("OffsetFetch", self.api_timeout(), || async {
                let connection = self.route(Route::Broker(coordinator)).await?;
                let version = connection.version_for::<kp::OffsetFetchRequest>()?;
                let group_id = kp::GroupId(StrBytes::from_string(group.to_owned()));
                let request = if version >= 8 {
                    kp::OffsetFetchRequest::default().with_groups(vec![
                        kp::offset_fetch_request::OffsetFetchRequestGroup::default()
                            .with_group_id(group_id)
                            .with_topics(None),
                    ])
                } else {
                    kp::OffsetFetchRequest::default()
                        .with_group_id(group_id)
                        .with_topics(None)
                };
                let response = connection.send_version(&request, version).await?;
                let resource = format!("group {group}");
                let mut offsets = BTreeMap::new();
                let mut keep = |topic: &kp::TopicName,
                                partition: i32,
                                offset: i64,
                                code: i16|
                 -> Result<(), AdminError> {
                    let name = topic_name(topic, "OffsetFetch")?;
                    let tp = TopicPartition::new(name, partition);
                    broker_error("OffsetFetch", &tp, code, None)?;
                    if offset >= 0 {
                        offsets.insert(tp, offset);
                    }
                    Ok(())
                };
                if version >= 8 {
                    let g = response
                        .groups
                        .first()
                        .ok_or_else(|| AdminError::InvalidResponse {
                            operation: "OffsetFetch",
                            message: format!("no entry for group {group}"),
                        })?;
                    broker_error("OffsetFetch", &resource, g.error_code, None)?;
                    for t in &g.topics {
                        for p in &t.partitions {
                            keep(&t.name, p.partition_index, p.committed_offset, p.error_code)?;
                        }
                    }
                } else {
                    broker_error("OffsetFetch", &resource, response.error_code, None)?;
                    for t in &response.topics {
                        for p in &t.partitions {
                            keep(&t.name, p.partition_index, p.committed_offset, p.error_code)?;
                        }
                    }
                }
                Ok(offsets)
            })
            .await?;
        Ok(GroupOffsets {
            group_id: group.to_owned(),
            offsets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpilot_cluster::TopicName;

    #[test]
    fn topics_of_a_group_are_listed_once() {
        let tp = |t: &str, p| TopicPartition::new(TopicName::new(t).expect("topic"), p);
        let g = GroupOffsets {
            group_id: "g".into(),
            offsets: [(tp("a", 0), 5), (tp("a", 1), 7), (tp("b", 0), 1)]
                .into_iter()
                .collect(),
        };
        assert_eq!(g.topics(), ["a", "b"]);
    }
}
