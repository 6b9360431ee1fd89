//! Choosing the replication throttle from the capacity model: each broker has, per resource,
//! `capacity x target utilization - current load` of headroom; a partition copy costs the
//! sender network out and the receiver storage writes (and EBS link), so the throttle is the
//! smallest headroom over those resources. The producers keep what they use today, and the
//! copy never takes a broker past the utilization the cluster was sized for. Pure.

use kpilot_capacity::{BrokerCapacity, LoadFactors, Resource, Shape, Workload};
use kpilot_units::Throughput;
use serde::Serialize;
use thiserror::Error;

/// Why no throttle can be chosen.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ThrottleError {
    /// The brokers have no headroom left on a resource.
    #[error(
        "no replication headroom: {resource} is at {load_mb:.1} MB/s per broker of {limit_mb:.1} MB/s allowed ({utilization:.0}% target utilization); reduce the load, scale up first, or pass an explicit --throttle"
    )]
    NoHeadroom {
        /// The saturated resource.
        resource: Resource,
        /// Its load per broker, MB/s.
        load_mb: f64,
        /// Capacity times target utilization, MB/s.
        limit_mb: f64,
        /// The target utilization, percent.
        utilization: f64,
    },
}

/// One resource's headroom.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ResourceHeadroom {
    /// The resource.
    pub resource: Resource,
    /// Capacity per broker.
    pub capacity: Throughput,
    /// Load per broker at the current ingress.
    pub load: Throughput,
    /// `capacity x target utilization - load`.
    pub headroom: Throughput,
}

/// The chosen throttle and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThrottleChoice {
    /// The rate for `leader.replication.throttled.rate` and
    /// `follower.replication.throttled.rate` on every broker.
    pub rate: Throughput,
    /// The resource whose headroom sets it.
    pub bottleneck: Resource,
    /// Every resource's headroom.
    pub headroom: Vec<ResourceHeadroom>,
}

/// Chooses the throttle for brokers of `capacity` carrying `ingress` of cluster ingress spread
/// over `brokers` brokers under `workload` (whose target utilization bounds the total).
pub fn choose_throttle(
    capacity: &BrokerCapacity,
    brokers: u32,
    workload: &Workload,
    ingress: Throughput,
) -> Result<ThrottleChoice, ThrottleError> {
    let factors = LoadFactors::all_up(brokers.max(1), workload);
    let mut headroom = Vec::new();
    for resource in [Resource::Storage, Resource::StorageLink, Resource::Network] {
        let Some(cap) = capacity.get(resource) else {
            continue;
        };
        let load = factors.load(resource, ingress);
        let allowed = cap.bytes_per_s() * workload.target_utilization;
        headroom.push(ResourceHeadroom {
            resource,
            capacity: cap,
            load,
            headroom: Throughput::from_bytes_per_s((allowed - load.bytes_per_s()).max(0.0)),
        });
    }
    let tightest = headroom
        .iter()
        .min_by(|a, b| {
            a.headroom
                .bytes_per_s()
                .total_cmp(&b.headroom.bytes_per_s())
        })
        .copied()
        .unwrap_or(ResourceHeadroom {
            resource: Resource::Network,
            capacity: Throughput::ZERO,
            load: Throughput::ZERO,
            headroom: Throughput::ZERO,
        });
    // Kafka throttles in whole bytes per second; under 1 MB/s a move never finishes in
    // reasonable time, so call that "no headroom".
    if tightest.headroom.mb_per_s() < 1.0 {
        return Err(ThrottleError::NoHeadroom {
            resource: tightest.resource,
            load_mb: tightest.load.mb_per_s(),
            limit_mb: tightest.capacity.mb_per_s() * workload.target_utilization,
            utilization: workload.target_utilization * 100.0,
        });
    }
    Ok(ThrottleChoice {
        rate: Throughput::from_bytes_per_s(tightest.headroom.bytes_per_s().floor()),
        bottleneck: tightest.resource,
        headroom,
    })
}

/// The throttle, bytes per second, a rebalance of `shape` gets at `ingress`, and where it
/// comes from: the capacity model's smallest headroom per broker ([`choose_throttle`]),
/// else (ingress unknown, or no headroom left) `default`; either capped by `max`. What the
/// operator sets and what decisions plan data moves with. Pure.
pub fn planned_throttle(
    shape: &Shape,
    workload: &Workload,
    ingress: Option<Throughput>,
    default: Throughput,
    max: Option<Throughput>,
) -> (u64, String) {
    let (rate, source) = match ingress.map(|ingress| {
        choose_throttle(
            &BrokerCapacity::sustained(shape),
            shape.brokers,
            workload,
            ingress,
        )
    }) {
        Some(Ok(choice)) => (
            choice.rate,
            format!("capacity model: {} headroom", choice.bottleneck),
        ),
        Some(Err(e)) => (
            default,
            format!("default, the capacity model chose none: {e}"),
        ),
        None => (default, "default, the ingress is not measured".to_owned()),
    };
    match max {
        Some(max) if max.bytes_per_s() < rate.bytes_per_s() => (
            max.bytes_per_s().round() as u64,
            format!("capped at {max}; {source} allows {rate}"),
        ),
        _ => (rate.bytes_per_s().round() as u64, source),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(storage: f64, network: f64) -> BrokerCapacity {
        BrokerCapacity {
            storage: Throughput::from_mb_per_s(storage),
            storage_link: None,
            network: Throughput::from_mb_per_s(network),
        }
    }

    #[test]
    fn throttle_is_the_smallest_headroom() {
        let w = Workload::new(3, 2, 1.0, 0.8).expect("workload");
        // 3 brokers, 60 MB/s ingress: storage 60 MB/s per broker, network 60 MB/s per broker.
        let c = choose_throttle(&cap(250.0, 200.0), 3, &w, Throughput::from_mb_per_s(60.0))
            .expect("choice");
        assert_eq!(c.bottleneck, Resource::Network);
        assert!(
            (c.rate.mb_per_s() - 100.0).abs() < 1e-6,
            "{}",
            c.rate.mb_per_s()
        );
    }

    #[test]
    fn more_load_means_a_lower_throttle_and_saturation_refuses() {
        let w = Workload::new(3, 2, 1.0, 0.8).expect("workload");
        let low = choose_throttle(&cap(250.0, 200.0), 3, &w, Throughput::from_mb_per_s(30.0))
            .expect("low");
        let high = choose_throttle(&cap(250.0, 200.0), 3, &w, Throughput::from_mb_per_s(120.0))
            .expect("high");
        assert!(high.rate.bytes_per_s() < low.rate.bytes_per_s());
        let err = choose_throttle(&cap(250.0, 200.0), 3, &w, Throughput::from_mb_per_s(200.0))
            .expect_err("saturated");
        assert!(err.to_string().contains("no replication headroom"), "{err}");
    }
}
