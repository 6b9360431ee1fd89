//! Health analysis of a [`ClusterState`]: per-partition status (under-replicated, under/at min
//! ISR, offline, leader not preferred), per-broker load, partition sizes, quorum state, and the
//! brokers that can be stopped right now without taking any partition below
//! `min.insync.replicas`. Pure: [`analyze`] is a function of its input only, no I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{BrokerId, NodeId, TopicName, TopicPartition};
use crate::state::{ClusterState, PartitionState, ThrottleScope, TopicState};

/// The result of [`analyze`]: what is healthy, what is wrong, and what may be stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthSnapshot {
    /// Overall verdict: the worst severity among [`HealthSnapshot::findings`].
    pub status: HealthStatus,
    /// The cluster id, if known.
    pub cluster_id: Option<String>,
    /// The active controller (KRaft quorum leader), if known.
    pub controller: Option<NodeId>,
    /// Cluster-wide totals.
    pub totals: Totals,
    /// Partition counts by condition.
    pub counts: PartitionCounts,
    /// One entry per known broker (live or down), by id.
    pub brokers: Vec<BrokerHealth>,
    /// One entry per partition, ordered by topic then partition.
    pub partitions: Vec<PartitionHealth>,
    /// Topics whose replication factor is not above their `min.insync.replicas`: while such a
    /// topic exists, no broker hosting one of its replicas can ever be stopped safely
    /// (the lesson Strimzi learned: a roll would make these partitions unwritable).
    pub topics_blocking_stops: Vec<TopicBlockingStops>,
    /// Live brokers that could be stopped right now without any partition dropping below its
    /// `min.insync.replicas` in-sync replicas.
    pub safe_to_stop: BTreeSet<BrokerId>,
    /// For each live broker that is *not* safe to stop, the partitions that block it.
    pub stop_blockers: BTreeMap<BrokerId, Vec<StopBlocker>>,
    /// The metadata quorum, if it was described.
    pub quorum: Option<QuorumHealth>,
    /// What is wrong or worth knowing, most severe first.
    pub findings: Vec<Finding>,
}

impl HealthSnapshot {
    /// Whether nothing at all is wrong.
    pub fn is_healthy(&self) -> bool {
        self.status == HealthStatus::Healthy
    }

    /// The partitions that block stopping `broker`; empty when it is safe (or not live).
    pub fn blockers_of(&self, broker: BrokerId) -> &[StopBlocker] {
        self.stop_blockers
            .get(&broker)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// One partition's health, if the partition exists.
    pub fn partition(&self, tp: &TopicPartition) -> Option<&PartitionHealth> {
        self.partitions
            .binary_search_by(|p| p.topic_partition.cmp(tp))
            .ok()
            .map(|i| &self.partitions[i])
    }

    /// One broker's health, if the broker is known.
    pub fn broker(&self, id: BrokerId) -> Option<&BrokerHealth> {
        self.brokers.iter().find(|b| b.id == id)
    }
}

/// The overall verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Nothing is wrong.
    Healthy,
    /// Data is available and durable as configured, but something needs attention
    /// (under-replicated partitions, leaders off their preferred replica...).
    Degraded,
    /// Data is unavailable or not durable as configured (offline partitions, partitions under
    /// min ISR, brokers down, failed log directories).
    Critical,
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Critical => "critical",
        })
    }
}

/// Cluster-wide totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Live brokers.
    pub live_brokers: usize,
    /// Brokers that are assigned replicas but are not live.
    pub down_brokers: usize,
    /// Topics.
    pub topics: usize,
    /// Partitions.
    pub partitions: usize,
    /// Assigned replicas (sum of replication factors).
    pub replicas: usize,
    /// Bytes on disk over all brokers that reported log directories (all replicas).
    pub bytes_on_disk: u64,
}

/// How many partitions are in each condition. A partition may count in several.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionCounts {
    /// ISR smaller than the replica set.
    pub under_replicated: usize,
    /// ISR smaller than `min.insync.replicas`: `acks=all` writes fail.
    pub under_min_isr: usize,
    /// ISR exactly `min.insync.replicas`: one more lost replica and writes fail.
    pub at_min_isr: usize,
    /// No leader: neither reads nor writes.
    pub offline: usize,
    /// Led by a replica other than the preferred (first) one.
    pub leader_not_preferred: usize,
    /// Being reassigned.
    pub reassigning: usize,
    /// Whose topic's `min.insync.replicas` is unknown.
    pub min_isr_unknown: usize,
}

