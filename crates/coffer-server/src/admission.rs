//! Admission: in-flight caps per operation class, with a floor for every active tenant.
//!
//! Each class (sign, verify, wrap, admin) has `max_inflight_<class>` slots. A request
//! takes one after authentication (which is memory only) and before its body is read,
//! its key loaded or any crypto run, and holds it until its answer is built; a request
//! that finds no slot it may take is answered at once and does no work:
//!
//! - `503 unavailable` + `Retry-After` (reason `backpressure`) when the class is full
//!   and the caller holds no more than its fair share (the server is saturated);
//! - `429 too_many_requests` + `Retry-After` (reason `tenant_share`) when the caller
//!   holds at least its fair share (`max_inflight / active tenants`, at least the
//!   floor) while other tenants are active.
//!
//! Fair share (`tenant_share_min`): every tenant active in a class (a request in
//! flight, or one admitted or refused within the last [`ACTIVE_WINDOW`]) is guaranteed
//! `floor = ceil(tenant_share_min × max_inflight)` slots (at least one). The slots
//! other active tenants hold below their floor are reserved for them: a tenant may take
//! a slot only if one stays free for each of those. So a tenant flooding a class can
//! fill it only up to what the quiet tenants' floors leave, and a quiet tenant's
//! request finds its slot even while the class is full. When the floors of all active
//! tenants add up to more than the class has, a tenant below its floor may still take
//! any free slot (first come), and tenants at or over it wait.
//!
//! One mutex per class guards the counts; the work under it is one pass over the
//! class's active tenants (`O(active tenants)`, a few hundred nanoseconds for dozens).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use coffer_api::ErrorCode;
use coffer_core::TenantId;

use crate::error::ApiError;

/// How long a tenant counts as active in a class after its last request there. A
/// tenant sending one request at a time has none in flight between two of them; this
/// keeps its floor reserved across that gap.
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(1);

/// What a shed caller is told to wait (whole seconds; a slot frees in milliseconds).
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// An operation class, each with its own cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// sign, mac.
    Sign,
    /// verify, verify-mac.
    Verify,
    /// wrap, unwrap, datakey, rewrap, encrypt, decrypt.
    Wrap,
    /// Key management, tenants, tokens, rotations, audit reads.
    Admin,
}

impl Class {
    /// Every class, in config order.
    pub const ALL: [Class; 4] = [Class::Sign, Class::Verify, Class::Wrap, Class::Admin];

    /// The metric label and config suffix (`max_inflight_<name>`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Class::Sign => "sign",
            Class::Verify => "verify",
            Class::Wrap => "wrap",
            Class::Admin => "admin",
        }
    }

    const fn index(self) -> usize {
        match self {
            Class::Sign => 0,
            Class::Verify => 1,
            Class::Wrap => 2,
            Class::Admin => 3,
        }
    }
}

/// Why a request was shed (the `reason` label of `kms_reject_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// The class is full and the caller is within its share.
    Backpressure,
    /// The caller holds its fair share or more while others wait.
    TenantShare,
}

impl Shed {
    /// The `reason` label.
    pub const fn reason(self) -> &'static str {
        match self {
            Shed::Backpressure => "backpressure",
            Shed::TenantShare => "tenant_share",
        }
    }
}

/// Whose slots: a tenant, or the operators (admin tokens), who count as one tenant.
type Holder = Option<TenantId>;

#[derive(Debug)]
struct Use {
    inflight: usize,
    last_seen: Instant,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    holders: HashMap<Holder, Use>,
}

#[derive(Debug)]
struct Gate {
    class: Class,
    cap: usize,
    floor: usize,
    counts: Mutex<Counts>,
}

/// The caps of every class.
#[derive(Debug)]
pub struct Admission {
    gates: [Arc<Gate>; 4],
}

/// A taken slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    gate: Arc<Gate>,
    holder: Holder,
}

