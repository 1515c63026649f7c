//! loom models of the queue's blocking protocol (`shmkit_queue::raw`, the code the
//! queues run): no lost wake-up when a put races a sleeping get (and the mirror
//! image), a close wakes a sleeper, and `join` wakes on the last `task_done`.
//!
//! The shim's loom futex is a mutex + condvar: a sleeper nobody wakes is reported by
//! loom as a deadlock, so a lost wake-up fails the model.
//!
//! Run: `RUSTFLAGS="--cfg shmkit_loom" LOOM_MAX_PREEMPTIONS=2 \
//!   CARGO_TARGET_DIR=target/h-queue-loom cargo test -p shmkit-queue --test loom --release`.
#![cfg(shmkit_loom)]
#![allow(clippy::unwrap_used)]

use loom::sync::Arc;
use loom::thread;
use shmkit_queue::raw::{self, Control, Forever};
use shmkit_queue::Error;
use shmkit_ring::{mpmc, RingConfig};
use shmkit_segment::shim::time::Deadline;

fn setup(cap: usize) -> (Arc<Control>, mpmc::Mpmc) {
    let ctl = Arc::new(Control::new());
    ctl.init(8, 0, 0);
    let ring = mpmc::new(&RingConfig::mpmc(cap, 8).unwrap()).unwrap();
    (ctl, ring)
}

#[test]
fn put_wakes_a_sleeping_get() {
    loom::model(|| {
        let (ctl, ring) = setup(1);
        let (c2, r2) = (Arc::clone(&ctl), ring.clone());
        let p = thread::spawn(move || {
            raw::push_wait(&c2, &r2, &[7; 8], Deadline::NEVER, &Forever).unwrap();
        });
        let mut dst = [0u8; 8];
        raw::pop_wait(&ctl, &ring, &mut dst, Deadline::NEVER, &Forever).unwrap();
        assert_eq!(dst, [7; 8]);
        p.join().unwrap();
    });
}

#[test]
fn get_wakes_a_sleeping_put_on_a_full_queue() {
    loom::model(|| {
        let (ctl, ring) = setup(1);
        raw::push_wait(&ctl, &ring, &[1; 8], Deadline::NEVER, &Forever).unwrap();
        let (c2, r2) = (Arc::clone(&ctl), ring.clone());
        let p = thread::spawn(move || {
            // Full: sleeps until the get below makes room.
            raw::push_wait(&c2, &r2, &[2; 8], Deadline::NEVER, &Forever).unwrap();
        });
        let mut dst = [0u8; 8];
        raw::pop_wait(&ctl, &ring, &mut dst, Deadline::NEVER, &Forever).unwrap();
        assert_eq!(dst, [1; 8]);
        p.join().unwrap();
        raw::pop_wait(&ctl, &ring, &mut dst, Deadline::NEVER, &Forever).unwrap();
        assert_eq!(dst, [2; 8]);
    });
}

/// A queue of `n` slots filled with items `[i; 8]` for `i` in `0..n`, and a putter of
/// `[n; 8]` to run on another thread (it finds the queue full).
#[allow(clippy::type_complexity)]
fn full_with_a_putter(
    n: u8,
) -> (
    Arc<Control>,
    mpmc::Mpmc,
    impl FnOnce() -> shmkit_queue::Result<()> + Send + 'static,
) {
    let (ctl, ring) = setup(usize::from(n));
    for i in 0..n {
        raw::push_wait(&ctl, &ring, &[i; 8], Deadline::NEVER, &Forever).unwrap();
    }
    let (c2, r2) = (Arc::clone(&ctl), ring.clone());
    let put = move || raw::push_wait(&c2, &r2, &[n; 8], Deadline::NEVER, &Forever);
    (ctl, ring, put)
}

