//! recart: wins back abandoned shopping carts by e-mail.
//!
//! One-way pipeline: [`ingest`] → [`store`] → [`plan`] → [`render`] → [`deliver`].
//! [`app`] wires the stages into the commands; `main.rs` only parses
//! arguments, calls [`app`] and maps errors to exit codes.

pub mod app;
pub mod cli;
pub mod config;
pub mod coupon;
pub mod deliver;
pub mod error;
pub mod ingest;
pub mod init;
pub mod model;
pub mod output;
pub mod plan;
pub mod render;
pub mod report;
pub mod store;
pub mod token;

pub use error::{Error, Result};
