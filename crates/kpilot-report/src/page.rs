//! An HTML page assembled from headings, paragraphs, tables and charts, rendered as one
//! self-contained file with inline CSS. Pure.

use crate::chart::Chart;
use crate::escape;

/// A report page.
#[derive(Debug, Clone, Default)]
pub struct Page {
    title: String,
    body: String,
}

impl Page {
    /// An empty page with a title (shown as the first heading too).
    pub fn new(title: &str) -> Self {
        Self {
            title: title.to_string(),
            body: String::new(),
        }
    }

    /// Adds a section heading.
    pub fn heading(&mut self, text: &str) -> &mut Self {
        self.body.push_str(&format!("<h2>{}</h2>\n", escape(text)));
        self
    }

    /// Adds a paragraph of text.
    pub fn paragraph(&mut self, text: &str) -> &mut Self {
        self.body.push_str(&format!("<p>{}</p>\n", escape(text)));
        self
    }

    /// Adds a table; cells that look numeric are right-aligned.
    pub fn table(&mut self, header: &[&str], rows: Vec<Vec<String>>) -> &mut Self {
        self.body.push_str("<table><thead><tr>");
        for h in header {
            self.body.push_str(&format!("<th>{}</th>", escape(h)));
        }
        self.body.push_str("</tr></thead><tbody>\n");
        for row in rows {
            self.body.push_str("<tr>");
            for cell in row {
                let class = if looks_numeric(&cell) {
                    " class=\"num\""
                } else {
                    ""
                };
                self.body
                    .push_str(&format!("<td{class}>{}</td>", escape(&cell)));
            }
            self.body.push_str("</tr>\n");
        }
        self.body.push_str("</tbody></table>\n");
        self
    }

    /// Adds a chart.
    pub fn chart(&mut self, chart: &Chart) -> &mut Self {
        self.body.push_str("<figure>");
        self.body.push_str(&chart.to_svg());
        self.body.push_str("</figure>\n");
        self
    }

    /// Renders the whole page.
    pub fn render(&self) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>{CSS}</style></head>\n<body><h1>{t}</h1>\n{}</body></html>\n",
            self.body,
            t = escape(&self.title)
        )
    }
}

const CSS: &str = "body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}\
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;margin:1em 0}th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}\
td.num{text-align:right;font-variant-numeric:tabular-nums}figure{margin:1em 0}svg{max-width:100%;height:auto}";

fn looks_numeric(cell: &str) -> bool {
    let t = cell
        .trim()
        .trim_start_matches('$')
        .trim_end_matches(['%', 'x']);
    !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | ',' | '-' | '+'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_is_self_contained_and_escaped() {
        let mut p = Page::new("R&D");
        p.heading("h")
            .paragraph("a < b")
            .table(&["x", "n"], vec![vec!["a".into(), "12%".into()]]);
        let html = p.render();
        assert!(html.contains("<title>R&amp;D</title>"));
        assert!(html.contains("a &lt; b"));
        assert!(html.contains("<td class=\"num\">12%</td>"));
        assert!(!html.contains("src=") && !html.contains("href="));
    }
}
