//! The safety gate: may this broker be stopped right now? Also the checks the roll waits on
//! after a restart (registered, every hosted partition back in the ISR) and the preferred
//! leadership check. Pure: functions of an [`Observation`], no I/O.
//!
//! The gate builds on `kpilot_cluster::analyze` (stop safety per partition: every partition
//! the broker hosts keeps at least `min.insync.replicas` live in-sync replicas without it) and
//! adds the cluster-wide rules: nothing offline or under min ISR anywhere, no reassignment
//! running, no other broker down or fenced (KRaft fences a registered broker while it recovers
//! its logs or catches up on metadata), and, for a KRaft controller, a majority of the voters
//! caught up without it.

use std::collections::BTreeSet;
use std::fmt;

use kpilot_cluster::{
    BrokerId, ClusterState, NodeId, StopBlockReason, StopBlocker, TopicName, TopicPartition,
    analyze, sample_list,
};
use serde::{Deserialize, Serialize};

/// What the roll knows about the cluster at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The state read through the admin client.
    pub state: ClusterState,
    /// Brokers that are registered but fenced (KRaft: recovering logs or catching up on
    /// metadata); they are not in `state.brokers`.
    pub fenced: BTreeSet<BrokerId>,
    /// When the observation was made, in milliseconds since the Unix epoch (kpilot's clock).
    pub now_ms: i64,
    /// Nodes whose process the fleet reports as not running. KRaft keeps a stopped broker
    /// registered but fenced, exactly like one recovering its logs; this tells them apart.
    #[serde(default)]
    pub down: BTreeSet<BrokerId>,
}

impl Observation {
    /// An observation of `state` with no fenced brokers, at `now_ms`.
    pub fn new(state: ClusterState, now_ms: i64) -> Self {
        Observation {
            state,
            fenced: BTreeSet::new(),
            now_ms,
            down: BTreeSet::new(),
        }
    }

    /// Whether `broker` is registered, unfenced and listed in metadata.
    pub fn is_serving(&self, broker: BrokerId) -> bool {
        self.state.is_live(broker) && !self.fenced.contains(&broker)
    }

    /// The KRaft voters (controllers), if the quorum was described.
    pub fn voters(&self) -> BTreeSet<BrokerId> {
        self.state
            .quorum
            .iter()
            .flat_map(|q| q.voters.iter().map(|v| BrokerId::from(v.id)))
            .collect()
    }

    /// Every node the roll may touch: brokers (live, down or fenced) and controllers.
    pub fn nodes(&self) -> BTreeSet<BrokerId> {
        let mut all = self.state.known_brokers();
        all.extend(self.fenced.iter().copied());
        all.extend(self.voters());
        all
    }

    /// Whether `broker` is registered but fenced while its process runs: recovering its logs
    /// or catching up on metadata.
    pub fn in_recovery(&self, broker: BrokerId) -> bool {
        self.fenced.contains(&broker) && !self.down.contains(&broker)
    }

    /// Whether `node` is a broker (hosts partitions, is registered, or is fenced).
    pub fn is_broker(&self, node: BrokerId) -> bool {
        self.state.known_brokers().contains(&node) || self.fenced.contains(&node)
    }
}

/// Tunables of the gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateRules {
    /// Topics whose replication factor is at or below their min ISR that the user accepted
    /// by name: stopping a broker makes their partitions unwritable for `acks=all` while it is
    /// down, and the gate does not block on that.
    pub accepted_topics: BTreeSet<TopicName>,
    /// A voter counts as caught up when its last caught-up time is within this many
    /// milliseconds of the leader's (Kafka's `controller.quorum.fetch.timeout.ms` is 2 s).
    pub quorum_caught_up_window_ms: i64,
}

impl Default for GateRules {
    fn default() -> Self {
        GateRules {
            accepted_topics: BTreeSet::new(),
            quorum_caught_up_window_ms: 5_000,
        }
    }
}

/// How many example partitions a block lists.
pub const EXAMPLES: usize = 5;

