//! Figures from the ledger: per step what was sent, failed, retried,
//! unknown and skipped, and what the reminders brought back. Pure: the
//! store hands over the rows, this module counts and formats.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::Serialize;

use crate::model::{Currency, SendState};
use crate::store::{ReportOrder, ReportSend};

/// Figures of one step (or of all steps, as the total).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepFigures {
    pub step: String,
    pub sent: u64,
    pub failed: u64,
    pub retry: u64,
    pub unknown: u64,
    /// Reason → carts skipped so, summed over the period's runs.
    pub skipped: BTreeMap<String, u64>,
    /// Carts whose customer ordered within the attribution window after a
    /// reminder of this step (the latest reminder before the order).
    pub recovered_carts: u64,
    /// Currency → recovered revenue, as a decimal string. Never summed
    /// across currencies.
    pub recovered_revenue: BTreeMap<String, String>,
    #[serde(skip)]
    revenue_minor: BTreeMap<String, i64>,
}

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

/// Counts the period's figures. `steps` gives the order of rows (the
/// configured sequence); steps found only in the ledger follow.
pub fn build(
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    window: TimeDelta,
    steps: &[String],
    sends: &[ReportSend],
    orders: &[ReportOrder],
    skips: &[(String, String, u64)],
) -> Report {
    let mut order: Vec<String> = steps.to_vec();
    for name in sends
        .iter()
        .map(|s| &s.step)
        .chain(skips.iter().map(|k| &k.0))
    {
        if !name.is_empty() && !order.contains(name) {
            order.push(name.clone());
        }
    }
    let mut figures: BTreeMap<&str, StepFigures> = order
        .iter()
        .map(|name| {
            (
                name.as_str(),
                StepFigures {
                    step: name.clone(),
                    ..StepFigures::default()
                },
            )
        })
        .collect();
    let mut total = StepFigures {
        step: "total".into(),
        ..StepFigures::default()
    };
    let mut days: BTreeMap<NaiveDate, Day> = BTreeMap::new();

    for send in sends {
        let row = figures
            .get_mut(send.step.as_str())
            .expect("every step has a row");
        let counter = |figures: &mut StepFigures| match send.state {
            SendState::Sent => figures.sent += 1,
            SendState::Failed | SendState::Bounced => figures.failed += 1,
            SendState::Retry => figures.retry += 1,
            SendState::Unknown | SendState::Claimed => figures.unknown += 1,
        };
        counter(row);
        counter(&mut total);
        if let (SendState::Sent, Some(at)) = (send.state, send.sent_at) {
            days.entry(at.date_naive()).or_default().sent += 1;
        }
    }
    for (step, reason, count) in skips {
        let targets: Vec<&mut StepFigures> = match figures.get_mut(step.as_str()) {
            Some(row) => vec![row],
            None => vec![],
        };
        for row in targets {
            *row.skipped.entry(reason.clone()).or_default() += count;
        }
        *total.skipped.entry(reason.clone()).or_default() += count;
    }

    // Attribution: an order goes to the latest reminder sent to its address
    // before it, if within the window. Each order counts once, each cart
    // once.
    let mut sent_to: HashMap<&str, Vec<&ReportSend>> = HashMap::new();
    for send in sends
        .iter()
        .filter(|s| s.state == SendState::Sent && s.sent_at.is_some())
    {
        sent_to
            .entry(send.email_norm.as_str())
            .or_default()
            .push(send);
    }
    let mut recovered_carts: BTreeSet<&str> = BTreeSet::new();
    let mut recovered_by_step: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for order in orders.iter().filter(|o| o.created_at <= now) {
        let Some(reminder) = sent_to.get(order.email_norm.as_str()).and_then(|list| {
            list.iter()
                .filter(|s| {
                    let at = s.sent_at.expect("filtered above");
                    at < order.created_at && order.created_at - at <= window
                })
                .max_by_key(|s| s.sent_at)
        }) else {
            continue;
        };
        for row in [
            figures
                .get_mut(reminder.step.as_str())
                .expect("every step has a row"),
            &mut total,
        ] {
            let revenue = row.revenue_minor.entry(order.currency.clone()).or_default();
            *revenue = revenue.saturating_add(order.total_minor);
        }
        recovered_by_step
            .entry(reminder.step.as_str())
            .or_default()
            .insert(reminder.cart_id.as_str());
        if recovered_carts.insert(reminder.cart_id.as_str()) {
            days.entry(order.created_at.date_naive())
                .or_default()
                .recovered += 1;
        }
    }
    for (step, carts) in &recovered_by_step {
        if let Some(row) = figures.get_mut(step) {
            row.recovered_carts = carts.len() as u64;
        }
    }
    total.recovered_carts = recovered_carts.len() as u64;
    let reminded: BTreeSet<&str> = sends
        .iter()
        .filter(|s| s.state == SendState::Sent)
        .map(|s| s.cart_id.as_str())
        .collect();

    let mut rows: Vec<StepFigures> = order
        .iter()
        .filter_map(|name| figures.remove(name.as_str()))
        .collect();
    for row in rows.iter_mut().chain(std::iter::once(&mut total)) {
        row.recovered_revenue = row
            .revenue_minor
            .iter()
            .map(|(code, minor)| (code.clone(), amount(code, *minor)))
            .collect();
    }
    // Every day of the period, so the chart has no gaps.
    let mut series = Vec::new();
    let mut date = since.date_naive();
    while date <= now.date_naive() {
        let mut day = days.remove(&date).unwrap_or_default();
        day.date = date;
        series.push(day);
        date = date.succ_opt().expect("a date after this one");
    }
    Report {
        since,
        now,
        attribution_window_hours: window.num_hours(),
        steps: rows,
        recovery_rate: if reminded.is_empty() {
            0.0
        } else {
            total.recovered_carts as f64 / reminded.len() as f64
        },
        total,
        reminded_carts: reminded.len() as u64,
        days: series,
    }
}

