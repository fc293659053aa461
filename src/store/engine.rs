//! The two engines behind the store: one `SQLite` file (the default), or a
//! PostgreSQL database shared by several hosts and workers.
//!
//! Store code writes each statement once, in the dialect both engines
//! read: `SQLite`'s numbered placeholders (`?1`), `ON CONFLICT … DO`,
//! `RETURNING`, and `IN rarray(?N)` for a list bound as one parameter. On
//! PostgreSQL the placeholders become `$N` and `IN rarray($N)` becomes
//! `= ANY($N)`, once per statement (prepared statements are cached). The
//! few statements that cannot be shared (pragmas, `VACUUM`, the bulk
//! load) ask [`Engine::is_postgres`].
//!
//! Integers are 64-bit on both (PostgreSQL columns are `BIGINT`); a value
//! PostgreSQL computes wider (`SUM` gives `NUMERIC`) or narrower is read
//! back as an `i64` all the same.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use rusqlite::types::{ToSqlOutput, Value, ValueRef};

/// A failed statement, in its engine's own words.
#[derive(Debug)]
pub enum DbError {
    Sqlite(rusqlite::Error),
    Postgres(postgres::Error),
    /// A value the store holds is not what the code reads it as.
    Value(String),
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Sqlite(error) => error.fmt(f),
            // The server's own message (and its detail), not "db error".
            DbError::Postgres(error) => match error.as_db_error() {
                Some(db) => write!(f, "{}: {}", db.severity(), db.message()),
                None => error.fmt(f),
            },
            DbError::Value(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DbError::Sqlite(error) => Some(error),
            DbError::Postgres(error) => Some(error),
            DbError::Value(_) => None,
        }
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(error: rusqlite::Error) -> DbError {
        DbError::Sqlite(error)
    }
}

impl From<postgres::Error> for DbError {
    fn from(error: postgres::Error) -> DbError {
        DbError::Postgres(error)
    }
}

impl DbError {
    /// Whether `SQLite` reported the store full (`SQLITE_FULL`).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, DbError::Sqlite(rusqlite::Error::SqliteFailure(error, _))
            if error.code == rusqlite::ErrorCode::DiskFull)
    }
}

pub type DbResult<T> = std::result::Result<T, DbError>;

/// A statement's parameter, bound the same way on either engine.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
    /// A list of keys: `IN rarray(?N)`.
    Texts(&'a [String]),
}

impl From<i64> for Arg<'_> {
    fn from(value: i64) -> Self {
        Arg::Int(value)
    }
}
impl From<i32> for Arg<'_> {
    fn from(value: i32) -> Self {
        Arg::Int(value.into())
    }
}
impl From<u32> for Arg<'_> {
    fn from(value: u32) -> Self {
        Arg::Int(value.into())
    }
}
impl From<bool> for Arg<'_> {
    fn from(value: bool) -> Self {
        Arg::Int(value.into())
    }
}
impl From<f64> for Arg<'_> {
    fn from(value: f64) -> Self {
        Arg::Real(value)
    }
}
impl<'a> From<&'a str> for Arg<'a> {
    fn from(value: &'a str) -> Self {
        Arg::Text(value)
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(value: &'a String) -> Self {
        Arg::Text(value)
    }
}
impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(value: &'a [u8]) -> Self {
        Arg::Blob(value)
    }
}
impl<'a> From<&'a Vec<u8>> for Arg<'a> {
    fn from(value: &'a Vec<u8>) -> Self {
        Arg::Blob(value)
    }
}
impl<'a> From<&'a [String]> for Arg<'a> {
    fn from(value: &'a [String]) -> Self {
        Arg::Texts(value)
    }
}
impl<'a> From<&'a Vec<String>> for Arg<'a> {
    fn from(value: &'a Vec<String>) -> Self {
        Arg::Texts(value)
    }
}
impl<'a, T> From<Option<T>> for Arg<'a>
where
    T: Into<Arg<'a>>,
{
    fn from(value: Option<T>) -> Self {
        value.map_or(Arg::Null, Into::into)
    }
}
impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(value: &'a Option<String>) -> Self {
        value.as_ref().map_or(Arg::Null, |text| Arg::Text(text))
    }
}
impl<'a> From<&'a Value> for Arg<'a> {
    fn from(value: &'a Value) -> Self {
        match value {
            Value::Null => Arg::Null,
            Value::Integer(int) => Arg::Int(*int),
            Value::Real(real) => Arg::Real(*real),
            Value::Text(text) => Arg::Text(text),
            Value::Blob(blob) => Arg::Blob(blob),
        }
    }
}

