//! recart's integration tests: one test binary (as in casey/just) that drives
//! the built `recart` binary against real `SQLite` stores in temporary
//! directories and a real SMTP server on the loopback interface.

// Shared helpers: not every test module uses every helper.
#[allow(dead_code)]
mod db_servers;
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
mod db_sources;
mod db_tls;
mod dkim;
mod engines;
mod faults;
mod first_hour;
mod hostile_files;
mod hostile_inputs;
mod hostile_mail;
mod import;
mod init;
mod operator;
mod policy;
mod privacy;
mod report_chart;
mod report_loop;
mod run;
mod sample_data;
mod serve;
mod smtp;
mod smtp_tls;
mod store_copy;
mod store_faults;
mod templates;
mod test_send;
mod workers;
