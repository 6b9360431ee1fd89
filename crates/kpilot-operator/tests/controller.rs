//! The controller loop against a real kube-apiserver: two autopilots in one namespace, one of
//! them stuck in a slow observation (as a long roll or data move would be). The other is still
//! reconciled and gets its status while the first waits; the waiting one is never reconciled
//! twice at once, however many watch events its neighbour's status writes cause; once released
//! it finishes too.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::*;
use futures::future::LocalBoxFuture;
use kpilot_operator::crd::Mode;
use kpilot_operator::observe::{Connection, ObserveError};
use kpilot_operator::{KafkaFacts, LoopSettings, Observer};
use tokio::sync::Notify;

/// Observations of keys ending in `/slow` wait until released; every other key answers at
/// once. Counts calls and the most calls in flight per key.
#[derive(Default)]
struct GatedObserver {
    release: Notify,
    released: Cell<bool>,
    calls: RefCell<HashMap<String, usize>>,
    in_flight: RefCell<HashMap<String, usize>>,
    max_in_flight: RefCell<HashMap<String, usize>>,
}

impl GatedObserver {
    fn calls(&self, key: &str) -> usize {
        self.calls.borrow().get(key).copied().unwrap_or(0)
    }

    fn max_in_flight(&self, key: &str) -> usize {
        self.max_in_flight.borrow().get(key).copied().unwrap_or(0)
    }
}

impl Observer for GatedObserver {
    fn observe<'a>(
        &'a self,
        key: &'a str,
        _connection: &'a Connection,
    ) -> LocalBoxFuture<'a, Result<KafkaFacts, ObserveError>> {
        Box::pin(async move {
            *self.calls.borrow_mut().entry(key.to_owned()).or_default() += 1;
            let now = {
                let mut in_flight = self.in_flight.borrow_mut();
                let n = in_flight.entry(key.to_owned()).or_default();
                *n += 1;
                *n
            };
            {
                let mut max = self.max_in_flight.borrow_mut();
                let m = max.entry(key.to_owned()).or_default();
                *m = (*m).max(now);
            }
            if key.ends_with("/slow") && !self.released.get() {
                self.release.notified().await;
            }
            *self
                .in_flight
                .borrow_mut()
                .get_mut(key)
                .expect("counted above") -= 1;
            Ok(facts(40.0, 0))
        })
    }

    fn elect_preferred<'a>(
        &'a self,
        _key: &'a str,
        _connection: &'a Connection,
    ) -> LocalBoxFuture<'a, Result<usize, ObserveError>> {
        Box::pin(async { Ok(0) })
    }

    fn may_write<'a>(
        &'a self,
        _connection: &'a Connection,
        _writes: &'static [kpilot_operator::preflight::Write],
    ) -> LocalBoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

async fn wait_for_load(client: &kube::Client, ns: &str, name: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let ap = get_autopilot(client, ns, name).await;
        if ap.status.as_ref().and_then(|s| s.load.as_ref()).is_some() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn a_slow_autopilot_does_not_hold_back_another_and_is_never_reconciled_twice_at_once() {
    let cp = control_plane().await;
    let ns = cp.create_unique_namespace("controller").await.expect("ns");
    let client = cp.client().await.expect("client");
    create_strimzi(&client, &ns, "m7g.large").await;
    // "slow" sorts after "fast": listed second, so this also shows that the first one's
    // reconcile does not have to end before the second starts, and the other way round.
    create_autopilot(&client, &ns, "slow", spec_strimzi(Mode::Observe, None)).await;

    let observer = Rc::new(GatedObserver::default());
    let ctx = context(client.clone(), observer.clone());
    let settings = LoopSettings {
        namespace: Some(ns.clone()),
        ..LoopSettings::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = kpilot_operator::run_autopilot(ctx, settings, async move {
        let _ = stopped.await;
    });
    let slow_key = format!("{ns}/slow");
    let fast_key = format!("{ns}/fast");

    let test = async {
        // The slow one is picked up and stays in its observation.
        let deadline = Instant::now() + Duration::from_secs(20);
        while observer.calls(&slow_key) == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            observer.calls(&slow_key),
            1,
            "the slow autopilot is reconciled"
        );

        // A second autopilot created meanwhile is reconciled to the end.
        create_autopilot(&client, &ns, "fast", spec_strimzi(Mode::Observe, None)).await;
        assert!(
            wait_for_load(&client, &ns, "fast", Duration::from_secs(20)).await,
            "the second autopilot gets its status while the first is still busy"
        );
        // Its status writes caused watch events and relists; give them time to act.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let slow = get_autopilot(&client, &ns, "slow").await;
        assert!(
            slow.status.as_ref().and_then(|s| s.load.as_ref()).is_none(),
            "the slow autopilot has not finished its observation"
        );
        assert_eq!(
            observer.max_in_flight(&slow_key),
            1,
            "never two reconciles of one autopilot at once"
        );
        assert_eq!(observer.calls(&slow_key), 1, "no second reconcile started");

        // Released, it finishes.
        observer.released.set(true);
        observer.release.notify_waiters();
        assert!(
            wait_for_load(&client, &ns, "slow", Duration::from_secs(20)).await,
            "the slow autopilot finishes once released"
        );
        assert!(observer.calls(&fast_key) >= 1);
        let _ = stop.send(());
    };
    tokio::time::timeout(Duration::from_secs(90), async {
        tokio::join!(controller, test);
    })
    .await
    .expect("the test finishes within 90 s");
}
