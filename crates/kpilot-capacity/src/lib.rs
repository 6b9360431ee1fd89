//! The capacity model of kafka-autopilot: how much sustained throughput a Kafka cluster shape
//! holds, what limits it, how long burst credits last, what it costs, and which shape is the
//! cheapest for a workload. Pure: no async, no I/O (except [`Catalog::load`], which reads the
//! catalog file a user names).
//!
//! The model follows the AWS sizing guide's Equation 1 (see [`model`]); the catalog is data
//! ([`BUILTIN_CATALOG`], or a user's TOML file).

pub mod burst;
pub mod catalog;
pub mod model;
pub mod sizing;
pub mod storage;

pub use burst::{BurstLimit, CreditBucket};
pub use catalog::{BUILTIN_CATALOG, Catalog, CatalogError, Instance};
pub use model::{
    BrokerCapacity, Evaluation, Limit, LoadFactors, ModelError, MonthlyCost, OneDownLimit,
    Resource, Shape, Workload, evaluate, loads_at, storage_needed_gb,
};
pub use sizing::{
    Candidate, Fanout, MAX_BROKERS, Rejection, SizeReport, SizeRequest, SizingError, Violation,
    size,
};
pub use storage::{Storage, StorageError, StorageKind};
