//! Reactivation: a retired version back to `retiring` (decrypt and verify, never encrypt
//! or sign) while its material exists, for the ciphertext someone finds after the
//! version was retired. Only `destroy` removes material for good.

use super::{Caller, Kms, KmsError, KmsResult, keys::KeyDetails};
use crate::audit::Actor;
use crate::ids::VersionNumber;
use crate::lifecycle::VersionState;
use crate::token::Operation;

impl Kms {
    /// Moves retired `version` of `reference` back to `retiring`, with its audit entry
    /// (op `keys.reactivate`). Any other state is refused (`Conflict`), a destroyed
    /// version included: its material is gone.
    pub async fn reactivate(
        &self,
        caller: &Caller,
        reference: &str,
        version: u32,
    ) -> KmsResult<KeyDetails> {
        let actor = caller.actor("keys.reactivate");
        let result = self
            .reactivate_unaudited(caller, &actor, reference, version)
            .await;
        self.settled(caller, &actor, Some(reference), result).await
    }

    async fn reactivate_unaudited(
        &self,
        caller: &Caller,
        actor: &Actor,
        reference: &str,
        version: u32,
    ) -> KmsResult<KeyDetails> {
        let entry = self
            .key_for(caller, Operation::KeysRotate, reference)
            .await?;
        let (tenant, id) = (entry.key.tenant, entry.key.id);
        let number = VersionNumber::new(version).map_err(|e| KmsError::Invalid(e.to_string()))?;
        // `active -> retiring` is in the table too, but that is retiring, not
        // reactivating: only a retired version qualifies. The store applies the change as
        // a compare-and-set with its event and audit entry in one transaction.
        let current = self
            .keys
            .versions(tenant, id)
            .await?
            .into_iter()
            .find(|v| v.number == number)
            .ok_or(KmsError::NotFound("key version"))?
            .state;
        if current != VersionState::Retired {
            return Err(KmsError::Conflict(format!(
                "only a retired version can be reactivated; version {number} is {current}"
            )));
        }
        let result = self
            .keys
            .set_version_state(tenant, id, number, VersionState::Retiring, actor)
            .await;
        self.forget_key(tenant, id);
        result?;
        self.show_key_unaudited(caller, &id.to_string()).await
    }
}
