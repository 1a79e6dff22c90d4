//! An HSM-resident version's readable location is bound to its sealed copy: pointing a
//! key's row at another key's token object (or erasing it) with database write access
//! makes the key fail closed with an integrity failure instead of signing with the
//! other object.

use coffer_api::B64;
use coffer_api::ErrorCode;
use coffer_api::crypto::SignRequest;
use coffer_api::keys::CreateKeyRequest;
use coffer_client::ClientError;
use sqlx::{AnyConnection, Connection};

use super::hsm::hsm_server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_hsm_location_is_an_integrity_failure() {
    let Some(server) = hsm_server().await else {
        return;
    };
    let token = server.tenant_token("acme").await;
    let acme = server.client(&token);
    let create = || CreateKeyRequest {
        spec: "ecdsa-p256".into(),
        protection: Some("hsm".into()),
        ..Default::default()
    };
    let victim = acme.create_key(&create()).await.unwrap().key_id;
    let other = acme.create_key(&create()).await.unwrap().key_id;
    let stopped = server.stop().await;

    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect(&stopped.database_url).await.unwrap();
    let done = sqlx::query(
        "UPDATE key_versions SET hsm_location = \
         (SELECT hsm_location FROM key_versions WHERE key_id = $1) WHERE key_id = $2",
    )
    .bind(&other)
    .bind(&victim)
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(done.rows_affected(), 1);
    let done = sqlx::query("UPDATE key_versions SET hsm_location = NULL WHERE key_id = $1")
        .bind(&other)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
    conn.close().await.unwrap();

    let server = stopped.start().await;
    let acme = server.client(&token);
    for key in [&victim, &other] {
        let signed = acme
            .sign(&SignRequest {
                key_id: key.clone(),
                message: Some(B64(b"m".to_vec())),
                digest: None,
                mu: None,
                algorithm: None,
                attestation: None,
            })
            .await;
        match signed {
            Err(ClientError::Api { status, code, .. }) => {
                assert_eq!((status, code), (500, ErrorCode::Internal));
            }
            other => panic!("an edited location served: {other:?}"),
        }
    }
    // The known-answer checks at start met it first: the server is not ready.
    assert!(server.state.kms.integrity_failures() >= 2);
    assert!(matches!(
        server.state.kms.known_answer_outcome(),
        coffer_core::kms::KnownAnswers::Failed(_)
    ));
    assert!(!server.anonymous().readyz(&server.ops).await.unwrap());
}
