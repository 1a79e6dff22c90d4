//! The rotation worker on a real server: a saga is not bound to the request that
//! started it (a client that disconnects does not stop it), a saga paused with `until`
//! stays paused across a restart, concurrent starts make one saga and concurrent
//! resumes leave it consistent, and the list endpoint filters by key and status.

use std::time::Duration;

use coffer_api::ErrorCode;
use coffer_api::admin::MintTokenRequest;
use coffer_api::rotation::{ListRotationsQuery, ResumeRotationRequest, RotationHold, RotationView};
use coffer_client::{Client, ClientError};
use tokio::io::AsyncWriteExt;

use super::api::{code_of, create};
use coffer_server::startup::InitMethod;

use super::harness::{Db, TestServer};
use super::rotation::{accepted, settle, start};

/// Longer than several worker ticks (one second each): time enough for a worker that
/// wrongly drove a paused saga to have moved it.
const SEVERAL_TICKS: Duration = Duration::from_millis(2_500);

fn listed(key: Option<&str>, status: Option<&str>) -> ListRotationsQuery {
    ListRotationsQuery {
        key: key.map(str::to_owned),
        status: status.map(str::to_owned),
    }
}

async fn list(client: &Client, key: Option<&str>, status: Option<&str>) -> Vec<RotationView> {
    client
        .list_rotations(&listed(key, status))
        .await
        .unwrap()
        .rotations
}

