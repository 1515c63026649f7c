//! A started child: its pid, a pidfd to wait on (opened on first need), and its exit
//! code once reaped.
//!
//! Reaping (`waitpid`) and signalling (`kill`) of one child happen under that child's
//! lock, so a signal can never hit a reused pid: until we reap it, the pid stays ours.
//! Blocking waits happen outside the lock and never reap: `waitid(WNOWAIT)` or a
//! readable pidfd say the child ended, then the lock is taken to reap it.

use crate::error::{Error, Result};
use crate::state;
use crate::sys;
use shmkit_segment::shim::pid::current;
use shmkit_segment::shim::pid::pidfd_open;
use shmkit_segment::shim::time::Deadline;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

#[derive(Debug)]
pub(crate) struct ChildState {
    pub(crate) pid: u32,
    pub(crate) name: String,
    pub(crate) daemon: bool,
    /// The pid of the process that started the child (only it may wait or signal).
    pub(crate) parent: u32,
    /// Opened on first need (a timed join, the reaper): a blocking join does not need
    /// it, and not opening it keeps `start`+`join` two system calls cheaper.
    pidfd: OnceLock<OwnedFd>,
    exit: Mutex<Option<i32>>,
}

impl ChildState {
    pub(crate) fn new(pid: u32, name: String, daemon: bool) -> Self {
        ChildState {
            pid,
            name,
            daemon,
            parent: current(),
            pidfd: OnceLock::new(),
            exit: Mutex::new(None),
        }
    }

    /// The child's pidfd, opened now if need be; `None` once the child was reaped
    /// (its pid may then name another process).
    fn pidfd(&self) -> Result<Option<BorrowedFd<'_>>> {
        if let Some(fd) = self.pidfd.get() {
            return Ok(Some(fd.as_fd()));
        }
        self.check_parent()?;
        let exit = self.exit.lock().unwrap_or_else(PoisonError::into_inner);
        if exit.is_some() {
            return Ok(None);
        }
        // Unreaped and ours, so the pid cannot have been reused.
        let fd = pidfd_open(self.pid).map_err(|e| Error::os("pidfd_open", &self.name, e))?;
        drop(exit);
        // A racing opener may have won; then ours is closed and theirs used.
        let _ = self.pidfd.set(fd);
        Ok(self.pidfd.get().map(AsFd::as_fd))
    }

    fn check_parent(&self) -> Result<()> {
        let me = current();
        if self.pid == me {
            return Err(Error::JoinSelf {
                name: self.name.clone(),
                pid: me,
            });
        }
        if self.parent != me {
            return Err(Error::NotChild {
                name: self.name.clone(),
                pid: self.pid,
                caller: me,
            });
        }
        Ok(())
    }

    pub(crate) fn is_reaped(&self) -> bool {
        self.exit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Reaps the child if it has ended; its exit code, or `None` while it runs.
    pub(crate) fn poll(&self) -> Result<Option<i32>> {
        self.check_parent()?;
        let mut exit = self.exit.lock().unwrap_or_else(PoisonError::into_inner);
        if exit.is_none() {
            *exit = sys::try_reap(self.pid).map_err(|e| Error::os("waitpid", &self.name, e))?;
        }
        Ok(*exit)
    }

    /// Waits until the child ends or `deadline` passes; its exit code if it ended.
    pub(crate) fn wait(&self, deadline: Deadline) -> Result<Option<i32>> {
        if let Some(code) = self.poll()? {
            return Ok(Some(code));
        }
        // Wait without holding the lock, so that kill/terminate from another thread stay
        // possible meanwhile, and without reaping, so that they never hit a reused pid.
        if deadline.is_never() {
            sys::wait_exit_no_reap(self.pid).map_err(|e| Error::os("waitid", &self.name, e))?;
            return self.poll();
        }
        let Some(fd) = self.pidfd()? else {
            return self.poll(); // reaped meanwhile by another thread or the reaper
        };
        let ended = sys::wait_readable(fd, deadline)
            .map_err(|e| Error::os("poll(pidfd)", &self.name, e))?;
        if !ended {
            return Ok(None);
        }
        self.poll()
    }

    /// Sends `sig` unless the child has been reaped already (then it is a no-op).
    pub(crate) fn signal(&self, sig: libc::c_int) -> Result<()> {
        self.check_parent()?;
        let exit = self.exit.lock().unwrap_or_else(PoisonError::into_inner);
        if exit.is_some() {
            return Ok(());
        }
        match sys::kill(self.pid, sig) {
            Ok(()) => Ok(()),
            // A zombie can no longer be signalled: it has ended, which is what was asked.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            Err(e) => Err(Error::os("kill", &self.name, e)),
        }
    }

    /// Whether the child still runs, without an error path: a handle that cannot
    /// reap (not our child) answers from the pidfd.
    pub(crate) fn is_alive(&self) -> bool {
        match self.poll() {
            Ok(code) => code.is_none(),
            // Not our child: answer from the pidfd if we have one, else by signal 0.
            Err(_) => match self.pidfd.get() {
                Some(fd) => {
                    !sys::wait_readable(fd.as_fd(), Deadline::after(Duration::ZERO)).unwrap_or(true)
                }
                None => sys::kill(self.pid, 0).is_ok(),
            },
        }
    }

    pub(crate) fn exitcode(&self) -> Option<i32> {
        match self.poll() {
            Ok(code) => code,
            Err(_) => *self.exit.lock().unwrap_or_else(PoisonError::into_inner),
        }
    }
}

