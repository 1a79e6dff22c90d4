//! Readiness while sealed, and unsealing through the API with Shamir shares.

use coffer_api::admin::UnsealRequest;
use coffer_api::{B64Secret, ErrorCode};
use coffer_server::startup::InitMethod;

use super::api::{code_of, create, wrap_request};
use super::harness::{Db, TestServer};

fn share(text: &str) -> UnsealRequest {
    UnsealRequest {
        share: Some(B64Secret::new(text.as_bytes().to_vec())),
        passphrase: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_server_is_not_ready_until_enough_shares_arrive() {
    let server = TestServer::start_with(
        Db::Sqlite,
        InitMethod::Shamir {
            shares: 5,
            threshold: 3,
        },
        &[],
    )
    .await
    .unwrap();
    let acme = server.tenant("acme").await;
    let key = create(&acme, "aes-256", "k").await;
    // Seal it, as after a restart.
    server
        .state
        .custody
        .sealed()
        .expect("sealed custody")
        .seal();
    server.state.kms.forget_secrets();
    let anonymous = server.anonymous();
    assert!(!anonymous.readyz(&server.ops).await.unwrap());
    assert!(
        anonymous.healthz(&server.ops).await.is_ok(),
        "alive while sealed"
    );
    assert_eq!(
        code_of(acme.wrap(&wrap_request(&key, b"x", &[])).await),
        ErrorCode::Sealed
    );
    let status = anonymous.seal_status().await.unwrap();
    assert!(status.sealed && status.threshold == 3 && status.method == "shamir");

    // A wrong share: clear error, still sealed.
    assert_eq!(
        code_of(anonymous.unseal(&share("coffer-share-v1:AAAA")).await),
        ErrorCode::InvalidRequest
    );
    // Two good shares: progress, still sealed.
    for (i, text) in server.shares.iter().take(2).enumerate() {
        let status = anonymous.unseal(&share(text)).await.unwrap();
        assert!(status.sealed);
        assert_eq!(usize::from(status.progress), i + 1);
    }
    assert!(!anonymous.readyz(&server.ops).await.unwrap());
    // The third: unsealed, ready, and the old token and key work again.
    let status = anonymous.unseal(&share(&server.shares[4])).await.unwrap();
    assert!(!status.sealed);
    assert!(server.state.custody.status() == coffer_core::SealStatus::Unsealed);
    assert!(anonymous.readyz(&server.ops).await.unwrap());
    acme.wrap(&wrap_request(&key, b"x", &[])).await.unwrap();
}
