//! `kpilot-releaser`: safe, automatic recovery of Kafka brokers on instance-local volumes
//! after their node is lost. When a node disappears, the PVCs bound to `local` or `hostPath`
//! PVs pinned to it can never be mounted again and the broker's replacement pod stays
//! `Pending`; the releaser deletes those PVCs (then the Pending pod) so the workload recreates
//! both on a live node and Kafka re-replicates the data. See `docs/pvc-releaser.md`.
//!
//! Layout: [`facts`] and [`decide`] are pure (which PVCs may be released, and why not);
//! [`gate`] holds the Kafka safety rule (pure) and its adapter; [`kube_ops`] is the thin
//! Kubernetes layer; [`controller`] is the loop. Performs I/O (Kubernetes API, Kafka).
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), kpilot_releaser::ReleaserError> {
//! use kpilot_releaser::{Metrics, NoKafkaCheck, ReleaserConfig};
//! let config = ReleaserConfig::new().with_storage_class("local-nvme");
//! let metrics = Metrics::new(); // render with metrics.render_prometheus() on /metrics
//! let shutdown = async { let _ = tokio::signal::ctrl_c().await; };
//! kpilot_releaser::run(client, config, NoKafkaCheck, metrics, shutdown).await
//! # }
//! ```

pub mod config;
pub mod controller;
pub mod decide;
pub mod facts;
pub mod gate;
pub mod kube_ops;
pub mod metrics;

use std::future::Future;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::{WatchStreamExt, watcher};

pub use config::{BrokerIdRule, ConfigError, ReleaserConfig, RetryPolicy, Scope};
pub use controller::{ReleaserError, run_with};
pub use decide::{Plan, SkipReason};
pub use gate::{GateDecision, GateError, GateRequest, KafkaGate, NoKafkaCheck, SafetyGate};
pub use kube_ops::{ApiOps, DeleteOutcome, KubeOps, OpsError};
pub use metrics::{Metrics, MetricsSnapshot};

/// Runs the PVC releaser against a cluster until `shutdown` completes: watches Nodes (with
/// backoff on watch errors), resyncs every `config.resync_interval`, releases through `gate`,
/// and records into `metrics`. Returns `Ok(())` on shutdown; an error if the configuration is
/// invalid or the watch ends. Run it on the elected leader only.
pub async fn run<G: SafetyGate>(
    client: kube::Client,
    config: ReleaserConfig,
    gate: G,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ReleaserError> {
    let ops = ApiOps::new(
        client.clone(),
        &config.reporter,
        config.reporter_instance.clone(),
    );
    // Names and labels are all the releaser needs: watch metadata only (a fraction of a full
    // Node object's size, which lists images and status).
    let nodes = watcher(
        Api::<PartialObjectMeta<Node>>::all(client),
        watcher::Config::default(),
    )
    .default_backoff()
    .map(|event| event.map(node_event_from_metadata))
    .boxed();
    run_with(ops, gate, config, metrics, nodes, shutdown).await
}

/// A metadata-only watch event as a Node event (the Node carrying only its metadata).
fn node_event_from_metadata(
    event: watcher::Event<PartialObjectMeta<Node>>,
) -> watcher::Event<Node> {
    let node = |meta: PartialObjectMeta<Node>| Node {
        metadata: meta.metadata,
        ..Node::default()
    };
    match event {
        watcher::Event::Apply(m) => watcher::Event::Apply(node(m)),
        watcher::Event::Delete(m) => watcher::Event::Delete(node(m)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(m) => watcher::Event::InitApply(node(m)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}
