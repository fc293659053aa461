//! Counting the period's figures: per step, per A/B variant of a step, and
//! in total — what was sent, clicked, unsubscribed, bounced, complained
//! about, and what it brought back, attributed by address and by click.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::Serialize;

use super::{Day, Report};
use crate::model::{Currency, SendState};
use crate::store::{ReportData, ReportSend};

/// Figures of one step, one variant of a step, or of all steps (the
/// total).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepFigures {
    pub step: String,
    /// The A/B variant, on a variant's row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Mails the server took and no report said bounced.
    pub sent: u64,
    pub failed: u64,
    pub retry: u64,
    pub unknown: u64,
    /// Mails a delivery-status report said failed permanently.
    pub bounced: u64,
    /// Reason → carts skipped so, summed over the period's runs (steps
    /// only: a skip has no variant).
    pub skipped: BTreeMap<String, u64>,
    /// Sends whose recovery link was clicked at least once.
    pub clicked: u64,
    /// Clicked / sent, 0 when nothing was sent.
    pub click_rate: f64,
    /// Addresses that unsubscribed after a reminder of this row (the
    /// latest before the unsubscribe).
    pub unsubscribed: u64,
    /// Sends a complaint (feedback report) came back for.
    pub complained: u64,
    /// Carts whose customer ordered within the attribution window after a
    /// reminder of this row (the latest reminder before the order).
    pub recovered_carts: u64,
    /// Those orders.
    pub recovered_orders: u64,
    /// Currency → recovered revenue, as a decimal string. Never summed
    /// across currencies.
    pub recovered_revenue: BTreeMap<String, String>,
    /// The same, for orders within the window after a click on a recovery
    /// link of this row (the latest click before the order).
    pub recovered_carts_by_click: u64,
    pub recovered_orders_by_click: u64,
    pub recovered_revenue_by_click: BTreeMap<String, String>,
    /// A step's variants, by name (empty for a step without variants).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<StepFigures>,
    #[serde(skip)]
    pub(super) revenue_minor: BTreeMap<String, i64>,
    #[serde(skip)]
    pub(super) revenue_by_click_minor: BTreeMap<String, i64>,
}

/// A row being counted, with the sets its distinct counts come from.
#[derive(Default)]
struct Tally<'a> {
    figures: StepFigures,
    recovered: BTreeSet<&'a str>,
    recovered_by_click: BTreeSet<&'a str>,
}

impl Tally<'_> {
    fn finish(mut self) -> StepFigures {
        let figures = &mut self.figures;
        figures.recovered_carts = self.recovered.len() as u64;
        figures.recovered_carts_by_click = self.recovered_by_click.len() as u64;
        figures.click_rate = rate(figures.clicked, figures.sent);
        figures.recovered_revenue = amounts(&figures.revenue_minor);
        figures.recovered_revenue_by_click = amounts(&figures.revenue_by_click_minor);
        self.figures
    }
}

/// The rows being counted: (step, variant) → tally; the total apart.
struct Rows<'a> {
    rows: BTreeMap<(&'a str, Option<&'a str>), Tally<'a>>,
    total: Tally<'a>,
}

impl<'a> Rows<'a> {
    /// Counts into the step's row, its variant's row and the total.
    fn each(&mut self, send: &'a ReportSend, mut count: impl FnMut(&mut Tally<'a>)) {
        count(self.rows.entry((send.step.as_str(), None)).or_default());
        if let Some(variant) = send.variant.as_deref() {
            count(
                self.rows
                    .entry((send.step.as_str(), Some(variant)))
                    .or_default(),
            );
        }
        count(&mut self.total);
    }
}

/// The latest send of `list` at or before `at`, if within `window` of it
/// (or any, without a window).
fn latest<'a>(
    list: Option<&Vec<(DateTime<Utc>, &'a ReportSend)>>,
    at: DateTime<Utc>,
    window: Option<TimeDelta>,
) -> Option<&'a ReportSend> {
    list?
        .iter()
        .filter(|(when, _)| *when <= at && window.is_none_or(|window| at - *when <= window))
        .max_by_key(|(when, _)| *when)
        .map(|(_, send)| *send)
}

fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn amounts(minor: &BTreeMap<String, i64>) -> BTreeMap<String, String> {
    minor
        .iter()
        .map(|(code, minor)| (code.clone(), amount(code, *minor)))
        .collect()
}

pub(super) fn amount(code: &str, minor: i64) -> String {
    match code.parse::<Currency>() {
        Ok(currency) => currency.minor_to_amount(minor).to_string(),
        Err(_) => minor.to_string(),
    }
}

