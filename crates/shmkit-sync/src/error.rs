//! The sync crate's error type.

use std::fmt;

/// `Result` with [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a synchronisation primitive can report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Creating, opening or addressing the primitive's segment failed.
    #[error("shared-memory segment error")]
    Segment(#[from] shmkit_segment::Error),
    /// The deadline passed before the operation could complete.
    #[error("timed out")]
    Timeout,
    /// The previous holder died while holding the lock; the caller now holds it and
    /// should check the protected data before trusting it.
    #[error("the previous holder of the lock died while holding it; the data it protects may be inconsistent")]
    OwnerDied,
    /// The caller tried to release a lock it does not hold.
    #[error("{op}: the calling thread does not hold this lock")]
    NotOwner {
        /// The operation attempted.
        op: &'static str,
    },
    /// A `BoundedSemaphore` was released more times than it was acquired (Python's
    /// `ValueError: Semaphore released too many times`); its value is unchanged.
    #[error("semaphore released too many times (its bound is {bound})")]
    ReleasedTooManyTimes {
        /// The semaphore's bound.
        bound: u32,
    },
    /// A counter would exceed its limit (semaphore value, recursion depth).
    #[error("{what} would exceed its limit of {limit}")]
    Overflow {
        /// What overflowed.
        what: &'static str,
        /// The limit.
        limit: u32,
    },
    /// An argument is out of range (zero parties, a too-large initial value, …).
    #[error("invalid argument {what}: {reason}")]
    InvalidArgument {
        /// The argument.
        what: &'static str,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The barrier is broken (aborted, reset while waiting, a waiter timed out or died).
    #[error("the barrier is broken (aborted, reset, timed out or a waiter died); call reset() to use it again")]
    BrokenBarrier,
    /// The shared state holds a value this build never writes (a faulty peer).
    #[error("corrupt shared state: {0}")]
    Corrupt(&'static str),
}

/// Why a lock call did not simply return a guard.
///
/// `OwnerDied` still carries the guard: the lock *is* held and keeps working, but the
/// previous holder died inside its critical section.
pub enum LockError<G> {
    /// The previous holder died while holding the lock; here is the guard.
    OwnerDied(G),
    /// `try_lock` found the lock held, or `lock_timeout`'s deadline passed.
    WouldBlock,
}

impl<G> LockError<G> {
    /// The guard, if the lock was acquired (owner died).
    pub fn into_guard(self) -> Option<G> {
        match self {
            LockError::OwnerDied(g) => Some(g),
            LockError::WouldBlock => None,
        }
    }

    /// Whether the previous owner died (the lock is held by the caller).
    pub fn is_owner_died(&self) -> bool {
        matches!(self, LockError::OwnerDied(_))
    }
}

impl<G> fmt::Debug for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDied(_) => f.write_str("OwnerDied(..)"),
            LockError::WouldBlock => f.write_str("WouldBlock"),
        }
    }
}

impl<G> fmt::Display for LockError<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDied(_) => {
                f.write_str("the previous holder died while holding the lock (the guard is inside)")
            }
            LockError::WouldBlock => f.write_str("the lock is held by another thread"),
        }
    }
}

impl<G> std::error::Error for LockError<G> {}

/// Dropping the guard (and so releasing the lock) when converting to [`Error`].
impl<G> From<LockError<G>> for Error {
    fn from(e: LockError<G>) -> Self {
        match e {
            LockError::OwnerDied(_) => Error::OwnerDied,
            LockError::WouldBlock => Error::Timeout,
        }
    }
}

/// Result of a lock call: the guard, or why not (the guard is inside `OwnerDied`).
pub type LockResult<G> = std::result::Result<G, LockError<G>>;
