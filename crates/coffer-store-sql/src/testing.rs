//! Test support (feature `testing`): a PostgreSQL database of one's own for each test.

use sqlx::Executor;

/// A URL of `COFFER_TEST_DATABASE_URL` whose connections use a fresh schema named
/// `{prefix}_{uuid}` (CI drops old ones by prefix). `None`, said on stderr, when the
/// variable is unset: the test is skipped, unless `COFFER_REQUIRE_POSTGRES` is set, as
/// in CI, where skipping is a failure.
pub async fn postgres_url(prefix: &str) -> Option<String> {
    let Ok(base) = std::env::var("COFFER_TEST_DATABASE_URL") else {
        assert!(
            std::env::var_os("COFFER_REQUIRE_POSTGRES").is_none(),
            "COFFER_REQUIRE_POSTGRES is set but COFFER_TEST_DATABASE_URL is not"
        );
        eprintln!("skipped: PostgreSQL test (set COFFER_TEST_DATABASE_URL to run it)");
        return None;
    };
    sqlx::any::install_default_drivers();
    let schema = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&base)
        .await
        .expect("connect to COFFER_TEST_DATABASE_URL");
    conn.execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .expect("create a test schema");
    let separator = if base.contains('?') { '&' } else { '?' };
    Some(format!(
        "{base}{separator}options=-c%20search_path%3D{schema}"
    ))
}
