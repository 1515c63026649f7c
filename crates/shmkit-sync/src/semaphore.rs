//! [`RawSemaphore`], [`Semaphore`] and [`BoundedSemaphore`].
//!
//! Permits held by a process that dies are **not** reclaimed (no holder tracking):
//! a semaphore counts permits, not owners, and Python's does the same. Use a
//! [`crate::Lock`] when ownership matters.

use crate::futex::{self, Deadline};
use crate::{Error, Result};
use shmkit_segment::shim::atomic::{AtomicU32, Ordering};
#[cfg(not(shmkit_loom))]
use shmkit_segment::{Kind, Token};
#[cfg(not(shmkit_loom))]
use std::fmt;
#[cfg(not(shmkit_loom))]
use std::time::Duration;

/// The largest value a semaphore can hold (2^22 - 1; the word's upper bits count
/// sleepers).
pub const MAX_VALUE: u32 = (1 << 22) - 1;

/// `word` bits: the value.
const VALUE_MASK: u32 = (1 << 22) - 1;
/// `word`: one announced sleeper.
const SLEEPER: u32 = 1 << 22;
/// The most sleepers `word` can count; more waiters poll in slices of [`POLL_SLICE`].
pub const MAX_SLEEPERS: u32 = (1 << 10) - 1;
/// How often a waiter that could not announce itself (over [`MAX_SLEEPERS`]) re-checks.
pub const POLL_SLICE: std::time::Duration = std::time::Duration::from_millis(1);

fn sleepers(v: u32) -> u32 {
    v >> 22
}

/// A counting semaphore for shared memory: `#[repr(C)]`, 16 bytes, zero = a
/// semaphore of value 0 with no bound.
///
/// ```text
/// word:    bits 22..32 sleepers (0..=1023) | bits 0..22 value (0..=MAX_VALUE); futex word
/// hint     the word as the last release or acquire left it: only a guess
/// bounded  0 = unbounded; 1 = release may not raise the value above `bound`
/// bound    the bound (a BoundedSemaphore's initial value)
///
///   acquire: CAS value n -> n-1 (n > 0); else spin; else CAS sleepers+1 and sleep on
///            the word while value == 0; the CAS that finally takes a permit (or gives
///            up at the deadline) also removes the announcement
///   release: CAS value n -> n+1 (n < bound, else an error and no change);
///            FUTEX_WAKE 1 if the word it replaced counted a sleeper
/// ```
///
/// Value and sleeper count share one word, so one RMW tells `release` whether anybody
/// sleeps: no fences, no syscall when nobody does, and loom can check it exactly. Each
/// release that sees sleepers wakes one, and a sleeper stays counted until its own CAS
/// takes a permit, so k releases reach k sleepers. (A first design with a WAITERS
/// *bit* cleared by release lost wake-ups with several sleepers; a second used a
/// separate count and a SeqCst fence pair, correct but slower than `sem_post`.)
/// A sleeper killed while waiting stays counted: releases then make one unneeded
/// `FUTEX_WAKE` each. Beyond 1023 simultaneous sleepers, extra waiters poll.
///
/// The fast paths do not load `word` before their CAS: they take the expected value
/// from `hint` (a different address; any value is harmless, a wrong one costs one
/// failed CAS, which returns the real word) and store the new word there after
/// succeeding. On the development VMs a load of the word right after a locked
/// instruction on it costs about as much as the whole release or acquire, so a
/// release+acquire pair costs two CASes and no such load, where `sem_post` +
/// `sem_wait` (load + CAS each) cost two of each. A value seen only in the hint
/// never decides an outcome: "no permit" and "at the bound" are reported only for a
/// value read from the word.
///
/// ```
/// use shmkit_sync::RawSemaphore;
/// let s = RawSemaphore::with_value(1);
/// assert!(s.try_acquire());
/// assert!(!s.try_acquire());
/// s.release()?;
/// assert_eq!(s.get_value(), 1);
/// # Ok::<(), shmkit_sync::Error>(())
/// ```
#[derive(Debug, Default)]
#[repr(C)]
pub struct RawSemaphore {
    word: AtomicU32,
    hint: AtomicU32,
    bounded: AtomicU32,
    bound: AtomicU32,
}

shmkit_segment::assert_layout!(RawSemaphore, size = 16, align = 4, word @ 0, hint @ 4, bounded @ 8, bound @ 12);

