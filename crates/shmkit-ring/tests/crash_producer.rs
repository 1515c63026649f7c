//! Producers SIGKILLed in a loop of pushes, 50 times, while a consumer process keeps
//! consuming from the MPMC ring: the consumer finishes; nothing is duplicated; every
//! item whose push returned (as recorded by the producer) arrives, in order; of the
//! push in flight at the kill, at most that one item arrives.
//!
//! The same for the SPSC ring (producers killed in turn, each successor taking the
//! role over), and: an SPSC consumer sees its producer process die and a new producer
//! take over.
#![cfg(not(shmkit_loom))]
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use shmkit_ring::{mpmc, spsc, Error, RingConfig};
use shmkit_segment::shim::atomic::Ordering;
use std::time::Duration;

const KILLS: u64 = 50;
const STOP: u64 = u64::MAX;
const LOG: usize = 1 << 20;
// Shared words: [0] consumer log length, [1..=KILLS] producer progress, then the log.
#[allow(clippy::cast_possible_truncation)] // KILLS is 50
const LOG0: usize = 2 + KILLS as usize;

/// The shared word counting producer `k`'s pushes that returned.
fn progress(k: u64) -> usize {
    1 + usize::try_from(k).unwrap()
}

#[test]
fn killed_producers_lose_nothing_that_returned() {
    let cfg = RingConfig::mpmc_of::<u64>(16).unwrap();
    let sh = Shared::new(cfg.size(), LOG0 + LOG);
    mpmc::init(&sh.seg, sh.ring, &cfg).unwrap();
    let q = mpmc::Mpmc::attach(&sh.seg, sh.ring).unwrap();

    let consumer = {
        let (mut q, sh) = (q.clone(), &sh);
        fork(move || {
            q.refresh_identity();
            log_pops(sh, || q.try_pop::<u64>())
        })
    };
    let returned = kill_producers(&sh, |k| {
        let (mut q, sh) = (q.clone(), &sh);
        fork(move || {
            q.refresh_identity();
            push_forever(sh, k, |v| q.try_push(v))
        })
    });
    while q.try_push(STOP).is_err() {
        std::thread::yield_now();
    }
    wait_ok(consumer, Duration::from_secs(60));

    let log = read_log(&sh);
    let extra = check_log(&log, &returned);
    eprintln!("{KILLS} producers killed; {extra} in-flight pushes were delivered anyway");
}

/// The SPSC form of the test above: 50 producer processes in turn, each SIGKILLed in
/// a loop of pushes (so at any instruction, including between a slot's sequence
/// store and the `tail` store), each successor taking the role over; a consumer
/// process logs what it pops. Every push that returned arrives once, in order; of the
/// push in flight at the kill, at most that item arrives; the producers' items come
/// in the order the producers ran.
#[test]
fn spsc_killed_producers_lose_nothing_that_returned() {
    let cfg = RingConfig::spsc_of::<u64>(16).unwrap();
    let sh = Shared::new(cfg.size(), LOG0 + LOG);
    spsc::init(&sh.seg, sh.ring, &cfg).unwrap();

    let consumer = {
        let sh = &sh;
        fork(move || {
            let Ok(mut rx) = spsc::Consumer::attach(&sh.seg, sh.ring) else {
                return 4;
            };
            log_pops(sh, || rx.try_pop::<u64>())
        })
    };
    let returned = kill_producers(&sh, |k| {
        let sh = &sh;
        fork(move || {
            let Ok(mut tx) = spsc::Producer::attach(&sh.seg, sh.ring) else {
                return 4;
            };
            push_forever(sh, k, |v| tx.try_push(v))
        })
    });
    let mut tx = spsc::Producer::attach(&sh.seg, sh.ring).unwrap();
    while tx.try_push(STOP).is_err() {
        std::thread::yield_now();
    }
    wait_ok(consumer, Duration::from_secs(60));

    let log = read_log(&sh);
    assert!(
        log.windows(2).all(|w| w[0] >> 32 <= w[1] >> 32),
        "producers' items interleaved"
    );
    let extra = check_log(&log, &returned);
    eprintln!("{KILLS} SPSC producers killed; {extra} in-flight pushes were delivered anyway");
}

/// The consumer child's loop: logs each item `pop` returns (the count in word 0, the
/// items from word `LOG0`) until `STOP`, spinning while the ring is empty. Exit code
/// 0 at `STOP`, 2 on a pop error, 3 if the log is full.
fn log_pops(sh: &Shared, mut pop: impl FnMut() -> Result<u64, Error>) -> i32 {
    let mut n = 0;
    loop {
        match pop() {
            Ok(STOP) => return 0,
            Ok(v) if n < LOG => {
                // Relaxed: published by the Release length store.
                sh.word(LOG0 + n).store(v, Ordering::Relaxed);
                n += 1;
                // Release: pairs with the parent's Acquire load.
                sh.word(0).store(n as u64, Ordering::Release);
            }
            Ok(_) => return 3,
            Err(Error::Empty) => std::hint::spin_loop(),
            Err(_) => return 2,
        }
    }
}

