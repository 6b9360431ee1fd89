//! `Throughput`: a data rate in bytes per second, parsed from `200MB/s`, `1.5GB/s`, `200MiB/s`,
//! `800Mbit/s`. Pure.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::parse::{ParseError, split_number};

const WHAT: &str = "throughput";
const EXAMPLE: &str = "200MB/s";
const UNITS: &str = "B/s, KB/s, MB/s, GB/s, KiB/s, MiB/s, GiB/s, Mbit/s, Gbit/s (Mbps, Gbps)";

/// A data rate. Stored in bytes per second; printed, and serialized (JSON, TOML), as a number
/// of decimal MB/s (10^6 bytes per second), the product's unit.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize, Deserialize)]
#[serde(into = "MbPerSec", from = "MbPerSec")]
pub struct Throughput(f64);

/// The serialized form of [`Throughput`]: MB/s.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
struct MbPerSec(f64);

impl From<Throughput> for MbPerSec {
    fn from(t: Throughput) -> Self {
        MbPerSec(t.mb_per_s())
    }
}

impl From<MbPerSec> for Throughput {
    fn from(m: MbPerSec) -> Self {
        Throughput::from_mb_per_s(m.0)
    }
}

impl Throughput {
    /// Zero bytes per second.
    pub const ZERO: Throughput = Throughput(0.0);

    /// The units a throughput is written with, as its parse errors list them.
    pub const UNITS: &'static str = UNITS;

    /// A rate of `mb` decimal megabytes (10^6 bytes) per second.
    pub fn from_mb_per_s(mb: f64) -> Self {
        Self(mb * 1e6)
    }

    /// A rate of `mib` mebibytes (2^20 bytes) per second.
    pub fn from_mib_per_s(mib: f64) -> Self {
        Self(mib * 1_048_576.0)
    }

    /// A rate in bytes per second.
    pub fn from_bytes_per_s(bytes: f64) -> Self {
        Self(bytes)
    }

    /// The rate in bytes per second.
    pub fn bytes_per_s(self) -> f64 {
        self.0
    }

    /// The rate in decimal MB per second.
    pub fn mb_per_s(self) -> f64 {
        self.0 / 1e6
    }

    /// The rate in MiB per second.
    pub fn mib_per_s(self) -> f64 {
        self.0 / 1_048_576.0
    }

    /// True when the rate is zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0.0
    }
}

impl FromStr for Throughput {
    type Err = ParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let (value, unit) = split_number(input, WHAT, EXAMPLE)?;
        if unit.is_empty() {
            return Err(ParseError::MissingUnit {
                what: WHAT,
                input: input.to_string(),
                units: UNITS,
                example: EXAMPLE,
            });
        }
        let compact: String = unit.chars().filter(|c| !c.is_whitespace()).collect();
        let per_second = compact
            .strip_suffix("/s")
            .or_else(|| compact.strip_suffix("/sec"))
            .or_else(|| compact.strip_suffix("ps"));
        let Some(base) = per_second else {
            return Err(ParseError::UnknownUnit {
                what: WHAT,
                input: input.to_string(),
                unit,
                units: UNITS,
            });
        };
        let suffix_ps = compact.ends_with("ps") && !compact.ends_with("/s");
        let bytes_per_unit = match base {
            "B" if !suffix_ps => 1.0,
            "KB" | "kB" if !suffix_ps => 1e3,
            "MB" if !suffix_ps => 1e6,
            "GB" if !suffix_ps => 1e9,
            "TB" if !suffix_ps => 1e12,
            "KiB" if !suffix_ps => 1024.0,
            "MiB" if !suffix_ps => 1_048_576.0,
            "GiB" if !suffix_ps => 1_073_741_824.0,
            "bit" | "b" => 1.0 / 8.0,
            "kbit" | "Kbit" | "kb" | "Kb" => 1e3 / 8.0,
            "Mbit" | "Mb" => 1e6 / 8.0,
            "Gbit" | "Gb" => 1e9 / 8.0,
            "kB" | "KB" | "MB" | "GB" if suffix_ps => {
                // "MBps" is bytes by most conventions, but "Mbps" is bits: be explicit.
                return Err(ambiguous(input, &unit, base));
            }
            "mb" | "gb" | "kb/" | "mB" | "gB" => return Err(ambiguous(input, &unit, base)),
            _ => {
                return Err(ParseError::UnknownUnit {
                    what: WHAT,
                    input: input.to_string(),
                    unit,
                    units: UNITS,
                });
            }
        };
        let bytes = value * bytes_per_unit;
        if !bytes.is_finite() {
            return Err(ParseError::OutOfRange {
                what: WHAT,
                input: input.to_string(),
            });
        }
        Ok(Self(bytes))
    }
}

