//! `Process`: the builder, `start` with the fork start method, and the handle methods.

use crate::child::{self, Child, ChildState};
use crate::error::{Error, Result};
use crate::exit::{run_target, IntoExitCode, Run};
use crate::spawn::{self, SpawnSpec};
use crate::state::{self, Me};
use crate::sys;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// How a child process is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StartMethod {
    /// `fork()`: the child is a copy of the parent and runs the target (a closure or
    /// a function) directly. Fast; the default for [`Process::new`].
    ///
    /// Only the forking thread exists in the child. shmkit holds its own lock and
    /// stdout's and stderr's across the fork, so those work in the child; any other
    /// lock another thread held at that moment (your mutexes, a logger, the
    /// environment lock …) stays locked there forever. Use [`StartMethod::Spawn`] in
    /// programs whose other threads take locks the target needs.
    #[default]
    Fork,
    /// Re-execute the current binary (`posix_spawn` of `/proc/self/exe`) and run a
    /// function with a serde argument there. For programs that must not fork (threads
    /// holding locks, huge heaps). The default for [`Process::spawn_fn`].
    Spawn,
}

pub(crate) type BoxedTarget = Box<dyn FnOnce() -> i32 + Send + 'static>;

enum Target {
    /// Already started (or being started).
    Taken,
    /// A closure: fork only.
    Closure(BoxedTarget),
    /// A function with a serde argument: either method.
    Function { fork: BoxedTarget, spawn: SpawnSpec },
}

/// A child process, like Python's `multiprocessing.Process`.
///
/// Build it with [`Process::new`] (a closure, fork start method),
/// [`Process::spawn_fn`] (a `fn` and a serde argument, spawn start method by default)
/// or [`Process::from_run`] (the trait form); set [`name`](Process::name),
/// [`daemon`](Process::daemon), [`start_method`](Process::start_method); then
/// [`start`](Process::start) it once and [`join`](Process::join) it.
///
/// ```
/// use shmkit_process::Process;
/// let mut p = Process::new(|| println!("hello from {}", std::process::id())).name("greeter");
/// p.start()?;
/// p.join()?;
/// assert_eq!(p.exitcode(), Some(0));
/// # Ok::<(), shmkit_process::Error>(())
/// ```
///
/// **Drop** never blocks and never leaves a zombie: a child that has ended is reaped
/// at once; a child that still runs keeps running (daemon or not — a daemon still
/// dies with this process) and a background reaper thread (`shmkit-reaper`, started
/// on first need) reaps it when it exits. Drop does not kill the child; call
/// [`kill`](Process::kill) or [`terminate`](Process::terminate) first for that.
pub struct Process {
    name: String,
    identity: String,
    daemon: bool,
    method: StartMethod,
    target: Target,
    child: Option<Child>,
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.name)
            .field("daemon", &self.daemon)
            .field("method", &self.method)
            .field("pid", &self.pid())
            .finish()
    }
}

impl Process {
    fn with_target(target: Target, method: StartMethod) -> Self {
        let (name, identity) = state::lock().next_identity();
        Process {
            name,
            identity,
            daemon: false,
            method,
            target,
            child: None,
        }
    }

    /// A process that runs `target` in a forked child. The target returns `()`, an
    /// `i32` exit code, or a `Result` (an `Err` is printed on the child's stderr and
    /// gives exit code 1); a panic gives exit code 1.
    pub fn new<F, R>(target: F) -> Self
    where
        F: FnOnce() -> R + Send + 'static,
        R: IntoExitCode,
    {
        Self::with_target(
            Target::Closure(Box::new(move || target().into_exit_code())),
            StartMethod::Fork,
        )
    }

    /// The trait form (Python's "subclass `Process`, override `run`"): runs
    /// `runner.run()` in a forked child.
    pub fn from_run<T: Run>(runner: T) -> Self {
        let mut runner = runner;
        Self::new(move || runner.run())
    }

    /// A process that runs `f(arg)` in a child started with the **spawn** method by
    /// default (the current executable, re-executed); [`start_method`](Process::start_method)
    /// can choose fork instead, with the same result. `f` is a `fn` item or a
    /// non-capturing closure of the program itself; `arg` crosses `exec` encoded with
    /// shmkit's codec (postcard), so shmkit handles inside it travel as tokens
    /// (e.g. a [`shmkit_segment::Token`] reopened with `Token::open` in the child).
    ///
    /// Problems found here (an argument that does not encode, a function outside the
    /// main executable) are reported by [`start`](Process::start).
    pub fn spawn_fn<A, R>(f: fn(A) -> R, arg: A) -> Self
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: IntoExitCode + 'static,
    {
        let spec = SpawnSpec::new(f, &arg);
        Self::with_target(
            Target::Function {
                fork: Box::new(move || f(arg).into_exit_code()),
                spawn: spec,
            },
            StartMethod::Spawn,
        )
    }

