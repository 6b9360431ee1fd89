//! The observed state of a Kafka cluster, as an admin client reads it: brokers, topics and
//! their partitions (leader, replicas, ISR), topic safety configs, log directory sizes, ongoing
//! reassignments and the KRaft quorum. Pure data: no I/O; adapters fill it in.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::ids::{BrokerId, NodeId, TopicName, TopicPartition};

/// Everything we know about a cluster at one moment.
///
/// Built by an adapter (the Kafka admin client, or a simulator) and analysed by
/// [`crate::analyze`]. Maps are ordered so that output is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The cluster id reported by the brokers, if known.
    pub cluster_id: Option<String>,
    /// Brokers that are registered and unfenced, i.e. listed in the metadata response.
    /// A broker that is down is absent here but may still appear in partitions' replica lists.
    pub brokers: BTreeMap<BrokerId, BrokerInfo>,
    /// Topics by name.
    pub topics: BTreeMap<TopicName, TopicState>,
    /// Log directories per broker, for brokers that answered DescribeLogDirs.
    pub log_dirs: BTreeMap<BrokerId, Vec<LogDir>>,
    /// Partition reassignments in progress.
    pub reassignments: Vec<PartitionReassignment>,
    /// The KRaft metadata quorum, if it could be described.
    pub quorum: Option<QuorumState>,
    /// Replication throttle overrides set now (Kafka's `*.replication.throttled.*` configs),
    /// as far as they could be read.
    #[serde(default)]
    pub throttles: Vec<ReplicationThrottle>,
}

/// Where a replication throttle override is set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "on", content = "id", rename_all = "snake_case")]
pub enum ThrottleScope {
    /// A rate on one broker.
    Broker(BrokerId),
    /// A rate set as the cluster-wide broker default.
    ClusterDefault,
    /// A list of throttled replicas on a topic.
    Topic(TopicName),
}

impl std::fmt::Display for ThrottleScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ThrottleScope::Broker(b) => write!(f, "broker {b}"),
            ThrottleScope::ClusterDefault => f.write_str("the cluster-wide broker default"),
            ThrottleScope::Topic(t) => write!(f, "topic {t}"),
        }
    }
}

/// One replication throttle override: a rate (`leader.replication.throttled.rate`,
/// `follower.replication.throttled.rate`) or a list of throttled replicas
/// (`leader.replication.throttled.replicas`, `follower...`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReplicationThrottle {
    /// Where it is set.
    pub scope: ThrottleScope,
    /// The config key.
    pub key: String,
    /// Its value.
    pub value: String,
}

/// A live broker as listed in cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// Its id.
    pub id: BrokerId,
    /// The host it advertises on the listener we talked to.
    pub host: String,
    /// The port it advertises on the listener we talked to.
    pub port: u16,
    /// Its `broker.rack`, if set.
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// `host:port` of the broker.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One topic: its partitions and the configs that decide its safety.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicState {
    /// The topic's name.
    pub name: TopicName,
    /// The topic id (a UUID in Kafka's base64 form), if known.
    pub topic_id: Option<String>,
    /// Whether Kafka marks it internal (`__consumer_offsets`, `__transaction_state`).
    pub internal: bool,
    /// The effective `min.insync.replicas` (topic override or broker default), if it could be
    /// read. `None` makes the analysis treat the topic as unknown and refuse to call any of its
    /// replicas safe to stop.
    pub min_insync_replicas: Option<u16>,
    /// Partitions by index.
    pub partitions: BTreeMap<i32, PartitionState>,
}

impl TopicState {
    /// The topic's replication factor: the largest replica count among its partitions
    /// (partitions of one topic normally all have the same count; during a reassignment the
    /// list temporarily holds the adding replicas too).
    pub fn replication_factor(&self) -> usize {
        self.partitions
            .values()
            .map(|p| p.replicas.len())
            .max()
            .unwrap_or(0)
    }
}

/// One partition's replica placement and leadership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// The partition index.
    pub partition: i32,
    /// The current leader, `None` when the partition has no leader (offline).
    pub leader: Option<BrokerId>,
    /// The leader epoch.
    pub leader_epoch: i32,
    /// The assigned replicas, in order; the first is the preferred leader.
    pub replicas: Vec<BrokerId>,
    /// The in-sync replicas.
    pub isr: Vec<BrokerId>,
    /// Replicas whose log directory is offline.
    pub offline_replicas: Vec<BrokerId>,
}

impl PartitionState {
    /// A partition with the given replicas and ISR, led by `leader`, epoch 0, nothing offline.
    pub fn new(
        partition: i32,
        leader: Option<BrokerId>,
        replicas: Vec<BrokerId>,
        isr: Vec<BrokerId>,
    ) -> Self {
        PartitionState {
            partition,
            leader,
            leader_epoch: 0,
            replicas,
            isr,
            offline_replicas: Vec::new(),
        }
    }

    /// The preferred leader: the first assigned replica.
    pub fn preferred_leader(&self) -> Option<BrokerId> {
        self.replicas.first().copied()
    }

    /// Whether the partition has no usable leader.
    pub fn is_offline(&self) -> bool {
        match self.leader {
            None => true,
            Some(leader) => self.offline_replicas.contains(&leader),
        }
    }

    /// Whether `broker` is in the ISR.
    pub fn in_sync(&self, broker: BrokerId) -> bool {
        self.isr.contains(&broker)
    }

    /// How many in-sync replicas would remain if `broker` stopped.
    pub fn isr_without(&self, broker: BrokerId) -> usize {
        self.isr.iter().filter(|b| **b != broker).count()
    }
}

