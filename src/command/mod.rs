//! The subcommands, one file each. Every `execute(args, ctx)` loads what
//! it needs (the configuration, the store), calls the stages, reports
//! through `ctx.out` and says how it ended; it returns typed errors, which
//! the binary prints.

pub mod bounces;
pub mod check;
pub mod coupons;
pub mod import;
pub mod init;
pub mod report;
pub mod retention;
pub mod run;
pub mod serve;
pub mod store;
pub mod suppress;
pub mod token;
pub mod unknown;

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::error::{Completion, Error, Result};
use crate::output::Output;

/// The wall clock, for bookkeeping only (when a run started and ended),
/// and for `serve`, which answers each request at its own time (shared
/// with its request threads, hence `Send + Sync`).
pub type Clock<'a> = &'a (dyn Fn() -> DateTime<Utc> + Send + Sync);

/// What every command is given.
pub struct Context<'a> {
    /// `--config`, `$RECART_CONFIG`, or `./recart.toml`.
    pub config_path: PathBuf,
    /// The time the command started, read once by the binary: the default
    /// of every `--now`.
    pub now: DateTime<Utc>,
    pub clock: Clock<'static>,
    pub out: &'a mut Output,
}

impl Context<'_> {
    pub fn config(&self) -> Result<Config> {
        Config::load(&self.config_path)
    }
}

/// Runs one subcommand.
pub fn execute(command: Command, ctx: &mut Context<'_>) -> Result<Completion> {
    match command {
        Command::Init { dir, systemd } => init::execute(&dir, systemd, ctx),
        Command::Import {
            format,
            errors,
            encoding,
            now,
            currency,
            files,
        } => {
            let options = crate::ingest::Options {
                encoding,
                now: Some(now.unwrap_or(ctx.now)),
                currency,
                ..crate::ingest::Options::format(format)
            };
            import::execute(&options, errors.as_deref(), &files, ctx)
        }
        Command::Run(args) => run::execute(&args, ctx),
        Command::Suppress { action } => suppress::execute(action, ctx),
        Command::Token { action } => token::execute(action, ctx),
        Command::Unknown { action } => unknown::execute(action, ctx),
        Command::Bounces { action } => bounces::execute(action, ctx),
        Command::Store { action } => store::execute(action, ctx),
        Command::Coupons { action } => coupons::execute(action, ctx),
        Command::Report(args) => report::execute(&args, ctx),
        Command::Runs { limit, json } => report::runs(limit, json, ctx),
        Command::Prune {
            older_than,
            now,
            wait,
        } => retention::prune(now.unwrap_or(ctx.now) - older_than, wait, ctx),
        Command::Forget { emails, wait } => retention::forget(&emails, wait, ctx),
        Command::Check { smtp } => check::execute(smtp, ctx),
        Command::Sources {
            command: crate::cli::SourcesCommand::ShowPreset { name },
        } => match crate::ingest::presets::text(&name) {
            Some(text) => {
                ctx.out.raw(text);
                Ok(Completion::Done)
            }
            None => Err(crate::error::Error::Usage(format!(
                "{name:?} is not a preset (expected one of {})",
                crate::ingest::presets::names().join(", ")
            ))),
        },
        Command::Serve { listen, now } => serve::execute(&listen, now, ctx),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "recart", &mut script);
            ctx.out.raw(&String::from_utf8_lossy(&script));
            Ok(Completion::Done)
        }
        Command::Man { dir: None } => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .map_err(|source| Error::io("the man page", source))?;
            ctx.out.raw(&String::from_utf8_lossy(&page));
            Ok(Completion::Done)
        }
        Command::Man { dir: Some(dir) } => {
            let pages = write_man_pages(&dir)?;
            ctx.out.log(&format!(
                "wrote {} man pages into {}",
                pages.len(),
                dir.display()
            ));
            Ok(Completion::Done)
        }
    }
}

/// `recart man --dir DIR`: `recart.1` and a page per subcommand, nested
/// ones included (`recart-suppress-add.1`), each with its options: the
/// pages the main page's SUBCOMMANDS section names. Existing pages are
/// replaced (an upgrade writes them again).
fn write_man_pages(dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    fn write(
        command: clap::Command,
        dir: &std::path::Path,
        written: &mut Vec<PathBuf>,
    ) -> std::io::Result<()> {
        for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
            write(sub.clone(), dir, written)?;
        }
        let page = clap_mangen::Man::new(command)
            .source(concat!("recart ", env!("CARGO_PKG_VERSION")))
            .manual("recart");
        written.push(page.generate_to(dir)?);
        Ok(())
    }
    std::fs::create_dir_all(dir).map_err(|source| Error::io(dir, source))?;
    // Built once from the top: each subcommand is then named by its path
    // (`recart-suppress-add`) and carries the global options.
    let mut root = Cli::command().disable_help_subcommand(true);
    root.build();
    let mut written = Vec::new();
    write(root, dir, &mut written).map_err(|source| Error::io(dir, source))?;
    Ok(written)
}
