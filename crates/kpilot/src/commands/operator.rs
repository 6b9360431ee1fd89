//! `kpilot operator`: runs the Kubernetes operator in this process: the controllers chosen
//! with `--controllers`, behind one leader-election Lease, plus the `/metrics` and `/healthz`
//! endpoint. Wiring only; the logic lives in `kpilot-operator`. Performs Kubernetes API,
//! Kafka and network I/O until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args as ClapArgs, ValueEnum};
use kpilot_operator::{KafkaObserver, LeaderElection, LoopSettings, Metrics};
use kpilot_units::Span;

use super::common::CatalogArgs;
use crate::output::usage;

/// Run the Kubernetes operator: keep every KafkaAutopilot's cluster at the right size.
///
/// Watches the KafkaAutopilot resources (kpilot.io/v1alpha1; install the CRD from
/// deploy/crds/ or with the Helm chart in deploy/helm/kpilot/). For each one, every decision
/// interval: validate the spec, read the target (a Strimzi KafkaNodePool or a StatefulSet),
/// observe Kafka, decide with the same policy as `kpilot simulate`, and, in apply mode,
/// carry a vertical move out: patch the KafkaNodePool (and the Karpenter NodePool) and hold
/// Strimzi's roll with its pause annotation while the cluster is unhealthy, or roll a
/// StatefulSet's pods one at a time with the same safety gate as `kpilot roll`. Progress is
/// recorded in the status before every step; a restarted operator resumes. Status, Events
/// and Prometheus metrics say what it measured, decided and did. See docs/operator.md.
///
/// Only the holder of the leader Lease runs the controllers; start two replicas for a quick
/// fail-over.
///
/// Examples:
///   kpilot operator
///   kpilot operator --namespace kafka --metrics-addr 127.0.0.1:8080
///   kpilot operator --no-leader-election --json
#[derive(Debug, ClapArgs)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Controllers to run, comma separated: autopilot (KafkaAutopilot objects) and/or
    /// pvc-releaser (local-PV recovery after node loss, docs/pvc-releaser.md), e.g.
    /// autopilot,pvc-releaser.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "autopilot",
        value_name = "NAME[,...]"
    )]
    pub controllers: Vec<Controller>,

    /// Watch only this namespace (default: every namespace), e.g. kafka.
    #[arg(long, env = "KPILOT_WATCH_NAMESPACE", value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// Most KafkaAutopilots reconciled at the same time, e.g. 8. A long roll or data move of
    /// one cluster then does not hold back the decisions of the others; one autopilot is never
    /// reconciled twice at once.
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub max_concurrent_reconciles: u16,

    /// Address of the /metrics and /healthz endpoint, e.g. 127.0.0.1:8080.
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "ADDR:PORT")]
    pub metrics_addr: SocketAddr,

    /// Run without leader election (a single replica only).
    #[arg(long)]
    pub no_leader_election: bool,

    /// Namespace of the leader-election Lease, e.g. kpilot-system.
    #[arg(
        long,
        env = "POD_NAMESPACE",
        default_value = "default",
        value_name = "NAMESPACE"
    )]
    pub lease_namespace: String,

    /// Name of the leader-election Lease.
    #[arg(long, default_value = "kpilot-operator", value_name = "NAME")]
    pub lease_name: String,

    /// This replica's identity in the Lease (default: the pod name), e.g. kpilot-0.
    #[arg(long, env = "POD_NAME", value_name = "ID")]
    pub identity: Option<String>,

    /// How long the Lease holds without renewal, e.g. 15s.
    #[arg(long, default_value = "15s", value_name = "DURATION")]
    pub lease_duration: Span,

    /// pvc-releaser: StorageClasses whose claims it may release (the opt-in scope, with the
    /// kpilot.io/release-on-node-loss annotation), comma separated, e.g. local-nvme.
    #[arg(long, value_delimiter = ',', value_name = "CLASS[,...]")]
    pub releaser_storage_classes: Vec<String>,

    /// pvc-releaser: how long a node must stay gone before its claims are released, e.g. 5m.
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    pub releaser_grace_period: Span,

    /// pvc-releaser: only publish Events saying what would be released (server-side dry run).
    #[arg(long)]
    pub releaser_dry_run: bool,

    /// pvc-releaser: brokers to reach for the Kafka safety gate (a claim is released only
    /// while the other replicas can serve), e.g. kafka-bootstrap.kafka:9092.
    #[arg(long, value_name = "HOST:PORT[,...]")]
    pub releaser_bootstrap: Option<String>,

    /// pvc-releaser: release without the Kafka safety gate (when Kafka cannot be reached from
    /// the operator). Without it, --releaser-bootstrap is required.
    #[arg(long, conflicts_with = "releaser_bootstrap")]
    pub releaser_no_kafka_check: bool,

    /// Log as JSON lines (default: human-readable lines).
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub catalog: CatalogArgs,
}

/// A controller `kpilot operator` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Controller {
    /// The KafkaAutopilot controller (observe, decide, apply).
    Autopilot,
    /// The PVC releaser: local-PV claims of nodes that are gone (docs/pvc-releaser.md).
    PvcReleaser,
}

/// Runs `kpilot operator`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if args.lease_duration.secs() < 3.0 {
        return Err(usage(anyhow::anyhow!(
            "--lease-duration {} is too short; use at least 3s, e.g. 15s",
            args.lease_duration
        )));
    }
    if args.controllers.contains(&Controller::PvcReleaser) {
        if args.releaser_storage_classes.is_empty() {
            return Err(usage(anyhow::anyhow!(
                "the pvc-releaser needs --releaser-storage-classes (e.g. local-nvme): it only releases claims of the classes you name"
            )));
        }
        if args.releaser_bootstrap.is_none() && !args.releaser_no_kafka_check {
            return Err(usage(anyhow::anyhow!(
                "the pvc-releaser needs --releaser-bootstrap HOST:PORT for its Kafka safety gate, or --releaser-no-kafka-check to release without it"
            )));
        }
    }
    let catalog = args.catalog.load()?;
    init_logging(args.json);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(operate(args, catalog))
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KPILOT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

