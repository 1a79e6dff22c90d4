//! Key and version states under a MAC.
//!
//! What a key may do is decided by readable columns: a key's state (enabled, disabled,
//! pending deletion) and purpose, a version's state, which version is primary, and its
//! validity. Whoever can write the database could otherwise re-enable a disabled key,
//! bring a retired or destroyed-then-restored version back, move the primary or extend
//! an expired version. So each key row and each version row carries `state_tag`: an
//! HMAC-SHA256 of its identity and power-bearing fields under a key derived from the
//! token root key (a service secret the database holds only wrapped by custody).
//!
//! - Written by every legitimate change: [`StateSeal::seal_changes`] simulates a list
//!   of [`Change`]s on the rows the caller read, and appends one [`Change::Seal`] per
//!   row whose fields change, compare-and-set on the row's current tag, so the store
//!   writes the new tag in the change's transaction and a row that changed underneath
//!   fails the whole change (`Conflict`).
//! - Checked before a change: a row whose tag does not match is not changed (an edit
//!   cannot be made legitimate by the next rotation or retirement), except the
//!   versions of a key being destroyed (destruction grants nothing, and must finish).
//! - Checked when the key cache loads a key (`kms::Kms::load_entry`): a mismatch is an
//!   integrity failure (logged, counted, 500).
//!
//! Rows from before the binding (migration 0019) have no tag; the first unseal binds
//! them all and stores the `key-states-bound` server secret, after which an untagged
//! row is refused like a mismatched one (see `kms/state_binding.rs`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use coffer_crypto::{MacKey, SecretBytes};

use crate::custody::CustodyError;
use crate::error::{CoreError, CoreResult};
use crate::ids::{TenantId, VersionNumber};
use crate::key::{Key, KeyVersion};
use crate::lifecycle::{KeyState, VersionState};
use crate::store::Change;
use crate::time::Timestamp;

/// The MAC stored with a key or version row.
pub type StateTag = [u8; 32];

const DERIVE_DOMAIN: &[u8] = b"coffer/state-seal-key/v1";
const KEY_DOMAIN: &[u8] = b"coffer/key-state/v1";
const VERSION_DOMAIN: &[u8] = b"coffer/version-state/v1";

/// Which row a [`Change::Seal`] re-tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedRow {
    /// The key's own row.
    Key,
    /// One of its versions.
    Version(VersionNumber),
}

/// What a row's tag says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealCheck {
    /// The tag is the MAC of the row as it is.
    Verified,
    /// No tag (a row from before the binding).
    Untagged,
    /// The tag is not the row's MAC: the row was edited around Coffer.
    Mismatch,
}

/// The state-sealing key (derived at unseal) and whether every row is bound yet.
pub struct StateSeal {
    key: RwLock<Option<Arc<MacKey>>>,
    bound: AtomicBool,
    /// The service's integrity-failure count, shared with `Kms::integrity_failures`.
    failures: Arc<AtomicU64>,
}

impl StateSeal {
    /// A seal without a key yet (`Kms::load` derives it after unseal); `failures` is
    /// where refusals are counted.
    pub fn new(failures: Arc<AtomicU64>) -> Self {
        Self {
            key: RwLock::new(None),
            bound: AtomicBool::new(false),
            failures,
        }
    }

    /// A keyed seal with every row bound, for tools and tests that drive a
    /// [`crate::KeyService`] without a `Kms` (the key is derived from `root`).
    pub fn keyed(root: &MacKey) -> CoreResult<Self> {
        let seal = Self::new(Arc::default());
        seal.set_root(root)?;
        seal.mark_bound();
        Ok(seal)
    }

    /// Derives the sealing key from the token root key.
    pub fn set_root(&self, root: &MacKey) -> CoreResult<()> {
        // Held as a secret so the derived bytes are wiped once the key is made.
        let derived = SecretBytes::new(root.sign(DERIVE_DOMAIN));
        let key = MacKey::from_bytes(derived.expose_secret())?;
        if let Ok(mut slot) = self.key.write() {
            *slot = Some(Arc::new(key));
        }
        Ok(())
    }

    /// Drops the key (custody was sealed again).
    pub fn forget(&self) {
        if let Ok(mut slot) = self.key.write() {
            *slot = None;
        }
    }

    /// From now on an untagged row is refused.
    pub fn mark_bound(&self) {
        self.bound.store(true, Ordering::Release);
    }

    fn mac_key(&self) -> CoreResult<Arc<MacKey>> {
        self.key
            .read()
            .ok()
            .and_then(|key| key.clone())
            .ok_or_else(|| CoreError::Custody(CustodyError::Sealed("key states".into())))
    }

    /// The tag of `key`'s row as it is.
    pub fn key_tag(&self, key: &Key) -> CoreResult<StateTag> {
        let mac = self.mac_key()?;
        Ok(tag_of(&mac, &key_bytes(key)))
    }

