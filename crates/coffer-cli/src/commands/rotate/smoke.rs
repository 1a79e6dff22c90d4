//! `validate`: a smoke test of the key's primary version (and, with `--corpus`, a
//! dual unwrap, see `corpus.rs`).
//!
//! The smoke test's plaintext is 32 fresh random bytes: nothing real is exposed, and
//! the round trip proves the server both sealed and opened it. Its request body is
//! never shown, not even with `--show-commands`: the printed body says what the
//! plaintext is instead of carrying it, so no secret type is ever serialized for
//! display.

use std::path::Path;

use anyhow::Context as _;
use coffer_api::crypto::{
    Context, MacRequest, RewrapRequest, SignRequest, UnwrapRequest, VerifyMacRequest,
    VerifyRequest, WrapRequest,
};
use coffer_api::{B64, B64Secret, paths};
use coffer_client::request_paths;
use serde_json::json;
use zeroize::Zeroizing;

use super::Verdict;
use super::attested::{self, AuthorityFile, Plan};
use super::checks::key_evidence;
use super::corpus::dual_unwrap;
use super::health::{self, Moment};
use super::hooks::{self, Hook};
use super::session::{Outcome, Session, Step};
use crate::commands::print_line;

const TEST_BYTES: usize = 32;

/// The context of `validate`'s disposable ciphertexts. `coffer:probe` declares them
/// disposable: the server counts their round trips as `probe` use, which does not
/// refuse the next rotation as untracked use would (it still counts as use for the
/// quiet period).
pub fn probe_context() -> Context {
    Context::from([
        ("purpose".into(), "coffer-rotate-validate".into()),
        ("coffer:probe".into(), "rotate-validate".into()),
    ])
}

/// Smoke-tests `key`'s primary version by its purpose (attested as the key's policy
/// asks when the run has a test authority's key, see `attested.rs`), then unwraps
/// `corpus` if given.
pub async fn validate(
    s: &mut Session,
    key: &str,
    corpus: Option<&Path>,
) -> anyhow::Result<Verdict> {
    // Read first, so a dry run checks it too (a local input).
    let authority = s
        .runbook
        .attestation_authority_key
        .as_deref()
        .map(AuthorityFile::load)
        .transpose()?;
    let planned = s.get(&request_paths::key(key)?);
    let client = s.client().clone();
    let view = match s
        .run("validate.key", &planned, client.show_key(key), key_evidence)
        .await?
    {
        Step::Planned => None,
        Step::Failed(error) => return Err(error.into()),
        Step::Done(view) => Some(view),
    };
    let verdict = match &view {
        // Dry run: the purpose is not known, so each test is planned.
        None => {
            print_line("[dry-run] validate: the test depends on the key's purpose")?;
            for purpose in ["encrypt", "sign", "mac"] {
                smoke(s, purpose, key, None, None).await?;
            }
            Verdict::Planned
        }
        Some(view) => match attested::plan(s, &view.key_id, authority).await? {
            Err(failed) => failed,
            Ok(plan) => {
                let (purpose, id) = (&view.purpose, &view.key_id);
                let passed = smoke(s, purpose, id, Some(view.primary_version), plan.as_ref());
                let passed = passed.await?;
                match &plan {
                    Some(plan) => worst(
                        passed,
                        attested::removed_is_refused(s, plan, purpose, id).await?,
                    ),
                    None => passed,
                }
            }
        },
    };
    let corpus = match corpus {
        Some(path) => dual_unwrap(s, path).await?,
        None => verdict,
    };
    // Then the profile's own checks (seed 001): the validate hook and the health
    // checks, whatever the smoke test found, so the evidence has them all.
    if let Some(view) = &view {
        s.learn("KMS_KEY_ID", &view.key_id);
    }
    let hook = hooks::run(s, Hook::Validate).await?;
    let healthy = health::check(s, Moment::AfterValidation).await?;
    let health = match health::report(Moment::AfterValidation, &healthy) {
        _ if s.dry_run() => Verdict::Planned,
        true => Verdict::Passed,
        false => Verdict::Failed,
    };
    Ok(worst(worst(verdict, corpus), worst(hook, health)))
}

