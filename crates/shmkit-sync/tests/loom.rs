//! loom models of the sync state machines, running the production code through the
//! shim (loom atomics; futexes modelled by one mutex + condvar, so a lost wake-up is
//! a loom deadlock).
//!
//! Run: `RUSTFLAGS="--cfg shmkit_loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p shmkit-sync --test loom --release`.
#![cfg(shmkit_loom)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use shmkit_segment::shim::atomic::{AtomicU32, Ordering};
use shmkit_sync::futex::{Deadline, EventCount};
use shmkit_sync::{
    Acquired, Error, RawBarrier, RawCondition, RawEvent, RawMutex, RawRLock, RawSemaphore,
};

/// Locks `m` (expecting a clean acquisition), increments the non-atomic `data`
/// under it, and unlocks (as the owner).
fn locked_increment(m: &RawMutex, data: &UnsafeCell<u32>) {
    assert_eq!(m.lock(), Acquired::Clean);
    // SAFETY: exclusive under the lock; loom checks it.
    data.with_mut(|p| unsafe { *p += 1 });
    m.unlock().expect("owner unlocks");
}

/// `spawned` threads (and this one too, with `here`) each run [`locked_increment`] on
/// one mutex and counter; returns the mutex and the count once all are joined.
fn increments(spawned: usize, here: bool) -> (Arc<RawMutex>, u32) {
    let m = Arc::new(RawMutex::new());
    let data = Arc::new(UnsafeCell::new(0u32));
    let hs: Vec<_> = (0..spawned)
        .map(|_| {
            let (m, data) = (Arc::clone(&m), Arc::clone(&data));
            thread::spawn(move || locked_increment(&m, &data))
        })
        .collect();
    if here {
        locked_increment(&m, &data);
    }
    for h in hs {
        h.join().expect("locker");
    }
    // SAFETY: every other thread has been joined.
    let n = data.with(|p| unsafe { *p });
    (m, n)
}

/// Two threads increment a non-atomic counter under the mutex: loom's cell checks
/// catch any overlap (mutual exclusion), and the final value any lost update; a
/// locker left asleep after the unlock would be a deadlock (no lost wake-up).
#[test]
fn mutex_excludes_and_wakes() {
    loom::model(|| {
        let (m, n) = increments(2, false);
        assert_eq!(n, 2);
        assert!(!m.is_locked());
        assert_eq!(m.state(), 0);
    });
}

/// Three lockers, so two can be waiting at once while a third holds the lock or
/// barges in (it keeps the bits it finds unless it slept): exclusion, and no locker
/// left asleep (a loom deadlock). The futex model wakes exactly as many sleepers as
/// asked, so the unlock's single wake-up has to be enough; the rule that makes it
/// enough (a locker that slept takes the word with WAITERS) is argued in
/// `RawMutex::lock_slow` (breaking it makes `condition_notify_one_each` deadlock).
#[test]
fn mutex_three_lockers_no_lost_wakeup() {
    loom::model(|| {
        let (m, n) = increments(2, true);
        assert_eq!(n, 3);
        assert_eq!(m.state(), 0);
    });
}

/// A non-owner's unlock is refused and changes nothing; the owner's works.
#[test]
fn mutex_unlock_by_non_owner_fails() {
    loom::model(|| {
        let m = Arc::new(RawMutex::new());
        let _ = m.lock();
        let m2 = Arc::clone(&m);
        let h = thread::spawn(move || {
            assert!(matches!(m2.unlock(), Err(Error::NotOwner { .. })));
            assert!(m2.try_lock().is_none());
        });
        h.join().expect("thread");
        assert!(m.is_locked());
        m.unlock().expect("owner");
    });
}

/// Re-entry by the owner, exclusion of the other thread.
#[test]
fn rlock_reenters_and_excludes() {
    loom::model(|| {
        let r = Arc::new(RawRLock::new());
        let r2 = Arc::clone(&r);
        let h = thread::spawn(move || {
            r2.acquire().expect("acquire");
            r2.acquire().expect("re-enter");
            r2.release().expect("release");
            r2.release().expect("release");
        });
        r.acquire().expect("acquire");
        assert_eq!(r.count(), 1);
        r.release().expect("release");
        h.join().expect("thread");
        assert!(r.release().is_err());
    });
}

/// Semaphore(1) as a lock between two threads (never two inside), and a blocked
/// acquirer woken by a release.
#[test]
fn semaphore_counts_and_wakes() {
    loom::model(|| {
        let s = Arc::new(RawSemaphore::with_value(1));
        let inside = Arc::new(AtomicU32::new(0));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let (s, inside) = (Arc::clone(&s), Arc::clone(&inside));
                thread::spawn(move || {
                    s.acquire();
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                    inside.fetch_sub(1, Ordering::SeqCst);
                    s.release().expect("release");
                })
            })
            .collect();
        for h in hs {
            h.join().expect("thread");
        }
        assert_eq!(s.get_value(), 1);
    });
}

#[test]
fn semaphore_release_wakes_sleeper() {
    loom::model(|| {
        let s = Arc::new(RawSemaphore::new());
        let s2 = Arc::clone(&s);
        let h = thread::spawn(move || s2.acquire());
        s.release().expect("release");
        h.join().expect("acquirer");
        assert_eq!(s.get_value(), 0);
    });
}

