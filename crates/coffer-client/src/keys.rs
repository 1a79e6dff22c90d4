//! Key management endpoints.

use coffer_api::keys::{
    CreateKeyRequest, KeyView, ListKeysQuery, ListKeysResponse, RotateResponse,
    ScheduleDeletionRequest,
};
use coffer_api::paths;

use crate::client::Client;
use crate::error::ClientError;
use crate::reference::{key_action_path, key_path};

impl Client {
    /// `POST /v1/kms/keys`: creates a key.
    pub async fn create_key(&self, request: &CreateKeyRequest) -> Result<KeyView, ClientError> {
        self.post(paths::KEYS, request).await
    }

    /// `GET /v1/kms/keys`: lists the caller's keys, filtered by `query`.
    pub async fn list_keys(&self, query: &ListKeysQuery) -> Result<ListKeysResponse, ClientError> {
        self.get_query(paths::KEYS, query).await
    }

    /// `GET /v1/kms/keys/{reference}`: one key with its versions. `reference` is a key
    /// id or `alias/NAME`.
    pub async fn show_key(&self, reference: &str) -> Result<KeyView, ClientError> {
        self.get(&key_path(reference)?).await
    }

    /// `POST .../rotate`: a new primary version.
    pub async fn rotate_key(&self, reference: &str) -> Result<RotateResponse, ClientError> {
        self.post_empty(&key_action_path(reference, "rotate")?)
            .await
    }

    /// `POST .../enable`: answers the key as it now is.
    pub async fn enable_key(&self, reference: &str) -> Result<KeyView, ClientError> {
        self.post_empty(&key_action_path(reference, "enable")?)
            .await
    }

    /// `POST .../disable`: answers the key as it now is.
    pub async fn disable_key(&self, reference: &str) -> Result<KeyView, ClientError> {
        self.post_empty(&key_action_path(reference, "disable")?)
            .await
    }

    /// `POST .../schedule-deletion`: the key becomes `pending-deletion` for
    /// `pending_window_days` (7–30; the server's default, 30, when `None`).
    pub async fn schedule_deletion(
        &self,
        reference: &str,
        pending_window_days: Option<u32>,
    ) -> Result<KeyView, ClientError> {
        let body = ScheduleDeletionRequest {
            pending_window_days,
        };
        self.post(&key_action_path(reference, "schedule-deletion")?, &body)
            .await
    }

    /// `POST .../cancel-deletion`: back to `disabled`.
    pub async fn cancel_deletion(&self, reference: &str) -> Result<KeyView, ClientError> {
        self.post_empty(&key_action_path(reference, "cancel-deletion")?)
            .await
    }
}
