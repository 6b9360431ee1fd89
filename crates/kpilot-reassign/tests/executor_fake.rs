//! The executor against an in-memory cluster (no Kafka): the order of its steps, the journal
//! it leaves, cleanup after a failed submission, and refusals (someone else's reassignment, a
//! partition changed since planning). Each reassignment finishes after a few polls; config
//! changes reach the brokers `lag` reads after they were accepted, as KRaft's metadata log
//! makes them.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use kpilot_cluster::{BrokerId, TopicName, TopicPartition};
use kpilot_kafka::{ConfigOp, ConfigResource};
use kpilot_reassign::{
    BatchState, Cancel, ElectionSummary, Event, ExecuteError, Executor, JournalStore, MemoryStore,
    PortError, ReassignPort, RunStatus, Settings, prepare,
};
use kpilot_rebalance::{BatchLimits, BrokerChange, PartitionPlacement, PlanInput};

#[derive(Default)]
struct State {
    assignment: BTreeMap<TopicPartition, Vec<BrokerId>>,
    /// Moving partitions: (target, polls left).
    moving: BTreeMap<TopicPartition, (Vec<BrokerId>, u32)>,
    configs: BTreeMap<String, BTreeMap<String, String>>,
    /// The configs as the brokers apply them: `configs` as of `lag` reads ago.
    applied: BTreeMap<String, BTreeMap<String, String>>,
    /// Reads of the applied configs before the last change shows (`u32::MAX`: never).
    lag: u32,
    reads_to_apply: u32,
    /// Deletes are accepted but never applied by the brokers.
    deletes_stuck: bool,
    log: Vec<String>,
    fail_submit: Option<usize>,
    submits: usize,
    /// Resources whose config writes the brokers refuse (as without the AlterConfigs ACL).
    refused: BTreeSet<String>,
    /// A partition someone creates during the run (appears at the election).
    created_during_run: Option<(TopicPartition, Vec<BrokerId>)>,
    /// Logs a broker stores of topics the metadata leaves out (as without Describe on them).
    hidden: BTreeMap<BrokerId, BTreeSet<TopicPartition>>,
    /// Logs of replicas moved off a broker, still listed for `linger` more reads of its log
    /// dirs (a broker deletes them a moment after the metadata change).
    moved_off: BTreeMap<BrokerId, BTreeSet<TopicPartition>>,
    linger: u32,
    stored_reads: u32,
}

struct Fake(RefCell<State>);

