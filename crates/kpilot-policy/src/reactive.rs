//! A reactive threshold autoscaler, the baseline the predictive policy is measured against: the
//! way alert-driven autoscalers work (Koperator: an alert with a `for:` duration triggers a
//! scale step). It looks only at the utilization of the current shape, never at a forecast or
//! at what the transition itself costs; it uses the same moves and transition model, and the
//! same cap on transition time ([`crate::Settings::max_transition`]). Pure.
//!
//! - Utilization above [`ReactiveSettings::scale_up_above`] for all of
//!   [`ReactiveSettings::up_for`]: move to the cheapest reachable shape that runs the recent
//!   peak at [`ReactiveSettings::aim`] utilization (the largest one if none does).
//! - Utilization below [`ReactiveSettings::scale_down_below`] for all of
//!   [`ReactiveSettings::down_for`], and the cooldown over: move to the cheapest reachable shape
//!   that runs that window's peak at the aim.

use kpilot_capacity::{BrokerCapacity, Limit, LoadFactors, Shape, Workload};
use kpilot_units::{Span, Throughput};
use serde::Serialize;

use crate::decide::{
    Action, CandidateReport, Decision, DecisionInput, FanoutSource, PolicyError, Reason, Verdict,
    holds, hourly_cost,
};
use crate::forecast::{ForecastSettings, forecast};
use crate::space::reachable_shapes;
use crate::transition::plan_transition;

/// Thresholds of the reactive baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReactiveSettings {
    /// Scale up when utilization (of the sustained limit) stays above this.
    pub scale_up_above: f64,
    /// Scale down when utilization stays below this.
    pub scale_down_below: f64,
    /// How long utilization must stay high (an alert's `for:`).
    pub up_for: Span,
    /// How long utilization must stay low.
    pub down_for: Span,
    /// Utilization the new shape is chosen for.
    pub aim: f64,
    /// Time after a change before a scale-down.
    pub cooldown: Span,
}

impl Default for ReactiveSettings {
    fn default() -> Self {
        Self {
            scale_up_above: 0.8,
            scale_down_below: 0.4,
            up_for: Span::from_minutes(5.0),
            down_for: Span::from_minutes(30.0),
            aim: 0.6,
            cooldown: Span::from_minutes(30.0),
        }
    }
}

fn sustained(shape: &Shape, w: &Workload) -> f64 {
    Limit::compute(
        &BrokerCapacity::sustained(shape),
        &LoadFactors::all_up(shape.brokers, w),
    )
    .ingress
    .bytes_per_s()
}

