//! `Span`: a length of time, parsed from `24h`, `7d`, `90s`, `1d12h`. Pure.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::parse::{ParseError, split_number};

const WHAT: &str = "duration";
const EXAMPLE: &str = "24h";
const UNITS: &str = "s, m (or min), h, d, w";

/// A length of time in seconds (non-negative).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Span(f64);

impl Span {
    /// No time at all.
    pub const ZERO: Span = Span(0.0);

    /// The longest span a duration may be written as: 36,500 days (100 years).
    pub const MAX: Span = Span(36_500.0 * 86_400.0);

    /// A span of `seconds` seconds.
    pub const fn from_secs(seconds: f64) -> Self {
        Self(seconds)
    }

    /// A span of `minutes` minutes.
    pub const fn from_minutes(minutes: f64) -> Self {
        Self(minutes * 60.0)
    }

    /// A span of `hours` hours.
    pub const fn from_hours(hours: f64) -> Self {
        Self(hours * 3600.0)
    }

    /// The span in seconds.
    pub const fn secs(self) -> f64 {
        self.0
    }

    /// The span in minutes.
    pub fn minutes(self) -> f64 {
        self.0 / 60.0
    }

    /// The span in hours.
    pub fn hours(self) -> f64 {
        self.0 / 3600.0
    }
}

impl FromStr for Span {
    type Err = ParseError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let mut rest = input.trim();
        if rest.is_empty() {
            return Err(ParseError::Empty {
                what: WHAT,
                example: EXAMPLE,
            });
        }
        // Zero is zero in every unit: a bare "0" needs none.
        if rest.parse::<f64>() == Ok(0.0) {
            return Ok(Self::ZERO);
        }
        let mut total = 0.0;
        let mut owned;
        while !rest.is_empty() {
            // One "<number><unit>" component at a time: the unit runs until the next digit.
            let (value, tail) =
                split_number(rest, WHAT, EXAMPLE).map_err(|e| with_input(e, input))?;
            let unit_len = tail
                .char_indices()
                .find(|(_, c)| c.is_ascii_digit() || *c == '.')
                .map(|(i, _)| i)
                .unwrap_or(tail.len());
            let (unit, next) = tail.split_at(unit_len);
            let seconds = match unit.trim() {
                "" => {
                    return Err(ParseError::MissingUnit {
                        what: WHAT,
                        input: input.to_string(),
                        units: UNITS,
                        example: EXAMPLE,
                    });
                }
                "s" | "sec" | "secs" => 1.0,
                "m" | "min" | "mins" => 60.0,
                "h" | "hr" | "hrs" => 3600.0,
                "d" | "day" | "days" => 86_400.0,
                "w" | "week" | "weeks" => 604_800.0,
                other => {
                    return Err(ParseError::UnknownUnit {
                        what: WHAT,
                        input: input.to_string(),
                        unit: other.to_string(),
                        units: UNITS,
                    });
                }
            };
            total += value * seconds;
            owned = next.trim_start().to_string();
            rest = owned.as_str();
        }
        if !total.is_finite() {
            return Err(ParseError::OutOfRange {
                what: WHAT,
                input: input.to_string(),
            });
        }
        // Far beyond any timeout or plan, and short enough that every caller can turn it into
        // a `std::time::Duration` and add it to a clock reading.
        if total > Self::MAX.0 {
            return Err(ParseError::TooLong {
                input: input.to_string(),
            });
        }
        Ok(Self(total))
    }
}

fn with_input(err: ParseError, input: &str) -> ParseError {
    match err {
        ParseError::InvalidNumber {
            what,
            number,
            example,
            ..
        } => ParseError::InvalidNumber {
            what,
            input: input.to_string(),
            number,
            example,
        },
        ParseError::Negative { what, .. } => ParseError::Negative {
            what,
            input: input.to_string(),
        },
        other => other,
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s >= 86_400.0 && (s % 86_400.0) == 0.0 {
            write!(f, "{}d", s / 86_400.0)
        } else if s >= 3600.0 && (s % 3600.0) == 0.0 {
            write!(f, "{}h", s / 3600.0)
        } else if s >= 60.0 && (s % 60.0) == 0.0 {
            write!(f, "{}m", s / 60.0)
        } else if s >= 3600.0 {
            write!(f, "{:.1}h", s / 3600.0)
        } else {
            write!(f, "{s:.0}s")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!("24h".parse::<Span>().unwrap().hours(), 24.0);
        assert_eq!("7d".parse::<Span>().unwrap().hours(), 168.0);
        assert_eq!("90s".parse::<Span>().unwrap().secs(), 90.0);
        assert_eq!("1d12h".parse::<Span>().unwrap().hours(), 36.0);
        assert_eq!("30 min".parse::<Span>().unwrap().minutes(), 30.0);
        assert_eq!("0".parse::<Span>().unwrap(), Span::ZERO);
    }

    #[test]
    fn rejects_bad_durations() {
        assert!(matches!(
            "24".parse::<Span>(),
            Err(ParseError::MissingUnit { .. })
        ));
        assert!(matches!(
            "3y".parse::<Span>(),
            Err(ParseError::UnknownUnit { .. })
        ));
        let err = "x1h".parse::<Span>().unwrap_err();
        assert!(err.to_string().contains("'x1h'"), "{err}");
        // Up to 100 years; beyond, refused rather than left to overflow a clock (a timeout of
        // 99999999999999999999d made `kpilot status` panic).
        assert_eq!("36500d".parse::<Span>().unwrap(), Span::MAX);
        assert_eq!("36499d24h".parse::<Span>().unwrap(), Span::MAX);
        for long in ["36500d1s", "99999999999999999999d", "1e300s"] {
            let err = long.parse::<Span>().unwrap_err();
            assert!(matches!(err, ParseError::TooLong { .. }), "{long}: {err:?}");
            assert_eq!(
                err.to_string(),
                format!("duration '{long}' is too long: at most 36500d (100 years)")
            );
        }
    }

    #[test]
    fn displays_compactly() {
        assert_eq!(Span::from_hours(24.0).to_string(), "1d");
        assert_eq!(Span::from_hours(6.0).to_string(), "6h");
        assert_eq!(Span::from_secs(90.0).to_string(), "90s");
    }
}
