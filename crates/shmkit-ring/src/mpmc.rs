//! Bounded multi-producer multi-consumer ring of fixed-size slots, crash tolerant.
//!
//! Vyukov-style: every slot carries a *stamp* — the position it is ready for, shifted
//! left by 3, or'ed with a state — so producers and consumers at position `p` of slot
//! `p & mask` agree on whose turn it is without touching each other's index:
//!
//! ```text
//! EMPTY(p) --producer--> WRITING(p) --> FULL(p) --consumer--> READING(p) --> EMPTY(p+cap)
//!              \                                    ^
//!               `--claimant died, peer poisons--> DEAD(p) (consumers skip it)
//! ```
//!
//! Unlike the textbook ring, a position is claimed by locking the *slot*: the claimant
//! CASes the slot's owner word from 0 to its [`OwnerId`] (pid + start time) and holds
//! it for the whole transition, moving the shared `tail`/`head` forward only after the
//! stamp shows the claim. So whoever is inside a slot is always named in it, and a
//! peer that finds a slot locked and unchanging checks that owner's liveness (slow path
//! only) and repairs the slot: a dead producer's WRITING becomes DEAD, a dead
//! consumer's READING becomes EMPTY(p+cap), anything else is just unlocked. Any handle
//! may advance `tail`/`head` past a position whose stamp shows it claimed ("helping"),
//! so a claimant that dies before moving an index does not stop the others. The
//! claimant itself moves its index with a plain store (helpers CAS): one
//! read-modify-write less per operation, at the price that a late store may move the
//! index back behind positions claimed meanwhile. That is harmless: positions are
//! never reused, so a handle starting from a lagging index finds their stamps
//! claimed and helps the index forward, and [`Mpmc::len`] and the readiness hints
//! skip the lag the same way.
//!
//! Per uncontended operation: one atomic read-modify-write (the slot lock), plain
//! loads and stores of the slot's words and payload and of the own side's index;
//! nothing reads the other side's index.
//!
//! Guarantee (see `docs/ring.md`): no message is delivered twice; a message whose push
//! returned `Ok` is never lost, except one a consumer had claimed (READING) when it
//! died, before its pop returned.
//!
//! ```
//! use shmkit_ring::{mpmc, RingConfig};
//! let q = mpmc::new(&RingConfig::mpmc_of::<u64>(8)?)?;
//! let q2 = q.clone(); // another handle to the same ring
//! q.try_push(1u64).map_err(shmkit_ring::Error::drop_item)?;
//! q2.try_push(2u64).map_err(shmkit_ring::Error::drop_item)?;
//! assert_eq!(q2.try_pop::<u64>()?, 1);
//! assert_eq!(q.try_pop::<u64>()?, 2);
//! assert!(q.try_pop::<u64>().is_err());
//! # Ok::<(), shmkit_ring::Error>(())
//! ```

use crate::config::{RingConfig, RingKind};
use crate::error::{corrupt, Error, Result};
use crate::owner::{Liveness, OwnerId};
use crate::raw::{Mem, SlotCtl};
use crate::us;
use bytemuck::Pod;
use shmkit_segment::shim::atomic::{AtomicU64, Ordering};
use shmkit_segment::shim::spin_loop;
use std::ptr::NonNull;

/// Stamp state: ready for a producer at the stamp's position.
const EMPTY: u64 = 0;
/// Stamp state: a producer holds the slot and is writing it.
const WRITING: u64 = 1;
/// Stamp state: published, ready for a consumer.
const FULL: u64 = 2;
/// Stamp state: a consumer holds the slot and is reading it.
const READING: u64 = 3;
/// Stamp state: its producer died mid-write; consumers discard it.
const DEAD: u64 = 4;
const STATE_MASK: u64 = 7;
/// How many positions ahead of its own a producer asks for the slot's line
/// ([`Mem::prefetch_ctl`]): by the time it gets there the line, last written by a
/// consumer, is in its cache for writing. Further ahead it would take lines from
/// consumers still reading them when the ring is nearly full (measured: 3 is best
/// for a 1P/1C `Queue<u64>`; 16 halves its rate).
const PRODUCER_PREFETCH: usize = 3;

#[inline]
const fn mk(pos: u64, state: u64) -> u64 {
    (pos << 3) | state
}

