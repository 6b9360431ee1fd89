//! Broker storage options (EBS gp3, st1, io2, or instance-local NVMe): the sustained write
//! throughput each gives a broker, whether writes cross the instance's EBS link, and the
//! monthly cost. Pure.

use std::fmt;
use std::str::FromStr;

use kpilot_units::Throughput;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::catalog::{Catalog, Instance};

const BYTES_PER_TIB: f64 = 1_099_511_627_776.0;

/// The kinds of broker storage the model knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StorageKind {
    /// EBS gp3 (SSD): throughput provisioned independently of size.
    Gp3,
    /// EBS st1 (throughput-optimized HDD): throughput grows with size.
    St1,
    /// EBS io2 Block Express (SSD): throughput from provisioned IOPS.
    Io2,
    /// Instance-local NVMe SSD: no EBS link, capacity fixed by the instance type.
    LocalNvme,
}

impl StorageKind {
    /// Every kind, in search order.
    pub const ALL: [StorageKind; 4] = [
        StorageKind::Gp3,
        StorageKind::St1,
        StorageKind::Io2,
        StorageKind::LocalNvme,
    ];

    /// Whether writes to this storage cross the instance's EBS link.
    pub fn is_network_attached(self) -> bool {
        !matches!(self, StorageKind::LocalNvme)
    }

    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageKind::Gp3 => "gp3",
            StorageKind::St1 => "st1",
            StorageKind::Io2 => "io2",
            StorageKind::LocalNvme => "local-nvme",
        }
    }
}

impl fmt::Display for StorageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown storage kind name.
#[derive(Debug, Clone, Error)]
#[error("unknown storage kind '{0}': use gp3, st1, io2 or local-nvme")]
pub struct UnknownStorageKind(pub String);

impl FromStr for StorageKind {
    type Err = UnknownStorageKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "gp3" => Ok(StorageKind::Gp3),
            "st1" => Ok(StorageKind::St1),
            "io2" => Ok(StorageKind::Io2),
            "local-nvme" | "local" | "nvme" | "instance-store" => Ok(StorageKind::LocalNvme),
            _ => Err(UnknownStorageKind(s.to_string())),
        }
    }
}

/// Why a storage configuration is not possible on an instance.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum StorageError {
    /// Local NVMe asked for on an instance type without any.
    #[error(
        "{instance} has no local NVMe storage; choose gp3, st1 or io2, or a type with NVMe (i3, i3en, i4i, im4gn, is4gen)"
    )]
    NoLocalNvme {
        /// The instance type.
        instance: String,
    },
    /// Provisioned throughput above what the volume type allows.
    #[error("{kind} throughput {requested} is above the volume type's maximum of {max}")]
    ThroughputTooHigh {
        /// The volume type.
        kind: StorageKind,
        /// What was asked for.
        requested: Throughput,
        /// The maximum.
        max: Throughput,
    },
    /// A volume size outside the volume type's range.
    #[error(
        "{kind} volume of {size_gb:.0} GB is outside the sizes {kind} allows, from {min_gb:.0} to {max_gb:.0} GB; choose a size in that range"
    )]
    SizeOutOfRange {
        /// The volume type.
        kind: StorageKind,
        /// The size asked for (or needed).
        size_gb: f64,
        /// Smallest allowed.
        min_gb: f64,
        /// Largest allowed.
        max_gb: f64,
    },
    /// Zero throughput.
    #[error("storage throughput must be above zero")]
    ZeroThroughput,
}

/// One broker's storage: kind, size and sustained write throughput.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Storage {
    /// The kind.
    pub kind: StorageKind,
    /// Capacity per broker, GB (for local NVMe: the instance's disks).
    pub size_gb: f64,
    /// Sustained write throughput per broker (MB/s in JSON).
    #[serde(rename = "throughput_mb_per_s")]
    pub throughput: Throughput,
    /// For local NVMe: true when the throughput is the catalog's derived default, not a
    /// measurement.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub throughput_is_default: bool,
}

impl Storage {
    /// A gp3 volume of `size_gb` with `throughput` provisioned.
    pub fn gp3(
        catalog: &Catalog,
        size_gb: f64,
        throughput: Throughput,
    ) -> Result<Self, StorageError> {
        let p = &catalog.gp3;
        check_throughput(StorageKind::Gp3, throughput, p.max_mib_per_s)?;
        check_size(StorageKind::Gp3, size_gb, p.min_size_gb, p.max_size_gb)?;
        Ok(Self {
            kind: StorageKind::Gp3,
            size_gb,
            throughput,
            throughput_is_default: false,
        })
    }

    /// An st1 volume of `size_gb`; its baseline throughput follows from the size.
    pub fn st1(catalog: &Catalog, size_gb: f64) -> Result<Self, StorageError> {
        let p = &catalog.st1;
        check_size(StorageKind::St1, size_gb, p.min_size_gb, p.max_size_gb)?;
        let tib = size_gb * 1e9 / BYTES_PER_TIB;
        let mib = (p.baseline_mib_per_s_per_tib * tib).min(p.max_mib_per_s);
        Ok(Self {
            kind: StorageKind::St1,
            size_gb,
            throughput: Throughput::from_mib_per_s(mib),
            throughput_is_default: false,
        })
    }

    /// The st1 size (GB) whose baseline throughput is `throughput` (capped at the maximum).
    pub fn st1_size_for(catalog: &Catalog, throughput: Throughput) -> f64 {
        let p = &catalog.st1;
        let mib = throughput.mib_per_s().min(p.max_mib_per_s);
        mib / p.baseline_mib_per_s_per_tib * BYTES_PER_TIB / 1e9
    }

