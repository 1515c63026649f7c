//! The futex layer: how every blocking call in shmkit waits.
//!
//! A blocking call first **spins** ([`spin_until`]) for an adaptive, bounded time,
//! then **announces** itself in its primitive's state (a waiters bit or count), then
//! **sleeps** ([`wait`]) on a 32-bit shared futex word with an absolute
//! `CLOCK_MONOTONIC` [`Deadline`]. Every return from the kernel — wake-up, `EINTR`,
//! spurious, value mismatch — leads back to a re-check of the state, so callers
//! never trust the kernel's reason. Wakers call [`wake`] / [`wake_all`] only when a
//! waiter announced itself, so the uncontended paths make no system call.
//!
//! # Spinning
//! On the development VMs waking a sleeper on the other core costs about 30 µs (the
//! idle vCPU has halted: every cross-core wake is a VM exit), while a shared-atomic
//! round trip costs about 270 ns and a same-core futex round trip about 2 µs: when
//! the awaited change comes from another core within a few tens of microseconds,
//! spinning is far cheaper than sleeping; when it comes from a peer on our own core,
//! spinning only delays it. The spin budget is per thread and adapts to what the
//! thread observes at the end of each wait (`t` = the whole wait, spin included):
//!
//! * it starts at [`INITIAL_SPIN`] and stays within [`MIN_SPIN`] (none)..=[`MAX_SPIN`];
//! * a wait that ends without sleeping — in the spin, or in a re-check after it — raises
//!   the budget to at least `2t` (capped);
//! * a wait that had to sleep in the kernel halves it: when the peer runs on our core,
//!   spinning only delays it (measured: a rule that *raised* the budget after short
//!   sleeps oscillated at 30–60 µs per same-core round trip instead of 2 µs; sleep
//!   lengths cannot tell the cores apart on a loaded machine, where cross-core wakes
//!   are fast too);
//! * every [`PROBE_EVERY`]-th spin uses the full [`MAX_SPIN`] budget once, so a
//!   thread whose budget fell to the minimum rediscovers a peer that now answers
//!   from another core; each failed probe doubles the gap to the next one (up to 16x),
//!   a successful one resets it, so a same-core peer costs a probe only every few
//!   thousand waits;
//! * timeouts leave it unchanged;
//! * a forked child starts afresh (its first wait resets the state it inherited: the
//!   parent's budget describes the parent's peers).
//!
//! Whether a wait slept is recorded by [`wait`], [`wait_many`] and
//! [`EventCount::wait`] themselves, so a caller that reports a wait ending in its
//! re-check ([`note_slept`]) does not lower the budget by mistake (the queue did, and
//! its cross-core blocking ping-pong collapsed into sleeping: 47 µs round trips
//! instead of a few hundred nanoseconds).
//!
//! The spinner never calls `sched_yield`: measured on the loaded development VMs, a
//! yield hands the core to unrelated runnable tasks for a whole time slice (an Event
//! round trip went from 4 µs to 175 µs), whereas a futex sleeper gets wake-up
//! preemption. Under `--cfg shmkit_loom` nothing spins: the condition is checked once.
//!
//! [`EventCount`] packages the announce/sleep/notify protocol for other crates
//! (queues, pipes): a waiter takes a key, re-checks its condition, then sleeps until
//! a notification; a notifier with no announced waiter makes no system call.

use shmkit_segment::shim::atomic::{fence, AtomicU32, Ordering};
use shmkit_segment::shim::futex as sys;
// Waking needs no spin-budget bookkeeping: the shim's calls, re-exported. The
// count they return is informational (always 0 under loom).
pub use shmkit_segment::shim::futex::{wake, wake_all, WaitAny};
pub use shmkit_segment::shim::time::Deadline;
use std::time::Duration;

