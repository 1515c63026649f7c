//! Who holds which end, per process.
//!
//! Shared memory records, per end, the *processes* holding it (a slot with the packed
//! pid + start time and the number of handles open there). This process keeps, per
//! mapped pipe, its handle counts and slot numbers in [`REG`]. The first handle of an
//! end in a process claims a slot, the last one releases it; when an end's last slot
//! goes (or a dead holder's slot is swept) the end is closed for good and its peer's
//! waiters are woken.
//!
//! **fork.** `pthread_atfork` handlers give a forked child a slot for every end this
//! process held at the fork (with the same handle counts), so a forked child holds
//! what it inherited, exactly like an inherited file descriptor, and closing an end
//! in one process never closes it for the others. The prepare handler (in the parent,
//! before the fork) takes [`REG`]'s lock across the fork and *reserves* one slot per
//! held end under the parent's own id, so the end cannot close while the child starts
//! up; the child handler converts each reservation to the child's id (a CAS). If the
//! fork fails, the parent handler (errno set) releases the reservations. A child
//! killed before its first instruction after `fork` leaves a reservation that keeps
//! the end open until the parent exits. The handler
//! also bumps [`fork_gen`], which makes handles re-create their ring ends (whose lock
//! owner id names the process) on first use in the child.

use crate::error::Result;
use crate::shm::{pack, PipeShm};
use shmkit_segment::shim::atomic::{AtomicU64, Ordering};
use shmkit_segment::shim::pid;
use std::cell::RefCell;
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError, Weak};

/// One mapped pipe in this process.
#[derive(Debug)]
struct Entry {
    pipe: Weak<PipeShm>,
    key: usize,
    /// Our packed holder id in its slots.
    me: u64,
    counts: [u64; 2],
    slots: [Option<usize>; 2],
    /// Slots reserved (owned by us) for the child of the fork in progress.
    forked: [Option<usize>; 2],
    /// In a forked child: the end was held at the fork and no inherited handle of it
    /// has been closed here yet.
    inherited: [bool; 2],
}

/// How a handle being dropped came to this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Made here (or inherited and used here since the last fork: see `activate`).
    Local,
    /// Inherited over fork and used here: closes the inherited hold too.
    Activated,
    /// Inherited over fork and never used here.
    Inherited,
}

/// `Slot::count` of a slot reserved by a parent for its child being forked.
pub(crate) const RESERVED: u64 = u64::MAX;

static REG: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
static FORK_GEN: AtomicU64 = AtomicU64::new(0);
static ATFORK: Once = Once::new();

thread_local! {
    /// The registry lock, held by the forking thread from prepare to parent/child.
    static HELD: RefCell<Option<MutexGuard<'static, Vec<Entry>>>> = const { RefCell::new(None) };
}

fn lock() -> MutexGuard<'static, Vec<Entry>> {
    REG.lock().unwrap_or_else(PoisonError::into_inner)
}

extern "C" fn prepare() {
    let mut g = lock();
    // Reserve, while we still hold every end, one slot per end for the child: a
    // parent that closes its ends right after `fork` must not close them before the
    // child has taken its place (the child converts the reservation to its own id).
    for e in g.iter_mut() {
        e.forked = [None, None];
        let Some(p) = e.pipe.upgrade() else {
            continue;
        };
        for end in 0..2 {
            if e.counts[end] > 0 || e.inherited[end] {
                e.forked[end] = p.claim(end, e.me, RESERVED).ok();
            }
        }
    }
    set_errno(0);
    HELD.with(|h| {
        if let Ok(mut h) = h.try_borrow_mut() {
            *h = Some(g);
        }
    });
}

extern "C" fn parent() {
    // glibc runs the parent handlers also when fork failed, with errno set (we
    // cleared it in `prepare`): then nobody will take the reservations.
    let failed = std::io::Error::last_os_error().raw_os_error().unwrap_or(0) != 0;
    HELD.with(|h| {
        if let Ok(mut h) = h.try_borrow_mut() {
            if let Some(g) = h.as_mut() {
                for e in g.iter_mut() {
                    let forked = std::mem::take(&mut e.forked);
                    if !failed {
                        continue;
                    }
                    if let Some(p) = e.pipe.upgrade() {
                        for (end, s) in forked.iter().enumerate() {
                            if let Some(s) = s {
                                p.release_slot(end, *s, e.me);
                            }
                        }
                    }
                }
            }
            h.take();
        }
    });
}

fn set_errno(v: i32) {
    // SAFETY: __errno_location has no preconditions; it returns this thread's slot.
    let p = unsafe { libc::__errno_location() };
    // SAFETY: `p` points at this thread's errno, valid for writes.
    unsafe { *p = v };
}

