//! Biased message locks: the one handle that uses a side (sending or receiving) of an
//! end skips its robust message lock.
//!
//! Each [`Side`] has a robust `lock` and a `bias` word. The first handle to use the
//! side (under the lock) stores its id there, after registering its process for
//! `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`. From then on that handle's
//! messages run without the lock:
//!
//! ```text
//! owner (fast path)                      another handle (under the lock)
//! busy = 1                               bias = REVOKED
//! compiler fence                         membarrier(GLOBAL_EXPEDITED)  (every owner
//! if bias != me: busy = 0, lock instead    thread executes a full barrier)
//! ... the whole message ...              wait until busy == 0 (or the owner died)
//! busy = 0 (Release)                     ... the whole message ... ; unlock
//! ```
//!
//! This is Dekker's protocol with an asymmetric fence: the membarrier orders the
//! owner's `busy = 1` before its load of `bias` whenever it matters, so either the
//! owner sees `REVOKED` (and locks), or the revoker sees `busy == 1` and waits for
//! that message to end. A revoked side stays locked for good (no ping-pong of
//! revocations). A locker that inherits the lock from a dead owner (`OwnerDied`)
//! while the side is revoked revokes again (membarrier and wait), since the dead
//! revoker may have died before its barrier or its wait. A forked child's copy of a handle gets a new id before its first
//! use, so it never shares the parent's bias. Without membarrier support nobody
//! biases and every message locks.
//!
//! Cost on the owner's path: two plain stores and one load of a line only this side
//! writes; no atomic read-modify-write, no fence.

use crate::error::{Error, Result};
use crate::layout::{Side, BIAS_REVOKED};
use crate::registry;
use crate::shm::{holder_alive, pack};
use shmkit_segment::shim::atomic::{AtomicU64, Ordering};
use shmkit_segment::shim::{membarrier, pid};
use shmkit_sync::{Acquired, RawMutex};
use std::time::Duration;

/// `fork_gen() + 1` of the last successful registration of this process (0 = none).
static REGISTERED: AtomicU64 = AtomicU64::new(0);

/// Registers this process for expedited global membarriers (once per fork
/// generation); false if the kernel refuses.
fn register() -> bool {
    let gen = registry::fork_gen() + 1;
    // Relaxed: a per-process cache; registering twice is harmless.
    if REGISTERED.load(Ordering::Relaxed) == gen {
        return true;
    }
    let ok = membarrier::register_global_expedited();
    if ok {
        REGISTERED.store(gen, Ordering::Relaxed);
    }
    ok
}

/// A handle's identity on one side of its end, refreshed after a fork.
#[derive(Debug, Default)]
pub(crate) struct Ident {
    id: u64,
    gen: u64,
}

impl Ident {
    /// This handle's id (a new one in a forked child: a copy must not share the
    /// parent's bias).
    fn get(&mut self, next_id: &AtomicU64) -> u64 {
        let gen = registry::fork_gen();
        if self.id == 0 || self.gen != gen {
            // Relaxed: only uniqueness matters.
            self.id = next_id.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            if self.id == BIAS_REVOKED || self.id == 0 {
                self.id = next_id.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            }
            self.gen = gen;
        }
        self.id
    }
}

/// Exclusive use of a side for one message: biased (no lock) or locked.
pub(crate) enum Access<'a> {
    /// The bias holder's fast path: `busy` is 1 until drop.
    Fast(&'a AtomicU64),
    /// The robust lock is held until drop.
    Locked(&'a RawMutex),
}

impl Drop for Access<'_> {
    fn drop(&mut self) {
        match self {
            // Release: pairs with the revoker's Acquire load of `busy`: this
            // message's ring accesses happen before its.
            Access::Fast(busy) => busy.store(0, Ordering::Release),
            Access::Locked(m) => {
                let _ = m.unlock();
            }
        }
    }
}

/// Takes `side` for one whole message as handle `ident`.
///
/// # Errors
/// [`Error::Config`] if the bias must be revoked and the kernel has no membarrier
/// (cannot happen: the holder registered for it on the same kernel).
pub(crate) fn enter<'a>(
    side: &'a Side,
    next_id: &AtomicU64,
    ident: &mut Ident,
) -> Result<Access<'a>> {
    let me = ident.get(next_id);
    // Relaxed: a hint; re-checked after `busy` is published below.
    if side.bias.load(Ordering::Relaxed) == me {
        // Relaxed + compiler fence: the light half of the asymmetric fence; a
        // revoker's membarrier makes this store visible before its load of `busy`
        // unless our load of `bias` below comes after its store of REVOKED.
        side.busy.store(1, Ordering::Relaxed);
        shmkit_segment::shim::atomic::compiler_fence(Ordering::SeqCst);
        // Relaxed: see above; our own earlier accesses need no ordering (ours).
        if side.bias.load(Ordering::Relaxed) == me {
            return Ok(Access::Fast(&side.busy));
        }
        // Release: as in `Access::drop`.
        side.busy.store(0, Ordering::Release);
    }
    // OwnerDied is fine for the data: the framing protocol copes with a message cut
    // short (receivers drop orphan fragments; a new FIRST discards a partial one).
    let acquired = side.lock.lock();
    let locked = Access::Locked(&side.lock);
    // Acquire: pairs with the Release store of the bias by its holder (under the
    // lock, so the lock already orders it; Acquire keeps it obvious).
    let b = side.bias.load(Ordering::Acquire);
    if b == 0 {
        if register() {
            let holder = pack(pid::current(), pid::current_start_time());
            // Relaxed: published by the Release store of `bias` below and the unlock.
            side.bias_pid.store(holder, Ordering::Relaxed);
            // Release: pairs with the Acquire load above by later lockers.
            side.bias.store(me, Ordering::Release);
        }
    } else if b != me && (b != BIAS_REVOKED || acquired == Acquired::OwnerDied) {
        // A live bias; or a revoker died holding the lock, maybe before its
        // membarrier or its wait for the holder: do both again.
        revoke(side, b)?;
    }
    Ok(locked)
}

/// Under the lock: takes the bias (now `was`) away from its holder for good and
/// waits until it is outside any message.
fn revoke(side: &Side, was: u64) -> Result<()> {
    // Relaxed: the membarrier below orders it before every holder's next load.
    side.bias.store(BIAS_REVOKED, Ordering::Relaxed);
    if !membarrier::global_expedited() {
        // Without the barrier the holder may not see the revocation in time: give
        // the bias back (it keeps working), and fail this message.
        // Relaxed: under the lock, as the store above.
        side.bias.store(was, Ordering::Relaxed);
        return Err(Error::Config {
            what: "membarrier failed while revoking a pipe bias",
        });
    }
    // Relaxed: written under the lock by the holder when it took the bias.
    let holder = side.bias_pid.load(Ordering::Relaxed);
    let mut pause = Duration::from_micros(1);
    let mut n = 0u32;
    // Acquire: pairs with the holder's Release store of 0 when its message ends.
    while side.busy.load(Ordering::Acquire) != 0 {
        n = n.saturating_add(1);
        if n < 1000 {
            shmkit_segment::shim::spin_loop();
            continue;
        }
        if !holder_alive(holder) {
            break; // died mid-message: as with a robust lock, the framing copes
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(1));
    }
    Ok(())
}
