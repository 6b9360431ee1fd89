//! The sustained-throughput model of a Kafka cluster (the AWS sizing guide's Equation 1),
//! extended with one broker down, burst credits and cost. Pure: no I/O, no clock.
//!
//! With `n` brokers, replication factor `r`, consumer fan-out `c` (consumer groups reading from
//! the head of the log, or egress / ingress) and cluster ingress `t`, each broker carries:
//!
//! - storage writes `t * r / n` (its own ingress plus replication from its peers);
//! - the same over the EBS link when storage is network-attached;
//! - network out `t * (c + r - 1) / n` (consumers plus replication to its peers).
//!
//! So the sustained limit is `min(storage * n / r, link * n / r, network * n / (c + r - 1))`.
//!
//! With one broker down (a roll, or a failure) the survivors still write exactly the replicas
//! they host (`t * r / n` each: the stopped broker's replicas are simply not written), but they
//! take over its leadership, so consumer traffic spreads over `n - 1` brokers, and nobody
//! replicates to the stopped broker: network out per survivor is
//! `t * ((c - 1) / (n - 1) + r / n)`. Partitions that had a replica on the stopped broker keep
//! `r - 1` in-sync replicas; when that is below `min.insync.replicas`, producers with
//! `acks=all` are refused and the limit is zero.

use std::fmt;

use kpilot_units::Throughput;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::burst::{self, BurstLimit};
use crate::catalog::{Catalog, Instance};
use crate::storage::Storage;

/// A per-broker resource that can limit the cluster's throughput.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resource {
    /// The volume's (or local disk's) sustained write throughput.
    Storage,
    /// The instance's EBS link (network-attached storage only).
    StorageLink,
    /// The instance's network bandwidth (outbound).
    Network,
}

impl Resource {
    /// The name used in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Storage => "storage",
            Resource::StorageLink => "storage-link",
            Resource::Network => "network",
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a workload or shape is not valid for the model.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ModelError {
    /// Replication factor zero.
    #[error("replication factor must be at least 1")]
    ZeroReplicationFactor,
    /// `min.insync.replicas` outside `1..=replication factor`.
    #[error("min.insync.replicas {min_isr} must be between 1 and the replication factor {rf}")]
    MinIsrOutOfRange {
        /// The min ISR given.
        min_isr: u16,
        /// The replication factor.
        rf: u16,
    },
    /// Fan-out negative or not a number.
    #[error("consumer fan-out {0} must be zero or more")]
    NegativeFanout(f64),
    /// Target utilization outside (0, 1].
    #[error("target utilization {0} must be above 0 and at most 1 (e.g. 0.8 for 80%)")]
    TargetUtilizationOutOfRange(f64),
    /// No brokers.
    #[error("a cluster needs at least one broker")]
    NoBrokers,
    /// More replicas than brokers.
    #[error(
        "replication factor {rf} is above the broker count {brokers}: each replica needs its own broker; use at least {rf} brokers or a lower replication factor"
    )]
    ReplicationFactorAboveBrokers {
        /// The replication factor.
        rf: u16,
        /// The broker count.
        brokers: u32,
    },
}

/// What the cluster has to carry, apart from the ingress rate itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// Replication factor of the topics.
    pub replication_factor: u16,
    /// `min.insync.replicas` of the topics (producers use `acks=all`).
    pub min_insync_replicas: u16,
    /// Consumer fan-out: consumer groups reading from the head of the log, or egress / ingress.
    pub consumer_fanout: f64,
    /// Fraction of the sustained limit to run at, at most (the guide's 0.8).
    pub target_utilization: f64,
}

impl Workload {
    /// A validated workload.
    pub fn new(
        replication_factor: u16,
        min_insync_replicas: u16,
        consumer_fanout: f64,
        target_utilization: f64,
    ) -> Result<Self, ModelError> {
        if replication_factor == 0 {
            return Err(ModelError::ZeroReplicationFactor);
        }
        if min_insync_replicas == 0 || min_insync_replicas > replication_factor {
            return Err(ModelError::MinIsrOutOfRange {
                min_isr: min_insync_replicas,
                rf: replication_factor,
            });
        }
        if !(consumer_fanout.is_finite() && consumer_fanout >= 0.0) {
            return Err(ModelError::NegativeFanout(consumer_fanout));
        }
        if !(target_utilization > 0.0 && target_utilization <= 1.0) {
            return Err(ModelError::TargetUtilizationOutOfRange(target_utilization));
        }
        Ok(Self {
            replication_factor,
            min_insync_replicas,
            consumer_fanout,
            target_utilization,
        })
    }

    /// The usual production default for a replication factor: `min.insync.replicas = r - 1`
    /// (at least 1), i.e. 2 for r = 3.
    pub fn default_min_isr(replication_factor: u16) -> u16 {
        replication_factor.saturating_sub(1).max(1)
    }
}

