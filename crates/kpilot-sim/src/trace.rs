//! Demand traces: a CSV of `t_seconds,ingress_mb_per_s` (optionally `,egress_mb_per_s`),
//! parsed from text with an origin name for errors (the caller reads the file), and the
//! minute-by-minute demand the simulator runs on. Pure.
//!
//! Format: a header line, then one row per point. Blank lines and lines starting with `#` are
//! ignored. `t_seconds` is seconds from a midnight (daily seasonality is taken modulo 24 h of
//! it; Unix time works too), strictly increasing. A row's rates hold until the next row; the
//! last row holds for as long as the interval before it (one minute for a single row). The
//! simulator averages the rates over each minute.
//!
//! An empty egress cell means the egress is unknown at that point (a metric that missed a
//! step): a minute without any known egress takes it from the minutes around it, linearly
//! between the nearest known ones, held flat before the first and after the last. A trace
//! whose egress cells are all empty has no egress. The ingress is never empty.

use kpilot_units::{Span, Throughput};
use serde::Serialize;
use thiserror::Error;

/// The header without egress.
pub const HEADER: &str = "t_seconds,ingress_mb_per_s";
/// The header with egress.
pub const HEADER_WITH_EGRESS: &str = "t_seconds,ingress_mb_per_s,egress_mb_per_s";
/// The highest rate a trace may give, MB/s (1 TB/s).
pub const MAX_RATE_MB_PER_S: f64 = 1e6;
/// The longest time a trace may span from its first row: two years of history and replay,
/// about a million minutes.
pub const MAX_TRACE_DAYS: f64 = 732.0;

/// Why a trace was refused. Every variant names the origin (file) and, when it is about a
/// line, the 1-based line number.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TraceError {
    /// The first line is not one of the two headers.
    #[error("{origin}:{line}: bad header '{found}': expected '{HEADER}' or '{HEADER_WITH_EGRESS}'")]
    BadHeader {
        /// The file.
        origin: String,
        /// The line.
        line: usize,
        /// What was found.
        found: String,
    },
    /// A row with the wrong number of values.
    #[error("{origin}:{line}: expected {expected} comma-separated values, found {found}")]
    WrongColumnCount {
        /// The file.
        origin: String,
        /// The line.
        line: usize,
        /// Columns of the header.
        expected: usize,
        /// Columns found.
        found: usize,
    },
    /// A cell that must hold a number is empty (only an egress cell may be).
    #[error(
        "{origin}:{line}: the {column} cell is empty: write a number there (only egress_mb_per_s may be left empty, for unknown)"
    )]
    EmptyCell {
        /// The file.
        origin: String,
        /// The line.
        line: usize,
        /// The column.
        column: &'static str,
    },
    /// A value that is not a finite number.
    #[error("{origin}:{line}: {column} '{value}' is not a number")]
    NotANumber {
        /// The file.
        origin: String,
        /// The line.
        line: usize,
        /// The column.
        column: &'static str,
        /// The text found.
        value: String,
    },
    /// A time earlier than the previous row's.
    #[error("{origin}:{line}: time goes backwards: {t} s after {previous} s on the previous row")]
    TimeWentBackwards {
        /// The file.
        origin: String,
        /// The line.
        line: usize,
        /// This row's time.
        t: f64,
        /// The previous row's time.
        previous: f64,
    },
    /// The same time as the previous row.
    #[error("{origin}:{line}: time {t} s repeats the previous row's time; times must increase")]
    RepeatedTime {
        /// The file.
        origin: String,
        /// The line.
        line: usize,
        /// The time.
        t: f64,
    },
    /// A negative rate.
    #[error("{origin}:{line}: {column} {value} is negative; rates are zero or more")]
    NegativeRate {
        /// The file.
        origin: String,
        /// The line.
        line: usize,
        /// The column.
        column: &'static str,
        /// The value.
        value: f64,
    },
    /// A rate no Kafka cluster has: most likely bytes/s written where MB/s belongs.
    #[error(
        "{origin}:{line}: {column} {value} is above {MAX_RATE_MB_PER_S} MB/s (1 TB/s); rates are in MB/s (250 for 250 MB/s)"
    )]
    RateTooHigh {
        /// The file.
        origin: String,
        /// The line.
        line: usize,
        /// The column.
        column: &'static str,
        /// The value as written.
        value: String,
    },
    /// A row too far from the first for the simulator to hold every minute in between.
    #[error(
        "{origin}:{line}: t_seconds {t} is {days:.0} days after the first row ({first} s); a trace's rows may span at most {MAX_TRACE_DAYS} days (t_seconds counts seconds, not milliseconds)"
    )]
    SpanTooLong {
        /// The file.
        origin: String,
        /// The line.
        line: usize,
        /// The row's time.
        t: f64,
        /// The first row's time.
        first: f64,
        /// Days between them.
        days: f64,
    },
    /// No row after the header.
    #[error("{origin}: no data rows (expected '{HEADER}' and at least one row)")]
    Empty {
        /// The file.
        origin: String,
    },
    /// The history asked for covers the whole trace.
    #[error(
        "{origin}: the history asked for ({history_minutes} min) covers the whole trace ({minutes} min); ask for less, so that some of the trace remains to replay"
    )]
    HistoryTooLong {
        /// The file.
        origin: String,
        /// Minutes asked for as history.
        history_minutes: usize,
        /// Minutes in the trace.
        minutes: usize,
    },
}

