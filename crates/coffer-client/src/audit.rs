//! The audit log: checkpoints, the verifier key, entries and proofs.

use coffer_api::paths;
use reqwest::Method;

use crate::client::Client;
use crate::error::ClientError;

impl Client {
    /// The newest signed checkpoint (a C2SP signed note).
    pub async fn audit_checkpoint(&self) -> Result<String, ClientError> {
        self.text(Method::GET, paths::AUDIT_CHECKPOINT).await
    }

    /// Signs a checkpoint now (admin token) and returns it.
    pub async fn audit_new_checkpoint(&self) -> Result<String, ClientError> {
        self.text(Method::POST, paths::AUDIT_CHECKPOINT).await
    }

    /// The checkpoint verifier key (`name+hash+key`).
    pub async fn audit_key(&self) -> Result<String, ClientError> {
        Ok(self
            .text(Method::GET, paths::AUDIT_KEY)
            .await?
            .trim()
            .to_owned())
    }

    /// Up to `limit` entries from `from`, as JSON lines (admin token).
    pub async fn audit_entries(&self, from: u64, limit: u64) -> Result<String, ClientError> {
        self.text(
            Method::GET,
            &format!("{}?from={from}&limit={limit}", paths::AUDIT_ENTRIES),
        )
        .await
    }

    /// The inclusion proof of entry `index` in the tree of `size` entries.
    pub async fn audit_inclusion(
        &self,
        index: u64,
        size: u64,
    ) -> Result<serde_json::Value, ClientError> {
        let text = self
            .text(
                Method::GET,
                &format!("{}?index={index}&size={size}", paths::AUDIT_INCLUSION),
            )
            .await?;
        serde_json::from_str(&text).map_err(|_| ClientError::Decode("inclusion proof".into()))
    }

    /// The consistency proof between tree sizes `old` and `new`.
    pub async fn audit_consistency(
        &self,
        old: u64,
        new: u64,
    ) -> Result<serde_json::Value, ClientError> {
        let text = self
            .text(
                Method::GET,
                &format!("{}?old={old}&new={new}", paths::AUDIT_CONSISTENCY),
            )
            .await?;
        serde_json::from_str(&text).map_err(|_| ClientError::Decode("consistency proof".into()))
    }
}
