//! Pages for raw keys, locked in memory where the OS allows, so they are never written
//! to swap.
//!
//! Every [`super::SecretArray`] (raw AES and HMAC keys, Ed25519 and ML-DSA seeds, the
//! XAES subkey: so the unsealed root keys, tenant keys and the key cache's raw
//! material) lives in a 64-byte slot of a page mapped for secrets alone and locked
//! with `mlock`. Pages are never unmapped: `munlock` is per page, not per holder, so a
//! page shared by slots must stay locked as long as any slot could be in use, and the
//! pool only grows to its peak number of live keys (64 per 4 KiB page).
//!
//! When the kernel refuses the lock (`RLIMIT_MEMLOCK` too low, without
//! `CAP_IPC_LOCK`), the page is used unlocked: Coffer keeps serving, and
//! [`locked_memory`] says how many pages are not locked (the server warns once and
//! exports `kms_secret_pages_unlocked`). Not covered: what aws-lc allocates itself
//! (expanded AES schedules, parsed EC and RSA keys) and transient copies on the stack.

#![allow(
    unsafe_code,
    reason = "secret slots in an anonymous locked mapping: mmap, mlock and raw slot access have no safe wrapper"
)]

use std::cell::RefCell;
use std::ptr::{NonNull, null_mut};
use std::sync::Mutex;

use rustix::mm::{MapFlags, ProtFlags, mlock, mmap_anonymous};

/// Bytes per slot: the largest secret array (32-byte keys and seeds) fits with room.
pub(crate) const SLOT: usize = 64;
/// Bytes mapped (and locked) at a time.
const PAGE: usize = 4096;

/// How many pages of secret slots are locked in memory, and how many are not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LockedMemory {
    /// Pages `mlock` accepted.
    pub locked_pages: usize,
    /// Pages used unlocked because `mlock` was refused.
    pub unlocked_pages: usize,
}

/// Locks `len` bytes at `ptr`; false if the OS refuses.
type LockFn = fn(NonNull<u8>, usize) -> bool;

fn os_lock(ptr: NonNull<u8>, len: usize) -> bool {
    // SAFETY: `ptr..ptr+len` is a mapping this pool owns; mlock changes no contents.
    unsafe { mlock(ptr.as_ptr().cast(), len) }.is_ok()
}

pub(crate) struct Pool {
    /// Free slot addresses.
    free: Vec<usize>,
    status: LockedMemory,
    lock: LockFn,
}

impl Pool {
    const fn new(lock: LockFn) -> Self {
        Self {
            free: Vec::new(),
            status: LockedMemory {
                locked_pages: 0,
                unlocked_pages: 0,
            },
            lock,
        }
    }

    fn take(&mut self) -> Option<NonNull<u8>> {
        if self.free.is_empty() {
            self.grow()?;
        }
        self.free
            .pop()
            .and_then(|addr| NonNull::new(addr as *mut u8))
    }

