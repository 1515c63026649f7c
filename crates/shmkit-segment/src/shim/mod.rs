//! The shim: the only place where shmkit names std atomics, `UnsafeCell`, time or a
//! raw syscall.
//!
//! Every algorithm in the workspace imports these instead, so building with
//! `RUSTFLAGS="--cfg shmkit_loom"` swaps all of them for loom's models at once:
//!
//! | module   | normal build                                  | `--cfg shmkit_loom`                     |
//! |----------|-----------------------------------------------|-----------------------------------------|
//! | `atomic` | `std::sync::atomic`                           | `loom::sync::atomic`                    |
//! | `cell`   | `UnsafeCell` with loom's `with`/`with_mut` API | `loom::cell::UnsafeCell`                |
//! | `futex`  | `FUTEX_WAIT_BITSET`/`FUTEX_WAKE`/`futex_waitv`, shared, absolute `CLOCK_MONOTONIC` | one loom mutex + condvar: a lost wake-up is a loom deadlock |
//! | `time`   | `clock_gettime(CLOCK_MONOTONIC)`              | a frozen clock; finite waits time out at once |
//! | `membarrier` | `membarrier(2)` global expedited barriers      | same (not modelled)                     |
//! | `pid`    | `getpid`, `/proc/<pid>/stat` start times, pidfd | same (not modelled)                     |
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

pub mod atomic;
pub mod cell;
pub mod futex;
pub mod membarrier;
pub mod pid;
pub mod time;

/// A spin-loop hint (a no-op yield to the loom scheduler under `--cfg shmkit_loom`).
#[inline]
pub fn spin_loop() {
    #[cfg(shmkit_loom)]
    loom::thread::yield_now();
    #[cfg(not(shmkit_loom))]
    std::hint::spin_loop();
}

/// Yields the CPU to another thread (`sched_yield`), or to loom's scheduler.
#[inline]
pub fn yield_now() {
    #[cfg(shmkit_loom)]
    loom::thread::yield_now();
    #[cfg(not(shmkit_loom))]
    std::thread::yield_now();
}
