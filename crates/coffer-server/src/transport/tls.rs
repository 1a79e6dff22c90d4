//! TLS on every port: the certificate and key read from files, reloaded without
//! dropping connections.
//!
//! Each connection's handshake takes the configuration current when it was accepted;
//! a reload swaps it for the next connections only, so connections already open keep
//! their session and no request fails. Reloads come from `SIGHUP` and from a check of
//! the files' modification times every two seconds; a reload that fails (a half-written
//! file, a key that does not match) is logged and counted and the old configuration
//! stays.

use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;

use crate::config::{ClientAuth, TlsConfig};

/// Why a TLS configuration could not be built.
#[derive(Debug, Error)]
#[error("tls: {0}")]
pub struct TlsError(String);

/// The configurations handshakes use, for the API, operations and gRPC ports.
pub struct TlsSource {
    config: TlsConfig,
    current: RwLock<Current>,
}

struct Current {
    api: Arc<ServerConfig>,
    ops: Arc<ServerConfig>,
    grpc: Arc<ServerConfig>,
    stamp: Stamp,
}

/// What the files looked like when last loaded.
type Stamp = Vec<Option<(SystemTime, u64)>>;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| TlsError(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!("{}: no certificate", path.display())));
    }
    Ok(certs)
}

fn stamp(config: &TlsConfig) -> Stamp {
    [
        Some(&config.cert_file),
        Some(&config.key_file),
        config.client_ca_file.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|path| {
        std::fs::metadata(path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    })
    .collect()
}

/// The configurations of the API, operations and gRPC ports.
type Configs = (Arc<ServerConfig>, Arc<ServerConfig>, Arc<ServerConfig>);

fn build(config: &TlsConfig) -> Result<Configs, TlsError> {
    let chain = certificates(&config.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&config.key_file)
        .map_err(|e| TlsError(format!("{}: {e}", config.key_file.display())))?;
    let builder = || {
        ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(e.to_string()))
    };
    let ops = builder()?
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| TlsError(format!("certificate and key: {e}")))?;
    let api = match (&config.client_ca_file, config.client_auth) {
        (Some(ca_file), auth @ (ClientAuth::Optional | ClientAuth::Required)) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in certificates(ca_file)? {
                roots
                    .add(ca)
                    .map_err(|e| TlsError(format!("{}: {e}", ca_file.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider());
            let verifier = if auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError(format!("client CA: {e}")))?;
            builder()?
                .with_client_cert_verifier(verifier)
                .with_single_cert(chain, key)
                .map_err(|e| TlsError(format!("certificate and key: {e}")))?
        }
        _ => builder()?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| TlsError(format!("certificate and key: {e}")))?,
    };
    // The gRPC port: the API port's certificate and client authentication, and ALPN
    // `h2`, without which gRPC clients refuse the connection.
    let mut grpc = api.clone();
    grpc.alpn_protocols = vec![b"h2".to_vec()];
    Ok((Arc::new(api), Arc::new(ops), Arc::new(grpc)))
}

impl TlsSource {
    /// Loads the files named in `config`.
    pub fn load(config: &TlsConfig) -> Result<Arc<Self>, TlsError> {
        let stamp = stamp(config);
        let (api, ops, grpc) = build(config)?;
        Ok(Arc::new(Self {
            config: config.clone(),
            current: RwLock::new(Current {
                api,
                ops,
                grpc,
                stamp,
            }),
        }))
    }

    /// The configuration a new API connection's handshake uses.
    pub fn api(&self) -> Arc<ServerConfig> {
        self.read().api.clone()
    }

    /// The configuration a new operations connection's handshake uses.
    pub fn ops(&self) -> Arc<ServerConfig> {
        self.read().ops.clone()
    }

    /// The configuration a new gRPC connection's handshake uses.
    pub fn grpc(&self) -> Arc<ServerConfig> {
        self.read().grpc.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the files again and, if they make a valid configuration, uses it for the
    /// next connections. `force`: even if the files look unchanged (SIGHUP).
    pub fn reload(&self, force: bool) {
        let stamp = stamp(&self.config);
        if !force && stamp == self.read().stamp {
            return;
        }
        match build(&self.config) {
            Ok((api, ops, grpc)) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Current {
                    api,
                    ops,
                    grpc,
                    stamp,
                };
                metrics::counter!("kms_tls_reloads_total", "outcome" => "ok").increment(1);
                tracing::info!("tls certificate reloaded");
            }
            Err(error) => {
                // Remember the stamp so a bad file is reported once, not every tick.
                self.current
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .stamp = stamp;
                metrics::counter!("kms_tls_reloads_total", "outcome" => "failed").increment(1);
                tracing::error!(%error, "tls reload failed; the previous certificate stays");
            }
        }
    }

    /// Reloads on `SIGHUP` and when the files change, until `stop` changes.
    pub async fn watch(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let signal = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tick.tick() => self.reload(false),
                Some(()) = signal => self.reload(true),
                _ = stop.changed() => break,
            }
        }
    }
}