/// One partition's state and conditions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionHealth {
    /// The partition.
    pub topic_partition: TopicPartition,
    /// The current leader, if any.
    pub leader: Option<BrokerId>,
    /// The preferred leader (first assigned replica).
    pub preferred_leader: Option<BrokerId>,
    /// Assigned replicas.
    pub replicas: Vec<BrokerId>,
    /// In-sync replicas.
    pub isr: Vec<BrokerId>,
    /// Replicas on offline log directories.
    pub offline_replicas: Vec<BrokerId>,
    /// The topic's effective `min.insync.replicas`, if known.
    pub min_insync_replicas: Option<u16>,
    /// The partition's size: the largest of its replicas' sizes, if any replica reported one.
    pub size_bytes: Option<u64>,
    /// ISR smaller than the replica set.
    pub under_replicated: bool,
    /// ISR smaller than `min.insync.replicas`.
    pub under_min_isr: bool,
    /// ISR exactly `min.insync.replicas`.
    pub at_min_isr: bool,
    /// No leader.
    pub offline: bool,
    /// Has a leader that is not the preferred replica.
    pub leader_not_preferred: bool,
    /// Being reassigned.
    pub reassigning: bool,
}

/// One broker's share of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerHealth {
    /// The broker.
    pub id: BrokerId,
    /// `host:port` it advertises, if live.
    pub address: Option<String>,
    /// Its rack, if live and set.
    pub rack: Option<String>,
    /// Whether it is registered and unfenced.
    pub live: bool,
    /// Whether it is the active controller (combined mode) .
    pub controller: bool,
    /// Partitions it leads.
    pub leaders: usize,
    /// Replicas assigned to it.
    pub replicas: usize,
    /// Partitions for which it is the preferred leader.
    pub preferred_leaders: usize,
    /// Assigned replicas that are not in their partition's ISR.
    pub out_of_sync_replicas: usize,
    /// Bytes of all its replicas' logs, if it reported its log directories.
    pub bytes_on_disk: Option<u64>,
    /// Log directories that report an error.
    pub failed_log_dirs: Vec<String>,
    /// Whether it can be stopped now without any partition going below min ISR
    /// (always false for a broker that is not live).
    pub safe_to_stop: bool,
    /// How many partitions block stopping it.
    pub blocking_partitions: usize,
}

/// A topic whose replication factor does not exceed its `min.insync.replicas`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicBlockingStops {
    /// The topic.
    pub topic: TopicName,
    /// Its replication factor.
    pub replication_factor: usize,
    /// Its effective `min.insync.replicas`.
    pub min_insync_replicas: u16,
}

/// A partition that makes stopping a broker unsafe, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopBlocker {
    /// The partition.
    pub topic_partition: TopicPartition,
    /// Why it blocks.
    pub reason: StopBlockReason,
}

/// Why a partition blocks stopping one of its replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StopBlockReason {
    /// The topic's replication factor is not above `min.insync.replicas`, so losing any replica
    /// makes the partition unwritable for `acks=all` producers. Fix the topic's configuration.
    ReplicationFactorNotAboveMinIsr {
        /// The replication factor.
        replication_factor: usize,
        /// The effective `min.insync.replicas`.
        min_insync_replicas: u16,
    },
    /// Without the broker, fewer live in-sync replicas than `min.insync.replicas` would remain.
    WouldGoBelowMinIsr {
        /// Live in-sync replicas left after the stop.
        isr_after_stop: usize,
        /// The effective `min.insync.replicas`.
        min_insync_replicas: u16,
        /// Whether the partition is already below min ISR before the stop.
        already_below: bool,
    },
    /// The topic's `min.insync.replicas` is unknown, so safety cannot be shown.
    MinIsrUnknown,
    /// The broker stores a replica of a topic that Metadata did not list (the principal lacks
    /// DESCRIBE on it): its ISR and `min.insync.replicas` are unknown, so safety cannot be
    /// shown.
    TopicNotVisible,
}