/// A cluster shape: instance type, broker count and per-broker storage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shape {
    /// The instance type of every broker.
    pub instance: Instance,
    /// Number of brokers.
    pub brokers: u32,
    /// Storage of each broker.
    pub storage: Storage,
}

impl Shape {
    /// A shape, checked against the workload's replication factor.
    pub fn new(
        instance: Instance,
        brokers: u32,
        storage: Storage,
        workload: &Workload,
    ) -> Result<Self, ModelError> {
        if brokers == 0 {
            return Err(ModelError::NoBrokers);
        }
        if u32::from(workload.replication_factor) > brokers {
            return Err(ModelError::ReplicationFactorAboveBrokers {
                rf: workload.replication_factor,
                brokers,
            });
        }
        Ok(Self {
            instance,
            brokers,
            storage,
        })
    }

    /// A short human name: `3 x m7g.large, gp3 1000 GB, 250 MB/s`.
    pub fn label(&self) -> String {
        format!(
            "{} x {}, {}",
            self.brokers, self.instance.name, self.storage
        )
    }
}

/// What one broker can sustain (or burst to) on each resource.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BrokerCapacity {
    /// Storage write throughput.
    pub storage: Throughput,
    /// EBS link throughput; `None` for local storage.
    pub storage_link: Option<Throughput>,
    /// Network throughput (outbound).
    pub network: Throughput,
}

impl BrokerCapacity {
    /// Sustained (baseline) capacity of a broker of this shape.
    pub fn sustained(shape: &Shape) -> Self {
        Self::of_parts(&shape.instance, &shape.storage)
    }

    /// Sustained capacity of a broker of `instance` with `storage`.
    pub fn of_parts(instance: &Instance, storage: &Storage) -> Self {
        Self {
            storage: storage.throughput,
            storage_link: storage.kind.is_network_attached().then_some(instance.ebs),
            network: instance.network,
        }
    }

    /// Burst capacity: network and EBS link at their burst rates where the instance has them.
    pub fn burst(shape: &Shape) -> Self {
        let base = Self::sustained(shape);
        Self {
            storage: base.storage,
            storage_link: base
                .storage_link
                .map(|l| shape.instance.ebs_burst.unwrap_or(l)),
            network: shape.instance.network_burst.unwrap_or(base.network),
        }
    }

    /// The capacity of one resource, `None` when the shape does not have it.
    pub fn get(&self, resource: Resource) -> Option<Throughput> {
        match resource {
            Resource::Storage => Some(self.storage),
            Resource::StorageLink => self.storage_link,
            Resource::Network => Some(self.network),
        }
    }
}

/// Per-broker load per unit of cluster ingress, for each resource.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LoadFactors {
    /// Storage (and EBS link) writes per broker per byte of cluster ingress.
    pub storage: f64,
    /// Network out per broker per byte of cluster ingress.
    pub network: f64,
}

impl LoadFactors {
    /// Every broker up.
    pub fn all_up(brokers: u32, workload: &Workload) -> Self {
        let n = f64::from(brokers);
        let r = f64::from(workload.replication_factor);
        Self {
            storage: r / n,
            network: (workload.consumer_fanout + r - 1.0) / n,
        }
    }

    /// One broker down (see the module docs); `None` when the cluster cannot serve `acks=all`
    /// producers at all with a broker down, with the reason.
    pub fn one_down(brokers: u32, workload: &Workload) -> Result<Self, &'static str> {
        let rf = workload.replication_factor;
        if brokers < 2 {
            return Err("a single broker down leaves no broker");
        }
        if rf < 2 {
            return Err("with replication factor 1 the stopped broker's partitions go offline");
        }
        if rf - 1 < workload.min_insync_replicas {
            return Err(
                "partitions on the stopped broker fall below min.insync.replicas, so acks=all producers are refused",
            );
        }
        let n = f64::from(brokers);
        let r = f64::from(rf);
        Ok(Self {
            storage: r / n,
            network: (workload.consumer_fanout - 1.0) / (n - 1.0) + r / n,
        })
    }

    /// The per-broker load on `resource` at cluster ingress `ingress`.
    pub fn load(&self, resource: Resource, ingress: Throughput) -> Throughput {
        let f = match resource {
            Resource::Storage | Resource::StorageLink => self.storage,
            Resource::Network => self.network,
        };
        Throughput::from_bytes_per_s(ingress.bytes_per_s() * f)
    }
}

/// The highest cluster ingress a capacity supports, and what limits it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limit {
    /// The cluster ingress limit.
    pub ingress: Throughput,
    /// The resource that sets it.
    pub bottleneck: Resource,
    /// The limit each resource alone would set.
    pub by_resource: Vec<(Resource, Throughput)>,
}

