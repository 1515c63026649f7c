//! The shared control block of a queue and the blocking protocol, written against the
//! shim so that the loom model (`tests/loom.rs`) runs this very code.
//!
//! ```text
//! Control (4096 bytes, 128-aligned, at data offset 0 of a queue segment)
//! off  size  field
//!   0     4  magic       "SHQU" once initialised (stored last, Release)
//!   4     4  version     CONTROL_VERSION
//!   8     4  max_item    largest item payload in bytes (serde: encoded; Pod: size_of)
//!  12     4  flags       bit 0: Pod queue (slots hold raw items, no length prefix)
//!  16     4  closed      0 open, 1 closed (close() stores 1 with Release)
//!  20     4  not_empty   EventCount: getters sleep here, putters notify
//!  24     4  not_full    EventCount: putters sleep here, getters notify
//!  28     4  all_done    EventCount: JoinableQueue::join sleeps here
//!  32     8  unfinished  JoinableQueue: items put and not yet task_done
//!  40     8  maxsize     the maxsize asked for at creation (informational)
//!  48  4048  registry    253 x RegEntry { owner: OwnerId (u64), count: u64 }
//! ```

use crate::error::{Error, Result};
use shmkit_ring::mpmc::{Mpmc, Payload};
use shmkit_ring::OwnerId;
use shmkit_segment::shim::atomic::{AtomicU32, AtomicU64, Ordering};
use shmkit_segment::shim::time::Deadline;
use shmkit_sync::futex::{self, EventCount};
use std::time::Duration;

/// `"SHQU"` little-endian.
pub const MAGIC: u32 = u32::from_le_bytes(*b"SHQU");
/// Layout version of [`Control`] (bump on any change; see `docs/queue.md`).
pub const CONTROL_VERSION: u32 = 2;
/// Entries of the handle registry: at most this many processes may hold handles to one
/// queue at once (dead processes' entries are reclaimed).
pub const MAX_PROCESSES: usize = 253;
/// Flag: a Pod queue.
pub const FLAG_POD: u32 = 1;

/// A sleeper re-checks whether the other handles' processes still live after
/// sleeping this long without a notification: the detection latency of a SIGKILLed
/// peer. (A handle dropped normally notifies sleepers at once.)
pub const LIVENESS_SLICE: Duration = Duration::from_millis(100);

/// An owner word being reclaimed.
const RECLAIMING: u64 = u64::MAX;

/// One process's count of live handles. `owner` 0 = free.
#[derive(Debug, Default)]
#[repr(C)]
pub struct RegEntry {
    pub(crate) owner: AtomicU64,
    pub(crate) count: AtomicU64,
}

/// The control block at the start of every queue segment (see the module docs).
#[derive(Debug)]
#[repr(C, align(128))]
pub struct Control {
    pub(crate) magic: AtomicU32,
    pub(crate) version: AtomicU32,
    pub(crate) max_item: AtomicU32,
    pub(crate) flags: AtomicU32,
    pub(crate) closed: AtomicU32,
    pub(crate) not_empty: EventCount,
    pub(crate) not_full: EventCount,
    pub(crate) all_done: EventCount,
    pub(crate) unfinished: AtomicU64,
    pub(crate) maxsize: AtomicU64,
    pub(crate) registry: [RegEntry; MAX_PROCESSES],
}

shmkit_segment::assert_layout!(RegEntry, size = 16, align = 8, owner @ 0, count @ 8);
shmkit_segment::assert_layout!(Control, size = 4096, align = 128,
    magic @ 0, version @ 4, max_item @ 8, flags @ 12, closed @ 16, not_empty @ 20,
    not_full @ 24, all_done @ 28, unfinished @ 32, maxsize @ 40, registry @ 48);

// SAFETY: repr(C) of atomics only (valid for every bit pattern, no Drop, no pointers,
// mutated only atomically); the padding bytes are never read.
#[cfg(not(shmkit_loom))]
unsafe impl shmkit_segment::Shared for Control {}