/// Shortest spin budget: none (a thread whose spins keep failing goes straight to
/// sleep, except for the periodic probes).
pub const MIN_SPIN: Duration = Duration::ZERO;
/// Spin budget of a thread that has not waited yet.
pub const INITIAL_SPIN: Duration = Duration::from_micros(10);
/// Longest spin budget (longer than one cross-core wake-up, ~30 µs).
pub const MAX_SPIN: Duration = Duration::from_micros(60);
/// One spin in this many uses the full [`MAX_SPIN`] budget (a probe).
pub const PROBE_EVERY: u32 = 256;

#[cfg(not(shmkit_loom))]
mod adapt {
    use super::{INITIAL_SPIN, MAX_SPIN, MIN_SPIN};
    use std::cell::Cell;

    /// Whole nanoseconds of a short constant duration (these are microseconds).
    const fn ns(d: std::time::Duration) -> u64 {
        d.as_secs() * 1_000_000_000 + d.subsec_nanos() as u64
    }
    pub(super) const MIN: u64 = ns(MIN_SPIN);
    pub(super) const MAX: u64 = ns(MAX_SPIN);

    thread_local! {
        static BUDGET: Cell<u64> = const { Cell::new(ns(INITIAL_SPIN)) };
        static SPINS: Cell<u32> = const { Cell::new(0) };
        /// Spins until the next full-budget probe.
        static GAP: Cell<u32> = const { Cell::new(super::PROBE_EVERY) };
        /// When the current wait's spin started (0: it did not spin).
        static SPIN_START: Cell<u64> = const { Cell::new(0) };
        /// Whether the current wait has slept in the kernel.
        static SLEPT: Cell<bool> = const { Cell::new(false) };
        /// Whether the current wait's spin stopped because the peers stalled.
        static STALLED: Cell<bool> = const { Cell::new(false) };
        /// The fork generation this thread's state was learned in (see `begin`).
        static GEN: Cell<u32> = const { Cell::new(0) };
    }

    pub(super) fn budget() -> u64 {
        BUDGET.with(Cell::get)
    }

    /// Start of a wait: nothing slept yet, no spin timed yet.
    pub(super) fn begin() {
        // A forked child starts afresh: the budget its parent's thread learned
        // describes the parent's peers, not the child's (inherited, it made a child
        // spin the parent's 60 µs where its own peers needed the CPU).
        let gen = crate::ident::fork_gen();
        if GEN.with(Cell::get) != gen {
            GEN.with(|c| c.set(gen));
            BUDGET.with(|c| c.set(ns(INITIAL_SPIN)));
            SPINS.with(|c| c.set(0));
            GAP.with(|c| c.set(super::PROBE_EVERY));
        }
        SLEPT.with(|c| c.set(false));
        STALLED.with(|c| c.set(false));
        SPIN_START.with(|c| c.set(0));
    }

    /// The current wait's spin stopped because its peers were not running: its end
    /// leaves the budget unchanged.
    pub(super) fn stalled() {
        STALLED.with(|c| c.set(true));
    }

    /// The current wait's spin started at `t` (a clock reading).
    pub(super) fn spin_started(t: u64) {
        SPIN_START.with(|c| c.set(t));
    }

    /// The current wait sleeps in the kernel.
    pub(super) fn sleeping() {
        SLEPT.with(|c| c.set(true));
    }

    /// The current wait has ended: a sleep halves the budget; otherwise the wait's
    /// length since `started` (0: since its spin started; no spin, no change) raises it.
    pub(super) fn finish(started: u64) {
        if STALLED.with(Cell::get) {
            return;
        }
        if SLEPT.with(Cell::get) {
            set(budget() / 2);
            return;
        }
        let started = if started == 0 {
            SPIN_START.with(Cell::get)
        } else {
            started
        };
        if started != 0 {
            raise(shmkit_segment::shim::time::now_nanos().saturating_sub(started));
        }
    }

    /// A wait that took `t` ns without sleeping: the budget becomes at least `2t`.
    pub(super) fn raise(t: u64) {
        set(budget().max(t.saturating_mul(2)));
    }