/// Runs (or plans) the smoke test for `purpose`. `primary` is `None` in a dry run.
async fn smoke(
    s: &mut Session,
    purpose: &str,
    key: &str,
    primary: Option<u32>,
    attest: Option<&Plan>,
) -> anyhow::Result<Verdict> {
    let result = match purpose {
        "encrypt" => encrypt(s, key, attest).await?,
        "sign" => sign(s, key, attest).await?,
        "mac" => mac(s, key, attest).await?,
        other => Some(Err(format!("no smoke test for purpose {other}"))),
    };
    let (outcome, detail) = match result {
        None => return Ok(Verdict::Planned),
        Some(Ok(version)) if primary.is_some_and(|p| p != version) => (
            Outcome::Failed,
            format!(
                "used v{version}, but the primary is v{}",
                primary.unwrap_or_default()
            ),
        ),
        Some(Ok(version)) if attest.is_some() => (
            Outcome::Ok,
            format!("ok under v{version} (primary), attested as an allowed measurement"),
        ),
        Some(Ok(version)) => (Outcome::Ok, format!("ok under v{version} (primary)")),
        Some(Err(why)) => (Outcome::Failed, format!("FAILED: {why}")),
    };
    s.record(
        "validate.result",
        outcome,
        json!({ "purpose": purpose, "detail": detail }),
        None,
    )?;
    print_line(&format!("{purpose} smoke test: {detail}"))?;
    Ok(if outcome == Outcome::Ok {
        Verdict::Passed
    } else {
        Verdict::Failed
    })
}

/// `None`: planned. `Some(Ok(version))`: passed under that version.
type Smoke = Option<Result<u32, String>>;

async fn encrypt(s: &mut Session, key: &str, attest: Option<&Plan>) -> anyhow::Result<Smoke> {
    let mut value = Zeroizing::new(vec![0u8; TEST_BYTES]);
    coffer_crypto::rng::fill(&mut value).context("the random generator failed")?;
    let context = probe_context();
    let wrap = WrapRequest {
        key_id: key.to_owned(),
        plaintext: B64Secret::new(value.to_vec()),
        context: context.clone(),
        track_id: None,
    };
    let shown = json!({
        "key_id": key,
        "plaintext": format!("<{TEST_BYTES} random bytes>"),
        "context": context,
    });
    let planned = s.post(paths::WRAP, Some(shown));
    let client = s.client().clone();
    let step = s
        .run(
            "validate.wrap",
            &planned,
            client.wrap(&wrap),
            |c| json!({ "key_id": c.key_id, "key_version": c.key_version }),
        )
        .await?;
    let wrapped = match step {
        Step::Planned => None,
        Step::Failed(error) => return Ok(Some(Err(format!("wrap: {error}")))),
        Step::Done(wrapped) => Some(wrapped),
    };
    let unwrap = UnwrapRequest {
        attestation: document(attest, "unwrap")?,
        ciphertext: wrapped
            .as_ref()
            .map(|w| w.ciphertext.clone())
            .unwrap_or_default(),
        context: context.clone(),
    };
    let shown = json!({ "ciphertext": "<the ciphertext wrap answered>", "context": context });
    let planned = s.post(paths::UNWRAP, Some(shown));
    let step = s
        .run(
            "validate.unwrap",
            &planned,
            client.unwrap(&unwrap),
            |u| json!({ "key_id": u.key_id, "key_version": u.key_version }),
        )
        .await?;
    let opened = match (step, wrapped) {
        (Step::Planned, _) | (_, None) => None,
        (Step::Failed(error), _) => Some(Err(format!("unwrap: {error}"))),
        (Step::Done(opened), Some(wrapped)) => {
            Some(if opened.plaintext.expose_secret() != value.as_slice() {
                Err("unwrap answered other bytes than were wrapped".into())
            } else if opened.key_version != wrapped.key_version {
                Err(format!(
                    "wrapped under v{}, unwrapped as v{}",
                    wrapped.key_version, opened.key_version
                ))
            } else {
                Ok((wrapped.key_version, wrapped.ciphertext))
            })
        }
    };
    match (opened, attest) {
        (None, _) => Ok(None),
        (Some(Err(why)), _) => Ok(Some(Err(why))),
        (Some(Ok((version, _))), None) => Ok(Some(Ok(version))),
        // Attested: the refresh path too, a rewrap and an unwrap of its result.
        (Some(Ok((_, ciphertext))), Some(plan)) => {
            refresh(s, ciphertext, &value, plan).await.map(Some)
        }
    }
}

