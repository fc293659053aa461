//! A load client for `benches/serve.sh` (not part of the `recart` CLI):
//! clicks recovery links of `recart serve` — `GET /r/{token}`, each answer
//! a 302 and a click written to the store — from a few threads with
//! keep-alive connections, and prints requests per second and latency
//! percentiles. Bounded in count and in time; loopback addresses only.
//!
//! ```text
//! cargo run --release --example serve_load -- --url http://127.0.0.1:8080 \
//!     --key KEY --carts 1000 --requests 20000 --seconds 30 --threads 4
//! ```
//!
//! The tokens are signed here with the shop's key, for carts `F-00000`…
//! with addresses `f00000@example.com`… (as `benches/serve.sh` imports
//! them), step `1h`, valid a year.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use recart::token::{Claims, Signer};

struct Args {
    url: String,
    key: String,
    carts: u64,
    requests: u64,
    seconds: u64,
    threads: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: String::new(),
        key: String::new(),
        carts: 1000,
        requests: 20_000,
        seconds: 30,
        threads: 4,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let value = given.next().ok_or(format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag} {value:?}"))
        };
        match flag.as_str() {
            "--url" => args.url = value.trim_end_matches('/').to_string(),
            "--key" => args.key.clone_from(&value),
            "--carts" => args.carts = number()?.max(1),
            "--requests" => args.requests = number()?,
            "--seconds" => args.seconds = number()?,
            "--threads" => args.threads = number()?.max(1),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    let host = url::Url::parse(&args.url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_string))
        .ok_or("--url: an http URL like http://127.0.0.1:8080")?;
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(format!("--url: {host} is not a loopback address"));
    }
    if args.key.is_empty() {
        return Err("--key is required".into());
    }
    Ok(args)
}

fn main() {
    let args = parse_args().unwrap_or_else(|error| {
        eprintln!("serve_load: {error}");
        std::process::exit(2);
    });
    let signer = Signer::new(args.key.as_bytes());
    let expires = Utc::now() + TimeDelta::days(365);
    let paths: Arc<Vec<String>> = Arc::new(
        (0..args.carts)
            .map(|i| {
                let token = signer.sign(&Claims {
                    cart_id: format!("F-{i:05}"),
                    email: format!("f{i:05}@example.com"),
                    step: "1h".into(),
                    expires,
                });
                format!("{}/r/{token}", args.url)
            })
            .collect(),
    );
    let issued = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..args.threads)
        .map(|_| {
            let (paths, issued) = (Arc::clone(&paths), Arc::clone(&issued));
            let requests = args.requests;
            thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .max_redirects(0)
                    .timeout_global(Some(Duration::from_secs(10)))
                    .build()
                    .into();
                let mut latencies = Vec::new();
                let mut other = 0u64;
                loop {
                    let n = issued.fetch_add(1, Ordering::Relaxed);
                    if n >= requests || Instant::now() > deadline {
                        break;
                    }
                    let path = &paths[usize::try_from(n % paths.len() as u64).unwrap_or(0)];
                    let sent = Instant::now();
                    let status = agent.get(path).call().map(|r| r.status().as_u16());
                    latencies.push(sent.elapsed());
                    if !matches!(status, Ok(302)) {
                        other += 1;
                    }
                }
                (latencies, other)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut other = 0;
    for worker in workers {
        let (mine, failed) = worker.join().expect("a load thread panicked");
        latencies.extend(mine);
        other += failed;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    // The latency below which `per_mille` of the requests were answered, in ms.
    let at = |per_mille: usize| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let index = (latencies.len() - 1) * per_mille / 1000;
        latencies[index].as_secs_f64() * 1000.0
    };
    let count = latencies.len();
    println!(
        "requests {count}, not 302: {other}, threads {}, {elapsed:.2} s, {:.0} redirects/s, \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        args.threads,
        count as f64 / elapsed,
        at(500),
        at(990),
        at(1000)
    );
    if other > 0 {
        std::process::exit(1);
    }
}
