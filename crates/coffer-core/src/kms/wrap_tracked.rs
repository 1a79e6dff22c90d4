//! wrap with a track id: a data key the caller already holds (a legacy provider's, as
//! `coffer migrate sidecars --track` brings them) sealed under a key's primary version
//! and registered as a tracked data key, the same row `datakey` with a track id writes
//! for a generated one. Rotations and retirement then rewrap it like any other
//! (`rewrap_tracked.rs` reads rows, not how they were made).
//!
//! Registering is a change: its `ok` entry commits with the row. A repeat of the same
//! import (same track id, key, context and bytes) answers the row already stored and
//! stores nothing, so a client that lost the answer (a killed migration) can ask again;
//! that answer hands out the tracked envelope, so it goes only to a caller that may
//! read it back (`unwrap` on the key, as `GET /v1/kms/tracked/ID` asks). Any other
//! reuse of the id is `409 conflict`, and nothing is stored.

use coffer_crypto::EncryptionContext;

use super::cache::CachedKey;
use super::datakey::DATAKEY_BYTES;
use super::wrap::Sealed;
use super::{Caller, Kms, KmsError, KmsResult, require_usable};
use crate::audit::Actor;
use crate::ids::VersionNumber;
use crate::key::KeyPurpose;
use crate::store::{Record, StoreError, TrackedKey};
use crate::token::Operation;
use crate::usage::UseKind;

/// Why an import's track id could not be used.
const IN_USE: &str = "the tracked data key id is already in use";

/// How a tracked import ended.
pub(super) enum Imported {
    /// Registered now; its audit entry committed with the row.
    Registered(Sealed),
    /// The same import was registered before: the stored envelope, nothing stored.
    Replayed(Sealed),
}

/// Refuses a track id that is empty, longer than 256 characters or holds a control
/// character (it is a path segment of `GET /v1/kms/tracked/ID` and a log field).
pub(super) fn check_track_id(track_id: &str) -> KmsResult<()> {
    if track_id.is_empty() || track_id.len() > 256 || track_id.chars().any(char::is_control) {
        return Err(KmsError::Invalid(
            "track_id must be 1 to 256 characters, none of them control characters".into(),
        ));
    }
    Ok(())
}

/// The row that registers `sealed` (made under `entry`) as the tracked data key
/// `track_id`; its context as the canonical JSON object of its pairs.
pub(super) fn tracked_row(
    entry: &CachedKey,
    track_id: &str,
    sealed: &Sealed,
    context: &EncryptionContext,
) -> KmsResult<TrackedKey> {
    Ok(TrackedKey {
        tenant: entry.key.tenant,
        track_id: track_id.to_owned(),
        key: entry.key.id,
        version: sealed.version.get(),
        ciphertext: sealed.ciphertext.clone(),
        context: context_json(context)?,
    })
}

fn context_json(context: &EncryptionContext) -> KmsResult<String> {
    let pairs: std::collections::BTreeMap<&str, &str> = context.pairs().collect();
    serde_json::to_string(&pairs).map_err(|e| KmsError::Internal(e.to_string()))
}

impl Kms {
    /// Wraps `plaintext` (a data key of 1 to 1024 bytes) under `reference`'s primary
    /// version and registers it as the tracked data key `track_id`.
    pub async fn wrap_tracked(
        &self,
        caller: &Caller,
        reference: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
        track_id: &str,
    ) -> KmsResult<Sealed> {
        let actor = caller.actor("wrap");
        let result = self
            .wrap_tracked_unaudited(caller, reference, plaintext, context, track_id, &actor)
            .await;
        let (result, detail) = imported_outcome(result, track_id);
        match detail {
            None => result,
            detail => {
                self.audited_with(caller, "wrap", Some(reference), detail, result)
                    .await
            }
        }
    }

    /// [`Kms::wrap_tracked`] without the entries of a replay or a failure (the batch
    /// records those as a group).
    pub(super) async fn wrap_tracked_unaudited(
        &self,
        caller: &Caller,
        reference: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
        track_id: &str,
        actor: &Actor,
    ) -> KmsResult<Imported> {
        let entry = self.key_for(caller, Operation::Wrap, reference).await?;
        check_track_id(track_id)?;
        if !DATAKEY_BYTES.contains(&plaintext.len()) {
            return Err(KmsError::Invalid(format!(
                "a tracked data key is 1 to 1024 bytes, not {}",
                plaintext.len()
            )));
        }
        require_usable(&entry, KeyPurpose::Encrypt, "encrypt")?;
        let _in_flight = entry
            .primary
            .map(|v| self.in_flight(caller, &entry.key, v, UseKind::TrackedDatakey));
        let sealed = self.seal_primary(&entry, plaintext, context)?;
        let tracked = tracked_row(&entry, track_id, &sealed, context)?;
        let audit = actor.entry(
            Some(entry.key.tenant),
            (Some(entry.key.id), Some(sealed.version)),
            self.keys.clock().now(),
            Some(format!("tracked as {track_id}")),
        );
        match self
            .keys
            .store()
            .track_key(&tracked, &Record::audit(audit))
            .await
        {
            Ok(()) => Ok(Imported::Registered(sealed)),
            Err(StoreError::Conflict(_)) => self
                .replayed(caller, &entry, &tracked, plaintext, context)
                .await
                .map(Imported::Replayed),
            Err(other) => Err(other.into()),
        }
    }

    /// The stored row of `track_id` if it is this very import (same key, context and
    /// bytes, compared in constant time) and the caller may read it back; `Conflict`
    /// otherwise.
    async fn replayed(
        &self,
        caller: &Caller,
        entry: &CachedKey,
        wanted: &TrackedKey,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> KmsResult<Sealed> {
        let in_use = || KmsError::Conflict(IN_USE.into());
        // Without `unwrap` on the key the caller could not read the row back, so it
        // learns nothing about it, not even whether its bytes match.
        if !caller.grants.allows_op(Operation::Unwrap) {
            return Err(in_use());
        }
        let Ok(readable) = self
            .entry_for(caller, entry.key.tenant, entry.key.id, Operation::Unwrap)
            .await
        else {
            return Err(in_use());
        };
        let stored = self
            .keys
            .store()
            .get_tracked(wanted.tenant, &wanted.track_id)
            .await?
            .ok_or_else(in_use)?;
        if stored.key != wanted.key || stored.context != wanted.context {
            return Err(in_use());
        }
        let version = VersionNumber::new(stored.version).map_err(|_| in_use())?;
        let opened = self
            .open_with(&readable, version, &stored.ciphertext, context)
            .map_err(|_| in_use())?;
        if !opened.plaintext.ct_eq(plaintext) {
            return Err(in_use());
        }
        Ok(Sealed {
            ciphertext: stored.ciphertext,
            key_id: stored.key,
            version,
        })
    }
}

/// The answer of an import and the detail of the entry still to record (`None`: its
/// entry committed with the registration).
pub(super) fn imported_outcome(
    result: KmsResult<Imported>,
    track_id: &str,
) -> (KmsResult<Sealed>, Option<String>) {
    match result {
        Ok(Imported::Registered(sealed)) => (Ok(sealed), None),
        Ok(Imported::Replayed(sealed)) => {
            (Ok(sealed), Some(format!("already tracked as {track_id}")))
        }
        Err(error) => (Err(error), Some(format!("track id {track_id}"))),
    }
}
