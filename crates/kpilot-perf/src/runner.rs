//! Runs a [`Workload`] against a real cluster with librdkafka: creates the topics, starts the
//! consumer groups, drives the producer threads phase by phase with open-loop pacing, closes a
//! reporting window every interval, applies the stop rule, and returns the run's report.
//! Performs I/O (network, threads, clock).
//!
//! Each producer thread owns a `ThreadedProducer` (a `BaseProducer` plus a thread that blocks
//! on its event queue), so delivery reports are timed as soon as librdkafka hands them over,
//! whatever the sending thread is doing; sends never block. Each record carries a small boxed
//! stamp (phase, intended and actual send time) as its delivery opaque. The `FutureProducer`
//! is avoided on purpose: it sleeps when the queue is full, which would distort the very
//! latency this tool measures. Send-side and acknowledgement-side measurements go to two
//! recorders, one per thread, so the two threads never wait for each other.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use thiserror::Error;

use crate::payload::{PayloadPool, read_stamp, write_stamp};
use crate::report::{DepletionReport, PhaseTotals, RunReport, StepReport, WindowReport};
use crate::schedule::{self, DepletionDetector, Pacer, Phase, PhaseKind};
use crate::stats::{ConsumerStats, ProducerStats, Recorder, micros_between};
use crate::workload::{STAMP_LEN, Workload};

