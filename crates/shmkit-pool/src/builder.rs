//! `Builder`: Python's `Pool(processes, initializer, initargs, maxtasksperchild)`.

use crate::code;
use crate::error::{Error, Result};
use crate::pool::{Config, Pool, DEFAULT_PREFETCH, DEFAULT_RING_BYTES};
use crate::worker::InitSpec;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shmkit_process::StartMethod;

/// Builds a [`Pool`]: Python's `Pool(processes, initializer, initargs,
/// maxtasksperchild)` plus the start method.
#[derive(Debug)]
pub struct Builder {
    processes: Option<usize>,
    maxtasks: Option<u64>,
    method: StartMethod,
    ring_bytes: usize,
    prefetch: usize,
    init: Option<Result<InitSpec>>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            processes: None,
            maxtasks: None,
            method: StartMethod::Fork,
            ring_bytes: DEFAULT_RING_BYTES,
            prefetch: DEFAULT_PREFETCH,
            init: None,
        }
    }
}

impl Builder {
    /// Number of worker processes (default [`shmkit_process::cpu_count`]).
    #[must_use]
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// Runs `f(arg)` once in each worker before its first task. If it panics, the
    /// pool is broken: every task fails with [`Error::InitializerFailed`].
    #[must_use]
    pub fn initializer<A>(mut self, f: fn(A), arg: A) -> Self
    where
        A: Serialize + DeserializeOwned,
    {
        let spec = code::task_one::<A, ()>(f).and_then(|code| {
            let arg = crate::codec::encode(&arg).map_err(|source| Error::Codec {
                what: "encoding the initializer's argument",
                source,
            })?;
            Ok(InitSpec { code, arg })
        });
        self.init = Some(spec);
        self
    }

    /// Replaces each worker after it completed `n` tasks (chunks count as one task).
    #[must_use]
    pub fn maxtasksperchild(mut self, n: u64) -> Self {
        self.maxtasks = Some(n);
        self
    }

    /// How workers start (default [`StartMethod::Fork`]); see `docs/pool.md`.
    #[must_use]
    pub fn start_method(mut self, m: StartMethod) -> Self {
        self.method = m;
        self
    }

    /// Bytes of each of a worker's two rings (a power of two, at least 4096).
    #[must_use]
    pub fn ring_bytes(mut self, n: usize) -> Self {
        self.ring_bytes = n;
        self
    }

    /// How many tasks may be queued to one worker (at least 1, default
    /// [`DEFAULT_PREFETCH`]). Larger batches trivial tasks better; 1 balances
    /// long, uneven tasks best. Queued tasks that a dying worker had not begun are
    /// given to another worker.
    #[must_use]
    pub fn prefetch(mut self, n: usize) -> Self {
        self.prefetch = n;
        self
    }

    /// Starts the workers and the pool's threads.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for 0 processes, a zero `maxtasksperchild` or
    /// `prefetch`, or a ring size that is not a power of two ≥ 4096;
    /// [`Error::NotInExecutable`] or [`Error::Codec`] for the initializer;
    /// [`Error::Process`] or [`Error::Segment`] when a worker cannot start.
    pub fn build(self) -> Result<Pool> {
        let processes = self
            .processes
            .unwrap_or_else(|| shmkit_process::cpu_count().max(1));
        if processes == 0 {
            return Err(Error::InvalidArgument(
                "the number of processes must be at least 1",
            ));
        }
        if self.maxtasks == Some(0) {
            return Err(Error::InvalidArgument(
                "maxtasksperchild must be at least 1",
            ));
        }
        if self.prefetch == 0 {
            return Err(Error::InvalidArgument("prefetch must be at least 1"));
        }
        if !self.ring_bytes.is_power_of_two() || self.ring_bytes < 4096 {
            return Err(Error::InvalidArgument(
                "ring_bytes must be a power of two of at least 4096",
            ));
        }
        let init = self.init.transpose()?;
        let cfg = Config {
            processes,
            maxtasks: self.maxtasks,
            method: self.method,
            ring_bytes: self.ring_bytes,
            prefetch: self.prefetch,
            init,
        };
        Pool::start(cfg)
    }
}
