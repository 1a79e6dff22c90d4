//! rewrap: move an envelope to another key or to the current primary version, without
//! the plaintext leaving the service.

use coffer_crypto::EncryptionContext;

use super::unwrap::header;
use super::wrap::Sealed;
use super::{Caller, Kms, KmsError, KmsResult};
use crate::token::Operation;
use crate::usage::UseKind;

/// The detail of a rewrap's audit entry: the entry names the destination, the detail
/// the source (the ciphertext's header).
pub(super) fn source_detail(ciphertext: &[u8]) -> Option<String> {
    header(ciphertext)
        .ok()
        .map(|(key, version)| format!("from key {key} version {version}"))
}

impl Kms {
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
        self.audited_with(
            caller,
            "rewrap",
            destination,
            source_detail(ciphertext),
            result,
        )
        .await
    }

    /// Opens `ciphertext` and seals its plaintext under `destination` (default: the
    /// same key) with `destination_context` (default: the same context). Needs both
    /// `rewrap` and access to both keys.
    pub(super) async fn rewrap_unaudited(
        &self,
        caller: &Caller,
        ciphertext: &[u8],
        context: &EncryptionContext,
        destination: Option<&str>,
        destination_context: Option<&EncryptionContext>,
    ) -> KmsResult<Sealed> {
        if !caller.grants.allows_op(Operation::Rewrap) {
            return Err(KmsError::Forbidden(
                "the token does not allow this operation",
            ));
        }
        let tenant = Self::tenant_of(caller)?;
        let (source_id, version) = header(ciphertext)?;
        let source = self
            .entry_for(caller, tenant, source_id, Operation::Rewrap)
            .await?;
        let target = match destination {
            Some(reference) => self.key_for(caller, Operation::Rewrap, reference).await?,
            None => source.clone(),
        };
        let _source_in_flight = self.in_flight(
            caller,
            &source.key,
            version,
            UseKind::of_ciphertext(UseKind::Decrypt, context),
        );
        let _target_in_flight = target.primary.map(|v| {
            let sealed = destination_context.unwrap_or(context);
            self.in_flight(
                caller,
                &target.key,
                v,
                UseKind::of_ciphertext(UseKind::Encrypt, sealed),
            )
        });
        let opened = self.open_with(&source, version, ciphertext, context)?;
        self.seal_primary(
            &target,
            opened.plaintext.expose_secret(),
            destination_context.unwrap_or(context),
        )
    }
}
