//! Embedded schema migrations, run at every start.
//!
//! A small runner of Coffer's own rather than sqlx's migrator: sqlx embeds migrations
//! only through a proc macro that would compile both database drivers a second time for
//! the host, and the needs here are three: ordered, transactional, recorded. Each
//! migration runs in one transaction with its row in `coffer_migrations`; on PostgreSQL
//! an advisory lock keeps replicas that start together from racing.

use coffer_core::StoreResult;
use sqlx::{AnyPool, Executor};

use crate::Backend;
use crate::errors::unavailable;

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "keys",
        sqlite: include_str!("../migrations/sqlite/0001_keys.sql"),
        postgres: include_str!("../migrations/postgres/0001_keys.sql"),
    },
    Migration {
        version: 2,
        name: "tokens",
        sqlite: include_str!("../migrations/sqlite/0002_tokens.sql"),
        postgres: include_str!("../migrations/postgres/0002_tokens.sql"),
    },
    Migration {
        version: 3,
        name: "audit",
        sqlite: include_str!("../migrations/sqlite/0003_audit.sql"),
        postgres: include_str!("../migrations/postgres/0003_audit.sql"),
    },
    Migration {
        version: 4,
        name: "rotation_saga",
        sqlite: include_str!("../migrations/sqlite/0004_rotation_saga.sql"),
        postgres: include_str!("../migrations/postgres/0004_rotation_saga.sql"),
    },
    Migration {
        version: 5,
        name: "cert_chain",
        sqlite: include_str!("../migrations/sqlite/0005_cert_chain.sql"),
        postgres: include_str!("../migrations/postgres/0005_cert_chain.sql"),
    },
    Migration {
        version: 6,
        name: "leases",
        sqlite: include_str!("../migrations/sqlite/0006_leases.sql"),
        postgres: include_str!("../migrations/postgres/0006_leases.sql"),
    },
    Migration {
        version: 7,
        name: "audit_head",
        sqlite: include_str!("../migrations/sqlite/0007_audit_head.sql"),
        postgres: include_str!("../migrations/postgres/0007_audit_head.sql"),
    },
    Migration {
        version: 8,
        name: "rotation_worker",
        sqlite: include_str!("../migrations/sqlite/0008_rotation_worker.sql"),
        postgres: include_str!("../migrations/postgres/0008_rotation_worker.sql"),
    },
    Migration {
        version: 9,
        name: "version_use",
        sqlite: include_str!("../migrations/sqlite/0009_version_use.sql"),
        postgres: include_str!("../migrations/postgres/0009_version_use.sql"),
    },
    Migration {
        version: 10,
        name: "attestation_policies",
        sqlite: include_str!("../migrations/sqlite/0010_attestation_policies.sql"),
        postgres: include_str!("../migrations/postgres/0010_attestation_policies.sql"),
    },
    Migration {
        version: 11,
        name: "hsm_keys",
        sqlite: include_str!("../migrations/sqlite/0011_hsm_keys.sql"),
        postgres: include_str!("../migrations/postgres/0011_hsm_keys.sql"),
    },
    Migration {
        version: 13,
        name: "tenant_aws_account",
        sqlite: include_str!("../migrations/sqlite/0013_tenant_aws_account.sql"),
        postgres: include_str!("../migrations/postgres/0013_tenant_aws_account.sql"),
    },
    Migration {
        version: 15,
        name: "tenant_pq_policy",
        sqlite: include_str!("../migrations/sqlite/0015_tenant_pq_policy.sql"),
        postgres: include_str!("../migrations/postgres/0015_tenant_pq_policy.sql"),
    },
    Migration {
        version: 16,
        name: "key_tags",
        sqlite: include_str!("../migrations/sqlite/0016_key_tags.sql"),
        postgres: include_str!("../migrations/postgres/0016_key_tags.sql"),
    },
    Migration {
        version: 17,
        name: "token_grant_tag",
        sqlite: include_str!("../migrations/sqlite/0017_token_grant_tag.sql"),
        postgres: include_str!("../migrations/postgres/0017_token_grant_tag.sql"),
    },
    Migration {
        version: 19,
        name: "state_tags",
        sqlite: include_str!("../migrations/sqlite/0019_state_tags.sql"),
        postgres: include_str!("../migrations/postgres/0019_state_tags.sql"),
    },
    Migration {
        version: 20,
        name: "rotation_allow_list",
        sqlite: include_str!("../migrations/sqlite/0020_rotation_allow_list.sql"),
        postgres: include_str!("../migrations/postgres/0020_rotation_allow_list.sql"),
    },
    Migration {
        version: 21,
        name: "tenant_pq_rollout",
        sqlite: include_str!("../migrations/sqlite/0021_tenant_pq_rollout.sql"),
        postgres: include_str!("../migrations/postgres/0021_tenant_pq_rollout.sql"),
    },
    Migration {
        version: 24,
        name: "key_access",
        sqlite: include_str!("../migrations/sqlite/0024_key_access.sql"),
        postgres: include_str!("../migrations/postgres/0024_key_access.sql"),
    },
];

/// Arbitrary constant naming Coffer's migration lock among PostgreSQL advisory locks.
const ADVISORY_LOCK_ID: i64 = 0x0C0F_FE12;

/// Applies every migration not yet recorded.
pub async fn run(pool: &AnyPool, backend: Backend) -> StoreResult<()> {
    let mut conn = pool.acquire().await.map_err(unavailable)?;
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(ADVISORY_LOCK_ID)
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
    }
    let result = apply_pending(&mut conn, backend).await;
    if backend == Backend::Postgres {
        // Released even when a migration failed; the session ends with the connection
        // anyway, this only makes it prompt.
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(ADVISORY_LOCK_ID)
            .execute(&mut *conn)
            .await;
    }
    result
}

async fn apply_pending(conn: &mut sqlx::AnyConnection, backend: Backend) -> StoreResult<()> {
    conn.execute(
        "CREATE TABLE IF NOT EXISTS coffer_migrations (\
            version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .await
    .map_err(unavailable)?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM coffer_migrations")
        .fetch_all(&mut *conn)
        .await
        .map_err(unavailable)?;
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        let sql = match backend {
            Backend::Sqlite => migration.sqlite,
            Backend::Postgres => migration.postgres,
        };
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(unavailable)?;
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO coffer_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(migration.version)
        .bind(migration.name)
        .bind(crate::now_millis())
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied migration"
        );
    }
    Ok(())
}
