//! The facts the decisions need, extracted from Kubernetes objects (Node, PersistentVolume,
//! PersistentVolumeClaim, Pod, StatefulSet) into small owned structs. Pure: no I/O; the
//! conversion functions only read the objects they are given.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    Node, PersistentVolume, PersistentVolumeClaim, Pod, VolumeNodeAffinity,
};

use crate::config::{HOSTNAME_LABEL, OPT_IN_ANNOTATION, SELECTED_NODE_ANNOTATION};

/// A node as far as presence goes: its name and its hostname label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    /// `metadata.name`.
    pub name: String,
    /// The `kubernetes.io/hostname` label, if set.
    pub hostname: Option<String>,
}

impl NodeFacts {
    /// Extracts the facts of a Node.
    pub fn from_node(node: &Node) -> Option<NodeFacts> {
        Some(NodeFacts {
            name: node.metadata.name.clone()?,
            hostname: node
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(HOSTNAME_LABEL))
                .cloned(),
        })
    }

    /// Whether this node answers to `host`, by name or by hostname label.
    pub fn answers_to(&self, host: &str) -> bool {
        self.name == host || self.hostname.as_deref() == Some(host)
    }
}

/// What kind of storage a PV is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeKind {
    /// `spec.local`: a disk or directory of one node.
    Local,
    /// `spec.hostPath` (Rancher local-path's default): a directory of one node.
    HostPath,
    /// Anything else (network storage): never released.
    Other,
}

/// Which nodes a PV can be used from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pinning {
    /// No required node affinity.
    Unpinned,
    /// Only from a node whose name or hostname label is one of these.
    Hosts(BTreeSet<String>),
    /// A node affinity that is not (only) a host list, e.g. a zone: not tied to one node.
    Other,
}

/// The PV's claim reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRef {
    /// The claim's namespace.
    pub namespace: String,
    /// The claim's name.
    pub name: String,
    /// The claim's UID, if recorded.
    pub uid: Option<String>,
}

/// A persistent volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeFacts {
    /// `metadata.name`.
    pub name: String,
    /// Local, hostPath or other.
    pub kind: VolumeKind,
    /// Node affinity, reduced to hosts.
    pub pinning: Pinning,
    /// The claim it is bound to, if any.
    pub claim: Option<ClaimRef>,
    /// `spec.storageClassName`.
    pub storage_class: Option<String>,
}

impl VolumeFacts {
    /// Extracts the facts of a PV.
    pub fn from_pv(pv: &PersistentVolume) -> Option<VolumeFacts> {
        let name = pv.metadata.name.clone()?;
        let spec = pv.spec.as_ref();
        let kind = match spec {
            Some(s) if s.local.is_some() => VolumeKind::Local,
            Some(s) if s.host_path.is_some() => VolumeKind::HostPath,
            _ => VolumeKind::Other,
        };
        let pinning = spec
            .and_then(|s| s.node_affinity.as_ref())
            .map_or(Pinning::Unpinned, pinning_of);
        let claim = spec.and_then(|s| s.claim_ref.as_ref()).and_then(|r| {
            Some(ClaimRef {
                namespace: r.namespace.clone()?,
                name: r.name.clone()?,
                uid: r.uid.clone(),
            })
        });
        Some(VolumeFacts {
            name,
            kind,
            pinning,
            claim,
            storage_class: spec.and_then(|s| s.storage_class_name.clone()),
        })
    }
}

/// Reduces a PV node affinity to the hosts it allows. Terms are ORed: every term must name
/// hosts (a `kubernetes.io/hostname In [...]` expression or a `metadata.name In [...]` field),
/// else the volume is not considered tied to specific nodes.
pub fn pinning_of(affinity: &VolumeNodeAffinity) -> Pinning {
    let Some(required) = affinity.required.as_ref() else {
        return Pinning::Unpinned;
    };
    if required.node_selector_terms.is_empty() {
        return Pinning::Unpinned;
    }
    let mut hosts = BTreeSet::new();
    for term in &required.node_selector_terms {
        let by_label = term
            .match_expressions
            .iter()
            .flatten()
            .filter(|e| e.key == HOSTNAME_LABEL && e.operator == "In" && e.values.is_some());
        let by_field = term
            .match_fields
            .iter()
            .flatten()
            .filter(|e| e.key == "metadata.name" && e.operator == "In" && e.values.is_some());
        let mut term_hosts: Option<BTreeSet<String>> = None;
        // Within a term, requirements are ANDed: the allowed hosts are the intersection.
        for expr in by_label.chain(by_field) {
            let values: BTreeSet<String> = expr.values.iter().flatten().cloned().collect();
            term_hosts = Some(match term_hosts {
                None => values,
                Some(prev) => prev.intersection(&values).cloned().collect(),
            });
        }
        match term_hosts {
            Some(h) => hosts.extend(h),
            None => return Pinning::Other,
        }
    }
    Pinning::Hosts(hosts)
}

