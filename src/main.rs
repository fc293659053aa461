//! The `recart` binary: parse arguments, read the clock once, run the
//! subcommand, print its error (the only place that does), exit with its
//! code.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;
use clap::Parser;

use recart::cli::{Cli, LogFormatArg};
use recart::command::{self, Context};
use recart::config;
use recart::error::exit;
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
            let code = if error.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            return ExitCode::from(code);
        }
    };
    let mut out = Output::terminal();
    let verbosity = if cli.quiet { -1 } else { i8::from(cli.verbose) };
    let log_format = match cli.log_format {
        LogFormatArg::Text => LogFormat::Text,
        LogFormatArg::Json => LogFormat::Json,
    };
    out.configure(verbosity, log_format);
    let mut ctx = Context {
        config_path: cli
            .config
            .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH)),
        now: Utc::now(),
        clock: &Utc::now,
        out: &mut out,
    };
    match command::execute(cli.command, &mut ctx) {
        Ok(completion) => ExitCode::from(completion.exit_code()),
        Err(error) => {
            out.error(&format!("recart: {error}"));
            ExitCode::from(error.exit_code())
        }
    }
}
