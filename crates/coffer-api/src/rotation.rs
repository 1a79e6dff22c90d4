//! The rotation saga and the reference tracker.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `POST /v1/kms/rotations`: start a rotation saga for a key.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRotationRequest {
    /// Key id or `alias/NAME`.
    pub key_id: String,
    /// Stop after this step (e.g. `stage`: everything up to, not past, the switch).
    /// Default: run every step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Start only if the key's primary version is this one (seed 001's
    /// `KMS_KEY_VERSION`); otherwise `409 version_mismatch` and nothing changes. The
    /// store checks it in the transaction that records the rotation, so a rotation
    /// that switches the key at the same moment cannot slip between check and start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_version: Option<u32>,
    /// Start even though the current primary was used for untracked material (plain
    /// `wrap`/`unwrap`, untracked data keys) within `rotation.untracked_window`; without
    /// it such a start is refused with `untracked_use` (409). The start's audit entry
    /// records the choice and the use it accepted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retire_untracked: bool,
    /// The key's enclave allow-list (measurements, hex) from the switch on: stored as
    /// the key's next attestation policy version (its operations unchanged) in the
    /// transaction that makes the new version primary, by compare-and-set on the policy
    /// version in force at the start. `400 invalid_request` if the key's policy names no
    /// operation. Absent: the list is left alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_measurements: Option<Vec<String>>,
}

/// `POST /v1/kms/rotations/{id}/resume`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeRotationRequest {
    /// Stop after this step (default: run to the end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// A rotation saga as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct RotationView {
    /// Id.
    pub rotation_id: String,
    /// Key.
    pub key_id: String,
    /// The version rotated away from.
    pub from_version: u32,
    /// The new version, once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_version: Option<u32>,
    /// The next step to run (`create_version`, `stage`, `switch_pointer`,
    /// `drain_inflight`, `rewrap_tracked`, `retire_old`, `anchor`).
    pub step: String,
    /// `running`, `completed` or `rolled-back`.
    pub status: String,
    /// True once the pointer switched: from then on it can only be resumed.
    pub switched: bool,
    /// The step the rotation stops after (the `until` of its start or last resume);
    /// once past it, the rotation stays `running` until resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_after: Option<String>,
    /// Set while a running rotation waits for `resume` (the worker leaves it alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<RotationHold>,
    /// Failures seen.
    pub failures: u32,
    /// The last failure, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The allow-list the rotation puts in force with its switch, if it changes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_measurements: Option<Vec<String>>,
    /// The attestation policy version the allow-list change was asked against; the
    /// switch stores the next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_list_from_policy: Option<u32>,
    /// Tracked data keys still wrapped under the old version.
    pub tracked_remaining: u64,
    /// The rewrap's progress while the `rewrap_tracked` step runs, as seen by the
    /// replica driving it (absent elsewhere, and on other steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrap: Option<RewrapView>,
    /// Start (RFC 3339).
    pub started_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
}

/// Progress of a running `rewrap_tracked` step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct RewrapView {
    /// Tracked data keys this run has moved to the new version.
    pub done: u64,
    /// Items per second over the last ten seconds.
    pub rate_per_second: f64,
    /// Seconds until the remaining items are done at that rate (absent while waiting
    /// for the window or before a rate is known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<u64>,
    /// Set while the step waits for its daily UTC window (`rotation.rewrap_window`,
    /// e.g. `22:00-06:00`) to open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for_window: Option<String>,
}

/// Why a running rotation waits for `resume`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RotationHold {
    /// It ran through its `paused_after` step.
    Paused,
    /// A step failed after the switch (see `error`).
    Failed,
}

/// `GET /v1/kms/rotations?key=K&status=S`: filters of the tenant's rotations.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListRotationsQuery {
    /// Only this key's (id or `alias/NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Only those in this status (`running`, `completed`, `rolled-back`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// `GET /v1/kms/rotations`: the tenant's rotations, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct RotationList {
    /// The rotations.
    pub rotations: Vec<RotationView>,
}

/// `GET /v1/kms/rotations/{id}/verify`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, JsonSchema)]
pub struct RotationVerifyView {
    /// True when every invariant holds and the rotation is completed and anchored.
    pub ok: bool,
    /// The rotation.
    pub rotation: RotationView,
    /// Broken invariants (`RetireAfterSwitch`, `NoKeyOrphans`, `ForwardOnly`,
    /// `OnePrimary`, `OneSagaPerKey`, `RecordMatchesKey`).
    pub violations: Vec<ViolationView>,
    /// True when an audit checkpoint covers the rotation's last event.
    pub anchored: bool,
    /// Size of the newest checkpoint, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_size: Option<u64>,
}

/// A broken invariant.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct ViolationView {
    /// Invariant name.
    pub invariant: String,
    /// What was seen.
    pub detail: String,
}

/// `GET /v1/kms/keys/{key}/references`: who uses which version (seed 000: "find the
/// process holding the old KEK reference").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct ReferencesView {
    /// Key.
    pub key_id: String,
    /// Per version.
    pub versions: Vec<VersionReferences>,
}

/// Use of one version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct VersionReferences {
    /// Number.
    pub version: u32,
    /// State.
    pub state: String,
    /// Primary?
    pub primary: bool,
    /// Operations using it right now.
    pub in_flight: u64,
    /// Tracked data keys wrapped under it.
    pub tracked: u64,
    /// Its use per principal (token id) and kind, most recent first: persisted, so
    /// every replica and every restart shows the same (plus the answering replica's
    /// use of the last second, not yet flushed).
    pub principals: Vec<PrincipalUse>,
}

/// One principal's use of a version in one way.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct PrincipalUse {
    /// Token id.
    pub principal: String,
    /// `encrypt` or `decrypt` (untracked material: what a rotation cannot rewrap),
    /// `tracked-datakey`, `sign`, `verify`, or `probe` (a ciphertext whose context
    /// carries `coffer:probe`, e.g. `coffer rotate validate`'s round trip).
    pub kind: String,
    /// First use (RFC 3339).
    pub first_seen: String,
    /// Last use (RFC 3339).
    pub last_seen: String,
    /// Operations.
    pub count: u64,
    /// True for untracked use (`encrypt`, `decrypt`) within the server's
    /// `rotation.untracked_window`: what refuses a rotation away from this version
    /// unless it is started with `retire_untracked`.
    #[serde(default)]
    pub untracked_recent: bool,
}

/// `GET /v1/kms/tracked/{track_id}`: a tracked data key's current wrapping (rewrapped by
/// rotations; the caller's copy may be older).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct TrackedView {
    /// The caller's id for it.
    pub track_id: String,
    /// Key.
    pub key_id: String,
    /// The version wrapping it now.
    pub key_version: u32,
    /// The current envelope.
    pub ciphertext: crate::B64,
}
