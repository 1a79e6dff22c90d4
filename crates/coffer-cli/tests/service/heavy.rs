//! Heavy signing (ML-DSA, hybrid) runs on the server's bounded pool, as wired at start,
//! not on the async workers that serve every other request.

use coffer_api::B64;
use coffer_api::crypto::SignRequest;
use coffer_client::Client;

use super::api::create;
use super::harness::TestServer;

async fn sign(client: &Client, key: &str) {
    client
        .sign(&SignRequest {
            attestation: None,
            key_id: key.to_owned(),
            message: Some(B64(b"release-1.2.3.tar.gz".to_vec())),
            digest: None,
            mu: None,
            algorithm: None,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn ml_dsa_and_hybrid_signing_go_through_the_bounded_pool() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let pool = &server.state.heavy;

    // Ed25519 is cheap: it signs inline, the pool stays untouched.
    let ed25519 = create(&acme, "ed25519", "ed").await;
    let before = pool.jobs_run();
    sign(&acme, &ed25519).await;
    assert_eq!(pool.jobs_run(), before);

    for (n, spec) in ["ml-dsa-65", "hybrid-ed25519-ml-dsa-65"].iter().enumerate() {
        let key = create(&acme, spec, &format!("heavy-{n}")).await;
        let before = pool.jobs_run();
        sign(&acme, &key).await;
        assert_eq!(pool.jobs_run(), before + 1, "{spec}");
    }

    let metrics = server.anonymous().metrics(&server.ops).await.unwrap();
    assert!(
        metrics.contains("kms_heavy_jobs_total{outcome=\"run\"}"),
        "{metrics}"
    );
}
