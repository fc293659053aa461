//! Figures from the ledger: per step (and per A/B variant) what was sent,
//! failed, retried, unknown, bounced and skipped, clicked, unsubscribed and
//! complained about, and what the reminders brought back. Pure: the store
//! hands over the rows, `figures` counts, `formats` writes the table and
//! CSV, this module the HTML page.

mod figures;
mod formats;

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
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
        // The period in words here (days in UTC, as the chart's), not as
        // the notes write it for machines.
        let _ = writeln!(
            page,
            "<p>{} (days in UTC), attribution window {}</p>",
            plain_period(self.since.date_naive(), self.now.date_naive()),
            plain_hours(self.attribution_window_hours)
        );
        for note in self.notes() {
            if !note.starts_with("period ") {
                let _ = writeln!(page, "<p>{}</p>", escape(&note));
            }
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

    /// Sends and recoveries per day as an SVG bar chart: a y-axis with
    /// values, each bar's figure above it, the day of the month under each
    /// pair (the month under its first day), and the day's figures in
    /// words on hover.
    fn chart(&self) -> String {
        const LEFT: f64 = 44.0;
        const RIGHT: f64 = 12.0;
        const TOP: f64 = 18.0;
        const PLOT: f64 = 180.0;
        const BOTTOM: f64 = 40.0;
        const BAR: f64 = 10.0;
        const GAP: f64 = 8.0;
        const DAY: f64 = 2.0 * BAR + GAP;
        let peak = self
            .days
            .iter()
            .map(|d| d.sent.max(d.recovered))
            .max()
            .unwrap_or(0);
        let (step, top) = axis(peak);
        let width = LEFT + self.days.len() as f64 * DAY + RIGHT;
        let base = TOP + PLOT;
        let y_of = |value: u64| base - value as f64 / top as f64 * PLOT;
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{}\" \
             viewBox=\"0 0 {width} {0}\" font-family=\"system-ui,sans-serif\" \
             role=\"img\" aria-label=\"Reminders sent and carts recovered per day\">\n\
             <title>Reminders sent (blue) and carts recovered (green) per day</title>\n",
            base + BOTTOM
        );
        // The y-axis: a grid line and its value at every step.
        let mut value = 0;
        while value <= top {
            let y = y_of(value);
            let _ = writeln!(
                svg,
                "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#555\">{value}</text>",
                width - RIGHT,
                if value == 0 { "#888" } else { "#e3e3e3" },
                LEFT - 6.0,
                y + 4.0
            );
            value += step;
        }
        for (index, day) in self.days.iter().enumerate() {
            let left = LEFT + index as f64 * DAY + GAP / 2.0;
            let middle = left + BAR;
            let _ = write!(
                svg,
                "<g><title>{}: {} sent, {} recovered</title>\
                 <rect x=\"{:.1}\" y=\"{TOP}\" width=\"{DAY}\" height=\"{PLOT}\" fill=\"#000\" fill-opacity=\"0\"/>",
                day.date.format("%a %-d %B %Y"),
                reminders(day.sent),
                carts(day.recovered),
                left - GAP / 2.0,
            );
            for (offset, value, class) in
                [(0.0, day.sent, "sent"), (BAR, day.recovered, "recovered")]
            {
                if value == 0 {
                    continue;
                }
                let (x, y) = (left + offset, y_of(value));
                let _ = write!(
                    svg,
                    "<rect class=\"{class}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{BAR}\" height=\"{:.1}\"/>\
                     <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"middle\">{value}</text>",
                    base - y,
                    x + BAR / 2.0,
                    y - 3.0
                );
            }
            let _ = write!(
                svg,
                "<text x=\"{middle:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
                base + 15.0,
                day.date.day()
            );
            if index == 0 || day.date.day() == 1 {
                let _ = write!(
                    svg,
                    "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#555\">{}</text>",
                    left,
                    base + 32.0,
                    day.date.format("%B %Y")
                );
            }
            svg.push_str("</g>\n");
        }
        svg.push_str("</svg>");
        svg
    }
}

/// The y-axis of a chart whose tallest bar is `peak`: a step of 1, 2 or 5
/// times a power of ten giving at most 5 steps, and the top value (a
/// multiple of it, at least 1).
fn axis(peak: u64) -> (u64, u64) {
    let mut scale = 1;
    loop {
        for step in [scale, 2 * scale, 5 * scale] {
            if peak.div_ceil(step) <= 5 {
                return (step, (peak.div_ceil(step) * step).max(step));
            }
        }
        scale *= 10;
    }
}

