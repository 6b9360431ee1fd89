//! An in-memory cluster that implements both [`KafkaPort`] and [`Fleet`], for unit tests of
//! the executor: stopping a broker moves its leaderships and drops it from every ISR, a
//! started broker registers and then rejoins the ISRs after a few observations, preferred
//! elections move leadership back, and faults can be injected (a crash from outside, a broker
//! that never comes back). It records every fleet operation and the largest number of brokers
//! ever down at once. Pure simulation: no I/O, no clock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use kpilot_cluster::{BrokerId, ClusterState, NodeId, TopicPartition};
use kpilot_units::InstanceType;

use crate::gate::Observation;
use crate::journal::Rebuild;
use crate::ports::{ElectionSummary, Fleet, FleetError, KafkaPort, KafkaPortError};

/// A fleet operation, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeOp {
    /// A graceful stop.
    Stop(BrokerId),
    /// A resize.
    Resize(BrokerId, InstanceType),
    /// A start.
    Start(BrokerId),
    /// A rebuild throttle set for the node, at this rate.
    Throttle(BrokerId, Option<u64>),
    /// A rebuild throttle lifted.
    Lift(BrokerId),
}

/// The refusal of a throttle config without AlterConfigs, as the broker words it.
const THROTTLE_REFUSED: &str =
    "CLUSTER_AUTHORIZATION_FAILED: this principal needs the AlterConfigs ACL on the cluster";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Up,
    Down,
    /// Registered, not yet back in the ISRs: so many observations to go.
    CatchingUp(u32),
    /// Process running, not registered yet: so many observations to go.
    Registering(u32),
}

#[derive(Debug)]
struct Sim {
    base: ClusterState,
    leaders: BTreeMap<TopicPartition, Option<BrokerId>>,
    status: BTreeMap<BrokerId, Status>,
    running: BTreeMap<BrokerId, bool>,
    sizes: BTreeMap<BrokerId, Option<InstanceType>>,
    never_return: BTreeSet<BrokerId>,
    heal_after: BTreeMap<BrokerId, u32>,
    register_delay: u32,
    catch_up_delay: u32,
    quorum_leader: Option<NodeId>,
    ops: Vec<FakeOp>,
    max_down: usize,
    observations: u64,
    elect_refused: bool,
    throttle_refused: bool,
    fresh_disks: bool,
    /// Bytes each node stores.
    stored: BTreeMap<BrokerId, u64>,
    /// Throttle overrides someone else left set.
    throttles_set: Vec<String>,
}

/// The in-memory cluster.
#[derive(Debug)]
pub struct FakeCluster {
    sim: Mutex<Sim>,
}

impl FakeCluster {
    /// A fake running `state` (every broker up), each node at `size`.
    pub fn new(state: ClusterState, size: Option<InstanceType>) -> Self {
        let leaders = state
            .partitions()
            .map(|(t, p)| (TopicPartition::new(t.name.clone(), p.partition), p.leader))
            .collect();
        let mut nodes: BTreeSet<BrokerId> = state.known_brokers();
        if let Some(q) = &state.quorum {
            nodes.extend(q.voters.iter().map(|v| BrokerId::from(v.id)));
        }
        let quorum_leader = state.quorum.as_ref().and_then(|q| q.leader);
        FakeCluster {
            sim: Mutex::new(Sim {
                base: state,
                leaders,
                status: nodes.iter().map(|n| (*n, Status::Up)).collect(),
                running: nodes.iter().map(|n| (*n, true)).collect(),
                sizes: nodes.iter().map(|n| (*n, size.clone())).collect(),
                never_return: BTreeSet::new(),
                heal_after: BTreeMap::new(),
                register_delay: 2,
                catch_up_delay: 3,
                quorum_leader,
                ops: Vec::new(),
                max_down: 0,
                observations: 0,
                elect_refused: false,
                throttle_refused: false,
                fresh_disks: false,
                stored: BTreeMap::new(),
                throttles_set: Vec::new(),
            }),
        }
    }

