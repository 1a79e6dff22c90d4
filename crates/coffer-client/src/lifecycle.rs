//! Spare versions, activation, registered purposes, publication, history, the public
//! JWKS and moving an alias (seed 004).

use coffer_api::keys::{
    ActivateRequest, AliasView, HistoryResponse, KeyView, ReactivateRequest, RegisterRequest,
    SetAliasRequest,
};
use coffer_api::paths;

use crate::client::Client;
use crate::error::ClientError;
use crate::reference::{key_action_path, key_path};

impl Client {
    /// `POST /v1/kms/aliases`: moves an existing alias to another key of the tenant.
    pub async fn set_alias(&self, request: &SetAliasRequest) -> Result<AliasView, ClientError> {
        self.post(paths::ALIASES, request).await
    }

    /// Adds a spare (`inactive`) version.
    pub async fn add_spare(&self, reference: &str) -> Result<KeyView, ClientError> {
        self.post_empty(&key_action_path(reference, "add-spare")?)
            .await
    }

    /// Makes `version` (a spare) active and primary in one step.
    pub async fn activate_version(
        &self,
        reference: &str,
        version: u32,
    ) -> Result<KeyView, ClientError> {
        self.post(
            &key_action_path(reference, "activate")?,
            &ActivateRequest { version },
        )
        .await
    }

    /// Moves retired `version` back to `retiring`: it decrypts and verifies again (it
    /// never encrypts or signs again).
    pub async fn reactivate_version(
        &self,
        reference: &str,
        version: u32,
    ) -> Result<KeyView, ClientError> {
        self.post(
            &key_action_path(reference, "reactivate")?,
            &ReactivateRequest { version },
        )
        .await
    }

    /// Registers a purpose such as `attestation-signing`.
    pub async fn register_purpose(
        &self,
        reference: &str,
        purpose: &str,
    ) -> Result<KeyView, ClientError> {
        self.post(
            &key_action_path(reference, "register")?,
            &RegisterRequest {
                purpose: purpose.to_owned(),
            },
        )
        .await
    }

    /// Changes the rotation policy and validity (fields given replace the current ones).
    pub async fn set_policy(
        &self,
        reference: &str,
        request: &coffer_api::keys::SetPolicyRequest,
    ) -> Result<KeyView, ClientError> {
        self.post(&key_action_path(reference, "policy")?, request)
            .await
    }

    /// Publishes a signing key in its tenant's JWKS.
    pub async fn publish_key(&self, reference: &str) -> Result<KeyView, ClientError> {
        self.post_empty(&key_action_path(reference, "publish")?)
            .await
    }

    /// The key's lifecycle events (rotation history).
    pub async fn key_history(&self, reference: &str) -> Result<HistoryResponse, ClientError> {
        self.get(&format!("{}/history", key_path(reference)?)).await
    }

    /// A tenant's published public keys as a JWKS document (no token needed).
    pub async fn jwks(&self, tenant: &str) -> Result<serde_json::Value, ClientError> {
        if tenant.is_empty()
            || !tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ClientError::InvalidReference);
        }
        self.get(&format!("/v1/jwks/{tenant}")).await
    }
}
