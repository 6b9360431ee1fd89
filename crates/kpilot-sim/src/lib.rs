//! The kafka-autopilot simulator: replays demand — a CSV trace or a built-in scenario —
//! minute by minute through a model of the cluster (brokers of given instance types, credit
//! buckets for network and EBS link, sustained and burst limits, transitions that take time and
//! capacity) with the very same decision code the operator runs
//! ([`kpilot_policy::decide()`]) in the loop, and compares it with the cheapest static shape
//! for the peak and with a reactive threshold autoscaler. Pure: parsing takes text, the report
//! is returned as a string; the CLI reads and writes the files.
//!
//! - [`trace`]: the CSV format and minute resampling.
//! - [`scenario`]: built-in scenarios and the default cluster setup.
//! - [`setup`]: the simulated cluster's fixed facts.
//! - [`engine`]: the minute-by-minute model.
//! - [`compare`](mod@compare): the three runs and the headline figures.
//! - [`report`]: the self-contained HTML report.

pub mod compare;
pub mod engine;
pub mod report;
pub mod scenario;
pub mod setup;
pub mod trace;

pub use compare::{
    Comparison, Runs, compare, compare_explaining, max_stored_bytes, static_peak_shape,
};
pub use engine::{ActionRecord, Controller, Minute, Run, RunSummary, SimConfig, SimError, run};
pub use scenario::{
    DEFAULT_DAYS, DEFAULT_HISTORY, SCENARIOS, Scenario, ScenarioError, builtin, default_setup,
    describe,
};
pub use setup::{ClusterSetup, StorageSetup};
pub use trace::{Demand, TraceError, parse};
