//! Where call records live (`records.path` in the config): a SQLite file, or a PostgreSQL
//! database (`postgres://...`) that several nodes share. One connection type for both, so the
//! writer (`ops::records`), the statistics (`ops::stats`) and the trainers' review
//! (`ops::review`) run the same SQL on either. The SQL they write is the common ground of the
//! two: `?N` placeholders (rewritten to `$N` for PostgreSQL), `ON CONFLICT` upserts, no
//! output-column aliases outside `ORDER BY`/`GROUP BY`, no booleans summed. The one real
//! difference, reading inside the JSON decision record, goes through [`Records::json_text`]
//! and [`Records::json_number`].
//!
//! The schema is in `migrations/<engine>/`, applied in order at open and recorded in
//! `voxnav_migrations`. On PostgreSQL an advisory lock makes nodes that start together apply
//! each step once.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The schema steps of each engine, in order: (version, name, SQL).
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "calls_and_turns",
        include_str!("../../migrations/sqlite/0001_calls_and_turns.sql"),
    ),
    (
        2,
        "calls_server",
        include_str!("../../migrations/sqlite/0002_calls_server.sql"),
    ),
    (
        3,
        "queues_and_agents",
        include_str!("../../migrations/sqlite/0003_queues_and_agents.sql"),
    ),
    (
        4,
        "wrap_up",
        include_str!("../../migrations/sqlite/0004_wrap_up.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "calls_and_turns",
        include_str!("../../migrations/postgres/0001_calls_and_turns.sql"),
    ),
    (
        2,
        "calls_server",
        include_str!("../../migrations/postgres/0002_calls_server.sql"),
    ),
    (
        3,
        "queues_and_agents",
        include_str!("../../migrations/postgres/0003_queues_and_agents.sql"),
    ),
    (
        4,
        "wrap_up",
        include_str!("../../migrations/postgres/0004_wrap_up.sql"),
    ),
];

/// The advisory lock key nodes take while migrating ("voxnav" in ASCII, as a number).
const MIGRATION_LOCK: i64 = 0x766f_786e_6176;

/// Where the records are.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    /// A `postgres://` or `postgresql://` URL (libpq's URI form).
    Postgres(String),
}

impl Database {
    /// A SQLite database in memory with the schema (tests).
    pub fn in_memory() -> Records {
        Self::Sqlite(PathBuf::from(":memory:"))
            .open()
            .expect("an in-memory SQLite database")
    }

    /// A `postgres://` URL, else a SQLite file path.
    pub fn parse(text: &str) -> Self {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Self::Postgres(text.to_string())
        } else {
            Self::Sqlite(PathBuf::from(text))
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// Connects (creating a SQLite file and its folder if needed) and brings the schema up to
    /// date.
    pub fn open(&self) -> Result<Records, DbError> {
        let mut records = self.connect()?;
        records.migrate()?;
        Ok(records)
    }

    /// Connects without touching the schema: for readers (the admin API opens one connection
    /// per request), once the writer has opened the database.
    pub fn connect(&self) -> Result<Records, DbError> {
        Ok(match self {
            Self::Sqlite(path) => Records::Sqlite(open_sqlite(path)?),
            Self::Postgres(url) => Records::Postgres(Box::new(PgConnection {
                client: open_postgres(url)?,
                statements: std::collections::HashMap::new(),
            })),
        })
    }
}

/// Shown without the password a URL may carry (logs, errors, the API).
impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Database({self})")
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

fn open_sqlite(path: &Path) -> Result<rusqlite::Connection, DbError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| DbError::Folder(dir.display().to_string(), e))?;
    }
    let db = rusqlite::Connection::open(path)?;
    db.busy_timeout(Duration::from_secs(5))?;
    // WAL: readers (the admin API) read while the writer writes; NORMAL: a killed process
    // loses at most the transaction in flight.
    db.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
    )?;
    Ok(db)
}

/// How long connecting may take before the writer counts the database as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn open_postgres(url: &str) -> Result<postgres::Client, DbError> {
    let mut config: postgres::Config = url.parse()?;
    config.connect_timeout(CONNECT_TIMEOUT);
    // A database host that vanishes without closing the connection (power, network) is
    // noticed by keepalives instead of a write that hangs for the kernel's whole timeout.
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(10));
    config.application_name("voxnav");
    // Plain TCP: the records database sits on the contact centre's own network (docs/deploy.md).
    Ok(config.connect(postgres::NoTls)?)
}

