//! Scenario tests of the health analysis on hand-built cluster states.

use kpilot_cluster::fixtures::uniform_cluster;
use kpilot_cluster::*;

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(TopicName::new(topic).unwrap(), partition)
}

fn b(ids: &[i32]) -> Vec<BrokerId> {
    ids.iter().copied().map(BrokerId).collect()
}

#[test]
fn healthy_cluster_lets_every_broker_stop() {
    let state = uniform_cluster(3, &[("orders", 6, 3, 2)]);
    let h = analyze(&state);
    assert_eq!(h.status, HealthStatus::Healthy, "{:#?}", h.findings);
    assert!(h.findings.is_empty());
    assert_eq!(h.safe_to_stop, b(&[1, 2, 3]).into_iter().collect());
    assert!(h.stop_blockers.is_empty());
    assert_eq!(h.counts, PartitionCounts::default());
    assert_eq!(h.totals.partitions, 6);
    assert_eq!(h.totals.replicas, 18);
    assert_eq!(h.controller, Some(NodeId(1)));
    for broker in &h.brokers {
        assert_eq!(broker.leaders, 2, "broker {}", broker.id);
        assert_eq!(broker.preferred_leaders, 2);
        assert_eq!(broker.replicas, 6);
        assert!(broker.live && broker.safe_to_stop);
    }
    assert!(h.broker(BrokerId(1)).unwrap().controller);
}

#[test]
fn crashed_broker_shrinks_isr_and_blocks_the_others() {
    let state = uniform_cluster(3, &[("orders", 6, 3, 2)]).with_broker_stopped(BrokerId(3));
    let h = analyze(&state);
    assert_eq!(h.status, HealthStatus::Critical);
    assert_eq!(h.counts.under_replicated, 6);
    assert_eq!(h.counts.at_min_isr, 6);
    assert_eq!(h.counts.under_min_isr, 0);
    assert_eq!(h.counts.offline, 0);
    assert!(h.safe_to_stop.is_empty());
    assert_eq!(
        h.stop_blockers.keys().copied().collect::<Vec<_>>(),
        b(&[1, 2])
    );
    let blocker = &h.blockers_of(BrokerId(1))[0];
    assert_eq!(
        blocker.reason,
        StopBlockReason::WouldGoBelowMinIsr {
            isr_after_stop: 1,
            min_insync_replicas: 2,
            already_below: false
        }
    );
    let down = h.broker(BrokerId(3)).unwrap();
    assert!(!down.live && !down.safe_to_stop);
    assert_eq!(down.leaders, 0);
    assert_eq!(down.out_of_sync_replicas, 6);
    assert!(matches!(
        h.findings[0].issue,
        Issue::BrokerDown {
            broker: BrokerId(3),
            replicas: 6
        }
    ));
    // Partitions it led moved to another in-sync replica.
    assert!(h.partitions.iter().all(|p| p.leader != Some(BrokerId(3))));
    assert_eq!(h.counts.leader_not_preferred, 2);
    assert!(h.partition(&tp("orders", 2)).unwrap().isr.len() == 2);
}

#[test]
fn topic_with_rf_not_above_min_isr_blocks_every_stop_and_is_reported() {
    let state = uniform_cluster(3, &[("orders", 3, 3, 2), ("strict", 3, 2, 2)]);
    let h = analyze(&state);
    assert_eq!(h.status, HealthStatus::Degraded);
    assert_eq!(
        h.topics_blocking_stops,
        vec![TopicBlockingStops {
            topic: TopicName::new("strict").unwrap(),
            replication_factor: 2,
            min_insync_replicas: 2
        }]
    );
    assert!(h.safe_to_stop.is_empty());
    for broker in [1, 2, 3] {
        let blockers = h.blockers_of(BrokerId(broker));
        assert!(!blockers.is_empty(), "broker {broker}");
        assert!(
            blockers
                .iter()
                .all(|s| s.topic_partition.topic.as_str() == "strict"
                    && matches!(
                        s.reason,
                        StopBlockReason::ReplicationFactorNotAboveMinIsr {
                            replication_factor: 2,
                            min_insync_replicas: 2
                        }
                    ))
        );
    }
    assert!(
        h.findings
            .iter()
            .any(|f| matches!(f.issue, Issue::ReplicationFactorNotAboveMinIsr { .. }))
    );
}

