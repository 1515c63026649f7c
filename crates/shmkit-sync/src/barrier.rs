//! [`RawBarrier`] and [`Barrier`]: Python's `multiprocessing.Barrier`.

use crate::futex::{self, Deadline};
use crate::ident;
use crate::{Error, Result};
use shmkit_segment::shim::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// The most parties a barrier may have.
pub const MAX_PARTIES: u32 = 0xFFFF;
/// How many concurrent waiters a barrier tracks for liveness.
pub const TRACKED_WAITERS: usize = 16;

const COUNT_MASK: u32 = 0xFFFF;
/// The current generation is broken (aborted, timed out, a waiter died).
const BROKEN: u32 = 1 << 16;
/// The previous generation ended by `reset` (its waiters get BrokenBarrier).
const PREV_BROKEN: u32 = 1 << 17;
const GEN_SHIFT: u32 = 18;
const GEN_MASK: u32 = (1 << (32 - GEN_SHIFT)) - 1;
/// A slot being claimed (its other fields are not yet written).
const CLAIMING: u32 = u32::MAX;

fn gen_of(v: u32) -> u32 {
    v >> GEN_SHIFT
}

fn next_gen(v: u32, prev_broken: bool) -> u32 {
    let g = (gen_of(v) + 1) & GEN_MASK;
    (g << GEN_SHIFT) | if prev_broken { PREV_BROKEN } else { 0 }
}

/// A waiter registered for liveness checks.
#[derive(Debug, Default)]
#[repr(C)]
struct Slot {
    tid: AtomicU32,
    gen: AtomicU32,
    start: AtomicU64,
}

/// A barrier for shared memory: `#[repr(C)]`, 272 bytes, align 8. Zeroed memory is
/// a barrier with 0 parties, which refuses to wait until [`RawBarrier::init`].
///
/// ```text
/// state:  bits 18..32 generation | bit 17 PREV_BROKEN | bit 16 BROKEN | bits 0..16 count
///
///   event                 state change (one CAS)                         wakes
///   arrive, not last      count + 1                                      -
///   arrive, last          gen + 1, count 0, flags 0 -> index parties-1   all
///   abort / timeout /     BROKEN set (count kept)                         all
///     dead waiter seen
///   reset                 gen + 1, count 0, PREV_BROKEN                  all
///
/// outcomes: bit (g mod 32) set if generation g ended by reset (for waiters that
///           wake more than one generation late; best effort)
/// slots:    up to 16 waiters' (tid, generation, thread start time)
/// ```
///
/// A waiter of generation `g` sleeps on `state` until the generation moves (released:
/// its arrival index; unless PREV_BROKEN / the outcome bit says reset: BrokenBarrier)
/// or BROKEN appears (BrokenBarrier). No draining phase is needed because waiters
/// compare generations, so a waiter that dies never blocks the next generation.
/// Sleeping waiters wake every [`crate::LIVENESS_SLICE`] and check the registered
/// waiters of their generation; a dead one breaks the barrier so nobody waits for it
/// forever. Not covered: a waiter that dies between its arrival CAS and registering,
/// and waiters beyond the 16 slots.
#[derive(Debug, Default)]
#[repr(C)]
pub struct RawBarrier {
    state: AtomicU32,
    parties: AtomicU32,
    outcomes: AtomicU32,
    _pad: AtomicU32,
    slots: [Slot; TRACKED_WAITERS],
}

shmkit_segment::assert_layout!(RawBarrier, size = 272, align = 8, state @ 0, parties @ 4, outcomes @ 8, slots @ 16);

// SAFETY: repr(C) of atomic integers only (the slot array included): any bit
// pattern, no pointers, no Drop.
#[cfg(not(shmkit_loom))]
unsafe impl shmkit_segment::Shared for RawBarrier {}

fn check_parties(parties: u32) -> Result<()> {
    if parties == 0 || parties > MAX_PARTIES {
        return Err(Error::InvalidArgument {
            what: "parties",
            reason: "a barrier needs between 1 and 65535 parties",
        });
    }
    Ok(())
}

