//! `kpilot-operator`: the Kubernetes operator of kafka-autopilot (`kpilot operator`). A thin
//! adapter over the pure policy (`kpilot_policy::decide`, the function `kpilot simulate`
//! runs) and the roll engine (`kpilot_roll`). Performs Kubernetes API and Kafka I/O.
//!
//! - [`crd`]: the `KafkaAutopilot` custom resource (spec, status) and its generated CRD;
//! - [`validate`]: the spec parsed once into typed values (pure);
//! - [`target`]: instance types and patches of `KafkaNodePool`, StatefulSet and Karpenter
//!   `NodePool` objects (pure);
//! - [`observe`]: the observation port and its Kafka adapter;
//! - [`preflight`]: the Kafka writes an operation will make, probed before it starts;
//! - [`reconcile`]: validate -> dereference -> continue an operation -> observe -> decide ->
//!   apply -> status and Events;
//! - [`restarts`]: the restart time rolls are planned with, learned from the rolls (pure);
//! - [`fleet`]: the roll engine's `Fleet` over a StatefulSet's pods, and the operation
//!   journal kept in the status;
//! - [`horizontal`]: adding and removing brokers (replicas patch, rebalance under a throttle
//!   with the journal in the status, drain check), resumable across restarts;
//! - [`controller`]: the loop over every autopilot;
//! - [`leader`]: leader election on a Lease (one for every controller of the process);
//! - [`metrics`]: Prometheus metrics and the `/metrics` + `/healthz` endpoint.
//!
//! See `docs/operator.md`.

pub mod controller;
pub mod crd;
pub mod finalizer;
pub mod fleet;
pub mod horizontal;
pub mod leader;
pub mod metrics;
pub mod moves;
pub mod observe;
pub mod preflight;
pub mod reconcile;
pub mod restarts;
mod strimzi_rebuild;
pub mod target;
pub mod validate;

pub use controller::LoopSettings;
pub use crd::{KafkaAutopilot, KafkaAutopilotSpec, KafkaAutopilotStatus, crd_yaml};
pub use leader::LeaderElection;
pub use metrics::Metrics;
pub use observe::{FixedObserver, KafkaFacts, KafkaObserver, LoadHistory, Observer};
pub use reconcile::Context;

use std::rc::Rc;
use std::time::Duration;

use kube::runtime::events::{Recorder, Reporter};

/// Runs several controllers on one task (re-exported for the binary).
pub use futures::future::join_all;

/// A client from the environment: the in-cluster service account, else `KUBECONFIG` or
/// `~/.kube/config`.
pub async fn client() -> Result<kube::Client, kube::Error> {
    kube::Client::try_default().await
}

/// The controller name used for Events and the field manager.
pub const CONTROLLER_NAME: &str = "kpilot-operator";

/// A context with the defaults: built-in catalog, Kafka observer, default roll bounds.
pub fn context(
    client: kube::Client,
    catalog: kpilot_capacity::Catalog,
    observer: Rc<dyn Observer>,
    metrics: Metrics,
    instance: &str,
) -> Context {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: CONTROLLER_NAME.to_owned(),
            instance: Some(instance.to_owned()),
        },
    );
    Context {
        client,
        catalog,
        observer,
        recorder,
        metrics,
        roll: kpilot_roll::Settings::default(),
        pod_timeout: Duration::from_secs(600),
        busy_requeue: Duration::from_secs(10),
        rebalance: horizontal::Settings::default(),
    }
}

/// Runs the autopilot controller until `shutdown` resolves.
pub async fn run_autopilot(
    ctx: Context,
    settings: LoopSettings,
    shutdown: impl std::future::Future<Output = ()>,
) {
    controller::run(ctx, settings, shutdown).await;
}
