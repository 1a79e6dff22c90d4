//! Tenants, tokens, seal status and unseal.

use coffer_api::admin::{
    CreateTenantRequest, ListTenantsResponse, MintTokenRequest, MintTokenResponse,
    RevokeTokenRequest, SealStatusView, ShredTenantRequest, TenantView, UnsealRequest,
};
use coffer_api::paths;

use crate::client::Client;

/// The header the unseal token travels in.
pub const UNSEAL_TOKEN_HEADER: &str = "x-coffer-unseal-token";
use crate::error::ClientError;

impl Client {
    /// `POST /v1/admin/tenants` (admin token).
    pub async fn create_tenant(
        &self,
        request: &CreateTenantRequest,
    ) -> Result<TenantView, ClientError> {
        self.post(paths::TENANTS, request).await
    }

    /// `GET /v1/admin/tenants` (admin token).
    pub async fn list_tenants(&self) -> Result<ListTenantsResponse, ClientError> {
        self.get(paths::TENANTS).await
    }

    /// `POST /v1/admin/tokens` (admin token). The answer holds the bearer token: show
    /// it once, never log it (its derived `Debug` prints it).
    pub async fn mint_token(
        &self,
        request: &MintTokenRequest,
    ) -> Result<MintTokenResponse, ClientError> {
        self.post(paths::TOKENS, request).await
    }

    /// `POST /v1/admin/tenants/shred` (admin token): destroys the tenant's key and
    /// with it all of its keys; its tokens stop authenticating.
    pub async fn shred_tenant(&self, request: &ShredTenantRequest) -> Result<(), ClientError> {
        self.post_raw(paths::TENANTS_SHRED, request).await.map(drop)
    }

    /// `POST /v1/admin/tokens/revoke` (admin token). Revokes the id and every token
    /// attenuated from it. The answer's body, if any, is not needed.
    pub async fn revoke_token(&self, request: &RevokeTokenRequest) -> Result<(), ClientError> {
        self.post_raw(paths::TOKENS_REVOKE, request).await.map(drop)
    }

    /// `POST /v1/admin/backup` (admin token with `admin:backup`): the bundle's bytes.
    pub async fn backup(&self) -> Result<Vec<u8>, ClientError> {
        self.post_bytes(paths::BACKUP).await
    }

    /// `GET /v1/sys/seal-status` (no token needed).
    pub async fn seal_status(&self) -> Result<SealStatusView, ClientError> {
        self.get(paths::SEAL_STATUS).await
    }

    /// `POST /v1/sys/unseal`: submits a share or the passphrase; answers the seal
    /// status after it.
    pub async fn unseal(&self, request: &UnsealRequest) -> Result<SealStatusView, ClientError> {
        self.unseal_with_token(request, None).await
    }

    /// As [`Client::unseal`], sending `unseal_token` in `X-Coffer-Unseal-Token` (a
    /// server with `unseal.token_file` set refuses unseal attempts without it).
    pub async fn unseal_with_token(
        &self,
        request: &UnsealRequest,
        unseal_token: Option<&str>,
    ) -> Result<SealStatusView, ClientError> {
        let mut extra = Vec::new();
        if let Some(token) = unseal_token {
            let mut value = reqwest::header::HeaderValue::try_from(token.trim())
                .map_err(|_| ClientError::InvalidToken)?;
            value.set_sensitive(true);
            extra.push((UNSEAL_TOKEN_HEADER, value));
        }
        self.post_with_headers(paths::UNSEAL, request, extra).await
    }
}