// SAFETY: repr(C) of atomic integers only: any bit pattern, no pointers, no Drop.
#[cfg(not(shmkit_loom))]
unsafe impl shmkit_segment::Shared for RawSemaphore {}

impl RawSemaphore {
    /// An unbounded semaphore of value 0 (equal to zeroed memory).
    pub fn new() -> Self {
        Self::with_value(0)
    }

    /// An unbounded semaphore of value `value` (clamped to [`MAX_VALUE`]).
    pub fn with_value(value: u32) -> Self {
        let s = RawSemaphore::default();
        s.init(value, None);
        s
    }

    /// (Re)initialises in place: value `value` (clamped to [`MAX_VALUE`]), bounded by
    /// `bound` if given. For a fresh mapping, before any other process uses it.
    pub fn init(&self, value: u32, bound: Option<u32>) {
        // Relaxed: initialisation happens before publication (segment ready flag).
        self.word.store(value.min(MAX_VALUE), Ordering::Relaxed);
        self.hint.store(value.min(MAX_VALUE), Ordering::Relaxed);
        self.bounded
            .store(u32::from(bound.is_some()), Ordering::Relaxed);
        self.bound.store(bound.unwrap_or(0), Ordering::Relaxed);
    }

    #[inline]
    fn limit(&self) -> u32 {
        // Relaxed: constant after initialisation.
        if self.bounded.load(Ordering::Relaxed) != 0 {
            self.bound.load(Ordering::Relaxed).min(MAX_VALUE)
        } else {
            MAX_VALUE
        }
    }

    /// The bound of a bounded semaphore.
    pub fn bound(&self) -> Option<u32> {
        // Relaxed: constant after initialisation.
        (self.bounded.load(Ordering::Relaxed) != 0).then(|| self.bound.load(Ordering::Relaxed))
    }

    /// Takes a permit if one is available now.
    #[inline]
    pub fn try_acquire(&self) -> bool {
        // Relaxed: only the expected value of the CAS below, which checks it.
        let mut v = self.hint.load(Ordering::Relaxed);
        // Whether `v` was read from the word (a hint never decides "no permit").
        let mut real = false;
        loop {
            if v & VALUE_MASK == 0 {
                if real {
                    return false;
                }
                // Relaxed: the CAS below carries the ordering.
                v = self.word.load(Ordering::Relaxed);
                real = true;
                continue;
            }
            // Acquire: pairs with the Release CAS in `release`, so the releaser's
            // writes are visible to the acquirer. The sleeper count is kept.
            match self
                .word
                .compare_exchange(v, v - 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => {
                    // Relaxed: a guess for the next CAS, nothing more.
                    self.hint.store(v - 1, Ordering::Relaxed);
                    return true;
                }
                Err(now) => (v, real) = (now, true),
            }
        }
    }

    /// Takes a permit, waiting until `deadline`; false if it passed.
    #[inline]
    pub fn acquire_until(&self, deadline: Deadline) -> bool {
        self.try_acquire() || self.acquire_slow(deadline)
    }