impl Limit {
    /// The limit each resource alone would set, in a fixed order (storage, storage link,
    /// network), skipping resources the shape does not have. No allocation.
    fn per_resource(
        capacity: &BrokerCapacity,
        factors: &LoadFactors,
    ) -> impl Iterator<Item = (Resource, Throughput)> {
        [Resource::Storage, Resource::StorageLink, Resource::Network]
            .into_iter()
            .filter_map(move |resource| {
                let cap = capacity.get(resource)?;
                let f = match resource {
                    Resource::Storage | Resource::StorageLink => factors.storage,
                    Resource::Network => factors.network,
                };
                let limit = if f <= 0.0 {
                    f64::INFINITY
                } else {
                    cap.bytes_per_s() / f
                };
                Some((resource, Throughput::from_bytes_per_s(limit)))
            })
    }

    /// The limit and its bottleneck only, without the per-resource breakdown (no allocation;
    /// the sizing search calls this tens of thousands of times).
    pub fn ingress_only(
        capacity: &BrokerCapacity,
        factors: &LoadFactors,
    ) -> (Throughput, Resource) {
        Self::per_resource(capacity, factors)
            .min_by(|a, b| a.1.bytes_per_s().total_cmp(&b.1.bytes_per_s()))
            .map(|(r, t)| (t, r))
            .unwrap_or((Throughput::ZERO, Resource::Storage))
    }

    /// The limit for per-broker `capacity` under `factors`.
    pub fn compute(capacity: &BrokerCapacity, factors: &LoadFactors) -> Self {
        let by_resource: Vec<(Resource, Throughput)> =
            Self::per_resource(capacity, factors).collect();
        let (ingress, bottleneck) = Self::ingress_only(capacity, factors);
        Self {
            ingress,
            bottleneck,
            by_resource,
        }
    }
}

/// The limit with one broker down.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OneDownLimit {
    /// The cluster ingress limit (zero when a broker down refuses writes).
    pub ingress: Throughput,
    /// The resource that sets it, when it is a throughput limit.
    pub bottleneck: Option<Resource>,
    /// Why the limit is zero, when it is.
    pub reason: Option<String>,
}

/// Monthly cost of a shape.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MonthlyCost {
    /// All brokers' instances.
    pub instances: f64,
    /// All brokers' storage.
    pub storage: f64,
    /// The sum.
    pub total: f64,
}

impl MonthlyCost {
    /// The monthly cost of `shape` with `catalog`'s prices.
    pub fn of(shape: &Shape, catalog: &Catalog) -> Self {
        Self::of_parts(&shape.instance, shape.brokers, &shape.storage, catalog)
    }

    /// The monthly cost of `brokers` brokers of `instance` with `storage` each.
    pub fn of_parts(
        instance: &Instance,
        brokers: u32,
        storage: &Storage,
        catalog: &Catalog,
    ) -> Self {
        let n = f64::from(brokers);
        let instances = n * instance.usd_per_hour * catalog.hours_per_month;
        let storage = n * storage.monthly_cost(catalog);
        Self {
            instances,
            storage,
            total: instances + storage,
        }
    }
}

/// Everything the model says about one shape under one workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Per-broker sustained capacity.
    pub broker_capacity: BrokerCapacity,
    /// The sustained limit (Equation 1).
    pub sustained: Limit,
    /// The sustained limit times the target utilization.
    pub recommended: Throughput,
    /// The limit with one broker down.
    pub one_broker_down: OneDownLimit,
    /// The burst limit and how long credits hold it, when the instance bursts.
    pub burst: Option<BurstLimit>,
    /// Monthly cost.
    pub monthly_cost: MonthlyCost,
}

/// Evaluates a shape under a workload.
pub fn evaluate(shape: &Shape, workload: &Workload, catalog: &Catalog) -> Evaluation {
    let broker_capacity = BrokerCapacity::sustained(shape);
    let all_up = LoadFactors::all_up(shape.brokers, workload);
    let sustained = Limit::compute(&broker_capacity, &all_up);
    let recommended =
        Throughput::from_bytes_per_s(sustained.ingress.bytes_per_s() * workload.target_utilization);
    let one_broker_down = match LoadFactors::one_down(shape.brokers, workload) {
        Ok(factors) => {
            let limit = Limit::compute(&broker_capacity, &factors);
            OneDownLimit {
                ingress: limit.ingress,
                bottleneck: Some(limit.bottleneck),
                reason: None,
            }
        }
        Err(reason) => OneDownLimit {
            ingress: Throughput::ZERO,
            bottleneck: None,
            reason: Some(reason.to_string()),
        },
    };
    let burst = burst::burst_limit(shape, workload, catalog);
    Evaluation {
        broker_capacity,
        sustained,
        recommended,
        one_broker_down,
        burst,
        monthly_cost: MonthlyCost::of(shape, catalog),
    }
}