/// The reactive baseline's decision (the same input as [`crate::decide()`]; the forecast
/// settings are ignored and the returned forecast is the flat reactive one).
pub fn reactive_decide(
    input: &DecisionInput<'_>,
    rs: &ReactiveSettings,
) -> Result<Decision, PolicyError> {
    let now = input.now;
    let settings = input.settings;
    let reactive = ForecastSettings {
        min_seasonal_history: Span::from_secs(f64::INFINITY),
        safety_margin: 0.0,
        ..ForecastSettings::default()
    };
    let fc = forecast(input.history, now, &reactive, Span::from_hours(1.0))?;
    let fanout = match input.fanout {
        FanoutSource::Fixed(c) => c,
        FanoutSource::Observed(fallback) => fc.observed_fanout.unwrap_or(fallback),
    };
    let w = Workload::new(
        input.replication_factor,
        input.min_insync_replicas,
        fanout,
        settings.target_utilization,
    )?;
    input.constraints.validate(input.catalog, &w)?;
    let current = &input.cluster.shape;
    let cur_limit = sustained(current, &w);
    let cur_cost = hourly_cost(current, input.catalog);
    let mut decision = Decision {
        at: now,
        action: Action::Keep,
        reasons: Vec::new(),
        forecast: fc,
        fanout,
        current_holds: holds(current, &w),
        current_usd_per_hour: cur_cost,
        considered: Vec::new(),
    };
    if input.cluster.transition_in_progress {
        decision.reasons.push(Reason::TransitionInProgress);
        return Ok(decision);
    }
    let window = |span: Span| (now - span, now);
    let (a, b) = window(rs.up_for);
    let low_in_up = input
        .history
        .min_between(a, b)
        .map_or(0.0, Throughput::bytes_per_s);
    let high_in_up = input
        .history
        .max_between(a, b)
        .map_or(0.0, Throughput::bytes_per_s);
    let (a, b) = window(rs.down_for);
    let high_in_down = input
        .history
        .max_between(a, b)
        .map_or(0.0, Throughput::bytes_per_s);
    let covered = input.history.span() >= rs.down_for;

    let scale_up = low_in_up > rs.scale_up_above * cur_limit;
    let scale_down = covered && high_in_down < rs.scale_down_below * cur_limit;
    if !scale_up && !scale_down {
        return Ok(decision);
    }
    if scale_down
        && let Some(last) = input.cluster.last_change_finished
        && last + rs.cooldown > now
    {
        return Ok(decision);
    }
    let size_for = if scale_up { high_in_up } else { high_in_down };
    let mut options: Vec<(f64, f64, crate::transition::Plan)> = Vec::new();
    for m in reachable_shapes(current, input.catalog, input.constraints, &w) {
        let cost = hourly_cost(&m.shape, input.catalog);
        let limit = sustained(&m.shape, &w);
        if scale_down && (cost >= cur_cost || limit * rs.aim < size_for) {
            continue;
        }
        if scale_up && limit <= cur_limit {
            continue;
        }
        let needed_gb = input.cluster.stored.gb()
            / f64::from(m.shape.brokers)
            / input.constraints.max_disk_fill;
        if needed_gb > m.shape.storage.size_gb {
            continue;
        }
        // A threshold autoscaler does not check the transition's own headroom: when the
        // cluster is too loaded to plan transfers within target, it starts anyway (planned as
        // if idle; the transfers then get whatever capacity is left).
        let plan = plan_transition(
            current,
            &m.shape,
            &w,
            input.cluster.stored,
            Throughput::from_bytes_per_s(size_for),
            &settings.transition,
        )
        .or_else(|_| {
            plan_transition(
                current,
                &m.shape,
                &w,
                input.cluster.stored,
                Throughput::ZERO,
                &settings.transition,
            )
        });
        let Ok(plan) = plan else {
            continue;
        };
        if plan.estimated > settings.max_transition {
            continue;
        }
        decision.considered.push(CandidateReport {
            shape: m.shape.label(),
            mechanism: m.mechanism,
            usd_per_hour: cost,
            holds: holds(&m.shape, &w),
            estimated: Some(plan.estimated),
            verdict: Verdict::Feasible,
        });
        options.push((cost, limit, plan));
    }
    // Cheapest that runs the peak at the aim; when scaling up and none does, the strongest.
    options.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
    let pick = options
        .iter()
        .position(|o| o.1 * rs.aim >= size_for)
        .or_else(|| {
            scale_up.then(|| {
                options
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.1.total_cmp(&b.1.1))
                    .map(|(i, _)| i)
            })?
        });
    if let Some(i) = pick {
        let (cost, _, plan) = options.swap_remove(i);
        let peak = Throughput::from_bytes_per_s(size_for);
        decision.reasons.push(if scale_up {
            Reason::ForecastAboveCurrent {
                peak,
                until: now,
                holds: Throughput::from_bytes_per_s(cur_limit * rs.scale_up_above),
            }
        } else {
            Reason::CurrentHolds {
                peak,
                until: now,
                holds: Throughput::from_bytes_per_s(cur_limit * rs.scale_down_below),
            }
        });
        decision.reasons.push(Reason::MoveTo {
            shape: plan.to.label(),
            mechanism: plan.mechanism,
            usd_per_hour: cost,
            current_usd_per_hour: cur_cost,
            holds: holds(&plan.to, &w),
            peak,
            until: now,
            estimated: plan.estimated,
        });
        decision.action = Action::Change(Box::new(plan));
    }
    Ok(decision)
}
