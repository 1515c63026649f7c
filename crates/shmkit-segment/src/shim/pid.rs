//! Process identity that survives pid reuse: (pid, start time).
//!
//! A pid alone names a process only until it is reaped; the kernel may hand the same
//! number to a new process. shmkit therefore records the pair (pid, start time in
//! clock ticks since boot, field 22 of `/proc/<pid>/stat`) and calls a process alive
//! only when a process with that pid exists, has that start time and is not a zombie.

use serde::{Deserialize, Serialize};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

/// The calling process's pid.
#[inline]
pub fn current() -> u32 {
    // SAFETY: getpid has no preconditions and cannot fail.
    let pid = unsafe { libc::getpid() };
    pid.unsigned_abs()
}

/// The calling thread's kernel thread id.
#[inline]
pub fn current_tid() -> u32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    let tid = unsafe { libc::gettid() };
    tid.unsigned_abs()
}

/// Parses the start time (field 22) out of the text of a `/proc/.../stat` file,
/// or `None` if the text is malformed or the process is a zombie or dead.
pub fn parse_stat_start_time(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may contain anything,
    // including spaces and ')': the fields we want follow the *last* ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" || state == "x" {
        return None;
    }
    // `state` was field 3; field 22 is 19 further on.
    fields.nth(18)?.parse().ok()
}

fn read_start_time(path: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    parse_stat_start_time(&text)
}

/// Start time of process `pid` in clock ticks since boot, or `None` when no live
/// (non-zombie) process has that pid.
pub fn start_time(pid: u32) -> Option<u64> {
    if pid == 0 || pid > i32::MAX as u32 {
        return None;
    }
    read_start_time(&format!("/proc/{pid}/stat"))
}

/// Start time of thread `tid` of process `pid`, or `None` when it is gone.
pub fn task_start_time(pid: u32, tid: u32) -> Option<u64> {
    if pid == 0 || tid == 0 || pid > i32::MAX as u32 || tid > i32::MAX as u32 {
        return None;
    }
    read_start_time(&format!("/proc/{pid}/task/{tid}/stat"))
}

/// Cache of this process's (pid, start time); reset by comparing pids, so it is
/// right again in a forked child.
static SELF_PID: AtomicU64 = AtomicU64::new(0);
static SELF_START: AtomicU64 = AtomicU64::new(0);

/// The calling process's start time, read once per process (about 10 µs) and cached.
pub fn current_start_time() -> u64 {
    start_time_of_self(current())
}

/// The start time of the calling process, whose pid the caller just read.
fn start_time_of_self(pid: u32) -> u64 {
    let pid = u64::from(pid);
    // Relaxed: the two words are written by this process only, each racing writer
    // stores the same values, and a stale pid just re-reads /proc.
    if SELF_PID.load(Ordering::Relaxed) == pid {
        return SELF_START.load(Ordering::Relaxed);
    }
    let st = read_start_time("/proc/self/stat").unwrap_or(0);
    SELF_START.store(st, Ordering::Relaxed);
    SELF_PID.store(pid, Ordering::Relaxed);
    st
}

/// A process named so that pid reuse cannot fool a liveness check.
///
/// ```
/// use shmkit_segment::shim::pid::ProcessId;
/// let me = ProcessId::current();
/// assert!(me.is_alive());
/// assert!(!ProcessId { pid: me.pid, start_time: me.start_time + 1 }.is_alive());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcessId {
    /// The pid.
    pub pid: u32,
    /// Start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
    pub start_time: u64,
}

impl ProcessId {
    /// The calling process.
    pub fn current() -> Self {
        // One getpid: this sits on every segment creation.
        let pid = current();
        ProcessId {
            pid,
            start_time: start_time_of_self(pid),
        }
    }

    /// The live process `pid`, if there is one.
    pub fn of(pid: u32) -> Option<Self> {
        start_time(pid).map(|start_time| ProcessId { pid, start_time })
    }

    /// Whether this very process still runs (not exited, not a zombie, pid not reused).
    pub fn is_alive(&self) -> bool {
        start_time(self.pid) == Some(self.start_time)
    }
}

/// Opens a pidfd for `pid` (`pidfd_open`, Linux 5.3+). The fd becomes readable when
/// the process exits, which `poll` can wait on without racing pid reuse.
///
/// # Errors
/// `ESRCH` when no such process exists; `ENOSYS` on kernels without pidfd.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags by value and returns a new fd or -1.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(r).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: the kernel just returned `fd` as a new descriptor that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_start_time_with_hostile_command_names() {
        let line = "123 (a) b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 99";
        assert_eq!(parse_stat_start_time(line), Some(424242));
        let zombie = "123 (x) Z 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 99";
        assert_eq!(parse_stat_start_time(zombie), None);
        assert_eq!(parse_stat_start_time("garbage"), None);
        assert_eq!(parse_stat_start_time("1 (a) S 1 2"), None);
    }

    #[test]
    fn self_is_alive_and_bogus_pids_are_not() {
        let me = ProcessId::current();
        assert!(me.start_time > 0);
        assert!(me.is_alive());
        assert_eq!(start_time(0), None);
        assert_eq!(start_time(u32::MAX), None);
        assert!(task_start_time(me.pid, current_tid()).is_some());
    }

    #[test]
    fn pidfd_of_self_opens() {
        assert!(pidfd_open(current()).is_ok());
    }
}
