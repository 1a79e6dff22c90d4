//! Coffer's domain: what a tenant, a key and a key version are, which lifecycle changes
//! are allowed, and the traits the backends implement.
//!
//! Layout:
//! - [`ids`], [`tenant`], [`key`], [`time`] — domain types, parsed at the edge.
//! - [`lifecycle`] — key and version states and the one transition table.
//! - [`store`] — the `Store` trait (durable state) and its rules.
//! - [`custody`] — the `Custody` trait (the root key).
//! - [`hsm`] — HSM-resident keys: `Protection`, where a version lives, the `KeyHsm` trait.
//! - [`backup`] — snapshots of the store and the encrypted bundle format.
//! - [`keyring`] — the tenant key hierarchy between custody and key material.
//! - [`state_seal`] — key and version states under a MAC, checked when keys load.
//! - [`keys`] — the key service: tenants and keys created, rotated, changed, loaded.
//! - [`event`] — lifecycle events recorded with each change.
//! - [`usage`] — use of key versions per principal and kind (the reference tracker's rows).
//! - [`pq`] — the post-quantum policy: verify modes, composite or classical-half
//!   signing, rollout buckets, and a tenant's overrides of the server's defaults.
//! - [`quota`] — per-tenant limits the store enforces; [`reject`] — `kms_reject_total`.
//! - [`attestation`] — attestation policies of keys (which operations need an attested
//!   caller, and which measurements may perform them) and their store.
//! - `testing` (feature `testing`) — conformance suites every backend runs.
//!
//! This crate names no database, HTTP or HSM library: backends depend on it, not the
//! other way round.

pub mod attestation;
pub mod audit;
pub mod backup;
pub mod custody;
pub mod error;
pub mod event;
pub mod hsm;
pub mod ids;
pub mod key;
pub mod keyring;
pub mod keys;
pub mod kms;
pub mod lifecycle;
pub mod offload;
pub mod pq;
pub mod quota;
pub mod reject;
pub mod saga;
pub mod state_seal;
pub mod store;
pub mod tenant;
pub mod time;
pub mod token;
pub mod usage;

#[cfg(feature = "testing")]
pub mod testing;

pub use audit::Actor;
pub use custody::{Custody, CustodyError, SealStatus};
pub use error::{CoreError, CoreResult, InvalidInput};
pub use event::Event;
pub use hsm::{HsmError, HsmKeyRef, KeyHsm, Protection};
pub use ids::{Alias, KeyId, TenantId, VersionNumber};
pub use key::{Key, KeyPurpose, KeyVersion, Labels, RotationPolicy};
pub use keys::{KeyService, NewKey};
pub use lifecycle::{IllegalTransition, KeyState, VersionState};
pub use store::{
    Appended, Change, Record, RotationRecord, Store, StoreError, StoreResult, TrackedKey,
};
pub use tenant::{Tenant, TenantName, TenantState};
pub use time::{Clock, HumanDuration, ManualClock, SystemClock, Timestamp};