impl ReassignPort for Fake {
    async fn live_brokers(&self) -> Result<BTreeSet<BrokerId>, PortError> {
        Ok((1..=4).map(BrokerId).collect())
    }
    async fn assignment(&self) -> Result<BTreeMap<TopicPartition, Vec<BrokerId>>, PortError> {
        Ok(self.0.borrow().assignment.clone())
    }
    async fn ongoing(&self) -> Result<BTreeSet<TopicPartition>, PortError> {
        let mut s = self.0.borrow_mut();
        let mut done = Vec::new();
        for (tp, (to, left)) in s.moving.iter_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                done.push((tp.clone(), to.clone()));
            }
        }
        for (tp, to) in done {
            s.moving.remove(&tp);
            if let Some(from) = s.assignment.insert(tp.clone(), to.clone()) {
                for b in from.into_iter().filter(|b| !to.contains(b)) {
                    s.moved_off.entry(b).or_default().insert(tp.clone());
                }
            }
        }
        Ok(s.moving.keys().cloned().collect())
    }
    async fn reassign(
        &self,
        changes: &[(TopicPartition, Option<Vec<BrokerId>>)],
    ) -> Result<(), PortError> {
        let mut s = self.0.borrow_mut();
        if changes.iter().any(|c| c.1.is_some()) {
            s.submits += 1;
            if s.fail_submit == Some(s.submits) {
                return Err(PortError::Reassign {
                    action: "submitting",
                    partitions: changes.len(),
                    source: "injected".into(),
                });
            }
        }
        for (tp, to) in changes {
            match to {
                Some(to) => {
                    let throttled = s
                        .applied
                        .get(&format!("topic {}", tp.topic))
                        .is_some_and(|c| c.contains_key("leader.replication.throttled.replicas"));
                    let how = if throttled { "" } else { " unthrottled" };
                    s.log.push(format!("reassign {tp}{how}"));
                    s.moving.insert(tp.clone(), (to.clone(), 2));
                }
                None => {
                    s.log.push(format!("cancel {tp}"));
                    s.moving.remove(tp);
                }
            }
        }
        Ok(())
    }
    async fn validate(&self, rs: &[ConfigResource], _: &[ConfigOp]) -> Result<(), PortError> {
        let mut s = self.0.borrow_mut();
        match rs.iter().find(|r| s.refused.contains(&r.to_string())) {
            Some(r) => {
                s.log.push(format!("validate refused {r}"));
                Err(PortError::Validate {
                    resource: r.to_string(),
                    source: Box::new(kpilot_kafka::AdminError::Broker {
                        operation: "IncrementalAlterConfigs",
                        resource: r.to_string(),
                        error: match r {
                            ConfigResource::Topic(_) => {
                                kpilot_kafka::KafkaErrorCode::TopicAuthorizationFailed
                            }
                            _ => kpilot_kafka::KafkaErrorCode::ClusterAuthorizationFailed,
                        },
                        message: None,
                    }),
                })
            }
            None => {
                s.log.push(format!("validate {} resource(s)", rs.len()));
                Ok(())
            }
        }
    }
    async fn configure(&self, r: &ConfigResource, ops: &[ConfigOp]) -> Result<(), PortError> {
        let mut s = self.0.borrow_mut();
        if s.refused.contains(&r.to_string()) {
            s.log.push(format!("refused {r}"));
            return Err(PortError::Configure {
                resource: r.to_string(),
                source: Box::new(kpilot_kafka::AdminError::Broker {
                    operation: "IncrementalAlterConfigs",
                    resource: r.to_string(),
                    error: kpilot_kafka::KafkaErrorCode::ClusterAuthorizationFailed,
                    message: None,
                }),
            });
        }
        for op in ops {
            match op {
                ConfigOp::Set(k, v) => {
                    s.log.push(format!("set {r} {k}"));
                    s.configs
                        .entry(r.to_string())
                        .or_default()
                        .insert(k.clone(), v.clone());
                }
                ConfigOp::Delete(k) => {
                    s.log.push(format!("delete {r} {k}"));
                    if let Some(c) = s.configs.get_mut(&r.to_string()) {
                        c.remove(k);
                    }
                }
            }
        }
        s.configs.retain(|_, c| !c.is_empty());
        if s.deletes_stuck && ops.iter().any(|op| matches!(op, ConfigOp::Delete(_))) {
            return Ok(());
        }
        s.reads_to_apply = s.lag;
        if s.lag == 0 {
            s.applied = s.configs.clone();
        }
        Ok(())
    }
    async fn overrides_seen(
        &self,
        r: &ConfigResource,
        keys: &[&str],
    ) -> Result<BTreeMap<BrokerId, BTreeMap<String, String>>, PortError> {
        let mut s = self.0.borrow_mut();
        if s.reads_to_apply > 0 && s.lag != u32::MAX {
            s.reads_to_apply -= 1;
            if s.reads_to_apply == 0 {
                s.applied = s.configs.clone();
            }
        }
        let mut seen = s.applied.get(&r.to_string()).cloned().unwrap_or_default();
        seen.retain(|k, _| keys.contains(&k.as_str()));
        Ok(match r {
            ConfigResource::Broker(b) => BTreeMap::from([(*b, seen)]),
            _ => (1..=4).map(|b| (BrokerId(b), seen.clone())).collect(),
        })
    }
    async fn stored(&self, broker: BrokerId) -> Result<BTreeSet<TopicPartition>, PortError> {
        let mut s = self.0.borrow_mut();
        s.stored_reads += 1;
        let mut stored: BTreeSet<TopicPartition> = s
            .assignment
            .iter()
            .filter(|(_, r)| r.contains(&broker))
            .map(|(tp, _)| tp.clone())
            .collect();
        stored.extend(s.hidden.get(&broker).into_iter().flatten().cloned());
        if s.linger > 0 {
            s.linger -= 1;
            stored.extend(s.moved_off.get(&broker).into_iter().flatten().cloned());
        }
        Ok(stored)
    }
    /// Replicas the broker has: 1,000 bytes; new ones still copying: 400 so far.
    async fn replica_sizes(&self, b: BrokerId) -> Result<BTreeMap<TopicPartition, u64>, PortError> {
        let s = self.0.borrow();
        let mut sizes: BTreeMap<TopicPartition, u64> = s
            .assignment
            .iter()
            .filter(|(_, r)| r.contains(&b))
            .map(|(tp, _)| (tp.clone(), 1_000))
            .collect();
        for (tp, (to, _)) in &s.moving {
            if to.contains(&b) && !sizes.contains_key(tp) {
                sizes.insert(tp.clone(), 400);
            }
        }
        Ok(sizes)
    }
    async fn elect_preferred(&self, p: &[TopicPartition]) -> Result<ElectionSummary, PortError> {
        let mut s = self.0.borrow_mut();
        s.log.push(format!("elect {}", p.len()));
        if let Some((tp, r)) = s.created_during_run.take() {
            s.assignment.insert(tp, r);
        }
        Ok(ElectionSummary {
            elected: p.len(),
            ..ElectionSummary::default()
        })
    }
}

