//! A shop's PostgreSQL database as a source (see [`super::database`]).
//! `:since` becomes the watermark as a literal, `:cart_ids` the batch's
//! ids as one array parameter: `WHERE order_id = ANY(:cart_ids)`.
//!
//! One session, read-only (`default_transaction_read_only`), in one
//! REPEATABLE READ read-only transaction: the carts are read through a
//! portal a batch at a time, and each batch's items queried between.

use postgres::types::Type;
use postgres::{Client, IsolationLevel, Row};

use crate::db_url::PostgresUrl;
use crate::error::Result;

use super::database::{
    BATCH, Cell, DatabaseSource, Feed, Since, at_most_one_row, probe_columns, with_since,
};

/// Opens a read-only session with the statement time limit, in UTC.
pub(super) fn connect(source: &DatabaseSource, url: &str) -> std::result::Result<Client, String> {
    let mut url = PostgresUrl::parse(url)?;
    if let Some(password) = source.password()? {
        url.config.password(password);
    }
    url.config.connect_timeout(source.timeout);
    let mut client = url.connect()?;
    client
        .batch_execute(&format!(
            "SET default_transaction_read_only = on; SET statement_timeout = {}; \
             SET TIME ZONE 'UTC'",
            source.timeout.as_millis()
        ))
        .map_err(|error| error.to_string())?;
    Ok(client)
}