    /// Sets the name (default `Process-N`, or `Process-N:M` in a child).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Makes the child a daemon (default `false`): it is killed (SIGKILL) when this
    /// process — more precisely the thread that starts it — dies, however it dies,
    /// and it may not start children of its own.
    #[must_use]
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.daemon = daemon;
        self
    }

    /// Chooses the start method (see [`StartMethod`]).
    #[must_use]
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = method;
        self
    }

    /// The process's name.
    pub fn get_name(&self) -> &str {
        &self.name
    }

    /// Whether the process is (to be) a daemon.
    pub fn is_daemon(&self) -> bool {
        self.daemon
    }

    /// The start method that [`start`](Process::start) will use or used.
    pub fn get_start_method(&self) -> StartMethod {
        self.method
    }

    /// The child's pid, once started.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::pid)
    }

    /// A shared handle to the started child, e.g. to kill it from another thread.
    pub fn child(&self) -> Option<Child> {
        self.child.clone()
    }

    /// Starts the child. Returns once the child is known to exist and run its target
    /// (fork: when `fork` returned; spawn: when the re-executed child has reported,
    /// over a close-on-exec pipe, that it decoded its argument and calls the target)
    /// or with the reason it could not start.
    ///
    /// # Errors
    /// [`Error::AlreadyStarted`] on a second call; [`Error::DaemonicChildren`] in a
    /// daemon process; [`Error::ClosureNotSpawnable`] for a closure with the spawn
    /// method; [`Error::Encode`], [`Error::NotInExecutable`], [`Error::EntryNotRun`],
    /// [`Error::SpawnFailed`], [`Error::UnconsumedSpawn`] for the spawn method;
    /// [`Error::Os`] when fork/posix_spawn/pidfd_open fail.
    pub fn start(&mut self) -> Result<()> {
        if self.child.is_some() || matches!(self.target, Target::Taken) {
            return Err(Error::AlreadyStarted {
                name: self.name.clone(),
            });
        }
        if spawn::unconsumed() {
            return Err(Error::UnconsumedSpawn);
        }
        let me = {
            let mut st = state::lock();
            let info = st.info();
            if info.daemon {
                return Err(Error::DaemonicChildren { name: info.name });
            }
            Me {
                name: self.name.clone(),
                identity: self.identity.clone(),
                daemon: self.daemon,
                parent: Some(info),
            }
        };
        crate::exit::install_panic_hook();
        let target = std::mem::replace(&mut self.target, Target::Taken);
        let result = match (self.method, target) {
            (StartMethod::Fork, Target::Closure(t)) => self.start_fork(me, t).map_err(|(e, t)| {
                self.target = Target::Closure(t);
                e
            }),
            (StartMethod::Fork, Target::Function { fork, spawn }) => {
                self.start_fork(me, fork).map_err(|(e, fork)| {
                    self.target = Target::Function { fork, spawn };
                    e
                })
            }
            (StartMethod::Spawn, Target::Function { spawn, fork }) => {
                match spawn::start(&spawn, me, &self.name, self.daemon) {
                    Ok(c) => Ok(c),
                    Err(e) => {
                        // Not started: keep the target so that the error is not
                        // mistaken for "already started" on a retry.
                        self.target = Target::Function { fork, spawn };
                        Err(e)
                    }
                }
            }
            (StartMethod::Spawn, t @ Target::Closure(_)) => {
                self.target = t;
                return Err(Error::ClosureNotSpawnable {
                    name: self.name.clone(),
                });
            }
            (_, Target::Taken) => unreachable_taken(&self.name),
        };
        self.child = Some(result?);
        Ok(())
    }

    /// Forks; on failure the target comes back with the error, so that the process
    /// can be started again.
    fn start_fork(
        &mut self,
        me: Me,
        target: BoxedTarget,
    ) -> std::result::Result<Child, (Error, BoxedTarget)> {
        let parent = shmkit_segment::shim::pid::current();
        let daemon = self.daemon;
        let name = self.name.clone();
        // Hold stdout's and stderr's locks across the fork: another thread printing at
        // that moment would otherwise leave them locked forever in the child, whose
        // final flush (or panic message) would then hang. Taken before shmkit's own
        // lock, never after it, so that a thread holding stdout while it asks shmkit
        // something cannot deadlock with us. The child's copies of these guards
        // belong to its only thread (the same thread id), so it can release them.
        let out = std::io::stdout().lock();
        let err = std::io::stderr().lock();
        let mut st = state::lock();
        // Everything that can be done before the fork is: every page the parent
        // writes while the child lives costs a copy-on-write fault.
        st.prune();
        st.children.reserve(1);
        // SAFETY: the child only resets shmkit's state (whose lock this thread holds,
        // so no other thread was inside it), runs the caller's target — which is what
        // the caller asked for, with fork's usual caveats documented on
        // `StartMethod::Fork` — and always leaves through `_exit`, never returning or
        // unwinding into the caller's frames.
        let forked = match unsafe { sys::fork() } {
            Ok(f) => f,
            Err(e) => return Err((Error::os("fork", &self.name, e), target)),
        };
        match forked {
            sys::Forked::Child => {
                // Nothing may unwind out of here into the caller's frames (a test
                // harness, say): a panic outside the target still ends in _exit.
                let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                    st.become_child(me);
                    drop(st);
                    drop(err);
                    drop(out);
                    if daemon {
                        // Die with the parent; if it died before the line above, the
                        // signal will never come, so look at who our parent is now.
                        if sys::set_parent_death_signal(libc::SIGKILL).is_err()
                            || sys::parent_pid() != parent
                        {
                            return 1;
                        }
                    }
                    run_target(target)
                }))
                .unwrap_or(1);
                sys::exit_now(code)
            }
            sys::Forked::Parent(pid) => {
                drop(err);
                drop(out);
                let state = Arc::new(ChildState::new(pid, name, daemon));
                child::register(&mut st, Arc::clone(&state));
                Ok(Child { inner: state })
            }
        }
    }

    fn started(&self, op: &'static str) -> Result<&Child> {
        self.child.as_ref().ok_or_else(|| Error::NotStarted {
            name: self.name.clone(),
            op,
        })
    }

    /// Waits until the child ends, and reaps it. Its exit code is then in
    /// [`exitcode`](Process::exitcode).
    ///
    /// # Errors
    /// [`Error::NotStarted`] before `start`; [`Error::JoinSelf`] when called in the
    /// child itself; [`Error::NotChild`] in a process other than the parent (e.g. a
    /// handle inherited by a sibling over fork); [`Error::Os`] if waiting fails.
    pub fn join(&self) -> Result<()> {
        self.started("join")?.join()
    }

    /// Waits at most `timeout` for the child to end; `true` when it ended (and was
    /// reaped), `false` when it still runs.
    ///
    /// # Errors
    /// As [`join`](Process::join).
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        self.started("join")?.join_timeout(timeout)
    }

    /// Whether the child has been started and has not ended yet (an ended child is
    /// reaped here). `false` before `start`.
    pub fn is_alive(&self) -> bool {
        self.child.as_ref().is_some_and(Child::is_alive)
    }

    /// `None` before start and while the child runs; then 0 when the target returned
    /// normally, 1 when it panicked or returned an error, `n` for `exit(n)`, and `-N`
    /// when a signal N killed it (SIGKILL → -9, SIGTERM → -15).
    pub fn exitcode(&self) -> Option<i32> {
        self.child.as_ref().and_then(Child::exitcode)
    }

    /// Python's `sentinel`: the child's pidfd, readable once it ends, for waiting on
    /// several processes with `poll`; `None` if the child was reaped before the first
    /// call.
    ///
    /// # Errors
    /// [`Error::NotStarted`] before `start`; else as [`Child::sentinel`].
    pub fn sentinel(&self) -> Result<Option<std::os::fd::BorrowedFd<'_>>> {
        self.started("sentinel")?.sentinel()
    }

    /// Sends SIGTERM to the child (nothing if it has been reaped already).
    ///
    /// # Errors
    /// [`Error::NotStarted`] before `start`; [`Error::NotChild`]/[`Error::JoinSelf`]
    /// outside the parent; [`Error::Os`] if `kill` fails.
    pub fn terminate(&self) -> Result<()> {
        self.started("terminate")?.terminate()
    }

    /// Sends SIGKILL to the child (nothing if it has been reaped already).
    ///
    /// # Errors
    /// As [`terminate`](Process::terminate).
    pub fn kill(&self) -> Result<()> {
        self.started("kill")?.kill()
    }
}

fn unreachable_taken(name: &str) -> Result<Child> {
    Err(Error::AlreadyStarted {
        name: name.to_owned(),
    })
}

impl Drop for Process {
    fn drop(&mut self) {
        let Some(child) = &self.child else { return };
        if child.inner.parent != shmkit_segment::shim::pid::current() {
            return; // a copy inherited over fork: not ours to reap
        }
        match child.inner.poll() {
            Ok(Some(_)) | Err(_) => {}
            // Still running: leave it running and let the reaper collect it later.
            Ok(None) => child::ensure_reaper(),
        }
    }
}
