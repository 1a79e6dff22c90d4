//! Safe retirement: before a rotation starts, the old version's recent use for material
//! only the caller holds (ciphertexts made with `wrap`, `rewrap` or an untracked data
//! key, and the unwraps of such ciphertexts). A saga never rewraps that material, so
//! retiring the version would strand it; the start is refused, naming who used it,
//! unless the operator accepts it explicitly ([`RetireUntracked::Accept`]).

use super::{Kms, KmsError, KmsResult};
use crate::ids::{KeyId, TenantId, VersionNumber};
use crate::usage::VersionUse;

/// What a rotation start does about recent untracked use of the old version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RetireUntracked {
    /// Refuse the start (the default): someone holds ciphertexts only that version opens.
    #[default]
    Refuse,
    /// Start anyway; the operator said so (`--retire-untracked`), and the start's audit
    /// entry records the use accepted.
    Accept,
}

/// Principals, counts and last use, one clause per row: `TOKEN encrypt 3x, last …`.
pub(super) fn describe(uses: &[VersionUse]) -> String {
    uses.iter()
        .map(|u| {
            format!(
                "{} {} {}x, last {}",
                u.of.principal,
                u.of.kind,
                u.count.count,
                u.count.last_seen.to_rfc3339()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Kms {
    /// Every use of `version` for untracked material within `rotation.untracked_window`
    /// (stored use of every replica plus this process's unflushed use), most recent
    /// first.
    pub(super) async fn untracked_use(
        &self,
        tenant: TenantId,
        key: KeyId,
        version: VersionNumber,
    ) -> KmsResult<Vec<VersionUse>> {
        let since = self.keys.clock().now().minus(self.options.untracked_window);
        let mut uses: Vec<VersionUse> = self
            .references
            .key_use(self.keys.store().as_ref(), tenant, key)
            .await?
            .into_iter()
            .filter(|u| {
                u.of.version == version && u.of.kind.is_untracked() && u.count.last_seen >= since
            })
            .collect();
        uses.sort_by_key(|u| std::cmp::Reverse(u.count.last_seen));
        Ok(uses)
    }

    /// `Ok(None)` when nothing untracked used `version` recently; the description of the
    /// use the operator accepted with [`RetireUntracked::Accept`]; or the refusal.
    pub(super) async fn preflight_untracked(
        &self,
        tenant: TenantId,
        key: KeyId,
        version: VersionNumber,
        policy: RetireUntracked,
    ) -> KmsResult<Option<String>> {
        let uses = self.untracked_use(tenant, key, version).await?;
        if uses.is_empty() {
            return Ok(None);
        }
        let described = describe(&uses);
        match policy {
            RetireUntracked::Accept => Ok(Some(described)),
            RetireUntracked::Refuse => Err(KmsError::UntrackedUse(format!(
                "version {version} was used for untracked material within the last {}: {described}; \
                 those ciphertexts are not rewrapped by rotation. Rewrap them first, or start \
                 the rotation with --retire-untracked (the old version then stays retiring, \
                 decrypt-only, until unused for rotation.retire_after_quiet)",
                crate::time::HumanDuration::new(self.options.untracked_window)
            ))),
        }
    }
}
