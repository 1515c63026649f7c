//! [`RawCondition`] and [`Condition`]: a condition variable bound to a robust lock.

use crate::futex::{self, Deadline};
use crate::raw_mutex::{Acquired, RawMutex};
use crate::{Error, Result};
use shmkit_segment::shim::atomic::{AtomicU32, Ordering};

/// A condition variable for shared memory: `#[repr(C)]`, 12 bytes, zero = no
/// waiters. Used together with a [`RawMutex`] that every caller holds.
///
/// ```text
/// seq      futex word; +1 by every notify that wakes somebody
/// waiters  registered waiters not yet picked by a notify      (changed under the lock)
/// signals  notifications picked but not yet consumed           (consumed without it)
/// ```
///
/// `wait`: under the lock, `waiters += 1`, read `seq`, unlock, then sleep until `seq`
/// moves; after it moved, take one of `signals` (CAS) or keep sleeping on the new
/// value. `notify(n)`: under the lock, `k = min(n, waiters)`; `waiters -= k`;
/// `signals += k`; `seq += 1`; wake `k`. A waiter that times out relocks and either
/// takes a pending signal (it was notified after all) or deregisters (`waiters -= 1`),
/// so `waiters + signals` always equals the number of registered waiters and a notify
/// makes exactly `min(n, waiters)` waits return notified — counted in shared state,
/// never from the futex return value. A waiter only takes a signal after `seq` moved
/// past the value it registered with, so it cannot take one issued before it waited.
///
/// A waiter killed while waiting stays counted: a later notify may pick it, and its
/// signal is then taken by a later waiter (a spurious, not a lost, wake-up).
#[derive(Debug, Default)]
#[repr(C)]
pub struct RawCondition {
    seq: AtomicU32,
    waiters: AtomicU32,
    signals: AtomicU32,
}

shmkit_segment::assert_layout!(RawCondition, size = 12, align = 4, seq @ 0, waiters @ 4, signals @ 8);

// SAFETY: repr(C) of atomic integers only: any bit pattern, no pointers, no Drop.
#[cfg(not(shmkit_loom))]
unsafe impl shmkit_segment::Shared for RawCondition {}

impl RawCondition {
    /// A condition with no waiters (the same as zeroed memory).
    pub fn new() -> Self {
        RawCondition::default()
    }

