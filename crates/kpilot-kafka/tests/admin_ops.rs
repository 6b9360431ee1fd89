//! Admin operations against a real 3-broker KRaft cluster (RF 3, min ISR 2): metadata,
//! configs, produce + ListOffsets + DescribeLogDirs, reassignment, throttle configs, the
//! snapshot and its analysis, and version negotiation. One cluster for the whole file; the steps
//! run in order inside one test because they share it.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use kpilot_cluster::{BrokerId, HealthStatus, TopicName, TopicPartition};
use kpilot_kafka::{
    AdminClient, AdminError, ConfigOp, ConfigResource, ConfigSource, NewTopic, OffsetSpec,
};
use kpilot_testbed::ClusterConfig;

fn topic(name: &str) -> TopicName {
    TopicName::new(name).unwrap()
}

#[test]
fn admin_operations_against_a_real_cluster() {
    let cluster = start_cluster(ClusterConfig::default());
    let rt = runtime();
    rt.block_on(async {
        let admin = admin(plaintext_config(&cluster)).await;
        metadata_matches_what_was_created(&admin).await;
        produced_records_show_in_offsets_and_log_dirs(&admin).await;
        reassignment_moves_a_replica_and_completes(&admin).await;
        throttle_configs_are_set_and_removed(&admin).await;
        unknown_topic_is_a_clear_error(&admin).await;
        versions_are_negotiated(&admin).await;
        snapshot_of_a_healthy_cluster(&admin).await;
    });
}

async fn metadata_matches_what_was_created(admin: &AdminClient) {
    admin
        .create_topics(&[NewTopic::new(topic("orders"), 6, 3)])
        .await
        .expect("create orders");
    let t = admin
        .wait_for_topic(&topic("orders"))
        .await
        .expect("orders gets leaders");
    assert_eq!(t.partitions.len(), 6);
    let mut leaders = BTreeSet::new();
    for p in t.partitions.values() {
        assert_eq!(p.replicas.len(), 3, "{p:?}");
        let replicas: BTreeSet<_> = p.replicas.iter().collect();
        assert_eq!(replicas.len(), 3, "distinct replicas {p:?}");
        assert_eq!(p.isr.len(), 3, "{p:?}");
        assert_eq!(
            p.leader,
            p.replicas.first().copied(),
            "new topics are led by the preferred replica"
        );
        leaders.insert(p.leader.unwrap());
    }
    assert_eq!(leaders.len(), 3, "leadership is spread over all brokers");
    assert!(t.topic_id.is_some());

    // Creating it again is a named error.
    let err = admin
        .create_topics(&[NewTopic::new(topic("orders"), 6, 3)])
        .await
        .unwrap_err();
    assert_eq!(
        err.kafka_error(),
        Some(kpilot_kafka::KafkaErrorCode::TopicAlreadyExists),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("CreateTopics for topic orders failed: TOPIC_ALREADY_EXISTS"),
        "{err}"
    );

    let described = admin.describe_topics(&[topic("orders")]).await.unwrap();
    assert_eq!(described[&topic("orders")].partitions, t.partitions);

    let configs = admin
        .describe_configs(
            &[ConfigResource::Topic(topic("orders"))],
            Some(&["min.insync.replicas"]),
        )
        .await
        .unwrap();
    let min_isr = &configs[&ConfigResource::Topic(topic("orders"))]["min.insync.replicas"];
    assert_eq!(min_isr.value.as_deref(), Some("2"));
    // Inherited from the brokers (the testbed sets it cluster-wide), not a topic override.
    assert_ne!(min_isr.source, ConfigSource::DynamicTopicConfig);

    let cluster = admin.describe_cluster().await.unwrap();
    assert_eq!(cluster.brokers.len(), 3);
    assert!(cluster.brokers.iter().all(|(_, fenced)| !fenced));

    let quorum = admin.describe_quorum().await.unwrap();
    assert!(quorum.leader.is_some());
    assert_eq!(quorum.voters.len(), 3);
    assert!(quorum.high_watermark > 0);
}

