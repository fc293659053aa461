//! recart: wins back abandoned shopping carts by e-mail.
//!
//! One-way pipeline: [`ingest`] → [`store`] → [`plan`] → [`compose`] →
//! [`render`] → [`deliver`]. [`command`] holds one file per subcommand,
//! which wires the stages; `main.rs` only parses arguments, reads the clock,
//! calls [`command::execute`] and maps errors to exit codes.

pub mod bounces;
pub mod cli;
pub mod command;
pub mod compose;
pub mod config;
pub mod coupon;
pub mod db_url;
pub mod decision;
pub mod deliver;
pub mod error;
pub mod ingest;
pub mod init;
pub mod model;
pub mod output;
pub mod plan;
pub mod render;
pub mod report;
pub mod serve;
pub mod store;
pub mod token;

pub use error::{Completion, Error, Result};
