//! [`RawRLock`] and [`RLock`]: a robust re-entrant lock (Python's `RLock`).

use crate::futex::{self, Deadline};
use crate::raw_mutex::{Acquired, RawMutex};
use crate::{Error, Result};
use shmkit_segment::shim::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The deepest recursion an [`RLock`](crate::RLock) allows (a bound, so the count cannot wrap).
pub const MAX_RECURSION: u32 = 1 << 20;

/// A robust re-entrant lock for shared memory: `#[repr(C)]`, 24 bytes, align 8,
/// zeroed memory is unlocked.
///
/// ```text
/// mutex   a RawMutex: its word names the owning thread (tid)
/// count   recursion depth, read and written only by the owner (1 after the first
///         acquire, reset to 1 when taken over from a dead owner)
/// ```
///
/// ```
/// use shmkit_sync::RawRLock;
/// let r = RawRLock::new();
/// r.acquire()?;
/// r.acquire()?;
/// assert_eq!(r.count(), 2);
/// r.release()?;
/// r.release()?;
/// assert!(r.release().is_err()); // not held any more
/// # Ok::<(), shmkit_sync::Error>(())
/// ```
#[derive(Debug, Default)]
#[repr(C)]
pub struct RawRLock {
    mutex: RawMutex,
    count: AtomicU32,
    _pad: AtomicU32,
}

shmkit_segment::assert_layout!(RawRLock, size = 24, align = 8, mutex @ 0, count @ 16);

// SAFETY: repr(C) of a Shared RawMutex and atomic integers: any bit pattern, no
// pointers, no Drop.
#[cfg(not(shmkit_loom))]
unsafe impl shmkit_segment::Shared for RawRLock {}

impl RawRLock {
    /// An unlocked re-entrant lock (the same as zeroed memory).
    pub fn new() -> Self {
        RawRLock::default()
    }

    /// Acquires (or re-enters), waiting until `deadline`; `Ok(None)` when it passed.
    ///
    /// # Errors
    /// [`Error::Overflow`] past [`MAX_RECURSION`] (the lock stays held as before).
    pub fn acquire_until(&self, deadline: Deadline) -> Result<Option<Acquired>> {
        if self.mutex.is_owned_by_current_thread() {
            // Relaxed: only the owning thread touches `count`.
            let c = self.count.load(Ordering::Relaxed);
            if c >= MAX_RECURSION {
                return Err(Error::Overflow {
                    what: "RLock recursion depth",
                    limit: MAX_RECURSION,
                });
            }
            // Relaxed: as above.
            self.count.store(c + 1, Ordering::Relaxed);
            return Ok(Some(Acquired::Clean));
        }
        let got = self.mutex.lock_until(deadline);
        if got.is_some() {
            // Relaxed: we own the lock; the mutex's Acquire ordered us after the
            // previous owner's last write.
            self.count.store(1, Ordering::Relaxed);
        }
        Ok(got)
    }

    /// Acquires (or re-enters), blocking as long as needed.
    ///
    /// # Errors
    /// [`Error::Overflow`] past [`MAX_RECURSION`]; [`Error::OwnerDied`] when the
    /// previous owner died (the lock is then held, with count 1).
    pub fn acquire(&self) -> Result<()> {
        match self.acquire_until(Deadline::NEVER)? {
            Some(Acquired::OwnerDied) => Err(Error::OwnerDied),
            _ => Ok(()),
        }
    }

    /// Releases one level; the lock is free when the count reaches zero.
    ///
    /// # Errors
    /// [`Error::NotOwner`] if the calling thread does not hold it (nothing changes).
    pub fn release(&self) -> Result<()> {
        if !self.mutex.is_owned_by_current_thread() {
            return Err(Error::NotOwner { op: "release" });
        }
        // Relaxed: only the owner touches `count`.
        let c = self.count.load(Ordering::Relaxed);
        if c > 1 {
            // Relaxed: as above.
            self.count.store(c - 1, Ordering::Relaxed);
            return Ok(());
        }
        // Relaxed: published by the mutex's Release.
        self.count.store(0, Ordering::Relaxed);
        self.mutex.unlock()
    }

