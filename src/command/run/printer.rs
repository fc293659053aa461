//! What a run says about its decisions: one JSON line each (`--json`), the
//! dry-run table, the preview gallery's skips, and the summary's counts.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};

use crate::decision::{Decision, Kind};
use crate::deliver;
use crate::deliver::ledger::Recovered;
use crate::output::{DecisionRecord, Output};
use crate::plan::{Candidate, SkipReason};

/// The figures of a run, for the summary line.
#[derive(Debug, Default, Clone)]
pub struct RunSummary {
    pub dry_run: bool,
    pub carts_imported: u64,
    pub orders_imported: u64,
    pub rows_rejected: u64,
    /// Of those, rows an earlier run rejected and reported already.
    pub rows_reported_before: u64,
    /// Claims of runs that died, settled at the start of this run.
    pub recovered: Recovered,
    /// A signal stopped the run.
    pub interrupted: bool,
    /// How many of each kind of decision.
    pub decisions: BTreeMap<Kind, u64>,
    /// Skip reason → count.
    pub skips: BTreeMap<&'static str, u64>,
    /// (step or "", reason) → count, as recorded for `recart report`.
    pub skips_by_step: BTreeMap<(String, String), u64>,
    /// The store had never sent a mail and this run mails (or would).
    pub first_run: Option<FirstRun>,
}

/// What the first run that mails anyone does, said once so that switching
/// recart on over an old shop database floods nobody unseen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FirstRun {
    /// Carts mailed (a dry run: that would be).
    pub carts: u64,
    /// How long the longest idle of them was idle.
    pub oldest_idle: TimeDelta,
}

impl FirstRun {
    /// `first run: 1,204 carts would be mailed, the oldest idle 6 days`.
    pub fn line(&self, dry_run: bool) -> String {
        format!(
            "first run: {} {} {}, the oldest idle {}",
            thousands(self.carts),
            if self.carts == 1 { "cart" } else { "carts" },
            if dry_run { "would be mailed" } else { "mailed" },
            idle_words(self.oldest_idle)
        )
    }
}

/// `1204` → `1,204`.
pub fn thousands(count: u64) -> String {
    let digits = count.to_string();
    let mut text = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    text
}

/// A time idle in its largest whole unit: `6 days`, `1 hour`, `40 minutes`.
fn idle_words(idle: TimeDelta) -> String {
    let (count, unit) = if idle.num_days() > 0 {
        (idle.num_days(), "day")
    } else if idle.num_hours() > 0 {
        (idle.num_hours(), "hour")
    } else {
        (idle.num_minutes().max(0), "minute")
    };
    format!("{count} {unit}{}", if count == 1 { "" } else { "s" })
}

/// A duration as the configuration writes it: `7d`, `36h`, `90m`.
pub fn short_duration(duration: TimeDelta) -> String {
    let seconds = duration.num_seconds();
    match seconds {
        _ if seconds % 86_400 == 0 => format!("{}d", seconds / 86_400),
        _ if seconds % 3_600 == 0 => format!("{}h", seconds / 3_600),
        _ if seconds % 60 == 0 => format!("{}m", seconds / 60),
        _ => format!("{seconds}s"),
    }
}

impl RunSummary {
    pub fn count(&self, kind: Kind) -> u64 {
        self.decisions.get(&kind).copied().unwrap_or(0)
    }

    /// Something in this run is news to a person: new rejected rows,
    /// mails that failed or whose outcome is unknown, a coupon pool that
    /// ran dry (mails wait for codes), an earlier run that died, a stop by
    /// a signal. (A run from cron prints its summary only then, or when it
    /// does not end with 0.)
    pub fn needs_a_person(&self) -> bool {
        self.rows_rejected > self.rows_reported_before
            || self.count(Kind::Failed) > 0
            || self.count(Kind::Unknown) > 0
            || self.skips.contains_key(SkipReason::NoCoupon.as_str())
            || self.recovered.any()
            || self.interrupted
            || self.first_run.is_some()
    }