    #[cold]
    fn acquire_slow(&self, deadline: Deadline) -> bool {
        let started = futex::now();
        if !deadline.is_expired() && futex::spin_until(deadline, || self.try_acquire()) {
            return true;
        }
        let mut announced = false;
        loop {
            // Relaxed: the CASes below carry the ordering.
            let v = self.word.load(Ordering::Relaxed);
            // Our own count, if we announced one; shared memory is untrusted: a count
            // that a faulty peer cleared is not decremented (no underflow).
            let me = if announced && sleepers(v) > 0 {
                SLEEPER
            } else {
                0
            };
            if v & VALUE_MASK != 0 {
                // Acquire: pairs with the Release CAS in `release`.
                if self
                    .word
                    .compare_exchange(v, v - 1 - me, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    // Relaxed: a guess for the next CAS, nothing more.
                    self.hint.store(v - 1 - me, Ordering::Relaxed);
                    if announced {
                        futex::note_slept(started);
                    }
                    return true;
                }
                continue;
            }
            if deadline.is_expired() {
                // Relaxed: only the count changes.
                if me == 0
                    || self
                        .word
                        .compare_exchange(v, v - me, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    return false;
                }
                continue;
            }
            if !announced {
                if sleepers(v) < MAX_SLEEPERS {
                    // Relaxed: the count only decides whether releasers wake.
                    announced = self
                        .word
                        .compare_exchange(v, v + SLEEPER, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok();
                    continue;
                }
                // Too many sleepers to count one more: poll.
                futex::wait(&self.word, v, Deadline::after(POLL_SLICE).min(deadline));
                continue;
            }
            futex::wait(&self.word, v, deadline);
        }
    }

    /// Takes a permit, blocking as long as needed.
    #[inline]
    pub fn acquire(&self) {
        self.acquire_until(Deadline::NEVER);
    }

    /// Adds a permit, waking one sleeper if any announced itself.
    ///
    /// # Errors
    /// [`Error::ReleasedTooManyTimes`] for a bounded semaphore at its bound, or
    /// [`Error::Overflow`] at [`MAX_VALUE`]; the value is unchanged either way.
    #[inline]
    pub fn release(&self) -> Result<()> {
        let limit = self.limit();
        // Relaxed: only the expected value of the CAS below, which checks it.
        let mut v = self.hint.load(Ordering::Relaxed);
        // Whether `v` was read from the word (a hint never decides "at the bound").
        let mut real = false;
        loop {
            if v & VALUE_MASK >= limit {
                if real {
                    return Err(self.full(v));
                }
                // Relaxed: the CAS below carries the ordering.
                v = self.word.load(Ordering::Relaxed);
                real = true;
                continue;
            }
            // Release: pairs with the Acquire of whoever takes this permit. No carry:
            // the value is below `limit` <= MAX_VALUE.
            match self
                .word
                .compare_exchange(v, v + 1, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => {
                    // Relaxed: a guess for the next CAS, nothing more.
                    self.hint.store(v + 1, Ordering::Relaxed);
                    if sleepers(v) != 0 {
                        futex::wake(&self.word, 1);
                    }
                    return Ok(());
                }
                Err(now) => (v, real) = (now, true),
            }
        }
    }

    /// The error for a release that found the word `v` at the limit.
    #[cold]
    fn full(&self, v: u32) -> Error {
        match self.bound() {
            Some(bound) if v & VALUE_MASK >= bound => Error::ReleasedTooManyTimes { bound },
            _ => Error::Overflow {
                what: "semaphore value",
                limit: MAX_VALUE,
            },
        }
    }

    /// The current value (a snapshot).
    pub fn get_value(&self) -> u32 {
        // Relaxed: a snapshot.
        self.word.load(Ordering::Relaxed) & VALUE_MASK
    }
}

#[cfg(not(shmkit_loom))]
/// Segment kind of a [`Semaphore`] or [`BoundedSemaphore`].
pub const SEMAPHORE_KIND: Kind = Kind::from_tag(*b"SEMA");
#[cfg(not(shmkit_loom))]
const SEM_LEN: usize = std::mem::size_of::<RawSemaphore>();

#[cfg(not(shmkit_loom))]
fn check_value(value: u32) -> Result<()> {
    if value > MAX_VALUE {
        return Err(Error::InvalidArgument {
            what: "value",
            reason: "a semaphore value must be at most 2^22-1 (shmkit_sync::MAX_VALUE)",
        });
    }
    Ok(())
}

#[cfg(not(shmkit_loom))]
macro_rules! semaphore_handle {
    ($(#[$doc:meta])* $name:ident, $bounded:expr) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            shm: crate::handle::Shm<RawSemaphore>,
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("segment", &self.shm.segment().describe())
                    .field("value", &self.get_value())
                    .finish()
            }
        }

        impl $name {
            fn init(value: u32) -> impl FnOnce(&RawSemaphore) {
                move |r| r.init(value, $bounded.then_some(value))
            }

            /// A new anonymous semaphore with `value` permits.
            ///
            /// # Errors
            /// [`Error::InvalidArgument`] if `value` exceeds [`MAX_VALUE`];
            /// [`Error::Segment`].
            pub fn new(value: u32) -> Result<Self> {
                check_value(value)?;
                Ok($name {
                    shm: crate::handle::Shm::anonymous(SEMAPHORE_KIND, SEM_LEN, Self::init(value))?,
                })
            }

            /// A new named semaphore with `value` permits.
            ///
            /// # Errors
            /// As `new`, plus `AlreadyExists`.
            pub fn create(name: &str, value: u32) -> Result<Self> {
                check_value(value)?;
                Ok($name {
                    shm: crate::handle::Shm::create(name, SEMAPHORE_KIND, SEM_LEN, Self::init(value))?,
                })
            }

            /// Opens a named semaphore.
            ///
            /// # Errors
            /// [`Error::Segment`].
            pub fn open(name: &str) -> Result<Self> {
                Ok($name {
                    shm: crate::handle::Shm::open(name, SEMAPHORE_KIND, SEM_LEN)?,
                })
            }

            /// Opens a named semaphore or creates it with `value` permits.
            ///
            /// # Errors
            /// As `create` and `open`.
            pub fn open_or_create(name: &str, value: u32) -> Result<Self> {
                check_value(value)?;
                Ok($name {
                    shm: crate::handle::Shm::open_or_create(name, SEMAPHORE_KIND, SEM_LEN, Self::init(value))?.0,
                })
            }

            /// A token for `from_token`.
            ///
            /// # Errors
            /// [`Error::Segment`].
            pub fn token(&self) -> Result<Token> {
                self.shm.token()
            }

            /// Rebuilds the semaphore from a token.
            ///
            /// # Errors
            /// [`Error::Segment`].
            pub fn from_token(token: &Token) -> Result<Self> {
                Ok($name {
                    shm: crate::handle::Shm::from_token(token, SEMAPHORE_KIND, SEM_LEN)?,
                })
            }

            /// The raw semaphore.
            pub fn raw(&self) -> &RawSemaphore {
                self.shm.raw()
            }

            /// Takes a permit, blocking as long as needed.
            pub fn acquire(&self) {
                self.raw().acquire();
            }

            /// Takes a permit if one is available now.
            pub fn try_acquire(&self) -> bool {
                self.raw().try_acquire()
            }

            /// Takes a permit, waiting at most `timeout` (zero = try once, huge =
            /// forever); returns whether it got one.
            pub fn acquire_timeout(&self, timeout: Duration) -> bool {
                self.raw().acquire_until(futex::deadline_after(timeout))
            }

            /// The current value.
            pub fn get_value(&self) -> u32 {
                self.raw().get_value()
            }
        }

        crate::lock::token_serde!($name);
    };
}