impl RawBarrier {
    /// A barrier for `parties` parties.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for 0 or more than [`MAX_PARTIES`] parties.
    pub fn new(parties: u32) -> Result<Self> {
        let b = RawBarrier::default();
        b.init(parties)?;
        Ok(b)
    }

    /// Initialises zeroed memory in place, before other processes use it.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for 0 or more than [`MAX_PARTIES`] parties.
    pub fn init(&self, parties: u32) -> Result<()> {
        check_parties(parties)?;
        // Relaxed: initialisation precedes publication of the segment.
        self.parties.store(parties, Ordering::Relaxed);
        Ok(())
    }

    /// The number of parties.
    pub fn parties(&self) -> u32 {
        // Relaxed: constant after initialisation.
        self.parties.load(Ordering::Relaxed)
    }

    /// Waiters in the current generation (0 when broken).
    pub fn n_waiting(&self) -> u32 {
        // Relaxed: a snapshot.
        let v = self.state.load(Ordering::Relaxed);
        if v & BROKEN != 0 {
            0
        } else {
            v & COUNT_MASK
        }
    }

    /// Whether the barrier is broken.
    pub fn broken(&self) -> bool {
        // Relaxed: a snapshot.
        self.state.load(Ordering::Relaxed) & BROKEN != 0
    }

    /// Breaks the barrier: current and future waiters get BrokenBarrier until `reset`.
    pub fn abort(&self) {
        // AcqRel: orders this break after whatever the caller did before.
        let prev = self.state.fetch_or(BROKEN, Ordering::AcqRel);
        if prev & BROKEN == 0 {
            futex::wake_all(&self.state);
        }
    }

