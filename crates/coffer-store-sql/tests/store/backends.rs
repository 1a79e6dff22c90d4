//! Fresh stores for tests: SQLite in a new file under the target's temp dir, PostgreSQL
//! in a new schema of the database at `COFFER_TEST_DATABASE_URL`.

use std::path::PathBuf;
use std::sync::Arc;

use coffer_core::Store;
use coffer_store_sql::SqlStore;

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

/// A URL whose connections use a fresh schema of their own (`None`: skipped).
pub async fn postgres_url() -> Option<String> {
    coffer_store_sql::testing::postgres_url("coffer_t").await
}

/// Runs the test `child` of this binary in a process of its own with `env`, reads the
/// lines it prints after `ACK `, and kills it with SIGKILL (no destructor, no flush, no
/// commit hook) once it printed `acks` of them; what followed each `ACK `. Fewer when
/// the child ended first.
pub fn acks_until_sigkill(child: &str, env: &[(&str, String)], acks: usize) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let mut process = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", child, "--nocapture", "--test-threads=1"])
        .envs(env.iter().map(|(name, value)| (*name, value)))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    for line in BufReader::new(process.stdout.take().unwrap()).lines() {
        if let Some(rest) = line.unwrap().strip_prefix("ACK ") {
            acked.push(rest.to_owned());
            if acked.len() == acks {
                process.kill().unwrap();
                break;
            }
        }
    }
    process.wait().unwrap();
    acked
}
