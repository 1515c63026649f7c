//! API tests of the MPMC ring: FIFO, threads, segment placement, corruption, and the
//! crash-repair protocol driven by the test hook at every crash point.
#![cfg(not(shmkit_loom))]
#![allow(clippy::unwrap_used)]

use shmkit_ring::mpmc::{self, CrashPoint};
use shmkit_ring::owner::Liveness;
use shmkit_ring::{Error, OwnerId, RingConfig};
use shmkit_segment::{layout::Layout, Kind, Segment};

#[test]
fn fifo_full_empty_too_large() {
    let q = mpmc::new(&RingConfig::mpmc_of::<u32>(2).unwrap()).unwrap();
    assert!(matches!(q.try_pop::<u32>(), Err(Error::Empty)));
    q.try_push(1u32).unwrap();
    q.try_push(2u32).unwrap();
    assert!(matches!(q.try_push(3u32), Err(Error::Full(3))));
    assert_eq!(q.len(), 2);
    assert_eq!(q.try_pop::<u32>().unwrap(), 1);
    q.try_push(3u32).unwrap();
    assert_eq!(q.try_pop::<u32>().unwrap(), 2);
    assert_eq!(q.try_pop::<u32>().unwrap(), 3);
    assert!(matches!(q.try_push([0u64; 2]), Err(Error::TooLarge { .. })));
    let q1 = mpmc::new(&RingConfig::mpmc(1, 8).unwrap()).unwrap();
    for i in 0..10u64 {
        q1.try_push(i).unwrap();
        assert!(q1.try_push(i).is_err());
        assert_eq!(q1.try_pop::<u64>().unwrap(), i);
    }
}