impl Default for Control {
    fn default() -> Self {
        Control {
            magic: AtomicU32::new(0),
            version: AtomicU32::new(0),
            max_item: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            closed: AtomicU32::new(0),
            not_empty: EventCount::new(),
            not_full: EventCount::new(),
            all_done: EventCount::new(),
            unfinished: AtomicU64::new(0),
            maxsize: AtomicU64::new(0),
            registry: std::array::from_fn(|_| RegEntry::default()),
        }
    }
}

impl Control {
    /// A zeroed block, as a fresh mapping holds it (loom models, tests).
    pub fn new() -> Self {
        Self::default()
    }

    /// Initialises a zeroed block; `magic` is stored last.
    pub fn init(&self, max_item: u32, flags: u32, maxsize: u64) {
        // Relaxed: published by the Release store of `magic`.
        self.version.store(CONTROL_VERSION, Ordering::Relaxed);
        self.max_item.store(max_item, Ordering::Relaxed);
        self.flags.store(flags, Ordering::Relaxed);
        self.maxsize.store(maxsize, Ordering::Relaxed);
        // Release: pairs with the Acquire load in `validate`.
        self.magic.store(MAGIC, Ordering::Release);
    }

    /// Checks magic and version; returns (max_item, flags).
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the block is not an initialised version-1 control block.
    pub fn validate(&self) -> Result<(u32, u32)> {
        // Acquire: pairs with the Release store in `init`.
        if self.magic.load(Ordering::Acquire) != MAGIC {
            return Err(Error::Corrupt {
                what: "queue control block has a bad magic",
            });
        }
        // Relaxed: made visible by the Acquire above.
        if self.version.load(Ordering::Relaxed) != CONTROL_VERSION {
            return Err(Error::Corrupt {
                what: "queue control block has an unknown version",
            });
        }
        Ok((
            self.max_item.load(Ordering::Relaxed),
            self.flags.load(Ordering::Relaxed),
        ))
    }

    /// Whether `close` was called.
    #[inline]
    pub fn is_closed(&self) -> bool {
        // Acquire: pairs with the Release store in `close`: items put before the close
        // are visible to a getter that sees it (they are in the ring already).
        self.closed.load(Ordering::Acquire) != 0
    }

    /// Closes the queue and wakes every sleeper.
    pub fn close(&self) {
        // Release: pairs with the Acquire load in `is_closed`.
        self.closed.store(1, Ordering::Release);
        self.wake_all();
    }

    /// Wakes every sleeper of the queue (after a close, or a handle going away, so
    /// they re-check).
    pub fn wake_all(&self) {
        self.not_empty.notify_all();
        self.not_full.notify_all();
        self.all_done.notify_all();
    }

