//! A rotation that changes the key's enclave allow-list with its switch (issue 19;
//! seed 001's `KMS_ALLOWED_MEASUREMENTS`): the new primary and the new list come into
//! force in one transaction; a rollback finds the previous list in force; a list
//! changed by someone else after the start fails the switch and rolls the saga back
//! with neither changed; a switch that committed without its record (a crash between
//! the two) is refused a rollback and finished by a resume, the list stored once. The
//! same under a real SIGKILL of `coffer serve`, before the switch and between it and
//! its record (`a_kill_at_the_switch_keeps_the_key_and_its_allow_list_together`).

use coffer_api::rotation::{ResumeRotationRequest, RotationView, StartRotationRequest};
use coffer_api::{B64, ErrorCode};
use coffer_attest::Measurement;
use coffer_attest::test_format::Authority;
use coffer_client::{Client, ClientError};

use super::api::{code_of, create, wrap_request};
use super::attestation::{measurement, now_ms, server_trusting, set_policy, unwrap_with};
use super::harness::TestServer;
use super::rotation::settle;

fn doc(authority: &Authority, m: &Measurement) -> Option<B64> {
    Some(B64(authority
        .attest_now(m, now_ms(), None)
        .unwrap()
        .into_bytes()))
}

async fn start(
    client: &Client,
    key: &str,
    until: Option<&str>,
    list: &[&Measurement],
) -> Result<RotationView, ClientError> {
    let view = client
        .start_rotation(&StartRotationRequest {
            key_id: key.into(),
            until: until.map(str::to_owned),
            allowed_measurements: Some(list.iter().map(|m| m.to_string()).collect()),
            // The setup's ciphertext is untracked use of the primary.
            retire_untracked: true,
            ..Default::default()
        })
        .await?;
    Ok(settle(client, view).await)
}

/// `(version, measurements)` of every policy version, oldest first.
async fn policies(client: &Client, key: &str) -> Vec<(u32, Vec<String>)> {
    client
        .attestation_policies(key)
        .await
        .unwrap()
        .versions
        .into_iter()
        .map(|p| (p.version, p.measurements))
        .collect()
}

async fn primary(client: &Client, key: &str) -> u32 {
    client.show_key(key).await.unwrap().primary_version
}

async fn version_state(client: &Client, key: &str, version: u32) -> String {
    let key = client.show_key(key).await.unwrap();
    key.versions
        .into_iter()
        .find(|v| v.version == version)
        .unwrap()
        .state
}

