//! Typed errors of the library. Each knows the exit code it stands for, so
//! the binary maps errors to exit codes in one place.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit codes of the user-facing contract.
pub mod exit {
    /// Everything was done.
    pub const OK: u8 = 0;
    /// An error: nothing, or not everything, was done.
    pub const ERROR: u8 = 1;
    /// A usage or configuration error.
    pub const USAGE: u8 = 2;
    /// Partial: some rows or mails failed, the rest was done.
    pub const PARTIAL: u8 = 3;
    /// Another run holds the store's run lock; nothing was done.
    pub const BUSY: u8 = 4;
    /// Stopped by SIGTERM, SIGINT or SIGHUP: the mails on the wire were
    /// finished and recorded, the rest stay due.
    pub const INTERRUPTED: u8 = 5;
    /// An earlier run had died: its claims were settled at this run's
    /// start (released, recorded from its journal, or `unknown`; the
    /// summary says how many), then the run did its work.
    pub const RECOVERED: u8 = 6;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),

    /// The configuration file is missing, malformed, or names bad values.
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },

    /// A template is missing or does not render.
    #[error("template {name}: {message}")]
    Template { name: String, message: String },

    /// One mail's template went over a bound (output size or work,
    /// `render::MAX_PART_BYTES` and `render::FUEL`): in a run, that mail
    /// fails and the run goes on.
    #[error("template {name}: {message}")]
    TemplateBound { name: String, message: String },

    /// A mail's address is outside the rule (`model::parse_email`): in a
    /// run, that mail fails and the run goes on.
    #[error("{0}")]
    Address(String),

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An input file is not what its format says (as a whole, not one row).
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },

    /// The store (`SQLite` or PostgreSQL) failed.
    #[error("store {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: crate::store::engine::DbError,
    },

    /// The store's schema could not be migrated.
    #[error("store {path}: migration failed: {message}")]
    Migration { path: PathBuf, message: String },

    /// The mail transport failed as a whole (not one message).
    #[error("{0}")]
    Transport(String),

    /// Another `recart run` is working on the same store.
    #[error("another recart run holds {lock}; nothing done (use --wait to wait for it)")]
    Busy { lock: PathBuf },

    /// A link token is malformed, forged or expired.
    #[error("{0}")]
    Token(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_)
            | Error::Config { .. }
            | Error::Template { .. }
            | Error::TemplateBound { .. } => exit::USAGE,
            Error::Io { .. }
            | Error::Input { .. }
            | Error::Store { .. }
            | Error::Migration { .. }
            | Error::Transport(_)
            | Error::Address(_)
            | Error::Token(_) => exit::ERROR,
            Error::Busy { .. } => exit::BUSY,
        }
    }

    pub fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Config {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// How a command ended when it did not fail outright, from the most
/// ordinary to what most needs a person (the order [`Completion::or`]
/// keeps the worst of).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Completion {
    /// Everything was done.
    #[default]
    Done,
    /// Some rows or mails failed; the rest was done.
    Partial,
    /// An earlier run had died and its claims were settled first.
    Recovered,
    /// A signal stopped the run; what was handed over is recorded.
    Interrupted,
}

impl Completion {
    pub fn exit_code(self) -> u8 {
        match self {
            Completion::Done => exit::OK,
            Completion::Partial => exit::PARTIAL,
            Completion::Recovered => exit::RECOVERED,
            Completion::Interrupted => exit::INTERRUPTED,
        }
    }

    /// The one that most needs a person.
    #[must_use]
    pub fn or(self, other: Completion) -> Completion {
        self.max(other)
    }
}