#[test]
fn offline_partition_is_critical_and_blocks_its_remaining_replicas() {
    let mut state = uniform_cluster(3, &[("orders", 1, 3, 2)]);
    // Brokers 2 and 3 died; Kafka keeps the last ISR member (3) and the partition has no leader.
    state.brokers.remove(&BrokerId(2));
    state.brokers.remove(&BrokerId(3));
    let p = state
        .topics
        .get_mut(&TopicName::new("orders").unwrap())
        .unwrap()
        .partitions
        .get_mut(&0)
        .unwrap();
    p.leader = None;
    p.isr = b(&[3]);
    let h = analyze(&state);
    assert_eq!(h.status, HealthStatus::Critical);
    assert_eq!(h.counts.offline, 1);
    assert_eq!(h.counts.under_min_isr, 1);
    assert_eq!(h.counts.leader_not_preferred, 0);
    assert_eq!(
        h.blockers_of(BrokerId(1))[0].reason,
        StopBlockReason::WouldGoBelowMinIsr {
            isr_after_stop: 0,
            min_insync_replicas: 2,
            already_below: true
        }
    );
    assert_eq!(h.totals.down_brokers, 2);
    assert!(h.brokers.iter().all(|b| b.leaders == 0));
}

#[test]
fn sizes_come_from_log_dirs_and_future_replicas_are_not_partition_size() {
    let mut state = uniform_cluster(3, &[("orders", 1, 3, 2)]);
    let log = |size, is_future| ReplicaLog {
        topic_partition: tp("orders", 0),
        size_bytes: size,
        offset_lag: 0,
        is_future,
    };
    state.log_dirs.insert(
        BrokerId(1),
        vec![LogDir {
            path: "/data/1".into(),
            error: None,
            total_bytes: Some(1000),
            usable_bytes: Some(500),
            replicas: vec![log(300, false), log(900, true)],
        }],
    );
    state.log_dirs.insert(
        BrokerId(2),
        vec![LogDir {
            path: "/data/2".into(),
            error: Some("KAFKA_STORAGE_ERROR".into()),
            total_bytes: None,
            usable_bytes: None,
            replicas: vec![log(250, false)],
        }],
    );
    let h = analyze(&state);
    assert_eq!(h.partition(&tp("orders", 0)).unwrap().size_bytes, Some(300));
    assert_eq!(h.broker(BrokerId(1)).unwrap().bytes_on_disk, Some(1200));
    assert_eq!(h.broker(BrokerId(2)).unwrap().bytes_on_disk, Some(250));
    assert_eq!(h.broker(BrokerId(3)).unwrap().bytes_on_disk, None);
    assert_eq!(h.totals.bytes_on_disk, 1450);
    assert_eq!(
        h.broker(BrokerId(2)).unwrap().failed_log_dirs,
        vec!["/data/2".to_string()]
    );
    assert_eq!(h.status, HealthStatus::Critical);
}

#[test]
fn unknown_min_isr_is_never_called_safe() {
    let mut state = uniform_cluster(3, &[("orders", 3, 3, 2)]);
    for t in state.topics.values_mut() {
        t.min_insync_replicas = None;
    }
    let h = analyze(&state);
    assert!(h.safe_to_stop.is_empty());
    assert_eq!(h.counts.min_isr_unknown, 3);
    assert_eq!(
        h.blockers_of(BrokerId(2))[0].reason,
        StopBlockReason::MinIsrUnknown
    );
}

