//! CSV ingest as `--format auto`: any bytes, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use recart::ingest::{Format, Options, parse_bytes};

fuzz_target!(|data: &[u8]| {
    let mut options = Options::format(Format::Auto);
    // Small batches, so "not together" and batch hand-over are reached.
    options.batch = 3;
    let _ = parse_bytes(data, &options);
});
