//! The crate's one error type.

/// `Result` with the pool's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a pool operation or a task's result can report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `get_timeout`/`wait_timeout` ran out of time; the result is still coming and
    /// can be fetched again later.
    #[error("the result was not ready within the timeout; it can still be fetched later")]
    Timeout,
    /// The pool was terminated (or dropped) before this result was computed.
    #[error("the pool was terminated before the task completed")]
    Terminated,
    /// The worker running this task (or the chunk holding it) died: killed by a
    /// signal, or it exited in the middle of the task. The pool replaced it.
    #[error("worker {pid} died while running the task ({})", died_how(*.signal, *.exit_code))]
    WorkerDied {
        /// The worker's pid.
        pid: u32,
        /// The signal that killed it, if a signal did.
        signal: Option<i32>,
        /// Its exit code, if it exited (by `exit(n)`) rather than by a signal.
        exit_code: Option<i32>,
    },
    /// The task panicked; the message is the panic's.
    #[error("the task panicked: {0}")]
    Panicked(String),
    /// The task returned an error (the `try_*` methods; the message is its
    /// `Display`), or its argument or result could not be transferred (the message
    /// says which).
    #[error("the task failed: {0}")]
    TaskFailed(String),
    /// The pool's initializer failed in a worker; no task can run.
    #[error("the pool's initializer failed in a worker: {0}")]
    InitializerFailed(String),
    /// `successful()` was asked before the result was ready.
    #[error("the result is not ready yet")]
    NotReady,
    /// A task was submitted after `close()` or `terminate()`.
    #[error("the pool is closed (close() or terminate() was called); create a new pool")]
    PoolClosed,
    /// `join()` was called while the pool was still accepting tasks; call `close()`
    /// or `terminate()` first.
    #[error("join() needs close() or terminate() first")]
    PoolRunning,
    /// A builder setting is out of range (the message says which).
    #[error("invalid pool setting: {0}")]
    InvalidArgument(&'static str),
    /// An argument or result could not be encoded or decoded with shmkit's codec.
    #[error("codec: {what}: {source}")]
    Codec {
        /// What was being encoded or decoded.
        what: &'static str,
        /// The codec's error.
        #[source]
        source: postcard::Error,
    },
    /// The task function does not live in the main executable (e.g. it comes from a
    /// dynamically loaded library), so a worker cannot call it.
    #[error("the task function is not in the main executable; pass a fn defined in the program")]
    NotInExecutable,
    /// Starting or controlling a worker process failed.
    #[error("worker process: {0}")]
    Process(#[from] shmkit_process::Error),
    /// Creating or opening the pool's shared memory failed.
    #[error("shared memory: {0}")]
    Segment(#[from] shmkit_segment::Error),
    /// A ring failed (it is corrupt or could not be set up).
    #[error("ring: {0}")]
    Ring(#[from] shmkit_ring::Error),
    /// An operating-system call failed.
    #[error("{op}: {source}")]
    Os {
        /// The operation.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

fn died_how(signal: Option<i32>, code: Option<i32>) -> String {
    match (signal, code) {
        (Some(s), _) => format!("killed by signal {s}"),
        (None, Some(c)) => format!("exit code {c}"),
        (None, None) => "exit status unknown".to_owned(),
    }
}

/// Why a task failed, as stored in the parent: cheap to clone (one failed chunk
/// fails every item of it) and turned into an [`Error`] when handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    Terminated,
    WorkerDied {
        pid: u32,
        signal: Option<i32>,
        exit_code: Option<i32>,
    },
    Panicked(String),
    TaskFailed(String),
    InitializerFailed(String),
}

impl Failure {
    pub(crate) fn to_error(&self) -> Error {
        match self.clone() {
            Failure::Terminated => Error::Terminated,
            Failure::WorkerDied {
                pid,
                signal,
                exit_code,
            } => Error::WorkerDied {
                pid,
                signal,
                exit_code,
            },
            Failure::Panicked(m) => Error::Panicked(m),
            Failure::TaskFailed(m) => Error::TaskFailed(m),
            Failure::InitializerFailed(m) => Error::InitializerFailed(m),
        }
    }
}
