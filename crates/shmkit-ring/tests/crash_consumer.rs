//! Consumers SIGKILLed in a loop of pops, 50 times, while a producer process streams
//! into the MPMC ring: the producer and the final consumer finish; nothing is
//! delivered twice; each kill loses at most the item the consumer had claimed plus
//! the one it had popped but not yet logged. The same for the SPSC ring, consumers
//! replaced by successors that take the role over.
#![cfg(not(shmkit_loom))]
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use shmkit_ring::{mpmc, spsc, Error, RingConfig};
use shmkit_segment::shim::atomic::Ordering;
use std::time::Duration;

const KILLS: u64 = 50;
/// Most items the producer pushes (it stops earlier when told).
const N: u64 = 4 << 20;

#[test]
fn killed_consumers_never_duplicate_and_lose_at_most_their_claim() {
    let cfg = RingConfig::mpmc_of::<u64>(16).unwrap();
    // words: [0] log length (entries reserved), [1] items pushed + 1 once the
    // producer is done, [2] stop request, then the log (value + 1; 0 = reserved but
    // never written).
    let log0 = 3;
    let sh = Shared::new(cfg.size(), log0 + usize::try_from(N).unwrap());
    mpmc::init(&sh.seg, sh.ring, &cfg).unwrap();
    let q = mpmc::Mpmc::attach(&sh.seg, sh.ring).unwrap();

    let producer = {
        let (mut q, sh) = (q.clone(), &sh);
        fork(move || {
            q.refresh_identity();
            let mut pushed = 0;
            for i in 0..N {
                // Acquire: pairs with the parent's Release store of the stop request.
                if sh.word(2).load(Ordering::Acquire) != 0 {
                    break;
                }
                let mut v = i;
                while let Err(e) = q.try_push(v) {
                    match e {
                        Error::Full(x) => v = x,
                        _ => return 2,
                    }
                }
                pushed = i + 1;
            }
            // Release: pairs with the parent's Acquire load.
            sh.word(1).store(pushed + 1, Ordering::Release);
            0
        })
    };
    let consume = |q: &mpmc::Mpmc| log_pop(&sh, log0, q.try_pop::<u64>());
    for k in 0..KILLS {
        let child = {
            let mut q = q.clone();
            fork(move || {
                q.refresh_identity();
                loop {
                    if let Some(code) = consume(&q) {
                        return code;
                    }
                }
            })
        };
        kill_after_progress(&sh, k, child, producer);
    }
    // Release: pairs with the producer's Acquire load.
    sh.word(2).store(1, Ordering::Release);
    // The parent consumes the rest.
    let mut q = q;
    q.refresh_identity();
    wait_until(Duration::from_secs(120), "the producer to finish", || {
        if let Some(code) = consume(&q) {
            panic!("pop failed ({code})");
        }
        sh.load(1) != 0 && q.is_empty()
    });
    assert!(q.try_pop::<u64>().is_err(), "items after the drain");
    wait_ok(producer, Duration::from_secs(30));

    let (pushed, missing, unwritten) = check_log(&sh, log0);
    eprintln!("{KILLS} consumers killed, {pushed} items: {missing} items lost ({unwritten} reserved log entries unwritten)");
    assert!(
        missing <= 2 * KILLS,
        "lost {missing} items: more than claimed + popped-unlogged per kill"
    );
}

