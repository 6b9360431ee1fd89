//! The Kafka source without I/O: two [`KafkaSample`]s of the cluster (log-end offsets, replica
//! log sizes, committed group offsets) taken a window apart, turned into a [`Measurement`]:
//! ingress per topic from the growth of each partition's largest replica log, replication from
//! the followers' growth, egress from the groups' committed-offset advance times the topic's
//! bytes per message. A log from which retention (or compaction) removed data during the window
//! understates what was appended, or shrinks: its growth is then estimated as the records
//! appended (log-end offsets) times the average record size of what it retains (size over the
//! offsets between log start and log end), and a warning says so. A log whose size or offsets
//! are unknown, or a broker whose log directories could not be read, makes the affected rates
//! missing, never zero. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet};

use kpilot_cluster::TopicPartition;
use kpilot_units::{ByteSize, Span, Throughput};

use crate::measurement::{BrokerLoad, Measurement, Reading, TopicLoad};

/// What the Kafka source reads at one moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KafkaSample {
    /// When (seconds; only differences matter).
    pub at_secs: f64,
    /// Live broker ids.
    pub brokers: Vec<i32>,
    /// Leader and replicas of each partition of the non-internal topics.
    pub partitions: BTreeMap<TopicPartition, (Option<i32>, Vec<i32>)>,
    /// Log-end offset of each partition.
    pub end_offsets: BTreeMap<TopicPartition, i64>,
    /// Log start offset of each partition (it moves up when retention deletes a segment).
    pub start_offsets: BTreeMap<TopicPartition, i64>,
    /// Log size of each replica: `(broker, partition) -> bytes`.
    pub replica_sizes: BTreeMap<(i32, TopicPartition), u64>,
    /// Brokers whose log directories could not be read, with why.
    pub unreadable_brokers: BTreeMap<i32, String>,
    /// Committed offsets of each consumer group.
    pub group_offsets: BTreeMap<String, BTreeMap<TopicPartition, i64>>,
    /// Problems met while sampling (a group whose offsets could not be read...).
    pub warnings: Vec<String>,
}

impl KafkaSample {
    /// The largest replica log of a partition, `None` when a replica's broker could not be read.
    fn max_size(&self, tp: &TopicPartition) -> Option<u64> {
        let (_, replicas) = self.partitions.get(tp)?;
        let mut max = 0;
        for b in replicas {
            match self.replica_sizes.get(&(*b, tp.clone())) {
                Some(size) => max = max.max(*size),
                None if self.unreadable_brokers.contains_key(b) => return None,
                // A replica not yet created on its broker (reassignment): nothing stored.
                None => {}
            }
        }
        Some(max)
    }

    /// The average record size of `tp`'s log: the leader's log size over the offsets from log
    /// start to log end (both the leader's: a follower may not have deleted a segment yet);
    /// `None` when unknown or empty. An underestimate for a compacted log, whose offsets
    /// include the records compaction removed.
    fn record_bytes(&self, tp: &TopicPartition) -> Option<f64> {
        let leader = self.partitions.get(tp)?.0?;
        let size = self.replica_sizes.get(&(leader, tp.clone()))?;
        let records = self.end_offsets.get(tp)? - self.start_offsets.get(tp)?;
        (records > 0).then(|| *size as f64 / records as f64)
    }

    /// Whether retention deleted records of `tp` since `before` (its log start moved up).
    fn deleted_since(&self, before: &KafkaSample, tp: &TopicPartition) -> bool {
        matches!(
            (before.start_offsets.get(tp), self.start_offsets.get(tp)),
            (Some(b), Some(a)) if a > b
        )
    }
}

