//! [`Pkcs11Custody`]: connecting, reconnecting, and the `Custody` impl.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use coffer_core::{Custody, CustodyError, SealStatus};
use coffer_crypto::SecretBytes;

use crate::config::Pkcs11Config;
use crate::connection::{Connection, is_link_error};
use crate::error::Pkcs11Error;
use crate::link::{Link, backoff};
use crate::pool::{Lent, PoolStats};
use crate::{module, roots};

/// What `coffer doctor` and `/readyz` are told about the token.
#[derive(Debug, Clone)]
pub struct CustodyHealth {
    /// The module's path.
    pub module: String,
    /// The configured token (label or slot).
    pub token: String,
    /// The slot the token was found in, while connected.
    pub slot: Option<u64>,
    /// The token's label, while connected.
    pub token_label: Option<String>,
    /// Connected.
    pub up: bool,
    /// Why not, when down.
    pub reason: Option<String>,
    /// Reconnect attempts since start.
    pub reconnects: u64,
    /// Root generations and their object handles, while connected.
    pub roots: Vec<(u32, u64)>,
    /// The session pool, while connected.
    pub pool: Option<PoolStats>,
}

/// Custody whose root keys are AES keys inside a PKCS#11 token.
pub struct Pkcs11Custody {
    config: Pkcs11Config,
    link: RwLock<Link>,
    /// The last generation seen current, kept while the token is away so
    /// `needs_rewrap` still answers.
    current: AtomicU32,
    reconnects: AtomicU64,
}

impl std::fmt::Debug for Pkcs11Custody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Custody")
            .field("module", &self.config.module)
            .field("token", &self.config.token)
            .field("key_label", &self.config.key_label)
            .finish_non_exhaustive()
    }
}

/// Runs a blocking token call without stalling an async runtime's worker: on a
/// multi-threaded Tokio runtime the worker hands its other tasks off first.
fn blocking<T>(call: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(call)
        }
        _ => call(),
    }
}

impl Pkcs11Custody {
    /// Creates root generation 1 in the token. Fails if the token already holds a root
    /// under the label.
    pub fn init(config: Pkcs11Config) -> Result<Arc<Self>, Pkcs11Error> {
        let connection = Connection::open(&config)?;
        if !connection.roots().is_empty() {
            return Err(Pkcs11Error::RootKeyExists(config.key_label.clone()));
        }
        {
            let lent = connection.session(&config)?;
            let handle = roots::generate(lent.session(), &config.key_label, 1)
                .map_err(|e| Pkcs11Error::Call(e.to_string()))?;
            connection
                .roots
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(1, handle);
        }
        Ok(Self::start(config, connection))
    }

    /// Connects to a token that holds a root. A token that is absent or unreachable is
    /// not fatal: the custody starts down and reconnects in the background. A refused
    /// PIN, a missing root key or a module that does not load are.
    pub fn open(config: Pkcs11Config) -> Result<Arc<Self>, Pkcs11Error> {
        match Connection::open(&config) {
            Ok(connection) if connection.roots().is_empty() => {
                Err(Pkcs11Error::NoRootKey(config.key_label.clone()))
            }
            Ok(connection) => Ok(Self::start(config, connection)),
            Err(error @ (Pkcs11Error::Unavailable(_) | Pkcs11Error::TokenNotFound(_))) => {
                tracing::warn!(%error, "the HSM is unavailable at start; reconnecting");
                let custody = Arc::new(Self {
                    link: RwLock::new(Link::Down {
                        reason: error.to_string(),
                        failures: 1,
                        retry_at: Instant::now() + config.backoff_min,
                    }),
                    config,
                    current: AtomicU32::new(0),
                    reconnects: AtomicU64::new(0),
                });
                metrics::gauge!("backend_up", "backend" => "pkcs11").set(0.0);
                spawn_watchdog(&custody);
                Ok(custody)
            }
            Err(other) => Err(other),
        }
    }

    fn start(config: Pkcs11Config, connection: Connection) -> Arc<Self> {
        let current = connection.current().map_or(0, |(g, _)| g);
        let custody = Arc::new(Self {
            config,
            link: RwLock::new(Link::Up(Arc::new(connection))),
            current: AtomicU32::new(current),
            reconnects: AtomicU64::new(0),
        });
        metrics::gauge!("backend_up", "backend" => "pkcs11").set(1.0);
        spawn_watchdog(&custody);
        custody
    }

    /// True while the token is reachable.
    pub fn is_up(&self) -> bool {
        matches!(
            *self.link.read().unwrap_or_else(PoisonError::into_inner),
            Link::Up(_)
        )
    }

