//! A process pool for shmkit: Python's `multiprocessing.Pool` for Rust, on shared
//! memory, with the failure modes Python gets wrong fixed.
//!
//! This crate sits at the top of the stack, a thin composition of the layers below:
//! workers are `shmkit-process` children (fork or spawn start method); each worker
//! talks to the parent over two `shmkit-ring` byte rings in its own segment
//! (`shmkit-segment`), and everybody sleeps on `shmkit-sync` event counts. In the
//! parent a result-handler thread collects results, watches worker exits and
//! replaces dead workers; a callback thread runs callbacks one at a time.
//!
//! Tasks are `fn` items (or non-capturing closures) with serde arguments and
//! results. A task that panics fails only its own result ([`Error::Panicked`]); a
//! worker that is killed, aborts or segfaults fails only the task or chunk it was
//! running ([`Error::WorkerDied`]) and is replaced — where Python's pool hangs.
//! See `docs/pool.md` for the architecture, start methods and what drop does.
//!
//! ```
//! use shmkit_pool::{Callbacks, Pool};
//! use std::sync::{Arc, Mutex};
//!
//! fn square(x: u64) -> u64 { x * x }
//!
//! let pool = Pool::new(2)?;
//! assert_eq!(pool.apply(square, 7)?, 49);
//! assert_eq!(pool.map(square, 0..5u64)?, vec![0, 1, 4, 9, 16]);
//! let r = pool.apply_async(square, 3)?;
//! assert_eq!(r.get()?, 9);
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let s = Arc::clone(&seen);
//! let cb = Callbacks::new().callback(move |v: u64| s.lock().unwrap().push(v));
//! pool.apply_async_with(square, 4, cb)?.wait();
//! assert_eq!(*seen.lock().unwrap(), vec![16]);
//! let lazy: Vec<u64> = pool.imap(square, 1..4u64)?.collect::<Result<_, _>>()?;
//! assert_eq!(lazy, vec![1, 4, 9]);
//! pool.close();
//! pool.join()?;
//! # Ok::<(), shmkit_pool::Error>(())
//! ```
//!
//! # Panics
//! Pool methods do not panic. Task panics are caught in the worker and returned as
//! [`Error::Panicked`]; callback panics are caught and reported on stderr.
#![deny(unsafe_op_in_unsafe_fn)]

mod builder;
mod code;
mod codec;
mod error;
mod handler;
mod imap;
mod pool;
mod result;
mod shm;
mod threads;
mod wire;
mod worker;

pub use builder::Builder;
pub use error::{Error, Result};
pub use imap::IMap;
pub use pool::{default_chunksize, Pool, DEFAULT_PREFETCH, DEFAULT_RING_BYTES};
pub use result::{AsyncResult, Callbacks};
pub use shmkit_process::StartMethod;
