//! The thin Kubernetes layer: the [`KubeOps`] port (every API call the controller makes) and
//! [`ApiOps`], its implementation over a `kube::Client`. Performs network I/O. Deletes carry a
//! UID precondition; NotFound is reported as [`DeleteOutcome::AlreadyGone`], a failed UID
//! precondition as [`DeleteOutcome::UidChanged`]. Lists are quorum reads (no
//! `resourceVersion`), never served from a cache.

use std::fmt;
use std::future::Future;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    Node, ObjectReference, PersistentVolume, PersistentVolumeClaim, Pod,
};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::config::HOSTNAME_LABEL;

/// The API call that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Listing nodes.
    ListNodes,
    /// Looking a node up by name and hostname label.
    LookUpNode,
    /// Listing persistent volumes.
    ListVolumes,
    /// Listing persistent volume claims.
    ListClaims,
    /// Listing pods.
    ListPods,
    /// Listing StatefulSets.
    ListStatefulSets,
    /// Deleting a PVC.
    DeleteClaim,
    /// Deleting a pod.
    DeletePod,
    /// Publishing an Event.
    PublishEvent,
}

impl Action {
    /// The metric label (`step`).
    pub fn label(self) -> &'static str {
        match self {
            Action::ListNodes => "list_nodes",
            Action::LookUpNode => "look_up_node",
            Action::ListVolumes => "list_volumes",
            Action::ListClaims => "list_claims",
            Action::ListPods => "list_pods",
            Action::ListStatefulSets => "list_statefulsets",
            Action::DeleteClaim => "delete_pvc",
            Action::DeletePod => "delete_pod",
            Action::PublishEvent => "publish_event",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::ListNodes => "listing nodes",
            Action::LookUpNode => "looking up node",
            Action::ListVolumes => "listing persistent volumes",
            Action::ListClaims => "listing persistent volume claims",
            Action::ListPods => "listing pods",
            Action::ListStatefulSets => "listing statefulsets",
            Action::DeleteClaim => "deleting PVC",
            Action::DeletePod => "deleting pod",
            Action::PublishEvent => "publishing an event on",
        })
    }
}

/// A failed Kubernetes API call.
#[derive(Debug, thiserror::Error)]
#[error("{action} {object}: {source}")]
pub struct OpsError {
    /// What was being done.
    pub action: Action,
    /// On which object or namespace (`namespace/name`, `*` for all).
    pub object: String,
    /// The client's error.
    #[source]
    pub source: Box<kube::Error>,
}

impl OpsError {
    /// An error for `action` on `object`.
    pub fn new(action: Action, object: impl Into<String>, source: kube::Error) -> Self {
        OpsError {
            action,
            object: object.into(),
            source: Box::new(source),
        }
    }

    /// Whether retrying may help: server errors, throttling, conflicts and transport errors.
    /// Other 4xx answers (forbidden, invalid) are permanent.
    pub fn is_transient(&self) -> bool {
        match &*self.source {
            kube::Error::Api(status) => {
                status.code >= 500 || status.code == 429 || status.code == 409
            }
            _ => true,
        }
    }
}

/// How a delete ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// Accepted (deleted, or marked for deletion behind finalizers; in dry-run, validated).
    Deleted,
    /// It did not exist: counts as done.
    AlreadyGone,
    /// An object of that name exists with another UID: it was not touched.
    UidChanged,
}

/// Severity of an Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Normal.
    Normal,
    /// Warning.
    Warning,
}

/// An Event to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct EventSpec {
    /// Normal or Warning.
    pub severity: Severity,
    /// PascalCase reason, e.g. `PvcReleased`.
    pub reason: String,
    /// PascalCase action, e.g. `ReleasePvc`.
    pub action: String,
    /// Human message.
    pub note: String,
    /// A related object (e.g. the PVC, when the Event is on the autopilot object).
    pub related: Option<ObjectReference>,
}