/// A refresh-style rewrap (a token's ciphertext moved to the primary) and an attested
/// unwrap of what it answered.
async fn refresh(
    s: &mut Session,
    ciphertext: B64,
    value: &[u8],
    plan: &Plan,
) -> anyhow::Result<Result<u32, String>> {
    let context = probe_context();
    let rewrap = RewrapRequest {
        ciphertext,
        context: context.clone(),
        ..Default::default()
    };
    let shown = json!({ "ciphertext": "<the ciphertext wrap answered>", "context": context });
    let planned = s.post(paths::REWRAP, Some(shown));
    let client = s.client().clone();
    let rewrapped = match s
        .run(
            "validate.rewrap",
            &planned,
            client.rewrap(&rewrap),
            |r| json!({ "key_id": r.key_id, "key_version": r.key_version }),
        )
        .await?
    {
        Step::Planned => return Ok(Err("rewrap: not performed".into())),
        Step::Failed(error) => return Ok(Err(format!("rewrap: {error}"))),
        Step::Done(rewrapped) => rewrapped,
    };
    let unwrap = UnwrapRequest {
        attestation: plan.document("unwrap")?,
        ciphertext: rewrapped.ciphertext.clone(),
        context: context.clone(),
    };
    let shown = json!({ "ciphertext": "<the ciphertext rewrap answered>", "context": context });
    let planned = s.post(paths::UNWRAP, Some(shown));
    let step = s
        .run(
            "validate.unwrap-rewrapped",
            &planned,
            client.unwrap(&unwrap),
            |u| json!({ "key_id": u.key_id, "key_version": u.key_version }),
        )
        .await?;
    Ok(match step {
        Step::Planned => Err("unwrap of the rewrapped ciphertext: not performed".into()),
        Step::Failed(error) => Err(format!("unwrap of the rewrapped ciphertext: {error}")),
        Step::Done(opened) if opened.plaintext.expose_secret() != value => {
            Err("the rewrapped ciphertext opened to other bytes".into())
        }
        Step::Done(opened) => Ok(opened.key_version),
    })
}

fn document(attest: Option<&Plan>, operation: &str) -> anyhow::Result<Option<B64>> {
    attest.map_or(Ok(None), |plan| plan.document(operation))
}

fn test_message() -> B64 {
    B64(format!("coffer rotate validate {}", std::process::id()).into_bytes())
}