/// `lap(stamp) - pos` in the 61-bit position space (positive: the slot is ahead).
#[inline]
const fn lap_diff(stamp: u64, pos: u64) -> i64 {
    // Cast: reinterpreting the wrapped difference as signed is the point.
    (stamp.wrapping_sub(pos << 3) as i64) >> 3
}

/// Where a test hook makes an operation stop, as if its process were killed there.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Never (normal operation).
    Never,
    /// After locking the slot, before changing its stamp.
    AfterLock,
    /// After WRITING/READING, before moving `tail`/`head`.
    AfterClaim,
    /// After moving the index, before copying the payload.
    AfterIndex,
    /// After the copy, before the final stamp.
    AfterCopy,
    /// After the final stamp, before unlocking.
    BeforeUnlock,
}

/// Result of waiting on a slot someone else holds.
enum Waited {
    /// The slot changed (or was repaired): look again.
    Changed,
    /// A live handle holds it: report Full/Empty.
    Busy,
}

/// A handle to an MPMC ring: push and pop from any number of threads and processes.
/// `Clone` makes another handle to the same ring.
#[derive(Debug, Clone)]
pub struct Mpmc {
    mem: Mem,
    mask: u64,
    cap: u64,
    me: OwnerId,
    liveness: Liveness,
    spins: u32,
    stuck_ns: u64,
    crash: CrashPoint,
    freed: Freed,
}

/// How many slots this handle freed without delivering an item (a dead producer's
/// slot discarded, a dead consumer's claim undone): room that no pop reported.
#[derive(Debug)]
struct Freed(AtomicU64);

impl Freed {
    fn new() -> Self {
        Freed(AtomicU64::new(0))
    }

