//! `kpilot-reassign`: executes `kpilot-rebalance` plans on a live Kafka cluster. Batches with
//! per-broker concurrency limits under a replication throttle (set before, removed after, also
//! on failure and cancel), a durable JSON journal to resume from, cancel of in-flight
//! reassignments, a drain check for removed brokers, and a preferred leader election at the
//! end. Performs network I/O (through `kpilot-kafka`) and file I/O (the journal).

pub mod executor;
pub mod journal;
pub mod kafka;
pub mod port;
pub mod prepare;
pub mod store;

pub use executor::{
    Cancel, CancelHandle, Event, ExecuteError, Executor, FOLLOWER_RATE, FOLLOWER_REPLICAS,
    LEADER_RATE, LEADER_REPLICAS, Report, Settings, check_new_run, check_writes,
    other_reassignments, replicas_per_broker, throttles_in_the_way,
};
pub use journal::{BatchEntry, BatchState, JOURNAL_VERSION, Journal, JournalError, RunStatus};
pub use kafka::{ThrottleOverride, read_plan_input, throttle_overrides};
pub use port::{ElectionSummary, PortError, ReassignPort};
pub use prepare::{Prepared, prepare};
pub use store::{FileStore, JournalStore, MemoryStore, StoreError};