    /// The tag of `version`'s row (of a key of `tenant`) as it is.
    pub fn version_tag(&self, tenant: TenantId, version: &KeyVersion) -> CoreResult<StateTag> {
        let mac = self.mac_key()?;
        Ok(tag_of(&mac, &version_bytes(tenant, version)))
    }

    /// Checks `key`'s row against its tag.
    pub fn check_key(&self, key: &Key) -> CoreResult<SealCheck> {
        Ok(check(key.state_tag, self.key_tag(key)?))
    }

    /// Checks `version`'s row against its tag.
    pub fn check_version(&self, tenant: TenantId, version: &KeyVersion) -> CoreResult<SealCheck> {
        Ok(check(version.state_tag, self.version_tag(tenant, version)?))
    }

    /// Whether a row checked as `check` may be used: verified, or untagged while rows
    /// from before the binding may still exist.
    pub fn accepts(&self, check: SealCheck) -> bool {
        match check {
            SealCheck::Verified => true,
            SealCheck::Untagged => !self.bound.load(Ordering::Acquire),
            SealCheck::Mismatch => false,
        }
    }

    /// Tags a new key and its first version (as they will be inserted).
    pub fn seal_new(&self, key: &mut Key, first: &mut KeyVersion) -> CoreResult<()> {
        key.state_tag = Some(self.key_tag(key)?);
        first.state_tag = Some(self.version_tag(key.tenant, first)?);
        Ok(())
    }

    /// Tags a new version (as it will be inserted, before any change that follows it).
    pub fn seal_version(&self, tenant: TenantId, version: &mut KeyVersion) -> CoreResult<()> {
        version.state_tag = Some(self.version_tag(tenant, version)?);
        Ok(())
    }

    /// `changes` followed by the [`Change::Seal`]s they call for: every row of `key` and
    /// `versions` (as the caller read them) whose sealed fields the changes alter is
    /// checked first, then re-tagged by compare-and-set on the tag it was read with.
    /// Versions the changes touch must be among `versions`.
    pub fn seal_changes(
        &self,
        key: &Key,
        versions: &[KeyVersion],
        changes: &[Change],
    ) -> CoreResult<Vec<Change>> {
        let mut after_key = key.clone();
        let mut after: Vec<KeyVersion> = versions.to_vec();
        for change in changes {
            simulate(&mut after_key, &mut after, change)?;
        }
        let destroying = changes
            .iter()
            .any(|c| matches!(c, Change::DestroyKey { .. }));
        let mut sealed = changes.to_vec();
        if key_bytes(&after_key) != key_bytes(key) {
            self.require(self.check_key(key)?, || subject(key, None))?;
            sealed.push(Change::Seal {
                row: SealedRow::Key,
                from: key.state_tag,
                to: self.key_tag(&after_key)?,
            });
        }
        for (before, now) in versions.iter().zip(&after) {
            if version_bytes(key.tenant, before) == version_bytes(key.tenant, now) {
                continue;
            }
            if !destroying {
                let check = self.check_version(key.tenant, before)?;
                self.require(check, || subject(key, Some(before.number)))?;
            }
            sealed.push(Change::Seal {
                row: SealedRow::Version(before.number),
                from: before.state_tag,
                to: self.version_tag(key.tenant, now)?,
            });
        }
        Ok(sealed)
    }

    fn require(&self, check: SealCheck, subject: impl FnOnce() -> String) -> CoreResult<()> {
        if self.accepts(check) {
            Ok(())
        } else {
            Err(self.refuse(&subject()))
        }
    }

    /// Records a row that fails its seal (`subject`: ids only) and returns the error.
    pub fn refuse(&self, subject: &str) -> CoreError {
        crate::kms::report_integrity_failure(crate::kms::IntegrityCheck::KeyState, subject);
        self.failures.fetch_add(1, Ordering::Relaxed);
        CoreError::Integrity(subject.to_owned())
    }
}

/// The row a log line names: ids only.
pub fn subject(key: &Key, version: Option<VersionNumber>) -> String {
    match version {
        Some(n) => format!("tenant {} key {} version {n}", key.tenant, key.id),
        None => format!("tenant {} key {}", key.tenant, key.id),
    }
}

fn check(stored: Option<StateTag>, expected: StateTag) -> SealCheck {
    match stored {
        None => SealCheck::Untagged,
        Some(tag) if coffer_crypto::secret::constant_time_eq(&tag, &expected) => {
            SealCheck::Verified
        }
        Some(_) => SealCheck::Mismatch,
    }
}

fn tag_of(key: &MacKey, data: &[u8]) -> StateTag {
    key.sign(data).try_into().unwrap_or([0u8; 32])
}

