//! A shop's MySQL or MariaDB database as a source (see
//! [`super::database`]). `:since` becomes the watermark as a literal,
//! `:cart_ids` the batch's ids as a list: `WHERE quote_id IN (:cart_ids)`.
//!
//! Two sessions, both read-only and REPEATABLE READ, each in one
//! transaction started `WITH CONSISTENT SNAPSHOT`: one streams the carts
//! (MySQL cannot run a query while another's rows are being read on the
//! same session), the other reads a batch's items and then the orders.
//! Sessions are in UTC, so `TIMESTAMP` columns arrive in UTC; `DATETIME`
//! is read in the source's `timezone`.

use mysql::consts::ColumnType;
use mysql::prelude::Queryable as _;
use mysql::{Conn, Opts, OptsBuilder, Row, Value};

use crate::error::Result;

use super::database::{
    BATCH, Cell, DatabaseSource, Feed, Since, at_most_one_row, probe_columns, with_since,
};

/// The URL's options, refusing a password in it.
pub fn options(url: &str) -> std::result::Result<Opts, String> {
    let opts =
        Opts::from_url(url).map_err(|error| format!("{url:?} is not a MySQL URL: {error}"))?;
    if opts.get_pass().is_some() {
        return Err("holds a password: give it in password_env or password_file".into());
    }
    Ok(opts)
}

/// Opens a session: read-only, REPEATABLE READ, UTC, the statement time
/// limit, in a consistent-snapshot transaction.
pub(super) fn connect(source: &DatabaseSource, url: &str) -> std::result::Result<Conn, String> {
    let password = source.password()?;
    let opts = OptsBuilder::from_opts(options(url)?)
        .pass(password)
        .tcp_connect_timeout(Some(source.timeout));
    let mut conn = Conn::new(opts).map_err(|error| format!("cannot connect: {error}"))?;
    let version: String = conn
        .query_first("SELECT VERSION()")
        .map_err(|error| error.to_string())?
        .unwrap_or_default();
    let timeout = if version.contains("MariaDB") {
        format!(
            "SET SESSION max_statement_time = {}",
            source.timeout.as_secs_f64()
        )
    } else {
        format!(
            "SET SESSION max_execution_time = {}",
            source.timeout.as_millis()
        )
    };
    for statement in [
        "SET SESSION time_zone = '+00:00'",
        &timeout,
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        "SET SESSION TRANSACTION READ ONLY",
        "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
    ] {
        conn.query_drop(statement)
            .map_err(|error| format!("{statement}: {error}"))?;
    }
    Ok(conn)
}

pub(super) fn run(
    source: &DatabaseSource,
    url: &str,
    since: &Since,
    feed: &mut Feed,
) -> Result<()> {
    let mut carts_session = connect(source, url).map_err(|error| feed.fail("connect", error))?;
    let mut items_session = connect(source, url).map_err(|error| feed.fail("connect", error))?;
    let carts_query = with_since(&source.carts_query, since.carts.as_ref(), true);
    let mut carts = carts_session
        .exec_iter(carts_query.as_str(), ())
        .map_err(|error| feed.fail("carts_query", error))?;
    feed.carts_columns(&names(carts.columns().as_ref()))?;
    let carts_types = types(carts.columns().as_ref());
    if !source.items_query.contains(":cart_ids") {
        return Err(feed.fail(
            "items_query",
            "has no :cart_ids (expected e.g. WHERE quote_id IN (:cart_ids))",
        ));
    }
    let mut batch = Vec::with_capacity(BATCH);
    let mut items_known = false;
    let mut next = || carts.next();
    loop {
        let row = next()
            .transpose()
            .map_err(|error| feed.fail("carts_query", error))?;
        if let Some(row) = row {
            batch.push(cells(row, &carts_types));
            if batch.len() < BATCH {
                continue;
            }
        }
        if batch.is_empty() {
            break;
        }
        let items = items_of(source, &batch, &mut items_session, feed, &mut items_known)?;
        if !feed.carts(&batch, &items) {
            return Ok(());
        }
        batch.clear();
    }
    feed.carts_done();
    if let Some(query) = &source.orders_query {
        let query = with_since(query, since.orders.as_ref(), true);
        let orders = items_session
            .exec_iter(query.as_str(), ())
            .map_err(|error| feed.fail("orders_query", error))?;
        feed.orders_columns(&names(orders.columns().as_ref()))?;
        let orders_types = types(orders.columns().as_ref());
        for row in orders {
            batch.push(cells(
                row.map_err(|error| feed.fail("orders_query", error))?,
                &orders_types,
            ));
            if batch.len() == BATCH {
                if !feed.orders(&batch) {
                    return Ok(());
                }
                batch.clear();
            }
        }
        feed.orders(&batch);
    }
    Ok(())
}