#[test]
fn a_topic_stored_on_a_broker_but_hidden_from_metadata_blocks_that_broker() {
    // A principal without DESCRIBE on `secret` gets no Metadata for it, but DescribeLogDirs
    // (cluster DESCRIBE) lists its replicas: on brokers 1 and 2.
    let mut state = uniform_cluster(3, &[("orders", 3, 3, 2)]);
    let replica = |topic: &str, partition| ReplicaLog {
        topic_partition: tp(topic, partition),
        size_bytes: 100,
        offset_lag: 0,
        is_future: false,
    };
    let dir = |replicas| LogDir {
        path: "/data".into(),
        error: None,
        total_bytes: None,
        usable_bytes: None,
        replicas,
    };
    for broker in 1..=3 {
        let mut replicas: Vec<ReplicaLog> = (0..3).map(|p| replica("orders", p)).collect();
        if broker != 3 {
            replicas.push(replica("secret", 0));
            replicas.push(replica("secret", 1));
        }
        state.log_dirs.insert(BrokerId(broker), vec![dir(replicas)]);
    }
    let h = analyze(&state);
    assert_eq!(h.safe_to_stop, [BrokerId(3)].into_iter().collect());
    let blockers = h.blockers_of(BrokerId(1));
    assert_eq!(blockers.len(), 2, "{blockers:?}");
    assert!(
        blockers
            .iter()
            .all(|b| b.reason == StopBlockReason::TopicNotVisible
                && b.topic_partition.topic.as_str() == "secret")
    );
    assert_eq!(h.status, HealthStatus::Degraded, "{:#?}", h.findings);
    let finding = h
        .findings
        .iter()
        .find(|f| matches!(f.issue, Issue::TopicsNotVisible { .. }))
        .expect("a finding names the hidden topic");
    assert_eq!(
        finding.issue,
        Issue::TopicsNotVisible {
            examples: vec![TopicName::new("secret").unwrap()],
            count: 1,
        }
    );
    assert!(
        finding.message.contains("DESCRIBE") && finding.message.ends_with(": secret"),
        "{}",
        finding.message
    );

    // Once Metadata lists it, its replicas are checked like any other.
    let visible = uniform_cluster(3, &[("orders", 3, 3, 2), ("secret", 2, 3, 2)]);
    state.topics = visible.topics;
    let h = analyze(&state);
    assert_eq!(h.safe_to_stop.len(), 3, "{:#?}", h.stop_blockers);
    assert!(
        !h.findings
            .iter()
            .any(|f| matches!(f.issue, Issue::TopicsNotVisible { .. }))
    );
}

#[test]
fn leader_off_preferred_and_reassignment_are_reported() {
    let mut state = uniform_cluster(3, &[("orders", 3, 3, 2)]);
    let topic = state
        .topics
        .get_mut(&TopicName::new("orders").unwrap())
        .unwrap();
    topic.partitions.get_mut(&0).unwrap().leader = Some(BrokerId(2));
    state.reassignments.push(PartitionReassignment {
        topic_partition: tp("orders", 1),
        replicas: b(&[2, 3, 1]),
        adding: vec![],
        removing: vec![],
    });
    let h = analyze(&state);
    assert_eq!(h.status, HealthStatus::Degraded);
    assert_eq!(h.counts.leader_not_preferred, 1);
    assert_eq!(h.counts.reassigning, 1);
    assert!(h.partition(&tp("orders", 0)).unwrap().leader_not_preferred);
    assert_eq!(h.broker(BrokerId(2)).unwrap().leaders, 2);
    assert_eq!(h.broker(BrokerId(1)).unwrap().leaders, 0);
    assert_eq!(h.safe_to_stop.len(), 3);
}

#[test]
fn quorum_without_leader_is_critical_and_lag_is_measured() {
    let mut state = uniform_cluster(3, &[("orders", 1, 3, 2)]);
    let q = state.quorum.as_mut().unwrap();
    q.voters[2].log_end_offset = Some(90);
    let h = analyze(&state);
    assert_eq!(h.quorum.as_ref().unwrap().voters[2].lag, Some(10));
    assert_eq!(h.status, HealthStatus::Healthy);

    state.quorum.as_mut().unwrap().leader = None;
    let h = analyze(&state);
    assert_eq!(h.status, HealthStatus::Critical);
    assert_eq!(h.controller, None);
}

#[test]
fn a_voter_that_stopped_fetching_degrades_the_cluster() {
    // Regression: a crashed combined broker+controller with no topics vanished from metadata
    // and the cluster was reported healthy; only the quorum showed it.
    let mut state = uniform_cluster(3, &[]);
    let q = state.quorum.as_mut().unwrap();
    q.leader = Some(NodeId(1));
    q.high_watermark = 141;
    for (v, (leo, fetched)) in q
        .voters
        .iter_mut()
        .zip([(141, 50_000), (141, 49_800), (24, 20_000)])
    {
        v.log_end_offset = Some(leo);
        v.last_fetch_timestamp_ms = Some(fetched);
    }
    let h = analyze(&state);
    assert_eq!(h.status, HealthStatus::Degraded, "{:#?}", h.findings);
    let behind: Vec<_> = h
        .findings
        .iter()
        .filter(|f| matches!(f.issue, Issue::VoterBehind { .. }))
        .collect();
    assert_eq!(behind.len(), 1);
    assert!(
        behind[0].message.contains("controller 3"),
        "{}",
        behind[0].message
    );
    assert!(
        behind[0].message.contains("30.0 s"),
        "{}",
        behind[0].message
    );

    // Without fetch times, a large lag says the same; a small one does not.
    for v in &mut state.quorum.as_mut().unwrap().voters {
        v.last_fetch_timestamp_ms = None;
    }
    assert_eq!(analyze(&state).status, HealthStatus::Degraded);
    state.quorum.as_mut().unwrap().voters[2].log_end_offset = Some(139);
    assert_eq!(analyze(&state).status, HealthStatus::Healthy);
}

