//! `kpilot status`: reads a live cluster through the Kafka admin client and shows its health:
//! healthy or what is wrong, a per-broker table, which brokers could be stopped now, and the
//! metadata quorum. Performs network I/O (to the brokers) and prints.

use super::common::kafka_client_config;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use kpilot_cluster::{HealthSnapshot, HealthStatus, Severity};
use kpilot_kafka::{AdminClient, ClientConfig, SnapshotGap};
use kpilot_units::{ByteSize, Span};
use serde::Serialize;

use crate::output::{Table, print_json};

/// Show the health of a live Kafka cluster.
///
/// Reads the cluster metadata, every topic's min.insync.replicas, each broker's log
/// directories, the KRaft quorum and ongoing reassignments, and reports: whether the cluster
/// is healthy (or what is wrong), leaders, replicas and size per broker, which brokers could be
/// stopped right now without taking any partition below min.insync.replicas (and, for the
/// others, which partitions block them), and the controller quorum.
///
/// Security settings come from a Kafka client properties file, the same file Kafka's tools
/// take as --command-config: security.protocol, sasl.mechanism, sasl.jaas.config,
/// ssl.truststore.location (PEM)... Passwords are never printed.
///
/// With ACLs enforced, the principal needs Describe and DescribeConfigs on the cluster and on
/// every topic. A part it may not read is reported as "not read", naming the ACL. A topic it may
/// not describe is reported as not visible, and no broker storing it is called safe to stop
/// (docs/kafka-admin.md, "Permissions").
///
/// Examples:
///   kpilot status --bootstrap 127.0.0.1:9092
///   kpilot status --bootstrap kafka-0:9093 --command-config client.properties
///   kpilot status --command-config client.properties --json | jq .health.safe_to_stop
#[derive(Debug, ClapArgs)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Brokers to contact first, comma separated, e.g. 127.0.0.1:9092,127.0.0.1:9093.
    /// Overrides bootstrap.servers from --command-config.
    #[arg(long, short = 'b', value_name = "HOST:PORT[,...]")]
    pub bootstrap: Option<String>,

    /// Kafka client properties file with security settings (and optionally bootstrap.servers),
    /// e.g. client.properties containing security.protocol=SASL_SSL, sasl.mechanism=SCRAM-SHA-512,
    /// sasl.jaas.config=... and ssl.truststore.location=ca.pem.
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<PathBuf>,

    /// Give up after this long, e.g. 30s or 2m (covers connecting, requests and retries).
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub timeout: Span,

    /// Print the health snapshot as JSON on stdout instead of tables.
    #[arg(long)]
    pub json: bool,

    /// Exit with code 1 (after printing the report) when the verdict is this bad or worse, for
    /// scripts and CI checks, e.g. --fail-on critical or --fail-on degraded.
    #[arg(long, value_enum, value_name = "VERDICT")]
    pub fail_on: Option<FailOn>,
}

/// Verdicts `--fail-on` can trip on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// Something needs attention, or worse.
    Degraded,
    /// Data unavailable or not durable as configured.
    Critical,
}

impl FailOn {
    fn trips(self, status: HealthStatus) -> bool {
        match self {
            FailOn::Degraded => status >= HealthStatus::Degraded,
            FailOn::Critical => status >= HealthStatus::Critical,
        }
    }
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
struct StatusReport<'a> {
    /// The bootstrap servers used.
    bootstrap: Vec<String>,
    /// How long reading the cluster took, in milliseconds.
    read_ms: u128,
    /// Parts of the cluster state that could not be read.
    gaps: &'a [SnapshotGap],
    /// The analysis.
    health: &'a HealthSnapshot,
}

/// Runs `kpilot status`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let config = client_config(&args)?;
    let timeout = Duration::from_secs_f64(args.timeout.secs());
    let runtime = super::common::runtime()?;
    let bootstrap: Vec<String> = config.bootstrap.iter().map(ToString::to_string).collect();
    let snapshot = runtime.block_on(async {
        tokio::time::timeout(timeout, async {
            let admin = AdminClient::connect(config).await?;
            let snapshot = admin.snapshot().await;
            admin.close();
            snapshot
        })
        .await
    });
    let snapshot = match snapshot {
        Ok(result) => result.with_context(|| {
            format!(
                "cannot read the cluster's state through {}",
                bootstrap.join(",")
            )
        })?,
        Err(_) => anyhow::bail!(
            "reading the cluster through {} did not finish within {}; check the address and \
             security settings, or raise --timeout",
            bootstrap.join(","),
            args.timeout
        ),
    };
    let health = snapshot.analyze();
    if args.json {
        print_json(&StatusReport {
            bootstrap,
            read_ms: snapshot.elapsed.as_millis(),
            gaps: &snapshot.gaps,
            health: &health,
        })?;
    } else {
        crate::output::print_text(&render(&health, &snapshot.gaps))?;
    }
    match args.fail_on {
        Some(level) if level.trips(health.status) => anyhow::bail!(
            "the cluster is {} (--fail-on {})",
            verdict_word(health.status),
            match level {
                FailOn::Degraded => "degraded",
                FailOn::Critical => "critical",
            }
        ),
        _ => Ok(()),
    }
}