/// A putter facing a full queue spins for a quarter of the ring (`room_batch`: 2 of
/// 8 slots) but must not need it: one get, freeing one slot, wakes it.
#[test]
fn one_get_wakes_a_put_waiting_for_a_quarter_of_the_ring() {
    loom::model(|| {
        let (ctl, ring, p) = full_with_a_putter(8);
        let p = thread::spawn(move || p().unwrap());
        let mut dst = [0u8; 8];
        raw::pop_wait(&ctl, &ring, &mut dst, Deadline::NEVER, &Forever).unwrap();
        assert_eq!(dst, [0; 8]);
        p.join().unwrap();
        for i in 1..9 {
            raw::pop_wait(&ctl, &ring, &mut dst, Deadline::NEVER, &Forever).unwrap();
            assert_eq!(dst, [i; 8]);
        }
    });
}

/// A close wakes a putter asleep on a full queue, which then reports Closed.
#[test]
fn close_wakes_a_sleeping_put_on_a_full_queue() {
    loom::model(|| {
        let (ctl, _ring, p) = full_with_a_putter(8);
        let p = thread::spawn(p);
        ctl.close();
        assert!(matches!(p.join().unwrap(), Err(Error::Closed)));
    });
}

#[test]
fn close_wakes_a_sleeping_get_after_the_items_put_before_it() {
    loom::model(|| {
        let (ctl, ring) = setup(2);
        let (c2, r2) = (Arc::clone(&ctl), ring.clone());
        let p = thread::spawn(move || {
            raw::push_wait(&c2, &r2, &[3; 8], Deadline::NEVER, &Forever).unwrap();
            c2.close();
        });
        let mut dst = [0u8; 8];
        // The item put before the close is always delivered, then Closed.
        raw::pop_wait(&ctl, &ring, &mut dst, Deadline::NEVER, &Forever).unwrap();
        assert_eq!(dst, [3; 8]);
        assert!(matches!(
            raw::pop_wait(&ctl, &ring, &mut dst, Deadline::NEVER, &Forever),
            Err(Error::Closed)
        ));
        p.join().unwrap();
    });
}

#[test]
fn join_wakes_on_the_last_task_done() {
    loom::model(|| {
        let (ctl, _ring) = setup(1);
        raw::task_added(&ctl);
        let c2 = Arc::clone(&ctl);
        let w = thread::spawn(move || raw::task_done(&c2).unwrap());
        raw::join(&ctl, Deadline::NEVER).unwrap();
        assert_eq!(raw::unfinished(&ctl), 0);
        assert!(matches!(raw::task_done(&ctl), Err(Error::TaskDone)));
        w.join().unwrap();
    });
}

/// A producer dies mid-put in a one-slot queue, a putter then finds the queue full
/// and sleeps; a get that discards the dead item and finds nothing else has freed
/// room that no successful pop announced: it must wake the putter (before, the putter
/// slept until its liveness slice).
#[test]
fn a_get_that_discards_a_dead_item_wakes_a_sleeping_put() {
    use shmkit_ring::mpmc::CrashPoint;
    use shmkit_ring::owner::Liveness;
    use shmkit_ring::OwnerId;
    const DEAD: OwnerId = OwnerId::from_raw(0xdead_0000_0001);
    loom::model(|| {
        let (ctl, ring) = setup(1);
        let liveness = Liveness::custom(|id| id != DEAD);
        let handle = |me: u64| {
            ring.clone()
                .with_identity(OwnerId::from_raw(me), liveness.clone(), CrashPoint::Never)
        };
        // The dead put: it claimed the slot and stopped there (its process killed).
        let dead = ring
            .clone()
            .with_identity(DEAD, liveness.clone(), CrashPoint::AfterClaim);
        assert!(raw::try_push(&ctl, &dead, &[9; 8]).is_err());
        let (c2, r2) = (Arc::clone(&ctl), handle(1));
        let p = thread::spawn(move || {
            raw::push_wait(&c2, &r2, &[1; 8], Deadline::NEVER, &Forever).unwrap();
        });
        let getter = handle(2);
        let mut dst = [0u8; 8];
        let took = raw::try_pop(&ctl, &getter, &mut dst).unwrap().is_some();
        p.join().unwrap();
        if !took {
            raw::pop_wait(&ctl, &getter, &mut dst, Deadline::NEVER, &Forever).unwrap();
        }
        assert_eq!(dst, [1; 8], "the dead item is never delivered");
    });
}
