//! Issue 13, item 9, written as the attack: a tenant is shredded while its token
//! holder keeps calling. The running server must stop at once: the token refused, the
//! cached tenant key and keys gone, no new token minted for the tenant.

use coffer_api::ErrorCode;
use coffer_api::admin::{MintTokenRequest, ShredTenantRequest};

use super::api::{code_of, create, wrap_request};
use super::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shredded_tenants_token_and_keys_stop_working_at_once() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let globex = server.tenant("globex").await;
    let key = create(&acme, "aes-256", "k").await;
    let other = create(&globex, "aes-256", "k").await;
    // Warm the caches: the tenant key and the key are loaded and used.
    let sealed = acme
        .wrap(&wrap_request(&key, b"secret", &[]))
        .await
        .unwrap();
    acme.wrap(&wrap_request(&key, b"again", &[])).await.unwrap();

    // A wrong confirmation shreds nothing.
    let refused = server
        .admin()
        .shred_tenant(&ShredTenantRequest {
            tenant: "acme".into(),
            confirm: "globex".into(),
        })
        .await;
    assert_eq!(code_of(refused), ErrorCode::InvalidRequest);
    acme.wrap(&wrap_request(&key, b"still", &[])).await.unwrap();

    // Through the CLI, as an operator does it.
    let (code, stdout, stderr) = server.cli(
        &server.admin_token,
        &["tenant", "shred", "acme", "--confirm", "acme"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("shredded"), "{stdout}");

    // No refresh tick in between: the very next calls are refused.
    assert_eq!(
        code_of(acme.wrap(&wrap_request(&key, b"after", &[])).await),
        ErrorCode::Unauthorized
    );
    assert_eq!(
        code_of(
            acme.unwrap(&coffer_api::crypto::UnwrapRequest {
                ciphertext: sealed.ciphertext.clone(),
                ..Default::default()
            })
            .await
        ),
        ErrorCode::Unauthorized
    );
    assert_eq!(code_of(acme.show_key(&key).await), ErrorCode::Unauthorized);
    // Nor can a fresh token be minted for it.
    let minted = server
        .admin()
        .mint_token(&MintTokenRequest {
            tenant: Some("acme".into()),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(minted), ErrorCode::Conflict);

    // Another tenant is untouched.
    globex
        .wrap(&wrap_request(&other, b"fine", &[]))
        .await
        .unwrap();
}

/// Another replica sharing the database had the tenant's key cached and its token in
/// memory; it follows at its next token refresh (every 10 seconds) or sooner, when its
/// key cache re-reads the destroyed key (`cache_ttl`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_replica_follows_a_shred_at_its_next_token_refresh() {
    let Some(a) = TestServer::start_with(
        super::harness::Db::Postgres,
        coffer_server::startup::InitMethod::KeyFile,
        &[],
    )
    .await
    else {
        return;
    };
    let token = a.tenant_token("acme").await;
    let key = create(&a.client(&token), "aes-256", "k").await;
    let b = a.replica().await;
    let on_b = b.client(&token);
    on_b.wrap(&wrap_request(&key, b"warm", &[])).await.unwrap();
    a.admin()
        .shred_tenant(&ShredTenantRequest {
            tenant: "acme".into(),
            confirm: "acme".into(),
        })
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        match on_b.wrap(&wrap_request(&key, b"after", &[])).await {
            Ok(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            Ok(_) => panic!("the replica still wraps under a shredded tenant's key"),
            Err(refused) => {
                // Whichever the replica learns first refuses the wrap: the revoked
                // token (its token refresh) or the destroyed key (its key cache
                // re-reading it after `cache_ttl`). Either way nothing is wrapped.
                let code = code_of(Err::<(), _>(refused));
                assert!(
                    matches!(code, ErrorCode::Unauthorized | ErrorCode::NotFound),
                    "the replica refused with {code:?}"
                );
                break;
            }
        }
    }
}
