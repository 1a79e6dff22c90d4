//! `validate`'s attested smoke checks (issue 19; seed 001: "smoke checks pass for the
//! attested enclave path", "validation output confirming attestation/KMS policy
//! enforcement").
//!
//! With a test authority's signing key (`--attestation-authority-key FILE`, or the
//! profile's `attestation_authority_key_file`), `validate` makes Coffer test-format
//! documents itself: one for a measurement on the key's allow-list, which the smoke
//! test then carries (unwrap, a refresh-style rewrap and its unwrap, sign or mac), and
//! one for a measurement the policy's last change removed, which must be refused
//! (`403 measurement_not_allowed`). Both outcomes go into the evidence.
//!
//! What that proves, and what it does not: that the server in front of you verifies
//! documents from that authority and enforces the key's allow-list as it now stands
//! (the new list admits, the removed measurement is refused). It does not prove that an
//! enclave built as that measurement exists, runs, or can reach Coffer: only the
//! enclave can produce its own Nitro document, and that path is the enclave's own smoke
//! test (the profile's `validate_cmd` and `enclave_healthcheck_url`). The server must
//! be configured to trust the authority (`attestation.authority_public_key_file`),
//! which production servers should not be; the evidence line says which format and
//! which authority key (by its SHA-256) made the documents.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use coffer_api::crypto::{MacRequest, SignRequest, UnwrapRequest, WrapRequest};
use coffer_api::{B64, B64Secret, ErrorCode, paths};
use coffer_attest::Measurement;
use coffer_attest::test_format::Authority;
use coffer_client::{ClientError, request_paths};
use serde_json::json;
use zeroize::Zeroizing;

use super::Verdict;
use super::session::{Outcome, Session, Step};
use crate::commands::print_line;

/// The authority's key, read from a 0600 file: PEM `PRIVATE KEY` (PKCS #8) or DER.
///
/// No `Debug` beyond [`Authority`]'s elided one: it holds a signing key.
pub struct AuthorityFile {
    authority: Authority,
    /// SHA-256 of the authority's public key PEM, for the evidence.
    fingerprint: String,
}

impl AuthorityFile {
    /// Reads and parses the key file; refuses one others can read.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        crate::commands::sys::check_private(path)?;
        let bytes = Zeroizing::new(
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
        );
        let der =
            match std::str::from_utf8(&bytes) {
                Ok(text) if text.contains("-----BEGIN PRIVATE KEY-----") => {
                    let body: String = text
                        .lines()
                        .filter(|l| !l.starts_with("-----"))
                        .collect::<Vec<_>>()
                        .concat();
                    Zeroizing::new(STANDARD.decode(body.trim()).with_context(|| {
                        format!("{}: the PEM body is not base64", path.display())
                    })?)
                }
                _ => Zeroizing::new(bytes.to_vec()),
            };
        let authority = Authority::from_pkcs8(&der).map_err(|e| {
            anyhow::anyhow!("{}: not an attestation authority key: {e}", path.display())
        })?;
        let fingerprint = hex::encode(coffer_crypto::hash::sha256(&[authority
            .public_key_pem()
            .as_bytes()]));
        Ok(Self {
            authority,
            fingerprint,
        })
    }
}

/// What `validate` attests as, from the key's attestation policy.
pub struct Plan {
    authority: AuthorityFile,
    operations: BTreeSet<String>,
    allowed: Measurement,
    removed: Option<Measurement>,
}

impl Plan {
    /// A fresh document for the allowed measurement, if `operation` needs one.
    pub fn document(&self, operation: &str) -> anyhow::Result<Option<B64>> {
        if !self.operations.contains(operation) {
            return Ok(None);
        }
        self.document_as(&self.allowed).map(Some)
    }

    fn document_as(&self, measurement: &Measurement) -> anyhow::Result<B64> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        let now = i64::try_from(now).context("the clock is out of range")?;
        let document = self
            .authority
            .authority
            .attest_now(measurement, now, None)
            .map_err(|e| anyhow::anyhow!("cannot make an attestation document: {e}"))?;
        Ok(B64(document.into_bytes()))
    }
}