    /// The recursion depth (meaningful to the owner).
    pub fn count(&self) -> u32 {
        // Relaxed: a snapshot.
        self.count.load(Ordering::Relaxed)
    }

    /// Whether the calling thread holds the lock.
    pub fn is_owned_by_current_thread(&self) -> bool {
        self.mutex.is_owned_by_current_thread()
    }

    /// Waits at most `timeout` (zero = try once).
    ///
    /// # Errors
    /// As [`RawRLock::acquire_until`].
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<Acquired>> {
        self.acquire_until(futex::deadline_after(timeout))
    }
}

#[cfg(not(shmkit_loom))]
pub(crate) mod owned {
    use super::*;
    use crate::error::{LockError, LockResult};
    use crate::handle::Shm;
    use shmkit_segment::{Kind, Token};
    use std::fmt;
    use std::marker::PhantomData;

    /// Segment kind of an [`RLock`].
    pub const RLOCK_KIND: Kind = Kind::from_tag(*b"RLCK");
    const LEN: usize = std::mem::size_of::<RawRLock>();

    /// Python's `multiprocessing.RLock`: re-entrant for the owning thread of the
    /// owning process, robust like [`crate::Lock`].
    ///
    /// ```
    /// use shmkit_sync::RLock;
    /// let r = RLock::new()?;
    /// let a = r.lock().expect("clean");
    /// let b = r.lock().expect("re-entered");
    /// drop((b, a));
    /// assert!(r.try_lock().is_ok());
    /// # Ok::<(), shmkit_sync::Error>(())
    /// ```
    #[derive(Clone)]
    pub struct RLock {
        shm: Shm<RawRLock>,
    }