/// What a log of `size_before` and then `size_after` bytes gained while `records` records were
/// appended: the growth when nothing was removed, else the records times the average record
/// size of what the partition retains now (or, for a log emptied meanwhile, retained before).
/// `None` when data was removed and the estimate has nothing to go on.
fn appended(
    before: &KafkaSample,
    after: &KafkaSample,
    tp: &TopicPartition,
    (size_before, size_after): (u64, u64),
    records: Option<i64>,
) -> Option<(u64, bool)> {
    if size_after >= size_before && !after.deleted_since(before, tp) {
        return Some((size_after - size_before, false));
    }
    let records = records.filter(|r| *r >= 0)?;
    let per_record = after.record_bytes(tp).or_else(|| before.record_bytes(tp))?;
    Some(((records as f64 * per_record).round() as u64, true))
}

/// Per partition: bytes appended (largest replica) and messages appended over the window, and
/// whether the bytes are estimated (data was removed during the window).
#[derive(Debug, Clone, PartialEq)]
struct PartitionGrowth {
    bytes: Result<u64, String>,
    messages: Option<i64>,
    estimated: bool,
}

fn growth(before: &KafkaSample, after: &KafkaSample, tp: &TopicPartition) -> PartitionGrowth {
    let existed = before.partitions.contains_key(tp);
    let messages = match (before.end_offsets.get(tp), after.end_offsets.get(tp)) {
        (Some(b), Some(a)) => Some(a - b),
        // Created during the window: every record in it is new.
        (None, Some(a)) if !existed => Some(*a),
        _ => None,
    };
    let unreadable = || format!("the log directories of a replica of {tp} could not be read");
    let mut estimated = false;
    let bytes = match (before.max_size(tp), after.max_size(tp)) {
        (_, None) => Err(unreadable()),
        // Created during the window: everything in it is new.
        (None, Some(a)) if !existed => Ok(a),
        (None, Some(_)) => Err(unreadable()),
        (Some(b), Some(a)) => match appended(before, after, tp, (b, a), messages) {
            Some((bytes, guessed)) => {
                estimated = guessed;
                Ok(bytes)
            }
            None => Err(format!(
                "the log of {tp} shrank by {} bytes during the window (retention or \
                     compaction deleted data) and its offsets are unknown: its ingress is \
                     unknown; measure again or use Prometheus",
                b.saturating_sub(a)
            )),
        },
    };
    PartitionGrowth {
        bytes,
        messages,
        estimated,
    }
}