    /// Breaks only generation `gen` (a timeout or a dead waiter in it).
    fn break_gen(&self, gen: u32) {
        // Relaxed: the CAS below decides; nothing is published by breaking.
        let mut v = self.state.load(Ordering::Relaxed);
        while gen_of(v) == gen && v & BROKEN == 0 {
            match self
                .state
                .compare_exchange(v, v | BROKEN, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    futex::wake_all(&self.state);
                    return;
                }
                Err(now) => v = now,
            }
        }
    }

    /// Returns the barrier to the empty state; current waiters get BrokenBarrier.
    pub fn reset(&self) {
        // Relaxed: the CAS loop decides.
        let mut v = self.state.load(Ordering::Relaxed);
        loop {
            // AcqRel: as in `wait`'s release of a generation.
            match self.state.compare_exchange(
                v,
                next_gen(v, true),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => v = now,
            }
        }
        // Release: read (Acquire) by waiters that wake more than a generation late.
        self.outcomes
            .fetch_or(1 << (gen_of(v) % 32), Ordering::Release);
        futex::wake_all(&self.state);
    }

    /// Waits for all parties, until `deadline`. Returns this caller's arrival index
    /// (0 for the first to arrive, `parties - 1` for the one that released the
    /// others).
    ///
    /// # Errors
    /// [`Error::BrokenBarrier`] if the barrier is or becomes broken, is reset while
    /// waiting, or the deadline passes (which also breaks it for everyone);
    /// [`Error::InvalidArgument`] if it was never initialised.
    pub fn wait_until(&self, deadline: Deadline) -> Result<u32> {
        let parties = self.parties();
        check_parties(parties)?;
        // Acquire: pairs with the AcqRel CASes of other arrivals and of release.
        let mut v = self.state.load(Ordering::Acquire);
        let (gen, index) = loop {
            if v & BROKEN != 0 {
                return Err(Error::BrokenBarrier);
            }
            let count = v & COUNT_MASK;
            if count + 1 >= parties {
                // AcqRel: publishes every arrival's prior writes to all waiters.
                match self.state.compare_exchange(
                    v,
                    next_gen(v, false),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        // Release: see `reset`.
                        self.outcomes
                            .fetch_and(!(1 << (gen_of(v) % 32)), Ordering::Release);
                        futex::wake_all(&self.state);
                        return Ok(parties - 1);
                    }
                    Err(now) => v = now,
                }
                continue;
            }
            // AcqRel: our arrival is ordered before the release of the generation.
            match self
                .state
                .compare_exchange(v, v + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break (gen_of(v), count),
                Err(now) => v = now,
            }
        };
        let slot = self.register(gen);
        let r = self.sleep(gen, index, deadline);
        if let Some(s) = slot {
            // Release: pairs with the Acquire in `check_peers`.
            s.tid.store(0, Ordering::Release);
        }
        r
    }

    fn sleep(&self, gen: u32, index: u32, deadline: Deadline) -> Result<u32> {
        let started = futex::now();
        let moved = |v: u32| gen_of(v) != gen || v & BROKEN != 0;
        // Acquire: as below. The loop re-reads the state either way.
        if !deadline.is_expired() {
            futex::spin_until(deadline, || moved(self.state.load(Ordering::Acquire)));
        }
        let mut slept = false;
        loop {
            // Acquire: pairs with the AcqRel CAS that released or broke the generation.
            let v = self.state.load(Ordering::Acquire);
            if gen_of(v) != gen {
                if slept {
                    futex::note_slept(started);
                }
                let reset = if gen_of(v) == (gen + 1) & GEN_MASK {
                    v & PREV_BROKEN != 0
                } else {
                    // Acquire: pairs with the Release in `reset`/release.
                    self.outcomes.load(Ordering::Acquire) & (1 << (gen % 32)) != 0
                };
                return if reset {
                    Err(Error::BrokenBarrier)
                } else {
                    Ok(index)
                };
            }
            if v & BROKEN != 0 {
                return Err(Error::BrokenBarrier);
            }
            if deadline.is_expired() {
                self.break_gen(gen);
                continue;
            }
            #[cfg(not(shmkit_loom))]
            let slice = Deadline::after(crate::LIVENESS_SLICE).min(deadline);
            #[cfg(shmkit_loom)]
            let slice = deadline;
            slept = true;
            if !futex::wait(&self.state, v, slice) && !deadline.is_expired() {
                self.check_peers(gen);
            }
        }
    }

    fn register(&self, gen: u32) -> Option<&Slot> {
        let me = ident::current();
        for s in &self.slots {
            // Relaxed: claiming; the fields are published by the Release store below.
            if s.tid
                .compare_exchange(0, CLAIMING, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                // Relaxed: published by the Release store of `tid`.
                s.gen.store(gen, Ordering::Relaxed);
                s.start.store(me.start, Ordering::Relaxed);
                // Release: pairs with the Acquire load in `check_peers`.
                s.tid.store(me.tid, Ordering::Release);
                return Some(s);
            }
        }
        None
    }

    fn check_peers(&self, gen: u32) {
        for s in &self.slots {
            // Acquire: pairs with the Release store in `register`.
            let tid = s.tid.load(Ordering::Acquire);
            if tid == 0 || tid == CLAIMING {
                continue;
            }
            // Relaxed: ordered by the Acquire above.
            let (g, start) = (
                s.gen.load(Ordering::Relaxed),
                s.start.load(Ordering::Relaxed),
            );
            if g == gen && !ident::is_alive(tid, Some(start), 0) {
                // Relaxed: only one checker frees the slot; breaking is idempotent.
                let _ = s
                    .tid
                    .compare_exchange(tid, 0, Ordering::Relaxed, Ordering::Relaxed);
                self.break_gen(gen);
            }
        }
    }

    /// Waits at most `timeout` (zero = arrive and check once).
    ///
    /// # Errors
    /// As [`RawBarrier::wait_until`].
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32> {
        self.wait_until(futex::deadline_after(timeout))
    }
}