/// How long admin and metadata requests may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for every consumer group to be assigned all partitions.
const ASSIGN_TIMEOUT: Duration = Duration::from_secs(30);
/// Most records one producer thread sends before it checks the clock and phase again.
const SEND_BURST: u64 = 1024;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port,...` of the cluster.
    pub bootstrap: String,
    /// Properties for every client (security settings, for example).
    pub client_properties: Vec<(String, String)>,
    /// Keep the topics the run created (they are deleted by default).
    pub keep_topics: bool,
}

/// Receives progress while a run goes on (the CLI prints it).
pub trait Observer {
    /// A phase starts.
    fn phase_started(&mut self, workload: &Workload, phase: &Phase, steps: usize);
    /// A reporting window closed.
    fn window(&mut self, workload: &Workload, window: &WindowReport);
    /// Something worth telling the user (setup steps, waits, warnings).
    fn note(&mut self, text: &str);
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct Quiet;

impl Observer for Quiet {
    fn phase_started(&mut self, _: &Workload, _: &Phase, _: usize) {}
    fn window(&mut self, _: &Workload, _: &WindowReport) {}
    fn note(&mut self, _: &str) {}
}

/// Why a run could not be carried out. (Failed records are not errors of the run: they are
/// counted in the report.)
#[derive(Debug, Error)]
pub enum RunError {
    /// The workload did not pass its checks.
    #[error(transparent)]
    Invalid(#[from] crate::workload::InvalidSetting),
    /// librdkafka refused the client configuration.
    #[error("cannot create the {role} client for {bootstrap}: {source}")]
    CreateClient {
        /// Which client (admin, producer 2, consumer g1/0...).
        role: String,
        /// The bootstrap servers.
        bootstrap: String,
        /// librdkafka's error.
        #[source]
        source: Box<KafkaError>,
    },
    /// Topic creation failed.
    #[error("cannot create topic {topic}: {reason}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// What the cluster said.
        reason: String,
    },
    /// The topic exists with another shape than the workload asks for.
    #[error(
        "topic {topic} already exists with {actual} partitions but the workload asks for {wanted}: delete it, choose another --topic, or set partitions: {actual}"
    )]
    TopicMismatch {
        /// The topic.
        topic: String,
        /// Partitions it has.
        actual: usize,
        /// Partitions asked for.
        wanted: i32,
    },
    /// Metadata for a topic could not be read in time.
    #[error("cannot read the metadata of topic {topic} from {bootstrap}: {reason}")]
    DescribeTopic {
        /// The topic.
        topic: String,
        /// The bootstrap servers.
        bootstrap: String,
        /// What went wrong.
        reason: String,
    },
    /// A consumer could not subscribe.
    #[error("consumer {consumer} cannot subscribe to {topics:?}: {source}")]
    Subscribe {
        /// Which consumer.
        consumer: String,
        /// The topics.
        topics: Vec<String>,
        /// librdkafka's error.
        #[source]
        source: Box<KafkaError>,
    },
    /// A worker thread could not be started.
    #[error("cannot start thread {name}: {source}")]
    SpawnThread {
        /// The thread's name.
        name: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A worker thread panicked (a bug).
    #[error("thread {name} panicked (a bug in kpilot)")]
    ThreadPanicked {
        /// The thread's name.
        name: String,
    },
}

/// The run's clock: monotonic nanoseconds since the start, and the wall time of the start for
/// the stamps consumers read.
#[derive(Debug, Clone, Copy)]
struct Clock {
    t0: Instant,
    unix_t0_us: u64,
}

impl Clock {
    fn start() -> Self {
        let unix_t0_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Self {
            t0: Instant::now(),
            unix_t0_us,
        }
    }

    fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }

    fn unix_us(&self, ns: u64) -> u64 {
        self.unix_t0_us + ns / 1000
    }

    fn secs(&self, ns: u64) -> f64 {
        ns as f64 / 1e9
    }
}

/// What the coordinator tells the producer threads.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Signal {
    /// Send nothing (between phases, before the first).
    Idle,
    /// Send for this phase.
    Run {
        phase: u32,
        /// Records per second for all producer threads together; `None` = unthrottled.
        rate: Option<f64>,
        start_ns: u64,
        duration: Duration,
    },
    /// Flush and exit.
    Done,
}

/// The coordinator's current [`Signal`], versioned so producers notice a change cheaply.
#[derive(Debug)]
struct Board {
    generation: AtomicU64,
    signal: Mutex<Signal>,
}

impl Board {
    fn new() -> Self {
        Self {
            generation: AtomicU64::new(0),
            signal: Mutex::new(Signal::Idle),
        }
    }

    fn publish(&self, signal: Signal) -> u64 {
        *lock(&self.signal) = signal;
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }

    fn read(&self) -> (u64, Signal) {
        let g = self.generation.load(Ordering::Acquire);
        (g, *lock(&self.signal))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked; the data is plain counters.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Tells every worker thread to stop when dropped (producers flush, with their bound, first).
struct StopWorkers {
    consumers: Arc<AtomicBool>,
    board: Arc<Board>,
}

impl Drop for StopWorkers {
    fn drop(&mut self) {
        self.board.publish(Signal::Done);
        self.consumers.store(true, Ordering::Release);
    }
}

/// The delivery opaque of every record.
#[derive(Debug)]
struct Stamp {
    phase: u32,
    intended_ns: u64,
    sent_ns: u64,
}

struct ProducerCtx {
    clock: Clock,
    /// Acknowledgement-side measurements (service time, corrected latency, delivery errors).
    recorder: Arc<Mutex<Recorder<ProducerStats>>>,
}

impl ClientContext for ProducerCtx {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::info!(target: "kpilot_perf::client", "producer client: {error}: {reason}");
    }
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        tracing::debug!(target: "kpilot_perf::client", "librdkafka {level:?} {fac}: {message}");
    }
}

impl ProducerContext for ProducerCtx {
    type DeliveryOpaque = Box<Stamp>;

    fn delivery(&self, result: &DeliveryResult<'_>, stamp: Box<Stamp>) {
        let now = self.clock.now_ns();
        let mut r = lock(&self.recorder);
        match result {
            Ok(_) => r.record_ack(
                stamp.phase,
                micros_between(stamp.sent_ns, now),
                micros_between(stamp.intended_ns, now),
            ),
            Err((e, _)) => r.record_error(stamp.phase, &error_name(e)),
        }
    }
}

struct ConsumerCtx;

impl ClientContext for ConsumerCtx {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::info!(target: "kpilot_perf::client", "consumer client: {error}: {reason}");
    }
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        tracing::debug!(target: "kpilot_perf::client", "librdkafka {level:?} {fac}: {message}");
    }
}

impl ConsumerContext for ConsumerCtx {}

fn error_name(e: &KafkaError) -> String {
    match e.rdkafka_error_code() {
        Some(code) => format!("{code:?}"),
        None => e.to_string(),
    }
}

/// librdkafka's version string.
pub fn librdkafka_version() -> String {
    rdkafka::util::get_rdkafka_version().1
}

/// Runs one workload to the end (all steps, or until the stop rule), then flushes, waits for
/// consumers to catch up, and deletes the topics it created unless asked to keep them.
pub fn run(
    workload: &Workload,
    target: &Target,
    observer: &mut dyn Observer,
) -> Result<RunReport, RunError> {
    workload.validate()?;
    let tag = run_tag();
    let topics = workload.topic_names();
    let admin = admin_client(target)?;
    observer.note(&format!(
        "topics {} ({} partitions, replication factor {}) on {}",
        topics.join(", "),
        workload.partitions,
        workload.replication_factor,
        target.bootstrap
    ));
    let created = ensure_topics(&admin, target, workload, &topics)?;
    let result = run_on_topics(
        workload,
        target,
        observer,
        &topics,
        !created.is_empty(),
        tag,
    );
    if !created.is_empty() && !target.keep_topics {
        let names: Vec<&str> = created.iter().map(String::as_str).collect();
        let opts = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
        match block_on(admin.delete_topics(&names, &opts)) {
            Ok(results) => {
                for r in results {
                    if let Err((topic, code)) = r {
                        observer.note(&format!("could not delete topic {topic}: {code:?}"));
                    }
                }
            }
            Err(e) => observer.note(&format!("could not delete topics {names:?}: {e}")),
        }
    }
    result
}

fn run_on_topics(
    workload: &Workload,
    target: &Target,
    observer: &mut dyn Observer,
    topics: &[String],
    fresh_topics: bool,
    tag: u32,
) -> Result<RunReport, RunError> {
    let phases = schedule::phases(workload);
    let started_unix_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let clock = Clock::start();
    let stop_consumers = Arc::new(AtomicBool::new(false));
    let board = Arc::new(Board::new());
    // Whatever happens below (an early error included), the worker threads are told to stop.
    let _stop = StopWorkers {
        consumers: Arc::clone(&stop_consumers),
        board: Arc::clone(&board),
    };
    let record_size = workload.record_size;

    // Consumers first, so they are assigned before the first record is sent.
    let mut consumers = Vec::new();
    for g in 0..workload.consumer_groups {
        for c in 0..workload.consumers_per_group {
            consumers.push(start_consumer(
                workload,
                target,
                topics,
                fresh_topics,
                tag,
                g,
                c,
                clock,
                &stop_consumers,
            )?);
        }
    }
    if !consumers.is_empty() {
        wait_for_assignment(workload, &consumers, observer);
    }

    let pool = Arc::new(PayloadPool::new(
        record_size as usize,
        workload.compressibility,
        u64::from(tag),
    ));
    let mut producers = Vec::new();
    for i in 0..workload.producers {
        producers.push(start_producer(
            workload, target, topics, i, clock, tag, &board, &pool,
        )?);
    }

    let mut windows: Vec<WindowReport> = Vec::new();
    let mut stopped_early = None;
    let mut depletion_report = None;
    let mut totals: Vec<PhaseTotals> = vec![PhaseTotals::default(); phases.len()];
    let mut last_phase = None;
    let interval_ns = workload.interval.as_nanos() as u64;
    for phase in &phases {
        last_phase = Some(phase.id);
        observer.phase_started(workload, phase, workload.steps.len());
        let rate = phase.rate.messages_per_s(record_size);
        let start_ns = clock.now_ns();
        let generation = board.publish(Signal::Run {
            phase: phase.id,
            rate,
            start_ns,
            duration: phase.duration,
        });
        wait_for_generation(&producers, generation);
        let mut detector = match (phase.kind, workload.credit_depletion) {
            (PhaseKind::Depletion, Some(spec)) => Some(DepletionDetector::new(spec)),
            _ => None,
        };
        let end_ns = start_ns + phase.duration.as_nanos() as u64;
        // Records scheduled in the phase but not sent by its end (the client or cluster fell
        // behind) are still sent, late, for at most the flush timeout: their latency counts.
        let drain_deadline = end_ns + workload.flush_timeout.as_nanos() as u64;
        let mut draining = false;
        let mut window_start = start_ns;
        let t = &mut totals[phase.id as usize];
        loop {
            let limit = if draining { drain_deadline } else { end_ns };
            let tick = (window_start + interval_ns).min(limit);
            if draining {
                // Close the window early once every producer caught up.
                while clock.now_ns() < tick && !caught_up(&producers) {
                    thread::sleep(Duration::from_millis(5));
                }
            } else {
                sleep_until(&clock, tick);
            }
            let now = clock.now_ns();
            let (p, c) = take_windows(&producers, &consumers);
            let mut window = WindowReport::new(
                clock.secs(window_start),
                clock.secs(now),
                phase,
                rate,
                record_size,
                &p,
                &c,
            );
            window.draining = draining;
            (window.late_records, window.oldest_late_us) = lateness(&producers);
            observer.window(workload, &window);
            if !draining {
                t.acked_during += window.acked;
            }
            let acked_bytes_per_s = window.acked_mb_per_s * 1e6;
            windows.push(window);
            window_start = now;
            if let Some(d) = detector.as_mut() {
                d.observe(Duration::from_nanos(now - start_ns), acked_bytes_per_s);
                if d.finished() {
                    break;
                }
            }
            if !draining && now >= end_ns {
                t.duration_s = clock.secs(now - start_ns);
                t.sent_on_time = phase_sent(&producers, phase.id);
                let behind: u64 = producers
                    .iter()
                    .map(|p| p.progress.remaining.load(Ordering::Acquire))
                    .sum();
                if rate.is_none() || behind == 0 {
                    break;
                }
                observer.note(&format!(
                    "{behind} records of this phase not sent yet; sending them late (at most {:.0} s more)",
                    workload.flush_timeout.as_secs_f64()
                ));
                draining = true;
            } else if draining && (now >= drain_deadline || caught_up(&producers)) {
                break;
            }
        }
        let generation = board.publish(Signal::Idle);
        wait_for_generation(&producers, generation);
        let end = clock.now_ns();
        if t.duration_s == 0.0 {
            t.duration_s = clock.secs(end - start_ns);
        }
        if let Some(d) = detector {
            let report = DepletionReport {
                state: d.state(),
                duration_s: clock.secs(end - start_ns),
                peak_mb_per_s: d.peak_bytes_per_s() / 1e6,
            };
            observer.note(&format!(
                "credit depletion {:?} after {:.0} s (peak {:.1} MB/s)",
                report.state, report.duration_s, report.peak_mb_per_s
            ));
            depletion_report = Some(report);
        }
        if let Some(r) = rate {
            t.requested = Some(schedule::requested(r, workload.producers, phase.duration));
        }
        if phase.kind == PhaseKind::Measure
            && let Some(requested) = t.requested
        {
            let sent = t.sent_on_time;
            if schedule::below_stop_ratio(sent, requested, workload.stop_ratio) {
                let reason = format!(
                    "step {} sent {sent} of {requested} requested records on time ({:.2}%, below the stop ratio {}): the cluster or the client is saturated",
                    phase.step.map(|s| s + 1).unwrap_or(0),
                    100.0 * sent as f64 / requested as f64,
                    workload.stop_ratio
                );
                observer.note(&reason);
                stopped_early = Some(reason);
                break;
            }
        }
    }

    // Flush: producers wait (bounded) for records in flight, then exit.
    board.publish(Signal::Done);
    observer.note("flushing records in flight");
    let mut producer_phase_stats: Vec<ProducerStats> = vec![ProducerStats::default(); phases.len()];
    let mut unacknowledged = 0u64;
    for p in producers {
        let name = p.name.clone();
        let left = p
            .handle
            .join()
            .map_err(|_| RunError::ThreadPanicked { name })?;
        unacknowledged += left;
        for r in &p.recorders {
            let rec = lock(r);
            for (i, merged) in producer_phase_stats.iter_mut().enumerate() {
                if let Some(s) = rec.phase(i as u32) {
                    merged.merge(s);
                }
            }
        }
    }
    let acked_total: u64 = producer_phase_stats.iter().map(|s| s.acked).sum();

    // Consumers: wait (bounded) until each group has read every acknowledged record.
    let mut consumer_phase_stats: Vec<ConsumerStats> = vec![ConsumerStats::default(); phases.len()];
    if !consumers.is_empty() {
        let want = acked_total * u64::from(workload.consumer_groups);
        let deadline = Instant::now() + workload.flush_timeout;
        loop {
            let got: u64 = consumers
                .iter()
                .map(|c| c.stamped.load(Ordering::Relaxed) as u64)
                .sum();
            if got >= want {
                break;
            }
            if Instant::now() >= deadline {
                observer.note(&format!(
                    "consumers read {got} of {want} records before the flush timeout"
                ));
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        stop_consumers.store(true, Ordering::Release);
        for c in consumers {
            let name = c.name.clone();
            c.handle
                .join()
                .map_err(|_| RunError::ThreadPanicked { name })?;
            let rec = lock(&c.recorder);
            for (i, merged) in consumer_phase_stats.iter_mut().enumerate() {
                if let Some(s) = rec.phase(i as u32) {
                    merged.merge(s);
                }
            }
        }
    }

    let steps = phases
        .iter()
        .filter(|p| p.kind == PhaseKind::Measure && last_phase.is_some_and(|l| p.id <= l))
        .map(|p| {
            StepReport::new(
                p,
                workload,
                &totals[p.id as usize],
                &producer_phase_stats[p.id as usize],
                &consumer_phase_stats[p.id as usize],
            )
        })
        .collect::<Vec<_>>();
    let mut steps = steps;
    if stopped_early.is_some()
        && let Some(last) = steps.last_mut()
    {
        last.saturated = true;
    }
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut totals = ProducerStats::default();
    for s in &producer_phase_stats {
        totals.merge(s);
    }
    for (k, v) in totals.errors.iter().chain(totals.send_errors.iter()) {
        *errors.entry(k.clone()).or_default() += v;
    }
    Ok(RunReport {
        name: workload.name.clone(),
        labels: workload.labels.clone(),
        workload: workload.clone(),
        topics: topics.to_vec(),
        started_unix_s,
        elapsed_s: clock.secs(clock.now_ns()),
        steps,
        stopped_early,
        depletion: depletion_report,
        sent: totals.sent,
        acked: totals.acked,
        errors,
        unacknowledged,
        consumed: consumer_phase_stats.iter().map(|s| s.consumed).sum(),
        windows,
    })
}

struct ProducerHandle {
    name: String,
    handle: JoinHandle<u64>,
    /// Send-side and acknowledgement-side recorders.
    recorders: [Arc<Mutex<Recorder<ProducerStats>>>; 2],
    progress: Arc<Progress>,
}

/// Where a producer thread stands, for the coordinator.
#[derive(Debug, Default)]
struct Progress {
    /// The last board generation the thread acted on.
    seen: AtomicU64,
    /// Records of the current phase's schedule not sent yet (throttled phases).
    remaining: AtomicU64,
    /// Records already due but not sent yet.
    late: AtomicU64,
    /// How late the oldest of them is, nanoseconds.
    oldest_late_ns: AtomicU64,
}

fn caught_up(producers: &[ProducerHandle]) -> bool {
    producers
        .iter()
        .all(|p| p.progress.remaining.load(Ordering::Acquire) == 0 || p.handle.is_finished())
}

/// Records due but not sent, and how late the oldest is (microseconds), over all producers.
fn lateness(producers: &[ProducerHandle]) -> (u64, u64) {
    let late = producers
        .iter()
        .map(|p| p.progress.late.load(Ordering::Acquire))
        .sum();
    let oldest = producers
        .iter()
        .map(|p| p.progress.oldest_late_ns.load(Ordering::Acquire))
        .max()
        .unwrap_or(0);
    (late, oldest / 1000)
}

fn phase_sent(producers: &[ProducerHandle], phase: u32) -> u64 {
    producers
        .iter()
        .map(|p| {
            lock(&p.recorders[0])
                .phase(phase)
                .map(|s| s.sent + s.send_errors.values().sum::<u64>())
                .unwrap_or(0)
        })
        .sum()
}

struct ConsumerHandle {
    name: String,
    group: u32,
    handle: JoinHandle<()>,
    recorder: Arc<Mutex<Recorder<ConsumerStats>>>,
    assigned: Arc<AtomicUsize>,
    stamped: Arc<AtomicUsize>,
}

fn take_windows(
    producers: &[ProducerHandle],
    consumers: &[ConsumerHandle],
) -> (ProducerStats, ConsumerStats) {
    let mut p = ProducerStats::default();
    for h in producers {
        for r in &h.recorders {
            let w = lock(r).take_window();
            p.merge(&w);
        }
    }
    let mut c = ConsumerStats::default();
    for h in consumers {
        let w = lock(&h.recorder).take_window();
        c.merge(&w);
    }
    (p, c)
}

fn wait_for_generation(producers: &[ProducerHandle], generation: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while producers
        .iter()
        .any(|p| p.progress.seen.load(Ordering::Acquire) < generation && !p.handle.is_finished())
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_micros(200));
    }
}

fn sleep_until(clock: &Clock, ns: u64) {
    loop {
        let now = clock.now_ns();
        if now >= ns {
            return;
        }
        thread::sleep(Duration::from_nanos((ns - now).min(50_000_000)));
    }
}

fn base_config(target: &Target) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &target.bootstrap);
    for (k, v) in &target.client_properties {
        c.set(k, v);
    }
    c
}

fn admin_client(target: &Target) -> Result<AdminClient<DefaultClientContext>, RunError> {
    base_config(target)
        .set("client.id", "kpilot-perf-admin")
        .create()
        .map_err(|source| RunError::CreateClient {
            role: "admin".into(),
            bootstrap: target.bootstrap.clone(),
            source: Box::new(source),
        })
}

/// Creates missing topics; checks existing ones; waits until every partition has a leader.
/// Returns the topics it created.
fn ensure_topics(
    admin: &AdminClient<DefaultClientContext>,
    target: &Target,
    workload: &Workload,
    topics: &[String],
) -> Result<Vec<String>, RunError> {
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            NewTopic::new(
                t,
                workload.partitions,
                TopicReplication::Fixed(workload.replication_factor),
            )
        })
        .collect();
    let opts = AdminOptions::new()
        .operation_timeout(Some(ADMIN_TIMEOUT))
        .request_timeout(Some(ADMIN_TIMEOUT));
    let results =
        block_on(admin.create_topics(new.iter(), &opts)).map_err(|e| RunError::CreateTopic {
            topic: topics.join(","),
            reason: e.to_string(),
        })?;
    let mut created = Vec::new();
    for r in results {
        match r {
            Ok(t) => created.push(t),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(RunError::CreateTopic {
                    topic: t,
                    reason: format!("{code:?} ({code})"),
                });
            }
        }
    }
    // Wait until the metadata shows every partition with a leader.
    let deadline = Instant::now() + ADMIN_TIMEOUT;
    for topic in topics {
        loop {
            let md = admin
                .inner()
                .fetch_metadata(Some(topic), Duration::from_secs(5))
                .map_err(|e| RunError::DescribeTopic {
                    topic: topic.clone(),
                    bootstrap: target.bootstrap.clone(),
                    reason: e.to_string(),
                })?;
            let ready = md
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .and_then(|t| {
                    if t.error().is_some() {
                        return None;
                    }
                    let parts = t.partitions();
                    Some((
                        parts.len(),
                        parts.iter().all(|p| p.leader() >= 0 && p.error().is_none()),
                    ))
                });
            match ready {
                Some((n, _)) if !created.contains(topic) && n != workload.partitions as usize => {
                    return Err(RunError::TopicMismatch {
                        topic: topic.clone(),
                        actual: n,
                        wanted: workload.partitions,
                    });
                }
                Some((n, true)) if n > 0 => break,
                _ if Instant::now() >= deadline => {
                    return Err(RunError::DescribeTopic {
                        topic: topic.clone(),
                        bootstrap: target.bootstrap.clone(),
                        reason: "partitions without a leader after 30 s".into(),
                    });
                }
                _ => thread::sleep(Duration::from_millis(100)),
            }
        }
    }
    Ok(created)
}

#[allow(clippy::too_many_arguments)]
fn start_producer(
    workload: &Workload,
    target: &Target,
    topics: &[String],
    index: u32,
    clock: Clock,
    tag: u32,
    board: &Arc<Board>,
    pool: &Arc<PayloadPool>,
) -> Result<ProducerHandle, RunError> {
    let name = format!("producer-{index}");
    let mut config = base_config(target);
    config.set("client.id", format!("kpilot-perf-p{index}"));
    for (k, v) in workload.producer.client_properties() {
        config.set(k, v);
    }
    let acks = Arc::new(Mutex::new(Recorder::new()));
    let sends = Arc::new(Mutex::new(Recorder::new()));
    let ctx = ProducerCtx {
        clock,
        recorder: Arc::clone(&acks),
    };
    let producer: ThreadedProducer<ProducerCtx> =
        config
            .create_with_context(ctx)
            .map_err(|source| RunError::CreateClient {
                role: name.clone(),
                bootstrap: target.bootstrap.clone(),
                source: Box::new(source),
            })?;
    let progress = Arc::new(Progress::default());
    let worker = ProducerWorker {
        producer,
        index,
        threads: workload.producers,
        topics: topics.to_vec(),
        clock,
        tag,
        board: Arc::clone(board),
        pool: Arc::clone(pool),
        progress: Arc::clone(&progress),
        sends: Arc::clone(&sends),
        flush_timeout: workload.flush_timeout,
    };
    let handle = thread::Builder::new()
        .name(name.clone())
        .spawn(move || worker.run())
        .map_err(|source| RunError::SpawnThread {
            name: name.clone(),
            source,
        })?;
    Ok(ProducerHandle {
        name,
        handle,
        recorders: [sends, acks],
        progress,
    })
}

struct ProducerWorker {
    producer: ThreadedProducer<ProducerCtx>,
    index: u32,
    threads: u32,
    topics: Vec<String>,
    clock: Clock,
    tag: u32,
    board: Arc<Board>,
    pool: Arc<PayloadPool>,
    progress: Arc<Progress>,
    /// Send-side measurements (send delay, sent, queue full, send errors).
    sends: Arc<Mutex<Recorder<ProducerStats>>>,
    flush_timeout: Duration,
}

/// Outcome of handing one record to the client.
enum Sent {
    Ok,
    QueueFull,
    Failed,
}

/// How long the sender sleeps when the client's queue is full before it tries again (the
/// wait counts in the send delay of the refused record).
const QUEUE_FULL_BACKOFF: Duration = Duration::from_micros(200);
/// The same when unthrottled: the queue is then full most of the time, and a longer sleep
/// saves context switches (the queue holds far more than a millisecond of records).
const QUEUE_FULL_BACKOFF_MAX_RATE: Duration = Duration::from_millis(1);

impl ProducerWorker {
    /// The send loop. Returns how many records were still unacknowledged when the flush
    /// timeout ran out (they are then purged, and reported failed as `PurgeQueue` or
    /// `PurgeInflight`).
    fn run(self) -> u64 {
        let mut generation = 0;
        let mut signal = Signal::Idle;
        let mut pacer: Option<Pacer> = None;
        let mut next: u64 = 0; // next record of the phase (throttled)
        let mut pending_since: Option<u64> = None; // unthrottled: first attempt of a refused record
        let mut counter: u64 = u64::from(self.index) << 40; // payload variety
        let mut topic_rr = self.index as usize;
        let mut buf = vec![0u8; self.pool.record_size()];
        loop {
            let (g, s) = self.board.read();
            if g != generation {
                generation = g;
                signal = s;
                next = 0;
                pending_since = None;
                pacer = match s {
                    Signal::Run {
                        rate: Some(r),
                        duration,
                        ..
                    } => Pacer::new(r, self.threads, self.index, duration),
                    _ => None,
                };
                self.progress
                    .remaining
                    .store(pacer.map(|p| p.requested()).unwrap_or(0), Ordering::Release);
                self.progress.late.store(0, Ordering::Release);
                self.progress.oldest_late_ns.store(0, Ordering::Release);
                self.progress.seen.store(g, Ordering::Release);
            }
            match signal {
                Signal::Done => break,
                Signal::Idle => thread::sleep(Duration::from_micros(500)),
                Signal::Run {
                    phase,
                    start_ns,
                    rate: Some(_),
                    ..
                } => {
                    let Some(p) = pacer else {
                        thread::sleep(Duration::from_millis(1));
                        continue;
                    };
                    let due = p.due_by(self.clock.now_ns().saturating_sub(start_ns));
                    let mut burst = 0;
                    let mut full = false;
                    while next < due && burst < SEND_BURST {
                        let intended = start_ns + p.intended_ns(next);
                        match self
                            .send(phase, Some(intended), counter, &mut topic_rr, &mut buf)
                            .0
                        {
                            Sent::Ok | Sent::Failed => {
                                next += 1;
                                counter += 1;
                            }
                            Sent::QueueFull => {
                                full = true;
                                break;
                            }
                        }
                        burst += 1;
                    }
                    let now = self.clock.now_ns();
                    let due_now = p.due_by(now.saturating_sub(start_ns));
                    let late = due_now.saturating_sub(next);
                    self.progress
                        .remaining
                        .store(p.requested().saturating_sub(next), Ordering::Release);
                    self.progress.late.store(late, Ordering::Release);
                    let oldest = if late > 0 {
                        now.saturating_sub(start_ns + p.intended_ns(next))
                    } else {
                        0
                    };
                    self.progress
                        .oldest_late_ns
                        .store(oldest, Ordering::Release);
                    if full {
                        thread::sleep(QUEUE_FULL_BACKOFF);
                    } else if next >= p.requested() {
                        // This phase's schedule is done: wait for the next signal.
                        thread::sleep(Duration::from_micros(500));
                    } else if next >= due {
                        let wake = start_ns + p.intended_ns(next);
                        let now = self.clock.now_ns();
                        if wake > now {
                            thread::sleep(Duration::from_nanos((wake - now).min(1_000_000)));
                        }
                    }
                }
                Signal::Run {
                    phase, rate: None, ..
                } => {
                    let mut burst = 0;
                    while burst < SEND_BURST {
                        // Unthrottled, a record is intended when first tried.
                        match self.send(phase, pending_since, counter, &mut topic_rr, &mut buf) {
                            (Sent::Ok | Sent::Failed, _) => {
                                pending_since = None;
                                counter += 1;
                            }
                            (Sent::QueueFull, intended) => {
                                pending_since = Some(intended);
                                thread::sleep(QUEUE_FULL_BACKOFF_MAX_RATE);
                                break;
                            }
                        }
                        burst += 1;
                    }
                }
            }
        }
        // Flush with a bound; whatever is left is purged and reported as failed.
        let _ = self.producer.flush(self.flush_timeout);
        let left = self.producer.in_flight_count().max(0) as u64;
        if left > 0 {
            self.producer
                .purge(PurgeConfig::default().queue().inflight());
            let _ = self.producer.flush(Duration::from_secs(5));
        }
        left
    }

    /// Hands one record to the client. `intended_ns` is the record's intended send time; `None`
    /// means now (unthrottled). Returns the outcome and the intended time used.
    fn send(
        &self,
        phase: u32,
        intended_ns: Option<u64>,
        counter: u64,
        topic_rr: &mut usize,
        buf: &mut [u8],
    ) -> (Sent, u64) {
        let now = self.clock.now_ns();
        let intended_ns = intended_ns.unwrap_or(now);
        buf.copy_from_slice(self.pool.record(counter));
        if buf.len() >= STAMP_LEN {
            write_stamp(buf, self.tag, phase, self.clock.unix_us(intended_ns));
        }
        let topic = &self.topics[*topic_rr % self.topics.len()];
        let stamp = Box::new(Stamp {
            phase,
            intended_ns,
            sent_ns: now,
        });
        let record: BaseRecord<'_, (), [u8], Box<Stamp>> =
            BaseRecord::with_opaque_to(topic, stamp).payload(buf);
        let outcome = match self.producer.send(record) {
            Ok(()) => {
                *topic_rr = topic_rr.wrapping_add(1);
                lock(&self.sends).record_send(phase, micros_between(intended_ns, now));
                Sent::Ok
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                lock(&self.sends).record_queue_full(phase);
                Sent::QueueFull
            }
            Err((e, _)) => {
                *topic_rr = topic_rr.wrapping_add(1);
                lock(&self.sends).record_send_error(phase, &error_name(&e));
                Sent::Failed
            }
        };
        (outcome, intended_ns)
    }
}

#[allow(clippy::too_many_arguments)]
fn start_consumer(
    workload: &Workload,
    target: &Target,
    topics: &[String],
    fresh_topics: bool,
    tag: u32,
    group: u32,
    member: u32,
    clock: Clock,
    stop: &Arc<AtomicBool>,
) -> Result<ConsumerHandle, RunError> {
    let name = format!("consumer-g{group}-{member}");
    let mut config = base_config(target);
    config
        .set("client.id", format!("kpilot-perf-g{group}-c{member}"))
        .set("group.id", format!("kpilot-perf-{tag:08x}-g{group}"))
        .set("enable.auto.commit", "true")
        .set("enable.partition.eof", "false")
        // A topic this run created is read from the start; an existing one from now on, so
        // older records do not count.
        .set(
            "auto.offset.reset",
            if fresh_topics { "earliest" } else { "latest" },
        );
    for (k, v) in &workload.consumer.properties {
        config.set(k, v);
    }
    let consumer: BaseConsumer<ConsumerCtx> =
        config
            .create_with_context(ConsumerCtx)
            .map_err(|source| RunError::CreateClient {
                role: name.clone(),
                bootstrap: target.bootstrap.clone(),
                source: Box::new(source),
            })?;
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topic_refs)
        .map_err(|source| RunError::Subscribe {
            consumer: name.clone(),
            topics: topics.to_vec(),
            source: Box::new(source),
        })?;
    let recorder = Arc::new(Mutex::new(Recorder::new()));
    let assigned = Arc::new(AtomicUsize::new(0));
    let stamped = Arc::new(AtomicUsize::new(0));
    let (rec, asg, stm, stop) = (
        Arc::clone(&recorder),
        Arc::clone(&assigned),
        Arc::clone(&stamped),
        Arc::clone(stop),
    );
    let handle = thread::Builder::new()
        .name(name.clone())
        .spawn(move || consume(consumer, clock, tag, &rec, &asg, &stm, &stop))
        .map_err(|source| RunError::SpawnThread {
            name: name.clone(),
            source,
        })?;
    Ok(ConsumerHandle {
        name,
        group,
        handle,
        recorder,
        assigned,
        stamped,
    })
}

fn consume(
    consumer: BaseConsumer<ConsumerCtx>,
    clock: Clock,
    tag: u32,
    recorder: &Mutex<Recorder<ConsumerStats>>,
    assigned: &AtomicUsize,
    stamped: &AtomicUsize,
    stop: &AtomicBool,
) {
    let mut last_check = Instant::now() - Duration::from_secs(1);
    while !stop.load(Ordering::Acquire) {
        if last_check.elapsed() >= Duration::from_millis(100) {
            last_check = Instant::now();
            let n = consumer.assignment().map(|a| a.count()).unwrap_or(0);
            assigned.store(n, Ordering::Release);
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                let payload = m.payload().unwrap_or(&[]);
                let now = clock.unix_us(clock.now_ns());
                let stamp = read_stamp(payload, tag);
                let mut r = lock(recorder);
                match stamp {
                    Some((phase, intended_us)) => {
                        r.record(
                            Some(phase),
                            payload.len() as u64,
                            Some(now.saturating_sub(intended_us)),
                        );
                        stamped.fetch_add(1, Ordering::Relaxed);
                    }
                    None => r.record(None, payload.len() as u64, None),
                }
            }
            Some(Err(e)) => lock(recorder).record_error(&error_name(&e)),
        }
    }
    consumer.unsubscribe();
}

fn wait_for_assignment(
    workload: &Workload,
    consumers: &[ConsumerHandle],
    observer: &mut dyn Observer,
) {
    let partitions = (workload.partitions as usize) * (workload.topics as usize);
    observer.note(&format!(
        "waiting for {} consumer group(s) to be assigned {partitions} partitions",
        workload.consumer_groups
    ));
    let deadline = Instant::now() + ASSIGN_TIMEOUT;
    loop {
        let all = (0..workload.consumer_groups).all(|g| {
            consumers
                .iter()
                .filter(|c| c.group == g)
                .map(|c| c.assigned.load(Ordering::Acquire))
                .sum::<usize>()
                >= partitions
        });
        if all {
            return;
        }
        if Instant::now() >= deadline {
            observer.note("consumer groups not fully assigned after 30 s; starting anyway");
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A tag for this run's records and group names (time and process id mixed).
fn run_tag() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0);
    let mixed = (u64::from(nanos) << 16) ^ u64::from(std::process::id()).wrapping_mul(0x9E37_79B9);
    (mixed ^ (mixed >> 29)) as u32 | 1
}

/// Drives a future to completion on this thread (the admin client's futures complete from
/// rdkafka's own polling thread, so no runtime is needed).
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => thread::park_timeout(Duration::from_millis(100)),
        }
    }
}