/// Demand, one value per minute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Demand {
    /// Where it came from (file or scenario name).
    pub origin: String,
    /// Time of the first minute, seconds.
    pub start_secs: f64,
    /// Ingress per minute, bytes/s.
    pub ingress: Vec<f64>,
    /// Consumer egress per minute, bytes/s, when the trace has it.
    pub egress: Option<Vec<f64>>,
    /// Ingress per minute, bytes/s, of the minutes just before `start_secs` (the last one ends
    /// at `start_secs`): what the controllers already know when the run starts, as the operator
    /// reads its Prometheus history at its first reconcile. Not replayed, not scored.
    #[serde(skip)]
    pub history: Vec<f64>,
    /// Consumer egress per minute, bytes/s, of the same minutes as `history` (and as long),
    /// when the trace has it: the controllers know the fan-out it shows from the start, as
    /// the operator reads egress from Prometheus too.
    #[serde(skip)]
    pub history_egress: Option<Vec<f64>>,
}

impl Demand {
    /// Number of minutes.
    pub fn minutes(&self) -> usize {
        self.ingress.len()
    }

    /// The highest ingress.
    pub fn peak(&self) -> Throughput {
        Throughput::from_bytes_per_s(self.ingress.iter().copied().fold(0.0, f64::max))
    }

    /// The mean ingress.
    pub fn mean(&self) -> Throughput {
        let n = self.ingress.len().max(1) as f64;
        Throughput::from_bytes_per_s(self.ingress.iter().sum::<f64>() / n)
    }

    /// The ingress of the `window` minutes just before the start, oldest first: from the
    /// history where it reaches, and before that as at the start.
    pub fn before_start(&self, window: usize) -> Vec<f64> {
        let known = self.history.len().min(window);
        let fill = self.ingress.first().copied().unwrap_or(0.0);
        let mut out = vec![fill; window - known];
        out.extend_from_slice(&self.history[self.history.len() - known..]);
        out
    }

    /// Makes the first `span` of the demand history: the controllers know it when the run
    /// starts, and the run (and its scoring) starts after it. Rounded to whole minutes; at
    /// least one minute must remain to replay.
    pub fn split_history(mut self, span: Span) -> Result<Self, TraceError> {
        let minutes = span.minutes().round().max(0.0) as usize;
        if minutes == 0 {
            return Ok(self);
        }
        if minutes >= self.ingress.len() {
            return Err(TraceError::HistoryTooLong {
                origin: self.origin.clone(),
                history_minutes: minutes,
                minutes: self.ingress.len(),
            });
        }
        let known_before = self.history.len();
        let rest = self.ingress.split_off(minutes);
        self.history.append(&mut self.ingress);
        self.ingress = rest;
        if let Some(e) = self.egress.as_mut() {
            let rest = e.split_off(minutes);
            let mut past = std::mem::replace(e, rest);
            // Kept only while it covers the whole history, minute for minute.
            self.history_egress = match self.history_egress.take() {
                Some(mut h) if h.len() == known_before => {
                    h.append(&mut past);
                    Some(h)
                }
                None if known_before == 0 => Some(past),
                _ => None,
            };
        }
        self.start_secs += minutes as f64 * 60.0;
        Ok(self)
    }
}

