//! Leader election on a `coordination.k8s.io/v1` Lease: one Lease per operator deployment
//! covers every controller the process runs; only the holder runs them. Acquire when the Lease
//! is absent or expired, renew every third of its duration, and stop the controllers as soon
//! as a renewal fails to prove leadership. Performs Kubernetes API I/O.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tracing::{info, warn};

/// The Lease and who we are.
#[derive(Clone)]
pub struct LeaderElection {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

impl LeaderElection {
    /// Election on Lease `namespace/name` as `identity` (e.g. the pod name), expiring after
    /// `duration` without renewal.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Self {
        LeaderElection {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
        }
    }

    /// The Lease duration.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Acquires the Lease or renews it; `Ok(true)` when we hold it afterwards.
    pub async fn acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let secs = i32::try_from(self.duration.as_secs())
            .unwrap_or(i32::MAX)
            .max(1);
        match self.api.get_opt(&self.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(secs),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => {
                        info!(lease = %self.name, identity = %self.identity, "acquired the leader lease");
                        Ok(true)
                    }
                    Err(e) if is_status(&e, 409) => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(mut lease) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                let mine = spec.holder_identity.as_deref() == Some(self.identity.as_str());
                let expired = spec.renew_time.as_ref().is_none_or(|t| {
                    let held = spec
                        .lease_duration_seconds
                        .map_or(self.duration.as_secs() as i64, i64::from);
                    now.as_second() - t.0.as_second() > held
                });
                if !mine && !expired {
                    return Ok(false);
                }
                if !mine {
                    spec.holder_identity = Some(self.identity.clone());
                    spec.acquire_time = Some(MicroTime(now));
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.renew_time = Some(MicroTime(now));
                spec.lease_duration_seconds = Some(secs);
                // The resourceVersion read above makes this a compare-and-swap.
                match self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => {
                        if !mine {
                            info!(lease = %self.name, identity = %self.identity, "took over the expired leader lease");
                        }
                        Ok(true)
                    }
                    Err(e) if is_status(&e, 409) => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Gives the Lease up (clears the holder) if we hold it, so a successor need not wait.
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await
            && let Some(spec) = lease.spec.as_mut()
            && spec.holder_identity.as_deref() == Some(self.identity.as_str())
        {
            spec.holder_identity = None;
            spec.renew_time = None;
            if let Err(e) = self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
            {
                warn!(error = %e, "could not release the leader lease");
            }
        }
    }

    /// Runs `work` while we hold the Lease: waits until acquired, renews every third of the
    /// duration, and drops (cancels) `work` when leadership cannot be proven for a full
    /// duration, then competes again. Returns when `work` returns or `shutdown` resolves.
    pub async fn run<W, F>(
        &self,
        mut work: W,
        on_change: impl Fn(bool),
        shutdown: impl std::future::Future<Output = ()>,
    ) where
        W: FnMut() -> F,
        F: std::future::Future<Output = ()>,
    {
        tokio::pin!(shutdown);
        let tick = (self.duration / 3).max(Duration::from_millis(200));
        loop {
            // Wait to become leader.
            loop {
                match self.acquire_or_renew().await {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(e) => warn!(error = %e, "leader election: cannot read or write the lease"),
                }
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(tick) => {}
                }
            }
            on_change(true);
            let job = work();
            tokio::pin!(job);
            let mut last_proof = tokio::time::Instant::now();
            let lost = loop {
                tokio::select! {
                    () = &mut shutdown => {
                        on_change(false);
                        self.release().await;
                        return;
                    }
                    () = &mut job => {
                        on_change(false);
                        self.release().await;
                        return;
                    }
                    () = tokio::time::sleep(tick) => {
                        match self.acquire_or_renew().await {
                            Ok(true) => last_proof = tokio::time::Instant::now(),
                            Ok(false) => break true,
                            Err(e) => {
                                warn!(error = %e, "leader election: renewal failed");
                                if last_proof.elapsed() >= self.duration - tick {
                                    break true;
                                }
                            }
                        }
                    }
                }
            };
            if lost {
                warn!(lease = %self.name, "lost the leader lease; stopping the controllers");
                on_change(false);
            }
        }
    }
}