async fn a_paused_rotation_stays_paused_across_a_restart(db: Db) {
    let Some(server) = TestServer::start_with(db, InitMethod::KeyFile, &[]).await else {
        return;
    };
    let token = server.tenant_token("acme").await;
    let key = create(&server.client(&token), "aes-256", "kek").await;
    let paused = start(&server.client(&token), &key, Some("stage"))
        .await
        .unwrap();
    assert_eq!(
        (paused.status.as_str(), paused.step.as_str(), paused.held),
        ("running", "switch_pointer", Some(RotationHold::Paused))
    );
    assert_eq!(paused.paused_after.as_deref(), Some("stage"));

    let server = server.restart().await;
    let acme = server.client(&token);
    tokio::time::sleep(SEVERAL_TICKS).await;
    let after = acme.rotation(&paused.rotation_id).await.unwrap();
    assert_eq!(
        (after.status.as_str(), after.step.as_str(), after.held),
        ("running", "switch_pointer", Some(RotationHold::Paused)),
        "the restarted server drove the paused rotation on"
    );
    assert_eq!(acme.show_key(&key).await.unwrap().primary_version, 1);

    // A resume lets the restarted server's worker finish it.
    let resumed = acme
        .resume_rotation(&paused.rotation_id, &Default::default())
        .await
        .unwrap();
    let done = settle(&acme, resumed).await;
    assert_eq!(
        (done.status.as_str(), done.to_version),
        ("completed", Some(2))
    );
    let verified = acme.verify_rotation(&done.rotation_id).await.unwrap();
    assert!(verified.ok, "{verified:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_rotation_stays_paused_across_a_restart_sqlite() {
    a_paused_rotation_stays_paused_across_a_restart(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_rotation_stays_paused_across_a_restart_postgres() {
    a_paused_rotation_stays_paused_across_a_restart(Db::Postgres).await;
}

/// The request is written, and the connection closed without reading the answer as
/// soon as another client sees the rotation recorded (when a saga run in the request
/// would have been mid-way, and cancelled with it): the saga still runs to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_after_starting_does_not_stop_the_rotation() {
    let server = TestServer::start().await;
    let token = server.tenant_token("acme").await;
    let acme = server.client(&token);
    let key = create(&acme, "aes-256", "kek").await;
    let body = serde_json::json!({ "key_id": key }).to_string();
    let address = server.api.trim_start_matches("http://");
    let mut connection = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "POST /v1/kms/rotations HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    connection.write_all(request.as_bytes()).await.unwrap();
    connection.flush().await.unwrap();
    let other = server.client(&token);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while list(&other, Some(&key), None).await.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the rotation was not recorded"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(connection);

    let done = loop {
        if let Some(view) = list(&other, Some(&key), None).await.into_iter().next()
            && view.status != "running"
        {
            break view;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the rotation did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (done.status.as_str(), done.to_version),
        ("completed", Some(2))
    );
    assert!(other.verify_rotation(&done.rotation_id).await.unwrap().ok);
}

/// Two starts at once on one key: one is accepted, the other refused, and one saga
/// exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_starts_on_one_key_make_one_saga() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let key = create(&acme, "aes-256", "kek").await;
    let (a, b) = tokio::join!(accepted(&acme, &key, None), accepted(&acme, &key, None));
    let (won, lost) = match (a, b) {
        (Ok(view), refused @ Err(_)) | (refused @ Err(_), Ok(view)) => (view, refused),
        other => panic!("expected one 202 and one 409, got {other:?}"),
    };
    assert_eq!(code_of(lost), ErrorCode::Conflict);
    let done = settle(&acme, won).await;
    assert_eq!(done.status, "completed");
    let all = list(&acme, Some(&key), None).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(acme.verify_rotation(&done.rotation_id).await.unwrap().ok);
}

/// Two resumes at once of one paused saga: each is accepted or refused as a conflict,
/// the saga completes once, and `verify` finds nothing wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_resumes_leave_the_saga_consistent() {
    let server = TestServer::start().await;
    let token = server.tenant_token("acme").await;
    let acme = server.client(&token);
    let key = create(&acme, "aes-256", "kek").await;
    let paused = start(&acme, &key, Some("switch_pointer")).await.unwrap();
    assert_eq!(paused.held, Some(RotationHold::Paused));
    let id = paused.rotation_id.clone();
    let (first, second) = (acme.clone(), server.client(&token));
    let to_the_end = ResumeRotationRequest::default();
    let (a, b) = tokio::join!(
        first.resume_rotation(&id, &to_the_end),
        second.resume_rotation(&id, &to_the_end)
    );
    let answered = |result: &Result<RotationView, ClientError>| match result {
        Ok(_) => true,
        Err(ClientError::Api { code, .. }) => {
            assert_eq!(*code, ErrorCode::Conflict);
            false
        }
        Err(other) => panic!("unexpected failure: {other}"),
    };
    assert!(answered(&a) || answered(&b), "{a:?} {b:?}");
    let done = settle(&acme, paused).await;
    assert_eq!(
        (done.status.as_str(), done.to_version, done.failures),
        ("completed", Some(2), 0)
    );
    let verified = acme.verify_rotation(&id).await.unwrap();
    assert!(verified.ok, "{verified:?}");
    let shown = acme.show_key(&key).await.unwrap();
    assert_eq!(shown.versions.len(), 2, "one new version, not two");
    assert_eq!(shown.primary_version, 2);
}

/// `GET /v1/kms/rotations` lists the tenant's rotations newest first, filtered by key
/// and status; a token scoped to some keys sees only their rotations; another tenant
/// sees none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotations_are_listed_by_key_and_status() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let globex = server.tenant("globex").await;
    let kek = create(&acme, "aes-256", "kek").await;
    let other = create(&acme, "aes-256", "other").await;
    let done = start(&acme, &kek, None).await.unwrap();
    let staged = start(&acme, &kek, Some("stage")).await.unwrap();
    let rolled = acme.rollback_rotation(&staged.rotation_id).await.unwrap();
    assert_eq!(rolled.status, "rolled-back");
    let paused = start(&acme, &other, Some("stage")).await.unwrap();

    let ids =
        |views: Vec<RotationView>| views.into_iter().map(|v| v.rotation_id).collect::<Vec<_>>();
    assert_eq!(
        ids(list(&acme, None, None).await),
        [
            paused.rotation_id.as_str(),
            &staged.rotation_id,
            &done.rotation_id
        ]
    );
    assert_eq!(
        ids(list(&acme, Some("alias/kek"), None).await),
        [staged.rotation_id.as_str(), &done.rotation_id]
    );
    assert_eq!(
        ids(list(&acme, Some(&kek), Some("completed")).await),
        [done.rotation_id.as_str()]
    );
    assert_eq!(
        ids(list(&acme, None, Some("running")).await),
        [paused.rotation_id.as_str()]
    );
    assert_eq!(
        ids(list(&acme, None, Some("rolled-back")).await),
        [staged.rotation_id.as_str()]
    );
    assert!(list(&globex, None, None).await.is_empty());
    assert_eq!(
        code_of(acme.list_rotations(&listed(None, Some("paused"))).await),
        ErrorCode::InvalidRequest
    );

    let scoped = server
        .admin()
        .mint_token(&MintTokenRequest {
            tenant: Some("acme".into()),
            keys: vec![other.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    let scoped = server.client(&scoped.token);
    assert_eq!(
        ids(list(&scoped, None, None).await),
        [paused.rotation_id.as_str()]
    );
}