/// `&[Arg]` from a list of values: `args![id, step, 3]`.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        &[$($crate::store::engine::Arg::from($value)),*][..]
    };
}
pub(crate) use args;

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Arg::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Arg::Int(int) => ToSqlOutput::Borrowed(ValueRef::Integer(int)),
            Arg::Real(real) => ToSqlOutput::Borrowed(ValueRef::Real(real)),
            Arg::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Arg::Blob(blob) => ToSqlOutput::Borrowed(ValueRef::Blob(blob)),
            // The pointer type `rarray(?)` reads (rusqlite's `Array`).
            Arg::Texts(keys) => ToSqlOutput::from_rc(
                std::rc::Rc::new(keys.iter().cloned().map(Value::Text).collect::<Vec<_>>()),
                c"rarray",
            ),
        })
    }
}

impl postgres::types::ToSql for Arg<'_> {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::Type;
        match *self {
            Arg::Null => Ok(postgres::types::IsNull::Yes),
            Arg::Int(int) if *ty == Type::INT4 => i32::try_from(int)?.to_sql(ty, out),
            Arg::Int(int) if *ty == Type::INT2 => i16::try_from(int)?.to_sql(ty, out),
            Arg::Int(int) if *ty == Type::BOOL => (int != 0).to_sql(ty, out),
            Arg::Int(int) if *ty == Type::FLOAT8 =>
            {
                #[allow(clippy::cast_precision_loss, reason = "a count compared to a rate")]
                (int as f64).to_sql(ty, out)
            }
            Arg::Int(int) if *ty == Type::TEXT => int.to_string().to_sql(ty, out),
            Arg::Int(int) => int.to_sql(ty, out),
            Arg::Real(real) => real.to_sql(ty, out),
            Arg::Text(text) => text.to_sql(ty, out),
            Arg::Blob(blob) => blob.to_sql(ty, out),
            Arg::Texts(keys) => keys.to_sql(ty, out),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// One row of a result, from either engine.
pub enum Row<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Postgres(&'a postgres::Row),
}

impl Row<'_> {
    /// Column `index` as a `T`.
    pub fn get<T: Column>(&self, index: usize) -> DbResult<T> {
        match self {
            Row::Sqlite(row) => Ok(T::from_sqlite(row.get_ref(index)?).map_err(|error| {
                rusqlite::Error::FromSqlConversionFailure(
                    index,
                    row.get_ref(index)
                        .map_or(rusqlite::types::Type::Null, |value| value.data_type()),
                    Box::new(error),
                )
            })?),
            Row::Postgres(row) => T::from_postgres(row, index),
        }
    }
}

impl<'a> Row<'a> {
    /// Column `index` as text borrowed from the row, not copied: for hot
    /// reads whose text is only looked at (a step, an items array).
    pub fn text(&self, index: usize) -> DbResult<&'a str> {
        match *self {
            Row::Sqlite(row) => Ok(row.get_ref(index)?.as_str().map_err(|error| {
                rusqlite::Error::FromSqlConversionFailure(
                    index,
                    rusqlite::types::Type::Text,
                    Box::new(error),
                )
            })?),
            Row::Postgres(row) => Ok(row.try_get(index)?),
        }
    }
}

