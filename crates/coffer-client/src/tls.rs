//! The client's side of TLS: which CA to trust (`--cacert`) and, for a server that asks
//! for one, the client certificate and key (`--client-cert`, `--client-key`).
//!
//! Coffer's servers carry certificates of the operator's own CA, so no system roots
//! are trusted: an `https://` address needs `--cacert`.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::ClientError;

/// Where the client's TLS material is (all optional).
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// PEM CA certificate(s) the server's certificate must chain to.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain, for servers with `tls.client_auth`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub key_file: Option<PathBuf>,
}

/// Makes aws-lc-rs (the crypto library Coffer already builds) rustls's process-wide
/// provider, so every HTTP client of the process can speak TLS; idempotent.
pub fn install_tls_provider() {
    // Err only when a provider is installed already, which is as good.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn config_error(what: &str, error: impl std::fmt::Display) -> ClientError {
    ClientError::Transport(format!("tls: {what}: {error}"))
}

impl ClientTls {
    /// The rustls configuration these files make.
    pub(crate) fn config(&self) -> Result<ClientConfig, ClientError> {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(ca_file) = &self.ca_file {
            let certs = CertificateDer::pem_file_iter(ca_file)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|e| config_error(&ca_file.display().to_string(), e))?;
            if certs.is_empty() {
                return Err(config_error(
                    &ca_file.display().to_string(),
                    "no certificate",
                ));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| config_error(&ca_file.display().to_string(), e))?;
            }
        }
        let builder = ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("protocol versions", e))?
        .with_root_certificates(roots);
        match (&self.cert_file, &self.key_file) {
            (None, None) => Ok(builder.with_no_client_auth()),
            (Some(cert_file), Some(key_file)) => {
                let chain = CertificateDer::pem_file_iter(cert_file)
                    .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                    .map_err(|e| config_error(&cert_file.display().to_string(), e))?;
                let key = PrivateKeyDer::from_pem_file(key_file)
                    .map_err(|e| config_error(&key_file.display().to_string(), e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| config_error("client certificate", e))
            }
            _ => Err(config_error(
                "client certificate",
                "give both the certificate and its key",
            )),
        }
    }
}
