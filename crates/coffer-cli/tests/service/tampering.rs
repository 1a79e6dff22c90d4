//! Issue 13, items 6 and 7 and the smaller findings they touch, written as the attacks:
//! database write access alone must not widen a token or publish a key Coffer does not
//! hold, a tenant named like another tenant's id is refused, and a rotation period too
//! short to be meant is refused. Storage matters here, so the tampering cases run on
//! SQLite and (where configured) PostgreSQL.

use coffer_api::ErrorCode;
use coffer_api::admin::{CreateTenantRequest, MintTokenRequest};
use coffer_api::keys::{CreateKeyRequest, RotationPolicyView, SetPolicyRequest};
use coffer_server::startup::InitMethod;
use sqlx::{AnyConnection, Connection, Executor};

use super::api::{code_of, create, wrap_request};
use super::harness::{Db, TestServer};

async fn connect(database_url: &str) -> AnyConnection {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(database_url).await.unwrap();
    if database_url.starts_with("sqlite:") {
        conn.execute("PRAGMA busy_timeout=10000").await.unwrap();
    }
    conn
}

/// Runs `statements` (each with `$1` bound to `arg`) against the stopped server's
/// database, then starts it again: the edit an attacker with write access makes.
async fn tamper_and_restart(server: TestServer, statements: &[(&str, &str)]) -> TestServer {
    let stopped = server.stop().await;
    let mut conn = connect(&stopped.database_url).await;
    for (sql, arg) in statements {
        let done = sqlx::query(sql)
            .bind(*arg)
            .execute(&mut conn)
            .await
            .unwrap();
        assert!(done.rows_affected() >= 1, "{sql} changed nothing");
    }
    conn.close().await.unwrap();
    stopped.start().await
}