/// An open records database.
pub enum Records {
    Sqlite(rusqlite::Connection),
    Postgres(Box<PgConnection>),
}

/// A PostgreSQL connection with its prepared statements: each SQL text is prepared once, so
/// a write is one round trip to the server instead of two (prepare, then execute).
pub struct PgConnection {
    client: postgres::Client,
    statements: std::collections::HashMap<String, postgres::Statement>,
}

impl PgConnection {
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, DbError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let prepared = self.client.prepare(&postgres_placeholders(sql))?;
        self.statements.insert(sql.to_string(), prepared.clone());
        Ok(prepared)
    }
}

impl fmt::Debug for Records {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite(_) => "Records(SQLite)",
            Self::Postgres(_) => "Records(PostgreSQL)",
        })
    }
}

/// A value bound to a statement or read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Bound as text on PostgreSQL (the only nullable parameters are text columns).
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    /// A JSON document: jsonb on PostgreSQL, its text on SQLite.
    Json(serde_json::Value),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Self::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_string())
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Self::Text(v.clone())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> &Value {
        self.0.get(i).unwrap_or(&Value::Null)
    }

    /// An integer column (a real is rounded), None if NULL.
    pub fn opt_int(&self, i: usize) -> Option<i64> {
        match self.at(i) {
            Value::Int(v) => Some(*v),
            Value::Real(v) => Some(v.round() as i64),
            Value::Text(t) => t.parse().ok(),
            _ => None,
        }
    }

    /// An integer column; NULL reads as 0 (counts and sums).
    pub fn int(&self, i: usize) -> i64 {
        self.opt_int(i).unwrap_or(0)
    }

    /// A non-negative integer column (times, counts).
    pub fn count(&self, i: usize) -> u64 {
        self.int(i).max(0) as u64
    }

    /// A text column (a number as its decimal text), None if NULL.
    pub fn opt_text(&self, i: usize) -> Option<String> {
        match self.at(i) {
            Value::Null => None,
            Value::Int(v) => Some(v.to_string()),
            Value::Real(v) => Some(v.to_string()),
            Value::Text(t) => Some(t.clone()),
            Value::Json(j) => Some(j.to_string()),
        }
    }

    /// A text column; NULL reads as "".
    pub fn text(&self, i: usize) -> String {
        self.opt_text(i).unwrap_or_default()
    }
}

/// The records database failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] postgres::Error),
    #[error("making the records folder {0}: {1}")]
    Folder(String, std::io::Error),
    #[error("PostgreSQL column {0} has type {1}, which records never use")]
    ColumnType(usize, String),
    /// A write that found no row to change (the end of a call whose start was never stored).
    #[error("{0}")]
    NoRow(String),
}

impl DbError {
    /// The database could not be reached or went away (retry after reconnecting), as opposed
    /// to a statement it refused (retrying would fail the same way).
    pub fn is_connection(&self) -> bool {
        match self {
            Self::Postgres(e) => match e.as_db_error() {
                // No server answer at all: I/O, closed socket, timeout.
                None => true,
                // SQLSTATE class 08 (connection exception), 57P (operator intervention:
                // shutdown, crash recovery), 53 (insufficient resources).
                Some(db) => {
                    let code = db.code().code();
                    code.starts_with("08") || code.starts_with("57P") || code.starts_with("53")
                }
            },
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::CannotOpen
                    | rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::SystemIoFailure
            ),
            Self::Folder(..) => true,
            _ => false,
        }
    }
}

/// `?1` -> `$1`: PostgreSQL's placeholders. The SQL here never has a `?` in a literal.
fn postgres_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

fn sqlite_value(v: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match v {
        Value::Null => V::Null,
        Value::Int(i) => V::Integer(*i),
        Value::Real(r) => V::Real(*r),
        Value::Text(t) => V::Text(t.clone()),
        Value::Json(j) => V::Text(j.to_string()),
    }
}

fn postgres_value(v: &Value) -> Box<dyn postgres::types::ToSql + Sync> {
    match v {
        Value::Null => Box::new(None::<String>),
        Value::Int(i) => Box::new(*i),
        Value::Real(r) => Box::new(*r),
        Value::Text(t) => Box::new(t.clone()),
        Value::Json(j) => Box::new(j.clone()),
    }
}