    fn sim(&self) -> MutexGuard<'_, Sim> {
        self.sim.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn refused(&self) -> Result<(), KafkaPortError> {
        if self.sim().elect_refused {
            return Err(KafkaPortError::Elect {
                source: "CLUSTER_AUTHORIZATION_FAILED: this principal needs the Alter ACL on the cluster".into(),
            });
        }
        Ok(())
    }

    /// Crashes `node` from outside the roll; it comes back by itself after `heal_after`
    /// observations (`None`: never).
    pub fn crash(&self, node: BrokerId, heal_after: Option<u32>) {
        let mut sim = self.sim();
        sim.set_down(node);
        sim.running.insert(node, false);
        if let Some(n) = heal_after {
            sim.heal_after.insert(node, n);
        }
    }

    /// Makes rolled nodes come back with empty disks that rebuild to `stored` bytes each.
    pub fn with_fresh_disks(self, stored: u64) -> Self {
        {
            let mut sim = self.sim();
            sim.fresh_disks = true;
            let nodes: Vec<BrokerId> = sim.running.keys().copied().collect();
            sim.stored = nodes.into_iter().map(|n| (n, stored)).collect();
        }
        self
    }

    /// Leaves a replication-throttle override set, as another tool would
    /// (`"<resource> <key>=<value>"`).
    pub fn leave_throttle(&self, set: &str) {
        self.sim().throttles_set.push(set.to_owned());
    }

    /// Removes the overrides [`FakeCluster::leave_throttle`] left, as finishing the
    /// reassignment that set them would.
    pub fn clear_throttles(&self) {
        self.sim().throttles_set.clear();
    }

    /// Makes `node` never register again after its next start.
    pub fn never_return(&self, node: BrokerId) {
        self.sim().never_return.insert(node);
    }

    /// Refuses every election request from now on, as without the Alter ACL on the cluster.
    pub fn refuse_elections(&self) {
        self.sim().elect_refused = true;
    }

    /// Refuses every throttle config from now on, as without AlterConfigs.
    pub fn refuse_throttles(&self) {
        self.sim().throttle_refused = true;
    }

    /// Every fleet operation so far.
    pub fn ops(&self) -> Vec<FakeOp> {
        self.sim().ops.clone()
    }

    /// The most brokers that were ever down at once.
    pub fn max_down(&self) -> usize {
        self.sim().max_down
    }

    /// The current state as the roll would observe it (without advancing time).
    pub fn state(&self) -> ClusterState {
        self.sim().render()
    }

    /// A node's size.
    pub fn size_of(&self, node: BrokerId) -> Option<InstanceType> {
        self.sim().sizes.get(&node).cloned().flatten()
    }
}

impl Sim {
    fn down_count(&self) -> usize {
        self.status
            .values()
            .filter(|s| matches!(s, Status::Down | Status::Registering(_)))
            .count()
    }

    fn set_down(&mut self, node: BrokerId) {
        self.status.insert(node, Status::Down);
        self.max_down = self.max_down.max(self.down_count());
        self.fix_leaders();
    }

    fn in_sync(&self, b: BrokerId) -> bool {
        self.status.get(&b) == Some(&Status::Up)
    }

    fn live(&self, b: BrokerId) -> bool {
        matches!(
            self.status.get(&b),
            Some(Status::Up | Status::CatchingUp(_))
        )
    }

    /// Leaders that are no longer in sync move to the first in-sync replica.
    fn fix_leaders(&mut self) {
        let mut moves = Vec::new();
        for (t, p) in self.base.partitions() {
            let tp = TopicPartition::new(t.name.clone(), p.partition);
            let current = self.leaders.get(&tp).copied().flatten();
            if current.is_some_and(|l| self.in_sync(l)) {
                continue;
            }
            let next = p.replicas.iter().copied().find(|b| self.in_sync(*b));
            if next.is_some() {
                moves.push((tp, next));
            }
        }
        for (tp, l) in moves {
            self.leaders.insert(tp, l);
        }
        if let Some(l) = self.quorum_leader
            && !self.in_sync(BrokerId::from(l))
        {
            let voters: Vec<NodeId> = self
                .base
                .quorum
                .iter()
                .flat_map(|q| q.voters.iter().map(|v| v.id))
                .collect();
            self.quorum_leader = voters
                .into_iter()
                .find(|v| self.in_sync(BrokerId::from(*v)));
        }
    }

