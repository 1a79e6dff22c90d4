//! Tenant isolation: every endpoint, given another tenant's key, answers exactly as for
//! an absent key (404), and the other tenant's key is untouched.

use coffer_api::crypto::{
    DatakeyRequest, MacRequest, RewrapRequest, SignRequest, VerifyMacRequest, VerifyRequest,
};
use coffer_api::{B64, ErrorCode};
use coffer_client::ClientError;

use super::api::{code_of, create, unwrap_request, wrap_request};
use super::harness::TestServer;

fn not_found<T: std::fmt::Debug>(what: &str, result: Result<T, ClientError>) {
    match result {
        Err(ClientError::Api {
            code,
            status,
            message,
            ..
        }) => {
            assert_eq!((code, status), (ErrorCode::NotFound, 404), "{what}");
            assert_eq!(
                message, "key not found",
                "{what}: the answer must not reveal the key exists"
            );
        }
        other => panic!("{what}: expected 404, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_treats_another_tenants_key_as_absent() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    let globex = server.tenant("globex").await;
    let enc = create(&acme, "aes-256", "enc").await;
    let sig = create(&acme, "ed25519", "sig").await;
    let mac = create(&acme, "hmac-sha256", "mac").await;
    let sealed = acme
        .wrap(&wrap_request(&enc, b"acme secret", &[]))
        .await
        .unwrap();
    let signed = acme
        .sign(&SignRequest {
            attestation: None,
            key_id: sig.clone(),
            message: Some(B64(b"m".to_vec())),
            digest: None,
            mu: None,
            algorithm: None,
        })
        .await
        .unwrap();
    let absent = uuid::Uuid::new_v4().to_string();

    for reference in [enc.as_str(), "alias/enc", absent.as_str()] {
        not_found("show", globex.show_key(reference).await);
        not_found("rotate", globex.rotate_key(reference).await);
        not_found("enable", globex.enable_key(reference).await);
        not_found("disable", globex.disable_key(reference).await);
        not_found(
            "schedule-deletion",
            globex.schedule_deletion(reference, Some(7)).await,
        );
        not_found("cancel-deletion", globex.cancel_deletion(reference).await);
        not_found(
            "wrap",
            globex.wrap(&wrap_request(reference, b"x", &[])).await,
        );
        not_found(
            "datakey",
            globex
                .datakey(&DatakeyRequest {
                    key_id: reference.into(),
                    ..Default::default()
                })
                .await,
        );
    }
    for reference in [sig.as_str(), "alias/sig"] {
        not_found(
            "sign",
            globex
                .sign(&SignRequest {
                    attestation: None,
                    key_id: reference.into(),
                    message: Some(B64(b"m".to_vec())),
                    digest: None,
                    mu: None,
                    algorithm: None,
                })
                .await,
        );
        let verify = VerifyRequest {
            key_id: reference.into(),
            key_version: None,
            message: Some(B64(b"m".to_vec())),
            digest: None,
            mu: None,
            algorithm: None,
            signature: signed.signature.clone(),
        };
        not_found("verify", globex.verify(&verify).await);
    }
    for reference in [mac.as_str(), "alias/mac"] {
        not_found(
            "mac",
            globex
                .mac(&MacRequest {
                    attestation: None,
                    key_id: reference.into(),
                    message: B64(b"m".to_vec()),
                })
                .await,
        );
        let check = VerifyMacRequest {
            key_id: reference.into(),
            key_version: None,
            message: B64(b"m".to_vec()),
            mac: B64(vec![0; 32]),
        };
        not_found("verify-mac", globex.verify_mac(&check).await);
    }
    not_found(
        "unwrap",
        globex
            .unwrap(&unwrap_request(&sealed.ciphertext, &[]))
            .await,
    );
    let rewrap = RewrapRequest {
        ciphertext: sealed.ciphertext.clone(),
        ..Default::default()
    };
    not_found("rewrap", globex.rewrap(&rewrap).await);
    // Globex's own key cannot pull Acme's ciphertext across either.
    let own = create(&globex, "aes-256", "enc").await;
    let rewrap = RewrapRequest {
        ciphertext: sealed.ciphertext.clone(),
        key_id: Some(own),
        ..Default::default()
    };
    not_found("rewrap into own key", globex.rewrap(&rewrap).await);
    // Listing shows only the caller's keys.
    assert_eq!(
        globex
            .list_keys(&Default::default())
            .await
            .unwrap()
            .keys
            .len(),
        1
    );

    // Acme's keys are untouched by all of the above.
    let key = acme.show_key(&enc).await.unwrap();
    assert_eq!((key.state.as_str(), key.primary_version), ("enabled", 1));
    let opened = acme
        .unwrap(&unwrap_request(&sealed.ciphertext, &[]))
        .await
        .unwrap();
    assert_eq!(opened.plaintext.expose_secret(), b"acme secret");
    // A tenant token cannot use the admin API.
    assert_eq!(code_of(globex.list_tenants().await), ErrorCode::Forbidden);
}
