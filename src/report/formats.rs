//! The figures as a table (with the notes after it) and as long-format
//! CSV; the HTML page shows the same table.

use super::Report;
use super::figures::StepFigures;
use crate::model::Currency;

fn money(minor: &std::collections::BTreeMap<String, i64>) -> String {
    if minor.is_empty() {
        return "-".into();
    }
    minor
        .iter()
        .map(|(code, minor)| match code.parse::<Currency>() {
            Ok(currency) => currency.format(*minor),
            Err(_) => format!("{minor} {code}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn percent(rate: f64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.1}%", rate * 100.0)
    }
}

fn skipped_total(figures: &StepFigures) -> u64 {
    figures.skipped.values().sum()
}

impl Report {
    pub const TABLE_HEADER: [&'static str; 16] = [
        "STEP",
        "VARIANT",
        "SENT",
        "FAILED",
        "RETRY",
        "UNKNOWN",
        "BOUNCED",
        "SKIPPED",
        "CLICKED",
        "CTR",
        "UNSUBSCRIBED",
        "COMPLAINED",
        "RECOVERED",
        "REVENUE",
        "RECOVERED BY CLICK",
        "REVENUE BY CLICK",
    ];

    /// Every row in order: each step followed by its variants, then the
    /// total.
    pub fn rows(&self) -> impl Iterator<Item = &StepFigures> {
        self.steps
            .iter()
            .flat_map(|step| std::iter::once(step).chain(&step.variants))
            .chain(std::iter::once(&self.total))
    }

    /// The table rows: one per step and per variant, then the total.
    pub fn table_rows(&self) -> Vec<Vec<String>> {
        self.rows()
            .map(|row| {
                vec![
                    row.step.clone(),
                    row.variant.clone().unwrap_or_default(),
                    row.sent.to_string(),
                    row.failed.to_string(),
                    row.retry.to_string(),
                    row.unknown.to_string(),
                    row.bounced.to_string(),
                    skipped_total(row).to_string(),
                    row.clicked.to_string(),
                    percent(row.click_rate, row.sent),
                    row.unsubscribed.to_string(),
                    row.complained.to_string(),
                    row.recovered_carts.to_string(),
                    money(&row.revenue_minor),
                    row.recovered_carts_by_click.to_string(),
                    money(&row.revenue_by_click_minor),
                ]
            })
            .collect()
    }

    /// The lines after the table: period, rates, skips by reason.
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
            format!(
                "click-through rate {:.1}% ({} of {} sent); an order counts for a click within \
                 the window after it, and for the latest reminder before it",
                self.total.click_rate * 100.0,
                self.total.clicked,
                self.total.sent
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

    /// Long-format CSV: `step,variant,metric,key,value` (`variant` empty on
    /// a step's and the total's rows; `key` a skip reason or a currency).
    pub fn csv(&self) -> String {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let _ = writer.write_record(["step", "variant", "metric", "key", "value"]);
        for row in self.rows() {
            let variant = row.variant.as_deref().unwrap_or_default();
            let mut record = |metric: &str, key: &str, value: &str| {
                let _ = writer.write_record([row.step.as_str(), variant, metric, key, value]);
            };
            for (metric, value) in [
                ("sent", row.sent),
                ("failed", row.failed),
                ("retry", row.retry),
                ("unknown", row.unknown),
                ("bounced", row.bounced),
                ("clicked", row.clicked),
                ("unsubscribed", row.unsubscribed),
                ("complained", row.complained),
                ("recovered_carts", row.recovered_carts),
                ("recovered_orders", row.recovered_orders),
                ("recovered_carts_by_click", row.recovered_carts_by_click),
                ("recovered_orders_by_click", row.recovered_orders_by_click),
            ] {
                record(metric, "", &value.to_string());
            }
            record("click_rate", "", &format!("{:.4}", row.click_rate));
            for (reason, count) in &row.skipped {
                record("skipped", reason, &count.to_string());
            }
            for (currency, amount) in &row.recovered_revenue {
                record("recovered_revenue", currency, amount);
            }
            for (currency, amount) in &row.recovered_revenue_by_click {
                record("recovered_revenue_by_click", currency, amount);
            }
        }
        let _ = writer.write_record([
            "total",
            "",
            "recovery_rate",
            "",
            &format!("{:.4}", self.recovery_rate),
        ]);
        String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
    }
}
