//! [`RawEvent`] and [`Event`]: Python's `multiprocessing.Event`, plus
//! [`wait_any`] over several events.

use crate::futex::{self, Deadline, WaitAny};
#[cfg(not(shmkit_loom))]
use crate::Result;
use shmkit_segment::shim::atomic::{AtomicU32, Ordering};
#[cfg(not(shmkit_loom))]
use shmkit_segment::{Kind, Token};
#[cfg(not(shmkit_loom))]
use std::fmt;
#[cfg(not(shmkit_loom))]
use std::time::Duration;

/// `state` bit: the flag.
const SET: u32 = 1;
/// `state` bit: a waiter sleeps (or is about to); `set` must wake.
const WAITERS: u32 = 2;

/// An event flag for shared memory: `#[repr(C)]`, 4 bytes, zero = clear.
///
/// ```text
/// state:  bit 0 SET | bit 1 WAITERS      (other bits always 0; ignored if not)
///
///   state        meaning                 set()                clear()
///   0            clear, nobody sleeps    swap SET             -
///   WAITERS      clear, sleepers         swap SET, wake all   -
///   SET          set                     -                    and !SET
/// ```
///
/// `set` replaces the word with `SET` (dropping WAITERS) and wakes everyone if WAITERS
/// was there; every woken waiter re-checks and re-announces if it must sleep again.
/// `wait` never writes unless it is going to sleep. All on one word, so no fences:
/// the RMWs on `state` are totally ordered.
///
/// ```
/// use shmkit_sync::{futex::Deadline, RawEvent};
/// let e = RawEvent::new();
/// assert!(!e.wait_until(Deadline::after(std::time::Duration::ZERO)));
/// e.set();
/// assert!(e.is_set() && e.wait_until(Deadline::NEVER));
/// e.clear();
/// assert!(!e.is_set());
/// ```
#[derive(Debug, Default)]
#[repr(C)]
pub struct RawEvent {
    state: AtomicU32,
}

shmkit_segment::assert_layout!(RawEvent, size = 4, align = 4, state @ 0);

// SAFETY: repr(C) over one atomic u32: any bit pattern, no pointers, no Drop.
#[cfg(not(shmkit_loom))]
unsafe impl shmkit_segment::Shared for RawEvent {}

impl RawEvent {
    /// A clear event (equal to zeroed memory).
    pub fn new() -> Self {
        RawEvent {
            state: AtomicU32::new(0),
        }
    }

    /// Sets the flag and wakes every waiter (a syscall only if one announced itself).
    #[inline]
    pub fn set(&self) {
        // Release: pairs with the Acquire loads in `is_set`/`wait_until`, so what the
        // setter wrote before is visible to whoever sees the flag.
        let prev = self.state.swap(SET, Ordering::AcqRel);
        if prev & WAITERS != 0 {
            futex::wake_all(&self.state);
        }
    }

    /// Clears the flag.
    #[inline]
    pub fn clear(&self) {
        // Relaxed: clearing publishes nothing; waiters only need to see the word change.
        self.state.fetch_and(!SET, Ordering::Relaxed);
    }

    /// Whether the flag is set.
    #[inline]
    pub fn is_set(&self) -> bool {
        // Acquire: pairs with the swap in `set`.
        self.state.load(Ordering::Acquire) & SET != 0
    }