/// Runs each of `queries` once, wrapped to return at most one row
/// (`recart check`); `:cart_ids` is `NULL`, which matches nothing.
pub(super) fn probe(
    source: &DatabaseSource,
    url: &str,
    queries: &[(&'static str, &str)],
) -> std::result::Result<(), (&'static str, String)> {
    let mut session = connect(source, url).map_err(|error| ("connect", error))?;
    for &(name, query) in queries {
        if name == "items_query" && !query.contains(":cart_ids") {
            return Err((
                name,
                "has no :cart_ids (expected e.g. WHERE quote_id IN (:cart_ids))".into(),
            ));
        }
        let query = at_most_one_row(&with_since(query, None, true).replace(":cart_ids", "NULL"));
        let result = session
            .exec_iter(query.as_str(), ())
            .map_err(|error| (name, error.to_string()))?;
        let columns = names(result.columns().as_ref());
        for row in result {
            row.map_err(|error| (name, error.to_string()))?;
        }
        probe_columns(name, &columns, true).map_err(|error| (name, error))?;
    }
    Ok(())
}

/// The items of a batch of carts, in one query.
fn items_of(
    source: &DatabaseSource,
    carts: &[Vec<Cell>],
    session: &mut Conn,
    feed: &mut Feed,
    known: &mut bool,
) -> Result<Vec<Vec<Cell>>> {
    let Some(column) = feed.cart_id_column() else {
        return Ok(Vec::new());
    };
    let ids: Vec<String> = carts.iter().map(|cart| cart[column].literal()).collect();
    let query = source.items_query.replace(":cart_ids", &ids.join(","));
    let result = session
        .exec_iter(query.as_str(), ())
        .map_err(|error| feed.fail("items_query", error))?;
    if !*known {
        feed.items_columns(&names(result.columns().as_ref()), true)?;
        *known = true;
    }
    let types = types(result.columns().as_ref());
    result
        .map(|row| {
            row.map(|row| cells(row, &types))
                .map_err(|error| feed.fail("items_query", error))
        })
        .collect()
}

fn names(columns: &[mysql::Column]) -> Vec<String> {
    columns
        .iter()
        .map(|column| column.name_str().into_owned())
        .collect()
}

/// A row's values as cells; `types`: its columns' ([`types`]).
fn cells(row: Row, types: &[ColumnType]) -> Vec<Cell> {
    row.unwrap()
        .into_iter()
        .zip(types)
        .map(|(value, kind)| cell(value, *kind))
        .collect()
}

/// The columns' types, looked up once a result rather than once a row.
fn types(columns: &[mysql::Column]) -> Vec<ColumnType> {
    columns.iter().map(mysql::Column::column_type).collect()
}

/// A value as its column typed it: `DECIMAL` arrives as its digits
/// (exact), `DATETIME` zoneless, `TIMESTAMP` in the session's UTC.
fn cell(value: Value, kind: ColumnType) -> Cell {
    match value {
        Value::NULL => Cell::Null,
        Value::Bytes(bytes)
            if matches!(
                kind,
                ColumnType::MYSQL_TYPE_NEWDECIMAL | ColumnType::MYSQL_TYPE_DECIMAL
            ) =>
        {
            Cell::Decimal(String::from_utf8_lossy(&bytes).into_owned())
        }
        Value::Bytes(bytes) => Cell::Text(bytes),
        Value::Int(number) => Cell::Int(number),
        Value::UInt(number) => i64::try_from(number)
            .map_or_else(|_| Cell::Text(number.to_string().into_bytes()), Cell::Int),
        Value::Float(number) => Cell::Float(f64::from(number)),
        Value::Double(number) => Cell::Float(number),
        Value::Date(year, month, day, hour, minute, second, micros) => {
            let at = chrono::NaiveDate::from_ymd_opt(i32::from(year), month.into(), day.into())
                .and_then(|date| {
                    date.and_hms_micro_opt(hour.into(), minute.into(), second.into(), micros)
                });
            match at {
                // MySQL's zero date: no time at all.
                None => Cell::Null,
                Some(at) if kind == ColumnType::MYSQL_TYPE_TIMESTAMP => Cell::At(at.and_utc()),
                Some(at) => Cell::Naive(at),
            }
        }
        Value::Time(..) => Cell::Text(value.as_sql(true).trim_matches('\'').as_bytes().to_vec()),
    }
}
