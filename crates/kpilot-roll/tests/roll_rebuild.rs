//! Rolls onto empty disks, end to end on a real 3-broker KRaft cluster (RF 3, min ISR 2): the
//! local fleet emulates instance-local NVMe (a node's new size is a new machine whose disk is
//! empty), so each rolled broker rebuilds every replica it hosts from the other two. Broker 2
//! is rolled with a rebuild throttle: the rates and the replica lists naming exactly its
//! partitions are seen set while it rebuilds, the rebuild takes the time the throttle allows,
//! and nothing is left set after.
//! Broker 3 is then rolled without one, to show the throttle is what held the first back.
//! Every record is still there afterwards, on every broker.

mod real;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kpilot_cluster::{BrokerId, TopicName};
use kpilot_kafka::{
    AdminClient, ConfigOp, ConfigResource, FOLLOWER_RATE, FOLLOWER_REPLICAS, LEADER_RATE,
    LEADER_REPLICAS,
};
use kpilot_roll::{
    FileStore, Journal, KafkaPort, LocalFleet, LocalSizing, RollError, RollEvent, RollOptions,
    RollReport, RollStatus, Roller, Settings,
};
use real::{Testbed, admin, create_topics};

const TOPIC: &str = "bulk";
/// RF 2, min ISR 1: partition 0 on brokers 2 and 3, partition 1 on 1 and 3. Broker 2's
/// rebuild throttles partition 0 only.
const MIXED: &str = "mixed";
const PARTITIONS: i32 = 6;
/// 6 partitions x 120 batches x 100 kB: 72 MB on each broker.
const BATCHES: usize = 120;
/// 72 MB at 2 MB/s: about 36 s of rebuild, most of it after the broker is registered. (At
/// 1 MB/s the brokers' quota, enforced per fetch of up to 1 MB a partition, overshoots by a
/// quarter.)
const THROTTLE: u64 = 2_000_000;
/// Another rate someone sets on broker 1 during the throttled rebuild.
const THEIRS: u64 = 7_000_000;

/// Every throttle override set now on the brokers and the topic, as
/// `"<resource> <key>=<value>"`; a broker that cannot answer (it is down) is skipped.
async fn overrides(admin: &AdminClient) -> BTreeSet<String> {
    let mut resources: Vec<ConfigResource> = (1..=3)
        .map(|b| ConfigResource::Broker(BrokerId(b)))
        .collect();
    for topic in [TOPIC, MIXED] {
        resources.push(ConfigResource::Topic(TopicName::new(topic).expect("topic")));
    }
    admin
        .throttle_overrides_answering(&resources)
        .await
        .into_iter()
        .map(|(r, k, v)| format!("{r} {k}={v}"))
        .collect()
}

/// Rolls `node` onto an empty disk; the roll's outcome and the journal path.
fn try_roll(
    runtime: &tokio::runtime::Runtime,
    bed: &Testbed,
    admin: &AdminClient,
    node: i32,
    throttle: Option<u64>,
) -> (Result<RollReport, RollError>, std::path::PathBuf) {
    try_roll_with(runtime, bed, admin, node, throttle, Settings::default())
}

/// [`try_roll`] with the roll's timeouts.
fn try_roll_with(
    runtime: &tokio::runtime::Runtime,
    bed: &Testbed,
    admin: &AdminClient,
    node: i32,
    throttle: Option<u64>,
    settings: Settings,
) -> (Result<RollReport, RollError>, std::path::PathBuf) {
    let fleet = LocalFleet::new(&bed.state_path, LocalSizing::default())
        .expect("fleet")
        .with_fresh_disks();
    let path = bed.dir.join(format!("journal-{node}.json"));
    let mut store = FileStore::new(&path);
    let options = RollOptions {
        only: Some([BrokerId(node)].into()),
        rebuild_throttle_bytes_per_s: throttle,
        ..RollOptions::new("m7g.xlarge".parse().expect("type"))
    };
    let outcome = runtime.block_on(async {
        Roller::new(admin, &fleet, settings, |e: &RollEvent| {
            eprintln!("roll: {e}");
        })
        .run(&options, &mut store)
        .await
    });
    (outcome, path)
}

fn roll(
    runtime: &tokio::runtime::Runtime,
    bed: &Testbed,
    admin: &AdminClient,
    node: i32,
    throttle: Option<u64>,
) -> Journal {
    let (outcome, path) = try_roll(runtime, bed, admin, node, throttle);
    let report = outcome.expect("the roll completes");
    assert_eq!(report.status, RollStatus::Completed);
    let text = std::fs::read_to_string(&path).expect("journal");
    serde_json::from_str(&text).expect("journal json")
}

