//! Benchmark: bytes moved by kpilot's plan vs the lower bound vs Kafka's own generator
//! (`kafka-reassign-partitions --generate`, class
//! `org.apache.kafka.tools.reassign.ReassignPartitionsCommand`) on the same real cluster
//! state, with the final balance of both. Starts a 3-broker testbed on 127.0.0.1, writes
//! topics of uneven sizes, then for each scenario reads the real state, plans with kpilot,
//! asks Kafka's generator (several runs: it places replicas from a random start), and
//! compares. Scenario B's plan (3 -> 6 brokers) is also executed for real (throttled, timed)
//! and the bytes the brokers then hold are printed next to the plan's. Run with `scripts/bench-rebalance`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kpilot_cluster::{BrokerId, TopicName, TopicPartition};
use kpilot_kafka::{AdminClient, BrokerAddress, ClientConfig, NewTopic};
use kpilot_reassign::{
    Cancel, Executor, MemoryStore, RunStatus, Settings, prepare, read_plan_input,
};
use kpilot_rebalance::{BatchLimits, BrokerChange, PlanInput};
use kpilot_testbed::{ClusterConfig, KafkaCluster};

const TOPICS: [(&str, i32); 4] = [("orders", 16), ("events", 12), ("logs", 12), ("metrics", 8)];
const GENERATOR_RUNS: usize = 3;

type Assignment = BTreeMap<TopicPartition, Vec<BrokerId>>;

fn size_of(seed: u64, lo: u64, hi: u64) -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    lo + x % (hi - lo)
}

/// Per-broker figures of an assignment with the given sizes.
#[derive(Debug)]
struct Figures {
    bytes: BTreeMap<BrokerId, u64>,
    replicas: BTreeMap<BrokerId, usize>,
    leaders: BTreeMap<BrokerId, usize>,
}

impl Figures {
    fn of(
        a: &Assignment,
        sizes: &BTreeMap<TopicPartition, u64>,
        brokers: &BTreeSet<BrokerId>,
    ) -> Self {
        let mut f = Figures {
            bytes: brokers.iter().map(|b| (*b, 0)).collect(),
            replicas: brokers.iter().map(|b| (*b, 0)).collect(),
            leaders: brokers.iter().map(|b| (*b, 0)).collect(),
        };
        for (tp, r) in a {
            for b in r {
                *f.bytes.entry(*b).or_insert(0) += sizes.get(tp).copied().unwrap_or(0);
                *f.replicas.entry(*b).or_insert(0) += 1;
            }
            if let Some(l) = r.first() {
                *f.leaders.entry(*l).or_insert(0) += 1;
            }
        }
        f
    }

    fn bytes_ratio(&self) -> f64 {
        let max = self.bytes.values().max().copied().unwrap_or(0) as f64;
        let min = self.bytes.values().min().copied().unwrap_or(0) as f64;
        if min == 0.0 { f64::INFINITY } else { max / min }
    }

    fn spread<T: Copy + Ord + Into<u64>>(m: &BTreeMap<BrokerId, T>) -> String {
        let max = m.values().max().copied().map(Into::into).unwrap_or(0);
        let min = m.values().min().copied().map(Into::into).unwrap_or(0);
        format!("{min}-{max}")
    }

    fn replicas_range(&self) -> String {
        Self::spread(&self.replicas.iter().map(|(b, n)| (*b, *n as u64)).collect())
    }

    fn leaders_range(&self) -> String {
        Self::spread(&self.leaders.iter().map(|(b, n)| (*b, *n as u64)).collect())
    }

