//! The instance and storage catalog: data loaded from TOML (the built-in AWS us-east-1 file, or
//! a user's file), validated once into [`Catalog`], then looked up by instance name. Parsing is
//! pure; [`Catalog::load`] is the one function here that reads a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kpilot_units::{InstanceType, Throughput};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The built-in catalog (AWS us-east-1), embedded at compile time.
pub const BUILTIN_CATALOG: &str = include_str!("../data/aws-us-east-1.toml");

/// Where a catalog came from, for error messages.
pub const BUILTIN_ORIGIN: &str = "<built-in catalog aws-us-east-1.toml>";

/// Why a catalog could not be loaded or an instance not found.
#[derive(Debug, Error)]
pub enum CatalogError {
    /// The catalog file could not be read.
    #[error("cannot read catalog file {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or a field is missing or of the wrong type. The message carries
    /// the line, column and field name from the TOML parser.
    #[error("invalid catalog {origin}: {message}")]
    Parse {
        /// The file (or the built-in catalog).
        origin: String,
        /// The parser's message, with line and field.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid catalog {origin}: {instance}: {problem}")]
    Invalid {
        /// The file (or the built-in catalog).
        origin: String,
        /// The instance (or section) at fault.
        instance: String,
        /// What is wrong.
        problem: String,
    },
    /// The instance type is not in the catalog.
    #[error("unknown instance type '{name}'{}", suggestion_text(.suggestions))]
    UnknownInstance {
        /// The name asked for.
        name: String,
        /// The closest names in the catalog.
        suggestions: Vec<String>,
    },
    /// The family is not in the catalog.
    #[error("unknown instance family '{name}'{}", suggestion_text(.suggestions))]
    UnknownFamily {
        /// The family asked for.
        name: String,
        /// The closest families in the catalog.
        suggestions: Vec<String>,
    },
    /// No family of the catalog has this size.
    #[error("unknown size '{name}'{}", suggestion_text(.suggestions))]
    UnknownSize {
        /// The size asked for.
        name: String,
        /// The closest sizes in the catalog.
        suggestions: Vec<String>,
    },
}

fn suggestion_text(suggestions: &[String]) -> String {
    if suggestions.is_empty() {
        String::from(" (see `kpilot catalog` for the list)")
    } else {
        format!(": did you mean {}?", suggestions.join(", "))
    }
}

/// The raw file format. Private: the rest of the crate sees only the validated [`Catalog`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    schema_version: u32,
    region: String,
    currency: String,
    hours_per_month: f64,
    network_mb_per_s_per_gbit: f64,
    burst: BurstRules,
    local_nvme: LocalNvmeRules,
    storage: StorageFile,
    family: Vec<FamilyFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageFile {
    gp3: Gp3Prices,
    st1: St1Prices,
    io2: Io2Prices,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FamilyFile {
    name: String,
    description: String,
    #[serde(default)]
    nvme_large_write_iops: Option<f64>,
    sizes: Vec<SizeFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SizeFile {
    size: String,
    vcpu: u32,
    memory_gib: f64,
    network_gbit: f64,
    #[serde(default)]
    network_burst_gbit: Option<f64>,
    ebs_mb_per_s: f64,
    #[serde(default)]
    ebs_burst_mb_per_s: Option<f64>,
    #[serde(default)]
    ebs_iops: Option<f64>,
    #[serde(default)]
    ebs_burst_iops: Option<f64>,
    #[serde(default)]
    nvme_disks: Option<u32>,
    #[serde(default)]
    nvme_disk_gb: Option<f64>,
    #[serde(default)]
    nvme_write_mb_per_s: Option<f64>,
    usd_per_hour: f64,
}

/// How long burst credits last (see the catalog file for the sources and assumptions).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BurstRules {
    /// Minutes a full EBS credit bucket lasts at the full EBS burst rate.
    pub ebs_minutes_at_full_burst: f64,
    /// Minutes a full network credit bucket lasts at the full network burst rate.
    pub network_minutes_at_full_burst: f64,
}

/// How the default local NVMe sequential write throughput is derived.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LocalNvmeRules {
    /// I/O size the published random-write IOPS are multiplied by.
    pub io_size_bytes: f64,
}

/// gp3 limits and prices.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Gp3Prices {
    /// Throughput included in the price, MiB/s.
    pub baseline_mib_per_s: f64,
    /// Highest provisionable throughput, MiB/s.
    pub max_mib_per_s: f64,
    /// USD per GB-month of volume size.
    pub usd_per_gb_month: f64,
    /// USD per MiB/s-month provisioned above the baseline.
    pub usd_per_mib_per_s_month: f64,
    /// Smallest volume, GB.
    pub min_size_gb: f64,
    /// Largest volume, GB.
    pub max_size_gb: f64,
    /// Throughput levels the sizing search tries, MiB/s.
    pub search_mib_per_s: Vec<f64>,
}

