//! Sample domain values for conformance tests. The wrapped material is random bytes:
//! a store never looks inside it.

use std::collections::BTreeSet;

use coffer_crypto::KeySpec;

use crate::event::Event;
use crate::ids::{Alias, KeyId, TenantId, VersionNumber};
use crate::key::{Key, KeyPurpose, KeyVersion, Labels, RotationPolicy};
use crate::lifecycle::{KeyState, VersionState};
use crate::tenant::{Tenant, TenantName, TenantState};
use crate::time::{HumanDuration, Timestamp};

/// A fixed instant (2026-01-01T00:00:00Z) so expectations do not depend on the clock.
pub const T0: Timestamp = Timestamp::from_millis(1_767_225_600_000);

/// A new active tenant named `name`.
pub fn tenant(name: &str) -> Tenant {
    Tenant {
        aws_account_id: None,
        id: TenantId::generate(),
        name: name.parse::<TenantName>().expect("fixture tenant name"),
        state: TenantState::Active,
        created_at: T0,
    }
}

/// An enabled AES key of `tenant` with the given aliases.
pub fn key(tenant: TenantId, aliases: &[&str]) -> Key {
    let mut labels = Labels::new();
    labels.insert("team".into(), "payments".into());
    Key {
        tenant,
        id: KeyId::generate(),
        spec: KeySpec::Aes256,
        purpose: KeyPurpose::Encrypt,
        state: KeyState::Enabled,
        deletion_due: None,
        aliases: aliases
            .iter()
            .map(|a| a.parse::<Alias>().expect("fixture alias"))
            .collect(),
        labels,
        registered_purposes: BTreeSet::from(["data-encryption".to_owned()]),
        rotation: RotationPolicy {
            period: Some(HumanDuration::days(90)),
            before_expiry: None,
            overlap: Some(HumanDuration::days(14)),
        },
        validity: Some(HumanDuration::days(365)),
        protection: crate::hsm::Protection::Software,
        created_at: T0,
        state_tag: None,
    }
}

/// Version `n` of `key` in `state`.
pub fn version(key: KeyId, n: u32, state: VersionState, primary: bool) -> KeyVersion {
    KeyVersion {
        key,
        number: VersionNumber::new(n).expect("fixture version"),
        state,
        primary,
        not_before: T0,
        not_after: Some(T0.plus(HumanDuration::days(365).get())),
        public_key: None,
        wrapped_material: random_bytes(72),
        hsm: None,
        created_at: T0,
        state_tag: None,
    }
}

/// An event about `key`.
pub fn event(tenant: TenantId, key: KeyId, kind: &str) -> Event {
    Event::key(tenant, key, None, kind, "fixture", T0)
}

/// The actor of changes made directly through a store in the suites.
pub fn actor() -> crate::audit::Actor {
    crate::audit::Actor::new("conformance", "conformance", "test.change")
}

/// `event` with its audit entry, as a change carries it.
pub fn record(event: &Event) -> crate::store::Record {
    crate::store::Record::event(&actor(), event.clone())
}

/// An audit entry alone, for changes outside a key's history.
pub fn audit_record(tenant: Option<TenantId>) -> crate::store::Record {
    crate::store::Record::audit(actor().entry(tenant, (None, None), T0, None))
}

/// `len` random bytes.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    coffer_crypto::rng::fill(&mut out).expect("random bytes");
    out
}

/// A state seal keyed by a fixed root (so every service built over one store in a test
/// agrees), with every row bound: for tests that drive a [`crate::KeyService`] without
/// a `Kms`.
pub fn state_seal() -> std::sync::Arc<crate::state_seal::StateSeal> {
    std::sync::Arc::new(crate::state_seal::StateSeal::keyed(&state_root()).expect("fixture seal"))
}

/// Keys `seal` (a `Kms`'s, which is keyed only by `Kms::load`) with the fixed root of
/// [`state_seal`], for tests that run a `Kms` over rows a bare `KeyService` wrote.
pub fn key_state_seal(seal: &crate::state_seal::StateSeal) {
    seal.set_root(&state_root()).expect("fixture seal");
    seal.mark_bound();
}

fn state_root() -> coffer_crypto::MacKey {
    coffer_crypto::MacKey::from_bytes(&[7u8; 32]).expect("fixture root")
}