/// One reason the gate is closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GateBlock {
    /// Stopping the broker would take these partitions below `min.insync.replicas` (or their
    /// safety cannot be shown).
    PartitionsWouldGoBelowMinIsr {
        /// The partitions and why, the first [`EXAMPLES`] of them.
        partitions: Vec<StopBlocker>,
        /// How many partitions block.
        count: usize,
    },
    /// Partitions without a leader somewhere in the cluster.
    OfflinePartitions {
        /// The first few.
        partitions: Vec<TopicPartition>,
        /// How many.
        count: usize,
    },
    /// Partitions below `min.insync.replicas` somewhere in the cluster.
    UnderMinIsr {
        /// The first few.
        partitions: Vec<TopicPartition>,
        /// How many.
        count: usize,
    },
    /// Partition reassignments are running.
    ReassignmentsRunning {
        /// The first few partitions being moved.
        partitions: Vec<TopicPartition>,
        /// How many.
        count: usize,
    },
    /// Other brokers are down (hold replicas but are not registered).
    BrokersDown {
        /// The brokers.
        brokers: Vec<BrokerId>,
    },
    /// Brokers run but are fenced: recovering logs or catching up on metadata.
    BrokersInRecovery {
        /// The brokers.
        brokers: Vec<BrokerId>,
    },
    /// The KRaft quorum has no leader.
    NoActiveController,
    /// The KRaft quorum could not be described, so controller safety cannot be shown.
    QuorumUnknown,
    /// The node is a controller and too few of the other voters are caught up for the quorum
    /// to keep a majority without it.
    QuorumNotCaughtUp {
        /// Other voters caught up.
        caught_up: usize,
        /// How many are needed (a majority of all voters).
        needed: usize,
        /// The voters that are not caught up.
        lagging: Vec<NodeId>,
    },
}

impl GateBlock {
    /// The partitions this block names (for progress and reports).
    pub fn partitions(&self) -> Vec<TopicPartition> {
        match self {
            GateBlock::PartitionsWouldGoBelowMinIsr { partitions, .. } => partitions
                .iter()
                .map(|b| b.topic_partition.clone())
                .collect(),
            GateBlock::OfflinePartitions { partitions, .. }
            | GateBlock::UnderMinIsr { partitions, .. }
            | GateBlock::ReassignmentsRunning { partitions, .. } => partitions.clone(),
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for GateBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateBlock::PartitionsWouldGoBelowMinIsr { partitions, count } => {
                let shown: Vec<String> = partitions
                    .iter()
                    .map(|b| format!("{} ({})", b.topic_partition, b.reason))
                    .collect();
                write!(
                    f,
                    "{count} partition(s) would go below min.insync.replicas: {}",
                    sample_list(&shown, *count)
                )
            }
            GateBlock::OfflinePartitions { partitions, count } => write!(
                f,
                "{count} partition(s) are offline: {}",
                sample_list(partitions, *count)
            ),
            GateBlock::UnderMinIsr { partitions, count } => write!(
                f,
                "{count} partition(s) are below min.insync.replicas: {}",
                sample_list(partitions, *count)
            ),
            GateBlock::ReassignmentsRunning { partitions, count } => write!(
                f,
                "{count} partition reassignment(s) are running: {}",
                sample_list(partitions, *count)
            ),
            GateBlock::BrokersDown { brokers } => {
                write!(
                    f,
                    "broker(s) {} are down",
                    sample_list(brokers, brokers.len())
                )
            }
            GateBlock::BrokersInRecovery { brokers } => write!(
                f,
                "broker(s) {} are running but fenced (recovering logs or catching up)",
                sample_list(brokers, brokers.len())
            ),
            GateBlock::NoActiveController => f.write_str("the KRaft quorum has no leader"),
            GateBlock::QuorumUnknown => f.write_str("the KRaft quorum could not be described"),
            GateBlock::QuorumNotCaughtUp {
                caught_up,
                needed,
                lagging,
            } => write!(
                f,
                "only {caught_up} other controller(s) are caught up, {needed} needed (lagging: {})",
                sample_list(lagging, lagging.len())
            ),
        }
    }
}

/// The gate's answer for one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateVerdict {
    /// The node asked about.
    pub broker: BrokerId,
    /// Why it may not be stopped now; empty when it may.
    pub blocks: Vec<GateBlock>,
}

impl GateVerdict {
    /// Whether the node may be stopped now.
    pub fn is_open(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Every partition the blocks name.
    pub fn partitions(&self) -> Vec<TopicPartition> {
        self.blocks.iter().flat_map(GateBlock::partitions).collect()
    }
}

impl fmt::Display for GateVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.blocks.is_empty() {
            return write!(f, "broker {} may be stopped", self.broker);
        }
        let reasons: Vec<String> = self.blocks.iter().map(ToString::to_string).collect();
        write!(
            f,
            "broker {} may not be stopped: {}",
            self.broker,
            reasons.join("; ")
        )
    }
}

fn counted<T: Clone>(items: &[T]) -> (Vec<T>, usize) {
    (items.iter().take(EXAMPLES).cloned().collect(), items.len())
}

