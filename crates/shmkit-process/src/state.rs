//! Per-process global state: who we are (name, daemon flag, parent) and the children
//! we started and have not reaped yet, plus the optional reaper thread.
//!
//! One lock guards it all. `start` holds that lock across `fork`, so the child's copy
//! is consistent (no other thread can be half-way through changing it), and the child
//! resets it before dropping the guard.

use crate::child::ChildState;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A process's identity as `current_process()`/`parent_process()` report it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// The name: `"MainProcess"` for the program itself, `"Process-1"`, `"Process-1:2"`,
    /// … or what `Process::name` set.
    pub name: String,
    /// The pid.
    pub pid: u32,
    /// Whether the process is a daemon (killed with its parent, may not have children).
    pub daemon: bool,
}

/// What this process knows about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Me {
    /// The process's name, or empty for the main process ("MainProcess").
    pub(crate) name: String,
    /// The identity path (`""` for main, `"1"`, `"1:2"`, …) used to name children.
    pub(crate) identity: String,
    pub(crate) daemon: bool,
    /// The parent, for `parent_process()`; `None` in the main process.
    pub(crate) parent: Option<ProcessInfo>,
}

pub(crate) struct State {
    /// The pid this state describes; `me` is stale if it differs from getpid (a child
    /// forked by something other than shmkit).
    pub(crate) owner: u32,
    pub(crate) me: Option<Me>,
    /// Children started from this process, not yet known to be reaped.
    pub(crate) children: Vec<Arc<ChildState>>,
    /// Counter for default child names.
    pub(crate) counter: u32,
    /// The reaper's wake-up eventfd, once the reaper thread runs.
    pub(crate) reaper: Option<Arc<std::fs::File>>,
}

static STATE: Mutex<State> = Mutex::new(State {
    owner: 0,
    me: None,
    children: Vec::new(),
    counter: 0,
    reaper: None,
});

/// Locks the state, repairing it for a process forked behind shmkit's back.
pub(crate) fn lock() -> MutexGuard<'static, State> {
    let mut st = STATE.lock().unwrap_or_else(PoisonError::into_inner);
    let pid = shmkit_segment::shim::pid::current();
    if st.owner != pid {
        if st.owner != 0 {
            // Forked by someone else: the children and the reaper are the parent's.
            st.children.clear();
            st.reaper = None;
            st.me = None;
            st.counter = 0;
        }
        st.owner = pid;
    }
    st
}

impl State {
    pub(crate) fn me(&mut self) -> &Me {
        self.me.get_or_insert_with(|| Me {
            name: String::new(),
            identity: String::new(),
            daemon: false,
            parent: None,
        })
    }

    pub(crate) fn info(&mut self) -> ProcessInfo {
        let pid = self.owner;
        let me = self.me();
        ProcessInfo {
            name: display_name(&me.name),
            pid,
            daemon: me.daemon,
        }
    }

    /// Forgets the children (they belong to the parent) and becomes `me`. Called in a
    /// freshly forked or spawned child.
    ///
    /// The parent's entries are forgotten, not dropped: dropping them would write to
    /// their heap pages (reference counts, the allocator), each a copy-on-write fault
    /// in a forked child; the leak is this child's private copy only.
    pub(crate) fn become_child(&mut self, me: Me) {
        self.owner = shmkit_segment::shim::pid::current();
        std::mem::forget(std::mem::take(&mut self.children));
        std::mem::forget(self.reaper.take());
        std::mem::forget(self.me.replace(me));
        self.counter = 0;
    }

    /// The next default name and identity for a child of this process.
    pub(crate) fn next_identity(&mut self) -> (String, String) {
        self.counter = self.counter.wrapping_add(1);
        let n = self.counter;
        let identity = match self.me().identity.as_str() {
            "" => n.to_string(),
            parent => format!("{parent}:{n}"),
        };
        (format!("Process-{identity}"), identity)
    }

    /// Drops the entries of children already reaped.
    pub(crate) fn prune(&mut self) {
        self.children.retain(|c| !c.is_reaped());
    }
}

/// `Process <name> (pid <pid>)` when this process is a shmkit child, else `None`.
/// Never blocks (a panic may happen while the state lock is held).
pub(crate) fn child_who() -> Option<String> {
    let st = match STATE.try_lock() {
        Ok(st) => st,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return None,
    };
    let me = st.me.as_ref()?;
    if st.owner != shmkit_segment::shim::pid::current() || me.parent.is_none() {
        return None;
    }
    Some(format!(
        "Process {} (pid {})",
        display_name(&me.name),
        st.owner
    ))
}

pub(crate) fn display_name(name: &str) -> String {
    if name.is_empty() {
        "MainProcess".to_owned()
    } else {
        name.to_owned()
    }
}

impl ProcessInfo {
    /// Waits until this process ends. Meant for [`parent_process`](crate::parent_process)
    /// (a child waiting for its parent, like Python's `parent_process().join()`);
    /// returns at once if the parent has already died.
    ///
    /// # Errors
    /// [`Error::JoinSelf`](crate::Error::JoinSelf) for [`current_process`](crate::current_process);
    /// [`Error::NotChild`](crate::Error::NotChild) for any process other than our
    /// parent (join children through their [`Process`](crate::Process) handle);
    /// [`Error::Os`](crate::Error::Os) if waiting fails.
    pub fn join(&self) -> crate::Result<()> {
        use shmkit_segment::shim::time::Deadline;
        use std::os::fd::AsFd;
        let me = shmkit_segment::shim::pid::current();
        if self.pid == me {
            return Err(crate::Error::JoinSelf {
                name: self.name.clone(),
                pid: me,
            });
        }
        if self.pid != crate::sys::parent_pid() {
            let is_parent = lock()
                .me()
                .parent
                .as_ref()
                .is_some_and(|p| p.pid == self.pid);
            if is_parent {
                return Ok(()); // reparented: the parent is gone
            }
            return Err(crate::Error::NotChild {
                name: self.name.clone(),
                pid: self.pid,
                caller: me,
            });
        }
        let fd = match shmkit_segment::shim::pid::pidfd_open(self.pid) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(()),
            Err(e) => return Err(crate::Error::os("pidfd_open", &self.name, e)),
        };
        crate::sys::wait_readable(fd.as_fd(), Deadline::NEVER)
            .map(|_| ())
            .map_err(|e| crate::Error::os("poll(pidfd)", &self.name, e))
    }
}
