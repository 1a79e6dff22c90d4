//! Moving tracked data keys from one version to another: used by the rotation saga's
//! `rewrap_tracked` step and by overlap retirement.

use coffer_crypto::EncryptionContext;
use coffer_crypto::envelope::{self, Binding, EnvelopeHeader};

use super::{Kms, KmsError, KmsResult};
use crate::ids::{KeyId, TenantId, VersionNumber};

/// Tracked data keys rewrapped per store round.
const REWRAP_BATCH: u64 = 100;

impl Kms {
    /// Rewraps every tracked data key of `key` from version `from` to `to`, in batches,
    /// each by compare-and-set (a concurrent run's work is not redone or undone).
    pub(super) async fn rewrap_tracked_between(
        &self,
        tenant: TenantId,
        key: KeyId,
        from: VersionNumber,
        to: VersionNumber,
    ) -> KmsResult<()> {
        let details = self.keys.key(tenant, key).await?;
        let versions = self.keys.versions(tenant, key).await?;
        let find = |n: VersionNumber| versions.iter().find(|v| v.number == n).cloned();
        let old_v = find(from).ok_or(KmsError::NotFound("key version"))?;
        let new_v = find(to).ok_or(KmsError::NotFound("key version"))?;
        let (
            coffer_crypto::KeyMaterial::Aes256(old_key),
            coffer_crypto::KeyMaterial::Aes256(new_key),
        ) = (
            self.keys.load_material(&details, &old_v).await?,
            self.keys.load_material(&details, &new_v).await?,
        )
        else {
            // Signing and MAC keys wrap nothing: nothing to rewrap.
            return Ok(());
        };
        loop {
            let batch = self
                .keys
                .store()
                .tracked_under(tenant, key, from.get(), REWRAP_BATCH)
                .await?;
            if batch.is_empty() {
                return Ok(());
            }
            for tracked in batch {
                let pairs: std::collections::BTreeMap<String, String> =
                    serde_json::from_str(&tracked.context)
                        .map_err(|_| KmsError::Internal("corrupt tracked context".into()))?;
                let context = EncryptionContext::from_pairs(pairs)?;
                let binding = Binding {
                    tenant_id: tenant.as_bytes(),
                    context: &context,
                };
                let plaintext = envelope::open(&old_key, &tracked.ciphertext, binding)?;
                let header = EnvelopeHeader {
                    key_id: *key.as_bytes(),
                    key_version: to.get(),
                };
                let rewrapped =
                    envelope::seal(&new_key, header, binding, plaintext.expose_secret())?;
                match self
                    .keys
                    .store()
                    .rewrap_tracked(tenant, &tracked.track_id, from.get(), to.get(), &rewrapped)
                    .await
                {
                    Ok(()) | Err(crate::StoreError::Conflict(_)) => {}
                    Err(other) => return Err(other.into()),
                }
            }
        }
    }
}