fn input() -> PlanInput {
    let topic = TopicName::new("t").expect("topic");
    PlanInput {
        partitions: (0..12)
            .map(|p| PartitionPlacement {
                partition: TopicPartition::new(topic.clone(), p),
                replicas: (0..3).map(|k| BrokerId((p + k) % 3 + 1)).collect(),
                size_bytes: 1_000 + p as u64 * 10,
            })
            .collect(),
        brokers: (1..=4).map(|b| (BrokerId(b), None)).collect(),
        change: BrokerChange::Add([BrokerId(4)].into()),
    }
}

fn fake(input: &PlanInput) -> Fake {
    Fake(RefCell::new(State {
        assignment: input
            .partitions
            .iter()
            .map(|p| (p.partition.clone(), p.replicas.clone()))
            .collect(),
        ..State::default()
    }))
}

fn lagging(input: &PlanInput, lag: u32) -> Fake {
    let port = fake(input);
    port.0.borrow_mut().lag = lag;
    port
}

/// Runs `journal` on `port` to completion; the events it reported.
async fn run_to_completion(port: &Fake, journal: kpilot_reassign::Journal) -> Vec<Event> {
    let events = RefCell::new(Vec::new());
    Executor::new(
        port,
        settings(),
        |e: &Event| events.borrow_mut().push(e.clone()),
        Cancel::never(),
    )
    .run(journal, &mut MemoryStore::default())
    .await
    .expect("completes");
    events.into_inner()
}

fn settings() -> Settings {
    Settings {
        poll_interval: std::time::Duration::from_millis(1),
        ..Settings::default()
    }
}

#[tokio::test]
async fn completes_in_order_and_leaves_no_throttle() {
    let input = input();
    let prepared = prepare(
        &input,
        BatchLimits {
            max_per_broker: 1,
            max_per_batch: 10,
        },
    )
    .expect("plan");
    assert!(prepared.batches.len() >= 2);
    let port = fake(&input);
    let mut store = MemoryStore::default();
    let report = Executor::new(&port, settings(), |_: &_| {}, Cancel::never())
        .run(prepared.journal(None, Some(1_000_000)), &mut store)
        .await
        .expect("completes");
    assert_eq!(report.status, RunStatus::Completed);
    let s = port.0.borrow();
    for (tp, to) in &prepared.plan.assignment {
        assert_eq!(&s.assignment[tp], to);
    }
    assert!(s.configs.is_empty(), "{:?}", s.configs);
    // Rates first, then per batch: replica lists before the submission; deletes, then the
    // election last.
    let first_set = s
        .log
        .iter()
        .position(|l| l.starts_with("set broker"))
        .expect("rate");
    let first_reassign = s
        .log
        .iter()
        .position(|l| l.starts_with("reassign"))
        .expect("reassign");
    let first_lists = s
        .log
        .iter()
        .position(|l| l.starts_with("set topic"))
        .expect("lists");
    assert!(
        first_set < first_lists && first_lists < first_reassign,
        "{:?}",
        s.log
    );
    let last_delete = s
        .log
        .iter()
        .rposition(|l| l.starts_with("delete"))
        .expect("delete");
    assert!(
        s.log.last().expect("log").starts_with("elect"),
        "{:?}",
        s.log
    );
    assert!(
        last_delete
            > s.log
                .iter()
                .rposition(|l| l.starts_with("reassign"))
                .expect("r")
    );
    // The journal marked the throttle before any was set, and every batch done at the end.
    assert!(store.history[1].throttle_applied);
    assert!(
        store.history[1]
            .batches
            .iter()
            .all(|b| b.state == BatchState::Pending)
    );
    let last = store.history.last().expect("journal");
    assert!(last.batches.iter().all(|b| b.state == BatchState::Done));
    assert!(!last.throttle_applied && last.leaders_elected);
}