/// Every Kubernetes call the controller makes. Implemented by [`ApiOps`]; tests wrap it to
/// inject failures.
pub trait KubeOps: Send + Sync + 'static {
    /// Lists all nodes (quorum read).
    fn list_nodes(&self) -> impl Future<Output = Result<Vec<Node>, OpsError>> + Send;
    /// Whether a node named `host` exists, or one labelled `kubernetes.io/hostname=host`
    /// (a GET and a labelled list, both straight from the API server).
    fn node_answers(&self, host: &str) -> impl Future<Output = Result<bool, OpsError>> + Send;
    /// Lists all persistent volumes.
    fn list_volumes(&self) -> impl Future<Output = Result<Vec<PersistentVolume>, OpsError>> + Send;
    /// Lists PVCs of one namespace, or of all with `None`.
    fn list_claims(
        &self,
        namespace: Option<&str>,
    ) -> impl Future<Output = Result<Vec<PersistentVolumeClaim>, OpsError>> + Send;
    /// Lists the pods of a namespace.
    fn list_pods(&self, namespace: &str)
    -> impl Future<Output = Result<Vec<Pod>, OpsError>> + Send;
    /// Lists the StatefulSets of a namespace.
    fn list_statefulsets(
        &self,
        namespace: &str,
    ) -> impl Future<Output = Result<Vec<StatefulSet>, OpsError>> + Send;
    /// Deletes a PVC if its UID is still `uid`.
    fn delete_claim(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        dry_run: bool,
    ) -> impl Future<Output = Result<DeleteOutcome, OpsError>> + Send;
    /// Deletes a pod if its UID is still `uid`; `force` uses grace period 0.
    fn delete_pod(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        force: bool,
        dry_run: bool,
    ) -> impl Future<Output = Result<DeleteOutcome, OpsError>> + Send;
    /// Publishes an Event about `regarding`.
    fn publish(
        &self,
        event: &EventSpec,
        regarding: &ObjectReference,
    ) -> impl Future<Output = Result<(), OpsError>> + Send;
}

/// [`KubeOps`] over a real `kube::Client`.
#[derive(Clone)]
pub struct ApiOps {
    client: Client,
    recorder: Recorder,
}

impl fmt::Debug for ApiOps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiOps").finish_non_exhaustive()
    }
}

impl ApiOps {
    /// Calls through `client`; Events are reported as `controller` (and `instance`).
    pub fn new(client: Client, controller: &str, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: controller.to_string(),
            instance,
        };
        ApiOps {
            recorder: Recorder::new(client.clone(), reporter),
            client,
        }
    }
}

fn delete_outcome<T>(
    result: Result<T, kube::Error>,
    action: Action,
    object: String,
) -> Result<DeleteOutcome, OpsError> {
    match result {
        Ok(_) => Ok(DeleteOutcome::Deleted),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(DeleteOutcome::AlreadyGone),
        // The API server words it "the UID in the precondition (..) does not match the UID in
        // record (..)" (older releases: "Precondition failed: UID in precondition: ..").
        Err(kube::Error::Api(status))
            if status.code == 409
                && status.message.to_ascii_lowercase().contains("precondition") =>
        {
            Ok(DeleteOutcome::UidChanged)
        }
        Err(e) => Err(OpsError::new(action, object, e)),
    }
}

fn delete_params(uid: &str, dry_run: bool, grace: Option<u32>) -> DeleteParams {
    DeleteParams {
        dry_run,
        grace_period_seconds: grace,
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    }
}

impl KubeOps for ApiOps {
    async fn list_nodes(&self) -> Result<Vec<Node>, OpsError> {
        Api::<Node>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .map_err(|e| OpsError::new(Action::ListNodes, "*", e))
    }

    async fn node_answers(&self, host: &str) -> Result<bool, OpsError> {
        let nodes = Api::<Node>::all(self.client.clone());
        let by_name = nodes
            .get_opt(host)
            .await
            .map_err(|e| OpsError::new(Action::LookUpNode, host, e))?;
        if by_name.is_some() {
            return Ok(true);
        }
        // A label value may not hold every string a node name can; such a host cannot be a
        // hostname label either.
        if !is_label_value(host) {
            return Ok(false);
        }
        let labelled = nodes
            .list(&ListParams::default().labels(&format!("{HOSTNAME_LABEL}={host}")))
            .await
            .map_err(|e| OpsError::new(Action::LookUpNode, host, e))?;
        Ok(!labelled.items.is_empty())
    }

    async fn list_volumes(&self) -> Result<Vec<PersistentVolume>, OpsError> {
        Api::<PersistentVolume>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .map_err(|e| OpsError::new(Action::ListVolumes, "*", e))
    }