    /// The budget for the next spin, and whether that spin is a probe (a full
    /// budget, once the probe gap has passed).
    pub(super) fn next_budget() -> (u64, bool) {
        let n = SPINS.with(|c| {
            let n = c.get().wrapping_add(1);
            c.set(n);
            n
        });
        if n >= GAP.with(Cell::get) {
            SPINS.with(|c| c.set(0));
            (MAX, true)
        } else {
            (budget(), false)
        }
    }

    /// Called when a probe ends: a failed one doubles the gap to the next probe (up
    /// to PROBE_EVERY * MAX_PROBE_BACKOFF), a successful one resets it.
    pub(super) fn probe_result(ok: bool) {
        let gap = if ok {
            super::PROBE_EVERY
        } else {
            GAP.with(Cell::get)
                .saturating_mul(2)
                .min(super::PROBE_EVERY * MAX_PROBE_BACKOFF)
        };
        GAP.with(|c| c.set(gap));
    }

    /// Failed probes space the next ones out up to this factor.
    const MAX_PROBE_BACKOFF: u32 = 16;

    /// Budgets below this do not spin at all (one clock read costs ~20 ns).
    const FLOOR: u64 = 250;

    pub(super) fn set(v: u64) {
        let v = if v < FLOOR { 0 } else { v };
        BUDGET.with(|b| b.set(v.clamp(MIN, MAX)));
    }
}

/// The calling thread's current spin budget.
pub fn spin_budget() -> Duration {
    #[cfg(not(shmkit_loom))]
    {
        Duration::from_nanos(adapt::budget())
    }
    #[cfg(shmkit_loom)]
    {
        Duration::ZERO
    }
}

/// Spins until `done()` returns true or the thread's spin budget (or `deadline`) is
/// used up. Returns whether `done()` returned true. Bounded: never longer than
/// [`MAX_SPIN`] plus 16 calls of `done`.
#[inline]
pub fn spin_until(deadline: Deadline, done: impl FnMut() -> bool) -> bool {
    spin_inner(deadline, done, None::<(fn() -> u64, Duration)>)
}

/// How long a progress counter may stand still before [`spin_until_progress`] gives
/// up, for peers that advance it every few hundred nanoseconds while they run.
pub const STALL: Duration = Duration::from_micros(2);

/// As [`spin_until`], but gives up as soon as `progress()` has returned the same
/// value for `stall` (see [`STALL`]): the peers whose work would make `done()` true are not running
/// (say, four processes on two CPUs, and the peers are waiting for this very CPU), so
/// the rest of the spin would only keep them from it. `progress` is a counter the
/// peers advance as they work (a queue's index of the other side) and is read about
/// every 16 calls of `done`. A spin cut short this way leaves the spin budget as it
/// is (it says nothing about how long the peers take when they run).
///
/// Use it where the peers, when running, advance the counter continuously (a putter
/// waiting for getters to free room); not where they may legitimately work a while
/// before advancing it (a getter waiting for a request's answer).
#[inline]
pub fn spin_until_progress(
    deadline: Deadline,
    stall: Duration,
    done: impl FnMut() -> bool,
    progress: impl FnMut() -> u64,
) -> bool {
    spin_inner(deadline, done, Some((progress, stall)))
}

/// Watches a progress counter: whether it has stood still for `stall` ns at `now`.
#[derive(Debug, Clone, Copy)]
struct Watch {
    value: u64,
    since: u64,
}

impl Watch {
    /// Records the counter's value `cur` read at `now`; true if it last changed at
    /// least `stall` ns ago.
    #[cfg_attr(shmkit_loom, allow(dead_code))]
    fn stalled(&mut self, cur: u64, now: u64, stall: u64) -> bool {
        if cur != self.value {
            *self = Watch {
                value: cur,
                since: now,
            };
            return false;
        }
        now.saturating_sub(self.since) >= stall
    }
}

