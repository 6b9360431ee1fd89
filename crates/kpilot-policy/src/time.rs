//! `Timestamp`: a point in time, in seconds since an epoch the caller chooses (Unix time for a
//! live cluster, the start of the trace in the simulator). Daily and weekly seasonality are
//! taken modulo 1 day and 7 days of this number. Pure.

use std::fmt;
use std::ops::{Add, Sub};

use kpilot_units::Span;
use serde::{Deserialize, Serialize};

/// A point in time, seconds since an epoch.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(f64);

impl Timestamp {
    /// The epoch itself.
    pub const EPOCH: Timestamp = Timestamp(0.0);

    /// `secs` seconds after the epoch.
    pub fn from_secs(secs: f64) -> Self {
        Self(secs)
    }

    /// Seconds since the epoch.
    pub fn secs(self) -> f64 {
        self.0
    }

    /// The time between `earlier` and this one (zero if `earlier` is later).
    pub fn since(self, earlier: Timestamp) -> Span {
        Span::from_secs((self.0 - earlier.0).max(0.0))
    }

    /// The later of two timestamps.
    pub fn max(self, other: Timestamp) -> Timestamp {
        if other.0 > self.0 { other } else { self }
    }
}

impl Add<Span> for Timestamp {
    type Output = Timestamp;

    fn add(self, span: Span) -> Timestamp {
        Timestamp(self.0 + span.secs())
    }
}

impl Sub<Span> for Timestamp {
    type Output = Timestamp;

    fn sub(self, span: Span) -> Timestamp {
        Timestamp(self.0 - span.secs())
    }
}

impl fmt::Display for Timestamp {
    /// `day 3 14:05` (days and time since the epoch; Unix times print as a large day number).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.max(0.0).round() as u64;
        let day = total / 86_400;
        let rest = total % 86_400;
        write!(f, "day {day} {:02}:{:02}", rest / 3600, (rest % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_day_and_time() {
        assert_eq!(
            Timestamp::from_secs(3.0 * 86_400.0 + 14.0 * 3600.0 + 300.0).to_string(),
            "day 3 14:05"
        );
        let t = Timestamp::from_secs(100.0) + Span::from_minutes(1.0);
        assert_eq!(t.secs(), 160.0);
        assert_eq!(t.since(Timestamp::from_secs(200.0)).secs(), 0.0);
    }
}
