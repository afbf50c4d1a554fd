//! Persistence for the control plane: one set of repositories over SQLite (embedded default)
//! and PostgreSQL (production), with migrations embedded in the binary.
//!
//! Queries are written once in SQL both engines accept (`$1` placeholders, `BIGINT` millisecond
//! times, text ids) and run against whichever pool is configured. Every query on tenant data takes
//! the caller's org id, so scoping is not left to callers to remember.

mod access;
mod apps;
mod audit;
mod clients;
mod error;
mod folders;
mod orgs;
mod principals;
mod revisions;
mod scans;
mod scim;
mod secrets;
mod sessions;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use access::{BindingSubject, role_for_scope};
pub use apps::{AppPatch, NewApp};
pub use audit::{AuditCtx, AuditFilter, ChainHead, ExportState, resource};
pub use clients::{CLIENT_SECRET_PREFIX, ClientCa, NewClientSecret};
pub use error::StoreError;
pub use orgs::{Bootstrap, NewOrg};
pub use principals::{NewPrincipal, TOKEN_PREFIX, TokenRejection};
pub use revisions::{NewRevision, PushOutcome};
pub use scans::{NewSuppression, ReviewPolicyRow, ScanJob, ScanPolicyRow, ScanResult};
pub use scim::{
    NewScimToken, SCIM_PRINCIPAL, SCIM_TOKEN_PREFIX, ScimCaller, ScimGroup, ScimLookup, ScimToken, ScimUser,
};
pub use secrets::{NewSealedVersion, OrgKey, SealedVersion};
pub use sessions::{Claims, NewSession, PendingLogin, SESSION_PREFIX, SessionInfo, SessionLimits};

/// Runs `$body` with `$pool` bound to the pool for reads.
macro_rules! on_read {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &*$store.backend {
            $crate::Backend::Sqlite { read: $pool, .. } => $body,
            $crate::Backend::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$pool` bound to the pool for writes. SQLite has a single writer
/// connection, so write transactions are serialized instead of failing with `SQLITE_BUSY`.
macro_rules! on_write {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &*$store.backend {
            $crate::Backend::Sqlite { write: $pool, .. } => $body,
            $crate::Backend::Postgres($pool) => $body,
        }
    };
}

pub(crate) use audit::append_audit;
pub(crate) use {on_read, on_write};

pub(crate) enum Backend {
    Sqlite { read: SqlitePool, write: SqlitePool },
    Postgres(PgPool),
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Handle to the control plane's database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: std::sync::Arc<Backend>,
}

/// A page of a listing: at most `limit` items after the `after` cursor (the last key of the
/// previous page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The key of the last item already seen.
    pub after: Option<String>,
    /// Most items to return (clamped to 1..=1000).
    pub limit: i64,
}

impl Page {
    /// The first `limit` items.
    pub fn first(limit: i64) -> Self {
        Self { after: None, limit }
    }

    /// Everything (up to 1000 items), for internal callers and tests.
    pub fn all() -> Self {
        Self::first(1000)
    }

    fn limit(&self) -> i64 {
        self.limit.clamp(1, 1000)
    }
}

/// Which database engine a store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Store {
    /// Opens (creating if needed) the SQLite database in `data_dir` and applies migrations.
    pub async fn open_sqlite(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| StoreError::Open(format!("cannot create data directory `{}`: {e}", data_dir.display())))?;
        let file = data_dir.join("gatehouse.db");
        let base = SqliteConnectOptions::new()
            .filename(&file)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged write survives power loss, not only a process crash.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(base.clone())
            .await
            .map_err(|e| StoreError::Open(format!("cannot open `{}`: {e}", file.display())))?;
        SQLITE_MIGRATIONS.run(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(base.read_only(true))
            .await
            .map_err(|e| StoreError::Open(format!("cannot open `{}`: {e}", file.display())))?;
        Ok(Self { backend: std::sync::Arc::new(Backend::Sqlite { read, write }) })
    }

    /// Connects to PostgreSQL at `url` and applies migrations.
    pub async fn open_postgres(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Open(format!("invalid database url: {}", redact_sqlx(&e))))?;
        Self::open_postgres_with(opts, max_connections).await
    }

    /// Connects to PostgreSQL with explicit options (tests use this to pick a schema).
    pub async fn open_postgres_with(opts: PgConnectOptions, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await
            .map_err(|e| StoreError::Open(format!("cannot connect to PostgreSQL: {}", redact_sqlx(&e))))?;
        POSTGRES_MIGRATIONS.run(&pool).await?;
        Ok(Self { backend: std::sync::Arc::new(Backend::Postgres(pool)) })
    }

    /// Which engine this store runs on.
    pub fn engine(&self) -> Engine {
        match *self.backend {
            Backend::Sqlite { .. } => Engine::Sqlite,
            Backend::Postgres(_) => Engine::Postgres,
        }
    }

    fn is_postgres(&self) -> bool {
        self.engine() == Engine::Postgres
    }

    /// Checks that the database answers and every embedded migration has been applied.
    pub async fn ready(&self) -> Result<(), StoreError> {
        let expected = match self.engine() {
            Engine::Sqlite => SQLITE_MIGRATIONS.iter().filter(|m| m.migration_type.is_up_migration()).count(),
            Engine::Postgres => POSTGRES_MIGRATIONS.iter().filter(|m| m.migration_type.is_up_migration()).count(),
        } as i64;
        let sql = "SELECT COUNT(*) FROM _sqlx_migrations WHERE success";
        let applied: i64 = on_read!(self, |pool| sqlx::query_scalar(sql).fetch_one(pool).await?);
        if applied < expected {
            return Err(StoreError::Open(format!("{applied} of {expected} migrations applied")));
        }
        Ok(())
    }

    /// Closes the pools, waiting for in-flight queries.
    pub async fn close(&self) {
        match &*self.backend {
            Backend::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Backend::Postgres(pool) => pool.close().await,
        }
    }
}

/// sqlx connection errors may quote the connection string; keep only what cannot hold a password.
fn redact_sqlx(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Configuration(_) => "the URL could not be parsed".to_owned(),
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Tls(_) => "TLS error".to_owned(),
        sqlx::Error::PoolTimedOut => "timed out".to_owned(),
        other => other.to_string(),
    }
}

/// Reads a stored, engine-independent value back into its typed form.
fn parse_col<T: FromStr>(column: &'static str, value: &str) -> Result<T, StoreError> {
    value.parse().map_err(|_| StoreError::Corrupt(format!("column `{column}` holds `{value}`")))
}

#[cfg(feature = "testsuite")]
pub mod testing;
