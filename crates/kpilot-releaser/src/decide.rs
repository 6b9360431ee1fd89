//! The release decision: given what was observed ([`World`]) and a host that is gone, which
//! PVCs may be released, which Pending pods must be deleted afterwards, grouped per broker,
//! and why every other PVC pinned to that host is left alone. Pure: no I/O, no clock.
//!
//! A PVC is released only when **all** of these hold (checked in this order; the first that
//! fails is the [`SkipReason`]):
//!
//! 1. its namespace is in scope;
//! 2. it is not annotated `kpilot.io/release-on-node-loss: "false"`;
//! 3. it opted in: that annotation is `"true"` on the PVC or on the StatefulSet whose claim
//!    template made it, or its storage class (PVC's, else PV's) is allow-listed;
//! 4. its PV is `local` or `hostPath`, pinned (node affinity on `kubernetes.io/hostname` or
//!    `metadata.name`, or for an unpinned hostPath PV the PVC's selected-node annotation) to
//!    hosts that are all absent;
//! 5. the PV's `claimRef` names this PVC **with its UID**, and the PVC's `volumeName` names the
//!    PV (a PVC recreated under the same name is a different claim);
//! 6. its selected-node annotation, if any, names an absent node too;
//! 7. it is not a KRaft controller volume (see [`kafka_role`]);
//! 8. its broker id can be determined;
//! 9. no pod using it runs on a node that still exists.
//!
//! A released claim's pods are deleted afterwards when a workload of a configured kind owns
//! them, they are stuck (scheduled onto an absent node, or unscheduled and Pending), they are
//! not already being deleted, and they were created *before* the claim's deletion was
//! requested: a pod created in the same second or later is the owner's replacement, made for
//! the claim that will take this name, and is left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kpilot_cluster::BrokerId;

use crate::config::{
    BrokerIdRule, KAFKA_ROLES_LABEL, ReleaserConfig, STRIMZI_BROKER_ROLE_LABEL,
    STRIMZI_CLUSTER_LABEL, STRIMZI_CONTROLLER_ROLE_LABEL,
};
use crate::facts::{ClaimFacts, Pinning, PodFacts, VolumeFacts, VolumeKind, World};

/// Why a PVC pinned to a lost host is not released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// Its namespace is not in scope, or it did not opt in.
    OutOfScope,
    /// It is annotated `kpilot.io/release-on-node-loss: "false"`.
    OptedOut,
    /// The PV's `claimRef.uid` is not this PVC's UID (the PVC was recreated).
    ClaimUidMismatch,
    /// The PVC's `volumeName` does not name the PV that claims it.
    VolumeNameMismatch,
    /// Another host the PV allows still exists.
    VolumeReachable,
    /// The PVC's selected-node annotation names a node that exists.
    SelectedNodePresent,
    /// A KRaft controller volume: never released.
    ControllerVolume,
    /// A Strimzi volume whose broker role could not be confirmed: treated as a controller's.
    RoleUnknown,
    /// No broker id could be read from the PVC or its pod.
    BrokerIdUnknown,
    /// A pod using it runs on a node that exists.
    InUseOnLiveNode,
    /// Deleting it failed its UID precondition: it was replaced since it was read.
    UidChangedAtDelete,
}

impl SkipReason {
    /// The metric label and Event reason suffix: lower snake case.
    pub fn label(self) -> &'static str {
        match self {
            SkipReason::OutOfScope => "out_of_scope",
            SkipReason::OptedOut => "opted_out",
            SkipReason::ClaimUidMismatch => "claim_uid_mismatch",
            SkipReason::VolumeNameMismatch => "volume_name_mismatch",
            SkipReason::VolumeReachable => "volume_reachable",
            SkipReason::SelectedNodePresent => "selected_node_present",
            SkipReason::ControllerVolume => "controller_volume",
            SkipReason::RoleUnknown => "role_unknown",
            SkipReason::BrokerIdUnknown => "broker_id_unknown",
            SkipReason::InUseOnLiveNode => "in_use_on_live_node",
            SkipReason::UidChangedAtDelete => "uid_changed_at_delete",
        }
    }

    /// Whether a human should look (a Warning Event) rather than an expected exclusion.
    pub fn is_warning(self) -> bool {
        !matches!(self, SkipReason::OutOfScope | SkipReason::OptedOut)
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::OutOfScope => "not opted in (namespace, annotation or storage class)",
            SkipReason::OptedOut => "annotated kpilot.io/release-on-node-loss=false",
            SkipReason::ClaimUidMismatch => "the PV's claimRef UID is not this PVC's UID",
            SkipReason::VolumeNameMismatch => "the PVC's volumeName does not name the PV",
            SkipReason::VolumeReachable => "another node the PV allows still exists",
            SkipReason::SelectedNodePresent => "the PVC's selected node still exists",
            SkipReason::ControllerVolume => "a KRaft controller volume is never released",
            SkipReason::RoleUnknown => {
                "a Strimzi volume without a confirmed broker-only role is treated as a controller's"
            }
            SkipReason::BrokerIdUnknown => "no broker id could be read from the PVC or its pod",
            SkipReason::InUseOnLiveNode => "a pod using it runs on a node that exists",
            SkipReason::UidChangedAtDelete => "the PVC was replaced (UID precondition failed)",
        })
    }
}