/// One row of a trace, as [`parse`] reads it and [`to_csv`] writes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    /// `t_seconds`.
    pub t: f64,
    /// The ingress, bytes/s.
    pub ingress: f64,
    /// The consumer egress, bytes/s.
    pub egress: Option<f64>,
}

/// Parses a trace; `origin` names it in errors (usually the file path).
pub fn parse(text: &str, origin: &str) -> Result<Demand, TraceError> {
    // Spreadsheets save "CSV UTF-8" with a byte-order mark, invisible in the header.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let Some((header_line, header)) = lines.next() else {
        return Err(TraceError::Empty {
            origin: origin.to_string(),
        });
    };
    let columns: Vec<String> = header.split(',').map(|c| c.trim().to_string()).collect();
    let has_egress = match columns
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["t_seconds", "ingress_mb_per_s"] => false,
        ["t_seconds", "ingress_mb_per_s", "egress_mb_per_s"] => true,
        _ => {
            return Err(TraceError::BadHeader {
                origin: origin.to_string(),
                line: header_line,
                found: header.to_string(),
            });
        }
    };
    let expected = if has_egress { 3 } else { 2 };
    let mut rows: Vec<Row> = Vec::new();
    for (line, text) in lines {
        let values: Vec<&str> = text.split(',').map(str::trim).collect();
        if values.len() != expected {
            return Err(TraceError::WrongColumnCount {
                origin: origin.to_string(),
                line,
                expected,
                found: values.len(),
            });
        }
        let number = |i: usize, column: &'static str| -> Result<f64, TraceError> {
            if values[i].is_empty() {
                return Err(TraceError::EmptyCell {
                    origin: origin.to_string(),
                    line,
                    column,
                });
            }
            values[i]
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| TraceError::NotANumber {
                    origin: origin.to_string(),
                    line,
                    column,
                    value: values[i].to_string(),
                })
        };
        let t = number(0, "t_seconds")?;
        let ingress = number(1, "ingress_mb_per_s")?;
        let egress = if has_egress && !values[2].is_empty() {
            Some(number(2, "egress_mb_per_s")?)
        } else {
            None
        };
        for (column, v, written) in [
            ("ingress_mb_per_s", Some(ingress), values[1]),
            (
                "egress_mb_per_s",
                egress,
                values.get(2).copied().unwrap_or_default(),
            ),
        ] {
            if let Some(v) = v
                && v < 0.0
            {
                return Err(TraceError::NegativeRate {
                    origin: origin.to_string(),
                    line,
                    column,
                    value: v,
                });
            }
            if let Some(v) = v
                && v > MAX_RATE_MB_PER_S
            {
                return Err(TraceError::RateTooHigh {
                    origin: origin.to_string(),
                    line,
                    column,
                    value: written.to_string(),
                });
            }
        }
        // The last row's rates hold for as long as the interval before it, so the minutes
        // reach twice as far as the rows at most.
        if let Some(first) = rows.first().map(|r| r.t)
            && t - first > MAX_TRACE_DAYS * 86_400.0
        {
            return Err(TraceError::SpanTooLong {
                origin: origin.to_string(),
                line,
                t,
                first,
                days: (t - first) / 86_400.0,
            });
        }
        if let Some(prev) = rows.last() {
            if t < prev.t {
                return Err(TraceError::TimeWentBackwards {
                    origin: origin.to_string(),
                    line,
                    t,
                    previous: prev.t,
                });
            }
            if t == prev.t {
                return Err(TraceError::RepeatedTime {
                    origin: origin.to_string(),
                    line,
                    t,
                });
            }
        }
        rows.push(Row {
            t,
            ingress: ingress * 1e6,
            egress: egress.map(|e| e * 1e6),
        });
    }
    if rows.is_empty() {
        return Err(TraceError::Empty {
            origin: origin.to_string(),
        });
    }
    Ok(resample(&rows, origin, has_egress))
}

