//! `kpilot rebalance`: plans a minimal-movement reassignment for added or removed brokers (or
//! a full rebalance) with `kpilot-rebalance`, and applies it with `kpilot-reassign`'s executor
//! under a replication throttle, with a journal to resume from, Ctrl-C / `--cancel`, and a
//! drain check for removed brokers. Performs network and file I/O through the library crates.

use super::common::{fraction, kafka_client_config};
use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use kpilot_capacity::{BrokerCapacity, Workload};
use kpilot_cluster::BrokerId;
use kpilot_kafka::{AdminClient, ClientConfig};
use kpilot_reassign::prepare::Summary;
use kpilot_reassign::{
    Cancel, Event, ExecuteError, Executor, FileStore, Journal, JournalStore, ReassignPort, Report,
    RunStatus, Settings, check_new_run, check_writes, other_reassignments, prepare,
    read_plan_input,
};
use kpilot_rebalance::{BatchLimits, BrokerChange, ThrottleChoice, choose_throttle};
use kpilot_units::{ByteSize, InstanceType, Span, Throughput};
use serde::Serialize;

use crate::output::{Table, print_json, usage};

/// Add or remove brokers (or rebalance) by moving as little data as possible, throttled.
///
/// Plans which partition replicas to move so that every broker ends with about the same bytes,
/// replicas and preferred leaderships, moving close to the fewest bytes any balanced plan
/// could (the plan reports its lower bound), then applies it: in batches of at most
/// --max-per-broker partition moves per broker, under a replication throttle on every broker
/// and on the moving replicas (set before the first batch, removed after the last, and also
/// removed when the run fails or is cancelled), ending with a preferred leader election.
/// Removed brokers are drained and reported removable only once they hold no replica.
///
/// The throttle: --throttle if given; otherwise, with --instance, the smallest per-broker
/// headroom the capacity model leaves at --ingress (capacity x --target-utilization minus the
/// current load, over network, disk and EBS link); otherwise 50 MB/s.
///
/// A new run is refused, before it plans or writes a journal, while reassignments are in
/// progress (wait for them, or cancel them with kafka-reassign-partitions.sh --cancel), and
/// while replication-throttle overrides are set on the brokers or topics it would throttle
/// (it would overwrite, then delete them: remove them with kafka-configs.sh --delete-config).
///
/// Every step is saved in a journal. Ctrl-C (or SIGTERM) cancels: in-flight reassignments are
/// rolled back and throttles removed. Rerunning the same command resumes an interrupted, failed or
/// cancelled run at its first unfinished batch; --cancel rolls back and cleans up a run whose
/// process died.
///
/// With ACLs enforced, the principal needs what `kpilot status` needs, plus Alter and
/// AlterConfigs on the cluster and AlterConfigs on every topic it moves. A topic it may not
/// describe makes it refuse to plan. Before its first write a run asks the brokers, with
/// requests that change nothing, whether its writes would be allowed, and stops naming the
/// missing ACL if not (docs/kafka-admin.md, "Permissions").
///
/// Examples:
///   kpilot rebalance -b 127.0.0.1:9092 --add-brokers 4 --dry-run
///   kpilot rebalance -b 127.0.0.1:9092 --add-brokers 4,5,6 --throttle 50MB/s
///   kpilot rebalance -b 127.0.0.1:9092 --remove-brokers 3 --instance m7g.large --ingress 40MB/s
///   kpilot rebalance -b 127.0.0.1:9092 --full --json
///   kpilot rebalance -b 127.0.0.1:9092 --cancel
#[derive(Debug, ClapArgs)]
#[command(verbatim_doc_comment)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["add_brokers", "remove_brokers", "full", "cancel"])))]
pub struct Args {
    /// Brokers to contact first, comma separated, e.g. 127.0.0.1:9092,127.0.0.1:9093.
    /// Overrides bootstrap.servers from --command-config.
    #[arg(long, short = 'b', value_name = "HOST:PORT[,...]")]
    pub bootstrap: Option<String>,

    /// Kafka client properties file with security settings (and optionally
    /// bootstrap.servers), the same file Kafka's tools take as --command-config.
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<PathBuf>,

    /// New, empty (already started) brokers to move data onto, e.g. 4,5,6.
    #[arg(long, value_delimiter = ',', value_name = "ID[,...]")]
    pub add_brokers: Vec<i32>,