#[inline]
fn spin_inner(
    deadline: Deadline,
    mut done: impl FnMut() -> bool,
    mut progress: Option<(impl FnMut() -> u64, Duration)>,
) -> bool {
    #[cfg(shmkit_loom)]
    {
        let _ = (deadline, &mut progress);
        done()
    }
    #[cfg(not(shmkit_loom))]
    {
        use shmkit_segment::shim::time::now_nanos;
        adapt::begin();
        if done() {
            return true;
        }
        let (budget, probing) = adapt::next_budget();
        if budget == 0 {
            return false;
        }
        let start = now_nanos();
        adapt::spin_started(start);
        let end = start.saturating_add(budget).min(deadline.as_nanos());
        let mut watch = progress.as_mut().map(|(p, stall)| {
            let w = Watch {
                value: p(),
                since: start,
            };
            // Cast: a stall beyond u64 nanoseconds (584 years) is "never".
            (w, u64::try_from(stall.as_nanos()).unwrap_or(u64::MAX))
        });
        loop {
            let now = now_nanos();
            if now >= end {
                break;
            }
            if let (Some((p, _)), Some((w, stall))) = (progress.as_mut(), watch.as_mut()) {
                if w.stalled(p(), now, *stall) {
                    // The peers are not running: no verdict on the budget.
                    adapt::stalled();
                    return false;
                }
            }
            for _ in 0..16 {
                shmkit_segment::shim::spin_loop();
                if done() {
                    adapt::raise(now_nanos().saturating_sub(start));
                    if probing {
                        adapt::probe_result(true);
                    }
                    return true;
                }
            }
        }
        if probing {
            adapt::probe_result(false);
        }
        false
    }
}

/// Ends a wait whose spin ([`spin_until`]) failed but whose condition then came true
/// (after sleeping, or in a re-check before sleeping): a wait that slept in [`wait`],
/// [`wait_many`] or [`EventCount::wait`] halves the spin budget, one that did not
/// raises it to twice its length (see the module docs). `started` is the [`now`]
/// taken before the spin.
#[inline]
pub fn note_slept(started: u64) {
    let _ = started;
    #[cfg(not(shmkit_loom))]
    adapt::finish(started.max(1));
}

/// [`note_slept`] without a caller's timestamp: the wait is timed from the start of
/// its spin (no clock reading when it slept, or when the budget was zero and it did
/// not spin). For hot blocking paths.
#[inline]
pub fn note_wait_end() {
    #[cfg(not(shmkit_loom))]
    adapt::finish(0);
}

/// A timestamp for [`note_slept`] (0 under loom).
#[inline]
pub fn now() -> u64 {
    shmkit_segment::shim::time::now_nanos()
}

/// Sleeps while `*word == expected`, until woken, `deadline`, or a spurious return.
/// Returns `false` only when the deadline has passed. Callers re-check their state
/// after every return.
#[inline]
pub fn wait(word: &AtomicU32, expected: u32, deadline: Deadline) -> bool {
    #[cfg(not(shmkit_loom))]
    adapt::sleeping();
    sys::wait(word, expected, deadline)
}

/// Sleeps until any of `words` differs from its expected value, a wake-up, or the
/// deadline (`futex_waitv`; see [`shmkit_segment::shim::futex::wait_any`] for the
/// fallback on kernels before 5.16).
///
/// # Panics
/// If `words` is empty or longer than 128.
pub fn wait_many(words: &[(&AtomicU32, u32)], deadline: Deadline) -> WaitAny {
    #[cfg(not(shmkit_loom))]
    adapt::sleeping();
    sys::wait_any(words, deadline)
}

/// A deadline `timeout` from now; zero means "already expired" (try once), and a
/// timeout too large to represent saturates to [`Deadline::NEVER`].
pub fn deadline_after(timeout: Duration) -> Deadline {
    Deadline::after(timeout)
}

