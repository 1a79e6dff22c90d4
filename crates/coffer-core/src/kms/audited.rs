//! The public operations: each runs its unaudited body, then records who did what to
//! which key and how it ended, before the result is returned. If the entry cannot be
//! recorded the result is dropped and the caller gets `Unavailable` (fail closed): no
//! ciphertext or signature leaves without its audit entry.
//!
//! Changes are recorded differently: a change's `ok` entry is written by the store in
//! the change's own transaction (see `store::Record`), so a change that cannot be
//! audited does not happen. Here only their refusals and failures are recorded
//! ([`Kms::settled`]), which changed nothing.

use std::time::Duration;

use coffer_crypto::{EncryptionContext, SecretBytes};

use super::certificates::{CertificateChain, ChainReport, IssueCertificate};
use super::keys::{KeyDetails, KeyFilter};
use super::sign::{SignInput, Signed};
use super::unwrap::Opened;
use super::verify::Verified;
use super::wrap::Sealed;
use super::{Caller, Kms, KmsError, KmsResult, MintToken};
use crate::audit::{Actor, AuditEntry};
use crate::ids::{KeyId, VersionNumber};
use crate::key::KeyVersion;
use crate::keys::NewKey;
use crate::lifecycle::KeyState;
use crate::tenant::Tenant;
use crate::token::TokenId;

/// What an outcome says about the key and version it used.
trait Subject {
    fn subject(&self) -> (Option<KeyId>, Option<VersionNumber>);
}

macro_rules! subject {
    ($t:ty, |$v:ident| $e:expr) => {
        impl Subject for $t {
            fn subject(&self) -> (Option<KeyId>, Option<VersionNumber>) {
                let $v = self;
                $e
            }
        }
    };
}

subject!(Sealed, |s| (Some(s.key_id), Some(s.version)));
subject!(Opened, |o| (Some(o.key_id), Some(o.version)));
subject!((SecretBytes, Sealed), |d| (
    Some(d.1.key_id),
    Some(d.1.version)
));
subject!(Signed, |s| (Some(s.key_id), Some(s.version)));
subject!(Verified, |v| (Some(v.key_id), Some(v.version)));
subject!((Vec<u8>, Verified), |m| (
    Some(m.1.key_id),
    Some(m.1.version)
));
subject!(KeyDetails, |d| (
    Some(d.key.id),
    d.versions.iter().find(|v| v.primary).map(|v| v.number)
));
subject!(Vec<KeyDetails>, |_l| (None, None));
subject!(KeyVersion, |v| (Some(v.key), Some(v.number)));
subject!(CertificateChain, |c| (Some(c.key_id), Some(c.version)));
subject!(ChainReport, |r| (Some(r.key_id), Some(r.version)));
subject!(Tenant, |_t| (None, None));
subject!((String, TokenId), |_t| (None, None));
subject!((), |_u| (None, None));

impl Kms {
    /// For changes: the success was recorded with the change itself; a failure changed
    /// nothing and is recorded here.
    async fn settled<T: Subject>(
        &self,
        caller: &Caller,
        actor: &Actor,
        reference: Option<&str>,
        result: KmsResult<T>,
    ) -> KmsResult<T> {
        if result.is_ok() {
            return result;
        }
        self.audited(caller, &actor.op, reference, result).await
    }

    async fn audited<T: Subject>(
        &self,
        caller: &Caller,
        op: &str,
        reference: Option<&str>,
        result: KmsResult<T>,
    ) -> KmsResult<T> {
        let (key, version) = match &result {
            Ok(value) => value.subject(),
            Err(_) => (None, None),
        };
        let entry = AuditEntry {
            at: self.keys.clock().now().millis(),
            tenant: caller
                .grants
                .tenant()
                .map_or_else(|| "-".to_owned(), |t| t.to_string()),
            principal: caller.token_id.to_string(),
            op: op.to_owned(),
            key: key
                .map(|k| k.to_string())
                .or_else(|| reference.map(str::to_owned)),
            version: version.map(VersionNumber::get),
            outcome: result
                .as_ref()
                .map_or_else(KmsError::code, |_| "ok")
                .to_owned(),
            request_id: caller.request_id.clone(),
            detail: None,
        };
        self.audit
            .record(entry)
            .await
            .map_err(|e| KmsError::Unavailable(e.to_string()))?;
        result
    }

