//! Issue 13, item 9, written as the attack: a key-scoped token (`keys=` caveat) probes
//! track ids and aliases of keys outside its scope. Each answer must be the one an
//! absent track id or alias gets, so the probe learns nothing about what exists.

use std::collections::BTreeSet;

use coffer_api::crypto::DatakeyRequest;
use coffer_api::keys::SetAliasRequest;
use coffer_client::ClientError;
use coffer_core::token::{Caveat, Token};

use super::api::create;
use super::harness::TestServer;

/// Status, code and message of a refusal; a success is a failed probe.
fn refusal<T: std::fmt::Debug>(result: Result<T, ClientError>) -> (u16, String, String) {
    match result {
        Err(ClientError::Api {
            status,
            code,
            message,
            ..
        }) => (status, code.as_str().to_owned(), message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_scoped_token_cannot_tell_out_of_scope_track_ids_and_aliases_from_absent_ones() {
    let server = TestServer::start().await;
    let token = server.tenant_token("acme").await;
    let tenant = server.client(&token);
    let inside = create(&tenant, "aes-256", "inside").await;
    let outside = create(&tenant, "aes-256", "outside").await;
    tenant
        .datakey(&DatakeyRequest {
            key_id: outside.clone(),
            track_id: Some("track-outside".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let scoped = server.client(
        &Token::decode(&token)
            .unwrap()
            .attenuate(Caveat::Keys(BTreeSet::from(["alias/inside".to_owned()])))
            .unwrap()
            .encode(),
    );

    let out = refusal(scoped.tracked("track-outside").await);
    let absent = refusal(scoped.tracked("track-absent").await);
    assert_eq!(out, absent);
    assert_eq!(out.0, 404);

    let out = refusal(scoped.show_key("alias/outside").await);
    let absent = refusal(scoped.show_key("alias/absent").await);
    assert_eq!(out, absent);
    assert_eq!(out.0, 404);

    let out = refusal(scoped.disable_key("alias/outside").await);
    let absent = refusal(scoped.disable_key("alias/absent").await);
    assert_eq!(out, absent);
    assert_eq!(out.0, 404);

    // Moving an alias that names an out-of-scope key, onto a key in scope.
    let move_onto_inside = |alias: &str| SetAliasRequest {
        alias: alias.into(),
        key_id: "alias/inside".into(),
        expected_key_id: None,
    };
    let out = refusal(scoped.set_alias(&move_onto_inside("outside")).await);
    let absent = refusal(scoped.set_alias(&move_onto_inside("absent")).await);
    assert_eq!(out, absent);
    assert_eq!(out.0, 404);

    // None of the probes changed anything.
    let shown = tenant.show_key(&outside).await.unwrap();
    assert_eq!(shown.state, "enabled");
    assert_eq!(shown.aliases, vec!["alias/outside".to_owned()]);
    assert_eq!(
        tenant.show_key(&inside).await.unwrap().aliases,
        vec!["alias/inside".to_owned()]
    );
}
