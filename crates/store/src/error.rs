/// What can go wrong in the store. Each variant maps to one HTTP status in the server.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist in the caller's org (or at all: the two are not told apart).
    #[error("{kind} `{id}` not found")]
    NotFound {
        /// What was looked for (`app`, `folder`, …).
        kind: &'static str,
        /// The id or name given.
        id: String,
    },
    /// A uniqueness rule was broken, such as a second app with the same name.
    #[error("{0}")]
    Conflict(String),
    /// The request breaks a rule of the model (a folder cycle, deleting a non-empty folder, …).
    #[error("{0}")]
    Invalid(String),
    /// The database could not be opened or migrated.
    #[error("database unavailable: {0}")]
    Open(String),
    /// A stored value could not be read back; a bug or tampering, never user input.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The audit record of a change could not be written, so the change was not made.
    #[error("audit log unavailable: {0}")]
    AuditUnavailable(String),
    /// The database cannot take writes now (disk full, read-only, out of resources).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return StoreError::Conflict("an object with that name already exists".to_owned());
            }
            if db.is_foreign_key_violation() {
                return StoreError::Invalid("a referenced object does not exist".to_owned());
            }
            if let Some(why) = storage_failure(db.as_ref()) {
                return StoreError::Unavailable(why.to_owned());
            }
        }
        StoreError::Database(e)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Open(format!("migration failed: {e}"))
    }
}

impl StoreError {
    pub(crate) fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound { kind, id: id.into() }
    }

    /// A failure to write an audit record; never carries query text or values.
    pub(crate) fn audit(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "audit append failed");
        Self::AuditUnavailable(crate::redact_sqlx(&e))
    }

    /// Whether the database itself is unreachable or failing (as opposed to a refused request).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Open(_)
                | Self::Unavailable(_)
                | Self::AuditUnavailable(_)
                | Self::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed)
        )
    }
}

/// Storage conditions that are the database's, not the request's: SQLite's FULL, READONLY and
/// IOERR result codes (the primary code is the low byte of an extended code), PostgreSQL's
/// class 53 (insufficient resources, such as a full disk) and read-only transactions.
fn storage_failure(db: &dyn sqlx::error::DatabaseError) -> Option<&'static str> {
    let code = db.code()?;
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        return match code.parse::<i32>().ok()? & 0xff {
            13 => Some("the disk is full"),
            8 => Some("the database is read-only"),
            10 => Some("disk I/O error"),
            _ => None,
        };
    }
    match code.as_ref() {
        c if c.starts_with("53") => Some("the database server is out of resources (disk full?)"),
        "25006" => Some("the database is read-only"),
        _ => None,
    }
}
