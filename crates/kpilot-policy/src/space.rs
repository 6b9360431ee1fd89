//! The shapes the constraints allow, and the ones reachable from the current shape in a single
//! move (a vertical roll to another allowed instance type, or adding/removing brokers). Storage
//! is kept: network-attached volumes keep their kind, size and provisioned throughput (a roll
//! moves them to the new node); local NVMe follows the instance type. Pure.

use kpilot_capacity::{Catalog, CatalogError, Shape, Storage, StorageKind, Workload};
use kpilot_units::Span;
use serde::Serialize;
use thiserror::Error;

use crate::transition::Mechanism;

/// What the policy may choose from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Constraints {
    /// Allowed instance families (empty: the current shape's family only).
    pub families: Vec<String>,
    /// Allowed instance sizes, e.g. `xlarge` (empty: all).
    pub sizes: Vec<String>,
    /// Fewest brokers.
    pub min_brokers: u32,
    /// Most brokers.
    pub max_brokers: u32,
    /// Availability zones: broker counts are multiples of it.
    pub zones: u32,
    /// Largest fraction of a broker's disk the data may fill.
    pub max_disk_fill: f64,
    /// Whether instance-type rolls are allowed.
    pub allow_vertical: bool,
    /// Whether adding and removing brokers is allowed.
    pub allow_horizontal: bool,
    /// How long data stays on the brokers' disks (with tiered storage: the local retention).
    /// With it a shape holds only the ingress whose data its disks hold (see
    /// [`crate::data_limit`]), so growing data is planned for like growing throughput;
    /// `None`: only the data stored now is checked.
    pub local_retention: Option<Span>,
}

impl Default for Constraints {
    fn default() -> Self {
        Self {
            families: Vec::new(),
            sizes: Vec::new(),
            min_brokers: 3,
            max_brokers: 30,
            zones: 3,
            max_disk_fill: 0.8,
            allow_vertical: true,
            allow_horizontal: true,
            local_retention: None,
        }
    }
}

/// Why constraints are unusable.
#[derive(Debug, Error)]
pub enum ConstraintsError {
    /// Zero zones.
    #[error("zones must be at least 1")]
    ZeroZones,
    /// No broker count fits.
    #[error(
        "no broker count between {min} and {max} is a multiple of {zones} zones and at least the replication factor {rf}"
    )]
    NoBrokerCount {
        /// Fewest brokers.
        min: u32,
        /// Most brokers.
        max: u32,
        /// Zones.
        zones: u32,
        /// Replication factor.
        rf: u16,
    },
    /// More brokers than any plan considers.
    #[error(
        "max brokers {0} is above {most}, the most brokers kpilot plans a cluster for",
        most = kpilot_capacity::MAX_BROKERS
    )]
    TooManyBrokers(u32),
    /// A disk fill outside (0, 1].
    #[error("max disk fill {0} must be above 0 and at most 1")]
    MaxFillOutOfRange(f64),
    /// An unknown family or size.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// A shape reachable in one move.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Move {
    /// The target shape.
    pub shape: Shape,
    /// How to get there.
    pub mechanism: Mechanism,
}

impl Constraints {
    /// Checks the constraints against the catalog and the workload.
    pub fn validate(&self, catalog: &Catalog, workload: &Workload) -> Result<(), ConstraintsError> {
        if self.zones == 0 {
            return Err(ConstraintsError::ZeroZones);
        }
        if self.max_brokers > kpilot_capacity::MAX_BROKERS {
            return Err(ConstraintsError::TooManyBrokers(self.max_brokers));
        }
        if !(self.max_disk_fill > 0.0 && self.max_disk_fill <= 1.0) {
            return Err(ConstraintsError::MaxFillOutOfRange(self.max_disk_fill));
        }
        for f in &self.families {
            catalog.family(f)?;
        }
        for s in &self.sizes {
            catalog.check_size_name(s)?;
        }
        if self.broker_counts(workload).is_empty() {
            return Err(ConstraintsError::NoBrokerCount {
                min: self.min_brokers,
                max: self.max_brokers,
                zones: self.zones,
                rf: workload.replication_factor,
            });
        }
        Ok(())
    }

    /// The allowed broker counts, smallest first.
    pub fn broker_counts(&self, workload: &Workload) -> Vec<u32> {
        let lo = self
            .min_brokers
            .max(u32::from(workload.replication_factor))
            .max(1);
        (lo..=self.max_brokers)
            .filter(|n| n % self.zones.max(1) == 0)
            .collect()
    }

    fn allows_instance(&self, family: &str, size: &str, current_family: &str) -> bool {
        let family_ok = if self.families.is_empty() {
            family == current_family
        } else {
            self.families
                .iter()
                .any(|f| f.trim().eq_ignore_ascii_case(family))
        };
        family_ok
            && (self.sizes.is_empty()
                || self
                    .sizes
                    .iter()
                    .any(|s| s.trim().eq_ignore_ascii_case(size)))
    }
}

/// The storage a broker of `instance` would have if the cluster moved to it from `current`.
fn storage_for(current: &Storage, instance: &kpilot_capacity::Instance) -> Option<Storage> {
    if current.kind == StorageKind::LocalNvme {
        Storage::local_nvme(instance, None).ok()
    } else {
        Some(*current)
    }
}