fn ambiguous(input: &str, unit: &str, base: &str) -> ParseError {
    let prefix = base
        .chars()
        .next()
        .map(|c| c.to_ascii_uppercase())
        .unwrap_or('M');
    ParseError::AmbiguousUnit {
        what: WHAT,
        input: input.to_string(),
        unit: unit.to_string(),
        bytes: format!("{prefix}B/s"),
        bits: format!("{prefix}bit/s"),
    }
}

impl fmt::Display for Throughput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mb = self.mb_per_s();
        if mb >= 100.0 {
            write!(f, "{mb:.0} MB/s")
        } else if mb >= 10.0 {
            write!(f, "{mb:.1} MB/s")
        } else {
            write!(f, "{mb:.2} MB/s")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb(s: &str) -> f64 {
        s.parse::<Throughput>().unwrap().mb_per_s()
    }

    #[test]
    fn parses_decimal_binary_and_bit_rates() {
        assert_eq!(mb("200MB/s"), 200.0);
        assert_eq!(mb("1.5GB/s"), 1500.0);
        assert!((mb("200MiB/s") - 209.715_2).abs() < 1e-9);
        assert_eq!(mb("800Mbit/s"), 100.0);
        assert_eq!(mb("1Gbps"), 125.0);
        assert_eq!(mb("250 MB/s"), 250.0);
        assert_eq!(mb("500KB/s"), 0.5);
        assert_eq!(mb("0MB/s"), 0.0);
    }

    #[test]
    fn rejects_bad_units_with_reasons() {
        let err = "200".parse::<Throughput>().unwrap_err();
        assert!(matches!(err, ParseError::MissingUnit { .. }), "{err}");
        let err = "200MB".parse::<Throughput>().unwrap_err();
        assert!(err.to_string().contains("unknown unit 'MB'"), "{err}");
        let err = "200mb/s".parse::<Throughput>().unwrap_err();
        assert!(matches!(err, ParseError::AmbiguousUnit { .. }), "{err}");
        let err = "200MBps".parse::<Throughput>().unwrap_err();
        assert!(err.to_string().contains("MB/s for bytes"), "{err}");
        let err = "-3MB/s".parse::<Throughput>().unwrap_err();
        assert!(matches!(err, ParseError::Negative { .. }));
        let err = "fast".parse::<Throughput>().unwrap_err();
        assert!(err.to_string().contains("'fast'"), "{err}");
    }

    #[test]
    fn displays_in_mb_per_s() {
        assert_eq!(Throughput::from_mb_per_s(200.0).to_string(), "200 MB/s");
        assert_eq!(Throughput::from_mb_per_s(63.0).to_string(), "63.0 MB/s");
        assert_eq!(Throughput::from_mb_per_s(1.234).to_string(), "1.23 MB/s");
    }

    #[test]
    fn serializes_as_mb_per_s() {
        let t = Throughput::from_mb_per_s(250.0);
        assert_eq!(serde_json::to_string(&t).unwrap(), "250.0");
        let back: Throughput = serde_json::from_str("62.5").unwrap();
        assert_eq!(back.mb_per_s(), 62.5);
    }
}
