//! The checkpoint signing key: an Ed25519 key made at the first unseal, kept in the
//! store wrapped by custody, shared by every replica.

use coffer_audit::checkpoint::CheckpointSigner;
use coffer_core::{Custody, Store, StoreError};
use coffer_crypto::{KeyMaterial, KeySpec, SigningKey};

const SIGNING_SECRET: &str = "audit-signing-key";
const SIGNING_AAD: &[u8] = b"coffer/audit-signing-key/v1";
const KEY_NAME: &str = "coffer-audit";

/// Loads (or, the first time, creates) the signer; needs custody unsealed.
pub async fn load(store: &dyn Store, custody: &dyn Custody) -> Result<CheckpointSigner, String> {
    let wrapped = match store
        .get_secret(SIGNING_SECRET)
        .await
        .map_err(|e| e.to_string())?
    {
        Some(wrapped) => wrapped,
        None => {
            let material = KeyMaterial::generate(KeySpec::Ed25519).map_err(|e| e.to_string())?;
            let stored = material.to_stored().map_err(|e| e.to_string())?;
            let wrapped = custody
                .wrap(SIGNING_AAD, stored.expose_secret())
                .map_err(|e| e.to_string())?;
            match store.put_secret(SIGNING_SECRET, &wrapped).await {
                Ok(()) => wrapped,
                // Another replica created it first: use theirs.
                Err(StoreError::Conflict(_)) => store
                    .get_secret(SIGNING_SECRET)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("audit key vanished")?,
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    let stored = custody
        .unwrap(SIGNING_AAD, &wrapped)
        .map_err(|e| e.to_string())?;
    let KeyMaterial::Signing(key @ SigningKey::Ed25519(_)) =
        KeyMaterial::from_stored(stored.expose_secret()).map_err(|e| e.to_string())?
    else {
        return Err("the audit signing key is not Ed25519".into());
    };
    CheckpointSigner::new(KEY_NAME, key).map_err(|e| e.to_string())
}
