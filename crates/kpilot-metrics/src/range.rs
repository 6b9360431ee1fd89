//! The cluster's ingress and egress over time from Prometheus' range queries, without I/O: the
//! query (producer bytes in, or consumer bytes out, per broker, each point the average over the
//! step before it), the `matrix` answer, and the cluster total per step where a step at which
//! fewer brokers report than around it is a gap, not a dip in load. Pure: no I/O.

use std::collections::BTreeMap;

use kpilot_units::{Span, Throughput};

use crate::promql::{ApiAnswer, PrometheusSettings, labels_of, parse_value, range, success_data};

/// Prometheus refuses range queries of more than 11 000 points per series; a longer history
/// is read in chunks of this many steps.
pub const MAX_POINTS_PER_QUERY: usize = 10_000;

/// Brokers looked at either side of a step to tell a gap from a change in broker count.
const NEIGHBOURS: usize = 3;

/// The range query: producer bytes in per broker, each point averaged over the `step`
/// ending at it (so consecutive points neither overlap nor leave gaps).
pub fn ingress_query(s: &PrometheusSettings, step: Span) -> String {
    rate_query(s, &s.bytes_in, step)
}

/// The same for consumer bytes out (egress).
pub fn egress_query(s: &PrometheusSettings, step: Span) -> String {
    rate_query(s, &s.bytes_out, step)
}

fn rate_query(s: &PrometheusSettings, counter: &str, step: Span) -> String {
    format!(
        "sum by ({by}) (rate({counter}{{{m}}}[{r}]))",
        by = s.broker_label,
        m = s.broker_matchers(),
        r = range(step),
    )
}

/// One series of a range answer.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// `(unix seconds, value)` in time order.
    pub points: Vec<(f64, f64)>,
}

