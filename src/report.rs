//! Figures from the ledger: per step (and per A/B variant) what was sent,
//! failed, retried, unknown, bounced and skipped, clicked, unsubscribed and
//! complained about, and what the reminders brought back. Pure: the store
//! hands over the rows, `figures` counts, `formats` writes the table and
//! CSV, this module the HTML page.

mod figures;
mod formats;

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

pub use figures::{StepFigures, build};

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Day {
    pub date: NaiveDate,
    pub sent: u64,
    pub recovered: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub since: DateTime<Utc>,
    pub now: DateTime<Utc>,
    /// Hours after a reminder in which an order counts as recovered.
    pub attribution_window_hours: i64,
    pub steps: Vec<StepFigures>,
    pub total: StepFigures,
    /// Distinct carts sent at least one reminder in the period.
    pub reminded_carts: u64,
    /// Recovered carts / reminded carts, 0 when nothing was sent.
    pub recovery_rate: f64,
    pub days: Vec<Day>,
}

impl Report {
    /// A page with the same figures and a chart of sends and recoveries per
    /// day: inline SVG, no script, no network.
    pub fn html(&self) -> String {
        let escape = |text: &str| {
            text.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let mut page = String::from(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>recart report</title><style>\
             body{font-family:system-ui,sans-serif;margin:2em;color:#222}\
             table{border-collapse:collapse;margin:1em 0}\
             th,td{border:1px solid #ccc;padding:.3em .7em;text-align:right}\
             th:first-child,td:first-child{text-align:left}\
             .sent{fill:#4a78c2}.recovered{fill:#3a9a5b}\
             </style></head><body>\n<h1>recart report</h1>\n",
        );
        for note in self.notes() {
            let _ = writeln!(page, "<p>{}</p>", escape(&note));
        }
        page.push_str("<table>\n<tr>");
        for head in Self::TABLE_HEADER {
            let _ = write!(page, "<th>{head}</th>");
        }
        page.push_str("</tr>\n");
        for row in self.table_rows() {
            page.push_str("<tr>");
            for cell in row {
                let _ = write!(page, "<td>{}</td>", escape(&cell));
            }
            page.push_str("</tr>\n");
        }
        page.push_str("</table>\n");
        page.push_str(
            "<p><svg width=\"10\" height=\"10\"><rect class=\"sent\" width=\"10\" height=\"10\"/></svg> \
             reminders sent &nbsp; <svg width=\"10\" height=\"10\"><rect class=\"recovered\" \
             width=\"10\" height=\"10\"/></svg> carts recovered, per day</p>\n",
        );
        page.push_str(&self.chart());
        page.push_str("\n</body></html>\n");
        page
    }

    fn chart(&self) -> String {
        let height = 160.0;
        let bar = 8.0;
        let gap = 6.0;
        let width = (self.days.len() as f64) * (2.0 * bar + gap) + 40.0;
        let peak = self
            .days
            .iter()
            .map(|d| d.sent.max(d.recovered))
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{}\" \
             role=\"img\" aria-label=\"Reminders sent and carts recovered per day\">\n\
             <title>Reminders sent (blue) and carts recovered (green) per day</title>\n",
            height + 30.0
        );
        for (index, day) in self.days.iter().enumerate() {
            let x = 20.0 + index as f64 * (2.0 * bar + gap);
            for (offset, value, class) in
                [(0.0, day.sent, "sent"), (bar, day.recovered, "recovered")]
            {
                let h = value as f64 / peak * height;
                let _ = writeln!(
                    svg,
                    "<rect class=\"{class}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{bar}\" height=\"{h:.1}\">\
                     <title>{} {class}: {value}</title></rect>",
                    x + offset,
                    height - h,
                    day.date
                );
            }
        }
        if let (Some(first), Some(last)) = (self.days.first(), self.days.last()) {
            let _ = writeln!(
                svg,
                "<text x=\"20\" y=\"{}\" font-size=\"11\">{}</text>\
                 <text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
                height + 20.0,
                first.date,
                width - 20.0,
                height + 20.0,
                last.date
            );
        }
        svg.push_str("</svg>");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_holds_the_table_and_a_chart_without_script() {
        let at = |text| {
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc)
        };
        let report = build(
            at("2026-11-01T00:00:00Z"),
            at("2026-11-03T00:00:00Z"),
            chrono::TimeDelta::days(5),
            &["1h".into()],
            &crate::store::ReportData::default(),
        );
        let html = report.html();
        assert!(html.contains("<svg") && !html.contains("<script"));
        assert!(
            html.contains("<th>CTR</th>") && html.contains("<td>1h</td>"),
            "{html}"
        );
    }
}