/// One log directory of one broker, from DescribeLogDirs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogDir {
    /// The directory's absolute path on the broker.
    pub path: String,
    /// The error the broker reports for the directory (e.g. `KAFKA_STORAGE_ERROR`), if any.
    pub error: Option<String>,
    /// Total size of the volume in bytes, when the broker reports it.
    pub total_bytes: Option<u64>,
    /// Usable (free) bytes of the volume, when the broker reports it.
    pub usable_bytes: Option<u64>,
    /// The replicas stored in this directory.
    pub replicas: Vec<ReplicaLog>,
}

/// One replica's log in a log directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaLog {
    /// The partition.
    pub topic_partition: TopicPartition,
    /// Size of the replica's log segments in bytes.
    pub size_bytes: u64,
    /// The broker's reported lag for this replica (for future replicas: behind the current one).
    pub offset_lag: i64,
    /// Whether this is a "future" replica being moved between log directories.
    pub is_future: bool,
}

/// A partition reassignment in progress, from ListPartitionReassignments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionReassignment {
    /// The partition being moved.
    pub topic_partition: TopicPartition,
    /// The full replica set during the move (current plus adding).
    pub replicas: Vec<BrokerId>,
    /// Replicas being added.
    pub adding: Vec<BrokerId>,
    /// Replicas being removed.
    pub removing: Vec<BrokerId>,
}

/// The KRaft metadata quorum (the controllers' Raft log), from DescribeQuorum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumState {
    /// The active controller (quorum leader), `None` during an election.
    pub leader: Option<NodeId>,
    /// The leader epoch.
    pub leader_epoch: i32,
    /// The quorum's high watermark (committed offset of the metadata log).
    pub high_watermark: i64,
    /// Voters (controllers).
    pub voters: Vec<QuorumReplica>,
    /// Observers (brokers, and controllers not in the voter set).
    pub observers: Vec<QuorumReplica>,
}

/// The replication progress of one quorum member as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumReplica {
    /// The node id.
    pub id: NodeId,
    /// Its metadata log end offset, `None` if unknown to the leader.
    pub log_end_offset: Option<i64>,
    /// When it last fetched, in milliseconds since the Unix epoch, if known.
    pub last_fetch_timestamp_ms: Option<i64>,
    /// When it was last caught up, in milliseconds since the Unix epoch, if known.
    pub last_caught_up_timestamp_ms: Option<i64>,
}

impl ClusterState {
    /// Replicas the brokers' log directories hold of topics Metadata did not list, as
    /// `(broker, partition)`. Kafka leaves a topic out of Metadata when the principal lacks
    /// DESCRIBE on it, while DescribeLogDirs (DESCRIBE on the cluster) still lists its replicas,
    /// so these are the topics kpilot cannot see. Only brokers whose log dirs were read count.
    pub fn replicas_not_in_metadata(&self) -> impl Iterator<Item = (BrokerId, &TopicPartition)> {
        self.log_dirs.iter().flat_map(move |(broker, dirs)| {
            dirs.iter()
                .flat_map(|d| d.replicas.iter())
                .map(|r| &r.topic_partition)
                .filter(|tp| !self.topics.contains_key(&tp.topic))
                .map(move |tp| (*broker, tp))
        })
    }

    /// Every partition of every topic, with its topic.
    pub fn partitions(&self) -> impl Iterator<Item = (&TopicState, &PartitionState)> {
        self.topics
            .values()
            .flat_map(|t| t.partitions.values().map(move |p| (t, p)))
    }

    /// The number of partitions in the cluster.
    pub fn partition_count(&self) -> usize {
        self.topics.values().map(|t| t.partitions.len()).sum()
    }

    /// One partition, if it exists.
    pub fn partition(&self, tp: &TopicPartition) -> Option<&PartitionState> {
        self.topics.get(&tp.topic)?.partitions.get(&tp.partition)
    }

    /// Every broker id the state mentions: live brokers plus brokers that are assigned
    /// replicas (which may be down), plus brokers that reported log directories.
    pub fn known_brokers(&self) -> BTreeSet<BrokerId> {
        let mut ids: BTreeSet<BrokerId> = self.brokers.keys().copied().collect();
        for (_, p) in self.partitions() {
            ids.extend(p.replicas.iter().copied());
        }
        ids.extend(self.log_dirs.keys().copied());
        ids
    }

    /// Whether `broker` is live (registered and unfenced).
    pub fn is_live(&self, broker: BrokerId) -> bool {
        self.brokers.contains_key(&broker)
    }

    /// The state as it would be right after `broker` stopped: it leaves the live brokers and
    /// every ISR, and partitions it led move leadership to the first other in-sync replica
    /// (or become leaderless if none is left). A what-if for planners and tests; it does not
    /// model unclean leader election.
    pub fn with_broker_stopped(&self, broker: BrokerId) -> ClusterState {
        let mut next = self.clone();
        next.brokers.remove(&broker);
        for topic in next.topics.values_mut() {
            for p in topic.partitions.values_mut() {
                if !p.replicas.contains(&broker) {
                    continue;
                }
                // Kafka keeps the last in-sync replica in the ISR when it dies; mirror that.
                if p.isr.len() > 1 || p.isr.first() != Some(&broker) {
                    p.isr.retain(|b| *b != broker);
                }
                if p.leader == Some(broker) {
                    p.leader = p
                        .replicas
                        .iter()
                        .copied()
                        .find(|b| *b != broker && p.isr.contains(b));
                    p.leader_epoch += 1;
                }
            }
        }
        next
    }
}