    fn tick(&mut self) {
        self.observations += 1;
        let nodes: Vec<BrokerId> = self.status.keys().copied().collect();
        for n in nodes {
            if let Some(left) = self.heal_after.get(&n).copied() {
                if left == 0 {
                    self.heal_after.remove(&n);
                    self.running.insert(n, true);
                    self.status
                        .insert(n, Status::CatchingUp(self.catch_up_delay));
                } else {
                    self.heal_after.insert(n, left - 1);
                }
            }
            let next = match self.status[&n] {
                Status::Registering(0) => Status::CatchingUp(self.catch_up_delay),
                Status::Registering(k) => Status::Registering(k - 1),
                Status::CatchingUp(0) => Status::Up,
                Status::CatchingUp(k) => Status::CatchingUp(k - 1),
                other => other,
            };
            self.status.insert(n, next);
        }
        self.fix_leaders();
    }

    fn render(&self) -> ClusterState {
        let mut state = self.base.clone();
        state.brokers.retain(|b, _| self.live(*b));
        for topic in state.topics.values_mut() {
            for p in topic.partitions.values_mut() {
                let tp = TopicPartition::new(topic.name.clone(), p.partition);
                p.isr = p
                    .replicas
                    .iter()
                    .copied()
                    .filter(|b| self.in_sync(*b))
                    .collect();
                p.leader = self
                    .leaders
                    .get(&tp)
                    .copied()
                    .flatten()
                    .filter(|l| self.in_sync(*l));
            }
        }
        if let Some(q) = state.quorum.as_mut() {
            q.leader = self.quorum_leader;
            let hw = q.high_watermark;
            for v in q.voters.iter_mut() {
                v.log_end_offset = if self.in_sync(BrokerId::from(v.id)) {
                    Some(hw)
                } else {
                    Some(hw - 500)
                };
            }
        }
        state
    }
}

impl KafkaPort for FakeCluster {
    async fn observe(&self) -> Result<Observation, KafkaPortError> {
        let mut sim = self.sim();
        sim.tick();
        let now = i64::try_from(sim.observations).unwrap_or(i64::MAX) * 1000;
        // KRaft keeps a broker registered while it is down or restarting: fenced, as
        // DescribeCluster (with fenced brokers) reports it.
        let fenced = sim
            .base
            .brokers
            .keys()
            .copied()
            .filter(|b| !sim.live(*b))
            .collect();
        Ok(Observation {
            fenced,
            ..Observation::new(sim.render(), now)
        })
    }

    async fn check_may_elect(&self) -> Result<(), KafkaPortError> {
        self.refused()
    }

    async fn check_may_throttle(&self) -> Result<(), KafkaPortError> {
        if self.sim().throttle_refused {
            return Err(KafkaPortError::MayNotAlter {
                what: "set the brokers' throttle rates",
                source: THROTTLE_REFUSED.into(),
            });
        }
        Ok(())
    }

