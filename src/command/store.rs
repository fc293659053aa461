//! `recart store copy --to TARGET`: the configured store, copied row for
//! row into an empty PostgreSQL database or `SQLite` file (moving a store
//! from one engine to the other). The work is the store's
//! (`Store::copy_into`); this opens both ends and prints the counts.

use std::path::Path;

use super::Context;
use crate::cli::StoreAction;
use crate::error::{Completion, Error, Result};
use crate::store::Store;

pub fn execute(action: StoreAction, ctx: &mut Context<'_>) -> Result<Completion> {
    match action {
        StoreAction::Copy { to, password_env } => copy(&to, password_env.as_deref(), ctx),
    }
}

fn copy(to: &str, password_env: Option<&str>, ctx: &mut Context<'_>) -> Result<Completion> {
    let config = ctx.config()?;
    let target = open_target(to, password_env)?;
    let source = Store::open_configured(&config)?;
    let copied = source.copy_into(&target)?;
    for table in &copied {
        ctx.out.data(&format!("{}: {}", table.table, table.rows));
    }
    ctx.out.log(&format!(
        "copied {} into {}",
        source.path().display(),
        target.path().display()
    ));
    Ok(Completion::Done)
}

/// The target: a PostgreSQL database by URL (its password from the
/// variable `password_env` names, never from the command line), else a
/// `SQLite` file.
fn open_target(to: &str, password_env: Option<&str>) -> Result<Store> {
    if to.starts_with("postgres://") || to.starts_with("postgresql://") {
        // The URL is not echoed: it may hold a password.
        let options: postgres::Config = to.parse().map_err(|error| {
            Error::Usage(format!("store copy --to: not a PostgreSQL URL: {error}"))
        })?;
        if options.get_password().is_some() {
            return Err(Error::Usage(
                "store copy --to: the URL holds a password: give it in the variable \
                 --password-env names instead"
                    .into(),
            ));
        }
        if let Some(name) = password_env
            && std::env::var_os(name).is_none()
        {
            return Err(Error::Usage(format!(
                "store copy --password-env: the variable {name} is not set"
            )));
        }
        return crate::store::postgres::open_url(to, password_env);
    }
    if to.contains("://") {
        return Err(Error::Usage(
            "store copy --to: expected postgres://user@host/db or a SQLite file's path".into(),
        ));
    }
    if password_env.is_some() {
        return Err(Error::Usage(
            "store copy --password-env: only for a postgres:// target".into(),
        ));
    }
    Store::open(Path::new(to))
}