/// The verdict as the report prints it.
fn verdict_word(status: HealthStatus) -> &'static str {
    match status {
        HealthStatus::Healthy => "HEALTHY",
        HealthStatus::Degraded => "DEGRADED",
        HealthStatus::Critical => "CRITICAL",
    }
}

/// Resolves the client configuration: the properties file, then the flags over it.
fn client_config(args: &Args) -> anyhow::Result<ClientConfig> {
    kafka_client_config(
        args.bootstrap.as_deref(),
        args.command_config.as_deref(),
        args.timeout,
        None,
        || None,
    )
}

/// How many partitions a "blocked by" line lists.
const BLOCKER_EXAMPLES: usize = 3;

/// The human report.
fn render(health: &HealthSnapshot, gaps: &[SnapshotGap]) -> String {
    let mut out = String::new();
    let t = &health.totals;
    let verdict = verdict_word(health.status);
    out.push_str(&format!(
        "Cluster {}: {verdict}\n",
        health.cluster_id.as_deref().unwrap_or("(unknown id)")
    ));
    out.push_str(&format!(
        "  {} live broker(s){}, {} topic(s), {} partition(s), {} replica(s), {} on disk; active controller: {}\n",
        t.live_brokers,
        if t.down_brokers > 0 {
            format!(" + {} down", t.down_brokers)
        } else {
            String::new()
        },
        t.topics,
        t.partitions,
        t.replicas,
        ByteSize::from_bytes(t.bytes_on_disk as f64),
        health
            .controller
            .map_or("unknown".to_string(), |c| c.to_string()),
    ));
    for finding in &health.findings {
        let label = match finding.severity {
            Severity::Critical => "CRITICAL",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        out.push_str(&format!("  {label}: {}\n", finding.message));
    }
    for gap in gaps {
        out.push_str(&format!("  not read: {}: {}\n", gap.what, gap.error));
    }

    out.push('\n');
    let mut table = Table::new([
        "BROKER",
        "ADDRESS",
        "RACK",
        "STATE",
        "LEADERS",
        "PREFERRED",
        "REPLICAS",
        "OUT-OF-SYNC",
        "SIZE",
        "SAFE TO STOP",
    ]);
    for b in &health.brokers {
        let state = if !b.live {
            "DOWN".to_string()
        } else if b.controller {
            "up (controller)".to_string()
        } else {
            "up".to_string()
        };
        let safe = if !b.live {
            "-".to_string()
        } else if b.safe_to_stop {
            "yes".to_string()
        } else {
            format!("no ({} partitions)", b.blocking_partitions)
        };
        table.row([
            b.id.to_string(),
            b.address.clone().unwrap_or_else(|| "-".to_string()),
            b.rack.clone().unwrap_or_else(|| "-".to_string()),
            state,
            b.leaders.to_string(),
            b.preferred_leaders.to_string(),
            b.replicas.to_string(),
            b.out_of_sync_replicas.to_string(),
            b.bytes_on_disk.map_or("-".to_string(), |s| {
                ByteSize::from_bytes(s as f64).to_string()
            }),
            safe,
        ]);
    }
    out.push_str(&table.render());

    let c = &health.counts;
    out.push_str(&format!(
        "\nPartitions: {} under-replicated, {} under min ISR, {} at min ISR, {} offline, {} not led by their preferred replica, {} being reassigned\n",
        c.under_replicated,
        c.under_min_isr,
        c.at_min_isr,
        c.offline,
        c.leader_not_preferred,
        c.reassigning
    ));

    if !health.stop_blockers.is_empty() {
        out.push_str("\nBrokers that must not be stopped now:\n");
        for (broker, blockers) in &health.stop_blockers {
            let examples: Vec<String> = blockers
                .iter()
                .take(BLOCKER_EXAMPLES)
                .map(|b| format!("{} ({})", b.topic_partition, b.reason))
                .collect();
            out.push_str(&format!(
                "  broker {broker}: {}\n",
                kpilot_cluster::sample_list(&examples, blockers.len())
            ));
        }
    }

    if let Some(q) = &health.quorum {
        let members = |list: &[kpilot_cluster::QuorumMemberHealth]| {
            list.iter()
                .map(|m| match m.lag {
                    Some(lag) => format!("{} (lag {lag})", m.id),
                    None => format!("{} (lag unknown)", m.id),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "\nMetadata quorum: leader {} (epoch {}), high watermark {}; voters: {}",
            q.leader.map_or("none".to_string(), |l| l.to_string()),
            q.leader_epoch,
            q.high_watermark,
            members(&q.voters)
        ));
        if !q.observers.is_empty() {
            out.push_str(&format!("; observers: {}", members(&q.observers)));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use kpilot_cluster::fixtures::uniform_cluster;
    use kpilot_cluster::{BrokerId, analyze};
    use kpilot_kafka::BrokerAddress;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Args {
        Cli::try_parse_from(std::iter::once("status").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    #[test]
    fn healthy_cluster_renders_a_table() {
        let health = analyze(&uniform_cluster(3, &[("orders", 6, 3, 2)]));
        let text = render(&health, &[]);
        assert!(
            text.starts_with("Cluster fixture-cluster: HEALTHY\n"),
            "{text}"
        );
        assert!(text.contains("BROKER  ADDRESS"), "{text}");
        assert!(text.contains("up (controller)"), "{text}");
        assert!(
            text.contains("Partitions: 0 under-replicated, 0 under min ISR"),
            "{text}"
        );
        assert!(!text.contains("must not be stopped"), "{text}");
        assert!(
            text.contains("Metadata quorum: leader 1 (epoch 1)"),
            "{text}"
        );
    }

    #[test]
    fn crashed_broker_renders_what_is_wrong() {
        let state = uniform_cluster(3, &[("orders", 6, 3, 2)]).with_broker_stopped(BrokerId(3));
        let gaps = [SnapshotGap {
            what: "log dirs of broker 2".to_string(),
            error: "timed out".to_string(),
        }];
        let text = render(&analyze(&state), &gaps);
        assert!(
            text.starts_with("Cluster fixture-cluster: CRITICAL\n"),
            "{text}"
        );
        assert!(
            text.contains("  CRITICAL: broker 3 is down; 6 replica(s)"),
            "{text}"
        );
        assert!(text.contains("DOWN"), "{text}");
        assert!(text.contains("no (6 partitions)"), "{text}");
        assert!(
            text.contains("  not read: log dirs of broker 2: timed out"),
            "{text}"
        );
        assert!(
            text.contains(
                "  broker 1: orders-0 (1 in-sync replica(s) would remain, min.insync.replicas is 2)"
            ),
            "{text}"
        );
        assert!(text.contains(", ... (3 more)"), "{text}");
    }

    #[test]
    fn flags_override_the_properties_file_and_bad_input_is_a_usage_error() {
        let dir = std::env::temp_dir().join(format!("kpilot-status-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("client.properties");
        std::fs::write(
            &file,
            "bootstrap.servers=file-host:9092\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.username=u\nsasl.password=p\nlinger.ms=5\n",
        )
        .unwrap();
        let file_arg = file.to_str().unwrap();
        let config = client_config(&parse(&["--command-config", file_arg])).unwrap();
        assert_eq!(
            config.bootstrap,
            vec![BrokerAddress::new("file-host", 9092)]
        );
        let config = client_config(&parse(&[
            "--command-config",
            file_arg,
            "--bootstrap",
            "flag-host:1,flag-host:2",
            "--timeout",
            "5s",
        ]))
        .unwrap();
        assert_eq!(config.bootstrap.len(), 2);
        assert_eq!(config.api_timeout, Duration::from_secs(5));
        assert_eq!(config.connect_timeout, Duration::from_secs(5));
        assert!(config.sasl.is_some());

        let usage_code = |args: &[&str]| {
            let err = client_config(&parse(args)).unwrap_err();
            (crate::output::exit_code_for(&err), err.to_string())
        };
        let (code, text) = usage_code(&["--bootstrap", "no-port"]);
        assert_eq!(code, 2);
        assert!(text.contains("invalid --bootstrap `no-port`"), "{text}");
        let (code, text) = usage_code(&[]);
        assert_eq!(code, 2);
        assert!(text.contains("no bootstrap servers"), "{text}");
        std::fs::write(&file, "security.protocol=SASL_SSL\n").unwrap();
        let (code, text) = usage_code(&["--command-config", file_arg, "-b", "h:1"]);
        assert_eq!(code, 2);
        assert!(text.contains("needs SASL credentials"), "{text}");
        let (code, text) = usage_code(&["--command-config", "/nonexistent/client.properties"]);
        assert_eq!(code, 2);
        assert!(text.contains("/nonexistent/client.properties"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
