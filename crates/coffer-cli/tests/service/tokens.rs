//! Capability tokens: scopes, offline attenuation, revocation, expiry, forgery.

use std::collections::BTreeSet;

use coffer_api::ErrorCode;
use coffer_api::admin::{MintTokenRequest, RevokeTokenRequest};
use coffer_core::token::{Caveat, Operation, Token};

use super::api::{code_of, create, unwrap_request, wrap_request};
use super::harness::TestServer;

async fn mint(server: &TestServer, request: MintTokenRequest) -> (String, String) {
    let minted = server.admin().mint_token(&request).await.unwrap();
    (minted.token, minted.token_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attenuated_tokens_only_narrow() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let key = create(&acme, "aes-256", "k").await;
    let other = create(&acme, "aes-256", "other").await;
    let sealed = acme.wrap(&wrap_request(&key, b"x", &[])).await.unwrap();
    let (full, _) = mint(
        &server,
        MintTokenRequest {
            tenant: Some("acme".into()),
            ..Default::default()
        },
    )
    .await;

    // Offline: the holder appends caveats without the server.
    let token = Token::decode(&full).unwrap();
    let unwrap_only = token
        .attenuate(Caveat::Ops(BTreeSet::from([Operation::Unwrap])))
        .unwrap();
    let unwrap_only = unwrap_only
        .attenuate(Caveat::Keys(BTreeSet::from(["alias/k".to_owned()])))
        .unwrap()
        .encode();
    let narrow = server.client(&unwrap_only);
    assert_eq!(
        narrow
            .unwrap(&unwrap_request(&sealed.ciphertext, &[]))
            .await
            .unwrap()
            .plaintext
            .expose_secret(),
        b"x"
    );
    assert_eq!(
        code_of(narrow.wrap(&wrap_request(&key, b"y", &[])).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code_of(narrow.wrap(&wrap_request(&other, b"y", &[])).await),
        ErrorCode::Forbidden
    );
    let other_sealed = acme.wrap(&wrap_request(&other, b"z", &[])).await.unwrap();
    assert_eq!(
        code_of(
            narrow
                .unwrap(&unwrap_request(&other_sealed.ciphertext, &[]))
                .await
        ),
        ErrorCode::NotFound
    );

    // Stripping a caveat (keeping the later tag) is a forgery.
    let forged = format!("{}x", &unwrap_only[..unwrap_only.len() - 1]);
    assert_eq!(
        code_of(
            server
                .client(&forged)
                .unwrap(&unwrap_request(&sealed.ciphertext, &[]))
                .await
        ),
        ErrorCode::Unauthorized
    );

    // Minted with scopes.
    let (scoped, _) = mint(
        &server,
        MintTokenRequest {
            tenant: Some("acme".into()),
            operations: vec!["wrap".into()],
            keys: vec![other.clone()],
            ..Default::default()
        },
    )
    .await;
    let scoped = server.client(&scoped);
    scoped
        .wrap(&wrap_request(&other, b"ok", &[]))
        .await
        .unwrap();
    assert_eq!(
        code_of(scoped.wrap(&wrap_request(&key, b"no", &[])).await),
        ErrorCode::NotFound
    );
    assert_eq!(
        code_of(
            scoped
                .unwrap(&unwrap_request(&sealed.ciphertext, &[]))
                .await
        ),
        ErrorCode::Forbidden
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_expired_tokens_are_refused() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let key = create(&acme, "aes-256", "k").await;
    let (token, id) = mint(
        &server,
        MintTokenRequest {
            tenant: Some("acme".into()),
            ..Default::default()
        },
    )
    .await;
    let holder = server.client(&token);
    holder.wrap(&wrap_request(&key, b"x", &[])).await.unwrap();
    // Attenuated children die with their parent.
    let child = Token::decode(&token)
        .unwrap()
        .attenuate(Caveat::Ops(BTreeSet::from([Operation::Wrap])))
        .unwrap()
        .encode();
    server
        .admin()
        .revoke_token(&RevokeTokenRequest {
            token_id: id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        code_of(holder.wrap(&wrap_request(&key, b"x", &[])).await),
        ErrorCode::Unauthorized
    );
    assert_eq!(
        code_of(
            server
                .client(&child)
                .wrap(&wrap_request(&key, b"x", &[]))
                .await
        ),
        ErrorCode::Unauthorized
    );
    assert_eq!(
        code_of(
            server
                .admin()
                .revoke_token(&RevokeTokenRequest { token_id: id })
                .await
        ),
        ErrorCode::NotFound
    );

    // Expiry: a caveat already in the past.
    let (fresh, _) = mint(
        &server,
        MintTokenRequest {
            tenant: Some("acme".into()),
            ..Default::default()
        },
    )
    .await;
    let expired = Token::decode(&fresh)
        .unwrap()
        .attenuate(Caveat::Expires(1_000_000_000))
        .unwrap()
        .encode();
    assert_eq!(
        code_of(
            server
                .client(&expired)
                .wrap(&wrap_request(&key, b"x", &[]))
                .await
        ),
        ErrorCode::Unauthorized
    );
    // A token of another deployment.
    let foreign = TestServer::start().await;
    assert_eq!(
        code_of(server.client(&foreign.admin_token).list_tenants().await),
        ErrorCode::Unauthorized
    );
    // No token at all.
    assert_eq!(
        code_of(server.anonymous().list_keys(&Default::default()).await),
        ErrorCode::Unauthorized
    );
}
