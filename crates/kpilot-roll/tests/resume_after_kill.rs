//! Killing `kpilot` (SIGKILL) in the middle of a roll, while a broker is down, and rerunning it
//! finishes the roll correctly: it continues at the right broker and step, never has two
//! brokers down, and restarts every broker exactly once. The roll that gets killed runs in a
//! child process (this test binary re-executed with `--ignored --exact child_roll`).

mod real;

use std::process::Command;
use std::time::{Duration, Instant};

use kpilot_roll::journal::Phase;
use kpilot_roll::{
    FileStore, JournalStore, LocalFleet, LocalSizing, RollEvent, RollOptions, RollStatus, Roller,
    Settings, gate,
};
use real::{DownMonitor, Testbed, admin, create_topics};

const CHILD_ENV: &str = "KPILOT_ROLL_TEST_CHILD";

fn options() -> RollOptions {
    RollOptions::new("m7g.xlarge".parse().expect("type"))
}

/// The roll that gets killed. Runs only when the parent test starts it.
#[test]
#[ignore = "started by resume_after_kill_finishes_the_roll in a child process"]
fn child_roll() {
    let spec = std::env::var(CHILD_ENV).expect("started by the parent test");
    let [state, journal, bootstrap]: [&str; 3] = spec
        .split('|')
        .collect::<Vec<_>>()
        .try_into()
        .expect("state|journal|bootstrap");
    let runtime = real::runtime();
    runtime.block_on(async {
        let admin = admin(bootstrap).await;
        let fleet = LocalFleet::new(state, LocalSizing::default()).expect("fleet");
        let mut store = FileStore::new(journal);
        Roller::new(&admin, &fleet, Settings::default(), |e: &RollEvent| {
            eprintln!("child roll: {e}")
        })
        .run(&options(), &mut store)
        .await
        .expect("child roll");
    });
}

#[test]
fn resume_after_kill_finishes_the_roll() {
    let bed = Testbed::start(3);
    let runtime = real::runtime();
    let admin = runtime.block_on(async {
        let admin = admin(&bed.bootstrap).await;
        create_topics(&admin, &[("orders", 6), ("events", 3)]).await;
        admin
    });
    let journal_path = bed.dir.join("journal.json");
    let monitor = DownMonitor::start(&bed.state_path, 3);
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--ignored", "--exact", "child_roll", "--nocapture"])
        .env(
            CHILD_ENV,
            format!(
                "{}|{}|{}",
                bed.state_path.display(),
                journal_path.display(),
                bed.bootstrap
            ),
        )
        .spawn()
        .expect("spawn the child roll");

    // Kill it once the first node is done and the second is down.
    let store = FileStore::new(&journal_path);
    let deadline = Instant::now() + Duration::from_secs(240);
    let killed_at = loop {
        assert!(
            Instant::now() < deadline,
            "the child roll never reached the kill point"
        );
        if let Ok(Some(j)) = store.load() {
            let done = j.nodes.iter().filter(|n| n.phase == Phase::Done).count();
            if let Some(n) = j.in_flight()
                && done == 1
                && n.phase.may_be_down()
                && n.phase >= Phase::Stopped
            {
                let _ = child.kill(); // SIGKILL
                break (n.id, n.phase);
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the child roll exited before it could be killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.wait();
    // The child may have written one more step between our read and the kill: the journal
    // as it stands now is where the rerun must continue.
    let journal = store.load().expect("load").expect("journal");
    let in_flight = journal
        .in_flight()
        .expect("a node in flight after the kill");
    assert_eq!(in_flight.id, killed_at.0, "the kill landed on another node");
    assert!(
        in_flight.phase.may_be_down(),
        "killed at {}, while the broker may be down",
        in_flight.phase
    );
    let killed_at = (in_flight.id, in_flight.phase);
    eprintln!(
        "killed the child roll with node {} at {}",
        killed_at.0, killed_at.1
    );
    assert_eq!(
        journal.status,
        RollStatus::Running,
        "the killed roll left it running"
    );

    // Rerun: continues at the killed node and step.
    let fleet = LocalFleet::new(&bed.state_path, LocalSizing::default()).expect("fleet");
    let mut store = FileStore::new(&journal_path);
    let mut first_event = None;
    let report = runtime
        .block_on(async {
            Roller::new(&admin, &fleet, Settings::default(), |e: &RollEvent| {
                eprintln!("roll: {e}");
                first_event.get_or_insert_with(|| e.clone());
            })
            .run(&options(), &mut store)
            .await
        })
        .expect("the rerun finishes the roll");
    assert_eq!(
        first_event,
        Some(RollEvent::Resumed {
            node: Some(killed_at),
            run: 2
        })
    );
    assert_eq!(report.status, RollStatus::Completed);
    assert_eq!(report.runs, 2);
    assert!(report.nodes.iter().all(|n| n.phase == Phase::Done));
    assert_eq!(monitor.finish(), 1, "never two brokers down");

    // Every broker was restarted exactly once (its log has two start banners).
    for b in bed.state().brokers {
        let log = std::fs::read_to_string(&b.log).expect("broker log");
        let starts = log.matches("===== kpilot-testbed: starting node").count();
        assert_eq!(starts, 2, "broker {} started {starts} times", b.id);
    }
    runtime.block_on(async {
        let state = admin.snapshot().await.expect("snapshot").state;
        assert!(gate::not_preferred(&state, None).is_empty());
        assert!(state.partitions().all(|(_, p)| p.isr.len() == 3));
    });
    admin.close();
}