async fn produced_records_show_in_offsets_and_log_dirs(admin: &AdminClient) {
    admin
        .create_topics(&[NewTopic::new(topic("events"), 3, 3)])
        .await
        .unwrap();
    let t = admin.wait_for_topic(&topic("events")).await.unwrap();
    let tps: Vec<TopicPartition> = t
        .partitions
        .keys()
        .map(|p| TopicPartition::new(topic("events"), *p))
        .collect();
    let leader_of_0 = t.partitions[&0].leader.unwrap();
    let size_of = |dirs: &[kpilot_cluster::LogDir], tp: &TopicPartition| -> u64 {
        dirs.iter()
            .flat_map(|d| &d.replicas)
            .filter(|r| &r.topic_partition == tp)
            .map(|r| r.size_bytes)
            .sum()
    };
    let before = admin.describe_log_dirs(leader_of_0).await.unwrap();
    assert_eq!(size_of(&before, &tps[0]), 0);

    // 3 batches of 500 records to partition 0, 1 batch of 7 to partition 1, none to 2.
    let value = Bytes::from(vec![b'x'; 200]);
    let batch: Vec<_> = (0..500)
        .map(|i| (Some(Bytes::from(format!("k{i}"))), Some(value.clone())))
        .collect();
    let mut expected_base = 0;
    for _ in 0..3 {
        let base = admin
            .produce(&tps[0], &batch)
            .await
            .expect("produce to events-0");
        assert_eq!(base, expected_base);
        expected_base += 500;
    }
    admin.produce(&tps[1], &batch[..7]).await.unwrap();

    let latest = admin.list_offsets(&tps, OffsetSpec::Latest).await.unwrap();
    assert_eq!(latest[&tps[0]], 1500);
    assert_eq!(latest[&tps[1]], 7);
    assert_eq!(latest[&tps[2]], 0);
    let earliest = admin
        .list_offsets(&tps, OffsetSpec::Earliest)
        .await
        .unwrap();
    assert!(earliest.values().all(|o| *o == 0));

    // The batches were idempotent: both leaders track one producer id (the client's), with the
    // last sequence appended, so a retried batch would be recognised, not appended twice.
    let on_0 = admin.describe_producers(&tps[0]).await.unwrap();
    let on_1 = admin.describe_producers(&tps[1]).await.unwrap();
    assert_eq!(on_0.len(), 1, "one producer on events-0: {on_0:?}");
    assert_eq!(on_0[0].last_sequence, 1499);
    assert_eq!(on_1.len(), 1, "one producer on events-1: {on_1:?}");
    assert_eq!(on_1[0].last_sequence, 6);
    assert_eq!(on_0[0].producer_id, on_1[0].producer_id);
    assert!(on_0[0].producer_id >= 0);
    assert!(
        admin.describe_producers(&tps[2]).await.unwrap().is_empty(),
        "nothing produced to events-2"
    );

    let after = admin.describe_log_dirs(leader_of_0).await.unwrap();
    let size = size_of(&after, &tps[0]);
    assert!(
        size > 1500 * 200,
        "events-0 holds 1500 records of 200 bytes, log is {size} bytes"
    );
    assert!(after.iter().all(|d| d.error.is_none()));
    assert!(after[0].total_bytes.unwrap_or(0) > 0);
    // The followers' replicas grow too once they have fetched.
    for broker in (1..=3).map(BrokerId) {
        let tp = &tps[0];
        eventually(
            &format!("{tp} replica on broker {broker} grows"),
            Duration::from_secs(30),
            || async {
                let dirs = admin
                    .describe_log_dirs(broker)
                    .await
                    .map_err(|e| e.to_string())?;
                let replica_size = size_of(&dirs, tp);
                if replica_size >= size {
                    Ok(())
                } else {
                    Err(format!("{replica_size} bytes"))
                }
            },
        )
        .await;
    }
}

async fn reassignment_moves_a_replica_and_completes(admin: &AdminClient) {
    let name = topic("moving");
    // RF 2 needs min ISR 1, or it would block every broker stop (checked at the end).
    let mut new = NewTopic::new(name.clone(), 1, 2).with_config("min.insync.replicas", 1);
    new.assignments = Some(vec![vec![BrokerId(1), BrokerId(2)]]);
    admin.create_topics(&[new]).await.unwrap();
    admin.wait_for_topic(&name).await.unwrap();
    let tp = TopicPartition::new(name.clone(), 0);
    admin
        .produce(&tp, &[(None, Some(Bytes::from_static(b"payload")))])
        .await
        .unwrap();

    admin
        .alter_partition_reassignments(&[(tp.clone(), Some(vec![BrokerId(1), BrokerId(3)]))])
        .await
        .expect("reassignment accepted");
    eventually(
        "reassignment of moving-0 to [1, 3] completes",
        Duration::from_secs(60),
        || async {
            let ongoing = admin
                .list_partition_reassignments()
                .await
                .map_err(|e| e.to_string())?;
            if ongoing.iter().any(|r| r.topic_partition == tp) {
                return Err(format!("still reassigning: {ongoing:?}"));
            }
            let metadata = admin.refresh_metadata().await.map_err(|e| e.to_string())?;
            let p = metadata.partition(&tp).ok_or("partition missing")?;
            if p.replicas == vec![BrokerId(1), BrokerId(3)] && p.isr.len() == 2 {
                Ok(())
            } else {
                Err(format!("{p:?}"))
            }
        },
    )
    .await;
    // The new replica holds the data.
    let dirs = admin.describe_log_dirs(BrokerId(3)).await.unwrap();
    assert!(
        dirs.iter()
            .flat_map(|d| &d.replicas)
            .any(|r| r.topic_partition == tp && r.size_bytes > 0)
    );
    // Cancelling when nothing is in progress is a named error.
    let err = admin
        .alter_partition_reassignments(&[(tp.clone(), None)])
        .await
        .unwrap_err();
    assert_eq!(
        err.kafka_error(),
        Some(kpilot_kafka::KafkaErrorCode::NoReassignmentInProgress),
        "{err}"
    );
}