/// A persistent volume claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimFacts {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// `spec.volumeName`, if bound.
    pub volume_name: Option<String>,
    /// `spec.storageClassName`.
    pub storage_class: Option<String>,
    /// The `volume.kubernetes.io/selected-node` annotation.
    pub selected_node: Option<String>,
    /// The opt-in annotation: `Some(true)`, `Some(false)`, or `None` when absent or not a bool.
    pub opt_in: Option<bool>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Whether it is already being deleted.
    pub deleting: bool,
    /// When its deletion was requested (`metadata.deletionTimestamp`), in Unix seconds.
    pub deletion_requested: Option<i64>,
}

impl ClaimFacts {
    /// Extracts the facts of a PVC.
    pub fn from_pvc(pvc: &PersistentVolumeClaim) -> Option<ClaimFacts> {
        let meta = &pvc.metadata;
        let annotations = meta.annotations.clone().unwrap_or_default();
        Some(ClaimFacts {
            namespace: meta.namespace.clone()?,
            name: meta.name.clone()?,
            uid: meta.uid.clone()?,
            volume_name: pvc.spec.as_ref().and_then(|s| s.volume_name.clone()),
            storage_class: pvc.spec.as_ref().and_then(|s| s.storage_class_name.clone()),
            selected_node: annotations.get(SELECTED_NODE_ANNOTATION).cloned(),
            opt_in: annotations
                .get(OPT_IN_ANNOTATION)
                .and_then(|v| parse_bool(v)),
            labels: meta.labels.clone().unwrap_or_default(),
            annotations,
            deleting: meta.deletion_timestamp.is_some(),
            deletion_requested: meta.deletion_timestamp.as_ref().map(|t| t.0.as_second()),
        })
    }
}

/// Parses an annotation boolean (`true`/`false`, any case, surrounding spaces ignored).
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// A pod, as far as unsticking goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFacts {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// `spec.nodeName`, if scheduled.
    pub node_name: Option<String>,
    /// `status.phase`, if reported.
    pub phase: Option<String>,
    /// The PVCs it mounts.
    pub claims: BTreeSet<String>,
    /// The kind and name of its controller owner, if any.
    pub controller: Option<(String, String)>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Whether it is already being deleted.
    pub deleting: bool,
    /// When it was created (`metadata.creationTimestamp`), in Unix seconds.
    pub created: Option<i64>,
}

impl PodFacts {
    /// Extracts the facts of a Pod.
    pub fn from_pod(pod: &Pod) -> Option<PodFacts> {
        let meta = &pod.metadata;
        let claims = pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .filter_map(|v| v.persistent_volume_claim.as_ref())
            .map(|c| c.claim_name.clone())
            .collect();
        let controller = meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| (o.kind.clone(), o.name.clone()));
        Some(PodFacts {
            namespace: meta.namespace.clone()?,
            name: meta.name.clone()?,
            uid: meta.uid.clone()?,
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            phase: pod.status.as_ref().and_then(|s| s.phase.clone()),
            claims,
            controller,
            labels: meta.labels.clone().unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
            created: meta.creation_timestamp.as_ref().map(|t| t.0.as_second()),
        })
    }
}

/// A StatefulSet's opt-in: its name, its claim template names and its annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadFacts {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `spec.volumeClaimTemplates[].metadata.name`.
    pub claim_templates: BTreeSet<String>,
    /// The opt-in annotation on the StatefulSet.
    pub opt_in: Option<bool>,
}

impl WorkloadFacts {
    /// Extracts the facts of a StatefulSet.
    pub fn from_statefulset(sts: &StatefulSet) -> Option<WorkloadFacts> {
        let meta = &sts.metadata;
        Some(WorkloadFacts {
            namespace: meta.namespace.clone()?,
            name: meta.name.clone()?,
            claim_templates: sts
                .spec
                .iter()
                .flat_map(|s| s.volume_claim_templates.iter().flatten())
                .filter_map(|t| t.metadata.name.clone())
                .collect(),
            opt_in: meta
                .annotations
                .as_ref()
                .and_then(|a| a.get(OPT_IN_ANNOTATION))
                .and_then(|v| parse_bool(v)),
        })
    }

    /// Whether `claim` (in the same namespace) was made from one of this StatefulSet's claim
    /// templates: its name is `<template>-<statefulset>-<ordinal>`.
    pub fn made(&self, claim: &ClaimFacts) -> bool {
        claim.namespace == self.namespace
            && self.claim_templates.iter().any(|t| {
                claim
                    .name
                    .strip_prefix(t.as_str())
                    .and_then(|rest| rest.strip_prefix('-'))
                    .and_then(|rest| rest.strip_prefix(self.name.as_str()))
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|ord| !ord.is_empty() && ord.bytes().all(|b| b.is_ascii_digit()))
            })
    }
}