/// A PVC to release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRelease {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID the delete is preconditioned on.
    pub uid: String,
    /// The PV it is bound to.
    pub volume: String,
    /// Already being deleted (released earlier, waiting for its finalizer): no delete is sent.
    pub already_deleting: bool,
}

/// A pod to delete after its PVC was released, so that its owner recreates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRelease {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID the delete is preconditioned on.
    pub uid: String,
    /// Delete with grace period 0: it is bound to the lost node, whose kubelet will never
    /// confirm the deletion.
    pub force: bool,
}

/// Everything released for one broker, as one unit (one broker at a time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRelease {
    /// The broker.
    pub broker: BrokerId,
    /// The namespace of its PVCs.
    pub namespace: String,
    /// Its PVCs to release.
    pub claims: Vec<ClaimRelease>,
    /// Its Pending pods to delete afterwards.
    pub pods: Vec<PodRelease>,
}

impl BrokerRelease {
    /// Whether every PVC of the unit was already released earlier.
    pub fn all_claims_deleting(&self) -> bool {
        self.claims.iter().all(|c| c.already_deleting)
    }
}

/// A PVC left alone, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Why.
    pub reason: SkipReason,
}

/// What to do about one lost host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Release units, by broker id.
    pub releases: Vec<BrokerRelease>,
    /// PVCs pinned to the host that are left alone.
    pub skipped: Vec<Skip>,
}

/// The hosts (node names or hostname labels) that bound local and hostPath volumes are pinned
/// to: what the releaser watches for.
pub fn referenced_hosts(world: &World) -> BTreeSet<String> {
    let mut hosts = BTreeSet::new();
    for volume in &world.volumes {
        if let Some(pins) = pins_of(volume, world) {
            hosts.extend(pins);
        }
    }
    hosts
}

/// Referenced hosts that no node answers to, by name or hostname label.
pub fn missing_hosts(world: &World) -> BTreeSet<String> {
    referenced_hosts(world)
        .into_iter()
        .filter(|h| !world.node_present(h))
        .collect()
}

/// The hosts a bound local/hostPath volume is tied to (its node affinity's hosts, or for an
/// unpinned hostPath volume its claim's selected node), or `None` for any other volume.
pub fn pins_of(volume: &VolumeFacts, world: &World) -> Option<BTreeSet<String>> {
    let claim_ref = volume.claim.as_ref()?;
    match (&volume.kind, &volume.pinning) {
        (VolumeKind::Other, _) | (_, Pinning::Other) => None,
        (_, Pinning::Hosts(hosts)) if !hosts.is_empty() => Some(hosts.clone()),
        (VolumeKind::HostPath, Pinning::Unpinned) => world
            .claim(&claim_ref.namespace, &claim_ref.name)
            .and_then(|c| c.selected_node.clone())
            .map(|n| BTreeSet::from([n])),
        _ => None,
    }
}

/// The Kafka role a volume serves, as far as the labels tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaRole {
    /// A broker only: may be released.
    Broker,
    /// A KRaft controller (alone or combined with a broker): never released.
    Controller,
    /// A Strimzi volume whose role could not be confirmed: treated as [`KafkaRole::Controller`].
    Unknown,
}

/// The role rule. A volume is a controller's when the PVC or any pod mounting it has
/// `strimzi.io/controller-role: "true"`, or `kpilot.io/kafka-roles` (label or annotation)
/// listing `controller`. A Strimzi volume (label `strimzi.io/cluster`) is a broker's only when
/// `strimzi.io/broker-role: "true"` is seen and no controller marker is; else its role is
/// [`KafkaRole::Unknown`]. Any other volume that opted in is a broker's.
pub fn kafka_role(claim: &ClaimFacts, pods: &[&PodFacts]) -> KafkaRole {
    let maps = std::iter::once(&claim.labels)
        .chain(std::iter::once(&claim.annotations))
        .chain(pods.iter().map(|p| &p.labels));
    let mut controller = false;
    let mut strimzi_broker = false;
    for map in maps {
        if map
            .get(STRIMZI_CONTROLLER_ROLE_LABEL)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        {
            controller = true;
        }
        if map.get(KAFKA_ROLES_LABEL).is_some_and(|v| {
            v.split(',')
                .any(|r| r.trim().eq_ignore_ascii_case("controller"))
        }) {
            controller = true;
        }
        if map
            .get(STRIMZI_BROKER_ROLE_LABEL)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        {
            strimzi_broker = true;
        }
    }
    if controller {
        KafkaRole::Controller
    } else if claim.labels.contains_key(STRIMZI_CLUSTER_LABEL) && !strimzi_broker {
        KafkaRole::Unknown
    } else {
        KafkaRole::Broker
    }
}