    /// The token's state, for `coffer doctor` and readiness.
    pub fn health(&self) -> CustodyHealth {
        let link = self.link.read().unwrap_or_else(PoisonError::into_inner);
        let mut health = CustodyHealth {
            module: self.config.module.display().to_string(),
            token: self.config.token.to_string(),
            slot: None,
            token_label: None,
            up: false,
            reason: None,
            reconnects: self.reconnects.load(Ordering::Relaxed),
            roots: Vec::new(),
            pool: None,
        };
        match &*link {
            Link::Up(connection) => {
                health.up = true;
                health.slot = Some(connection.slot.id());
                health.token_label = Some(connection.token_label.clone());
                health.roots = connection
                    .roots()
                    .into_iter()
                    .map(|(g, h)| (g, h.to_string().parse().unwrap_or_default()))
                    .collect();
                health.pool = Some(connection.pool.stats());
            }
            Link::Down { reason, .. } => health.reason = Some(reason.clone()),
        }
        health
    }

    /// The live connection, or a reconnect if one is due; fails fast while backing off.
    fn connection(&self) -> Result<Arc<Connection>, Pkcs11Error> {
        {
            let link = self.link.read().unwrap_or_else(PoisonError::into_inner);
            match &*link {
                Link::Up(connection) => return Ok(connection.clone()),
                Link::Down {
                    reason, retry_at, ..
                } if Instant::now() < *retry_at => {
                    return Err(Pkcs11Error::Unavailable(reason.clone()));
                }
                Link::Down { .. } => {}
            }
        }
        self.reconnect()
    }

    /// One reconnect attempt (callers that lose the race use the winner's result).
    fn reconnect(&self) -> Result<Arc<Connection>, Pkcs11Error> {
        let mut link = self.link.write().unwrap_or_else(PoisonError::into_inner);
        let failures = match &*link {
            Link::Up(connection) => return Ok(connection.clone()),
            Link::Down {
                reason, retry_at, ..
            } if Instant::now() < *retry_at => {
                return Err(Pkcs11Error::Unavailable(reason.clone()));
            }
            Link::Down { failures, .. } => *failures,
        };
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("backend_reconnects_total", "backend" => "pkcs11").increment(1);
        match Connection::open(&self.config) {
            Ok(connection) => {
                let connection = Arc::new(connection);
                if let Some((generation, _)) = connection.current() {
                    self.current.store(generation, Ordering::Relaxed);
                }
                tracing::info!(token = %self.config.token, "reconnected to the HSM");
                metrics::gauge!("backend_up", "backend" => "pkcs11").set(1.0);
                *link = Link::Up(connection.clone());
                Ok(connection)
            }
            Err(error) => {
                let failures = failures.saturating_add(1);
                let delay = backoff(failures, self.config.backoff_min, self.config.backoff_max);
                tracing::warn!(%error, ?delay, "HSM reconnect failed");
                module::forget(&self.config.module);
                *link = Link::Down {
                    reason: error.to_string(),
                    failures,
                    retry_at: Instant::now() + delay,
                };
                Err(Pkcs11Error::Unavailable(error.to_string()))
            }
        }
    }

    /// Drops `failed` (if it is still the live connection): its idle sessions close,
    /// the module is reloaded so it looks for the token again, and the next call after
    /// the backoff reconnects.
    fn mark_down(&self, failed: &Arc<Connection>, reason: String) {
        let mut link = self.link.write().unwrap_or_else(PoisonError::into_inner);
        if let Link::Up(live) = &*link {
            if !Arc::ptr_eq(live, failed) {
                return;
            }
            tracing::warn!(reason = %reason, "lost the HSM connection");
            metrics::gauge!("backend_up", "backend" => "pkcs11").set(0.0);
            live.pool.drain();
            module::reload(&self.config.module, live.context.load);
            *link = Link::Down {
                reason,
                failures: 1,
                retry_at: Instant::now()
                    + backoff(1, self.config.backoff_min, self.config.backoff_max),
            };
        }
    }