#[cfg(not(shmkit_loom))]
pub(crate) mod owned {
    use super::*;
    use crate::handle::Shm;
    use shmkit_segment::{Kind, Token};
    use std::fmt;

    /// Segment kind of a [`Barrier`].
    pub const BARRIER_KIND: Kind = Kind::from_tag(*b"BARR");
    const LEN: usize = std::mem::size_of::<RawBarrier>();

    /// Python's `multiprocessing.Barrier(parties)`, shared between processes.
    ///
    /// ```
    /// use shmkit_sync::{Barrier, Error};
    /// use std::time::Duration;
    /// let b = Barrier::new(1)?;
    /// assert_eq!(b.wait()?, 0); // one party: never blocks
    /// b.abort();
    /// assert!(matches!(b.wait(), Err(Error::BrokenBarrier)));
    /// b.reset();
    /// assert_eq!(b.wait_timeout(Duration::ZERO)?, 0);
    /// # Ok::<(), shmkit_sync::Error>(())
    /// ```
    #[derive(Clone)]
    pub struct Barrier {
        shm: Shm<RawBarrier>,
    }

    impl fmt::Debug for Barrier {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Barrier")
                .field("segment", &self.shm.segment().describe())
                .field("parties", &self.parties())
                .field("n_waiting", &self.n_waiting())
                .field("broken", &self.broken())
                .finish()
        }
    }

    fn init(parties: u32) -> impl FnOnce(&RawBarrier) {
        move |r| {
            let _ = r.init(parties);
        }
    }

    impl Barrier {
        /// A new anonymous barrier for `parties` parties.
        ///
        /// # Errors
        /// [`Error::InvalidArgument`] for 0 or more than [`MAX_PARTIES`];
        /// [`Error::Segment`].
        pub fn new(parties: u32) -> Result<Self> {
            check_parties(parties)?;
            Ok(Barrier {
                shm: Shm::anonymous(BARRIER_KIND, LEN, init(parties))?,
            })
        }

        /// A new named barrier.
        ///
        /// # Errors
        /// As [`Barrier::new`].
        pub fn create(name: &str, parties: u32) -> Result<Self> {
            check_parties(parties)?;
            Ok(Barrier {
                shm: Shm::create(name, BARRIER_KIND, LEN, init(parties))?,
            })
        }

        /// Opens a named barrier.
        ///
        /// # Errors
        /// [`Error::Segment`].
        pub fn open(name: &str) -> Result<Self> {
            Ok(Barrier {
                shm: Shm::open(name, BARRIER_KIND, LEN)?,
            })
        }

        /// Opens a named barrier or creates it for `parties`.
        ///
        /// # Errors
        /// As [`Barrier::create`] and [`Barrier::open`].
        pub fn open_or_create(name: &str, parties: u32) -> Result<Self> {
            check_parties(parties)?;
            Ok(Barrier {
                shm: Shm::open_or_create(name, BARRIER_KIND, LEN, init(parties))?.0,
            })
        }

        /// A token for [`Barrier::from_token`].
        ///
        /// # Errors
        /// [`Error::Segment`].
        pub fn token(&self) -> Result<Token> {
            self.shm.token()
        }

        /// Rebuilds from a token.
        ///
        /// # Errors
        /// [`Error::Segment`].
        pub fn from_token(token: &Token) -> Result<Self> {
            Ok(Barrier {
                shm: Shm::from_token(token, BARRIER_KIND, LEN)?,
            })
        }

        /// The raw barrier.
        pub fn raw(&self) -> &RawBarrier {
            self.shm.raw()
        }

        /// Waits for every party; returns the arrival index (0..parties).
        ///
        /// # Errors
        /// [`Error::BrokenBarrier`].
        pub fn wait(&self) -> Result<u32> {
            self.raw().wait_until(Deadline::NEVER)
        }

        /// Waits at most `timeout`; a timeout breaks the barrier.
        ///
        /// # Errors
        /// [`Error::BrokenBarrier`] (also on timeout, as in Python).
        pub fn wait_timeout(&self, timeout: Duration) -> Result<u32> {
            self.raw().wait_timeout(timeout)
        }

        /// Breaks the barrier.
        pub fn abort(&self) {
            self.raw().abort();
        }

        /// Empties the barrier; waiters get BrokenBarrier.
        pub fn reset(&self) {
            self.raw().reset();
        }

        /// Whether the barrier is broken.
        pub fn broken(&self) -> bool {
            self.raw().broken()
        }

        /// Parties waiting now.
        pub fn n_waiting(&self) -> u32 {
            self.raw().n_waiting()
        }

        /// The number of parties.
        pub fn parties(&self) -> u32 {
            self.raw().parties()
        }
    }

    crate::lock::token_serde!(Barrier);
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::owned::Barrier;
    use super::*;

    #[test]
    fn bad_parties() {
        assert!(matches!(
            Barrier::new(0),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            Barrier::new(MAX_PARTIES + 1),
            Err(Error::InvalidArgument { .. })
        ));
        let zeroed = RawBarrier::default();
        assert!(matches!(
            zeroed.wait_timeout(Duration::ZERO),
            Err(Error::InvalidArgument { .. })
        ));
    }

    #[test]
    fn indices_are_distinct_over_generations() {
        let b = Barrier::new(3).expect("barrier");
        for _ in 0..5 {
            let hs: Vec<_> = (0..3)
                .map(|_| {
                    let b = b.clone();
                    std::thread::spawn(move || b.wait_timeout(Duration::from_secs(30)))
                })
                .collect();
            let mut idx: Vec<u32> = hs
                .into_iter()
                .map(|h| h.join().expect("thread").expect("index"))
                .collect();
            idx.sort_unstable();
            assert_eq!(idx, vec![0, 1, 2]);
            assert_eq!(b.n_waiting(), 0);
        }
    }

    #[test]
    fn timeout_breaks_everyone_and_reset_repairs() {
        let b = Barrier::new(3).expect("barrier");
        let b2 = b.clone();
        let h = std::thread::spawn(move || b2.wait_timeout(Duration::from_secs(30)));
        while b.n_waiting() < 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(matches!(
            b.wait_timeout(Duration::from_millis(20)),
            Err(Error::BrokenBarrier)
        ));
        assert!(matches!(
            h.join().expect("thread"),
            Err(Error::BrokenBarrier)
        ));
        assert!(b.broken());
        assert_eq!(b.n_waiting(), 0);
        assert!(matches!(b.wait(), Err(Error::BrokenBarrier)));
        b.reset();
        assert!(!b.broken());
        let b3 = b.clone();
        let h = std::thread::spawn(move || b3.wait_timeout(Duration::from_secs(30)));
        while b.n_waiting() < 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        b.reset();
        assert!(matches!(
            h.join().expect("thread"),
            Err(Error::BrokenBarrier)
        ));
        assert!(!b.broken());
    }

    #[test]
    fn abort_wakes_waiters() {
        let b = Barrier::new(2).expect("barrier");
        let b2 = b.clone();
        let h = std::thread::spawn(move || b2.wait());
        while b.n_waiting() < 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        b.abort();
        assert!(matches!(
            h.join().expect("thread"),
            Err(Error::BrokenBarrier)
        ));
    }

    #[test]
    fn dead_registered_waiter_breaks_the_barrier() {
        let b = RawBarrier::new(3).expect("barrier");
        // A registered waiter whose thread does not exist.
        b.slots[0].gen.store(0, Ordering::Relaxed);
        b.slots[0].start.store(1, Ordering::Relaxed);
        b.slots[0].tid.store(0x3FFF_FFF0, Ordering::Release);
        b.state.store(1, Ordering::Release);
        assert!(matches!(
            b.wait_timeout(Duration::from_secs(30)),
            Err(Error::BrokenBarrier)
        ));
    }
}
