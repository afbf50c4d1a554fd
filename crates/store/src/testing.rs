//! Stores for tests: a throwaway SQLite directory, or a fresh schema in the PostgreSQL database
//! named by `GATEHOUSE_TEST_POSTGRES_URL` (set by `scripts/test`).
#![expect(clippy::expect_used, clippy::panic, reason = "test support fails loudly")]

use std::str::FromStr;

use rand::RngCore;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

use crate::Store;

/// The environment variable naming the scratch PostgreSQL database for tests.
pub const POSTGRES_URL_VAR: &str = "GATEHOUSE_TEST_POSTGRES_URL";

/// A store in a new temporary directory; keep the directory alive as long as the store.
pub async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Store::open_sqlite(dir.path()).await.expect("open sqlite store");
    (store, dir)
}

/// The scratch PostgreSQL URL. Missing it is an error, not a skip: the suite must run on both
/// backends, and `scripts/test` provides it.
pub fn postgres_url() -> String {
    std::env::var(POSTGRES_URL_VAR).unwrap_or_else(|_| {
        panic!("{POSTGRES_URL_VAR} is not set; run the tests with scripts/test, which creates a scratch database")
    })
}

/// Creates a new, empty schema in the scratch database and returns its name.
pub async fn fresh_schema() -> String {
    let mut raw = [0u8; 6];
    rand::rng().fill_bytes(&mut raw);
    let schema = format!("t_{}", hex::encode(raw));
    let mut conn = PgConnection::connect(&postgres_url()).await.expect("connect to the test database");
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut conn).await.expect("create schema");
    schema
}

/// A PostgreSQL URL whose connections use `schema`.
pub fn postgres_url_for(schema: &str) -> String {
    let base = postgres_url();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// A store on a fresh schema of the scratch PostgreSQL database.
pub async fn postgres() -> Store {
    let schema = fresh_schema().await;
    let opts = PgConnectOptions::from_str(&postgres_url())
        .expect("valid test database url")
        .options([("search_path", schema.as_str())]);
    Store::open_postgres_with(opts, 8).await.expect("open postgres store")
}

/// An audit context for tests acting in `org`.
pub fn ctx(org: &gatehouse_core::OrgId) -> crate::AuditCtx {
    crate::AuditCtx::system(org, "test")
}

/// An audit context for tests that create orgs outside any operator org.
pub fn outside_ctx() -> crate::AuditCtx {
    crate::AuditCtx::system(&gatehouse_core::OrgId::generate(), "test")
}