/// Two sleepers, two releases: each release must reach a sleeper (the case that
/// exposed lost wake-ups in an earlier design with a WAITERS bit).
#[test]
fn semaphore_two_sleepers_two_releases() {
    loom::model(|| {
        let s = Arc::new(RawSemaphore::new());
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let s = Arc::clone(&s);
                thread::spawn(move || s.acquire())
            })
            .collect();
        s.release().expect("release");
        s.release().expect("release");
        for h in hs {
            h.join().expect("acquirer");
        }
        assert_eq!(s.get_value(), 0);
    });
}

/// A waiter is never left asleep after `set`, even racing `clear`.
#[test]
fn event_set_wakes_waiter() {
    loom::model(|| {
        let e = Arc::new(RawEvent::new());
        let e2 = Arc::clone(&e);
        let h = thread::spawn(move || assert!(e2.wait_until(Deadline::NEVER)));
        e.set();
        h.join().expect("waiter");
        e.clear();
        assert!(!e.is_set());
    });
}

/// The event-count protocol: the waiter's re-check or the notifier's WAITERS check
/// sees the other's write (no lost wake-up).
#[test]
fn event_count_no_lost_wakeup() {
    loom::model(|| {
        let ec = Arc::new(EventCount::new());
        let flag = Arc::new(AtomicU32::new(0));
        let (ec2, flag2) = (Arc::clone(&ec), Arc::clone(&flag));
        let h = thread::spawn(move || loop {
            let key = ec2.prepare();
            if flag2.load(Ordering::Acquire) == 1 {
                return;
            }
            ec2.wait(key, Deadline::NEVER);
        });
        flag.store(1, Ordering::Release);
        ec.notify_all();
        h.join().expect("waiter");
    });
}

/// Condition accounting: one waiter, one notify that finds it registered or not; the
/// waiter's predicate loop always finishes, and the counts return to zero.
#[test]
fn condition_notify_accounting() {
    loom::model(|| {
        let m = Arc::new(RawMutex::new());
        let c = Arc::new(RawCondition::new());
        let flag = Arc::new(AtomicU32::new(0));
        let (m2, c2, f2) = (Arc::clone(&m), Arc::clone(&c), Arc::clone(&flag));
        let h = thread::spawn(move || {
            let _ = m2.lock();
            while f2.load(Ordering::Relaxed) == 0 {
                c2.wait_until(&m2, Deadline::NEVER).expect("wait");
            }
            m2.unlock().expect("unlock");
        });
        let _ = m.lock();
        flag.store(1, Ordering::Relaxed);
        let picked = c.notify(&m, 1).expect("notify");
        assert!(picked <= 1);
        m.unlock().expect("unlock");
        h.join().expect("waiter");
        assert_eq!(c.waiters(), 0);
    });
}

/// Two waiters, notify(1) twice: each notify picks exactly one, both wake.
#[test]
fn condition_notify_one_each() {
    loom::model(|| {
        let m = Arc::new(RawMutex::new());
        let c = Arc::new(RawCondition::new());
        let tickets = Arc::new(AtomicU32::new(0));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let (m, c, t) = (Arc::clone(&m), Arc::clone(&c), Arc::clone(&tickets));
                thread::spawn(move || {
                    let _ = m.lock();
                    while t.load(Ordering::Relaxed) == 0 {
                        c.wait_until(&m, Deadline::NEVER).expect("wait");
                    }
                    t.fetch_sub(1, Ordering::Relaxed);
                    m.unlock().expect("unlock");
                })
            })
            .collect();
        for _ in 0..2 {
            let _ = m.lock();
            tickets.fetch_add(1, Ordering::Relaxed);
            let _ = c.notify(&m, 1).expect("notify");
            m.unlock().expect("unlock");
        }
        for h in hs {
            h.join().expect("waiter");
        }
        assert_eq!(tickets.load(Ordering::Relaxed), 0);
    });
}

/// Barrier(2) over two generations: distinct indices each time, nobody left asleep.
#[test]
fn barrier_generations() {
    loom::model(|| {
        let b = Arc::new(RawBarrier::new(2).expect("barrier"));
        let b2 = Arc::clone(&b);
        let h = thread::spawn(move || {
            let a = b2.wait_until(Deadline::NEVER).expect("gen 0");
            let c = b2.wait_until(Deadline::NEVER).expect("gen 1");
            (a, c)
        });
        let a = b.wait_until(Deadline::NEVER).expect("gen 0");
        let c = b.wait_until(Deadline::NEVER).expect("gen 1");
        let (a2, c2) = h.join().expect("thread");
        assert_eq!(a + a2, 1);
        assert_eq!(c + c2, 1);
        assert_eq!(b.n_waiting(), 0);
    });
}

/// abort racing an arrival: the waiter always returns (broken or released).
#[test]
fn barrier_abort_releases_waiter() {
    loom::model(|| {
        let b = Arc::new(RawBarrier::new(2).expect("barrier"));
        let b2 = Arc::clone(&b);
        let h = thread::spawn(move || b2.wait_until(Deadline::NEVER));
        b.abort();
        assert!(matches!(
            h.join().expect("thread"),
            Err(Error::BrokenBarrier)
        ));
        b.reset();
        assert!(!b.broken());
    });
}