/// The number after the last `-` of a name, if that is all digits.
pub fn trailing_ordinal(name: &str) -> Option<i32> {
    let (_, tail) = name.rsplit_once('-')?;
    if tail.is_empty() || !tail.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    tail.parse().ok()
}

/// The broker id of a PVC under `rule`.
pub fn broker_id(rule: &BrokerIdRule, claim: &ClaimFacts, pods: &[&PodFacts]) -> Option<BrokerId> {
    let ordinal = |offset: i32| {
        trailing_ordinal(&claim.name)
            .and_then(|o| o.checked_add(offset))
            .map(BrokerId)
    };
    match rule {
        BrokerIdRule::Ordinal { offset } => ordinal(*offset),
        BrokerIdRule::Label {
            key,
            fallback_offset,
        } => std::iter::once(&claim.labels)
            .chain(pods.iter().map(|p| &p.labels))
            .find_map(|labels| labels.get(key).and_then(|v| v.trim().parse().ok()))
            .map(BrokerId)
            .or_else(|| fallback_offset.and_then(ordinal)),
    }
}

/// Whether a claim opted in (rule 3 of the module docs).
fn opted_in(
    claim: &ClaimFacts,
    volume: &VolumeFacts,
    world: &World,
    config: &ReleaserConfig,
) -> bool {
    if claim.opt_in == Some(true) {
        return true;
    }
    let class = claim
        .storage_class
        .as_ref()
        .or(volume.storage_class.as_ref());
    if class.is_some_and(|c| config.scope.storage_classes.contains(c)) {
        return true;
    }
    world
        .workloads
        .iter()
        .any(|w| w.opt_in == Some(true) && w.made(claim))
}

/// Decides what to release for the lost `host`. `world` must be freshly listed; the caller has
/// re-checked that no node answers to `host`.
pub fn plan(host: &str, world: &World, config: &ReleaserConfig) -> Plan {
    let mut units: BTreeMap<(String, BrokerId), BrokerRelease> = BTreeMap::new();
    let mut skipped = Vec::new();
    for volume in &world.volumes {
        let Some(pins) = pins_of(volume, world) else {
            continue;
        };
        if !pins.contains(host) {
            continue;
        }
        let Some(claim_ref) = volume.claim.as_ref() else {
            continue;
        };
        let Some(claim) = world.claim(&claim_ref.namespace, &claim_ref.name) else {
            continue; // already gone
        };
        let pods: Vec<&PodFacts> = world
            .pods
            .iter()
            .filter(|p| p.namespace == claim.namespace && p.claims.contains(&claim.name))
            .collect();
        let verdict = check_claim(claim, volume, &pins, &pods, world, config);
        let broker = match verdict {
            Ok(broker) => broker,
            Err(reason) => {
                skipped.push(Skip {
                    namespace: claim.namespace.clone(),
                    name: claim.name.clone(),
                    uid: claim.uid.clone(),
                    reason,
                });
                continue;
            }
        };
        let unit = units
            .entry((claim.namespace.clone(), broker))
            .or_insert_with(|| BrokerRelease {
                broker,
                namespace: claim.namespace.clone(),
                claims: Vec::new(),
                pods: Vec::new(),
            });
        unit.claims.push(ClaimRelease {
            namespace: claim.namespace.clone(),
            name: claim.name.clone(),
            uid: claim.uid.clone(),
            volume: volume.name.clone(),
            already_deleting: claim.deleting,
        });
        for pod in pods {
            let owned = pod
                .controller
                .as_ref()
                .is_some_and(|(kind, _)| config.workload_kinds.contains(kind));
            let stuck = match &pod.node_name {
                // Scheduled onto a node that is gone (its kubelet will never act).
                Some(node) => !world.node_present(node),
                None => pod.phase.as_deref().is_none_or(|p| p == "Pending"),
            };
            // A pod created once the claim's deletion was requested is its owner's
            // replacement, made for the claim that will take this name: not stuck on the
            // lost volume, and not ours to delete.
            let recreated = matches!(
                (claim.deletion_requested, pod.created),
                (Some(requested), Some(created)) if created >= requested
            );
            if owned
                && stuck
                && !recreated
                && !pod.deleting
                && !unit.pods.iter().any(|p| p.uid == pod.uid)
            {
                unit.pods.push(PodRelease {
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                    uid: pod.uid.clone(),
                    force: pod.node_name.is_some(),
                });
            }
        }
    }
    Plan {
        releases: units.into_values().collect(),
        skipped,
    }
}

