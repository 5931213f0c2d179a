//! What every concept's rows share: decoding columns (ids, times, JSON),
//! loading one record of a tenant by id, and building multi-row
//! statements within the backends' parameter limits. Each concept decodes
//! its own rows, in its own module.

use idv_core::Timestamp;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Row};
use uuid::Uuid;

use crate::{Dialect, StoreError};

/// One record of a tenant by id, from `table` (its `cols`, decoded by
/// `decode`), or `NotFound` naming `what`.
pub(crate) async fn load_one<T>(
    conn: &mut AnyConnection,
    (table, cols, what): (&str, &str, &'static str),
    tenant_id: Uuid,
    id: Uuid,
    decode: fn(&AnyRow) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let sql = format!("SELECT {cols} FROM {table} WHERE tenant_id = $1 AND id = $2");
    match sqlx::query(&sql)
        .bind(tenant_id.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?
    {
        Some(r) => decode(&r),
        None => Err(StoreError::NotFound {
            what,
            id: id.to_string(),
        }),
    }
}

pub(crate) type AnyQuery<'q> = Query<'q, Any, AnyArguments<'q>>;

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

pub(crate) fn uuid(row: &AnyRow, col: &str) -> Result<Uuid, StoreError> {
    let s: String = row.try_get(col)?;
    Uuid::parse_str(&s).map_err(|e| corrupt(col, e))
}

pub(crate) fn opt_uuid(row: &AnyRow, col: &str) -> Result<Option<Uuid>, StoreError> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| Uuid::parse_str(&s).map_err(|e| corrupt(col, e))).transpose()
}

pub(crate) fn ts(row: &AnyRow, col: &str) -> Result<Timestamp, StoreError> {
    Ok(Timestamp::from_micros(row.try_get::<i64, _>(col)?))
}

pub(crate) fn opt_ts(row: &AnyRow, col: &str) -> Result<Option<Timestamp>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(Timestamp::from_micros))
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(row: &AnyRow, col: &str) -> Result<T, StoreError> {
    let s: String = row.try_get(col)?;
    serde_json::from_str(&s).map_err(|e| corrupt(col, e))
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    // Serializing maps of strings and vectors of strings/uuids cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// The `n`th parameter marker of a statement. PostgreSQL numbers them
/// (`$1`). SQLite gets anonymous `?` markers, bound in order: binding
/// numbered ones makes sqlx look each name up with
/// `sqlite3_bind_parameter_name`, which walks the statement's name list, so
/// a bulk statement's binding cost would grow with the square of its
/// parameter count.
pub(crate) fn marker(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Sqlite => "?".to_owned(),
        Dialect::Postgres => format!("${n}"),
    }
}

/// `(m, m, …), (m, …)`: markers for `rows` rows of `cols` values, numbered
/// from `first`.
pub(crate) fn placeholders(dialect: Dialect, rows: usize, cols: usize, first: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 6);
    let mut n = first;
    for r in 0..rows {
        if r > 0 {
            s.push(',');
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push(',');
            }
            s.push_str(&marker(dialect, n));
            n += 1;
        }
        s.push(')');
    }
    s
}

/// `(m, m, …)`: an `IN` list of `n` markers numbered from `first`.
pub(crate) fn in_list(dialect: Dialect, n: usize, first: usize) -> String {
    let items: Vec<String> = (first..first + n).map(|i| marker(dialect, i)).collect();
    format!("({})", items.join(","))
}

/// Rows per multi-row statement: under SQLite's 32766 and PostgreSQL's
/// 65535 bound-parameter limits.
pub(crate) fn chunk_rows(cols: usize) -> usize {
    (30_000 / cols.max(1)).max(1)
}
