//! Durability and at-rest checks with the real key hierarchy (sealed custody with a key
//! file, the key service, SQLite and PostgreSQL).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use coffer_core::store::Change;
use coffer_core::testing::fixtures::{actor, record};
use coffer_core::{Clock, CoreError, KeyService, NewKey, Store, SystemClock, TenantName, keyring};
use coffer_crypto::{KeyMaterial, KeySpec};
use coffer_custody_sealed::SealedCustody;
use coffer_store_sql::SqlStore;

use super::backends::{acks_until_sigkill, postgres_url, temp_dir};

/// Opens (initialising on first use) a key-file custody in `dir`, unsealed.
fn custody(dir: &Path) -> Arc<SealedCustody> {
    let (state, key_file) = (dir.join("custody.json"), dir.join("unseal.key"));
    let custody = if state.exists() {
        SealedCustody::open(&state).unwrap()
    } else {
        SealedCustody::init_key_file(&state, &key_file).unwrap()
    };
    custody.unseal_key_file(&key_file).unwrap();
    Arc::new(custody)
}

fn service(store: Arc<dyn Store>, custody: Arc<SealedCustody>) -> KeyService {
    KeyService::new(
        store,
        custody,
        Arc::new(SystemClock) as Arc<dyn Clock>,
        None,
        coffer_core::testing::fixtures::state_seal(),
    )
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("coffer.db").display())
}

/// Child side of the crash test: does nothing unless the parent set
/// `COFFER_CRASH_DIR`; then creates keys forever, printing `ACK <tenant> <key>` after
/// each `create_key` returned, until the parent kills it with SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let (Ok(dir), Ok(url)) = (
        std::env::var("COFFER_CRASH_DIR"),
        std::env::var("COFFER_CRASH_URL"),
    ) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let store: Arc<dyn Store> = Arc::new(SqlStore::connect(&url).await.unwrap());
    let keys = service(store, custody(&dir));
    let tenant = keys
        .create_tenant("crash".parse::<TenantName>().unwrap(), &actor())
        .await
        .unwrap();
    loop {
        let (key, _) = keys
            .create_key(tenant.id, NewKey::of(KeySpec::Aes256), &actor())
            .await
            .unwrap();
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "ACK {} {}", tenant.id, key.id).unwrap();
        out.flush().unwrap();
    }
}

