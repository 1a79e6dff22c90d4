//! Batch requests of wrap, unwrap and rewrap (`{"items": [...]}`): each item runs on
//! its own and gets its own result (a bad item does not fail the others), and the
//! items' audit entries are recorded as one group, one durable commit for the whole
//! batch rather than one per item. No result leaves before the group is recorded.

use coffer_crypto::EncryptionContext;

use super::trail::Named;
use super::unwrap::Opened;
use super::wrap::Sealed;
use super::{Caller, Kms, KmsResult};

/// One item of a wrap batch.
#[derive(Debug, Clone, Copy)]
pub struct WrapItem<'a> {
    /// Key id or `alias/NAME`.
    pub reference: &'a str,
    /// The bytes to seal.
    pub plaintext: &'a [u8],
    /// Encryption context.
    pub context: &'a EncryptionContext,
    /// Register the bytes (a data key) as this tracked data key
    /// ([`Kms::wrap_tracked`]).
    pub track_id: Option<&'a str>,
}

/// One item of an unwrap batch.
#[derive(Debug, Clone, Copy)]
pub struct UnwrapItem<'a> {
    /// The envelope.
    pub ciphertext: &'a [u8],
    /// Its encryption context.
    pub context: &'a EncryptionContext,
    /// The caller's attestation document, for keys whose policy asks for one.
    pub attestation: Option<&'a [u8]>,
}

/// One item of a rewrap batch (caller-held ciphertexts moved to a new version or key).
#[derive(Debug, Clone, Copy)]
pub struct RewrapItem<'a> {
    /// The envelope.
    pub ciphertext: &'a [u8],
    /// Its encryption context.
    pub context: &'a EncryptionContext,
    /// Destination key (default: the same key's primary).
    pub destination: Option<&'a str>,
    /// Destination context (default: the same context).
    pub destination_context: Option<&'a EncryptionContext>,
}

impl Kms {
    /// Wraps every item; one audit group for the batch. A tracked item registered now
    /// committed its entry with its row, so only the others join the group.
    pub async fn wrap_batch(
        &self,
        caller: &Caller,
        items: &[WrapItem<'_>],
    ) -> Vec<KmsResult<Sealed>> {
        let mut outcomes = Vec::with_capacity(items.len());
        for item in items {
            let Some(track_id) = item.track_id else {
                let result = self
                    .wrap_unaudited(caller, item.reference, item.plaintext, item.context)
                    .await;
                let entry = self.entry_of(
                    caller,
                    "wrap",
                    Named::reference(Some(item.reference)),
                    None,
                    &result,
                );
                outcomes.push((Some(entry), result));
                continue;
            };
            let actor = caller.actor("wrap");
            let imported = self
                .wrap_tracked_unaudited(
                    caller,
                    item.reference,
                    item.plaintext,
                    item.context,
                    track_id,
                    &actor,
                )
                .await;
            let (result, detail) = super::wrap_tracked::imported_outcome(imported, track_id);
            // A newly registered tracked key's entry committed with its row.
            let entry = detail.is_some().then(|| {
                let named = Named::reference(Some(item.reference));
                self.entry_of(caller, "wrap", named, detail, &result)
            });
            outcomes.push((entry, result));
        }
        self.audited_group(outcomes).await
    }

    /// Unwraps every item; one audit group for the batch.
    pub async fn unwrap_batch(
        &self,
        caller: &Caller,
        items: &[UnwrapItem<'_>],
    ) -> Vec<KmsResult<Opened>> {
        let mut outcomes = Vec::with_capacity(items.len());
        for item in items {
            let presented = super::Presented::new(item.attestation);
            let result = self
                .unwrap_unaudited(caller, item.ciphertext, item.context, &presented)
                .await;
            let named = Named::header(item.ciphertext);
            outcomes.push((
                Some(self.entry_of(caller, "unwrap", named, presented.detail(), &result)),
                result,
            ));
        }
        self.audited_group(outcomes).await
    }

    /// Rewraps every item; one audit group for the batch. Each entry names the
    /// destination and, in its detail, the source (as a single rewrap's does).
    pub async fn rewrap_batch(
        &self,
        caller: &Caller,
        items: &[RewrapItem<'_>],
    ) -> Vec<KmsResult<Sealed>> {
        let mut outcomes = Vec::with_capacity(items.len());
        for item in items {
            let result = self
                .rewrap_unaudited(
                    caller,
                    item.ciphertext,
                    item.context,
                    item.destination,
                    item.destination_context,
                )
                .await;
            let source = super::rewrap::source_detail(item.ciphertext);
            let named = Named::reference(item.destination);
            outcomes.push((
                Some(self.entry_of(caller, "rewrap", named, source, &result)),
                result,
            ));
        }
        self.audited_group(outcomes).await
    }
}