/// Rules 1-9 for one claim: its broker id, or why it is skipped.
fn check_claim(
    claim: &ClaimFacts,
    volume: &VolumeFacts,
    pins: &BTreeSet<String>,
    pods: &[&PodFacts],
    world: &World,
    config: &ReleaserConfig,
) -> Result<BrokerId, SkipReason> {
    if !config.namespace_allowed(&claim.namespace) {
        return Err(SkipReason::OutOfScope);
    }
    if claim.opt_in == Some(false) {
        return Err(SkipReason::OptedOut);
    }
    if !opted_in(claim, volume, world, config) {
        return Err(SkipReason::OutOfScope);
    }
    let claim_ref_uid = volume.claim.as_ref().and_then(|r| r.uid.as_deref());
    if claim_ref_uid != Some(claim.uid.as_str()) {
        return Err(SkipReason::ClaimUidMismatch);
    }
    if claim.volume_name.as_deref() != Some(volume.name.as_str()) {
        return Err(SkipReason::VolumeNameMismatch);
    }
    if pins.iter().any(|h| world.node_present(h)) {
        return Err(SkipReason::VolumeReachable);
    }
    if claim
        .selected_node
        .as_deref()
        .is_some_and(|n| world.node_present(n))
    {
        return Err(SkipReason::SelectedNodePresent);
    }
    match kafka_role(claim, pods) {
        KafkaRole::Controller => return Err(SkipReason::ControllerVolume),
        KafkaRole::Unknown => return Err(SkipReason::RoleUnknown),
        KafkaRole::Broker => {}
    }
    let broker = broker_id(&config.broker_id, claim, pods).ok_or(SkipReason::BrokerIdUnknown)?;
    let running_elsewhere = pods.iter().any(|p| {
        !p.deleting
            && p.node_name
                .as_deref()
                .is_some_and(|n| world.node_present(n))
            && p.phase.as_deref() != Some("Succeeded")
            && p.phase.as_deref() != Some("Failed")
    });
    if running_elsewhere {
        return Err(SkipReason::InUseOnLiveNode);
    }
    Ok(broker)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{OPT_IN_ANNOTATION, ReleaserConfig};
    use crate::facts::{ClaimRef, NodeFacts, WorkloadFacts};

    const LOST: &str = "node-a";

    fn config() -> ReleaserConfig {
        ReleaserConfig::new().with_storage_class("local-nvme")
    }

    fn volume(name: &str, claim: &str, uid: &str, host: &str) -> VolumeFacts {
        VolumeFacts {
            name: name.into(),
            kind: VolumeKind::Local,
            pinning: Pinning::Hosts([host.to_string()].into()),
            claim: Some(ClaimRef {
                namespace: "kafka".into(),
                name: claim.into(),
                uid: Some(uid.into()),
            }),
            storage_class: Some("local-nvme".into()),
        }
    }

    fn claim(name: &str, uid: &str, volume: &str) -> ClaimFacts {
        ClaimFacts {
            namespace: "kafka".into(),
            name: name.into(),
            uid: uid.into(),
            volume_name: Some(volume.into()),
            storage_class: Some("local-nvme".into()),
            selected_node: Some(LOST.into()),
            opt_in: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            deleting: false,
            deletion_requested: None,
        }
    }

    fn pending_pod(name: &str, claim: &str) -> PodFacts {
        PodFacts {
            namespace: "kafka".into(),
            name: name.into(),
            uid: format!("{name}-uid"),
            node_name: None,
            phase: Some("Pending".into()),
            claims: [claim.to_string()].into(),
            controller: Some(("StatefulSet".into(), "kafka".into())),
            labels: BTreeMap::new(),
            deleting: false,
            created: Some(0),
        }
    }

    fn node(name: &str) -> NodeFacts {
        NodeFacts {
            name: name.into(),
            hostname: Some(name.into()),
        }
    }

    /// Broker 0 on the lost node, broker 1 on a live node.
    fn world() -> World {
        World {
            nodes: vec![node("node-b")],
            volumes: vec![
                volume("pv-0", "data-kafka-0", "u0", LOST),
                volume("pv-1", "data-kafka-1", "u1", "node-b"),
            ],
            claims: vec![
                claim("data-kafka-0", "u0", "pv-0"),
                ClaimFacts {
                    selected_node: Some("node-b".into()),
                    ..claim("data-kafka-1", "u1", "pv-1")
                },
            ],
            pods: vec![pending_pod("kafka-0", "data-kafka-0")],
            workloads: vec![],
        }
    }

    fn only_skip(plan: &Plan) -> SkipReason {
        assert!(plan.releases.is_empty(), "{plan:?}");
        assert_eq!(plan.skipped.len(), 1, "{plan:?}");
        plan.skipped[0].reason
    }

    #[test]
    fn the_lost_nodes_claim_is_released_and_its_pending_pod_deleted() {
        let world = world();
        assert_eq!(missing_hosts(&world), BTreeSet::from([LOST.to_string()]));
        let plan = plan(LOST, &world, &config());
        assert!(plan.skipped.is_empty());
        assert_eq!(plan.releases.len(), 1);
        let unit = &plan.releases[0];
        assert_eq!(unit.broker, BrokerId(0));
        assert_eq!(unit.claims[0].name, "data-kafka-0");
        assert_eq!(unit.claims[0].uid, "u0");
        assert_eq!(unit.pods.len(), 1);
        assert!(!unit.pods[0].force, "an unscheduled pod needs no force");
        // Asked about a node that exists (the caller re-checks first), the plan refuses too.
        assert_eq!(
            only_skip(&super::plan("node-b", &world, &config())),
            SkipReason::VolumeReachable
        );
    }

    #[test]
    fn a_node_present_by_hostname_label_keeps_the_volume() {
        let mut world = world();
        // Re-registered under another name but the same hostname (EKS reuses IP names).
        world.nodes.push(NodeFacts {
            name: "node-a-new".into(),
            hostname: Some(LOST.into()),
        });
        assert!(missing_hosts(&world).is_empty());
        assert_eq!(
            only_skip(&plan(LOST, &world, &config())),
            SkipReason::VolumeReachable
        );
    }

    #[test]
    fn scope_rules() {
        let mut world = world();
        world.claims[0].storage_class = Some("gp3".into());
        world.volumes[0].storage_class = Some("gp3".into());
        assert_eq!(
            only_skip(&plan(LOST, &world, &config())),
            SkipReason::OutOfScope
        );
        // Annotation opt-in on the PVC.
        world.claims[0].opt_in = Some(true);
        assert_eq!(plan(LOST, &world, &config()).releases.len(), 1);
        // Opt-out wins over the storage class.
        let mut world = self::world();
        world.claims[0].opt_in = Some(false);
        assert_eq!(
            only_skip(&plan(LOST, &world, &config())),
            SkipReason::OptedOut
        );
        // Workload annotation.
        let mut world = self::world();
        world.claims[0].storage_class = None;
        world.volumes[0].storage_class = None;
        world.workloads.push(WorkloadFacts {
            namespace: "kafka".into(),
            name: "kafka".into(),
            claim_templates: ["data".to_string()].into(),
            opt_in: Some(true),
        });
        assert_eq!(plan(LOST, &world, &config()).releases.len(), 1);
        // Namespace restriction.
        let restricted = config().with_namespaces(["other"]);
        assert_eq!(
            only_skip(&plan(LOST, &self::world(), &restricted)),
            SkipReason::OutOfScope
        );
    }

    #[test]
    fn a_recreated_claim_or_mismatched_volume_is_never_released() {
        let mut world = world();
        world.claims[0].uid = "u0-recreated".into();
        assert_eq!(
            only_skip(&plan(LOST, &world, &config())),
            SkipReason::ClaimUidMismatch
        );
        let mut world = self::world();
        world.claims[0].volume_name = Some("pv-other".into());
        assert_eq!(
            only_skip(&plan(LOST, &world, &config())),
            SkipReason::VolumeNameMismatch
        );
    }

    #[test]
    fn controller_volumes_are_never_released() {
        for (key, value) in [
            (STRIMZI_CONTROLLER_ROLE_LABEL, "true"),
            (KAFKA_ROLES_LABEL, "broker,controller"),
        ] {
            let mut world = world();
            world.claims[0].labels.insert(key.into(), value.into());
            assert_eq!(
                only_skip(&plan(LOST, &world, &config())),
                SkipReason::ControllerVolume
            );
            // On the pod instead of the PVC.
            let mut world = self::world();
            world.pods[0].labels.insert(key.into(), value.into());
            assert_eq!(
                only_skip(&plan(LOST, &world, &config())),
                SkipReason::ControllerVolume
            );
        }
        // A Strimzi PVC needs a confirmed broker role.
        let mut world = world();
        world.claims[0]
            .labels
            .insert(STRIMZI_CLUSTER_LABEL.into(), "my-cluster".into());
        assert_eq!(
            only_skip(&plan(LOST, &world, &config())),
            SkipReason::RoleUnknown
        );
        world.claims[0]
            .labels
            .insert(STRIMZI_BROKER_ROLE_LABEL.into(), "true".into());
        world.claims[0]
            .labels
            .insert(STRIMZI_CONTROLLER_ROLE_LABEL.into(), "false".into());
        assert_eq!(plan(LOST, &world, &config()).releases.len(), 1);
    }

    #[test]
    fn selected_node_present_or_pod_running_elsewhere_blocks() {
        let mut world = world();
        world.claims[0].selected_node = Some("node-b".into());
        assert_eq!(
            only_skip(&plan(LOST, &world, &config())),
            SkipReason::SelectedNodePresent
        );
        let mut world = self::world();
        world.pods[0].node_name = Some("node-b".into());
        world.pods[0].phase = Some("Running".into());
        assert_eq!(
            only_skip(&plan(LOST, &world, &config())),
            SkipReason::InUseOnLiveNode
        );
    }

    #[test]
    fn network_volumes_and_zone_pinned_volumes_are_ignored() {
        let mut world = world();
        world.volumes[0].kind = VolumeKind::Other;
        assert!(missing_hosts(&world).is_empty());
        assert_eq!(plan(LOST, &world, &config()), Plan::default());
        let mut world = self::world();
        world.volumes[0].pinning = Pinning::Other;
        assert_eq!(plan(LOST, &world, &config()), Plan::default());
    }

    #[test]
    fn unpinned_hostpath_uses_the_selected_node() {
        let mut world = world();
        world.volumes[0].kind = VolumeKind::HostPath;
        world.volumes[0].pinning = Pinning::Unpinned;
        assert_eq!(missing_hosts(&world), BTreeSet::from([LOST.to_string()]));
        assert_eq!(plan(LOST, &world, &config()).releases.len(), 1);
        // An unpinned *local* volume is not something we understand: ignored.
        world.volumes[0].kind = VolumeKind::Local;
        assert!(missing_hosts(&world).is_empty());
    }

    #[test]
    fn pods_scheduled_on_the_lost_node_are_force_deleted_others_not_touched() {
        let mut world = world();
        world.pods[0].node_name = Some(LOST.into());
        world.pods[0].phase = Some("Running".into());
        // An unowned pod and a Deployment's pod using the claim are left alone.
        let mut bare = pending_pod("debug", "data-kafka-0");
        bare.controller = None;
        let mut rs = pending_pod("rs-pod", "data-kafka-0");
        rs.controller = Some(("ReplicaSet".into(), "x".into()));
        world.pods.extend([bare, rs]);
        let plan = plan(LOST, &world, &config());
        let unit = &plan.releases[0];
        assert_eq!(unit.pods.len(), 1);
        assert_eq!(unit.pods[0].name, "kafka-0");
        assert!(unit.pods[0].force);
    }

    #[test]
    fn broker_ids_from_ordinal_or_label() {
        let c = claim("data-0-my-cluster-brokers-12", "u", "pv");
        assert_eq!(
            broker_id(&BrokerIdRule::Ordinal { offset: 0 }, &c, &[]),
            Some(BrokerId(12))
        );
        assert_eq!(
            broker_id(&BrokerIdRule::Ordinal { offset: 100 }, &c, &[]),
            Some(BrokerId(112))
        );
        let rule = BrokerIdRule::Label {
            key: "kpilot.io/broker-id".into(),
            fallback_offset: None,
        };
        assert_eq!(broker_id(&rule, &c, &[]), None);
        let mut pod = pending_pod("p", "x");
        pod.labels.insert("kpilot.io/broker-id".into(), "7".into());
        assert_eq!(broker_id(&rule, &c, &[&pod]), Some(BrokerId(7)));
        assert_eq!(trailing_ordinal("data"), None);
        assert_eq!(trailing_ordinal("data-"), None);
        let mut world = world();
        world.claims[0].name = "data".into();
        world.volumes[0].claim.as_mut().expect("claim").name = "data".into();
        world.pods[0].claims = ["data".to_string()].into();
        assert_eq!(
            only_skip(&plan(LOST, &world, &config())),
            SkipReason::BrokerIdUnknown
        );
    }

    #[test]
    fn a_pod_recreated_after_its_claim_was_released_is_not_deleted_again() {
        let mut world = world();
        world.claims[0].deleting = true;
        world.claims[0].deletion_requested = Some(1_000);
        // Stuck since before the release: deleted.
        world.pods[0].created = Some(999);
        let unit = &plan(LOST, &world, &config()).releases[0];
        assert_eq!(unit.pods.len(), 1);
        // The owner's replacement, in the same second or later: left alone, while the
        // claim is still listed as terminating.
        for created in [1_000, 1_001] {
            world.pods[0].created = Some(created);
            let plan = plan(LOST, &world, &config());
            assert_eq!(plan.releases.len(), 1, "the claim is still released");
            assert!(plan.releases[0].pods.is_empty(), "created at {created}");
        }
    }

    #[test]
    fn jbod_claims_of_one_broker_form_one_unit_and_deleting_claims_are_marked() {
        let mut world = world();
        world
            .volumes
            .push(volume("pv-0b", "data-1-kafka-0", "u0b", LOST));
        let mut second = claim("data-1-kafka-0", "u0b", "pv-0b");
        second.deleting = true;
        world.claims.push(second);
        world.pods[0].claims.insert("data-1-kafka-0".into());
        let plan = plan(LOST, &world, &config());
        assert_eq!(plan.releases.len(), 1);
        let unit = &plan.releases[0];
        assert_eq!(unit.claims.len(), 2);
        assert_eq!(unit.pods.len(), 1, "the pod is listed once");
        assert!(!unit.all_claims_deleting());
        assert!(unit.claims.iter().any(|c| c.already_deleting));
        let _ = OPT_IN_ANNOTATION;
    }
}

