//! recart's integration tests: one test binary (as in casey/just) that drives
//! the built `recart` binary against real `SQLite` stores in temporary
//! directories and a real SMTP server on the loopback interface.

// Shared helpers: not every test module uses every helper.
#[allow(dead_code)]
mod fixtures;
#[allow(dead_code)]
mod harness;
#[allow(dead_code)]
mod http_server;
#[allow(dead_code)]
mod mime;
mod smtp_server;

mod bounces;
mod channels;
mod config;
mod coupons;
mod crash;
mod dkim;
mod faults;
mod hostile_files;
mod hostile_inputs;
mod hostile_mail;
mod import;
mod init;
mod operator;
mod privacy;
mod report_loop;
mod run;
mod sample_data;
mod smtp;
