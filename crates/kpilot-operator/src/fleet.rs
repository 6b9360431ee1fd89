//! The roll engine's [`Fleet`] for a StatefulSet with `updateStrategy: OnDelete` whose pod
//! template already asks for the new instance type: stopping broker *i* deletes pod
//! `<sts>-<i - firstBrokerId>` and waits until it is gone, starting waits until the
//! StatefulSet controller has recreated it on the new template and it is Ready. The roll
//! journal lives in the autopilot's status ([`StatusJournal`], shared with the rebalance of
//! `crate::horizontal`), written before every pod deletion, so a restarted operator resumes
//! where it stopped. Performs Kubernetes API I/O.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kpilot_cluster::BrokerId;
use kpilot_roll::journal::{Journal, Phase};
use kpilot_roll::store::{JournalStore, StoreError};
use kpilot_roll::{Fleet, FleetError};
use kpilot_units::InstanceType;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::crd::{BrokerProgress, KafkaAutopilot};
use crate::target::{INSTANCE_TYPE_ANNOTATION, pod_spec_instance_type};

/// A journal an operation keeps in `status.operation.journal` (the roll's, the rebalance's):
/// its JSON and the per-broker progress shown next to it.
pub trait StatusRecord: Clone {
    /// The JSON written into `status.operation.journal`.
    fn to_json(&self) -> String;
    /// The per-broker progress written into `status.operation.brokers`.
    fn progress(&self) -> Vec<BrokerProgress>;
}

impl StatusRecord for Journal {
    fn to_json(&self) -> String {
        Journal::to_json(self)
    }

    fn progress(&self) -> Vec<BrokerProgress> {
        progress(self)
    }
}

/// An operation's journal kept in `status.operation.journal` (the roll's by default):
/// [`StatusJournal::record`] (synchronous, called through the executor's store before and
/// after every step) keeps it in memory, [`StatusJournal::flush`] writes it; the adapters the
/// executor drives flush before every action that changes something (the roll's fleet before
/// it deletes a pod, the rebalance's port before every request).
pub struct StatusJournal<J = Journal> {
    api: Api<KafkaAutopilot>,
    name: String,
    saved: RefCell<Option<J>>,
    dirty: RefCell<bool>,
    message: RefCell<Option<String>>,
    /// Whether the autopilot was seen being deleted (or gone), and when it was last looked at.
    deleting: Cell<bool>,
    looked: Cell<Option<Instant>>,
}

/// How often [`StatusJournal::deleting`] reads the autopilot when no write told it already.
pub const DELETION_CHECK: Duration = Duration::from_secs(2);

impl<J: StatusRecord> StatusJournal<J> {
    /// A journal for autopilot `name`, starting from what its status holds.
    pub fn new(api: Api<KafkaAutopilot>, name: &str, initial: Option<J>) -> Self {
        StatusJournal {
            api,
            name: name.to_owned(),
            saved: RefCell::new(initial),
            dirty: RefCell::new(false),
            message: RefCell::new(None),
            deleting: Cell::new(false),
            looked: Cell::new(None),
        }
    }

    /// Whether the autopilot is being deleted (it has a deletion timestamp) or is gone. Known
    /// from the last status write; otherwise read from the API server, at most every
    /// [`DELETION_CHECK`]. Once seen, it stays true. The operation in progress uses it to stop
    /// before its next change (see `crate::finalizer`).
    pub async fn deleting(&self) -> Result<bool, kube::Error> {
        if self.deleting.get() {
            return Ok(true);
        }
        if self
            .looked
            .get()
            .is_some_and(|at| at.elapsed() < DELETION_CHECK)
        {
            return Ok(false);
        }
        let now = self.api.get_opt(&self.name).await?;
        self.looked.set(Some(Instant::now()));
        let deleting = now.is_none_or(|ap| ap.metadata.deletion_timestamp.is_some());
        self.deleting.set(deleting);
        Ok(deleting)
    }

    /// Sets the progress message written with the next flush.
    pub fn set_message(&self, message: String) {
        *self.message.borrow_mut() = Some(message);
        *self.dirty.borrow_mut() = true;
    }

    /// The journal saved last.
    pub fn journal(&self) -> Option<J> {
        self.saved.borrow().clone()
    }

    /// Keeps `journal` as the one saved last; the next flush writes it.
    pub fn record(&self, journal: &J) {
        *self.saved.borrow_mut() = Some(journal.clone());
        *self.dirty.borrow_mut() = true;
    }

