//! The throttle never outlives a run, on a real cluster: a run that fails mid-batch (an
//! injected error from the port), a run cancelled while data moves, and a run whose process
//! "dies" mid-batch (the future is dropped, once progress has shown bytes copied into the new
//! replicas) followed by `--cancel` from the journal, each leave no throttle config and no
//! reassignment in progress. Finally the same journal resumes and completes.

mod common;

use std::cell::Cell;
use std::time::Duration;

use common::*;
use kpilot_cluster::BrokerId;
use kpilot_reassign::{
    BatchState, Cancel, Event, ExecuteError, Executor, FileStore, JournalStore, RunStatus,
    Settings, prepare, read_plan_input,
};
use kpilot_rebalance::{BatchLimits, BrokerChange};

const TOPICS: [&str; 1] = ["logs"];
const BROKERS: [i32; 4] = [1, 2, 3, 4];

fn settings() -> Settings {
    Settings {
        poll_interval: Duration::from_millis(300),
        progress_interval: Duration::from_secs(1),
        ..Settings::default()
    }
}

#[test]
fn throttles_are_removed_after_failure_cancel_and_crash_then_the_run_resumes() {
    let mut cluster = start_cluster();
    assert_eq!(cluster.add_broker().expect("add broker 4"), 4);
    let rt = runtime();
    let admin = rt.block_on(admin(&cluster.bootstrap()));
    let journal_path = cluster.dir().join("rebalance.json");
    let mut store = FileStore::new(&journal_path);
    rt.block_on(async {
        create_topic(
            &admin,
            "logs",
            6,
            Some(
                (0..6)
                    .map(|p| vec![p % 3 + 1, (p + 1) % 3 + 1, (p + 2) % 3 + 1])
                    .collect(),
            ),
        )
        .await;
        fill(&admin, "logs", 6, 3_000_000).await;
        let input = read_plan_input(&admin, BrokerChange::Add([BrokerId(4)].into()))
            .await
            .expect("plan input");
        let prepared = prepare(
            &input,
            BatchLimits {
                max_per_broker: 2,
                max_per_batch: 50,
            },
        )
        .expect("plan");
        assert!(prepared.summary.partitions_to_move >= 2);
        // 200 KB/s: a 3 MB partition takes about 15 s, so every step below catches data moving.
        store
            .save(&prepared.journal(None, Some(200_000)))
            .expect("save");
    });

    // 1. An injected failure on the first poll of the first batch.
    rt.block_on(async {
        let mut port = Watched::new(&admin, BROKERS.to_vec(), TOPICS.to_vec());
        // Calls: the foreign-reassignment check, the pre-batch read, then the first poll.
        port.fail_on_ongoing_call = Some(3);
        let journal = store.load().expect("load").expect("journal");
        let err = Executor::new(
            &port,
            settings(),
            |e: &Event| eprintln!("run 1: {e}"),
            Cancel::never(),
        )
        .run(journal, &mut store)
        .await
        .expect_err("the injected failure fails the run");
        eprintln!("run 1 failed as intended: {err}");
        assert!(
            matches!(err, ExecuteError::Step { ref cleanup, .. } if cleanup.is_empty()),
            "{err}"
        );
        let j = store.load().expect("load").expect("journal");
        assert!(matches!(j.status, RunStatus::Failed(_)), "{:?}", j.status);
        assert_eq!(j.batches[0].state, BatchState::Cancelled);
        assert!(!j.throttle_applied);
        assert_clean(&admin).await;
    });

    // 2. A cancel while the first batch moves.
    rt.block_on(async {
        let (handle, cancel) = Cancel::new();
        let journal = store.load().expect("load").expect("journal");
        let report = Executor::new(
            &admin,
            settings(),
            |e: &Event| {
                eprintln!("run 2: {e}");
                if matches!(e, Event::Progress { moving, .. } if *moving > 0) {
                    handle.cancel();
                }
            },
            cancel,
        )
        .run(journal, &mut store)
        .await
        .expect("a cancelled run reports");
        assert_eq!(report.status, RunStatus::Cancelled);
        assert!(!report.throttle_left);
        assert_clean(&admin).await;
    });

    // 3. The process dies mid-batch (the run's future is dropped): throttles and moves are
    // left behind, and `--cancel` (Executor::cancel on the journal) cleans them up.
    rt.block_on(async {
        let moving = Cell::new(false);
        let journal = store.load().expect("load").expect("journal");
        let mut crash_store = FileStore::new(&journal_path);
        {
            let mut executor = Executor::new(
                &admin,
                settings(),
                |e: &Event| {
                    eprintln!("run 3: {e}");
                    // Mid-copy: the new replicas' logs have grown, and the time left is told.
                    if matches!(e, Event::Progress { moving, copying_bytes, eta_secs: Some(_), .. }
                        if *moving > 0 && *copying_bytes > 0)
                    {
                        moving.set(true);
                    }
                },
                Cancel::never(),
            );
            let run = executor.run(journal, &mut crash_store);
            tokio::pin!(run);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                tokio::select! {
                    r = &mut run => panic!("the run ended before the simulated crash: {r:?}"),
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
                if moving.get() || tokio::time::Instant::now() > deadline {
                    break;
                }
            }
        }
        assert!(
            moving.get(),
            "no progress ever showed bytes copied into a new replica"
        );
        let left = throttle_configs(&admin, &BROKERS, &TOPICS).await;
        assert!(
            !left.is_empty(),
            "the crashed run should have left its throttles"
        );
        assert!(
            !admin
                .list_partition_reassignments()
                .await
                .expect("list")
                .is_empty()
        );
        let j = store.load().expect("load").expect("journal");
        assert!(j.throttle_applied);
        assert_eq!(j.status, RunStatus::Running);
        let report = Executor::new(
            &admin,
            settings(),
            |e: &Event| eprintln!("cancel: {e}"),
            Cancel::never(),
        )
        .cancel(j, &mut store)
        .await
        .expect("cancel from the journal");
        assert_eq!(report.status, RunStatus::Cancelled);
        assert_clean(&admin).await;
    });

    // 4. Resume the same journal (faster throttle) to completion.
    rt.block_on(async {
        let mut journal = store.load().expect("load").expect("journal");
        journal.throttle_bytes_per_s = Some(50_000_000);
        let report = Executor::new(
            &admin,
            settings(),
            |e: &Event| eprintln!("run 4: {e}"),
            Cancel::never(),
        )
        .run(journal, &mut store)
        .await
        .expect("the resumed run completes");
        assert_eq!(report.status, RunStatus::Completed);
        assert_eq!(report.batches_done, report.batches);
        assert_clean(&admin).await;
        let per_broker = replicas_per_broker(&admin).await;
        assert!(
            per_broker.get(&4).copied().unwrap_or(0) >= 4,
            "{per_broker:?}"
        );
    });
    admin.close();
}

/// No throttle config on any broker or topic, and no reassignment in progress.
async fn assert_clean(admin: &kpilot_kafka::AdminClient) {
    wait_no_reassignments(admin).await;
    assert_no_throttles(admin, &BROKERS, &TOPICS).await;
}
