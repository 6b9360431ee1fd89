//! Line, step and scatter charts rendered as inline SVG, with "nice" axis ticks, a legend and
//! vertical markers. Pure.

use std::fmt::Write as _;

use crate::escape;

/// How x-axis values are labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AxisFormat {
    /// Plain numbers.
    #[default]
    Plain,
    /// Values are seconds: ticks fall on round durations and read `30s`, `15m`, `6h`, `2d 12h`.
    Seconds,
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesKind {
    /// Straight segments between points.
    Line,
    /// Horizontal then vertical segments (a value that holds until the next point).
    Step,
    /// Dots only.
    Scatter,
}

/// One named series of `(x, y)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend name.
    pub name: String,
    /// The points, in x order for lines and steps.
    pub points: Vec<(f64, f64)>,
    /// How it is drawn.
    pub kind: SeriesKind,
    /// Dashed stroke.
    pub dashed: bool,
    /// Explicit colour (CSS), or the palette's next one.
    pub color: Option<String>,
}

impl Series {
    fn new(name: &str, points: Vec<(f64, f64)>, kind: SeriesKind) -> Self {
        Self {
            name: name.to_string(),
            points,
            kind,
            dashed: false,
            color: None,
        }
    }

    /// A line series.
    pub fn line(name: &str, points: Vec<(f64, f64)>) -> Self {
        Self::new(name, points, SeriesKind::Line)
    }

    /// A step series.
    pub fn step(name: &str, points: Vec<(f64, f64)>) -> Self {
        Self::new(name, points, SeriesKind::Step)
    }

    /// A scatter series.
    pub fn scatter(name: &str, points: Vec<(f64, f64)>) -> Self {
        Self::new(name, points, SeriesKind::Scatter)
    }

    /// Draws it dashed.
    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }

    /// Uses this CSS colour.
    pub fn color(mut self, color: &str) -> Self {
        self.color = Some(color.to_string());
        self
    }
}

const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];

/// A chart: title, axis labels, series and vertical markers.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    title: String,
    x_label: String,
    y_label: String,
    x_format: AxisFormat,
    series: Vec<Series>,
    markers: Vec<(f64, String)>,
    width: u32,
    height: u32,
    y_min_zero: bool,
    log_x: bool,
}

impl Chart {
    /// An empty chart.
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Self {
        Self {
            title: title.to_string(),
            x_label: x_label.to_string(),
            y_label: y_label.to_string(),
            x_format: AxisFormat::Plain,
            series: Vec::new(),
            markers: Vec::new(),
            width: 900,
            height: 320,
            y_min_zero: true,
            log_x: false,
        }
    }

    /// Sets how x values are labelled.
    pub fn x_format(mut self, format: AxisFormat) -> Self {
        self.x_format = format;
        self
    }

    /// Adds a series.
    pub fn series(mut self, series: Series) -> Self {
        self.series.push(series);
        self
    }

    /// Adds a labelled vertical marker at `x`.
    pub fn marker(mut self, x: f64, label: &str) -> Self {
        self.markers.push((x, label.to_string()));
        self
    }

