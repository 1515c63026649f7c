//! 4 producer processes × 100k items, 2 consumer processes, one MPMC ring: every item
//! exactly once, each producer's items in order at each consumer.
#![cfg(not(shmkit_loom))]
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use shmkit_ring::{mpmc, Error, RingConfig};
use shmkit_segment::shim::atomic::Ordering;
use std::time::Duration;

const P: u64 = 4;
const N: u64 = 100_000;
const C: usize = 2;
const STOP: u64 = u64::MAX;

#[test]
fn four_producers_two_consumers_exactly_once_in_order() {
    let cfg = RingConfig::mpmc_of::<u64>(256).unwrap();
    // words: [count_c0, count_c1, log_c0 (P*N), log_c1 (P*N)]
    let logw = usize::try_from(P * N).unwrap() + 1;
    let sh = Shared::new(cfg.size(), C + C * logw);
    mpmc::init(&sh.seg, sh.ring, &cfg).unwrap();
    let q = mpmc::Mpmc::attach(&sh.seg, sh.ring).unwrap();

    let consumers: Vec<_> = (0..C)
        .map(|c| {
            let (mut q, sh) = (q.clone(), &sh);
            fork(move || {
                q.refresh_identity();
                let base = C + c * logw;
                let mut n = 0;
                loop {
                    match q.try_pop::<u64>() {
                        Ok(STOP) => return 0,
                        Ok(v) => {
                            // Relaxed: published by the Release count store below.
                            sh.word(base + n).store(v, Ordering::Relaxed);
                            n += 1;
                            // Release: pairs with the parent's Acquire load.
                            sh.word(c).store(n as u64, Ordering::Release);
                        }
                        Err(Error::Empty) => std::hint::spin_loop(),
                        Err(_) => return 2,
                    }
                }
            })
        })
        .collect();
    let producers: Vec<_> = (0..P)
        .map(|p| {
            let mut q = q.clone();
            fork(move || {
                q.refresh_identity();
                for i in 0..N {
                    let mut v = (p << 32) | i;
                    loop {
                        match q.try_push(v) {
                            Ok(()) => break,
                            Err(Error::Full(x)) => {
                                v = x;
                                std::hint::spin_loop();
                            }
                            Err(_) => return 2,
                        }
                    }
                }
                0
            })
        })
        .collect();
    for p in producers {
        wait_ok(p, Duration::from_secs(120));
    }
    for _ in 0..C {
        while q.try_push(STOP).is_err() {
            std::thread::yield_now();
        }
    }
    for c in consumers {
        wait_ok(c, Duration::from_secs(120));
    }
    let mut all = Vec::new();
    for c in 0..C {
        let n = usize::try_from(sh.load(c)).unwrap();
        let log: Vec<u64> = (0..n).map(|k| sh.load(C + c * logw + k)).collect();
        let mut last = [None::<u64>; 4];
        for &v in &log {
            let (p, i) = (usize::try_from(v >> 32).unwrap(), v & 0xffff_ffff);
            assert!(last[p].map_or(true, |l| l < i), "producer {p} out of order");
            last[p] = Some(i);
        }
        all.extend(log);
    }
    all.sort_unstable();
    let want: Vec<u64> = (0..P)
        .flat_map(|p| (0..N).map(move |i| (p << 32) | i))
        .collect();
    assert_eq!(all.len(), want.len(), "count");
    assert!(all == want, "every item exactly once");
}