    /// Adds `delta` handles for `me` in the registry (the caller serialises the
    /// registrations of one process; different processes never share an entry).
    ///
    /// # Errors
    /// [`Error::TooManyProcesses`] when no entry is free even after reclaiming the
    /// entries of dead processes.
    pub fn register(&self, me: OwnerId, delta: i64, alive: &dyn Fn(OwnerId) -> bool) -> Result<()> {
        let me = me.as_raw();
        for e in &self.registry {
            // Acquire: pairs with the Release in a claim or reclaim of this entry.
            if e.owner.load(Ordering::Acquire) == me {
                add(&e.count, delta);
                return Ok(());
            }
        }
        if delta <= 0 {
            return Ok(());
        }
        for round in 0..2 {
            for e in &self.registry {
                // AcqRel: Acquire pairs with the Release of the reclaimer that freed the
                // entry (its count reset is visible); Release orders nothing before.
                if e.owner
                    .compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    add(&e.count, delta);
                    return Ok(());
                }
            }
            if round == 0 {
                self.reclaim_dead(OwnerId::from_raw(me), alive);
            }
        }
        Err(Error::TooManyProcesses { max: MAX_PROCESSES })
    }

    /// Frees the entries of processes that no longer run.
    fn reclaim_dead(&self, me: OwnerId, alive: &dyn Fn(OwnerId) -> bool) {
        for e in &self.registry {
            // Relaxed: a candidate; the CAS below decides.
            let o = e.owner.load(Ordering::Relaxed);
            if o != 0 && o != RECLAIMING && o != me.as_raw() && !alive(OwnerId::from_raw(o)) {
                self.reclaim(e, o);
            }
        }
    }

    fn reclaim(&self, e: &RegEntry, o: u64) {
        // Acquire: we own the entry now; nothing of the dead owner's needs to be seen
        // but its count, which we overwrite.
        if e.owner
            .compare_exchange(o, RECLAIMING, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            // Relaxed: published by the Release store of the free owner below.
            e.count.store(0, Ordering::Relaxed);
            // Release: pairs with the AcqRel claim in `register`.
            e.owner.store(0, Ordering::Release);
        }
    }

    /// How many handles other than the caller's (one handle of `me`) exist. With
    /// `thorough`, entries of processes that no longer run are reclaimed and not
    /// counted (this reads `/proc` per process: slow paths only); otherwise every
    /// registered handle counts.
    pub fn others(&self, me: OwnerId, thorough: bool, alive: &dyn Fn(OwnerId) -> bool) -> u64 {
        self.count_handles(me, thorough, alive, u64::MAX)
            .saturating_sub(1)
    }

    /// Whether any handle other than the caller's exists, as [`Control::others`] `> 0`
    /// but, without `thorough`, stopping at the second handle found (registry entries
    /// are taken from the front, so that is usually within the first few entries
    /// instead of all 253: this runs every time a blocking call is about to sleep).
    pub fn any_others(&self, me: OwnerId, thorough: bool, alive: &dyn Fn(OwnerId) -> bool) -> bool {
        let stop = if thorough { u64::MAX } else { 2 };
        self.count_handles(me, thorough, alive, stop) > 1
    }

    /// Counts registered handles (the caller's included), stopping once `stop` are
    /// found; `thorough` as in [`Control::others`].
    fn count_handles(
        &self,
        me: OwnerId,
        thorough: bool,
        alive: &dyn Fn(OwnerId) -> bool,
        stop: u64,
    ) -> u64 {
        let mut n: u64 = 0;
        for e in &self.registry {
            if n >= stop {
                break;
            }
            // Acquire: pairs with the claim's Release (AcqRel) of the entry.
            let o = e.owner.load(Ordering::Acquire);
            if o == 0 || o == RECLAIMING {
                continue;
            }
            // Acquire: pairs with the Release increments in `add`.
            let c = e.count.load(Ordering::Acquire);
            if thorough && o != me.as_raw() && c > 0 && !alive(OwnerId::from_raw(o)) {
                self.reclaim(e, o);
                continue;
            }
            n = n.saturating_add(c);
        }
        n
    }
}

fn add(count: &AtomicU64, delta: i64) {
    // Release: pairs with the Acquire loads in `others` (only a count, but counting
    // must not run ahead of the handle's own creation).
    if delta >= 0 {
        count.fetch_add(delta.unsigned_abs(), Ordering::Release);
    } else {
        let d = delta.unsigned_abs();
        let _ = count.fetch_update(Ordering::Release, Ordering::Relaxed, |c| {
            Some(c.saturating_sub(d))
        });
    }
}

/// Who else holds the queue: the blocking calls ask this before sleeping.
pub trait Peers {
    /// Whether any handle other than the caller's exists; `thorough` also drops dead
    /// processes (slow).
    fn any_others(&self, thorough: bool) -> bool;
}

/// Peers that always exist (loom models; queues without disconnection).
#[derive(Debug, Clone, Copy)]
pub struct Forever;

impl Peers for Forever {
    fn any_others(&self, _thorough: bool) -> bool {
        true
    }
}

/// The end of the current sleep slice: `deadline`, or one liveness slice from now.
#[inline]
fn slice_end(deadline: Deadline) -> Deadline {
    #[cfg(shmkit_loom)]
    {
        deadline
    }
    #[cfg(not(shmkit_loom))]
    {
        let s = Deadline::after(LIVENESS_SLICE);
        if s.as_nanos() < deadline.as_nanos() {
            s
        } else {
            deadline
        }
    }
}

/// How a blocking operation spins before it sleeps: `ready` is a cheap hint that its
/// attempt could succeed now; `progress`, if any, a counter the peers it waits for
/// advance while they run (see [`futex::spin_until_progress`]).
struct Spin<R, P> {
    ready: R,
    progress: Option<P>,
}

