//! The autopilot controller loop: lists the `KafkaAutopilot` objects and reconciles each one
//! when it is due (its requeue time passed, its spec generation changed, or it is new). Several
//! objects are reconciled at once (up to [`LoopSettings::max_concurrent`], on the one task),
//! one object never twice at once, so a long roll or data move of one cluster does not hold back
//! the decisions of the others. Between passes it sleeps until the next object is due, a
//! reconcile ends, or a watch event arrives. An object being deleted that still holds the
//! operator's finalizer gets [`crate::finalizer::clean_up`] instead of a reconcile. Performs
//! Kubernetes API I/O.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::future::LocalBoxFuture;
use futures::stream::FuturesUnordered;
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
    /// Most objects reconciled at the same time (at least 1).
    pub max_concurrent: usize,
}

impl Default for LoopSettings {
    fn default() -> Self {
        LoopSettings {
            namespace: None,
            error_requeue: Duration::from_secs(30),
            resync: Duration::from_secs(300),
            max_concurrent: 4,
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
    // Reconciles running now, and their keys.
    type Done = (String, Option<i64>, Duration);
    let mut running: FuturesUnordered<LocalBoxFuture<'_, Done>> = FuturesUnordered::new();
    let mut busy: HashSet<String> = HashSet::new();
    let limit = settings.max_concurrent.max(1);
    let ctx = &ctx;
    let error_requeue = settings.error_requeue;
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
                schedule.retain(|k, _| keys.contains(k) || busy.contains(k));
                for (ap, key) in list.items.into_iter().zip(keys) {
                    // Being deleted: only the cleanup, and only while it holds our finalizer.
                    let deleting = ap.metadata.deletion_timestamp.is_some();
                    if (deleting && !crate::finalizer::holds(&ap)) || busy.contains(&key) {
                        continue;
                    }
                    let due = match schedule.get(&key) {
                        None => true,
                        Some((at, generation)) => {
                            *at <= Instant::now() || *generation != ap.metadata.generation
                        }
                    };
                    if due && busy.len() < limit {
                        busy.insert(key.clone());
                        running.push(
                            async move {
                                let generation = ap.metadata.generation;
                                let result = if deleting {
                                    crate::finalizer::clean_up(&ap, ctx).await
                                } else {
                                    reconcile(&ap, ctx).await
                                };
                                let requeue = match result {
                                    Ok(d) => d,
                                    Err(e) => {
                                        warn!(autopilot = %key, error = %e, "reconcile failed");
                                        error_requeue
                                    }
                                };
                                (key, generation, requeue)
                            }
                            .boxed_local(),
                        );
                    } else if let Some((at, _)) = schedule.get(&key) {
                        wake = wake.min(*at);
                    } else {
                        // Due but every slot is taken: look again when a reconcile ends.
                    }
                }
            }
        }
        debug!(
            in_ms = wake.saturating_duration_since(Instant::now()).as_millis() as u64,
            running = busy.len(),
            "waiting"
        );
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep_until(wake) => {}
            Some((key, generation, requeue)) = running.next(), if !running.is_empty() => {
                busy.remove(&key);
                schedule.insert(key, (Instant::now() + requeue, generation));
            }
            _ = events.next() => {
                // Coalesce a burst of events (our own status writes among them).
                tokio::time::sleep(Duration::from_millis(100)).await;
                while let Some(Some(_)) = events.next().now_or_never() {}
            }
        }
    }
}