/// Reads the key's attestation policy and decides what to attest as. `Ok(None)` when
/// there is nothing to attest (no authority, a dry run, a policy naming no operation);
/// `Err` verdict when the check cannot pass (an empty allow-list).
pub async fn plan(
    s: &mut Session,
    key: &str,
    authority: Option<AuthorityFile>,
) -> anyhow::Result<Result<Option<Plan>, Verdict>> {
    let Some(authority) = authority else {
        return Ok(Ok(None));
    };
    let planned = s.get(&format!("{}/attestation-policy", request_paths::key(key)?));
    let client = s.client().clone();
    let policies = match s
        .run(
            "validate.attestation-policy",
            &planned,
            client.attestation_policies(key),
            |p| json!({ "version": p.current.as_ref().map(|c| c.version) }),
        )
        .await?
    {
        Step::Planned => return Ok(Ok(None)),
        Step::Failed(error) => return Err(error.into()),
        Step::Done(policies) => policies,
    };
    let Some(current) = policies
        .current
        .as_ref()
        .filter(|c| !c.operations.is_empty())
    else {
        s.record(
            "validate.attestation",
            Outcome::Unknown,
            json!({ "detail": "the key's attestation policy names no operation: nothing to attest" }),
            None,
        )?;
        print_line("attested checks: not made (the key's policy requires no attestation)")?;
        return Ok(Ok(None));
    };
    let parse = |list: &[String]| -> anyhow::Result<BTreeSet<Measurement>> {
        list.iter()
            .map(|m| {
                m.parse()
                    .map_err(|e| anyhow::anyhow!("measurement {m}: {e}"))
            })
            .collect()
    };
    let now = parse(&current.measurements)?;
    let before = match policies.versions.len() {
        n if n >= 2 => parse(&policies.versions[n - 2].measurements)?,
        _ => BTreeSet::new(),
    };
    let Some(allowed) = now.iter().next().cloned() else {
        s.record(
            "validate.attestation",
            Outcome::Failed,
            json!({ "policy_version": current.version, "detail": "the allow-list is empty: no workload can pass" }),
            None,
        )?;
        print_line("attested checks: FAILED: the key's allow-list is empty")?;
        return Ok(Err(Verdict::Failed));
    };
    let removed = before.difference(&now).next().cloned();
    s.record(
        "validate.attestation",
        Outcome::Ok,
        json!({
            "policy_version": current.version,
            "operations": current.operations,
            "allowed": allowed.to_string(),
            "removed": removed.as_ref().map(ToString::to_string),
            "format": "coffer-test",
            "authority_public_key_sha256": authority.fingerprint,
            "proves": "the server verifies this authority's documents and enforces the key's \
                       allow-list; not that an enclave of this measurement runs",
        }),
        None,
    )?;
    Ok(Ok(Some(Plan {
        authority,
        operations: current.operations.iter().cloned().collect(),
        allowed,
        removed,
    })))
}

/// The operation of `purpose` behind the policy, if the policy names it.
fn attested_op(purpose: &str) -> &'static str {
    match purpose {
        "sign" => "sign",
        "mac" => "mac",
        _ => "unwrap",
    }
}

/// With a document for the removed measurement, the purpose's secret operation must
/// be refused `measurement_not_allowed`.
pub async fn removed_is_refused(
    s: &mut Session,
    plan: &Plan,
    purpose: &str,
    key: &str,
) -> anyhow::Result<Verdict> {
    let op = attested_op(purpose);
    let Some(removed) = plan.removed.clone() else {
        s.record(
            "validate.attested.removed",
            Outcome::Unknown,
            json!({ "detail": "the policy's last change removed no measurement: no refusal to check" }),
            None,
        )?;
        print_line("attested refusal check: not made (no measurement was removed)")?;
        return Ok(Verdict::Passed);
    };
    if !plan.operations.contains(op) {
        s.record(
            "validate.attested.removed",
            Outcome::Unknown,
            json!({ "detail": format!("the policy does not put {op} behind attestation") }),
            None,
        )?;
        return Ok(Verdict::Passed);
    }
    let document = Some(plan.document_as(&removed)?);
    let client = s.client().clone();
    let shown =
        json!({ "key_id": key, "attestation": format!("<coffer-test document for {removed}>") });
    let (path, answer) = match op {
        "sign" => (
            paths::SIGN,
            client
                .sign(&SignRequest {
                    key_id: key.to_owned(),
                    message: Some(B64(b"coffer rotate validate: removed measurement".to_vec())),
                    attestation: document,
                    ..Default::default()
                })
                .await
                .map(|_| ()),
        ),
        "mac" => (
            paths::MAC,
            client
                .mac(&MacRequest {
                    key_id: key.to_owned(),
                    message: B64(b"coffer rotate validate: removed measurement".to_vec()),
                    attestation: document,
                })
                .await
                .map(|_| ()),
        ),
        _ => {
            let ciphertext = probe_ciphertext(s, key).await?;
            (
                paths::UNWRAP,
                client
                    .unwrap(&UnwrapRequest {
                        ciphertext,
                        context: super::smoke::probe_context(),
                        attestation: document,
                    })
                    .await
                    .map(|_| ()),
            )
        }
    };
    let planned = s.post(path, Some(shown));
    let (outcome, detail) = match answer {
        Err(ClientError::Api {
            code: ErrorCode::MeasurementNotAllowed,
            ..
        }) => (
            Outcome::Ok,
            format!(
                "{op} as removed measurement {removed}: refused (measurement_not_allowed), as it must be"
            ),
        ),
        Err(other) => (
            Outcome::Failed,
            format!(
                "{op} as removed measurement {removed}: FAILED: expected measurement_not_allowed, got {other}"
            ),
        ),
        Ok(()) => (
            Outcome::Failed,
            format!("{op} as removed measurement {removed}: FAILED: it was allowed"),
        ),
    };
    s.record_request(
        "validate.attested.removed",
        &planned,
        outcome,
        json!({ "detail": detail }),
        None,
    )?;
    print_line(&format!("attested refusal check: {detail}"))?;
    Ok(if outcome == Outcome::Ok {
        Verdict::Passed
    } else {
        Verdict::Failed
    })
}

/// A disposable ciphertext under the key (wrap needs no attestation).
async fn probe_ciphertext(s: &mut Session, key: &str) -> anyhow::Result<B64> {
    let mut value = Zeroizing::new(vec![0u8; 32]);
    coffer_crypto::rng::fill(&mut value).context("the random generator failed")?;
    let wrapped = s
        .client()
        .clone()
        .wrap(&WrapRequest {
            key_id: key.to_owned(),
            plaintext: B64Secret::new(value.to_vec()),
            context: super::smoke::probe_context(),
            track_id: None,
        })
        .await
        .context("wrapping the refusal check's probe")?;
    if wrapped.ciphertext.0.is_empty() {
        bail!("wrap answered an empty ciphertext");
    }
    Ok(wrapped.ciphertext)
}