async fn operate(args: Args, catalog: kpilot_capacity::Catalog) -> anyhow::Result<()> {
    let client = kpilot_operator::client()
        .await
        .context("connecting to Kubernetes (in-cluster service account or KUBECONFIG)")?;
    let metrics = Metrics::new();
    let listener = kpilot_operator::metrics::bind(args.metrics_addr)
        .await
        .with_context(|| format!("listening on --metrics-addr {}", args.metrics_addr))?;
    tracing::info!(addr = %listener.local_addr().unwrap_or(args.metrics_addr), "serving /metrics and /healthz");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(kpilot_operator::metrics::serve(
        listener,
        metrics.clone(),
        {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        },
    ));
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("kpilot-{}", std::process::id()));

    let releaser = if args.controllers.contains(&Controller::PvcReleaser) {
        let mut config = kpilot_releaser::ReleaserConfig::new()
            .with_grace_period(Duration::from_secs_f64(args.releaser_grace_period.secs()))
            .with_dry_run(args.releaser_dry_run);
        for class in &args.releaser_storage_classes {
            config = config.with_storage_class(class.clone());
        }
        if let Some(ns) = &args.namespace {
            config = config.with_namespaces([ns.clone()]);
        }
        let gate = match &args.releaser_bootstrap {
            Some(bootstrap) => {
                let addresses = kpilot_kafka::BrokerAddress::parse_list(bootstrap)
                    .map_err(|e| usage(anyhow::anyhow!("--releaser-bootstrap {bootstrap}: {e}")))?;
                ReleaserGate::Kafka(Box::new(kpilot_kafka::ClientConfig::new(addresses)))
            }
            None => ReleaserGate::None,
        };
        let rm = kpilot_releaser::Metrics::default();
        let render = rm.clone();
        metrics.add_source(std::sync::Arc::new(move || render.render_prometheus()));
        Some((config, gate, rm))
    } else {
        None
    };

    // Every controller of this process, behind one Lease.
    let controllers = {
        let releaser = releaser.clone();
        let client = client.clone();
        let metrics = metrics.clone();
        let catalog = catalog.clone();
        let identity = identity.clone();
        let chosen = args.controllers.clone();
        let namespace = args.namespace.clone();
        let max_concurrent = args.max_concurrent_reconciles;
        move || {
            let mut running: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>> =
                Vec::new();
            for controller in &chosen {
                match controller {
                    Controller::Autopilot => {
                        let ctx = kpilot_operator::context(
                            client.clone(),
                            catalog.clone(),
                            Rc::new(KafkaObserver::new()),
                            metrics.clone(),
                            &identity,
                        );
                        let settings = LoopSettings {
                            namespace: namespace.clone(),
                            max_concurrent: usize::from(max_concurrent),
                            ..LoopSettings::default()
                        };
                        running.push(Box::pin(kpilot_operator::run_autopilot(
                            ctx,
                            settings,
                            std::future::pending(),
                        )));
                    }
                    Controller::PvcReleaser => {
                        if let Some((config, gate, rm)) = releaser.clone() {
                            running.push(Box::pin(run_releaser(client.clone(), config, gate, rm)));
                        }
                    }
                }
            }
            async move {
                kpilot_operator::join_all(running).await;
            }
        }
    };

    if args.no_leader_election {
        metrics.set("kpilot_leader", &[], 1.0);
        tokio::select! {
            () = controllers() => {}
            () = shutdown_signal() => {}
        }
    } else {
        let election = LeaderElection::new(
            client.clone(),
            &args.lease_namespace,
            &args.lease_name,
            &identity,
            Duration::from_secs_f64(args.lease_duration.secs()),
        );
        let m = metrics.clone();
        election
            .run(
                controllers,
                move |leader| m.set("kpilot_leader", &[], if leader { 1.0 } else { 0.0 }),
                shutdown_signal(),
            )
            .await;
    }
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = server.await;
    Ok(())
}

/// The releaser's Kafka safety gate, as configured.
#[derive(Debug, Clone)]
enum ReleaserGate {
    /// Check Kafka before every release.
    Kafka(Box<kpilot_kafka::ClientConfig>),
    /// `--releaser-no-kafka-check`.
    None,
}

/// Runs the PVC releaser until the process stops; a Kafka connection failure or a releaser
/// error is logged and retried after a pause (the leader keeps running the other controllers).
async fn run_releaser(
    client: kube::Client,
    config: kpilot_releaser::ReleaserConfig,
    gate: ReleaserGate,
    metrics: kpilot_releaser::Metrics,
) {
    loop {
        let result = match &gate {
            ReleaserGate::Kafka(kafka) => {
                match kpilot_kafka::AdminClient::connect((**kafka).clone()).await {
                    Ok(admin) => {
                        kpilot_releaser::run(
                            client.clone(),
                            config.clone(),
                            kpilot_releaser::KafkaGate::new(admin),
                            metrics.clone(),
                            std::future::pending(),
                        )
                        .await
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "pvc-releaser: cannot reach Kafka for its safety gate; retrying in 30 s");
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        continue;
                    }
                }
            }
            ReleaserGate::None => {
                kpilot_releaser::run(
                    client.clone(),
                    config.clone(),
                    kpilot_releaser::NoKafkaCheck,
                    metrics.clone(),
                    std::future::pending(),
                )
                .await
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "pvc-releaser stopped; restarting in 10 s");
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}
