//! Leader election on a real Lease: one holder at a time, a successor takes over only after
//! the Lease expired, and the holder's controllers are stopped as soon as it cannot prove
//! leadership any more.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::control_plane;
use k8s_openapi::api::coordination::v1::Lease;
use kpilot_operator::LeaderElection;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

#[tokio::test]
async fn one_holder_at_a_time_and_losing_the_lease_stops_the_work() {
    let cp = control_plane().await;
    let ns = cp.create_unique_namespace("lease").await.expect("ns");
    let client = cp.client().await.expect("client");
    let a = LeaderElection::new(client.clone(), &ns, "kpilot", "a", Duration::from_secs(3));
    let b = LeaderElection::new(client.clone(), &ns, "kpilot", "b", Duration::from_secs(3));
    assert!(a.acquire_or_renew().await.expect("a acquires"));
    assert!(
        !b.acquire_or_renew().await.expect("b asks"),
        "b must wait while a renews"
    );
    assert!(a.acquire_or_renew().await.expect("a renews"));
    // a stops renewing: b takes over only once the lease expired.
    let began = Instant::now();
    while !b.acquire_or_renew().await.expect("b asks") {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "b never took over"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        began.elapsed() >= Duration::from_secs(2),
        "took over after {:?}",
        began.elapsed()
    );
    assert!(!a.acquire_or_renew().await.expect("a asks"));

    // `run`: the work runs while b holds the lease and is dropped when another holder shows up.
    let running = Rc::new(Cell::new(false));
    let stopped = Rc::new(Cell::new(0));
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let (r, s) = (running.clone(), stopped.clone());
            let task = tokio::task::spawn_local(async move {
                let r2 = r.clone();
                b.run(
                    move || {
                        let r = r2.clone();
                        async move {
                            r.set(true);
                            std::future::pending::<()>().await;
                        }
                    },
                    move |leader| {
                        if !leader {
                            r.set(false);
                            s.set(s.get() + 1);
                        }
                    },
                    tokio::time::sleep(Duration::from_secs(30)),
                )
                .await;
            });
            let began = Instant::now();
            while !running.get() {
                assert!(
                    began.elapsed() < Duration::from_secs(10),
                    "work never started"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // Someone else takes the lease (e.g. b was partitioned away and it expired).
            let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
            leases
                .patch(
                    "kpilot",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"holderIdentity": "c"}})),
                )
                .await
                .expect("steal");
            let began = Instant::now();
            while running.get() {
                assert!(
                    began.elapsed() < Duration::from_secs(5),
                    "work kept running after the lease was lost"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(stopped.get(), 1);
            task.abort();
        })
        .await;
}