impl fmt::Display for StopBlockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopBlockReason::ReplicationFactorNotAboveMinIsr {
                replication_factor,
                min_insync_replicas,
            } => write!(
                f,
                "replication factor {replication_factor} is not above min.insync.replicas {min_insync_replicas}"
            ),
            StopBlockReason::WouldGoBelowMinIsr {
                isr_after_stop,
                min_insync_replicas,
                already_below,
            } => {
                write!(
                    f,
                    "{isr_after_stop} in-sync replica(s) would remain, min.insync.replicas is {min_insync_replicas}"
                )?;
                if *already_below {
                    f.write_str(" (already below)")?;
                }
                Ok(())
            }
            StopBlockReason::MinIsrUnknown => f.write_str("min.insync.replicas is unknown"),
            StopBlockReason::TopicNotVisible => f.write_str(
                "the topic is stored on the broker but not visible in Metadata (no DESCRIBE on it)",
            ),
        }
    }
}

/// The metadata quorum as the analysis sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumHealth {
    /// The active controller, if any.
    pub leader: Option<NodeId>,
    /// The leader epoch.
    pub leader_epoch: i32,
    /// The committed offset of the metadata log.
    pub high_watermark: i64,
    /// Voters (controllers).
    pub voters: Vec<QuorumMemberHealth>,
    /// Observers (brokers).
    pub observers: Vec<QuorumMemberHealth>,
}

/// One quorum member's replication progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumMemberHealth {
    /// The node.
    pub id: NodeId,
    /// Its log end offset, if known.
    pub log_end_offset: Option<i64>,
    /// How far its log end offset is behind the high watermark (0 when caught up), if known.
    pub lag: Option<i64>,
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; nothing is wrong.
    Info,
    /// Needs attention; data is still available and durable as configured.
    Warning,
    /// Data is unavailable or not durable as configured.
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        })
    }
}

/// Something the analysis noticed, with a human sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// How serious it is.
    pub severity: Severity,
    /// A one-line human description.
    pub message: String,
    /// The machine-readable detail.
    pub issue: Issue,
}

/// The kinds of findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Issue {
    /// A broker holds replicas but is not live.
    BrokerDown {
        /// The broker.
        broker: BrokerId,
        /// How many replicas are assigned to it.
        replicas: usize,
    },
    /// Partitions without a leader.
    OfflinePartitions {
        /// The first few of them.
        examples: Vec<TopicPartition>,
        /// How many.
        count: usize,
    },
    /// Partitions with fewer in-sync replicas than `min.insync.replicas`.
    UnderMinIsr {
        /// The first few of them.
        examples: Vec<TopicPartition>,
        /// How many.
        count: usize,
    },
    /// Partitions whose ISR is smaller than their replica set.
    UnderReplicated {
        /// The first few of them.
        examples: Vec<TopicPartition>,
        /// How many.
        count: usize,
    },
    /// Partitions exactly at `min.insync.replicas`.
    AtMinIsr {
        /// The first few of them.
        examples: Vec<TopicPartition>,
        /// How many.
        count: usize,
    },
    /// A log directory reports an error.
    LogDirFailed {
        /// The broker.
        broker: BrokerId,
        /// The directory.
        path: String,
        /// The reported error.
        error: String,
    },
    /// Topics whose replication factor is not above their min ISR.
    ReplicationFactorNotAboveMinIsr {
        /// The topics.
        topics: Vec<TopicName>,
    },
    /// Topics whose `min.insync.replicas` could not be read.
    MinIsrUnknown {
        /// The topics.
        topics: Vec<TopicName>,
    },
    /// Topics the brokers store (their log directories list them) that Metadata did not list:
    /// the principal lacks DESCRIBE on them, so their partitions cannot be checked and no
    /// broker hosting them is safe to stop.
    TopicsNotVisible {
        /// The first few of them.
        examples: Vec<TopicName>,
        /// How many.
        count: usize,
    },
    /// Partitions led by a replica other than their preferred one.
    LeadersNotPreferred {
        /// The first few of them.
        examples: Vec<TopicPartition>,
        /// How many.
        count: usize,
    },
    /// The metadata quorum has no leader.
    NoActiveController,
    /// A quorum voter's log end offset is unknown to the leader.
    VoterNotReplicating {
        /// The voter.
        voter: NodeId,
    },
    /// A quorum voter has stopped fetching from the leader (down or partitioned): its last
    /// fetch is well behind the other voters', or it lags far behind the high watermark.
    VoterBehind {
        /// The voter.
        voter: NodeId,
        /// Records behind the high watermark.
        lag: i64,
        /// Milliseconds between its last fetch and the most recent fetch of any voter, when
        /// the leader reported fetch times.
        stale_ms: Option<i64>,
    },
    /// Partition reassignments are in progress.
    ReassignmentsInProgress {
        /// How many partitions are being moved.
        count: usize,
    },
    /// No live broker can be stopped safely.
    NoBrokerSafeToStop,
    /// Replication throttles are set while no reassignment is in progress: left behind by an
    /// interrupted reassignment tool (or the rebuilds of a halted roll onto empty disks), they
    /// slow every throttled replica that has to catch up (after a restart, say) to the
    /// throttle's rate.
    ThrottlesWithoutReassignment {
        /// Where they are set, first few.
        examples: Vec<ThrottleScope>,
        /// How many places.
        count: usize,
    },
}