/// May `broker` be stopped now? See the module docs for the rules. A node that is already
/// down (not registered) may be "stopped" and restarted whatever the partitions look like
/// (restarting it can only help); a fenced one (log recovery) never; the controller rule
/// applies to every voter.
pub fn evaluate(obs: &Observation, broker: BrokerId, rules: &GateRules) -> GateVerdict {
    let state = &obs.state;
    let mut blocks = Vec::new();
    let serving = obs.is_serving(broker);
    if obs.in_recovery(broker) {
        // Never restart a broker in log recovery: it would start the recovery over.
        blocks.push(GateBlock::BrokersInRecovery {
            brokers: vec![broker],
        });
    }
    let health = analyze(state);

    if serving {
        let blockers: Vec<StopBlocker> = health
            .blockers_of(broker)
            .iter()
            .filter(|b| {
                !(matches!(
                    b.reason,
                    StopBlockReason::ReplicationFactorNotAboveMinIsr { .. }
                ) && rules.accepted_topics.contains(&b.topic_partition.topic))
            })
            .cloned()
            .collect();
        if !blockers.is_empty() {
            let (partitions, count) = counted(&blockers);
            blocks.push(GateBlock::PartitionsWouldGoBelowMinIsr { partitions, count });
        }
        let offline: Vec<TopicPartition> = health
            .partitions
            .iter()
            .filter(|p| p.offline)
            .map(|p| p.topic_partition.clone())
            .collect();
        if !offline.is_empty() {
            let (partitions, count) = counted(&offline);
            blocks.push(GateBlock::OfflinePartitions { partitions, count });
        }
        let under: Vec<TopicPartition> = health
            .partitions
            .iter()
            .filter(|p| p.under_min_isr && !p.offline)
            .map(|p| p.topic_partition.clone())
            .collect();
        if !under.is_empty() {
            let (partitions, count) = counted(&under);
            blocks.push(GateBlock::UnderMinIsr { partitions, count });
        }
        if !state.reassignments.is_empty() {
            let moving: Vec<TopicPartition> = state
                .reassignments
                .iter()
                .map(|r| r.topic_partition.clone())
                .collect();
            let (partitions, count) = counted(&moving);
            blocks.push(GateBlock::ReassignmentsRunning { partitions, count });
        }
        let down: Vec<BrokerId> = state
            .known_brokers()
            .into_iter()
            .filter(|b| *b != broker && !state.is_live(*b) && !obs.in_recovery(*b))
            .collect();
        if !down.is_empty() {
            blocks.push(GateBlock::BrokersDown { brokers: down });
        }
        let fenced: Vec<BrokerId> = obs
            .fenced
            .iter()
            .copied()
            .filter(|b| *b != broker && obs.in_recovery(*b))
            .collect();
        if !fenced.is_empty() {
            blocks.push(GateBlock::BrokersInRecovery { brokers: fenced });
        }
    }
    match &state.quorum {
        None => blocks.push(GateBlock::QuorumUnknown),
        Some(q) => {
            if q.leader.is_none() {
                blocks.push(GateBlock::NoActiveController);
            } else if q.voters.iter().any(|v| BrokerId::from(v.id) == broker) {
                let reference = q
                    .voters
                    .iter()
                    .find(|v| Some(v.id) == q.leader)
                    .and_then(|v| v.last_caught_up_timestamp_ms)
                    .unwrap_or(obs.now_ms);
                let mut caught_up = 0;
                let mut lagging = Vec::new();
                for v in q.voters.iter().filter(|v| BrokerId::from(v.id) != broker) {
                    let ok = Some(v.id) == q.leader
                        || match (v.log_end_offset, v.last_caught_up_timestamp_ms) {
                            (None, _) => false,
                            (Some(_), Some(t)) => reference - t <= rules.quorum_caught_up_window_ms,
                            (Some(leo), None) => leo >= q.high_watermark,
                        };
                    if ok {
                        caught_up += 1;
                    } else {
                        lagging.push(v.id);
                    }
                }
                let needed = q.voters.len() / 2 + 1;
                if caught_up < needed {
                    blocks.push(GateBlock::QuorumNotCaughtUp {
                        caught_up,
                        needed,
                        lagging,
                    });
                }
            }
        }
    }
    GateVerdict { broker, blocks }
}