#[tokio::test]
async fn a_failed_submission_cleans_up_and_the_rerun_resumes() {
    let input = input();
    let prepared = prepare(
        &input,
        BatchLimits {
            max_per_broker: 1,
            max_per_batch: 10,
        },
    )
    .expect("plan");
    let port = fake(&input);
    port.0.borrow_mut().fail_submit = Some(2);
    let mut store = MemoryStore::default();
    let err = Executor::new(&port, settings(), |_: &_| {}, Cancel::never())
        .run(prepared.journal(None, Some(1_000_000)), &mut store)
        .await
        .expect_err("the second submission fails");
    assert!(matches!(err, ExecuteError::Step { .. }), "{err}");
    assert!(port.0.borrow().configs.is_empty());
    let journal = store.history.last().cloned().expect("journal");
    assert!(matches!(journal.status, RunStatus::Failed(_)));
    assert_eq!(journal.batches[0].state, BatchState::Done);
    assert_eq!(journal.batches[1].state, BatchState::Cancelled);
    port.0.borrow_mut().fail_submit = None;
    let report = Executor::new(&port, settings(), |_: &_| {}, Cancel::never())
        .run(journal, &mut store)
        .await
        .expect("resumes");
    assert_eq!(report.status, RunStatus::Completed);
    assert!(port.0.borrow().configs.is_empty());
}

#[tokio::test]
async fn a_refused_throttle_write_leaves_only_what_was_written_to_clean_up() {
    let input = input();
    let prepared = prepare(&input, BatchLimits::default()).expect("plan");
    // Broker 3 refuses (an authorization failure): 1 and 2 were throttled, 3 and 4 never were.
    let port = fake(&input);
    port.0.borrow_mut().refused.insert("broker 3".to_string());
    let mut store = MemoryStore::default();
    let err = Executor::new(&port, settings(), |_: &_| {}, Cancel::never())
        .run(prepared.journal(None, Some(1_000_000)), &mut store)
        .await
        .expect_err("broker 3 refuses the throttle");
    match &err {
        ExecuteError::Step { cleanup, .. } => assert!(cleanup.is_empty(), "{err}"),
        other => panic!("{other}"),
    }
    let log = port.0.borrow().log.clone();
    assert!(!log.iter().any(|l| l.starts_with("reassign")), "{log:?}");
    let deleted: Vec<&String> = log.iter().filter(|l| l.starts_with("delete")).collect();
    assert!(
        deleted
            .iter()
            .all(|l| l.contains("broker 1") || l.contains("broker 2")),
        "only what was written is removed: {log:?}"
    );
    assert!(port.0.borrow().configs.is_empty(), "{log:?}");
    let journal = store.history.last().cloned().expect("journal");
    assert!(journal.throttled_brokers.is_empty() && !journal.throttle_applied);

    // Broker 1 refuses: nothing was written, so nothing is deleted either (a principal
    // without the ACL would be refused the deletes too, burying the cause under them).
    let port = fake(&input);
    port.0.borrow_mut().refused.insert("broker 1".to_string());
    let err = Executor::new(&port, settings(), |_: &_| {}, Cancel::never())
        .run(
            prepared.journal(None, Some(1_000_000)),
            &mut MemoryStore::default(),
        )
        .await
        .expect_err("broker 1 refuses the throttle");
    assert!(
        err.to_string().contains("CLUSTER_AUTHORIZATION_FAILED"),
        "{err}"
    );
    assert!(!err.to_string().contains("cleanup"), "{err}");
    assert_eq!(
        port.0.borrow().log,
        vec![
            "validate 1 resource(s)".to_string(),
            "validate refused broker 1".to_string()
        ],
        "the topics are asked first, then broker 1 refuses the check: nothing written"
    );
}

#[tokio::test]
async fn refuses_foreign_reassignments_and_changed_partitions() {
    let input = input();
    let prepared = prepare(&input, BatchLimits::default()).expect("plan");
    let port = fake(&input);
    let other = TopicPartition::new(TopicName::new("other").expect("topic"), 0);
    port.0
        .borrow_mut()
        .moving
        .insert(other.clone(), (vec![BrokerId(1)], 1000));
    let err = Executor::new(&port, settings(), |_: &_| {}, Cancel::never())
        .run(
            prepared.journal(None, Some(1_000_000)),
            &mut MemoryStore::default(),
        )
        .await
        .expect_err("someone else's reassignment");
    assert!(
        matches!(err, ExecuteError::OtherReassignments { .. }),
        "{err}"
    );
    assert!(port.0.borrow().log.is_empty(), "nothing touched");

    port.0.borrow_mut().moving.clear();
    let first = prepared.batches[0].moves[0].partition.clone();
    port.0
        .borrow_mut()
        .assignment
        .insert(first, vec![BrokerId(3), BrokerId(2), BrokerId(4)]);
    let err = Executor::new(&port, settings(), |_: &_| {}, Cancel::never())
        .run(
            prepared.journal(None, Some(1_000_000)),
            &mut MemoryStore::default(),
        )
        .await
        .expect_err("changed since planning");
    assert!(
        matches!(err, ExecuteError::AssignmentChanged { .. }),
        "{err}"
    );
    assert!(port.0.borrow().configs.is_empty(), "throttle removed");
}