/// How many example partitions a finding lists.
pub const FINDING_EXAMPLES: usize = 5;

/// Analyses a cluster state. Pure and deterministic.
///
/// Stop safety: a live broker `b` is safe to stop when, for every partition it hosts, the live
/// in-sync replicas other than `b` are at least the topic's `min.insync.replicas`, the topic's
/// replication factor is above its `min.insync.replicas`, and that value is known. A partition
/// that is already below min ISR therefore blocks every one of its live replicas, in sync or
/// not. Brokers that are not live are never in `safe_to_stop`, and neither is a broker whose
/// log directories hold a replica of a topic Metadata did not list (a principal without
/// DESCRIBE on a topic does not see it, but DescribeLogDirs shows its replicas).
pub fn analyze(state: &ClusterState) -> HealthSnapshot {
    let reassigning: BTreeSet<&TopicPartition> = state
        .reassignments
        .iter()
        .map(|r| &r.topic_partition)
        .collect();
    let sizes = partition_sizes(state);
    let controller = state.quorum.as_ref().and_then(|q| q.leader);

    let mut counts = PartitionCounts::default();
    let mut partitions = Vec::with_capacity(state.partition_count());
    let mut per_broker: BTreeMap<BrokerId, BrokerTally> = BTreeMap::new();
    for id in state.known_brokers() {
        per_broker.insert(id, BrokerTally::default());
    }
    let mut blockers: BTreeMap<BrokerId, Vec<StopBlocker>> =
        state.brokers.keys().map(|id| (*id, Vec::new())).collect();
    let mut topics_blocking_stops = Vec::new();
    let mut min_isr_unknown_topics = Vec::new();
    let mut examples = Examples::default();

    for topic in state.topics.values() {
        let rf = topic.replication_factor();
        match topic.min_insync_replicas {
            Some(min) if rf <= usize::from(min) && rf > 0 => {
                topics_blocking_stops.push(TopicBlockingStops {
                    topic: topic.name.clone(),
                    replication_factor: rf,
                    min_insync_replicas: min,
                });
            }
            None => min_isr_unknown_topics.push(topic.name.clone()),
            _ => {}
        }
        for p in topic.partitions.values() {
            let tp = TopicPartition::new(topic.name.clone(), p.partition);
            let health = partition_health(topic, p, &tp, &sizes, reassigning.contains(&tp));
            counts.add(&health);
            examples.add(&health);
            for replica in &p.replicas {
                let tally = per_broker.entry(*replica).or_default();
                tally.replicas += 1;
                if !p.in_sync(*replica) {
                    tally.out_of_sync += 1;
                }
            }
            if let Some(preferred) = p.preferred_leader() {
                per_broker.entry(preferred).or_default().preferred_leaders += 1;
            }
            if let Some(leader) = p.leader.filter(|_| !health.offline) {
                per_broker.entry(leader).or_default().leaders += 1;
            }
            for replica in &p.replicas {
                if let Some(list) = blockers.get_mut(replica)
                    && let Some(reason) = stop_block_reason(state, topic, p, *replica, rf)
                {
                    list.push(StopBlocker {
                        topic_partition: tp.clone(),
                        reason,
                    });
                }
            }
            partitions.push(health);
        }
    }

    // Replicas of topics Metadata did not list (no DESCRIBE on them): nothing is known of
    // their ISR, so the brokers storing them cannot be shown safe to stop.
    let mut hidden_topics: BTreeSet<&TopicName> = BTreeSet::new();
    for (broker, tp) in state.replicas_not_in_metadata() {
        hidden_topics.insert(&tp.topic);
        if let Some(list) = blockers.get_mut(&broker)
            && !list.iter().any(|b| &b.topic_partition == tp)
        {
            list.push(StopBlocker {
                topic_partition: tp.clone(),
                reason: StopBlockReason::TopicNotVisible,
            });
        }
    }

    let safe_to_stop: BTreeSet<BrokerId> = blockers
        .iter()
        .filter(|(_, list)| list.is_empty())
        .map(|(id, _)| *id)
        .collect();
    blockers.retain(|_, list| !list.is_empty());

    let mut failed_dirs = Vec::new();
    let mut bytes_total = 0u64;
    let brokers: Vec<BrokerHealth> = per_broker
        .into_iter()
        .map(|(id, tally)| {
            let info = state.brokers.get(&id);
            let dirs = state.log_dirs.get(&id);
            let bytes = dirs.map(|dirs| {
                dirs.iter()
                    .flat_map(|d| d.replicas.iter())
                    .map(|r| r.size_bytes)
                    .sum::<u64>()
            });
            bytes_total += bytes.unwrap_or(0);
            let failed: Vec<String> = dirs
                .into_iter()
                .flatten()
                .filter_map(|d| {
                    d.error.as_ref().map(|e| {
                        failed_dirs.push((id, d.path.clone(), e.clone()));
                        d.path.clone()
                    })
                })
                .collect();
            BrokerHealth {
                id,
                address: info.map(|b| b.address()),
                rack: info.and_then(|b| b.rack.clone()),
                live: info.is_some(),
                controller: controller == Some(NodeId::from(id)),
                leaders: tally.leaders,
                replicas: tally.replicas,
                preferred_leaders: tally.preferred_leaders,
                out_of_sync_replicas: tally.out_of_sync,
                bytes_on_disk: bytes,
                failed_log_dirs: failed,
                safe_to_stop: safe_to_stop.contains(&id),
                blocking_partitions: blockers.get(&id).map_or(0, Vec::len),
            }
        })
        .collect();

    let quorum = state.quorum.as_ref().map(|q| {
        let member = |r: &crate::state::QuorumReplica| QuorumMemberHealth {
            id: r.id,
            log_end_offset: r.log_end_offset,
            lag: r.log_end_offset.map(|leo| (q.high_watermark - leo).max(0)),
        };
        QuorumHealth {
            leader: q.leader,
            leader_epoch: q.leader_epoch,
            high_watermark: q.high_watermark,
            voters: q.voters.iter().map(member).collect(),
            observers: q.observers.iter().map(member).collect(),
        }
    });

    let totals = Totals {
        live_brokers: state.brokers.len(),
        down_brokers: brokers.iter().filter(|b| !b.live).count(),
        topics: state.topics.len(),
        partitions: partitions.len(),
        replicas: state.partitions().map(|(_, p)| p.replicas.len()).sum(),
        bytes_on_disk: bytes_total,
    };

    let mut findings = Vec::new();
    for b in brokers.iter().filter(|b| !b.live && b.replicas > 0) {
        findings.push(finding(Issue::BrokerDown {
            broker: b.id,
            replicas: b.replicas,
        }));
    }
    push_counted(
        &mut findings,
        counts.offline,
        examples.offline,
        |examples, count| Issue::OfflinePartitions { examples, count },
    );
    push_counted(
        &mut findings,
        counts.under_min_isr,
        examples.under_min_isr,
        |examples, count| Issue::UnderMinIsr { examples, count },
    );
    for (broker, path, error) in failed_dirs {
        findings.push(finding(Issue::LogDirFailed {
            broker,
            path,
            error,
        }));
    }
    if quorum.as_ref().is_some_and(|q| q.leader.is_none()) {
        findings.push(finding(Issue::NoActiveController));
    }
    push_counted(
        &mut findings,
        counts.under_replicated,
        examples.under_replicated,
        |examples, count| Issue::UnderReplicated { examples, count },
    );
    push_counted(
        &mut findings,
        counts.at_min_isr,
        examples.at_min_isr,
        |examples, count| Issue::AtMinIsr { examples, count },
    );
    if !topics_blocking_stops.is_empty() {
        findings.push(finding(Issue::ReplicationFactorNotAboveMinIsr {
            topics: topics_blocking_stops
                .iter()
                .map(|t| t.topic.clone())
                .collect(),
        }));
    }
    if !min_isr_unknown_topics.is_empty() {
        findings.push(finding(Issue::MinIsrUnknown {
            topics: min_isr_unknown_topics,
        }));
    }
    if !hidden_topics.is_empty() {
        findings.push(finding(Issue::TopicsNotVisible {
            examples: hidden_topics
                .iter()
                .take(FINDING_EXAMPLES)
                .map(|t| (*t).clone())
                .collect(),
            count: hidden_topics.len(),
        }));
    }
    if let Some(q) = &quorum {
        for v in q.voters.iter().filter(|v| v.log_end_offset.is_none()) {
            findings.push(finding(Issue::VoterNotReplicating { voter: v.id }));
        }
    }
    if let Some(q) = &state.quorum {
        findings.extend(voters_behind(q).into_iter().map(finding));
    }
    if !state.brokers.is_empty() && safe_to_stop.is_empty() {
        findings.push(finding(Issue::NoBrokerSafeToStop));
    }
    push_counted(
        &mut findings,
        counts.leader_not_preferred,
        examples.leader_not_preferred,
        |examples, count| Issue::LeadersNotPreferred { examples, count },
    );
    if counts.reassigning > 0 {
        findings.push(finding(Issue::ReassignmentsInProgress {
            count: counts.reassigning,
        }));
    }
    if counts.reassigning == 0 && state.reassignments.is_empty() {
        let throttled: BTreeSet<&ThrottleScope> =
            state.throttles.iter().map(|t| &t.scope).collect();
        if !throttled.is_empty() {
            findings.push(finding(Issue::ThrottlesWithoutReassignment {
                examples: throttled
                    .iter()
                    .take(FINDING_EXAMPLES)
                    .map(|s| (*s).clone())
                    .collect(),
                count: throttled.len(),
            }));
        }
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));

    let status = match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Critical) => HealthStatus::Critical,
        Some(Severity::Warning) => HealthStatus::Degraded,
        _ => HealthStatus::Healthy,
    };

    HealthSnapshot {
        status,
        cluster_id: state.cluster_id.clone(),
        controller,
        totals,
        counts,
        brokers,
        partitions,
        topics_blocking_stops,
        safe_to_stop,
        stop_blockers: blockers,
        quorum,
        findings,
    }
}

