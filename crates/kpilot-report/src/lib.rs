//! Self-contained HTML reports with inline SVG charts: one file, no scripts, no external
//! resources, readable offline and attachable to a ticket. Pure: builds strings, writes nothing.
//!
//! ```
//! use kpilot_report::{AxisFormat, Chart, Page, Series};
//! let chart = Chart::new("Demand", "time", "MB/s")
//!     .x_format(AxisFormat::Seconds)
//!     .series(Series::line("ingress", vec![(0.0, 10.0), (3600.0, 40.0)]))
//!     .series(Series::step("capacity", vec![(0.0, 50.0), (3600.0, 50.0)]).dashed());
//! let mut page = Page::new("Simulation");
//! page.heading("Demand and capacity");
//! page.chart(&chart);
//! assert!(page.render().contains("<svg"));
//! ```

mod chart;
mod page;

pub use chart::{AxisFormat, Chart, Series, SeriesKind};
pub use page::Page;

/// Escapes text for HTML and SVG content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}
