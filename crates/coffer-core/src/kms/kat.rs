//! Known-answer checks before readiness (seed 002 §7): after every load — a start, an
//! unseal, a restore — the service checks, for each key spec present in the store, that
//! a stored key of that spec opens under custody and answers: wrap then unwrap (AES),
//! sign then verify (signing specs), MAC then verify (HMAC), with every usable version
//! of that key; and the fixed public vectors of the algorithms that have them
//! (`coffer_crypto::selftest`; XAES-256-GCM always, tenant keys use it). Until they
//! pass, [`Kms::ready`] is false, so `/readyz` stays 503; a failure is logged (target
//! `coffer::kat`) and counted (`kms_known_answer_failures_total`), and
//! `kms_known_answers_ok` is 0.
//!
//! The checks use the material directly: they are not operations of any caller, so
//! they leave no audit entries and no use in the reference tracker.

use std::collections::BTreeSet;

use coffer_crypto::{KeyMaterial, PqVerifyMode, selftest};

use super::Kms;
use crate::lifecycle::KeyState;
use crate::tenant::TenantState;

const MESSAGE: &[u8] = b"coffer known-answer check";

/// What the known-answer checks found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KnownAnswers {
    /// Not run yet (the service was never loaded).
    NotRun,
    /// Every check passed; the specs checked with a stored key.
    Passed(Vec<String>),
    /// A check failed: which, and why.
    Failed(String),
}

impl Kms {
    /// Runs the known-answer checks and keeps their outcome for [`Kms::ready`].
    pub async fn check_known_answers(&self) -> KnownAnswers {
        let outcome = match self.known_answers().await {
            Ok(specs) => {
                tracing::info!(target: "coffer::kat", specs = %specs.join(","), "known-answer checks passed");
                metrics::gauge!("kms_known_answers_ok").set(1.0);
                KnownAnswers::Passed(specs)
            }
            Err(reason) => {
                tracing::error!(target: "coffer::kat", %reason, "known-answer check failed: the server stays not ready");
                metrics::counter!("kms_known_answer_failures_total").increment(1);
                metrics::gauge!("kms_known_answers_ok").set(0.0);
                KnownAnswers::Failed(reason)
            }
        };
        *self
            .known_answers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = outcome.clone();
        outcome
    }

    /// The outcome of the last known-answer checks.
    pub fn known_answer_outcome(&self) -> KnownAnswers {
        self.known_answers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn known_answers(&self) -> Result<Vec<String>, String> {
        selftest::xaes_256_gcm().map_err(|e| format!("XAES-256-GCM: {e}"))?;
        let store = self.keys.store();
        let mut checked = BTreeSet::new();
        let tenants = store.list_tenants().await.map_err(|e| e.to_string())?;
        for tenant in tenants.iter().filter(|t| t.state == TenantState::Active) {
            let keys = store
                .list_keys(tenant.id)
                .await
                .map_err(|e| e.to_string())?;
            for key in keys {
                if key.state == KeyState::Destroyed || checked.contains(key.spec.as_str()) {
                    continue;
                }
                let entry = self
                    .load_entry(tenant.id, key.id)
                    .await
                    .map_err(|e| format!("{} key {}: {e}", key.spec.as_str(), key.id))?;
                if entry.ready.is_empty() {
                    continue;
                }
                for (number, ready) in &entry.ready {
                    let verifier = ready.verifier.as_ref();
                    let checked = match (ready.software(), ready.hsm()) {
                        (Some(material), _) => round_trip(material, verifier),
                        // An HSM-resident version answers through the token.
                        (_, Some(location)) => self.hsm_round_trip(location, key.spec, verifier),
                        _ => Err("no material".to_owned()),
                    };
                    checked.map_err(|why| {
                        format!(
                            "{} key {} version {number}: {why}",
                            key.spec.as_str(),
                            key.id
                        )
                    })?;
                }
                if let Some(check) = selftest::fixed_vector(key.spec) {
                    check().map_err(|e| format!("{}: {e}", key.spec.as_str()))?;
                }
                checked.insert(key.spec.as_str());
            }
        }
        Ok(checked.into_iter().map(str::to_owned).collect())
    }
}

impl Kms {
    /// Seal/open (AES) or sign/verify with an HSM-resident version, made by the token.
    fn hsm_round_trip(
        &self,
        location: &crate::hsm::HsmKeyRef,
        spec: coffer_crypto::KeySpec,
        verifier: Option<&coffer_crypto::VerifyingKey>,
    ) -> Result<(), String> {
        if spec == coffer_crypto::KeySpec::Aes256 {
            let hsm = self.keys.hsm().map_err(|e| e.to_string())?;
            let sealed = hsm
                .seal(location, MESSAGE, MESSAGE)
                .map_err(|e| e.to_string())?;
            let opened = hsm
                .open(location, MESSAGE, &sealed)
                .map_err(|e| e.to_string())?;
            if opened.expose_secret() != MESSAGE {
                return Err("the token did not open what it sealed".into());
            }
            return Ok(());
        }
        let algorithm =
            coffer_crypto::SignatureAlgorithm::choose(spec, None).map_err(|e| e.to_string())?;
        let signature = self
            .hsm_sign(
                location,
                spec,
                algorithm,
                super::SignInput::Message(MESSAGE),
            )
            .map_err(|e| e.to_string())?;
        verifier
            .ok_or("no verifier for a signing key")?
            .verify(MESSAGE, &signature, PqVerifyMode::And)
            .map_err(|e| format!("the token's signature does not verify ({e})"))
    }
}

/// Wrap/unwrap, sign/verify or MAC/verify with one version's material.
fn round_trip(
    material: &KeyMaterial,
    verifier: Option<&coffer_crypto::VerifyingKey>,
) -> Result<(), String> {
    match material {
        KeyMaterial::Aes256(key) => {
            let sealed = key.seal(MESSAGE, MESSAGE).map_err(|e| e.to_string())?;
            let opened = key.open(MESSAGE, &sealed).map_err(|e| e.to_string())?;
            if opened.expose_secret() != MESSAGE {
                return Err("unwrap did not give back what was wrapped".into());
            }
        }
        KeyMaterial::Hmac(key) => {
            let tag = key.sign(MESSAGE);
            key.verify(MESSAGE, &tag).map_err(|e| e.to_string())?;
        }
        KeyMaterial::Signing(key) => {
            let signature = key.sign(MESSAGE).map_err(|e| e.to_string())?;
            verifier
                .ok_or("no verifier for a signing key")?
                .verify(MESSAGE, &signature, PqVerifyMode::And)
                .map_err(|e| format!("its own signature does not verify ({e})"))?;
        }
    }
    Ok(())
}
