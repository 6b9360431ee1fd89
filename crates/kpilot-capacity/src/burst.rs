//! Burst credits: the token bucket behind AWS's "up to" network and EBS bandwidth, the burst
//! limit of a shape, and how long credits can hold a rate above the sustained limit. Pure; the
//! simulator advances [`CreditBucket`]s minute by minute with the same code.

use kpilot_units::Throughput;
use serde::Serialize;

use crate::catalog::Catalog;
use crate::model::{BrokerCapacity, Limit, LoadFactors, Resource, Shape, Workload};

/// A credit bucket: usage above `baseline` drains it, usage below refills it, and the rate
/// can exceed the baseline (up to `burst`) only while credits remain.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CreditBucket {
    /// Sustained rate.
    pub baseline: Throughput,
    /// Highest rate while credits last.
    pub burst: Throughput,
    /// Bucket size, bytes of traffic above the baseline.
    pub capacity_bytes: f64,
    /// Credits left, bytes.
    pub level_bytes: f64,
}

impl CreditBucket {
    /// A full bucket that lasts `minutes_at_full_burst` at the burst rate.
    pub fn full(baseline: Throughput, burst: Throughput, minutes_at_full_burst: f64) -> Self {
        let extra = (burst.bytes_per_s() - baseline.bytes_per_s()).max(0.0);
        let capacity_bytes = extra * minutes_at_full_burst * 60.0;
        Self {
            baseline,
            burst,
            capacity_bytes,
            level_bytes: capacity_bytes,
        }
    }

    /// The highest rate that can be held for the next `dt_secs` seconds.
    pub fn available(&self, dt_secs: f64) -> Throughput {
        let extra_cap = self.burst.bytes_per_s() - self.baseline.bytes_per_s();
        let extra = (self.level_bytes / dt_secs.max(f64::EPSILON))
            .min(extra_cap)
            .max(0.0);
        Throughput::from_bytes_per_s(self.baseline.bytes_per_s() + extra)
    }

    /// Advances the bucket by `dt_secs` at `usage` (clamped to what is available); returns the
    /// rate actually served.
    pub fn advance(&mut self, usage: Throughput, dt_secs: f64) -> Throughput {
        let served = usage
            .bytes_per_s()
            .min(self.available(dt_secs).bytes_per_s());
        let delta = (self.baseline.bytes_per_s() - served) * dt_secs;
        self.level_bytes = (self.level_bytes + delta).clamp(0.0, self.capacity_bytes);
        Throughput::from_bytes_per_s(served)
    }

    /// Fraction of credits left, 0..=1 (1 for a bucket that cannot burst).
    pub fn fill(&self) -> f64 {
        if self.capacity_bytes <= 0.0 {
            1.0
        } else {
            self.level_bytes / self.capacity_bytes
        }
    }

    /// Seconds a full bucket holds `usage`: `None` when `usage` is at or below the baseline
    /// (forever), `Some(0)` when it is above the burst rate.
    pub fn secs_at(&self, usage: Throughput) -> Option<f64> {
        let u = usage.bytes_per_s();
        if u <= self.baseline.bytes_per_s() {
            None
        } else if u > self.burst.bytes_per_s() * (1.0 + 1e-12) {
            Some(0.0)
        } else {
            Some(self.capacity_bytes / (u - self.baseline.bytes_per_s()))
        }
    }
}

/// The per-broker credit buckets of a shape: network and, for network-attached storage, the
/// EBS link. Resources without burst have no bucket.
pub fn broker_buckets(shape: &Shape, catalog: &Catalog) -> Vec<(Resource, CreditBucket)> {
    let base = BrokerCapacity::sustained(shape);
    let burst = BrokerCapacity::burst(shape);
    let mut out = Vec::with_capacity(2);
    if burst.network > base.network {
        out.push((
            Resource::Network,
            CreditBucket::full(
                base.network,
                burst.network,
                catalog.burst.network_minutes_at_full_burst,
            ),
        ));
    }
    if let (Some(b), Some(l)) = (base.storage_link, burst.storage_link)
        && l > b
    {
        out.push((
            Resource::StorageLink,
            CreditBucket::full(b, l, catalog.burst.ebs_minutes_at_full_burst),
        ));
    }
    out
}

/// A shape's burst limit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BurstLimit {
    /// The highest cluster ingress while every credit bucket still has credits.
    pub limit: Limit,
    /// Minutes full buckets hold `limit`.
    pub minutes_at_limit: f64,
    /// The bursting resource whose credits run out first at `limit`, after
    /// `minutes_at_limit` (network or the EBS link of the instance: volumes have no credits);
    /// `None` when no bucket drains there.
    pub credits_run_out: Option<Resource>,
}