#[cfg(test)]
mod properties {
    //! Invariants of [`plan`] over random worlds: whatever the mix of nodes, volumes, claims,
    //! labels and pods, nothing unsafe is ever in a release.

    use super::*;
    use crate::config::{OPT_IN_ANNOTATION, ReleaserConfig};
    use crate::facts::{ClaimRef, NodeFacts, WorkloadFacts};
    use proptest::prelude::*;

    const HOSTS: [&str; 4] = ["h0", "h1", "h2", "h3"];

    #[derive(Debug, Clone)]
    struct Case {
        present: Vec<bool>,
        volumes: Vec<(u8, u8, bool, bool, u8)>, // (kind, pin mask, uid matches, name matches, class)
        labels: Vec<u8>,                        // per claim: role marker bits
        opt: Vec<u8>,                           // per claim: 0 none, 1 true, 2 false
        pods: Vec<(u8, u8)>,                    // per claim: (node index or 4 = none, owner kind)
    }

    fn case() -> impl Strategy<Value = Case> {
        (1usize..6).prop_flat_map(|n| {
            (
                proptest::collection::vec(proptest::bool::weighted(0.5), 4),
                // Biased towards valid claims so that releases are common.
                proptest::collection::vec(
                    (
                        prop_oneof![3 => 0u8..2, 1 => Just(2u8)],
                        prop_oneof![3 => Just(1u8), 3 => Just(2u8), 2 => 1u8..16],
                        proptest::bool::weighted(0.85),
                        proptest::bool::weighted(0.85),
                        prop_oneof![3 => Just(0u8), 1 => Just(1u8)],
                    ),
                    n,
                ),
                proptest::collection::vec(prop_oneof![3 => Just(0u8), 1 => 0u8..8], n),
                proptest::collection::vec(prop_oneof![3 => Just(0u8), 1 => 0u8..3], n),
                proptest::collection::vec((prop_oneof![2 => Just(4u8), 1 => 0u8..4], 0u8..3), n),
            )
                .prop_map(|(present, volumes, labels, opt, pods)| Case {
                    present,
                    volumes,
                    labels,
                    opt,
                    pods,
                })
        })
    }

