//! A shop's MySQL or MariaDB database as a source (see
//! [`super::database`]). `:since` becomes the watermark as a literal,
//! `:cart_ids` the batch's ids as a list: `WHERE quote_id IN (:cart_ids)`.
//!
//! Two sessions, both read-only and REPEATABLE READ, each in one
//! transaction started `WITH CONSISTENT SNAPSHOT`: one streams the carts
//! on a thread of its own, a batch ahead (MySQL cannot run a query while
//! another's rows are being read on the same session), the other reads a
//! batch's items and then the orders.
//! Sessions are in UTC, so `TIMESTAMP` columns arrive in UTC; `DATETIME`
//! is read in the source's `timezone`.

use mysql::consts::ColumnType;
use mysql::prelude::Queryable as _;
use mysql::{Conn, Opts, OptsBuilder, Row, SslOpts, Value};

use crate::db_url::{cannot_connect, take_query_options};
use crate::error::Result;

use super::database::{
    BATCH, Cell, DatabaseSource, Feed, Since, at_most_one_row, probe_columns, with_since,
};

/// The URL's options, refusing a password in it. TLS as MySQL's own
/// `ssl-mode` asks: `REQUIRED`, `VERIFY_CA` and `VERIFY_IDENTITY` all
/// check the server's certificate and name, against Mozilla's roots and
/// the CA file `ssl-ca` (`DISABLED`, `PREFERRED` or none: plain).
pub fn options(url: &str) -> std::result::Result<Opts, String> {
    let (rest, [mode, ca]) = take_query_options(url, ["ssl-mode", "ssl-ca"]);
    let opts =
        Opts::from_url(&rest).map_err(|error| format!("{url:?} is not a MySQL URL: {error}"))?;
    if opts.get_pass().is_some() {
        return Err("holds a password: give it in password_env or password_file".into());
    }
    match mode.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("DISABLED" | "PREFERRED") => match ca {
            Some(_) => Err("ssl-ca is for TLS: add ssl-mode=VERIFY_IDENTITY".into()),
            None => Ok(opts),
        },
        Some("REQUIRED" | "VERIFY_CA" | "VERIFY_IDENTITY") => {
            let mut tls = SslOpts::default();
            if let Some(ca) = ca {
                let text = std::fs::read_to_string(&ca)
                    .map_err(|error| format!("ssl-ca {ca}: {error}"))?;
                if !text.contains("-----BEGIN CERTIFICATE-----") {
                    return Err(format!("ssl-ca {ca}: holds no PEM certificate"));
                }
                tls = tls.with_root_cert_path(Some(std::path::PathBuf::from(ca)));
            }
            Ok(OptsBuilder::from_opts(opts).ssl_opts(tls).into())
        }
        Some(_) => Err(format!(
            "ssl-mode={} is not one of DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY",
            mode.unwrap_or_default()
        )),
    }
}

/// Opens a session: read-only, REPEATABLE READ, UTC, the statement time
/// limit, in a consistent-snapshot transaction.
pub(super) fn connect(source: &DatabaseSource, url: &str) -> std::result::Result<Conn, String> {
    let password = source.password()?;
    let opts = options(url)?;
    let tls = opts.get_ssl_opts().is_some();
    let opts = OptsBuilder::from_opts(opts)
        .pass(password)
        .tcp_connect_timeout(Some(source.timeout));
    let mut conn =
        Conn::new(opts).map_err(|error| cannot_connect(&said(&error), tls.then_some("ssl-ca")))?;
    let version: String = conn
        .query_first("SELECT VERSION()")
        .map_err(|error| said(&error))?
        .unwrap_or_default();
    let mariadb = version.contains("MariaDB");
    let timeout = if mariadb {
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
            .map_err(|error| format!("{statement}: {}", said(&error)))?;
    }
    if mariadb {
        // A batch's long `IN` list is then read as ranges of the index,
        // not turned into a temporary table joined and sorted (about a
        // fifth less of the server's time). MariaDB before 10.3.18 has no
        // such setting, and nothing to turn off.
        let _ = conn.query_drop("SET SESSION in_predicate_conversion_threshold = 0");
    }
    Ok(conn)
}

