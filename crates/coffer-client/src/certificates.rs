//! Certificate chains of signing keys (seed 004): import, issue, read, verify.

use coffer_api::keys::{
    ChainQuery, ChainReportView, ChainView, ImportChainRequest, IssueCertificateRequest,
};

use crate::client::Client;
use crate::error::ClientError;
use crate::reference::key_action_path;

impl Client {
    /// Imports a certificate chain (PEM, leaf first) for `version` (default: primary).
    pub async fn import_chain(
        &self,
        reference: &str,
        chain_pem: &str,
        version: Option<u32>,
    ) -> Result<ChainView, ClientError> {
        self.post(
            &key_action_path(reference, "certificate")?,
            &ImportChainRequest {
                chain_pem: chain_pem.to_owned(),
                version,
            },
        )
        .await
    }

    /// Issues a certificate for the key's primary version from a CA key of the tenant
    /// (`ca_key` = the key itself: a self-signed CA certificate).
    pub async fn issue_certificate(
        &self,
        reference: &str,
        request: &IssueCertificateRequest,
    ) -> Result<ChainView, ClientError> {
        self.post(&key_action_path(reference, "issue-certificate")?, request)
            .await
    }

    /// A version's certificate chain.
    pub async fn certificate_chain(
        &self,
        reference: &str,
        version: Option<u32>,
    ) -> Result<ChainView, ClientError> {
        self.get_query(
            &key_action_path(reference, "certificate")?,
            &ChainQuery { version },
        )
        .await
    }

    /// Checks a version's chain link by link.
    pub async fn verify_chain(
        &self,
        reference: &str,
        version: Option<u32>,
    ) -> Result<ChainReportView, ClientError> {
        self.get_query(
            &key_action_path(reference, "verify-chain")?,
            &ChainQuery { version },
        )
        .await
    }
}
