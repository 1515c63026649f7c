//! Model-based tests: random operation sequences against a `VecDeque`, and a
//! multi-threaded exactly-once / per-producer-FIFO check.
#![cfg(not(shmkit_loom))]
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use shmkit_ring::{bytes, mpmc, spsc, Error, RingConfig};
use std::collections::VecDeque;

#[derive(Debug, Clone)]
enum SlotOp {
    Push(u64),
    Pop,
    PushSlice(u8),
    PopSlice(u8),
    ReserveCommit(u64),
    ReserveAbort,
    PeekRelease,
    PeekKeep,
}

fn slot_op() -> impl Strategy<Value = SlotOp> {
    prop_oneof![
        any::<u64>().prop_map(SlotOp::Push),
        Just(SlotOp::Pop),
        (0u8..6).prop_map(SlotOp::PushSlice),
        (0u8..6).prop_map(SlotOp::PopSlice),
        any::<u64>().prop_map(SlotOp::ReserveCommit),
        Just(SlotOp::ReserveAbort),
        Just(SlotOp::PeekRelease),
        Just(SlotOp::PeekKeep),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn spsc_matches_vecdeque(cap_log in 0u32..4, ops in prop::collection::vec(slot_op(), 0..200)) {
        let cap = 1usize << cap_log;
        let (mut tx, mut rx) = spsc::new(&RingConfig::spsc_of::<u64>(cap).unwrap()).unwrap();
        let mut model = VecDeque::new();
        let mut next = 0u64;
        for op in ops {
            match op {
                SlotOp::Push(v) => match tx.try_push(v) {
                    Ok(()) => { prop_assert!(model.len() < cap); model.push_back(v) }
                    Err(Error::Full(x)) => { prop_assert_eq!(x, v); prop_assert_eq!(model.len(), cap) }
                    Err(e) => prop_assert!(false, "{e}"),
                },
                SlotOp::Pop => match rx.try_pop::<u64>() {
                    Ok(v) => prop_assert_eq!(Some(v), model.pop_front()),
                    Err(Error::Empty) => prop_assert!(model.is_empty()),
                    Err(e) => prop_assert!(false, "{e}"),
                },
                SlotOp::PushSlice(n) => {
                    let items: Vec<u64> = (0..u64::from(n)).map(|k| next + k).collect();
                    next += u64::from(n);
                    let pushed = tx.push_slice(&items);
                    prop_assert_eq!(pushed, items.len().min(cap - model.len()));
                    model.extend(&items[..pushed]);
                }
                SlotOp::PopSlice(n) => {
                    let mut out = vec![0u64; usize::from(n)];
                    let got = rx.pop_slice(&mut out);
                    prop_assert_eq!(got, out.len().min(model.len()));
                    for v in &out[..got] {
                        prop_assert_eq!(Some(*v), model.pop_front());
                    }
                }
                SlotOp::ReserveCommit(v) => match tx.reserve() {
                    Ok(mut w) => { w.write(&v); w.commit(); model.push_back(v) }
                    Err(Error::Full(())) => prop_assert_eq!(model.len(), cap),
                    Err(e) => prop_assert!(false, "{e}"),
                },
                SlotOp::ReserveAbort => { let _ = tx.reserve(); }
                SlotOp::PeekRelease => match rx.peek() {
                    Ok(r) => { prop_assert_eq!(Some(r.read::<u64>()), model.pop_front()); r.release() }
                    Err(_) => prop_assert!(model.is_empty()),
                },
                SlotOp::PeekKeep => match rx.peek() {
                    Ok(r) => prop_assert_eq!(Some(&r.read::<u64>()), model.front()),
                    Err(_) => prop_assert!(model.is_empty()),
                },
            }
            prop_assert_eq!(rx.len().unwrap(), model.len());
        }
    }

    #[test]
    fn mpmc_matches_vecdeque(cap_log in 0u32..4, ops in prop::collection::vec((any::<bool>(), any::<bool>(), any::<u64>()), 0..200)) {
        let cap = 1usize << cap_log;
        let a = mpmc::new(&RingConfig::mpmc_of::<u64>(cap).unwrap()).unwrap();
        let b = a.clone();
        let mut model = VecDeque::new();
        for (push, use_a, v) in ops {
            let q = if use_a { &a } else { &b };
            if push {
                match q.try_push(v) {
                    Ok(()) => { prop_assert!(model.len() < cap); model.push_back(v) }
                    Err(Error::Full(x)) => { prop_assert_eq!(x, v); prop_assert_eq!(model.len(), cap) }
                    Err(e) => prop_assert!(false, "{e}"),
                }
            } else {
                match q.try_pop::<u64>() {
                    Ok(x) => prop_assert_eq!(Some(x), model.pop_front()),
                    Err(Error::Empty) => prop_assert!(model.is_empty()),
                    Err(e) => prop_assert!(false, "{e}"),
                }
            }
            prop_assert_eq!(a.len(), model.len());
        }
    }

    /// Byte ring against a model that tracks the same positions (so that "full"
    /// including padding at the wrap is predicted exactly).
    #[test]
    fn bytes_match_model(cap_log in 4u32..9, ops in prop::collection::vec((0u8..4, 0usize..300, any::<u8>()), 0..200)) {
        let cap = 1u64 << cap_log;
        let cfg = RingConfig::bytes(1 << cap_log).unwrap();
        let max = cfg.max_record_len();
        let (mut tx, mut rx) = bytes::new(&cfg).unwrap();
        let mut model: VecDeque<(Vec<u8>, u16, u64)> = VecDeque::new(); // (payload, flags, bytes used incl. pad)
        let (mut tail, mut used) = (0u64, 0u64);
        for (kind, len, seed) in ops {
            match kind {
                0 | 1 => {
                    let msg: Vec<u8> = (0..len).map(|i| u8::try_from(i % 256).unwrap().wrapping_mul(31) ^ seed).collect();
                    let flags = u16::from(seed) & 3;
                    let total = 8 + ((len as u64 + 7) & !7);
                    let contig = cap - (tail % cap);
                    let need = if total <= contig { total } else { contig + total };
                    let r = if kind == 0 {
                        tx.try_push_record(&msg, flags)
                    } else {
                        tx.reserve(len, flags).map(|mut w| { w.write_at(0, &msg); w.commit(); })
                    };
                    match r {
                        Ok(()) => {
                            // `need + 8`: the header word after the record stays free.
                            prop_assert!(len <= max && need + 8 <= cap - used);
                            tail += need; used += need;
                            model.push_back((msg, flags, need));
                        }
                        Err(Error::TooLarge { .. }) => prop_assert!(len > max),
                        Err(Error::Full(())) => prop_assert!(len <= max && need + 8 > cap - used),
                        Err(e) => prop_assert!(false, "{e}"),
                    }
                }
                2 => match rx.try_pop_vec() {
                    Ok((v, f)) => {
                        let (m, mf, need) = model.pop_front().unwrap();
                        prop_assert_eq!((v, f), (m, mf));
                        used -= need;
                    }
                    Err(Error::Empty) => prop_assert!(model.is_empty()),
                    Err(e) => prop_assert!(false, "{e}"),
                },
                _ => {
                    // Peek without consuming, or a too-short buffer: the record stays.
                    let mut small = vec![0u8; len % 16];
                    match rx.try_pop(&mut small) {
                        Ok(r) => {
                            let (m, mf, need) = model.pop_front().unwrap();
                            prop_assert_eq!((&small[..r.len], r.flags), (&m[..], mf));
                            used -= need;
                        }
                        Err(Error::BufferTooShort { needed, .. }) => prop_assert_eq!(needed, model.front().unwrap().0.len()),
                        Err(Error::Empty) => prop_assert!(model.is_empty()),
                        Err(e) => prop_assert!(false, "{e}"),
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Threads: every item delivered exactly once, each producer's items in order.
    #[test]
    fn mpmc_threads_exactly_once_fifo(cap_log in 0u32..5, producers in 1u64..4, consumers in 1usize..3, per in 1u64..3000) {
        let q = mpmc::new(&RingConfig::mpmc_of::<u64>(1 << cap_log).unwrap()).unwrap();
        let done = std::sync::Arc::new(shmkit_segment::shim::atomic::AtomicU64::new(0));
        let ps: Vec<_> = (0..producers).map(|p| {
            let (q, done) = (q.clone(), done.clone());
            std::thread::spawn(move || {
                for i in 0..per {
                    let mut v = (p << 32) | i;
                    while let Err(e) = q.try_push(v) { v = e.into_item().unwrap(); std::thread::yield_now(); }
                }
                done.fetch_add(1, shmkit_segment::shim::atomic::Ordering::Release);
            })
        }).collect();
        let cs: Vec<_> = (0..consumers).map(|_| {
            let (q, done) = (q.clone(), done.clone());
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    match q.try_pop::<u64>() {
                        Ok(v) => got.push(v),
                        Err(Error::Empty) => {
                            if done.load(shmkit_segment::shim::atomic::Ordering::Acquire) == producers && q.is_empty() {
                                if let Ok(v) = q.try_pop::<u64>() { got.push(v); continue; }
                                return got;
                            }
                            std::thread::yield_now();
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        }).collect();
        for p in ps { p.join().unwrap(); }
        let per_consumer: Vec<Vec<u64>> = cs.into_iter().map(|c| c.join().unwrap()).collect();
        for got in &per_consumer {
            // Each consumer sees each producer's items in increasing order.
            for p in 0..producers {
                let mine: Vec<u64> = got.iter().filter(|v| *v >> 32 == p).map(|v| v & 0xffff_ffff).collect();
                prop_assert!(mine.windows(2).all(|w| w[0] < w[1]));
            }
        }
        let mut all: Vec<u64> = per_consumer.into_iter().flatten().collect();
        all.sort_unstable();
        let want: Vec<u64> = (0..producers).flat_map(|p| (0..per).map(move |i| (p << 32) | i)).collect();
        prop_assert_eq!(all, want);
    }
}
