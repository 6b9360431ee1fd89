//! The roll planner: which nodes to roll onto the target size, in which order, and whether the
//! roll may start at all. Pure: a function of an [`Observation`] and the options, no I/O.
//!
//! Which: every broker (combined broker+controller nodes included) unless the options name
//! nodes. Dedicated controller-only nodes are rolled only when named: a resize changes the
//! brokers' instance type, and dedicated controllers have a size (a node pool) of their own.
//! A voter of a quorum of fewer than 3 is refused: stopping it leaves no majority, so no wait
//! would ever open the gate.
//!
//! Order: nodes that are already unhealthy first (down, fenced, out of some ISR, a failed log
//! directory, a lagging controller), because restarting them can only help and a healthy
//! cluster is what the gate needs for everyone else; then controller-only nodes; then brokers
//! (combined broker+controller nodes included); the active KRaft controller last, so the quorum
//! moves its leadership once. Ties by id. The executor re-plans the remaining nodes before
//! each one, so "active controller last" holds even when leadership moves during the roll.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kpilot_cluster::{BrokerId, NodeId, TopicName, analyze};
use kpilot_units::InstanceType;
use serde::{Deserialize, Serialize};

use crate::gate::{GateRules, Observation, refused_topics};

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollOptions {
    /// The size every rolled node gets.
    pub target: InstanceType,
    /// Only these nodes (`None`: every broker; dedicated controllers only when named).
    pub only: Option<BTreeSet<BrokerId>>,
    /// Gate tunables, including topics accepted by name.
    pub rules: GateRules,
    /// The replication throttle, bytes per second, of the rebuilds when the fleet gives
    /// rolled nodes empty disks ([`crate::Fleet::fresh_disks`]); `None`: unthrottled.
    pub rebuild_throttle_bytes_per_s: Option<u64>,
}

impl RollOptions {
    /// Roll every broker onto `target` with the default rules.
    pub fn new(target: InstanceType) -> Self {
        RollOptions {
            target,
            only: None,
            rules: GateRules::default(),
            rebuild_throttle_bytes_per_s: None,
        }
    }
}

/// What a node is in the KRaft cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    /// A broker only.
    Broker,
    /// A controller only (a quorum voter that hosts no partitions).
    Controller,
    /// Both (combined mode).
    Combined,
}

/// Why a node is where it is in the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Position {
    /// Already unhealthy: rolled first.
    Unhealthy {
        /// What is wrong with it.
        why: String,
    },
    /// A controller-only node.
    Controller,
    /// A broker.
    Broker,
    /// The active controller: rolled last.
    ActiveController,
}

impl Position {
    fn rank(&self) -> u8 {
        match self {
            Position::Unhealthy { .. } => 0,
            Position::Controller => 1,
            Position::Broker => 2,
            Position::ActiveController => 3,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Unhealthy { why } => write!(f, "unhealthy first ({why})"),
            Position::Controller => f.write_str("controller"),
            Position::Broker => f.write_str("broker"),
            Position::ActiveController => f.write_str("active controller, last"),
        }
    }
}

/// One node in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedNode {
    /// The node.
    pub id: BrokerId,
    /// Its KRaft role.
    pub role: NodeRole,
    /// Why it is at this position.
    pub position: Position,
    /// Its size now, if the fleet knows.
    pub current_size: Option<InstanceType>,
}

/// The ordered roll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollPlan {
    /// The size every node gets.
    pub target: InstanceType,
    /// The nodes to roll, in order.
    pub steps: Vec<PlannedNode>,
    /// Selected nodes already at the target size (not rolled).
    pub already_at_target: Vec<BrokerId>,
    /// Dedicated controllers left out because no nodes were named (they keep their size).
    #[serde(default)]
    pub controllers_not_named: Vec<BrokerId>,
    /// Topics accepted by name although they cannot survive a stop.
    pub accepted_topics: Vec<TopicName>,
}

