//! The cryptographic operations and their batch form.
//!
//! A batch goes to the same path as the single operation with `{"items": [...]}` as
//! the body; each item of the answer is its own success or error.

use coffer_api::crypto::{
    Batch, CiphertextResponse, DatakeyRequest, DatakeyResponse, DecryptRequest, EncryptRequest,
    ItemResult, MacRequest, MacResponse, RewrapRequest, SignRequest, SignResponse, UnwrapRequest,
    UnwrapResponse, VerifyMacRequest, VerifyRequest, VerifyResponse, WrapRequest,
};
use coffer_api::paths;

use crate::client::Client;
use crate::error::ClientError;

impl Client {
    /// `POST /v1/kms/wrap`: encrypts up to 4 KiB under a key.
    pub async fn wrap(&self, request: &WrapRequest) -> Result<CiphertextResponse, ClientError> {
        self.post(paths::WRAP, request).await
    }

    /// `POST /v1/kms/unwrap`: decrypts a ciphertext (the key is named inside it).
    pub async fn unwrap(&self, request: &UnwrapRequest) -> Result<UnwrapResponse, ClientError> {
        self.post(paths::UNWRAP, request).await
    }

    /// `POST /v1/kms/datakey`: a fresh data key, wrapped (and in plaintext unless
    /// `include_plaintext` is false).
    pub async fn datakey(&self, request: &DatakeyRequest) -> Result<DatakeyResponse, ClientError> {
        self.post(paths::DATAKEY, request).await
    }

    /// `POST /v1/kms/rewrap`: moves a ciphertext to another key or version without
    /// the plaintext leaving the server.
    pub async fn rewrap(&self, request: &RewrapRequest) -> Result<CiphertextResponse, ClientError> {
        self.post(paths::REWRAP, request).await
    }

    /// `POST /v1/kms/sign`.
    pub async fn sign(&self, request: &SignRequest) -> Result<SignResponse, ClientError> {
        self.post(paths::SIGN, request).await
    }

    /// `POST /v1/kms/verify`. An invalid signature is `Ok` with `valid: false`.
    pub async fn verify(&self, request: &VerifyRequest) -> Result<VerifyResponse, ClientError> {
        self.post(paths::VERIFY, request).await
    }

    /// `POST /v1/kms/encrypt`: RSA-OAEP encryption with an RSA key made for encryption.
    pub async fn encrypt_asymmetric(
        &self,
        request: &EncryptRequest,
    ) -> Result<CiphertextResponse, ClientError> {
        self.post(paths::ENCRYPT, request).await
    }

    /// `POST /v1/kms/decrypt`: RSA-OAEP decryption.
    pub async fn decrypt_asymmetric(
        &self,
        request: &DecryptRequest,
    ) -> Result<UnwrapResponse, ClientError> {
        self.post(paths::DECRYPT, request).await
    }

    /// `POST /v1/kms/mac`.
    pub async fn mac(&self, request: &MacRequest) -> Result<MacResponse, ClientError> {
        self.post(paths::MAC, request).await
    }

    /// `POST /v1/kms/verify-mac`. A wrong tag is `Ok` with `valid: false`.
    pub async fn verify_mac(
        &self,
        request: &VerifyMacRequest,
    ) -> Result<VerifyResponse, ClientError> {
        self.post(paths::VERIFY_MAC, request).await
    }

    /// Batch wrap (at most [`coffer_api::crypto::MAX_BATCH_ITEMS`] items).
    pub async fn wrap_batch(
        &self,
        batch: &Batch<WrapRequest>,
    ) -> Result<Vec<ItemResult<CiphertextResponse>>, ClientError> {
        self.batch(paths::WRAP, batch).await
    }

    /// Batch unwrap.
    pub async fn unwrap_batch(
        &self,
        batch: &Batch<UnwrapRequest>,
    ) -> Result<Vec<ItemResult<UnwrapResponse>>, ClientError> {
        self.batch(paths::UNWRAP, batch).await
    }

    /// Batch rewrap.
    pub async fn rewrap_batch(
        &self,
        batch: &Batch<RewrapRequest>,
    ) -> Result<Vec<ItemResult<CiphertextResponse>>, ClientError> {
        self.batch(paths::REWRAP, batch).await
    }

    /// Batch sign.
    pub async fn sign_batch(
        &self,
        batch: &Batch<SignRequest>,
    ) -> Result<Vec<ItemResult<SignResponse>>, ClientError> {
        self.batch(paths::SIGN, batch).await
    }

    /// Batch verify.
    pub async fn verify_batch(
        &self,
        batch: &Batch<VerifyRequest>,
    ) -> Result<Vec<ItemResult<VerifyResponse>>, ClientError> {
        self.batch(paths::VERIFY, batch).await
    }

    async fn batch<T, R>(&self, path: &str, batch: &Batch<T>) -> Result<Vec<R>, ClientError>
    where
        T: serde::Serialize,
        R: serde::de::DeserializeOwned,
    {
        let answer: Batch<R> = self.post(path, batch).await?;
        Ok(answer.items)
    }
}
