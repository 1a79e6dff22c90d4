//! Every operation of the native API, through `coffer-client`, on SQLite and on
//! PostgreSQL.

use std::collections::BTreeMap;

use coffer_api::crypto::{
    Batch, DatakeyRequest, ItemResult, MacRequest, RewrapRequest, SignRequest, UnwrapRequest,
    VerifyMacRequest, VerifyRequest, WrapRequest,
};
use coffer_api::keys::{CreateKeyRequest, ListKeysQuery, RotationPolicyView};
use coffer_api::{B64, B64Secret, ErrorCode};
use coffer_client::{Client, ClientError};
use coffer_server::startup::InitMethod;

use super::harness::{Db, TestServer};

pub fn code_of<T: std::fmt::Debug>(result: Result<T, ClientError>) -> ErrorCode {
    match result {
        Err(ClientError::Api { code, .. }) => code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

pub async fn create(client: &Client, spec: &str, alias: &str) -> String {
    let request = CreateKeyRequest {
        spec: spec.into(),
        alias: Some(alias.into()),
        ..Default::default()
    };
    client.create_key(&request).await.unwrap().key_id
}

pub fn wrap_request(key: &str, plaintext: &[u8], context: &[(&str, &str)]) -> WrapRequest {
    WrapRequest {
        key_id: key.into(),
        plaintext: B64Secret::new(plaintext.to_vec()),
        context: context
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        track_id: None,
    }
}

pub fn unwrap_request(ciphertext: &B64, context: &[(&str, &str)]) -> UnwrapRequest {
    UnwrapRequest {
        attestation: None,
        ciphertext: ciphertext.clone(),
        context: context
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

async fn every_operation(db: Db) {
    let Some(server) = TestServer::start_with(db, InitMethod::KeyFile, &[]).await else {
        return;
    };
    let acme = server.tenant("acme").await;

    // Key management.
    let request = CreateKeyRequest {
        spec: "aes-256".into(),
        alias: Some("payments-kek".into()),
        labels: BTreeMap::from([("team".into(), "payments".into())]),
        rotation: Some(RotationPolicyView {
            period: Some("90d".into()),
            overlap: Some("14d".into()),
            ..Default::default()
        }),
        validity: Some("365d".into()),
        ..Default::default()
    };
    let kek = acme.create_key(&request).await.unwrap();
    assert_eq!(
        (kek.spec.as_str(), kek.state.as_str(), kek.primary_version),
        ("aes-256", "enabled", 1)
    );
    assert_eq!(kek.aliases, ["alias/payments-kek"]);
    assert_eq!(kek.rotation.period.as_deref(), Some("90d"));
    assert!(kek.versions[0].not_after.is_some());
    let shown = acme.show_key("alias/payments-kek").await.unwrap();
    assert_eq!(shown.key_id, kek.key_id);
    assert_eq!(acme.show_key(&kek.key_id).await.unwrap().key_id, kek.key_id);

    // wrap / unwrap with a context, then rotation keeps old ciphertexts working.
    let ctx = [("bucket", "invoices")];
    let sealed = acme
        .wrap(&wrap_request("alias/payments-kek", b"data key bytes", &ctx))
        .await
        .unwrap();
    assert_eq!(sealed.key_version, 1);
    let rotated = acme.rotate_key("alias/payments-kek").await.unwrap();
    assert_eq!(rotated.version, 2);
    let opened = acme
        .unwrap(&unwrap_request(&sealed.ciphertext, &ctx))
        .await
        .unwrap();
    assert_eq!(opened.plaintext.expose_secret(), b"data key bytes");
    assert_eq!(opened.key_version, 1);
    let sealed2 = acme
        .wrap(&wrap_request(&kek.key_id, b"after rotation", &[]))
        .await
        .unwrap();
    assert_eq!(sealed2.key_version, 2);

    // datakey, with and without plaintext.
    let dk = acme
        .datakey(&DatakeyRequest {
            key_id: kek.key_id.clone(),
            bytes: Some(32),
            ..Default::default()
        })
        .await
        .unwrap();
    let plaintext = dk.plaintext.expect("plaintext by default");
    assert_eq!(plaintext.expose_secret().len(), 32);
    let back = acme
        .unwrap(&unwrap_request(&dk.ciphertext, &[]))
        .await
        .unwrap();
    assert_eq!(back.plaintext.expose_secret(), plaintext.expose_secret());
    let dk = acme
        .datakey(&DatakeyRequest {
            key_id: kek.key_id.clone(),
            include_plaintext: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(dk.plaintext.is_none());

    // rewrap to the current version and to another key.
    let other = create(&acme, "aes-256", "archive-kek").await;
    let moved = acme
        .rewrap(&RewrapRequest {
            ciphertext: sealed.ciphertext.clone(),
            context: ctx
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            key_id: Some(other.clone()),
            destination_context: Some(BTreeMap::new()),
        })
        .await
        .unwrap();
    assert_eq!(moved.key_id, other);
    let opened = acme
        .unwrap(&unwrap_request(&moved.ciphertext, &[]))
        .await
        .unwrap();
    assert_eq!(opened.plaintext.expose_secret(), b"data key bytes");

    // sign / verify for every signing spec.
    for (spec, algorithm) in [
        ("ed25519", "ed25519"),
        ("ecdsa-p256", "ecdsa-p256-sha256"),
        ("ml-dsa-65", "ml-dsa-65"),
        ("hybrid-ed25519-ml-dsa-65", "ml-dsa-65-ed25519-sha512"),
    ] {
        let key = create(&acme, spec, &format!("sig-{spec}")).await;
        let message = B64(b"release-1.2.3.tar.gz".to_vec());
        let signed = acme
            .sign(&SignRequest {
                attestation: None,
                key_id: key.clone(),
                message: Some(message.clone()),
                digest: None,
                mu: None,
                algorithm: None,
            })
            .await
            .unwrap();
        assert_eq!(signed.algorithm, algorithm);
        let check = |message: &[u8], signature: &B64| VerifyRequest {
            key_id: key.clone(),
            key_version: Some(signed.key_version),
            message: Some(B64(message.to_vec())),
            digest: None,
            mu: None,
            algorithm: None,
            signature: signature.clone(),
        };
        assert!(
            acme.verify(&check(&message.0, &signed.signature))
                .await
                .unwrap()
                .valid,
            "{spec}"
        );
        assert!(
            !acme
                .verify(&check(b"tampered", &signed.signature))
                .await
                .unwrap()
                .valid,
            "{spec}"
        );
        let public = acme.show_key(&key).await.unwrap().versions[0]
            .public_key_pem
            .clone()
            .unwrap();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
    }

    // mac / verify-mac.
    let mac_key = create(&acme, "hmac-sha256", "webhooks").await;
    let tag = acme
        .mac(&MacRequest {
            attestation: None,
            key_id: mac_key.clone(),
            message: B64(b"payload".to_vec()),
        })
        .await
        .unwrap();
    let verify = |message: &[u8]| VerifyMacRequest {
        key_id: mac_key.clone(),
        key_version: None,
        message: B64(message.to_vec()),
        mac: tag.mac.clone(),
    };
    assert!(acme.verify_mac(&verify(b"payload")).await.unwrap().valid);
    assert!(!acme.verify_mac(&verify(b"payl0ad")).await.unwrap().valid);

    // The batch forms: each item has its own result.
    let items = acme
        .wrap_batch(&Batch {
            items: vec![
                wrap_request(&kek.key_id, b"one", &[]),
                wrap_request("alias/missing", b"two", &[]),
            ],
        })
        .await
        .unwrap();
    assert!(matches!(&items[0], ItemResult::Ok(_)));
    assert!(matches!(&items[1], ItemResult::Err { error } if error.code == ErrorCode::NotFound));
    let ItemResult::Ok(first) = &items[0] else {
        unreachable!()
    };
    let opened = acme
        .unwrap_batch(&Batch {
            items: vec![unwrap_request(&first.ciphertext, &[])],
        })
        .await
        .unwrap();
    assert!(matches!(&opened[0], ItemResult::Ok(r) if r.plaintext.expose_secret() == b"one"));

    // Listing with filters; lifecycle.
    let signing = acme
        .list_keys(&ListKeysQuery {
            purpose: Some("sign".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(signing.keys.len(), 4);
    assert_eq!(acme.disable_key(&other).await.unwrap().state, "disabled");
    assert_eq!(
        code_of(acme.wrap(&wrap_request(&other, b"x", &[])).await),
        ErrorCode::KeyDisabled
    );
    assert_eq!(acme.enable_key(&other).await.unwrap().state, "enabled");
    let scheduled = acme.schedule_deletion(&other, Some(7)).await.unwrap();
    assert_eq!(scheduled.state, "pending-deletion");
    assert!(scheduled.deletion_due.is_some());
    assert_eq!(
        code_of(acme.wrap(&wrap_request(&other, b"x", &[])).await),
        ErrorCode::KeyDisabled
    );
    assert_eq!(
        acme.cancel_deletion(&other).await.unwrap().state,
        "disabled"
    );
    assert_eq!(
        code_of(acme.cancel_deletion(&other).await),
        ErrorCode::Conflict
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_on_sqlite() {
    every_operation(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_on_postgres() {
    every_operation(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let server = TestServer::start().await;
    let acme = server.tenant("acme").await;
    assert!(server.anonymous().healthz(&server.ops).await.is_ok());
    assert!(server.anonymous().readyz(&server.ops).await.unwrap());
    let key = create(&acme, "aes-256", "m").await;
    acme.wrap(&wrap_request(&key, b"x", &[])).await.unwrap();
    let _ = acme.wrap(&wrap_request("alias/absent", b"x", &[])).await;
    let text = server.anonymous().metrics(&server.ops).await.unwrap();
    assert!(
        text.contains("kms_latency_seconds_bucket{op=\"wrap\""),
        "{text}"
    );
    assert!(text.contains("kms_ops_total{tenant=\""), "{text}");
    assert!(text.contains("op=\"wrap\",outcome=\"ok\"}"), "{text}");
    assert!(
        text.contains("rejected_total{reason=\"not_found\"}"),
        "{text}"
    );
}
