//! The autopilot controller loop: lists the `KafkaAutopilot` objects, reconciles each one
//! when it is due (its requeue time passed, its spec generation changed, or it is new), one
//! at a time, and sleeps until the next is due or a watch event arrives. One object at a time
//! keeps a roll's Kafka and API traffic predictable; a long StatefulSet roll delays the other
//! objects' decisions until it ends. Performs Kubernetes API I/O.

use std::collections::HashMap;
use std::time::Duration;

use futures::{FutureExt as _, StreamExt as _};
use kube::ResourceExt as _;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::crd::KafkaAutopilot;
use crate::reconcile::{Context, reconcile};

/// Where to look and how fast to retry.
#[derive(Debug, Clone)]
pub struct LoopSettings {
    /// Namespace to watch; `None`: every namespace.
    pub namespace: Option<String>,
    /// Retry after a failed reconcile.
    pub error_requeue: Duration,
    /// Longest sleep between listings (a safety net behind the watch).
    pub resync: Duration,
}

impl Default for LoopSettings {
    fn default() -> Self {
        LoopSettings {
            namespace: None,
            error_requeue: Duration::from_secs(30),
            resync: Duration::from_secs(300),
        }
    }
}

/// Runs the controller until `shutdown` resolves (or forever).
pub async fn run(
    ctx: Context,
    settings: LoopSettings,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let api: Api<KafkaAutopilot> = match &settings.namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let mut events = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    tokio::pin!(shutdown);
    // key -> (due, generation reconciled)
    let mut schedule: HashMap<String, (Instant, Option<i64>)> = HashMap::new();
    loop {
        let mut wake = Instant::now() + settings.resync;
        match api.list(&ListParams::default()).await {
            Err(e) => {
                warn!(error = %e, "listing KafkaAutopilots failed");
                wake = Instant::now() + settings.error_requeue;
            }
            Ok(list) => {
                let keys: Vec<String> = list
                    .items
                    .iter()
                    .map(|ap| format!("{}/{}", ap.namespace().unwrap_or_default(), ap.name_any()))
                    .collect();
                schedule.retain(|k, _| keys.contains(k));
                for (ap, key) in list.items.iter().zip(keys) {
                    if ap.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    let due = match schedule.get(&key) {
                        None => true,
                        Some((at, generation)) => {
                            *at <= Instant::now() || *generation != ap.metadata.generation
                        }
                    };
                    if due {
                        let requeue = match reconcile(ap, &ctx).await {
                            Ok(d) => d,
                            Err(e) => {
                                warn!(autopilot = %key, error = %e, "reconcile failed");
                                settings.error_requeue
                            }
                        };
                        schedule.insert(
                            key.clone(),
                            (Instant::now() + requeue, ap.metadata.generation),
                        );
                    }
                    if let Some((at, _)) = schedule.get(&key) {
                        wake = wake.min(*at);
                    }
                }
            }
        }
        debug!(
            in_ms = wake.saturating_duration_since(Instant::now()).as_millis() as u64,
            "sleeping"
        );
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep_until(wake) => {}
            _ = events.next() => {
                // Coalesce a burst of events (our own status writes among them).
                tokio::time::sleep(Duration::from_millis(100)).await;
                while let Some(Some(_)) = events.next().now_or_never() {}
            }
        }
    }
}
