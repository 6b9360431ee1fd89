//! The controller loop: a Node watch plus a periodic full resync find hosts that local volumes
//! are pinned to and no node answers to; after the grace period each host is looked up again
//! straight from the API server, the pure [`crate::decide::plan`] says what may be released,
//! the [`SafetyGate`] is asked per broker, and PVCs then Pending pods are deleted with UID
//! preconditions, retries and Events. Performs I/O through [`KubeOps`] and the gate.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::pin;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use kpilot_cluster::BrokerId;
use kube::runtime::watcher;
use tokio::time::{Instant, MissedTickBehavior, sleep, sleep_until};
use tracing::{debug, info, warn};

use crate::config::{ConfigError, ReleaserConfig};
use crate::decide::{self, BrokerRelease, SkipReason};
use crate::facts::{ClaimFacts, NodeFacts, PodFacts, VolumeFacts, WorkloadFacts, World};
use crate::gate::{GateDecision, GateRequest, SafetyGate};
use crate::kube_ops::{DeleteOutcome, EventSpec, KubeOps, OpsError, Severity, claim_reference};
use crate::metrics::Metrics;

/// Why the releaser stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReleaserError {
    /// The configuration was refused before starting.
    #[error("invalid PVC releaser configuration: {0}")]
    Config(#[from] ConfigError),
    /// The Node watch stream ended (it normally never does); restart the releaser.
    #[error("the Node watch ended unexpectedly; restart the PVC releaser")]
    WatchEnded,
}

/// A host that local volumes are pinned to and no node answered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lost {
    /// When it was first seen gone.
    since: Instant,
    /// `since` + grace period.
    grace_end: Instant,
    /// When to look at it next.
    due: Instant,
    /// Consecutive failed attempts (for backoff).
    failures: u32,
    /// Everything that could be released was; only a resync re-opens it.
    done: bool,
}

/// How processing one host ended.
enum HostOutcome {
    /// Everything releasable was released (or skipped for good).
    Done,
    /// An API call failed: try again at this time.
    Retry(Instant),
    /// The safety gate said wait: try again at this time.
    GateWait(Instant),
}

/// How releasing one broker unit ended.
enum UnitOutcome {
    /// Released (or nothing left to do).
    Done,
    /// The safety gate said wait: try again at this time.
    GateWait(Instant),
    /// An API call failed after its retries: try again at this time.
    Failed(Instant),
}

/// The controller's state. Built and driven by [`run_with`].
struct Controller<O, G> {
    ops: O,
    gate: G,
    config: ReleaserConfig,
    metrics: Metrics,
    /// Nodes as the watch last reported them, by name.
    present: BTreeMap<String, NodeFacts>,
    /// Nodes listed since the watch (re)started, until its initial list is complete.
    init_buffer: Vec<NodeFacts>,
    lost: BTreeMap<String, Lost>,
    /// UIDs of PVCs deleted (or dry-run deleted): never deleted twice.
    released: BTreeSet<String>,
    /// UIDs of pods deleted (or dry-run deleted).
    pods_deleted: BTreeSet<String>,
    /// Skips already counted and reported.
    reported: BTreeSet<(String, SkipReason)>,
    /// Brokers released whose recovery the gate has not confirmed yet.
    in_recovery: Vec<BrokerId>,
    /// The last "wait" reason reported per broker (Events only when it changes).
    gate_reasons: BTreeMap<(String, BrokerId), String>,
    /// Per host, the gate request that was last answered "wait": asked again first, before
    /// listing the cluster, so waiting costs one gate call per interval.
    waiting: BTreeMap<String, GateRequest>,
    /// A broker the gate just allowed in the pre-check (used by the next release of that
    /// broker in the same round, so the gate is not asked twice).
    preallowed: Option<(String, BrokerId)>,
}