/// A voter is behind when its last fetch is more than [`VOTER_STALE_MS`] older than the most
/// recent fetch of any voter (followers fetch continuously, so a live one never falls that far
/// behind; comparing voters with each other needs no clock), or, when the leader reports no
/// fetch times, when it lags [`VOTER_LAG_RECORDS`] or more records behind the high watermark.
fn voters_behind(q: &crate::state::QuorumState) -> Vec<Issue> {
    let newest = q
        .voters
        .iter()
        .filter_map(|v| v.last_fetch_timestamp_ms)
        .max();
    q.voters
        .iter()
        .filter(|v| Some(v.id) != q.leader)
        .filter_map(|v| {
            let leo = v.log_end_offset?;
            let lag = (q.high_watermark - leo).max(0);
            let stale_ms = match (newest, v.last_fetch_timestamp_ms) {
                (Some(n), Some(t)) if t > 0 => Some(n - t),
                _ => None,
            };
            let behind = match stale_ms {
                Some(ms) => ms > VOTER_STALE_MS,
                None => lag >= VOTER_LAG_RECORDS,
            };
            behind.then_some(Issue::VoterBehind {
                voter: v.id,
                lag,
                stale_ms,
            })
        })
        .collect()
}

/// How much older than the freshest voter's a voter's last fetch may be, in milliseconds.
pub const VOTER_STALE_MS: i64 = 5_000;