/// The load between two samples.
pub fn measure_between(
    before: &KafkaSample,
    after: &KafkaSample,
    source: String,
    at_unix_secs: f64,
) -> Measurement {
    let elapsed = after.at_secs - before.at_secs;
    let window = Span::from_secs(elapsed.max(0.0));
    let mut warnings: Vec<String> = before
        .warnings
        .iter()
        .chain(&after.warnings)
        .cloned()
        .collect();
    warnings.dedup();
    for (b, why) in &after.unreadable_brokers {
        warnings.push(format!("log directories of broker {b}: {why}"));
    }
    let rate = |bytes: f64| Throughput::from_bytes_per_s(bytes / elapsed);
    if elapsed.is_nan() || elapsed <= 0.0 {
        let r = Reading::missing("the two Kafka samples were not taken a window apart");
        return Measurement {
            source,
            window,
            at_unix_secs,
            ingress: r.clone(),
            egress: r.clone(),
            replication: r,
            brokers: Vec::new(),
            topics: Vec::new(),
            stored: None,
            consumer_groups: Vec::new(),
            warnings,
        };
    }

    // Per partition growth, per topic sums.
    let growths: BTreeMap<&TopicPartition, PartitionGrowth> = after
        .partitions
        .keys()
        .map(|tp| (tp, growth(before, after, tp)))
        .collect();
    let mut topic_names: Vec<String> = after
        .partitions
        .keys()
        .map(|tp| tp.topic.to_string())
        .collect();
    topic_names.dedup();
    let estimated: Vec<&&TopicPartition> = growths
        .iter()
        .filter(|(_, g)| g.estimated && g.bytes.is_ok())
        .map(|(tp, _)| tp)
        .collect();
    if let Some(example) = estimated.first() {
        warnings.push(format!(
            "retention or compaction removed data from {} partition(s) during the window \
             (e.g. {example}): their ingress is estimated as the records appended times the \
             average record size they retain",
            estimated.len()
        ));
    }

    // Egress per topic from committed offsets.
    let bytes_per_message = |topic: &str| -> Option<f64> {
        let (mut bytes, mut msgs) = (0.0, 0.0);
        for (tp, g) in &growths {
            if tp.topic.as_str() == topic
                && let (Ok(b), Some(m)) = (&g.bytes, g.messages)
            {
                bytes += *b as f64;
                msgs += m as f64;
            }
        }
        if msgs > 0.0 {
            return Some(bytes / msgs);
        }
        // Nothing produced in the window: the average over what is stored (the records from
        // log start to log end; from offset 0 when the log start is unknown).
        let (mut size, mut records) = (0.0, 0.0);
        for (tp, e) in &after.end_offsets {
            if tp.topic.as_str() == topic {
                size += after.max_size(tp).unwrap_or(0) as f64;
                records += (*e - after.start_offsets.get(tp).copied().unwrap_or(0)) as f64;
            }
        }
        (records > 0.0).then_some(size / records)
    };
    let mut egress_by_topic: BTreeMap<String, f64> = BTreeMap::new();
    let mut groups_by_topic: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (group, offsets) in &after.group_offsets {
        for (tp, committed) in offsets {
            let topic = tp.topic.to_string();
            if topic.starts_with("__") {
                continue;
            }
            groups_by_topic
                .entry(topic.clone())
                .or_default()
                .insert(group.clone());
            let start = before
                .group_offsets
                .get(group)
                .and_then(|o| o.get(tp))
                .copied()
                .unwrap_or(*committed);
            let advanced = (committed - start).max(0) as f64;
            if advanced > 0.0 {
                let per = bytes_per_message(&topic).unwrap_or(0.0);
                *egress_by_topic.entry(topic).or_default() += advanced * per;
            }
        }
    }

    let topics: Vec<TopicLoad> = topic_names
        .iter()
        .map(|topic| {
            let mut bytes = 0u64;
            let mut messages = 0i64;
            let mut problem = None;
            let mut stored = 0u64;
            let mut stored_known = true;
            for (tp, g) in growths.iter().filter(|(tp, _)| tp.topic.as_str() == topic) {
                match &g.bytes {
                    Ok(b) => bytes += b,
                    Err(e) => {
                        problem.get_or_insert_with(|| e.clone());
                    }
                }
                messages += g.messages.unwrap_or(0);
                let (_, replicas) = &after.partitions[*tp];
                for b in replicas {
                    match after.replica_sizes.get(&(*b, (*tp).clone())) {
                        Some(s) => stored += s,
                        None if after.unreadable_brokers.contains_key(b) => stored_known = false,
                        None => {}
                    }
                }
            }
            TopicLoad {
                topic: topic.clone(),
                ingress: match problem {
                    Some(p) => Reading::missing(p),
                    None => Reading::measured(rate(bytes as f64)),
                },
                messages_per_s: Some(messages as f64 / elapsed),
                egress: egress_by_topic.get(topic).map(|b| rate(*b)).or_else(|| {
                    groups_by_topic
                        .contains_key(topic)
                        .then_some(Throughput::ZERO)
                }),
                consumer_groups: groups_by_topic
                    .get(topic)
                    .map(|g| g.iter().cloned().collect())
                    .unwrap_or_default(),
                stored: stored_known.then(|| ByteSize::from_bytes(stored as f64)),
            }
        })
        .collect();

    // Topics the brokers store but Metadata left out (the principal lacks Describe on them):
    // their growth is not counted, so the sum would understate the ingress.
    let visible: BTreeSet<&str> = after
        .partitions
        .keys()
        .map(|tp| tp.topic.as_str())
        .collect();
    let hidden: BTreeSet<&str> = after
        .replica_sizes
        .keys()
        .map(|(_, tp)| tp.topic.as_str())
        .filter(|t| !t.starts_with("__") && !visible.contains(t))
        .collect();
    let ingress = if let Some(example) = hidden.first() {
        Reading::missing(format!(
            "{} topic(s) stored on the brokers are not in Metadata (e.g. {example}), so their \
             ingress cannot be measured; grant this principal Describe on every topic",
            hidden.len()
        ))
    } else if topics.is_empty() {
        warnings.push("the cluster has no topics: ingress is zero".to_owned());
        Reading::measured(Throughput::ZERO)
    } else {
        Reading::sum(topics.iter().map(|t| &t.ingress), "topic")
    };
    let egress = if after.group_offsets.is_empty() {
        Reading::missing(
            "no consumer group has committed offsets: egress is unknown to the Kafka source \
             (consumers that do not commit are invisible to it)",
        )
    } else {
        Reading::measured(rate(egress_by_topic.values().sum()))
    };

    // Per broker: leader growth is bytes in, follower growth replication in; stored bytes.
    let mut brokers: Vec<BrokerLoad> = Vec::new();
    let mut replication_parts = Vec::new();
    let mut stored_total = Some(0.0);
    for &b in &after.brokers {
        let unreadable = after
            .unreadable_brokers
            .get(&b)
            .or_else(|| before.unreadable_brokers.get(&b));
        let (mut lead_in, mut follow_in, mut serve_out) = (0u64, 0u64, 0u64);
        let mut problem: Option<String> = unreadable.map(|w| format!("broker {b}: {w}"));
        for (tp, (leader, replicas)) in &after.partitions {
            let key = (b, tp.clone());
            let records = growths.get(tp).and_then(|g| g.messages);
            let delta = match (
                before.replica_sizes.get(&key),
                after.replica_sizes.get(&key),
            ) {
                (Some(x), Some(y)) => match appended(before, after, tp, (*x, *y), records) {
                    Some((d, _)) => Some(d),
                    None => {
                        problem.get_or_insert_with(|| {
                            format!("the log of {tp} on broker {b} shrank during the window")
                        });
                        None
                    }
                },
                (None, Some(y)) if !before.partitions.contains_key(tp) => Some(*y),
                _ => None,
            };
            let Some(delta) = delta else { continue };
            if *leader == Some(b) {
                lead_in += delta;
                for f in replicas.iter().filter(|f| **f != b) {
                    let fk = (*f, tp.clone());
                    if let (Some(x), Some(y)) =
                        (before.replica_sizes.get(&fk), after.replica_sizes.get(&fk))
                    {
                        serve_out +=
                            appended(before, after, tp, (*x, *y), records).map_or(0, |(d, _)| d);
                    }
                }
            } else if replicas.contains(&b) {
                follow_in += delta;
            }
        }
        let stored: Option<u64> = unreadable.is_none().then(|| {
            after
                .replica_sizes
                .iter()
                .filter(|((broker, _), _)| *broker == b)
                .map(|(_, s)| *s)
                .sum()
        });
        match (stored, stored_total.as_mut()) {
            (Some(s), Some(t)) => *t += s as f64,
            _ => stored_total = None,
        }
        let measured = |bytes: u64| match &problem {
            Some(p) => Reading::missing(p.clone()),
            None => Reading::measured(rate(bytes as f64)),
        };
        let load = BrokerLoad {
            broker: b.to_string(),
            bytes_in: measured(lead_in),
            bytes_out: Reading::missing(
                "the Kafka source measures consumer egress per group and topic, not per broker",
            ),
            replication_in: measured(follow_in),
            replication_out: measured(serve_out),
            cpu_cores: None,
            stored: stored.map(|s| ByteSize::from_bytes(s as f64)),
        };
        replication_parts.push(load.replication_in.clone());
        brokers.push(load);
    }
    let replication = Reading::sum(&replication_parts, "broker replication");
    for (what, r) in [
        ("ingress", &ingress),
        ("egress", &egress),
        ("replication", &replication),
    ] {
        if let Some(p) = r.problem() {
            warnings.push(format!("{what}: {p}"));
        }
    }
    Measurement {
        source,
        window,
        at_unix_secs,
        ingress,
        egress,
        replication,
        brokers,
        topics,
        stored: stored_total.map(ByteSize::from_bytes),
        consumer_groups: after.group_offsets.keys().cloned().collect(),
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpilot_cluster::TopicName;

    fn tp(topic: &str, p: i32) -> TopicPartition {
        TopicPartition::new(TopicName::new(topic).expect("topic"), p)
    }

    /// Topic `t` with one partition led by broker 1, replicas 1, 2, 3.
    fn sample(at: f64, end: i64, sizes: [u64; 3], committed: Option<i64>) -> KafkaSample {
        let p = tp("t", 0);
        let mut s = KafkaSample {
            at_secs: at,
            brokers: vec![1, 2, 3],
            ..KafkaSample::default()
        };
        s.partitions.insert(p.clone(), (Some(1), vec![1, 2, 3]));
        s.end_offsets.insert(p.clone(), end);
        for (i, size) in sizes.iter().enumerate() {
            s.replica_sizes.insert((i as i32 + 1, p.clone()), *size);
        }
        if let Some(c) = committed {
            s.group_offsets
                .insert("readers".into(), [(p, c)].into_iter().collect());
        }
        s
    }

    #[test]
    fn growth_over_the_window_is_the_rate() {
        // 50 MB appended in 10 s: 5 MB/s; followers caught up except broker 3 (1 MB behind).
        let a = sample(100.0, 1000, [10_000_000; 3], Some(1000));
        let b = sample(
            110.0,
            6000,
            [60_000_000, 60_000_000, 59_000_000],
            Some(3500),
        );
        let m = measure_between(&a, &b, "kafka".into(), 0.0);
        assert_eq!(m.ingress.value(), Some(Throughput::from_mb_per_s(5.0)));
        assert_eq!(m.topics[0].messages_per_s, Some(500.0));
        // Replication: followers grew 50 + 49 MB.
        assert_eq!(m.replication.value(), Some(Throughput::from_mb_per_s(9.9)));
        assert_eq!(
            m.brokers[0].bytes_in.value(),
            Some(Throughput::from_mb_per_s(5.0))
        );
        assert_eq!(
            m.brokers[0].replication_out.value(),
            Some(Throughput::from_mb_per_s(9.9))
        );
        // The group read 2500 messages of 10 kB: 2.5 MB/s.
        assert_eq!(m.egress.value(), Some(Throughput::from_mb_per_s(2.5)));
        assert_eq!(m.topics[0].consumer_groups, ["readers"]);
        assert_eq!(m.stored.map(|s| s.bytes()), Some(179_000_000.0));
        assert!((m.fanout().expect("fanout") - 0.5).abs() < 1e-9);
        assert!(m.warnings.is_empty(), "{:?}", m.warnings);
    }

    #[test]
    fn data_removed_by_retention_is_estimated_from_the_records_appended() {
        // 10 kB records. Retention deletes the first 300 records (3 MB) while 1000 more
        // (10 MB) are appended: the log grew by 7 MB, but 1 MB/s was written.
        let mut a = sample(0.0, 1000, [10_000_000; 3], None);
        let mut b = sample(10.0, 2000, [17_000_000; 3], None);
        let p = tp("t", 0);
        a.start_offsets.insert(p.clone(), 0);
        b.start_offsets.insert(p.clone(), 300);
        let m = measure_between(&a, &b, "kafka".into(), 0.0);
        assert_eq!(m.ingress.value(), Some(Throughput::from_mb_per_s(1.0)));
        assert_eq!(
            m.brokers[0].bytes_in.value(),
            Some(Throughput::from_mb_per_s(1.0))
        );
        assert_eq!(m.replication.value(), Some(Throughput::from_mb_per_s(2.0)));
        assert!(
            m.warnings
                .iter()
                .any(|w| w.contains("1 partition(s)") && w.contains("estimated")),
            "{:?}",
            m.warnings
        );
        // A deletion larger than the appends: the log shrank from 10 to 7 MB while 200
        // records (2 MB) were appended.
        let mut c = sample(10.0, 1200, [7_000_000; 3], None);
        c.start_offsets.insert(p.clone(), 500);
        let m = measure_between(&a, &c, "kafka".into(), 0.0);
        assert_eq!(m.ingress.value(), Some(Throughput::from_mb_per_s(0.2)));
        // Nothing removed: the growth itself, no estimate.
        let mut d = sample(10.0, 1500, [15_000_000; 3], None);
        d.start_offsets.insert(p, 0);
        let m = measure_between(&a, &d, "kafka".into(), 0.0);
        assert_eq!(m.ingress.value(), Some(Throughput::from_mb_per_s(0.5)));
        assert!(m.warnings.iter().all(|w| !w.contains("estimated")));
    }

    #[test]
    fn a_shrinking_log_with_unknown_offsets_makes_ingress_missing_not_zero() {
        let a = sample(0.0, 1000, [10_000_000; 3], None);
        let b = sample(10.0, 1200, [4_000_000; 3], None);
        let m = measure_between(&a, &b, "kafka".into(), 0.0);
        assert_eq!(m.ingress.value(), None);
        assert!(
            m.ingress.problem().is_some_and(|p| p.contains("shrank")),
            "{:?}",
            m.ingress
        );
        // No group commits: egress unknown, said so.
        assert_eq!(m.egress.value(), None);
        assert!(m.warnings.iter().any(|w| w.starts_with("egress:")));
    }

    #[test]
    fn an_unreadable_broker_makes_ingress_missing() {
        let a = sample(0.0, 1000, [10_000_000; 3], None);
        let mut b = sample(10.0, 2000, [20_000_000; 3], None);
        b.replica_sizes.retain(|(broker, _), _| *broker != 1);
        b.unreadable_brokers
            .insert(1, "DescribeLogDirs timed out".into());
        let m = measure_between(&a, &b, "kafka".into(), 0.0);
        assert_eq!(m.ingress.value(), None, "{:?}", m.ingress);
        assert_eq!(m.stored, None);
        assert!(
            m.warnings.iter().any(|w| w.contains("broker 1")),
            "{:?}",
            m.warnings
        );
    }

    #[test]
    fn a_topic_metadata_leaves_out_makes_ingress_missing_not_understated() {
        let a = sample(0.0, 1000, [10_000_000; 3], None);
        let mut b = sample(10.0, 2000, [20_000_000; 3], None);
        let secret = TopicPartition::new(TopicName::new("secret").expect("topic"), 0);
        let offsets = TopicPartition::new(TopicName::new("__consumer_offsets").expect("topic"), 0);
        // An internal topic's log is no hidden topic.
        b.replica_sizes.insert((1, offsets), 5_000);
        assert!(
            measure_between(&a, &b, "kafka".into(), 0.0)
                .ingress
                .value()
                .is_some()
        );
        b.replica_sizes.insert((1, secret), 5_000_000);
        let m = measure_between(&a, &b, "kafka".into(), 0.0);
        assert_eq!(m.ingress.value(), None, "{:?}", m.ingress);
        assert!(
            m.warnings
                .iter()
                .any(|w| w.contains("not in Metadata (e.g. secret)") && w.contains("Describe")),
            "{:?}",
            m.warnings
        );
    }

    #[test]
    fn no_elapsed_time_is_missing() {
        let a = sample(5.0, 1, [1; 3], None);
        let m = measure_between(&a, &a, "kafka".into(), 0.0);
        assert_eq!(m.ingress.value(), None);
    }

    #[test]
    fn an_idle_cluster_is_measured_zero() {
        let a = sample(0.0, 1000, [10_000_000; 3], Some(1000));
        let b = sample(10.0, 1000, [10_000_000; 3], Some(1000));
        let m = measure_between(&a, &b, "kafka".into(), 0.0);
        assert_eq!(m.ingress.value(), Some(Throughput::ZERO));
        assert_eq!(m.egress.value(), Some(Throughput::ZERO));
    }
}
