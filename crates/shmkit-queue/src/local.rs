//! The process-local side of the handle registry.
//!
//! Every queue handle in this process is counted twice: in the shared registry entry
//! of this process (`Control::registry`, read by peers deciding about
//! disconnection), and in a process-local table keyed by the control block's address.
//! The local table exists for `fork`: a forked child holds copies of every handle its
//! parent held, so a `pthread_atfork` child handler registers that many handles for
//! the child before the child runs any code — there is no window in which a peer
//! could see the child's inherited handles uncounted. All registrations of one
//! process go through the local table's mutex, which `prepare` holds across `fork`.

use crate::error::Result;
use crate::raw::Control;
use shmkit_ring::owner::process_alive;
use shmkit_ring::OwnerId;
use shmkit_segment::shim::atomic::{AtomicU64, Ordering};
use std::cell::RefCell;
use std::sync::{Mutex, MutexGuard, Once};

/// One queue mapped in this process: the control block's address and this process's
/// handle count for it.
struct Entry {
    ctl: usize,
    count: u64,
}

static LOCAL: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

/// Bumped in every forked child: handles compare it to refresh their ring identity.
pub(crate) static FORK_GEN: AtomicU64 = AtomicU64::new(0);

static ATFORK: Once = Once::new();

thread_local! {
    static HELD: RefCell<Option<MutexGuard<'static, Vec<Entry>>>> = const { RefCell::new(None) };
}

fn lock() -> MutexGuard<'static, Vec<Entry>> {
    LOCAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The forking process's id, for the child to repay the loan (see `prepare`).
static PARENT: AtomicU64 = AtomicU64::new(0);

/// Before `fork`: takes the lock (no registration may run across the fork) and
/// *lends* the child its handles: each queue's count in this process's entry grows
/// by the handles the child will inherit, so a peer never sees them uncounted — the
/// parent may drop its copies before the child gets to run.
extern "C" fn prepare() {
    let g = lock();
    let me = OwnerId::current();
    // Relaxed: read back by the child of this very fork (program order in this thread).
    PARENT.store(me.as_raw(), Ordering::Relaxed);
    for e in g.iter().filter(|e| e.count > 0) {
        // A full registry is impossible here: this process has an entry already.
        let _ = entry_ctl(e).register(me, delta(e.count), &process_alive);
    }
    HELD.with(|h| *h.borrow_mut() = Some(g));
}

fn delta(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

fn entry_ctl(e: &Entry) -> &Control {
    // SAFETY: an entry with a nonzero count belongs to live handles of this process,
    // which keep the segment (and so the control block at `e.ctl`) mapped; a forked
    // child inherited those mappings.
    unsafe { &*(e.ctl as *const Control) }
}

/// After `fork`, in the parent: the loan stays until the child repays it.
extern "C" fn parent() {
    HELD.with(|h| drop(h.borrow_mut().take()));
}

/// After `fork`, in the child: registers the inherited handles under the child's own
/// id, then repays the parent's loan. (A child killed before this runs leaves the
/// loan in the parent's entry, which then counts until the parent exits.)
extern "C" fn child() {
    // Relaxed: read by this (now single-threaded) process only.
    FORK_GEN.fetch_add(1, Ordering::Relaxed);
    let me = OwnerId::current();
    // Relaxed: stored by `prepare` in this same thread before the fork.
    let parent = OwnerId::from_raw(PARENT.load(Ordering::Relaxed));
    HELD.with(|h| {
        if let Some(g) = h.borrow_mut().take() {
            for e in g.iter().filter(|e| e.count > 0) {
                let ctl = entry_ctl(e);
                // A full registry cannot be reported from here; the child's handles
                // then go uncounted (peers may see Disconnected early).
                let _ = ctl.register(me, delta(e.count), &process_alive);
                let _ = ctl.register(parent, -delta(e.count), &process_alive);
            }
        }
    });
}

fn install() {
    ATFORK.call_once(|| {
        // SAFETY: the three handlers are plain functions that stay valid for the life
        // of the process; pthread_atfork has no other precondition.
        let _ = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    });
}

/// Counts one more (`delta` = 1) or one fewer (-1) handle of this process to `ctl`.
pub(crate) fn register(ctl: &Control, delta: i64) -> Result<()> {
    install();
    let mut g = lock();
    let addr = ctl as *const Control as usize;
    ctl.register(OwnerId::current(), delta, &process_alive)?;
    match g.iter().position(|e| e.ctl == addr) {
        Some(i) => {
            let c = &mut g[i].count;
            *c = c.saturating_add_signed(delta);
            if *c == 0 {
                g.swap_remove(i);
            }
        }
        None if delta > 0 => g.push(Entry {
            ctl: addr,
            count: delta.unsigned_abs(),
        }),
        None => {}
    }
    Ok(())
}