    impl fmt::Debug for RLock {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("RLock")
                .field("segment", &self.shm.segment().describe())
                .finish()
        }
    }

    impl RLock {
        /// A new anonymous re-entrant lock.
        ///
        /// # Errors
        /// [`Error::Segment`].
        pub fn new() -> Result<Self> {
            Ok(RLock {
                shm: Shm::anonymous(RLOCK_KIND, LEN, |_| {})?,
            })
        }

        /// A new named re-entrant lock.
        ///
        /// # Errors
        /// [`Error::Segment`].
        pub fn create(name: &str) -> Result<Self> {
            Ok(RLock {
                shm: Shm::create(name, RLOCK_KIND, LEN, |_| {})?,
            })
        }

        /// Opens a named re-entrant lock.
        ///
        /// # Errors
        /// [`Error::Segment`].
        pub fn open(name: &str) -> Result<Self> {
            Ok(RLock {
                shm: Shm::open(name, RLOCK_KIND, LEN)?,
            })
        }

        /// Opens or creates a named re-entrant lock.
        ///
        /// # Errors
        /// [`Error::Segment`].
        pub fn open_or_create(name: &str) -> Result<Self> {
            Ok(RLock {
                shm: Shm::open_or_create(name, RLOCK_KIND, LEN, |_| {})?.0,
            })
        }

        /// A token for [`RLock::from_token`].
        ///
        /// # Errors
        /// [`Error::Segment`].
        pub fn token(&self) -> Result<Token> {
            self.shm.token()
        }

        /// Rebuilds from a token.
        ///
        /// # Errors
        /// [`Error::Segment`].
        pub fn from_token(token: &Token) -> Result<Self> {
            Ok(RLock {
                shm: Shm::from_token(token, RLOCK_KIND, LEN)?,
            })
        }

        /// The raw lock.
        pub fn raw(&self) -> &RawRLock {
            self.shm.raw()
        }

        fn result(&self, r: Result<Option<Acquired>>) -> LockResult<RLockGuard<'_>> {
            let guard = || RLockGuard {
                raw: self.raw(),
                _not_send: PhantomData,
            };
            match r {
                Ok(Some(Acquired::Clean)) => Ok(guard()),
                Ok(Some(Acquired::OwnerDied)) => Err(LockError::OwnerDied(guard())),
                Ok(None) => Err(LockError::WouldBlock),
                Err(e) => panic!("RLock: {e}"),
            }
        }

        /// Acquires or re-enters, blocking as long as needed.
        ///
        /// # Errors
        /// [`LockError::OwnerDied`] with the guard if the previous owner died.
        ///
        /// # Panics
        /// Past [`MAX_RECURSION`] nested acquisitions.
        pub fn lock(&self) -> LockResult<RLockGuard<'_>> {
            self.result(self.raw().acquire_until(Deadline::NEVER))
        }

        /// Acquires or re-enters if possible now.
        ///
        /// # Errors
        /// [`LockError::WouldBlock`] or [`LockError::OwnerDied`] (with the guard).
        ///
        /// # Panics
        /// Past [`MAX_RECURSION`] nested acquisitions.
        pub fn try_lock(&self) -> LockResult<RLockGuard<'_>> {
            self.result(self.raw().acquire_until(Deadline::at_nanos(0)))
        }

        /// Acquires or re-enters, waiting at most `timeout`.
        ///
        /// # Errors
        /// [`LockError::WouldBlock`] on timeout or [`LockError::OwnerDied`].
        ///
        /// # Panics
        /// Past [`MAX_RECURSION`] nested acquisitions.
        pub fn lock_timeout(&self, timeout: Duration) -> LockResult<RLockGuard<'_>> {
            self.result(self.raw().acquire_timeout(timeout))
        }
    }

    crate::lock::token_serde!(RLock);

    /// One level of an [`RLock`]; releases that level when dropped. Not `Send`.
    #[must_use = "the level is released as soon as the guard is dropped"]
    pub struct RLockGuard<'a> {
        raw: &'a RawRLock,
        _not_send: PhantomData<*const ()>,
    }

    impl fmt::Debug for RLockGuard<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("RLockGuard")
                .field("count", &self.raw.count())
                .finish()
        }
    }

    impl Drop for RLockGuard<'_> {
        fn drop(&mut self) {
            // Fails only in a forked child that inherited the guard.
            let _ = self.raw.release();
        }
    }
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::owned::RLock;
    use super::*;
    use std::sync::Arc;

    #[test]
    fn reentry_counts_and_non_owner_release_fails() {
        let r = Arc::new(RawRLock::new());
        r.acquire().expect("acquire");
        r.acquire().expect("re-enter");
        let r2 = Arc::clone(&r);
        std::thread::spawn(move || {
            assert!(matches!(r2.release(), Err(Error::NotOwner { .. })));
            assert_eq!(
                r2.acquire_timeout(Duration::ZERO).expect("no overflow"),
                None
            );
        })
        .join()
        .expect("thread");
        assert_eq!(r.count(), 2);
        r.release().expect("release");
        r.release().expect("release");
        assert!(r.release().is_err());
    }

    #[test]
    fn recursion_is_bounded() {
        let r = RawRLock::new();
        for _ in 0..MAX_RECURSION {
            r.acquire().expect("acquire");
        }
        assert!(matches!(r.acquire(), Err(Error::Overflow { .. })));
        assert_eq!(r.count(), MAX_RECURSION);
        for _ in 0..MAX_RECURSION {
            r.release().expect("release");
        }
        assert!(!r.is_owned_by_current_thread());
    }

    #[test]
    fn dead_owner_is_reported_and_count_reset() {
        let r = RLock::new().expect("rlock");
        let r2 = r.clone();
        std::thread::spawn(move || {
            std::mem::forget(r2.lock().expect("clean"));
            std::mem::forget(r2.lock().expect("clean"));
        })
        .join()
        .expect("thread");
        let g = r
            .lock()
            .expect_err("owner died")
            .into_guard()
            .expect("guard");
        assert_eq!(r.raw().count(), 1);
        drop(g);
        assert!(r.try_lock().is_ok());
    }
}