    async fn elect_preferred(
        &self,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<ElectionSummary, KafkaPortError> {
        self.refused()?;
        let mut sim = self.sim();
        let all: Vec<(TopicPartition, Option<BrokerId>)> = sim
            .base
            .partitions()
            .map(|(t, p)| {
                (
                    TopicPartition::new(t.name.clone(), p.partition),
                    p.preferred_leader(),
                )
            })
            .collect();
        let mut summary = ElectionSummary::default();
        for (tp, preferred) in all {
            if partitions.is_some_and(|ps| !ps.contains(&tp)) {
                continue;
            }
            let Some(preferred) = preferred else { continue };
            if sim.leaders.get(&tp).copied().flatten() == Some(preferred) {
                summary.not_needed += 1;
            } else if sim.in_sync(preferred) {
                sim.leaders.insert(tp, Some(preferred));
                summary.elected += 1;
            } else {
                summary
                    .failed
                    .insert(tp.to_string(), "PREFERRED_LEADER_NOT_AVAILABLE".to_string());
            }
        }
        Ok(summary)
    }

    async fn throttle_rebuild(
        &self,
        node: BrokerId,
        rebuild: &Rebuild,
    ) -> Result<(), KafkaPortError> {
        self.throttle_op(FakeOp::Throttle(node, rebuild.throttle_bytes_per_s))
    }

    async fn lift_rebuild_throttle(
        &self,
        node: BrokerId,
        _rebuild: &Rebuild,
    ) -> Result<Vec<String>, KafkaPortError> {
        self.throttle_op(FakeOp::Lift(node))?;
        Ok(Vec::new())
    }

    async fn stored_bytes(&self, node: BrokerId) -> Result<u64, KafkaPortError> {
        Ok(self.sim().stored.get(&node).copied().unwrap_or(0))
    }

    async fn throttles_set(&self) -> Result<Vec<String>, KafkaPortError> {
        Ok(self.sim().throttles_set.clone())
    }
}

impl FakeCluster {
    fn throttle_op(&self, op: FakeOp) -> Result<(), KafkaPortError> {
        let mut sim = self.sim();
        if let FakeOp::Throttle(node, _) = op
            && sim.throttle_refused
        {
            return Err(KafkaPortError::Throttle {
                action: "setting",
                node,
                source: THROTTLE_REFUSED.into(),
            });
        }
        if let FakeOp::Throttle(node, _) = op
            && sim.running.get(&node) != Some(&true)
        {
            return Err(KafkaPortError::Throttle {
                action: "setting",
                node,
                source: "the broker is down: its own configs cannot be altered".into(),
            });
        }
        sim.ops.push(op);
        Ok(())
    }
}

impl Fleet for FakeCluster {
    async fn size(&self, node: BrokerId) -> Result<Option<InstanceType>, FleetError> {
        let sim = self.sim();
        sim.sizes
            .get(&node)
            .cloned()
            .ok_or(FleetError::UnknownNode { node })
    }

    async fn stop(&self, node: BrokerId) -> Result<(), FleetError> {
        let mut sim = self.sim();
        if !sim.running.contains_key(&node) {
            return Err(FleetError::UnknownNode { node });
        }
        sim.ops.push(FakeOp::Stop(node));
        sim.heal_after.remove(&node);
        sim.running.insert(node, false);
        sim.set_down(node);
        Ok(())
    }

    async fn resize(&self, node: BrokerId, size: &InstanceType) -> Result<(), FleetError> {
        let mut sim = self.sim();
        if sim.running.get(&node) != Some(&false) {
            return Err(FleetError::Resize {
                node,
                size: size.clone(),
                message: "the node is running; stop it first".to_string(),
            });
        }
        sim.ops.push(FakeOp::Resize(node, size.clone()));
        sim.sizes.insert(node, Some(size.clone()));
        Ok(())
    }

    async fn start(&self, node: BrokerId) -> Result<(), FleetError> {
        let mut sim = self.sim();
        if sim.running.get(&node) == Some(&true) {
            return Ok(());
        }
        sim.ops.push(FakeOp::Start(node));
        sim.running.insert(node, true);
        let status = if sim.never_return.contains(&node) {
            Status::Down
        } else {
            Status::Registering(sim.register_delay)
        };
        sim.status.insert(node, status);
        Ok(())
    }

    async fn is_running(&self, node: BrokerId) -> Result<bool, FleetError> {
        Ok(self.sim().running.get(&node).copied().unwrap_or(false))
    }

    fn fresh_disks(&self) -> bool {
        self.sim().fresh_disks
    }
}
