//! loom models of the SPSC, MPMC and byte rings (and the MPMC crash repair).
//!
//! Run: `RUSTFLAGS="--cfg shmkit_loom" LOOM_MAX_PREEMPTIONS=2 \
//!   CARGO_TARGET_DIR=target/loom cargo test -p shmkit-ring --test loom --release`.
#![cfg(shmkit_loom)]
#![allow(clippy::unwrap_used)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;
use shmkit_ring::mpmc::CrashPoint;
use shmkit_ring::owner::Liveness;
use shmkit_ring::{bytes, mpmc, spsc, Error, OwnerId, RingConfig};

fn push_spsc(tx: &mut spsc::Producer, v: u64) {
    while tx.try_push(v).is_err() {
        thread::yield_now();
    }
}

fn pop_spsc(rx: &mut spsc::Consumer) -> u64 {
    loop {
        match rx.try_pop::<u64>() {
            Ok(v) => return v,
            Err(Error::Empty) => thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn spsc_in_order_capacities_1_to_4() {
    for cap in [1usize, 2, 4] {
        loom::model(move || {
            let (mut tx, mut rx) = spsc::new(&RingConfig::spsc_of::<u64>(cap).unwrap()).unwrap();
            let p = thread::spawn(move || {
                for v in 1..=3 {
                    push_spsc(&mut tx, v);
                }
            });
            for v in 1..=3 {
                assert_eq!(pop_spsc(&mut rx), v);
            }
            assert!(matches!(rx.try_pop::<u64>(), Err(Error::Empty)));
            p.join().unwrap();
        });
    }
}

#[test]
fn spsc_batches_and_zero_copy() {
    loom::model(|| {
        let (mut tx, mut rx) = spsc::new(&RingConfig::spsc_of::<u64>(2).unwrap()).unwrap();
        let p = thread::spawn(move || {
            let mut sent = 0;
            while sent < 2 {
                sent += tx.push_slice(&[10u64, 11][sent..]);
                thread::yield_now();
            }
            loop {
                if let Ok(mut w) = tx.reserve() {
                    w.write(&12u64);
                    w.commit();
                    break;
                }
                thread::yield_now();
            }
        });
        let mut got = Vec::new();
        while got.len() < 3 {
            if got.len() == 2 {
                if let Ok(r) = rx.peek() {
                    got.push(r.read::<u64>());
                    r.release();
                }
            } else {
                let mut buf = [0u64; 2];
                let n = rx.pop_slice(&mut buf[..2 - got.len()]);
                got.extend_from_slice(&buf[..n]);
            }
            thread::yield_now();
        }
        assert_eq!(got, [10, 11, 12]);
        p.join().unwrap();
    });
}

/// `len` and `is_empty` against a producer mid-batch (each slot's sequence stored
/// after its payload, `tail` once after the batch): whatever `len` counts can be
/// popped at once, in order, `len` never exceeds what was pushed, and a consumer
/// ahead of the shared `tail` is not taken for corruption.
#[test]
fn spsc_len_counts_published_slots() {
    for cap in [1usize, 2, 4] {
        loom::model(move || {
            let (mut tx, mut rx) = spsc::new(&RingConfig::spsc_of::<u64>(cap).unwrap()).unwrap();
            let p = thread::spawn(move || {
                let mut sent = 0;
                while sent < 2 {
                    sent += tx.push_slice(&[1u64, 2][sent..]);
                    thread::yield_now();
                }
            });
            // Pops also when `len` said 0, so the consumer can get ahead of the
            // shared `tail` (a slot is published before `tail` moves).
            let mut next = 1;
            while next <= 2 {
                let n = rx.len().unwrap();
                assert!(n <= cap && n as u64 <= 3 - next, "len {n} at {next}");
                if n > 0 {
                    assert!(!rx.is_empty().unwrap(), "len {n} but empty");
                    assert_eq!(rx.try_pop::<u64>().unwrap(), next);
                    next += 1;
                    continue;
                }
                match rx.try_pop::<u64>() {
                    Ok(v) => {
                        assert_eq!(v, next);
                        next += 1;
                    }
                    Err(Error::Empty) => thread::yield_now(),
                    Err(e) => panic!("{e}"),
                }
            }
            assert!(rx.is_empty().unwrap());
            p.join().unwrap();
        });
    }
}

fn push_mpmc(q: &mpmc::Mpmc, v: u64) {
    while q.try_push(v).is_err() {
        thread::yield_now();
    }
}

fn pop_mpmc(q: &mpmc::Mpmc) -> u64 {
    loop {
        match q.try_pop::<u64>() {
            Ok(v) => return v,
            Err(Error::Empty) => thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
}

/// Two producer threads racing (one pushing two items), the main thread joining them:
/// afterwards every item is there once, each producer's in order. (The consumer runs after the producers: with a
/// third thread polling, loom's schedules grow past its branch limit; concurrent
/// pushes and pops are covered by the other MPMC models.)
#[test]
fn mpmc_two_producers() {
    for cap in [2usize, 4] {
        loom::model(move || {
            let q = mpmc::new(&RingConfig::mpmc_of::<u64>(cap).unwrap()).unwrap();
            let q2 = q.clone();
            let a = thread::spawn(move || {
                push_mpmc(&q2, 10);
                if cap > 2 {
                    push_mpmc(&q2, 11);
                }
            });
            let q3 = q.clone();
            let b = thread::spawn(move || push_mpmc(&q3, 20));
            a.join().unwrap();
            b.join().unwrap();
            // A claimant's index store may land after a helper moved the index
            // further (the index lags); len() must still count exactly.
            assert_eq!(q.len(), if cap > 2 { 3 } else { 2 });
            let mut got = Vec::new();
            while let Ok(v) = q.try_pop::<u64>() {
                got.push(v);
            }
            let tens: Vec<u64> = got.iter().copied().filter(|v| *v < 20).collect();
            assert_eq!(tens, if cap > 2 { vec![10, 11] } else { vec![10] });
            got.sort_unstable();
            assert_eq!(got.len(), if cap > 2 { 3 } else { 2 });
        });
    }
}

/// Two producers of one item each, one consumer: both items, once each.
#[test]
fn mpmc_two_producers_one_each() {
    for cap in [1usize, 2] {
        loom::model(move || {
            let q = mpmc::new(&RingConfig::mpmc_of::<u64>(cap).unwrap()).unwrap();
            let q2 = q.clone();
            let p = thread::spawn(move || push_mpmc(&q2, 20));
            // Push 10 and pop two, without blocking on either (cap 1 may be full).
            let (mut pushed, mut got) = (false, Vec::new());
            while got.len() < 2 {
                if !pushed {
                    pushed = q.try_push(10u64).is_ok();
                }
                match q.try_pop::<u64>() {
                    Ok(v) => got.push(v),
                    Err(_) => thread::yield_now(),
                }
            }
            got.sort_unstable();
            assert_eq!(got, [10, 20]);
            p.join().unwrap();
        });
    }
}

/// One producer, two consumers: every item taken exactly once.
#[test]
fn mpmc_two_consumers() {
    for cap in [1usize, 4] {
        loom::model(move || {
            let q = mpmc::new(&RingConfig::mpmc_of::<u64>(cap).unwrap()).unwrap();
            let q2 = q.clone();
            let c = thread::spawn(move || pop_mpmc(&q2));
            push_mpmc(&q, 1);
            push_mpmc(&q, 2);
            let mine = pop_mpmc(&q);
            let theirs = c.join().unwrap();
            let mut all = [mine, theirs];
            all.sort_unstable();
            assert_eq!(all, [1, 2]);
            assert!(matches!(q.try_pop::<u64>(), Err(Error::Empty)));
        });
    }
}

const DEAD: OwnerId = OwnerId::from_raw(0xdead_0000_0001);

/// A producer "killed" inside its push (the thread stops there), concurrently with a
/// live producer and a consumer: the consumer still gets the live item exactly once,
/// and the dead item at most once.
#[test]
fn mpmc_dead_producer_is_passed() {
    for point in [
        CrashPoint::AfterLock,
        CrashPoint::AfterClaim,
        CrashPoint::AfterCopy,
    ] {
        loom::model(move || {
            let dead = Arc::new(AtomicBool::new(false));
            let oracle = {
                let dead = Arc::clone(&dead);
                Liveness::custom(move |id| id != DEAD || !dead.load(Ordering::Acquire))
            };
            let q = mpmc::new(&RingConfig::mpmc_of::<u64>(2).unwrap()).unwrap();
            let live =
                q.clone()
                    .with_identity(OwnerId::from_raw(1), oracle.clone(), CrashPoint::Never);
            let dying = q.clone().with_identity(DEAD, oracle, point);
            let d = thread::spawn(move || {
                assert!(dying.try_push(99u64).is_err());
                dead.store(true, Ordering::Release);
            });
            push_mpmc(&live, 1);
            let got = pop_mpmc(&live);
            d.join().unwrap();
            assert_eq!(got, 1, "the dead push never reached FULL");
            assert!(matches!(live.try_pop::<u64>(), Err(Error::Empty)));
        });
    }
}

/// A consumer killed mid-pop: the producer can still fill the ring afterwards.
#[test]
fn mpmc_dead_consumer_is_passed() {
    loom::model(|| {
        let dead = Arc::new(AtomicBool::new(false));
        let oracle = {
            let dead = Arc::clone(&dead);
            Liveness::custom(move |id| id != DEAD || !dead.load(Ordering::Acquire))
        };
        let q = mpmc::new(&RingConfig::mpmc_of::<u64>(1).unwrap()).unwrap();
        let live = q
            .clone()
            .with_identity(OwnerId::from_raw(1), oracle.clone(), CrashPoint::Never);
        let dying = q
            .clone()
            .with_identity(DEAD, oracle, CrashPoint::AfterClaim);
        push_mpmc(&live, 1);
        let d = thread::spawn(move || {
            let _ = dying.try_pop::<u64>();
            dead.store(true, Ordering::Release);
        });
        // Either the dying consumer claimed 1 (lost, allowed) or we get it.
        push_mpmc(&live, 2);
        let a = pop_mpmc(&live);
        d.join().unwrap();
        if a == 1 {
            assert_eq!(pop_mpmc(&live), 2);
        } else {
            assert_eq!(a, 2);
        }
    });
}

fn push_bytes(tx: &mut bytes::Producer, m: &[u8]) {
    while tx.try_push(m).is_err() {
        thread::yield_now();
    }
}

/// Pushes `m` with the handle `pick` chooses, taking `lock` for each attempt (as a
/// pipe's message lock) and yielding between attempts with the lock released.
fn push_bytes_locked<P>(lock: &Mutex<P>, pick: impl Fn(&mut P) -> &mut bytes::Producer, m: &[u8]) {
    loop {
        let mut g = lock.lock().unwrap();
        if pick(&mut g).try_push(m).is_ok() {
            return;
        }
        drop(g);
        thread::yield_now();
    }
}

fn pop_bytes(rx: &mut bytes::Consumer) -> Vec<u8> {
    loop {
        match rx.try_pop_vec() {
            Ok((v, _)) => return v,
            Err(Error::Empty) => thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
}

/// Varying sizes in a 32-byte ring (records of up to 8 bytes): wrap-around with PAD.
#[test]
fn bytes_in_order_with_wrap() {
    loom::model(|| {
        let (mut tx, mut rx) = bytes::new(&RingConfig::bytes(32).unwrap()).unwrap();
        let msgs: [&[u8]; 3] = [b"abcdefgh", b"x", b"12345678"];
        let p = thread::spawn(move || {
            for m in msgs {
                push_bytes(&mut tx, m);
            }
        });
        for m in msgs {
            assert_eq!(pop_bytes(&mut rx), m);
        }
        p.join().unwrap();
    });
}

/// Two handles sharing the producer end: records never interleave.
#[test]
fn bytes_shared_producers() {
    loom::model(|| {
        let (tx, mut rx) = bytes::new(&RingConfig::bytes(64).unwrap()).unwrap();
        let mut a = tx.new_shared().unwrap();
        let mut b = tx.new_shared().unwrap();
        drop(tx);
        let t = thread::spawn(move || push_bytes(&mut a, b"aaaaaaaaaa"));
        push_bytes(&mut b, b"bb");
        let mut got = vec![pop_bytes(&mut rx), pop_bytes(&mut rx)];
        got.sort();
        assert_eq!(got, [b"aaaaaaaaaa".to_vec(), b"bb".to_vec()]);
        t.join().unwrap();
    });
}

/// Two serialized producer handles taking turns under a lock of the caller's (as a
/// pipe's message lock), the second one's cached view of the consumer's index older
/// than the first one's pushes, in a ring small enough to wrap (with a PAD, in
/// either order of the last two pushes): records arrive whole and in order.
#[test]
fn bytes_serialized_producers_under_a_lock() {
    loom::model(|| {
        let (tx, mut rx) = bytes::new(&RingConfig::bytes(64).unwrap()).unwrap();
        // SAFETY: both handles push only while holding `lock`; the exclusive `tx`
        // is dropped before either is used.
        let a = unsafe { tx.new_serialized() }.unwrap();
        // SAFETY: as above.
        let b = unsafe { tx.new_serialized() }.unwrap();
        drop(tx);
        let lock = Arc::new(Mutex::new((a, b)));
        let l2 = Arc::clone(&lock);
        let t = thread::spawn(move || {
            for m in [&b"abcdefghijklmnopqrstuvwx"[..], b"x"] {
                push_bytes_locked(&l2, |g| &mut g.0, m);
            }
        });
        assert_eq!(pop_bytes(&mut rx), b"abcdefghijklmnopqrstuvwx");
        push_bytes_locked(&lock, |g| &mut g.1, b"1234567890123456");
        let mut got = vec![pop_bytes(&mut rx), pop_bytes(&mut rx)];
        got.sort();
        assert_eq!(got, [b"1234567890123456".to_vec(), b"x".to_vec()]);
        t.join().unwrap();
    });
}

/// The consumer polls record headers (never `tail`) in a 32-byte ring that wraps,
/// with payloads that are valid header words: at the second lap the consumer's next
/// position holds such stale payload, which the producer zeroes before publishing
/// the record in front of it, so it is never taken for a record.
#[test]
fn bytes_header_polling_with_wrap_and_header_like_payload() {
    loom::model(|| {
        let (mut tx, mut rx) = bytes::new(&RingConfig::bytes(32).unwrap()).unwrap();
        // A valid header word (valid bit 63; flags WHOLE; len 0) as payload.
        const FAKE: [u8; 8] = ((1u64 << 63) | (3 << 32)).to_ne_bytes();
        let msgs: [&[u8]; 4] = [b"", &FAKE, b"", &FAKE];
        let p = thread::spawn(move || {
            for m in msgs {
                push_bytes(&mut tx, m);
            }
        });
        for m in msgs {
            assert_eq!(pop_bytes(&mut rx), m);
        }
        p.join().unwrap();
        assert!(matches!(rx.try_pop_vec(), Err(Error::Empty)));
    });
}