#[cfg(not(shmkit_loom))]
semaphore_handle!(
    /// Python's `multiprocessing.Semaphore`, shared between processes.
    ///
    /// ```
    /// use shmkit_sync::Semaphore;
    /// let s = Semaphore::new(2)?;
    /// assert!(s.try_acquire() && s.try_acquire() && !s.try_acquire());
    /// s.release()?;
    /// assert_eq!(s.get_value(), 1);
    /// # Ok::<(), shmkit_sync::Error>(())
    /// ```
    Semaphore,
    false
);

#[cfg(not(shmkit_loom))]
semaphore_handle!(
    /// Python's `multiprocessing.BoundedSemaphore`: releasing above the initial value
    /// is an error and leaves the value unchanged.
    ///
    /// ```
    /// use shmkit_sync::{BoundedSemaphore, Error};
    /// let s = BoundedSemaphore::new(1)?;
    /// assert!(matches!(s.release(), Err(Error::ReleasedTooManyTimes { bound: 1 })));
    /// assert_eq!(s.get_value(), 1);
    /// # Ok::<(), shmkit_sync::Error>(())
    /// ```
    BoundedSemaphore,
    true
);

#[cfg(not(shmkit_loom))]
impl Semaphore {
    /// Adds a permit.
    ///
    /// # Errors
    /// [`Error::Overflow`] at [`MAX_VALUE`] (value unchanged).
    pub fn release(&self) -> Result<()> {
        self.raw().release()
    }
}

#[cfg(not(shmkit_loom))]
impl BoundedSemaphore {
    /// Adds a permit.
    ///
    /// # Errors
    /// [`Error::ReleasedTooManyTimes`] if the value is at the bound (unchanged).
    pub fn release(&self) -> Result<()> {
        self.raw().release()
    }
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn bad_values_and_bounds() {
        assert!(matches!(
            Semaphore::new(MAX_VALUE + 1),
            Err(Error::InvalidArgument { .. })
        ));
        let s = Semaphore::new(MAX_VALUE).expect("max");
        assert!(matches!(s.release(), Err(Error::Overflow { .. })));
        assert_eq!(s.get_value(), MAX_VALUE);
        let b = BoundedSemaphore::new(0).expect("bounded 0");
        assert!(matches!(
            b.release(),
            Err(Error::ReleasedTooManyTimes { bound: 0 })
        ));
        assert_eq!(b.get_value(), 0);
        assert!(!b.try_acquire());
        assert!(!b.acquire_timeout(Duration::ZERO));
    }

