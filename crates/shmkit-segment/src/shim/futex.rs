//! Shared (not process-private) futexes on 32-bit words in shared memory.
//!
//! These are single system calls with no policy: callers keep their state in the
//! word, re-check it after every return and loop until their condition holds or the
//! deadline passes (bounded spinning lives one layer up, in `shmkit-sync`).
//!
//! * [`wait`] sleeps while `*word == expected`, until woken or the absolute
//!   `CLOCK_MONOTONIC` deadline passes. It returns `false` only when the deadline
//!   passed; a value mismatch, `EINTR` or a spurious wake-up return `true`.
//! * [`wake`] wakes up to `n` sleepers of the word (in any process).
//! * [`wait_any`] sleeps on several words at once (`futex_waitv`, Linux 5.16+); where
//!   the kernel lacks it, it falls back to sleeping on the first word in slices of at
//!   most [`WAITV_FALLBACK_SLICE`], so the caller's re-check notices the others within
//!   that time.
//!
//! Under `--cfg shmkit_loom` the futexes are modelled by one loom mutex + condvar and a
//! list of sleepers per word: `wake(word, n)` wakes exactly `n` of that word's sleepers
//! (lowest ticket first), so a waker that forgets to wake, or wakes too few, or the wrong
//! word, shows up as a loom deadlock; a finite deadline is modelled as timing out at
//! once.

use super::atomic::AtomicU32;
use super::time::Deadline;
use std::time::Duration;

/// How long the `futex_waitv` fallback sleeps on the first word before returning
/// so the caller re-checks the other words.
pub const WAITV_FALLBACK_SLICE: Duration = Duration::from_millis(1);

/// The most words [`wait_any`] accepts (the kernel's limit for `futex_waitv`).
pub const WAITV_MAX: usize = 128;

/// Outcome of [`wait_any`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitAny {
    /// Woken: `Some(i)` when the kernel named word `i`, `None` when the caller must
    /// re-check all words (value mismatch, `EINTR`, fallback slice elapsed).
    Woken(Option<usize>),
    /// The deadline passed.
    TimedOut,
}

#[cfg(not(shmkit_loom))]
mod sys {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    const FUTEX_WAIT_BITSET: libc::c_int = 9;
    const FUTEX_WAKE: libc::c_int = 1;
    const FUTEX_BITSET_MATCH_ANY: u32 = u32::MAX;
    /// `futex_waitv` (same number on x86-64 and aarch64).
    const SYS_FUTEX_WAITV: libc::c_long = 449;
    const FUTEX2_SIZE_U32: u32 = 0x02;

    #[repr(C)]
    struct FutexWaitv {
        val: u64,
        uaddr: u64,
        flags: u32,
        reserved: u32,
    }

    static WAITV_MISSING: AtomicBool = AtomicBool::new(false);