    /// Waits until the flag is set or `deadline` passes; returns the flag (Python's
    /// `wait(timeout)`).
    pub fn wait_until(&self, deadline: Deadline) -> bool {
        if self.is_set() {
            return true;
        }
        let started = futex::now();
        if !deadline.is_expired() && futex::spin_until(deadline, || self.is_set()) {
            return true;
        }
        loop {
            // Acquire: pairs with the swap in `set`.
            let v = self.state.load(Ordering::Acquire);
            if v & SET != 0 {
                futex::note_slept(started);
                return true;
            }
            if deadline.is_expired() {
                return false;
            }
            if v & WAITERS == 0
                && self
                    .state
                    .compare_exchange(v, v | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            futex::wait(&self.state, v | WAITERS, deadline);
        }
    }

    /// Announces a waiter and returns the word value to sleep on, or `None` if set.
    fn announce(&self) -> Option<u32> {
        loop {
            // Acquire: pairs with the swap in `set`.
            let v = self.state.load(Ordering::Acquire);
            if v & SET != 0 {
                return None;
            }
            if v & WAITERS != 0
                || self
                    .state
                    .compare_exchange(v, v | WAITERS, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                return Some(v | WAITERS);
            }
        }
    }

    /// The futex word (for [`futex::wait_many`]).
    pub fn word(&self) -> &AtomicU32 {
        &self.state
    }
}

/// Waits until any of `events` is set; returns the index of one that is set, or
/// `None` when `deadline` passed. Sleeps on all of them at once with `futex_waitv`
/// (or the documented fallback on kernels before 5.16).
///
/// # Panics
/// If `events` is empty or has more than 128 entries.
pub fn wait_any_raw(events: &[&RawEvent], deadline: Deadline) -> Option<usize> {
    assert!(
        !events.is_empty() && events.len() <= 128,
        "wait_any takes 1..=128 events, got {}",
        events.len()
    );
    let find = || events.iter().position(|e| e.is_set());
    if let Some(i) = find() {
        return Some(i);
    }
    let mut hit = None;
    if !deadline.is_expired()
        && futex::spin_until(deadline, || {
            hit = find();
            hit.is_some()
        })
    {
        return hit;
    }
    let mut words = Vec::with_capacity(events.len());
    loop {
        words.clear();
        for (i, e) in events.iter().enumerate() {
            match e.announce() {
                None => return Some(i),
                Some(v) => words.push((e.word(), v)),
            }
        }
        if deadline.is_expired() {
            return None;
        }
        if let WaitAny::TimedOut = futex::wait_many(&words, deadline) {
            return find();
        }
    }
}

#[cfg(not(shmkit_loom))]
/// Segment kind of an [`Event`].
pub const EVENT_KIND: Kind = Kind::from_tag(*b"EVNT");
#[cfg(not(shmkit_loom))]
const EVENT_LEN: usize = std::mem::size_of::<RawEvent>();

#[cfg(not(shmkit_loom))]
/// Python's `multiprocessing.Event`, shared between processes.
///
/// ```
/// use shmkit_sync::Event;
/// use std::time::Duration;
/// let e = Event::new()?;
/// assert!(!e.wait_timeout(Duration::from_millis(1)));
/// e.set();
/// assert!(e.wait_timeout(Duration::ZERO));
/// # Ok::<(), shmkit_sync::Error>(())
/// ```
#[derive(Clone)]
pub struct Event {
    shm: crate::handle::Shm<RawEvent>,
}

#[cfg(not(shmkit_loom))]
impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("segment", &self.shm.segment().describe())
            .field("set", &self.is_set())
            .finish()
    }
}

#[cfg(not(shmkit_loom))]
impl Event {
    /// A new anonymous, clear event.
    ///
    /// # Errors
    /// [`crate::Error::Segment`].
    pub fn new() -> Result<Self> {
        Ok(Event {
            shm: crate::handle::Shm::anonymous(EVENT_KIND, EVENT_LEN, |_| {})?,
        })
    }

    /// A new named, clear event.
    ///
    /// # Errors
    /// [`crate::Error::Segment`].
    pub fn create(name: &str) -> Result<Self> {
        Ok(Event {
            shm: crate::handle::Shm::create(name, EVENT_KIND, EVENT_LEN, |_| {})?,
        })
    }

    /// Opens a named event.
    ///
    /// # Errors
    /// [`crate::Error::Segment`].
    pub fn open(name: &str) -> Result<Self> {
        Ok(Event {
            shm: crate::handle::Shm::open(name, EVENT_KIND, EVENT_LEN)?,
        })
    }

    /// Opens a named event or creates it clear.
    ///
    /// # Errors
    /// [`crate::Error::Segment`].
    pub fn open_or_create(name: &str) -> Result<Self> {
        Ok(Event {
            shm: crate::handle::Shm::open_or_create(name, EVENT_KIND, EVENT_LEN, |_| {})?.0,
        })
    }