/// Topics that cannot survive any broker stop (replication factor at or below min ISR) and
/// were not accepted by name.
pub fn refused_topics(state: &ClusterState, rules: &GateRules) -> Vec<(TopicName, usize, u16)> {
    analyze(state)
        .topics_blocking_stops
        .into_iter()
        .filter(|t| !rules.accepted_topics.contains(&t.topic))
        .map(|t| (t.topic, t.replication_factor, t.min_insync_replicas))
        .collect()
}

/// How far a restarted broker is from being back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatchUp {
    /// The broker.
    pub broker: BrokerId,
    /// Registered and listed in metadata.
    pub registered: bool,
    /// Registered but fenced (recovering logs or catching up on metadata).
    pub fenced: bool,
    /// Partitions it hosts.
    pub hosted: usize,
    /// Hosted partitions where it is not in the ISR yet.
    pub behind: Vec<TopicPartition>,
    /// Bytes its replicas of those partitions lack compared with their leaders, where both
    /// sizes are known.
    pub bytes_behind: u64,
}

impl CatchUp {
    /// Registered, unfenced, and in the ISR of every partition it hosts.
    pub fn is_complete(&self) -> bool {
        self.registered && !self.fenced && self.behind.is_empty()
    }
}

/// How far `broker` is from being back in every ISR.
pub fn catch_up(obs: &Observation, broker: BrokerId) -> CatchUp {
    let state = &obs.state;
    let size_on = |b: BrokerId, tp: &TopicPartition| -> Option<u64> {
        state
            .log_dirs
            .get(&b)?
            .iter()
            .flat_map(|d| d.replicas.iter())
            .find(|r| !r.is_future && &r.topic_partition == tp)
            .map(|r| r.size_bytes)
    };
    let mut hosted = 0;
    let mut behind = Vec::new();
    let mut bytes_behind = 0u64;
    for (topic, p) in state.partitions() {
        if !p.replicas.contains(&broker) {
            continue;
        }
        hosted += 1;
        if !p.in_sync(broker) {
            let tp = TopicPartition::new(topic.name.clone(), p.partition);
            if let Some(leader) = p.leader
                && let Some(lead) = size_on(leader, &tp)
            {
                bytes_behind += lead.saturating_sub(size_on(broker, &tp).unwrap_or(0));
            }
            behind.push(tp);
        }
    }
    CatchUp {
        broker,
        registered: state.is_live(broker),
        fenced: obs.fenced.contains(&broker),
        hosted,
        behind,
        bytes_behind,
    }
}