    /// Brokers to drain completely before removing them, e.g. 3.
    #[arg(long, value_delimiter = ',', value_name = "ID[,...]")]
    pub remove_brokers: Vec<i32>,

    /// Rebalance the current brokers (no broker added or removed).
    #[arg(long)]
    pub full: bool,

    /// Cancel the run recorded in the journal: roll back its in-flight reassignments and
    /// remove its throttles (e.g. after the process running it died).
    #[arg(long)]
    pub cancel: bool,

    /// Print the plan (moves, bytes, lower bound, balance per broker), change nothing. Also
    /// checks whether a run would be refused (reassignments or throttle overrides in
    /// progress, a missing ACL): if so, says why (`refused` in --json) and exits 1.
    #[arg(long)]
    pub dry_run: bool,

    /// Replication throttle per broker, e.g. 50MB/s (overrides the capacity model).
    #[arg(long, value_name = "RATE")]
    pub throttle: Option<Throughput>,

    /// The brokers' instance type, e.g. m7g.large: derive the throttle from its headroom.
    #[arg(long, value_name = "INSTANCE")]
    pub instance: Option<InstanceType>,

    /// Sustained disk write throughput per broker for the capacity model, e.g. 250MB/s
    /// (a gp3 volume's provisioned throughput).
    #[arg(long, default_value = "250MB/s", value_name = "RATE")]
    pub disk_throughput: Throughput,

    /// Current cluster ingress for the capacity model, e.g. 40MB/s.
    #[arg(long, default_value = "0MB/s", value_name = "RATE")]
    pub ingress: Throughput,

    /// Fraction of capacity producers plus the copy may use, e.g. 0.8.
    #[arg(
        long,
        allow_negative_numbers = true,
        default_value_t = 0.8,
        value_name = "FRACTION",
        value_parser = fraction
    )]
    pub target_utilization: f64,

    /// Most partition moves into or out of one broker at once, e.g. 5.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub max_per_broker: usize,

    /// Most partition moves per batch, e.g. 50.
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub max_per_batch: usize,

    /// The journal file, e.g. /var/lib/kpilot/rebalance.json. Default:
    /// ~/.local/state/kpilot/rebalance-<cluster-id>.json.
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,

    /// Timeout of each admin request including retries, e.g. 30s.
    #[arg(long, default_value = "30s", value_name = "DURATION")]
    pub timeout: Span,

    /// Print the plan (with --dry-run) or the report as JSON on stdout; progress goes to
    /// stderr either way.
    #[arg(long)]
    pub json: bool,
}

/// Where the throttle came from.
#[derive(Debug, Serialize)]
struct ThrottleInfo {
    /// Bytes per second.
    bytes_per_s: u64,
    /// `--throttle`, `capacity-model` or `default`.
    source: &'static str,
    /// The capacity model's reasoning, when it chose.
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<ThrottleChoice>,
}

#[derive(Debug, Serialize)]
struct Output<'a> {
    dry_run: bool,
    journal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<&'a Summary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    throttle: Option<&'a ThrottleInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<&'a Report>,
    /// For a dry run: why a run would be refused before its first write (reassignments or
    /// throttle overrides in progress, a missing ACL).
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<String>,
}

const DEFAULT_THROTTLE: f64 = 50.0;

fn client_config(args: &Args) -> anyhow::Result<ClientConfig> {
    kafka_client_config(
        args.bootstrap.as_deref(),
        args.command_config.as_deref(),
        args.timeout,
        Some("kpilot-rebalance"),
        || None,
    )
}

fn change(args: &Args) -> Option<BrokerChange> {
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<BTreeSet<_>>();
    if !args.add_brokers.is_empty() {
        Some(BrokerChange::Add(ids(&args.add_brokers)))
    } else if !args.remove_brokers.is_empty() {
        Some(BrokerChange::Remove(ids(&args.remove_brokers)))
    } else if args.full {
        Some(BrokerChange::Rebalance)
    } else {
        None
    }
}