    fn world(c: &Case) -> World {
        let mut w = World::default();
        for (i, p) in c.present.iter().enumerate() {
            if *p {
                w.nodes.push(NodeFacts {
                    name: HOSTS[i].into(),
                    hostname: Some(HOSTS[i].into()),
                });
            }
        }
        for (i, (kind, mask, uid_ok, name_ok, class)) in c.volumes.iter().enumerate() {
            let pins: BTreeSet<String> = (0..4)
                .filter(|b| mask & (1 << b) != 0)
                .map(|b| HOSTS[b].to_string())
                .collect();
            let claim = format!("data-kafka-{i}");
            let class = if *class == 0 { "local-nvme" } else { "other" };
            w.volumes.push(VolumeFacts {
                name: format!("pv-{i}"),
                kind: [VolumeKind::Local, VolumeKind::HostPath, VolumeKind::Other][*kind as usize],
                pinning: Pinning::Hosts(pins.clone()),
                claim: Some(ClaimRef {
                    namespace: "kafka".into(),
                    name: claim.clone(),
                    uid: Some(if *uid_ok {
                        format!("u{i}")
                    } else {
                        "old".into()
                    }),
                }),
                storage_class: Some(class.into()),
            });
            let mut labels = BTreeMap::new();
            let bits = c.labels[i];
            if bits & 1 != 0 {
                labels.insert(
                    STRIMZI_CONTROLLER_ROLE_LABEL.to_string(),
                    "true".to_string(),
                );
            }
            if bits & 2 != 0 {
                labels.insert(STRIMZI_CLUSTER_LABEL.to_string(), "c".to_string());
            }
            if bits & 4 != 0 {
                labels.insert(
                    KAFKA_ROLES_LABEL.to_string(),
                    "broker,controller".to_string(),
                );
            }
            let mut annotations = BTreeMap::new();
            let opt_in = match c.opt[i] {
                1 => Some(true),
                2 => Some(false),
                _ => None,
            };
            if let Some(v) = opt_in {
                annotations.insert(OPT_IN_ANNOTATION.to_string(), v.to_string());
            }
            w.claims.push(ClaimFacts {
                namespace: "kafka".into(),
                name: claim.clone(),
                uid: format!("u{i}"),
                volume_name: Some(if *name_ok {
                    format!("pv-{i}")
                } else {
                    "pv-x".into()
                }),
                storage_class: Some(class.into()),
                selected_node: pins.iter().next().cloned(),
                opt_in,
                labels,
                annotations,
                deleting: false,
                deletion_requested: None,
            });
            let (node, owner) = c.pods[i];
            w.pods.push(PodFacts {
                namespace: "kafka".into(),
                name: format!("kafka-{i}"),
                uid: format!("p{i}"),
                node_name: (node < 4).then(|| HOSTS[node as usize].to_string()),
                phase: Some(if node < 4 { "Running" } else { "Pending" }.into()),
                claims: [claim].into(),
                controller: Some((
                    ["StatefulSet", "ReplicaSet", "StrimziPodSet"][owner as usize].into(),
                    "kafka".into(),
                )),
                labels: BTreeMap::new(),
                deleting: false,
                created: Some(0),
            });
        }
        w.workloads.push(WorkloadFacts {
            namespace: "kafka".into(),
            name: "other".into(),
            claim_templates: ["data".to_string()].into(),
            opt_in: Some(true),
        });
        w
    }

