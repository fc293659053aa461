//! The `recart` binary: parse arguments, load the configuration, call the
//! library, and turn the outcome into an exit code. The only place that
//! reads the clock and the only place that prints errors.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::Parser;

use recart::app::{self, Completion, RunOptions};
use recart::cli::{Cli, Command, CouponsAction, SuppressAction, TokenAction};
use recart::config::{self, Config};
use recart::error::{Error, exit};
use recart::ingest::Format;
use recart::output::Output;

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
    match run(cli, &mut out) {
        Ok(completion) => ExitCode::from(completion.exit_code()),
        Err(error) => {
            let code = error
                .chain()
                .find_map(|cause| cause.downcast_ref::<Error>())
                .map_or(exit::ERROR, Error::exit_code);
            out.log(&format!("recart: {error:#}"));
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
            let now = parse_now(args.now.as_deref())?;
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
            out.log(&format!(
                "recart run: {} in {:.2}s",
                summary.line(),
                started.elapsed().as_secs_f64()
            ));
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
            let now = parse_now(now.as_deref())?;
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
        Command::Check => {
            let config = load()?;
            Ok(app::check(&config, Utc::now(), out)?)
        }
    }
}

/// `--now` as RFC 3339, else the clock.
fn parse_now(text: Option<&str>) -> Result<DateTime<Utc>, Error> {
    match text {
        None => Ok(Utc::now()),
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map(|time| time.with_timezone(&Utc))
            .map_err(|_| {
                Error::Usage(format!(
                    "--now {text:?} is not an RFC 3339 time like 2026-11-21T12:00:00Z"
                ))
            }),
    }
}
