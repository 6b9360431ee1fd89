//! `kpilot roll`: the zero-downtime rolling resize. Connects to the cluster, plans the roll,
//! and drives `kpilot_roll`'s executor over the Kafka admin client and a fleet (today: the
//! local testbed fleet), printing progress and a final report. Performs network, file and
//! process I/O through the library crates.

use super::common::kafka_client_config;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use kpilot_cluster::{BrokerId, TopicName};
use kpilot_kafka::ClientConfig;
use kpilot_roll::local::default_testbed_state;
use kpilot_roll::{
    DryRun, FileStore, GateRules, Journal, LocalFleet, LocalSizing, PlanError, RollError,
    RollEvent, RollOptions, RollReport, RollStatus, Roller, Selection, Settings,
};
use kpilot_units::{InstanceType, Span, Throughput};
use serde::Serialize;

use crate::output::{print_json, usage};

/// Resize every broker of a live cluster, one at a time, with zero downtime.
///
/// Every broker is rolled (combined broker+controller nodes included); dedicated KRaft
/// controllers have a size of their own and are rolled only when named with --brokers, in a
/// quorum of at least 3. For each node, in a safe order (unhealthy nodes first, dedicated
/// controllers before brokers, the active controller last): wait until the safety gate opens
/// (every partition it hosts keeps min.insync.replicas in-sync replicas without it; nothing
/// offline or under min ISR; no reassignment running; no other broker down or in log
/// recovery; a majority of the other controllers caught up), stop it gracefully, apply the
/// new size, start it, wait until it is registered and back in the ISR of every partition it
/// hosts, elect the preferred leaders of its partitions, verify, and go on. A final
/// preferred leader election ends the roll. The gate never forces: it waits (bounded by
/// --gate-timeout) and reports what blocks it.
///
/// Every step is recorded in a journal before and after it happens; rerunning the same
/// command after kpilot was interrupted continues at the right node and step, and never stops
/// a second broker while one is down. A roll that halted (a broker that did not come back)
/// continues from the same step once you rerun it.
///
/// With ACLs enforced, the principal needs what `kpilot status` needs plus Alter on the
/// cluster (the elections) and, with --fresh-disks and a rebuild throttle, AlterConfigs on
/// the cluster and the topics (the throttles). That is checked before anything stops: without
/// it the roll is refused, naming the ACL (--dry-run prints the plan, then the same refusal,
/// and exits 1).
///
/// The fleet (what stops, resizes and starts a broker) is the local testbed
/// (`scripts/testbed up`): a size maps to the JVM heap, the processor count and, where the
/// machine allows it, a CPU quota: an emulation, see docs/roll.md. Kubernetes fleets come with
/// the operator.
///
/// Examples:
///   kpilot roll --bootstrap 127.0.0.1:9092 --to m7g.xlarge --dry-run
///   kpilot roll --bootstrap 127.0.0.1:9092 --to m7g.xlarge
///   kpilot roll --bootstrap 127.0.0.1:9092 --to m7g.large --brokers 2,3 --json
///   kpilot roll -b 127.0.0.1:9092 --to m7g.xlarge --accept-topic scratch
///   kpilot roll -b 127.0.0.1:9092 --to im4gn.xlarge --fresh-disks --rebuild-throttle 20MB/s
///   kpilot roll -b 127.0.0.1:9092 --abandon
#[derive(Debug, ClapArgs)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Brokers to contact first, comma separated, e.g. 127.0.0.1:9092,127.0.0.1:9093.
    /// Overrides bootstrap.servers from --command-config. Default: the local testbed's.
    #[arg(long, short = 'b', value_name = "HOST:PORT[,...]")]
    pub bootstrap: Option<String>,

    /// Kafka client properties file with security settings (and optionally
    /// bootstrap.servers), the same file Kafka's tools take as --command-config.
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<PathBuf>,

    /// The instance type every rolled node gets, e.g. m7g.xlarge (see `kpilot catalog`).
    #[arg(long, value_name = "INSTANCE", required_unless_present = "abandon")]
    pub to: Option<InstanceType>,

    /// Roll only these node ids, comma separated, e.g. 1,2,3 (default: every broker; name
    /// dedicated controllers here to roll them).
    #[arg(long, value_delimiter = ',', value_name = "ID[,...]")]
    pub brokers: Vec<i32>,

    /// Accept a topic whose replication factor is at or below its min.insync.replicas (its
    /// partitions are unwritable for acks=all producers while a broker hosting them is down),
    /// e.g. --accept-topic scratch. Without it, such topics refuse the roll. Repeatable.
    #[arg(long = "accept-topic", value_name = "TOPIC")]
    pub accept_topics: Vec<String>,

    /// The journal file, e.g. /var/lib/kpilot/roll.json. Default:
    /// ~/.local/state/kpilot/roll-<cluster-id>.json.
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,

    /// The testbed state file of the local fleet, e.g. .testbed/state.json
    /// (default: $KPILOT_TESTBED_DIR/state.json or <repo>/.testbed/state.json).
    #[arg(long, value_name = "FILE")]
    pub testbed_state: Option<PathBuf>,

    /// Local fleet only: CPU quota in cores per vCPU of the target size, e.g. 0.25 (a 4-vCPU
    /// m7g.xlarge gets one core). Needs a writable cgroup v1 cpu hierarchy; default: no quota.
    #[arg(long, value_name = "CORES")]
    pub cpu_per_vcpu: Option<f64>,

    /// Local fleet only: emulate instance-local disks (local NVMe). Each rolled broker comes
    /// back on an empty disk, as on a new node, and rebuilds every replica it hosts from the
    /// other replicas; the rebuild runs under --rebuild-throttle. A broker-only node gets a
    /// whole new disk (formatted again: new directory id, no metadata log); a combined
    /// broker and controller keeps its identity and metadata log (its quorum state), and a
    /// dedicated controller its whole disk, see docs/roll.md.
    #[arg(long)]
    pub fresh_disks: bool,

    /// With --fresh-disks: the replication throttle of each rebuild, per broker, e.g.
    /// 50MB/s (the default): the follower rate on the rebuilding broker and the leader rate
    /// on the others, set before it stops and lifted once it is back in every ISR. Kafka
    /// throttles only replicas out of the ISR, so the rest of the replication is untouched.
    /// A new roll is refused before anything stops when throttle overrides are set already
    /// (a reassignment's, or left behind): the rebuilds would overwrite and remove them.
    /// 0 runs the rebuilds unthrottled.
    #[arg(long, value_name = "RATE")]
    pub rebuild_throttle: Option<Throughput>,

    /// Print the plan and the gate's verdict for every node, change nothing. Exits 1 when a run
    /// would be refused before it stops anything (a missing ACL).
    #[arg(long)]
    pub dry_run: bool,

    /// Give up the unfinished roll in the journal instead of continuing it: lift the rebuild
    /// throttles it set (a rebuild still running goes on unthrottled; values someone else set
    /// meanwhile are left) and mark it abandoned, so that the next roll starts anew. Stops,
    /// starts and resizes nothing: a broker the roll left down stays down, and the output
    /// names it. Exits 1 when the journal holds no unfinished roll.
    #[arg(
        long,
        conflicts_with_all = ["to", "dry_run", "brokers", "accept_topics", "fresh_disks", "rebuild_throttle", "cpu_per_vcpu"]
    )]
    pub abandon: bool,

    /// How long to wait for the gate to open before halting, e.g. 5m.
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    pub gate_timeout: Span,

    /// How long a started node may take to register, e.g. 5m.
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    pub start_timeout: Span,

    /// How long a node may take to rejoin every ISR, e.g. 30m.
    #[arg(long, default_value = "30m", value_name = "DURATION")]
    pub catch_up_timeout: Span,

    /// Timeout of each admin request including retries, e.g. 30s.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub timeout: Span,

    /// Print the plan (with --dry-run) or the final report as JSON on stdout; progress goes
    /// to stderr either way.
    #[arg(long)]
    pub json: bool,
}