/// Why no plan can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Some topics have a replication factor at or below their min ISR: every stop of a
    /// broker hosting them makes them unwritable for `acks=all` producers.
    #[error(
        "topic(s) {} cannot survive any broker stop (replication factor at or below min.insync.replicas); \
         raise their replication factor, or accept them with --accept-topic NAME",
        .topics.iter().map(|(t, rf, min)| format!("{t} (RF {rf}, min ISR {min})")).collect::<Vec<_>>().join(", ")
    )]
    TopicsCannotSurviveStop {
        /// The topics with their replication factor and min ISR.
        topics: Vec<(TopicName, usize, u16)>,
    },
    /// A node asked for is not part of the cluster.
    #[error(
        "node {id} is not part of the cluster (its nodes are {}); name only these with --brokers",
        .known.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    UnknownNode {
        /// The id asked for.
        id: BrokerId,
        /// The nodes the cluster has.
        known: Vec<BrokerId>,
    },
    /// A selected node is a voter of a quorum too small to lose one.
    #[error(
        "node {id} is a KRaft controller of a quorum of {voters} voter(s): stopping it leaves no \
         majority, so the metadata quorum would stop; roll it only in a quorum of 3 or more \
         voters, or leave it out of --brokers"
    )]
    QuorumTooSmall {
        /// The voter.
        id: BrokerId,
        /// How many voters the quorum has.
        voters: usize,
    },
}

/// The role of `node`.
pub fn role(obs: &Observation, node: BrokerId) -> NodeRole {
    let voter = obs.voters().contains(&node);
    match (obs.is_broker(node), voter) {
        (true, true) => NodeRole::Combined,
        (false, true) => NodeRole::Controller,
        _ => NodeRole::Broker,
    }
}

/// Where `node` goes in the order, and why.
pub fn position(obs: &Observation, node: BrokerId) -> Position {
    let state = &obs.state;
    let health = analyze(state);
    let active = state.quorum.as_ref().and_then(|q| q.leader);
    let node_role = role(obs, node);
    let mut why = Vec::new();
    if node_role != NodeRole::Controller {
        if obs.in_recovery(node) {
            why.push("fenced while running (recovering)".to_string());
        } else if !state.is_live(node) {
            why.push("down".to_string());
        }
        if let Some(b) = health.broker(node) {
            if state.is_live(node) && b.out_of_sync_replicas > 0 {
                why.push(format!("{} replica(s) out of sync", b.out_of_sync_replicas));
            }
            if !b.failed_log_dirs.is_empty() {
                why.push("failed log directory".to_string());
            }
        }
    }
    if let Some(q) = &state.quorum
        && let Some(v) = q.voters.iter().find(|v| BrokerId::from(v.id) == node)
        && Some(v.id) != q.leader
        && v.log_end_offset.is_none()
    {
        why.push("controller not replicating".to_string());
    }
    if !why.is_empty() {
        return Position::Unhealthy {
            why: why.join(", "),
        };
    }
    if active == Some(NodeId::from(node)) {
        return Position::ActiveController;
    }
    match node_role {
        NodeRole::Controller => Position::Controller,
        _ => Position::Broker,
    }
}

/// Orders `nodes` for rolling (see the module docs).
pub fn order(obs: &Observation, nodes: &BTreeSet<BrokerId>) -> Vec<BrokerId> {
    let mut ranked: Vec<(u8, BrokerId)> = nodes
        .iter()
        .map(|n| (position(obs, *n).rank(), *n))
        .collect();
    ranked.sort();
    ranked.into_iter().map(|(_, n)| n).collect()
}

