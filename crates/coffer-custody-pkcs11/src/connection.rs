//! One live attachment to the token: its slot, the root generations' handles and the
//! session pool. A connection that failed is dropped whole and a new one opened.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

use cryptoki::error::{Error, RvError};
use cryptoki::object::ObjectHandle;
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use crate::config::{Pin, Pkcs11Config, TokenSelector};
use crate::error::Pkcs11Error;
use crate::module::{self, Context};
use crate::pool::{Lent, SessionPool};
use crate::roots;

pub(crate) struct Connection {
    pub(crate) context: Context,
    pub(crate) slot: Slot,
    pub(crate) token_label: String,
    pub(crate) roots: RwLock<BTreeMap<u32, ObjectHandle>>,
    pub(crate) pool: SessionPool,
    pin: Pin,
}

/// True when `error` says the token, slot or session is gone (as opposed to a refused
/// operation): the connection is then dropped and rebuilt.
pub(crate) fn is_link_error(error: &Error) -> bool {
    match error {
        Error::Pkcs11(rv, _) => matches!(
            rv,
            RvError::DeviceError
                | RvError::DeviceRemoved
                | RvError::DeviceMemory
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::SessionClosed
                | RvError::SessionHandleInvalid
                | RvError::SlotIdInvalid
                | RvError::CryptokiNotInitialized
                | RvError::UserNotLoggedIn
                | RvError::KeyHandleInvalid
                | RvError::ObjectHandleInvalid
        ),
        Error::LibraryLoading(_) | Error::NotSupported => true,
        _ => false,
    }
}

/// Why a connection attempt failed, told apart for the caller: a missing token is
/// worth retrying, a refused PIN or a missing root key is not.
fn call(error: Error) -> Pkcs11Error {
    if is_link_error(&error) {
        Pkcs11Error::Unavailable(error.to_string())
    } else {
        Pkcs11Error::Call(error.to_string())
    }
}

fn find_slot(
    pkcs11: &cryptoki::context::Pkcs11,
    token: &TokenSelector,
) -> Result<Slot, Pkcs11Error> {
    for slot in pkcs11.get_slots_with_token().map_err(call)? {
        let found = match token {
            TokenSelector::Slot(id) => slot.id() == *id,
            TokenSelector::Label(label) => pkcs11
                .get_token_info(slot)
                .map(|info| info.label().trim_end() == label)
                .unwrap_or(false),
        };
        if found {
            return Ok(slot);
        }
    }
    Err(Pkcs11Error::TokenNotFound(token.to_string()))
}

impl Connection {
    /// Finds the token, logs in and reads the root generations.
    pub(crate) fn open(config: &Pkcs11Config) -> Result<Self, Pkcs11Error> {
        let context = module::context(&config.module)?;
        let slot = find_slot(&context.pkcs11, &config.token)?;
        let token_label = context
            .pkcs11
            .get_token_info(slot)
            .map_err(call)?
            .label()
            .trim_end()
            .to_owned();
        let first = open_session(&context, slot, &config.pin)?;
        let roots = roots::find(&first, &config.key_label).map_err(call)?;
        Ok(Self {
            pool: SessionPool::new(first, config.pool_size),
            context,
            slot,
            token_label,
            roots: RwLock::new(roots),
            pin: config.pin.clone(),
        })
    }

    /// A session from the pool, opening one if under the bound.
    pub(crate) fn session(&self, config: &Pkcs11Config) -> Result<Lent<'_>, Pkcs11Error> {
        self.pool.acquire(config.acquire_timeout, || {
            open_session(&self.context, self.slot, &self.pin)
        })
    }

    pub(crate) fn roots(&self) -> BTreeMap<u32, ObjectHandle> {
        self.roots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn current(&self) -> Option<(u32, ObjectHandle)> {
        self.roots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .last_key_value()
            .map(|(g, h)| (*g, *h))
    }
}

/// A read-write session, logged in as the user. Login is per token and application:
/// once one session logged in, later ones are told so, which is fine.
fn open_session(context: &Context, slot: Slot, pin: &Pin) -> Result<Session, Pkcs11Error> {
    let session = context.pkcs11.open_rw_session(slot).map_err(call)?;
    let auth = AuthPin::new(pin.expose().to_owned());
    match session.login(UserType::User, Some(&auth)) {
        Ok(()) | Err(Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
        Err(Error::Pkcs11(
            rv @ (RvError::PinIncorrect
            | RvError::PinLocked
            | RvError::PinExpired
            | RvError::PinInvalid
            | RvError::PinLenRange),
            _,
        )) => Err(Pkcs11Error::Login(rv.to_string())),
        Err(other) => Err(call(other)),
    }
}