pub(super) fn run(
    source: &DatabaseSource,
    url: &str,
    since: &Since,
    feed: &mut Feed,
) -> Result<()> {
    let mut client = connect(source, url).map_err(|error| feed.fail("connect", error))?;
    let mut transaction = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(|error| feed.fail("connect", error))?;
    let carts = transaction
        .prepare(&with_since(
            &source.carts_query,
            since.carts.as_ref(),
            false,
        ))
        .map_err(|error| feed.fail("carts_query", db_error(&error)))?;
    feed.carts_columns(&names(carts.columns()))?;
    let items = transaction
        .prepare(&source.items_query.replace(":cart_ids", "$1"))
        .map_err(|error| feed.fail("items_query", db_error(&error)))?;
    feed.items_columns(&names(items.columns()), true)?;
    let id_type = items.params().first().cloned().unwrap_or(Type::TEXT_ARRAY);
    let portal = transaction
        .bind(&carts, &[])
        .map_err(|error| feed.fail("carts_query", db_error(&error)))?;
    loop {
        let rows = transaction
            .query_portal(&portal, i32::try_from(BATCH).unwrap_or(i32::MAX))
            .map_err(|error| feed.fail("carts_query", db_error(&error)))?;
        if rows.is_empty() {
            break;
        }
        let batch: Vec<Vec<Cell>> = rows.iter().map(cells).collect();
        let ids = feed
            .cart_id_column()
            .map(|column| {
                batch
                    .iter()
                    .map(|cart| cart[column].clone())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let item_rows = match &id_type {
            kind if *kind == Type::INT4_ARRAY => {
                let ids: Vec<i32> = ids
                    .iter()
                    .filter_map(|id| int(id).and_then(|n| i32::try_from(n).ok()))
                    .collect();
                transaction.query(&items, &[&ids])
            }
            kind if *kind == Type::INT8_ARRAY => {
                let ids: Vec<i64> = ids.iter().filter_map(int).collect();
                transaction.query(&items, &[&ids])
            }
            _ => {
                let ids: Vec<String> = ids.iter().map(text).collect();
                transaction.query(&items, &[&ids])
            }
        }
        .map_err(|error| feed.fail("items_query", db_error(&error)))?;
        let lines: Vec<Vec<Cell>> = item_rows.iter().map(cells).collect();
        if !feed.carts(&batch, &lines) {
            return Ok(());
        }
    }
    feed.carts_done();
    if let Some(query) = &source.orders_query {
        let orders = transaction
            .prepare(&with_since(query, since.orders.as_ref(), false))
            .map_err(|error| feed.fail("orders_query", db_error(&error)))?;
        feed.orders_columns(&names(orders.columns()))?;
        let portal = transaction
            .bind(&orders, &[])
            .map_err(|error| feed.fail("orders_query", db_error(&error)))?;
        loop {
            let rows = transaction
                .query_portal(&portal, i32::try_from(BATCH).unwrap_or(i32::MAX))
                .map_err(|error| feed.fail("orders_query", db_error(&error)))?;
            if rows.is_empty() || !feed.orders(&rows.iter().map(cells).collect::<Vec<_>>()) {
                break;
            }
        }
    }
    Ok(())
}

/// Runs each of `queries` once, wrapped to return at most one row
/// (`recart check`); `:cart_ids` is an empty array of the column's type.
pub(super) fn probe(
    source: &DatabaseSource,
    url: &str,
    queries: &[(&'static str, &str)],
) -> std::result::Result<(), (&'static str, String)> {
    let mut client = connect(source, url).map_err(|error| ("connect", error))?;
    let mut transaction = client
        .build_transaction()
        .read_only(true)
        .start()
        .map_err(|error| ("connect", db_error(&error)))?;
    for &(name, query) in queries {
        let query = at_most_one_row(&with_since(query, None, false).replace(":cart_ids", "$1"));
        let statement = transaction
            .prepare(&query)
            .map_err(|error| (name, db_error(&error)))?;
        let result = match statement.params().first() {
            None => transaction.query(&statement, &[]),
            Some(kind) if *kind == Type::INT4_ARRAY => {
                transaction.query(&statement, &[&Vec::<i32>::new()])
            }
            Some(kind) if *kind == Type::INT8_ARRAY => {
                transaction.query(&statement, &[&Vec::<i64>::new()])
            }
            Some(_) => transaction.query(&statement, &[&Vec::<String>::new()]),
        };
        result.map_err(|error| (name, db_error(&error)))?;
        probe_columns(name, &names(statement.columns()), true).map_err(|error| (name, error))?;
    }
    Ok(())
}

/// The server's own words, when it said something.
pub(super) fn db_error(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => error.to_string(),
    }
}

fn int(cell: &Cell) -> Option<i64> {
    match cell {
        Cell::Int(number) => Some(*number),
        Cell::Text(bytes) => std::str::from_utf8(bytes).ok()?.trim().parse().ok(),
        _ => None,
    }
}

fn text(cell: &Cell) -> String {
    match cell {
        Cell::Int(number) => number.to_string(),
        Cell::Text(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    }
}

fn names(columns: &[postgres::Column]) -> Vec<String> {
    columns
        .iter()
        .map(|column| column.name().to_string())
        .collect()
}

fn cells(row: &Row) -> Vec<Cell> {
    (0..row.len()).map(|index| cell(row, index)).collect()
}

/// A value as its column typed it: NUMERIC exact, `timestamp` zoneless,
/// `timestamptz` as given; other types as their text.
fn cell(row: &Row, index: usize) -> Cell {
    let kind = row.columns()[index].type_().clone();
    let got = match kind {
        Type::INT2 => row
            .try_get::<_, Option<i16>>(index)
            .map(|v| v.map(|n| Cell::Int(n.into()))),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(index)
            .map(|v| v.map(|n| Cell::Int(n.into()))),
        Type::INT8 => row
            .try_get::<_, Option<i64>>(index)
            .map(|v| v.map(Cell::Int)),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(index)
            .map(|v| v.map(|b| Cell::Int(i64::from(b)))),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(index)
            .map(|v| v.map(|n| Cell::Float(n.into()))),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(index)
            .map(|v| v.map(Cell::Float)),
        Type::NUMERIC => row
            .try_get::<_, Option<rust_decimal::Decimal>>(index)
            .map(|v| v.map(|n| Cell::Decimal(n.to_string()))),
        Type::TIMESTAMP => row
            .try_get::<_, Option<chrono::NaiveDateTime>>(index)
            .map(|v| v.map(Cell::Naive)),
        Type::TIMESTAMPTZ => row
            .try_get::<_, Option<chrono::DateTime<chrono::Utc>>>(index)
            .map(|v| v.map(Cell::At)),
        Type::DATE => row
            .try_get::<_, Option<chrono::NaiveDate>>(index)
            .map(|v| v.map(|d| Cell::Naive(d.and_time(chrono::NaiveTime::MIN)))),
        _ => row
            .try_get::<_, Option<String>>(index)
            .map(|v| v.map(|s| Cell::Text(s.into_bytes()))),
    };
    got.ok().flatten().unwrap_or(Cell::Null)
}