/// Runs the releaser until `shutdown` completes, with the given port implementations and node
/// event stream (normally [`crate::run`] builds them from a `kube::Client`).
pub async fn run_with<O, G, S, F>(
    ops: O,
    gate: G,
    config: ReleaserConfig,
    metrics: Metrics,
    node_events: S,
    shutdown: F,
) -> Result<(), ReleaserError>
where
    O: KubeOps,
    G: SafetyGate,
    S: Stream<Item = Result<watcher::Event<Node>, watcher::Error>> + Send,
    F: Future<Output = ()> + Send,
{
    config.validate()?;
    let mut c = Controller {
        ops,
        gate,
        metrics,
        present: BTreeMap::new(),
        init_buffer: Vec::new(),
        lost: BTreeMap::new(),
        released: BTreeSet::new(),
        pods_deleted: BTreeSet::new(),
        reported: BTreeSet::new(),
        in_recovery: Vec::new(),
        gate_reasons: BTreeMap::new(),
        waiting: BTreeMap::new(),
        preallowed: None,
        config,
    };
    info!(
        grace_period = ?c.config.grace_period,
        resync_interval = ?c.config.resync_interval,
        dry_run = c.config.dry_run,
        storage_classes = ?c.config.scope.storage_classes,
        "PVC releaser started"
    );
    let mut shutdown = pin!(shutdown);
    let mut events = pin!(node_events);
    let mut resync = tokio::time::interval(c.config.resync_interval);
    resync.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let next_due = c.next_due();
        let wake = async move {
            match next_due {
                Some(at) => sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = &mut shutdown => {
                info!("PVC releaser stopping");
                return Ok(());
            }
            event = events.next() => match event {
                Some(Ok(event)) => c.on_node_event(event),
                Some(Err(e)) => warn!(error = %e, "node watch error (retrying with backoff)"),
                None => return Err(ReleaserError::WatchEnded),
            },
            _ = resync.tick() => c.resync().await,
            () = wake => c.process_due().await,
        }
        c.metrics.set_lost_hosts(c.lost.len());
    }
}

