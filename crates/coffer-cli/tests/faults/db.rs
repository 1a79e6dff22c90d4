//! The database under a server, reached directly: snapshots of the state tables, and a
//! trigger that makes every audit insert fail.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, Connection, Executor, Row};

/// Every table that holds the service's state. Left out: the audit log itself
/// (`audit_entries`, `audit_checkpoints`) and `leases`, which background workers renew
/// on their own schedule.
pub const STATE_TABLES: &[&str] = &[
    "tenants",
    "tenant_keks",
    "keys",
    "key_versions",
    "aliases",
    "events",
    "rotations",
    "tokens",
    "server_secrets",
    "tracked_keys",
];

const TRIGGER: &str = "coffer_fault_no_audit";

fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// A connection of the test's own to the server's database (for PostgreSQL, `url`
/// carries the test schema in its `search_path`).
pub async fn connect(url: &str) -> AnyConnection {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(url).await.unwrap();
    if is_sqlite(url) {
        conn.execute("PRAGMA busy_timeout=10000").await.unwrap();
    }
    conn
}

/// Every row of every state table, as text, sorted: two snapshots are equal exactly
/// when no state changed.
pub async fn snapshot(conn: &mut AnyConnection, url: &str) -> BTreeMap<&'static str, Vec<String>> {
    let mut all = BTreeMap::new();
    for &table in STATE_TABLES {
        let query = if is_sqlite(url) {
            let columns: Vec<String> =
                sqlx::query(&format!("SELECT name FROM pragma_table_info('{table}')"))
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap()
                    .iter()
                    .map(|row| format!("quote({})", row.get::<String, _>(0)))
                    .collect();
            format!(
                "SELECT {} FROM {table} ORDER BY 1",
                columns.join(" || '|' || ")
            )
        } else {
            format!("SELECT CAST(t AS TEXT) FROM {table} AS t ORDER BY 1")
        };
        let rows = sqlx::query(&query)
            .fetch_all(&mut *conn)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<String, _>(0))
            .collect();
        all.insert(table, rows);
    }
    all
}

/// What changed between two snapshots, one line per table (empty: nothing): how many
/// rows went and came, and the first of each, cut short.
pub fn changes(
    before: &BTreeMap<&'static str, Vec<String>>,
    after: &BTreeMap<&'static str, Vec<String>>,
) -> Vec<String> {
    let short = |row: Option<&&String>| -> String {
        row.map_or_else(String::new, |r| r.chars().take(160).collect())
    };
    let mut changes = Vec::new();
    for (table, rows) in before {
        let now = &after[table];
        let gone: Vec<&String> = rows.iter().filter(|r| !now.contains(r)).collect();
        let new: Vec<&String> = now.iter().filter(|r| !rows.contains(r)).collect();
        if !gone.is_empty() || !new.is_empty() {
            changes.push(format!(
                "{table}: {} rows went (first: {}), {} came (first: {})",
                gone.len(),
                short(gone.first()),
                new.len(),
                short(new.first())
            ));
        }
    }
    changes
}

/// Makes every insert into `audit_entries` fail, as a full or broken audit store would.
pub async fn refuse_audit(conn: &mut AnyConnection, url: &str) {
    if is_sqlite(url) {
        conn.execute(
            format!(
                "CREATE TRIGGER {TRIGGER} BEFORE INSERT ON audit_entries \
                 BEGIN SELECT RAISE(ABORT, 'audit disabled'); END"
            )
            .as_str(),
        )
        .await
        .unwrap();
    } else {
        conn.execute(
            format!(
                "CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'audit disabled'; END $$"
            )
            .as_str(),
        )
        .await
        .unwrap();
        conn.execute(
            format!(
                "CREATE TRIGGER {TRIGGER} BEFORE INSERT ON audit_entries \
                 FOR EACH ROW EXECUTE FUNCTION {TRIGGER}()"
            )
            .as_str(),
        )
        .await
        .unwrap();
    }
}

/// Undoes [`refuse_audit`].
pub async fn accept_audit(conn: &mut AnyConnection, url: &str) {
    let drop = if is_sqlite(url) {
        format!("DROP TRIGGER {TRIGGER}")
    } else {
        format!("DROP TRIGGER {TRIGGER} ON audit_entries")
    };
    conn.execute(drop.as_str()).await.unwrap();
}

/// Makes every commit that appends audit entries fail at the commit itself: a deferred
/// constraint trigger raises at COMMIT, after every statement succeeded (PostgreSQL).
/// SQLite has no deferred trigger, so there the insert fails, the last statement
/// before the commit ([`refuse_audit`]).
pub async fn fail_audit_commits(conn: &mut AnyConnection, url: &str) {
    if is_sqlite(url) {
        return refuse_audit(conn, url).await;
    }
    conn.execute(
        format!(
            "CREATE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'commit refused'; END $$"
        )
        .as_str(),
    )
    .await
    .unwrap();
    conn.execute(
        format!(
            "CREATE CONSTRAINT TRIGGER {TRIGGER} AFTER INSERT ON audit_entries \
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {TRIGGER}()"
        )
        .as_str(),
    )
    .await
    .unwrap();
}

/// The stored audit entries (leaf JSON) that name `request_id`.
pub async fn audit_leaves_of(conn: &mut AnyConnection, request_id: &str) -> Vec<String> {
    sqlx::query("SELECT leaf FROM audit_entries ORDER BY idx")
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>(0))
        .filter(|leaf| leaf.contains(&format!("\"request_id\":\"{request_id}\"")))
        .collect()
}
