//! `Timestamp`: a point in time, in seconds since an epoch the caller chooses (Unix time for a
//! live cluster, the start of the trace in the simulator). Daily and weekly seasonality are
//! taken modulo 1 day and 7 days of this number. Pure.

use std::fmt;
use std::ops::{Add, Sub};
use std::str::FromStr;

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

/// Days from which a timestamp is taken as Unix time (2001-09-09) and shown as a UTC date.
const UNIX_DATES_FROM_DAY: u64 = 11_574;

impl fmt::Display for Timestamp {
    /// `day 3 14:05` for simulated time (days since the start), `2026-11-22 14:05 UTC` for Unix
    /// times (live clusters).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.max(0.0).round() as u64;
        let day = total / 86_400;
        let rest = total % 86_400;
        let (h, m) = (rest / 3600, (rest % 3600) / 60);
        if day >= UNIX_DATES_FROM_DAY {
            let (y, mo, d) = civil_from_days(day);
            write!(f, "{y:04}-{mo:02}-{d:02} {h:02}:{m:02} UTC")
        } else {
            write!(f, "day {day} {h:02}:{m:02}")
        }
    }
}

/// A time as [`Timestamp`]'s `Display` writes it, read back: `day D HH:MM` (`day` may be left
/// out) or `YYYY-MM-DD HH:MM` (` UTC` may follow).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a time: expected \"day D HH:MM\" (days count from 0) or \"YYYY-MM-DD HH:MM UTC\""
)]
pub struct BadTimestamp(pub String);

impl FromStr for Timestamp {
    type Err = BadTimestamp;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadTimestamp(s.to_string());
        let rest = s.trim();
        let rest = rest.strip_suffix("UTC").unwrap_or(rest).trim_end();
        let rest = rest.strip_prefix("day").unwrap_or(rest).trim_start();
        let (date, clock) = rest.split_once(char::is_whitespace).ok_or_else(bad)?;
        let (h, m) = clock.trim().split_once(':').ok_or_else(bad)?;
        let (Ok(h), Ok(m)) = (h.parse::<u64>(), m.parse::<u64>()) else {
            return Err(bad());
        };
        if h > 23 || m > 59 {
            return Err(bad());
        }
        let day = match date.split('-').collect::<Vec<_>>()[..] {
            [day] => day.parse::<u64>().map_err(|_| bad())?,
            [y, mo, d] => {
                let (Ok(y), Ok(mo), Ok(d)) =
                    (y.parse::<u64>(), mo.parse::<u64>(), d.parse::<u64>())
                else {
                    return Err(bad());
                };
                let day = days_from_civil(y, mo, d).ok_or_else(bad)?;
                if day < UNIX_DATES_FROM_DAY {
                    return Err(bad());
                }
                day
            }
            _ => return Err(bad()),
        };
        Ok(Timestamp::from_secs(
            (day * 86_400 + h * 3600 + m * 60) as f64,
        ))
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date, `None` for a date that does not exist
/// (the inverse of [`civil_from_days`]).
fn days_from_civil(y: u64, m: u64, d: u64) -> Option<u64> {
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || d == 0 {
        return None;
    }
    let leap = y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400));
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if d > month_days[(m - 1) as usize] {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_unix_times_as_utc_dates() {
        let at = |secs: f64| Timestamp::from_secs(secs).to_string();
        assert_eq!(at(1_795_363_200.0), "2026-11-22 16:00 UTC");
        assert_eq!(at(1_709_164_800.0 + 3_660.0), "2024-02-29 01:01 UTC");
        assert_eq!(
            at(978_307_200.0),
            "day 11323 00:00",
            "2001-01-01: before the cut-over"
        );
    }

    #[test]
    fn reads_back_what_it_displays() {
        for secs in [
            0.0,
            3.0 * 86_400.0 + 14.0 * 3600.0 + 300.0,
            1_795_363_200.0,
            1_709_164_800.0 + 3_660.0,
            951_782_400.0 + 86_400.0 * 365.0,
        ] {
            let t = Timestamp::from_secs(secs);
            assert_eq!(t.to_string().parse::<Timestamp>(), Ok(t), "{t}");
        }
        let at = |s: &str| s.parse::<Timestamp>().map(|t| t.secs());
        assert_eq!(at("1 10:30"), Ok(86_400.0 + 37_800.0));
        assert_eq!(at(" day 0 00:05 "), Ok(300.0));
        assert_eq!(at("2026-11-22 16:00"), Ok(1_795_363_200.0));
        for bad in [
            "",
            "10:30",
            "day 1",
            "day 1 24:00",
            "day 1 10:60",
            "day -1 10:30",
            "day x 10:30",
            "2026-02-29 10:00",
            "2026-13-01 10:00",
            "2026-11 10:00",
            "1999-12-31 10:00 UTC",
        ] {
            assert_eq!(at(bad), Err(BadTimestamp(bad.to_string())), "{bad:?}");
        }
    }

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