    /// Writes the journal, per-broker progress and message into the status if they changed.
    pub async fn flush(&self) -> Result<(), kube::Error> {
        if !*self.dirty.borrow() {
            return Ok(());
        }
        let journal = self.saved.borrow().clone();
        let message = self.message.borrow().clone();
        let brokers = journal
            .as_ref()
            .map(StatusRecord::progress)
            .unwrap_or_default();
        let patch = json!({"status": {"operation": {
            "journal": journal.as_ref().map(StatusRecord::to_json),
            "brokers": brokers,
            "message": message,
        }}});
        let written = self
            .api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        *self.dirty.borrow_mut() = false;
        self.looked.set(Some(Instant::now()));
        if written.metadata.deletion_timestamp.is_some() {
            self.deleting.set(true);
        }
        Ok(())
    }
}

/// Per-broker progress from a journal.
pub fn progress(journal: &Journal) -> Vec<BrokerProgress> {
    journal
        .nodes
        .iter()
        .map(|n| BrokerProgress {
            id: n.id.0,
            phase: phase_name(n.phase).to_owned(),
            down_since: None,
        })
        .collect()
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Pending => "pending",
        Phase::StopIssued => "stopping",
        Phase::Stopped => "stopped",
        Phase::ResizeIssued | Phase::Resized => "resized",
        Phase::StartIssued => "starting",
        Phase::Started => "catching-up",
        Phase::CaughtUp | Phase::ElectionIssued => "electing-leaders",
        Phase::Done => "done",
    }
}

/// The executor's store over a [`StatusJournal`].
pub struct StatusStore<'a>(pub &'a StatusJournal);

impl JournalStore for StatusStore<'_> {
    fn load(&self) -> Result<Option<Journal>, StoreError> {
        Ok(self.0.journal())
    }

    fn save(&mut self, journal: &Journal) -> Result<(), StoreError> {
        self.0.record(journal);
        Ok(())
    }
}

/// A StatefulSet's pods as a roll fleet.
pub struct StatefulSetFleet<'a> {
    pods: Api<Pod>,
    statefulset: String,
    first_broker_id: i32,
    target: InstanceType,
    journal: &'a StatusJournal,
    timeout: Duration,
    poll: Duration,
    fresh_disks: bool,
}

impl<'a> StatefulSetFleet<'a> {
    /// The fleet of StatefulSet `statefulset` (pods in `pods`' namespace) rolling to `target`;
    /// waits for a pod to go or come back at most `timeout`.
    pub fn new(
        pods: Api<Pod>,
        statefulset: &str,
        first_broker_id: i32,
        target: InstanceType,
        journal: &'a StatusJournal,
        timeout: Duration,
    ) -> Self {
        StatefulSetFleet {
            pods,
            statefulset: statefulset.to_owned(),
            first_broker_id,
            target,
            journal,
            timeout,
            poll: Duration::from_millis(200),
            fresh_disks: false,
        }
    }

    /// Brokers on instance-local disks: a broker's new instance type is a new node whose
    /// disk is empty (the PVC released with the old node), so its catch-up rebuilds its data.
    pub fn with_fresh_disks(mut self, fresh: bool) -> Self {
        self.fresh_disks = fresh;
        self
    }

    fn pod_name(&self, node: BrokerId) -> Result<String, FleetError> {
        let ordinal = node.0 - self.first_broker_id;
        if ordinal < 0 {
            return Err(FleetError::UnknownNode { node });
        }
        Ok(format!("{}-{ordinal}", self.statefulset))
    }

    async fn pod(&self, node: BrokerId) -> Result<Option<Pod>, FleetError> {
        let name = self.pod_name(node)?;
        self.pods
            .get_opt(&name)
            .await
            .map_err(|e| FleetError::Inspect {
                node,
                message: format!("reading pod {name}: {e}"),
            })
    }

    async fn flush(&self, node: BrokerId) -> Result<(), FleetError> {
        self.journal.flush().await.map_err(|e| FleetError::Inspect {
            node,
            message: format!("recording the roll journal in the status: {e}"),
        })
    }
}

/// The instance type a pod runs on: its `kpilot.io/instance-type` annotation, else its
/// node affinity or selector.
pub fn pod_instance_type(pod: &Pod) -> Option<String> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INSTANCE_TYPE_ANNOTATION).cloned())
        .or_else(|| {
            let spec = serde_json::to_value(pod.spec.as_ref()?).ok()?;
            pod_spec_instance_type(&spec)
        })
}

