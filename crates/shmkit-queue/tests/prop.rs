//! proptest models: random operation sequences against a `VecDeque`, and threads
//! checking that every item is delivered exactly once in per-producer FIFO order.
#![cfg(not(shmkit_loom))]
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use shmkit_queue::{Error, Queue, QueueOptions};
use std::collections::VecDeque;
use std::time::Duration;

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<u8>),
    TryGet,
    GetTimeout,
    Qsize,
    Clone,
    DropClone,
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Op::Put),
        3 => Just(Op::TryGet),
        1 => Just(Op::GetTimeout),
        1 => Just(Op::Qsize),
        1 => Just(Op::Clone),
        1 => Just(Op::DropClone),
        1 => Just(Op::Close),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// One thread: the queue behaves exactly like a bounded VecDeque (capacity 8,
    /// items up to 32 encoded bytes), including Full/TooLarge/Closed/Disconnected.
    #[test]
    fn matches_vecdeque(ops in proptest::collection::vec(op(), 1..120)) {
        const CAP: usize = 8;
        const MAX: usize = 32;
        let q: Queue<Vec<u8>> = QueueOptions::new(CAP as i64).max_item_size(MAX).anonymous().unwrap();
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut clones: Vec<Queue<Vec<u8>>> = Vec::new();
        let mut closed = false;
        for op in ops {
            match op {
                Op::Put(v) => {
                    let encoded = postcard::to_stdvec(&v).unwrap().len();
                    match q.try_put(v.clone()) {
                        Ok(()) => {
                            prop_assert!(!closed && encoded <= MAX && model.len() < CAP);
                            model.push_back(v);
                        }
                        Err(Error::Closed) => prop_assert!(closed && encoded <= MAX),
                        // Size is checked first: TooLarge whether or not closed.
                        Err(Error::TooLarge { len, max }) => {
                            prop_assert_eq!((len, max), (encoded, MAX));
                        }
                        Err(Error::Full(back)) => {
                            prop_assert_eq!(back, v);
                            prop_assert!(!closed && encoded <= MAX);
                            prop_assert_eq!(model.len(), CAP);
                        }
                        Err(e) => prop_assert!(false, "put: {e}"),
                    }
                }
                Op::TryGet => match q.try_get() {
                    Ok(v) => prop_assert_eq!(Some(v), model.pop_front()),
                    Err(Error::Empty) => prop_assert!(model.is_empty() && !closed),
                    Err(Error::Closed) => prop_assert!(model.is_empty() && closed),
                    Err(e) => prop_assert!(false, "try_get: {e}"),
                },
                Op::GetTimeout => match q.get_timeout(Duration::from_millis(1)) {
                    Ok(v) => prop_assert_eq!(Some(v), model.pop_front()),
                    Err(Error::Empty) => prop_assert!(model.is_empty() && !closed && !clones.is_empty()),
                    Err(Error::Disconnected) => prop_assert!(model.is_empty() && !closed && clones.is_empty()),
                    Err(Error::Closed) => prop_assert!(model.is_empty() && closed),
                    Err(e) => prop_assert!(false, "get_timeout: {e}"),
                },
                Op::Qsize => {
                    prop_assert_eq!(q.qsize(), model.len());
                    prop_assert_eq!(q.empty(), model.is_empty());
                    prop_assert_eq!(q.full(), model.len() == CAP);
                }
                Op::Clone => clones.push(q.clone()),
                Op::DropClone => { clones.pop(); }
                Op::Close => { q.close(); closed = true; }
            }
            prop_assert_eq!(q.other_handles(), clones.len() as u64);
        }
    }

    /// Threads: 3 producers and 2 consumers on a small queue; every item is delivered
    /// exactly once and each consumer sees each producer's items in increasing order.
    #[test]
    fn threads_exactly_once_fifo(cap_log in 0u32..4, n in 1u32..400) {
        let q: Queue<(u8, u32)> = Queue::new(1i64 << cap_log).unwrap();
        let got: Vec<Vec<(u8, u32)>> = std::thread::scope(|s| {
            let producers: Vec<_> = (0..3u8).map(|p| {
                let q = q.clone();
                s.spawn(move || for i in 0..n {
                    q.put((p, i)).map_err(Error::drop_item).unwrap();
                })
            }).collect();
            let consumers: Vec<_> = (0..2).map(|_| {
                let q = q.clone();
                s.spawn(move || {
                    let mut v = Vec::new();
                    loop {
                        match q.get_timeout(Duration::from_secs(30)) {
                            Ok(x) => v.push(x),
                            Err(Error::Closed) => return v,
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            }).collect();
            for p in producers { p.join().unwrap(); }
            q.close();
            consumers.into_iter().map(|c| c.join().unwrap()).collect()
        });
        let mut all = Vec::new();
        for v in &got {
            for p in 0..3u8 {
                let seq: Vec<u32> = v.iter().filter(|x| x.0 == p).map(|x| x.1).collect();
                prop_assert!(seq.windows(2).all(|w| w[0] < w[1]), "per-producer FIFO");
            }
            all.extend_from_slice(v);
        }
        all.sort_unstable();
        let want: Vec<(u8, u32)> = (0..3u8).flat_map(|p| (0..n).map(move |i| (p, i))).collect();
        prop_assert_eq!(all, want);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Shared memory is untrusted: random bytes written anywhere into a queue's data
    /// area (control block, ring header, slots) make operations fail with errors or
    /// return items, never panic, hang or read out of bounds.
    #[test]
    fn corrupt_memory_gives_errors_not_panics(
        items in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 0..6),
        writes in proptest::collection::vec((0usize..4096, any::<u64>()), 1..8),
    ) {
        let q: Queue<Vec<u8>> = QueueOptions::new(4).max_item_size(32).anonymous().unwrap();
        for it in items {
            let _ = q.try_put(it);
        }
        let seg = q.token().unwrap().open().unwrap();
        let len = seg.data_len();
        for (off, v) in writes {
            let off = (off % (len - 8)) & !7;
            // Through an atomic, as a peer process would write.
            seg.get::<shmkit_segment::shim::atomic::AtomicU64>(off)
                .unwrap()
                .store(v, shmkit_segment::shim::atomic::Ordering::Relaxed);
        }
        for _ in 0..8 {
            let _ = q.try_get();
            let _ = q.try_put(vec![1, 2, 3]);
            let _ = (q.qsize(), q.empty(), q.full(), q.is_closed());
        }
        let _ = q.get_timeout(Duration::from_millis(1));
        // Opening a corrupt queue is an error or a handle, never a panic.
        let _ = Queue::<Vec<u8>>::from_token(&q.token().unwrap());
    }
}