/// Without fetch times: how many records behind the high watermark a voter may be.
pub const VOTER_LAG_RECORDS: i64 = 100;

/// Why stopping `broker` would be unsafe for partition `p` of `topic`, or `None` if it is safe.
///
/// `rf` is the topic's replication factor. This is the single rule behind
/// [`HealthSnapshot::safe_to_stop`]; planners can call it for one partition.
pub fn stop_block_reason(
    state: &ClusterState,
    topic: &TopicState,
    p: &PartitionState,
    broker: BrokerId,
    rf: usize,
) -> Option<StopBlockReason> {
    if !p.replicas.contains(&broker) {
        return None;
    }
    let Some(min) = topic.min_insync_replicas else {
        return Some(StopBlockReason::MinIsrUnknown);
    };
    if rf <= usize::from(min) {
        return Some(StopBlockReason::ReplicationFactorNotAboveMinIsr {
            replication_factor: rf,
            min_insync_replicas: min,
        });
    }
    let live_isr = |exclude: Option<BrokerId>| {
        p.isr
            .iter()
            .filter(|b| Some(**b) != exclude && state.is_live(**b))
            .count()
    };
    let after = live_isr(Some(broker));
    if after < usize::from(min) {
        return Some(StopBlockReason::WouldGoBelowMinIsr {
            isr_after_stop: after,
            min_insync_replicas: min,
            already_below: live_isr(None) < usize::from(min),
        });
    }
    None
}