async fn mint_for(server: &TestServer, tenant: &str) -> (String, String) {
    let minted = server
        .admin()
        .mint_token(&MintTokenRequest {
            tenant: Some(tenant.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    (minted.token, minted.token_id)
}

async fn create_tenant(server: &TestServer, name: &str) -> String {
    server
        .admin()
        .create_tenant(&CreateTenantRequest {
            name: name.into(),
            aws_account_id: None,
        })
        .await
        .unwrap()
        .tenant_id
}

async fn tenant_token_edited_into_admin_or_another_tenant(db: Db) {
    let Some(server) = TestServer::start_with(db, InitMethod::KeyFile, &[]).await else {
        return;
    };
    create_tenant(&server, "acme").await;
    let globex = create_tenant(&server, "globex").await;
    let (to_admin, to_admin_id) = mint_for(&server, "acme").await;
    let (to_globex, to_globex_id) = mint_for(&server, "acme").await;
    let (untouched, _) = mint_for(&server, "acme").await;
    let globex_client = server.client(&mint_for(&server, "globex").await.0);
    let secret_key = create(&globex_client, "aes-256", "secret").await;
    let sealed = globex_client
        .wrap(&wrap_request(&secret_key, b"globex data", &[]))
        .await
        .unwrap();

    let server = tamper_and_restart(
        server,
        &[
            (
                "UPDATE tokens SET kind = 'admin', tenant_id = NULL WHERE id = $1",
                &to_admin_id,
            ),
            (
                &format!("UPDATE tokens SET tenant_id = '{globex}' WHERE id = $1"),
                &to_globex_id,
            ),
        ],
    )
    .await;

    assert_eq!(
        code_of(server.client(&to_admin).list_tenants().await),
        ErrorCode::Unauthorized,
        "a tenant token edited into an admin token must not authenticate"
    );
    assert_eq!(
        code_of(
            server
                .client(&to_globex)
                .unwrap(&super::api::unwrap_request(&sealed.ciphertext, &[]))
                .await
        ),
        ErrorCode::Unauthorized,
        "a token moved to another tenant must not decrypt that tenant's data"
    );
    assert!(server.state.kms.integrity_failures() >= 2);
    // Fails closed for the edited rows only.
    create(&server.client(&untouched), "aes-256", "still-works").await;
    server.admin().list_tenants().await.unwrap();
    let metrics = reqwest::get(format!("{}/metrics", server.ops))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("kms_integrity_failed_total{check=\"token_grant\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_token_row_no_longer_authenticates_sqlite() {
    tenant_token_edited_into_admin_or_another_tenant(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_token_row_no_longer_authenticates_postgres() {
    tenant_token_edited_into_admin_or_another_tenant(Db::Postgres).await;
}

/// A store from before grants were bound (no tags, no marker) keeps working: the
/// first start binds every record; after that, a record stripped of its tag fails.
async fn upgraded_store_binds_earlier_tokens(db: Db) {
    let Some(server) = TestServer::start_with(db, InitMethod::KeyFile, &[]).await else {
        return;
    };
    create_tenant(&server, "acme").await;
    let (old, old_id) = mint_for(&server, "acme").await;
    let server = tamper_and_restart(
        server,
        &[
            ("UPDATE tokens SET grant_tag = NULL WHERE id <> $1", ""),
            (
                "DELETE FROM server_secrets WHERE name = $1",
                "token-grants-bound",
            ),
        ],
    )
    .await;
    create(&server.client(&old), "aes-256", "k").await;
    server.admin().list_tenants().await.unwrap();
    assert_eq!(server.state.kms.integrity_failures(), 0);

    // Bound now: stripping the tag again is tampering, not an earlier record.
    let server = tamper_and_restart(
        server,
        &[("UPDATE tokens SET grant_tag = NULL WHERE id = $1", &old_id)],
    )
    .await;
    assert_eq!(
        code_of(server.client(&old).list_keys(&Default::default()).await),
        ErrorCode::Unauthorized
    );
    assert_eq!(server.state.kms.integrity_failures(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgraded_store_keeps_earlier_tokens_working_sqlite() {
    upgraded_store_binds_earlier_tokens(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgraded_store_keeps_earlier_tokens_working_postgres() {
    upgraded_store_binds_earlier_tokens(Db::Postgres).await;
}

async fn published_key(client: &coffer_client::Client, alias: &str) -> String {
    let key = client
        .create_key(&CreateKeyRequest {
            spec: "ed25519".into(),
            alias: Some(alias.into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .key_id;
    client.publish_key(&key).await.unwrap();
    key
}

fn jwk_x(jwks: &serde_json::Value, key: &str) -> Option<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == format!("{key}:1"))
        .map(|k| k["x"].as_str().unwrap().to_owned())
}

async fn swapped_public_key_is_not_published(db: Db) {
    let Some(server) = TestServer::start_with(db, InitMethod::KeyFile, &[]).await else {
        return;
    };
    let client = server.tenant("releases").await;
    let victim = published_key(&client, "victim").await;
    let attacker = published_key(&client, "attacker").await;
    let jwks = server.anonymous().jwks("releases").await.unwrap();
    let attacker_x = jwk_x(&jwks, &attacker).unwrap();
    assert_ne!(jwk_x(&jwks, &victim), Some(attacker_x.clone()));

    // The attacker's public key written into the victim's row.
    let stopped = server.stop().await;
    let mut conn = connect(&stopped.database_url).await;
    let (swapped,): (Vec<u8>,) =
        sqlx::query_as("SELECT public_key FROM key_versions WHERE key_id = $1")
            .bind(&attacker)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let done = sqlx::query("UPDATE key_versions SET public_key = $1 WHERE key_id = $2")
        .bind(swapped)
        .bind(&victim)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
    conn.close().await.unwrap();
    let server = stopped.start().await;
    let jwks = server.anonymous().jwks("releases").await.unwrap();
    assert_eq!(
        jwk_x(&jwks, &victim),
        None,
        "the swapped key must not be served"
    );
    assert_eq!(jwk_x(&jwks, &attacker), Some(attacker_x));
    assert!(server.state.kms.integrity_failures() >= 1);
    // The key itself refuses to serve: a 500, not a client error.
    let client = server.client(&mint_for(&server, "releases").await.0);
    assert_eq!(
        code_of(client.sign(&sign_request("alias/victim")).await),
        ErrorCode::Internal
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapped_public_key_is_not_in_jwks_sqlite() {
    swapped_public_key_is_not_published(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapped_public_key_is_not_in_jwks_postgres() {
    swapped_public_key_is_not_published(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_stored_material_is_a_logged_500_not_a_client_error() {
    let server = TestServer::start().await;
    let client = server.tenant("acme").await;
    let key = create(&client, "aes-256", "k").await;
    let token = mint_for(&server, "acme").await.0;
    let server = tamper_and_restart(
        server,
        &[(
            "UPDATE key_versions SET wrapped_material = X'00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899' \
             WHERE key_id = $1",
            &key,
        )],
    )
    .await;
    assert_eq!(
        code_of(
            server
                .client(&token)
                .wrap(&wrap_request(&key, b"x", &[]))
                .await
        ),
        ErrorCode::Internal
    );
    // Found twice: by the known-answer checks at start (which keep the server not
    // ready), and by the request.
    assert_eq!(server.state.kms.integrity_failures(), 2);
    assert!(matches!(
        server.state.kms.known_answer_outcome(),
        coffer_core::kms::KnownAnswers::Failed(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_named_like_another_tenants_id_is_refused() {
    let server = TestServer::start().await;
    let globex = create_tenant(&server, "globex").await;
    for name in [globex.clone(), globex.replace('-', "")] {
        assert_eq!(
            code_of(
                server
                    .admin()
                    .create_tenant(&CreateTenantRequest {
                        name,
                        aws_account_id: None
                    })
                    .await
            ),
            ErrorCode::InvalidRequest
        );
    }
    // Minting "for" globex's id still names globex, as it always did; no second tenant
    // answers to it.
    let tenants = server.admin().list_tenants().await.unwrap();
    assert_eq!(tenants.tenants.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_period_under_an_hour_is_refused() {
    let server = TestServer::start().await;
    let client = server.tenant("acme").await;
    for period in ["0s", "1s", "59m"] {
        let request = CreateKeyRequest {
            spec: "aes-256".into(),
            rotation: Some(RotationPolicyView {
                period: Some(period.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            code_of(client.create_key(&request).await),
            ErrorCode::InvalidRequest,
            "{period}"
        );
    }
    let key = create(&client, "aes-256", "k").await;
    let policy = |period: &str| SetPolicyRequest {
        rotation: Some(RotationPolicyView {
            period: Some(period.into()),
            ..Default::default()
        }),
        validity: None,
    };
    assert_eq!(
        code_of(client.set_policy(&key, &policy("1s")).await),
        ErrorCode::InvalidRequest
    );
    client.set_policy(&key, &policy("1h")).await.unwrap();
}

fn sign_request(key: &str) -> coffer_api::crypto::SignRequest {
    coffer_api::crypto::SignRequest {
        attestation: None,
        key_id: key.into(),
        message: Some(coffer_api::B64(b"release".to_vec())),
        digest: None,
        mu: None,
        algorithm: None,
    }
}

async fn edited_spec_is_detected(db: Db) {
    let Some(server) = TestServer::start_with(db, InitMethod::KeyFile, &[]).await else {
        return;
    };
    let client = server.tenant("acme").await;
    let key = create(&client, "aes-256", "k").await;
    let token = mint_for(&server, "acme").await.0;
    let server = tamper_and_restart(
        server,
        &[(
            "UPDATE keys SET spec = 'hmac-sha256', purpose = 'mac' WHERE id = $1",
            &key,
        )],
    )
    .await;
    let client = server.client(&token);
    assert_eq!(
        code_of(client.wrap(&wrap_request(&key, b"x", &[])).await),
        ErrorCode::Internal,
        "an edited spec is an integrity failure, not the caller's wrong purpose"
    );
    // Found twice: by the known-answer checks at start (which keep the server not
    // ready), and by the request.
    assert_eq!(server.state.kms.integrity_failures(), 2);
    assert!(matches!(
        server.state.kms.known_answer_outcome(),
        coffer_core::kms::KnownAnswers::Failed(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_key_spec_is_an_integrity_failure_sqlite() {
    edited_spec_is_detected(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_key_spec_is_an_integrity_failure_postgres() {
    edited_spec_is_detected(Db::Postgres).await;
}
