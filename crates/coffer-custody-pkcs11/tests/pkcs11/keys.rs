//! HSM-resident keys on SoftHSM2: generated in the token, used there, never extractable;
//! signatures verify with the public key read at generation, by Coffer's verifier and
//! by OpenSSL's.

use std::process::Command;
use std::sync::Arc;

use coffer_core::hsm::{HsmError, HsmInput, HsmKeyRef, KeyHsm};
use coffer_crypto::{KeySpec, PqVerifyMode, PublicKey, SignatureAlgorithm, VerifyingKey};
use coffer_custody_pkcs11::Pkcs11Custody;
use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};

use crate::softhsm;

fn custody() -> Option<Arc<Pkcs11Custody>> {
    let hsm = softhsm::softhsm()?;
    let label = hsm.new_token();
    Some(Pkcs11Custody::init(hsm.config(&label)).expect("init"))
}

/// Verifies with the `openssl` command line, an implementation independent of Coffer's
/// (aws-lc) and of the token. `pss` selects RSA-PSS with a salt as long as the hash.
fn openssl_verifies(spki_pem: &str, algorithm: SignatureAlgorithm, msg: &[u8], sig: &[u8]) -> bool {
    let dir = tempfile::tempdir().expect("dir");
    let (key, m, s) = (
        dir.path().join("k.pem"),
        dir.path().join("m"),
        dir.path().join("s"),
    );
    std::fs::write(&key, spki_pem).expect("key");
    std::fs::write(&m, msg).expect("msg");
    std::fs::write(&s, sig).expect("sig");
    let mut command = Command::new("openssl");
    if algorithm == SignatureAlgorithm::Ed25519 {
        command.args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"]);
        command.arg(&key).arg("-in").arg(&m).arg("-sigfile").arg(&s);
    } else {
        let hash = match algorithm.digest().expect("hash") {
            coffer_crypto::DigestAlgorithm::Sha256 => "-sha256",
            coffer_crypto::DigestAlgorithm::Sha384 => "-sha384",
            coffer_crypto::DigestAlgorithm::Sha512 => "-sha512",
        };
        command.args(["dgst", hash, "-verify"]).arg(&key);
        if algorithm.as_str().starts_with("rsa-pss") {
            command.args([
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:-1",
            ]);
        }
        command.arg("-signature").arg(&s).arg(&m);
    }
    let out = command.output().expect("openssl");
    out.status.success()
}

fn sign_message(
    custody: &Pkcs11Custody,
    key: &HsmKeyRef,
    spec: KeySpec,
    algorithm: SignatureAlgorithm,
    msg: &[u8],
) -> Vec<u8> {
    let digest = algorithm.digest().map(|hash| hash.hash(msg));
    let input = match &digest {
        Some(digest) => HsmInput::Digest(digest),
        None => HsmInput::Message(msg),
    };
    custody.sign(key, spec, algorithm, input).expect("sign")
}

/// Each key pair the token makes signs there; the signature verifies with the public
/// key read at generation (Coffer's verifier and OpenSSL), and not over another message.
#[tokio::test]
async fn each_key_pair_signs_in_the_token_and_verifies_with_its_public_key() {
    let Some(custody) = custody() else {
        return;
    };
    let cases = [
        (KeySpec::EcdsaP256, SignatureAlgorithm::EcdsaP256Sha256),
        (KeySpec::Ed25519, SignatureAlgorithm::Ed25519),
        (KeySpec::Rsa2048, SignatureAlgorithm::RsaPssSha256),
        (KeySpec::Rsa2048, SignatureAlgorithm::RsaPkcs1Sha384),
        (KeySpec::Rsa2048, SignatureAlgorithm::RsaPssSha512),
    ];
    for (spec, algorithm) in cases {
        let made = custody
            .generate(spec, &format!("test-{}", algorithm.as_str()), None)
            .expect("generate");
        let public = PublicKey::from_spki_der(made.public_key.as_deref().expect("public key"))
            .expect("SPKI");
        assert_eq!(public.spec(), spec);
        let msg = format!("signed by the token with {}", algorithm.as_str());
        let sig = sign_message(&custody, &made.location, spec, algorithm, msg.as_bytes());
        let verifier = VerifyingKey::new(public.clone()).expect("verifier");
        verifier
            .verify_with(algorithm, msg.as_bytes(), &sig, PqVerifyMode::And)
            .unwrap_or_else(|e| panic!("{}: {e}", algorithm.as_str()));
        assert!(
            verifier
                .verify_with(algorithm, b"another message", &sig, PqVerifyMode::And)
                .is_err()
        );
        let pem = public.to_pem();
        assert!(
            openssl_verifies(&pem, algorithm, msg.as_bytes(), &sig),
            "{}",
            algorithm.as_str()
        );
        assert!(!openssl_verifies(&pem, algorithm, b"another message", &sig));
    }
}