/// Averages the step function the rows describe over each minute.
fn resample(rows: &[Row], origin: &str, has_egress: bool) -> Demand {
    let start = rows[0].t;
    let last = rows[rows.len() - 1].t;
    let hold = if rows.len() >= 2 {
        last - rows[rows.len() - 2].t
    } else {
        60.0
    };
    let end = last + hold;
    let minutes = (((end - start) / 60.0).ceil() as usize).max(1);
    let mut ingress = vec![0.0; minutes];
    let mut egress = vec![0.0; minutes];
    // The part of each minute whose egress is known.
    let mut known = vec![0.0; minutes];
    for (i, row) in rows.iter().enumerate() {
        let seg_end = rows.get(i + 1).map_or(end, |r| r.t);
        let (mut a, b) = (row.t - start, seg_end - start);
        while a < b {
            let m = ((a / 60.0).floor() as usize).min(minutes - 1);
            let edge = ((m + 1) as f64 * 60.0).min(b);
            let w = (edge - a) / 60.0;
            ingress[m] += row.ingress * w;
            if let Some(e) = row.egress {
                egress[m] += e * w;
                known[m] += w;
            }
            if edge <= a {
                break;
            }
            a = edge;
        }
    }
    // A last minute only partly covered is scaled up to its covered fraction.
    let covered = (end - start) / 60.0 - (minutes - 1) as f64;
    if covered > 0.0 && covered < 1.0 {
        ingress[minutes - 1] /= covered;
    }
    Demand {
        origin: origin.to_string(),
        start_secs: start,
        ingress,
        egress: if has_egress {
            fill_unknown(&egress, &known)
        } else {
            None
        },
        history: Vec::new(),
        history_egress: None,
    }
}

/// Each minute's egress from its sum over the known part of the minute (`known`, in minutes):
/// the average where some of it is known, interpolated between the nearest known minutes
/// elsewhere (held flat at the ends). `None` when no minute is known.
fn fill_unknown(sum: &[f64], known: &[f64]) -> Option<Vec<f64>> {
    let at: Vec<(usize, f64)> = known
        .iter()
        .enumerate()
        .filter(|(_, k)| **k > 1e-9)
        .map(|(m, k)| (m, sum[m] / k))
        .collect();
    let (first, last) = (*at.first()?, *at.last()?);
    let mut out = vec![0.0; sum.len()];
    for (m, value) in out.iter_mut().enumerate() {
        let after = at.partition_point(|(k, _)| *k < m);
        *value = match (after.checked_sub(1).map(|i| at[i]), at.get(after)) {
            (_, Some(&(k, v))) if k == m => v,
            (Some((a, va)), Some(&(b, vb))) => va + (vb - va) * (m - a) as f64 / (b - a) as f64,
            (None, _) => first.1,
            (_, None) => last.1,
        };
    }
    Some(out)
}

