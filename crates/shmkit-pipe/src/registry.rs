//! Who holds which end, per process.
//!
//! Shared memory records, per end, the *processes* holding it (a slot with the packed
//! pid + start time and the number of handles open there). This process keeps, per
//! mapped pipe, its handle counts and slot numbers in [`REG`]. The first handle of an
//! end in a process claims a slot, the last one releases it; when an end's last slot
//! goes (or a dead holder's slot is swept) the end is closed for good and its peer's
//! waiters are woken.
//!
//! **fork.** A `pthread_atfork` child handler claims, in the child, a slot for every
//! end this process held at the fork (with the same handle counts), so a forked child
//! holds what it inherited, exactly like an inherited file descriptor, and closing an
//! end in one process never closes it for the others. The prepare handler takes
//! [`REG`]'s lock across the fork, so the child sees a consistent table. The handler
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
}

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
    let g = lock();
    HELD.with(|h| {
        if let Ok(mut h) = h.try_borrow_mut() {
            *h = Some(g);
        }
    });
}

extern "C" fn parent() {
    HELD.with(|h| {
        if let Ok(mut h) = h.try_borrow_mut() {
            h.take();
        }
    });
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
        e.me = me;
        let Some(p) = e.pipe.upgrade() else {
            e.slots = [None, None];
            continue;
        };
        for end in 0..2 {
            e.slots[end] = if e.counts[end] > 0 {
                p.claim(end, me, e.counts[end]).ok()
            } else {
                None
            };
        }
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

/// One handle of end `end` of `p` fewer in this process; the last one releases the slot.
pub(crate) fn unregister(p: &Arc<PipeShm>, end: usize) {
    let mut g = lock();
    let k = key(p);
    let Some(i) = g.iter().position(|e| e.key == k) else {
        return;
    };
    let e = &mut g[i];
    e.counts[end] = e.counts[end].saturating_sub(1);
    match (e.counts[end], e.slots[end]) {
        (0, Some(s)) => {
            p.release_slot(end, s, e.me);
            e.slots[end] = None;
        }
        (n, Some(s)) => p.set_count(end, s, n),
        _ => {}
    }
    if e.counts == [0, 0] && e.slots == [None, None] {
        g.swap_remove(i);
    }
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
