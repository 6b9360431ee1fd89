//! A broker crash and recovery on a real 3-broker KRaft cluster (RF 3, min ISR 2): after
//! SIGKILL the snapshot shows the shrunken ISR and which brokers are no longer safe to stop;
//! after the restart the ISR recovers; a preferred leader election then restores leadership
//! that moved away from the crashed broker; while the dead broker is still listed, a client
//! passes over it. Its own cluster, because it kills a broker.

mod common;

use std::time::{Duration, Instant};

use common::*;
use kpilot_cluster::{BrokerId, HealthStatus, Issue, StopBlockReason, TopicName};
use kpilot_kafka::{AdminClient, ElectionOutcome, NewTopic};
use kpilot_testbed::ClusterConfig;

#[test]
fn crash_recovery_and_preferred_election() {
    let mut cluster = start_cluster(ClusterConfig::default());
    let rt = runtime();
    let topic = TopicName::new("orders").unwrap();
    let mut config = plaintext_config(&cluster);
    // Fail fast on the dead broker's port so snapshots stay quick while it is down.
    config.connect_timeout = Duration::from_secs(2);
    let admin: AdminClient = rt.block_on(async {
        let admin = admin(config).await;
        admin
            .create_topics(&[NewTopic::new(topic.clone(), 6, 3)])
            .await
            .unwrap();
        admin.wait_for_topic(&topic).await.unwrap();
        let health = admin.snapshot().await.unwrap().analyze();
        assert_eq!(
            health.status,
            HealthStatus::Healthy,
            "{:#?}",
            health.findings
        );
        assert_eq!(health.safe_to_stop.len(), 3);
        admin
    });

    // SIGKILL broker 3 (a crash, no controlled shutdown).
    cluster.kill_broker(3).unwrap();
    let killed_at = Instant::now();
    // Until the controller fences broker 3 (6 s), the metadata still lists it. A client
    // (new, so no connection to broker 3 is pooled) that picks brokers in turn must pass
    // over the dead one on every single-attempt refresh, not fail one call in three.
    rt.block_on(async {
        let probe = AdminClient::connect(plaintext_config(&cluster))
            .await
            .expect("a client connects with one bootstrap broker dead");
        let mut listed = 0;
        for i in 0..6 {
            let m = probe.refresh_metadata().await.unwrap_or_else(|e| {
                panic!(
                    "refresh {i} with broker 3 down failed instead of trying the next broker: {e}"
                )
            });
            listed += usize::from(m.brokers.contains_key(&BrokerId(3)));
        }
        assert!(
            listed > 0,
            "broker 3 was already fenced: the refreshes did not meet a dead broker"
        );
        probe.close();
    });
    let health = rt.block_on(eventually(
        "ISR shrinks after broker 3 is killed",
        Duration::from_secs(60),
        || async {
            let snapshot = admin.snapshot().await.map_err(|e| e.to_string())?;
            let health = snapshot.analyze();
            let shrunk = health
                .partitions
                .iter()
                .filter(|p| p.topic_partition.topic == topic)
                .all(|p| !p.isr.contains(&BrokerId(3)) && p.isr.len() == 2);
            if shrunk && !health.broker(BrokerId(3)).is_some_and(|b| b.live) {
                Ok(health)
            } else {
                Err(format!("{:?}", health.counts))
            }
        },
    ));
    eprintln!(
        "ISR shrink visible {:.1?} after SIGKILL",
        killed_at.elapsed()
    );
    assert_eq!(health.status, HealthStatus::Critical);
    let orders: Vec<_> = health
        .partitions
        .iter()
        .filter(|p| p.topic_partition.topic == topic)
        .collect();
    assert!(
        orders
            .iter()
            .all(|p| p.under_replicated && p.at_min_isr && !p.under_min_isr && !p.offline)
    );
    assert!(
        orders
            .iter()
            .all(|p| p.leader.is_some_and(|l| l != BrokerId(3)))
    );
    assert!(health.safe_to_stop.is_empty(), "{:?}", health.safe_to_stop);
    for broker in [1, 2] {
        let blockers = health.blockers_of(BrokerId(broker));
        let blocked_orders = blockers
            .iter()
            .filter(|b| b.topic_partition.topic == topic)
            .count();
        assert_eq!(blocked_orders, 6, "broker {broker}: {blockers:?}");
        assert!(blockers.iter().all(|b| matches!(
            b.reason,
            StopBlockReason::WouldGoBelowMinIsr {
                isr_after_stop: 1,
                min_insync_replicas: 2,
                already_below: false
            }
        )));
    }
    let down = health.broker(BrokerId(3)).unwrap();
    assert!(!down.live && !down.safe_to_stop);
    assert!(health.findings.iter().any(|f| matches!(
        f.issue,
        Issue::BrokerDown {
            broker: BrokerId(3),
            ..
        }
    )));

    // Restart it: the ISR recovers and every broker is safe to stop again.
    cluster.start_broker(3).unwrap();
    let health = rt.block_on(eventually(
        "ISR recovers after restart",
        Duration::from_secs(90),
        || async {
            let health = admin.snapshot().await.map_err(|e| e.to_string())?.analyze();
            if health.counts.under_replicated == 0 && health.safe_to_stop.len() == 3 {
                Ok(health)
            } else {
                Err(format!(
                    "{:?} safe={:?}",
                    health.counts, health.safe_to_stop
                ))
            }
        },
    ));
    // Leadership that broker 3 had moved to the others and (auto rebalance is off) stays there.
    let moved: Vec<_> = health
        .partitions
        .iter()
        .filter(|p| p.topic_partition.topic == topic && p.leader_not_preferred)
        .map(|p| p.topic_partition.clone())
        .collect();
    assert_eq!(
        moved.len(),
        2,
        "orders partitions preferring broker 3 are led elsewhere: {moved:?}"
    );
    assert_eq!(health.broker(BrokerId(3)).unwrap().leaders, 0);
    assert_eq!(
        health.status,
        HealthStatus::Degraded,
        "{:#?}",
        health.findings
    );

    // A preferred leader election restores it.
    rt.block_on(async {
        let outcomes = admin
            .elect_preferred_leaders(None)
            .await
            .expect("ElectLeaders");
        for tp in &moved {
            assert_eq!(
                outcomes.get(tp),
                Some(&ElectionOutcome::Elected),
                "{tp}: {outcomes:?}"
            );
        }
        let health = eventually(
            "preferred leaders restored",
            Duration::from_secs(30),
            || async {
                let health = admin.snapshot().await.map_err(|e| e.to_string())?.analyze();
                if health.counts.leader_not_preferred == 0 {
                    Ok(health)
                } else {
                    Err(format!("{:?}", health.counts))
                }
            },
        )
        .await;
        assert_eq!(
            health.status,
            HealthStatus::Healthy,
            "{:#?}",
            health.findings
        );
        assert_eq!(health.broker(BrokerId(3)).unwrap().leaders, 2);
        // Electing again is not needed.
        let again = admin.elect_preferred_leaders(Some(&moved)).await.unwrap();
        assert!(
            again.values().all(|o| *o == ElectionOutcome::NotNeeded),
            "{again:?}"
        );
    });
}
