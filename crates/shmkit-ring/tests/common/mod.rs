//! Fork/wait/kill helpers for the multi-process tests (one test per binary, so the
//! harness has no other test thread that could hold a lock across `fork`).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use shmkit_segment::layout::{ArrayRegion, ByteRegion, Layout};
use shmkit_segment::shim::atomic::{AtomicU64, Ordering};
use shmkit_segment::{Kind, Segment};
use std::time::{Duration, Instant};

/// Runs `f` in a forked child, which exits with `f`'s code (101 if it panics) through
/// `_exit` (no atexit handlers, no flushing of the parent's buffers).
pub fn fork(f: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: fork has no preconditions; the child only runs `f` and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers: the child dies with
        // the test process instead of spinning on as an orphan if the test fails.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        // SAFETY: _exit ends the child at once; nothing of the parent's state is run.
        unsafe { libc::_exit(code) }
    }
    pid
}

/// SIGKILLs `pid`.
pub fn kill(pid: libc::pid_t) {
    // SAFETY: plain syscall on a child pid we forked and have not reaped yet.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Reaps `pid`, waiting up to `timeout`; returns the raw wait status, or kills the
/// child and panics on timeout.
pub fn wait(pid: libc::pid_t, timeout: Duration) -> i32 {
    let deadline = Instant::now() + timeout;
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer; `pid` is our child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(r >= 0, "waitpid: {}", std::io::Error::last_os_error());
        if r == pid {
            return status;
        }
        if Instant::now() > deadline {
            kill(pid);
            panic!("child {pid} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Reaps `pid` and asserts it exited with code 0.
pub fn wait_ok(pid: libc::pid_t, timeout: Duration) {
    let st = wait(pid, timeout);
    assert!(
        libc::WIFEXITED(st) && libc::WEXITSTATUS(st) == 0,
        "child {pid} failed: status {st:#x}"
    );
}

/// Panics if `pid` has already exited (reaping it), naming its status.
pub fn assert_running(pid: libc::pid_t, what: &str) {
    let mut status = 0;
    // SAFETY: `status` is a valid out-pointer; `pid` is our child.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    assert!(
        r == 0,
        "{what} (pid {pid}) exited early: status {status:#x}"
    );
}

/// Spins (yielding) until `cond` holds; panics after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

/// A segment with a ring region and `words` shared counters.
pub struct Shared {
    pub seg: Segment,
    pub ring: ByteRegion,
    words: ArrayRegion<AtomicU64>,
}

impl Shared {
    pub fn new(ring_size: usize, words: usize) -> Self {
        let mut l = Layout::new();
        let ring = l.add_bytes(ring_size, 128).unwrap();
        let w = l.add_array::<AtomicU64>(words).unwrap();
        let seg = Segment::create_anonymous(Kind::RAW, l.size()).unwrap();
        Shared {
            seg,
            ring,
            words: w,
        }
    }

    pub fn word(&self, i: usize) -> &AtomicU64 {
        &self.words.get(&self.seg).unwrap()[i]
    }

    pub fn load(&self, i: usize) -> u64 {
        // Acquire: pairs with the Release stores/RMWs of the children.
        self.word(i).load(Ordering::Acquire)
    }
}