/// Kills a child process with SIGKILL right after it acknowledged key creations, then
/// checks every acknowledged key survived with usable material.
async fn acknowledged_keys_survive_sigkill(url: String, dir: PathBuf) {
    let acked = acks_until_sigkill(
        "store::durability::crash_child",
        &[
            ("COFFER_CRASH_DIR", dir.display().to_string()),
            ("COFFER_CRASH_URL", url.clone()),
        ],
        25,
    );
    assert_eq!(
        acked.len(),
        25,
        "the child acknowledged fewer keys than expected"
    );

    let store: Arc<dyn Store> = Arc::new(SqlStore::connect(&url).await.unwrap());
    let keys = service(store, custody(&dir));
    for line in &acked {
        let (tenant, key) = line.split_once(' ').unwrap();
        let key = keys
            .key(tenant.parse().unwrap(), key.parse().unwrap())
            .await
            .unwrap();
        let versions = keys.versions(key.tenant, key.id).await.unwrap();
        assert_eq!(versions.len(), 1);
        let material = keys.load_material(&key, &versions[0]).await.unwrap();
        assert_eq!(material.spec(), KeySpec::Aes256);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_acknowledged_keys_survive_sigkill() {
    let dir = temp_dir();
    acknowledged_keys_survive_sigkill(sqlite_url(&dir), dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_acknowledged_keys_survive_sigkill() {
    let Some(url) = postgres_url().await else {
        return;
    };
    acknowledged_keys_survive_sigkill(url, temp_dir()).await;
}

/// Every secret the hierarchy holds for the keys created, as raw bytes.
async fn secrets_of_every_spec(keys: &KeyService, custody: &SealedCustody) -> Vec<Vec<u8>> {
    let tenant = keys
        .create_tenant("scan".parse().unwrap(), &actor())
        .await
        .unwrap();
    let wrapped_kek = keys
        .store()
        .get_tenant_kek(tenant.id)
        .await
        .unwrap()
        .unwrap();
    let kek = keyring::open_tenant_kek(custody, tenant.id, &wrapped_kek).unwrap();
    let mut secrets = vec![kek.expose_secret().to_vec()];
    for spec in KeySpec::ALL {
        let (key, first) = keys
            .create_key(tenant.id, NewKey::of(spec), &actor())
            .await
            .unwrap();
        let spare = keys.add_spare(tenant.id, key.id, &actor()).await.unwrap();
        for version in [first, spare] {
            let material: KeyMaterial = keys.load_material(&key, &version).await.unwrap();
            // Past the two header bytes is the key, seed, scalar or PKCS #8. Public
            // parts are stored in the clear on purpose, so they do not count: an ECDSA
            // body ends with its public point; an RSA PKCS #8 carries the modulus, so
            // only what follows it (the exponents and primes) counts.
            let stored = material.to_stored().unwrap();
            let body = &stored.expose_secret()[2..];
            let public = material.public_key().map(|p| p.raw()).unwrap_or_default();
            let secret = if spec.is_rsa() {
                // RSAPublicKey DER: SEQUENCE and INTEGER headers (4 + 5 bytes with the
                // sign byte), the modulus, then e = 65537 (5 bytes).
                let modulus = &public[9..public.len() - 5];
                let at = body
                    .windows(modulus.len())
                    .position(|w| w == modulus)
                    .unwrap();
                &body[at + modulus.len()..]
            } else if spec.as_str().starts_with("ecdsa-") {
                &body[..body.len() - public.len()]
            } else {
                body
            };
            secrets.push(secret.to_vec());
        }
    }
    secrets
}

fn assert_absent(haystack: &[u8], secrets: &[Vec<u8>], what: &str) {
    for secret in secrets {
        // Any 16-byte window of a secret found in the clear is a leak.
        for window in secret.windows(16).step_by(8) {
            let hex = hex_lower(window);
            let found = haystack.windows(16).any(|w| w == window)
                || haystack.windows(hex.len()).any(|w| w == hex.as_bytes());
            assert!(!found, "secret bytes found in the clear in {what}");
        }
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_holds_no_secret_in_the_clear() {
    let dir = temp_dir();
    let store = SqlStore::connect(&sqlite_url(&dir)).await.unwrap();
    let custody = custody(&dir);
    let keys = service(Arc::new(store.clone()), custody.clone());
    let secrets = secrets_of_every_spec(&keys, &custody).await;
    store.close().await;
    let mut haystack = Vec::new();
    for file in ["coffer.db", "coffer.db-wal", "custody.json"] {
        if let Ok(bytes) = std::fs::read(dir.join(file)) {
            haystack.extend_from_slice(&bytes);
        }
    }
    assert!(haystack.len() > 10_000, "the database was written");
    assert_absent(&haystack, &secrets, "the SQLite files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rows_hold_no_secret_in_the_clear() {
    let Some(url) = postgres_url().await else {
        return;
    };
    let dir = temp_dir();
    let store = SqlStore::connect(&url).await.unwrap();
    let custody = custody(&dir);
    let keys = service(Arc::new(store), custody.clone());
    let secrets = secrets_of_every_spec(&keys, &custody).await;
    // Every row of every table, as PostgreSQL renders it (bytea as \x hex).
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let mut haystack = String::new();
    for table in [
        "tenants",
        "tenant_keks",
        "keys",
        "key_versions",
        "aliases",
        "events",
    ] {
        let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT t::text FROM {table} t"))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        haystack.extend(rows);
    }
    assert!(haystack.len() > 10_000, "rows were written");
    assert_absent(haystack.as_bytes(), &secrets, "the PostgreSQL rows");
}

/// Wrapped material copied to another key's row does not unwrap there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn material_moved_to_another_row_fails_to_unwrap() {
    let dir = temp_dir();
    let store: Arc<dyn Store> = Arc::new(SqlStore::connect(&sqlite_url(&dir)).await.unwrap());
    let keys = service(store.clone(), custody(&dir));
    let tenant = keys
        .create_tenant("swap".parse().unwrap(), &actor())
        .await
        .unwrap();
    let (a, a1) = keys
        .create_key(tenant.id, NewKey::of(KeySpec::Ed25519), &actor())
        .await
        .unwrap();
    let (b, b1) = keys
        .create_key(tenant.id, NewKey::of(KeySpec::Ed25519), &actor())
        .await
        .unwrap();
    let event = coffer_core::Event::tenant(tenant.id, "test.swap", "", SystemClock.now());
    let swap = Change::Material {
        version: b1.number,
        from: b1.wrapped_material.clone(),
        to: a1.wrapped_material.clone(),
    };
    store
        .apply(tenant.id, b.id, &[swap], &record(&event))
        .await
        .unwrap();
    let moved = keys.versions(tenant.id, b.id).await.unwrap().remove(0);
    let err = keys.load_material(&b, &moved).await.err().unwrap();
    assert!(matches!(err, CoreError::Crypto(_)), "{err}");
    // Same key, another version number: also refused.
    let spare = keys.add_spare(tenant.id, a.id, &actor()).await.unwrap();
    let relabelled = coffer_core::KeyVersion {
        wrapped_material: a1.wrapped_material.clone(),
        ..spare
    };
    assert!(keys.load_material(&a, &relabelled).await.is_err());
    // The original row still works.
    assert!(keys.load_material(&a, &a1).await.is_ok());
}
