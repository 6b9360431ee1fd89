//! Minimal-movement partition reassignment planning: given where every replica lives, how big
//! each partition is, which zone each broker is in and the broker set change (add brokers,
//! remove brokers, or rebalance), compute a target assignment that balances replicas, bytes and
//! preferred leaders per broker, keeps each partition's replicas in distinct zones and on
//! distinct brokers, and moves as few bytes as possible — together with a lower bound on the
//! bytes any balanced plan must move, so the plan's distance from optimal is known.
//! Pure: no I/O, no clock.

mod bound;
mod input;
mod plan;

pub use bound::{Balance, BalanceTargets, LowerBound};
pub use input::{BrokerChange, PartitionPlacement, PlanError, PlanInput};
pub use plan::{Move, Plan, PlanStats, plan};