    /// The figures as JSON fields, for `--log-format json`.
    pub fn fields(&self) -> serde_json::Value {
        serde_json::json!({
            "event": if self.dry_run { "dry-run" } else { "run" },
            "imported_carts": self.carts_imported,
            "imported_orders": self.orders_imported,
            "rows_rejected": self.rows_rejected,
            "rows_reported_before": self.rows_reported_before,
            "would_send": self.count(Kind::Send),
            "sent": self.count(Kind::Sent),
            "retry": self.count(Kind::Retry),
            "failed": self.count(Kind::Failed),
            "unknown": self.count(Kind::Unknown) + self.recovered.unknown,
            "recovered": {
                "released": self.recovered.released,
                "answered": self.recovered.answered,
                "unknown": self.recovered.unknown,
            },
            "interrupted": self.interrupted,
            "skipped": self.count(Kind::Skip),
            "skipped_by_reason": self.skips,
            "first_run": self.first_run.map(|first| serde_json::json!({
                "carts": first.carts,
                "oldest_idle_s": first.oldest_idle.num_seconds(),
            })),
        })
    }

    /// One line for the log, e.g. for cron.
    pub fn line(&self) -> String {
        use std::fmt::Write as _;
        let mut line = format!(
            "imported {} carts, {} orders ({} rows rejected",
            self.carts_imported, self.orders_imported, self.rows_rejected
        );
        if self.rows_reported_before > 0 {
            let _ = write!(
                line,
                ", {} of them reported before",
                self.rows_reported_before
            );
        }
        line.push_str("); ");
        if self.dry_run {
            let _ = write!(line, "dry run: {} would be sent", self.count(Kind::Send));
        } else {
            let _ = write!(
                line,
                "{} sent, {} retry, {} failed, {} unknown",
                self.count(Kind::Sent),
                self.count(Kind::Retry),
                self.count(Kind::Failed),
                self.count(Kind::Unknown)
            );
        }
        let _ = write!(line, ", {} skipped", self.count(Kind::Skip));
        if !self.skips.is_empty() {
            let reasons: Vec<String> = self
                .skips
                .iter()
                .map(|(reason, count)| format!("{reason} {count}"))
                .collect();
            let _ = write!(line, " ({})", reasons.join(", "));
        }
        let recovered = self.recovered;
        if recovered.any() {
            let _ = write!(
                line,
                "; an earlier run died: of its claims {} released (due again), {} recorded \
                 from its hand-over journal, {} unknown (see `recart unknown list`)",
                recovered.released, recovered.answered, recovered.unknown
            );
        }
        if self.interrupted {
            line.push_str("; stopped by a signal: the mails not handed over stay due");
        }
        line
    }
}

/// A row of the dry-run table, with what it sorts by.
struct Row {
    kind: Kind,
    cells: [String; 5],
}

/// Prints decisions as they are made — JSON lines, or rows of the dry-run
/// table — and counts them into the summary.
pub struct Printer {
    json: bool,
    table: Option<Vec<Row>>,
    /// Printed under the dry-run table (the carts beyond the window).
    pub table_note: Option<String>,
    /// The last activity of the longest idle cart mailed (or that would be).
    oldest_mailed: Option<DateTime<Utc>>,
    /// `--preview DIR`: planned mails are added as they are composed,
    /// skips as they are printed.
    pub gallery: Option<deliver::Gallery>,
    pub summary: RunSummary,
}

impl Printer {
    /// `table`: collect the dry-run table (printed by [`Printer::finish`]).
    pub fn new(
        json: bool,
        table: bool,
        gallery: Option<deliver::Gallery>,
        summary: RunSummary,
    ) -> Printer {
        Printer {
            json,
            table: table.then(Vec::new),
            table_note: None,
            oldest_mailed: None,
            gallery,
            summary,
        }
    }

    /// Whether the dry-run table is printed.
    pub fn has_table(&self) -> bool {
        self.table.is_some()
    }

    /// What this run mailed (or would), when it is the store's first.
    pub fn first_run(&self, now: DateTime<Utc>) -> Option<FirstRun> {
        let carts = self.summary.count(Kind::Send) + self.summary.count(Kind::Sent);
        let oldest = self.oldest_mailed?;
        (carts > 0).then(|| FirstRun {
            carts,
            oldest_idle: now - oldest,
        })
    }