fn describe(change: &BrokerChange) -> String {
    let list = |ids: &BTreeSet<BrokerId>| {
        ids.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    match change {
        BrokerChange::Add(ids) => format!("add broker(s) {}", list(ids)),
        BrokerChange::Remove(ids) => format!("remove broker(s) {}", list(ids)),
        BrokerChange::Rebalance => "full rebalance".to_string(),
    }
}

/// How the throttle is chosen, checked before the cluster is asked anything.
enum ThrottleRule {
    /// `--throttle`.
    Fixed(Throughput),
    /// Neither `--throttle` nor `--instance`.
    Default,
    /// `--instance`: the capacity model's headroom of that broker.
    Model(BrokerCapacity, Workload),
}

fn throttle_rule(args: &Args) -> anyhow::Result<ThrottleRule> {
    if let Some(rate) = args.throttle {
        if rate.mb_per_s() < 0.1 {
            return Err(usage(anyhow::anyhow!(
                "--throttle {rate} is too low to finish a move; use at least 0.1MB/s"
            )));
        }
        return Ok(ThrottleRule::Fixed(rate));
    }
    let Some(instance) = &args.instance else {
        return Ok(ThrottleRule::Default);
    };
    let catalog =
        kpilot_capacity::Catalog::builtin().context("the built-in catalog is invalid (a bug)")?;
    let instance = catalog
        .instance(instance)
        .map_err(|e| usage(anyhow::anyhow!("invalid --instance: {e}")))?;
    let workload = Workload::new(3, 2, 1.0, args.target_utilization)
        .map_err(|e| usage(anyhow::anyhow!("invalid --target-utilization: {e}")))?;
    let capacity = BrokerCapacity {
        storage: args.disk_throughput,
        storage_link: Some(instance.ebs),
        network: instance.network,
    };
    Ok(ThrottleRule::Model(capacity, workload))
}

fn throttle(args: &Args, rule: &ThrottleRule, brokers: usize) -> anyhow::Result<ThrottleInfo> {
    let (capacity, workload) = match rule {
        ThrottleRule::Fixed(rate) => {
            return Ok(ThrottleInfo {
                bytes_per_s: rate.bytes_per_s().round() as u64,
                source: "--throttle",
                model: None,
            });
        }
        ThrottleRule::Default => {
            return Ok(ThrottleInfo {
                bytes_per_s: (DEFAULT_THROTTLE * 1e6) as u64,
                source: "default",
                model: None,
            });
        }
        ThrottleRule::Model(capacity, workload) => (capacity, workload),
    };
    let choice = choose_throttle(
        capacity,
        u32::try_from(brokers.max(1)).unwrap_or(u32::MAX),
        workload,
        args.ingress,
    )?;
    Ok(ThrottleInfo {
        bytes_per_s: choice.rate.bytes_per_s() as u64,
        source: "capacity-model",
        model: Some(choice),
    })
}

/// Runs `kpilot rebalance`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let config = client_config(&args)?;
    if args.max_per_broker == 0 || args.max_per_batch == 0 {
        return Err(usage(anyhow::anyhow!(
            "--max-per-broker and --max-per-batch must be at least 1"
        )));
    }
    let limits = BatchLimits {
        max_per_broker: args.max_per_broker,
        max_per_batch: args.max_per_batch,
    };
    let rule = throttle_rule(&args)?;
    let runtime = super::common::runtime()?;
    runtime.block_on(async {
        let admin = super::common::connect_admin(config).await?;
        let result = rebalance(&args, &admin, limits, &rule).await;
        admin.close();
        result
    })
}

