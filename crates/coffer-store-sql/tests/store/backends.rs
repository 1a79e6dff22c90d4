//! Fresh stores for tests: SQLite in a new file under the target's temp dir, PostgreSQL
//! in a new schema of the database at `COFFER_TEST_DATABASE_URL`.

use std::path::PathBuf;
use std::sync::Arc;

use coffer_core::Store;
use coffer_store_sql::SqlStore;
use sqlx::Executor;

/// A new directory for one test.
pub fn temp_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("coffer-store-sql")
        .join(uuid::Uuid::new_v4().simple().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub async fn sqlite_store() -> Option<Arc<dyn Store>> {
    let path = temp_dir().join("coffer.db");
    Some(Arc::new(SqlStore::open_sqlite(&path).await.unwrap()))
}

/// `None` (test skipped, said on stderr) when PostgreSQL is not configured, unless
/// `COFFER_REQUIRE_POSTGRES` is set, as in CI, where skipping is a failure.
pub async fn postgres_store() -> Option<Arc<dyn Store>> {
    let url = postgres_url().await?;
    Some(Arc::new(SqlStore::connect(&url).await.unwrap()))
}

/// A URL whose connections use a fresh schema of their own.
pub async fn postgres_url() -> Option<String> {
    let Ok(base) = std::env::var("COFFER_TEST_DATABASE_URL") else {
        assert!(
            std::env::var_os("COFFER_REQUIRE_POSTGRES").is_none(),
            "COFFER_REQUIRE_POSTGRES is set but COFFER_TEST_DATABASE_URL is not"
        );
        eprintln!("skipped: PostgreSQL test (set COFFER_TEST_DATABASE_URL to run it)");
        return None;
    };
    sqlx::any::install_default_drivers();
    let schema = format!("coffer_t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&base)
        .await
        .unwrap();
    conn.execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    Some(format!(
        "{base}{separator}options=-c%20search_path%3D{schema}"
    ))
}
