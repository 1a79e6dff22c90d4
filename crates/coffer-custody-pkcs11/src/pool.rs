//! A bounded pool of logged-in sessions: at most `max` open at once, callers wait (up to
//! a timeout) for a free one instead of opening more. PKCS#11 sessions are not `Sync`,
//! so each call borrows one exclusively.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use cryptoki::session::Session;

use crate::error::Pkcs11Error;

/// The pool's counters, for `coffer doctor` and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Sessions open (idle or lent).
    pub open: usize,
    /// Sessions idle in the pool.
    pub idle: usize,
    /// The bound.
    pub max: usize,
}

struct State {
    idle: Vec<Session>,
    open: usize,
}

pub(crate) struct SessionPool {
    state: Mutex<State>,
    freed: Condvar,
    max: usize,
}

impl SessionPool {
    pub(crate) fn new(first: Session, max: usize) -> Self {
        Self {
            state: Mutex::new(State {
                idle: vec![first],
                open: 1,
            }),
            freed: Condvar::new(),
            max: max.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the counters consistent (every update
        // is one statement), so a poisoned pool is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An idle session, a new one from `open` while under the bound, or the first one
    /// freed within `timeout`.
    pub(crate) fn acquire(
        &self,
        timeout: Duration,
        open: impl FnOnce() -> Result<Session, Pkcs11Error>,
    ) -> Result<Lent<'_>, Pkcs11Error> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if let Some(session) = state.idle.pop() {
                return Ok(Lent::new(self, session));
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                return match open() {
                    Ok(session) => Ok(Lent::new(self, session)),
                    Err(error) => {
                        self.forget_one();
                        Err(error)
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Pkcs11Error::PoolExhausted);
            }
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn forget_one(&self) {
        let mut state = self.lock();
        state.open = state.open.saturating_sub(1);
        drop(state);
        self.freed.notify_one();
    }

    /// Closes every idle session (the connection is being dropped).
    pub(crate) fn drain(&self) {
        let idle = std::mem::take(&mut self.lock().idle);
        let mut state = self.lock();
        state.open = state.open.saturating_sub(idle.len());
        drop(state);
        drop(idle);
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let state = self.lock();
        PoolStats {
            open: state.open,
            idle: state.idle.len(),
            max: self.max,
        }
    }
}

/// A session lent by the pool; returned on drop unless marked broken.
pub(crate) struct Lent<'a> {
    pool: &'a SessionPool,
    session: Option<Session>,
    broken: bool,
}

impl<'a> Lent<'a> {
    fn new(pool: &'a SessionPool, session: Session) -> Self {
        Self {
            pool,
            session: Some(session),
            broken: false,
        }
    }

    pub(crate) fn session(&self) -> &Session {
        self.session
            .as_ref()
            .unwrap_or_else(|| unreachable!("taken only on drop"))
    }

    /// The session failed in a way that says it is dead: close it instead of reusing it.
    pub(crate) fn discard(&mut self) {
        self.broken = true;
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        if self.broken {
            drop(session);
            self.pool.forget_one();
        } else {
            self.pool.lock().idle.push(session);
            self.pool.freed.notify_one();
        }
    }
}
