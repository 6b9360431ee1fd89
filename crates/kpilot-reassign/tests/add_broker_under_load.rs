//! End to end on a real cluster: a 4th broker joins a loaded 3-broker cluster (RF 3, min ISR
//! 2) and is balanced in by the executor while an acks=all producer keeps writing. The throttle
//! rates are on every broker and the throttled replica lists on the moving topics while data
//! moves; they are all gone afterwards; no acknowledged record is lost; the new broker ends
//! with its share of replicas and every partition is led by its preferred replica.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use kpilot_cluster::BrokerId;
use kpilot_reassign::{
    Cancel, Event, Executor, FOLLOWER_RATE, FOLLOWER_REPLICAS, FileStore, LEADER_RATE,
    LEADER_REPLICAS, RunStatus, Settings, prepare, read_plan_input,
};
use kpilot_rebalance::{BatchLimits, BrokerChange};

const THROTTLE: u64 = 2_000_000;

#[test]
fn new_broker_is_balanced_in_under_load_with_the_throttle_in_force() {
    let mut cluster = start_cluster();
    let rt = runtime();
    let admin = rt.block_on(admin(&cluster.bootstrap()));
    let filled = rt.block_on(async {
        create_topic(&admin, "orders", 6, None).await;
        create_topic(&admin, "events", 3, None).await;
        let filled = fill(&admin, "orders", 6, 2_000_000).await;
        fill(&admin, "events", 3, 1_000_000).await;
        filled
    });
    let load = Load::start(
        &rt,
        admin.clone(),
        "orders",
        6,
        5_000,
        Duration::from_secs(90),
    );
    let new = cluster.add_broker().expect("add broker 4");
    assert_eq!(new, 4);

    let journal_path = cluster.dir().join("rebalance.json");
    let (report, events, seen) = rt.block_on(async {
        // The new broker must be registered before planning.
        for _ in 0..50 {
            if admin
                .metadata()
                .await
                .expect("metadata")
                .brokers
                .contains_key(&BrokerId(4))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let input = read_plan_input(&admin, BrokerChange::Add([BrokerId(4)].into()))
            .await
            .expect("plan input");
        let prepared = prepare(
            &input,
            BatchLimits {
                max_per_broker: 3,
                max_per_batch: 50,
            },
        )
        .expect("plan");
        eprintln!(
            "plan: {} partitions, {:.1} MB, bound {:.1} MB, {} batches",
            prepared.summary.partitions_to_move,
            prepared.summary.bytes_to_move as f64 / 1e6,
            prepared.summary.lower_bound_bytes as f64 / 1e6,
            prepared.summary.batches
        );
        assert!(prepared.summary.partitions_to_move > 0);
        let journal = prepared.journal(None, Some(THROTTLE));
        let mut store = FileStore::new(&journal_path);
        let port = Watched::new(&admin, vec![1, 2, 3, 4], vec!["orders", "events"]);
        let mut events = Vec::new();
        let report = Executor::new(
            &port,
            Settings {
                poll_interval: Duration::from_millis(300),
                ..Settings::default()
            },
            |e: &Event| {
                eprintln!("rebalance: {e}");
                events.push(e.clone());
            },
            Cancel::never(),
        )
        .run(journal, &mut store)
        .await
        .expect("the rebalance completes");
        let seen = port.seen.into_inner();
        (report, events, seen)
    });
    let result = rt.block_on(load.finish());
    assert_eq!(report.status, RunStatus::Completed);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::ThrottleSet { .. }))
    );
    assert!(events.iter().any(|e| matches!(e, Event::ThrottleRemoved)));

    // While data moved, the throttle was in force: both rates on every broker, and the
    // replica lists on the topic of every moving partition.
    assert!(!seen.is_empty(), "no poll saw a reassignment in progress");
    for (moving, configs) in &seen {
        for b in 1..=4 {
            for key in [LEADER_RATE, FOLLOWER_RATE] {
                assert!(
                    configs.iter().any(|(r, k, v)| r == &format!("broker {b}")
                        && k == key
                        && v == &THROTTLE.to_string()),
                    "{key} not set on broker {b} while {moving:?} moved: {configs:?}"
                );
            }
        }
        let topics: BTreeSet<String> = moving.iter().map(|tp| tp.topic.to_string()).collect();
        for t in topics {
            for key in [LEADER_REPLICAS, FOLLOWER_REPLICAS] {
                assert!(
                    configs
                        .iter()
                        .any(|(r, k, _)| r == &format!("topic {t}") && k == key),
                    "{key} not set on topic {t} while it moved: {configs:?}"
                );
            }
        }
    }
    eprintln!(
        "{} polls saw data moving with the throttle in force",
        seen.len()
    );

    rt.block_on(async {
        assert_no_throttles(&admin, &[1, 2, 3, 4], &["orders", "events"]).await;
        wait_no_reassignments(&admin).await;
        assert_nothing_lost(&admin, "orders", 6, &filled, &result).await;
        let per_broker = replicas_per_broker(&admin).await;
        eprintln!("replicas per broker after: {per_broker:?}");
        // 27 replicas over 4 brokers: 6 or 7 each.
        for b in 1..=4 {
            let n = per_broker.get(&b).copied().unwrap_or(0);
            assert!(
                (6..=8).contains(&n),
                "broker {b} holds {n} replicas: {per_broker:?}"
            );
        }
        let m = admin.metadata().await.expect("metadata");
        for t in m.topics.values() {
            for p in t.partitions.values() {
                assert_eq!(p.replicas.len(), 3, "{p:?}");
                assert_eq!(
                    p.leader,
                    p.replicas.first().copied(),
                    "preferred leader {p:?}"
                );
                assert_eq!(p.isr.len(), 3, "{p:?}");
            }
        }
    });
    admin.close();
}