/// Broker 4 of 4, holding replicas of 6 of 8 partitions, is removed.
fn drain_input() -> PlanInput {
    let topic = TopicName::new("t").expect("topic");
    PlanInput {
        partitions: (0..8)
            .map(|p| PartitionPlacement {
                partition: TopicPartition::new(topic.clone(), p),
                replicas: (0..3).map(|k| BrokerId((p + k) % 4 + 1)).collect(),
                size_bytes: 1_000,
            })
            .collect(),
        brokers: (1..=4).map(|b| (BrokerId(b), None)).collect(),
        change: BrokerChange::Remove([BrokerId(4)].into()),
    }
}

#[tokio::test]
async fn a_removed_broker_is_reported_removable_only_when_empty() {
    let input = drain_input();
    let prepared = prepare(&input, BatchLimits::default()).expect("plan");
    let port = fake(&input);
    let report = Executor::new(&port, settings(), |_: &_| {}, Cancel::never())
        .run(prepared.journal(None, None), &mut MemoryStore::default())
        .await
        .expect("drained");
    assert_eq!(report.removable, vec![BrokerId(4)]);
    assert!(
        port.0
            .borrow()
            .assignment
            .values()
            .all(|r| !r.contains(&BrokerId(4)))
    );

    // Someone creates a partition on broker 4 while it drains: not removable.
    let port = fake(&input);
    port.0.borrow_mut().created_during_run = Some((
        TopicPartition::new(TopicName::new("new").expect("topic"), 0),
        vec![BrokerId(4), BrokerId(1), BrokerId(2)],
    ));
    let err = Executor::new(&port, settings(), |_: &_| {}, Cancel::never())
        .run(prepared.journal(None, None), &mut MemoryStore::default())
        .await
        .expect_err("broker 4 holds a replica again");
    assert!(
        matches!(
            err,
            ExecuteError::NotDrained {
                broker: BrokerId(4),
                replicas: 1
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("NOT safe to remove"));

    // The drained broker deletes the logs moved off it a few reads later: removable then.
    let port = fake(&input);
    port.0.borrow_mut().linger = 3;
    let report = Executor::new(&port, settings(), |_: &_| {}, Cancel::never())
        .run(prepared.journal(None, None), &mut MemoryStore::default())
        .await
        .expect("drained once the logs are deleted");
    assert_eq!(report.removable, vec![BrokerId(4)]);
    assert_eq!(port.0.borrow().stored_reads, 4);
}

#[tokio::test]
async fn a_broker_storing_a_topic_the_metadata_leaves_out_is_not_removable() {
    let input = drain_input();
    let prepared = prepare(&input, BatchLimits::default()).expect("plan");
    let port = fake(&input);
    let secret = TopicPartition::new(TopicName::new("secret").expect("topic"), 0);
    port.0.borrow_mut().hidden = BTreeMap::from([(BrokerId(4), BTreeSet::from([secret]))]);
    let settings = Settings {
        config_timeout: std::time::Duration::from_millis(50),
        ..settings()
    };
    let mut store = MemoryStore::default();
    let err = Executor::new(&port, settings, |_: &_| {}, Cancel::never())
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
    let text = err.to_string();
    for needed in ["NOT safe to remove", "Describe ACL", "plan again"] {
        assert!(text.contains(needed), "{needed:?} not in {text}");
    }
    // Every move was made; only the removal is refused, and the journal says why.
    assert!(
        port.0
            .borrow()
            .assignment
            .values()
            .all(|r| !r.contains(&BrokerId(4)))
    );
    let journal = store.load().expect("load").expect("journal");
    assert!(
        matches!(&journal.status, RunStatus::Failed(why) if why.contains("secret-0")),
        "{:?}",
        journal.status
    );
}

#[tokio::test]
async fn submits_only_once_every_broker_applies_the_throttle_and_ends_once_none_does() {
    let input = input();
    let prepared = prepare(&input, BatchLimits::default()).expect("plan");
    let port = lagging(&input, 3);
    Executor::new(&port, settings(), |_: &_| {}, Cancel::never())
        .run(
            prepared.journal(None, Some(1_000_000)),
            &mut MemoryStore::default(),
        )
        .await
        .expect("completes");
    let s = port.0.borrow();
    assert!(
        s.log.iter().any(|l| l.starts_with("reassign")),
        "{:?}",
        s.log
    );
    assert!(
        !s.log.iter().any(|l| l.ends_with("unthrottled")),
        "a batch went out before the brokers applied its throttle: {:?}",
        s.log
    );
    assert!(
        s.applied.is_empty(),
        "the run ended with brokers still throttling: {:?}",
        s.applied
    );
}

#[tokio::test]
async fn a_throttle_the_brokers_never_apply_fails_the_run_before_any_move() {
    let input = input();
    let prepared = prepare(&input, BatchLimits::default()).expect("plan");
    let port = lagging(&input, u32::MAX);
    let mut store = MemoryStore::default();
    let err = Executor::new(
        &port,
        Settings {
            config_timeout: std::time::Duration::from_millis(20),
            ..settings()
        },
        |_: &_| {},
        Cancel::never(),
    )
    .run(prepared.journal(None, Some(1_000_000)), &mut store)
    .await
    .expect_err("the rate never shows");
    let text = err.to_string();
    assert!(
        matches!(err, ExecuteError::ThrottleNotApplied { .. }),
        "{text}"
    );
    assert!(
        text.contains("broker 1 has leader.replication.throttled.rate=(none)"),
        "{text}"
    );
    let s = port.0.borrow();
    assert!(
        !s.log.iter().any(|l| l.starts_with("reassign")),
        "{:?}",
        s.log
    );
    assert!(
        s.configs.is_empty(),
        "the throttle was removed again: {:?}",
        s.configs
    );
    assert!(!store.history.last().expect("journal").throttle_applied);
}

#[tokio::test]
async fn a_removal_the_brokers_do_not_apply_is_reported_and_retried_by_cancel() {
    let input = input();
    let prepared = prepare(&input, BatchLimits::default()).expect("plan");
    let port = fake(&input);
    port.0.borrow_mut().deletes_stuck = true;
    let mut store = MemoryStore::default();
    let quick = Settings {
        config_timeout: std::time::Duration::from_millis(20),
        ..settings()
    };
    let err = Executor::new(&port, quick.clone(), |_: &_| {}, Cancel::never())
        .run(prepared.journal(None, Some(1_000_000)), &mut store)
        .await
        .expect_err("the brokers keep throttling");
    let text = err.to_string();
    assert!(
        text.contains("not every broker applied it within 20ms"),
        "{text}"
    );
    assert!(
        text.contains("leader.replication.throttled.rate=1000000"),
        "{text}"
    );
    // The journal still lists what to remove; once the brokers catch up, `--cancel` finishes.
    let journal = store.history.last().cloned().expect("journal");
    assert!(journal.throttle_applied && !journal.throttled_brokers.is_empty());
    {
        let mut s = port.0.borrow_mut();
        s.deletes_stuck = false;
        s.applied = s.configs.clone();
    }
    Executor::new(&port, quick, |_: &_| {}, Cancel::never())
        .cancel(journal, &mut store)
        .await
        .expect("the cleanup completes");
    assert!(port.0.borrow().applied.is_empty());
    assert!(!store.history.last().expect("journal").throttle_applied);
}

#[tokio::test]
async fn a_topic_refused_in_a_later_batch_stops_the_run_before_any_data_moves() {
    // Two topics; `u` may not have its throttled replicas set (AlterConfigs granted on `t`
    // only). One partition per batch, so batches of `t` come before the first of `u`.
    let mut input = input();
    let u = TopicName::new("u").expect("topic");
    input.partitions.extend((0..12).map(|p| PartitionPlacement {
        partition: TopicPartition::new(u.clone(), p),
        replicas: (0..3).map(|k| BrokerId((p + k) % 3 + 1)).collect(),
        size_bytes: 100 + p as u64,
    }));
    let prepared = prepare(
        &input,
        BatchLimits {
            max_per_broker: 1,
            max_per_batch: 1,
        },
    )
    .expect("plan");
    let journal = prepared.journal(None, Some(1_000_000));
    let first_u = journal
        .batches
        .iter()
        .position(|b| b.batch.moves.iter().any(|m| m.partition.topic == u))
        .expect("a batch moves u");
    assert!(first_u > 0, "the test needs a batch of t before u's");

    let port = fake(&input);
    port.0.borrow_mut().refused.insert("topic u".to_string());
    let err = Executor::new(&port, settings(), |_: &_| {}, Cancel::never())
        .run(journal, &mut MemoryStore::default())
        .await
        .expect_err("u is refused");
    let log = port.0.borrow().log.clone();
    assert_eq!(
        log,
        vec!["validate refused topic u".to_string()],
        "nothing written"
    );
    let text = err.to_string();
    assert!(
        text.contains("topic u") && text.contains("TOPIC_AUTHORIZATION_FAILED"),
        "{text}"
    );
}

#[tokio::test]
async fn progress_counts_what_the_new_replicas_hold_while_they_copy() {
    let input = input();
    let prepared = prepare(&input, BatchLimits::default()).expect("plan");
    let events = run_to_completion(&fake(&input), prepared.journal(None, Some(1_000_000))).await;
    // Right after the submission every partition of the batch is moving, each new replica
    // holding 400 bytes: counted, and a rate to tell the time left from.
    let first = events
        .iter()
        .find_map(|e| match e {
            Event::Progress {
                moving,
                copying_bytes,
                done_bytes,
                eta_secs,
                ..
            } if *moving > 0 => Some((*moving, *copying_bytes, *done_bytes, *eta_secs)),
            _ => None,
        })
        .expect("a progress event while moving");
    let (moving, copying, done, eta) = first;
    assert_eq!(copying, 400 * moving as u64, "{events:?}");
    assert_eq!(done, copying, "nothing finished yet: {events:?}");
    assert!(eta.is_some_and(|s| s >= 0.0), "{events:?}");
    let shown = events
        .iter()
        .find(|e| matches!(e, Event::Progress { moving, .. } if *moving > 0))
        .expect("progress")
        .to_string();
    assert!(shown.contains(" left"), "{shown}");
    // Done is done: the last progress has every byte and nothing copying.
    let last = events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Progress {
                done_bytes,
                total_bytes,
                copying_bytes,
                ..
            } => Some((*done_bytes, *total_bytes, *copying_bytes)),
            _ => None,
        })
        .expect("progress");
    assert_eq!((last.0, last.2), (last.1, 0), "{events:?}");
}

