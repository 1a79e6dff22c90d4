//! Scheduled deletion: a key whose waiting period has ended is destroyed — state
//! `destroyed`, every version's material erased from the store — by the scheduler pass,
//! under its lease (so with several replicas one of them acts).
//!
//! The work is per key and idempotent: a pass that stops half way leaves each key
//! either destroyed (one transaction) or still pending, and the next pass finishes.
//! A key whose deletion was cancelled meanwhile is left alone: the store re-checks the
//! state and due time inside the transaction and answers `Conflict`.

use super::{Kms, KmsResult};
use crate::audit::Actor;
use crate::error::CoreError;
use crate::ids::KeyId;
use crate::lifecycle::KeyState;
use crate::store::StoreError;

/// The principal named in the audit entries of scheduled destruction.
pub const DELETION_PRINCIPAL: &str = "coffer-deletion";

impl Kms {
    /// Destroys every key pending deletion whose due time has passed; returns the keys
    /// destroyed. One key failing does not stop the others (it is retried next pass).
    pub async fn destroy_due_keys(&self) -> KmsResult<Vec<KeyId>> {
        let now = self.keys.clock().now();
        let actor = Actor::new(
            DELETION_PRINCIPAL,
            format!("deletion:{}", now.millis()),
            "keys.destroy.scheduled",
        );
        let mut destroyed = Vec::new();
        for tenant in self.keys.store().list_tenants().await? {
            for key in self.keys.store().list_keys(tenant.id).await? {
                let due = key.state == KeyState::PendingDeletion
                    && key.deletion_due.is_some_and(|due| due <= now);
                if !due {
                    continue;
                }
                let outcome = self.keys.destroy_due_key(tenant.id, key.id, &actor).await;
                // Whatever happened, no replica-local copy of the material may outlive
                // the stored one here (other replicas drop theirs within the cache TTL).
                self.forget_key(tenant.id, key.id);
                match outcome {
                    Ok(_) => destroyed.push(key.id),
                    Err(CoreError::Conflict(_) | CoreError::Store(StoreError::Conflict(_))) => {
                        tracing::info!(key = %key.id, "deletion cancelled or done elsewhere meanwhile");
                    }
                    Err(error) => {
                        tracing::warn!(key = %key.id, %error, "scheduled destruction failed");
                    }
                }
            }
        }
        Ok(destroyed)
    }
}