    /// Reports one decision about `cart` (for `step`, if it concerns one).
    pub fn emit(
        &mut self,
        out: &mut Output,
        cart: &Candidate,
        step: Option<&str>,
        decision: &Decision,
    ) {
        let kind = decision.kind();
        let reason = decision.reason();
        *self.summary.decisions.entry(kind).or_default() += 1;
        if matches!(kind, Kind::Send | Kind::Sent) {
            let oldest = self.oldest_mailed.get_or_insert(cart.updated_at);
            *oldest = (*oldest).min(cart.updated_at);
        }
        if let Decision::Skip(skip) = decision {
            let reason = skip.as_str();
            *self
                .summary
                .skips_by_step
                .entry((step.unwrap_or("").to_string(), reason.to_string()))
                .or_default() += 1;
            if let Some(gallery) = &mut self.gallery {
                gallery.add_skip(reason, &cart.id, &cart.email, step);
            }
            *self.summary.skips.entry(reason).or_default() += 1;
        }
        if self.json {
            out.json(&DecisionRecord {
                cart_id: &cart.id,
                email: &cart.email,
                step,
                decision: kind.as_str(),
                reason,
            });
        }
        if let Some(rows) = &mut self.table {
            rows.push(Row {
                kind,
                cells: [
                    cart.id.clone(),
                    cart.email.clone(),
                    step.unwrap_or("-").to_string(),
                    kind.as_str().to_string(),
                    reason.unwrap_or("").to_string(),
                ],
            });
        }
    }

    /// Prints the dry-run table, if one was collected: sends first, then
    /// skips grouped by reason; plan order within.
    pub fn print_table(&mut self, out: &mut Output) {
        if let Some(mut rows) = self.table.take() {
            rows.sort_by(|a, b| {
                (a.kind != Kind::Send, &a.cells[4]).cmp(&(b.kind != Kind::Send, &b.cells[4]))
            });
            let rows: Vec<Vec<String>> = rows.into_iter().map(|row| row.cells.into()).collect();
            out.table(&["CART", "EMAIL", "STEP", "DECISION", "REASON"], &rows);
            if let Some(note) = self.table_note.take() {
                out.data("");
                out.data(&note);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_summary_needs_a_person_for_news_only() {
        let quiet = RunSummary {
            rows_rejected: 2,
            rows_reported_before: 2,
            decisions: [(Kind::Sent, 5), (Kind::Retry, 1), (Kind::Skip, 3)].into(),
            skips: [("not-due", 2), ("cooldown", 1)].into(),
            ..RunSummary::default()
        };
        assert!(!quiet.needs_a_person());
        let news = [
            RunSummary {
                rows_rejected: 3,
                ..quiet.clone()
            },
            RunSummary {
                decisions: [(Kind::Failed, 1)].into(),
                ..quiet.clone()
            },
            RunSummary {
                decisions: [(Kind::Unknown, 1)].into(),
                ..quiet.clone()
            },
            RunSummary {
                skips: [("no-coupon", 1)].into(),
                ..quiet.clone()
            },
            RunSummary {
                interrupted: true,
                ..quiet.clone()
            },
        ];
        for summary in news {
            assert!(summary.needs_a_person(), "{summary:?}");
        }
    }

    #[test]
    fn the_first_run_says_how_many_carts_and_how_old() {
        let first = FirstRun {
            carts: 1204,
            oldest_idle: TimeDelta::days(6) + TimeDelta::hours(5),
        };
        assert_eq!(
            first.line(true),
            "first run: 1,204 carts would be mailed, the oldest idle 6 days"
        );
        let one = FirstRun {
            carts: 1,
            oldest_idle: TimeDelta::minutes(61),
        };
        assert_eq!(
            one.line(false),
            "first run: 1 cart mailed, the oldest idle 1 hour"
        );
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(short_duration(TimeDelta::days(7)), "7d");
        assert_eq!(short_duration(TimeDelta::hours(36)), "36h");
        assert_eq!(short_duration(TimeDelta::minutes(90)), "90m");
    }
}