/// st1 limits and prices.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct St1Prices {
    /// Baseline throughput per TiB of volume, MiB/s.
    pub baseline_mib_per_s_per_tib: f64,
    /// Burst throughput per TiB of volume, MiB/s.
    pub burst_mib_per_s_per_tib: f64,
    /// Throughput cap, MiB/s.
    pub max_mib_per_s: f64,
    /// USD per GB-month.
    pub usd_per_gb_month: f64,
    /// Smallest volume, GB.
    pub min_size_gb: f64,
    /// Largest volume, GB.
    pub max_size_gb: f64,
}

/// io2 Block Express limits and prices.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Io2Prices {
    /// Throughput cap, MiB/s.
    pub max_mib_per_s: f64,
    /// I/O size used to turn IOPS into throughput, KiB.
    pub io_size_kib: f64,
    /// USD per GB-month.
    pub usd_per_gb_month: f64,
    /// USD per provisioned IOPS-month.
    pub usd_per_iops_month: f64,
    /// Smallest volume, GB.
    pub min_size_gb: f64,
    /// Largest volume, GB.
    pub max_size_gb: f64,
    /// Throughput levels the sizing search tries, MiB/s.
    pub search_mib_per_s: Vec<f64>,
}

/// One instance type with every figure the model needs, in model units (MB/s).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Instance {
    /// The name, e.g. `m7g.large`.
    pub name: InstanceType,
    /// Position of the size within its family (0 = smallest); sizes grow with the index.
    pub size_rank: usize,
    /// vCPUs.
    pub vcpu: u32,
    /// Memory, GiB.
    pub memory_gib: f64,
    /// Sustained (baseline) network bandwidth, per direction.
    pub network: Throughput,
    /// Burst network bandwidth, for credit-based sizes.
    pub network_burst: Option<Throughput>,
    /// Sustained EBS link bandwidth.
    pub ebs: Throughput,
    /// Burst EBS link bandwidth, for credit-based sizes.
    pub ebs_burst: Option<Throughput>,
    /// Baseline EBS IOPS, where the catalog lists them.
    pub ebs_iops: Option<f64>,
    /// Burst EBS IOPS, where the catalog lists them.
    pub ebs_burst_iops: Option<f64>,
    /// Local NVMe capacity, GB (none for EBS-only types).
    pub nvme_gb: Option<f64>,
    /// Local NVMe sequential write throughput (see the catalog's `[local_nvme]` notes).
    pub nvme_write: Option<Throughput>,
    /// Whether `nvme_write` was measured/set explicitly (false: the derived default).
    pub nvme_write_is_default: bool,
    /// On-demand price, USD per hour.
    pub usd_per_hour: f64,
}

/// A validated catalog.
#[derive(Debug, Clone, Serialize)]
pub struct Catalog {
    /// Where it was loaded from.
    pub origin: String,
    /// The region its prices are for.
    pub region: String,
    /// The currency of its prices.
    pub currency: String,
    /// Hours in a billing month.
    pub hours_per_month: f64,
    /// Burst credit rules.
    pub burst: BurstRules,
    /// gp3 prices and limits.
    pub gp3: Gp3Prices,
    /// st1 prices and limits.
    pub st1: St1Prices,
    /// io2 prices and limits.
    pub io2: Io2Prices,
    /// Families in file order, each with its sizes from smallest to largest.
    pub families: Vec<Family>,
}