/// The shapes a vertical roll of `current` may reach under the constraints (none when vertical
/// moves are not allowed).
pub fn vertical_shapes<'a>(
    current: &'a Shape,
    catalog: &'a Catalog,
    constraints: &'a Constraints,
) -> impl Iterator<Item = Shape> + 'a {
    catalog
        .instances()
        .filter(move |instance| {
            constraints.allow_vertical
                && instance.name != current.instance.name
                && constraints.allows_instance(
                    instance.name.family(),
                    instance.name.size(),
                    current.instance.name.family(),
                )
        })
        .filter_map(move |instance| {
            Some(Shape {
                instance: instance.clone(),
                brokers: current.brokers,
                storage: storage_for(&current.storage, instance)?,
            })
        })
}

/// Every shape reachable from `current` in one move under the constraints.
pub fn reachable_shapes(
    current: &Shape,
    catalog: &Catalog,
    constraints: &Constraints,
    workload: &Workload,
) -> Vec<Move> {
    let mut out: Vec<Move> = vertical_shapes(current, catalog, constraints)
        .map(|shape| Move {
            shape,
            mechanism: Mechanism::VerticalRoll,
        })
        .collect();
    if constraints.allow_horizontal {
        for n in constraints.broker_counts(workload) {
            if n == current.brokers {
                continue;
            }
            out.push(Move {
                shape: Shape {
                    instance: current.instance.clone(),
                    brokers: n,
                    storage: current.storage,
                },
                mechanism: if n > current.brokers {
                    Mechanism::AddBrokers
                } else {
                    Mechanism::RemoveBrokers
                },
            });
        }
    }
    out
}

/// Every shape the constraints allow with the storage of `template` (its family when the
/// constraints name none): the space a static baseline is chosen from.
pub fn all_shapes(
    template: &Shape,
    catalog: &Catalog,
    constraints: &Constraints,
    workload: &Workload,
) -> Vec<Shape> {
    let mut out = Vec::new();
    for instance in catalog.instances() {
        if !constraints.allows_instance(
            instance.name.family(),
            instance.name.size(),
            template.instance.name.family(),
        ) {
            continue;
        }
        let Some(storage) = storage_for(&template.storage, instance) else {
            continue;
        };
        for n in constraints.broker_counts(workload) {
            out.push(Shape {
                instance: instance.clone(),
                brokers: n,
                storage,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kpilot_units::Throughput;

    #[test]
    fn reachable_shapes_are_single_moves_within_the_constraints() {
        let c = Catalog::builtin().unwrap();
        let w = Workload::new(3, 2, 2.0, 0.8).unwrap();
        let i = c.instance(&"m7g.xlarge".parse().unwrap()).unwrap().clone();
        let s = Storage::gp3(&c, 1000.0, Throughput::from_mib_per_s(500.0)).unwrap();
        let cur = Shape::new(i, 6, s, &w).unwrap();
        let k = Constraints {
            max_brokers: 12,
            ..Default::default()
        };
        k.validate(&c, &w).unwrap();
        let moves = reachable_shapes(&cur, &c, &k, &w);
        let vertical = moves
            .iter()
            .filter(|m| m.mechanism == Mechanism::VerticalRoll)
            .count();
        assert_eq!(vertical, 6, "the other m7g sizes");
        let counts: Vec<u32> = moves
            .iter()
            .filter(|m| m.mechanism != Mechanism::VerticalRoll)
            .map(|m| m.shape.brokers)
            .collect();
        assert_eq!(counts, vec![3, 9, 12]);
        for m in &moves {
            assert!(m.shape.instance.name == cur.instance.name || m.shape.brokers == cur.brokers);
        }
        assert_eq!(all_shapes(&cur, &c, &k, &w).len(), 7 * 4);
    }

    /// The catalog finds `M7G` and `XLarge` (as `-i M7G.XLARGE` is m7g.xlarge): the shapes
    /// they allow are those of `m7g` and `xlarge`, not none.
    #[test]
    fn families_and_sizes_allow_shapes_in_any_case() {
        let c = Catalog::builtin().unwrap();
        let w = Workload::new(3, 2, 2.0, 0.8).unwrap();
        let i = c.instance(&"c7g.large".parse().unwrap()).unwrap().clone();
        let s = Storage::gp3(&c, 1000.0, Throughput::from_mib_per_s(500.0)).unwrap();
        let cur = Shape::new(i, 3, s, &w).unwrap();
        let k = Constraints {
            families: vec!["M7G".into()],
            sizes: vec!["XLarge".into(), " 2XLARGE".into()],
            ..Default::default()
        };
        k.validate(&c, &w).unwrap();
        let names: Vec<String> = vertical_shapes(&cur, &c, &k)
            .map(|s| s.instance.name.to_string())
            .collect();
        assert_eq!(names, ["m7g.xlarge", "m7g.2xlarge"]);
    }

    #[test]
    fn invalid_constraints_are_refused() {
        let c = Catalog::builtin().unwrap();
        let w = Workload::new(3, 2, 2.0, 0.8).unwrap();
        let k = Constraints {
            min_brokers: 4,
            max_brokers: 5,
            ..Default::default()
        };
        assert!(matches!(
            k.validate(&c, &w),
            Err(ConstraintsError::NoBrokerCount { .. })
        ));
        // Every count up to the maximum is a candidate: 100000 made a simulation run for
        // minutes, 4000000000 a search of billions.
        let most = |max_brokers| Constraints {
            max_brokers,
            ..Default::default()
        };
        most(1000).validate(&c, &w).expect("1000 brokers");
        assert!(matches!(
            most(1001).validate(&c, &w),
            Err(ConstraintsError::TooManyBrokers(1001))
        ));
        let k = Constraints {
            families: vec!["m7gx".into()],
            ..Default::default()
        };
        assert!(k.validate(&c, &w).is_err());
    }
}