    fn add(&self) {
        // Relaxed: a per-handle tally read by `take_freed`; the slots themselves are
        // published by their stamp stores.
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl Clone for Freed {
    /// A new handle starts with nothing freed.
    fn clone(&self) -> Self {
        Freed::new()
    }
}

/// Creates an in-process MPMC ring on the heap (threads, tests, loom models).
///
/// # Errors
/// [`Error::Incompatible`] if `cfg` is not an MPMC config.
pub fn new(cfg: &RingConfig) -> Result<Mpmc> {
    cfg.expect_kind(RingKind::Mpmc)?;
    Ok(Mpmc::from_mem(Mem::new_heap(cfg)))
}

/// Initialises an MPMC ring of `cfg` in `region` of `seg` (reserve it with
/// [`RingConfig::add_to`]), once, before any handle attaches.
///
/// # Errors
/// As [`crate::spsc::init`].
#[cfg(not(shmkit_loom))]
pub fn init(
    seg: &shmkit_segment::Segment,
    region: shmkit_segment::layout::ByteRegion,
    cfg: &RingConfig,
) -> Result<()> {
    cfg.expect_kind(RingKind::Mpmc)?;
    Mem::init_segment(seg, region, cfg)
}

/// Initialises an MPMC ring of `cfg` in caller-provided memory.
///
/// # Errors
/// As [`crate::spsc::init`].
///
/// # Safety
/// `ptr` must be valid for reads and writes of `len` bytes, and no handle may be using
/// a ring there.
pub unsafe fn init_raw(ptr: NonNull<u8>, len: usize, cfg: &RingConfig) -> Result<()> {
    cfg.expect_kind(RingKind::Mpmc)?;
    // SAFETY: forwarded from the caller.
    unsafe { Mem::init_raw(ptr, len, cfg) }
}

/// Spins before a stuck slot's owner is checked for liveness.
const SPINS: u32 = if cfg!(shmkit_loom) { 1 } else { 128 };
/// Wall time a slot must stay unchanged before its owner's liveness is checked.
const STUCK_NS: u64 = if cfg!(shmkit_loom) { 0 } else { 50_000 };

impl Mpmc {
    fn from_mem(mem: Mem) -> Self {
        let cap = mem.cfg().cap_u64();
        Mpmc {
            mem,
            mask: cap - 1,
            cap,
            me: OwnerId::current(),
            liveness: Liveness::default(),
            spins: SPINS,
            stuck_ns: STUCK_NS,
            crash: CrashPoint::Never,
            freed: Freed::new(),
        }
    }

    /// Attaches to the MPMC ring in `region` of `seg`.
    ///
    /// # Errors
    /// [`Error::Incompatible`] if the region holds no MPMC ring; [`Error::Segment`].
    #[cfg(not(shmkit_loom))]
    pub fn attach(
        seg: &shmkit_segment::Segment,
        region: shmkit_segment::layout::ByteRegion,
    ) -> Result<Self> {
        Ok(Self::from_mem(Mem::attach_segment(
            seg,
            region,
            RingKind::Mpmc,
        )?))
    }

    /// Attaches to the MPMC ring at `ptr`.
    ///
    /// # Errors
    /// As [`Mpmc::attach`].
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `len` bytes for the lifetime of the
    /// handle and its clones (other processes may write it).
    pub unsafe fn attach_raw(ptr: NonNull<u8>, len: usize) -> Result<Self> {
        // SAFETY: forwarded from the caller.
        Ok(Self::from_mem(unsafe {
            Mem::attach_raw(ptr, len, RingKind::Mpmc)
        }?))
    }

    /// Test hook: act as `me`, judge others with `liveness`, stop at `crash`.
    #[doc(hidden)]
    pub fn with_identity(mut self, me: OwnerId, liveness: Liveness, crash: CrashPoint) -> Self {
        self.me = me;
        self.liveness = liveness;
        self.crash = crash;
        self
    }

    /// Test hook: how long to watch a held slot before checking its owner.
    #[doc(hidden)]
    pub fn with_patience(mut self, spins: u32, stuck_ns: u64) -> Self {
        self.spins = spins;
        self.stuck_ns = stuck_ns;
        self
    }

    /// Re-reads this process's identity. Call it in a forked child before using an
    /// inherited handle or a clone of one (`attach` in the child is right already): a handle
    /// names its process in every claim, and a child claiming under its parent's name
    /// would, if killed, be taken for alive while the parent lives.
    pub fn refresh_identity(&mut self) {
        self.me = OwnerId::current();
    }

    /// The owner id this handle claims slots under (this process's, unless a test
    /// hook set another).
    pub fn owner(&self) -> OwnerId {
        self.me
    }

    /// The ring's configuration.
    pub fn config(&self) -> &RingConfig {
        self.mem.cfg()
    }

    /// Approximate number of items (exact when no operation is in flight).
    pub fn len(&self) -> usize {
        let h = self.mem.header();
        // Relaxed: an approximation; tail first so the difference is rarely negative.
        let (tail, _) = self.settled(h.tail.0.load(Ordering::Relaxed), true);
        let (head, _) = self.settled(h.head.0.load(Ordering::Relaxed), false);
        // Cast: clamped to cap <= 2^32.
        us(tail.saturating_sub(head).min(self.cap))
    }

    /// `idx` (tail with `producer`, else head) moved past the positions whose slots
    /// show them claimed already, with the stamp of the slot where it stops. A
    /// claimant moves its index with a plain store (see [`advance`]), which can land
    /// after helpers moved the index further, so the stored value may lag by as many
    /// positions as there were concurrent claims; the walk is bounded by a lap.
    #[inline]
    fn settled(&self, mut idx: u64, producer: bool) -> (u64, u64) {
        let mut n = 0;
        loop {
            // Relaxed: a hint (len() and the readiness checks); operations re-read
            // with Acquire.
            let s = self
                .mem
                .ctl(us(idx & self.mask))
                .stamp
                .load(Ordering::Relaxed);
            let d = lap_diff(s, idx);
            let state = s & STATE_MASK;
            let passed = if producer {
                d > 0 || (d == 0 && state != EMPTY)
            } else {
                d > 0 || (d == 0 && state == READING)
            };
            if !passed || n == self.cap {
                return (idx, s);
            }
            idx = idx.wrapping_add(1);
            n += 1;
        }
    }

    /// A cheap hint that a pop would find an item now: the slot at the consumers'
    /// index holds a published (or dead, to be skipped) item. Reads only `head` and
    /// the slot(s) there, never the producers' index, so pollers leave the producers'
    /// lines alone.
    #[inline]
    pub fn pop_ready(&self) -> bool {
        // Relaxed: a hint; the pop that follows re-reads with Acquire.
        let (hd, s) = self.settled(self.mem.header().head.0.load(Ordering::Relaxed), false);
        lap_diff(s, hd) == 0 && matches!(s & STATE_MASK, FULL | DEAD)
    }

    /// A cheap hint that a push would find room now: the slot at the producers' index
    /// is free for it. Reads only `tail` and the slot(s) there.
    #[inline]
    pub fn push_ready(&self) -> bool {
        // Relaxed: a hint; the push that follows re-reads with Acquire.
        let (t, s) = self.settled(self.mem.header().tail.0.load(Ordering::Relaxed), true);
        s == mk(t, EMPTY)
    }

    /// A cheap hint that the ring has room for `n` pushes in a row (`n` clamped to
    /// `1..=capacity`): the slot `n - 1` positions past the producers' index is free
    /// for its position (or was claimed already, so the index has moved: look again).
    /// A producer that found the ring full should wait for this with `n > 1` rather
    /// than poll [`Mpmc::push_ready`]: that polls the very slot a consumer is freeing,
    /// taking its line away from the consumer on every read, while this watches a line
    /// the consumers reach `n - 1` items later, and then finds `n` slots the consumers
    /// have left behind.
    #[inline]
    pub fn push_ready_for(&self, n: u64) -> bool {
        // Relaxed: a hint; the push that follows re-reads with Acquire.
        let (t, _) = self.settled(self.mem.header().tail.0.load(Ordering::Relaxed), true);
        let p = t.wrapping_add(n.clamp(1, self.cap) - 1);
        // Relaxed: a hint, as above.
        let s = self
            .mem
            .ctl(us(p & self.mask))
            .stamp
            .load(Ordering::Relaxed);
        lap_diff(s, p) >= 0
    }

    /// The consumers' index as last stored (a hint: it may lag behind positions
    /// claimed meanwhile, see [`Mpmc::len`]). It moves as long as consumers take
    /// items: a producer waiting for room can watch it to tell consumers that are
    /// working from consumers that are not running.
    #[inline]
    pub fn head_hint(&self) -> u64 {
        // Relaxed: a hint, nothing is read through it.
        self.mem.header().head.0.load(Ordering::Relaxed)
    }

    /// Whether this handle has freed slots without a pop delivering their items since
    /// the last call (a dead producer's slot discarded, a dead consumer's claim undone
    /// — see [`Mpmc::recover`] for the explicit form). A layer that wakes producers
    /// waiting for room when a pop succeeds calls this after a pop that found nothing:
    /// such room would otherwise go unannounced.
    pub fn take_freed(&self) -> bool {
        // Relaxed: see `Freed::add`. Load first: the common case (nothing freed)
        // writes nothing.
        self.freed.0.load(Ordering::Relaxed) != 0 && self.freed.0.swap(0, Ordering::Relaxed) != 0
    }

    /// Whether [`Mpmc::len`] is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check_len<T>(&self, len: usize) -> Result<(), Error<T>> {
        let max = self.mem.cfg().slot_size();
        if len > max {
            return Err(Error::TooLarge { len, max });
        }
        Ok(())
    }

    /// Pushes one plain-data value.
    ///
    /// # Errors
    /// [`Error::Full`] with the value (also when the slot at the tail is held by a
    /// live, slow handle); [`Error::TooLarge`]; [`Error::Corrupt`].
    pub fn try_push<T: Pod>(&self, item: T) -> Result<(), Error<T>> {
        self.check_len(std::mem::size_of::<T>())?;
        self.push_raw(bytemuck::bytes_of(&item))
            .map_err(|e| e.map_item(|()| item))
    }

    /// Pushes `bytes` (at most a slot) into one slot.
    ///
    /// # Errors
    /// As [`Mpmc::try_push`].
    pub fn try_push_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.check_len(bytes.len())?;
        self.push_raw(bytes)
    }