/// One family of instance types.
#[derive(Debug, Clone, Serialize)]
pub struct Family {
    /// The family name, e.g. `m7g`.
    pub name: String,
    /// A short description.
    pub description: String,
    /// Its sizes from smallest to largest.
    pub instances: Vec<Instance>,
}

impl Catalog {
    /// The built-in AWS us-east-1 catalog.
    pub fn builtin() -> Result<Self, CatalogError> {
        Self::from_toml(BUILTIN_CATALOG, BUILTIN_ORIGIN)
    }

    /// Reads and validates a catalog file (performs I/O).
    pub fn load(path: &Path) -> Result<Self, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses and validates catalog text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, CatalogError> {
        let file: CatalogFile = toml::from_str(text).map_err(|e| CatalogError::Parse {
            origin: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        validate(file, origin)
    }

    /// Every instance type, family by family, smallest first.
    pub fn instances(&self) -> impl Iterator<Item = &Instance> {
        self.families.iter().flat_map(|f| f.instances.iter())
    }

    /// Looks up an instance type; an unknown name gets the closest names as suggestions.
    pub fn instance(&self, name: &InstanceType) -> Result<&Instance, CatalogError> {
        self.instances()
            .find(|i| &i.name == name)
            .ok_or_else(|| CatalogError::UnknownInstance {
                name: name.to_string(),
                suggestions: closest(
                    &name.to_string(),
                    self.instances().map(|i| i.name.to_string()),
                ),
            })
    }

    /// Looks up a family by name, ignoring case (`M7G` is `m7g`, as in instance types).
    pub fn family(&self, name: &str) -> Result<&Family, CatalogError> {
        let name = name.trim();
        self.families
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| CatalogError::UnknownFamily {
                name: name.to_string(),
                suggestions: closest(
                    &name.to_ascii_lowercase(),
                    self.families.iter().map(|f| f.name.clone()),
                ),
            })
    }

    /// Checks that `size` (e.g. `xlarge`, any case) is a size of at least one family.
    pub fn check_size_name(&self, size: &str) -> Result<(), CatalogError> {
        let size = size.trim();
        if self
            .instances()
            .any(|i| i.name.size().eq_ignore_ascii_case(size))
        {
            return Ok(());
        }
        let mut sizes: Vec<String> = self
            .instances()
            .map(|i| i.name.size().to_string())
            .collect();
        sizes.sort();
        sizes.dedup();
        Err(CatalogError::UnknownSize {
            name: size.to_string(),
            suggestions: closest(&size.to_ascii_lowercase(), sizes.into_iter()),
        })
    }

    /// The families whose types have local NVMe disks, in catalog order.
    pub fn families_with_nvme(&self) -> Vec<&str> {
        self.families
            .iter()
            .filter(|f| f.instances.iter().any(|i| i.nvme_gb.is_some()))
            .map(|f| f.name.as_str())
            .collect()
    }
}

fn validate(file: CatalogFile, origin: &str) -> Result<Catalog, CatalogError> {
    let invalid = |instance: &str, problem: String| CatalogError::Invalid {
        origin: origin.to_string(),
        instance: instance.to_string(),
        problem,
    };
    if file.schema_version != 1 {
        return Err(invalid(
            "schema_version",
            format!(
                "version {} is not supported (expected 1)",
                file.schema_version
            ),
        ));
    }
    let positive = |what: &str, name: &str, v: f64| {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(invalid(
                name,
                format!("{what} must be a positive number, got {v}"),
            ))
        }
    };
    positive("hours_per_month", "catalog", file.hours_per_month)?;
    positive(
        "network_mb_per_s_per_gbit",
        "catalog",
        file.network_mb_per_s_per_gbit,
    )?;
    positive(
        "ebs_minutes_at_full_burst",
        "burst",
        file.burst.ebs_minutes_at_full_burst,
    )?;
    positive(
        "network_minutes_at_full_burst",
        "burst",
        file.burst.network_minutes_at_full_burst,
    )?;
    positive("io_size_bytes", "local_nvme", file.local_nvme.io_size_bytes)?;
    let g = &file.storage.gp3;
    positive("baseline_mib_per_s", "storage.gp3", g.baseline_mib_per_s)?;
    positive("max_mib_per_s", "storage.gp3", g.max_mib_per_s)?;
    positive("max_size_gb", "storage.gp3", g.max_size_gb)?;
    for &level in &g.search_mib_per_s {
        if level < g.baseline_mib_per_s || level > g.max_mib_per_s {
            return Err(invalid(
                "storage.gp3",
                format!(
                    "search_mib_per_s level {level} MiB/s is outside the range from {} to {} MiB/s (baseline_mib_per_s to max_mib_per_s); remove it or move it into that range",
                    g.baseline_mib_per_s, g.max_mib_per_s
                ),
            ));
        }
    }
    positive(
        "max_mib_per_s",
        "storage.st1",
        file.storage.st1.max_mib_per_s,
    )?;
    positive(
        "baseline_mib_per_s_per_tib",
        "storage.st1",
        file.storage.st1.baseline_mib_per_s_per_tib,
    )?;
    positive(
        "max_mib_per_s",
        "storage.io2",
        file.storage.io2.max_mib_per_s,
    )?;
    positive("io_size_kib", "storage.io2", file.storage.io2.io_size_kib)?;

