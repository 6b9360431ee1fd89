//! `ByteSize`: an amount of data, parsed from `2TB`, `500GiB`, `1.5PB`. Pure.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::parse::{ParseError, split_number};

const WHAT: &str = "size";
const EXAMPLE: &str = "2TB";
const UNITS: &str = "B, KB, MB, GB, TB, PB, KiB, MiB, GiB, TiB, PiB";

/// An amount of data in bytes.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ByteSize(f64);

impl ByteSize {
    /// Zero bytes.
    pub const ZERO: ByteSize = ByteSize(0.0);

    /// A size of `bytes` bytes.
    pub fn from_bytes(bytes: f64) -> Self {
        Self(bytes)
    }

    /// A size of `gb` decimal gigabytes (10^9 bytes).
    pub fn from_gb(gb: f64) -> Self {
        Self(gb * 1e9)
    }

    /// The size in bytes.
    pub fn bytes(self) -> f64 {
        self.0
    }

    /// The size in decimal GB (10^9 bytes).
    pub fn gb(self) -> f64 {
        self.0 / 1e9
    }

    /// The size in GiB (2^30 bytes).
    pub fn gib(self) -> f64 {
        self.0 / 1_073_741_824.0
    }
}

impl FromStr for ByteSize {
    type Err = ParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let (value, unit) = split_number(input, WHAT, EXAMPLE)?;
        let factor = match unit.as_str() {
            "" => {
                return Err(ParseError::MissingUnit {
                    what: WHAT,
                    input: input.to_string(),
                    units: UNITS,
                    example: EXAMPLE,
                });
            }
            "B" => 1.0,
            "KB" | "kB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            "TB" => 1e12,
            "PB" => 1e15,
            "KiB" => 1024.0,
            "MiB" => 1_048_576.0,
            "GiB" => 1_073_741_824.0,
            "TiB" => 1_099_511_627_776.0,
            "PiB" => 1_125_899_906_842_624.0,
            _ => {
                return Err(ParseError::UnknownUnit {
                    what: WHAT,
                    input: input.to_string(),
                    unit,
                    units: UNITS,
                });
            }
        };
        let bytes = value * factor;
        if !bytes.is_finite() {
            return Err(ParseError::OutOfRange {
                what: WHAT,
                input: input.to_string(),
            });
        }
        Ok(Self(bytes))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        let (value, unit) = if b >= 1e15 {
            (b / 1e15, "PB")
        } else if b >= 1e12 {
            (b / 1e12, "TB")
        } else if b >= 1e9 {
            (b / 1e9, "GB")
        } else if b >= 1e6 {
            (b / 1e6, "MB")
        } else if b >= 1e3 {
            (b / 1e3, "KB")
        } else {
            (b, "B")
        };
        if value >= 100.0 || unit == "B" {
            write!(f, "{value:.0} {unit}")
        } else {
            write!(f, "{value:.1} {unit}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!("2TB".parse::<ByteSize>().unwrap().gb(), 2000.0);
        assert_eq!("1TiB".parse::<ByteSize>().unwrap().gib(), 1024.0);
        assert_eq!("1.5 PB".parse::<ByteSize>().unwrap().bytes(), 1.5e15);
    }

    #[test]
    fn rejects_bad_sizes() {
        assert!(matches!(
            "2".parse::<ByteSize>(),
            Err(ParseError::MissingUnit { .. })
        ));
        assert!(matches!(
            "2tb".parse::<ByteSize>(),
            Err(ParseError::UnknownUnit { .. })
        ));
    }

    #[test]
    fn displays_decimal() {
        assert_eq!(ByteSize::from_gb(1500.0).to_string(), "1.5 TB");
        assert_eq!(ByteSize::from_gb(937.0).to_string(), "937 GB");
    }
}