/// The burst limit of a shape, or `None` when it cannot exceed its sustained limit.
pub fn burst_limit(shape: &Shape, workload: &Workload, catalog: &Catalog) -> Option<BurstLimit> {
    let factors = LoadFactors::all_up(shape.brokers, workload);
    let sustained = Limit::compute(&BrokerCapacity::sustained(shape), &factors);
    let limit = Limit::compute(&BrokerCapacity::burst(shape), &factors);
    if limit.ingress.bytes_per_s() <= sustained.ingress.bytes_per_s() * (1.0 + 1e-9) {
        return None;
    }
    let minutes_at_limit = hold_secs(shape, workload, catalog, limit.ingress)
        .map(|s| s / 60.0)
        .unwrap_or(f64::INFINITY);
    let credits_run_out = first_to_run_out(shape, workload, catalog, limit.ingress).map(|(r, _)| r);
    Some(BurstLimit {
        limit,
        minutes_at_limit,
        credits_run_out,
    })
}

/// The resource whose full credit bucket runs out first at cluster ingress `ingress`, and after
/// how many seconds; `None` when every bursting resource is within its baseline there.
pub fn first_to_run_out(
    shape: &Shape,
    workload: &Workload,
    catalog: &Catalog,
    ingress: Throughput,
) -> Option<(Resource, f64)> {
    let factors = LoadFactors::all_up(shape.brokers, workload);
    broker_buckets(shape, catalog)
        .into_iter()
        .filter_map(|(resource, bucket)| {
            bucket
                .secs_at(factors.load(resource, ingress))
                .map(|secs| (resource, secs))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// Seconds full credit buckets can hold cluster ingress `ingress`: `None` when it is within the
/// sustained capacity of every bursting resource (forever), `Some(0)` when it is beyond reach.
pub fn hold_secs(
    shape: &Shape,
    workload: &Workload,
    catalog: &Catalog,
    ingress: Throughput,
) -> Option<f64> {
    let factors = LoadFactors::all_up(shape.brokers, workload);
    let burst = BrokerCapacity::burst(shape);
    // A resource without burst (the volume, or a non-bursting instance) caps the rate outright.
    for resource in [Resource::Storage, Resource::StorageLink, Resource::Network] {
        if let Some(cap) = burst.get(resource)
            && factors.load(resource, ingress).bytes_per_s() > cap.bytes_per_s() * (1.0 + 1e-9)
        {
            return Some(0.0);
        }
    }
    first_to_run_out(shape, workload, catalog, ingress).map(|(_, secs)| secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;

    #[test]
    fn bucket_drains_above_baseline_and_refills_below() {
        let mut b = CreditBucket::full(
            Throughput::from_mb_per_s(100.0),
            Throughput::from_mb_per_s(200.0),
            10.0,
        );
        assert_eq!(b.capacity_bytes, 100e6 * 600.0);
        // Ten minutes at full burst empties it exactly.
        for _ in 0..10 {
            let served = b.advance(Throughput::from_mb_per_s(200.0), 60.0);
            assert!((served.mb_per_s() - 200.0).abs() < 1e-9);
        }
        assert!(b.level_bytes.abs() < 1.0);
        // Empty: only the baseline is served.
        let served = b.advance(Throughput::from_mb_per_s(200.0), 60.0);
        assert!((served.mb_per_s() - 100.0).abs() < 1e-9);
        // Idle refills at the baseline rate.
        b.advance(Throughput::ZERO, 60.0);
        assert!((b.level_bytes - 100e6 * 60.0).abs() < 1.0);
    }

    #[test]
    fn three_m7g_large_burst_well_above_sustained() {
        let c = Catalog::builtin().unwrap();
        let w = Workload::new(3, 2, 2.0, 0.8).unwrap();
        let instance = c.instance(&"m7g.large".parse().unwrap()).unwrap().clone();
        let storage = Storage::gp3(&c, 1000.0, Throughput::from_mb_per_s(250.0)).unwrap();
        let shape = Shape::new(instance, 3, storage, &w).unwrap();
        let b = burst_limit(&shape, &w, &c).unwrap();
        // The 250 MB/s volume caps the burst; the sizing guide saw > 200 MB/s.
        assert!((b.limit.ingress.mb_per_s() - 250.0).abs() < 1e-9);
        assert_eq!(b.limit.bottleneck, Resource::Storage);
        assert!(b.minutes_at_limit > 5.0 && b.minutes_at_limit.is_finite());
        // The volume has no credits: the ~35 minutes are the instance's network credits
        // (333 MB/s out per broker against 120 sustained), long before its EBS-link credits
        // (250 MB/s against 78.8, for 30 minutes at 1250) run out.
        assert_eq!(b.credits_run_out, Some(Resource::Network));
        assert_eq!(b.minutes_at_limit.round(), 35.0);
        // Within the sustained limit credits are not needed.
        assert_eq!(
            hold_secs(&shape, &w, &c, Throughput::from_mb_per_s(50.0)),
            None
        );
        // Beyond the volume nothing helps.
        assert_eq!(
            hold_secs(&shape, &w, &c, Throughput::from_mb_per_s(300.0)),
            Some(0.0)
        );
    }
}
