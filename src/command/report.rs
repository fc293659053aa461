//! `recart report` (figures per step over a period, and what the
//! reminders recovered) and `recart runs` (the last runs).

use chrono::TimeDelta;

use super::Context;
use crate::cli::{ReportArgs, ReportFormat};
use crate::error::{Completion, Error, Result};
use crate::report::{self, Report};
use crate::store::Store;

/// The period a report covers when `--since` is not given.
const DEFAULT_PERIOD_DAYS: i64 = 30;

pub fn execute(args: &ReportArgs, ctx: &mut Context<'_>) -> Result<Completion> {
    let config = ctx.config()?;
    let now = args.now.unwrap_or(ctx.now);
    let since = args
        .since
        .unwrap_or(now - TimeDelta::days(DEFAULT_PERIOD_DAYS));
    if since > now {
        return Err(Error::Usage(format!(
            "--since {} is after --now {}",
            since.to_rfc3339(),
            now.to_rfc3339()
        )));
    }
    let store = Store::open_configured(&config)?;
    let data = store.report_data(since, now)?;
    let steps: Vec<String> = config.steps.iter().map(|s| s.name.clone()).collect();
    let report = report::build(since, now, config.attribution_window, &steps, &data);
    let out = &mut *ctx.out;
    match args.format() {
        ReportFormat::Table => {
            out.table(&Report::TABLE_HEADER, &report.table_rows());
            for note in report.notes() {
                out.data(&note);
            }
        }
        ReportFormat::Json => out.json(&report),
        ReportFormat::Csv => out.raw(&report.csv()),
    }
    if let Some(path) = &args.html {
        std::fs::write(path, report.html()).map_err(|source| Error::io(path, source))?;
        out.log(&format!("wrote {}", path.display()));
    }
    Ok(Completion::Done)
}

/// `recart runs`: the last runs from the store, newest first.
pub fn runs(limit: usize, json: bool, ctx: &mut Context<'_>) -> Result<Completion> {
    let config = ctx.config()?;
    let store = Store::open_configured(&config)?;
    let runs = store.runs(limit)?;
    let out = &mut *ctx.out;
    if json {
        for run in &runs {
            out.json(&serde_json::json!({
                "id": run.id,
                "started_at": run.started_at.to_rfc3339(),
                "finished_at": run.finished_at.map(|t| t.to_rfc3339()),
                "now": run.now.to_rfc3339(),
                "imported": run.imported,
                "sent": run.sent,
                "skipped": run.skipped,
                "retry": run.retry,
                "failed": run.failed,
                "unknown": run.unknown,
                "exit_code": run.exit_code,
            }));
        }
        return Ok(Completion::Done);
    }
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|run| {
            vec![
                run.id.to_string(),
                run.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                run.finished_at.map_or_else(
                    || "unfinished".to_string(),
                    |end| format!("{}s", (end - run.started_at).num_seconds()),
                ),
                run.now.to_rfc3339(),
                run.imported.to_string(),
                run.sent.to_string(),
                run.skipped.to_string(),
                run.retry.to_string(),
                run.failed.to_string(),
                run.unknown.to_string(),
                run.exit_code
                    .map_or_else(|| "-".into(), |code| code.to_string()),
            ]
        })
        .collect();
    out.table(
        &[
            "RUN", "STARTED", "TOOK", "NOW", "IMPORTED", "SENT", "SKIPPED", "RETRY", "FAILED",
            "UNKNOWN", "EXIT",
        ],
        &rows,
    );
    Ok(Completion::Done)
}