    let mut seen = BTreeMap::new();
    let mut families = Vec::with_capacity(file.family.len());
    for fam in file.family {
        if seen.insert(fam.name.clone(), ()).is_some() {
            return Err(invalid(&fam.name, "the family is listed twice".into()));
        }
        if fam.sizes.is_empty() {
            return Err(invalid(&fam.name, "the family has no sizes".into()));
        }
        let large_vcpu = fam
            .sizes
            .iter()
            .find(|s| s.size == "large")
            .map(|s| f64::from(s.vcpu));
        let mut instances: Vec<Instance> = Vec::with_capacity(fam.sizes.len());
        for s in fam.sizes {
            let name = InstanceType::new(&fam.name, &s.size);
            let label = name.to_string();
            if instances.iter().any(|i| i.name == name) {
                return Err(invalid(&label, "the size is listed twice".into()));
            }
            positive("vcpu", &label, f64::from(s.vcpu))?;
            positive("memory_gib", &label, s.memory_gib)?;
            positive("network_gbit", &label, s.network_gbit)?;
            positive("ebs_mb_per_s", &label, s.ebs_mb_per_s)?;
            positive("usd_per_hour", &label, s.usd_per_hour)?;
            if let Some(b) = s.network_burst_gbit
                && b < s.network_gbit
            {
                return Err(invalid(
                    &label,
                    format!(
                        "network_burst_gbit {b} is below network_gbit {}",
                        s.network_gbit
                    ),
                ));
            }
            if let Some(b) = s.ebs_burst_mb_per_s
                && b < s.ebs_mb_per_s
            {
                return Err(invalid(
                    &label,
                    format!(
                        "ebs_burst_mb_per_s {b} is below ebs_mb_per_s {}",
                        s.ebs_mb_per_s
                    ),
                ));
            }
            let nvme_gb = match (s.nvme_disks, s.nvme_disk_gb) {
                (Some(d), Some(gb)) => {
                    positive("nvme_disks", &label, f64::from(d))?;
                    positive("nvme_disk_gb", &label, gb)?;
                    Some(f64::from(d) * gb)
                }
                (None, None) => None,
                _ => {
                    return Err(invalid(
                        &label,
                        "nvme_disks and nvme_disk_gb must be given together".into(),
                    ));
                }
            };
            let (nvme_write, nvme_write_is_default) = match (nvme_gb, s.nvme_write_mb_per_s) {
                (None, Some(_)) => {
                    return Err(invalid(
                        &label,
                        "nvme_write_mb_per_s is set but the size has no nvme_disks".into(),
                    ));
                }
                (None, None) => (None, false),
                (Some(_), Some(w)) => {
                    positive("nvme_write_mb_per_s", &label, w)?;
                    (Some(Throughput::from_mb_per_s(w)), false)
                }
                (Some(_), None) => {
                    let (Some(iops), Some(large)) = (fam.nvme_large_write_iops, large_vcpu) else {
                        return Err(invalid(
                            &label,
                            "local NVMe needs nvme_write_mb_per_s, or the family's nvme_large_write_iops and a 'large' size".into(),
                        ));
                    };
                    let scale = f64::from(s.vcpu) / large;
                    let bytes = iops * file.local_nvme.io_size_bytes * scale;
                    (Some(Throughput::from_bytes_per_s(bytes)), true)
                }
            };
            let per_gbit = file.network_mb_per_s_per_gbit;
            let instance = Instance {
                name,
                size_rank: instances.len(),
                vcpu: s.vcpu,
                memory_gib: s.memory_gib,
                network: Throughput::from_mb_per_s(s.network_gbit * per_gbit),
                network_burst: s
                    .network_burst_gbit
                    .filter(|&b| b > s.network_gbit)
                    .map(|b| Throughput::from_mb_per_s(b * per_gbit)),
                ebs: Throughput::from_mb_per_s(s.ebs_mb_per_s),
                ebs_burst: s
                    .ebs_burst_mb_per_s
                    .filter(|&b| b > s.ebs_mb_per_s)
                    .map(Throughput::from_mb_per_s),
                ebs_iops: s.ebs_iops,
                ebs_burst_iops: s.ebs_burst_iops,
                nvme_gb,
                nvme_write,
                nvme_write_is_default,
                usd_per_hour: s.usd_per_hour,
            };
            // The model assumes bigger sizes never have less of anything.
            if let Some(prev) = instances.last()
                && (instance.network < prev.network || instance.ebs < prev.ebs)
            {
                return Err(invalid(
                    &label,
                    format!(
                        "sizes must be listed from smallest to largest, but it has less network or EBS bandwidth than {}",
                        prev.name
                    ),
                ));
            }
            instances.push(instance);
        }
        families.push(Family {
            name: fam.name,
            description: fam.description,
            instances,
        });
    }
    Ok(Catalog {
        origin: origin.to_string(),
        region: file.region,
        currency: file.currency,
        hours_per_month: file.hours_per_month,
        burst: file.burst,
        gp3: file.storage.gp3,
        st1: file.storage.st1,
        io2: file.storage.io2,
        families,
    })
}

