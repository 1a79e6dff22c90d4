//! Issue 13, item 1, written as the attacks: admin powers are operations caveats can
//! name (`admin:tenants`, `admin:tokens`, `audit:read`, `audit:checkpoint`), so an
//! attenuated admin token is really narrower; and a minted token never outlives or
//! out-powers the token that minted it.

use std::collections::BTreeSet;
use std::time::Duration;

use coffer_api::ErrorCode;
use coffer_api::admin::{CreateTenantRequest, MintTokenRequest, RevokeTokenRequest};
use coffer_client::ClientError;
use coffer_core::token::{Caveat, Operation, Token};

use super::api::{code_of, create, wrap_request};
use super::harness::TestServer;

/// The server's admin token narrowed offline by `caveat`, as its holder can.
fn attenuated(server: &TestServer, caveat: Caveat) -> String {
    Token::decode(&server.admin_token)
        .unwrap()
        .attenuate(caveat)
        .unwrap()
        .encode()
}

fn ops(list: &[Operation]) -> Caveat {
    Caveat::Ops(list.iter().copied().collect::<BTreeSet<_>>())
}

fn admin_request() -> MintTokenRequest {
    MintTokenRequest {
        admin: true,
        ..Default::default()
    }
}

fn message_of<T: std::fmt::Debug>(result: Result<T, ClientError>) -> String {
    match result {
        Err(ClientError::Api {
            code: ErrorCode::Forbidden,
            message,
            ..
        }) => message,
        other => panic!("expected 403, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attenuated_admin_token_cannot_mint_an_admin_token() {
    let server = TestServer::start().await;
    let verify_only = server.client(&attenuated(&server, ops(&[Operation::Verify])));
    assert_eq!(
        code_of(verify_only.mint_token(&admin_request()).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code_of(
            verify_only
                .mint_token(&MintTokenRequest {
                    tenant: Some("acme".into()),
                    ..Default::default()
                })
                .await
        ),
        ErrorCode::Forbidden
    );
    let minted = server.admin().mint_token(&admin_request()).await.unwrap();
    assert_eq!(
        code_of(
            verify_only
                .revoke_token(&RevokeTokenRequest {
                    token_id: minted.token_id.clone(),
                })
                .await
        ),
        ErrorCode::Forbidden
    );
    // The token it tried to revoke still works.
    server.client(&minted.token).list_tenants().await.unwrap();

    // With admin:tokens it may mint, but only within its own operations: asking for
    // more is refused by name, asking for nothing inherits its restriction.
    let minter = server.client(&attenuated(
        &server,
        ops(&[Operation::AdminTokens, Operation::Verify]),
    ));
    let wider = MintTokenRequest {
        operations: vec!["admin:tenants".into()],
        ..admin_request()
    };
    assert!(
        message_of(minter.mint_token(&wider).await).contains("admin:tenants"),
        "names the missing power"
    );
    let child = minter.mint_token(&admin_request()).await.unwrap();
    let child = server.client(&child.token);
    assert_eq!(
        code_of(child.list_tenants().await),
        ErrorCode::Forbidden,
        "the child inherited the minter's restriction"
    );
    child.mint_token(&admin_request()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_verify_admin_token_cannot_list_tenants_or_export_the_audit_log() {
    let server = TestServer::start().await;
    server
        .admin()
        .create_tenant(&CreateTenantRequest {
            name: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let verify_only = server.client(&attenuated(&server, ops(&[Operation::Verify])));
    assert_eq!(
        code_of(verify_only.list_tenants().await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code_of(
            verify_only
                .create_tenant(&CreateTenantRequest {
                    name: "globex".into(),
                    ..Default::default()
                })
                .await
        ),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code_of(verify_only.audit_entries(0, 10).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code_of(verify_only.audit_new_checkpoint().await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code_of(verify_only.audit_inclusion(0, 1).await),
        ErrorCode::Forbidden
    );

    // Each power is granted by its own name, and only it.
    let tenants_only = server.client(&attenuated(&server, ops(&[Operation::AdminTenants])));
    assert_eq!(tenants_only.list_tenants().await.unwrap().tenants.len(), 1);
    assert_eq!(
        code_of(tenants_only.audit_entries(0, 10).await),
        ErrorCode::Forbidden
    );
    let auditor = server.client(&attenuated(&server, ops(&[Operation::AuditRead])));
    assert!(!auditor.audit_entries(0, 10).await.unwrap().is_empty());
    auditor.audit_inclusion(0, 1).await.unwrap();
    assert_eq!(code_of(auditor.list_tenants().await), ErrorCode::Forbidden);
    assert_eq!(
        code_of(auditor.audit_new_checkpoint().await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code_of(auditor.mint_token(&admin_request()).await),
        ErrorCode::Forbidden
    );

    // A key scope narrows an admin token too: the tenant list and the audit log span
    // every key, so a key-scoped admin token gets neither.
    let scoped = server.client(&attenuated(
        &server,
        Caveat::Keys(BTreeSet::from(["alias/k".to_owned()])),
    ));
    assert!(message_of(scoped.list_tenants().await).contains("key-scoped"));
    assert!(message_of(scoped.audit_entries(0, 10).await).contains("key-scoped"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_of_a_two_second_admin_token_expires_with_it() {
    let server = TestServer::start().await;
    let parent = server
        .admin()
        .mint_token(&MintTokenRequest {
            ttl: Some("2s".into()),
            ..admin_request()
        })
        .await
        .unwrap();
    let parent = server.client(&parent.token);
    // Asking for no expiry, or a later one, gives the parent's.
    let forever = parent.mint_token(&admin_request()).await.unwrap();
    let later = parent
        .mint_token(&MintTokenRequest {
            ttl: Some("30d".into()),
            ..admin_request()
        })
        .await
        .unwrap();
    let tenant_child = {
        parent
            .create_tenant(&CreateTenantRequest {
                name: "acme".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        parent
            .mint_token(&MintTokenRequest {
                tenant: Some("acme".into()),
                ..Default::default()
            })
            .await
            .unwrap()
    };
    let children = [&forever.token, &later.token];
    for child in children {
        server.client(child).list_tenants().await.unwrap();
    }
    let tenant = server.client(&tenant_child.token);
    let key = create(&tenant, "aes-256", "k").await;
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    for child in children {
        assert_eq!(
            code_of(server.client(child).list_tenants().await),
            ErrorCode::Unauthorized
        );
    }
    assert_eq!(
        code_of(tenant.wrap(&wrap_request(&key, b"x", &[])).await),
        ErrorCode::Unauthorized
    );
    assert_eq!(
        code_of(parent.list_tenants().await),
        ErrorCode::Unauthorized
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_scoped_admin_token_mints_only_within_its_keys() {
    let server = TestServer::start().await;
    let scoped = server.client(&attenuated(
        &server,
        Caveat::Keys(BTreeSet::from(["alias/k".to_owned()])),
    ));
    server
        .admin()
        .create_tenant(&CreateTenantRequest {
            name: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let wider = MintTokenRequest {
        tenant: Some("acme".into()),
        keys: vec!["alias/other".into()],
        ..Default::default()
    };
    assert!(message_of(scoped.mint_token(&wider).await).contains("alias/other"));
    let child = scoped
        .mint_token(&MintTokenRequest {
            tenant: Some("acme".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let child = server.client(&child.token);
    let owner = server.client(
        &server
            .admin()
            .mint_token(&MintTokenRequest {
                tenant: Some("acme".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .token,
    );
    let inside = create(&owner, "aes-256", "k").await;
    let outside = create(&owner, "aes-256", "other").await;
    child.wrap(&wrap_request(&inside, b"x", &[])).await.unwrap();
    assert_eq!(
        code_of(child.wrap(&wrap_request(&outside, b"x", &[])).await),
        ErrorCode::NotFound,
        "the child kept the minter's key scope (outside it a key is as if absent)"
    );
}
