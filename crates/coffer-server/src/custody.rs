//! The custody a server runs with: sealed (a state file, unsealed by shares, passphrase
//! or key file) or PKCS#11 (the root in an HSM token). The service sees only the
//! `Custody` trait; unseal and health need the concrete kind.

use std::sync::Arc;

use coffer_api::admin::{CustodyView, Pkcs11View, RootKeyView, SessionPoolView};
use coffer_core::{Custody, KeyHsm, SealStatus};
use coffer_custody_pkcs11::Pkcs11Custody;
use coffer_custody_sealed::SealedCustody;

use crate::config::Failover;

/// Custody, by kind.
#[derive(Clone)]
pub enum ServerCustody {
    /// Sealed custody.
    Sealed(Arc<SealedCustody>),
    /// PKCS#11 custody, and what to serve while its token is away.
    Pkcs11(Arc<Pkcs11Custody>, Failover),
}

impl ServerCustody {
    /// The custody as the service uses it.
    pub fn as_dyn(&self) -> Arc<dyn Custody> {
        match self {
            Self::Sealed(c) => c.clone(),
            Self::Pkcs11(c, _) => c.clone(),
        }
    }

    /// The HSM that holds HSM-resident keys: the custody's token under PKCS#11 custody,
    /// none under sealed custody (`protection = hsm` is then refused).
    pub fn key_hsm(&self) -> Option<Arc<dyn KeyHsm>> {
        match self {
            Self::Sealed(_) => None,
            Self::Pkcs11(c, _) => Some(c.clone()),
        }
    }

    /// True when the server may start while the token is away (`custody.failover =
    /// "verify-only"`): it listens, not ready, and loads its secrets once the token is
    /// back. Without that policy a start without the token fails, for the supervisor to
    /// retry.
    pub fn starts_without_token(&self) -> bool {
        matches!(self, Self::Pkcs11(_, Failover::VerifyOnly))
    }

    /// False while the failover policy refuses secret-key operations: the token is
    /// away and `custody.failover = "verify-only"`.
    pub fn serves_secret_operations(&self) -> bool {
        match self {
            Self::Sealed(_) | Self::Pkcs11(_, Failover::None) => true,
            Self::Pkcs11(custody, Failover::VerifyOnly) => custody.is_up(),
        }
    }

    /// The seal status.
    pub fn status(&self) -> SealStatus {
        self.as_dyn().status()
    }

    /// Sealed custody, for unseal.
    pub fn sealed(&self) -> Option<&Arc<SealedCustody>> {
        match self {
            Self::Sealed(c) => Some(c),
            Self::Pkcs11(..) => None,
        }
    }
}

impl ServerCustody {
    /// What `GET /custody` answers.
    pub fn view(&self) -> CustodyView {
        let Self::Pkcs11(custody, failover) = self else {
            return CustodyView {
                kind: "sealed".into(),
                available: true,
                pkcs11: None,
            };
        };
        let health = custody.health();
        CustodyView {
            kind: "pkcs11".into(),
            available: health.up,
            pkcs11: Some(Pkcs11View {
                module: health.module,
                token: health.token,
                slot: health.slot,
                token_label: health.token_label,
                reason: health.reason,
                reconnects: health.reconnects,
                root_keys: health
                    .roots
                    .into_iter()
                    .map(|(generation, handle)| RootKeyView { generation, handle })
                    .collect(),
                pool: health.pool.map(|p| SessionPoolView {
                    open: p.open,
                    idle: p.idle,
                    max: p.max,
                }),
                failover: match failover {
                    Failover::None => "none",
                    Failover::VerifyOnly => "verify-only",
                }
                .into(),
            }),
        }
    }
}
