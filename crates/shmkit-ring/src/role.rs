//! Exclusive roles (the producer or consumer end of an SPSC or byte ring), claimed in a
//! header owner word and taken over from a dead holder.

use crate::error::{Error, Result};
use crate::owner::{process_alive, OwnerId};
use shmkit_segment::shim::atomic::{AtomicU64, Ordering};

/// Claims `word` for `me`: free (0), already ours, or held by a dead process.
pub(crate) fn claim(word: &AtomicU64, me: OwnerId, role: &'static str) -> Result<()> {
    // Acquire: pairs with the Release in `release` by the previous holder, so its
    // index stores are visible before we read the indices.
    let mut cur = word.load(Ordering::Acquire);
    loop {
        if cur != 0 && cur != me.0 && process_alive(OwnerId(cur)) {
            return Err(Error::InUse {
                role,
                pid: OwnerId(cur).pid(),
            });
        }
        // AcqRel: Acquire as above; Release publishes nothing yet (we have not written).
        match word.compare_exchange(cur, me.0, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(()),
            Err(now) => cur = now,
        }
    }
}

/// Gives `word` up if `me` still holds it.
pub(crate) fn release(word: &AtomicU64, me: OwnerId) {
    // Release: pairs with the Acquire in `claim`: the next holder sees our last index
    // store. Failure (Relaxed): someone took over; nothing to publish.
    let _ = word.compare_exchange(me.0, 0, Ordering::Release, Ordering::Relaxed);
}

/// Whether the holder of `word` is a live process (false when nobody holds it).
pub(crate) fn holder_alive(word: &AtomicU64) -> bool {
    // Relaxed: an advisory snapshot; liveness is checked against /proc.
    let cur = word.load(Ordering::Relaxed);
    cur != 0 && process_alive(OwnerId(cur))
}