/// Counts the period's figures. `steps` gives the order of rows (the
/// configured sequence); steps found only in the ledger follow. Orders
/// are attributed twice, each way counting an order once: by address, to
/// the latest reminder sent to it before the order, and by click, to the
/// send of the latest click (by a reminder to the same address) before
/// it; either within `window`.
pub fn build(
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    window: TimeDelta,
    steps: &[String],
    data: &ReportData,
) -> Report {
    let mut order: Vec<&str> = steps.iter().map(String::as_str).collect();
    for name in data
        .sends
        .iter()
        .map(|s| &s.step)
        .chain(data.skips.iter().map(|k| &k.0))
    {
        if !name.is_empty() && !order.contains(&name.as_str()) {
            order.push(name);
        }
    }
    let mut rows = Rows {
        rows: order
            .iter()
            .map(|name| ((*name, None), Tally::default()))
            .collect(),
        total: Tally::default(),
    };
    let mut days: BTreeMap<NaiveDate, Day> = BTreeMap::new();

    for send in &data.sends {
        rows.each(send, |tally| match send.state {
            SendState::Sent => tally.figures.sent += 1,
            SendState::Failed => tally.figures.failed += 1,
            SendState::Retry => tally.figures.retry += 1,
            SendState::Bounced => tally.figures.bounced += 1,
            SendState::Unknown | SendState::Claimed => tally.figures.unknown += 1,
            // A step passed over: counted with the run's skips, not here.
            SendState::Skipped => {}
        });
        if let (SendState::Sent, Some(at)) = (send.state, send.sent_at) {
            days.entry(at.date_naive()).or_default().sent += 1;
        }
    }
    for (step, reason, count) in &data.skips {
        if let Some(row) = rows.rows.get_mut(&(step.as_str(), None)) {
            *row.figures.skipped.entry(reason.clone()).or_default() += count;
        }
        *rows
            .total
            .figures
            .skipped
            .entry(reason.clone())
            .or_default() += count;
    }
    let by_key: HashMap<(&str, &str), &ReportSend> = data
        .sends
        .iter()
        .map(|send| ((send.cart_id.as_str(), send.step.as_str()), send))
        .collect();
    // Clicks: a send counts once however often it was clicked.
    let mut clicked: BTreeSet<(&str, &str)> = BTreeSet::new();
    // Address → (time, send) of each click, for attribution.
    let mut clicks_of: HashMap<&str, Vec<(DateTime<Utc>, &ReportSend)>> = HashMap::new();
    for click in &data.clicks {
        let Some(send) = by_key.get(&(click.cart_id.as_str(), click.step.as_str())) else {
            continue;
        };
        if clicked.insert((send.cart_id.as_str(), send.step.as_str())) {
            rows.each(send, |tally| tally.figures.clicked += 1);
        }
        clicks_of
            .entry(send.email_norm.as_str())
            .or_default()
            .push((click.clicked_at, send));
    }
    for (cart_id, step) in &data.complaints {
        if let Some(send) = by_key.get(&(cart_id.as_str(), step.as_str())) {
            rows.each(send, |tally| tally.figures.complained += 1);
        }
    }
    // Reminders that reached the address, by address, for attribution.
    let mut sent_to: HashMap<&str, Vec<(DateTime<Utc>, &ReportSend)>> = HashMap::new();
    for send in data.sends.iter().filter(|s| s.state == SendState::Sent) {
        if let Some(at) = send.sent_at {
            sent_to
                .entry(send.email_norm.as_str())
                .or_default()
                .push((at, send));
        }
    }
    for (email, at) in &data.unsubscribes {
        if let Some(send) = latest(sent_to.get(email.as_str()), *at, None) {
            rows.each(send, |tally| tally.figures.unsubscribed += 1);
        }
    }
    let mut recovered: BTreeSet<&str> = BTreeSet::new();
    for order in data.orders.iter().filter(|o| o.created_at <= now) {
        // Strictly before the order: a reminder sent in the same second
        // did not bring it.
        let before = order.created_at - TimeDelta::seconds(1);
        if let Some(send) =
            latest(sent_to.get(order.email_norm.as_str()), before, None).filter(|send| {
                send.sent_at
                    .is_some_and(|at| order.created_at - at <= window)
            })
        {
            rows.each(send, |tally| {
                tally.figures.recovered_orders += 1;
                tally.recovered.insert(send.cart_id.as_str());
                let revenue = tally
                    .figures
                    .revenue_minor
                    .entry(order.currency.clone())
                    .or_default();
                *revenue = revenue.saturating_add(order.total_minor);
            });
            if recovered.insert(send.cart_id.as_str()) {
                days.entry(order.created_at.date_naive())
                    .or_default()
                    .recovered += 1;
            }
        }
        if let Some(send) = latest(
            clicks_of.get(order.email_norm.as_str()),
            before,
            Some(window),
        ) {
            rows.each(send, |tally| {
                tally.figures.recovered_orders_by_click += 1;
                tally.recovered_by_click.insert(send.cart_id.as_str());
                let revenue = tally
                    .figures
                    .revenue_by_click_minor
                    .entry(order.currency.clone())
                    .or_default();
                *revenue = revenue.saturating_add(order.total_minor);
            });
        }
    }
    let reminded: BTreeSet<&str> = data
        .sends
        .iter()
        .filter(|s| s.state == SendState::Sent)
        .map(|s| s.cart_id.as_str())
        .collect();

    let steps = step_rows(&order, std::mem::take(&mut rows.rows));
    let mut total = rows.total.finish();
    total.step = "total".into();
    Report {
        since,
        now,
        attribution_window_hours: window.num_hours(),
        steps,
        recovery_rate: rate(total.recovered_carts, reminded.len() as u64),
        total,
        reminded_carts: reminded.len() as u64,
        days: day_series(since, now, days),
    }
}

