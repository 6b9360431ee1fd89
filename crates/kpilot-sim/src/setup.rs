//! The simulated cluster's fixed facts: replication, consumers, storage, local retention and the
//! constraints the policy works within; and the storage each instance type gets. Pure.

use kpilot_capacity::{Catalog, Instance, Shape, Storage, StorageError, StorageKind};
use kpilot_policy::Constraints;
use kpilot_units::{Span, Throughput};
use serde::Serialize;

/// Per-broker storage of the simulated cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StorageSetup {
    /// The kind (kept through every move).
    pub kind: StorageKind,
    /// Provisioned throughput per volume (gp3, io2); `None`: gp3's included baseline, io2
    /// 1000 MiB/s. Ignored for st1 (follows the size) and local NVMe.
    pub throughput: Option<Throughput>,
    /// Volume size per broker, GB; `None`: sized for the local retention at the trace's peak
    /// on the fewest brokers allowed (at most the volume type's largest size).
    pub volume_gb: Option<f64>,
}

/// The simulated cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterSetup {
    /// Replication factor.
    pub replication_factor: u16,
    /// `min.insync.replicas`.
    pub min_insync_replicas: u16,
    /// Consumer fan-out when the trace has no egress (consumer groups reading everything).
    pub consumer_fanout: f64,
    /// Storage per broker.
    pub storage: StorageSetup,
    /// How long data stays on the brokers' disks (with tiered storage: the local retention).
    pub retention: Span,
    /// What the policy may choose from; `families` must name at least one family.
    pub constraints: Constraints,
    /// How long a broker really takes to restart in a roll (the simulated truth); `None`:
    /// what the policy assumes (`settings.transition.restart`).
    pub restart: Option<Span>,
    /// Whether the predictive policy plans rolls with the restarts it measured in its own
    /// earlier rolls ([`kpilot_policy::learned_restart`], as the operator does unless
    /// `spec.policy.restartTime` is set) rather than with the assumption throughout.
    pub learn_restart: bool,
    /// The rate each receiving broker really reaches in reassignments and rebuilds (the
    /// simulated truth: replica fetchers, disks or latency below the throttle); `None`: the
    /// throttle the plan gives it.
    pub move_rate: Option<Throughput>,
    /// Whether the predictive policy plans moves at the share of their throttle its own
    /// earlier moves reached ([`kpilot_policy::learned_move_share`], as the operator does
    /// with its horizontal operations) rather than at the throttle throughout.
    pub learn_moves: bool,
}

impl ClusterSetup {
    /// The volume size per broker to use, GB, given the most data the trace ever stores.
    pub fn volume_gb(&self, catalog: &Catalog, max_stored_bytes: f64) -> f64 {
        if let Some(gb) = self.storage.volume_gb {
            return gb;
        }
        let min_brokers = self
            .constraints
            .min_brokers
            .max(u32::from(self.replication_factor))
            .max(1);
        let gb = max_stored_bytes / f64::from(min_brokers) / self.constraints.max_disk_fill / 1e9;
        let (min, max) = match self.storage.kind {
            StorageKind::St1 => (catalog.st1.min_size_gb, catalog.st1.max_size_gb),
            StorageKind::Io2 => (catalog.io2.min_size_gb, catalog.io2.max_size_gb),
            _ => (catalog.gp3.min_size_gb, catalog.gp3.max_size_gb),
        };
        // Capped at the largest volume: then more brokers are needed to hold the data.
        ((gb / 100.0).ceil() * 100.0).max(min).max(100.0).min(max)
    }

    /// The storage a broker of `instance` has, with volumes of `volume_gb`.
    pub fn storage_for(
        &self,
        catalog: &Catalog,
        instance: &Instance,
        volume_gb: f64,
    ) -> Result<Storage, StorageError> {
        match self.storage.kind {
            StorageKind::Gp3 => Storage::gp3(
                catalog,
                volume_gb,
                self.storage
                    .throughput
                    .unwrap_or(Throughput::from_mib_per_s(catalog.gp3.baseline_mib_per_s)),
            ),
            StorageKind::Io2 => Storage::io2(
                catalog,
                volume_gb,
                self.storage
                    .throughput
                    .unwrap_or(Throughput::from_mib_per_s(1000.0)),
            ),
            StorageKind::St1 => Storage::st1(catalog, volume_gb),
            StorageKind::LocalNvme => Storage::local_nvme(instance, None),
        }
    }

    /// A shape of this setup.
    pub fn shape(
        &self,
        catalog: &Catalog,
        instance: &Instance,
        brokers: u32,
        volume_gb: f64,
    ) -> Result<Shape, StorageError> {
        Ok(Shape {
            instance: instance.clone(),
            brokers,
            storage: self.storage_for(catalog, instance, volume_gb)?,
        })
    }
}
