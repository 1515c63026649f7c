//! A robust spin lock on an owner word: held for one operation by the handles of a
//! shared (multi-producer or multi-consumer) byte-ring end; a dead holder's lock is
//! taken over after its liveness check fails.

use crate::owner::{Liveness, OwnerId};
use shmkit_segment::shim::atomic::{AtomicU64, Ordering};
use shmkit_segment::shim::{spin_loop, yield_now};

/// Spins between liveness checks of a holder that does not let go.
const SPINS: u32 = if cfg!(shmkit_loom) { 1 } else { 1 << 12 };

/// Takes `word` for `me`, waiting for a live holder and taking over from a dead one.
pub(crate) fn lock(word: &AtomicU64, me: OwnerId, liveness: &Liveness) {
    loop {
        // Acquire: pairs with the Release in `unlock` by the previous holder, so its
        // index store is visible before we read the index.
        let cur = match word.compare_exchange(0, me.0, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return,
            Err(cur) => cur,
        };
        let mut changed = false;
        for _ in 0..SPINS {
            spin_loop();
            // Relaxed: polling for a change; the CAS above re-synchronises.
            if word.load(Ordering::Relaxed) != cur {
                changed = true;
                break;
            }
        }
        if changed {
            continue;
        }
        if liveness.is_alive(OwnerId(cur)) {
            yield_now();
            continue;
        }
        // Acquire: as above; the dead holder never advanced the index it worked on.
        if word
            .compare_exchange(cur, me.0, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
}

/// Releases `word`.
pub(crate) fn unlock(word: &AtomicU64, me: OwnerId) {
    // Release: pairs with the Acquire in `lock` by the next holder: our index store
    // and ring accesses happen before its.
    let _ = word.compare_exchange(me.0, 0, Ordering::Release, Ordering::Relaxed);
}
