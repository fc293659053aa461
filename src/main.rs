//! The `recart` binary: parse arguments, load the configuration, call the
//! library, and turn the outcome into an exit code. The only place that
//! reads the clock and the only place that prints errors.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{CommandFactory, Parser};

use recart::app::{self, Completion, ReportFormat, RunOptions};
use recart::cli::{Cli, Command, CouponsAction, LogFormatArg, SuppressAction, TokenAction};
use recart::config::{self, Config};
use recart::error::{Error, exit};
use recart::ingest::Format;
use recart::output::{LogFormat, Output};

// A large import frees on one thread what the reader allocated on another,
// and allocates a few small strings per field: glibc's allocator was a
// tenth of its time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let mut out = Output::terminal();
    let verbosity = if cli.quiet { -1 } else { i8::from(cli.verbose) };
    out.configure(
        verbosity,
        match cli.log_format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        },
    );
    match run(cli, &mut out) {
        Ok(completion) => ExitCode::from(completion.exit_code()),
        Err(error) => {
            let code = error
                .chain()
                .find_map(|cause| cause.downcast_ref::<Error>())
                .map_or(exit::ERROR, Error::exit_code);
            out.error(&format!("recart: {error:#}"));
            ExitCode::from(code)
        }
    }
}

fn run(cli: Cli, out: &mut Output) -> anyhow::Result<Completion> {
    let config_path = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    let load = || Config::load(&config_path);
    match cli.command {
        Command::Init { dir } => {
            recart::init::init(&dir, Utc::now(), out)?;
            Ok(Completion::Done)
        }
        Command::Import {
            format,
            errors,
            files,
        } => {
            let format: Format = format.parse().map_err(Error::Usage)?;
            let config = load()?;
            Ok(app::import(
                &config.store_path,
                &files,
                format,
                errors.as_deref(),
                out,
            )?)
        }
        Command::Run(args) => {
            let config = load()?;
            let now = parse_time("--now", args.now.as_deref())?;
            let options = RunOptions {
                now,
                dry_run: args.dry_run,
                json: args.json,
                preview: args.preview,
                limit: args.limit,
                resend_unknown: args.resend_unknown,
                to: args.to,
                wait: args.wait,
            };
            let started = Instant::now();
            let (completion, summary) = app::run(&config, &options, &Utc::now, out)
                .with_context(|| format!("run with {}", config.path.display()))?;
            let seconds = started.elapsed().as_secs_f64();
            let mut fields = summary.fields();
            fields["duration_s"] = serde_json::json!((seconds * 1000.0).round() / 1000.0);
            fields["exit_code"] = serde_json::json!(completion.exit_code());
            out.summary(
                &format!("recart run: {} in {seconds:.2}s", summary.line()),
                fields,
            );
            Ok(completion)
        }
        Command::Suppress { action } => {
            let config = load()?;
            Ok(match action {
                SuppressAction::Add { emails } => {
                    app::suppress_add(&config.store_path, &emails, Utc::now(), out)?
                }
                SuppressAction::Import { file } => {
                    app::suppress_import(&config, &file, Utc::now(), out)?
                }
                SuppressAction::List => app::suppress_list(&config.store_path, out)?,
            })
        }
        Command::Token {
            action: TokenAction::Verify { token, email, now },
        } => {
            let config = load()?;
            let now = parse_time("--now", now.as_deref())?;
            Ok(app::token_verify(
                &config,
                &token,
                email.as_deref(),
                now,
                out,
            )?)
        }
        Command::Coupons { action } => {
            let config = load()?;
            Ok(match action {
                CouponsAction::Import { file } => {
                    app::coupons_import(&config.store_path, &file, Utc::now(), out)?
                }
                CouponsAction::List => app::coupons_list(&config.store_path, Utc::now(), out)?,
            })
        }
        Command::Report(args) => {
            let config = load()?;
            let now = parse_time("--now", args.now.as_deref())?;
            let since = match args.since.as_deref() {
                Some(text) => Some(parse_time("--since", Some(text))?),
                None => None,
            };
            let format = if args.json {
                ReportFormat::Json
            } else if args.csv {
                ReportFormat::Csv
            } else {
                ReportFormat::Table
            };
            Ok(app::report(
                &config,
                now,
                since,
                format,
                args.html.as_deref(),
                out,
            )?)
        }
        Command::Prune { older_than, now } => {
            let config = load()?;
            let now = parse_time("--now", now.as_deref())?;
            let period = config::parse_duration(&older_than)
                .map_err(|message| Error::Usage(format!("--older-than: {message}")))?;
            Ok(app::prune(&config, now - period, out)?)
        }
        Command::Forget { emails } => {
            let config = load()?;
            Ok(app::forget(&config, &emails, Utc::now(), out)?)
        }
        Command::Completions { shell } => {
            let mut command = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "recart", &mut script);
            out.raw(&String::from_utf8_lossy(&script));
            Ok(Completion::Done)
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .context("render the man page")?;
            out.raw(&String::from_utf8_lossy(&page));
            Ok(Completion::Done)
        }
        Command::Runs { limit, json } => {
            let config = load()?;
            Ok(app::runs(&config, limit, json, out)?)
        }
        Command::Check { smtp } => {
            let config = load()?;
            Ok(app::check(&config, Utc::now(), smtp, out)?)
        }
    }
}

/// A time option as RFC 3339, else the clock.
fn parse_time(option: &str, text: Option<&str>) -> Result<DateTime<Utc>, Error> {
    match text {
        None => Ok(Utc::now()),
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map(|time| time.with_timezone(&Utc))
            .map_err(|_| {
                Error::Usage(format!(
                    "{option} {text:?} is not an RFC 3339 time like 2026-11-21T12:00:00Z"
                ))
            }),
    }
}