async fn rebalance(
    args: &Args,
    admin: &AdminClient,
    limits: BatchLimits,
    rule: &ThrottleRule,
) -> anyhow::Result<()> {
    let metadata = admin
        .metadata()
        .await
        .context("cannot read the cluster metadata")?;
    let cluster_id = metadata.cluster_id.clone();
    let journal_path = args
        .journal
        .clone()
        .unwrap_or_else(|| FileStore::default_path(cluster_id.as_deref().unwrap_or("unknown")));
    let mut store = FileStore::new(&journal_path);
    let existing = store.load().map_err(usage)?;
    if let Some(j) = &existing
        && let (Some(recorded), Some(id)) = (&j.cluster_id, &cluster_id)
        && recorded != id
    {
        return Err(usage(anyhow::anyhow!(
            "the journal {} belongs to cluster {recorded}, but {} is cluster {id}; pass the right --journal or --bootstrap",
            journal_path.display(),
            args.bootstrap.as_deref().unwrap_or("the bootstrap server")
        )));
    }
    let started = std::time::Instant::now();
    let progress = |e: &Event| eprintln!("[{:>6.1}s] {e}", started.elapsed().as_secs_f64());
    let (handle, cancel) = Cancel::new();

    if args.cancel {
        let Some(journal) = existing else {
            return Err(usage(anyhow::anyhow!(
                "no rebalance journal at {}: nothing to cancel (pass --journal FILE if it is elsewhere)",
                journal_path.display()
            )));
        };
        let report = Executor::new(admin, Settings::default(), progress, Cancel::never())
            .cancel(journal, &mut store)
            .await
            .context("cancelling the recorded rebalance failed")?;
        return print_report(args, &journal_path, None, None, &report);
    }
    let change = change(args).ok_or_else(|| {
        usage(anyhow::anyhow!(
            "choose one of --add-brokers, --remove-brokers, --full or --cancel"
        ))
    })?;
    if let BrokerChange::Add(ids) = &change {
        for id in ids {
            if !metadata.brokers.contains_key(id) {
                return Err(usage(anyhow::anyhow!(
                    "broker {id} is not registered in the cluster: start it first (it joins empty), then rerun"
                )));
            }
        }
    }

    let resume = existing.filter(|j| j.status != RunStatus::Completed);
    if let Some(journal) = &resume
        && journal.change != change
    {
        return Err(usage(anyhow::anyhow!(
            "an unfinished rebalance ({}) is recorded in {}: rerun it with the same flags to resume, run --cancel to roll it back, or move the journal away",
            describe(&journal.change),
            journal_path.display()
        )));
    }
    if resume.is_some() && args.dry_run {
        eprintln!(
            "note: an unfinished rebalance is recorded in {}; without --dry-run this command resumes it rather than this fresh plan",
            journal_path.display()
        );
    }
    let throttle = throttle(args, rule, metadata.brokers.len())?;
    // Before planning: a plan made from someone else's half-moved reassignments would be
    // wrong, and must not be saved to be resumed later. A dry run still tries to plan.
    let mut moving_now = None;
    if resume.is_none() {
        let moving = ReassignPort::ongoing(admin)
            .await
            .context("cannot read the reassignments in progress")?;
        if !moving.is_empty() {
            let e = ExecuteError::OtherReassignments {
                partitions: moving.iter().map(ToString::to_string).collect(),
            };
            if !args.dry_run {
                return Err(anyhow::Error::from(e).context(REFUSED));
            }
            moving_now = Some(e);
        }
    }
    // What a dry run checks against: a run would resume this one.
    let recorded = resume.clone().filter(|_| args.dry_run);
    let (journal, summary): (Journal, Option<Summary>) = match resume {
        Some(mut journal) if !args.dry_run => {
            eprintln!(
                "resuming the {} recorded in {}",
                describe(&journal.change),
                journal_path.display()
            );
            journal.throttle_bytes_per_s = Some(throttle.bytes_per_s);
            (journal, None)
        }
        _ => {
            let planned =
                match read_plan_input(admin, change.clone()).await {
                    Ok(input) => prepare(&input, limits).map_err(usage),
                    Err(e) => Err(anyhow::Error::from(e)
                        .context("cannot read the partitions and their sizes")),
                };
            let prepared = match (planned, &moving_now) {
                (Ok(prepared), _) => prepared,
                // The half-moved state may not even plan (a new broker holding replicas).
                (Err(e), Some(refusal)) => {
                    return Err(anyhow::anyhow!(
                        "a run would be refused: {refusal} (no plan could be made either: {e:#})"
                    ));
                }
                (Err(e), None) => return Err(e),
            };
            let journal = prepared.journal(cluster_id.clone(), Some(throttle.bytes_per_s));
            (journal, Some(prepared.summary))
        }
    };
    if args.dry_run {
        let summary = summary.context("a dry run always plans")?;
        // The same requests a run makes before its first write: they change nothing. With an
        // unfinished run recorded, a run resumes it: its own moves and throttles are no
        // reason to refuse.
        let refused = match &recorded {
            None if moving_now.is_some() => moving_now,
            None => check_new_run(admin, &journal).await.err(),
            Some(recorded) => match other_reassignments(admin, recorded).await {
                Ok(partitions) if partitions.is_empty() => None,
                Ok(partitions) => Some(ExecuteError::OtherReassignments { partitions }),
                Err(source) => Some(ExecuteError::Step {
                    step: "reading the reassignments in progress",
                    source,
                    cleanup: Vec::new(),
                }),
            },
        }
        .map(|e| e.to_string());
        let refused = match refused {
            Some(reason) => Some(reason),
            None => check_writes(admin, &journal)
                .await
                .err()
                .map(|e| e.to_string()),
        };
        if args.json {
            print_json(&Output {
                dry_run: true,
                journal: journal_path.display().to_string(),
                plan: Some(&summary),
                throttle: Some(&throttle),
                report: None,
                refused: refused.clone(),
            })?;
        } else {
            print!("{}", render_plan(&summary, &throttle));
            if refused.is_some() {
                println!("a run would be REFUSED before it writes anything (the reason follows)");
            }
        }
        // The plan is shown, but a dry run of a rebalance that would be refused does not pass.
        return match refused {
            None => Ok(()),
            Some(reason) => Err(anyhow::anyhow!("a run would be refused: {reason}")),
        };
    }
    let new_run = journal.is_new();
    if new_run {
        // Also checked by the executor before it saves the journal; here so that the refusal
        // reads as one, not as a run to resume.
        check_new_run(admin, &journal)
            .await
            .map_err(|e| anyhow::Error::from(e).context(REFUSED))?;
    }
    if let Some(summary) = &summary {
        eprint!("{}", render_plan(summary, &throttle));
    }
    eprintln!("journal: {}", journal_path.display());
    // Registered now (not on the task's first poll), so a signal during the first batch is
    // never missed. SIGTERM too: that is how Kubernetes stops a pod.
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        eprintln!("interrupted: cancelling (in-flight moves are rolled back, throttles removed)");
        handle.cancel();
    });
    let result = Executor::new(admin, Settings::default(), progress, cancel)
        .run(journal, &mut store)
        .await;
    match result {
        Ok(report) => {
            print_report(
                args,
                &journal_path,
                summary.as_ref(),
                Some(&throttle),
                &report,
            )?;
            if report.status == RunStatus::Cancelled {
                anyhow::bail!(
                    "the rebalance was cancelled; in-flight moves were rolled back and the throttle removed; rerun the same command to resume (journal {})",
                    journal_path.display()
                );
            }
            Ok(())
        }
        Err(e @ (ExecuteError::OtherReassignments { .. } | ExecuteError::ThrottlesSet { .. }))
            if new_run =>
        {
            Err(anyhow::Error::from(e).context(REFUSED))
        }
        Err(e) => {
            let note = stopped_note(&e, &journal_path);
            Err(anyhow::Error::from(e).context(note))
        }
    }
}