#[tokio::test]
async fn a_resumed_batch_in_flight_times_this_run_from_its_first_reading() {
    // A journal whose first batch was in flight when its run died: what its new replicas hold
    // was copied by that run, so this one has no rate (and no time left) until it has copied
    // something itself.
    let input = input();
    let prepared = prepare(&input, BatchLimits::default()).expect("plan");
    let mut journal = prepared.journal(None, Some(1_000_000));
    journal.batches[0].state = BatchState::Issued;
    let etas: Vec<Option<f64>> = run_to_completion(&fake(&input), journal)
        .await
        .into_iter()
        .filter_map(|e| match e {
            Event::Progress { eta_secs, .. } => Some(eta_secs),
            _ => None,
        })
        .collect();
    assert_eq!(etas.first(), Some(&None), "{etas:?}");
    assert!(etas.iter().skip(1).any(Option::is_some), "{etas:?}");
}

/// A journal whose first batch was in flight when its run was killed, with the throttles that
/// run set still in place; the port shows those moves in Kafka's adding state (new replicas
/// first, then the old ones leaving), each finishing after `polls` reads of the reassignments
/// in progress.
fn crashed_mid_batch(polls: u32) -> (Fake, kpilot_reassign::Journal, BTreeSet<TopicPartition>) {
    let input = input();
    let prepared = prepare(&input, BatchLimits::default()).expect("plan");
    let mut journal = prepared.journal(None, Some(1_000_000));
    journal.batches[0].state = BatchState::Issued;
    journal.throttle_applied = true;
    journal.throttled_brokers = (1..=4).map(BrokerId).collect();
    journal.throttled_topics = [TopicName::new("t").expect("topic")].into();
    let port = fake(&input);
    let mut ours = BTreeSet::new();
    {
        let mut s = port.0.borrow_mut();
        for m in &journal.batches[0].batch.moves {
            let mut adding = m.to.clone();
            adding.extend(m.from.iter().filter(|b| !m.to.contains(b)));
            s.assignment.insert(m.partition.clone(), adding);
            s.moving.insert(m.partition.clone(), (m.to.clone(), polls));
            ours.insert(m.partition.clone());
        }
        for b in 1..=4 {
            s.configs.insert(
                format!("broker {b}"),
                [(kpilot_reassign::LEADER_RATE.to_string(), "1000000".into())].into(),
            );
        }
        s.configs.insert(
            "topic t".into(),
            [(kpilot_reassign::LEADER_REPLICAS.to_string(), "0:1".into())].into(),
        );
        s.applied = s.configs.clone();
    }
    (port, journal, ours)
}

