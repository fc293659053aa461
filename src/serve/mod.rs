//! `recart serve`: a small HTTP server for the links the mails carry —
//! one-click unsubscribe (RFC 8058) at `/u/{token}`, recovery redirects at
//! `/r/{token}` (each click recorded), `/healthz` — over the same store
//! as the runs, meant to sit behind the shop's reverse proxy.
//!
//! One event-loop thread (tokio's current-thread runtime) takes the
//! connections; the store work of each request runs on tokio's blocking
//! threads ([`pool`]), so a write waiting for a run's transaction does not
//! hold up the others. This thread also owns the output: handlers send
//! their log lines to it.

mod pages;
mod pool;
mod routes;

use std::future::IntoFuture;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::error::{Completion, Error, Result};
use crate::output::Output;
use crate::token::Signer;

pub use pages::mask_email;
pub use routes::{REASON, cart_location};

/// The time a request is answered at: the clock `main.rs` hands over, or
/// a fixed time (tests).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// Serves until SIGTERM or SIGINT, then finishes the requests under way.
pub fn serve(
    config: &Config,
    signer: Signer,
    listen: &str,
    clock: Clock,
    out: &mut Output,
) -> Result<Completion> {
    let shop = pages::Shop {
        name: config.shop_name.clone(),
        url: config.links.home.clone(),
    };
    let pages = pages::Pages::load(&config.templates_dir, shop)?;
    let pool = pool::Pool::open(config)?;
    let (log, logs) = mpsc::unbounded_channel();
    let app = Arc::new(routes::App {
        pool,
        signer,
        pages,
        cart_url: config.links.cart.clone().unwrap_or_default(),
        utm: config.links.utm.clone(),
        clock,
        log,
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::io("the server's runtime", source))?;
    runtime.block_on(run(app, listen, logs, out))
}

async fn run(
    app: Arc<routes::App>,
    listen: &str,
    mut logs: mpsc::UnboundedReceiver<routes::Log>,
    out: &mut Output,
) -> Result<Completion> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| listen_error(listen, source))?;
    let address = listener
        .local_addr()
        .map_err(|source| listen_error(listen, source))?;
    // Before the address is announced: a SIGTERM right after it is a
    // graceful stop, not the default death.
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|source| Error::io("the SIGTERM handler", source))?;
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|source| Error::io("the SIGINT handler", source))?;
    let stopped = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    };
    out.data(&format!("listening on http://{address}"));
    out.flush();
    let server = axum::serve(listener, routes::router(app)).with_graceful_shutdown(stopped);
    let mut server = tokio::spawn(server.into_future());
    let served = loop {
        tokio::select! {
            Some(entry) = logs.recv() => write_log(out, entry),
            served = &mut server => break served,
        }
    };
    while let Ok(entry) = logs.try_recv() {
        write_log(out, entry);
    }
    match served {
        Ok(Ok(())) => {
            out.log("recart serve: stopped");
            Ok(Completion::Done)
        }
        Ok(Err(source)) => Err(listen_error(listen, source)),
        Err(panic) => std::panic::resume_unwind(panic.into_panic()),
    }
}

fn listen_error(listen: &str, source: std::io::Error) -> Error {
    if source.kind() == std::io::ErrorKind::InvalidInput {
        Error::Usage(format!("--listen {listen}: {source}"))
    } else {
        Error::io(format!("--listen {listen}"), source)
    }
}

fn write_log(out: &mut Output, entry: routes::Log) {
    match entry {
        routes::Log::Access {
            method,
            path,
            status,
            elapsed,
        } => {
            let ms = elapsed.as_secs_f64() * 1000.0;
            out.summary(
                &format!("{method} {path} {status} {ms:.1}ms"),
                serde_json::json!({
                    "method": method.as_str(),
                    "path": path,
                    "status": status,
                    "ms": ms,
                }),
            );
        }
        routes::Log::Error(message) => out.error(&format!("recart serve: {message}")),
    }
}