/// Private and secret keys are token objects, sensitive and never extractable, checked
/// through cryptoki: their value cannot be read.
#[tokio::test]
async fn private_and_secret_keys_never_leave_the_token() {
    let Some(custody) = custody() else {
        return;
    };
    let hsm = softhsm::softhsm().expect("softhsm");
    let pair = custody
        .generate(KeySpec::EcdsaP256, "ec", None)
        .expect("ec");
    let aes = custody.generate(KeySpec::Aes256, "aes", None).expect("aes");
    assert!(aes.public_key.is_none());
    // A second handle on the module this process already initialised: C_Initialize
    // answers "already initialised", and the calls go to the same module.
    let pkcs11 = Pkcs11::new(&hsm.module).expect("module");
    let _ = pkcs11.initialize(CInitializeArgs::OsThreads);
    let slot = pkcs11
        .get_slots_with_token()
        .expect("slots")
        .into_iter()
        .find(|s| s.id() == pair.location.slot)
        .expect("the key's slot");
    let session = pkcs11.open_ro_session(slot).expect("session");
    // Login is per application: the custody's sessions are logged in already.
    let _ = session.login(
        cryptoki::session::UserType::User,
        Some(&cryptoki::types::AuthPin::new(softhsm::PIN.into())),
    );
    for (class, key) in [
        (ObjectClass::PRIVATE_KEY, &pair.location),
        (ObjectClass::SECRET_KEY, &aes.location),
    ] {
        let found = session
            .find_objects(&[
                Attribute::Class(class),
                Attribute::Id(key.id.clone()),
                Attribute::Label(key.label.as_bytes().to_vec()),
            ])
            .expect("find");
        assert_eq!(found.len(), 1, "{class}");
        let attributes = session
            .get_attributes(
                found[0],
                &[
                    AttributeType::Extractable,
                    AttributeType::Sensitive,
                    AttributeType::NeverExtractable,
                    AttributeType::Token,
                ],
            )
            .expect("attributes");
        for attribute in &attributes {
            match attribute {
                Attribute::Extractable(v) => assert!(!v, "{class} extractable"),
                Attribute::Sensitive(v) => assert!(v, "{class} not sensitive"),
                Attribute::NeverExtractable(v) => assert!(v, "{class} was extractable"),
                Attribute::Token(v) => assert!(v, "{class} not a token object"),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(attributes.len(), 4);
        let value = session
            .get_attributes(found[0], &[AttributeType::Value])
            .unwrap_or_default();
        assert!(
            !value.iter().any(|a| matches!(a, Attribute::Value(_))),
            "{class}: the key's value was readable"
        );
    }
    drop(session);
    // Dropping the last handle would finalise the module under the custody's sessions
    // (cryptoki finalises on drop): this one lives as long as the process.
    std::mem::forget(pkcs11);
}

/// An AES key in the token seals and opens; another associated data, a changed byte or
/// a cut ciphertext do not open.
#[tokio::test]
async fn aes_keys_seal_and_open_in_the_token() {
    let Some(custody) = custody() else {
        return;
    };
    let key = custody
        .generate(KeySpec::Aes256, "wrap", None)
        .expect("aes")
        .location;
    let sealed = custody.seal(&key, b"aad", b"a data key").expect("seal");
    assert_eq!(sealed.len(), 12 + 10 + 16);
    let again = custody.seal(&key, b"aad", b"a data key").expect("seal");
    assert_ne!(sealed, again, "a fresh IV each time");
    let opened = custody.open(&key, b"aad", &sealed).expect("open");
    assert_eq!(opened.expose_secret(), b"a data key");
    assert!(matches!(
        custody.open(&key, b"other", &sealed),
        Err(HsmError::OpenFailed)
    ));
    let mut changed = sealed.clone();
    changed[20] ^= 1;
    assert!(matches!(
        custody.open(&key, b"aad", &changed),
        Err(HsmError::OpenFailed)
    ));
    assert!(matches!(
        custody.open(&key, b"aad", &sealed[..20]),
        Err(HsmError::OpenFailed)
    ));
}

/// What the token cannot hold, another slot, and a destroyed key are refused by name.
#[tokio::test]
async fn unsupported_requests_and_destroyed_keys_are_refused() {
    let Some(custody) = custody() else {
        return;
    };
    for spec in [KeySpec::MlDsa65, KeySpec::HmacSha256, KeySpec::EcdsaP384] {
        assert!(matches!(
            custody.generate(spec, "no", None),
            Err(HsmError::Unsupported(_))
        ));
    }
    let slot = custody.health().slot.expect("up");
    let error = custody
        .generate(KeySpec::EcdsaP256, "elsewhere", Some(slot + 1))
        .expect_err("another slot");
    assert!(error.to_string().contains("--hsm-slot"), "{error}");
    let made = custody
        .generate(KeySpec::EcdsaP256, "here", Some(slot))
        .expect("its own slot");
    assert_eq!(made.location.slot, slot);
    // An algorithm of another spec is refused before the token is asked.
    assert!(matches!(
        custody.sign(
            &made.location,
            KeySpec::EcdsaP256,
            SignatureAlgorithm::Ed25519,
            HsmInput::Message(b"m")
        ),
        Err(HsmError::Unsupported(_))
    ));
    custody.destroy(&made.location).expect("destroy");
    let digest = [7u8; 32];
    assert!(matches!(
        custody.sign(
            &made.location,
            KeySpec::EcdsaP256,
            SignatureAlgorithm::EcdsaP256Sha256,
            HsmInput::Digest(&digest)
        ),
        Err(HsmError::Missing)
    ));
}