    /// Runs `op` on a pooled session; a link failure drops the connection.
    pub(crate) fn with_session<T>(
        &self,
        op: impl FnOnce(&Connection, &Lent<'_>) -> Result<T, cryptoki::error::Error>,
    ) -> Result<T, Pkcs11Error> {
        blocking(|| {
            let connection = self.connection()?;
            let mut lent = connection.session(&self.config)?;
            match op(&connection, &lent) {
                Ok(value) => Ok(value),
                Err(error) if is_link_error(&error) => {
                    lent.discard();
                    drop(lent);
                    self.mark_down(&connection, error.to_string());
                    Err(Pkcs11Error::Unavailable(error.to_string()))
                }
                Err(error) => Err(Pkcs11Error::Call(error.to_string())),
            }
        })
    }

    /// A liveness check that reaches the token itself: the current root key seals an
    /// empty value. (Asking for session or token info is not enough: a module may
    /// answer those from memory after the token is gone.)
    pub fn probe(&self) -> bool {
        let result = self.with_session(|connection, lent| {
            let (generation, key) = connection.current().ok_or(missing_root())?;
            roots::seal(lent.session(), key, generation, b"probe", b"").map(|_| ())
        });
        result.is_ok()
    }
}

/// The error a connection without a root answers with: treated as a lost link, since
/// a token that had a root at connect time and has none now was swapped or wiped.
fn missing_root() -> cryptoki::error::Error {
    cryptoki::error::Error::Pkcs11(
        cryptoki::error::RvError::KeyHandleInvalid,
        cryptoki::context::Function::Encrypt,
    )
}

/// Checks the token every 250 ms while this custody lives: a lost token is noticed
/// (and `/readyz` turns) without waiting for traffic, and one that came back is
/// reconnected once the backoff allows.
fn spawn_watchdog(custody: &Arc<Pkcs11Custody>) {
    let weak: Weak<Pkcs11Custody> = Arc::downgrade(custody);
    let spawned = std::thread::Builder::new()
        .name("coffer-hsm-watchdog".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(250));
                let Some(custody) = weak.upgrade() else {
                    return;
                };
                custody.probe();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the HSM watchdog; reconnects follow traffic only");
    }
}

impl Custody for Pkcs11Custody {
    fn kind(&self) -> &'static str {
        "pkcs11"
    }

    fn status(&self) -> SealStatus {
        // The token holds the root; there is nothing to unseal. Reachability is
        // reported by `available`.
        SealStatus::Unsealed
    }

    fn available(&self) -> bool {
        self.is_up()
    }

    fn wrap(&self, aad: &[u8], secret: &[u8]) -> Result<Vec<u8>, CustodyError> {
        Ok(self.with_session(|connection, lent| {
            let (generation, key) = connection.current().ok_or(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::KeyHandleInvalid,
                cryptoki::context::Function::Encrypt,
            ))?;
            roots::seal(lent.session(), key, generation, aad, secret)
        })?)
    }

    fn unwrap(&self, aad: &[u8], wrapped: &[u8]) -> Result<SecretBytes, CustodyError> {
        if wrapped.len() < roots::MIN_WRAPPED {
            return Err(CustodyError::Unwrap("too short"));
        }
        let generation = roots::generation_of(wrapped).unwrap_or_default();
        let result = self.with_session(|connection, lent| {
            let Some(key) = connection.roots().get(&generation).copied() else {
                return Ok(None);
            };
            roots::open(lent.session(), key, aad, wrapped).map(Some)
        });
        match result {
            Ok(Some(secret)) => Ok(secret),
            Ok(None) => Err(CustodyError::Unwrap("unknown root generation")),
            // The token refused to open it: a wrong tag, associated data or length.
            Err(Pkcs11Error::Call(_)) => Err(CustodyError::Unwrap("authentication failed")),
            Err(other) => Err(other.into()),
        }
    }

    fn needs_rewrap(&self, wrapped: &[u8]) -> bool {
        roots::generation_of(wrapped).is_some_and(|g| g != self.current.load(Ordering::Relaxed))
    }

    fn rotate_root(&self) -> Result<u32, CustodyError> {
        let generation = self.with_session(|connection, lent| {
            let mut roots = connection
                .roots
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let next = roots.last_key_value().map_or(1, |(g, _)| g + 1);
            let handle = roots::generate(lent.session(), &self.config.key_label, next)?;
            roots.insert(next, handle);
            Ok(next)
        })?;
        self.current.store(generation, Ordering::Relaxed);
        Ok(generation)
    }

    fn retire_old_roots(&self) -> Result<(), CustodyError> {
        Ok(self.with_session(|connection, lent| {
            let mut roots = connection
                .roots
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let Some(current) = roots.last_key_value().map(|(g, _)| *g) else {
                return Ok(());
            };
            let old: Vec<u32> = roots.keys().copied().filter(|g| *g != current).collect();
            for generation in old {
                if let Some(handle) = roots.get(&generation).copied() {
                    lent.session().destroy_object(handle)?;
                    roots.remove(&generation);
                }
            }
            Ok(())
        })?)
    }
}