    fn errno() -> i32 {
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    pub(super) fn wait(word: &AtomicU32, expected: u32, deadline: Deadline) -> bool {
        let ts = deadline.to_timespec();
        if ts.is_some() && deadline.is_expired() {
            return false;
        }
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `word` is a live, aligned 32-bit atomic for the duration of the call;
        // FUTEX_WAIT_BITSET only reads it. `ts_ptr` is null or points at a timespec on
        // this stack frame. The kernel treats the timeout as absolute CLOCK_MONOTONIC.
        let r = unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                FUTEX_WAIT_BITSET,
                expected,
                ts_ptr,
                std::ptr::null::<u32>(),
                FUTEX_BITSET_MATCH_ANY,
            )
        };
        !(r == -1 && errno() == libc::ETIMEDOUT)
    }

    pub(super) fn wake(word: &AtomicU32, n: u32) -> usize {
        let n = n.min(i32::MAX as u32);
        // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE does not access
        // its memory beyond hashing the address.
        let r = unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), FUTEX_WAKE, n) };
        usize::try_from(r).unwrap_or(0)
    }

    pub(super) fn wait_any(words: &[(&AtomicU32, u32)], deadline: Deadline) -> WaitAny {
        assert!(
            !words.is_empty() && words.len() <= WAITV_MAX,
            "wait_any takes 1..={WAITV_MAX} words, got {}",
            words.len()
        );
        if deadline.is_expired() {
            return WaitAny::TimedOut;
        }
        if !WAITV_MISSING.load(Ordering::Relaxed) {
            let waiters: Vec<FutexWaitv> = words
                .iter()
                .map(|(w, v)| FutexWaitv {
                    val: u64::from(*v),
                    uaddr: w.as_ptr() as u64,
                    flags: FUTEX2_SIZE_U32,
                    reserved: 0,
                })
                .collect();
            let ts = deadline.to_timespec();
            let ts_ptr = ts
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: `waiters` is a live array of `words.len()` futex_waitv structs
            // whose addresses point at live aligned atomics; `ts_ptr` is null or a
            // timespec on this frame; flags 0; clock CLOCK_MONOTONIC.
            let r = unsafe {
                libc::syscall(
                    SYS_FUTEX_WAITV,
                    waiters.as_ptr(),
                    libc::c_uint::try_from(waiters.len()).unwrap_or(0),
                    0u32,
                    ts_ptr,
                    libc::CLOCK_MONOTONIC,
                )
            };
            if r >= 0 {
                return WaitAny::Woken(usize::try_from(r).ok().filter(|i| *i < words.len()));
            }
            match errno() {
                libc::ETIMEDOUT => return WaitAny::TimedOut,
                libc::ENOSYS => WAITV_MISSING.store(true, Ordering::Relaxed),
                _ => return WaitAny::Woken(None),
            }
        }
        // Fallback: sleep on the first word for at most one slice.
        let slice = Deadline::after(WAITV_FALLBACK_SLICE).min(deadline);
        let (w, v) = words[0];
        if wait(w, v, slice) || !deadline.is_expired() {
            WaitAny::Woken(None)
        } else {
            WaitAny::TimedOut
        }
    }
}

#[cfg(shmkit_loom)]
mod sys {
    use super::*;
    use crate::shim::atomic::Ordering;
    use loom::sync::{Condvar, Mutex};

    /// A modelled sleeper: the words it sleeps on, and whether a wake chose it.
    struct Sleeper {
        words: Vec<usize>,
        woken: bool,
    }

    loom::lazy_static! {
        /// Every sleeper, by ticket (`None`: a free ticket).
        static ref SLEEPERS: Mutex<Vec<Option<Sleeper>>> = Mutex::new(Vec::new());
        static ref CVAR: Condvar = Condvar::new();
    }

    fn addr(word: &AtomicU32) -> usize {
        std::ptr::from_ref(word) as usize
    }

    /// Registers a sleeper on `words` and blocks until a wake chooses it.
    fn sleep(mut g: loom::sync::MutexGuard<'static, Vec<Option<Sleeper>>>, words: Vec<usize>) {
        let me = Sleeper {
            words,
            woken: false,
        };
        let id = match g.iter().position(Option::is_none) {
            Some(i) => {
                g[i] = Some(me);
                i
            }
            None => {
                g.push(Some(me));
                g.len() - 1
            }
        };
        loop {
            g = CVAR.wait(g).expect("futex model wait");
            if g[id].as_ref().is_some_and(|s| s.woken) {
                g[id] = None;
                return;
            }
        }
    }

    pub(super) fn wait(word: &AtomicU32, expected: u32, deadline: Deadline) -> bool {
        let g = SLEEPERS.lock().expect("futex model lock");
        if word.load(Ordering::SeqCst) != expected {
            return true;
        }
        if !deadline.is_never() {
            // Model: a finite wait may time out at any moment; take that branch.
            return false;
        }
        sleep(g, vec![addr(word)]);
        true
    }