/// Whether the pod is Ready and not being deleted.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

impl Fleet for StatefulSetFleet<'_> {
    async fn size(&self, node: BrokerId) -> Result<Option<InstanceType>, FleetError> {
        Ok(self
            .pod(node)
            .await?
            .as_ref()
            .and_then(pod_instance_type)
            .and_then(|t| t.parse().ok()))
    }

    async fn stop(&self, node: BrokerId) -> Result<(), FleetError> {
        // The journal says "stop issued" before the pod goes: a restarted operator knows.
        self.flush(node).await?;
        let name = self.pod_name(node)?;
        // A deleted autopilot restarts no more brokers: the one before was back in sync.
        let deleting = self
            .journal
            .deleting()
            .await
            .map_err(|e| FleetError::Inspect {
                node,
                message: format!("reading the KafkaAutopilot: {e}"),
            })?;
        if deleting {
            return Err(FleetError::Stop {
                node,
                message: format!(
                    "the KafkaAutopilot is being deleted: pod {name} is not restarted and the roll stops here"
                ),
            });
        }
        let Some(pod) = self.pod(node).await? else {
            return Ok(());
        };
        let already_new = pod.metadata.deletion_timestamp.is_none()
            && pod_instance_type(&pod) == Some(self.target.to_string());
        if already_new {
            // Deleted and recreated on the new template before a restart: nothing to stop.
            return Ok(());
        }
        let uid = pod.metadata.uid.clone();
        if pod.metadata.deletion_timestamp.is_none() {
            tracing::info!(pod = %name, broker = %node, "deleting the pod");
            match self.pods.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
                Err(e) => {
                    return Err(FleetError::Stop {
                        node,
                        message: format!("deleting pod {name}: {e}"),
                    });
                }
            }
        }
        let began = Instant::now();
        loop {
            match self.pod(node).await? {
                None => return Ok(()),
                Some(p) if p.metadata.uid != uid => return Ok(()),
                Some(_) => {}
            }
            if began.elapsed() > self.timeout {
                return Err(FleetError::Stop {
                    node,
                    message: format!(
                        "pod {name} was not gone {}s after its deletion",
                        self.timeout.as_secs()
                    ),
                });
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    async fn resize(&self, node: BrokerId, size: &InstanceType) -> Result<(), FleetError> {
        // The pod template was patched before the roll began; the new pod picks it up.
        if size != &self.target {
            return Err(FleetError::UnknownSize {
                node,
                size: size.clone(),
                reason: format!(
                    "the StatefulSet {} template asks for {}",
                    self.statefulset, self.target
                ),
            });
        }
        self.flush(node).await
    }

    async fn start(&self, node: BrokerId) -> Result<(), FleetError> {
        self.flush(node).await?;
        let name = self.pod_name(node)?;
        let began = Instant::now();
        loop {
            if let Some(p) = self.pod(node).await?
                && pod_ready(&p)
            {
                let running = pod_instance_type(&p);
                if running == Some(self.target.to_string()) {
                    return Ok(());
                }
                return Err(FleetError::Start {
                    node,
                    message: format!(
                        "pod {name} came back on {} instead of {}",
                        running.unwrap_or_else(|| "an unknown instance type".into()),
                        self.target
                    ),
                });
            }
            if began.elapsed() > self.timeout {
                return Err(FleetError::Start {
                    node,
                    message: format!(
                        "pod {name} was not recreated and Ready within {}s",
                        self.timeout.as_secs()
                    ),
                });
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    fn fresh_disks(&self) -> bool {
        self.fresh_disks
    }

    async fn is_running(&self, node: BrokerId) -> Result<bool, FleetError> {
        Ok(self.pod(node).await?.as_ref().is_some_and(pod_ready))
    }
}

/// Broker ids and whether each pod is Ready, for reports.
pub fn ready_by_broker(pods: &[Pod], statefulset: &str, first: i32) -> BTreeMap<i32, bool> {
    let prefix = format!("{statefulset}-");
    pods.iter()
        .filter_map(|p| {
            let name = p.metadata.name.as_deref()?;
            let ordinal: i32 = name.strip_prefix(&prefix)?.parse().ok()?;
            Some((first + ordinal, pod_ready(p)))
        })
        .collect()
}