/// Everything observed at one moment, as input to [`crate::decide`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct World {
    /// Nodes.
    pub nodes: Vec<NodeFacts>,
    /// Persistent volumes.
    pub volumes: Vec<VolumeFacts>,
    /// Persistent volume claims.
    pub claims: Vec<ClaimFacts>,
    /// Pods (of the namespaces of interest).
    pub pods: Vec<PodFacts>,
    /// StatefulSets (of the namespaces of interest).
    pub workloads: Vec<WorkloadFacts>,
}

impl World {
    /// Whether any node answers to `host` by name or hostname label.
    pub fn node_present(&self, host: &str) -> bool {
        self.nodes.iter().any(|n| n.answers_to(host))
    }

    /// The claim with this namespace and name.
    pub fn claim(&self, namespace: &str, name: &str) -> Option<&ClaimFacts> {
        self.claims
            .iter()
            .find(|c| c.namespace == namespace && c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn local_path_hostpath_pv_is_pinned_to_its_hostname() {
        let pv: PersistentVolume = serde_json::from_value(json!({
            "metadata": { "name": "pvc-123" },
            "spec": {
                "hostPath": { "path": "/opt/local-path-provisioner/pvc-123", "type": "DirectoryOrCreate" },
                "storageClassName": "local-path",
                "claimRef": { "namespace": "kafka", "name": "data-kafka-0", "uid": "u1" },
                "nodeAffinity": { "required": { "nodeSelectorTerms": [ { "matchExpressions": [
                    { "key": "kubernetes.io/hostname", "operator": "In", "values": ["ip-10-0-0-1"] }
                ] } ] } }
            }
        }))
        .expect("pv");
        let facts = VolumeFacts::from_pv(&pv).expect("facts");
        assert_eq!(facts.kind, VolumeKind::HostPath);
        assert_eq!(
            facts.pinning,
            Pinning::Hosts(["ip-10-0-0-1".to_string()].into())
        );
        assert_eq!(facts.claim.expect("claim").uid.as_deref(), Some("u1"));
    }

    #[test]
    fn zone_affinity_is_not_a_host_pin_and_fields_count() {
        let zone: VolumeNodeAffinity = serde_json::from_value(json!({ "required": {
            "nodeSelectorTerms": [ { "matchExpressions": [
                { "key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"] } ] } ]
        } }))
        .expect("affinity");
        assert_eq!(pinning_of(&zone), Pinning::Other);
        let field: VolumeNodeAffinity = serde_json::from_value(json!({ "required": {
            "nodeSelectorTerms": [ { "matchFields": [
                { "key": "metadata.name", "operator": "In", "values": ["n1"] } ] } ]
        } }))
        .expect("affinity");
        assert_eq!(
            pinning_of(&field),
            Pinning::Hosts(["n1".to_string()].into())
        );
        let mixed: VolumeNodeAffinity = serde_json::from_value(json!({ "required": {
            "nodeSelectorTerms": [
                { "matchExpressions": [ { "key": "kubernetes.io/hostname", "operator": "In", "values": ["a"] } ] },
                { "matchExpressions": [ { "key": "topology.kubernetes.io/zone", "operator": "In", "values": ["z"] } ] }
            ]
        } }))
        .expect("affinity");
        assert_eq!(
            pinning_of(&mixed),
            Pinning::Other,
            "one unpinned term frees it"
        );
    }

    #[test]
    fn statefulset_claim_names_are_matched_exactly() {
        let sts = WorkloadFacts {
            namespace: "kafka".into(),
            name: "kafka".into(),
            claim_templates: ["data".to_string()].into(),
            opt_in: Some(true),
        };
        let claim = |name: &str| ClaimFacts {
            namespace: "kafka".into(),
            name: name.into(),
            uid: "u".into(),
            volume_name: None,
            storage_class: None,
            selected_node: None,
            opt_in: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            deleting: false,
            deletion_requested: None,
        };
        assert!(sts.made(&claim("data-kafka-12")));
        assert!(!sts.made(&claim("data-kafka-x")));
        assert!(!sts.made(&claim("data-kafkaconnect-1")));
        assert!(!sts.made(&claim("logs-kafka-1")));
    }

    #[test]
    fn booleans_parse_leniently() {
        assert_eq!(parse_bool(" True "), Some(true));
        assert_eq!(parse_bool("false"), Some(false));
        assert_eq!(parse_bool("yes"), None);
    }
}