/// A wait word for "something changed" notifications between processes: an event
/// count (Vyukov). `#[repr(C)]`, 4 bytes, zero is the valid initial state.
///
/// ```text
/// bit 0      WAITERS  a waiter announced itself since the last notify
/// bits 1..32 epoch    bumped by every notify that saw WAITERS
/// ```
///
/// Protocol — waiter: `let key = ec.prepare();` then re-check the condition; if it
/// still does not hold, `ec.wait(key, deadline)`; loop. Notifier: make the condition
/// true (any store), then `ec.notify_all()`. `prepare` and `notify_all` each contain a
/// `SeqCst` fence, so either the waiter's re-check sees the new state or the notifier
/// sees the WAITERS bit (and wakes it). A notifier that sees no waiter does no RMW and
/// no system call.
///
/// ```
/// use shmkit_sync::futex::{Deadline, EventCount};
/// let ec = EventCount::new();
/// let key = ec.prepare();
/// ec.notify_all(); // the key is now stale, so wait returns at once
/// assert!(ec.wait(key, Deadline::NEVER));
/// ```
#[derive(Debug, Default)]
#[repr(C)]
pub struct EventCount {
    word: AtomicU32,
}

shmkit_segment::assert_layout!(EventCount, size = 4, align = 4, word @ 0);

// SAFETY: repr(C) over one atomic u32: valid for every bit pattern, no pointers, no
// Drop, mutated only atomically.
#[cfg(not(shmkit_loom))]
unsafe impl shmkit_segment::Shared for EventCount {}

const EC_WAITERS: u32 = 1;

impl EventCount {
    /// A new event count (equal to zeroed memory).
    pub fn new() -> Self {
        EventCount {
            word: AtomicU32::new(0),
        }
    }

    /// Announces a waiter and returns the key to pass to [`EventCount::wait`]. Re-check
    /// the awaited condition after this and before waiting.
    #[inline]
    pub fn prepare(&self) -> u32 {
        // SeqCst RMW: ordered before the caller's re-check of its condition; pairs
        // with the SeqCst fence in `notify_all` (Dekker: one of the two sees the other).
        let v = self.word.fetch_or(EC_WAITERS, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        v | EC_WAITERS
    }

    /// Sleeps until a notification after `key` was taken, or the deadline. Returns
    /// `false` only when the deadline passed. May return spuriously: re-check.
    #[inline]
    pub fn wait(&self, key: u32, deadline: Deadline) -> bool {
        wait(&self.word, key, deadline)
    }

    /// Wakes every waiter that announced itself; free when none did.
    #[inline]
    pub fn notify_all(&self) {
        // SeqCst fence: orders the caller's state change before the load below;
        // pairs with the fence in `prepare`.
        fence(Ordering::SeqCst);
        // Relaxed is enough: the fence above provides the ordering.
        if self.word.load(Ordering::Relaxed) & EC_WAITERS == 0 {
            return;
        }
        // AcqRel: the epoch bump is the value waiters compare against.
        let prev = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |v| {
                Some((v & !EC_WAITERS).wrapping_add(2))
            })
            .unwrap_or(0);
        if prev & EC_WAITERS != 0 {
            wake_all(&self.word);
        }
    }

    /// Whether a waiter announced itself since the last notification that saw it.
    /// The load has no fence of its own: call it after a `SeqCst` fence (such as the
    /// one [`EventCount::notify_all`] starts with) when it must pair with
    /// [`EventCount::prepare`] in the Dekker argument.
    #[inline]
    pub fn has_waiters_after_fence(&self) -> bool {
        // Relaxed: ordered by the caller's preceding SeqCst fence (see above).
        self.word.load(Ordering::Relaxed) & EC_WAITERS != 0
    }