/// What a blocking operation waits for: `attempt` makes one non-blocking try and
/// returns `Ok(Some)` on success, `Ok(None)` when it must wait, `Err` to stop.
fn block<R>(
    ctl: &Control,
    ec: &EventCount,
    deadline: Deadline,
    peers: &dyn Peers,
    on_timeout: fn() -> Error,
    mut attempt: impl FnMut() -> Result<Option<R>>,
    spin: Spin<impl Fn() -> bool, impl Fn() -> u64>,
) -> Result<R> {
    if let Some(r) = attempt()? {
        return Ok(r);
    }
    if deadline.is_expired() {
        return Err(on_timeout());
    }
    // Whether the spin caught the change: then the attempt right after it succeeding
    // is a wait that did not sleep, which must not shrink the spin budget (as in
    // shmkit-sync's Event: `note_slept` only once the spin has failed). Before, every
    // get that found the queue empty for a moment halved its budget, so a steady
    // stream of items drove consumers into sleeping (a FUTEX_WAIT and a FUTEX_WAKE
    // per short gap).
    let done = || (spin.ready)() || ctl.is_closed();
    let spun = match spin.progress {
        Some(p) => futex::spin_until_progress(deadline, futex::STALL, done, p),
        None => futex::spin_until(deadline, done),
    };
    if spun {
        if let Some(r) = attempt()? {
            return Ok(r);
        }
    }
    // A failed spin has just checked `ready()`: announce ourselves straight away (one
    // attempt less per sleep; the re-check below follows at once). After a wake-up
    // the attempt comes first, so a change that woke us costs no announcement.
    let mut announce_first = true;
    let mut thorough = false;
    loop {
        if !announce_first {
            if let Some(r) = attempt()? {
                futex::note_wait_end();
                return Ok(r);
            }
        }
        announce_first = false;
        let key = ec.prepare();
        // Re-check after announcing ourselves: either this sees the peer's change or
        // the peer's notify_all sees our WAITERS bit (Dekker through SeqCst fences).
        if let Some(r) = attempt()? {
            futex::note_wait_end();
            return Ok(r);
        }
        // Disconnection before the deadline: a blocking call with nobody left
        // reports that, however short its timeout.
        if !peers.any_others(thorough) {
            return Err(Error::Disconnected);
        }
        if deadline.is_expired() {
            return Err(on_timeout());
        }
        // A slice that ends without a notification makes the next check thorough.
        thorough = !ec.wait(key, slice_end(deadline));
    }
}

/// Pops one slot into `dst`, waiting until `deadline` for an item.
///
/// # Errors
/// [`Error::Empty`] at the deadline; [`Error::Closed`] once closed and drained;
/// [`Error::Disconnected`] when empty and `peers` reports nobody else;
/// [`Error::Ring`] from the ring (corrupt memory).
pub fn pop_wait(
    ctl: &Control,
    ring: &Mpmc,
    dst: &mut [u8],
    deadline: Deadline,
    peers: &dyn Peers,
) -> Result<()> {
    pop_wait_with(ctl, ring, deadline, peers, |p| p.read_at(0, dst))
}