#[derive(Default)]
struct BrokerTally {
    leaders: usize,
    replicas: usize,
    preferred_leaders: usize,
    out_of_sync: usize,
}

#[derive(Default)]
struct Examples {
    offline: Vec<TopicPartition>,
    under_min_isr: Vec<TopicPartition>,
    under_replicated: Vec<TopicPartition>,
    at_min_isr: Vec<TopicPartition>,
    leader_not_preferred: Vec<TopicPartition>,
}

impl Examples {
    fn add(&mut self, h: &PartitionHealth) {
        let push = |flag: bool, list: &mut Vec<TopicPartition>| {
            if flag && list.len() < FINDING_EXAMPLES {
                list.push(h.topic_partition.clone());
            }
        };
        push(h.offline, &mut self.offline);
        push(h.under_min_isr, &mut self.under_min_isr);
        push(h.under_replicated, &mut self.under_replicated);
        push(h.at_min_isr, &mut self.at_min_isr);
        push(h.leader_not_preferred, &mut self.leader_not_preferred);
    }
}

impl PartitionCounts {
    fn add(&mut self, h: &PartitionHealth) {
        self.under_replicated += usize::from(h.under_replicated);
        self.under_min_isr += usize::from(h.under_min_isr);
        self.at_min_isr += usize::from(h.at_min_isr);
        self.offline += usize::from(h.offline);
        self.leader_not_preferred += usize::from(h.leader_not_preferred);
        self.reassigning += usize::from(h.reassigning);
        self.min_isr_unknown += usize::from(h.min_insync_replicas.is_none());
    }
}

fn partition_health(
    topic: &TopicState,
    p: &PartitionState,
    tp: &TopicPartition,
    sizes: &BTreeMap<&TopicPartition, u64>,
    reassigning: bool,
) -> PartitionHealth {
    let min = topic.min_insync_replicas;
    let isr = p.isr.len();
    let offline = p.is_offline();
    let preferred = p.preferred_leader();
    PartitionHealth {
        topic_partition: tp.clone(),
        leader: p.leader,
        preferred_leader: preferred,
        replicas: p.replicas.clone(),
        isr: p.isr.clone(),
        offline_replicas: p.offline_replicas.clone(),
        min_insync_replicas: min,
        size_bytes: sizes.get(tp).copied(),
        under_replicated: isr < p.replicas.len(),
        under_min_isr: min.is_some_and(|m| isr < usize::from(m)),
        at_min_isr: min.is_some_and(|m| isr == usize::from(m)),
        offline,
        leader_not_preferred: !offline && p.leader.is_some() && p.leader != preferred,
        reassigning,
    }
}

/// The largest size among each partition's (non-future) replicas.
fn partition_sizes(state: &ClusterState) -> BTreeMap<&TopicPartition, u64> {
    let mut sizes: BTreeMap<&TopicPartition, u64> = BTreeMap::new();
    for dir in state.log_dirs.values().flatten() {
        for r in dir.replicas.iter().filter(|r| !r.is_future) {
            let entry = sizes.entry(&r.topic_partition).or_insert(0);
            *entry = (*entry).max(r.size_bytes);
        }
    }
    sizes
}

fn push_counted(
    findings: &mut Vec<Finding>,
    count: usize,
    examples: Vec<TopicPartition>,
    make: impl FnOnce(Vec<TopicPartition>, usize) -> Issue,
) {
    if count > 0 {
        findings.push(finding(make(examples, count)));
    }
}

fn finding(issue: Issue) -> Finding {
    Finding {
        severity: issue.severity(),
        message: issue.to_string(),
        issue,
    }
}

impl Issue {
    /// How serious this kind of finding is.
    pub fn severity(&self) -> Severity {
        match self {
            Issue::BrokerDown { .. }
            | Issue::OfflinePartitions { .. }
            | Issue::UnderMinIsr { .. }
            | Issue::LogDirFailed { .. }
            | Issue::NoActiveController => Severity::Critical,
            Issue::UnderReplicated { .. }
            | Issue::AtMinIsr { .. }
            | Issue::ReplicationFactorNotAboveMinIsr { .. }
            | Issue::MinIsrUnknown { .. }
            | Issue::TopicsNotVisible { .. }
            | Issue::VoterNotReplicating { .. }
            | Issue::VoterBehind { .. }
            | Issue::NoBrokerSafeToStop
            | Issue::LeadersNotPreferred { .. }
            | Issue::ThrottlesWithoutReassignment { .. } => Severity::Warning,
            Issue::ReassignmentsInProgress { .. } => Severity::Info,
        }
    }
}

