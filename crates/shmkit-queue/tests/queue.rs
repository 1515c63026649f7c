//! API tests of the queues within one process (threads stand in for processes).
#![cfg(not(shmkit_loom))]
#![allow(clippy::unwrap_used)]

use shmkit_queue::{Error, JoinableQueue, PodQueue, Queue, QueueOptions, SimpleQueue};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(30);

#[test]
fn fifo_and_sizes() {
    let q: Queue<u64> = Queue::new(4).unwrap();
    let _peer = q.clone(); // someone who could get: a full put times out, not disconnects
    assert_eq!(q.capacity(), 4);
    assert!(q.empty());
    for i in 0..4 {
        q.try_put(i).unwrap();
    }
    assert!(q.full());
    assert_eq!(q.qsize(), 4);
    match q.try_put(9) {
        Err(Error::Full(9)) => {}
        other => panic!("{other:?}"),
    }
    match q.put_timeout(10, Duration::from_millis(5)) {
        Err(Error::Full(10)) => {}
        other => panic!("{other:?}"),
    }
    for i in 0..4 {
        assert_eq!(q.try_get().unwrap(), i);
    }
    assert!(matches!(q.try_get(), Err(Error::Empty)));
}

#[test]
fn maxsize_rounds_up_and_default_is_large() {
    assert_eq!(Queue::<u8>::new(10).unwrap().capacity(), 16);
    assert_eq!(
        Queue::<u8>::new(0).unwrap().capacity(),
        shmkit_queue::DEFAULT_CAPACITY
    );
    assert_eq!(
        Queue::<u8>::new(-1).unwrap().capacity(),
        shmkit_queue::DEFAULT_CAPACITY
    );
    // A slot takes item + 4 (rounded up to 8) + 16 bytes of bookkeeping, rounded up to
    // whole 64-byte lines: 44 + 4 + 16 = 64 exactly; 20 + 4 + 16 = 40 still takes a
    // line; 52 + 4 + 16 = 72 takes two. 100 lines hold 100 or 50 slots, rounded down
    // to a power of two.
    for (max_item, cap) in [(44, 64), (20, 64), (52, 32)] {
        let q: Queue<u8> = QueueOptions::new(0)
            .max_item_size(max_item)
            .capacity_bytes(64 * 100)
            .anonymous()
            .unwrap();
        assert_eq!(q.capacity(), cap, "max_item {max_item}");
    }
}

#[test]
fn too_large_is_refused_and_queue_unaffected() {
    let q: Queue<Vec<u8>> = QueueOptions::new(4).max_item_size(16).anonymous().unwrap();
    q.put(vec![1; 8]).unwrap();
    match q.put(vec![7; 100]) {
        Err(Error::TooLarge { len, max: 16 }) => assert!(len > 100),
        other => panic!("{other:?}"),
    }
    assert_eq!(q.qsize(), 1);
    assert_eq!(q.get().unwrap(), vec![1; 8]);
    assert!(matches!(q.try_get(), Err(Error::Empty)));
}

#[test]
fn get_timeout_waits_at_least_the_timeout() {
    let q: Queue<u8> = Queue::new(2).unwrap();
    let _other = q.clone();
    let t = Instant::now();
    assert!(matches!(
        q.get_timeout(Duration::from_millis(100)),
        Err(Error::Empty)
    ));
    assert!(t.elapsed() >= Duration::from_millis(100));
}

#[test]
fn close_drains_then_closed() {
    let q: Queue<u32> = Queue::new(8).unwrap();
    q.put(1).unwrap();
    q.put(2).unwrap();
    q.close();
    assert!(q.is_closed());
    assert!(matches!(q.put(3), Err(Error::Closed)));
    assert_eq!(q.get().unwrap(), 1);
    assert_eq!(q.get().unwrap(), 2);
    assert!(matches!(q.get(), Err(Error::Closed)));
}