    /// Sets the size in pixels.
    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.width = width.max(200);
        self.height = height.max(120);
        self
    }

    /// Lets the y axis start above zero when the data does.
    pub fn y_from_data(mut self) -> Self {
        self.y_min_zero = false;
        self
    }

    /// Uses a base-10 logarithmic x axis (e.g. for latency percentiles); points with x <= 0 are
    /// dropped.
    pub fn log_x(mut self) -> Self {
        self.log_x = true;
        self
    }

    /// Renders the chart as an `<svg>` element.
    pub fn to_svg(&self) -> String {
        let (w, h) = (f64::from(self.width), f64::from(self.height));
        let legend_rows = self.series.len().div_ceil(4).max(1) as f64;
        let (left, right, top, bottom) = (70.0, 20.0, 34.0, 44.0 + 16.0 * legend_rows);
        let (pw, ph) = (w - left - right, h - top - bottom);
        let tx = |x: f64| if self.log_x { x.log10() } else { x };
        let points = || {
            self.series
                .iter()
                .flat_map(|s| s.points.iter().copied())
                .filter(|&(x, y)| x.is_finite() && y.is_finite() && (!self.log_x || x > 0.0))
        };
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for (x, y) in points() {
            let x = tx(x);
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        for (x, _) in &self.markers {
            if x.is_finite() && (!self.log_x || *x > 0.0) {
                x0 = x0.min(tx(*x));
                x1 = x1.max(tx(*x));
            }
        }
        let empty = x0 > x1;
        if empty {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if self.y_min_zero {
            y0 = y0.min(0.0);
        }
        if (x1 - x0).abs() < f64::EPSILON {
            x1 = x0 + 1.0;
        }
        let y_ticks = nice_ticks(y0, y1 + (y1 - y0).abs() * 0.05, 6);
        let (y0, y1) = (
            *y_ticks.first().unwrap_or(&y0),
            *y_ticks.last().unwrap_or(&y1),
        );
        let y1 = if (y1 - y0).abs() < f64::EPSILON {
            y0 + 1.0
        } else {
            y1
        };
        let x_ticks = match (self.x_format, self.log_x) {
            (_, true) => log_ticks(x0, x1),
            (AxisFormat::Seconds, false) => time_ticks(x0, x1),
            (AxisFormat::Plain, false) => nice_ticks(x0, x1, 8),
        };
        let sx = |x: f64| left + (tx(x) - x0) / (x1 - x0) * pw;
        let sy = |y: f64| top + ph - (y - y0) / (y1 - y0) * ph;

        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" font-family="sans-serif" font-size="12" role="img" aria-label="{t}">"#,
            t = escape(&self.title)
        );
        let _ = write!(
            svg,
            r#"<text x="{}" y="20" font-size="14" font-weight="bold">{}</text>"#,
            left,
            escape(&self.title)
        );
        // Grid and ticks.
        for &t in &y_ticks {
            let y = sy(t);
            let _ = write!(
                svg,
                r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                left + pw,
                left - 6.0,
                y + 4.0,
                format_number(t)
            );
        }
        for &t in &x_ticks {
            let raw = if self.log_x { 10f64.powf(t) } else { t };
            let x = sx(raw);
            if !(left - 0.5..=left + pw + 0.5).contains(&x) {
                continue;
            }
            let label = match (self.x_format, self.log_x) {
                (AxisFormat::Seconds, false) => format_seconds(t),
                _ => format_number(raw),
            };
            let _ = write!(
                svg,
                r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#f0f0f0"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                top + ph,
                top + ph + 16.0,
                escape(&label)
            );
        }
        let _ = write!(
            svg,
            r##"<rect x="{left}" y="{top}" width="{pw:.1}" height="{ph:.1}" fill="none" stroke="#888"/>"##
        );
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            left + pw / 2.0,
            top + ph + 32.0,
            escape(&self.x_label)
        );
        let _ = write!(
            svg,
            r#"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            top + ph / 2.0,
            escape(&self.y_label)
        );
        // Markers.
        for (x, label) in &self.markers {
            if !x.is_finite() || (self.log_x && *x <= 0.0) {
                continue;
            }
            let px = sx(*x);
            let _ = write!(
                svg,
                r##"<line x1="{px:.1}" y1="{top}" x2="{px:.1}" y2="{:.1}" stroke="#999" stroke-dasharray="2 3"/><text x="{:.1}" y="{:.1}" font-size="10" fill="#555">{}</text>"##,
                top + ph,
                px + 3.0,
                top + 10.0,
                escape(label)
            );
        }
        // Series.
        for (i, s) in self.series.iter().enumerate() {
            let color = s
                .color
                .clone()
                .unwrap_or_else(|| PALETTE[i % PALETTE.len()].to_string());
            let pts: Vec<(f64, f64)> = s
                .points
                .iter()
                .copied()
                .filter(|&(x, y)| x.is_finite() && y.is_finite() && (!self.log_x || x > 0.0))
                .collect();
            let dash = if s.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            match s.kind {
                SeriesKind::Scatter => {
                    for (x, y) in &pts {
                        let _ = write!(
                            svg,
                            r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                            sx(*x),
                            sy(*y)
                        );
                    }
                }
                kind => {
                    let mut d = String::new();
                    let mut prev_y = None;
                    for (j, (x, y)) in pts.iter().enumerate() {
                        let (px, py) = (sx(*x), sy(*y));
                        if j == 0 {
                            let _ = write!(d, "M{px:.1} {py:.1}");
                        } else {
                            if kind == SeriesKind::Step
                                && let Some(p) = prev_y
                            {
                                let _ = write!(d, " L{px:.1} {p:.1}");
                            }
                            let _ = write!(d, " L{px:.1} {py:.1}");
                        }
                        prev_y = Some(py);
                    }
                    if !d.is_empty() {
                        let _ = write!(
                            svg,
                            r#"<path d="{d}" fill="none" stroke="{color}" stroke-width="1.6"{dash}/>"#
                        );
                    }
                }
            }
            // Legend entry.
            let lx = left + 8.0 + ((i % 4) as f64) * (pw / 4.0);
            let ly = top + ph + 52.0 + ((i / 4) as f64) * 16.0;
            let _ = write!(
                svg,
                r#"<line x1="{lx:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{color}" stroke-width="3"{dash}/><text x="{:.1}" y="{ly:.1}">{}</text>"#,
                ly - 4.0,
                lx + 18.0,
                ly - 4.0,
                lx + 22.0,
                escape(&s.name)
            );
        }
        if empty {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#888">no data</text>"##,
                left + pw / 2.0,
                top + ph / 2.0
            );
        }
        svg.push_str("</svg>");
        svg
    }
}