#[test]
fn snapshot_round_trips_through_json() {
    let state = uniform_cluster(3, &[("orders", 4, 3, 2)]).with_broker_stopped(BrokerId(2));
    let h = analyze(&state);
    let json = serde_json::to_string(&h).unwrap();
    let back: HealthSnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back, h);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["status"], "critical");
    assert_eq!(
        value["stop_blockers"]["1"][0]["reason"]["kind"],
        "would_go_below_min_isr"
    );
    let state_json = serde_json::to_string(&state).unwrap();
    let state_back: ClusterState = serde_json::from_str(&state_json).unwrap();
    assert_eq!(state_back, state);
}

#[test]
fn findings_read_like_sentences() {
    let state = uniform_cluster(3, &[("orders", 8, 3, 2)]).with_broker_stopped(BrokerId(3));
    let h = analyze(&state);
    let messages: Vec<&str> = h.findings.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(
        messages[0],
        "broker 3 is down; 8 replica(s) assigned to it are not being served"
    );
    assert!(messages.contains(
        &"8 partition(s) are under-replicated: orders-0, orders-1, orders-2, orders-3, orders-4, ... (3 more)"
    ));
}

#[test]
fn throttles_left_without_a_reassignment_are_a_warning() {
    let mut state = uniform_cluster(3, &[("orders", 4, 3, 2)]);
    let throttle = |scope: ThrottleScope, key: &str, value: &str| ReplicationThrottle {
        scope,
        key: key.to_string(),
        value: value.to_string(),
    };
    state.throttles = vec![
        throttle(
            ThrottleScope::Broker(BrokerId(1)),
            "leader.replication.throttled.rate",
            "10485760",
        ),
        throttle(
            ThrottleScope::Broker(BrokerId(1)),
            "follower.replication.throttled.rate",
            "10485760",
        ),
        throttle(
            ThrottleScope::Topic(TopicName::new("orders").unwrap()),
            "leader.replication.throttled.replicas",
            "*",
        ),
    ];
    let h = analyze(&state);
    assert_eq!(h.status, HealthStatus::Degraded, "{:#?}", h.findings);
    assert_eq!(
        h.findings[0].issue,
        Issue::ThrottlesWithoutReassignment {
            examples: vec![
                ThrottleScope::Broker(BrokerId(1)),
                ThrottleScope::Topic(TopicName::new("orders").unwrap()),
            ],
            count: 2,
        }
    );
    assert!(
        h.findings[0]
            .message
            .contains("no reassignment in progress")
            && h.findings[0].message.contains("broker 1, topic orders"),
        "{}",
        h.findings[0].message
    );
    // Either kpilot tool may have left them: the hint names the way out of each.
    for way_out in [
        "`kpilot rebalance --cancel` after a rebalance",
        "rerunning the halted roll or `kpilot roll --abandon` after a roll",
    ] {
        assert!(
            h.findings[0].message.contains(way_out),
            "{way_out:?} not in {}",
            h.findings[0].message
        );
    }
    // While a reassignment runs, throttles are what it is supposed to have.
    state.reassignments.push(PartitionReassignment {
        topic_partition: tp("orders", 0),
        replicas: vec![BrokerId(1), BrokerId(2), BrokerId(3)],
        adding: vec![],
        removing: vec![],
    });
    let h = analyze(&state);
    assert!(
        !h.findings
            .iter()
            .any(|f| matches!(f.issue, Issue::ThrottlesWithoutReassignment { .. })),
        "{:#?}",
        h.findings
    );
    // And without throttles there is nothing to say.
    state.reassignments.clear();
    state.throttles.clear();
    assert_eq!(analyze(&state).status, HealthStatus::Healthy);
}
