//! `coffer backup restore` and `coffer backup verify --config`: opening a bundle with
//! this deployment's custody, outside any server, and writing it into an empty store.
//!
//! Restore runs offline: a store that is empty has no token root key, so no server can
//! run on it and no token could authorise the call. The process opens custody as the
//! configuration names it (the state file and unseal key or passphrase, Shamir share
//! files, or the PKCS#11 token), and the store at `database_url`, which must hold no
//! rows. Every check that needs no custody runs before custody or the store is touched.

use std::path::PathBuf;
use std::sync::Arc;

use coffer_core::backup::Snapshot;
use coffer_core::backup::bundle::{self, BundleError, BundleHeader};
use coffer_core::{SealStatus, Store, StoreError};
use coffer_custody_sealed::Passphrase;
use coffer_store_sql::SqlStore;
use thiserror::Error;

use crate::config::{Config, CustodyConfig};
use crate::custody::ServerCustody;
use crate::startup::{self, StartError};

/// Why a restore (or a verification with custody) was refused. Nothing was written.
#[derive(Debug, Error)]
pub enum RestoreError {
    /// The bundle failed a check.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// Custody could not be opened or unsealed.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The store refused: not empty, or a schema that cannot hold the bundle.
    #[error("restore refused: {0}")]
    Store(StoreError),
}

/// How to unseal sealed custody for the tool (key-file custody needs nothing; a
/// passphrase file in the configuration is used when none is given here).
#[derive(Default)]
pub struct ToolUnseal {
    /// A file (mode 0600) holding the passphrase.
    pub passphrase_file: Option<PathBuf>,
    /// Files each holding one Shamir share.
    pub share_files: Vec<PathBuf>,
}

/// Opens and unseals this deployment's custody.
pub async fn unsealed_custody(
    config: &Config,
    unseal: &ToolUnseal,
) -> Result<ServerCustody, StartError> {
    let custody = startup::open_custody(config).await?;
    let Some(sealed) = custody.sealed() else {
        return Ok(custody);
    };
    match (&config.custody, &unseal.passphrase_file) {
        (CustodyConfig::Passphrase { .. }, Some(file)) => {
            let passphrase = Passphrase::new(startup::read_secret_file(file)?);
            let sealed = sealed.clone();
            tokio::task::spawn_blocking(move || sealed.unseal_passphrase(&passphrase))
                .await
                .map_err(|e| StartError::Io(e.to_string()))??;
        }
        (CustodyConfig::Shamir { .. }, _) => {
            for file in &unseal.share_files {
                let share = zeroize::Zeroizing::new(startup::read_secret_file(file)?);
                sealed.submit_share(share.as_str())?;
            }
        }
        _ => startup::unseal_at_start(config, sealed).await?,
    }
    if custody.status() != SealStatus::Unsealed {
        return Err(StartError::Io(
            "custody is still sealed: give --passphrase-file (passphrase custody) or enough --share-file (Shamir custody)"
                .into(),
        ));
    }
    Ok(custody)
}

/// Every check of `bytes`, with this deployment's custody: structure, trailer, the
/// data key unwrapping under custody, the MAC, the snapshot's structure.
pub async fn open_bundle(
    config: &Config,
    unseal: &ToolUnseal,
    bytes: &[u8],
) -> Result<(BundleHeader, Snapshot), RestoreError> {
    bundle::inspect(bytes)?;
    let custody = unsealed_custody(config, unseal).await?;
    Ok(bundle::open(bytes, custody.as_dyn().as_ref())?)
}

/// Restores `bytes` into the configured store, which must be empty. The server's next
/// start runs the known-answer checks before it reports ready.
pub async fn restore(
    config: &Config,
    unseal: &ToolUnseal,
    bytes: &[u8],
) -> Result<BundleHeader, RestoreError> {
    let (header, snapshot) = open_bundle(config, unseal, bytes).await?;
    startup::ensure_dir(&config.data_dir)?;
    let store: Arc<dyn Store> = Arc::new(
        SqlStore::connect(&config.database_url)
            .await
            .map_err(StartError::Store)?,
    );
    store
        .restore(&snapshot)
        .await
        .map_err(RestoreError::Store)?;
    Ok(header)
}