/// Partitions not led by their preferred replica although that replica is live and in sync
/// (so a preferred election would fix them). With `broker`, only partitions whose preferred
/// replica is that broker.
pub fn not_preferred(state: &ClusterState, broker: Option<BrokerId>) -> Vec<TopicPartition> {
    state
        .partitions()
        .filter(|(_, p)| {
            let Some(preferred) = p.preferred_leader() else {
                return false;
            };
            broker.is_none_or(|b| b == preferred)
                && p.leader != Some(preferred)
                && p.in_sync(preferred)
                && state.is_live(preferred)
        })
        .map(|(t, p)| TopicPartition::new(t.name.clone(), p.partition))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpilot_cluster::fixtures::uniform_cluster;

    fn obs(state: ClusterState) -> Observation {
        Observation::new(state, 1_000)
    }

    #[test]
    fn healthy_cluster_lets_any_broker_stop() {
        let o = obs(uniform_cluster(3, &[("orders", 6, 3, 2)]));
        for b in 1..=3 {
            let v = evaluate(&o, BrokerId(b), &GateRules::default());
            assert!(v.is_open(), "{v}");
        }
    }

    #[test]
    fn a_down_broker_closes_the_gate_for_the_others_naming_partitions() {
        let state = uniform_cluster(3, &[("orders", 6, 3, 2)]).with_broker_stopped(BrokerId(3));
        let v = evaluate(&obs(state), BrokerId(1), &GateRules::default());
        assert!(!v.is_open());
        assert!(v.blocks.contains(&GateBlock::BrokersDown {
            brokers: vec![BrokerId(3)]
        }));
        let named = v.partitions();
        assert!(!named.is_empty());
        assert!(v.to_string().contains("orders-"), "{v}");
    }

    #[test]
    fn the_down_broker_itself_may_be_restarted() {
        let state = uniform_cluster(3, &[("orders", 6, 3, 2)]).with_broker_stopped(BrokerId(3));
        let v = evaluate(&obs(state), BrokerId(3), &GateRules::default());
        // Quorum: voters 1 and 2 are caught up (fixture), so a majority remains.
        assert!(v.is_open(), "{v}");
    }

    #[test]
    fn rf_at_min_isr_blocks_unless_accepted() {
        let state = uniform_cluster(3, &[("orders", 3, 3, 2), ("fragile", 3, 2, 2)]);
        let v = evaluate(&obs(state.clone()), BrokerId(1), &GateRules::default());
        assert!(!v.is_open());
        let rules = GateRules {
            accepted_topics: [TopicName::new("fragile").expect("name")].into(),
            ..GateRules::default()
        };
        assert!(evaluate(&obs(state.clone()), BrokerId(1), &rules).is_open());
        assert_eq!(refused_topics(&state, &GateRules::default()).len(), 1);
        assert!(refused_topics(&state, &rules).is_empty());
    }

    #[test]
    fn reassignment_and_fenced_brokers_close_the_gate() {
        let mut state = uniform_cluster(3, &[("orders", 3, 3, 2)]);
        state
            .reassignments
            .push(kpilot_cluster::PartitionReassignment {
                topic_partition: TopicPartition::new(TopicName::new("orders").expect("n"), 0),
                replicas: vec![BrokerId(1), BrokerId(2), BrokerId(3)],
                adding: vec![],
                removing: vec![],
            });
        let v = evaluate(&obs(state.clone()), BrokerId(1), &GateRules::default());
        assert!(matches!(
            v.blocks[..],
            [GateBlock::ReassignmentsRunning { count: 1, .. }]
        ));
        state.reassignments.clear();
        // KRaft lists a fenced broker in DescribeCluster only, not in metadata.
        state.brokers.remove(&BrokerId(2));
        let mut o = obs(state);
        o.fenced.insert(BrokerId(2));
        let v = evaluate(&o, BrokerId(1), &GateRules::default());
        assert!(v.blocks.contains(&GateBlock::BrokersInRecovery {
            brokers: vec![BrokerId(2)]
        }));
        // Fenced while running: never restart it (log recovery would start over).
        assert!(!evaluate(&o, BrokerId(2), &GateRules::default()).is_open());
        // Fenced because its process is down: it is simply down, and may be restarted.
        o.down.insert(BrokerId(2));
        let v = evaluate(&o, BrokerId(1), &GateRules::default());
        assert!(v.blocks.contains(&GateBlock::BrokersDown {
            brokers: vec![BrokerId(2)]
        }));
        assert!(evaluate(&o, BrokerId(2), &GateRules::default()).is_open());
    }

    #[test]
    fn controller_needs_a_caught_up_majority_of_the_others() {
        let mut state = uniform_cluster(3, &[("orders", 3, 3, 2)]);
        let q = state.quorum.as_mut().expect("fixture quorum");
        q.high_watermark = 500;
        q.voters[0].log_end_offset = Some(500); // leader 1
        q.voters[1].log_end_offset = Some(500);
        q.voters[2].log_end_offset = Some(100); // voter 3 lags
        let v = evaluate(&obs(state.clone()), BrokerId(2), &GateRules::default());
        assert!(
            matches!(&v.blocks[..], [GateBlock::QuorumNotCaughtUp { caught_up: 1, needed: 2, lagging }] if lagging == &vec![NodeId(3)]),
            "{v}"
        );
        // Stopping the lagging voter itself keeps a caught-up majority (1 and 2).
        assert!(evaluate(&obs(state), BrokerId(3), &GateRules::default()).is_open());
    }

    #[test]
    fn catch_up_counts_partitions_and_bytes_behind() {
        let mut state = uniform_cluster(3, &[("orders", 3, 3, 2)]);
        for p in state
            .topics
            .values_mut()
            .flat_map(|t| t.partitions.values_mut())
        {
            p.isr.retain(|b| *b != BrokerId(2));
        }
        let c = catch_up(&obs(state), BrokerId(2));
        assert_eq!(c.hosted, 3);
        assert_eq!(c.behind.len(), 3);
        assert!(!c.is_complete());
    }

    #[test]
    fn not_preferred_lists_fixable_partitions() {
        let mut state = uniform_cluster(3, &[("orders", 3, 3, 2)]);
        let p = state
            .topics
            .values_mut()
            .flat_map(|t| t.partitions.values_mut())
            .next()
            .expect("a partition");
        let preferred = p.replicas[0];
        p.leader = Some(p.replicas[1]);
        assert_eq!(not_preferred(&state, None).len(), 1);
        assert_eq!(not_preferred(&state, Some(preferred)).len(), 1);
        assert!(
            not_preferred(&state, Some(BrokerId(if preferred.0 == 1 { 2 } else { 1 }))).is_empty()
        );
    }
}
