//! End to end on a real cluster: broker 4 (holding replicas of every partition) is drained
//! under acks=all producer load and reported removable only once it holds nothing; it is then
//! stopped, and every partition still has all its replicas in sync with no record lost. The
//! throttle is gone afterwards.

mod common;

use std::time::Duration;

use common::*;
use kpilot_cluster::BrokerId;
use kpilot_reassign::{
    Cancel, Event, ExecuteError, Executor, JournalStore, MemoryStore, RunStatus, Settings, prepare,
    read_plan_input,
};
use kpilot_rebalance::{BatchLimits, BrokerChange};

#[test]
fn broker_is_drained_under_load_then_removed_without_loss() {
    let mut cluster = start_cluster();
    assert_eq!(cluster.add_broker().expect("add broker 4"), 4);
    let rt = runtime();
    let admin = rt.block_on(admin(&cluster.bootstrap()));
    // Every partition has a replica on broker 4, half of them as preferred leader.
    let assignments: Vec<Vec<i32>> = (0..6)
        .map(|p| {
            let others = [[1, 2], [2, 3], [3, 1]][p % 3];
            if p % 2 == 0 {
                vec![4, others[0], others[1]]
            } else {
                vec![others[0], 4, others[1]]
            }
        })
        .collect();
    let filled = rt.block_on(async {
        create_topic(&admin, "payments", 6, Some(assignments)).await;
        fill(&admin, "payments", 6, 1_000_000).await
    });
    let load = Load::start(
        &rt,
        admin.clone(),
        "payments",
        6,
        5_000,
        Duration::from_secs(90),
    );

    let (report, events) = rt.block_on(async {
        let input = read_plan_input(&admin, BrokerChange::Remove([BrokerId(4)].into()))
            .await
            .expect("plan input");
        let prepared = prepare(&input, BatchLimits::default()).expect("plan");
        assert_eq!(prepared.summary.partitions_to_move, 6);
        let journal = prepared.journal(None, Some(5_000_000));
        let mut store = MemoryStore::default();
        let mut events = Vec::new();
        let report = Executor::new(
            &admin,
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
        .expect("the drain completes");
        (report, events)
    });
    assert_eq!(report.status, RunStatus::Completed);
    assert_eq!(report.removable, vec![BrokerId(4)]);
    assert!(events.iter().any(|e| matches!(e, Event::Drained { .. })));
    rt.block_on(async {
        let per_broker = replicas_per_broker(&admin).await;
        assert_eq!(
            per_broker.get(&4).copied().unwrap_or(0),
            0,
            "{per_broker:?}"
        );
        assert_no_throttles(&admin, &[1, 2, 3, 4], &["payments"]).await;
    });

    // A topic the plan did not see (Metadata leaves out a topic the principal may not
    // Describe; here the port hides it) keeps broker 4 from being reported removable: its
    // log dirs still list the topic's replica.
    rt.block_on(async {
        create_topic(&admin, "secret", 1, Some(vec![vec![4, 1, 2]])).await;
        let mut input = read_plan_input(&admin, BrokerChange::Remove([BrokerId(4)].into()))
            .await
            .expect("plan input");
        input
            .partitions
            .retain(|p| p.partition.topic != topic("secret"));
        let prepared = prepare(&input, BatchLimits::default()).expect("plan");
        assert_eq!(prepared.summary.partitions_to_move, 0);
        let mut port = Watched::new(&admin, vec![1, 2, 3, 4], vec!["payments"]);
        port.hidden = Some("secret");
        let settings = Settings {
            poll_interval: Duration::from_millis(300),
            config_timeout: Duration::from_secs(3),
            ..Settings::default()
        };
        let mut store = MemoryStore::default();
        let err = Executor::new(&port, settings.clone(), |_: &Event| {}, Cancel::never())
            .run(prepared.journal(None, None), &mut store)
            .await
            .expect_err("broker 4 still stores secret-0");
        assert!(
            matches!(
                &err,
                ExecuteError::StillStores { broker: BrokerId(4), partitions, hidden: 1 }
                    if partitions == &["secret-0".to_string()]
            ),
            "{err}"
        );
        // Once nothing of it is left on broker 4 (here: the topic is deleted), the same
        // journal resumes and reports the broker removable.
        admin
            .delete_topics(&[topic("secret")])
            .await
            .expect("delete secret");
        let journal = store.load().expect("load").expect("journal");
        let report = Executor::new(&port, settings, |_: &Event| {}, Cancel::never())
            .run(journal, &mut store)
            .await
            .expect("drained once secret-0 is gone");
        assert_eq!(report.removable, vec![BrokerId(4)]);
    });

    // Remove it for real: producing goes on, and nothing was lost.
    cluster.stop_broker(4).expect("stop broker 4");
    let result = rt.block_on(load.finish());
    rt.block_on(async {
        assert_nothing_lost(&admin, "payments", 6, &filled, &result).await;
        let m = admin.metadata().await.expect("metadata");
        assert!(!m.brokers.contains_key(&BrokerId(4)));
        for p in m.topics[&topic("payments")].partitions.values() {
            assert_eq!(p.isr.len(), 3, "{p:?}");
            assert!(!p.replicas.contains(&BrokerId(4)));
            assert_eq!(p.leader, p.replicas.first().copied(), "{p:?}");
        }
    });
    admin.close();
}