/// One resource's load and utilization at a given ingress.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResourceLoad {
    /// The resource.
    pub resource: Resource,
    /// Load per broker.
    pub per_broker: Throughput,
    /// Sustained capacity per broker.
    pub capacity: Throughput,
    /// `per_broker / capacity`.
    pub utilization: f64,
}

/// Per-broker loads and utilizations at a given cluster ingress, all brokers up.
pub fn loads_at(shape: &Shape, workload: &Workload, ingress: Throughput) -> Vec<ResourceLoad> {
    let cap = BrokerCapacity::sustained(shape);
    let factors = LoadFactors::all_up(shape.brokers, workload);
    [Resource::Storage, Resource::StorageLink, Resource::Network]
        .into_iter()
        .filter_map(|resource| {
            let capacity = cap.get(resource)?;
            let per_broker = factors.load(resource, ingress);
            Some(ResourceLoad {
                resource,
                per_broker,
                capacity,
                utilization: per_broker.bytes_per_s() / capacity.bytes_per_s(),
            })
        })
        .collect()
}

/// Storage each broker needs to keep `retention` of `ingress` at `replication_factor`, with the
/// disk at most `max_fill` full: `ingress * retention * r / n / max_fill`, in GB.
pub fn storage_needed_gb(
    ingress: Throughput,
    retention_secs: f64,
    replication_factor: u16,
    brokers: u32,
    max_fill: f64,
) -> f64 {
    ingress.bytes_per_s() * retention_secs * f64::from(replication_factor)
        / f64::from(brokers)
        / max_fill
        / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(c: &Catalog, name: &str, brokers: u32, storage_mb: f64, w: &Workload) -> Shape {
        let instance = c.instance(&name.parse().unwrap()).unwrap().clone();
        let storage = Storage::gp3(c, 1000.0, Throughput::from_mb_per_s(storage_mb)).unwrap();
        Shape::new(instance, brokers, storage, w).unwrap()
    }

    #[test]
    fn one_down_keeps_storage_writes_and_concentrates_consumers() {
        let c = Catalog::builtin().unwrap();
        let w = Workload::new(3, 2, 2.0, 0.8).unwrap();
        let s = shape(&c, "m7g.large", 3, 250.0, &w);
        let e = evaluate(&s, &w, &c);
        // Storage link: 78.75 MB/s per broker, t * 3 / 3 per broker either way.
        assert!((e.sustained.ingress.mb_per_s() - 78.75).abs() < 1e-9);
        // Network with one down: t * ((2 - 1) / 2 + 3 / 3) = 1.5 t <= 119.936.
        let one = e.one_broker_down.ingress.mb_per_s();
        assert!(
            (one - 119.936 / 1.5).abs().min((one - 78.75).abs()) < 1e-9,
            "{one}"
        );
        assert_eq!(e.one_broker_down.bottleneck, Some(Resource::StorageLink));
    }

    #[test]
    fn min_isr_equal_to_rf_makes_one_down_zero() {
        let c = Catalog::builtin().unwrap();
        let w = Workload::new(2, 2, 1.0, 0.8).unwrap();
        let s = shape(&c, "m7g.large", 3, 250.0, &w);
        let e = evaluate(&s, &w, &c);
        assert_eq!(e.one_broker_down.ingress, Throughput::ZERO);
        assert!(
            e.one_broker_down
                .reason
                .unwrap()
                .contains("min.insync.replicas")
        );
    }

    #[test]
    fn invalid_workloads_and_shapes_are_refused() {
        assert!(Workload::new(0, 1, 1.0, 0.8).is_err());
        assert!(Workload::new(3, 4, 1.0, 0.8).is_err());
        assert!(Workload::new(3, 2, -1.0, 0.8).is_err());
        assert!(Workload::new(3, 2, 1.0, 1.5).is_err());
        let c = Catalog::builtin().unwrap();
        let w = Workload::new(3, 2, 1.0, 0.8).unwrap();
        let instance = c.instance(&"m7g.large".parse().unwrap()).unwrap().clone();
        let storage = Storage::gp3(&c, 100.0, Throughput::from_mb_per_s(250.0)).unwrap();
        let err = Shape::new(instance, 2, storage, &w).unwrap_err();
        assert!(
            err.to_string().contains("above the broker count 2"),
            "{err}"
        );
    }

    #[test]
    fn retention_storage() {
        // 100 MB/s for a day at r = 3 on 6 brokers, 80% full: 100e6 * 86400 * 3 / 6 / 0.8.
        let gb = storage_needed_gb(Throughput::from_mb_per_s(100.0), 86_400.0, 3, 6, 0.8);
        assert!((gb - 5400.0).abs() < 1e-9);
    }
}
