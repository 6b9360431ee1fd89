//! The predictive autoscaling policy of kafka-autopilot. Pure: no async, no I/O, no clock —
//! time is always passed in as `now`.
//!
//! [`decide()`] is the one entry point the simulator, `kpilot recommend` and the operator share:
//! from a [`DemandHistory`] a live observer (or the simulator) fills, the current
//! [`ClusterState`], the catalog, [`Constraints`] and [`Settings`], it returns a [`Decision`]:
//! keep the shape, or move to another one by a vertical roll or by adding or removing brokers,
//! with the [`Plan`] of the transition, the reasons, and the forecast it used.
//!
//! - [`history`]: timestamped demand samples, binned.
//! - [`forecast`](mod@forecast): daily/weekly seasonality plus level, trend and a safety margin; a reactive
//!   fallback while the history is short.
//! - [`transition`]: what a move costs in time and capacity (one broker down, mixed sizes,
//!   catch-up, re-replication, throttled data movement).
//! - [`space`]: the shapes the constraints allow.
//! - [`decide`](mod@decide): the decision rules.
//! - [`reactive`]: a threshold autoscaler, the baseline the simulator compares against.

pub mod decide;
pub mod forecast;
pub mod history;
pub mod reactive;
pub mod space;
pub mod time;
pub mod transition;

pub use decide::{
    Action, CandidateReport, ClusterState, DISK_ALARM_FILL, Decision, DecisionInput, FanoutSource,
    PolicyError, Reason, Settings, Verdict, decide, escape_limit, holds, hourly_cost,
    projected_stored,
};
pub use forecast::{Forecast, ForecastError, ForecastMethod, ForecastSettings, forecast};
pub use history::{DEFAULT_BIN, DemandHistory, HistoryError, Sample};
pub use reactive::{ReactiveSettings, reactive_decide};
pub use space::{
    Constraints, ConstraintsError, Move, all_shapes, reachable_shapes, vertical_shapes,
};
pub use time::Timestamp;
pub use transition::{
    BrokerRole, MOVE_TIMED_FROM, MOVES_LEARNED_FROM, Mechanism, Phase, PhaseKind, Plan,
    RESTARTS_LEARNED_FROM, Slot, TransitionSettings, broker_capacity, learned_move_share,
    learned_restart, plan_transition,
};