impl Admission {
    /// `caps[class]` slots per class, each active tenant guaranteed `share_min` of them
    /// (rounded up, at least one).
    pub fn new(caps: [usize; 4], share_min: f64) -> Self {
        let gates = Class::ALL.map(|class| {
            let cap = caps[class.index()].max(1);
            // `share_min` is validated to (0, 1]; the product is at most `cap`.
            let floor = ((share_min * cap as f64).ceil() as usize).clamp(1, cap);
            metrics::gauge!("kms_inflight_max", "class" => class.as_str()).set(cap as f64);
            metrics::gauge!("kms_inflight", "class" => class.as_str()).set(0.0);
            Arc::new(Gate {
                class,
                cap,
                floor,
                counts: Mutex::new(Counts::default()),
            })
        });
        Self { gates }
    }

    /// Sets `kms_inflight{class}` and `kms_inflight_max{class}` (at each scrape).
    pub fn report(&self) {
        for gate in &self.gates {
            let class = gate.class.as_str();
            metrics::gauge!("kms_inflight_max", "class" => class).set(gate.cap as f64);
            metrics::gauge!("kms_inflight", "class" => class).set(gate.lock().total as f64);
        }
    }

    /// The cap of `class`.
    pub fn cap(&self, class: Class) -> usize {
        self.gates[class.index()].cap
    }

    /// The slots guaranteed to each active tenant in `class`.
    pub fn floor(&self, class: Class) -> usize {
        self.gates[class.index()].floor
    }

    /// Requests of `class` in flight.
    pub fn inflight(&self, class: Class) -> usize {
        self.gates[class.index()].lock().total
    }

    /// Takes a slot of `class` for `tenant`, or says why not.
    pub fn admit(&self, class: Class, tenant: Holder) -> Result<Slot, Shed> {
        self.admit_at(class, tenant, Instant::now())
    }

    fn admit_at(&self, class: Class, tenant: Holder, now: Instant) -> Result<Slot, Shed> {
        let gate = &self.gates[class.index()];
        let mut counts = gate.lock();
        counts.holders.retain(|_, u| {
            u.inflight > 0 || now.saturating_duration_since(u.last_seen) < ACTIVE_WINDOW
        });
        let mut reserved_for_others = 0usize;
        let mut others = 0usize;
        for (holder, used) in &counts.holders {
            if *holder != tenant {
                others += 1;
                reserved_for_others += gate.floor.saturating_sub(used.inflight);
            }
        }
        let free = gate.cap.saturating_sub(counts.total);
        let own = counts.holders.get(&tenant).map_or(0, |u| u.inflight);
        let admitted = free > 0 && (free > reserved_for_others || own < gate.floor);
        let entry = counts.holders.entry(tenant).or_insert(Use {
            inflight: 0,
            last_seen: now,
        });
        entry.last_seen = now;
        if !admitted {
            let fair = (gate.cap / (others + 1)).max(gate.floor);
            return Err(if others > 0 && own >= fair {
                Shed::TenantShare
            } else {
                Shed::Backpressure
            });
        }
        // `kms_inflight` is set from the counts at each scrape (`report`), not here: a
        // labelled gauge's lookup per request cost about 0.7 % of a wrap's CPU.
        entry.inflight += 1;
        counts.total += 1;
        Ok(Slot {
            gate: gate.clone(),
            holder: tenant,
        })
    }
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts stay consistent under a panic elsewhere (each update is whole).
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.gate.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(used) = counts.holders.get_mut(&self.holder) {
            used.inflight = used.inflight.saturating_sub(1);
            used.last_seen = Instant::now();
        }
    }
}

/// The answer to a shed request: counted, with `Retry-After`, and labelled so
/// `rejected_total` shows the reason rather than the bare code.
pub fn refusal(class: Class, shed: Shed) -> ApiError {
    coffer_core::kms::count_reject(shed.reason());
    let (code, message) = match shed {
        Shed::Backpressure => (
            ErrorCode::Unavailable,
            format!(
                "the server is at its limit of {} requests in flight; retry later",
                class.as_str()
            ),
        ),
        Shed::TenantShare => (
            ErrorCode::TooManyRequests,
            format!(
                "this tenant holds its share of {} requests in flight; retry later",
                class.as_str()
            ),
        ),
    };
    ApiError {
        retry_after: Some(RETRY_AFTER),
        reason: Some(shed.reason()),
        ..ApiError::new(code, message)
    }
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