    /// A token for [`Event::from_token`].
    ///
    /// # Errors
    /// [`crate::Error::Segment`].
    pub fn token(&self) -> Result<Token> {
        self.shm.token()
    }

    /// Rebuilds an event from a token.
    ///
    /// # Errors
    /// [`crate::Error::Segment`].
    pub fn from_token(token: &Token) -> Result<Self> {
        Ok(Event {
            shm: crate::handle::Shm::from_token(token, EVENT_KIND, EVENT_LEN)?,
        })
    }

    /// The raw event.
    pub fn raw(&self) -> &RawEvent {
        self.shm.raw()
    }

    /// Sets the flag, waking every waiter.
    pub fn set(&self) {
        self.raw().set();
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.raw().clear();
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.raw().is_set()
    }

    /// Waits until the flag is set.
    pub fn wait(&self) {
        self.raw().wait_until(Deadline::NEVER);
    }

    /// Waits at most `timeout` (zero = check once, huge = forever); returns the flag.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.raw().wait_until(futex::deadline_after(timeout))
    }
}

#[cfg(not(shmkit_loom))]
crate::lock::token_serde!(Event);

#[cfg(not(shmkit_loom))]
/// Waits until any of `events` is set, at most `timeout` (`None` = forever); returns
/// the index of a set event, or `None` on timeout.
///
/// ```
/// use shmkit_sync::{wait_any, Event};
/// use std::time::Duration;
/// let (a, b) = (Event::new()?, Event::new()?);
/// b.set();
/// assert_eq!(wait_any(&[&a, &b], Some(Duration::from_secs(1))), Some(1));
/// b.clear();
/// assert_eq!(wait_any(&[&a, &b], Some(Duration::ZERO)), None);
/// # Ok::<(), shmkit_sync::Error>(())
/// ```
///
/// # Panics
/// If `events` is empty or longer than 128.
pub fn wait_any(events: &[&Event], timeout: Option<Duration>) -> Option<usize> {
    let raws: Vec<&RawEvent> = events.iter().map(|e| e.raw()).collect();
    wait_any_raw(&raws, Deadline::from_timeout(timeout))
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn set_wakes_threads_and_clear_resets() {
        let e = Event::new().expect("event");
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let e = e.clone();
                std::thread::spawn(move || e.wait_timeout(Duration::from_secs(30)))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        e.set();
        for h in hs {
            assert!(h.join().expect("waiter"));
        }
        e.clear();
        let t = Instant::now();
        assert!(!e.wait_timeout(Duration::from_millis(40)));
        assert!(t.elapsed() >= Duration::from_millis(40));
        assert!(!e.wait_timeout(Duration::ZERO));
    }

    #[test]
    fn wait_any_sleeps_on_all() {
        let evs: Vec<Event> = (0..3).map(|_| Event::new().expect("event")).collect();
        let e2 = evs[2].clone();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            e2.set();
        });
        let refs: Vec<&Event> = evs.iter().collect();
        assert_eq!(wait_any(&refs, Some(Duration::from_secs(30))), Some(2));
        h.join().expect("setter");
        evs[2].clear();
        assert_eq!(wait_any(&refs, Some(Duration::from_millis(10))), None);
        evs[0].set();
        assert_eq!(wait_any(&refs, Some(Duration::MAX)), Some(0));
    }

    #[test]
    #[should_panic(expected = "wait_any takes")]
    fn wait_any_refuses_empty() {
        let _ = wait_any(&[], None);
    }

    #[test]
    fn tokens_and_names_reach_the_same_event() {
        let name = format!("sync-ev-test-{}", std::process::id());
        let a = Event::create(&name).expect("create");
        let b = Event::open(&name).expect("open");
        let c = Event::from_token(&a.token().expect("token")).expect("from token");
        a.set();
        assert!(b.is_set() && c.is_set());
        assert!(Event::create(&name).is_err());
        let d = Event::open_or_create(&name).expect("open_or_create");
        assert!(d.is_set());
        let t = crate::Lock::new().expect("lock").token().expect("token");
        assert!(Event::from_token(&t).is_err());
    }
}
