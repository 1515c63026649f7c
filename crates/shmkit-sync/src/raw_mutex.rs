//! [`RawMutex`]: a robust, process-shared mutex in 16 bytes of any shared mapping.
//!
//! See `docs/adr/0002-robust-mutex.md` for why robustness is done in user space.

use crate::futex::{self, Deadline};
use crate::ident::{self, Me, TID_MASK};
use crate::{Error, Result};
use shmkit_segment::shim::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// `word` bit: a waiter may be sleeping; the unlocker must wake one.
const WAITERS: u32 = 1 << 31;
/// `word` bit: the lock is free because its owner died; the next locker is told.
const OWNER_DIED: u32 = 1 << 30;

/// How long a sleeping locker waits before checking whether the owner still lives.
pub const LIVENESS_SLICE: Duration = Duration::from_millis(20);

/// A spinning locker reads the lock word at every spin-loop pause while its reads
/// find the line in its own cache, and doubles the gap between reads (up to this
/// many pauses, 64 × ~11 ns ≈ 0.7 µs on the development VMs) while each read has to
/// fetch the line from the holder's core. Reading on every pause regardless (the
/// first design) cost a holder that re-locks in a loop a cache miss on nearly every
/// operation: two processes contending managed 0.53x the throughput of a robust
/// pthread mutex (which never spins). A fixed 1.4 µs gap fixed that but made a waiter
/// miss short holds by up to 1.4 µs (0.57x pthread with 200 ns holds 500 ns apart,
/// against 1.0x before); gaps that only double made long holds end up to 0.7 µs late.
const POLL_EVERY: u32 = 64;

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an acquired lock must be unlocked, and OwnerDied means the data needs checking"]
pub enum Acquired {
    /// The lock was free or released normally.
    Clean,
    /// The previous owner died holding it; the caller holds it now.
    OwnerDied,
}

/// A robust mutex for shared memory: `#[repr(C)]`, 16 bytes, align 8, no pointers,
/// zeroed memory is an unlocked mutex.
///
/// ```text
/// word:  bit 31 WAITERS | bit 30 OWNER_DIED | bits 0..30 owner tid (0 = free)
///
///   word                 state                              next
///   0                    free                               lock: CAS -> T
///   T                    held by thread T, no sleeper       unlock: CAS T -> 0
///   T|WAITERS            held, a locker may sleep           unlock: swap 0, wake 1
///   OWNER_DIED[|WAITERS] free, T died holding it            lock: CAS -> me|WAITERS, report
///
/// owner_tid, owner_start: the owner's tid and thread start time, written right after
///   the CAS (Release on owner_tid) and owner_tid cleared before unlocking. A waiter
///   trusts owner_start only when owner_tid equals the word's tid.
/// ```
///
/// Fast paths: `lock` is one CAS (plus two plain stores), `unlock` one CAS; neither
/// makes a system call. A contended locker spins for the adaptive budget of
/// [`futex::spin_until`] (test and test-and-set: it CASes only a free word, keeping
/// the bits it finds), reading the word at every pause while that costs nothing and
/// backing off to one read per ~0.7 µs while each read steals the line from a holder
/// that keeps writing it (see `docs/sync.md`); then it sets WAITERS and sleeps
/// on `word` in slices of [`LIVENESS_SLICE`]. A locker that has slept takes the word
/// with WAITERS (a wake-up it consumed may have been the only one while others still
/// sleep); one that has not keeps the bits it finds. After each slice that ends with the
/// same owner it checks the owner's liveness by `(tid, start time)`. A dead owner's
/// word is replaced by `OWNER_DIED | WAITERS`; the locker that then wins the CAS gets
/// [`Acquired::OwnerDied`]. If the owner died between its CAS and recording its start
/// time, the check uses the tid alone, refusing any thread that started after the
/// waiter first saw that tid own the lock (so a reused tid is not taken for the owner).
///
/// ```
/// use shmkit_sync::{Acquired, RawMutex};
/// let m = RawMutex::new();
/// assert_eq!(m.lock(), Acquired::Clean);
/// assert!(m.try_lock().is_none());
/// m.unlock()?;
/// assert!(m.unlock().is_err()); // not held
/// # Ok::<(), shmkit_sync::Error>(())
/// ```
#[derive(Debug, Default)]
#[repr(C)]
pub struct RawMutex {
    word: AtomicU32,
    owner_tid: AtomicU32,
    owner_start: AtomicU64,
}

