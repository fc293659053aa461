//! Command-line definitions only (clap derive). `main.rs` turns these into
//! a [`crate::config::Config`] and calls [`crate::app`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    /// Write recart.toml, starter templates and a sample CSV into DIR
    Init {
        /// Directory to create or fill
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Import carts or orders from CSV files into the store
    Import {
        /// auto | native | native-orders | shopify | shopify-orders
        #[arg(long, default_value = "auto", value_name = "F")]
        format: String,
        /// Write the rejected rows into FILE as CSV (file,line,field,value,message)
        #[arg(long, value_name = "FILE")]
        errors: Option<PathBuf>,
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
        #[arg(long, value_name = "DURATION")]
        older_than: String,
        /// The time to count from (RFC 3339) [default: now]
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
    },
    /// Erase people (GDPR Art. 17): their carts, orders and ledger addresses; keep a hash so they are never mailed
    Forget {
        #[arg(required = true, value_name = "EMAIL")]
        emails: Vec<String>,
    },
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    Man,
    /// The last runs recorded in the store
    Runs {
        /// How many runs
        #[arg(long, default_value_t = 20, value_name = "N")]
        limit: usize,
        /// One JSON object per run
        #[arg(long)]
        json: bool,
    },
    /// Signed link tokens
    Token {
        #[command(subcommand)]
        action: TokenAction,
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
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Decide and print, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// The time to decide at (RFC 3339) [default: now]
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
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
    /// Test send: deliver due mails to ADDRESS only (1 unless --limit), record nothing
    #[arg(long, value_name = "ADDRESS", conflicts_with = "dry_run")]
    pub to: Option<String>,
    /// If another run holds the store, wait for it instead of exiting with 4
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// End of the period (RFC 3339) [default: now]
    #[arg(long, value_name = "TIME")]
    pub now: Option<String>,
    /// Start of the period (RFC 3339) [default: 30 days before --now]
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// The figures as one JSON object
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// The figures as CSV (step,metric,key,value)
    #[arg(long)]
    pub csv: bool,
    /// Also write an HTML page with a chart of sends and recoveries per day
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
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