    #[test]
    fn blocked_acquirers_are_woken_one_per_release() {
        let s = Semaphore::new(0).expect("sem");
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || s.acquire_timeout(Duration::from_secs(30)))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        for _ in 0..3 {
            s.release().expect("release");
        }
        for h in hs {
            assert!(h.join().expect("acquirer"));
        }
        assert_eq!(s.get_value(), 0);
        let t = Instant::now();
        assert!(!s.acquire_timeout(Duration::from_millis(30)));
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert!(!s.acquire_timeout(Duration::ZERO));
        s.release().expect("release");
        assert!(s.acquire_timeout(Duration::MAX));
    }

    #[test]
    fn waiters_beyond_the_sleeper_count_poll() {
        let s = std::sync::Arc::new(RawSemaphore::new());
        // Pretend MAX_SLEEPERS processes already sleep (they died, say).
        s.word.store(MAX_SLEEPERS * SLEEPER, Ordering::Relaxed);
        assert!(!s.acquire_until(futex::deadline_after(Duration::from_millis(5))));
        let s2 = std::sync::Arc::clone(&s);
        let h = std::thread::spawn(move || {
            s2.acquire_until(futex::deadline_after(Duration::from_secs(30)))
        });
        std::thread::sleep(Duration::from_millis(10));
        s.release().expect("release");
        assert!(h.join().expect("poller"));
        assert_eq!(s.get_value(), 0);
        assert_eq!(sleepers(s.word.load(Ordering::Relaxed)), MAX_SLEEPERS);
    }

    #[test]
    fn a_wrong_hint_never_decides_an_outcome() {
        let hints = [0, 1, 2, 3, MAX_VALUE, SLEEPER, SLEEPER | 1, u32::MAX];
        for &h in &hints {
            // Value 0: no permit, whatever the hint says.
            let s = RawSemaphore::new();
            s.hint.store(h, Ordering::Relaxed);
            assert!(!s.try_acquire(), "hint {h:#x}");
            assert_eq!(s.get_value(), 0);
            // A release below the bound succeeds even if the hint says "full".
            s.release().expect("release");
            assert_eq!(s.get_value(), 1);
            s.hint.store(h, Ordering::Relaxed);
            assert!(s.try_acquire(), "hint {h:#x}");
            assert_eq!(s.word.load(Ordering::Relaxed), 0);
            // At the bound: an error and no change, whatever the hint says.
            let b = RawSemaphore::default();
            b.init(2, Some(2));
            b.hint.store(h, Ordering::Relaxed);
            assert!(matches!(
                b.release(),
                Err(Error::ReleasedTooManyTimes { bound: 2 })
            ));
            assert_eq!(b.get_value(), 2);
            b.hint.store(h, Ordering::Relaxed);
            assert!(b.try_acquire());
            b.hint.store(h, Ordering::Relaxed);
            b.release().expect("below the bound");
            assert_eq!(b.get_value(), 2);
            // Sleeper counts are kept, and a release that sees one still wakes.
            let c = RawSemaphore::new();
            c.word.store(2 * SLEEPER, Ordering::Relaxed);
            c.hint.store(h, Ordering::Relaxed);
            c.release().expect("release");
            assert_eq!(c.word.load(Ordering::Relaxed), 2 * SLEEPER + 1);
            c.hint.store(h, Ordering::Relaxed);
            assert!(c.try_acquire());
            assert_eq!(c.word.load(Ordering::Relaxed), 2 * SLEEPER);
        }
    }

    #[test]
    fn named_and_token() {
        let name = format!("sync-sem-test-{}", std::process::id());
        let a = BoundedSemaphore::create(&name, 3).expect("create");
        let b = BoundedSemaphore::open(&name).expect("open");
        assert!(a.try_acquire());
        assert_eq!(b.get_value(), 2);
        let c = BoundedSemaphore::from_token(&b.token().expect("token")).expect("token");
        c.release().expect("release");
        assert!(c.release().is_err());
        assert_eq!(a.get_value(), 3);
    }
}