/// The steps' rows in order, each with its variants' rows by name.
fn step_rows<'a>(
    order: &[&'a str],
    mut tallies: BTreeMap<(&'a str, Option<&'a str>), Tally<'a>>,
) -> Vec<StepFigures> {
    order
        .iter()
        .filter_map(|name| {
            let mut figures = tallies.remove(&(*name, None))?.finish();
            figures.step = (*name).to_string();
            let names: Vec<&str> = tallies
                .range((*name, Some(""))..)
                .take_while(|((step, _), _)| step == name)
                .filter_map(|((_, variant), _)| *variant)
                .collect();
            figures.variants = names
                .into_iter()
                .filter_map(|variant| {
                    let mut row = tallies.remove(&(*name, Some(variant)))?.finish();
                    row.step = (*name).to_string();
                    row.variant = Some(variant.to_string());
                    Some(row)
                })
                .collect();
            Some(figures)
        })
        .collect()
}

/// Every day of the period, so the chart has no gaps.
fn day_series(
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    mut days: BTreeMap<NaiveDate, Day>,
) -> Vec<Day> {
    let mut series = Vec::new();
    let mut date = since.date_naive();
    while date <= now.date_naive() {
        let mut day = days.remove(&date).unwrap_or_default();
        day.date = date;
        series.push(day);
        date = date.succ_opt().expect("a date after this one");
    }
    series
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ReportClick, ReportOrder};

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
            sent_at: matches!(state, SendState::Sent | SendState::Bounced).then(|| at(when)),
            variant: None,
        }
    }

    fn variant(mut send: ReportSend, variant: &str) -> ReportSend {
        send.variant = Some(variant.into());
        send
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

    fn click(cart: &str, step: &str, when: &str) -> ReportClick {
        ReportClick {
            cart_id: cart.into(),
            step: step.into(),
            clicked_at: at(when),
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
        let data = ReportData {
            sends,
            orders,
            skips: vec![
                ("1h".to_string(), "no-consent".to_string(), 3),
                (String::new(), "too-old".to_string(), 2),
            ],
            ..ReportData::default()
        };
        let report = build(
            at("2026-10-31T00:00:00Z"),
            at("2026-11-15T00:00:00Z"),
            TimeDelta::days(5),
            &["1h".into(), "24h".into(), "72h".into()],
            &data,
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
        assert_eq!(step("24h").recovered_orders, 2);
        assert_eq!(step("24h").recovered_revenue["EUR"], "150.00");
        assert_eq!(step("1h").recovered_carts, 1);
        assert_eq!(step("1h").recovered_revenue["USD"], "50.00");
        assert!(!step("1h").recovered_revenue.contains_key("EUR"));
        assert_eq!(report.total.recovered_carts, 2);
        assert_eq!(report.reminded_carts, 4);
        assert!((report.recovery_rate - 0.5).abs() < 1e-9);
        assert_eq!(report.days.len(), 16);
        // No clicks: nothing by click, no variant rows.
        assert_eq!(report.total.recovered_orders_by_click, 0);
        assert!(report.steps.iter().all(|s| s.variants.is_empty()));
        let csv = report.csv();
        assert!(csv.starts_with("step,variant,metric,key,value\n"), "{csv}");
        assert!(csv.contains("total,,recovered_revenue,EUR,150.00"), "{csv}");
        assert!(csv.contains("total,,recovered_revenue,USD,50.00"), "{csv}");
    }

    /// Per variant: sends, clicks (a send clicked twice counts once),
    /// unsubscribes after a send, bounces and complaints; revenue by
    /// click beside revenue by address.
    #[test]
    fn variants_clicks_unsubscribes_bounces_and_complaints() {
        let sends = vec![
            variant(
                send("A", "a@x", "1h", SendState::Sent, "2026-11-01T10:00:00Z"),
                "plain",
            ),
            variant(
                send("B", "b@x", "1h", SendState::Sent, "2026-11-01T10:00:00Z"),
                "plain",
            ),
            variant(
                send("C", "c@x", "1h", SendState::Sent, "2026-11-01T10:00:00Z"),
                "bold",
            ),
            variant(
                send("D", "d@x", "1h", SendState::Bounced, "2026-11-01T10:00:00Z"),
                "bold",
            ),
            variant(
                send("E", "e@x", "1h", SendState::Sent, "2026-11-01T10:00:00Z"),
                "bold",
            ),
            send("A", "a@x", "24h", SendState::Sent, "2026-11-02T10:00:00Z"),
        ];
        let clicks = vec![
            click("A", "1h", "2026-11-01T11:00:00Z"),
            click("A", "1h", "2026-11-01T12:00:00Z"),
            click("C", "1h", "2026-11-01T13:00:00Z"),
            // A click on no send of the period counts nowhere.
            click("Z", "1h", "2026-11-01T13:00:00Z"),
        ];
        let orders = vec![
            // A clicked 1h (plain) and then got 24h: by address the 24h
            // reminder brought it, by click the 1h one.
            order("o1", "a@x", "2026-11-03T09:00:00Z", 10_000, "EUR"),
            // C clicked (bold) and ordered 6 days later: by click outside
            // the window, by address too.
            order("o2", "c@x", "2026-11-07T14:00:00Z", 4_000, "EUR"),
        ];
        let data = ReportData {
            sends,
            orders,
            clicks,
            unsubscribes: vec![("e@x".into(), at("2026-11-01T15:00:00Z"))],
            complaints: vec![("B".into(), "1h".into())],
            ..ReportData::default()
        };
        let report = build(
            at("2026-10-31T00:00:00Z"),
            at("2026-11-15T00:00:00Z"),
            TimeDelta::days(5),
            &["1h".into(), "24h".into()],
            &data,
        );
        let first = &report.steps[0];
        assert_eq!((first.sent, first.bounced, first.clicked), (4, 1, 2));
        assert!((first.click_rate - 0.5).abs() < 1e-9);
        assert_eq!((first.unsubscribed, first.complained), (1, 1));
        let names: Vec<_> = first
            .variants
            .iter()
            .map(|v| v.variant.as_deref().unwrap())
            .collect();
        assert_eq!(names, ["bold", "plain"]);
        let (bold, plain) = (&first.variants[0], &first.variants[1]);
        assert_eq!(
            (
                bold.sent,
                bold.bounced,
                bold.clicked,
                bold.unsubscribed,
                bold.complained
            ),
            (2, 1, 1, 1, 0)
        );
        assert_eq!(
            (
                plain.sent,
                plain.bounced,
                plain.clicked,
                plain.unsubscribed,
                plain.complained
            ),
            (2, 0, 1, 0, 1)
        );
        assert_eq!(plain.recovered_orders_by_click, 1);
        assert_eq!(plain.recovered_revenue_by_click["EUR"], "100.00");
        assert_eq!(plain.recovered_orders, 0);
        assert_eq!(report.steps[1].recovered_revenue["EUR"], "100.00");
        assert_eq!(report.steps[1].recovered_orders_by_click, 0);
        assert_eq!(bold.recovered_orders_by_click + bold.recovered_orders, 0);
        assert_eq!(report.total.recovered_orders_by_click, 1);
        assert_eq!(report.total.clicked, 2);
        assert!((report.total.click_rate - 2.0 / 5.0).abs() < 1e-9);

        let rows = report.table_rows();
        assert_eq!(rows.len(), 5, "1h, bold, plain, 24h, total: {rows:?}");
        assert_eq!(&rows[1][..4], ["1h", "bold", "2", "0"]);
        assert_eq!(rows[2][9], "50.0%");
        let csv = report.csv();
        for line in [
            "1h,plain,clicked,,1",
            "1h,bold,bounced,,1",
            "1h,plain,complained,,1",
            "1h,bold,unsubscribed,,1",
            "1h,plain,recovered_revenue_by_click,EUR,100.00",
            "1h,,click_rate,,0.5000",
        ] {
            assert!(csv.lines().any(|l| l == line), "{line}\n{csv}");
        }
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["steps"][0]["variants"][1]["variant"], "plain");
        assert_eq!(json["steps"][0]["variants"][1]["clicked"], 1);
        assert!(json["steps"][1].get("variants").is_none());
    }
}