    /// Wakes exactly `n` (or all, if fewer) of `word`'s sleepers, as the kernel may:
    /// a waker that wakes too few shows up as a loom deadlock. Sleepers are chosen by
    /// ticket, and a freed ticket is reused, so this is not strictly oldest first (the
    /// kernel promises no order either; the model explores only this one).
    pub(super) fn wake(word: &AtomicU32, n: u32) -> usize {
        let mut g = SLEEPERS.lock().expect("futex model lock");
        let a = addr(word);
        let mut k = 0u32;
        for s in g.iter_mut().flatten() {
            if k == n {
                break;
            }
            if !s.woken && s.words.contains(&a) {
                s.woken = true;
                k += 1;
            }
        }
        if k > 0 {
            CVAR.notify_all();
        }
        0
    }

    pub(super) fn wait_any(words: &[(&AtomicU32, u32)], deadline: Deadline) -> WaitAny {
        let g = SLEEPERS.lock().expect("futex model lock");
        if let Some(i) = words
            .iter()
            .position(|(w, v)| w.load(Ordering::SeqCst) != *v)
        {
            return WaitAny::Woken(Some(i));
        }
        if !deadline.is_never() {
            return WaitAny::TimedOut;
        }
        sleep(g, words.iter().map(|(w, _)| addr(w)).collect());
        WaitAny::Woken(None)
    }
}

/// Sleeps while `*word == expected`, until woken or `deadline` passes.
///
/// Returns `false` only if the deadline passed; `true` for a wake-up, a value mismatch,
/// `EINTR` or a spurious return. The caller re-checks its state either way.
#[inline]
pub fn wait(word: &AtomicU32, expected: u32, deadline: Deadline) -> bool {
    sys::wait(word, expected, deadline)
}

/// Wakes up to `n` sleepers on `word` in any process; returns how many were woken
/// (always 0 under loom, so no algorithm may rely on the count).
#[inline]
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    sys::wake(word, n)
}

/// Wakes every sleeper on `word`.
#[inline]
pub fn wake_all(word: &AtomicU32) -> usize {
    sys::wake(word, u32::MAX)
}

/// Sleeps until any `word` differs from its expected value, a wake-up, or `deadline`.
///
/// # Panics
/// If `words` is empty or longer than [`WAITV_MAX`].
pub fn wait_any(words: &[(&AtomicU32, u32)], deadline: Deadline) -> WaitAny {
    sys::wait_any(words, deadline)
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::*;
    use crate::shim::atomic::Ordering;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn wait_on_mismatch_returns_at_once() {
        let w = AtomicU32::new(1);
        assert!(wait(&w, 0, Deadline::NEVER));
    }

    #[test]
    fn wait_times_out_at_deadline() {
        let w = AtomicU32::new(0);
        let t = Instant::now();
        assert!(!wait(&w, 0, Deadline::after(Duration::from_millis(30))));
        assert!(t.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn wake_reaches_a_sleeper() {
        let w = Arc::new(AtomicU32::new(0));
        let w2 = Arc::clone(&w);
        let t = std::thread::spawn(move || {
            while w2.load(Ordering::Acquire) == 0 {
                wait(&w2, 0, Deadline::after(Duration::from_secs(30)));
            }
        });
        w.store(1, Ordering::Release);
        wake_all(&w);
        t.join().expect("waiter thread");
    }

    #[test]
    fn wait_any_names_the_changed_word() {
        let a = AtomicU32::new(0);
        let b = AtomicU32::new(5);
        assert_eq!(
            wait_any(&[(&a, 0), (&b, 4)], Deadline::NEVER),
            WaitAny::Woken(None)
        );
        assert_eq!(
            wait_any(
                &[(&a, 0), (&b, 5)],
                Deadline::after(Duration::from_millis(5))
            ),
            WaitAny::TimedOut
        );
    }
}
