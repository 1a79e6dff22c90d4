//! Read-side views of rotation: the tenant's list, `verify` (the invariants on a live
//! key, the record against the key's versions, and the audit anchoring) and the
//! reference tracker's per-version answer.

use super::rotation::{RotationStatus, RotationVerification, VersionReferences};
use super::{Caller, Kms, KmsResult};
use crate::ids::KeyId;
use crate::lifecycle::VersionState;
use crate::saga::{self, Status};
use crate::store::RotationFilter;
use crate::token::Operation;

impl Kms {
    /// The caller's tenant's rotations, of the key `reference` (id or alias) if given,
    /// in `status` if given, newest first; rotations of keys outside the token's key
    /// scope are left out, as `rotation_status` refuses them.
    pub async fn list_rotations(
        &self,
        caller: &Caller,
        reference: Option<&str>,
        status: Option<Status>,
    ) -> KmsResult<Vec<RotationStatus>> {
        let result = self
            .list_rotations_unaudited(caller, reference, status)
            .await;
        self.audited(caller, "rotation.list", reference, result)
            .await
    }

    async fn list_rotations_unaudited(
        &self,
        caller: &Caller,
        reference: Option<&str>,
        status: Option<Status>,
    ) -> KmsResult<Vec<RotationStatus>> {
        let tenant = self.rotation_caller(caller)?;
        let key = match reference {
            Some(reference) => Some(
                self.key_for(caller, Operation::KeysRotate, reference)
                    .await?
                    .key
                    .id,
            ),
            None => None,
        };
        let filter = RotationFilter { key, status };
        let store = self.keys.store();
        let mut in_scope = std::collections::HashMap::new();
        let mut out = Vec::new();
        for record in store.list_rotations(tenant, filter).await? {
            let allowed = match in_scope.get(&record.key) {
                Some(allowed) => *allowed,
                None => {
                    let allowed = store
                        .get_key(tenant, record.key)
                        .await?
                        .is_some_and(|key| caller.grants.allows_key(&key));
                    in_scope.insert(record.key, allowed);
                    allowed
                }
            };
            if allowed {
                out.push(self.status_of(record).await?);
            }
        }
        Ok(out)
    }

    /// Checks a rotation: the five invariants on the key as it is now, and whether a
    /// signed checkpoint covers the rotation's last audit entry.
    pub async fn verify_rotation(
        &self,
        caller: &Caller,
        id: &str,
    ) -> KmsResult<RotationVerification> {
        let result = self.verify_rotation_unaudited(caller, id).await;
        self.audited(caller, "rotation.verify", None, result).await
    }

    async fn verify_rotation_unaudited(
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
        let sagas = vec![(record.saga(), record.from_version)];
        let view = saga::KeyView {
            versions: &view_versions,
            tracked: &tracked,
            sagas: &sagas,
            pointer_moved_back: false,
        };
        let mut violations = saga::check(&view);
        violations.extend(saga::check_record(
            &saga::RecordView {
                saga: record.saga(),
                from: record.from_version,
                to: record.to_version,
            },
            &view_versions,
        ));
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

    /// Which principals use each version of `reference` (persisted: every replica's use,
    /// across restarts), what is in flight here, what is tracked.
    pub async fn references(
        &self,
        caller: &Caller,
        reference: &str,
    ) -> KmsResult<(KeyId, Vec<VersionReferences>)> {
        let result = self.references_unaudited(caller, reference).await;
        self.audited(caller, "keys.references", Some(reference), result)
            .await
    }

    async fn references_unaudited(
        &self,
        caller: &Caller,
        reference: &str,
    ) -> KmsResult<(KeyId, Vec<VersionReferences>)> {
        let entry = self.key_for(caller, Operation::KeysRead, reference).await?;
        let (tenant, key) = (entry.key.tenant, entry.key.id);
        let counts = self.keys.store().count_tracked(tenant, key).await?;
        let versions = self.keys.versions(tenant, key).await?;
        let uses = self
            .references
            .key_use(self.keys.store().as_ref(), tenant, key)
            .await?;
        let untracked_since = self.keys.clock().now().minus(self.options.untracked_window);
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
                principals: uses
                    .iter()
                    .filter(|u| u.of.version == v.number)
                    .copied()
                    .collect(),
                untracked_since,
            })
            .collect();
        Ok((key, out))
    }
}