    fn grow(&mut self) -> Option<()> {
        // SAFETY: a fresh private anonymous mapping aliases nothing; the kernel
        // zero-fills it.
        let ptr = unsafe {
            mmap_anonymous(
                null_mut(),
                PAGE,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
        .ok()?;
        let page = NonNull::new(ptr.cast::<u8>())?;
        if (self.lock)(page, PAGE) {
            self.status.locked_pages += 1;
        } else {
            self.status.unlocked_pages += 1;
        }
        let base = page.as_ptr() as usize;
        self.free
            .extend((0..PAGE / SLOT).rev().map(|i| base + i * SLOT));
        Some(())
    }

    fn give_back(&mut self, slot: NonNull<u8>) {
        self.free.push(slot.as_ptr() as usize);
    }
}

static POOL: Mutex<Pool> = Mutex::new(Pool::new(os_lock));

/// Free slots of the process pool kept by this thread: token checks make a short-lived
/// HMAC key per caveat, and a global lock per key would be a point of contention on
/// every request. At most `LOCAL_MAX` are kept; a thread that ends gives its back.
struct LocalSlots(Vec<usize>);

const LOCAL_MAX: usize = 64;
/// Slots moved to a thread at once when its list is empty.
const REFILL: usize = 16;

impl Drop for LocalSlots {
    fn drop(&mut self) {
        pool().free.append(&mut self.0);
    }
}

thread_local! {
    static LOCAL: RefCell<LocalSlots> = const { RefCell::new(LocalSlots(Vec::new())) };
}

/// A slot from this thread's list, refilled from the process pool when empty.
fn take_local() -> Option<NonNull<u8>> {
    let cached = LOCAL
        .try_with(|local| local.borrow_mut().0.pop())
        .ok()
        .flatten();
    if let Some(addr) = cached {
        return NonNull::new(addr as *mut u8);
    }
    let mut shared = pool();
    let slot = shared.take()?;
    let keep = shared.free.len().min(REFILL - 1);
    let start = shared.free.len() - keep;
    let moved: Vec<usize> = shared.free.drain(start..).collect();
    drop(shared);
    if let Err(moved) = LOCAL
        .try_with(|local| local.borrow_mut().0.extend(&moved))
        .map_err(|_| moved)
    {
        // The thread is ending: the slots go back where they came from.
        pool().free.extend(moved);
    }
    Some(slot)
}

/// Gives a slot of the process pool back, to this thread's list while it has room.
fn give_back_local(slot: NonNull<u8>) {
    let kept = LOCAL
        .try_with(|local| {
            let mut local = local.borrow_mut();
            if local.0.len() < LOCAL_MAX {
                local.0.push(slot.as_ptr() as usize);
                true
            } else {
                false
            }
        })
        .unwrap_or(false);
    if !kept {
        pool().give_back(slot);
    }
}

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    // A panic while holding the pool leaves its free list consistent (every update
    // is one push or pop), so a poisoned lock is still usable.
    POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How much of the memory holding raw keys is locked.
pub fn locked_memory() -> LockedMemory {
    pool().status
}

/// One slot of [`SLOT`] bytes, zeroed when taken and wiped when dropped.
pub(crate) struct Slot {
    ptr: NonNull<u8>,
    /// Where it goes back (the process pool, or a test's own).
    home: &'static Mutex<Pool>,
}

// SAFETY: a slot is owned exclusively, like a `Box<[u8; SLOT]>`; the pool it returns to
// is behind a mutex.
unsafe impl Send for Slot {}
// SAFETY: shared access only reads through `&self`.
unsafe impl Sync for Slot {}

impl Slot {
    /// A slot from the process pool; `None` only if no page can be mapped at all.
    pub(crate) fn take() -> Option<Self> {
        let ptr = take_local()?;
        Some(Self { ptr, home: &POOL })
    }

    /// A slot from a pool of the test's own (a lock function it chose).
    #[cfg(test)]
    fn take_from(home: &'static Mutex<Pool>) -> Option<Self> {
        let ptr = home
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()?;
        Some(Self { ptr, home })
    }

    pub(crate) fn bytes(&self) -> &[u8; SLOT] {
        // SAFETY: the slot's SLOT bytes are mapped for the life of the process and
        // this slot is their only owner.
        unsafe { &*self.ptr.as_ptr().cast::<[u8; SLOT]>() }
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8; SLOT] {
        // SAFETY: as in `bytes`, and `&mut self` makes this the only view.
        unsafe { &mut *self.ptr.as_ptr().cast::<[u8; SLOT]>() }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(self.bytes_mut());
        if std::ptr::eq(self.home, &POOL) {
            give_back_local(self.ptr);
        } else {
            self.home
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .give_back(self.ptr);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's own count of this process's locked memory, in KiB.
    fn vm_lck_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmLck:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    #[test]
    fn a_refused_lock_is_reported_and_the_slot_still_works() {
        static REFUSING: Mutex<Pool> = Mutex::new(Pool::new(|_, _| false));
        let mut slot = Slot::take_from(&REFUSING).unwrap();
        slot.bytes_mut()[..4].copy_from_slice(b"key!");
        assert_eq!(&slot.bytes()[..4], b"key!");
        let status = REFUSING.lock().unwrap().status;
        assert_eq!(
            status,
            LockedMemory {
                locked_pages: 0,
                unlocked_pages: 1
            }
        );
        // A slot comes back wiped, and the next one reuses the page.
        drop(slot);
        let again = Slot::take_from(&REFUSING).unwrap();
        assert_eq!(again.bytes(), &[0u8; SLOT]);
        assert_eq!(REFUSING.lock().unwrap().status.unlocked_pages, 1);
    }

    #[test]
    fn process_slots_are_reused_through_the_threads_list_and_come_back_wiped() {
        let mut first = Slot::take().unwrap();
        first.bytes_mut().copy_from_slice(&[0xA5; SLOT]);
        let addr = first.ptr;
        drop(first);
        // The same thread gets the slot it gave back, wiped.
        let again = Slot::take().unwrap();
        assert_eq!(again.ptr, addr);
        assert_eq!(again.bytes(), &[0u8; SLOT]);
        // Slots made on one thread may be dropped on another, and a thread that ends
        // gives its list back: many keys across threads still fit the pool.
        let made: Vec<Slot> =
            std::thread::spawn(|| (0..100).map(|_| Slot::take().unwrap()).collect())
                .join()
                .unwrap();
        drop(made);
        let status = locked_memory();
        assert!(
            status.locked_pages + status.unlocked_pages >= 2,
            "{status:?}"
        );
    }

    #[test]
    fn an_accepted_lock_is_reported_and_the_kernel_agrees() {
        static LOCKING: Mutex<Pool> = Mutex::new(Pool::new(os_lock));
        let before = vm_lck_kib();
        let slots: Vec<Slot> = (0..PAGE / SLOT + 1)
            .map(|_| Slot::take_from(&LOCKING).unwrap())
            .collect();
        let status = LOCKING.lock().unwrap().status;
        assert_eq!(status.locked_pages + status.unlocked_pages, 2);
        // What the pool says is what the kernel counts (other tests may lock pages of
        // their own meanwhile, so at least).
        let grown = vm_lck_kib().saturating_sub(before);
        if status.locked_pages == 2 {
            assert!(grown >= 8, "pool says locked, VmLck grew by {grown} KiB");
        } else {
            assert_eq!(status.locked_pages, 0, "{status:?}");
        }
        drop(slots);
    }
}