/// As [`pop_wait`], letting `read` copy what it needs out of the popped slot in place
/// (see [`Mpmc::try_pop_with`]); `read` runs once, for the item delivered.
///
/// # Errors
/// As [`pop_wait`].
pub fn pop_wait_with<R>(
    ctl: &Control,
    ring: &Mpmc,
    deadline: Deadline,
    peers: &dyn Peers,
    mut read: impl FnMut(&Payload<'_>) -> R,
) -> Result<R> {
    block(
        ctl,
        &ctl.not_empty,
        deadline,
        peers,
        || Error::Empty,
        || try_pop_with(ctl, ring, &mut read),
        Spin {
            ready: || ring.pop_ready(),
            // A getter waits for producers, which may work a while between items:
            // the adaptive spin alone decides.
            progress: None::<fn() -> u64>,
        },
    )
}

/// One non-blocking pop: `Ok(Some(()))` with an item in `dst`, `Ok(None)` when empty
/// and open.
///
/// # Errors
/// [`Error::Closed`] when empty and closed; [`Error::Ring`].
pub fn try_pop(ctl: &Control, ring: &Mpmc, dst: &mut [u8]) -> Result<Option<()>> {
    if dst.len() > ring.config().slot_size() {
        return Err(shmkit_ring::Error::<()>::TooLarge {
            len: dst.len(),
            max: ring.config().slot_size(),
        }
        .into());
    }
    try_pop_with(ctl, ring, |p| p.read_at(0, dst))
}

/// As [`try_pop`], letting `read` copy what it needs out of the popped slot in place.
///
/// # Errors
/// As [`try_pop`].
#[inline]
pub fn try_pop_with<R>(
    ctl: &Control,
    ring: &Mpmc,
    read: impl FnOnce(&Payload<'_>) -> R,
) -> Result<Option<R>> {
    // Read `closed` before popping: a close that happened before an Empty pop means
    // every item put before the close was already taken (they precede it in the ring).
    let closed = ctl.is_closed();
    match ring.try_pop_with(read) {
        Ok(r) => {
            ctl.not_full.notify_all();
            // Pass the baton: another getter that found the head slot locked by us
            // mid-claim was told Empty by the ring and may have gone to sleep while
            // items remain; nobody else would wake it (found by the loom model
            // `two_sleeping_getters_each_get_one_of_two_puts`). Only when a getter
            // sleeps (checked after notify_all's fence, so the Dekker argument holds
            // as for a notification) and the next slot holds an item: otherwise the
            // producer of that slot notifies when it publishes.
            if has_waiters(&ctl.not_empty) && ring.pop_ready() {
                ctl.not_empty.notify_all();
            }
            Ok(Some(r))
        }
        Err(shmkit_ring::Error::Empty) => {
            // The pop may have freed slots whose items died with their producer (or
            // with a consumer): room no successful pop announced. Wake putters waiting
            // for it, as a pop would (they would otherwise wait out a liveness slice).
            if ring.take_freed() {
                ctl.not_full.notify_all();
            }
            if closed {
                Err(Error::Closed)
            } else {
                Ok(None)
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// How many free slots a putter that found the queue full waits for (spinning)
/// before it pushes again (see [`Mpmc::push_ready_for`]): a quarter of the ring. It
/// then leaves the consumers' lines alone while it waits, and fills lines they left
/// well behind them, instead of trailing a getter slot by slot (each write taking a
/// line next to the ones the getter is about to claim). The getters still have
/// three quarters of a full queue to take meanwhile, so this costs them nothing;
/// once the spin gives up, a putter takes any free slot (measured, 1P/1C
/// `Queue<u64>` of 1024 slots: 16 → 256 raised the rate from ~21 to ~28 M items/s).
fn room_batch(ring: &Mpmc) -> u64 {
    (ring.config().capacity() as u64 / 4).max(1)
}

/// Pushes `src` as one slot, waiting until `deadline` for room.
///
/// # Errors
/// [`Error::Full`] at the deadline; [`Error::Closed`]; [`Error::Disconnected`] when
/// full and `peers` reports nobody else; [`Error::TooLarge`]; [`Error::Ring`].
pub fn push_wait(
    ctl: &Control,
    ring: &Mpmc,
    src: &[u8],
    deadline: Deadline,
    peers: &dyn Peers,
) -> Result<()> {
    block(
        ctl,
        &ctl.not_full,
        deadline,
        peers,
        || Error::Full(()),
        || try_push(ctl, ring, src),
        Spin {
            ready: || ring.push_ready_for(room_batch(ring)),
            // Getters that run free slots continuously: a putter whose getters
            // stand still (not running: say, waiting for this CPU) stops spinning.
            progress: Some(|| ring.head_hint()),
        },
    )
}

/// One non-blocking push: `Ok(Some(()))` when pushed, `Ok(None)` when full.
///
/// # Errors
/// [`Error::Closed`]; [`Error::TooLarge`]; [`Error::Ring`].
#[inline]
pub fn try_push(ctl: &Control, ring: &Mpmc, src: &[u8]) -> Result<Option<()>> {
    if ctl.is_closed() {
        return Err(Error::Closed);
    }
    match ring.try_push_bytes(src) {
        Ok(()) => {
            ctl.not_empty.notify_all();
            // Pass the baton, as in `try_pop`: a putter that found the tail slot
            // locked by us mid-claim was told Full and may sleep while there is room
            // (if the next slot is still being read, its consumer notifies).
            if has_waiters(&ctl.not_full) && ring.push_ready() {
                ctl.not_full.notify_all();
            }
            Ok(Some(()))
        }
        Err(shmkit_ring::Error::Full(())) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether a sleeper announced itself on `ec`. Call it after a SeqCst fence (such as
/// the one in a preceding `notify_all`): it is the load half of the Dekker pair with
/// [`EventCount::prepare`], without a fence of its own.
#[inline]
fn has_waiters(ec: &EventCount) -> bool {
    ec.has_waiters_after_fence()
}

/// JoinableQueue: one more unfinished item (before it is pushed).
pub fn task_added(ctl: &Control) {
    // Relaxed: a counter; `join` reads it with Acquire after the matching task_done's
    // Release, and an item is pushed (Release) after this increment.
    ctl.unfinished.fetch_add(1, Ordering::Relaxed);
}

/// JoinableQueue: undo [`task_added`] for an item that was not pushed after all.
pub fn task_unadded(ctl: &Control) {
    let _ = task_done(ctl);
}

/// JoinableQueue: one item finished.
///
/// # Errors
/// [`Error::TaskDone`] if nothing is unfinished.
pub fn task_done(ctl: &Control) -> Result<()> {
    // AcqRel: Release pairs with the Acquire load in `join`: the consumer's work on the
    // item happens before join returns. Acquire keeps successive decrements ordered.
    let prev = ctl
        .unfinished
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| u.checked_sub(1))
        .map_err(|_| Error::TaskDone)?;
    if prev == 1 {
        ctl.all_done.notify_all();
    }
    Ok(())
}

/// JoinableQueue: unfinished items.
pub fn unfinished(ctl: &Control) -> u64 {
    // Acquire: pairs with the Release in `task_done`.
    ctl.unfinished.load(Ordering::Acquire)
}

/// JoinableQueue: waits until no item is unfinished.
///
/// # Errors
/// [`Error::Timeout`] at the deadline.
pub fn join(ctl: &Control, deadline: Deadline) -> Result<()> {
    block(
        ctl,
        &ctl.all_done,
        deadline,
        &Forever,
        || Error::Timeout,
        || Ok((unfinished(ctl) == 0).then_some(())),
        Spin {
            ready: || unfinished(ctl) == 0,
            progress: None::<fn() -> u64>,
        },
    )
}

#[cfg(all(test, not(shmkit_loom)))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `has_waiters` reads bit 0 of the event count's word: a prepared waiter sets it
    /// and a notification clears it.
    #[test]
    fn waiters_bit() {
        let ec = EventCount::new();
        assert!(!has_waiters(&ec));
        let _key = ec.prepare();
        assert!(has_waiters(&ec));
        ec.notify_all();
        assert!(!has_waiters(&ec));
    }

    /// `any_others` agrees with `others() > 0`, also when it stops early and when
    /// the other handles sit behind free and dead entries.
    #[test]
    fn any_others_matches_others() {
        let ctl = Control::new();
        let (me, a, b) = (
            OwnerId::from_raw(1 << 22 | 1),
            OwnerId::from_raw(1 << 22 | 2),
            OwnerId::from_raw(1 << 22 | 3),
        );
        let alive = |id: OwnerId| id != b;
        let check = |want: u64| {
            for thorough in [false, true] {
                assert_eq!(ctl.others(me, thorough, &alive), want);
                assert_eq!(ctl.any_others(me, thorough, &alive), want > 0);
            }
        };
        ctl.register(me, 1, &alive).unwrap();
        check(0);
        ctl.register(b, 1, &alive).unwrap();
        ctl.register(a, 2, &alive).unwrap();
        // b is dead: the cheap count includes it, the thorough one reclaims it.
        assert_eq!(ctl.others(me, false, &alive), 3);
        assert!(ctl.any_others(me, false, &alive));
        assert_eq!(ctl.others(me, true, &alive), 2);
        check(2);
        ctl.register(a, -2, &alive).unwrap();
        check(0);
        ctl.register(me, 1, &alive).unwrap();
        check(1);
    }
}