/// Up to three candidates closest to `name` by edit distance (and prefix), best first.
fn closest(name: &str, candidates: impl Iterator<Item = String>) -> Vec<String> {
    let mut scored: Vec<(usize, String)> = candidates
        .map(|c| {
            let mut d = edit_distance(name, &c);
            if c.starts_with(name) || name.starts_with(&c) {
                d = d.saturating_sub(2);
            }
            (d, c)
        })
        .collect();
    scored.sort();
    let limit = (name.len() / 2).max(2);
    scored
        .into_iter()
        .filter(|(d, _)| *d <= limit)
        .take(3)
        .map(|(_, c)| c)
        .collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_loads_every_family() {
        let c = Catalog::builtin().unwrap();
        let names: Vec<&str> = c.families.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "m7g", "c7g", "r7g", "m5", "m6g", "m6i", "i3", "i3en", "i4i", "im4gn", "is4gen"
            ]
        );
        let large = c.instance(&"m7g.large".parse().unwrap()).unwrap();
        assert!((large.network.mb_per_s() - 119.936).abs() < 1e-9);
        assert_eq!(large.ebs.mb_per_s(), 78.75);
        assert_eq!(large.ebs_burst.unwrap().mb_per_s(), 1250.0);
        // m7g.8xlarge and up do not burst.
        let big = c.instance(&"m7g.8xlarge".parse().unwrap()).unwrap();
        assert!(big.network_burst.is_none() && big.ebs_burst.is_none());
    }

    #[test]
    fn nvme_default_is_random_write_iops_times_4k_scaled_by_vcpu() {
        let c = Catalog::builtin().unwrap();
        let i3 = c.instance(&"i3.large".parse().unwrap()).unwrap();
        assert!((i3.nvme_write.unwrap().mb_per_s() - 143.36).abs() < 1e-9);
        assert!(i3.nvme_write_is_default);
        let i3x = c.instance(&"i3.2xlarge".parse().unwrap()).unwrap();
        assert!((i3x.nvme_write.unwrap().mb_per_s() - 4.0 * 143.36).abs() < 1e-9);
        assert_eq!(i3x.nvme_gb, Some(1900.0));
    }

    #[test]
    fn unknown_instance_suggests_close_names() {
        let c = Catalog::builtin().unwrap();
        let err = c.instance(&"m7g.larg".parse().unwrap()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("did you mean m7g.large"), "{text}");
        let err = c.instance(&"m8g.large".parse().unwrap()).unwrap_err();
        assert!(err.to_string().contains("m7g.large"), "{err}");
    }

    /// `--families M7G` was an unknown family while `-i M7G.LARGE` was accepted, and
    /// `--sizes xl` was an "unknown instance type '*.xl'".
    #[test]
    fn families_and_sizes_are_looked_up_in_any_case_and_sizes_are_named_as_sizes() {
        let c = Catalog::builtin().unwrap();
        assert_eq!(c.family("M7G").unwrap().name, "m7g");
        assert_eq!(c.family(" Im4gn ").unwrap().name, "im4gn");
        c.check_size_name("XLarge").unwrap();
        assert_eq!(
            c.check_size_name("xl").unwrap_err().to_string(),
            "unknown size 'xl': did you mean xlarge?"
        );
        assert_eq!(
            c.family("M7").unwrap_err().to_string(),
            "unknown instance family 'M7': did you mean m7g, m5, c7g?"
        );
        assert_eq!(
            c.families_with_nvme(),
            ["i3", "i3en", "i4i", "im4gn", "is4gen"]
        );
    }

    #[test]
    fn missing_field_names_line_and_field() {
        let text = BUILTIN_CATALOG.replacen("vcpu = 2, memory_gib = 8, ", "memory_gib = 8, ", 1);
        let err = Catalog::from_toml(&text, "my.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("my.toml"), "{err}");
        assert!(err.contains("missing field `vcpu`"), "{err}");
        assert!(err.contains("line "), "{err}");
    }

    #[test]
    fn inconsistent_values_are_rejected_with_the_instance_named() {
        let text =
            BUILTIN_CATALOG.replacen("network_burst_gbit = 12.5", "network_burst_gbit = 0.5", 1);
        let err = Catalog::from_toml(&text, "x.toml").unwrap_err().to_string();
        assert!(
            err.contains("m7g.large") && err.contains("network_burst_gbit"),
            "{err}"
        );
        let text = BUILTIN_CATALOG.replacen("usd_per_hour = 0.0816", "usd_per_hour = -1", 1);
        let err = Catalog::from_toml(&text, "x.toml").unwrap_err().to_string();
        assert!(
            err.contains("usd_per_hour must be a positive number"),
            "{err}"
        );
    }

    /// A gp3 search level out of range was "outside 125..=1000 MiB/s", in Rust range syntax.
    #[test]
    fn a_search_level_out_of_range_names_the_range_in_words() {
        let text = BUILTIN_CATALOG.replacen(
            "search_mib_per_s = [125.0, 250.0, 500.0, 750.0, 1000.0]",
            "search_mib_per_s = [125.0, 1500.0]",
            1,
        );
        let err = Catalog::from_toml(&text, "x.toml").unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid catalog x.toml: storage.gp3: search_mib_per_s level 1500 MiB/s is outside the range from 125 to 1000 MiB/s (baseline_mib_per_s to max_mib_per_s); remove it or move it into that range"
        );
    }
}