/// Producer `k`'s child loop: pushes `k << 32 | i` for `i = 0..` with `push` (retrying
/// while full), counting in word `progress(k)` each push that returned, until killed.
/// Exit code 2 on a push error other than full.
fn push_forever(sh: &Shared, k: u64, mut push: impl FnMut(u64) -> Result<(), Error<u64>>) -> i32 {
    for i in 0.. {
        let mut v = (k << 32) | i;
        while let Err(e) = push(v) {
            match e {
                Error::Full(x) => v = x,
                _ => return 2,
            }
        }
        // Release: pairs with the parent's Acquire load: push i returned.
        sh.word(progress(k)).store(i + 1, Ordering::Release);
    }
    0
}

/// Runs `KILLS` producers in turn (`spawn(k)` forks producer `k`), SIGKILLing each at a
/// varying point of its stream, in the middle of pushes; returns how many pushes of
/// each returned before the kill.
fn kill_producers(sh: &Shared, spawn: impl Fn(u64) -> libc::pid_t) -> Vec<u64> {
    let mut returned = Vec::new();
    for k in 0..KILLS {
        let child = spawn(k);
        let at = 50 + (k * 97) % 400;
        wait_until(Duration::from_secs(30), "producer progress", || {
            sh.load(progress(k)) >= at
        });
        kill(child);
        let st = wait(child, Duration::from_secs(30));
        assert!(
            libc::WIFSIGNALED(st),
            "producer {k} was killed (status {st:#x})"
        );
        returned.push(sh.load(progress(k)));
    }
    returned
}

/// The consumer's log as the parent sees it.
fn read_log(sh: &Shared) -> Vec<u64> {
    let n = usize::try_from(sh.load(0)).unwrap();
    (0..n).map(|i| sh.load(LOG0 + i)).collect()
}

#[test]
fn spsc_consumer_sees_dead_producer_and_a_successor_takes_over() {
    let cfg = RingConfig::spsc_of::<u64>(8).unwrap();
    let sh = Shared::new(cfg.size(), 1);
    spsc::init(&sh.seg, sh.ring, &cfg).unwrap();
    let mut rx = spsc::Consumer::attach(&sh.seg, sh.ring).unwrap();
    for round in 0..5u64 {
        let child = {
            let sh = &sh;
            fork(move || {
                let mut tx = match spsc::Producer::attach(&sh.seg, sh.ring) {
                    Ok(tx) => tx,
                    Err(_) => return 2,
                };
                for i in 0..3 {
                    if tx.try_push(round * 10 + i).is_err() {
                        return 3;
                    }
                }
                // Release: pairs with the parent's Acquire load.
                sh.word(0).store(round + 1, Ordering::Release);
                loop {
                    std::hint::spin_loop(); // hold the producer end until killed
                }
            })
        };
        wait_until(Duration::from_secs(30), "pushes", || {
            sh.load(0) == round + 1
        });
        assert!(rx.is_producer_alive());
        kill(child);
        let _ = wait(child, Duration::from_secs(30));
        assert!(!rx.is_producer_alive(), "the dead producer is seen as gone");
        for i in 0..3 {
            assert_eq!(rx.try_pop::<u64>().unwrap(), round * 10 + i);
        }
        assert!(matches!(rx.try_pop::<u64>(), Err(Error::Empty)));
    }
}

/// Checks a consumer's log (`producer << 32 | item`) against what each producer's
/// pushes returned: items `0..r` of producer `k` (`r = returned[k]`) all there, in
/// order, once; at most item `r` besides (the push in flight when it was killed).
/// Returns how many in-flight pushes were delivered anyway.
fn check_log(log: &[u64], returned: &[u64]) -> usize {
    let mut extra = 0;
    for (k, &r) in (0u64..).zip(returned) {
        let got: Vec<u64> = log
            .iter()
            .filter(|v| *v >> 32 == k)
            .map(|v| v & 0xffff_ffff)
            .collect();
        assert!(got.len() as u64 >= r, "producer {k}: lost a returned item");
        assert_eq!(
            &got[..usize::try_from(r).unwrap()],
            &(0..r).collect::<Vec<_>>()[..]
        );
        assert!(
            got.len() as u64 <= r + 1,
            "producer {k}: duplicates or phantom items"
        );
        if got.len() as u64 == r + 1 {
            assert_eq!(got[got.len() - 1], r);
            extra += 1;
        }
    }
    extra
}