    /// An io2 volume of `size_gb` with IOPS provisioned for `throughput`.
    pub fn io2(
        catalog: &Catalog,
        size_gb: f64,
        throughput: Throughput,
    ) -> Result<Self, StorageError> {
        let p = &catalog.io2;
        check_throughput(StorageKind::Io2, throughput, p.max_mib_per_s)?;
        check_size(StorageKind::Io2, size_gb, p.min_size_gb, p.max_size_gb)?;
        Ok(Self {
            kind: StorageKind::Io2,
            size_gb,
            throughput,
            throughput_is_default: false,
        })
    }

    /// The instance's local NVMe disks; `write` overrides the catalog's write throughput.
    pub fn local_nvme(
        instance: &Instance,
        write: Option<Throughput>,
    ) -> Result<Self, StorageError> {
        let (Some(size_gb), Some(default_write)) = (instance.nvme_gb, instance.nvme_write) else {
            return Err(StorageError::NoLocalNvme {
                instance: instance.name.to_string(),
            });
        };
        if let Some(w) = write
            && w.is_zero()
        {
            return Err(StorageError::ZeroThroughput);
        }
        Ok(Self {
            kind: StorageKind::LocalNvme,
            size_gb,
            throughput: write.unwrap_or(default_write),
            throughput_is_default: write.is_none() && instance.nvme_write_is_default,
        })
    }

    /// Monthly cost of one broker's storage, in the catalog's currency.
    pub fn monthly_cost(&self, catalog: &Catalog) -> f64 {
        match self.kind {
            StorageKind::Gp3 => {
                let p = &catalog.gp3;
                let extra = (self.throughput.mib_per_s() - p.baseline_mib_per_s).max(0.0);
                self.size_gb * p.usd_per_gb_month + extra * p.usd_per_mib_per_s_month
            }
            StorageKind::St1 => self.size_gb * catalog.st1.usd_per_gb_month,
            StorageKind::Io2 => {
                let p = &catalog.io2;
                let iops = self.throughput.mib_per_s() * 1024.0 / p.io_size_kib;
                self.size_gb * p.usd_per_gb_month + iops * p.usd_per_iops_month
            }
            StorageKind::LocalNvme => 0.0,
        }
    }
}

impl fmt::Display for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            StorageKind::LocalNvme => write!(
                f,
                "local-nvme {:.0} GB, {}{}",
                self.size_gb,
                self.throughput,
                if self.throughput_is_default {
                    " (default)"
                } else {
                    ""
                }
            ),
            kind => write!(f, "{kind} {:.0} GB, {}", self.size_gb, self.throughput),
        }
    }
}

fn check_throughput(kind: StorageKind, t: Throughput, max_mib: f64) -> Result<(), StorageError> {
    if t.is_zero() {
        return Err(StorageError::ZeroThroughput);
    }
    // A hair of tolerance so "1000MiB/s" typed as MB/s rounding doesn't trip the check.
    if t.mib_per_s() > max_mib * (1.0 + 1e-9) {
        return Err(StorageError::ThroughputTooHigh {
            kind,
            requested: t,
            max: Throughput::from_mib_per_s(max_mib),
        });
    }
    Ok(())
}

fn check_size(
    kind: StorageKind,
    size_gb: f64,
    min_gb: f64,
    max_gb: f64,
) -> Result<(), StorageError> {
    if !(size_gb >= min_gb && size_gb <= max_gb) {
        return Err(StorageError::SizeOutOfRange {
            kind,
            size_gb,
            min_gb,
            max_gb,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gp3_cost_counts_throughput_above_baseline() {
        let c = Catalog::builtin().unwrap();
        let s = Storage::gp3(&c, 1000.0, Throughput::from_mib_per_s(250.0)).unwrap();
        assert!((s.monthly_cost(&c) - (80.0 + 125.0 * 0.04)).abs() < 1e-9);
        let err = Storage::gp3(&c, 1000.0, Throughput::from_mib_per_s(1500.0)).unwrap_err();
        assert!(
            err.to_string().contains("above the volume type's maximum"),
            "{err}"
        );
    }

    /// A volume size out of range was "outside the allowed 1..=16384 GB", in Rust range syntax.
    #[test]
    fn a_size_out_of_range_names_the_range_in_words() {
        let c = Catalog::builtin().unwrap();
        let err = Storage::gp3(&c, 20_000.0, Throughput::from_mib_per_s(250.0)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "gp3 volume of 20000 GB is outside the sizes gp3 allows, from 1 to 16384 GB; choose a size in that range"
        );
    }

    #[test]
    fn st1_throughput_grows_with_size_up_to_the_cap() {
        let c = Catalog::builtin().unwrap();
        let one_tib = BYTES_PER_TIB / 1e9;
        let s = Storage::st1(&c, one_tib).unwrap();
        assert!((s.throughput.mib_per_s() - 40.0).abs() < 1e-9);
        let s = Storage::st1(&c, 16000.0).unwrap();
        assert!((s.throughput.mib_per_s() - 500.0).abs() < 1e-9);
        assert!(
            (Storage::st1_size_for(&c, Throughput::from_mib_per_s(40.0)) - one_tib).abs() < 1e-6
        );
    }

    #[test]
    fn local_nvme_needs_disks() {
        let c = Catalog::builtin().unwrap();
        let m7g = c.instance(&"m7g.large".parse().unwrap()).unwrap();
        assert!(matches!(
            Storage::local_nvme(m7g, None),
            Err(StorageError::NoLocalNvme { .. })
        ));
        let im4gn = c.instance(&"im4gn.large".parse().unwrap()).unwrap();
        let s = Storage::local_nvme(im4gn, None).unwrap();
        assert_eq!(s.size_gb, 937.0);
        assert!(s.throughput_is_default);
        assert_eq!(s.monthly_cost(&c), 0.0);
    }
}
