//! Key and version states under the state seal (`crate::state_seal`): keyed at every
//! load, checked when the key cache loads a key, and — once per deployment — the
//! binding of rows written before the seal existed.
//!
//! Why the binding runs in the server and not in migration 0019: the tag is a MAC
//! under a key derived from the token root key, which only an unsealed server holds
//! (the database has it wrapped by custody). So the migration adds the columns, and the
//! first unseal after it tags every untagged row and stores the `key-states-bound`
//! server secret in the same transaction; from then on an untagged row is refused.

use coffer_crypto::MacKey;

use super::{IntegrityCheck, Kms, KmsResult};
use crate::audit::Actor;
use crate::ids::KeyId;
use crate::key::{Key, KeyVersion};
use crate::state_seal::{SealedRow, StateTag, subject};
use crate::store::{Record, StoreError};

/// Present once every key and version row carries its state tag.
pub(super) const STATES_BOUND: &str = "key-states-bound";
const STATES_BOUND_AAD: &[u8] = b"coffer/key-states-bound/v1";

impl Kms {
    /// Keys the state seal from the token root and binds earlier rows if this
    /// deployment has not yet (at every load: start, unseal).
    pub(super) async fn load_state_seal(&self, root: &MacKey) -> KmsResult<()> {
        self.keys.seal().set_root(root)?;
        self.bind_key_states().await?;
        self.keys.seal().mark_bound();
        Ok(())
    }

    /// A new deployment has no rows from before the seal: the marker is stored at
    /// initialisation, and the binding never runs.
    pub(super) async fn init_state_seal(&self, root: &MacKey) -> KmsResult<()> {
        self.keys.seal().set_root(root)?;
        let marker = self.custody.wrap(STATES_BOUND_AAD, b"key states bound")?;
        self.keys.store().put_secret(STATES_BOUND, &marker).await?;
        self.keys.seal().mark_bound();
        Ok(())
    }

    /// Tags every untagged key and version row, with the marker and an audit entry
    /// (`key.bind_states`, naming how many rows), in one transaction. Another replica
    /// doing it at the same moment is fine (the marker's `Conflict`; its tags stand).
    async fn bind_key_states(&self) -> KmsResult<()> {
        let store = self.keys.store();
        if store.get_secret(STATES_BOUND).await?.is_some() {
            return Ok(());
        }
        let seal = self.keys.seal();
        let mut tags: Vec<(KeyId, SealedRow, StateTag)> = Vec::new();
        for tenant in store.list_tenants().await? {
            for key in store.list_keys(tenant.id).await? {
                if key.state_tag.is_none() {
                    tags.push((key.id, SealedRow::Key, seal.key_tag(&key)?));
                }
                for version in store.list_versions(tenant.id, key.id).await? {
                    if version.state_tag.is_none() {
                        let tag = seal.version_tag(tenant.id, &version)?;
                        tags.push((key.id, SealedRow::Version(version.number), tag));
                    }
                }
            }
        }
        let marker = self.custody.wrap(STATES_BOUND_AAD, b"key states bound")?;
        let audit = Actor::new("-", "unseal", "key.bind_states").entry(
            None,
            (None, None),
            self.keys.clock().now(),
            Some(format!(
                "bound the states of {} earlier key and version rows",
                tags.len()
            )),
        );
        match store
            .bind_key_states(&tags, (STATES_BOUND, &marker), &Record::audit(audit))
            .await
        {
            Ok(()) => {
                tracing::info!(rows = tags.len(), "bound earlier key and version states");
                Ok(())
            }
            Err(StoreError::Conflict(_)) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Checks a key's row and every version row against their state tags, as the key
    /// cache loads them: a row edited around Coffer (or untagged after the binding)
    /// makes the whole key refuse to serve.
    pub(super) fn check_states(&self, key: &Key, versions: &[KeyVersion]) -> KmsResult<()> {
        let seal = self.keys.seal();
        if !seal.accepts(seal.check_key(key)?) {
            return Err(self.integrity_failure(IntegrityCheck::KeyState, &subject(key, None)));
        }
        for version in versions {
            if !seal.accepts(seal.check_version(key.tenant, version)?) {
                let subject = subject(key, Some(version.number));
                return Err(self.integrity_failure(IntegrityCheck::KeyState, &subject));
            }
        }
        Ok(())
    }
}