fn postgres_row(row: &postgres::Row) -> Result<Row, DbError> {
    use postgres::types::Type;
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let t = column.type_();
        let value = if *t == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?.map(Value::Int)
        } else if *t == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Int(v.into()))
        } else if *t == Type::INT2 {
            row.try_get::<_, Option<i16>>(i)?
                .map(|v| Value::Int(v.into()))
        } else if *t == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)?
                .map(|v| Value::Int(v.into()))
        } else if *t == Type::FLOAT8 {
            row.try_get::<_, Option<f64>>(i)?.map(Value::Real)
        } else if *t == Type::FLOAT4 {
            row.try_get::<_, Option<f32>>(i)?
                .map(|v| Value::Real(v.into()))
        } else if [Type::TEXT, Type::VARCHAR, Type::NAME, Type::BPCHAR].contains(t) {
            row.try_get::<_, Option<String>>(i)?.map(Value::Text)
        } else if *t == Type::JSONB || *t == Type::JSON {
            row.try_get::<_, Option<serde_json::Value>>(i)?
                .map(Value::Json)
        } else {
            return Err(DbError::ColumnType(i, t.name().to_string()));
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

fn sqlite_row(row: &rusqlite::Row, columns: usize) -> rusqlite::Result<Row> {
    use rusqlite::types::ValueRef;
    let mut values = Vec::with_capacity(columns);
    for i in 0..columns {
        values.push(match row.get_ref(i)? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(v) => Value::Int(v),
            ValueRef::Real(v) => Value::Real(v),
            ValueRef::Text(t) | ValueRef::Blob(t) => {
                Value::Text(String::from_utf8_lossy(t).into_owned())
            }
        });
    }
    Ok(Row(values))
}

impl Records {
    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// The rows of a query.
    pub fn rows(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        match self {
            Self::Sqlite(db) => {
                let mut q = db.prepare_cached(sql)?;
                let columns = q.column_count();
                let bound: Vec<_> = params.iter().map(sqlite_value).collect();
                let rows = q.query_map(rusqlite::params_from_iter(bound), |r| {
                    sqlite_row(r, columns)
                })?;
                Ok(rows.collect::<Result<_, _>>()?)
            }
            Self::Postgres(pg) => {
                let boxed: Vec<_> = params.iter().map(postgres_value).collect();
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    boxed.iter().map(|b| b.as_ref()).collect();
                let statement = pg.statement(sql)?;
                let rows = pg.client.query(&statement, &refs)?;
                rows.iter().map(postgres_row).collect()
            }
        }
    }

    /// The one row of a query (a row of NULLs if it has none).
    pub fn row(&mut self, sql: &str, params: &[Value]) -> Result<Row, DbError> {
        Ok(self
            .rows(sql, params)?
            .into_iter()
            .next()
            .unwrap_or(Row(Vec::new())))
    }