/// Runs `call` until it succeeds, fails permanently, or `attempts` are used up.
async fn with_retry<T, F, Fut>(
    config: &ReleaserConfig,
    metrics: &Metrics,
    mut call: F,
) -> Result<T, OpsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, OpsError>>,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && attempt + 1 < config.retry.attempts => {
                let delay = config.retry.delay(attempt);
                warn!(error = %e, attempt = attempt + 1, ?delay, "API call failed; retrying");
                metrics.record_api_retry();
                sleep(delay).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

impl<O: KubeOps, G: SafetyGate> Controller<O, G> {
    fn next_due(&self) -> Option<Instant> {
        self.lost.values().filter(|l| !l.done).map(|l| l.due).min()
    }

    fn any_present(&self, host: &str) -> bool {
        self.present.values().any(|n| n.answers_to(host))
    }

    fn mark_lost(&mut self, host: &str, now: Instant) {
        if self.lost.contains_key(host) {
            return;
        }
        let grace_end = now + self.config.grace_period;
        info!(host, grace_period = ?self.config.grace_period, "host gone; grace period started");
        self.lost.insert(
            host.to_string(),
            Lost {
                since: now,
                grace_end,
                due: grace_end,
                failures: 0,
                done: false,
            },
        );
    }

    fn forget_if_back(&mut self, node: &NodeFacts) {
        let back: Vec<String> = self
            .lost
            .keys()
            .filter(|h| node.answers_to(h))
            .cloned()
            .collect();
        for host in back {
            info!(
                host,
                node = node.name,
                "node is back; nothing will be released for it"
            );
            self.forget(&host);
        }
    }

    fn on_node_event(&mut self, event: watcher::Event<Node>) {
        let now = Instant::now();
        match event {
            watcher::Event::Apply(node) => {
                if let Some(facts) = NodeFacts::from_node(&node) {
                    self.forget_if_back(&facts);
                    self.present.insert(facts.name.clone(), facts);
                }
            }
            watcher::Event::Delete(node) => {
                if let Some(facts) = NodeFacts::from_node(&node) {
                    self.present.remove(&facts.name);
                    for host in std::iter::once(&facts.name).chain(facts.hostname.as_ref()) {
                        if !self.any_present(host) {
                            self.mark_lost(host, now);
                        }
                    }
                }
            }
            watcher::Event::Init => self.init_buffer.clear(),
            watcher::Event::InitApply(node) => {
                if let Some(facts) = NodeFacts::from_node(&node) {
                    self.forget_if_back(&facts);
                    self.init_buffer.push(facts);
                }
            }
            watcher::Event::InitDone => {
                let listed: BTreeMap<String, NodeFacts> = self
                    .init_buffer
                    .drain(..)
                    .map(|n| (n.name.clone(), n))
                    .collect();
                // Nodes deleted while the watch was down.
                let vanished: Vec<NodeFacts> = self
                    .present
                    .values()
                    .filter(|n| !listed.contains_key(&n.name))
                    .cloned()
                    .collect();
                self.present = listed;
                for facts in vanished {
                    for host in std::iter::once(&facts.name).chain(facts.hostname.as_ref()) {
                        if !self.any_present(host) {
                            self.mark_lost(host, now);
                        }
                    }
                }
            }
        }
    }

    /// Lists nodes, volumes and claims afresh and updates the lost hosts: new ones start their
    /// grace period, re-registered ones are forgotten, finished ones with claims still around
    /// are looked at again.
    async fn resync(&mut self) {
        let now = Instant::now();
        let world = match self.load_base_world().await {
            Ok(w) => w,
            Err(e) => {
                warn!(error = %e, "resync failed; keeping the previous state");
                self.metrics.record_failed(e.action.label());
                return;
            }
        };
        self.present = world
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.clone()))
            .collect();
        let referenced = decide::referenced_hosts(&world);
        let missing: BTreeSet<String> = referenced
            .iter()
            .filter(|h| !world.node_present(h))
            .cloned()
            .collect();
        for host in &missing {
            self.mark_lost(host, now);
        }
        let hosts: Vec<String> = self.lost.keys().cloned().collect();
        for host in hosts {
            if world.node_present(&host) {
                info!(host, "node is back; nothing will be released for it");
                self.forget(&host);
                continue;
            }
            let Some(lost) = self.lost.get_mut(&host) else {
                continue;
            };
            if lost.done {
                if !referenced.contains(&host) {
                    self.forget(&host);
                } else if claims_still_bound(&world, &host) {
                    lost.done = false;
                    lost.due = now.max(lost.grace_end);
                }
            }
        }
        debug!(lost = self.lost.len(), "resync done");
    }

    /// Nodes, volumes and claims (of the namespaces in scope), freshly listed.
    async fn load_base_world(&self) -> Result<World, OpsError> {
        let (c, m) = (&self.config, &self.metrics);
        let nodes = with_retry(c, m, || self.ops.list_nodes()).await?;
        let volumes = with_retry(c, m, || self.ops.list_volumes()).await?;
        let claims = match &c.scope.namespaces {
            None => with_retry(c, m, || self.ops.list_claims(None)).await?,
            Some(namespaces) => {
                let mut all = Vec::new();
                for ns in namespaces {
                    all.extend(with_retry(c, m, || self.ops.list_claims(Some(ns))).await?);
                }
                all
            }
        };
        Ok(World {
            nodes: nodes.iter().filter_map(NodeFacts::from_node).collect(),
            volumes: volumes.iter().filter_map(VolumeFacts::from_pv).collect(),
            claims: claims.iter().filter_map(ClaimFacts::from_pvc).collect(),
            pods: Vec::new(),
            workloads: Vec::new(),
        })
    }

    /// The base world plus the pods and StatefulSets of the namespaces whose claims are pinned
    /// to one of `hosts`.
    async fn load_world_for(&self, hosts: &BTreeSet<String>) -> Result<World, OpsError> {
        let mut world = self.load_base_world().await?;
        let namespaces: BTreeSet<String> = world
            .volumes
            .iter()
            .filter(|v| {
                decide::pins_of(v, &world)
                    .is_some_and(|pins| pins.iter().any(|h| hosts.contains(h)))
            })
            .filter_map(|v| v.claim.as_ref().map(|r| r.namespace.clone()))
            .filter(|ns| self.config.namespace_allowed(ns))
            .collect();
        let (c, m) = (&self.config, &self.metrics);
        for ns in &namespaces {
            let pods = with_retry(c, m, || self.ops.list_pods(ns)).await?;
            world
                .pods
                .extend(pods.iter().filter_map(PodFacts::from_pod));
            let sets = with_retry(c, m, || self.ops.list_statefulsets(ns)).await?;
            world
                .workloads
                .extend(sets.iter().filter_map(WorkloadFacts::from_statefulset));
        }
        Ok(world)
    }

    /// Processes every host whose time has come, earliest first. Each host is re-checked on
    /// its own; the rest of the cluster is listed once per round. Once the gate says "wait",
    /// the remaining hosts wait too (one broker at a time).
    async fn process_due(&mut self) {
        let now = Instant::now();
        let mut due: Vec<(Instant, String)> = self
            .lost
            .iter()
            .filter(|(_, l)| !l.done && l.due <= now)
            .map(|(h, l)| (l.due, h.clone()))
            .collect();
        due.sort();
        let hosts: BTreeSet<String> = due.iter().map(|(_, h)| h.clone()).collect();
        let mut world: Option<World> = None;
        let mut blocked_until: Option<Instant> = None;
        for (_, host) in &due {
            if let Some(at) = blocked_until {
                self.set_due(host, at);
                continue;
            }
            // Still waiting for the gate for the same reason: do not list the cluster again.
            if let Some(mut request) = self.waiting.get(host).cloned() {
                request.in_recovery = self.in_recovery.clone();
                let key = (request.namespace.clone(), request.broker);
                match self.gate.check(&request).await {
                    Ok(GateDecision::Allow) => self.preallowed = Some(key),
                    Ok(GateDecision::Wait { reason })
                        if self.gate_reasons.get(&key) == Some(&reason) =>
                    {
                        debug!(host, broker = %request.broker, reason, "still waiting for the safety gate");
                        self.metrics.record_gate_wait();
                        let at = Instant::now() + self.config.gate_retry_interval;
                        self.set_due(host, at);
                        blocked_until = Some(at);
                        continue;
                    }
                    // A new reason or an error: the full path below reports it.
                    Ok(GateDecision::Wait { .. }) | Err(_) => {}
                }
            }
            // The re-check, right before acting: straight from the API server, by name and by
            // hostname label.
            let (c, m) = (&self.config, &self.metrics);
            match with_retry(c, m, || self.ops.node_answers(host)).await {
                Ok(true) => {
                    info!(host, "a node answers to this host again; nothing released");
                    self.forget(host);
                    self.preallowed = None;
                    continue;
                }
                Ok(false) => {}
                Err(e) => {
                    warn!(host, error = %e, "re-checking the node failed; will retry");
                    self.metrics.record_failed(e.action.label());
                    let at = self.failure_backoff(host);
                    self.set_due(host, at);
                    continue;
                }
            }
            // The rest of the cluster is listed once per round, when first needed.
            if world.is_none() {
                match self.load_world_for(&hosts).await {
                    Ok(w) => world = Some(w),
                    Err(e) => {
                        warn!(error = %e, "reading the cluster failed; will retry");
                        self.metrics.record_failed(e.action.label());
                        let at = self.failure_backoff(host);
                        self.set_due(host, at);
                        blocked_until = Some(at);
                        continue;
                    }
                }
            }
            let Some(world) = world.as_ref() else {
                continue;
            };
            let outcome = self.process_host(host, world).await;
            self.preallowed = None;
            match outcome {
                HostOutcome::Done => {
                    self.waiting.remove(host);
                    if let Some(l) = self.lost.get_mut(host) {
                        l.done = true;
                        l.failures = 0;
                    }
                }
                HostOutcome::Retry(at) => self.set_due(host, at),
                HostOutcome::GateWait(at) => {
                    self.set_due(host, at);
                    blocked_until = Some(at);
                }
            }
        }
    }

    /// Stops tracking a host (its node is back, or nothing refers to it any more).
    fn forget(&mut self, host: &str) {
        self.lost.remove(host);
        self.waiting.remove(host);
    }

    fn set_due(&mut self, host: &str, at: Instant) {
        if let Some(l) = self.lost.get_mut(host) {
            l.due = at;
        }
    }

    fn failure_backoff(&mut self, host: &str) -> Instant {
        let failures = self.lost.get(host).map_or(0, |l| l.failures);
        if let Some(l) = self.lost.get_mut(host) {
            l.failures = l.failures.saturating_add(1);
        }
        let delay = self
            .config
            .retry
            .delay(failures)
            .min(self.config.gate_retry_interval);
        Instant::now() + delay
    }

    async fn process_host(&mut self, host: &str, world: &World) -> HostOutcome {
        let plan = decide::plan(host, world, &self.config);
        for skip in &plan.skipped {
            self.report_skip(&skip.namespace, &skip.name, &skip.uid, skip.reason, host)
                .await;
        }
        for unit in &plan.releases {
            match self.release_unit(host, unit).await {
                UnitOutcome::Done => {}
                UnitOutcome::GateWait(at) => return HostOutcome::GateWait(at),
                UnitOutcome::Failed(at) => return HostOutcome::Retry(at),
            }
        }
        HostOutcome::Done
    }

    async fn report_skip(
        &mut self,
        namespace: &str,
        name: &str,
        uid: &str,
        reason: SkipReason,
        host: &str,
    ) {
        if !self.reported.insert((uid.to_string(), reason)) {
            return;
        }
        self.metrics.record_skipped(reason.label());
        info!(
            namespace,
            name,
            host,
            reason = reason.label(),
            "PVC not released"
        );
        if reason == SkipReason::OutOfScope {
            return; // not ours: no Event
        }
        let severity = if reason.is_warning() {
            Severity::Warning
        } else {
            Severity::Normal
        };
        self.event(
            namespace,
            name,
            uid,
            severity,
            "PvcReleaseSkipped",
            "ReleasePvc",
            format!("node {host} is gone but this PVC is not released: {reason}"),
        )
        .await;
    }

    /// Releases one broker's PVCs then deletes its Pending pods.
    async fn release_unit(&mut self, host: &str, unit: &BrokerRelease) -> UnitOutcome {
        let to_delete: Vec<_> = unit
            .claims
            .iter()
            .filter(|c| !c.already_deleting && !self.released.contains(&c.uid))
            .cloned()
            .collect();
        if !to_delete.is_empty() {
            let request = GateRequest {
                broker: unit.broker,
                namespace: unit.namespace.clone(),
                claims: to_delete.iter().map(|c| c.name.clone()).collect(),
                in_recovery: self.in_recovery.clone(),
            };
            let key = (unit.namespace.clone(), unit.broker);
            let decision = if self.preallowed.take().as_ref() == Some(&key) {
                Ok(GateDecision::Allow)
            } else {
                self.gate.check(&request).await
            };
            let wait_reason = match decision {
                Ok(GateDecision::Allow) => None,
                Ok(GateDecision::Wait { reason }) => Some(reason),
                Err(e) => Some(format!("the safety gate could not decide: {e}")),
            };
            if let Some(reason) = wait_reason {
                self.metrics.record_gate_wait();
                self.waiting.insert(host.to_string(), request);
                if self.gate_reasons.get(&key) != Some(&reason) {
                    info!(host, broker = %unit.broker, reason, "safety gate says wait");
                    for claim in &to_delete {
                        self.event(
                            &claim.namespace,
                            &claim.name,
                            &claim.uid,
                            Severity::Normal,
                            "PvcReleaseWaiting",
                            "ReleasePvc",
                            format!(
                                "node {host} is gone; releasing broker {}'s volume waits: {reason}",
                                unit.broker
                            ),
                        )
                        .await;
                    }
                    self.gate_reasons.insert(key, reason);
                }
                return UnitOutcome::GateWait(Instant::now() + self.config.gate_retry_interval);
            }
            self.waiting.remove(host);
            self.gate_reasons.remove(&key);
            // Allow confirms that the brokers released earlier have recovered.
            self.in_recovery.clear();
        }
        let dry_run = self.config.dry_run;
        let mut released_any = false;
        let mut uid_changed = false;
        for claim in &to_delete {
            let (c, m) = (&self.config, &self.metrics);
            let result = with_retry(c, m, || {
                self.ops
                    .delete_claim(&claim.namespace, &claim.name, &claim.uid, dry_run)
            })
            .await;
            match result {
                Ok(DeleteOutcome::Deleted) => {
                    let now = Instant::now();
                    let (since, grace_end) = self
                        .lost
                        .get(host)
                        .map_or((now, now), |l| (l.since, l.grace_end));
                    self.released.insert(claim.uid.clone());
                    self.metrics.record_released(
                        dry_run,
                        now.saturating_duration_since(since),
                        now.saturating_duration_since(grace_end),
                    );
                    released_any = true;
                    info!(
                        namespace = claim.namespace,
                        name = claim.name,
                        volume = claim.volume,
                        broker = %unit.broker,
                        host,
                        dry_run,
                        "PVC released"
                    );
                    let (reason, note) = if dry_run {
                        (
                            "PvcReleaseDryRun",
                            format!(
                                "dry run: would delete this PVC (volume {} pinned to node {host}, gone for {:?}); broker {}",
                                claim.volume,
                                now.saturating_duration_since(since),
                                unit.broker
                            ),
                        )
                    } else {
                        (
                            "PvcReleased",
                            format!(
                                "deleted: its volume {} is pinned to node {host}, gone for {:?}; broker {} will be recreated with a new volume and re-replicate",
                                claim.volume,
                                now.saturating_duration_since(since),
                                unit.broker
                            ),
                        )
                    };
                    self.event(
                        &claim.namespace,
                        &claim.name,
                        &claim.uid,
                        Severity::Normal,
                        reason,
                        "ReleasePvc",
                        note,
                    )
                    .await;
                }
                Ok(DeleteOutcome::AlreadyGone) => {
                    self.released.insert(claim.uid.clone());
                }
                Ok(DeleteOutcome::UidChanged) => {
                    uid_changed = true;
                    self.report_skip(
                        &claim.namespace,
                        &claim.name,
                        &claim.uid,
                        SkipReason::UidChangedAtDelete,
                        host,
                    )
                    .await;
                }
                Err(e) => {
                    return UnitOutcome::Failed(self.record_failure(host, claim, &e).await);
                }
            }
        }
        if uid_changed {
            return UnitOutcome::Done; // the claim was replaced: its pod is not ours to touch
        }
        if !released_any && !unit.pods.is_empty() {
            // Nothing released in this pass: the claims were already being deleted when they
            // were listed, and the pods were listed after them. A claim gone in between left
            // its pod to be recreated for the new claim; that pod is not stuck. Delete pods
            // again only while a claim of this unit is still there.
            let (c, m) = (&self.config, &self.metrics);
            match with_retry(c, m, || self.ops.list_claims(Some(&unit.namespace))).await {
                Ok(claims) => {
                    let present: BTreeSet<&str> = claims
                        .iter()
                        .filter_map(|c| c.metadata.uid.as_deref())
                        .collect();
                    if !unit.claims.iter().any(|c| present.contains(c.uid.as_str())) {
                        debug!(host, broker = %unit.broker, "its claims are gone: the pods are the recreated ones");
                        return UnitOutcome::Done;
                    }
                }
                Err(e) => {
                    warn!(host, error = %e, "re-reading the claims failed; will retry");
                    self.metrics.record_failed(e.action.label());
                    return UnitOutcome::Failed(self.failure_backoff(host));
                }
            }
        }
        for pod in &unit.pods {
            if self.pods_deleted.contains(&pod.uid) {
                continue;
            }
            let (c, m) = (&self.config, &self.metrics);
            let result = with_retry(c, m, || {
                self.ops
                    .delete_pod(&pod.namespace, &pod.name, &pod.uid, pod.force, dry_run)
            })
            .await;
            match result {
                Ok(DeleteOutcome::Deleted) => {
                    self.pods_deleted.insert(pod.uid.clone());
                    if !dry_run {
                        self.metrics.record_pod_deleted();
                    }
                    info!(
                        namespace = pod.namespace,
                        name = pod.name,
                        force = pod.force,
                        dry_run,
                        "Pending pod deleted"
                    );
                    if let Some(claim) = unit.claims.first() {
                        let reason = if dry_run {
                            "PendingPodDeleteDryRun"
                        } else {
                            "PendingPodDeleted"
                        };
                        self.event(
                            &claim.namespace,
                            &claim.name,
                            &claim.uid,
                            Severity::Normal,
                            reason,
                            "DeletePendingPod",
                            format!(
                                "{}deleted pod {} (UID {}) so that its owner recreates it with a new volume",
                                if dry_run { "dry run: would have " } else { "" },
                                pod.name,
                                pod.uid
                            ),
                        )
                        .await;
                    }
                }
                Ok(DeleteOutcome::AlreadyGone | DeleteOutcome::UidChanged) => {
                    self.pods_deleted.insert(pod.uid.clone());
                }
                Err(e) => {
                    warn!(host, error = %e, "deleting the Pending pod failed; will retry");
                    self.metrics.record_failed(e.action.label());
                    return UnitOutcome::Failed(self.failure_backoff(host));
                }
            }
        }
        if released_any && !dry_run && !self.in_recovery.contains(&unit.broker) {
            self.in_recovery.push(unit.broker);
        }
        UnitOutcome::Done
    }

    async fn record_failure(
        &mut self,
        host: &str,
        claim: &decide::ClaimRelease,
        e: &OpsError,
    ) -> Instant {
        warn!(host, error = %e, "releasing the PVC failed; will retry");
        self.metrics.record_failed(e.action.label());
        self.event(
            &claim.namespace,
            &claim.name,
            &claim.uid,
            Severity::Warning,
            "PvcReleaseFailed",
            "ReleasePvc",
            format!("node {host} is gone but deleting this PVC failed (will retry): {e}"),
        )
        .await;
        self.failure_backoff(host)
    }

    /// Publishes an Event on the PVC and, if configured, on the autopilot object. Best effort.
    #[allow(clippy::too_many_arguments)]
    async fn event(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        severity: Severity,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let claim = claim_reference(namespace, name, uid);
        let mut targets: Vec<(ObjectReference, Option<ObjectReference>)> =
            vec![(claim.clone(), None)];
        if let Some(target) = &self.config.event_target {
            targets.push((target.clone(), Some(claim)));
        }
        for (regarding, related) in targets {
            let spec = EventSpec {
                severity,
                reason: reason.to_string(),
                action: action.to_string(),
                note: note.clone(),
                related,
            };
            let (c, m) = (&self.config, &self.metrics);
            if let Err(e) = with_retry(c, m, || self.ops.publish(&spec, &regarding)).await {
                warn!(error = %e, reason, "publishing an Event failed");
                self.metrics.record_failed(e.action.label());
            }
        }
    }
}

/// Whether some claim is still bound (by UID) to a volume pinned to `host`.
fn claims_still_bound(world: &World, host: &str) -> bool {
    world.volumes.iter().any(|v| {
        decide::pins_of(v, world).is_some_and(|h| h.contains(host))
            && v.claim.as_ref().is_some_and(|r| {
                world
                    .claim(&r.namespace, &r.name)
                    .is_some_and(|c| r.uid.as_deref() == Some(c.uid.as_str()))
            })
    })
}