fn amount(code: &str, minor: i64) -> String {
    match code.parse::<Currency>() {
        Ok(currency) => currency.minor_to_amount(minor).to_string(),
        Err(_) => minor.to_string(),
    }
}

fn money(figures: &StepFigures) -> String {
    if figures.revenue_minor.is_empty() {
        return "-".into();
    }
    figures
        .revenue_minor
        .iter()
        .map(|(code, minor)| match code.parse::<Currency>() {
            Ok(currency) => currency.format(*minor),
            Err(_) => format!("{minor} {code}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn skipped_total(figures: &StepFigures) -> u64 {
    figures.skipped.values().sum()
}

impl Report {
    pub const TABLE_HEADER: [&'static str; 8] = [
        "STEP",
        "SENT",
        "FAILED",
        "RETRY",
        "UNKNOWN",
        "SKIPPED",
        "RECOVERED",
        "REVENUE",
    ];

    /// The table rows: one per step, then the total.
    pub fn table_rows(&self) -> Vec<Vec<String>> {
        self.steps
            .iter()
            .chain(std::iter::once(&self.total))
            .map(|row| {
                vec![
                    row.step.clone(),
                    row.sent.to_string(),
                    row.failed.to_string(),
                    row.retry.to_string(),
                    row.unknown.to_string(),
                    skipped_total(row).to_string(),
                    row.recovered_carts.to_string(),
                    money(row),
                ]
            })
            .collect()
    }

    /// The lines after the table: period, rate, skips by reason.
    pub fn notes(&self) -> Vec<String> {
        let mut lines = vec![
            format!(
                "period {} to {}, attribution window {}h",
                self.since.to_rfc3339(),
                self.now.to_rfc3339(),
                self.attribution_window_hours
            ),
            format!(
                "recovery rate {:.1}% ({} of {} reminded carts)",
                self.recovery_rate * 100.0,
                self.total.recovered_carts,
                self.reminded_carts
            ),
        ];
        if !self.total.skipped.is_empty() {
            let reasons: Vec<String> = self
                .total
                .skipped
                .iter()
                .map(|(reason, count)| format!("{reason} {count}"))
                .collect();
            lines.push(format!("skipped by reason: {}", reasons.join(", ")));
        }
        lines
    }

    /// Long-format CSV: `step,metric,reason_or_currency,value`.
    pub fn csv(&self) -> String {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let _ = writer.write_record(["step", "metric", "key", "value"]);
        for row in self.steps.iter().chain(std::iter::once(&self.total)) {
            for (metric, value) in [
                ("sent", row.sent),
                ("failed", row.failed),
                ("retry", row.retry),
                ("unknown", row.unknown),
                ("recovered_carts", row.recovered_carts),
            ] {
                let _ = writer.write_record([&row.step, metric, "", &value.to_string()]);
            }
            for (reason, count) in &row.skipped {
                let _ = writer.write_record([&row.step, "skipped", reason, &count.to_string()]);
            }
            for (currency, amount) in &row.recovered_revenue {
                let _ = writer.write_record([&row.step, "recovered_revenue", currency, amount]);
            }
        }
        let _ = writer.write_record([
            "total",
            "recovery_rate",
            "",
            &format!("{:.4}", self.recovery_rate),
        ]);
        String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
    }

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

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn send(cart: &str, email: &str, step: &str, state: SendState, when: &str) -> ReportSend {
        ReportSend {
            cart_id: cart.into(),
            email_norm: email.into(),
            step: step.into(),
            state,
            claimed_at: at(when),
            sent_at: (state == SendState::Sent).then(|| at(when)),
        }
    }

    fn order(id: &str, email: &str, when: &str, minor: i64, currency: &str) -> ReportOrder {
        ReportOrder {
            id: id.into(),
            email_norm: email.into(),
            created_at: at(when),
            total_minor: minor,
            currency: currency.into(),
        }
    }

    /// A hand-computed scenario: four reminded carts, orders inside and
    /// outside the 5-day window, in two currencies.
    #[test]
    fn figures_and_attribution_match_a_hand_count() {
        let sends = vec![
            send("A", "a@x", "1h", SendState::Sent, "2026-11-01T10:00:00Z"),
            send("A", "a@x", "24h", SendState::Sent, "2026-11-02T10:00:00Z"),
            send("B", "b@x", "1h", SendState::Sent, "2026-11-03T10:00:00Z"),
            send("C", "c@x", "1h", SendState::Sent, "2026-11-04T10:00:00Z"),
            send("D", "d@x", "1h", SendState::Sent, "2026-11-05T10:00:00Z"),
            send("E", "e@x", "1h", SendState::Failed, "2026-11-05T10:00:00Z"),
            send("F", "f@x", "1h", SendState::Retry, "2026-11-05T11:00:00Z"),
            send(
                "G",
                "g@x",
                "24h",
                SendState::Unknown,
                "2026-11-06T11:00:00Z",
            ),
        ];
        let orders = vec![
            // A orders 1 day after the 24h reminder: attributed to 24h.
            order("o1", "a@x", "2026-11-03T09:00:00Z", 12_000, "EUR"),
            // B orders 4 days 23 hours after: inside the window.
            order("o2", "b@x", "2026-11-08T09:00:00Z", 5_000, "USD"),
            // C orders 6 days after: outside.
            order("o3", "c@x", "2026-11-10T10:00:00Z", 9_900, "EUR"),
            // D ordered before its reminder: not attributed.
            order("o4", "d@x", "2026-11-05T09:00:00Z", 1_000, "EUR"),
            // A orders again within the window: revenue adds, the cart once.
            order("o5", "a@x", "2026-11-04T09:00:00Z", 3_000, "EUR"),
        ];
        let skips = vec![
            ("1h".to_string(), "no-consent".to_string(), 3),
            (String::new(), "too-old".to_string(), 2),
        ];
        let report = build(
            at("2026-10-31T00:00:00Z"),
            at("2026-11-15T00:00:00Z"),
            TimeDelta::days(5),
            &["1h".into(), "24h".into(), "72h".into()],
            &sends,
            &orders,
            &skips,
        );
        let step = |name: &str| report.steps.iter().find(|s| s.step == name).unwrap();
        assert_eq!(
            (step("1h").sent, step("1h").failed, step("1h").retry),
            (4, 1, 1)
        );
        assert_eq!((step("24h").sent, step("24h").unknown), (1, 1));
        assert_eq!(step("72h").sent, 0);
        assert_eq!(step("1h").skipped["no-consent"], 3);
        assert_eq!(report.total.skipped["too-old"], 2);
        assert_eq!(step("24h").recovered_carts, 1);
        assert_eq!(step("24h").recovered_revenue["EUR"], "150.00");
        assert_eq!(step("1h").recovered_carts, 1);
        assert_eq!(step("1h").recovered_revenue["USD"], "50.00");
        assert!(!step("1h").recovered_revenue.contains_key("EUR"));
        assert_eq!(report.total.recovered_carts, 2);
        assert_eq!(report.reminded_carts, 4);
        assert!((report.recovery_rate - 0.5).abs() < 1e-9);
        assert_eq!(report.days.len(), 16);
        let csv = report.csv();
        assert!(csv.contains("total,recovered_revenue,EUR,150.00"), "{csv}");
        assert!(csv.contains("total,recovered_revenue,USD,50.00"), "{csv}");
        let html = report.html();
        assert!(html.contains("<svg") && !html.contains("<script"));
    }
}
