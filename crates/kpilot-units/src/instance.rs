//! `InstanceType`: an EC2-style instance name such as `m7g.2xlarge`, split into family and size.
//! Whether the type exists is the catalog's business, not this parser's. Pure.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::parse::ParseError;

/// An instance type name: `family.size`, lower case (`m7g.2xlarge`, `im4gn.large`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceType {
    family: String,
    size: String,
}

impl InstanceType {
    /// Builds a name from its parts (both lower-cased).
    pub fn new(family: &str, size: &str) -> Self {
        Self {
            family: family.to_ascii_lowercase(),
            size: size.to_ascii_lowercase(),
        }
    }

    /// The family, e.g. `m7g`.
    pub fn family(&self) -> &str {
        &self.family
    }

    /// The size, e.g. `2xlarge`.
    pub fn size(&self) -> &str {
        &self.size
    }
}

impl FromStr for InstanceType {
    type Err = ParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let trimmed = input.trim();
        let invalid = |reason| ParseError::InvalidInstance {
            input: input.to_string(),
            reason,
        };
        let (family, size) = trimmed
            .split_once('.')
            .ok_or_else(|| invalid("no '.' between family and size"))?;
        if family.is_empty() {
            return Err(invalid("the family is empty"));
        }
        if size.is_empty() {
            return Err(invalid("the size is empty"));
        }
        let ok = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !ok(family) || !ok(size) {
            return Err(invalid("only letters, digits and '-' are allowed"));
        }
        Ok(Self::new(family, size))
    }
}

impl fmt::Display for InstanceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.family, self.size)
    }
}

impl Serialize for InstanceType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for InstanceType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        let t: InstanceType = "M7G.2XLarge".parse().unwrap();
        assert_eq!(t.family(), "m7g");
        assert_eq!(t.size(), "2xlarge");
        assert_eq!(t.to_string(), "m7g.2xlarge");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"m7g.2xlarge\"");
    }

    #[test]
    fn rejects_malformed_names() {
        for bad in ["m7g", ".large", "m7g.", "m7g large", "m7g.x/l"] {
            assert!(bad.parse::<InstanceType>().is_err(), "{bad}");
        }
    }
}
