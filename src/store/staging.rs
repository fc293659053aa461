//! An import's batch on PostgreSQL: copied into a temporary staging table
//! with one binary `COPY … FROM STDIN`, then written from there by one
//! set-based statement, rather than by a statement (a round trip) per row.

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;

use super::engine::{DbError, DbResult, Engine};

/// A temporary table of the connection's own, made on first use and
/// emptied at every commit (and before every use: a dry run's batches,
/// or a batch written in several runs, share one transaction). Made
/// again if the transaction that made it was rolled back.
pub(super) struct Staging {
    pub name: &'static str,
    /// The columns, as `CREATE TABLE` lists them.
    pub columns: &'static str,
    /// The columns `COPY` fills, in order (the others keep their default).
    pub copied: &'static str,
    /// Their types, in order, as the binary `COPY` writes them.
    pub types: &'static [Type],
}

/// Empties `staging` (making it first if this connection has not) and
/// copies into it the rows `write` writes, one `writer.write(values)`
/// each.
pub(super) fn stage(
    db: &Engine,
    staging: &Staging,
    write: impl FnOnce(&mut BinaryCopyInWriter<'_>) -> Result<(), postgres::Error>,
) -> DbResult<()> {
    let mut client = db
        .postgres_client()
        .ok_or_else(|| DbError::Value("staging tables are PostgreSQL's".into()))?;
    let Staging {
        name,
        columns,
        copied,
        types,
    } = staging;
    // `DELETE`, not `TRUNCATE`: the table is empty but within a dry run
    // or a batch cut in runs, and `TRUNCATE` would give it a new file (a
    // catalog update) at every batch.
    client.batch_execute(&format!(
        "CREATE TEMP TABLE IF NOT EXISTS {name} ({columns}) ON COMMIT DELETE ROWS; \
         DELETE FROM {name}"
    ))?;
    let sink = client.copy_in(&format!(
        "COPY {name} ({copied}) FROM STDIN (FORMAT binary)"
    ))?;
    let mut writer = BinaryCopyInWriter::new(sink, types);
    write(&mut writer)?;
    writer.finish()?;
    Ok(())
}