#[test]
fn close_wakes_a_sleeping_getter() {
    let q: Queue<u32> = Queue::new(8).unwrap();
    let q2 = q.clone();
    std::thread::scope(|s| {
        let h = s.spawn(|| q2.get_timeout(LONG));
        // Deterministic: the getter is either asleep or not started; either way it
        // must end with Closed.
        q.close();
        assert!(matches!(h.join().unwrap(), Err(Error::Closed)));
    });
}

#[test]
fn blocked_get_sees_a_put_from_another_thread() {
    let q: Queue<String> = Queue::new(1).unwrap();
    let q2 = q.clone();
    let h = std::thread::spawn(move || q2.get_timeout(LONG));
    q.put("x".to_string()).unwrap();
    assert_eq!(h.join().unwrap().unwrap(), "x");
}

#[test]
fn blocked_put_sees_a_get_from_another_thread() {
    let q: Queue<u32> = Queue::new(1).unwrap();
    q.put(1).unwrap();
    let q2 = q.clone();
    let h = std::thread::spawn(move || q2.put_timeout(2, LONG).map_err(Error::drop_item));
    assert_eq!(q.get_timeout(LONG).unwrap(), 1);
    h.join().unwrap().unwrap();
    assert_eq!(q.get_timeout(LONG).unwrap(), 2);
}

#[test]
fn get_disconnects_when_the_other_handle_is_dropped() {
    let q: Queue<u32> = Queue::new(4).unwrap();
    assert_eq!(q.other_handles(), 0);
    assert!(matches!(q.get(), Err(Error::Disconnected)));
    let q2 = q.clone();
    assert_eq!(q.other_handles(), 1);
    let h = std::thread::spawn(move || {
        q2.put(5).unwrap();
        drop(q2);
    });
    assert_eq!(q.get().unwrap(), 5);
    h.join().unwrap();
    assert!(matches!(q.get(), Err(Error::Disconnected)));
    // Items still in the queue are delivered before Disconnected.
    let q3 = q.clone();
    q3.put(6).unwrap();
    drop(q3);
    assert_eq!(q.get().unwrap(), 6);
}

#[test]
fn put_disconnects_when_full_and_alone() {
    let q: Queue<u32> = Queue::new(1).unwrap();
    q.put(1).unwrap();
    assert!(matches!(q.put(2), Err(Error::Disconnected)));
}

#[test]
fn pod_queue_roundtrip() {
    #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct P {
        a: u64,
        b: [u32; 2],
    }
    let q: PodQueue<P> = PodQueue::new(4).unwrap();
    let p = P { a: 1, b: [2, 3] };
    q.put(p).unwrap();
    q.try_put(p).unwrap();
    assert_eq!(q.qsize(), 2);
    assert_eq!(q.get().unwrap(), p);
    assert_eq!(q.try_get().unwrap(), p);
    assert!(matches!(q.try_get(), Err(Error::Empty)));
    let t = q.token().unwrap();
    assert!(
        Queue::<u64>::from_token(&t).is_err(),
        "a Pod queue is not a serde queue"
    );
    assert!(PodQueue::<u8>::from_token(&t).is_err(), "item size checked");
}

#[test]
fn named_and_token() {
    let name = format!("q-test-{}", std::process::id());
    let a: Queue<String> = Queue::create(&name, 8).unwrap();
    let b: Queue<String> = Queue::open(&name).unwrap();
    a.put("hello".into()).unwrap();
    assert_eq!(b.get().unwrap(), "hello");
    let c: Queue<String> = Queue::open_or_create(&name, 8).unwrap();
    let tok = postcard::to_stdvec(&c).unwrap();
    let d: Queue<String> = postcard::from_bytes(&tok).unwrap();
    d.put("via token".into()).unwrap();
    assert_eq!(a.get().unwrap(), "via token");
    assert_eq!(a.other_handles(), 3);
}

