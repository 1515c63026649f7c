//! Who is calling: the kernel thread id and that thread's start time, cached per
//! thread so that lock fast paths make no system call.
//!
//! The cache is invalidated in a forked child through a `pthread_atfork` child
//! handler that bumps a generation counter (a child's only thread has a new tid).
//! Processes made with a raw `clone` that skips the atfork handlers are not
//! supported. Under `--cfg shmkit_loom` each loom thread gets a small sequential
//! id instead, and every owner is alive.
//!
//! Liveness is decided by `(tid, start time)` read from `/proc/<tid>/stat`, never by
//! the tid alone (see DESIGN.md "Death of a peer").

/// The bits of a lock word that can hold a tid (`FUTEX_TID_MASK`: Linux tids are
/// below 2^22 with the largest `pid_max`).
pub(crate) const TID_MASK: u32 = 0x3FFF_FFFF;

/// The calling thread: kernel tid and start time (clock ticks since boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Me {
    /// Kernel thread id (never 0, always within [`TID_MASK`]).
    pub(crate) tid: u32,
    /// Start time of the thread (field 22 of `/proc/<pid>/task/<tid>/stat`).
    pub(crate) start: u64,
}

#[cfg(not(shmkit_loom))]
mod imp {
    use super::Me;
    use shmkit_segment::shim::atomic::{AtomicU32, Ordering};
    use shmkit_segment::shim::pid;
    use std::cell::Cell;

    /// Bumped in every forked child (atfork handler), so cached ids are re-read.
    static FORK_GEN: AtomicU32 = AtomicU32::new(1);
    static ATFORK: std::sync::Once = std::sync::Once::new();

    extern "C" fn in_child() {
        // Relaxed: the child has a single thread at this point, which reads the
        // counter after this handler returns (program order).
        FORK_GEN.fetch_add(1, Ordering::Relaxed);
    }

    thread_local! {
        static CACHE: Cell<(u32, Me)> = const { Cell::new((0, Me { tid: 0, start: 0 })) };
    }

    /// This process's fork generation: it changes in every forked child of a process
    /// that has called this (or `current`) before forking. Registers the atfork
    /// handler on first use.
    #[inline]
    pub(crate) fn fork_gen() -> u32 {
        ATFORK.call_once(|| {
            // SAFETY: registers a plain `extern "C"` function with no captured state;
            // pthread_atfork has no other preconditions. The handler only bumps an
            // atomic, which is async-signal-safe.
            let _ = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
        });
        // Relaxed: see `in_child`.
        FORK_GEN.load(Ordering::Relaxed)
    }

    #[cold]
    fn refresh(gen: u32) -> Me {
        let _ = fork_gen();
        let tid = pid::current_tid();
        let start = pid::task_start_time(pid::current(), tid).unwrap_or(0);
        let me = Me { tid, start };
        CACHE.with(|c| c.set((gen, me)));
        me
    }

    #[inline]
    pub(crate) fn current() -> Me {
        // Relaxed: see `in_child`; in the parent the counter never changes under us.
        let gen = FORK_GEN.load(Ordering::Relaxed);
        let (g, me) = CACHE.with(Cell::get);
        if g == gen {
            me
        } else {
            refresh(gen)
        }
    }

    /// Whether thread `tid` is alive: with `start = Some(s)` it must have start time
    /// `s`; with `None` (the owner died before recording it) it must exist and have
    /// started no later than `seen_at` (boot-time clock ticks when the caller first
    /// saw it owning the lock), so a reused tid is not mistaken for the owner.
    pub(crate) fn is_alive(tid: u32, start: Option<u64>, seen_at: u64) -> bool {
        match (pid::start_time(tid), start) {
            (None, _) => false,
            (Some(now), Some(s)) => now == s,
            (Some(now), None) => now <= seen_at.saturating_add(1),
        }
    }

    /// Now, in clock ticks since boot (the unit of `/proc` start times).
    pub(crate) fn boot_ticks() -> u64 {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec and CLOCK_BOOTTIME exists on
        // every supported kernel (2.6.39+).
        unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let hz = u64::try_from(hz).unwrap_or(100).max(1);
        let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
        let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
        secs.saturating_mul(hz)
            .saturating_add(nanos.saturating_mul(hz) / 1_000_000_000)
    }
}

#[cfg(shmkit_loom)]
mod imp {
    use super::Me;
    use loom::sync::atomic::{AtomicU32, Ordering};

    loom::lazy_static! {
        static ref NEXT: AtomicU32 = AtomicU32::new(1);
    }
    loom::thread_local! {
        static ME: u32 = NEXT.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn current() -> Me {
        Me {
            tid: ME.with(|t| *t),
            start: 1,
        }
    }

    pub(crate) fn is_alive(_tid: u32, _start: Option<u64>, _seen_at: u64) -> bool {
        true
    }

    pub(crate) fn boot_ticks() -> u64 {
        0
    }
}

#[cfg(not(shmkit_loom))]
pub(crate) use imp::fork_gen;
pub(crate) use imp::{boot_ticks, current, is_alive};
