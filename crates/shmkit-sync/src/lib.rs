//! Synchronisation between processes on shared memory: the futex layer and robust
//! `Mutex`, `Lock`, `RLock`, `Semaphore`, `BoundedSemaphore`, `Event`, `Condition`
//! and `Barrier`, with Python's `multiprocessing` names and semantics.
//!
//! This crate sits on `shmkit-segment` (segments and the atomics/futex shim) and
//! below the rings, queues and pipes, which block through its [`futex`] module. Every
//! primitive exists twice: a `#[repr(C)]` raw type ([`RawMutex`], [`RawEvent`], …)
//! that lives at any aligned offset of any shared mapping, zeroed memory being a
//! valid initial state, and an owning handle ([`Mutex`], [`Event`], …) that makes its
//! own segment (`new` for an anonymous memfd inherited by `fork`, `create`/`open`/
//! `open_or_create` by name), is `Clone`, and converts to and from a serde
//! [`Token`](shmkit_segment::Token) (the handles are themselves `Serialize` +
//! `Deserialize` through their token).
//!
//! | Python | handle | raw (in any mapping) |
//! |---|---|---|
//! | `Lock` | [`Lock`], [`Mutex<T>`] (with plain data) | [`RawMutex`] |
//! | `RLock` | [`RLock`] | [`RawRLock`] |
//! | `Semaphore`, `BoundedSemaphore` | [`Semaphore`], [`BoundedSemaphore`] | [`RawSemaphore`] |
//! | `Event`, `connection.wait` | [`Event`], [`wait_any`] | [`RawEvent`], [`wait_any_raw`] |
//! | `Condition` | [`Condition`] / [`CondGuard`] | [`RawCondition`] + [`RawMutex`] |
//! | `Barrier` | [`Barrier`] | [`RawBarrier`] |
//! | — | the wait policy and [`futex::EventCount`] for other crates | [`futex`] |
//!
//! Fast paths are one atomic RMW and no system call; waits spin adaptively, then
//! sleep on shared futexes with absolute deadlines. Locks are robust: when a holder
//! is killed the next locker gets [`LockError::OwnerDied`] with the guard (see
//! `docs/sync.md` and `docs/adr/0002-robust-mutex.md`).
//!
//! ```
//! use shmkit_sync::{Event, Mutex, Semaphore};
//! use std::time::Duration;
//!
//! let counter = Mutex::new(0u64)?;
//! let ready = Event::new()?;
//! let slots = Semaphore::new(2)?;
//! std::thread::scope(|s| {
//!     for _ in 0..2 {
//!         s.spawn(|| {
//!             slots.acquire();
//!             *counter.lock().expect("nobody died") += 1;
//!             slots.release().expect("below the bound");
//!             ready.set();
//!         });
//!     }
//! });
//! assert!(ready.wait_timeout(Duration::from_secs(1)));
//! assert_eq!(*counter.lock().expect("nobody died"), 2);
//! # Ok::<(), shmkit_sync::Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

mod barrier;
mod condition;
mod error;
mod event;
pub mod futex;
mod ident;
mod raw_mutex;
mod rlock;
mod semaphore;

#[cfg(not(shmkit_loom))]
mod handle;
#[cfg(not(shmkit_loom))]
mod lock;

pub use barrier::{RawBarrier, MAX_PARTIES, TRACKED_WAITERS};
pub use condition::RawCondition;
pub use error::{Error, LockError, LockResult, Result};
pub use event::{wait_any_raw, RawEvent};
pub use raw_mutex::{Acquired, RawMutex, LIVENESS_SLICE};
pub use rlock::{RawRLock, MAX_RECURSION};
pub use semaphore::RawSemaphore;
pub use semaphore::{MAX_SLEEPERS, MAX_VALUE, POLL_SLICE};

#[cfg(not(shmkit_loom))]
pub use barrier::owned::{Barrier, BARRIER_KIND};
#[cfg(not(shmkit_loom))]
pub use condition::owned::{CondGuard, Condition, RawConditionLock, CONDITION_KIND};
#[cfg(not(shmkit_loom))]
pub use rlock::owned::{RLock, RLockGuard, RLOCK_KIND};

#[cfg(not(shmkit_loom))]
pub use event::{wait_any, Event, EVENT_KIND};
#[cfg(not(shmkit_loom))]
pub use lock::{Lock, LockGuard, Mutex, MutexGuard, LOCK_KIND, MUTEX_KIND};
#[cfg(not(shmkit_loom))]
pub use semaphore::{BoundedSemaphore, Semaphore, SEMAPHORE_KIND};