/// A shared handle to a started child process: what [`active_children`](crate::active_children)
/// returns and [`Process::child`](crate::Process::child) hands out so that another thread can
/// join, terminate or kill it. Clones refer to the same child.
#[derive(Debug, Clone)]
pub struct Child {
    pub(crate) inner: Arc<ChildState>,
}

impl Child {
    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether the child was started as a daemon.
    pub fn daemon(&self) -> bool {
        self.inner.daemon
    }

    /// Whether the child still runs (reaps it if it has ended).
    pub fn is_alive(&self) -> bool {
        self.inner.is_alive()
    }

    /// `None` while the child runs; else 0 for a normal return, 1 for a panic or an
    /// error, `n` for `exit(n)`, `-N` when killed by signal N.
    pub fn exitcode(&self) -> Option<i32> {
        self.inner.exitcode()
    }

    /// Waits until the child ends, and reaps it.
    ///
    /// # Errors
    /// [`Error::JoinSelf`] in the child itself, [`Error::NotChild`] in a process other
    /// than its parent, [`Error::Os`] if waiting fails.
    pub fn join(&self) -> Result<()> {
        self.inner.wait(Deadline::NEVER).map(|_| ())
    }

    /// Waits at most `timeout`; `true` when the child has ended (and was reaped).
    ///
    /// # Errors
    /// As [`Child::join`].
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool> {
        self.inner
            .wait(Deadline::after(timeout))
            .map(|c| c.is_some())
    }

    /// Python's `sentinel`: a descriptor (the child's pidfd) that becomes readable when
    /// the child ends, to wait on several children (or children and sockets) at once
    /// with `poll`/`epoll`. `None` if the child was reaped before the first call
    /// (its pid may be reused by then). Valid as long as this handle (or a clone) lives.
    ///
    /// # Errors
    /// [`Error::NotChild`]/[`Error::JoinSelf`] outside the parent, [`Error::Os`] if
    /// `pidfd_open` fails.
    pub fn sentinel(&self) -> Result<Option<BorrowedFd<'_>>> {
        self.inner.pidfd()
    }

    /// Sends SIGTERM (no-op once the child has been reaped).
    ///
    /// # Errors
    /// [`Error::NotChild`]/[`Error::JoinSelf`] outside the parent, [`Error::Os`] if
    /// `kill` fails.
    pub fn terminate(&self) -> Result<()> {
        self.inner.signal(libc::SIGTERM)
    }

    /// Sends SIGKILL (no-op once the child has been reaped).
    ///
    /// # Errors
    /// As [`Child::terminate`].
    pub fn kill(&self) -> Result<()> {
        self.inner.signal(libc::SIGKILL)
    }
}

/// Registers a freshly started child (state lock held by the caller) and wakes the
/// reaper, if there is one, so that it watches the new child too.
pub(crate) fn register(st: &mut state::State, child: Arc<ChildState>) {
    st.children.push(child);
    if let Some(wake) = &st.reaper {
        wake_reaper(wake);
    }
}

fn wake_reaper(fd: &File) {
    let one: u64 = 1;
    // An eventfd write of 8 bytes only fails when the counter would overflow, in which
    // case the reaper is awake anyway.
    let _ = (&mut &*fd).write(&one.to_ne_bytes());
}

/// Makes sure a reaper thread watches this process's unreaped children, so a child
/// whose handle was dropped while it ran is reaped as soon as it exits. Never blocks
/// on the child.
pub(crate) fn ensure_reaper() {
    let mut st = state::lock();
    if let Some(wake) = &st.reaper {
        wake_reaper(wake);
        return;
    }
    let Ok(wake) = sys::eventfd() else { return };
    let wake = Arc::new(File::from(wake));
    let owner = st.owner;
    let thread_wake = Arc::clone(&wake);
    let spawned = std::thread::Builder::new()
        .name("shmkit-reaper".into())
        .spawn(move || reaper_loop(owner, &thread_wake));
    if spawned.is_ok() {
        st.reaper = Some(wake);
    }
}

fn reaper_loop(owner: u32, wake: &File) {
    loop {
        let watched: Vec<Arc<ChildState>> = {
            let mut st = state::lock();
            if st.owner != owner {
                return;
            }
            // Reap whatever has ended; keep watching only what still runs. A child
            // that cannot be reaped (someone else reaped it) is dropped from the
            // registry too, or its readable pidfd would wake us forever.
            st.children.retain(|c| matches!(c.poll(), Ok(None)));
            st.children.clone()
        };
        let mut fds = vec![wake.as_raw_fd()];
        fds.extend(
            watched
                .iter()
                .filter_map(|c| c.pidfd().ok().flatten().map(|fd| fd.as_raw_fd())),
        );
        let Ok(ready) = sys::wait_any_readable(&fds) else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        if ready.contains(&0) {
            let mut buf = [0u8; 8];
            let _ = (&mut &*wake).read(&mut buf);
        }
    }
}
