//! Certificate chains through the API and the binary (seed 004: "check certificate
//! chain validity"): a tenant CA issues itself and a leaf, the chain verifies; a chain
//! for another key is refused; an imported chain whose CA expired is named by
//! `verify-chain`, which exits 1.

use coffer_api::keys::{CreateKeyRequest, IssueCertificateRequest};
use coffer_client::ClientError;
use coffer_crypto::{KeySpec, PublicKey, SigningKey};

use super::harness::TestServer;

/// A local Ed25519 key (or only a public key) as rcgen's signer.
struct Local<'a> {
    public: [u8; 32],
    signer: Option<&'a SigningKey>,
}

impl rcgen::PublicKeyData for Local<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ED25519
    }
}

impl rcgen::SigningKey for Local<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.signer
            .ok_or(rcgen::Error::RemoteKeyError)?
            .sign(msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

fn ed25519_raw(public: &PublicKey) -> [u8; 32] {
    match public {
        PublicKey::Ed25519(raw) => *raw,
        other => panic!("not Ed25519: {other:?}"),
    }
}

fn params(cn: &str, serial: u8, from_days: i64, to_days: i64) -> rcgen::CertificateParams {
    let now = time::OffsetDateTime::now_utc();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&[serial]));
    params.not_before = now + time::Duration::days(from_days);
    params.not_after = now + time::Duration::days(to_days);
    params
}

/// PEM of `leaf_key` certified by a local CA whose own certificate expired yesterday.
fn chain_with_expired_ca(leaf_key: &PublicKey) -> String {
    let ca_key = SigningKey::generate(KeySpec::Ed25519).unwrap();
    let ca = Local {
        public: ed25519_raw(&ca_key.public_key()),
        signer: Some(&ca_key),
    };
    let mut ca_params = params("Expired Local CA", 1, -30, -1);
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca).unwrap();
    let leaf = Local {
        public: ed25519_raw(leaf_key),
        signer: None,
    };
    let issuer = rcgen::Issuer::new(params("Expired Local CA", 1, -30, -1), &ca);
    let leaf_cert = params("attestation leaf", 2, -10, 10)
        .signed_by(&leaf, &issuer)
        .unwrap();
    let pem = |der: &[u8]| {
        use base64::Engine;
        let text = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = text
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    };
    format!("{}{}", pem(leaf_cert.der()), pem(ca_cert.der()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_ca_issues_a_chain_that_verifies_and_an_expired_one_is_named() {
    let server = TestServer::start().await;
    let token = server.tenant_token("releases").await;
    let client = server.client(&token);
    let create = |spec: &str, alias: &str| CreateKeyRequest {
        spec: spec.into(),
        alias: Some(alias.into()),
        ..Default::default()
    };
    let ca = client
        .create_key(&create("ecdsa-p256", "release-ca"))
        .await
        .unwrap();
    let leaf = client
        .create_key(&create("ed25519", "attestation"))
        .await
        .unwrap();

    // The CA certifies itself, then the leaf (10 days, within the CA's 30).
    let (code, out, err) = server.cli(
        &token,
        &[
            "keys",
            "issue-certificate",
            "alias/release-ca",
            "--ca",
            "alias/release-ca",
            "--subject",
            "Release CA",
            "--validity",
            "30d",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("CN=Release CA"), "{out}");
    let issued = client
        .issue_certificate(
            "alias/attestation",
            &IssueCertificateRequest {
                ca_key: "alias/release-ca".into(),
                subject: "attestation signer".into(),
                validity: "10d".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(issued.links.len(), 2);
    assert_eq!(issued.links[0].issuer, "CN=Release CA");
    // Outliving the CA's certificate is refused.
    let too_long = client
        .issue_certificate(
            "alias/attestation",
            &IssueCertificateRequest {
                ca_key: "alias/release-ca".into(),
                subject: "attestation signer".into(),
                validity: "60d".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(too_long, ClientError::Api { status: 400, .. }),
        "{too_long:?}"
    );

    // Subject names with control characters or of absurd length are refused, and
    // nothing is issued: the leaf keeps the chain it had.
    let long = "x".repeat(4096);
    for subject in [
        "signer\nCN=Release CA",
        "bell\u{7}",
        "rtl\u{202E}gpj.exe",
        long.as_str(),
    ] {
        let refused = client
            .issue_certificate(
                "alias/attestation",
                &IssueCertificateRequest {
                    ca_key: "alias/release-ca".into(),
                    subject: subject.into(),
                    validity: "10d".into(),
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, ClientError::Api { status: 400, message, .. } if message.starts_with("the subject")),
            "{refused:?}"
        );
    }

    let report = client.verify_chain(&leaf.key_id, None).await.unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.links.len(), 2);
    assert_eq!(report.first_expired, None);
    assert!(
        report
            .links
            .iter()
            .all(|l| l.valid_now && l.signature_ok == Some(true)),
        "{report:?}"
    );
    let (code, out, err) = server.cli(&token, &["keys", "verify-chain", "alias/attestation"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("VALID NOW") && out.contains("chain ok"),
        "{out}"
    );
    let (code, out, _) = server.cli(&token, &["keys", "show", "alias/attestation", "--details"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("BEGIN PUBLIC KEY") && out.contains("subject CN=attestation signer"),
        "{out}"
    );

    // The CA's chain stays importable on its own version; a chain whose leaf
    // certifies the CA is refused for the leaf key.
    let ca_chain = client.certificate_chain(&ca.key_id, None).await.unwrap();
    let refused = client
        .import_chain(&leaf.key_id, &ca_chain.chain_pem, None)
        .await
        .unwrap_err();
    match refused {
        ClientError::Api {
            status, message, ..
        } => {
            assert_eq!(status, 400);
            assert!(message.contains("another key"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    // A chain for the leaf's own key whose CA expired yesterday: link 1 is named.
    let leaf_public =
        PublicKey::from_pem(leaf.versions[0].public_key_pem.as_deref().unwrap()).unwrap();
    let pem_file = server.dir.join("expired-chain.pem");
    std::fs::write(&pem_file, chain_with_expired_ca(&leaf_public)).unwrap();
    let (code, out, err) = server.cli(
        &token,
        &[
            "keys",
            "import-chain",
            "alias/attestation",
            "--pem",
            pem_file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 certificate(s)"), "{out}");
    let report = client
        .verify_chain("alias/attestation", None)
        .await
        .unwrap();
    assert!(!report.ok);
    assert_eq!(report.first_expired, Some(1));
    assert!(report.links.iter().all(|l| l.signature_ok == Some(true)));
    let (code, out, _) = server.cli(&token, &["keys", "verify-chain", "alias/attestation"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("first expired: link 1 (CN=Expired Local CA)")
            && out.contains("CHAIN NOT VALID"),
        "{out}"
    );
}