/// Plans a roll: refuses topics that cannot survive a stop (unless accepted), checks the
/// selected nodes exist, skips nodes already at the target size, and orders the rest.
pub fn plan(
    obs: &Observation,
    options: &RollOptions,
    sizes: &BTreeMap<BrokerId, Option<InstanceType>>,
) -> Result<RollPlan, PlanError> {
    let refused = refused_topics(&obs.state, &options.rules);
    if !refused.is_empty() {
        return Err(PlanError::TopicsCannotSurviveStop { topics: refused });
    }
    let all = obs.nodes();
    let controllers_not_named: Vec<BrokerId> = match &options.only {
        None => all
            .iter()
            .copied()
            .filter(|n| role(obs, *n) == NodeRole::Controller)
            .collect(),
        Some(_) => Vec::new(),
    };
    let selected: BTreeSet<BrokerId> = match &options.only {
        None => all
            .iter()
            .copied()
            .filter(|n| !controllers_not_named.contains(n))
            .collect(),
        Some(only) => {
            if let Some(missing) = only.iter().find(|b| !all.contains(b)) {
                return Err(PlanError::UnknownNode {
                    id: *missing,
                    known: all.iter().copied().collect(),
                });
            }
            only.clone()
        }
    };
    let voters = obs.voters();
    if voters.len() < 3
        && let Some(id) = selected.iter().find(|n| voters.contains(n))
    {
        return Err(PlanError::QuorumTooSmall {
            id: *id,
            voters: voters.len(),
        });
    }
    let size_of = |b: &BrokerId| sizes.get(b).cloned().flatten();
    let already_at_target: Vec<BrokerId> = selected
        .iter()
        .copied()
        .filter(|b| size_of(b).as_ref() == Some(&options.target))
        .collect();
    let to_roll: BTreeSet<BrokerId> = selected
        .into_iter()
        .filter(|b| !already_at_target.contains(b))
        .collect();
    let steps = order(obs, &to_roll)
        .into_iter()
        .map(|id| PlannedNode {
            id,
            role: role(obs, id),
            position: position(obs, id),
            current_size: size_of(&id),
        })
        .collect();
    Ok(RollPlan {
        target: options.target.clone(),
        steps,
        already_at_target,
        controllers_not_named,
        accepted_topics: options.rules.accepted_topics.iter().cloned().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpilot_cluster::fixtures::uniform_cluster;

    fn target() -> InstanceType {
        "m7g.xlarge".parse().expect("instance")
    }

    #[test]
    fn active_controller_goes_last_and_unhealthy_first() {
        let state = uniform_cluster(4, &[("orders", 8, 3, 2)]);
        let mut state = state.with_broker_stopped(BrokerId(3));
        state.quorum.as_mut().expect("quorum").leader = Some(NodeId(2));
        let obs = Observation::new(state, 0);
        let p = plan(&obs, &RollOptions::new(target()), &BTreeMap::new()).expect("plan");
        let ids: Vec<i32> = p.steps.iter().map(|s| s.id.0).collect();
        assert_eq!(ids, vec![3, 1, 4, 2]);
        assert!(matches!(p.steps[0].position, Position::Unhealthy { .. }));
        assert_eq!(p.steps[3].position, Position::ActiveController);
    }

    #[test]
    fn controller_only_nodes_go_before_brokers() {
        let mut state = uniform_cluster(3, &[("orders", 3, 3, 2)]);
        let q = state.quorum.as_mut().expect("quorum");
        // Voters 10, 11, 12 are controllers only; 11 leads.
        q.voters = [10, 11, 12]
            .iter()
            .map(|id| kpilot_cluster::QuorumReplica {
                id: NodeId(*id),
                log_end_offset: Some(100),
                last_fetch_timestamp_ms: None,
                last_caught_up_timestamp_ms: None,
            })
            .collect();
        q.leader = Some(NodeId(11));
        let obs = Observation::new(state, 0);
        let mut options = RollOptions::new(target());
        options.only = Some([1, 2, 3, 10, 11, 12].map(BrokerId).into());
        let p = plan(&obs, &options, &BTreeMap::new()).expect("plan");
        let ids: Vec<i32> = p.steps.iter().map(|s| s.id.0).collect();
        assert_eq!(ids, vec![10, 12, 1, 2, 3, 11]);
        assert_eq!(p.steps[0].role, NodeRole::Controller);
        assert_eq!(p.steps[2].role, NodeRole::Broker);
        assert!(p.controllers_not_named.is_empty());
        // Unnamed, dedicated controllers keep their own size: only the brokers roll.
        let p = plan(&obs, &RollOptions::new(target()), &BTreeMap::new()).expect("plan");
        let ids: Vec<i32> = p.steps.iter().map(|s| s.id.0).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        assert_eq!(p.controllers_not_named, [10, 11, 12].map(BrokerId));
    }

    #[test]
    fn a_voter_of_a_quorum_that_cannot_lose_one_is_refused_before_anything_stops() {
        let mut state = uniform_cluster(3, &[("orders", 3, 3, 2)]);
        let q = state.quorum.as_mut().expect("quorum");
        // One dedicated controller, 101.
        q.voters = vec![kpilot_cluster::QuorumReplica {
            id: NodeId(101),
            log_end_offset: Some(100),
            last_fetch_timestamp_ms: None,
            last_caught_up_timestamp_ms: None,
        }];
        q.leader = Some(NodeId(101));
        let obs = Observation::new(state, 0);
        let p = plan(&obs, &RollOptions::new(target()), &BTreeMap::new()).expect("brokers");
        assert_eq!(p.steps.len(), 3);
        let mut options = RollOptions::new(target());
        options.only = Some([BrokerId(2), BrokerId(101)].into());
        let err = plan(&obs, &options, &BTreeMap::new()).expect_err("refused");
        assert!(
            matches!(
                err,
                PlanError::QuorumTooSmall {
                    id: BrokerId(101),
                    voters: 1
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("quorum of 1 voter(s)"), "{err}");
        // Two combined nodes: each is a voter of a quorum of 2.
        let mut state = uniform_cluster(2, &[("orders", 3, 2, 1)]);
        state.quorum.as_mut().expect("quorum").voters.truncate(2);
        let obs = Observation::new(state, 0);
        assert!(matches!(
            plan(&obs, &RollOptions::new(target()), &BTreeMap::new()),
            Err(PlanError::QuorumTooSmall { voters: 2, .. })
        ));
    }

    #[test]
    fn fragile_topics_are_refused_by_name_unless_accepted() {
        let state = uniform_cluster(3, &[("orders", 3, 3, 2), ("fragile", 3, 2, 2)]);
        let obs = Observation::new(state, 0);
        let err = plan(&obs, &RollOptions::new(target()), &BTreeMap::new()).expect_err("refused");
        assert!(
            err.to_string().contains("fragile (RF 2, min ISR 2)"),
            "{err}"
        );
        let mut options = RollOptions::new(target());
        options
            .rules
            .accepted_topics
            .insert(TopicName::new("fragile").expect("name"));
        assert_eq!(
            plan(&obs, &options, &BTreeMap::new())
                .expect("accepted")
                .steps
                .len(),
            3
        );
    }

    #[test]
    fn selection_and_sizes_filter_the_plan() {
        let obs = Observation::new(uniform_cluster(3, &[("orders", 3, 3, 2)]), 0);
        let mut options = RollOptions::new(target());
        options.only = Some([BrokerId(2), BrokerId(3)].into());
        let sizes = [(BrokerId(3), Some(target()))].into();
        let p = plan(&obs, &options, &sizes).expect("plan");
        assert_eq!(p.steps.len(), 1);
        assert_eq!(p.steps[0].id, BrokerId(2));
        assert_eq!(p.already_at_target, vec![BrokerId(3)]);
        options.only = Some([BrokerId(9)].into());
        let err = plan(&obs, &options, &sizes).expect_err("no node 9");
        assert!(matches!(err, PlanError::UnknownNode { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "node 9 is not part of the cluster (its nodes are 1, 2, 3); name only these with --brokers"
        );
    }
}