/// A key whose policy (v1) puts unwrap behind `m1`, a server trusting `authority`, and
/// a ciphertext under the key.
async fn setup(authority: &Authority) -> (TestServer, Client, String, B64) {
    let server = server_trusting(authority).await;
    let acme = server.client(&server.tenant_token("acme").await);
    let key = create(&acme, "aes-256", "token-kek").await;
    let sealed = acme
        .wrap(&wrap_request(&key, b"token secret", &[]))
        .await
        .unwrap()
        .ciphertext;
    assert_eq!(
        set_policy(&acme, &key, &["unwrap"], &[&measurement(1)]).await,
        1
    );
    (server, acme, key, sealed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_switch_puts_the_new_version_and_the_new_allow_list_in_force_together() {
    let (authority, _) = Authority::generate_ed25519().unwrap();
    let (server, acme, key, sealed) = setup(&authority).await;
    let (m1, m2) = (measurement(1), measurement(2));

    // Staged: neither has moved. The old enclave opens, the new one does not yet.
    let staged = start(&acme, &key, Some("stage"), &[&m2]).await.unwrap();
    assert_eq!(staged.step, "switch_pointer", "{staged:?}");
    assert_eq!(staged.allowed_measurements, Some(vec![m2.to_string()]));
    assert_eq!(staged.allow_list_from_policy, Some(1));
    assert_eq!(primary(&acme, &key).await, 1);
    assert_eq!(policies(&acme, &key).await, vec![(1, vec![m1.to_string()])]);
    acme.unwrap(&unwrap_with(&sealed, doc(&authority, &m1)))
        .await
        .unwrap();
    assert_eq!(
        code_of(
            acme.unwrap(&unwrap_with(&sealed, doc(&authority, &m2)))
                .await
        ),
        ErrorCode::MeasurementNotAllowed
    );

    // Switched and finished: both moved, the operations kept.
    let resumed = acme
        .resume_rotation(&staged.rotation_id, &ResumeRotationRequest::default())
        .await
        .unwrap();
    let done = settle(&acme, resumed).await;
    assert_eq!(done.status, "completed", "{done:?}");
    assert_eq!(primary(&acme, &key).await, 2);
    let current = acme
        .attestation_policies(&key)
        .await
        .unwrap()
        .current
        .unwrap();
    assert_eq!(current.version, 2);
    assert_eq!(current.operations, vec!["unwrap".to_owned()]);
    assert_eq!(current.measurements, vec![m2.to_string()]);
    acme.unwrap(&unwrap_with(&sealed, doc(&authority, &m2)))
        .await
        .unwrap();
    assert_eq!(
        code_of(
            acme.unwrap(&unwrap_with(&sealed, doc(&authority, &m1)))
                .await
        ),
        ErrorCode::MeasurementNotAllowed
    );
    let verified = acme.verify_rotation(&done.rotation_id).await.unwrap();
    assert!(verified.violations.is_empty(), "{verified:?}");
    // The key's history: the activation names the list, with the policy's own event.
    let history = acme.key_history(&key).await.unwrap();
    let activated = history
        .events
        .iter()
        .find(|e| e.kind == "version.activated" && e.version == Some(2))
        .unwrap();
    assert!(
        activated.detail.contains("attestation policy v2"),
        "{activated:?}"
    );
    assert!(
        history
            .events
            .iter()
            .any(|e| e.kind == "key.attestation_policy" && e.detail.starts_with("v2"))
    );
    // The start's audit entry names the list.
    let log = server.admin().audit_entries(0, 10_000).await.unwrap();
    assert!(
        log.contains("allow-list at the switch (policy v1 -> v2)"),
        "no start entry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_before_the_switch_leaves_the_previous_allow_list_in_force() {
    let (authority, _) = Authority::generate_ed25519().unwrap();
    let (_server, acme, key, sealed) = setup(&authority).await;
    let (m1, m2) = (measurement(1), measurement(2));
    let staged = start(&acme, &key, Some("stage"), &[&m2]).await.unwrap();
    let rolled = acme.rollback_rotation(&staged.rotation_id).await.unwrap();
    assert_eq!(rolled.status, "rolled-back", "{rolled:?}");
    assert_eq!(primary(&acme, &key).await, 1);
    assert_eq!(version_state(&acme, &key, 2).await, "destroyed");
    assert_eq!(policies(&acme, &key).await, vec![(1, vec![m1.to_string()])]);
    acme.unwrap(&unwrap_with(&sealed, doc(&authority, &m1)))
        .await
        .unwrap();
}

/// The injected failure at the step: the list changes between the start and the
/// switch. The switch's compare-and-set on the policy version fails before the pointer
/// moves, so the saga rolls back: the key keeps its primary, the list stays as the
/// other writer set it, and the failure names the cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allow_list_changed_after_the_start_fails_the_switch_and_changes_neither() {
    let (authority, _) = Authority::generate_ed25519().unwrap();
    let (_server, acme, key, _sealed) = setup(&authority).await;
    let (m1, m2, m3) = (measurement(1), measurement(2), measurement(3));
    let staged = start(&acme, &key, Some("stage"), &[&m2]).await.unwrap();
    assert_eq!(set_policy(&acme, &key, &["unwrap"], &[&m1, &m3]).await, 2);
    let resumed = acme
        .resume_rotation(&staged.rotation_id, &ResumeRotationRequest::default())
        .await
        .unwrap();
    let failed = settle(&acme, resumed).await;
    assert_eq!(failed.status, "rolled-back", "{failed:?}");
    let error = failed.error.clone().unwrap_or_default();
    assert!(
        error.contains("switch_pointer") && error.contains("allow-list"),
        "{error}"
    );
    assert_eq!(primary(&acme, &key).await, 1);
    assert_eq!(version_state(&acme, &key, 2).await, "destroyed");
    let mut expected = vec![m1.to_string(), m3.to_string()];
    expected.sort();
    assert_eq!(
        policies(&acme, &key).await,
        vec![(1, vec![m1.to_string()]), (2, expected)]
    );
}

/// The switch committed but its record did not (the process died between the two;
/// here the switch's own store call is made while the saga is paused before it). A
/// rollback would leave the key switched under a "rolled back" record, so it is
/// refused and changes nothing; a resume finds the switch done and finishes, and the
/// list is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_committed_without_its_record_is_resumed_never_half_undone() {
    let (authority, _) = Authority::generate_ed25519().unwrap();
    let (server, acme, key, _sealed) = setup(&authority).await;
    let (m1, m2) = (measurement(1), measurement(2));
    let staged = start(&acme, &key, Some("stage"), &[&m2]).await.unwrap();
    let keys = server.state.kms.key_service();
    let id: coffer_core::KeyId = staged.key_id.parse().unwrap();
    let tenant_id = keys
        .store()
        .get_tenant_by_name("acme")
        .await
        .unwrap()
        .unwrap()
        .id;
    let policy = coffer_core::attestation::AttestationPolicy {
        tenant: tenant_id,
        key: id,
        version: 2,
        operations: [coffer_core::attestation::AttestedOp::Unwrap].into(),
        measurements: [m2.clone()].into(),
        created_at: coffer_core::Timestamp::from_millis(now_ms()),
    };
    let actor =
        coffer_core::audit::Actor::new("rotation-test", "crash-window", "rotation.switch_pointer");
    keys.activate_with_policy(
        tenant_id,
        id,
        coffer_core::VersionNumber::new(2).unwrap(),
        Some(policy),
        &actor,
    )
    .await
    .unwrap();
    server.state.kms.forget_key(tenant_id, id);

    let refused = acme.rollback_rotation(&staged.rotation_id).await;
    let Err(ClientError::Api { code, message, .. }) = &refused else {
        panic!("{refused:?}")
    };
    assert_eq!(*code, ErrorCode::Conflict);
    assert!(message.contains("coffer rotate resume"), "{message}");
    let still = acme.rotation(&staged.rotation_id).await.unwrap();
    assert_eq!(still.status, "running", "{still:?}");
    assert_eq!(primary(&acme, &key).await, 2);
    assert_eq!(version_state(&acme, &key, 2).await, "active");

    let resumed = acme
        .resume_rotation(&staged.rotation_id, &ResumeRotationRequest::default())
        .await
        .unwrap();
    let done = settle(&acme, resumed).await;
    assert_eq!(done.status, "completed", "{done:?}");
    assert_eq!(
        policies(&acme, &key).await,
        vec![(1, vec![m1.to_string()]), (2, vec![m2.to_string()])]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allow_list_is_refused_without_policy_operations_or_with_bad_hex() {
    let (authority, _) = Authority::generate_ed25519().unwrap();
    let server = server_trusting(&authority).await;
    let acme = server.client(&server.tenant_token("acme").await);
    let key = create(&acme, "aes-256", "plain-kek").await;
    let refused = start(&acme, &key, None, &[&measurement(2)]).await;
    assert_eq!(code_of(refused), ErrorCode::InvalidRequest);
    let bad = acme
        .start_rotation(&StartRotationRequest {
            key_id: key.clone(),
            allowed_measurements: Some(vec!["not-hex".into()]),
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(bad), ErrorCode::InvalidRequest);
    // Nothing started: the key still has its first version only, and no rotation.
    assert_eq!(primary(&acme, &key).await, 1);
    assert_eq!(acme.show_key(&key).await.unwrap().versions.len(), 1);
    assert!(
        acme.attestation_policies(&key)
            .await
            .unwrap()
            .versions
            .is_empty()
    );
}

/// `(primary version, attestation policy version in force)` read from the SQLite file
/// of a stopped server.
async fn stored(dir: &std::path::Path, key: &str) -> (i64, i64) {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}", dir.join("coffer.db").display());
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let primary =
        sqlx::query("SELECT number FROM key_versions WHERE key_id = $1 AND is_primary = 1")
            .bind(key)
            .fetch_one(&mut conn)
            .await
            .unwrap()
            .get::<i64, _>(0);
    let policy = sqlx::query(
        "SELECT COALESCE(MAX(version), 0) FROM key_attestation_policies WHERE key_id = $1",
    )
    .bind(key)
    .fetch_one(&mut conn)
    .await
    .unwrap()
    .get::<i64, _>(0);
    (primary, policy)
}

/// A real `coffer serve` killed (SIGKILL) as the switch is about to run, and again
/// once the switch committed but before its record was saved: on disk the key and its
/// list are both old or both new, and the restarted server finishes the rotation with
/// the new list stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_at_the_switch_keeps_the_key_and_its_allow_list_together() {
    use super::rotation::{coffer, free_port, serve_with};
    let (m1, m2) = (measurement(1), measurement(2));
    for (failpoint, switched) in [("switch_pointer", 1), ("switch_pointer:done", 2)] {
        let dir = super::harness::temp_dir();
        let (authority, _) = Authority::generate_ed25519().unwrap();
        let authority_file = dir.join("authority.pem");
        std::fs::write(&authority_file, authority.public_key_pem()).unwrap();
        let authority_file = authority_file.display().to_string();
        let env = [(
            "COFFER_ATTESTATION_AUTHORITY_PUBLIC_KEY_FILE",
            authority_file.as_str(),
        )];
        let (api, ops) = (free_port(), free_port());
        let init = coffer(&dir, api, ops)
            .envs(env.iter().copied())
            .arg("init")
            .output()
            .unwrap();
        assert!(
            init.status.success(),
            "{}",
            String::from_utf8_lossy(&init.stderr)
        );
        let stdout = String::from_utf8_lossy(&init.stdout);
        let admin_token = stdout
            .lines()
            .find_map(|l| l.strip_prefix("admin token: "))
            .unwrap()
            .to_owned();
        let url = format!("http://127.0.0.1:{api}");
        let mut first = serve_with(&dir, api, ops, Some(failpoint), &env).await;
        let admin = Client::new(&url, Some(admin_token)).unwrap();
        admin
            .create_tenant(&coffer_api::admin::CreateTenantRequest {
                name: "acme".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let minted = admin
            .mint_token(&coffer_api::admin::MintTokenRequest {
                tenant: Some("acme".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let acme = Client::new(&url, Some(minted.token)).unwrap();
        let key = create(&acme, "aes-256", "token-kek").await;
        assert_eq!(set_policy(&acme, &key, &["unwrap"], &[&m1]).await, 1);
        // Answered 202 unless the kill beat the answer out.
        let _ = acme
            .start_rotation(&StartRotationRequest {
                key_id: key.clone(),
                allowed_measurements: Some(vec![m2.to_string()]),
                ..Default::default()
            })
            .await;
        let status = first.child.wait().unwrap();
        assert!(!status.success(), "{failpoint}: killed");
        assert_eq!(
            stored(&dir, &key).await,
            (switched, switched),
            "{failpoint}: the primary and the list moved together"
        );

        let _second = serve_with(&dir, api, ops, None, &env).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let done = loop {
            let list = acme.list_rotations(&Default::default()).await.unwrap();
            if let Some(view) = list.rotations.into_iter().find(|r| r.status != "running") {
                break view;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{failpoint}: not finished"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert_eq!(done.status, "completed", "{failpoint}: {done:?}");
        assert_eq!(primary(&acme, &key).await, 2);
        assert_eq!(
            policies(&acme, &key).await,
            vec![(1, vec![m1.to_string()]), (2, vec![m2.to_string()])],
            "{failpoint}"
        );
    }
}