    /// Runs one statement; the number of rows it changed.
    pub fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        match self {
            Self::Sqlite(db) => {
                let bound: Vec<_> = params.iter().map(sqlite_value).collect();
                let n = db
                    .prepare_cached(sql)?
                    .execute(rusqlite::params_from_iter(bound))?;
                Ok(n as u64)
            }
            Self::Postgres(pg) => {
                let boxed: Vec<_> = params.iter().map(postgres_value).collect();
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    boxed.iter().map(|b| b.as_ref()).collect();
                let statement = pg.statement(sql)?;
                Ok(pg.client.execute(&statement, &refs)?)
            }
        }
    }

    /// Runs statements without parameters (schema steps, BEGIN/COMMIT).
    pub fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        match self {
            Self::Sqlite(db) => Ok(db.execute_batch(sql)?),
            Self::Postgres(pg) => Ok(pg.client.batch_execute(sql)?),
        }
    }

    /// SQL for a text field of a JSON column (`path` is a list of keys): NULL if absent.
    pub fn json_text(&self, column: &str, path: &[&str]) -> String {
        match self {
            Self::Sqlite(_) => format!("json_extract({column}, '$.{}')", path.join(".")),
            Self::Postgres(_) => format!("({column} #>> '{{{}}}')", path.join(",")),
        }
    }

    /// SQL for a numeric field of a JSON column, as a whole number: NULL if absent.
    pub fn json_number(&self, column: &str, path: &[&str]) -> String {
        match self {
            Self::Sqlite(_) => self.json_text(column, path),
            Self::Postgres(_) => format!(
                "round(({})::double precision)::bigint",
                self.json_text(column, path)
            ),
        }
    }

    /// Narrows this connection to one hotline's calls: a temporary view named `calls`
    /// holding only that hotline's rows shadows the table. Both engines resolve an
    /// unqualified name in the session's temporary schema first (SQLite: `temp` before
    /// `main`; PostgreSQL: `pg_temp` is searched first unless `search_path` names it), so
    /// every statistic is computed the same way for one hotline as for all. The connection
    /// must be this request's own.
    pub fn only_hotline(&mut self, hotline: &str) -> Result<(), DbError> {
        // A view cannot take parameters: the name goes in as an SQL string literal with its
        // quotes doubled (SQL-92 5.3), which is all a literal needs.
        let literal = hotline.replace('\'', "''");
        let schema = match self {
            Self::Sqlite(_) => "main".to_string(),
            Self::Postgres(_) => {
                let schema = self.row("SELECT current_schema()", &[])?.text(0);
                format!("\"{}\"", schema.replace('"', "\"\""))
            }
        };
        self.batch(&format!(
            "CREATE TEMP VIEW calls AS SELECT * FROM {schema}.calls WHERE hotline = '{literal}'"
        ))
    }

    /// Applies the schema steps not yet applied, each in a transaction with its version.
    fn migrate(&mut self) -> Result<(), DbError> {
        let steps = match self {
            Self::Sqlite(_) => SQLITE_MIGRATIONS,
            Self::Postgres(_) => POSTGRES_MIGRATIONS,
        };
        if self.is_postgres() {
            self.execute("SELECT pg_advisory_lock(?1)", &[MIGRATION_LOCK.into()])?;
        }
        let result = self.apply(steps);
        if self.is_postgres() {
            self.execute("SELECT pg_advisory_unlock(?1)", &[MIGRATION_LOCK.into()])?;
        }
        result
    }

    fn apply(&mut self, steps: &[(i64, &str, &str)]) -> Result<(), DbError> {
        self.batch(
            "CREATE TABLE IF NOT EXISTS voxnav_migrations (\
                 version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_ms BIGINT NOT NULL)",
        )?;
        let done = self.row("SELECT MAX(version) FROM voxnav_migrations", &[])?;
        let done = done.opt_int(0).unwrap_or(0);
        for (version, name, sql) in steps.iter().filter(|s| s.0 > done) {
            self.batch("BEGIN")?;
            let step =
                self.batch(sql).and_then(|_| {
                    self.execute(
                    "INSERT INTO voxnav_migrations (version, name, applied_ms) VALUES (?1, ?2, ?3)",
                    &[(*version).into(), (*name).into(), super::live::now_ms().into()],
                )
                });
            match step {
                Ok(_) => self.batch("COMMIT")?,
                Err(e) => {
                    let _ = self.batch("ROLLBACK");
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_is_shown_without_its_password() {
        let db = Database::parse("postgres://voxnav:s3cret@db.example:5432/records");
        assert!(matches!(db, Database::Postgres(_)));
        assert_eq!(
            db.to_string(),
            "postgres://voxnav:***@db.example:5432/records"
        );
        assert!(!format!("{db:?}").contains("s3cret"));
        assert_eq!(
            Database::parse("postgresql://db/records").to_string(),
            "postgresql://db/records"
        );
        assert_eq!(
            Database::parse("records/voxnav.db"),
            Database::Sqlite("records/voxnav.db".into())
        );
    }

    #[test]
    fn placeholders_are_rewritten_for_postgres() {
        assert_eq!(
            postgres_placeholders("a = ?1 AND b = ?12 AND c LIKE '$.x'"),
            "a = $1 AND b = $12 AND c LIKE '$.x'"
        );
    }

    #[test]
    fn sqlite_migrations_apply_once_and_values_round_trip() {
        let dir = std::env::temp_dir().join(format!("voxnav-db-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let db = Database::Sqlite(dir.join("r.db"));
        db.open().unwrap();
        let mut r = db.open().unwrap();
        let applied = r
            .row("SELECT COUNT(*) FROM voxnav_migrations", &[])
            .unwrap();
        assert_eq!(applied.int(0), SQLITE_MIGRATIONS.len() as i64);
        r.execute(
            "INSERT INTO calls (call_id, caller, hotline, dialplan_version, started_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            &[
                "c1".into(),
                "anonymous".into(),
                "demo".into(),
                1i64.into(),
                7i64.into(),
            ],
        )
        .unwrap();
        let row = r
            .row(
                "SELECT call_id, started_ms, ended_ms FROM calls WHERE call_id = ?1",
                &["c1".into()],
            )
            .unwrap();
        assert_eq!(
            (row.text(0), row.int(1), row.opt_int(2)),
            ("c1".into(), 7, None)
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
