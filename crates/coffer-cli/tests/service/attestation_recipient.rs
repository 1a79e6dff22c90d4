//! Recipients (issue 19): an attested workload whose document carries its public key
//! gets `unwrap`'s and `datakey`'s secrets encrypted to that key, never in the clear.

use coffer_api::crypto::DatakeyRequest;
use coffer_api::{B64, ErrorCode};
use coffer_attest::recipient;
use coffer_attest::test_format::Authority;

use super::api::{code_of, create, wrap_request};
use super::attestation::{measurement, now_ms, server_trusting, set_policy, unwrap_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datakey_and_unwrap_answer_only_the_recipient_named_in_the_attestation() {
    let (authority, _) = Authority::generate_ed25519().unwrap();
    let server = server_trusting(&authority).await;
    let acme = server.client(&server.tenant_token("acme").await);
    let kek = create(&acme, "aes-256", "enclave-kek").await;
    let m1 = measurement(1);
    set_policy(&acme, &kek, &["unwrap", "datakey"], &[&m1]).await;
    let (enclave, spki) = recipient::test_recipient();
    let to_enclave = || {
        Some(B64(authority
            .attest_now(&m1, now_ms(), Some(&spki))
            .unwrap()
            .into_bytes()))
    };

    // datakey: no plaintext, the key encrypted to the enclave.
    let made = acme
        .datakey(&DatakeyRequest {
            key_id: kek.clone(),
            attestation: to_enclave(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(made.plaintext.is_none());
    let data_key = recipient::open(&enclave, &made.ciphertext_for_recipient.unwrap().0).unwrap();
    assert_eq!(data_key.len(), 32);

    // unwrap of that data key: empty plaintext, the same key for the enclave only.
    let opened = acme
        .unwrap(&unwrap_with(&made.ciphertext, to_enclave()))
        .await
        .unwrap();
    assert!(opened.plaintext.expose_secret().is_empty());
    let sealed = opened.ciphertext_for_recipient.unwrap();
    assert_eq!(recipient::open(&enclave, &sealed.0).unwrap(), data_key);
    let (stranger, _) = recipient::test_recipient();
    assert!(recipient::open(&stranger, &sealed.0).is_err());

    // A document without a public key gets the plaintext, as before.
    let secret = acme
        .wrap(&wrap_request(&kek, b"s3cret", &[]))
        .await
        .unwrap()
        .ciphertext;
    let plain = acme
        .unwrap(&unwrap_with(
            &secret,
            Some(B64(authority
                .attest_now(&m1, now_ms(), None)
                .unwrap()
                .into_bytes())),
        ))
        .await
        .unwrap();
    assert_eq!(plain.plaintext.expose_secret(), b"s3cret");
    assert!(plain.ciphertext_for_recipient.is_none());

    // A public key that is not RSA: refused, and nothing is answered or registered.
    let junk = Some(B64(authority
        .attest_now(&m1, now_ms(), Some(b"not a key"))
        .unwrap()
        .into_bytes()));
    assert_eq!(
        code_of(acme.unwrap(&unwrap_with(&secret, junk)).await),
        ErrorCode::InvalidRequest
    );
    let junk = Some(B64(authority
        .attest_now(&m1, now_ms(), Some(b"not a key"))
        .unwrap()
        .into_bytes()));
    let refused = acme
        .datakey(&DatakeyRequest {
            key_id: kek.clone(),
            track_id: Some("for-enclave".into()),
            attestation: junk,
            ..Default::default()
        })
        .await;
    assert_eq!(code_of(refused), ErrorCode::InvalidRequest);
    assert_eq!(
        code_of(acme.tracked("for-enclave").await),
        ErrorCode::NotFound
    );
}
