//! Command-line definitions (clap derive), with the parsers of their
//! values: times, durations, formats. `main.rs` parses them and hands the
//! subcommand to [`crate::command::execute`].

use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, Utc};
use clap::{Args, Parser, Subcommand};

use crate::ingest::Format;

#[derive(Debug, Parser)]
#[command(
    name = "recart",
    version,
    about = "Wins back abandoned shopping carts by e-mail",
    long_about = "Imports cart snapshots, decides which open carts are due a reminder, renders \
                  a templated e-mail per cart and sends it, recording every send so nobody is \
                  mailed twice for the same reminder."
)]
pub struct Cli {
    /// Configuration file [default: $RECART_CONFIG, else ./recart.toml]
    // clap prints this doc as the option's help, where backticks would show.
    #[allow(clippy::doc_markdown)]
    #[arg(long, global = true, value_name = "FILE", env = "RECART_CONFIG")]
    pub config: Option<PathBuf>,

    /// More detail on stderr (e.g. each imported file's figures)
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,

    /// Only warnings and errors on stderr (no run summary)
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// How logs are written on stderr
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        value_name = "FORMAT"
    )]
    pub log_format: LogFormatArg,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Database sources: `sources show-preset NAME` prints a preset's queries
    Sources {
        #[command(subcommand)]
        command: SourcesCommand,
    },
    /// Write recart.toml, starter templates and a sample CSV into DIR
    Init {
        /// Directory to create or fill
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Instead: write recart.service and recart.timer into DIR, an hourly run of
        /// the --config file (absolute) by this binary; existing files are kept
        #[arg(long)]
        systemd: bool,
    },
    /// Import carts or orders from CSV files into the store
    Import {
        /// auto | native | native-orders | shopify | shopify-orders | catalog | shopify-products
        #[arg(long, default_value = "auto", value_name = "F", value_parser = parse_format)]
        format: Format,
        /// Write the rejected rows into FILE as CSV (file,line,field,value,message)
        #[arg(long, value_name = "FILE")]
        errors: Option<PathBuf>,
        /// The files' encoding when not UTF-8, e.g. windows-1252 (Excel's "CSV")
        #[arg(long, value_name = "NAME", value_parser = parse_encoding)]
        encoding: Option<&'static encoding_rs::Encoding>,
        /// The time of the import (RFC 3339): later times than a day after it are rejected [default: now]
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        now: Option<DateTime<Utc>>,
        /// The currency of a Shopify products export's prices, e.g. EUR [default: `currency` of its [[catalog]]]
        #[arg(long, value_name = "CODE")]
        currency: Option<crate::model::Currency>,
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Import configured sources, plan, render, send and record
    Run(RunArgs),
    /// Manage addresses that are never mailed
    Suppress {
        #[command(subcommand)]
        action: SuppressAction,
    },
    /// Coupon codes for steps with `coupon = "pool"`
    Coupons {
        #[command(subcommand)]
        action: CouponsAction,
    },
    /// Validate the configuration and render every template against a sample cart
    Check {
        /// Also connect to the SMTP relay: EHLO, STARTTLS, AUTH, QUIT (nothing is sent)
        #[arg(long)]
        smtp: bool,
    },
    /// Figures per step: sent, failed, retry, unknown, skipped, recovered revenue
    Report(ReportArgs),
    /// Delete carts and orders older than a period; erase old ledger addresses
    Prune {
        /// e.g. 90d: carts last active, and orders placed, before now minus this
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        older_than: TimeDelta,
        /// The time to count from (RFC 3339) [default: now]
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        now: Option<DateTime<Utc>>,
        /// If a run holds the store, wait for it instead of exiting with 4
        #[arg(long)]
        wait: bool,
    },
    /// Erase people (GDPR Art. 17): their carts, orders and ledger addresses, from the files too; keep a hash so they are never stored or mailed again
    Forget {
        #[arg(required = true, value_name = "EMAIL")]
        emails: Vec<String>,
        /// If a run holds the store, wait for it instead of exiting with 4
        #[arg(long)]
        wait: bool,
    },
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write every page into a directory
    Man {
        /// Write recart.1 and one recart-<command>.1 per subcommand into DIR
        /// (created if need be), e.g. ~/.local/share/man/man1
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// The last runs recorded in the store
    Runs {
        /// How many runs
        #[arg(long, default_value_t = 20, value_name = "N")]
        limit: usize,
        /// One JSON object per run
        #[arg(long)]
        json: bool,
    },
    /// Answer the mails' links over HTTP: one-click unsubscribe, recovery redirects (behind your reverse proxy)
    Serve {
        /// The address to listen on, e.g. 127.0.0.1:8080 (port 0: any free port; the bound address is printed)
        #[arg(long, value_name = "ADDR")]
        listen: String,
        /// Tests only: check token expiry at this fixed time instead of the clock's
        #[arg(long, value_name = "TIME", value_parser = parse_time, hide = true)]
        now: Option<DateTime<Utc>>,
    },
    /// Signed link tokens
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Bounces and complaints that came back to the return path
    Bounces {
        #[command(subcommand)]
        action: BouncesAction,
    },
    /// Mails whose outcome is unknown (a run died after handing them over)
    Unknown {
        #[command(subcommand)]
        action: UnknownAction,
    },
    /// The store as a whole: `store copy --to TARGET` moves it to PostgreSQL or a SQLite file
    Store {
        #[command(subcommand)]
        action: StoreAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum StoreAction {
    /// Copy every row of the configured store into an empty one, in one transaction
    /// (exit 2 if the target holds rows already); prints each table's count
    Copy {
        /// `postgres://user@host/db` (no password in it), or the path of a SQLite file,
        /// created if need be
        #[arg(long, value_name = "TARGET")]
        to: String,
        /// The environment variable that holds the target PostgreSQL's password
        /// (PGPASSWORD is not read)
        #[arg(long, value_name = "NAME")]
        password_env: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BouncesAction {
    /// Read delivery-status and feedback reports from Maildirs or mbox files:
    /// a permanent failure bounces the send and suppresses the address, a
    /// complaint suppresses it (exit 3 if a message could not be read or matched)
    Import {
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// The time to record (RFC 3339) [default: now]
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        now: Option<DateTime<Utc>>,
        /// One JSON object: the figures per outcome and the messages that need a person
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UnknownAction {
    /// The unknown mails: cart, step, address, when claimed, why unknown
    List {
        /// Only those claimed at or after TIME (RFC 3339)
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        since: Option<DateTime<Utc>>,
        /// Only those claimed at or before TIME (RFC 3339)
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        until: Option<DateTime<Utc>>,
        /// One JSON object per mail
        #[arg(long)]
        json: bool,
    },
    /// The customer got it (e.g. the server's log says so): record it sent
    MarkSent {
        #[arg(value_name = "CART")]
        cart: String,
        #[arg(value_name = "STEP")]
        step: String,
    },
    /// The customer did not get it: the next run sends it again
    Resend {
        #[arg(value_name = "CART")]
        cart: String,
        #[arg(value_name = "STEP")]
        step: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Print what a token binds, or why it is invalid (malformed, forged, expired: exit 1)
    Verify {
        #[arg(value_name = "TOKEN")]
        token: String,
        /// The address it was sent to [default: the cart's, from the store]
        #[arg(long, value_name = "EMAIL")]
        email: Option<String>,
        /// The time to check expiry at (RFC 3339) [default: now]
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        now: Option<DateTime<Utc>>,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Decide and print, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// The time to decide at (RFC 3339) [default: now]
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<DateTime<Utc>>,
    /// One JSON object per decision on stdout
    #[arg(long)]
    pub json: bool,
    /// Also write each planned mail as .eml into DIR
    #[arg(long, value_name = "DIR")]
    pub preview: Option<PathBuf>,
    /// Send at most N mails
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Re-send, on purpose, the mails whose earlier outcome is unknown
    #[arg(long)]
    pub resend_unknown: bool,
    /// With --resend-unknown: only those claimed at or after TIME (RFC 3339)
    #[arg(long, value_name = "TIME", value_parser = parse_time, requires = "resend_unknown")]
    pub unknown_since: Option<DateTime<Utc>>,
    /// With --resend-unknown: only those claimed at or before TIME (RFC 3339)
    #[arg(long, value_name = "TIME", value_parser = parse_time, requires = "resend_unknown")]
    pub unknown_until: Option<DateTime<Utc>>,
    /// Test send: deliver due mails to ADDRESS only (1 unless --limit), record nothing
    #[arg(long, value_name = "ADDRESS", conflicts_with = "dry_run")]
    pub to: Option<String>,
    /// With --to (or --dry-run --preview DIR): the mail of this cart, due or not
    #[arg(long, value_name = "ID")]
    pub cart: Option<String>,
    /// With --to (or --dry-run --preview DIR): the mail of this step, due or not
    #[arg(long, value_name = "NAME")]
    pub step: Option<String>,
    /// If another run holds the store, wait for it instead of exiting with 4
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// End of the period (RFC 3339) [default: now]
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub now: Option<DateTime<Utc>>,
    /// Start of the period (RFC 3339) [default: 30 days before --now]
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// How the figures are printed: a table, one JSON object, or CSV (step,metric,key,value)
    #[arg(long, value_enum, default_value = "table", value_name = "FORMAT")]
    pub format: ReportFormat,
    /// Same as --format json
    #[arg(long, conflicts_with_all = ["csv", "format"])]
    pub json: bool,
    /// Same as --format csv
    #[arg(long, conflicts_with = "format")]
    pub csv: bool,
    /// Also write an HTML page with a chart of sends and recoveries per day
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

impl ReportArgs {
    /// `--format`, or the shorthand flag given.
    pub fn format(&self) -> ReportFormat {
        if self.json {
            ReportFormat::Json
        } else if self.csv {
            ReportFormat::Csv
        } else {
            self.format
        }
    }
}

/// How `report` prints its figures on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum CouponsAction {
    /// Add the codes of FILE to their pool (CSV: code[,expires][,pool])
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Codes per pool: free, given, expired unused
    List,
    /// The codes given to carts (cart, step, address, issued, expires), for the shop's discount system
    Export {
        /// Only codes issued at or after TIME (RFC 3339)
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        since: Option<DateTime<Utc>>,
        /// CSV with a header, or one JSON object per code
        #[arg(long, value_enum, default_value = "csv", value_name = "FORMAT")]
        format: ExportFormat,
    },
}

/// How `coupons export` writes the codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum SuppressAction {
    /// Suppress addresses
    Add {
        #[arg(required = true, value_name = "EMAIL")]
        emails: Vec<String>,
    },
    /// Suppress every address in FILE (one per line, or a CSV with an `email` column);
    /// lines holding a signed unsubscribe token suppress the address it binds
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// List suppressed addresses
    List,
}

/// A time option: RFC 3339, e.g. `2026-11-21T12:00:00Z`.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| format!("{text:?} is not an RFC 3339 time like 2026-11-21T12:00:00Z"))
}

/// A duration option, by the configuration's rules (`90d`, `36h`).
pub fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    crate::config::parse_duration(text)
}

/// An input format's name.
pub fn parse_format(text: &str) -> Result<Format, String> {
    text.parse()
}

/// An input encoding's name (`windows-1252`, `utf-16`...).
pub fn parse_encoding(text: &str) -> Result<&'static encoding_rs::Encoding, String> {
    crate::ingest::parse_encoding(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn times_durations_and_formats_are_parsed_by_clap() {
        let cli = Cli::try_parse_from([
            "recart",
            "prune",
            "--older-than",
            "90d",
            "--now",
            "2026-11-21T12:00:00+01:00",
        ])
        .unwrap();
        let Command::Prune {
            older_than, now, ..
        } = cli.command
        else {
            panic!("not prune");
        };
        assert_eq!(older_than, TimeDelta::days(90));
        assert_eq!(now.unwrap().to_rfc3339(), "2026-11-21T11:00:00+00:00");
        let error = Cli::try_parse_from(["recart", "run", "--now", "yesterday"]).unwrap_err();
        assert!(
            error.to_string().contains("not an RFC 3339 time"),
            "{error}"
        );
        let error =
            Cli::try_parse_from(["recart", "import", "--format", "magento", "a.csv"]).unwrap_err();
        assert!(
            error.to_string().contains("\"magento\" is not a format"),
            "{error}"
        );
        let cli = Cli::try_parse_from([
            "recart",
            "import",
            "--encoding",
            "latin1",
            "--now",
            "2026-11-21T12:00:00Z",
            "a.csv",
        ])
        .unwrap();
        let Command::Import { encoding, now, .. } = cli.command else {
            panic!("not import");
        };
        assert_eq!(encoding, Some(encoding_rs::WINDOWS_1252));
        assert_eq!(now.unwrap().to_rfc3339(), "2026-11-21T12:00:00+00:00");
        let error =
            Cli::try_parse_from(["recart", "import", "--encoding", "ebcdic", "a.csv"]).unwrap_err();
        assert!(error.to_string().contains("not an encoding"), "{error}");
        let cli = Cli::try_parse_from(["recart", "report", "--csv"]).unwrap();
        let Command::Report(args) = cli.command else {
            panic!("not report");
        };
        assert_eq!(args.format(), ReportFormat::Csv);
    }
}

/// `recart sources …`.
#[derive(Subcommand, Debug)]
pub enum SourcesCommand {
    /// Print a preset's [[sources]] block (magento2, prestashop, sylius,
    /// sylius-mysql, woocommerce), to copy and adapt
    ShowPreset {
        /// The preset's name
        name: String,
    },
}
