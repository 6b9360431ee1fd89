//! `kpilot-roll`: the zero-downtime rolling resize. Every node of a Kafka cluster is moved onto
//! a new size one at a time while producers and consumers keep working: wait for the safety
//! gate, graceful stop, resize, start, wait until it is back in every ISR, preferred leader
//! election for its partitions, verify, next; a final election at the end.
//!
//! Layers:
//! - pure (no I/O, no async): [`plan`] (which nodes, in which order), [`gate`] (may this node
//!   stop now; is it back), [`journal`] (the durable record and the state machine of the
//!   steps), [`report`];
//! - ports: [`ports::KafkaPort`] and [`ports::Fleet`], the traits the executor drives;
//! - the async [`executor`], which records every step in a [`store`] before and after it;
//! - adapters: [`kafka`] (the Kafka admin client), [`local`] (testbed brokers, sizes emulated
//!   by heap, processor count and a CPU quota), [`fake`] (in memory, for unit tests).
//!
//! See `docs/roll.md`.

pub mod executor;
pub mod fake;
pub mod gate;
pub mod journal;
pub mod kafka;
pub mod local;
pub mod plan;
pub mod ports;
pub mod report;
pub mod store;

pub use executor::{Abandoned, DryRun, RollError, RollEvent, Roller, Settings, abandon};
pub use gate::{GateBlock, GateRules, GateVerdict, Observation};
pub use journal::{Journal, Phase, RollStatus, Selection};
pub use kafka::{Drift, ReplicationThrottle, ThrottleError, ThrottledTopic};
pub use local::{LocalFleet, LocalSizing};
pub use plan::{PlanError, RollOptions, RollPlan};
pub use ports::{Fleet, FleetError, KafkaPort, KafkaPortError};
pub use report::RollReport;
pub use store::{FileStore, JournalStore, MemoryStore};