shmkit_segment::assert_layout!(RawMutex, size = 16, align = 8, word @ 0, owner_tid @ 4, owner_start @ 8);

// SAFETY: repr(C) of atomic integers only: valid for every bit pattern, no pointers,
// no Drop, mutated only atomically.
#[cfg(not(shmkit_loom))]
unsafe impl shmkit_segment::Shared for RawMutex {}

impl RawMutex {
    /// An unlocked mutex (the same as zeroed memory).
    pub fn new() -> Self {
        RawMutex {
            word: AtomicU32::new(0),
            owner_tid: AtomicU32::new(0),
            owner_start: AtomicU64::new(0),
        }
    }

    /// Locks, blocking as long as needed.
    #[inline]
    pub fn lock(&self) -> Acquired {
        // With no deadline the lock is always acquired eventually.
        self.lock_until(Deadline::NEVER).unwrap_or(Acquired::Clean)
    }

    /// Locks if that is possible right now. When the lock is held, checks once
    /// whether its owner died (reading `/proc`), and takes it over if so.
    #[inline]
    pub fn try_lock(&self) -> Option<Acquired> {
        self.lock_until(Deadline::at_nanos(0))
    }

    /// Locks, waiting until `deadline` at the latest; `None` when it passed.
    #[inline]
    pub fn lock_until(&self, deadline: Deadline) -> Option<Acquired> {
        let me = ident::current();
        // Acquire: pairs with the Release of the unlock that freed the word.
        if self
            .word
            .compare_exchange(0, me.tid, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            self.record(me);
            return Some(Acquired::Clean);
        }
        self.lock_slow(me, deadline)
    }

    /// Locks, waiting at most `timeout` (zero = try once; huge = forever).
    pub fn lock_timeout(&self, timeout: Duration) -> Option<Acquired> {
        self.lock_until(futex::deadline_after(timeout))
    }

    #[inline]
    fn record(&self, me: Me) {
        // Relaxed: published by the Release store of owner_tid just below.
        self.owner_start.store(me.start, Ordering::Relaxed);
        // Release: pairs with the Acquire load of owner_tid in `owner_alive`.
        self.owner_tid.store(me.tid, Ordering::Release);
    }

