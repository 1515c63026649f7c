//! Helpers shared by this crate's integration tests: forking a child, reaping it with
//! a generous timeout, unique names and scratch directories.
#![allow(dead_code, unreachable_pub)]

use shmkit_segment::shim::atomic::{AtomicU32, Ordering};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long any test waits for a child before declaring it hung (generous: CI is slow).
pub const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// `_exit(code)`.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

/// A name unique to this process and call: `<tag>-<pid>-<n>`.
pub fn unique_name(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh scratch directory, removed when the guard drops.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("shmkit-{}", unique_name(tag)));
        std::fs::create_dir_all(&p).expect("create scratch dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Unlinks a named segment when dropped (so a failing test leaves nothing behind).
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = shmkit_segment::unlink(&self.0);
    }
}

/// Forks; the child runs `f` and `_exit`s with its return value (101 if it panics).
/// Returns the child's pid in the parent.
///
/// The child should do little: open a segment, write, exit. It never returns into the
/// test harness and never runs destructors or atexit handlers (`_exit`).
pub fn fork(f: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: fork has no memory-safety preconditions; the child only runs `f` (which
    // the tests keep to system calls and small allocations — glibc's malloc is fork
    // safe) and then `_exit`s without returning into the harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        // SAFETY: _exit ends the child at once; nothing of the harness runs in it.
        unsafe { libc::_exit(code) };
    }
    pid
}

/// Reaps `pid`, waiting at most [`CHILD_TIMEOUT`] (then SIGKILLs it and panics).
pub fn wait(pid: libc::pid_t) -> Exit {
    let deadline = Instant::now() + CHILD_TIMEOUT;
    loop {
        let mut status = 0;
        // SAFETY: waitpid on our own child with a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(r >= 0, "waitpid: {}", std::io::Error::last_os_error());
        if r == pid {
            if libc::WIFEXITED(status) {
                return Exit::Code(libc::WEXITSTATUS(status));
            }
            return Exit::Signal(libc::WTERMSIG(status));
        }
        if Instant::now() > deadline {
            kill(pid);
            panic!("child {pid} did not finish within {CHILD_TIMEOUT:?}");
        }
        // Polling interval only; the proof is the exit status, not the sleep.
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// SIGKILLs `pid` (ignoring errors: it may be gone already).
pub fn kill(pid: libc::pid_t) {
    // SAFETY: kill takes a pid and a signal by value.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// A pipe used as a one-shot signal between processes: `read_byte` blocks until the
/// other side writes a byte or closes its end.
pub struct Pipe {
    pub r: libc::c_int,
    pub w: libc::c_int,
}

impl Pipe {
    pub fn new() -> Self {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a writable array of two ints.
        let r = unsafe { libc::pipe(fds.as_mut_ptr()) };
        assert_eq!(r, 0, "pipe: {}", std::io::Error::last_os_error());
        Pipe {
            r: fds[0],
            w: fds[1],
        }
    }

    /// Writes one byte (async-signal-safe).
    pub fn write_byte(&self, b: u8) {
        // SAFETY: writes one byte from a live local to an fd we own.
        let n = unsafe { libc::write(self.w, std::ptr::addr_of!(b).cast(), 1) };
        assert_eq!(n, 1, "pipe write");
    }

    /// Blocks until a byte arrives (`Some`) or every writer closed (`None`).
    pub fn read_byte(&self) -> Option<u8> {
        let mut b = 0u8;
        loop {
            // SAFETY: reads at most one byte into a live local from an fd we own.
            let n = unsafe { libc::read(self.r, std::ptr::addr_of_mut!(b).cast(), 1) };
            match n {
                1 => return Some(b),
                0 => return None,
                _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
                _ => panic!("pipe read: {}", std::io::Error::last_os_error()),
            }
        }
    }

    /// Closes the write end (readers then see EOF once every copy is closed).
    pub fn close_write(&mut self) {
        if self.w >= 0 {
            // SAFETY: closes an fd we own exactly once.
            unsafe { libc::close(self.w) };
            self.w = -1;
        }
    }

    /// Closes the read end.
    pub fn close_read(&mut self) {
        if self.r >= 0 {
            // SAFETY: closes an fd we own exactly once.
            unsafe { libc::close(self.r) };
            self.r = -1;
        }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        self.close_read();
        self.close_write();
    }
}

/// A forked child parked where it called `park()`, blocked until the test kills it.
/// Dropping this closes the pipe that keeps it blocked (it would then carry on).
pub struct Parked {
    pub pid: libc::pid_t,
    _hold: Pipe,
}

/// Forks a child that runs `f(park)`. `park()` tells the parent the child got there,
/// then blocks until the child is killed. Returns once the child has parked; panics if
/// it ended without parking.
pub fn fork_parked(f: impl FnOnce(&dyn Fn()) -> i32) -> Parked {
    let mut parked = Pipe::new();
    let mut never = Pipe::new();
    let (w, r) = (parked.w, never.r);
    let pid = fork(move || {
        let park = move || {
            let b = 1u8;
            // SAFETY: writes one byte from a live local to the inherited pipe.
            unsafe { libc::write(w, std::ptr::addr_of!(b).cast(), 1) };
            let mut x = 0u8;
            // SAFETY: reads into a live local; blocks (the parent never writes) until
            // the child is killed.
            unsafe { libc::read(r, std::ptr::addr_of_mut!(x).cast(), 1) };
        };
        f(&park)
    });
    parked.close_write();
    never.close_read();
    assert_eq!(
        parked.read_byte(),
        Some(1),
        "child {pid} ended without parking"
    );
    Parked { pid, _hold: never }
}

/// Whether `/dev/shm/shmkit.<name>` exists.
pub fn shm_exists(name: &str) -> bool {
    shmkit_segment::shm_path(name).exists()
}