    /// The raw word (for [`wait_many`] over several event counts).
    pub fn word(&self) -> &AtomicU32 {
        &self.word
    }
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_progress_counter_that_stands_still_stops_the_spin() {
        // Stall 0: the first look at the counter in the spin loop (the second in
        // all) stops it, before any poll after the initial check (and if the thread
        // is descheduled past its budget first, the spin ends there, as unpolled).
        let mut polls = 0;
        let got = spin_until_progress(
            Deadline::NEVER,
            Duration::ZERO,
            || {
                polls += 1;
                false
            },
            || 7,
        );
        assert!(!got);
        assert_eq!(polls, 1, "only the check before the spin");
    }

    #[test]
    fn a_watch_is_stalled_only_after_the_counter_stood_still_for_the_stall() {
        let mut w = Watch {
            value: 5,
            since: 1_000,
        };
        assert!(!w.stalled(5, 2_999, 2_000), "stood still 1999 ns");
        assert!(w.stalled(5, 3_000, 2_000), "stood still 2000 ns");
        assert!(!w.stalled(6, 3_500, 2_000), "moved");
        assert_eq!((w.value, w.since), (6, 3_500));
        assert!(!w.stalled(6, 5_499, 2_000));
        assert!(w.stalled(6, 5_500, 2_000));
    }

    #[test]
    fn a_stalled_spin_leaves_the_budget_as_it_was() {
        // Each attempt on a fresh thread (the initial budget). With stall 0 the spin
        // stops at its second look at the counter, unless the thread was descheduled
        // for longer than the budget before that look: then the spin ran out instead
        // (an ordinary failed spin), and the attempt is repeated.
        let stalled = (0..100).any(|_| {
            std::thread::spawn(|| {
                let before = spin_budget();
                let mut looks = 0;
                assert!(!spin_until_progress(
                    Deadline::NEVER,
                    Duration::ZERO,
                    || false,
                    || {
                        looks += 1;
                        0
                    }
                ));
                if looks < 2 {
                    return false;
                }
                // The wait then slept and ended: a normal failed spin would halve the
                // budget here; a stalled one is no verdict.
                adapt::sleeping();
                note_wait_end();
                assert_eq!(spin_budget(), before);
                assert!(!spin_until(Deadline::after(Duration::ZERO), || false));
                adapt::sleeping();
                note_wait_end();
                assert!(spin_budget() < before, "an ordinary slept wait halves it");
                true
            })
            .join()
            .expect("the test thread")
        });
        assert!(stalled, "no spin saw the counter stand still");
    }

    #[test]
    fn spin_is_bounded_and_adapts() {
        let t = std::time::Instant::now();
        assert!(!spin_until(Deadline::NEVER, || false));
        assert!(t.elapsed() < Duration::from_millis(50));
        let b = spin_budget();
        assert!(b >= MIN_SPIN && b <= MAX_SPIN);
        // Waits that slept halve the budget, down to none.
        drive_budget_to_zero();
        // A zero budget checks the condition once (one of two calls may be a probe).
        let checks: Vec<u32> = (0..2)
            .map(|_| {
                let mut n = 0;
                assert!(!spin_until(Deadline::NEVER, || {
                    n += 1;
                    false
                }));
                n
            })
            .collect();
        assert!(checks.contains(&1), "{checks:?}");
        // Within 16 * PROBE_EVERY spins (failed probes space the next ones out) a
        // full-budget probe catches a 5 µs answer and raises the budget to ~10 µs.
        let caught = (0..=16 * PROBE_EVERY).any(|_| {
            let t0 = std::time::Instant::now();
            spin_until(Deadline::NEVER, || t0.elapsed() > Duration::from_micros(5))
        });
        assert!(caught);
        assert!(spin_budget() >= Duration::from_micros(8));
        let mut n = 0;
        assert!(spin_until(Deadline::NEVER, || {
            n += 1;
            n > 3
        }));
    }

    /// Forty waits that each slept (`wait` on a word that differs from `expected`
    /// returns at once, but it is a sleep attempt): the budget halves down to none.
    fn drive_budget_to_zero() {
        let word = AtomicU32::new(0);
        for _ in 0..40 {
            let started = now();
            assert!(!spin_until(Deadline::NEVER, || false));
            let _ = wait(&word, 1, Deadline::NEVER);
            note_slept(started);
        }
        assert_eq!(spin_budget(), MIN_SPIN);
    }