async fn sign(s: &mut Session, key: &str, attest: Option<&Plan>) -> anyhow::Result<Smoke> {
    let request = SignRequest {
        attestation: document(attest, "sign")?,
        key_id: key.to_owned(),
        message: Some(test_message()),
        digest: None,
        mu: None,
        algorithm: None,
    };
    let mut shown = serde_json::to_value(&request)?;
    if request.attestation.is_some() {
        shown["attestation"] = json!("<coffer-test document for an allowed measurement>");
    }
    let planned = s.post(paths::SIGN, Some(shown));
    let client = s.client().clone();
    let step = s
        .run("validate.sign", &planned, client.sign(&request), |r| {
            json!({ "key_id": r.key_id, "key_version": r.key_version, "algorithm": r.algorithm })
        })
        .await?;
    let signed = match step {
        Step::Planned => None,
        Step::Failed(error) => return Ok(Some(Err(format!("sign: {error}")))),
        Step::Done(signed) => Some(signed),
    };
    let verify = VerifyRequest {
        key_id: key.to_owned(),
        key_version: signed.as_ref().map(|r| r.key_version),
        message: request.message.clone(),
        digest: None,
        mu: None,
        algorithm: None,
        signature: signed
            .as_ref()
            .map(|r| r.signature.clone())
            .unwrap_or_default(),
    };
    let planned = s.post(paths::VERIFY, Some(serde_json::to_value(&verify)?));
    let step = s
        .run(
            "validate.verify",
            &planned,
            client.verify(&verify),
            |r| json!({ "valid": r.valid, "key_version": r.key_version }),
        )
        .await?;
    Ok(verified(step, signed.map(|r| r.key_version), "verify"))
}

async fn mac(s: &mut Session, key: &str, attest: Option<&Plan>) -> anyhow::Result<Smoke> {
    let request = MacRequest {
        attestation: document(attest, "mac")?,
        key_id: key.to_owned(),
        message: test_message(),
    };
    let mut shown = serde_json::to_value(&request)?;
    if request.attestation.is_some() {
        shown["attestation"] = json!("<coffer-test document for an allowed measurement>");
    }
    let planned = s.post(paths::MAC, Some(shown));
    let client = s.client().clone();
    let step = s
        .run(
            "validate.mac",
            &planned,
            client.mac(&request),
            |r| json!({ "key_id": r.key_id, "key_version": r.key_version }),
        )
        .await?;
    let tagged = match step {
        Step::Planned => None,
        Step::Failed(error) => return Ok(Some(Err(format!("mac: {error}")))),
        Step::Done(tagged) => Some(tagged),
    };
    let verify = VerifyMacRequest {
        key_id: key.to_owned(),
        key_version: tagged.as_ref().map(|r| r.key_version),
        message: request.message.clone(),
        mac: tagged.as_ref().map(|r| r.mac.clone()).unwrap_or_default(),
    };
    let planned = s.post(paths::VERIFY_MAC, Some(serde_json::to_value(&verify)?));
    let step = s
        .run(
            "validate.verify-mac",
            &planned,
            client.verify_mac(&verify),
            |r| json!({ "valid": r.valid, "key_version": r.key_version }),
        )
        .await?;
    Ok(verified(step, tagged.map(|r| r.key_version), "verify-mac"))
}

fn verified(
    step: Step<coffer_api::crypto::VerifyResponse>,
    version: Option<u32>,
    what: &str,
) -> Smoke {
    match (step, version) {
        (Step::Planned, _) | (_, None) => None,
        (Step::Failed(error), _) => Some(Err(format!("{what}: {error}"))),
        (Step::Done(answer), Some(version)) if answer.valid => Some(Ok(version)),
        (Step::Done(_), _) => Some(Err(format!("{what} answered invalid"))),
    }
}

fn worst(a: Verdict, b: Verdict) -> Verdict {
    match (a, b) {
        (Verdict::Failed, _) | (_, Verdict::Failed) => Verdict::Failed,
        (Verdict::Planned, _) | (_, Verdict::Planned) => Verdict::Planned,
        _ => Verdict::Passed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_outweighs_a_plan_which_outweighs_a_pass() {
        use Verdict::{Failed, Passed, Planned};
        assert_eq!(worst(Passed, Passed), Passed);
        assert_eq!(worst(Passed, Planned), Planned);
        assert_eq!(worst(Planned, Failed), Failed);
        assert_eq!(worst(Failed, Passed), Failed);
    }
}