async fn throttle_configs_are_set_and_removed(admin: &AdminClient) {
    let broker = ConfigResource::Broker(BrokerId(2));
    let topic_resource = ConfigResource::Topic(topic("orders"));
    admin
        .alter_configs(
            &broker,
            &[
                ConfigOp::set("leader.replication.throttled.rate", 10_485_760),
                ConfigOp::set("follower.replication.throttled.rate", 10_485_760),
            ],
        )
        .await
        .expect("set broker throttle");
    admin
        .alter_configs(
            &topic_resource,
            &[
                ConfigOp::set("leader.replication.throttled.replicas", "*"),
                ConfigOp::set("follower.replication.throttled.replicas", "*"),
            ],
        )
        .await
        .expect("set topic throttled replicas");
    let keys = [
        "leader.replication.throttled.rate",
        "follower.replication.throttled.rate",
    ];
    eventually_configs(admin, &broker, Some(&keys), "broker throttle set", |c| {
        keys.iter().all(|key| {
            c.get(*key).is_some_and(|e| {
                e.value.as_deref() == Some("10485760")
                    && e.source == ConfigSource::DynamicBrokerConfig
            })
        })
    })
    .await;
    eventually_configs(admin, &topic_resource, None, "topic throttle set", |c| {
        c.get("leader.replication.throttled.replicas")
            .is_some_and(|e| {
                e.value.as_deref() == Some("*") && e.source == ConfigSource::DynamicTopicConfig
            })
    })
    .await;

    admin
        .alter_configs(&broker, &keys.map(ConfigOp::delete))
        .await
        .expect("remove broker throttle");
    admin
        .alter_configs(
            &topic_resource,
            &[
                ConfigOp::delete("leader.replication.throttled.replicas"),
                ConfigOp::delete("follower.replication.throttled.replicas"),
            ],
        )
        .await
        .expect("remove topic throttle");
    // Unset throttle rates are not listed at all; unset throttled replicas read as "".
    eventually_configs(
        admin,
        &broker,
        Some(&keys),
        "broker throttle removed",
        |c| {
            keys.iter().all(|key| {
                c.get(*key)
                    .is_none_or(|e| e.source != ConfigSource::DynamicBrokerConfig)
            })
        },
    )
    .await;
    eventually_configs(
        admin,
        &topic_resource,
        None,
        "topic throttle removed",
        |c| {
            c.get("leader.replication.throttled.replicas")
                .is_some_and(|e| {
                    e.source != ConfigSource::DynamicTopicConfig && e.value.as_deref() == Some("")
                })
        },
    )
    .await;

    // A bad value is a named error that says which resource.
    let err = admin
        .alter_configs(
            &broker,
            &[ConfigOp::set("leader.replication.throttled.rate", "fast")],
        )
        .await
        .unwrap_err();
    // Kafka 4.x answers INVALID_REQUEST with the reason in the message.
    assert_eq!(
        err.kafka_error(),
        Some(kpilot_kafka::KafkaErrorCode::InvalidRequest),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("IncrementalAlterConfigs for broker 2 failed"),
        "{text}"
    );
    assert!(
        text.contains("Invalid value fast for configuration leader.replication.throttled.rate"),
        "{text}"
    );
}

