//! The crate's one error type.

use std::io;

/// What can go wrong starting, waiting for or signalling a process.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `start` was called on a process that was started before (a `Process` runs once;
    /// build a new one).
    #[error("process {name:?} was already started; a Process runs once, create a new one")]
    AlreadyStarted {
        /// The process's name.
        name: String,
    },
    /// `join`, `terminate`, … on a process that was never started (call `start` first).
    #[error("process {name:?} was never started; call start() before {op}()")]
    NotStarted {
        /// The process's name.
        name: String,
        /// The operation attempted.
        op: &'static str,
    },
    /// A process tried to join itself, which would wait forever.
    #[error("process {name:?} (pid {pid}) cannot join itself")]
    JoinSelf {
        /// The process's name.
        name: String,
        /// Its pid.
        pid: u32,
    },
    /// The handle names a process that is not a child of the caller (for example a
    /// handle inherited over fork): only the parent can wait for or signal it.
    #[error("process {name:?} (pid {pid}) is not a child of this process (pid {caller}); only its parent can join or signal it")]
    NotChild {
        /// The process's name.
        name: String,
        /// Its pid.
        pid: u32,
        /// The caller's pid.
        caller: u32,
    },
    /// A daemon process tried to start a child (daemons are killed with their parent
    /// and would orphan their own children). Make the parent non-daemon.
    #[error("daemonic process {name:?} is not allowed to have children; start the parent with daemon(false)")]
    DaemonicChildren {
        /// The daemon's name.
        name: String,
    },
    /// A closure target cannot cross `exec`: use [`Process::spawn_fn`](crate::Process::spawn_fn)
    /// for the spawn start method, or the fork start method for closures.
    #[error("process {name:?}: a closure target can only be started with the fork start method; use Process::spawn_fn(f, arg) for spawn")]
    ClosureNotSpawnable {
        /// The process's name.
        name: String,
    },
    /// The function given to `spawn_fn` does not live in the main executable (for
    /// example it comes from a dynamically loaded library), so the re-executed
    /// child cannot find it.
    #[error("the spawn target function is not in the main executable; pass a fn defined in the program itself")]
    NotInExecutable,
    /// The argument of a spawn target could not be encoded.
    #[error("cannot encode the argument of process {name:?}: {source}")]
    Encode {
        /// The process's name.
        name: String,
        /// The codec error.
        #[source]
        source: postcard::Error,
    },
    /// The re-executed child did not run shmkit's spawn entry (the program's `main`
    /// ran instead, or the child exited first). Call `shmkit::process::init()` at the
    /// top of `main`, and make sure the binary links `shmkit-process`.
    #[error("spawned child (pid {pid}) did not run shmkit's spawn entry: {detail}; call shmkit::process::init() as the first line of main (see docs/process.md)")]
    EntryNotRun {
        /// The child's pid.
        pid: u32,
        /// What the parent saw.
        detail: String,
    },
    /// The spawned child reported a failure before running its target (decoding the
    /// argument, a changed executable, …).
    #[error("spawned child (pid {pid}) failed before running its target: {reason}")]
    SpawnFailed {
        /// The child's pid.
        pid: u32,
        /// The child's message.
        reason: String,
    },
    /// This process was spawned by shmkit but its spawn entry never ran, so starting
    /// children here could recurse. Call `shmkit::process::init()` at the top of `main`.
    #[error("this process was re-executed by shmkit's spawn start method but its entry did not run; call shmkit::process::init() as the first line of main")]
    UnconsumedSpawn,
    /// An OS call failed (`op` names it: fork, posix_spawn, waitpid, kill, …).
    #[error("{op} failed for process {name:?}: {source}")]
    Os {
        /// The failing call.
        op: &'static str,
        /// The process's name.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn os(op: &'static str, name: &str, source: io::Error) -> Self {
        Error::Os {
            op,
            name: name.to_owned(),
            source,
        }
    }
}