    /// Tries to take the word `v` (whose tid is 0), leaving `bits` set.
    fn take(&self, v: u32, me: Me, bits: u32) -> Option<Acquired> {
        // Acquire: pairs with the Release of the unlock (or of the recovery CAS).
        self.word
            .compare_exchange(v, me.tid | bits, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        self.record(me);
        Some(if v & OWNER_DIED != 0 {
            Acquired::OwnerDied
        } else {
            Acquired::Clean
        })
    }

    #[cold]
    fn lock_slow(&self, me: Me, deadline: Deadline) -> Option<Acquired> {
        let started = futex::now();
        let mut got = None;
        if !deadline.is_expired() {
            // Test-and-test-and-set with backed-off reads: `spin_until` calls us once
            // per spin-loop pause. A read that found the line in our cache (the holder
            // has not written it since our last read) cost nobody anything: read again
            // at the next pause. A read that had to fetch the line took it from a
            // holder that keeps writing it (re-locking in a loop): double the gap, up
            // to POLL_EVERY pauses, so that holder keeps the line for many iterations.
            let (mut calls, mut next, mut gap) = (0u32, 0u32, 1u32);
            futex::spin_until(deadline, || {
                calls = calls.wrapping_add(1);
                if calls <= next {
                    return false;
                }
                let (v, fetched) = load_timed(&self.word);
                gap = if fetched {
                    gap.saturating_mul(2).min(POLL_EVERY)
                } else {
                    1
                };
                next = calls.saturating_add(gap - 1);
                if v & TID_MASK == 0 {
                    got = self.take(v, me, v & WAITERS);
                }
                got.is_some()
            });
            if got.is_some() {
                return got;
            }
        }
        // (tid, boot ticks when first seen owning) for the liveness check.
        let mut watch: Option<(u32, u64)> = None;
        let mut checked_at_deadline = false;
        // Whether we have slept on the word: a wake-up we consumed may have been the
        // only one, with WAITERS cleared by that unlock while others still sleep.
        let mut slept = false;
        loop {
            // Relaxed: the CAS in `take` carries the Acquire.
            let v = self.word.load(Ordering::Relaxed);
            let owner = v & TID_MASK;
            if owner == 0 {
                // After a sleep, someone else may still sleep: set WAITERS so our
                // unlock wakes them. Before it, keep whatever bits the word has (a
                // woken sleeper that goes back to sleep sets WAITERS again itself).
                let bits = if slept { WAITERS } else { v & WAITERS };
                if let Some(a) = self.take(v, me, bits) {
                    futex::note_slept(started);
                    return Some(a);
                }
                continue;
            }
            if watch.map(|w| w.0) != Some(owner) {
                watch = Some((owner, ident::boot_ticks()));
            }
            if deadline.is_expired() {
                if checked_at_deadline || !self.reap_if_dead(v, watch) {
                    return None;
                }
                checked_at_deadline = true;
                continue;
            }
            if v & WAITERS == 0
                && self
                    .word
                    .compare_exchange(v, v | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            #[cfg(not(shmkit_loom))]
            let slice = Deadline::after(LIVENESS_SLICE).min(deadline);
            #[cfg(shmkit_loom)]
            let slice = deadline;
            slept = true;
            if !futex::wait(&self.word, v | WAITERS, slice) {
                // The slice ended with no wake-up: does the owner still live?
                // Relaxed: only compared with `v`; `reap_if_dead` re-reads.
                if self.word.load(Ordering::Relaxed) & TID_MASK == owner {
                    self.reap_if_dead(v | WAITERS, watch);
                }
            }
        }
    }

    /// If the owner in word `v` is dead, frees the word with OWNER_DIED (keeping
    /// WAITERS) and returns true.
    fn reap_if_dead(&self, v: u32, watch: Option<(u32, u64)>) -> bool {
        let owner = v & TID_MASK;
        if owner == 0 || self.owner_alive(owner, watch) {
            return false;
        }
        // Relaxed load; the CAS fails if anything changed since.
        let now = self.word.load(Ordering::Relaxed);
        if now & TID_MASK != owner {
            return false;
        }
        // Relaxed: forget the dead owner's record, unless a new owner replaced it;
        // published by the Release CAS below.
        let _ = self
            .owner_tid
            .compare_exchange(owner, 0, Ordering::Relaxed, Ordering::Relaxed);
        // Release: a later `take` (Acquire) sees the cleared side field.
        self.word
            .compare_exchange(
                now,
                (now & WAITERS) | OWNER_DIED,
                Ordering::Release,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    fn owner_alive(&self, owner: u32, watch: Option<(u32, u64)>) -> bool {
        // Acquire: pairs with the Release store in `record`, so owner_start is the
        // value written by this owner.
        let recorded = self.owner_tid.load(Ordering::Acquire) == owner;
        // Relaxed: ordered by the Acquire above.
        let start = recorded.then(|| self.owner_start.load(Ordering::Relaxed));
        let seen_at = watch.filter(|w| w.0 == owner).map_or(0, |w| w.1);
        ident::is_alive(owner, start, seen_at)
    }

    /// Unlocks.
    ///
    /// # Errors
    /// [`Error::NotOwner`] if the calling thread does not hold the lock (the lock is
    /// left as it was).
    #[inline]
    pub fn unlock(&self) -> Result<()> {
        let me = ident::current();
        // Relaxed: an ownership check; only the owner can change the tid bits now.
        let v = self.word.load(Ordering::Relaxed);
        if v & TID_MASK != me.tid {
            return Err(Error::NotOwner { op: "unlock" });
        }
        // Relaxed: published by the Release swap/CAS below.
        self.owner_tid.store(0, Ordering::Relaxed);
        // Release: pairs with the Acquire CAS of the next locker.
        if self
            .word
            .compare_exchange(me.tid, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            // Release: as above. WAITERS was set: wake one sleeper.
            let prev = self.word.swap(0, Ordering::Release);
            if prev & WAITERS != 0 {
                futex::wake(&self.word, 1);
            }
        }
        Ok(())
    }

    /// Whether any thread holds the lock (a snapshot).
    pub fn is_locked(&self) -> bool {
        // Relaxed: a snapshot for diagnostics.
        self.word.load(Ordering::Relaxed) & TID_MASK != 0
    }

    /// Whether the calling thread holds the lock.
    pub fn is_owned_by_current_thread(&self) -> bool {
        // Relaxed: only this thread can make the answer true or false.
        self.word.load(Ordering::Relaxed) & TID_MASK == ident::current().tid
    }

    /// The raw state word (for tests and diagnostics).
    pub fn state(&self) -> u32 {
        // Relaxed: a snapshot.
        self.word.load(Ordering::Relaxed)
    }

    /// Overwrites the lock word as if thread `tid` held the lock and then vanished
    /// without recording itself: for crash tests of the recovery path.
    #[doc(hidden)]
    pub fn simulate_holder(&self, tid: u32) {
        // Relaxed: test-only state injection, before any other thread looks.
        self.owner_tid.store(0, Ordering::Relaxed);
        self.word.store(tid & TID_MASK, Ordering::Release);
    }
}

/// A read of the lock word costing more than this many TSC cycles fetched the line
/// from another core (an L1 hit costs ~30 with the two time-stamp reads, a cross-core
/// transfer several hundred).
#[cfg(all(target_arch = "x86_64", not(shmkit_loom)))]
const FETCH_CYCLES: u64 = 100;

/// Loads `word` (Relaxed) and tells whether the load had to fetch the cache line
/// from another core. Interrupts and preemption only make it say "fetched" (the
/// safe answer: the spinner backs off).
#[cfg(all(target_arch = "x86_64", not(shmkit_loom)))]
#[inline]
fn load_timed(word: &AtomicU32) -> (u32, bool) {
    use std::arch::x86_64::{_mm_lfence, _rdtsc};
    // SAFETY: RDTSC and LFENCE (SSE2) are part of baseline x86_64, have no operands
    // or preconditions, and Linux lets user space run RDTSC.
    let t0 = unsafe { _rdtsc() };
    // Relaxed: the caller's CAS carries the ordering.
    let v = word.load(Ordering::Relaxed);
    // SAFETY: as above; LFENCE makes the second RDTSC wait for the load.
    unsafe { _mm_lfence() };
    // SAFETY: as above.
    let t1 = unsafe { _rdtsc() };
    (v, t1.wrapping_sub(t0) > FETCH_CYCLES)
}

/// Without a cycle counter (or under loom) every read counts as a fetch: plain
/// exponential backoff.
#[cfg(not(all(target_arch = "x86_64", not(shmkit_loom))))]
#[inline]
fn load_timed(word: &AtomicU32) -> (u32, bool) {
    // Relaxed: the caller's CAS carries the ordering.
    (word.load(Ordering::Relaxed), true)
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn lock_unlock_and_owner_checks() {
        let m = RawMutex::new();
        assert!(!m.is_locked());
        assert_eq!(m.lock(), Acquired::Clean);
        assert!(m.is_owned_by_current_thread());
        let m = Arc::new(m);
        let m2 = Arc::clone(&m);
        std::thread::spawn(move || {
            assert!(matches!(m2.unlock(), Err(Error::NotOwner { .. })));
            assert!(m2.try_lock().is_none());
            assert!(m2.lock_timeout(Duration::from_millis(30)).is_none());
        })
        .join()
        .expect("thread");
        assert!(m.is_locked());
        m.unlock().expect("owner unlocks");
        assert!(m.unlock().is_err());
        assert_eq!(m.state(), 0);
    }

    #[test]
    fn threads_exclude_each_other() {
        let m = Arc::new(RawMutex::new());
        let counter = Arc::new(AtomicU64::new(0));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let (m, c) = (Arc::clone(&m), Arc::clone(&counter));
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let _ = m.lock();
                        // Relaxed load+store (not RMW): a lost update means no exclusion.
                        let v = c.load(Ordering::Relaxed);
                        c.store(v + 1, Ordering::Relaxed);
                        m.unlock().expect("unlock");
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().expect("thread");
        }
        assert_eq!(counter.load(Ordering::Relaxed), 80_000);
        assert_eq!(m.state(), 0);
    }

    #[test]
    fn a_locker_that_slept_takes_the_lock_with_waiters() {
        let m = Arc::new(RawMutex::new());
        let _ = m.lock();
        let m2 = Arc::clone(&m);
        let h = std::thread::spawn(move || {
            assert_eq!(m2.lock(), Acquired::Clean);
            let tid = ident::current().tid;
            // It slept, so another sleeper may be left: its unlock must wake.
            assert_eq!(m2.state(), tid | WAITERS);
            m2.unlock().expect("unlock");
        });
        // The locker announces itself once its spin budget (<= MAX_SPIN) is spent.
        let t = Instant::now();
        while m.state() & WAITERS == 0 {
            assert!(t.elapsed() < Duration::from_secs(30), "never announced");
            std::thread::yield_now();
        }
        m.unlock().expect("unlock");
        h.join().expect("locker");
        assert_eq!(m.state(), 0);
        // A locker that never slept leaves the word as it found it.
        let _ = m.lock();
        assert_eq!(m.state(), ident::current().tid);
        m.unlock().expect("unlock");
    }

    #[test]
    fn dead_unrecorded_owner_is_reaped() {
        let m = RawMutex::new();
        // A tid far above any pid_max: no such thread exists.
        m.simulate_holder(0x3FFF_FFF0);
        let t = Instant::now();
        assert_eq!(
            m.lock_timeout(Duration::from_secs(10)),
            Some(Acquired::OwnerDied)
        );
        assert!(t.elapsed() < Duration::from_secs(5));
        m.unlock().expect("unlock");
        assert_eq!(m.lock(), Acquired::Clean);
        m.unlock().expect("unlock");
        // try_lock checks once too.
        m.simulate_holder(0x3FFF_FFF0);
        assert_eq!(m.try_lock(), Some(Acquired::OwnerDied));
        m.unlock().expect("unlock");
    }

    #[test]
    fn thread_that_exits_holding_the_lock_is_detected() {
        let m = Arc::new(RawMutex::new());
        let m2 = Arc::clone(&m);
        std::thread::spawn(move || {
            let _ = m2.lock();
        })
        .join()
        .expect("thread");
        assert_eq!(m.lock(), Acquired::OwnerDied);
        m.unlock().expect("unlock");
    }

    #[test]
    fn live_holder_is_not_reaped_and_zero_timeout_tries_once() {
        let m = RawMutex::new();
        let _ = m.lock();
        let t = Instant::now();
        assert!(m.lock_timeout(Duration::ZERO).is_none());
        assert!(m.lock_timeout(Duration::from_millis(60)).is_none());
        assert!(t.elapsed() >= Duration::from_millis(60));
        m.unlock().expect("unlock");
        assert!(m.lock_timeout(Duration::MAX).is_some());
        m.unlock().expect("unlock");
    }
}