/// The context of a new run refused before it changed anything.
const REFUSED: &str =
    "the rebalance was refused before it changed anything (no journal was written)";

/// What to do after a run stopped with `e`. Resuming the journal repeats its plan, which
/// cannot move data it did not plan for: a replica someone placed on a removed broker during
/// the run, or a topic hidden from the metadata. Those need a new plan.
fn stopped_note(e: &ExecuteError, journal: &std::path::Path) -> String {
    let journal = journal.display();
    match e {
        ExecuteError::NotDrained { .. } => format!(
            "every move of this plan was made, but a removed broker holds a replica it did not plan for; move the journal ({journal}) away and run the same command to plan the moves left"
        ),
        ExecuteError::StillStores { hidden, .. } if *hidden > 0 => format!(
            "every move of this plan was made, but a removed broker stores partitions the metadata does not show; after granting the ACL, move the journal ({journal}) away and run the same command to plan their moves"
        ),
        ExecuteError::StillStores { .. } => format!(
            "every move of this plan was made, but a removed broker has not deleted the logs moved off it yet; rerun the same command to check again (journal {journal})"
        ),
        _ => format!(
            "the rebalance stopped; fix the cause and rerun the same command to resume (journal {journal})"
        ),
    }
}

fn print_report(
    args: &Args,
    journal: &std::path::Path,
    plan: Option<&Summary>,
    throttle: Option<&ThrottleInfo>,
    report: &Report,
) -> anyhow::Result<()> {
    if args.json {
        return print_json(&Output {
            dry_run: false,
            journal: journal.display().to_string(),
            plan,
            throttle,
            report: Some(report),
            refused: None,
        });
    }
    let status = match &report.status {
        RunStatus::Completed => "completed".to_string(),
        RunStatus::Cancelled => "cancelled".to_string(),
        RunStatus::Running => "running".to_string(),
        RunStatus::Failed(why) => format!("failed: {why}"),
    };
    let mut out = format!(
        "Rebalance ({}): {status}\n  {}/{} batch(es), {} partition(s), {} of {} moved in {:.1}s\n",
        describe(&report.change),
        report.batches_done,
        report.batches,
        report.partitions_moved,
        ByteSize::from_bytes(report.bytes_moved as f64),
        ByteSize::from_bytes(report.bytes_total as f64),
        report.elapsed_secs
    );
    if let Some(e) = &report.election {
        out.push_str(&format!(
            "  preferred leaders: {} elected, {} already leading, {} failed\n",
            e.elected,
            e.not_needed,
            e.failed.len()
        ));
    }
    if !report.removable.is_empty() {
        let ids: Vec<String> = report.removable.iter().map(ToString::to_string).collect();
        out.push_str(&format!(
            "  broker(s) {} hold no replica: safe to remove\n",
            ids.join(",")
        ));
    }
    if report.throttle_left {
        out.push_str("  WARNING: throttle configs may remain; run `kpilot rebalance --cancel`\n");
    }
    crate::output::print_text(&out)
}