    fn mb_per_broker(&self) -> String {
        self.bytes
            .iter()
            .map(|(b, v)| format!("{}:{:.0}", b, *v as f64 / 1e6))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn moved_bytes(
    before: &Assignment,
    after: &Assignment,
    sizes: &BTreeMap<TopicPartition, u64>,
) -> (u64, usize) {
    let mut bytes = 0;
    let mut partitions = 0;
    for (tp, new) in after {
        let old = before.get(tp).cloned().unwrap_or_default();
        let added = new.iter().filter(|b| !old.contains(b)).count() as u64;
        if added > 0 {
            partitions += 1;
        }
        bytes += added * sizes.get(tp).copied().unwrap_or(0);
    }
    (bytes, partitions)
}

/// Runs Kafka's generator and returns its proposed assignment (only the partitions it lists;
/// the others keep their replicas).
fn kafka_generate(
    cluster: &KafkaCluster,
    brokers: &BTreeSet<BrokerId>,
    current: &Assignment,
) -> Assignment {
    let topics_file = cluster.dir().join("topics-to-move.json");
    let topics: Vec<String> = TOPICS
        .iter()
        .map(|(t, _)| format!("{{\"topic\":\"{t}\"}}"))
        .collect();
    std::fs::write(
        &topics_file,
        format!("{{\"version\":1,\"topics\":[{}]}}", topics.join(",")),
    )
    .expect("write topics file");
    let list: Vec<String> = brokers.iter().map(|b| b.0.to_string()).collect();
    let out = cluster
        .java_command("org.apache.kafka.tools.reassign.ReassignPartitionsCommand")
        .args([
            "--bootstrap-server",
            &cluster.bootstrap(),
            "--topics-to-move-json-file",
        ])
        .arg(&topics_file)
        .args(["--broker-list", &list.join(","), "--generate"])
        .output()
        .expect("run kafka-reassign-partitions");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "generator failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let proposed = stdout
        .split("Proposed partition reassignment configuration")
        .nth(1)
        .and_then(|rest| rest.lines().map(str::trim).find(|l| l.starts_with('{')))
        .unwrap_or_else(|| panic!("no proposal in the generator's output:\n{stdout}"));
    let v: serde_json::Value = serde_json::from_str(proposed).expect("generator JSON");
    let mut a = current.clone();
    for p in v["partitions"].as_array().expect("partitions") {
        let tp = TopicPartition::new(
            TopicName::new(p["topic"].as_str().expect("topic")).expect("name"),
            p["partition"].as_i64().expect("partition") as i32,
        );
        let replicas = p["replicas"]
            .as_array()
            .expect("replicas")
            .iter()
            .map(|b| BrokerId(b.as_i64().expect("id") as i32))
            .collect();
        a.insert(tp, replicas);
    }
    a
}

struct Row {
    scenario: String,
    ours_bytes: u64,
    ours_partitions: usize,
    bound: u64,
    ours: Figures,
    kafka_bytes: Vec<u64>,
    kafka_partitions: Vec<usize>,
    kafka: Vec<Figures>,
}

fn scenario(
    cluster: &KafkaCluster,
    rt: &tokio::runtime::Runtime,
    admin: &AdminClient,
    name: &str,
    change: BrokerChange,
) -> (Row, PlanInput) {
    let input = rt
        .block_on(read_plan_input(admin, change.clone()))
        .expect("plan input");
    let current: Assignment = input
        .partitions
        .iter()
        .map(|p| (p.partition.clone(), p.replicas.clone()))
        .collect();
    let sizes: BTreeMap<TopicPartition, u64> = input
        .partitions
        .iter()
        .map(|p| (p.partition.clone(), p.size_bytes))
        .collect();
    let prepared = prepare(&input, BatchLimits::default()).expect("plan");
    let targets: BTreeSet<BrokerId> = prepared.plan.brokers.clone();
    let mut ours_after = current.clone();
    ours_after.extend(prepared.plan.assignment.clone());
    let (ours_bytes, ours_partitions) = moved_bytes(&current, &ours_after, &sizes);
    assert_eq!(ours_bytes, prepared.summary.bytes_to_move);
    let mut row = Row {
        scenario: name.to_string(),
        ours_bytes,
        ours_partitions,
        bound: prepared.summary.lower_bound_bytes,
        ours: Figures::of(&ours_after, &sizes, &targets),
        kafka_bytes: Vec::new(),
        kafka_partitions: Vec::new(),
        kafka: Vec::new(),
    };
    for _ in 0..GENERATOR_RUNS {
        let proposed = kafka_generate(cluster, &targets, &current);
        let (b, p) = moved_bytes(&current, &proposed, &sizes);
        row.kafka_bytes.push(b);
        row.kafka_partitions.push(p);
        row.kafka.push(Figures::of(&proposed, &sizes, &targets));
    }
    eprintln!(
        "{name}: ours {:.1} MB ({} partitions), bound {:.1} MB, Kafka {:?} MB",
        ours_bytes as f64 / 1e6,
        ours_partitions,
        row.bound as f64 / 1e6,
        row.kafka_bytes
            .iter()
            .map(|b| format!("{:.1}", *b as f64 / 1e6))
            .collect::<Vec<_>>()
    );
    (row, input)
}

fn main() {
    let total = Instant::now();
    let mut cluster = KafkaCluster::start(ClusterConfig {
        ready_timeout: Duration::from_secs(120),
        ..ClusterConfig::default()
    })
    .expect("start a 3-broker testbed (scripts/setup-kafka)");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let bootstrap = cluster.bootstrap();
    let admin = rt.block_on(async {
        let mut config =
            ClientConfig::new(BrokerAddress::parse_list(&bootstrap).expect("bootstrap"));
        config.api_timeout = Duration::from_secs(60);
        config.request_timeout = Duration::from_secs(30);
        AdminClient::connect(config).await.expect("connect")
    });
    // Uneven data: 48 partitions of 0.3-3 MB each, RF 3.
    let written = rt.block_on(async {
        let value = Bytes::from(vec![b'x'; 10_000]);
        let batch: Vec<(Option<Bytes>, Option<Bytes>)> =
            (0..10).map(|_| (None, Some(value.clone()))).collect();
        let mut written = 0u64;
        for (i, (t, n)) in TOPICS.iter().enumerate() {
            let topic = TopicName::new(*t).expect("name");
            admin
                .create_topics(&[
                    NewTopic::new(topic.clone(), *n, 3).with_config("min.insync.replicas", 2)
                ])
                .await
                .expect("create");
            admin.wait_for_topic(&topic).await.expect("ready");
            for p in 0..*n {
                let target = size_of((i as u64) * 100 + p as u64, 300_000, 3_000_000);
                let mut done = 0u64;
                while done < target {
                    admin
                        .produce(&TopicPartition::new(topic.clone(), p), &batch)
                        .await
                        .expect("produce");
                    done += 100_000;
                }
                written += done;
            }
        }
        written
    });
    eprintln!("wrote {:.1} MB (x3 replicas)", written as f64 / 1e6);

    let mut rows = Vec::new();
    let add = |cluster: &mut KafkaCluster, n: usize| -> BTreeSet<BrokerId> {
        let ids = (0..n)
            .map(|_| BrokerId(cluster.add_broker().expect("add a broker")))
            .collect();
        std::thread::sleep(Duration::from_secs(2));
        ids
    };
    // A. 3 -> 4: with RF 3 on 3 brokers every partition keeps two replicas whatever the plan.
    let new = add(&mut cluster, 1);
    let (row, _) = scenario(
        &cluster,
        &rt,
        &admin,
        "add 1 broker (3 -> 4)",
        BrokerChange::Add(new.clone()),
    );
    rows.push(row);
    // B. 3 -> 6, executed for real (throttled, timed).
    let mut new6 = new;
    new6.extend(add(&mut cluster, 2));
    let (row, input) = scenario(
        &cluster,
        &rt,
        &admin,
        "add 3 brokers (3 -> 6)",
        BrokerChange::Add(new6),
    );
    rows.push(row);
    let prepared = prepare(&input, BatchLimits::default()).expect("plan");
    let throttle = 50_000_000u64;
    let exec_started = Instant::now();
    let report = rt
        .block_on(async {
            Executor::new(
                &admin,
                Settings::default(),
                |e: &kpilot_reassign::Event| eprintln!("  {e}"),
                Cancel::never(),
            )
            .run(
                prepared.journal(None, Some(throttle)),
                &mut MemoryStore::default(),
            )
            .await
        })
        .expect("execute");
    assert_eq!(report.status, RunStatus::Completed);
    let exec_secs = exec_started.elapsed().as_secs_f64();
    // What the brokers hold now (log dirs), against what the plan said.
    let after = rt
        .block_on(read_plan_input(&admin, BrokerChange::Rebalance))
        .expect("state");
    let mut held: BTreeMap<BrokerId, u64> = BTreeMap::new();
    for p in &after.partitions {
        for b in &p.replicas {
            *held.entry(*b).or_insert(0) += p.size_bytes;
        }
    }
    let held_text: Vec<String> = held
        .iter()
        .map(|(b, v)| format!("{}:{:.0}", b, *v as f64 / 1e6))
        .collect();
    let planned_text = prepared
        .summary
        .brokers
        .iter()
        .map(|r| format!("{}:{:.0}", r.broker, r.bytes_after as f64 / 1e6))
        .collect::<Vec<_>>();
    // C. 6 -> 5: drain broker 4.
    let (row, _) = scenario(
        &cluster,
        &rt,
        &admin,
        "remove 1 broker (6 -> 5)",
        BrokerChange::Remove([BrokerId(4)].into()),
    );
    rows.push(row);
    // D. 6 -> 7.
    let seven = add(&mut cluster, 1);
    let (row, _) = scenario(
        &cluster,
        &rt,
        &admin,
        "add 1 broker (6 -> 7)",
        BrokerChange::Add(seven.clone()),
    );
    rows.push(row);
    // E. 6 -> 9.
    let mut nine = seven;
    nine.extend(add(&mut cluster, 2));
    let (row, _) = scenario(
        &cluster,
        &rt,
        &admin,
        "add 3 brokers (6 -> 9)",
        BrokerChange::Add(nine),
    );
    rows.push(row);
    admin.close();

    let mb = |b: u64| format!("{:.1}", b as f64 / 1e6);
    println!(
        "Data: {} partitions in {} topics, {:.1} MB written (x3 replicas = {:.1} MB on disk); Kafka generator run {GENERATOR_RUNS} times per scenario.\n",
        TOPICS.iter().map(|t| t.1).sum::<i32>(),
        TOPICS.len(),
        written as f64 / 1e6,
        written as f64 * 3.0 / 1e6
    );
    println!(
        "| scenario | kpilot MB (partitions) | lower bound MB | kpilot / bound | Kafka generator MB (partitions), per run | kpilot / Kafka (mean) |"
    );
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        let mean = r.kafka_bytes.iter().sum::<u64>() as f64 / r.kafka_bytes.len() as f64;
        let runs: Vec<String> = r
            .kafka_bytes
            .iter()
            .zip(&r.kafka_partitions)
            .map(|(b, p)| format!("{} ({p})", mb(*b)))
            .collect();
        println!(
            "| {} | {} ({}) | {} | {:.3} | {} | {:.3} |",
            r.scenario,
            mb(r.ours_bytes),
            r.ours_partitions,
            mb(r.bound),
            if r.bound == 0 {
                1.0
            } else {
                r.ours_bytes as f64 / r.bound as f64
            },
            runs.join(", "),
            r.ours_bytes as f64 / mean
        );
    }
    println!(
        "\nFinal balance (bytes max/min over brokers; replicas and preferred leaders per broker, min-max; MB per broker):\n"
    );
    println!("| scenario | plan | bytes max/min | replicas | leaders | MB per broker |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | kpilot | {:.2} | {} | {} | {} |",
            r.scenario,
            r.ours.bytes_ratio(),
            r.ours.replicas_range(),
            r.ours.leaders_range(),
            r.ours.mb_per_broker()
        );
        for (i, k) in r.kafka.iter().enumerate() {
            println!(
                "| {} | Kafka run {} | {:.2} | {} | {} | {} |",
                r.scenario,
                i + 1,
                k.bytes_ratio(),
                k.replicas_range(),
                k.leaders_range(),
                k.mb_per_broker()
            );
        }
    }
    println!(
        "\nExecution of plan B on the testbed: {} MB in {} batches at a {} MB/s throttle took {:.1}s (status {:?}); MB per broker planned: {}; held afterwards (log dirs): {}.",
        mb(report.bytes_moved),
        report.batches,
        throttle / 1_000_000,
        exec_secs,
        report.status,
        planned_text.join(" "),
        held_text.join(" ")
    );
    eprintln!("benchmark took {:.0}s", total.elapsed().as_secs_f64());
}