/// A Rust type a column reads as, on either engine.
pub trait Column: Sized {
    fn from_sqlite(value: ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self>;
    fn from_postgres(row: &postgres::Row, index: usize) -> DbResult<Self>;
}

/// An integer column of PostgreSQL, of whatever width it came.
fn postgres_int(row: &postgres::Row, index: usize) -> DbResult<Option<i64>> {
    use postgres::types::Type;
    let ty = row.columns()[index].type_().clone();
    Ok(if ty == Type::INT8 {
        row.try_get(index)?
    } else if ty == Type::INT4 {
        row.try_get::<_, Option<i32>>(index)?.map(i64::from)
    } else if ty == Type::INT2 {
        row.try_get::<_, Option<i16>>(index)?.map(i64::from)
    } else if ty == Type::BOOL {
        row.try_get::<_, Option<bool>>(index)?.map(i64::from)
    } else if ty == Type::NUMERIC {
        use rust_decimal::prelude::ToPrimitive as _;
        match row.try_get::<_, Option<rust_decimal::Decimal>>(index)? {
            None => None,
            Some(number) => Some(number.trunc().to_i64().ok_or_else(|| {
                DbError::Value(format!("column {index}: {number} is not a 64-bit integer"))
            })?),
        }
    } else {
        row.try_get(index)?
    })
}

impl Column for i64 {
    fn from_sqlite(value: ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        rusqlite::types::FromSql::column_result(value)
    }
    fn from_postgres(row: &postgres::Row, index: usize) -> DbResult<Self> {
        postgres_int(row, index)?
            .ok_or_else(|| DbError::Value(format!("column {index}: NULL where a number is kept")))
    }
}

impl Column for Option<i64> {
    fn from_sqlite(value: ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        rusqlite::types::FromSql::column_result(value)
    }
    fn from_postgres(row: &postgres::Row, index: usize) -> DbResult<Self> {
        postgres_int(row, index)
    }
}

impl Column for bool {
    fn from_sqlite(value: ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        rusqlite::types::FromSql::column_result(value)
    }
    fn from_postgres(row: &postgres::Row, index: usize) -> DbResult<Self> {
        i64::from_postgres(row, index).map(|int| int != 0)
    }
}

impl Column for Option<bool> {
    fn from_sqlite(value: ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        rusqlite::types::FromSql::column_result(value)
    }
    fn from_postgres(row: &postgres::Row, index: usize) -> DbResult<Self> {
        Ok(postgres_int(row, index)?.map(|int| int != 0))
    }
}

impl Column for f64 {
    fn from_sqlite(value: ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        rusqlite::types::FromSql::column_result(value)
    }
    fn from_postgres(row: &postgres::Row, index: usize) -> DbResult<Self> {
        Ok(row.try_get(index)?)
    }
}

/// Columns PostgreSQL returns as the type asked for.
macro_rules! same_on_both {
    ($($type:ty),*) => {$(
        impl Column for $type {
            fn from_sqlite(value: ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                rusqlite::types::FromSql::column_result(value)
            }
            fn from_postgres(row: &postgres::Row, index: usize) -> DbResult<Self> {
                Ok(row.try_get(index)?)
            }
        }
    )*};
}
same_on_both!(String, Option<String>, Vec<u8>, Option<Vec<u8>>);

impl Column for Value {
    fn from_sqlite(value: ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        value
            .try_into()
            .map_err(|error: rusqlite::types::FromSqlError| error)
    }
    fn from_postgres(row: &postgres::Row, index: usize) -> DbResult<Self> {
        use postgres::types::Type;
        let ty = row.columns()[index].type_().clone();
        Ok(if ty == Type::TEXT || ty == Type::VARCHAR {
            row.try_get::<_, Option<String>>(index)?
                .map_or(Value::Null, Value::Text)
        } else if ty == Type::BYTEA {
            row.try_get::<_, Option<Vec<u8>>>(index)?
                .map_or(Value::Null, Value::Blob)
        } else if ty == Type::FLOAT8 {
            row.try_get::<_, Option<f64>>(index)?
                .map_or(Value::Null, Value::Real)
        } else {
            postgres_int(row, index)?.map_or(Value::Null, Value::Integer)
        })
    }
}

/// A PostgreSQL connection with its prepared statements.
pub struct Postgres {
    client: RefCell<postgres::Client>,
    statements: RefCell<HashMap<String, postgres::Statement>>,
    /// Whether a transaction is open: the client does not keep track.
    in_transaction: std::cell::Cell<bool>,
}

/// The store's connection.
pub enum Engine {
    Sqlite(rusqlite::Connection),
    Postgres(Box<Postgres>),
}

impl Engine {
    pub fn postgres(client: postgres::Client) -> Engine {
        Engine::Postgres(Box::new(Postgres {
            client: RefCell::new(client),
            statements: RefCell::default(),
            in_transaction: std::cell::Cell::new(false),
        }))
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Engine::Postgres(_))
    }