/// `items` joined with ", ", followed by `", ... (N more)"` when `total` counts more than
/// the items shown: how every message of the project names a sample of a longer list.
pub fn sample_list<T: fmt::Display>(items: &[T], total: usize) -> String {
    let mut text = items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if total > items.len() {
        text.push_str(&format!(", ... ({} more)", total - items.len()));
    }
    text
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Issue::BrokerDown { broker, replicas } => write!(
                f,
                "broker {broker} is down; {replicas} replica(s) assigned to it are not being served"
            ),
            Issue::OfflinePartitions { examples, count } => write!(
                f,
                "{count} partition(s) have no leader and are unavailable: {}",
                sample_list(examples, *count)
            ),
            Issue::UnderMinIsr { examples, count } => write!(
                f,
                "{count} partition(s) are below min.insync.replicas; acks=all writes to them fail: {}",
                sample_list(examples, *count)
            ),
            Issue::UnderReplicated { examples, count } => write!(
                f,
                "{count} partition(s) are under-replicated: {}",
                sample_list(examples, *count)
            ),
            Issue::AtMinIsr { examples, count } => write!(
                f,
                "{count} partition(s) are at min.insync.replicas; one more lost replica stops writes: {}",
                sample_list(examples, *count)
            ),
            Issue::LogDirFailed {
                broker,
                path,
                error,
            } => write!(f, "log directory {path} on broker {broker} failed: {error}"),
            Issue::ReplicationFactorNotAboveMinIsr { topics } => write!(
                f,
                "topic(s) with replication factor not above min.insync.replicas block every broker stop: {}",
                sample_list(topics, topics.len())
            ),
            Issue::MinIsrUnknown { topics } => write!(
                f,
                "min.insync.replicas could not be read for topic(s): {}",
                sample_list(topics, topics.len())
            ),
            Issue::TopicsNotVisible { examples, count } => write!(
                f,
                "{count} topic(s) are stored on the brokers but not visible in Metadata, so their partitions cannot be checked and the brokers storing them are not safe to stop; grant this principal DESCRIBE on every topic (e.g. kafka-acls --add --allow-principal User:<name> --operation Describe --topic '*'): {}",
                sample_list(examples, *count)
            ),
            Issue::LeadersNotPreferred { examples, count } => write!(
                f,
                "{count} partition(s) are not led by their preferred replica (run a preferred leader election): {}",
                sample_list(examples, *count)
            ),
            Issue::NoActiveController => {
                f.write_str("the metadata quorum has no leader (no active controller)")
            }
            Issue::VoterNotReplicating { voter } => write!(
                f,
                "controller {voter} is a quorum voter but its log end offset is unknown to the leader"
            ),
            Issue::VoterBehind {
                voter,
                lag,
                stale_ms,
            } => match stale_ms {
                Some(ms) => write!(
                    f,
                    "controller {voter} has not fetched the metadata log for {:.1} s longer than the other voters ({lag} records behind): is it down?",
                    *ms as f64 / 1000.0
                ),
                None => write!(
                    f,
                    "controller {voter} is {lag} records behind the metadata log: is it down?"
                ),
            },
            Issue::ReassignmentsInProgress { count } => {
                write!(f, "{count} partition reassignment(s) in progress")
            }
            Issue::NoBrokerSafeToStop => f.write_str(
                "no broker can be shown safe to stop now (each hosts a partition that would go below min.insync.replicas or cannot be checked)",
            ),
            Issue::ThrottlesWithoutReassignment { examples, count } => write!(
                f,
                "replication throttles are set with no reassignment in progress, where they only slow replicas catching up (left by an interrupted reassignment or `kpilot roll --fresh-disks`?): {}. What a kpilot run left is removed by `kpilot rebalance --cancel` after a rebalance, or by rerunning the halted roll or `kpilot roll --abandon` after a roll; else delete them with kafka-configs --alter --delete-config",
                sample_list(examples, *count)
            ),
        }
    }
}