fn reminders(count: u64) -> String {
    match count {
        1 => "1 reminder".into(),
        n => format!("{n} reminders"),
    }
}

fn carts(count: u64) -> String {
    match count {
        1 => "1 cart".into(),
        n => format!("{n} carts"),
    }
}

/// A period of days in plain words: `1 – 30 November 2026`,
/// `25 October – 23 November 2026`, `20 December 2025 – 18 January 2026`.
pub fn plain_period(first: NaiveDate, last: NaiveDate) -> String {
    let whole = |date: NaiveDate| date.format("%-d %B %Y").to_string();
    if first == last {
        whole(last)
    } else if (first.year(), first.month()) == (last.year(), last.month()) {
        format!("{} – {}", first.day(), whole(last))
    } else if first.year() == last.year() {
        format!("{} – {}", first.format("%-d %B"), whole(last))
    } else {
        format!("{} – {}", whole(first), whole(last))
    }
}

/// `120` hours → `5 days`; `36` → `36 hours`.
fn plain_hours(hours: i64) -> String {
    match hours {
        24 => "1 day".into(),
        h if h % 24 == 0 => format!("{} days", h / 24),
        1 => "1 hour".into(),
        h => format!("{h} hours"),
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

    #[test]
    fn the_chart_has_a_y_axis_days_and_figures_and_the_period_is_in_words() {
        assert_eq!(axis(0), (1, 1));
        assert_eq!(axis(3), (1, 3));
        assert_eq!(axis(7), (2, 8));
        assert_eq!(axis(10), (2, 10));
        assert_eq!(axis(23), (5, 25));
        assert_eq!(axis(480), (100, 500));
        let date = |text: &str| text.parse::<NaiveDate>().unwrap();
        assert_eq!(
            plain_period(date("2026-11-01"), date("2026-11-30")),
            "1 – 30 November 2026"
        );
        assert_eq!(
            plain_period(date("2026-10-25"), date("2026-11-23")),
            "25 October – 23 November 2026"
        );
        assert_eq!(
            plain_period(date("2025-12-20"), date("2026-01-18")),
            "20 December 2025 – 18 January 2026"
        );
        assert_eq!(plain_hours(120), "5 days");
        assert_eq!(plain_hours(36), "36 hours");

        let at = |text: &str| {
            DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc)
        };
        let send = |cart: &str, email: &str, when: &str| crate::store::ReportSend {
            cart_id: cart.into(),
            email_norm: email.into(),
            step: "1h".into(),
            state: crate::model::SendState::Sent,
            claimed_at: at(when),
            sent_at: Some(at(when)),
            variant: None,
        };
        let data = crate::store::ReportData {
            sends: vec![
                send("A", "a@x.example", "2026-11-02T10:00:00Z"),
                send("B", "b@x.example", "2026-11-02T11:00:00Z"),
            ],
            orders: vec![crate::store::ReportOrder {
                id: "O1".into(),
                email_norm: "a@x.example".into(),
                created_at: at("2026-11-03T09:00:00Z"),
                total_minor: 5000,
                currency: "EUR".into(),
            }],
            ..crate::store::ReportData::default()
        };
        let report = build(
            at("2026-11-01T00:00:00Z"),
            at("2026-11-30T12:00:00Z"),
            chrono::TimeDelta::days(5),
            &["1h".to_string()],
            &data,
        );
        let html = report.html();
        assert!(
            html.contains("<p>1 – 30 November 2026 (days in UTC), attribution window 5 days</p>"),
            "{html}"
        );
        assert!(!html.contains("2026-11-01T00:00:00"), "{html}");
        // The y-axis runs 0, 1, 2; each day is labelled; figures on hover.
        for label in [
            ">0</text>",
            ">1</text>",
            ">2</text>",
            ">30</text>",
            ">November 2026</text>",
        ] {
            assert!(html.contains(label), "{label} in {html}");
        }
        assert!(
            html.contains(
                "<title>Mon 2 November 2026: 2 reminders sent, 0 carts recovered</title>"
            ),
            "{html}"
        );
        assert!(
            html.contains("<title>Tue 3 November 2026: 0 reminders sent, 1 cart recovered</title>"),
            "{html}"
        );
    }
}