extern "C" fn child() {
    // Relaxed: the child has one thread, which reads it later in program order.
    FORK_GEN.fetch_add(1, Ordering::Relaxed);
    let Some(mut g) = HELD.with(|h| h.try_borrow_mut().ok().and_then(|mut h| h.take())) else {
        return;
    };
    let me = pack(pid::current(), pid::current_start_time());
    let mut keep = Vec::new();
    for e in g.iter_mut() {
        let parent_me = std::mem::replace(&mut e.me, me);
        let forked = std::mem::take(&mut e.forked);
        let Some(p) = e.pipe.upgrade() else {
            e.slots = [None, None];
            continue;
        };
        for (end, f) in forked.iter().enumerate() {
            e.slots[end] = match *f {
                Some(s) if p.convert(end, s, parent_me, me, 0) => Some(s),
                _ => None,
            };
            e.inherited[end] = e.slots[end].is_some();
        }
        e.counts = [0, 0];
        keep.push(p);
    }
    drop(g);
    drop(keep);
}

fn ensure_atfork() {
    ATFORK.call_once(|| {
        // SAFETY: registers plain `extern "C"` functions without captured state;
        // pthread_atfork has no other preconditions.
        let _ = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    });
}

/// Incremented in every forked child.
#[inline]
pub(crate) fn fork_gen() -> u64 {
    // Relaxed: see `child`.
    FORK_GEN.load(Ordering::Relaxed)
}

fn key(p: &Arc<PipeShm>) -> usize {
    Arc::as_ptr(p) as usize
}

/// Records that `p` was just created by this process, holding slot 0 of both ends.
pub(crate) fn adopt_created(p: &Arc<PipeShm>) {
    ensure_atfork();
    let me = pack(pid::current(), pid::current_start_time());
    lock().push(Entry {
        pipe: Arc::downgrade(p),
        key: key(p),
        me,
        counts: [0, 0],
        slots: [Some(0), Some(0)],
        forked: [None, None],
        inherited: [false, false],
    });
}

/// One more handle of end `end` of `p` in this process.
///
/// # Errors
/// [`crate::Error::Closed`] if the end was closed everywhere (only when this process
/// does not hold it yet); [`crate::Error::TooManyHolders`].
pub(crate) fn register(p: &Arc<PipeShm>, end: usize) -> Result<()> {
    ensure_atfork();
    let mut g = lock();
    let k = key(p);
    let i = match g.iter().position(|e| e.key == k) {
        Some(i) => i,
        None => {
            g.push(Entry {
                pipe: Arc::downgrade(p),
                key: k,
                me: pack(pid::current(), pid::current_start_time()),
                counts: [0, 0],
                slots: [None, None],
                forked: [None, None],
                inherited: [false, false],
            });
            g.len() - 1
        }
    };
    let e = &mut g[i];
    if e.slots[end].is_none() {
        if !p.end_open(end) {
            if e.counts == [0, 0] && e.slots == [None, None] {
                g.swap_remove(i);
            }
            return Err(crate::Error::Closed);
        }
        match p.claim(end, e.me, 1) {
            Ok(s) => e.slots[end] = Some(s),
            Err(err) => {
                if e.counts == [0, 0] && e.slots == [None, None] {
                    g.swap_remove(i);
                }
                return Err(err);
            }
        }
    }
    e.counts[end] += 1;
    if let Some(s) = e.slots[end] {
        p.set_count(end, s, e.counts[end]);
    }
    Ok(())
}

/// One handle of end `end` of `p` fewer in this process; the last one releases the
/// slot. Closing an inherited handle (used here or not) in a forked child gives up
/// the hold the child inherited, like closing an inherited descriptor.
pub(crate) fn unregister(p: &Arc<PipeShm>, end: usize, origin: Origin) {
    let mut g = lock();
    let k = key(p);
    let Some(i) = g.iter().position(|e| e.key == k) else {
        return;
    };
    let e = &mut g[i];
    if origin != Origin::Inherited {
        e.counts[end] = e.counts[end].saturating_sub(1);
    }
    if origin != Origin::Local {
        e.inherited[end] = false;
    }
    match (e.counts[end], e.inherited[end], e.slots[end]) {
        (0, false, Some(s)) => {
            p.release_slot(end, s, e.me);
            e.slots[end] = None;
        }
        (n, _, Some(s)) => p.set_count(end, s, n),
        _ => {}
    }
    if e.counts == [0, 0] && e.slots == [None, None] {
        g.swap_remove(i);
    }
}

/// An inherited handle of end `end` is used for the first time in this (forked)
/// process: it now counts as one of this process's handles.
///
/// # Errors
/// As [`register`].
pub(crate) fn activate(p: &Arc<PipeShm>, end: usize) -> Result<()> {
    register(p, end)
}

/// Releases the creator's initial slots of `p` that no handle took over (normally
/// none: the two handles made right after creation adopt them).
pub(crate) fn drop_creation_hold(p: &Arc<PipeShm>) {
    let mut g = lock();
    let k = key(p);
    let Some(i) = g.iter().position(|e| e.key == k) else {
        return;
    };
    let e = &mut g[i];
    for end in 0..2 {
        if e.counts[end] == 0 {
            if let Some(s) = e.slots[end].take() {
                p.release_slot(end, s, e.me);
            }
        }
    }
    if e.counts == [0, 0] && e.slots == [None, None] {
        g.swap_remove(i);
    }
}
