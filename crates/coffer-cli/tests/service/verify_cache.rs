//! The verify cache serves repeated verifications, and never answers "valid" for a
//! version that no longer verifies: not after a disable, a rotation's retirement or a
//! deletion here, and not beyond `cache_ttl` after another replica's change.

use std::time::{Duration, Instant};

use coffer_api::B64;
use coffer_api::crypto::{SignRequest, VerifyRequest};
use coffer_client::{Client, ClientError};
use coffer_core::kms::VerifyCacheCounts;
use coffer_core::{Actor, VersionNumber, VersionState};
use coffer_server::startup::InitMethod;

use super::api::create;
use super::harness::{Db, TestServer};

async fn sign(client: &Client, key: &str, message: &[u8]) -> B64 {
    client
        .sign(&SignRequest {
            key_id: key.to_owned(),
            message: Some(B64(message.to_vec())),
            digest: None,
            mu: None,
            algorithm: None,
            attestation: None,
        })
        .await
        .unwrap()
        .signature
}

/// `Ok(valid)` or the error code.
async fn verify(
    client: &Client,
    key: &str,
    version: Option<u32>,
    message: &[u8],
    signature: &B64,
) -> Result<bool, String> {
    match client
        .verify(&VerifyRequest {
            key_id: key.to_owned(),
            key_version: version,
            message: Some(B64(message.to_vec())),
            digest: None,
            mu: None,
            signature: signature.clone(),
            algorithm: None,
        })
        .await
    {
        Ok(answer) => Ok(answer.valid),
        Err(ClientError::Api { code, .. }) => Err(code.as_str().to_owned()),
        Err(other) => panic!("{other}"),
    }
}

fn counts(server: &TestServer) -> VerifyCacheCounts {
    server.state.kms.verify_cache_counts()
}

#[tokio::test]
async fn repeated_verifications_are_served_from_the_cache_until_the_key_changes() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let key = create(&acme, "hybrid-ed25519-ml-dsa-65", "release").await;
    let signature = sign(&acme, &key, b"release-1.2.3").await;

    let start = counts(&server);
    assert_eq!(
        verify(&acme, &key, None, b"release-1.2.3", &signature).await,
        Ok(true)
    );
    assert_eq!(
        verify(&acme, &key, None, b"release-1.2.3", &signature).await,
        Ok(true)
    );
    // A forgery is a question of its own (and its "invalid" is cached too).
    assert_eq!(
        verify(&acme, &key, None, b"release-6.6.6", &signature).await,
        Ok(false)
    );
    assert_eq!(
        verify(&acme, &key, None, b"release-6.6.6", &signature).await,
        Ok(false)
    );
    let now = counts(&server);
    assert_eq!(now.hits - start.hits, 2);
    assert_eq!(now.misses - start.misses, 2);

    // Disabled: refused before the cache is asked.
    acme.disable_key(&key).await.unwrap();
    assert_eq!(
        verify(&acme, &key, None, b"release-1.2.3", &signature).await,
        Err("key_disabled".into())
    );
    acme.enable_key(&key).await.unwrap();
    // The verdict from before the change is stale: verified again, not served.
    let before = counts(&server);
    assert_eq!(
        verify(&acme, &key, None, b"release-1.2.3", &signature).await,
        Ok(true)
    );
    let after = counts(&server);
    assert_eq!(
        (after.hits - before.hits, after.stale - before.stale),
        (0, 1)
    );

    // Rotated: version 1 still verifies while retiring, then is retired (as the
    // rotation saga and the scheduler retire it: state change, then the key dropped
    // from this process's caches).
    acme.rotate_key(&key).await.unwrap();
    assert_eq!(
        verify(&acme, &key, Some(1), b"release-1.2.3", &signature).await,
        Ok(true)
    );
    assert_eq!(
        verify(&acme, &key, Some(1), b"release-1.2.3", &signature).await,
        Ok(true)
    );
    let kms = &server.state.kms;
    let tenant = kms.find_tenant("acme").await.unwrap().id;
    let id = key.parse().unwrap();
    let v1 = VersionNumber::new(1).unwrap();
    let operator = Actor::new("test-operator", "test", "keys.retire");
    for state in [VersionState::Retiring, VersionState::Retired] {
        kms.key_service()
            .set_version_state(tenant, id, v1, state, &operator)
            .await
            .unwrap();
    }
    kms.forget_key(tenant, id);
    assert_eq!(
        verify(&acme, &key, Some(1), b"release-1.2.3", &signature).await,
        Err("version_retired".into())
    );
    // The new primary has its own verdicts.
    let newer = sign(&acme, &key, b"release-1.2.4").await;
    assert_eq!(
        verify(&acme, &key, None, b"release-1.2.4", &newer).await,
        Ok(true)
    );

    let metrics = server.anonymous().metrics(&server.ops).await.unwrap();
    for series in [
        "verify_cache_hit_total",
        "verify_cache_miss_total",
        "verify_cache_stale_total",
        "verify_cache_size",
        "verify_cache_ttl_ms 300000",
        "verify_cache_stale_max_ms",
    ] {
        assert!(metrics.contains(series), "{series} missing");
    }
}

/// Replicas on one PostgreSQL database: a replica that cached "valid" answers
/// `key_disabled` once its `cache_ttl` has passed after another replica disabled the
/// key, though the verdict itself is still cached for minutes.
#[tokio::test]
async fn another_replicas_disable_is_followed_within_cache_ttl_on_postgres() {
    let Some(a) = TestServer::start_with(
        Db::Postgres,
        InitMethod::KeyFile,
        &[("COFFER_CACHE_TTL", "1s")],
    )
    .await
    else {
        eprintln!("skipped: COFFER_TEST_DATABASE_URL is not set");
        return;
    };
    let token = a.tenant_token("acme").await;
    // Started after the token was minted: it reads the token records at start.
    let b = a.another_replica().await;
    let (on_a, on_b) = (a.client(&token), b.client(&token));
    let key = create(&on_a, "ed25519", "release").await;
    let signature = sign(&on_a, &key, b"artefact").await;
    assert_eq!(
        verify(&on_b, &key, None, b"artefact", &signature).await,
        Ok(true)
    );
    assert_eq!(
        verify(&on_b, &key, None, b"artefact", &signature).await,
        Ok(true)
    );
    assert!(counts(&b).hits >= 1);

    on_a.disable_key(&key).await.unwrap();
    let disabled_at = Instant::now();
    loop {
        let answer = verify(&on_b, &key, None, b"artefact", &signature).await;
        if answer == Err("key_disabled".into()) {
            break;
        }
        assert_eq!(answer, Ok(true));
        assert!(
            disabled_at.elapsed() < Duration::from_millis(1500),
            "replica b still answers valid {:?} after the disable",
            disabled_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And stays refused.
    for _ in 0..3 {
        assert_eq!(
            verify(&on_b, &key, None, b"artefact", &signature).await,
            Err("key_disabled".into())
        );
    }
}
