//! Read-side views of rotation: `verify` (the invariants on a live key and the audit
//! anchoring) and the reference tracker's per-version answer.

use super::rotation::{RotationVerification, VersionReferences, saga_of};
use super::{Caller, Kms, KmsResult};
use crate::ids::KeyId;
use crate::lifecycle::VersionState;
use crate::saga;
use crate::token::Operation;

impl Kms {
    /// Checks a rotation: the five invariants on the key as it is now, and whether a
    /// signed checkpoint covers the rotation's last audit entry.
    pub async fn verify_rotation(
        &self,
        caller: &Caller,
        id: &str,
    ) -> KmsResult<RotationVerification> {
        let record = self.load_rotation(caller, id).await?;
        let versions = self.keys.versions(record.tenant, record.key).await?;
        let view_versions: Vec<(u32, VersionState, bool)> = versions
            .iter()
            .map(|v| (v.number.get(), v.state, v.primary))
            .collect();
        let mut tracked = Vec::new();
        for (v, n) in self
            .keys
            .store()
            .count_tracked(record.tenant, record.key)
            .await?
        {
            tracked.extend(std::iter::repeat_n(
                v,
                usize::try_from(n.min(1)).unwrap_or(1),
            ));
        }
        let sagas = vec![(saga_of(&record)?, record.from_version)];
        let view = saga::KeyView {
            versions: &view_versions,
            tracked: &tracked,
            sagas: &sagas,
            pointer_moved_back: false,
        };
        let violations = saga::check(&view);
        // The anchor step requests a checkpoint right after recording `anchor_request`;
        // everything the rotation did is at or before that entry.
        let last = self
            .audit
            .last_index_of(&format!("rotation:{id}"), "rotation.anchor_request")
            .await;
        let checkpoint_size = self.audit.checkpointed_size().await;
        let anchored = matches!((last, checkpoint_size), (Some(index), Some(size)) if size > index);
        let status = self.status_of(record).await?;
        Ok(RotationVerification {
            status,
            violations,
            anchored,
            checkpoint_size,
        })
    }

    /// Which principals use each version of `reference`, what is in flight, what is tracked.
    pub async fn references(
        &self,
        caller: &Caller,
        reference: &str,
    ) -> KmsResult<(KeyId, Vec<VersionReferences>)> {
        let entry = self.key_for(caller, Operation::KeysRead, reference).await?;
        let (tenant, key) = (entry.key.tenant, entry.key.id);
        let counts = self.keys.store().count_tracked(tenant, key).await?;
        let versions = self.keys.versions(tenant, key).await?;
        let out = versions
            .iter()
            .map(|v| VersionReferences {
                version: v.number,
                state: v.state,
                primary: v.primary,
                in_flight: self.references.in_flight(key, v.number),
                tracked: counts
                    .iter()
                    .find(|(n, _)| *n == v.number.get())
                    .map_or(0, |(_, c)| *c),
                principals: self.references.principals(key, v.number),
            })
            .collect();
        Ok((key, out))
    }
}