/// Writes rows as a trace [`parse`] reads: the egress column when some row has one (an empty
/// cell where a row has none), times as whole seconds, rates in MB/s to the byte per second.
pub fn to_csv(rows: &[Row]) -> String {
    let with_egress = rows.iter().any(|r| r.egress.is_some());
    let mut csv = String::from(if with_egress {
        HEADER_WITH_EGRESS
    } else {
        HEADER
    });
    csv.push('\n');
    for r in rows {
        csv.push_str(&format!("{:.0},{:.6}", r.t, r.ingress / 1e6));
        match (with_egress, r.egress) {
            (true, Some(e)) => csv.push_str(&format!(",{:.6}", e / 1e6)),
            (true, None) => csv.push(','),
            (false, _) => {}
        }
        csv.push('\n');
    }
    csv
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trace saved as Excel's "CSV UTF-8" starts with a byte-order mark: it was refused as
    /// "bad header" with a header that looked right.
    #[test]
    fn a_leading_byte_order_mark_is_ignored() {
        for text in [
            "\u{feff}t_seconds,ingress_mb_per_s\r\n0,100\r\n60,120\r\n",
            "\u{feff}t_seconds,ingress_mb_per_s,egress_mb_per_s\n0,100,200\n60,120,240\n",
        ] {
            let demand = parse(text, "excel.csv").expect("parses");
            assert_eq!(demand.ingress, vec![100e6, 120e6]);
        }
    }

    #[test]
    fn written_rows_parse_back() {
        let row = |t, i: f64, e: Option<f64>| Row {
            t,
            ingress: i * 1e6,
            egress: e.map(|e| e * 1e6),
        };
        let both = [row(0.0, 10.0, Some(20.0)), row(60.0, 12.5, Some(25.0))];
        let csv = to_csv(&both);
        assert_eq!(
            csv,
            "t_seconds,ingress_mb_per_s,egress_mb_per_s\n0,10.000000,20.000000\n60,12.500000,25.000000\n"
        );
        let demand = parse(&csv, "written").expect("parses");
        assert_eq!(demand.ingress, vec![10e6, 12.5e6]);
        assert_eq!(demand.egress, Some(vec![20e6, 25e6]));
        // A row without egress: an empty cell, filled from its neighbours when read.
        let csv = to_csv(&[
            row(0.0, 10.0, Some(20.0)),
            row(60.0, 12.5, None),
            row(120.0, 11.0, Some(30.0)),
        ]);
        assert_eq!(
            csv,
            "t_seconds,ingress_mb_per_s,egress_mb_per_s\n0,10.000000,20.000000\n60,12.500000,\n120,11.000000,30.000000\n"
        );
        let demand = parse(&csv, "written").expect("parses");
        assert_eq!(demand.egress, Some(vec![20e6, 25e6, 30e6]));
        // No row with egress: no egress column.
        let csv = to_csv(&[row(0.0, 10.0, None), row(60.0, 12.5, None)]);
        assert!(csv.starts_with("t_seconds,ingress_mb_per_s\n0,10.000000\n"));
        assert_eq!(parse(&csv, "written").expect("parses").egress, None);
    }

    #[test]
    fn unknown_egress_is_filled_from_the_known_minutes() {
        // Minutes 0-1 unknown, 2 known, 3 half known, 4-5 unknown, 6 known, 7 unknown.
        let text = "t_seconds,ingress_mb_per_s,egress_mb_per_s\n\
                    0,1,\n120,1,10\n180,1,20\n210,1,\n360,1,50\n420,1,\n";
        let d = parse(text, "gaps.csv").expect("parses");
        assert_eq!(d.ingress, vec![1e6; 8]);
        let e: Vec<f64> = d.egress.expect("egress").iter().map(|e| e / 1e6).collect();
        assert_eq!(e, [10.0, 10.0, 10.0, 20.0, 30.0, 40.0, 50.0, 50.0]);
        // All empty: no egress; an empty ingress is still refused.
        let none = parse(
            "t_seconds,ingress_mb_per_s,egress_mb_per_s\n0,1,\n60,2,\n",
            "n.csv",
        );
        assert_eq!(none.expect("parses").egress, None);
        // It said "ingress_mb_per_s '' is not a number".
        let err = parse(
            "t_seconds,ingress_mb_per_s,egress_mb_per_s\n0,,3\n",
            "i.csv",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "i.csv:2: the ingress_mb_per_s cell is empty: write a number there (only egress_mb_per_s may be left empty, for unknown)"
        );
    }

    #[test]
    fn parses_and_averages_per_minute() {
        let text = "# a comment\nt_seconds,ingress_mb_per_s\n0,100\n30,200\n60, 50\n\n120,10\n";
        let d = parse(text, "x.csv").unwrap();
        assert_eq!(d.minutes(), 3);
        assert!((d.ingress[0] / 1e6 - 150.0).abs() < 1e-9);
        assert!((d.ingress[1] / 1e6 - 50.0).abs() < 1e-9);
        assert!((d.ingress[2] / 1e6 - 10.0).abs() < 1e-9);
        assert_eq!(d.egress, None);
        assert_eq!(d.peak().mb_per_s(), 150.0);
    }

    #[test]
    fn the_first_part_of_a_trace_can_be_history() {
        let text = "t_seconds,ingress_mb_per_s,egress_mb_per_s\n0,1,2\n60,3,4\n120,5,6\n180,7,8\n";
        let d = parse(text, "h.csv")
            .unwrap()
            .split_history(Span::from_minutes(3.0))
            .unwrap();
        assert_eq!(d.history, vec![1e6, 3e6, 5e6]);
        // The egress of the history is kept too: it sets the fan-out from the first decision.
        assert_eq!(d.history_egress, Some(vec![2e6, 4e6, 6e6]));
        assert_eq!(
            (d.ingress.clone(), d.egress.clone()),
            (vec![7e6], Some(vec![8e6]))
        );
        assert_eq!(d.start_secs, 180.0);
        // Before the start: the history where it reaches, the first minute's rate before it.
        assert_eq!(d.before_start(2), vec![3e6, 5e6]);
        assert_eq!(d.before_start(5), vec![7e6, 7e6, 1e6, 3e6, 5e6]);
        let err = parse(text, "h.csv")
            .unwrap()
            .split_history(Span::from_minutes(4.0))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("h.csv: the history asked for (4 min) covers the whole trace (4 min)"),
            "{err}"
        );
        let d = parse(text, "h.csv").unwrap();
        assert_eq!(d.clone().split_history(Span::ZERO).unwrap(), d);
    }

    #[test]
    fn reads_egress() {
        let d = parse(
            "t_seconds,ingress_mb_per_s,egress_mb_per_s\n0,100,250\n60,100,200\n",
            "e",
        )
        .unwrap();
        assert_eq!(d.egress.unwrap(), vec![250e6, 200e6]);
    }

    #[test]
    fn malformed_traces_are_refused_with_file_line_and_reason() {
        let cases = [
            ("time,rate\n0,1\n", "t.csv:1: bad header 'time,rate'"),
            (
                "t_seconds,ingress_mb_per_s\n0,1\n60,abc\n",
                "t.csv:3: ingress_mb_per_s 'abc' is not a number",
            ),
            (
                "t_seconds,ingress_mb_per_s\n0,1\n60,inf\n",
                "t.csv:3: ingress_mb_per_s 'inf' is not a number",
            ),
            (
                "t_seconds,ingress_mb_per_s\n0,1\n120,1\n60,1\n",
                "t.csv:4: time goes backwards: 60 s after 120 s",
            ),
            (
                "t_seconds,ingress_mb_per_s\n0,1\n0,2\n",
                "t.csv:3: time 0 s repeats",
            ),
            (
                "t_seconds,ingress_mb_per_s\n0,1\n60,-5\n",
                "t.csv:3: ingress_mb_per_s -5 is negative",
            ),
            (
                "t_seconds,ingress_mb_per_s,egress_mb_per_s\n0,1,-2\n",
                "t.csv:2: egress_mb_per_s -2 is negative",
            ),
            (
                "t_seconds,ingress_mb_per_s\n0,1,2\n",
                "t.csv:2: expected 2 comma-separated values, found 3",
            ),
            ("t_seconds,ingress_mb_per_s\n", "t.csv: no data rows"),
            ("", "t.csv: no data rows"),
            // Bytes/s where MB/s belongs.
            (
                "t_seconds,ingress_mb_per_s\n0,250000000\n",
                "t.csv:2: ingress_mb_per_s 250000000 is above 1000000 MB/s (1 TB/s); rates are in MB/s",
            ),
            (
                "t_seconds,ingress_mb_per_s,egress_mb_per_s\n0,1,1e300\n",
                "t.csv:2: egress_mb_per_s 1e300 is above 1000000 MB/s",
            ),
            // Milliseconds where seconds belong: 800 days, which once aborted the run
            // allocating a billion minutes (here it would be 1.15 million).
            (
                "t_seconds,ingress_mb_per_s\n0,1\n60,1\n69120000,1\n",
                "t.csv:4: t_seconds 69120000 is 800 days after the first row (0 s); a trace's rows may span at most 732 days",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text, "t.csv").unwrap_err().to_string();
            assert!(
                err.starts_with(want),
                "{text:?}: got '{err}', want '{want}'"
            );
        }
        // Up to the bounds, accepted.
        let d = parse(
            "t_seconds,ingress_mb_per_s\n0,1000000\n63244800,1\n",
            "t.csv",
        )
        .expect("732 days at 1 TB/s");
        assert_eq!(d.ingress[0], 1e12);
    }
}
