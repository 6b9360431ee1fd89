//! `kpilot-perf`: an open-loop Kafka load generator with honest latency, behind `kpilot perf`.
//!
//! Every record has an intended send time from the requested rate; three histograms (in
//! microseconds) separate where time goes: **send delay** (intended -> handed to the client),
//! **service time** (handed to the client -> acknowledged) and **corrected latency** (intended
//! -> acknowledged), so a stall shows up even when the client stops accepting records.
//! Consumers record end-to-end latency from the intended send time.
//!
//! Pure modules: [`workload`] (settings and checks), [`file`] (workload files, cross product;
//! [`file::load`] reads the file), [`schedule`] (phases, open-loop timing, stop rule, credit
//! depletion), [`stats`] (histograms, recorders, summaries), [`payload`] (record bytes and
//! the timestamp stamp), [`report`] (per-window and per-step figures, JSON and HTML).
//! [`runner`] performs the I/O: librdkafka producers, consumers and topic creation.
//!
//! See `docs/perf.md` for the user's view and `docs/benchmarks/perf.md` for the comparison
//! with Kafka's `ProducerPerformance`.

pub mod file;
pub mod payload;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod stats;
pub mod workload;