/// Round tick values covering `[lo, hi]`, about `target` of them.
fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return vec![lo, lo + 1.0];
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let start = (lo / step).floor() * step;
    let mut ticks = Vec::new();
    let mut t = start;
    while t < hi + step * 0.5 && ticks.len() < 100 {
        ticks.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    if ticks.last().is_some_and(|&l| l < hi) {
        ticks.push(t);
    }
    ticks
}

/// Ticks on round durations (seconds).
fn time_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = hi - lo;
    let steps = [
        1.0, 5.0, 10.0, 15.0, 30.0, 60.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0,
        21600.0, 43200.0, 86400.0, 172800.0, 604800.0,
    ];
    let step = steps
        .iter()
        .copied()
        .find(|s| span / s <= 10.0)
        .unwrap_or(604_800.0 * (span / 604_800.0 / 10.0).ceil());
    let mut t = (lo / step).ceil() * step;
    let mut ticks = Vec::new();
    while t <= hi + 1e-9 && ticks.len() < 100 {
        ticks.push(t);
        t += step;
    }
    ticks
}

fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (a, b) = (lo.floor() as i32, hi.ceil() as i32);
    (a..=b.max(a + 1)).map(f64::from).collect()
}

/// Formats an axis number compactly: `1.5k`, `2M`, `0.25`.
fn format_number(v: f64) -> String {
    let a = v.abs();
    let (value, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let text = if value.fract().abs() < 1e-9 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    };
    format!("{text}{suffix}")
}

/// Formats seconds as `45s`, `15m`, `6h`, `2d`, `2d 12h`.
fn format_seconds(s: f64) -> String {
    let s = s.round() as i64;
    if s % 86_400 == 0 && s != 0 {
        format!("{}d", s / 86_400)
    } else if s >= 86_400 {
        format!("{}d {}h", s / 86_400, (s % 86_400) / 3600)
    } else if s % 3600 == 0 && s != 0 {
        format!("{}h", s / 3600)
    } else if s >= 3600 {
        format!("{}h{:02}", s / 3600, (s % 3600) / 60)
    } else if s % 60 == 0 && s != 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(
            nice_ticks(0.0, 97.0, 5),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(
            time_ticks(0.0, 7.0 * 86400.0),
            (0..=7).map(|d| f64::from(d) * 86400.0).collect::<Vec<_>>()
        );
        assert_eq!(format_seconds(90000.0), "1d 1h");
        assert_eq!(format_seconds(1800.0), "30m");
        assert_eq!(format_number(2500.0), "2500");
        assert_eq!(format_number(25000.0), "25k");
        assert_eq!(format_number(0.25), "0.25");
    }

    #[test]
    fn renders_series_markers_and_escapes_text() {
        let svg = Chart::new("a <b>", "t", "MB/s")
            .x_format(AxisFormat::Seconds)
            .series(Series::line("in", vec![(0.0, 1.0), (3600.0, 2.0)]))
            .series(Series::step("cap", vec![(0.0, 3.0), (3600.0, 3.0)]).dashed())
            .marker(1800.0, "roll")
            .to_svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("a &lt;b&gt;"));
        assert_eq!(svg.matches("<path").count(), 2);
        assert!(svg.contains("stroke-dasharray=\"6 4\""));
        assert!(svg.contains(">roll<"));
    }

    #[test]
    fn empty_and_degenerate_charts_render() {
        assert!(Chart::new("e", "x", "y").to_svg().contains("no data"));
        let svg = Chart::new("one", "x", "y")
            .series(Series::scatter("p", vec![(5.0, 5.0)]))
            .to_svg();
        assert!(svg.contains("<circle"));
        let svg = Chart::new("nan", "x", "y")
            .series(Series::line(
                "p",
                vec![(f64::NAN, 1.0), (1.0, f64::INFINITY), (2.0, 3.0)],
            ))
            .to_svg();
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }
}
