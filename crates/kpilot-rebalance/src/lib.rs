//! Minimal-movement partition reassignment planning: given where every replica lives, how big
//! each partition is, which zone each broker is in and the broker set change (add brokers,
//! remove brokers, or rebalance), compute a target assignment that balances replicas, bytes and
//! preferred leaders per broker, keeps each partition's replicas in distinct zones and on
//! distinct brokers, and moves as few bytes as possible — together with a lower bound on the
//! bytes any balanced plan must move, so the plan's distance from optimal is known. Also the
//! pure parts of executing a plan: batches with per-broker concurrency limits, the throttled
//! replica lists, and the replication throttle chosen from the capacity model's headroom.
//! Pure: no I/O, no clock.

mod batch;
mod bound;
mod input;
mod plan;
mod throttle;

pub use batch::{
    Batch, BatchLimits, PartitionMove, ThrottledReplicas, batches, throttled_brokers,
    throttled_replicas,
};
pub use bound::{Balance, BalanceTargets, LowerBound};
pub use input::{BrokerChange, PartitionPlacement, PlanError, PlanInput};
pub use plan::{DEFAULT_TOLERANCE, Move, Plan, PlanStats, plan, plan_with_tolerance};
pub use throttle::{
    ResourceHeadroom, ThrottleChoice, ThrottleError, choose_throttle, planned_throttle,
};