/// Regression: rerunning after `kill -9` mid-batch failed with "orders-2 has replicas
/// [1, 2, 3, 4], but the plan expected [4, 2, 3]" about 1 run in 2, and cancelled the copy:
/// the replicas were read before the reassignments in progress, so a move that finished in
/// between showed its adding state and was no longer listed as moving.
#[tokio::test]
async fn a_resumed_batch_whose_moves_finish_while_it_reads_the_cluster_completes() {
    // 2 polls: the first is the check for someone else's reassignments; the moves finish at
    // the next one, between the two reads of the resumed batch.
    let (port, journal, ours) = crashed_mid_batch(2);
    run_to_completion(&port, journal).await;
    let s = port.0.borrow();
    assert!(
        !s.log.iter().any(|l| l.starts_with("cancel")),
        "{:?}",
        s.log
    );
    for tp in &ours {
        assert!(
            !s.log.contains(&format!("reassign {tp}")),
            "{tp} resubmitted: {:?}",
            s.log
        );
    }
    assert!(s.configs.is_empty(), "throttles removed: {:?}", s.configs);
}

#[tokio::test]
async fn a_resumed_batch_still_moving_is_adopted_and_waited_for_not_resubmitted() {
    let (port, journal, ours) = crashed_mid_batch(6);
    let mut store = MemoryStore::default();
    let report = Executor::new(&port, settings(), |_: &_| {}, Cancel::never())
        .run(journal, &mut store)
        .await
        .expect("completes");
    assert_eq!(report.status, RunStatus::Completed);
    let s = port.0.borrow();
    assert!(
        !s.log.iter().any(|l| l.starts_with("cancel")),
        "{:?}",
        s.log
    );
    for tp in &ours {
        assert!(!s.log.contains(&format!("reassign {tp}")), "{:?}", s.log);
    }
    // Throttles were set again before the run went on, and removed once it ended.
    assert!(
        s.log.iter().any(|l| l.starts_with("set broker")),
        "{:?}",
        s.log
    );
    assert!(s.configs.is_empty(), "{:?}", s.configs);
}