    proptest! {
        #[test]
        fn nothing_unsafe_is_ever_released(c in case()) {
            let w = world(&c);
            let config = ReleaserConfig::new().with_storage_class("local-nvme");
            for host in HOSTS {
                let plan = plan(host, &w, &config);
                for unit in &plan.releases {
                    for r in &unit.claims {
                        let claim = w.claim(&r.namespace, &r.name).expect("claim exists");
                        let volume = w.volumes.iter().find(|v| v.name == r.volume).expect("volume");
                        prop_assert!(volume.kind != VolumeKind::Other);
                        let Pinning::Hosts(pins) = &volume.pinning else { panic!("pinned") };
                        prop_assert!(pins.iter().all(|h| !w.node_present(h)), "a pin is present");
                        prop_assert_eq!(volume.claim.as_ref().and_then(|r| r.uid.as_deref()), Some(claim.uid.as_str()));
                        prop_assert_eq!(claim.volume_name.as_deref(), Some(volume.name.as_str()));
                        prop_assert!(claim.opt_in != Some(false));
                        prop_assert!(claim.opt_in == Some(true) || claim.storage_class.as_deref() == Some("local-nvme"));
                        prop_assert!(!claim.labels.contains_key(STRIMZI_CONTROLLER_ROLE_LABEL));
                        prop_assert!(!claim.labels.contains_key(STRIMZI_CLUSTER_LABEL));
                        prop_assert!(!claim.labels.contains_key(KAFKA_ROLES_LABEL));
                        for pod in w.pods.iter().filter(|p| p.claims.contains(&claim.name)) {
                            prop_assert!(pod.node_name.as_deref().is_none_or(|n| !w.node_present(n)));
                        }
                    }
                    for p in &unit.pods {
                        let pod = w.pods.iter().find(|x| x.uid == p.uid).expect("pod");
                        prop_assert!(pod.controller.as_ref().is_some_and(|(k, _)| k != "ReplicaSet"));
                    }
                }
                // Every claim pinned to the host is either released or skipped, never both.
                let skipped: BTreeSet<&str> = plan.skipped.iter().map(|s| s.uid.as_str()).collect();
                for unit in &plan.releases {
                    for r in &unit.claims {
                        prop_assert!(!skipped.contains(r.uid.as_str()));
                    }
                }
            }
        }
    }

    /// The property above is not vacuous: random worlds do produce releases and skips.
    #[test]
    fn random_worlds_release_and_skip() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let config = ReleaserConfig::new().with_storage_class("local-nvme");
        let (mut releases, mut skips) = (0, 0);
        for _ in 0..200 {
            let c = case().new_tree(&mut runner).expect("tree").current();
            let w = world(&c);
            for host in HOSTS {
                let plan = plan(host, &w, &config);
                releases += plan.releases.len();
                skips += plan.skipped.len();
            }
        }
        assert!(
            releases > 10 && skips > 10,
            "releases {releases}, skips {skips}"
        );
    }
}