/// What the carts' reader hands on: their columns first, then batches.
enum Carts {
    Columns(Vec<String>),
    Batch(Vec<Vec<Cell>>),
    Failed(String),
}

/// What the items' reader hands on: the carts' and the items' columns,
/// then each batch of carts with its items.
enum Read {
    CartsColumns(Vec<String>),
    ItemsColumns(Vec<String>),
    Batch(Vec<Vec<Cell>>, Vec<Vec<Cell>>),
    Failed(&'static str, String),
}

pub(super) fn run(
    source: &DatabaseSource,
    url: &str,
    since: &Since,
    feed: &mut Feed,
) -> Result<()> {
    let carts_session = connect(source, url).map_err(|error| feed.fail("connect", error))?;
    let items_session = connect(source, url).map_err(|error| feed.fail("connect", error))?;
    let carts_query = with_since(&source.carts_query, since.carts.as_ref(), true);
    // Three stages, each on its thread: the carts are read a batch ahead,
    // the items of a batch are read while the batch before is turned into
    // rows here; so the server works on both queries while recart works.
    let items_session = std::thread::scope(|scope| {
        let (batches, carts) = std::sync::mpsc::sync_channel(1);
        let (read, received) = std::sync::mpsc::sync_channel(1);
        let carts_connection = carts_session.connection_id();
        scope.spawn(move || read_carts(carts_session, &carts_query, &batches));
        let items = scope.spawn(move || {
            read_items(
                items_session,
                (&source.items_query, carts_connection),
                &carts,
                &read,
            )
        });
        for message in received {
            match message {
                Read::CartsColumns(names) => feed.carts_columns(&names)?,
                Read::ItemsColumns(names) => feed.items_columns(&names, true)?,
                Read::Failed(query, error) => return Err(feed.fail(query, error)),
                Read::Batch(carts, items) => {
                    if !feed.carts(&carts, &items) {
                        return Ok(None);
                    }
                }
            }
        }
        feed.carts_done();
        Ok(items.join().ok())
    })?;
    // None: the read was stopped.
    let Some(mut items_session) = items_session else {
        return Ok(());
    };
    if let Some(query) = &source.orders_query {
        let query = with_since(query, since.orders.as_ref(), true);
        let orders = items_session
            .exec_iter(query.as_str(), ())
            .map_err(|error| feed.fail("orders_query", said(&error)))?;
        feed.orders_columns(&names(orders.columns().as_ref()))?;
        let orders_types = types(orders.columns().as_ref());
        let mut batch = Vec::with_capacity(BATCH);
        for row in orders {
            batch.push(cells(
                row.map_err(|error| feed.fail("orders_query", said(&error)))?,
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

/// Streams `query`'s carts to `batches`, [`BATCH`] at a time; stops when
/// the receiver has gone (the read was stopped or failed).
fn read_carts(mut session: Conn, query: &str, batches: &std::sync::mpsc::SyncSender<Carts>) {
    let mut carts = match session.exec_iter(query, ()) {
        Ok(carts) => carts,
        Err(error) => {
            let _ = batches.send(Carts::Failed(said(&error)));
            return;
        }
    };
    let carts_types = types(carts.columns().as_ref());
    if batches
        .send(Carts::Columns(names(carts.columns().as_ref())))
        .is_err()
    {
        return;
    }
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let row = match carts.next().transpose() {
            Ok(row) => row,
            Err(error) => {
                let _ = batches.send(Carts::Failed(said(&error)));
                return;
            }
        };
        let done = row.is_none();
        if let Some(row) = row {
            batch.push(cells(row, &carts_types));
        }
        if (done && !batch.is_empty()) || batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if batches.send(Carts::Batch(full)).is_err() {
                return;
            }
        }
        if done {
            return;
        }
    }
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
        let query = at_most_one_row(&with_since(query, None, true).replace(":cart_ids", "NULL"));
        let result = session
            .exec_iter(query.as_str(), ())
            .map_err(|error| (name, said(&error)))?;
        let columns = names(result.columns().as_ref());
        for row in result {
            row.map_err(|error| (name, said(&error)))?;
        }
        probe_columns(name, &columns, true).map_err(|error| (name, error))?;
    }
    Ok(())
}

/// Reads the items of each batch of carts from `carts`, in one query a
/// batch, and hands both on to `read`. Returns the session, for the
/// orders. If the read ends before the carts do (stopped, or failed), the
/// carts' query (on connection `carts_connection`) is killed: its session
/// would otherwise read the rest of its rows before closing.
fn read_items(
    mut session: Conn,
    (query, carts_connection): (&str, u32),
    carts: &std::sync::mpsc::Receiver<Carts>,
    read: &std::sync::mpsc::SyncSender<Read>,
) -> Conn {
    let mut id_column = None;
    let mut items_known = false;
    let ended_early = 'read: {
        for message in carts {
            let message = match message {
                Carts::Columns(names) => {
                    id_column = names.iter().position(|name| name == "cart_id");
                    Read::CartsColumns(names)
                }
                Carts::Failed(error) => Read::Failed("carts_query", error),
                Carts::Batch(batch) => {
                    match id_column.map(|column| items_of(query, column, &batch, &mut session)) {
                        None => Read::Batch(batch, Vec::new()),
                        Some(Ok((names, items))) => {
                            if !items_known {
                                items_known = true;
                                if read.send(Read::ItemsColumns(names)).is_err() {
                                    break 'read true;
                                }
                            }
                            Read::Batch(batch, items)
                        }
                        Some(Err(error)) => Read::Failed("items_query", error),
                    }
                }
            };
            let failed = matches!(message, Read::Failed(..));
            if read.send(message).is_err() || failed {
                break 'read true;
            }
        }
        false
    };
    if ended_early {
        // Best effort: without the right to, the rows are read out.
        let _ = session.query_drop(format!("KILL QUERY {carts_connection}"));
    }
    session
}

/// The items of a batch of carts, in one query, and the query's columns.
fn items_of(
    query: &str,
    id_column: usize,
    carts: &[Vec<Cell>],
    session: &mut Conn,
) -> std::result::Result<(Vec<String>, Vec<Vec<Cell>>), String> {
    let ids: Vec<String> = carts.iter().map(|cart| cart[id_column].literal()).collect();
    let query = query.replace(":cart_ids", &ids.join(","));
    let result = session
        .exec_iter(query.as_str(), ())
        .map_err(|error| said(&error))?;
    let names = names(result.columns().as_ref());
    let types = types(result.columns().as_ref());
    let items = result
        .map(|row| {
            row.map(|row| cells(row, &types))
                .map_err(|error| said(&error))
        })
        .collect::<std::result::Result<_, _>>()?;
    Ok((names, items))
}

/// The error in the server's or the system's own words, without the
/// driver's wrapping (`MySqlError { ERROR 1054 (42S22): … }`).
fn said(error: &mysql::Error) -> String {
    match error {
        mysql::Error::MySqlError(error) => error.to_string(),
        mysql::Error::IoError(error) => error.to_string(),
        mysql::Error::DriverError(error) => error.to_string(),
        mysql::Error::UrlError(error) => error.to_string(),
        mysql::Error::TlsError(error) => format!("TLS: {error}"),
        other => other.to_string(),
    }
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

#[cfg(test)]
mod tests {
    use super::options;

    #[test]
    fn ssl_mode_decides_tls_and_the_driver_sees_neither_option() {
        let plain = options("mysql://u@h:3306/db?ssl-mode=PREFERRED").unwrap();
        assert!(plain.get_ssl_opts().is_none());
        let tls = options("mysql://u@h:3306/db?ssl-mode=verify_identity").unwrap();
        assert!(tls.get_ssl_opts().is_some());
        assert_eq!(tls.get_db_name(), Some("db"));
        let error = options("mysql://u@h/db?ssl-mode=SOMETIMES").unwrap_err();
        assert!(
            error.starts_with("ssl-mode=SOMETIMES is not one of"),
            "{error}"
        );
        let error = options("mysql://u@h/db?ssl-ca=/ca.pem").unwrap_err();
        assert!(error.contains("add ssl-mode=VERIFY_IDENTITY"), "{error}");
        let error =
            options("mysql://u@h/db?ssl-mode=REQUIRED&ssl-ca=/nonexistent.pem").unwrap_err();
        assert!(error.starts_with("ssl-ca /nonexistent.pem: "), "{error}");
    }
}