#[test]
fn threads_exactly_once_per_producer_fifo() {
    const P: u64 = 4;
    const N: u64 = 50_000;
    let q = mpmc::new(&RingConfig::mpmc_of::<u64>(16).unwrap()).unwrap();
    let producers: Vec<_> = (0..P)
        .map(|p| {
            let q = q.clone();
            std::thread::spawn(move || {
                for i in 0..N {
                    let mut v = (p << 32) | i;
                    while let Err(e) = q.try_push(v) {
                        v = e.into_item().unwrap();
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut last = [None::<u64>; 4];
                loop {
                    match q.try_pop::<u64>() {
                        Ok(u64::MAX) => return got,
                        Ok(v) => {
                            let (p, i) = ((v >> 32) as usize, v & 0xffff_ffff);
                            assert!(last[p].map_or(true, |l| l < i), "per-producer order");
                            last[p] = Some(i);
                            got.push(v);
                        }
                        Err(Error::Empty) => std::thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    for _ in 0..2 {
        while q.try_push(u64::MAX).is_err() {
            std::thread::yield_now();
        }
    }
    let mut all: Vec<u64> = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    all.sort_unstable();
    let want: Vec<u64> = (0..P)
        .flat_map(|p| (0..N).map(move |i| (p << 32) | i))
        .collect();
    assert_eq!(all, want);
}

const DEAD_ID: OwnerId = OwnerId::from_raw(0xdead_0000_0001);

fn oracle() -> Liveness {
    Liveness::custom(|id| id != DEAD_ID)
}

/// A handle to `q` claiming as `id` (judging liveness by `oracle`), stopping at `crash`.
fn handle(q: &mpmc::Mpmc, id: OwnerId, crash: CrashPoint) -> mpmc::Mpmc {
    q.clone().with_identity(id, oracle(), crash)
}

/// Pushes `v`, popping into `got` while the ring is full (a dead claim may hold the
/// only slot until a consumer passes it).
fn push_retry(q: &mpmc::Mpmc, v: u64, got: &mut Vec<u64>) {
    let mut v = v;
    for _ in 0..1000 {
        match q.try_push(v) {
            Ok(()) => return,
            Err(e) => v = e.into_item().unwrap(),
        }
        if let Ok(x) = q.try_pop::<u64>() {
            got.push(x);
        }
    }
    panic!("push never succeeded: {:?}", q.try_push(v));
}

/// A producer dying at each point: the survivors keep going; what was pushed before
/// arrives once; the dead push arrives at most once (only if it reached FULL).
#[test]
fn dead_producer_at_every_point_is_repaired() {
    use CrashPoint::*;
    for (point, delivered) in [
        (AfterLock, false),
        (AfterClaim, false),
        (AfterIndex, false),
        (AfterCopy, false),
        (BeforeUnlock, true),
    ] {
        for cap in [1usize, 2, 4] {
            let q = mpmc::new(&RingConfig::mpmc_of::<u64>(cap).unwrap()).unwrap();
            let live = handle(&q, OwnerId::current(), Never);
            let dying = handle(&q, DEAD_ID, point);
            if cap > 1 {
                live.try_push(1u64).unwrap();
            }
            assert!(
                dying.try_push(99u64).is_err(),
                "{point:?}: crash hook fires"
            );
            let mut got = Vec::new();
            // Live producers and consumers get past the dead slot.
            for v in 2..(2 + 3 * cap as u64) {
                push_retry(&live, v, &mut got);
            }
            while let Ok(v) = live.try_pop::<u64>() {
                got.push(v);
            }
            let mut want: Vec<u64> = Vec::new();
            if cap > 1 {
                want.push(1);
            }
            if delivered {
                want.push(99);
            }
            want.extend(2..(2 + 3 * cap as u64));
            assert_eq!(got, want, "{point:?} cap {cap}");
        }
    }
}

/// A consumer dying at each point: nothing is delivered twice; only the item it had
/// claimed may be lost; the ring keeps working.
#[test]
fn dead_consumer_at_every_point_is_repaired() {
    use CrashPoint::*;
    for (point, lost) in [
        (AfterLock, false),
        (AfterClaim, true),
        (AfterIndex, true),
        (AfterCopy, true),
        (BeforeUnlock, true),
    ] {
        for cap in [1usize, 2, 4] {
            let q = mpmc::new(&RingConfig::mpmc_of::<u64>(cap).unwrap()).unwrap();
            let live = handle(&q, OwnerId::current(), Never);
            let dying = handle(&q, DEAD_ID, point);
            live.try_push(7u64).unwrap();
            assert!(dying.try_pop::<u64>().is_err());
            let mut got = Vec::new();
            for v in 10..(10 + 3 * cap as u64) {
                push_retry(&live, v, &mut got);
            }
            while let Ok(v) = live.try_pop::<u64>() {
                got.push(v);
            }
            let mut want: Vec<u64> = if lost { vec![] } else { vec![7] };
            want.extend(10..(10 + 3 * cap as u64));
            assert_eq!(got, want, "{point:?} cap {cap}");
        }
    }
}

#[test]
fn recover_scans_and_frees_dead_slots() {
    let q = mpmc::new(&RingConfig::mpmc_of::<u64>(4).unwrap()).unwrap();
    let live = handle(&q, OwnerId::current(), CrashPoint::Never);
    let dying = handle(&q, DEAD_ID, CrashPoint::AfterCopy);
    assert!(dying.try_push(1u64).is_err());
    assert_eq!(live.recover().unwrap(), 1);
    assert_eq!(live.recover().unwrap(), 0);
    assert!(matches!(live.try_pop::<u64>(), Err(Error::Empty)));
}

#[test]
fn segment_placement_and_corruption() {
    let cfg = RingConfig::mpmc(4, 24).unwrap();
    let mut l = Layout::new();
    let region = cfg.add_to(&mut l).unwrap();
    let seg = Segment::create_anonymous(Kind::RAW, l.size()).unwrap();
    mpmc::init(&seg, region, &cfg).unwrap();
    let q = mpmc::Mpmc::attach(&seg, region).unwrap();
    assert!(shmkit_ring::spsc::Producer::attach(&seg, region).is_err());
    q.try_push_bytes(b"abc").unwrap();
    let mut b = [0u8; 3];
    q.try_pop_bytes(&mut b).unwrap();
    assert_eq!(&b, b"abc");
    // Stamp of slot 1 (at 384 + 1 * stride, one 64-byte line for 16 + 24 bytes) gets
    // an invalid state.
    assert_eq!(shmkit_ring::raw::mpmc_stride(24), 64);
    let stamp: &shmkit_segment::shim::atomic::AtomicU64 = seg.get(384 + 64).unwrap();
    stamp.store(7, shmkit_segment::shim::atomic::Ordering::Relaxed);
    assert!(matches!(q.try_push(1u64), Err(Error::Corrupt { .. })));
}

/// A claimant moves `tail`/`head` with a plain store, which may land after helpers
/// moved the index further: the stored index then lags behind the claimed positions.
/// Simulate that lag by writing old values back: len() still counts exactly, pushes
/// go to fresh positions (nothing is overwritten) and pops continue in order.
#[test]
fn lagging_indices_are_helped_forward() {
    use shmkit_ring::raw::{HEAD_OFFSET, TAIL_OFFSET};
    use shmkit_segment::shim::atomic::{AtomicU64, Ordering};
    let cfg = RingConfig::mpmc_of::<u64>(4).unwrap();
    let mut l = Layout::new();
    let region = cfg.add_to(&mut l).unwrap();
    let seg = Segment::create_anonymous(Kind::RAW, l.size()).unwrap();
    mpmc::init(&seg, region, &cfg).unwrap();
    let q = mpmc::Mpmc::attach(&seg, region).unwrap();
    let tail: &AtomicU64 = seg.get(region.offset() + TAIL_OFFSET).unwrap();
    let head: &AtomicU64 = seg.get(region.offset() + HEAD_OFFSET).unwrap();
    for v in 1..=3u64 {
        q.try_push(v).unwrap();
    }
    tail.store(1, Ordering::Relaxed);
    assert_eq!(q.len(), 3);
    assert!(q.push_ready(), "slot 3 is free");
    q.try_push(4u64).unwrap();
    assert_eq!(tail.load(Ordering::Relaxed), 4);
    assert!(matches!(q.try_push(5u64), Err(Error::Full(5))));
    assert_eq!(q.try_pop::<u64>().unwrap(), 1);
    assert_eq!(q.try_pop::<u64>().unwrap(), 2);
    head.store(0, Ordering::Relaxed);
    assert_eq!(q.len(), 2);
    assert!(q.pop_ready());
    assert_eq!(q.try_pop::<u64>().unwrap(), 3);
    assert_eq!(head.load(Ordering::Relaxed), 3);
    // A lagging tail on a full ring wraps nothing around.
    q.try_push(5u64).unwrap();
    q.try_push(6u64).unwrap();
    q.try_push(7u64).unwrap();
    tail.store(4, Ordering::Relaxed);
    assert_eq!(q.len(), 4);
    assert!(!q.push_ready());
    assert!(matches!(q.try_push(8u64), Err(Error::Full(8))));
    let got: Vec<u64> = std::iter::from_fn(|| q.try_pop::<u64>().ok()).collect();
    assert_eq!(got, [4, 5, 6, 7]);
    assert!(!q.pop_ready());
    assert!(q.is_empty());
}

/// `try_pop_with` reads only what the closure asks for, in place, and runs the
/// closure once per delivered item (never for an empty ring).
#[test]
fn pop_with_reads_in_place() {
    let q = mpmc::new(&RingConfig::mpmc(4, 40).unwrap()).unwrap();
    let mut calls = 0;
    assert!(matches!(q.try_pop_with(|_| calls += 1), Err(Error::Empty)));
    assert_eq!(calls, 0);
    let item: Vec<u8> = (0..40).collect();
    q.try_push_bytes(&item).unwrap();
    q.try_push_bytes(b"short").unwrap();
    let got = q
        .try_pop_with(|p| {
            assert_eq!(p.size(), 40);
            let mut head = [0u8; 8];
            p.read_at(0, &mut head);
            let mut tail = [0u8; 32];
            p.read_at(8, &mut tail);
            (head, tail)
        })
        .unwrap();
    assert_eq!(&got.0[..], &item[..8]);
    assert_eq!(&got.1[..], &item[8..]);
    let mut b = [0u8; 5];
    q.try_pop_with(|p| p.read_at(0, &mut b)).unwrap();
    assert_eq!(&b, b"short");
    assert!(q.is_empty());
}

/// `push_ready_for(n)` says whether `n` pushes in a row would find room.
#[test]
fn push_ready_for_counts_room() {
    let q = mpmc::new(&RingConfig::mpmc_of::<u64>(4).unwrap()).unwrap();
    assert!(
        q.push_ready_for(4) && q.push_ready_for(100),
        "empty: room for all"
    );
    for v in 0..4u64 {
        q.try_push(v).unwrap();
    }
    assert!(!q.push_ready_for(0) && !q.push_ready_for(1) && !q.push_ready_for(2));
    assert_eq!(q.try_pop::<u64>().unwrap(), 0);
    assert!(q.push_ready_for(0) && q.push_ready_for(1));
    assert!(!q.push_ready_for(2), "one free slot is not room for two");
    assert_eq!(q.try_pop::<u64>().unwrap(), 1);
    assert!(q.push_ready_for(2) && !q.push_ready_for(3));
    q.try_push(4u64).unwrap();
    assert!(q.push_ready_for(1) && !q.push_ready_for(2));
}

/// `head_hint()` follows the consumers: pops move it by one, pushes and failed pops
/// leave it, across laps (capacity 2: the producer's prefetch index wraps too).
#[test]
fn head_hint_moves_with_pops_only() {
    let q = mpmc::new(&RingConfig::mpmc_of::<u64>(2).unwrap()).unwrap();
    assert_eq!(q.head_hint(), 0);
    assert!(matches!(q.try_pop::<u64>(), Err(Error::Empty)));
    assert_eq!(q.head_hint(), 0, "a failed pop leaves it");
    for lap in 0..5u64 {
        q.try_push(2 * lap).unwrap();
        q.try_push(2 * lap + 1).unwrap();
        assert!(matches!(q.try_push(0u64), Err(Error::Full(0))));
        assert_eq!(q.head_hint(), 2 * lap, "pushes leave it");
        assert_eq!(q.try_pop::<u64>().unwrap(), 2 * lap);
        assert_eq!(q.head_hint(), 2 * lap + 1);
        let mut b = [0u8; 8];
        q.try_pop_with(|p| p.read_at(0, &mut b)).unwrap();
        assert_eq!(u64::from_ne_bytes(b), 2 * lap + 1);
        assert_eq!(q.head_hint(), 2 * lap + 2);
    }
}

/// `take_freed` reports, once, the room a handle made without delivering an item: a
/// dead producer's slot it discarded, or a dead consumer's claim it undid; nothing
/// after ordinary pushes and pops.
#[test]
fn take_freed_reports_room_no_pop_delivered() {
    let q = mpmc::new(&RingConfig::mpmc_of::<u64>(2).unwrap()).unwrap();
    let live = handle(&q, OwnerId::current(), CrashPoint::Never);
    live.try_push(1u64).unwrap();
    assert_eq!(live.try_pop::<u64>().unwrap(), 1);
    assert!(live.try_pop::<u64>().is_err());
    assert!(!live.take_freed(), "ordinary pops free nothing unreported");

    // A producer dies mid-put: the pop that discards its slot reports it.
    let dying = handle(&q, DEAD_ID, CrashPoint::AfterCopy);
    assert!(dying.try_push(99u64).is_err());
    assert!(
        live.try_pop::<u64>().is_err(),
        "the dead item is not delivered"
    );
    assert!(live.take_freed());
    assert!(!live.take_freed(), "reported once");

    // A consumer dies holding an item: the handle that undoes its claim (a producer
    // reaching its slot a lap later) reports it.
    live.try_push(7u64).unwrap();
    let dying = handle(&q, DEAD_ID, CrashPoint::AfterCopy);
    assert!(dying.try_pop::<u64>().is_err());
    assert!(!live.take_freed());
    live.try_push(8u64).unwrap();
    live.try_push(9u64).unwrap(); // the dead consumer's slot, freed on the way
    assert!(live.take_freed());
    let (a, b) = (
        live.try_pop::<u64>().unwrap(),
        live.try_pop::<u64>().unwrap(),
    );
    assert_eq!((a, b), (8, 9), "the claimed item is lost, not redelivered");
    // A clone starts with nothing to report.
    live.try_push(10u64).unwrap();
    assert_eq!(live.clone().try_pop::<u64>().unwrap(), 10);
    assert!(!live.take_freed());
}