fn duration(span: Span, flag: &str) -> anyhow::Result<Duration> {
    let secs = span.secs();
    if !(secs.is_finite() && secs >= 1.0) {
        return Err(usage(anyhow::anyhow!(
            "{flag} must be at least 1s, got {span}"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The rebuild throttle, bytes per second: `--rebuild-throttle` (default 50 MB/s) with
/// `--fresh-disks`, `None` for 0 or without it.
fn rebuild_throttle(args: &Args) -> anyhow::Result<Option<u64>> {
    let Some(rate) = args
        .rebuild_throttle
        .or(args.fresh_disks.then(|| Throughput::from_mb_per_s(50.0)))
    else {
        return Ok(None);
    };
    if !args.fresh_disks {
        return Err(usage(anyhow::anyhow!(
            "--rebuild-throttle {rate} applies only to rebuilds onto empty disks: add --fresh-disks, or drop it"
        )));
    }
    let bytes = rate.bytes_per_s();
    if !(bytes.is_finite() && bytes >= 0.0) {
        return Err(usage(anyhow::anyhow!(
            "--rebuild-throttle must be a rate of 0 or more, e.g. 50MB/s, got {rate}"
        )));
    }
    if bytes > 0.0 && bytes < 1.0 {
        return Err(usage(anyhow::anyhow!(
            "--rebuild-throttle {rate} is under 1 byte/s: Kafka's throttle is whole bytes per second; use 0 for none"
        )));
    }
    Ok((bytes >= 1.0).then(|| bytes.round() as u64))
}

fn client_config(args: &Args, testbed_state: &std::path::Path) -> anyhow::Result<ClientConfig> {
    kafka_client_config(
        args.bootstrap.as_deref(),
        args.command_config.as_deref(),
        args.timeout,
        Some("kpilot-roll"),
        || {
            kpilot_testbed::ClusterState::load(testbed_state)
                .ok()
                .flatten()
                .map(|s| s.bootstrap)
        },
    )
}

#[derive(Debug, Serialize)]
struct DryRunOutput<'a> {
    dry_run: &'a DryRun,
    journal: String,
}

/// Runs `kpilot roll`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let testbed_state = args
        .testbed_state
        .clone()
        .unwrap_or_else(default_testbed_state);
    let config = client_config(&args, &testbed_state)?;
    let Some(to) = args.to.clone() else {
        return abandon(&args, config);
    };
    let mut rules = GateRules::default();
    for name in &args.accept_topics {
        rules.accepted_topics.insert(
            TopicName::new(name.clone())
                .map_err(|e| usage(anyhow::anyhow!("invalid --accept-topic: {e}")))?,
        );
    }
    let only: Option<BTreeSet<BrokerId>> =
        (!args.brokers.is_empty()).then(|| args.brokers.iter().map(|b| BrokerId(*b)).collect());
    let options = RollOptions {
        target: to.clone(),
        only,
        rules,
        rebuild_throttle_bytes_per_s: rebuild_throttle(&args)?,
    };
    kpilot_capacity::Catalog::builtin()
        .context("the built-in catalog is invalid (a bug)")?
        .instance(&to)
        .map_err(|e| usage(anyhow::anyhow!("invalid --to: {e}")))?;
    if let Some(c) = args.cpu_per_vcpu
        && !(c.is_finite() && c > 0.0)
    {
        return Err(usage(anyhow::anyhow!(
            "--cpu-per-vcpu must be a positive number of cores, got {c}"
        )));
    }
    let settings = Settings {
        gate_timeout: duration(args.gate_timeout, "--gate-timeout")?,
        start_timeout: duration(args.start_timeout, "--start-timeout")?,
        catch_up_timeout: duration(args.catch_up_timeout, "--catch-up-timeout")?,
        ..Settings::default()
    };
    if !testbed_state.is_file() {
        return Err(usage(anyhow::anyhow!(
            "no local testbed state at {}: the only fleet available is the local testbed; \
             start one with `scripts/testbed up` or pass --testbed-state FILE",
            testbed_state.display()
        )));
    }
    let mut fleet = LocalFleet::new(
        &testbed_state,
        LocalSizing {
            cpu_cores_per_vcpu: args.cpu_per_vcpu,
            ..LocalSizing::default()
        },
    )
    .context("cannot use the local testbed fleet")?;
    if args.fresh_disks {
        fleet = fleet.with_fresh_disks();
    }

    let runtime = super::common::runtime()?;
    runtime.block_on(async {
        let admin = super::common::connect_admin(config).await?;
        let cluster_id = admin
            .metadata()
            .await
            .context("cannot read the cluster metadata")?
            .cluster_id
            .clone()
            .unwrap_or_else(|| "unknown".to_string());
        let journal_path = args
            .journal
            .clone()
            .unwrap_or_else(|| FileStore::default_path(&cluster_id));
        let mut store = FileStore::new(&journal_path);
        let started = std::time::Instant::now();
        let progress = |event: &RollEvent| {
            eprintln!("[{:>6.1}s] {event}", started.elapsed().as_secs_f64());
        };
        let mut roller = Roller::new(&admin, &fleet, settings, progress);
        if args.dry_run {
            let dry = roller.dry_run(&options, &store).await.map_err(refused)?;
            if args.json {
                print_json(&DryRunOutput {
                    dry_run: &dry,
                    journal: journal_path.display().to_string(),
                })?;
            } else {
                print!("{}", render_dry_run(&dry, &options));
                println!("journal: {}", journal_path.display());
            }
            // The plan is shown, but a dry run of a roll that would be refused does not pass.
            return match &dry.refused {
                None => Ok(()),
                Some(reason) => Err(anyhow::anyhow!("a run would be refused: {reason}")),
            };
        }
        eprintln!("journal: {}", journal_path.display());
        let result = roller.run(&options, &mut store).await;
        for note in fleet.quota_note() {
            eprintln!("note: {note}");
        }
        admin.close();
        let (report, error) = match result {
            Ok(report) => (report, None),
            Err(e) if is_bad_input(&e) => return Err(refused(e)),
            Err(e) => match kpilot_roll::JournalStore::load(&store) {
                Ok(Some(journal)) => (RollReport::from_journal(&journal), Some((e, journal))),
                _ => return Err(e.into()),
            },
        };
        if args.json {
            print_json(&report)?;
        } else {
            print!("{}", report.render());
        }
        match error {
            None => Ok(()),
            Some((e, journal)) => Err(stopped(e, &journal, &journal_path)),
        }
    })
}

/// Whether the roll was refused for its input (a node not in the cluster): exit 2.
fn is_bad_input(e: &RollError) -> bool {
    matches!(e, RollError::Plan(PlanError::UnknownNode { .. }))
}

/// The error of a roll refused before it started: a usage error (exit 2) for bad input.
fn refused(e: RollError) -> anyhow::Error {
    if is_bad_input(&e) { usage(e) } else { e.into() }
}

/// The error of a roll that stopped, after its report was printed. When this run halted it,
/// the report and the progress above carry the reason already, so the error only says what
/// to do.
fn stopped(e: RollError, journal: &Journal, journal_path: &std::path::Path) -> anyhow::Error {
    let rerun = format!(
        "fix the cause and rerun the same command to continue (journal {})",
        journal_path.display()
    );
    match &journal.status {
        RollStatus::Halted { node, reason } if *reason == e.to_string() => anyhow::anyhow!(
            "the roll halted{} for the reason above; {rerun}",
            node.map(|n| format!(" at node {n}")).unwrap_or_default()
        ),
        _ => anyhow::Error::from(e).context(format!("the roll stopped; {rerun}")),
    }
}

/// `kpilot roll --abandon`: gives up the unfinished roll in the journal.
fn abandon(args: &Args, config: ClientConfig) -> anyhow::Result<()> {
    let runtime = super::common::runtime()?;
    runtime.block_on(async {
        let admin = super::common::connect_admin(config).await?;
        let journal_path = match &args.journal {
            Some(path) => path.clone(),
            None => {
                let metadata = admin
                    .metadata()
                    .await
                    .context("cannot read the cluster metadata")?;
                FileStore::default_path(metadata.cluster_id.as_deref().unwrap_or("unknown"))
            }
        };
        let mut store = FileStore::new(&journal_path);
        let result =
            kpilot_roll::abandon(&admin, &mut store, &journal_path.display().to_string()).await;
        admin.close();
        let abandoned = result?;
        if args.json {
            print_json(&abandoned)?;
        } else {
            print!("{abandoned}");
            println!("journal: {}", journal_path.display());
        }
        Ok(())
    })
}

fn render_dry_run(dry: &DryRun, options: &RollOptions) -> String {
    let mut out = String::new();
    if dry.plan.steps.is_empty() {
        out.push_str(&format!(
            "Plan: nothing to roll: every selected node is already {}\n",
            dry.plan.target
        ));
    } else {
        out.push_str(&format!(
            "Plan: roll {} node(s) to {}\n",
            dry.plan.steps.len(),
            dry.plan.target
        ));
    }
    let ids = |list: &[kpilot_cluster::BrokerId]| {
        list.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !dry.plan.already_at_target.is_empty() {
        out.push_str(&format!(
            "  already {}: {}\n",
            dry.plan.target,
            ids(&dry.plan.already_at_target)
        ));
    }
    if !dry.plan.controllers_not_named.is_empty() {
        out.push_str(&format!(
            "  dedicated controllers, not rolled (name them with --brokers to roll them): {}\n",
            ids(&dry.plan.controllers_not_named)
        ));
    }
    for (i, (step, verdict)) in dry.plan.steps.iter().zip(&dry.verdicts).enumerate() {
        out.push_str(&format!(
            "  {}. node {} ({}, {}), now {}: {}\n",
            i + 1,
            step.id,
            format!("{:?}", step.role).to_lowercase(),
            step.position,
            step.current_size
                .as_ref()
                .map_or("unknown size".to_string(), ToString::to_string),
            if verdict.is_open() {
                "gate open".to_string()
            } else {
                format!("gate CLOSED: {verdict}")
            }
        ));
    }
    if dry.refused.is_some() {
        out.push_str("a run would be REFUSED before it stops anything (the reason follows)\n");
    }
    if let Some(j) = &dry.unfinished {
        let at = j
            .in_flight()
            .map(|n| format!("node {} at {}", n.id, n.phase))
            .unwrap_or_else(|| "between nodes".to_string());
        let requested = Selection::of(options.only.as_ref());
        let continues =
            j.target == options.target && j.selection.as_ref().is_none_or(|s| *s == requested);
        let what = if continues {
            "a run continues it"
        } else if j.in_flight().is_some() {
            "a run with these arguments is refused until it is finished (or `kpilot roll --abandon`)"
        } else {
            "a run with these arguments replaces it"
        };
        out.push_str(&format!(
            "unfinished roll{} to {} in the journal ({at}); {what}\n",
            j.selection
                .as_ref()
                .map(|s| format!(" of {s}"))
                .unwrap_or_default(),
            j.target
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn throttle(argv: &[&str]) -> anyhow::Result<Option<u64>> {
        let args = Cli::try_parse_from(
            ["roll", "--to", "im4gn.xlarge"]
                .into_iter()
                .chain(argv.iter().copied()),
        )
        .expect("parses")
        .args;
        rebuild_throttle(&args)
    }

    #[test]
    fn the_rebuild_throttle_applies_with_fresh_disks_only() {
        assert_eq!(throttle(&[]).expect("none"), None);
        assert_eq!(
            throttle(&["--fresh-disks"]).expect("default"),
            Some(50_000_000)
        );
        assert_eq!(
            throttle(&["--fresh-disks", "--rebuild-throttle", "20MB/s"]).expect("set"),
            Some(20_000_000)
        );
        assert_eq!(
            throttle(&["--fresh-disks", "--rebuild-throttle", "0MB/s"]).expect("off"),
            None
        );
        let alone = throttle(&["--rebuild-throttle", "20MB/s"]).expect_err("without fresh disks");
        assert!(alone.to_string().contains("add --fresh-disks"), "{alone}");
        let tiny = throttle(&["--fresh-disks", "--rebuild-throttle", "0.5B/s"]).expect_err("tiny");
        assert!(tiny.to_string().contains("under 1 byte/s"), "{tiny}");
    }

    #[test]
    fn a_node_not_in_the_cluster_is_a_usage_error() {
        let bad = RollError::Plan(PlanError::UnknownNode {
            id: BrokerId(9),
            known: (1..=4).map(BrokerId).collect(),
        });
        let e = refused(bad);
        assert_eq!(crate::output::exit_code_for(&e), crate::output::EXIT_USAGE);
        assert_eq!(
            e.to_string(),
            "node 9 is not part of the cluster (its nodes are 1, 2, 3, 4); name only these with --brokers"
        );
        let other = refused(RollError::ThrottlesSet {
            found: vec!["broker 1 leader.replication.throttled.rate=1".to_string()],
        });
        assert_eq!(
            crate::output::exit_code_for(&other),
            crate::output::EXIT_FAILURE
        );
    }

    #[test]
    fn a_halt_is_told_once() {
        let halt = || RollError::NotBack {
            node: BrokerId(2),
            waited: Duration::from_secs(300),
            detail: "not registered".to_string(),
        };
        let mut journal = Journal::new(
            None,
            "m7g.xlarge".parse().expect("size"),
            Vec::new(),
            vec![(BrokerId(2), None)],
            0,
        );
        journal.halt(Some(BrokerId(2)), halt().to_string(), 1);
        let path = std::path::Path::new("/tmp/roll.json");
        let e = stopped(halt(), &journal, path);
        assert_eq!(
            format!("{e:#}"),
            "the roll halted at node 2 for the reason above; fix the cause and rerun the same command to continue (journal /tmp/roll.json)"
        );
        // A refusal is not in the journal: the error carries it.
        let e = stopped(
            RollError::ThrottlesSet {
                found: vec!["topic t leader.replication.throttled.replicas=*".to_string()],
            },
            &journal,
            path,
        );
        assert!(format!("{e:#}").contains("throttled.replicas=*"), "{e:#}");
    }

    #[test]
    fn abandon_takes_no_size_and_nothing_of_a_new_roll() {
        let parse = |argv: &[&str]| {
            Cli::try_parse_from(std::iter::once("roll").chain(argv.iter().copied()))
        };
        let args = parse(&["--abandon"]).expect("parses").args;
        assert!(args.abandon && args.to.is_none());
        parse(&["--abandon", "--journal", "/tmp/j.json", "--json"]).expect("parses");
        for extra in [
            &["--to", "m7g.xlarge"][..],
            &["--dry-run"],
            &["--brokers", "1"],
            &["--fresh-disks"],
        ] {
            let argv: Vec<&str> = std::iter::once("--abandon")
                .chain(extra.iter().copied())
                .collect();
            let e = parse(&argv).expect_err("conflicts");
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::ArgumentConflict,
                "{extra:?}: {e}"
            );
        }
        let e = parse(&[]).expect_err("a roll needs --to");
        assert_eq!(
            e.kind(),
            clap::error::ErrorKind::MissingRequiredArgument,
            "{e}"
        );
    }
}