    fn take_signal(&self) -> bool {
        // Acquire: pairs with the Release in `notify`, ordering the notifier's writes
        // before our return.
        self.signals
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |s| s.checked_sub(1))
            .is_ok()
    }

    /// Atomically releases `mutex` and waits for a notification or `deadline`, then
    /// re-acquires `mutex`. Returns whether it was notified (false = timed out).
    ///
    /// # Errors
    /// [`Error::NotOwner`] if the caller does not hold `mutex` (nothing happens);
    /// [`Error::OwnerDied`] if, while re-acquiring, the mutex's holder had died — the
    /// caller holds the mutex again either way.
    pub fn wait_until(&self, mutex: &RawMutex, deadline: Deadline) -> Result<bool> {
        if !mutex.is_owned_by_current_thread() {
            return Err(Error::NotOwner { op: "wait" });
        }
        // Relaxed: `waiters` changes only under the mutex.
        self.waiters.fetch_add(1, Ordering::Relaxed);
        // Relaxed: `seq` changes only under the mutex, which we hold.
        let mut seen = self.seq.load(Ordering::Relaxed);
        mutex.unlock()?;
        let mut notified = false;
        loop {
            let woke = futex::wait(&self.seq, seen, deadline);
            // Acquire: pairs with the Release increment in `notify`.
            let now = self.seq.load(Ordering::Acquire);
            if now != seen {
                if self.take_signal() {
                    notified = true;
                    break;
                }
                seen = now;
            }
            if !woke || deadline.is_expired() {
                break;
            }
        }
        let relock = mutex.lock();
        if !notified {
            if self.take_signal() {
                notified = true;
            } else {
                // Relaxed: under the mutex.
                self.waiters.fetch_sub(1, Ordering::Relaxed);
            }
        }
        match relock {
            Acquired::Clean => Ok(notified),
            Acquired::OwnerDied => Err(Error::OwnerDied),
        }
    }

    /// Wakes up to `n` waiters; returns how many were picked (`min(n, waiters)`).
    ///
    /// # Errors
    /// [`Error::NotOwner`] if the caller does not hold `mutex`.
    pub fn notify(&self, mutex: &RawMutex, n: u32) -> Result<u32> {
        if !mutex.is_owned_by_current_thread() {
            return Err(Error::NotOwner { op: "notify" });
        }
        // Relaxed: `waiters` changes only under the mutex.
        let w = self.waiters.load(Ordering::Relaxed);
        let k = n.min(w);
        if k == 0 {
            return Ok(0);
        }
        // Relaxed: under the mutex.
        self.waiters.store(w - k, Ordering::Relaxed);
        // Release: pairs with the Acquire in `take_signal`.
        self.signals.fetch_add(k, Ordering::Release);
        // Release: pairs with the Acquire load of `seq` in `wait_until`.
        self.seq.fetch_add(1, Ordering::Release);
        futex::wake(&self.seq, k);
        Ok(k)
    }

    /// Wakes every waiter; returns how many were picked.
    ///
    /// # Errors
    /// [`Error::NotOwner`] if the caller does not hold `mutex`.
    pub fn notify_all(&self, mutex: &RawMutex) -> Result<u32> {
        self.notify(mutex, u32::MAX)
    }

    /// Registered waiters not yet notified (a snapshot).
    pub fn waiters(&self) -> u32 {
        // Relaxed: a snapshot.
        self.waiters.load(Ordering::Relaxed)
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
    use std::time::Duration;

    /// Segment kind of a [`Condition`].
    pub const CONDITION_KIND: Kind = Kind::from_tag(*b"COND");

    /// A lock and a condition variable, side by side in shared memory.
    #[derive(Debug, Default)]
    #[repr(C)]
    pub struct RawConditionLock {
        /// The lock.
        pub mutex: RawMutex,
        /// The condition variable.
        pub cond: RawCondition,
    }

    shmkit_segment::assert_layout!(RawConditionLock, size = 32, align = 8, mutex @ 0, cond @ 16);

    // SAFETY: repr(C) of two Shared types: any bit pattern, no pointers, no Drop.
    unsafe impl shmkit_segment::Shared for RawConditionLock {}

    const LEN: usize = std::mem::size_of::<RawConditionLock>();

    /// Python's `multiprocessing.Condition` (with its own robust lock).
    ///
    /// Lock it to get a [`CondGuard`]; wait and notify through the guard, so calling
    /// them without the lock is impossible.
    ///
    /// ```
    /// use shmkit_sync::Condition;
    /// use std::time::Duration;
    /// let c = Condition::new()?;
    /// let mut g = c.lock().expect("clean");
    /// assert!(!g.wait_timeout(Duration::from_millis(1))?); // nobody notifies
    /// assert_eq!(g.notify(1)?, 0); // nobody waits
    /// assert!(g.wait_for(|| true, Some(Duration::ZERO))?);
    /// # Ok::<(), shmkit_sync::Error>(())
    /// ```
    #[derive(Clone)]
    pub struct Condition {
        shm: Shm<RawConditionLock>,
    }

    impl fmt::Debug for Condition {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Condition")
                .field("segment", &self.shm.segment().describe())
                .finish()
        }
    }

    impl Condition {
        /// A new anonymous condition with its lock.
        ///
        /// # Errors
        /// [`Error::Segment`].
        pub fn new() -> Result<Self> {
            Ok(Condition {
                shm: Shm::anonymous(CONDITION_KIND, LEN, |_| {})?,
            })
        }

        /// A new named condition.
        ///
        /// # Errors
        /// [`Error::Segment`].
        pub fn create(name: &str) -> Result<Self> {
            Ok(Condition {
                shm: Shm::create(name, CONDITION_KIND, LEN, |_| {})?,
            })
        }

        /// Opens a named condition.
        ///
        /// # Errors
        /// [`Error::Segment`].
        pub fn open(name: &str) -> Result<Self> {
            Ok(Condition {
                shm: Shm::open(name, CONDITION_KIND, LEN)?,
            })
        }

        /// Opens or creates a named condition.
        ///
        /// # Errors
        /// [`Error::Segment`].
        pub fn open_or_create(name: &str) -> Result<Self> {
            Ok(Condition {
                shm: Shm::open_or_create(name, CONDITION_KIND, LEN, |_| {})?.0,
            })
        }

        /// A token for [`Condition::from_token`].
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
            Ok(Condition {
                shm: Shm::from_token(token, CONDITION_KIND, LEN)?,
            })
        }

        /// The raw lock and condition.
        pub fn raw(&self) -> &RawConditionLock {
            self.shm.raw()
        }

        fn result(&self, a: Option<Acquired>) -> LockResult<CondGuard<'_>> {
            let g = || CondGuard {
                raw: self.raw(),
                _not_send: PhantomData,
            };
            match a {
                Some(Acquired::Clean) => Ok(g()),
                Some(Acquired::OwnerDied) => Err(LockError::OwnerDied(g())),
                None => Err(LockError::WouldBlock),
            }
        }

        /// Acquires the condition's lock.
        ///
        /// # Errors
        /// [`LockError::OwnerDied`] with the guard if the previous holder died.
        pub fn lock(&self) -> LockResult<CondGuard<'_>> {
            self.result(Some(self.raw().mutex.lock()))
        }

        /// Acquires the lock if free now.
        ///
        /// # Errors
        /// [`LockError::WouldBlock`] or [`LockError::OwnerDied`].
        pub fn try_lock(&self) -> LockResult<CondGuard<'_>> {
            self.result(self.raw().mutex.try_lock())
        }

        /// Acquires the lock, waiting at most `timeout`.
        ///
        /// # Errors
        /// [`LockError::WouldBlock`] or [`LockError::OwnerDied`].
        pub fn lock_timeout(&self, timeout: Duration) -> LockResult<CondGuard<'_>> {
            self.result(self.raw().mutex.lock_timeout(timeout))
        }
    }

    crate::lock::token_serde!(Condition);

    /// The held lock of a [`Condition`]: wait and notify from here. Not `Send`.
    #[must_use = "the lock is released as soon as the guard is dropped"]
    pub struct CondGuard<'a> {
        raw: &'a RawConditionLock,
        _not_send: PhantomData<*const ()>,
    }

    impl fmt::Debug for CondGuard<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("CondGuard")
        }
    }

    impl Drop for CondGuard<'_> {
        fn drop(&mut self) {
            // Fails only in a forked child that inherited the guard.
            let _ = self.raw.mutex.unlock();
        }
    }

    impl CondGuard<'_> {
        /// Releases the lock, waits for a notification, re-acquires the lock.
        ///
        /// # Errors
        /// [`Error::OwnerDied`] if the lock's holder died meanwhile (the lock is held
        /// again by this guard).
        pub fn wait(&mut self) -> Result<()> {
            self.raw
                .cond
                .wait_until(&self.raw.mutex, Deadline::NEVER)
                .map(|_| ())
        }

        /// As [`CondGuard::wait`], at most `timeout`; returns false on timeout.
        ///
        /// # Errors
        /// As [`CondGuard::wait`].
        pub fn wait_timeout(&mut self, timeout: Duration) -> Result<bool> {
            self.raw
                .cond
                .wait_until(&self.raw.mutex, futex::deadline_after(timeout))
        }

        /// Waits until `pred()` holds (checked with the lock held), at most `timeout`
        /// (`None` = forever); returns the last value of `pred()`.
        ///
        /// # Errors
        /// As [`CondGuard::wait`].
        pub fn wait_for(
            &mut self,
            mut pred: impl FnMut() -> bool,
            timeout: Option<Duration>,
        ) -> Result<bool> {
            let deadline = Deadline::from_timeout(timeout);
            loop {
                if pred() {
                    return Ok(true);
                }
                if deadline.is_expired() {
                    return Ok(false);
                }
                self.raw.cond.wait_until(&self.raw.mutex, deadline)?;
            }
        }

        /// Wakes up to `n` waiters; returns how many.
        ///
        /// # Errors
        /// Only if shared state was corrupted by a faulty peer ([`Error::NotOwner`]).
        pub fn notify(&self, n: u32) -> Result<u32> {
            self.raw.cond.notify(&self.raw.mutex, n)
        }

        /// Wakes every waiter; returns how many.
        ///
        /// # Errors
        /// As [`CondGuard::notify`].
        pub fn notify_all(&self) -> Result<u32> {
            self.raw.cond.notify_all(&self.raw.mutex)
        }
    }
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::owned::Condition;
    use super::*;
    use shmkit_segment::shim::atomic::AtomicU64;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn notify_wakes_exactly_as_many_as_asked() {
        let c = Condition::new().expect("cond");
        let woken = Arc::new(AtomicU64::new(0));
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let (c, woken) = (c.clone(), Arc::clone(&woken));
                std::thread::spawn(move || {
                    let mut g = c.lock().expect("clean");
                    if g.wait_timeout(Duration::from_secs(30)).expect("wait") {
                        woken.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        // Wait until all three are registered.
        while c.raw().cond.waiters() < 3 {
            std::thread::sleep(Duration::from_millis(1));
        }
        {
            let g = c.lock().expect("clean");
            assert_eq!(g.notify(2).expect("notify"), 2);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while woken.load(Ordering::Relaxed) < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "two waiters must wake"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(woken.load(Ordering::Relaxed), 2, "only two were asked for");
        assert_eq!(c.raw().cond.waiters(), 1);
        assert_eq!(c.lock().expect("clean").notify_all().expect("all"), 1);
        for h in hs {
            h.join().expect("waiter");
        }
        assert_eq!(woken.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn waiter_relocking_after_the_holder_died_is_told_and_holds_the_lock() {
        let c = Condition::new().expect("cond");
        let c2 = c.clone();
        let mut g = c.lock().expect("clean");
        let h = std::thread::spawn(move || {
            // Wait until the main thread sleeps in `wait`, then notify and exit
            // while still holding the lock.
            while c2.raw().cond.waiters() == 0 {
                std::thread::yield_now();
            }
            let g = c2.lock().expect("clean");
            assert_eq!(g.notify(1).expect("notify"), 1);
            std::mem::forget(g);
        });
        assert!(matches!(
            g.wait_timeout(Duration::from_secs(30)),
            Err(Error::OwnerDied)
        ));
        assert!(c.raw().mutex.is_owned_by_current_thread());
        h.join().expect("thread");
        drop(g);
        assert!(c.try_lock().is_ok());
    }

    #[test]
    fn raw_calls_without_the_lock_fail() {
        let m = RawMutex::new();
        let cv = RawCondition::new();
        assert!(matches!(cv.notify(&m, 1), Err(Error::NotOwner { .. })));
        assert!(matches!(
            cv.wait_until(&m, Deadline::NEVER),
            Err(Error::NotOwner { .. })
        ));
        let _ = m.lock();
        assert!(!cv
            .wait_until(&m, Deadline::after(Duration::ZERO))
            .expect("timeout"));
        assert!(m.is_owned_by_current_thread());
        assert_eq!(cv.waiters(), 0);
        m.unlock().expect("unlock");
    }

    #[test]
    fn wait_for_predicate_with_timeout() {
        let c = Condition::new().expect("cond");
        let flag = Arc::new(AtomicU64::new(0));
        let (c2, f2) = (c.clone(), Arc::clone(&flag));
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            let g = c2.lock().expect("clean");
            f2.store(1, Ordering::Relaxed);
            g.notify_all().expect("notify");
        });
        let mut g = c.lock().expect("clean");
        assert!(g
            .wait_for(
                || flag.load(Ordering::Relaxed) == 1,
                Some(Duration::from_secs(30))
            )
            .expect("wait_for"));
        assert!(!g
            .wait_for(|| false, Some(Duration::from_millis(20)))
            .expect("wait_for"));
        drop(g);
        h.join().expect("notifier");
    }
}
