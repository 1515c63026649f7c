//! Compact owner ids: a process's (pid, start time) packed into one `u64`, so a claim
//! names its claimant in a single atomic word.
//!
//! ```text
//! bit 63                         22 21                 0
//!     [ start time (clock ticks) & (2^42-1) ][ pid (<= 2^22) ]
//! ```
//! `0` means "nobody". Linux pids are at most `PID_MAX_LIMIT` = 2^22; 2^42 clock
//! ticks at 100 Hz are over a thousand years, so the truncated start time still tells
//! two holders of one pid apart.

use shmkit_segment::shim::pid;

/// Bits of the pid field.
const PID_BITS: u32 = 22;
const PID_MASK: u64 = (1 << PID_BITS) - 1;

/// A process (or, in models, a thread standing for one) that can hold a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OwnerId(pub(crate) u64);

impl OwnerId {
    /// No owner.
    pub const NONE: OwnerId = OwnerId(0);

    /// The calling process (reads `/proc/self/stat` once per process, then cached).
    pub fn current() -> Self {
        Self::from_parts(pid::current(), pid::current_start_time())
    }

    /// The id of process `pid` started at `start_time` (clock ticks since boot).
    pub fn from_parts(pid: u32, start_time: u64) -> Self {
        let id = (start_time << PID_BITS) | (u64::from(pid) & PID_MASK);
        // A process started at tick 0 with pid 0 does not exist; keep 0 = nobody.
        OwnerId(if id == 0 { 1 << PID_BITS } else { id })
    }

    /// An arbitrary nonzero id, for models and tests that stand threads in for
    /// processes together with a custom liveness check.
    #[doc(hidden)]
    pub const fn from_raw(raw: u64) -> Self {
        OwnerId(raw)
    }

    /// The packed word.
    pub const fn as_raw(self) -> u64 {
        self.0
    }

    /// The pid part.
    pub fn pid(self) -> u32 {
        // Cast: masked to 22 bits.
        u32::try_from(self.0 & PID_MASK).unwrap_or(0)
    }
}

/// Decides whether the owner named by a packed id still runs: [`process_alive`] by
/// default; models and tests substitute their own (threads standing in for processes).
#[derive(Clone, Default)]
pub struct Liveness(Option<std::sync::Arc<dyn Fn(OwnerId) -> bool + Send + Sync>>);

impl Liveness {
    /// A custom check.
    #[doc(hidden)]
    pub fn custom(f: impl Fn(OwnerId) -> bool + Send + Sync + 'static) -> Self {
        Liveness(Some(std::sync::Arc::new(f)))
    }

    /// Whether `id` still runs.
    pub fn is_alive(&self, id: OwnerId) -> bool {
        match &self.0 {
            None => process_alive(id),
            Some(f) => f(id),
        }
    }
}

impl std::fmt::Debug for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_none() {
            "Liveness(process)"
        } else {
            "Liveness(custom)"
        })
    }
}

/// The real check: a live, non-zombie process with that pid whose start time matches
/// (reads `/proc/<pid>/stat`, about 10 µs: slow paths only).
pub fn process_alive(id: OwnerId) -> bool {
    if id == OwnerId::NONE {
        return false;
    }
    if id == OwnerId::current() {
        return true;
    }
    let pid = id.pid();
    match pid::start_time(pid) {
        Some(st) => OwnerId::from_parts(pid, st) == id,
        None => false,
    }
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::*;

    #[test]
    fn self_is_alive_others_are_not() {
        let me = OwnerId::current();
        assert!(process_alive(me));
        assert_eq!(me.pid(), pid::current());
        assert!(!process_alive(OwnerId::NONE));
        let st = pid::current_start_time();
        assert!(!process_alive(OwnerId::from_parts(u32::MAX >> 11, st)));
        // A pid that exists (1) with the wrong start time is not our claimant.
        assert!(!process_alive(OwnerId::from_parts(1, u64::MAX)));
    }
}