#[test]
fn joinable_counts_and_joins() {
    let q: JoinableQueue<u32> = JoinableQueue::new(0).unwrap();
    assert!(matches!(q.task_done(), Err(Error::TaskDone)));
    q.join_timeout(Duration::ZERO).unwrap();
    for i in 0..10 {
        q.put(i).unwrap();
    }
    assert_eq!(q.unfinished(), 10);
    assert!(matches!(
        q.join_timeout(Duration::from_millis(10)),
        Err(Error::Timeout)
    ));
    let q2 = q.clone();
    let h = std::thread::spawn(move || {
        for _ in 0..10 {
            q2.get_timeout(LONG).unwrap();
            q2.task_done().unwrap();
        }
    });
    q.join_timeout(LONG).unwrap();
    assert_eq!(q.unfinished(), 0);
    h.join().unwrap();
    assert!(matches!(q.task_done(), Err(Error::TaskDone)));
}

#[test]
fn simple_queue() {
    let q: SimpleQueue<(u8, String)> = SimpleQueue::new().unwrap();
    assert!(q.empty());
    q.put((1, "a".into())).unwrap();
    assert!(!q.empty());
    assert_eq!(q.get().unwrap(), (1, "a".into()));
    q.close();
    assert!(matches!(q.get(), Err(Error::Closed)));
}

#[test]
fn many_threads_every_item_once() {
    const P: u64 = 3;
    const N: u64 = 20_000;
    let q: Queue<(u64, u64)> = Queue::new(64).unwrap();
    let got = std::thread::scope(|s| {
        let producers: Vec<_> = (0..P)
            .map(|p| {
                let q = q.clone();
                s.spawn(move || {
                    for i in 0..N {
                        q.put((p, i)).unwrap();
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                s.spawn(move || {
                    let mut last = [None::<u64>; 3];
                    let mut n = 0u64;
                    loop {
                        let (p, i) = q.get_timeout(LONG).unwrap();
                        if p == u64::MAX {
                            return n;
                        }
                        let l = &mut last[usize::try_from(p).unwrap()];
                        assert!(l.map_or(true, |l| l < i), "per-producer FIFO");
                        *l = Some(i);
                        n += 1;
                    }
                })
            })
            .collect();
        for h in producers {
            h.join().unwrap();
        }
        for _ in 0..2 {
            q.put((u64::MAX, 0)).unwrap();
        }
        consumers
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum::<u64>()
    });
    assert_eq!(got, P * N);
}

/// Putters facing a full queue spin for a quarter of the ring (at least one slot)
/// and stop spinning when the getter's index stands still: at the small capacities
/// (1, 2, 4 and Python's `Queue(10)`, 16 slots) with a getter that now and then
/// works a while between gets (busy, so its index stands still), every item still
/// arrives once, in order per putter.
#[test]
fn full_small_queues_deliver_every_item_with_a_getter_that_pauses() {
    const P: usize = 2;
    const N: u64 = 3_000;
    for maxsize in [1, 2, 4, 10] {
        let q: Queue<(u64, u64)> = Queue::new(maxsize).unwrap();
        std::thread::scope(|s| {
            for p in 0..P as u64 {
                let q = q.clone();
                s.spawn(move || {
                    for i in 0..N {
                        q.put_timeout((p, i), LONG).unwrap();
                    }
                });
            }
            let mut next = [0u64; P];
            for n in 0..P as u64 * N {
                let (p, i) = q.get_timeout(LONG).unwrap();
                let e = &mut next[usize::try_from(p).unwrap()];
                assert_eq!(i, *e, "maxsize {maxsize}: per-putter FIFO");
                *e += 1;
                if n % 64 == 0 {
                    // Work (not sleep) for 20 µs: longer than the putters' stall limit.
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_micros(20) {
                        std::hint::spin_loop();
                    }
                }
            }
            assert_eq!(next, [N; P], "maxsize {maxsize}");
        });
        assert!(q.empty());
    }
}