/// Appends `text` with a one-byte length (every sealed text is a short enum name).
fn put_text(out: &mut Vec<u8>, text: &str) {
    out.push(u8::try_from(text.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(text.as_bytes());
}

fn put_time(out: &mut Vec<u8>, at: Option<Timestamp>) {
    match at {
        None => out.push(0),
        Some(at) => {
            out.push(1);
            out.extend_from_slice(&at.millis().to_be_bytes());
        }
    }
}

/// A key row's identity and power-bearing fields: tenant, id, spec, purpose,
/// protection, state and deletion due time. Labels, aliases, rotation policy and
/// registered purposes are not sealed (docs/security.md).
fn key_bytes(key: &Key) -> Vec<u8> {
    let mut out = KEY_DOMAIN.to_vec();
    out.extend_from_slice(key.tenant.as_bytes());
    out.extend_from_slice(key.id.as_bytes());
    put_text(&mut out, key.spec.as_str());
    put_text(&mut out, key.purpose.as_str());
    put_text(&mut out, key.protection.as_str());
    put_text(&mut out, key.state.as_str());
    put_time(&mut out, key.deletion_due);
    out
}

/// A version row's identity and power-bearing fields: tenant, key, number, state,
/// whether it is primary, and its validity.
fn version_bytes(tenant: TenantId, version: &KeyVersion) -> Vec<u8> {
    let mut out = VERSION_DOMAIN.to_vec();
    out.extend_from_slice(tenant.as_bytes());
    out.extend_from_slice(version.key.as_bytes());
    out.extend_from_slice(&version.number.get().to_be_bytes());
    put_text(&mut out, version.state.as_str());
    out.push(u8::from(version.primary));
    put_time(&mut out, Some(version.not_before));
    put_time(&mut out, version.not_after);
    out
}

/// What `change` does to the rows, as the store will do it.
fn simulate(key: &mut Key, versions: &mut [KeyVersion], change: &Change) -> CoreResult<()> {
    match change {
        Change::KeyState {
            to, deletion_due, ..
        } => {
            key.state = *to;
            key.deletion_due = *deletion_due;
        }
        Change::VersionState { version: n, to, .. } => version_mut(versions, *n)?.state = *to,
        Change::Primary { from, to } => {
            version_mut(versions, *from)?.primary = false;
            version_mut(versions, *to)?.primary = true;
        }
        Change::DestroyKey { .. } => {
            key.state = KeyState::Destroyed;
            key.deletion_due = None;
            for v in versions.iter_mut() {
                v.state = VersionState::Destroyed;
                v.primary = false;
            }
        }
        Change::Validity {
            version: n,
            not_before,
            not_after,
            ..
        } => {
            let v = version_mut(versions, *n)?;
            v.not_before = *not_before;
            v.not_after = *not_after;
        }
        // The attestation policy is its own versioned row, not part of the key's state.
        Change::Material { .. } | Change::Seal { .. } | Change::AttestationPolicy(_) => {}
    }
    Ok(())
}

fn version_mut(versions: &mut [KeyVersion], number: VersionNumber) -> CoreResult<&mut KeyVersion> {
    versions
        .iter_mut()
        .find(|v| v.number == number)
        .ok_or(CoreError::NotFound("key version"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::KeyId;

    fn key() -> Key {
        Key {
            tenant: TenantId::generate(),
            id: KeyId::generate(),
            spec: coffer_crypto::KeySpec::Aes256,
            purpose: crate::key::KeyPurpose::Encrypt,
            state: KeyState::Enabled,
            deletion_due: None,
            aliases: Default::default(),
            labels: Default::default(),
            registered_purposes: Default::default(),
            rotation: Default::default(),
            validity: None,
            protection: crate::hsm::Protection::Software,
            created_at: Timestamp::from_millis(0),
            state_tag: None,
        }
    }

    fn version(key: KeyId, n: u32, state: VersionState, primary: bool) -> KeyVersion {
        KeyVersion {
            key,
            number: VersionNumber::new(n).unwrap(),
            state,
            primary,
            not_before: Timestamp::from_millis(10),
            not_after: Some(Timestamp::from_millis(20)),
            public_key: None,
            wrapped_material: vec![1, 2, 3],
            hsm: None,
            created_at: Timestamp::from_millis(10),
            state_tag: None,
        }
    }

    fn seal() -> StateSeal {
        StateSeal::keyed(&MacKey::generate().unwrap()).unwrap()
    }

    #[test]
    fn every_power_bearing_field_changes_the_tag() {
        let seal = seal();
        let mut k = key();
        let mut v = version(k.id, 1, VersionState::Active, true);
        seal.seal_new(&mut k, &mut v).unwrap();
        assert_eq!(seal.check_key(&k).unwrap(), SealCheck::Verified);
        assert_eq!(
            seal.check_version(k.tenant, &v).unwrap(),
            SealCheck::Verified
        );
        let edits: Vec<fn(&mut KeyVersion)> = vec![
            |v| v.state = VersionState::Retired,
            |v| v.primary = false,
            |v| v.not_before = Timestamp::from_millis(1),
            |v| v.not_after = None,
            |v| v.number = VersionNumber::new(2).unwrap(),
        ];
        for edit in edits {
            let mut edited = v.clone();
            edit(&mut edited);
            assert_eq!(
                seal.check_version(k.tenant, &edited).unwrap(),
                SealCheck::Mismatch
            );
        }
        let key_edits: Vec<fn(&mut Key)> = vec![
            |k| k.state = KeyState::Disabled,
            |k| k.purpose = crate::key::KeyPurpose::Sign,
            |k| k.spec = coffer_crypto::KeySpec::HmacSha256,
            |k| k.protection = crate::hsm::Protection::Hsm,
            |k| k.deletion_due = Some(Timestamp::from_millis(5)),
            |k| k.tenant = TenantId::generate(),
        ];
        for edit in key_edits {
            let mut edited = k.clone();
            edit(&mut edited);
            assert_eq!(seal.check_key(&edited).unwrap(), SealCheck::Mismatch);
        }
        // Another deployment's root makes other tags.
        assert_eq!(self::seal().check_key(&k).unwrap(), SealCheck::Mismatch);
    }

    #[test]
    fn changes_are_sealed_by_compare_and_set_on_the_tags_read() {
        let seal = seal();
        let mut k = key();
        let mut v1 = version(k.id, 1, VersionState::Active, true);
        seal.seal_new(&mut k, &mut v1).unwrap();
        let mut v2 = version(k.id, 2, VersionState::Pending, false);
        seal.seal_version(k.tenant, &mut v2).unwrap();
        let n = |n| VersionNumber::new(n).unwrap();
        let changes = vec![
            Change::VersionState {
                version: n(2),
                from: VersionState::Pending,
                to: VersionState::Active,
            },
            Change::Primary {
                from: n(1),
                to: n(2),
            },
        ];
        let sealed = seal
            .seal_changes(&k, &[v1.clone(), v2.clone()], &changes)
            .unwrap();
        assert_eq!(&sealed[..2], &changes[..]);
        let mut v1_after = v1.clone();
        v1_after.primary = false;
        let mut v2_after = v2.clone();
        v2_after.state = VersionState::Active;
        v2_after.primary = true;
        assert_eq!(
            &sealed[2..],
            &[
                Change::Seal {
                    row: SealedRow::Version(n(1)),
                    from: v1.state_tag,
                    to: seal.version_tag(k.tenant, &v1_after).unwrap(),
                },
                Change::Seal {
                    row: SealedRow::Version(n(2)),
                    from: v2.state_tag,
                    to: seal.version_tag(k.tenant, &v2_after).unwrap(),
                },
            ]
        );
    }

    #[test]
    fn an_edited_row_is_not_changed_and_is_counted() {
        let seal = seal();
        let mut k = key();
        let mut v1 = version(k.id, 1, VersionState::Active, true);
        seal.seal_new(&mut k, &mut v1).unwrap();
        let mut v2 = version(k.id, 2, VersionState::Retired, false);
        seal.seal_version(k.tenant, &mut v2).unwrap();
        // Edited around Coffer: retired → active.
        v2.state = VersionState::Active;
        let promote = [Change::Primary {
            from: VersionNumber::FIRST,
            to: v2.number,
        }];
        let refused = seal.seal_changes(&k, &[v1.clone(), v2.clone()], &promote);
        assert!(
            matches!(refused, Err(CoreError::Integrity(_))),
            "{refused:?}"
        );
        assert_eq!(seal.failures.load(Ordering::Relaxed), 1);
        // Destroying the key still goes ahead: only the key row must verify.
        let mut pending = k.clone();
        pending.state = KeyState::PendingDeletion;
        pending.deletion_due = Some(Timestamp::from_millis(1));
        pending.state_tag = Some(seal.key_tag(&pending).unwrap());
        let destroy = [Change::DestroyKey {
            due_by: Timestamp::from_millis(2),
        }];
        assert!(seal.seal_changes(&pending, &[v1, v2], &destroy).is_ok());
    }

    #[test]
    fn untagged_rows_pass_only_until_the_binding() {
        let seal = StateSeal::new(Arc::default());
        seal.set_root(&MacKey::generate().unwrap()).unwrap();
        let k = key();
        assert_eq!(seal.check_key(&k).unwrap(), SealCheck::Untagged);
        assert!(seal.accepts(SealCheck::Untagged));
        seal.mark_bound();
        assert!(!seal.accepts(SealCheck::Untagged));
        seal.forget();
        assert!(seal.key_tag(&k).is_err(), "no key once sealed");
    }
}