/// The SPSC form: consumer processes in turn, each SIGKILLed in a loop of pops and
/// replaced by a successor that takes the role over, while one producer process
/// streams. Nothing is logged twice, the log is in order, and each kill loses at most
/// the one item its consumer had popped but not yet logged (a consumer killed before
/// moving `head` leaves the item to its successor).
#[test]
fn spsc_killed_consumers_never_duplicate() {
    let cfg = RingConfig::spsc_of::<u64>(16).unwrap();
    // words: as above.
    let log0 = 3;
    let sh = Shared::new(cfg.size(), log0 + usize::try_from(N).unwrap());
    spsc::init(&sh.seg, sh.ring, &cfg).unwrap();

    let producer = {
        let sh = &sh;
        fork(move || {
            let Ok(mut tx) = spsc::Producer::attach(&sh.seg, sh.ring) else {
                return 4;
            };
            let mut pushed = 0;
            for i in 0..N {
                // Acquire: pairs with the parent's Release store of the stop request.
                if sh.word(2).load(Ordering::Acquire) != 0 {
                    break;
                }
                let mut v = i;
                while let Err(e) = tx.try_push(v) {
                    match e {
                        Error::Full(x) => v = x,
                        _ => return 2,
                    }
                }
                pushed = i + 1;
            }
            // Release: pairs with the parent's Acquire load.
            sh.word(1).store(pushed + 1, Ordering::Release);
            0
        })
    };
    let consume = |rx: &mut spsc::Consumer| log_pop(&sh, log0, rx.try_pop::<u64>());
    for k in 0..KILLS {
        let child = {
            let (sh, consume) = (&sh, &consume);
            fork(move || {
                let Ok(mut rx) = spsc::Consumer::attach(&sh.seg, sh.ring) else {
                    return 4;
                };
                loop {
                    if let Some(code) = consume(&mut rx) {
                        return code;
                    }
                }
            })
        };
        kill_after_progress(&sh, k, child, producer);
    }
    // Release: pairs with the producer's Acquire load.
    sh.word(2).store(1, Ordering::Release);
    let mut rx = spsc::Consumer::attach(&sh.seg, sh.ring).unwrap();
    wait_until(Duration::from_secs(120), "the producer to finish", || {
        if let Some(code) = consume(&mut rx) {
            panic!("pop failed ({code})");
        }
        sh.load(1) != 0 && rx.is_empty().unwrap()
    });
    assert!(rx.try_pop::<u64>().is_err(), "items after the drain");
    wait_ok(producer, Duration::from_secs(30));

    let (pushed, missing, _) = check_log(&sh, log0);
    eprintln!("{KILLS} SPSC consumers killed, {pushed} items: {missing} lost");
    assert!(
        missing <= KILLS,
        "lost {missing} items: more than one popped-unlogged item per kill"
    );
}

/// A consumer's pop result, logged: an item is appended to the log (`value + 1`, so 0
/// means a reserved entry its consumer was killed before writing). `Some(exit code)`
/// on a ring error.
fn log_pop(sh: &Shared, log0: usize, r: Result<u64, Error>) -> Option<i32> {
    match r {
        Ok(v) => {
            // AcqRel: reserves a log entry; pairs with the parent's Acquire load.
            let at = sh.word(0).fetch_add(1, Ordering::AcqRel);
            // Release: pairs with the parent's Acquire load of the entry.
            sh.word(log0 + usize::try_from(at).unwrap())
                .store(v + 1, Ordering::Release);
            None
        }
        Err(Error::Empty) => None,
        Err(e) => {
            eprintln!("pop failed: {e}");
            Some(2)
        }
    }
}

/// Waits until consumer `k` (process `child`) logged a few hundred more items, then
/// SIGKILLs it (at a different point of its loop each time) and reaps it.
fn kill_after_progress(sh: &Shared, k: u64, child: libc::pid_t, producer: libc::pid_t) {
    let start = sh.load(0);
    let at = start + 100 + (k * 89) % 900;
    wait_until(Duration::from_secs(30), "consumer progress", || {
        assert_running(child, "consumer");
        assert_running(producer, "producer");
        sh.load(0) >= at
    });
    kill(child);
    let st = wait(child, Duration::from_secs(30));
    assert!(libc::WIFSIGNALED(st), "consumer {k} was killed");
}

/// Checks the log of one producer's items `0..pushed` taken by consumers one at a time:
/// nothing twice, in FIFO order. Returns (pushed, missing items, unwritten entries).
fn check_log(sh: &Shared, log0: usize) -> (u64, u64, usize) {
    let n = usize::try_from(sh.load(0)).unwrap();
    let pushed = sh.load(1) - 1;
    let mut seen = vec![false; usize::try_from(pushed).unwrap()];
    let mut last = None;
    let mut unwritten = 0;
    for i in 0..n {
        let e = sh.load(log0 + i);
        if e == 0 {
            unwritten += 1;
            continue;
        }
        let v = e - 1;
        let idx = usize::try_from(v).unwrap();
        assert!(!seen[idx], "item {v} delivered twice");
        seen[idx] = true;
        // One consumer at a time and one producer: the log is in FIFO order.
        assert!(last.map_or(true, |l| l < v), "out of order at {v}");
        last = Some(v);
    }
    let missing = seen.iter().filter(|s| !**s).count() as u64;
    (pushed, missing, unwritten)
}