/// Regression: a rebalance started during someone else's reassignment saved its plan (made
/// from the half-moved state) to the journal before refusing, and a rerun executed it later.
#[tokio::test]
async fn a_new_run_during_another_reassignment_is_refused_before_saving_a_journal() {
    let input = input();
    let prepared = prepare(&input, BatchLimits::default()).expect("plan");
    let port = fake(&input);
    let other = TopicPartition::new(TopicName::new("other").expect("topic"), 3);
    port.0
        .borrow_mut()
        .moving
        .insert(other, (vec![BrokerId(1)], 1000));
    let mut store = MemoryStore::default();
    let err = Executor::new(&port, settings(), |_: &_| {}, Cancel::never())
        .run(prepared.journal(None, Some(1_000_000)), &mut store)
        .await
        .expect_err("someone else's reassignment");
    let text = err.to_string();
    assert!(
        matches!(err, ExecuteError::OtherReassignments { .. }),
        "{text}"
    );
    assert!(
        text.contains("other-3") && text.contains("kafka-reassign-partitions.sh --cancel"),
        "{text}"
    );
    assert!(store.history.is_empty(), "no journal saved");
    assert!(port.0.borrow().log.is_empty(), "nothing touched");
}

/// Regression: a rebalance overwrote a leader rate someone had set on a broker and a `*` on
/// a topic, then deleted both when it ended.
#[tokio::test]
async fn a_new_run_refuses_throttle_overrides_set_before_it() {
    let input = input();
    let prepared = prepare(&input, BatchLimits::default()).expect("plan");
    let port = fake(&input);
    {
        let mut s = port.0.borrow_mut();
        s.configs.insert(
            "broker 2".into(),
            [(kpilot_reassign::LEADER_RATE.to_string(), "5000000".into())].into(),
        );
        s.configs.insert(
            "topic t".into(),
            [(kpilot_reassign::FOLLOWER_REPLICAS.to_string(), "*".into())].into(),
        );
        s.applied = s.configs.clone();
    }
    let before = port.0.borrow().configs.clone();
    let mut store = MemoryStore::default();
    let err = Executor::new(&port, settings(), |_: &_| {}, Cancel::never())
        .run(prepared.journal(None, Some(1_000_000)), &mut store)
        .await
        .expect_err("throttles set already");
    let text = err.to_string();
    assert!(matches!(err, ExecuteError::ThrottlesSet { .. }), "{text}");
    for needed in [
        "broker 2: leader.replication.throttled.rate=5000000",
        "topic t: follower.replication.throttled.replicas=*",
        "--delete-config",
    ] {
        assert!(text.contains(needed), "{needed}: {text}");
    }
    assert!(store.history.is_empty(), "no journal saved");
    let s = port.0.borrow();
    assert_eq!(s.configs, before, "left as they were");
    assert!(
        !s.log
            .iter()
            .any(|l| l.starts_with("set") || l.starts_with("delete")),
        "{:?}",
        s.log
    );
}