    /// The `SQLite` connection, for what only `SQLite` has (pragmas, the
    /// bulk load, `VACUUM`); `None` on PostgreSQL.
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Engine::Sqlite(conn) => Some(conn),
            Engine::Postgres(_) => None,
        }
    }

    /// Runs statements without parameters, separated by `;`.
    pub fn batch(&self, sql: &str) -> DbResult<()> {
        match self {
            Engine::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Engine::Postgres(pg) => Ok(pg.client.borrow_mut().batch_execute(sql)?),
        }
    }

    /// Runs one statement; the number of rows it changed.
    pub fn execute(&self, sql: &str, args: &[Arg<'_>]) -> DbResult<u64> {
        match self {
            Engine::Sqlite(conn) => {
                let mut statement = conn.prepare_cached(sql)?;
                Ok(statement.execute(rusqlite::params_from_iter(args))? as u64)
            }
            Engine::Postgres(pg) => {
                let statement = pg.prepare(sql)?;
                Ok(pg.client.borrow_mut().execute(&statement, &pg_args(args))?)
            }
        }
    }

    /// Runs a query, calling `each` with every row in turn.
    pub fn each(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        mut each: impl FnMut(&Row<'_>) -> DbResult<()>,
    ) -> DbResult<()> {
        match self {
            Engine::Sqlite(conn) => {
                let mut statement = conn.prepare_cached(sql)?;
                let mut rows = statement.query(rusqlite::params_from_iter(args))?;
                while let Some(row) = rows.next()? {
                    each(&Row::Sqlite(row))?;
                }
                Ok(())
            }
            Engine::Postgres(pg) => {
                let statement = pg.prepare(sql)?;
                // Read whole, so that `each` may run statements of its own.
                let rows = pg.client.borrow_mut().query(&statement, &pg_args(args))?;
                for row in &rows {
                    each(&Row::Postgres(row))?;
                }
                Ok(())
            }
        }
    }

    /// The first row of a query, read by `read`; `None` without rows.
    pub fn one<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        read: impl FnOnce(&Row<'_>) -> DbResult<T>,
    ) -> DbResult<Option<T>> {
        match self {
            Engine::Sqlite(conn) => {
                let mut statement = conn.prepare_cached(sql)?;
                let mut rows = statement.query(rusqlite::params_from_iter(args))?;
                match rows.next()? {
                    Some(row) => read(&Row::Sqlite(row)).map(Some),
                    None => Ok(None),
                }
            }
            Engine::Postgres(pg) => {
                let statement = pg.prepare(sql)?;
                let row = pg
                    .client
                    .borrow_mut()
                    .query_opt(&statement, &pg_args(args))?;
                row.as_ref()
                    .map(|row| read(&Row::Postgres(row)))
                    .transpose()
            }
        }
    }

    /// The first column of the first row, which must exist (`COUNT`,
    /// `EXISTS`).
    pub fn value<T: Column>(&self, sql: &str, args: &[Arg<'_>]) -> DbResult<T> {
        self.one(sql, args, |row| row.get(0))?
            .ok_or_else(|| DbError::Value(format!("no row from: {sql}")))
    }

    /// Whether a transaction is open (a dry run's, a bulk load's).
    pub fn in_transaction(&self) -> bool {
        match self {
            Engine::Sqlite(conn) => !conn.is_autocommit(),
            Engine::Postgres(pg) => pg.in_transaction.get(),
        }
    }

    /// Opens a transaction: `IMMEDIATE` on `SQLite`, so that it waits for
    /// other writers rather than failing at its first write.
    pub fn begin(&self) -> DbResult<()> {
        match self {
            Engine::Sqlite(conn) => Ok(conn.execute_batch("BEGIN IMMEDIATE")?),
            Engine::Postgres(pg) => {
                pg.client.borrow_mut().batch_execute("BEGIN")?;
                pg.in_transaction.set(true);
                Ok(())
            }
        }
    }

    /// Ends the open transaction, committing it or not.
    pub fn end(&self, commit: bool) -> DbResult<()> {
        let sql = if commit { "COMMIT" } else { "ROLLBACK" };
        match self {
            Engine::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Engine::Postgres(pg) => {
                pg.in_transaction.set(false);
                Ok(pg.client.borrow_mut().batch_execute(sql)?)
            }
        }
    }

    /// PostgreSQL's client, for what only it has (`COPY`, advisory locks).
    pub fn postgres_client(&self) -> Option<std::cell::RefMut<'_, postgres::Client>> {
        match self {
            Engine::Sqlite(_) => None,
            Engine::Postgres(pg) => Some(pg.client.borrow_mut()),
        }
    }
}

impl Engine {
    /// A PostgreSQL-only statement in its own words (`$N`), with the
    /// driver's own parameter types (arrays for `unnest`), prepared once;
    /// its rows. `None` on `SQLite`.
    pub fn postgres_query(
        &self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Option<DbResult<Vec<postgres::Row>>> {
        let Engine::Postgres(pg) = self else {
            return None;
        };
        Some(
            pg.prepare(sql)
                .and_then(|statement| Ok(pg.client.borrow_mut().query(&statement, params)?)),
        )
    }

    /// Like [`Engine::postgres_query`], but planned for these values each
    /// time (an unnamed statement, one round trip): for statements over a
    /// table a run grows, whose plan cached while it was small (a scan of
    /// it all) would stay while it grows. `None` on `SQLite`.
    pub fn postgres_query_replanned(
        &self,
        sql: &str,
        params: &[(&(dyn postgres::types::ToSql + Sync), postgres::types::Type)],
    ) -> Option<DbResult<Vec<postgres::Row>>> {
        let Engine::Postgres(pg) = self else {
            return None;
        };
        Some(
            pg.client
                .borrow_mut()
                .query_typed(&to_postgres(sql), params)
                .map_err(Into::into),
        )
    }
}

impl Postgres {
    fn prepare(&self, sql: &str) -> DbResult<postgres::Statement> {
        if let Some(statement) = self.statements.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.borrow_mut().prepare(&to_postgres(sql))?;
        self.statements
            .borrow_mut()
            .insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

fn pg_args<'a>(args: &'a [Arg<'a>]) -> Vec<&'a (dyn postgres::types::ToSql + Sync)> {
    args.iter()
        .map(|arg| arg as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

/// The shared dialect in PostgreSQL's words: `?N` → `$N`, and
/// `IN rarray(?N)` → `= ANY($N)`, outside quoted text.
pub fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut rest = sql;
    let mut quoted = false;
    while let Some(c) = rest.chars().next() {
        if c == '\'' {
            quoted = !quoted;
        } else if !quoted {
            if let Some(after) = rest.strip_prefix("IN rarray(?") {
                out.push_str("= ANY($");
                rest = after;
                continue;
            }
            if let Some(after) = rest.strip_prefix("rarray(?") {
                // `FROM rarray(?1) AS a … a.value`: a table of the keys.
                let digits =
                    after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
                let alias = after[digits..].strip_prefix(") AS ").unwrap_or("");
                let name = alias.len()
                    - alias
                        .trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_')
                        .len();
                out.push_str("unnest($");
                out.push_str(&after[..digits]);
                out.push_str("::text[]) AS ");
                if name == 0 {
                    out.push_str("rarray (value)");
                    rest = after[digits..]
                        .strip_prefix(')')
                        .unwrap_or(&after[digits..]);
                } else {
                    out.push_str(&alias[..name]);
                    out.push_str(" (value)");
                    rest = &alias[name..];
                }
                continue;
            }
            if c == '?' {
                out.push('$');
                rest = &rest[1..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::to_postgres;

    #[test]
    fn the_shared_dialect_reads_as_postgres() {
        assert_eq!(
            to_postgres("SELECT a FROM t WHERE b = ?1 AND c IN rarray(?2) AND d = '?'"),
            "SELECT a FROM t WHERE b = $1 AND c = ANY($2) AND d = '?'"
        );
        assert_eq!(
            to_postgres("SELECT c.id FROM rarray(?1) AS a JOIN carts AS c ON c.id = a.value"),
            "SELECT c.id FROM unnest($1::text[]) AS a (value) JOIN carts AS c ON c.id = a.value"
        );
    }
}
