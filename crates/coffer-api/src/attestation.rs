//! Attestation policies of keys: `GET` and `POST /v1/kms/keys/{key}/attestation-policy`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `POST /v1/kms/keys/{key}/attestation-policy`: the policy's next version.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAttestationPolicyRequest {
    /// Operations that need an attestation: `unwrap`, `datakey`, `sign`, `mac` (empty:
    /// none, which lifts the requirement).
    pub operations: Vec<String>,
    /// Measurements allowed (hex; a Nitro document's PCR0).
    pub measurements: Vec<String>,
    /// Change only if the policy in force is this version (0: none yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_version: Option<u32>,
}

/// One version of a key's attestation policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct AttestationPolicyView {
    /// Key id.
    pub key_id: String,
    /// 1, 2, … (each change adds one).
    pub version: u32,
    /// Operations that need an attestation.
    pub operations: Vec<String>,
    /// Measurements allowed.
    pub measurements: Vec<String>,
    /// When this version was stored (Unix ms).
    pub created_at: i64,
}

/// `GET /v1/kms/keys/{key}/attestation-policy`: the version in force and the history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct AttestationPoliciesResponse {
    /// Key id.
    pub key_id: String,
    /// The version in force (none: never set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<AttestationPolicyView>,
    /// Every version, oldest first.
    pub versions: Vec<AttestationPolicyView>,
}
