//! Attestation policies of keys.

use coffer_api::attestation::{
    AttestationPoliciesResponse, AttestationPolicyView, SetAttestationPolicyRequest,
};

use crate::client::Client;
use crate::error::ClientError;
use crate::reference::key_action_path;

impl Client {
    /// `GET .../attestation-policy`: the version in force and every version.
    pub async fn attestation_policies(
        &self,
        reference: &str,
    ) -> Result<AttestationPoliciesResponse, ClientError> {
        self.get(&key_action_path(reference, "attestation-policy")?)
            .await
    }

    /// `POST .../attestation-policy`: stores the policy's next version.
    pub async fn set_attestation_policy(
        &self,
        reference: &str,
        request: &SetAttestationPolicyRequest,
    ) -> Result<AttestationPolicyView, ClientError> {
        self.post(&key_action_path(reference, "attestation-policy")?, request)
            .await
    }
}