    #[test]
    fn a_wait_ending_without_sleep_raises_the_budget() {
        let word = AtomicU32::new(0);
        drive_budget_to_zero();
        // The spin failed (budget zero, or a probe), the re-check after it succeeded
        // 20 µs after the wait began, without sleeping: the budget becomes ~40 µs.
        let started = now();
        let _ = spin_until(Deadline::NEVER, || false);
        while now() < started + 20_000 {
            std::hint::spin_loop();
        }
        note_slept(started);
        assert!(
            spin_budget() >= Duration::from_micros(39),
            "{:?}",
            spin_budget()
        );
        // A later sleep halves it again.
        let started = now();
        assert!(!spin_until(Deadline::NEVER, || false));
        let _ = wait(&word, 1, Deadline::NEVER);
        note_slept(started);
        assert!(spin_budget() < Duration::from_micros(39));
    }

    #[test]
    fn note_wait_end_times_the_wait_from_its_spin() {
        let word = AtomicU32::new(0);
        for _ in 0..40 {
            assert!(!spin_until(Deadline::NEVER, || false));
            let _ = wait(&word, 1, Deadline::NEVER);
            note_wait_end();
        }
        assert_eq!(spin_budget(), MIN_SPIN);
        // Without a spin (zero budget) and without a sleep: nothing to learn from.
        let probe = (0..2).any(|_| {
            let t0 = now();
            let _ = spin_until(Deadline::NEVER, || false);
            let spun = now() - t0 > 1_000;
            note_wait_end();
            spun
        });
        if !probe {
            assert_eq!(spin_budget(), MIN_SPIN);
        }
        // A probe spin (full budget, failed) then a re-check that succeeds without
        // sleeping: the wait lasted about MAX_SPIN, so the budget rises.
        for _ in 0..=16 * PROBE_EVERY {
            let t0 = now();
            assert!(!spin_until(Deadline::NEVER, || false));
            if now() - t0 > 1_000 {
                note_wait_end();
                assert!(spin_budget() >= MAX_SPIN / 2, "{:?}", spin_budget());
                return;
            }
            let _ = wait(&word, 1, Deadline::NEVER);
            note_wait_end();
        }
        panic!("no probe within 16 * PROBE_EVERY waits");
    }

    #[test]
    fn zero_deadline_spin_checks_once() {
        let mut n = 0;
        assert!(!spin_until(Deadline::after(Duration::ZERO), || {
            n += 1;
            false
        }));
        assert_eq!(n, 1);
    }

    #[test]
    fn event_count_wakes_a_sleeper() {
        let ec = Arc::new(EventCount::new());
        let flag = Arc::new(AtomicU32::new(0));
        let (ec2, flag2) = (Arc::clone(&ec), Arc::clone(&flag));
        let t = std::thread::spawn(move || loop {
            let key = ec2.prepare();
            if flag2.load(Ordering::Acquire) == 1 {
                return;
            }
            ec2.wait(key, Deadline::after(Duration::from_secs(30)));
        });
        std::thread::sleep(Duration::from_millis(20));
        flag.store(1, Ordering::Release);
        ec.notify_all();
        t.join().expect("waiter");
    }

    #[test]
    fn notify_without_waiters_leaves_word_alone() {
        let ec = EventCount::new();
        ec.notify_all();
        assert_eq!(ec.word().load(Ordering::Relaxed), 0);
        assert!(!ec.has_waiters_after_fence());
        let k = ec.prepare();
        assert_eq!(k, 1);
        assert!(ec.has_waiters_after_fence());
        ec.notify_all();
        assert_eq!(ec.word().load(Ordering::Relaxed), 2);
        assert!(!ec.wait(2, Deadline::after(Duration::from_millis(1))));
    }
}