    /// Wraps `plaintext` (at most 4096 bytes) under `reference`'s primary version.
    pub async fn wrap(
        &self,
        caller: &Caller,
        reference: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> KmsResult<Sealed> {
        let result = self
            .wrap_unaudited(caller, reference, plaintext, context)
            .await;
        self.audited(caller, "wrap", Some(reference), result).await
    }

    /// Unwraps an envelope (the key comes from its header, within the caller's tenant).
    pub async fn unwrap(
        &self,
        caller: &Caller,
        ciphertext: &[u8],
        context: &EncryptionContext,
    ) -> KmsResult<Opened> {
        let result = self.unwrap_unaudited(caller, ciphertext, context).await;
        // A success names its key itself; only a failure needs the header's word for it.
        let named = result
            .is_err()
            .then(|| super::unwrap::header(ciphertext).ok())
            .flatten()
            .map(|(k, _)| k.to_string());
        self.audited(caller, "unwrap", named.as_deref(), result)
            .await
    }

    /// Generates a data key and wraps it under `reference`.
    pub async fn datakey(
        &self,
        caller: &Caller,
        reference: &str,
        bytes: usize,
        context: &EncryptionContext,
        track_id: Option<&str>,
    ) -> KmsResult<(SecretBytes, Sealed)> {
        let actor = caller.actor("datakey");
        let result = self
            .datakey_unaudited(caller, reference, bytes, context, track_id, &actor)
            .await;
        match track_id {
            // Registering the data key is a change: its entry committed with it.
            Some(_) => self.settled(caller, &actor, Some(reference), result).await,
            None => {
                self.audited(caller, "datakey", Some(reference), result)
                    .await
            }
        }
    }

    /// Moves an envelope to `destination` (default: the same key's primary).
    pub async fn rewrap(
        &self,
        caller: &Caller,
        ciphertext: &[u8],
        context: &EncryptionContext,
        destination: Option<&str>,
        destination_context: Option<&EncryptionContext>,
    ) -> KmsResult<Sealed> {
        let result = self
            .rewrap_unaudited(
                caller,
                ciphertext,
                context,
                destination,
                destination_context,
            )
            .await;
        self.audited(caller, "rewrap", destination, result).await
    }

    /// Signs with `reference`'s primary version.
    pub async fn sign(
        &self,
        caller: &Caller,
        reference: &str,
        input: SignInput<'_>,
    ) -> KmsResult<Signed> {
        let result = self.sign_unaudited(caller, reference, input).await;
        self.audited(caller, "sign", Some(reference), result).await
    }

    /// Verifies a signature.
    pub async fn verify(
        &self,
        caller: &Caller,
        reference: &str,
        version: Option<u32>,
        input: SignInput<'_>,
        signature: &[u8],
    ) -> KmsResult<Verified> {
        let result = self
            .verify_unaudited(caller, reference, version, input, signature)
            .await;
        self.audited(caller, "verify", Some(reference), result)
            .await
    }

    /// Computes an HMAC-SHA256 tag.
    pub async fn mac(
        &self,
        caller: &Caller,
        reference: &str,
        message: &[u8],
    ) -> KmsResult<(Vec<u8>, Verified)> {
        let result = self.mac_unaudited(caller, reference, message).await;
        self.audited(caller, "mac", Some(reference), result).await
    }

    /// Checks an HMAC-SHA256 tag.
    pub async fn verify_mac(
        &self,
        caller: &Caller,
        reference: &str,
        version: Option<u32>,
        message: &[u8],
        tag: &[u8],
    ) -> KmsResult<Verified> {
        let result = self
            .verify_mac_unaudited(caller, reference, version, message, tag)
            .await;
        self.audited(caller, "verify_mac", Some(reference), result)
            .await
    }

    /// Creates a key.
    pub async fn create_key(&self, caller: &Caller, request: NewKey) -> KmsResult<KeyDetails> {
        let actor = caller.actor("keys.create");
        let result = self.create_key_unaudited(caller, &actor, request).await;
        self.settled(caller, &actor, None, result).await
    }

    /// Lists the caller's keys.
    pub async fn list_keys(
        &self,
        caller: &Caller,
        filter: &KeyFilter,
    ) -> KmsResult<Vec<KeyDetails>> {
        let result = self.list_keys_unaudited(caller, filter).await;
        self.audited(caller, "keys.list", None, result).await
    }

    /// Shows one key.
    pub async fn show_key(&self, caller: &Caller, reference: &str) -> KmsResult<KeyDetails> {
        let result = self.show_key_unaudited(caller, reference).await;
        self.audited(caller, "keys.show", Some(reference), result)
            .await
    }

    /// Rotates a key.
    pub async fn rotate_key(&self, caller: &Caller, reference: &str) -> KmsResult<KeyVersion> {
        let actor = caller.actor("keys.rotate");
        let result = self.rotate_key_unaudited(caller, &actor, reference).await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    /// Changes a key's state.
    pub async fn set_key_state(
        &self,
        caller: &Caller,
        reference: &str,
        to: KeyState,
        waiting: Option<Duration>,
    ) -> KmsResult<KeyDetails> {
        let op = match to {
            KeyState::Enabled => "keys.enable",
            KeyState::Disabled => "keys.disable",
            KeyState::PendingDeletion => "keys.schedule_deletion",
            KeyState::Destroyed => "keys.destroy",
        };
        let actor = caller.actor(op);
        let result = self
            .set_key_state_unaudited(caller, &actor, reference, to, waiting)
            .await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    /// Cancels a scheduled deletion.
    pub async fn cancel_deletion(&self, caller: &Caller, reference: &str) -> KmsResult<KeyDetails> {
        let actor = caller.actor("keys.cancel_deletion");
        let result = self
            .cancel_deletion_unaudited(caller, &actor, reference)
            .await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    /// Creates a tenant.
    pub async fn create_tenant(&self, caller: &Caller, name: &str) -> KmsResult<Tenant> {
        let actor = caller.actor("tenant.create");
        let result = self.create_tenant_unaudited(caller, &actor, name).await;
        self.settled(caller, &actor, None, result).await
    }

    /// Mints a token.
    pub async fn mint_token(
        &self,
        caller: &Caller,
        request: MintToken,
    ) -> KmsResult<(String, TokenId)> {
        let actor = caller.actor("token.mint");
        let result = self.mint_token_unaudited(caller, &actor, request).await;
        self.settled(caller, &actor, None, result).await
    }

    /// Revokes a token.
    pub async fn revoke_token(&self, caller: &Caller, id: TokenId) -> KmsResult<()> {
        let actor = caller.actor("token.revoke");
        let result = self.revoke_token_unaudited(caller, &actor, id).await;
        self.settled(caller, &actor, None, result).await
    }

    /// Adds a spare (inactive) version.
    pub async fn add_spare(&self, caller: &Caller, reference: &str) -> KmsResult<KeyDetails> {
        let actor = caller.actor("keys.add_spare");
        let result = self.add_spare_unaudited(caller, &actor, reference).await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    /// Activates a version (makes it primary).
    pub async fn activate(
        &self,
        caller: &Caller,
        reference: &str,
        version: u32,
    ) -> KmsResult<KeyDetails> {
        let actor = caller.actor("keys.activate");
        let result = self
            .activate_unaudited(caller, &actor, reference, version)
            .await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    /// Registers a purpose on a key.
    pub async fn register_purpose(
        &self,
        caller: &Caller,
        reference: &str,
        purpose: &str,
    ) -> KmsResult<KeyDetails> {
        let actor = caller.actor("keys.register");
        let result = self
            .register_unaudited(caller, &actor, reference, purpose)
            .await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    /// Imports a certificate chain (PEM, leaf first) for a version (default: primary).
    pub async fn import_chain(
        &self,
        caller: &Caller,
        reference: &str,
        version: Option<u32>,
        chain_pem: &str,
    ) -> KmsResult<CertificateChain> {
        let actor = caller.actor("keys.import_chain");
        let result = self
            .import_chain_unaudited(caller, &actor, reference, version, chain_pem)
            .await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    /// Issues a certificate for a key's primary version from a tenant CA key.
    pub async fn issue_certificate(
        &self,
        caller: &Caller,
        reference: &str,
        request: &IssueCertificate,
    ) -> KmsResult<CertificateChain> {
        let actor = caller.actor("keys.issue_certificate");
        let result = self
            .issue_certificate_unaudited(caller, &actor, reference, request)
            .await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    /// A version's certificate chain.
    pub async fn certificate_chain(
        &self,
        caller: &Caller,
        reference: &str,
        version: Option<u32>,
    ) -> KmsResult<CertificateChain> {
        let result = self
            .certificate_chain_unaudited(caller, reference, version)
            .await;
        self.audited(caller, "keys.certificate", Some(reference), result)
            .await
    }

    /// Checks a version's certificate chain link by link.
    pub async fn verify_chain(
        &self,
        caller: &Caller,
        reference: &str,
        version: Option<u32>,
    ) -> KmsResult<ChainReport> {
        let result = self
            .verify_chain_unaudited(caller, reference, version)
            .await;
        self.audited(caller, "keys.verify_chain", Some(reference), result)
            .await
    }

    /// Changes a key's rotation policy and validity.
    pub async fn set_policy(
        &self,
        caller: &Caller,
        reference: &str,
        rotation: crate::key::RotationPolicy,
        validity: Option<crate::time::HumanDuration>,
    ) -> KmsResult<KeyDetails> {
        let actor = caller.actor("keys.policy");
        let result = self
            .set_policy_unaudited(caller, &actor, reference, rotation, validity)
            .await;
        self.settled(caller, &actor, Some(reference), result).await
    }
}