/// Seconds from the node's start request to back in every ISR.
fn since_start_s(n: &kpilot_roll::journal::NodeEntry) -> f64 {
    let t = &n.timings;
    (t.start_ms.expect("start") + t.catch_up_ms.expect("catch-up")) as f64 / 1000.0
}

#[test]
fn a_rebuild_onto_an_empty_disk_runs_at_its_throttle_and_leaves_nothing_set() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("kpilot_roll=info")
        .with_test_writer()
        .try_init();
    let bed = Testbed::start(3);
    let runtime = real::runtime();
    let admin = runtime.block_on(async {
        let admin = admin(&bed.bootstrap).await;
        create_topics(&admin, &[(TOPIC, PARTITIONS)]).await;
        let mut mixed = kpilot_kafka::NewTopic::new(TopicName::new(MIXED).expect("name"), 2, 2)
            .with_config("min.insync.replicas", 1);
        mixed.assignments = Some(vec![
            vec![BrokerId(2), BrokerId(3)],
            vec![BrokerId(1), BrokerId(3)],
        ]);
        admin.create_topics(&[mixed]).await.expect("create mixed");
        admin
            .wait_for_topic(&TopicName::new(MIXED).expect("name"))
            .await
            .expect("mixed ready");
        real::fill(&admin, TOPIC, PARTITIONS, BATCHES).await;
        admin
    });
    let before = runtime.block_on(async {
        let mut before = Vec::new();
        for b in 1..=3 {
            before.push(admin.stored_bytes(BrokerId(b)).await.expect("stored"));
        }
        before
    });
    eprintln!("stored before: {before:?} bytes");
    assert!(before.iter().all(|b| *b >= 72_000_000), "{before:?}");

    // A throttle someone else left on the topic refuses a throttled rebuild before anything
    // stops (it would be overwritten and then removed); a cluster-wide default rate does not
    // (the rebuild's per-broker override and its removal leave it as it was).
    let topic = ConfigResource::Topic(TopicName::new(TOPIC).expect("topic"));
    let defaults = ConfigResource::BrokerDefaults;
    runtime.block_on(async {
        let leftover = [ConfigOp::set(LEADER_REPLICAS, "0:1")];
        admin
            .alter_configs(&topic, &leftover)
            .await
            .expect("leftover");
        let default_rate = [ConfigOp::set(LEADER_RATE, 50_000_000)];
        admin
            .alter_configs(&defaults, &default_rate)
            .await
            .expect("default");
        // Both reach every broker through the metadata log: wait until they are seen.
        let mut all: Vec<ConfigResource> = (1..=3)
            .map(|b| ConfigResource::Broker(BrokerId(b)))
            .collect();
        all.push(topic.clone());
        let began = std::time::Instant::now();
        loop {
            let seen = admin.throttle_overrides_answering(&all).await;
            let rates = seen.iter().filter(|(_, k, _)| k == LEADER_RATE).count();
            if rates == 3 && seen.iter().any(|(_, k, _)| k == LEADER_REPLICAS) {
                break;
            }
            assert!(began.elapsed() < Duration::from_secs(30), "{seen:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let pids = bed.pids();
    let (refused, _) = try_roll(&runtime, &bed, &admin, 2, Some(THROTTLE));
    let err = refused.expect_err("refused");
    assert!(matches!(err, RollError::ThrottlesSet { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("topic bulk leader.replication.throttled.replicas=0:1"),
        "{text}"
    );
    assert!(
        !text.contains("50000000"),
        "the default rate is not a reason: {text}"
    );
    assert_eq!(bed.pids(), pids, "no broker was stopped");
    runtime.block_on(async {
        let remove = [ConfigOp::Delete(LEADER_REPLICAS.into())];
        admin
            .alter_configs(&topic, &remove)
            .await
            .expect("remove leftover");
        let remove = [ConfigOp::Delete(LEADER_RATE.into())];
        admin
            .alter_configs(&defaults, &remove)
            .await
            .expect("remove default");
    });
    std::fs::remove_file(bed.dir.join("journal-2.json")).ok();
    // The removals reach every broker through the metadata log: wait until none reports
    // them, so that the watcher below sees only what the roll (and "someone else") sets.
    runtime.block_on(async {
        let began = std::time::Instant::now();
        loop {
            let now = overrides(&admin).await;
            if now.is_empty() {
                break;
            }
            assert!(began.elapsed() < Duration::from_secs(30), "{now:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    // A watcher samples the throttle overrides while broker 2 is rolled. Once the whole
    // throttle is set (broker 3's leader rate is set last), it plays someone else starting a
    // reassignment: broker 1's leader rate set to another value, which the lift must leave.
    let seen: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watcher = {
        let (seen, watching, bootstrap) = (seen.clone(), watching.clone(), bed.bootstrap.clone());
        runtime.spawn(async move {
            let admin = real::admin(&bootstrap).await;
            let last = format!("broker 3 {LEADER_RATE}={THROTTLE}");
            let mut theirs_set = false;
            while watching.load(std::sync::atomic::Ordering::SeqCst) {
                let now = overrides(&admin).await;
                if !theirs_set && now.contains(&last) {
                    admin
                        .alter_configs(
                            &ConfigResource::Broker(BrokerId(1)),
                            &[ConfigOp::set(LEADER_RATE, THEIRS)],
                        )
                        .await
                        .expect("someone else's rate");
                    theirs_set = true;
                }
                seen.lock().expect("seen").extend(now);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            admin.close();
        })
    };
    let throttled = roll(&runtime, &bed, &admin, 2, Some(THROTTLE));
    watching.store(false, std::sync::atomic::Ordering::SeqCst);
    runtime.block_on(watcher).expect("watcher");

    let n = throttled.node(BrokerId(2)).expect("node 2");
    let r = n.rebuild.as_ref().expect("rebuild recorded");
    let bytes = r.bytes.expect("bytes") as f64;
    let at_catch_up = r.bytes_at_catch_up.expect("bytes at catch-up") as f64;
    let rate = r.rate_bytes_per_s(n.timings.catch_up_ms).expect("rate");
    let since_start = since_start_s(n);
    eprintln!(
        "throttled rebuild of broker 2: {bytes} bytes in {since_start:.1} s from its start; \
         {at_catch_up} of them before it was registered, the rest in {} ms = {:.2} MB/s at a {:.1} MB/s throttle",
        n.timings.catch_up_ms.unwrap_or(0),
        rate / 1e6,
        THROTTLE as f64 / 1e6
    );
    assert!(!r.applied);
    assert_eq!(r.senders, [BrokerId(1), BrokerId(3)]);
    assert_eq!(r.topics, [TOPIC, MIXED]);
    assert_eq!(
        r.partitions[MIXED],
        [(0, vec![BrokerId(2), BrokerId(3)])].into_iter().collect(),
        "{r:?}"
    );
    assert_eq!(r.partitions[TOPIC].len(), PARTITIONS as usize, "{r:?}");
    // It rebuilt everything it had (the disk was empty: the bytes came over the network)...
    assert!(
        (bytes / before[1] as f64 - 1.0).abs() < 0.1,
        "{bytes} rebuilt, {} before",
        before[1]
    );
    // ...most of it while catching up, no faster than the throttle allows (the quota windows
    // let a little more through at the start) and not stalled...
    assert!(
        bytes - at_catch_up > bytes / 3.0,
        "{at_catch_up} of {bytes} before registered"
    );
    assert!(rate <= THROTTLE as f64 * 1.25, "{rate} B/s");
    assert!(rate >= THROTTLE as f64 * 0.3, "{rate} B/s");
    // ...and the whole of it took the time the throttle allows.
    assert!(
        since_start >= 0.8 * bytes / THROTTLE as f64,
        "{since_start} s from its start"
    );
    let seen = seen.lock().expect("seen").clone();
    // The lists name broker 2's replicas as followers and the others of its partitions as
    // leaders: nothing else (partition 1 of `mixed`, on brokers 1 and 3) is throttled.
    let bulk_leaders = (0..PARTITIONS)
        .map(|p| format!("{p}:1,{p}:3"))
        .collect::<Vec<_>>()
        .join(",");
    let bulk_followers = (0..PARTITIONS)
        .map(|p| format!("{p}:2"))
        .collect::<Vec<_>>()
        .join(",");
    let expected = [
        ("broker 2", FOLLOWER_RATE, THROTTLE.to_string()),
        ("broker 1", LEADER_RATE, THROTTLE.to_string()),
        ("broker 3", LEADER_RATE, THROTTLE.to_string()),
        ("topic bulk", LEADER_REPLICAS, bulk_leaders),
        ("topic bulk", FOLLOWER_REPLICAS, bulk_followers),
        ("topic mixed", LEADER_REPLICAS, "0:3".to_string()),
        ("topic mixed", FOLLOWER_REPLICAS, "0:2".to_string()),
        ("broker 1", LEADER_RATE, THEIRS.to_string()),
    ]
    .map(|(resource, key, value)| format!("{resource} {key}={value}"));
    for set in &expected {
        assert!(seen.contains(set), "{set} never seen: {seen:?}");
    }
    assert!(
        seen.iter().all(|s| expected.contains(s)),
        "something else was set: {seen:?}"
    );
    // The lift left someone else's rate, and only that; the journal and the event say so.
    let theirs = format!("broker 1 {LEADER_RATE}={THEIRS}");
    assert_eq!(r.left_to_others, [format!("{theirs} (not {THROTTLE})")]);
    let left = runtime.block_on(overrides(&admin));
    assert_eq!(
        left.into_iter().collect::<Vec<_>>(),
        [theirs],
        "throttle overrides left behind"
    );
    runtime.block_on(async {
        admin
            .alter_configs(
                &ConfigResource::Broker(BrokerId(1)),
                &[ConfigOp::Delete(LEADER_RATE.into())],
            )
            .await
            .expect("remove theirs");
    });

    // The same rebuild without a throttle, on broker 3: much faster.
    let free = roll(&runtime, &bed, &admin, 3, None);
    let n = free.node(BrokerId(3)).expect("node 3");
    let r = n.rebuild.as_ref().expect("rebuild recorded");
    let free_since_start = since_start_s(n);
    eprintln!(
        "unthrottled rebuild of broker 3: {} bytes in {free_since_start:.1} s from its start",
        r.bytes.unwrap_or(0),
    );
    assert!(
        r.bytes.is_some_and(|b| b as f64 > 0.9 * before[2] as f64),
        "{r:?}"
    );
    assert!(
        free_since_start < 0.5 * since_start,
        "unthrottled {free_since_start} s against throttled {since_start} s"
    );
    assert!(runtime.block_on(overrides(&admin)).is_empty());

    // Broker 1, throttled, halts while it rebuilds (a 3 s catch-up timeout) with its throttle
    // set; `abandon` lifts it, and the rebuild finishes unthrottled.
    let (halted, path) = try_roll_with(
        &runtime,
        &bed,
        &admin,
        1,
        Some(THROTTLE),
        Settings {
            catch_up_timeout: Duration::from_secs(3),
            ..Settings::default()
        },
    );
    let err = halted.expect_err("halted while rebuilding");
    assert!(matches!(err, RollError::CatchUpTimeout { .. }), "{err}");
    let set = runtime.block_on(overrides(&admin));
    let follower = format!("broker 1 {FOLLOWER_RATE}={THROTTLE}");
    assert!(set.contains(&follower), "the throttle stays set: {set:?}");
    let mut store = FileStore::new(&path);
    let abandoned = runtime
        .block_on(kpilot_roll::abandon(&admin, &mut store, "journal-1"))
        .expect("abandoned");
    eprintln!("{abandoned}");
    assert_eq!(abandoned.lifted, [BrokerId(1)]);
    assert_eq!(abandoned.in_flight.map(|(n, _)| n), Some(BrokerId(1)));
    let abandoned_at = std::time::Instant::now();
    let journal: Journal = serde_json::from_str(&std::fs::read_to_string(&path).expect("journal"))
        .expect("journal json");
    assert!(
        matches!(
            journal.status,
            RollStatus::Abandoned {
                node: Some(BrokerId(1)),
                ..
            }
        ),
        "{:?}",
        journal.status
    );
    runtime.block_on(async {
        loop {
            let state = admin.snapshot().await.expect("snapshot").state;
            if state
                .partitions()
                .all(|(_, p)| p.isr.len() == p.replicas.len())
            {
                break;
            }
            assert!(
                abandoned_at.elapsed() < Duration::from_secs(60),
                "broker 1 did not catch up unthrottled"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    eprintln!(
        "broker 1 back in every ISR {:.1} s after the roll was abandoned",
        abandoned_at.elapsed().as_secs_f64()
    );
    assert!(runtime.block_on(overrides(&admin)).is_empty());
    assert!(
        runtime
            .block_on(kpilot_roll::abandon(&admin, &mut store, "journal-1"))
            .is_err(),
        "nothing left to abandon"
    );

    // Every broker holds all the data again, every replica in sync.
    runtime.block_on(async {
        for b in 1..=3 {
            let now = admin.stored_bytes(BrokerId(b)).await.expect("stored");
            let was = before[(b - 1) as usize];
            assert!(
                (now as f64 / was as f64 - 1.0).abs() < 0.1,
                "broker {b}: {now} bytes, {was} before"
            );
        }
        let state = admin.snapshot().await.expect("snapshot").state;
        for (_, p) in state.partitions() {
            assert_eq!(p.isr.len(), p.replicas.len(), "{p:?}");
        }
    });
    admin.close();
}