    async fn list_claims(
        &self,
        namespace: Option<&str>,
    ) -> Result<Vec<PersistentVolumeClaim>, OpsError> {
        let api = match namespace {
            Some(ns) => Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        api.list(&ListParams::default())
            .await
            .map(|l| l.items)
            .map_err(|e| OpsError::new(Action::ListClaims, namespace.unwrap_or("*"), e))
    }

    async fn list_pods(&self, namespace: &str) -> Result<Vec<Pod>, OpsError> {
        Api::<Pod>::namespaced(self.client.clone(), namespace)
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .map_err(|e| OpsError::new(Action::ListPods, namespace, e))
    }

    async fn list_statefulsets(&self, namespace: &str) -> Result<Vec<StatefulSet>, OpsError> {
        Api::<StatefulSet>::namespaced(self.client.clone(), namespace)
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .map_err(|e| OpsError::new(Action::ListStatefulSets, namespace, e))
    }

    async fn delete_claim(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        dry_run: bool,
    ) -> Result<DeleteOutcome, OpsError> {
        let api = Api::<PersistentVolumeClaim>::namespaced(self.client.clone(), namespace);
        delete_outcome(
            api.delete(name, &delete_params(uid, dry_run, None)).await,
            Action::DeleteClaim,
            format!("{namespace}/{name}"),
        )
    }

    async fn delete_pod(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        force: bool,
        dry_run: bool,
    ) -> Result<DeleteOutcome, OpsError> {
        let api = Api::<Pod>::namespaced(self.client.clone(), namespace);
        let grace = force.then_some(0);
        delete_outcome(
            api.delete(name, &delete_params(uid, dry_run, grace)).await,
            Action::DeletePod,
            format!("{namespace}/{name}"),
        )
    }

    async fn publish(
        &self,
        event: &EventSpec,
        regarding: &ObjectReference,
    ) -> Result<(), OpsError> {
        let ev = Event {
            type_: match event.severity {
                Severity::Normal => EventType::Normal,
                Severity::Warning => EventType::Warning,
            },
            reason: event.reason.clone(),
            note: Some(truncate(&event.note, 1000)),
            action: event.action.clone(),
            secondary: event.related.clone(),
        };
        self.recorder.publish(&ev, regarding).await.map_err(|e| {
            let object = format!(
                "{}/{}",
                regarding.namespace.as_deref().unwrap_or(""),
                regarding.name.as_deref().unwrap_or("")
            );
            OpsError::new(Action::PublishEvent, object, e)
        })
    }
}

/// Whether `s` is a valid label value (at most 63 characters of `[A-Za-z0-9._-]`, starting
/// and ending alphanumeric).
fn is_label_value(s: &str) -> bool {
    s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// The reference to a PVC, for Events.
pub fn claim_reference(namespace: &str, name: &str, uid: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".to_string()),
        kind: Some("PersistentVolumeClaim".to_string()),
        namespace: Some(namespace.to_string()),
        name: Some(name.to_string()),
        uid: Some(uid.to_string()),
        ..ObjectReference::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api_error(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Status::failure(message, "x").with_code(code).boxed())
    }

    #[test]
    fn transient_errors_are_retried_permanent_ones_not() {
        let e = |code| OpsError::new(Action::DeleteClaim, "ns/x", api_error(code, "m"));
        assert!(e(500).is_transient());
        assert!(e(503).is_transient());
        assert!(e(429).is_transient());
        assert!(e(409).is_transient());
        assert!(!e(403).is_transient());
        assert!(!e(422).is_transient());
    }

    #[test]
    fn delete_outcomes() {
        let out = |r: Result<(), kube::Error>| delete_outcome(r, Action::DeleteClaim, "x".into());
        assert_eq!(out(Ok(())).expect("ok"), DeleteOutcome::Deleted);
        assert_eq!(
            out(Err(api_error(404, "not found"))).expect("ok"),
            DeleteOutcome::AlreadyGone
        );
        assert_eq!(
            out(Err(api_error(
                409,
                "Precondition failed: UID in precondition: a, UID in object meta: b"
            )))
            .expect("ok"),
            DeleteOutcome::UidChanged
        );
        assert_eq!(
            out(Err(api_error(
                409,
                "Operation cannot be fulfilled on PersistentVolumeClaim \"x\": the UID in the \
                 precondition (a) does not match the UID in record (b). The object might have \
                 been deleted and then recreated"
            )))
            .expect("ok"),
            DeleteOutcome::UidChanged
        );
        assert!(out(Err(api_error(409, "the object has been modified"))).is_err());
        assert!(out(Err(api_error(500, "etcd"))).is_err());
    }

    #[test]
    fn label_values() {
        assert!(is_label_value("ip-10-0-0-1.eu-west-1.compute.internal"));
        assert!(!is_label_value("-x"));
        assert!(!is_label_value(&"a".repeat(64)));
        assert_eq!(truncate("héllo", 2), "h...");
    }
}