/// Parses a range-query answer (`resultType` `matrix`).
pub fn parse_matrix(body: &str) -> Result<Vec<RangeSeries>, ApiAnswer> {
    let v = success_data(body)?;
    let data = &v["data"];
    if data["resultType"].as_str() != Some("matrix") {
        return Err(ApiAnswer::Invalid(format!(
            "result type {:?}, expected a matrix",
            data["resultType"].as_str()
        )));
    }
    let result = data["result"]
        .as_array()
        .ok_or_else(|| ApiAnswer::Invalid("`data.result` is not a list".into()))?;
    result
        .iter()
        .map(|item| {
            let labels = labels_of(item);
            let values = item["values"]
                .as_array()
                .ok_or_else(|| ApiAnswer::Invalid("a series has no `values` list".into()))?;
            let points = values
                .iter()
                .map(|pair| {
                    let t = pair.get(0).and_then(serde_json::Value::as_f64);
                    let text = pair.get(1).and_then(serde_json::Value::as_str);
                    match (t, text) {
                        (Some(t), Some(text)) => parse_value(text)
                            .map(|x| (t, x))
                            .ok_or_else(|| ApiAnswer::Invalid(format!("sample value {text:?}"))),
                        _ => Err(ApiAnswer::Invalid(
                            "a sample is not [time, \"value\"]".into(),
                        )),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(RangeSeries { labels, points })
        })
        .collect()
}

/// A cluster rate (ingress or egress) over time.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RateHistory {
    /// `(unix seconds, cluster rate)` in time order, one per step with data.
    pub points: Vec<(f64, Throughput)>,
    /// Steps left out because fewer brokers reported than expected or than around them
    /// (a scrape gap or a broker restarting, not a change in load).
    pub gaps: usize,
}

impl RateHistory {
    /// A history of `(unix seconds, MB/s)` points with no gap (for tests and tools).
    pub fn of_mb_per_s(points: &[(f64, f64)]) -> RateHistory {
        RateHistory {
            points: points
                .iter()
                .map(|&(t, mb)| (t, Throughput::from_mb_per_s(mb)))
                .collect(),
            gaps: 0,
        }
    }
}

/// Sums the per-broker series per step. A step is left out (counted in `gaps`) when a value
/// is not a finite non-negative rate, when fewer than `expected_brokers` report (if set), or
/// when fewer brokers report than at every one of the nearest steps around it (a broker
/// missing for a moment; a lasting change in broker count is kept).
pub fn total(series: &[RangeSeries], expected_brokers: Option<usize>) -> RateHistory {
    let mut per_step: BTreeMap<i64, (usize, f64, bool)> = BTreeMap::new();
    for s in series {
        for &(t, x) in &s.points {
            let e = per_step
                .entry((t * 1000.0).round() as i64)
                .or_insert((0, 0.0, true));
            e.0 += 1;
            if x.is_finite() && x >= 0.0 {
                e.1 += x;
            } else {
                e.2 = false;
            }
        }
    }
    let steps: Vec<(i64, usize, f64, bool)> = per_step
        .into_iter()
        .map(|(t, (n, sum, ok))| (t, n, sum, ok))
        .collect();
    let mut out = RateHistory::default();
    for (i, &(t, n, sum, ok)) in steps.iter().enumerate() {
        let before: Vec<usize> = steps[i.saturating_sub(NEIGHBOURS)..i]
            .iter()
            .map(|s| s.1)
            .collect();
        let after: Vec<usize> = steps[i + 1..(i + 1 + NEIGHBOURS).min(steps.len())]
            .iter()
            .map(|s| s.1)
            .collect();
        let dip =
            !(before.is_empty() && after.is_empty()) && before.iter().chain(&after).all(|&m| m > n);
        let gap = !ok || expected_brokers.is_some_and(|e| n < e) || dip;
        if gap {
            out.gaps += 1;
        } else {
            out.points
                .push((t as f64 / 1000.0, Throughput::from_bytes_per_s(sum)));
        }
    }
    out
}

/// The `(start, end)` of each range query covering `[start, end]` at `step`, at most
/// [`MAX_POINTS_PER_QUERY`] points each, in time order.
pub fn chunks(start: f64, end: f64, step: Span) -> Vec<(f64, f64)> {
    let step = step.secs().max(1.0);
    let width = step * (MAX_POINTS_PER_QUERY - 1) as f64;
    let mut out = Vec::new();
    let mut from = start;
    while from <= end {
        let to = (from + width).min(end);
        out.push((from, to));
        from = to + step;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(broker: &str, points: &[(f64, f64)]) -> RangeSeries {
        RangeSeries {
            labels: [("instance".to_owned(), broker.to_owned())].into(),
            points: points.to_vec(),
        }
    }

    #[test]
    fn the_query_averages_each_step() {
        let s = PrometheusSettings::new("http://127.0.0.1:9090");
        assert_eq!(
            ingress_query(&s, Span::from_minutes(5.0)),
            "sum by (instance) (rate(kafka_server_brokertopicmetrics_bytesin_total{topic=\"\"}[300s]))"
        );
        assert_eq!(
            egress_query(&s, Span::from_minutes(5.0)),
            "sum by (instance) (rate(kafka_server_brokertopicmetrics_bytesout_total{topic=\"\"}[300s]))"
        );
    }

    #[test]
    fn a_matrix_answer_parses_and_errors_say_why() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"instance":"a"},"values":[[100,"1.5"],[160.5,"NaN"]]}]}}"#;
        let m = parse_matrix(body).expect("matrix");
        assert_eq!(m[0].labels["instance"], "a");
        assert_eq!(m[0].points[0], (100.0, 1.5));
        assert!(m[0].points[1].1.is_nan());
        let vector = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(matches!(parse_matrix(vector), Err(ApiAnswer::Invalid(m)) if m.contains("matrix")));
        let err =
            r#"{"status":"error","errorType":"bad_data","error":"exceeded maximum resolution"}"#;
        assert_eq!(
            parse_matrix(err),
            Err(ApiAnswer::Error(
                "bad_data: exceeded maximum resolution".into()
            ))
        );
        let bad = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"x"]]}]}}"#;
        assert!(matches!(parse_matrix(bad), Err(ApiAnswer::Invalid(_))));
    }

    #[test]
    fn totals_sum_brokers_and_leave_out_gaps_not_scale_changes() {
        let t = |i: usize| 60.0 * i as f64;
        // Three brokers for 10 steps; broker c misses step 4; a 4th broker joins at step 7
        // for good; step 8 has a NaN.
        let a: Vec<_> = (0..10).map(|i| (t(i), 1.0e6)).collect();
        let b: Vec<_> = (0..10)
            .map(|i| (t(i), if i == 8 { f64::NAN } else { 2.0e6 }))
            .collect();
        let c: Vec<_> = (0..10).filter(|&i| i != 4).map(|i| (t(i), 3.0e6)).collect();
        let d: Vec<_> = (7..10).map(|i| (t(i), 0.5e6)).collect();
        let h = total(
            &[
                series("a", &a),
                series("b", &b),
                series("c", &c),
                series("d", &d),
            ],
            None,
        );
        assert_eq!(h.gaps, 2, "{h:?}");
        let at = |i: usize| {
            h.points
                .iter()
                .find(|p| p.0 == t(i))
                .map(|p| p.1.bytes_per_s())
        };
        assert_eq!(at(0), Some(6.0e6));
        assert_eq!(at(4), None, "a broker missing for one step is a gap");
        assert_eq!(at(7), Some(6.5e6), "a broker added for good is not a gap");
        assert_eq!(at(8), None, "a NaN is not a rate");
        assert_eq!(at(9), Some(6.5e6));
        // With an expected count, steps below it are gaps.
        let h = total(&[series("a", &a), series("b", &b)], Some(3));
        assert!(h.points.is_empty());
        assert_eq!(h.gaps, 10);
    }

    #[test]
    fn long_ranges_are_read_in_chunks_under_the_point_limit() {
        let step = Span::from_minutes(5.0);
        let end = 28.0 * 86_400.0;
        let c = chunks(0.0, end, step);
        assert_eq!(c.len(), 1, "28 days at 5 min is 8065 points: one query");
        let c = chunks(0.0, end, Span::from_minutes(1.0));
        assert_eq!(c.len(), 5);
        let mut next = 0.0;
        for (from, to) in &c {
            assert_eq!(*from, next, "no step skipped or read twice");
            assert!((to - from) / 60.0 + 1.0 <= MAX_POINTS_PER_QUERY as f64);
            next = to + 60.0;
        }
        assert_eq!(c.last().map(|c| c.1), Some(end));
    }
}
