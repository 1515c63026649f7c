//! Monotonic time and absolute deadlines on `CLOCK_MONOTONIC`.
//!
//! Waits in shmkit take an absolute [`Deadline`], so retrying after `EINTR` or a
//! spurious wake-up never stretches a timeout. Durations saturate: a huge timeout
//! is "never", not an overflow.

use std::time::Duration;

/// Nanoseconds on `CLOCK_MONOTONIC` (frozen at 0 under `--cfg shmkit_loom`).
#[inline]
pub fn now_nanos() -> u64 {
    #[cfg(shmkit_loom)]
    {
        0
    }
    #[cfg(not(shmkit_loom))]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists
        // on Linux, so the call cannot fail (it is served by the vDSO).
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        // Relaxed casts: tv_sec and tv_nsec are non-negative for CLOCK_MONOTONIC.
        (ts.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec as u64)
    }
}

/// An absolute point on `CLOCK_MONOTONIC`, or never.
///
/// ```
/// use shmkit_segment::shim::time::Deadline;
/// use std::time::Duration;
/// let d = Deadline::after(Duration::from_millis(50));
/// assert!(!d.is_expired());
/// assert!(Deadline::NEVER.remaining().is_none());
/// assert!(Deadline::after(Duration::MAX).is_never());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(u64);

impl Deadline {
    /// No deadline: wait forever.
    pub const NEVER: Deadline = Deadline(u64::MAX);

    /// `timeout` from now; `None` means never. Saturates instead of overflowing.
    pub fn from_timeout(timeout: Option<Duration>) -> Self {
        match timeout {
            Some(t) => Self::after(t),
            None => Self::NEVER,
        }
    }

    /// `d` from now. A duration too large to represent is [`Deadline::NEVER`].
    pub fn after(d: Duration) -> Self {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Deadline(now_nanos().saturating_add(nanos))
    }

    /// A deadline at an absolute monotonic nanosecond count.
    pub const fn at_nanos(nanos: u64) -> Self {
        Deadline(nanos)
    }

    /// The absolute monotonic nanosecond count (`u64::MAX` for never).
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Whether this is [`Deadline::NEVER`].
    pub const fn is_never(self) -> bool {
        self.0 == u64::MAX
    }

    /// Whether the deadline has passed.
    #[inline]
    pub fn is_expired(self) -> bool {
        !self.is_never() && now_nanos() >= self.0
    }

    /// Time left (zero once expired), or `None` for never.
    pub fn remaining(self) -> Option<Duration> {
        if self.is_never() {
            None
        } else {
            Some(Duration::from_nanos(self.0.saturating_sub(now_nanos())))
        }
    }

    /// The absolute deadline as a `timespec`, or `None` for never.
    pub fn to_timespec(self) -> Option<libc::timespec> {
        if self.is_never() {
            return None;
        }
        Some(libc::timespec {
            // Cast: u64::MAX / 1e9 fits in i64.
            tv_sec: (self.0 / 1_000_000_000) as libc::time_t,
            tv_nsec: (self.0 % 1_000_000_000) as libc::c_long,
        })
    }
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::*;

    #[test]
    fn deadlines_saturate_and_expire() {
        assert!(Deadline::after(Duration::from_secs(u64::MAX)).is_never());
        assert!(Deadline::after(Duration::ZERO).is_expired());
        let d = Deadline::after(Duration::from_secs(10));
        let r = d.remaining().expect("finite");
        assert!(r <= Duration::from_secs(10) && r > Duration::from_secs(9));
        let ts = d.to_timespec().expect("finite");
        assert!(ts.tv_nsec < 1_000_000_000);
        assert!(Deadline::NEVER.to_timespec().is_none());
    }
}