    /// Pops one plain-data value.
    ///
    /// # Errors
    /// [`Error::Empty`] (also when the item at the head is still being written by a
    /// live handle); [`Error::TooLarge`]; [`Error::Corrupt`].
    pub fn try_pop<T: Pod>(&self) -> Result<T> {
        self.check_len(std::mem::size_of::<T>())?;
        let mut v = T::zeroed();
        self.pop_raw(|p| p.read_at(0, bytemuck::bytes_of_mut(&mut v)))?;
        Ok(v)
    }

    /// Pops one slot, copying its first `dst.len()` bytes into `dst`.
    ///
    /// # Errors
    /// As [`Mpmc::try_pop`].
    pub fn try_pop_bytes(&self, dst: &mut [u8]) -> Result<()> {
        self.check_len(dst.len())?;
        self.pop_raw(|p| p.read_at(0, dst))
    }

    /// Pops one slot and lets `read` copy what it needs out of it in place (say, a
    /// length word first, then only that many bytes), while the pop holds the slot.
    /// `read` runs at most once, only for a delivered item; it must be quick and must
    /// not panic (the slot stays claimed meanwhile).
    ///
    /// # Errors
    /// As [`Mpmc::try_pop`].
    pub fn try_pop_with<R>(&self, read: impl FnOnce(&Payload<'_>) -> R) -> Result<R> {
        self.pop_raw(read)
    }

    /// Repairs every slot held by a dead owner (as the operations do lazily when they
    /// run into one); returns how many were repaired. Call it when you learn that a
    /// process using the ring died, to free what it held at once.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if a slot holds an impossible stamp.
    pub fn recover(&self) -> Result<usize> {
        let mut n = 0;
        for i in 0..self.mem.cfg().capacity() {
            let c = self.mem.ctl(i);
            // Relaxed: a scan; `repair` re-reads under the stolen lock.
            let holder = c.owner.load(Ordering::Relaxed);
            check_stamp(c.stamp.load(Ordering::Relaxed), i, self.mask)?;
            if holder != 0 && !self.liveness.is_alive(OwnerId(holder)) && self.repair(c, holder) {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Tries before a try-operation gives up on a ring that keeps changing under it.
    fn max_tries(&self) -> u64 {
        1024 + 2 * self.cap
    }

    #[inline]
    fn lock(&self, c: &SlotCtl) -> Result<(), u64> {
        // Relaxed: a look before the CAS, so that a slot still held (say, by the
        // producer between its FULL and its unlock) is waited on without a failing
        // CAS taking its line away from the holder; the CAS decides.
        let holder = c.owner.load(Ordering::Relaxed);
        if holder != 0 {
            return Err(holder);
        }
        // Acquire: pairs with the Release in `unlock` (or `repair`) by the previous
        // holder: its stamp and payload accesses happen before ours.
        c.owner
            .compare_exchange(0, self.me.0, Ordering::Acquire, Ordering::Relaxed)
            .map(|_| ())
    }

    #[inline]
    fn unlock(&self, c: &SlotCtl) {
        // Release: pairs with the Acquire CAS in `lock` by the next holder.
        c.owner.store(0, Ordering::Release);
    }

    /// `Err` with a crash error if the test hook says to stop at `at`.
    #[inline]
    fn crash_at(&self, at: CrashPoint) -> Result<()> {
        if self.crash == at {
            return Err(corrupt("simulated crash (test hook)"));
        }
        Ok(())
    }

    /// Waits briefly for a slot held by `holder` with stamp `s` to change; if it does
    /// not, checks the holder's liveness and repairs the slot if it is dead.
    fn wait_or_repair(&self, c: &SlotCtl, s: u64, holder: u64) -> Waited {
        let changed = || {
            // Relaxed: only polling for a change; the caller re-reads with Acquire.
            c.stamp.load(Ordering::Relaxed) != s || c.owner.load(Ordering::Relaxed) != holder
        };
        for _ in 0..self.spins {
            if changed() {
                return Waited::Changed;
            }
            spin_loop();
        }
        #[cfg(not(shmkit_loom))]
        {
            let start = shmkit_segment::shim::time::now_nanos();
            while shmkit_segment::shim::time::now_nanos().saturating_sub(start) < self.stuck_ns {
                for _ in 0..64 {
                    spin_loop();
                }
                if changed() {
                    return Waited::Changed;
                }
            }
        }
        if self.liveness.is_alive(OwnerId(holder)) {
            return Waited::Busy;
        }
        self.repair(c, holder);
        Waited::Changed
    }

    /// Takes the slot lock from a dead `holder` and finishes or undoes its step.
    /// Returns whether this call did the repair.
    fn repair(&self, c: &SlotCtl, holder: u64) -> bool {
        // Acquire: pairs with the holder's last Release (its stamp store), as far as a
        // killed process's stores are ordered at all: they are complete and visible
        // once the kernel has torn the process down (see docs/ring.md).
        if c.owner
            .compare_exchange(holder, self.me.0, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        // Relaxed: we hold the lock; every stamp store happens under it.
        let s = c.stamp.load(Ordering::Relaxed);
        let pos = s >> 3;
        match s & STATE_MASK {
            // Release (both): pair with the Acquire stamp loads of the next consumer
            // (DEAD) or producer (EMPTY), as the holder's own store would have.
            WRITING => c.stamp.store(mk(pos, DEAD), Ordering::Release),
            READING => {
                c.stamp
                    .store(mk(pos.wrapping_add(self.cap), EMPTY), Ordering::Release);
                self.freed.add();
            }
            _ => {}
        }
        self.unlock(c);
        true
    }

    fn push_raw(&self, src: &[u8]) -> Result<()> {
        let h = self.mem.header();
        let tail = &h.tail.0;
        // Acquire: pairs with the AcqRel CASes that advance `tail`, so the stamp we
        // read next is at least the one that made `tail` move.
        let mut t = tail.load(Ordering::Acquire);
        for tries in 0..self.max_tries() {
            if tries > 0 {
                // Lost a race (or helped someone): back off a little before looking
                // again (under loom: let the other threads run).
                spin_loop();
            }
            let i = us(t & self.mask);
            let c = self.mem.ctl(i);
            // Acquire: pairs with the consumer's Release store of EMPTY(t) (its reads of
            // the slot happen before our writes).
            let s = c.stamp.load(Ordering::Acquire);
            check_stamp(s, i, self.mask)?;
            let d = lap_diff(s, t);
            if d > 0 || (d == 0 && s & STATE_MASK != EMPTY) {
                // Position t was claimed already (`t` is stale, or its claimant has not
                // moved `tail` yet): help move `tail` past it; the CAS also hands us
                // the current value.
                t = help(tail, t);
                continue;
            }
            if d < 0 {
                // The previous lap is still in the slot: full, unless its holder died.
                // Relaxed: a hint that someone holds the slot; repair re-checks.
                let holder = c.owner.load(Ordering::Relaxed);
                if holder != 0 {
                    if let Waited::Changed = self.wait_or_repair(c, s, holder) {
                        continue;
                    }
                }
                return Err(Error::Full(()));
            }
            if let Err(holder) = self.lock(c) {
                match self.wait_or_repair(c, s, holder) {
                    Waited::Changed => continue,
                    Waited::Busy => return Err(Error::Full(())),
                }
            }
            self.crash_at(CrashPoint::AfterLock)?;
            // Relaxed: the lock's Acquire made the latest stamp visible.
            if c.stamp.load(Ordering::Relaxed) != s {
                self.unlock(c);
                continue;
            }
            // Relaxed: only helpers read WRITING, to move `tail`; the payload is
            // published by the Release store of FULL below.
            c.stamp.store(mk(t, WRITING), Ordering::Relaxed);
            self.crash_at(CrashPoint::AfterClaim)?;
            // Move `tail` past t (a helper may have done it already).
            advance(tail, t);
            self.crash_at(CrashPoint::AfterIndex)?;
            // SAFETY: we hold slot i's lock in state WRITING: no one else accesses its
            // payload until we store FULL and unlock.
            unsafe { self.copy_in(i, src) };
            self.crash_at(CrashPoint::AfterCopy)?;
            // Release: pairs with the consumer's Acquire stamp load: the payload is
            // visible to whoever sees FULL.
            c.stamp.store(mk(t, FULL), Ordering::Release);
            self.crash_at(CrashPoint::BeforeUnlock)?;
            self.unlock(c);
            // After the item is out (off the path a waiting consumer sees).
            self.mem.prefetch_ctl(i + PRODUCER_PREFETCH);
            return Ok(());
        }
        self.gave_up(Error::Full(()))
    }

    fn pop_raw<R>(&self, read: impl FnOnce(&Payload<'_>) -> R) -> Result<R> {
        let mut read = Some(read);
        let h = self.mem.header();
        let head = &h.head.0;
        // Acquire: pairs with the AcqRel CASes that advance `head`.
        let mut hd = head.load(Ordering::Acquire);
        for tries in 0..self.max_tries() {
            if tries > 0 {
                spin_loop(); // as in `push_raw`
            }
            let i = us(hd & self.mask);
            let c = self.mem.ctl(i);
            // Acquire: pairs with the producer's Release store of FULL(hd).
            let s = c.stamp.load(Ordering::Acquire);
            check_stamp(s, i, self.mask)?;
            let d = lap_diff(s, hd);
            let state = s & STATE_MASK;
            if d > 0 || (d == 0 && state == READING) {
                // Position hd was claimed by another consumer: help move `head`.
                hd = help(head, hd);
                continue;
            }
            if d < 0 || state == EMPTY || state == WRITING {
                // Nothing published at hd yet — unless a dead handle holds the slot.
                // Relaxed: a hint; repair re-checks under the lock.
                let holder = c.owner.load(Ordering::Relaxed);
                if holder != 0 {
                    if let Waited::Changed = self.wait_or_repair(c, s, holder) {
                        continue;
                    }
                }
                return Err(Error::Empty);
            }
            // FULL or DEAD at hd.
            if let Err(holder) = self.lock(c) {
                match self.wait_or_repair(c, s, holder) {
                    Waited::Changed => continue,
                    Waited::Busy => return Err(Error::Empty),
                }
            }
            self.crash_at(CrashPoint::AfterLock)?;
            // Relaxed: the lock's Acquire made the latest stamp visible.
            if c.stamp.load(Ordering::Relaxed) != s {
                self.unlock(c);
                continue;
            }
            // Relaxed: only helpers read READING, to move `head`.
            c.stamp.store(mk(hd, READING), Ordering::Relaxed);
            self.crash_at(CrashPoint::AfterClaim)?;
            // Move `head` past hd (a helper may have done it already).
            let next = advance(head, hd);
            self.crash_at(CrashPoint::AfterIndex)?;
            // We hold slot i's lock in state READING: no producer writes it until we
            // store EMPTY(hd + cap) and unlock (what `Payload` relies on).
            let got = if state == FULL {
                read.take().map(|f| f(&Payload { q: self, slot: i }))
            } else {
                None
            };
            self.crash_at(CrashPoint::AfterCopy)?;
            // Release: pairs with the producer's Acquire stamp load at hd + cap: our
            // payload reads happen before its writes.
            c.stamp
                .store(mk(hd.wrapping_add(self.cap), EMPTY), Ordering::Release);
            self.crash_at(CrashPoint::BeforeUnlock)?;
            self.unlock(c);
            if let Some(r) = got {
                return Ok(r);
            }
            // A dead producer's slot was discarded: look at the next position.
            self.freed.add();
            hd = next;
        }
        self.gave_up(Error::Empty)
    }

    /// Copies `src` into the start of slot `i`. A payload of 1 to 4 whole words (a serde
    /// queue pads small items to words) is copied as that many 8-byte words, constant
    /// sizes the compiler inlines, instead of a `memmove` call per item.
    ///
    /// # Safety
    /// As [`Mem::write`]: the caller holds the slot's claim.
    #[inline(always)]
    unsafe fn copy_in(&self, i: usize, src: &[u8]) {
        match src.len() {
            // SAFETY: forwarded from the caller; src.len() == 8.
            8 => unsafe { self.words_in::<1>(i, src) },
            // SAFETY: forwarded from the caller; src.len() == 16.
            16 => unsafe { self.words_in::<2>(i, src) },
            // SAFETY: forwarded from the caller; src.len() == 24.
            24 => unsafe { self.words_in::<3>(i, src) },
            // SAFETY: forwarded from the caller; src.len() == 32.
            32 => unsafe { self.words_in::<4>(i, src) },
            // SAFETY: forwarded from the caller.
            _ => unsafe { self.mem.write(i, 0, src) },
        }
    }

    /// # Safety
    /// As [`Mem::write`]; `src.len() == 8 * N`.
    #[inline(always)]
    unsafe fn words_in<const N: usize>(&self, i: usize, src: &[u8]) {
        for k in 0..N {
            // SAFETY: forwarded from the caller (bounds are checked by `Mem::write`).
            unsafe { self.mem.write(i, 8 * k, &src[8 * k..8 * k + 8]) };
        }
    }

    /// Copies bytes `off..off + dst.len()` of slot `i` into `dst`, as [`Mpmc::copy_in`]
    /// in reverse.
    ///
    /// # Safety
    /// As [`Mem::read`]: the caller holds the slot's claim.
    #[inline(always)]
    unsafe fn copy_out(&self, i: usize, off: usize, dst: &mut [u8]) {
        match dst.len() {
            // SAFETY: forwarded from the caller; dst.len() == 8.
            8 => unsafe { self.words_out::<1>(i, off, dst) },
            // SAFETY: forwarded from the caller; dst.len() == 16.
            16 => unsafe { self.words_out::<2>(i, off, dst) },
            // SAFETY: forwarded from the caller; dst.len() == 24.
            24 => unsafe { self.words_out::<3>(i, off, dst) },
            // SAFETY: forwarded from the caller; dst.len() == 32.
            32 => unsafe { self.words_out::<4>(i, off, dst) },
            // SAFETY: forwarded from the caller.
            _ => unsafe { self.mem.read(i, off, dst) },
        }
    }

    /// # Safety
    /// As [`Mem::read`]; `dst.len() == 8 * N`.
    #[inline(always)]
    unsafe fn words_out<const N: usize>(&self, i: usize, off: usize, dst: &mut [u8]) {
        for k in 0..N {
            // SAFETY: forwarded from the caller (bounds are checked by `Mem::read`).
            unsafe { self.mem.read(i, off + 8 * k, &mut dst[8 * k..8 * k + 8]) };
        }
    }

    /// After `max_tries`: a ring whose indices are out of range is corrupt; otherwise
    /// report the transient condition.
    fn gave_up<R>(&self, transient: Error) -> Result<R> {
        let h = self.mem.header();
        // Acquire (both): fresh values for the range check.
        let head = h.head.0.load(Ordering::Acquire);
        let tail = h.tail.0.load(Ordering::Acquire);
        let fwd = tail.wrapping_sub(head);
        let back = head.wrapping_sub(tail);
        if fwd > self.cap && back > self.cap {
            return Err(corrupt("tail and head more than a lap apart"));
        }
        Err(transient)
    }
}

/// The payload of a slot a pop holds (READING, locked), for
/// [`Mpmc::try_pop_with`]: read in place, only what is needed.
#[derive(Debug)]
pub struct Payload<'a> {
    q: &'a Mpmc,
    slot: usize,
}

impl Payload<'_> {
    /// Bytes in the slot (the ring's slot size, a multiple of 8).
    pub fn size(&self) -> usize {
        self.q.mem.cfg().slot_size()
    }

    /// Copies bytes `off..off + dst.len()` of the slot into `dst`.
    ///
    /// # Panics
    /// If the range is outside the slot, or (under loom) `off` is not a multiple of 8.
    pub fn read_at(&self, off: usize, dst: &mut [u8]) {
        assert!(
            off <= self.size() && dst.len() <= self.size() - off,
            "Payload::read_at out of the slot"
        );
        // SAFETY: a Payload exists only inside `pop_raw` while it holds this slot in
        // state READING under its lock: no producer writes the slot meanwhile.
        unsafe { self.q.copy_out(self.slot, off, dst) };
    }
}

/// The claimant of position `cur` moves the index `idx` past it: a plain store, not a
/// CAS (one read-modify-write less per operation). Helpers may have moved `idx`
/// further meanwhile; the store then moves it back, by at most the number of claims
/// made concurrently, which is harmless: every position up to the true index shows
/// its claim in its slot's stamp, so a handle starting from a lagging value helps
/// the index forward (with `help`) until it reaches a free position, and
/// [`Mpmc::len`] skips the lag the same way. Returns `cur + 1`.
#[inline]
fn advance(idx: &AtomicU64, cur: u64) -> u64 {
    let next = cur.wrapping_add(1);
    // Release: pairs with the Acquire loads of the index (as the CASes of `help`);
    // the stamp showing our claim is stored before it.
    idx.store(next, Ordering::Release);
    next
}

/// Moves the index `idx` from `cur` to `cur + 1` unless someone did; returns the
/// value now current (a CAS reads the latest value, so loops never spin on a stale
/// index).
#[inline]
fn help(idx: &AtomicU64, cur: u64) -> u64 {
    // AcqRel: continues the index's release sequence (paired with the Acquire loads of
    // it). Failure Acquire: the fresh value we continue from.
    match idx.compare_exchange(
        cur,
        cur.wrapping_add(1),
        Ordering::AcqRel,
        Ordering::Acquire,
    ) {
        Ok(_) => cur.wrapping_add(1),
        Err(now) => now,
    }
}

/// A stamp must name a valid state and a position of its own slot.
#[inline]
fn check_stamp(s: u64, i: usize, mask: u64) -> Result<()> {
    if s & STATE_MASK > DEAD || (s >> 3) & mask != i as u64 {
        return Err(corrupt("slot stamp has an invalid state or position"));
    }
    Ok(())
}