fn render_plan(s: &Summary, throttle: &ThrottleInfo) -> String {
    let mb = |b: u64| ByteSize::from_bytes(b as f64).to_string();
    let mut out = format!(
        "Plan: {}\n  move {} partition(s) ({} replica(s)), {}; lower bound {} (ratio {:.2}); {} leader-only change(s)\n  {} batch(es); balanced: {}; bytes max/min after: {:.2}\n",
        describe(&s.change),
        s.partitions_to_move,
        s.replicas_to_move,
        mb(s.bytes_to_move),
        mb(s.lower_bound_bytes),
        s.ratio_to_bound,
        s.leader_only_changes,
        s.batches,
        if s.balanced { "yes" } else { "no" },
        s.bytes_max_over_min_after,
    );
    out.push_str(&format!(
        "  throttle: {:.1} MB/s per broker ({})\n",
        throttle.bytes_per_s as f64 / 1e6,
        match (&throttle.model, throttle.source) {
            (Some(m), _) => format!("capacity model: {} headroom", m.bottleneck),
            (None, "default") => {
                "default; pass --instance and --ingress to derive it from the capacity model"
                    .to_string()
            }
            (None, source) => source.to_string(),
        }
    ));
    out.push_str("\n  (before -> after; leaders are preferred leaders)\n");
    let mut table = Table::new(["BROKER", "REPLICAS", "LEADERS", "BYTES"]);
    for r in &s.brokers {
        table.row([
            r.broker.to_string(),
            format!("{} -> {}", r.replicas_before, r.replicas_after),
            format!("{} -> {}", r.leaders_before, r.leaders_after),
            format!("{} -> {}", mb(r.bytes_before), mb(r.bytes_after)),
        ]);
    }
    out.push_str(&table.render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_left_with_data_the_plan_did_not_see_asks_for_a_new_plan_not_a_resume() {
        let journal = std::path::Path::new("/tmp/j.json");
        let hidden = ExecuteError::StillStores {
            broker: BrokerId(4),
            partitions: vec!["secret-0".into()],
            hidden: 1,
        };
        let lingering = ExecuteError::StillStores {
            broker: BrokerId(4),
            partitions: vec!["orders-0".into()],
            hidden: 0,
        };
        let placed = ExecuteError::NotDrained {
            broker: BrokerId(4),
            replicas: 1,
        };
        for e in [&hidden, &placed] {
            let note = stopped_note(e, journal);
            assert!(
                note.contains("move the journal (/tmp/j.json) away"),
                "{note}"
            );
            assert!(!note.contains("resume"), "{note}");
        }
        assert!(stopped_note(&hidden, journal).contains("after granting the ACL"));
        assert!(
            stopped_note(&lingering, journal).contains("rerun the same command to check again")
        );
    }
}