async fn unknown_topic_is_a_clear_error(admin: &AdminClient) {
    let missing = topic("no-such-topic");
    let err = admin
        .describe_topics(std::slice::from_ref(&missing))
        .await
        .unwrap_err();
    assert!(matches!(err, AdminError::UnknownTopic { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "topic `no-such-topic` does not exist (list topics with `kpilot status --json`)"
    );
    let err = admin
        .list_offsets(
            &[TopicPartition::new(missing.clone(), 0)],
            OffsetSpec::Latest,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AdminError::UnknownTopic { .. }), "{err}");
    let err = admin
        .produce(&TopicPartition::new(missing.clone(), 0), &[(None, None)])
        .await
        .unwrap_err();
    assert!(matches!(err, AdminError::UnknownTopic { .. }), "{err}");
    let err = admin
        .describe_configs(&[ConfigResource::Topic(missing)], None)
        .await
        .unwrap_err();
    assert!(matches!(err, AdminError::UnknownTopic { .. }), "{err}");
    let err = admin.describe_log_dirs(BrokerId(99)).await.unwrap_err();
    assert!(
        matches!(
            err,
            AdminError::BrokerNotAvailable {
                broker: BrokerId(99)
            }
        ),
        "{err}"
    );
}

async fn versions_are_negotiated(admin: &AdminClient) {
    let versions = admin.negotiated_versions(BrokerId(1)).await.unwrap();
    for (api, chosen, broker_max) in &versions {
        eprintln!("negotiated {api}: v{chosen} (broker max v{broker_max})");
        assert!(chosen <= broker_max);
    }
    let get = |name: &str| {
        versions
            .iter()
            .find(|(api, _, _)| api == name)
            .map(|(_, v, _)| *v)
    };
    assert!(get("Metadata").unwrap() >= 12);
    assert!(get("DescribeQuorum").unwrap() >= 1);
    assert_eq!(versions.len(), 18, "{versions:?}");
}

async fn snapshot_of_a_healthy_cluster(admin: &AdminClient) {
    let snapshot = admin.snapshot().await.unwrap();
    assert!(snapshot.gaps.is_empty(), "{:?}", snapshot.gaps);
    let health = snapshot.analyze();
    assert_eq!(
        health.status,
        HealthStatus::Healthy,
        "{:#?}",
        health.findings
    );
    assert_eq!(
        health.safe_to_stop,
        [1, 2, 3].map(BrokerId).into_iter().collect()
    );
    assert_eq!(health.totals.live_brokers, 3);
    assert!(health.controller.is_some());
    // orders (6) + events (3) + moving (1).
    assert_eq!(health.totals.partitions, 10);
    let events0 = health
        .partition(&TopicPartition::new(topic("events"), 0))
        .unwrap();
    assert!(events0.size_bytes.unwrap() > 1500 * 200);
    assert_eq!(events0.min_insync_replicas, Some(2));
    let moving = health
        .partition(&TopicPartition::new(topic("moving"), 0))
        .unwrap();
    assert_eq!(moving.replicas, vec![BrokerId(1), BrokerId(3)]);
    assert_eq!(
        moving.min_insync_replicas,
        Some(1),
        "topic override read back"
    );
    assert!(
        health
            .brokers
            .iter()
            .all(|b| b.live && b.bytes_on_disk.unwrap_or(0) > 0)
    );
    // RF 2 with min ISR 2 blocks stops: the Strimzi lesson, reported explicitly.
    admin
        .create_topics(&[NewTopic::new(topic("strict"), 1, 2)])
        .await
        .unwrap();
    admin.wait_for_topic(&topic("strict")).await.unwrap();
    let health = admin.snapshot().await.unwrap().analyze();
    assert_eq!(
        health.topics_blocking_stops.len(),
        1,
        "{:?}",
        health.topics_blocking_stops
    );
    assert_eq!(health.topics_blocking_stops[0].topic, topic("strict"));
    assert_eq!(
        health.safe_to_stop.len(),
        1,
        "only the broker without a `strict` replica may stop"
    );
    admin.delete_topics(&[topic("strict")]).await.unwrap();
}

/// KRaft applies config changes through the controller, and each broker learns them from the
/// metadata log a moment later: re-read from *every* live broker (`describe_configs_at`) until
/// `check` passes on all of them, for at most 15 s (later steps read through any broker).
async fn eventually_configs(
    admin: &AdminClient,
    resource: &ConfigResource,
    keys: Option<&[&str]>,
    what: &str,
    check: impl Fn(&std::collections::BTreeMap<String, kpilot_kafka::ConfigEntry>) -> bool,
) {
    // A broker's own configs are answered by that broker only.
    let brokers: Vec<BrokerId> = match resource {
        ConfigResource::Broker(b) => vec![*b],
        _ => admin
            .metadata()
            .await
            .expect("metadata")
            .brokers
            .keys()
            .copied()
            .collect(),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    for broker in brokers {
        loop {
            let configs = admin
                .describe_configs_at(broker, std::slice::from_ref(resource), keys)
                .await
                .expect("describe configs");
            let entries = &configs[resource];
            if check(entries) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: broker {broker} never reached the expected state: {entries:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
