//! API tests of the SPSC ring: heap, segment and raw placement, batch, zero-copy,
//! corruption and role claims.
#![cfg(not(shmkit_loom))]
#![allow(clippy::unwrap_used)]

use shmkit_ring::raw::{
    spsc_slot_layout, HEADER_SIZE, SPSC_SEQ_SIZE, SPSC_VERSION, TAIL_OFFSET, VERSION_OFFSET,
};
use shmkit_ring::{spsc, Error, RingConfig};
use shmkit_segment::shim::atomic::{AtomicU32, AtomicU64, Ordering};
use shmkit_segment::{layout::Layout, Kind, Segment};

#[test]
fn fifo_full_empty_and_batches() {
    let (mut tx, mut rx) = spsc::new(&RingConfig::spsc_of::<u32>(4).unwrap()).unwrap();
    assert!(matches!(rx.try_pop::<u32>(), Err(Error::Empty)));
    for i in 0..4u32 {
        tx.try_push(i).unwrap();
    }
    assert!(matches!(tx.try_push(9u32), Err(Error::Full(9))));
    assert_eq!(rx.try_pop::<u32>().unwrap(), 0);
    assert_eq!(tx.push_slice(&[10u32, 11, 12]), 1);
    let mut out = [0u32; 8];
    assert_eq!(rx.pop_slice(&mut out), 4);
    assert_eq!(&out[..4], &[1, 2, 3, 10]);
    assert!(matches!(
        tx.try_push(1u128),
        Err(Error::TooLarge { len: 16, max: 8 })
    ));
}

#[test]
fn zero_copy_reserve_commit_peek_release() {
    let (mut tx, mut rx) = spsc::new(&RingConfig::spsc(2, 32).unwrap()).unwrap();
    let mut w = tx.reserve().unwrap();
    assert_eq!(w.len(), 32);
    w.write_at(8, b"hello");
    let _ = w; // not committed: nothing published
    assert!(rx.peek().is_err());
    let mut w = tx.reserve().unwrap();
    // SAFETY: the slot is reserved; nobody else touches this ring.
    unsafe { w.as_mut_slice()[..5].copy_from_slice(b"world") };
    w.commit();
    let r = rx.peek().unwrap();
    let mut b = [0u8; 5];
    r.read_at(0, &mut b);
    assert_eq!(&b, b"world");
    let _ = r; // not released: stays
    let r = rx.peek().unwrap();
    // SAFETY: published and unreleased; the producer follows the protocol.
    assert_eq!(unsafe { &r.as_slice()[..5] }, b"world");
    r.release();
    assert!(rx.peek().is_err());
}

#[test]
fn threads_deliver_everything_in_order() {
    let (mut tx, mut rx) = spsc::new(&RingConfig::spsc_of::<u64>(64).unwrap()).unwrap();
    const N: u64 = 200_000;
    let t = std::thread::spawn(move || {
        let mut i = 0;
        while i < N {
            if tx.try_push(i).is_ok() {
                i += 1;
            } else {
                std::hint::spin_loop();
            }
        }
    });
    let mut next = 0;
    let mut buf = [0u64; 16];
    while next < N {
        let n = rx.pop_slice(&mut buf);
        for &v in &buf[..n] {
            assert_eq!(v, next);
            next += 1;
        }
    }
    t.join().unwrap();
}

#[test]
fn segment_placement_roles_and_corruption() {
    let cfg = RingConfig::spsc_of::<u64>(8).unwrap();
    let mut l = Layout::new();
    let _pad = l.add_bytes(8, 8).unwrap();
    let region = cfg.add_to(&mut l).unwrap();
    let seg = Segment::create_anonymous(Kind::RAW, l.size()).unwrap();
    assert!(
        spsc::Producer::attach(&seg, region).is_err(),
        "not initialised"
    );
    spsc::init(&seg, region, &cfg).unwrap();
    let mut tx = spsc::Producer::attach(&seg, region).unwrap();
    let mut rx = spsc::Consumer::attach(&seg, region).unwrap();
    // Same process: the role is ours already, so a second attach is allowed (the
    // role guards against other live processes, not against this one).
    assert!(rx.is_producer_alive() && tx.is_consumer_alive());
    tx.try_push(5u64).unwrap();
    assert_eq!(rx.try_pop::<u64>().unwrap(), 5);
    // Corrupt the tail: 1000 ahead of head in a ring of 8. The consumer's pops go
    // by the slot sequences, its `len` and a fresh attach read the tail.
    let tail: &AtomicU64 = seg.get(region.offset() + TAIL_OFFSET).unwrap();
    tail.store(1001, Ordering::Relaxed);
    assert!(matches!(rx.len(), Err(Error::Corrupt { .. })));
    assert!(matches!(
        spsc::Consumer::attach(&seg, region),
        Err(Error::Corrupt { .. })
    ));
    tail.store(1, Ordering::Relaxed);
    // Corrupt the next slot's sequence (slot 1: expected 2, published, or 2 - 8).
    let slot = spsc_slot_layout(8);
    let seq1 = region.offset() + HEADER_SIZE + slot.stride + slot.seq;
    let seq1: &AtomicU64 = seg.get(seq1).unwrap();
    seq1.store(77, Ordering::Relaxed);
    assert!(matches!(rx.try_pop::<u64>(), Err(Error::Corrupt { .. })));
    assert!(matches!(rx.peek(), Err(Error::Corrupt { .. })));
    assert!(matches!(rx.is_empty(), Err(Error::Corrupt { .. })));
    assert_eq!(rx.pop_slice(&mut [0u64; 4]), 0);
    // A published-looking sequence delivers the slot (its payload is plain bytes).
    seq1.store(2, Ordering::Relaxed);
    assert_eq!(rx.try_pop::<u64>().unwrap(), 0);
    drop(tx);
    assert!(!rx.is_producer_alive());
}

/// A producer that dies after publishing a slot's sequence but before moving `tail`:
/// the consumer gets the slot, `len` counts it, and a successor producer resumes after
/// it (nothing overwritten, nothing delivered twice).
#[test]
fn successor_producer_resumes_after_sequence_published_before_tail() {
    let cfg = RingConfig::spsc_of::<u64>(4).unwrap();
    let mut l = Layout::new();
    let region = cfg.add_to(&mut l).unwrap();
    let seg = Segment::create_anonymous(Kind::RAW, l.size()).unwrap();
    spsc::init(&seg, region, &cfg).unwrap();
    let mut rx = spsc::Consumer::attach(&seg, region).unwrap();
    let mut tx = spsc::Producer::attach(&seg, region).unwrap();
    tx.try_push(10u64).unwrap();
    tx.try_push(11u64).unwrap();
    drop(tx);
    // Roll the shared tail back by two, as if the pushes of 10 and 11 had stopped
    // between their sequence store and their tail store.
    let tail: &AtomicU64 = seg.get(region.offset() + TAIL_OFFSET).unwrap();
    assert_eq!(tail.load(Ordering::Relaxed), 2);
    tail.store(0, Ordering::Relaxed);
    assert_eq!(rx.len().unwrap(), 2);
    assert_eq!(rx.try_pop::<u64>().unwrap(), 10);
    // The consumer is now ahead of the shared tail; both stay usable.
    assert_eq!(rx.len().unwrap(), 1);
    let mut tx = spsc::Producer::attach(&seg, region).unwrap();
    assert_eq!(
        tail.load(Ordering::Relaxed),
        2,
        "the successor repaired tail"
    );
    assert_eq!(tx.free_slots().unwrap(), 3);
    tx.try_push(12u64).unwrap();
    let mut out = [0u64; 4];
    assert_eq!(rx.pop_slice(&mut out), 2);
    assert_eq!(&out[..2], &[11, 12]);
    assert!(rx.is_empty().unwrap());
    // The same with the consumer ahead at attach time.
    tx.try_push(13u64).unwrap();
    drop(tx);
    assert_eq!(rx.try_pop::<u64>().unwrap(), 13);
    tail.store(3, Ordering::Relaxed);
    let mut tx = spsc::Producer::attach(&seg, region).unwrap();
    assert_eq!(tail.load(Ordering::Relaxed), 4);
    tx.try_push(14u64).unwrap();
    assert_eq!(rx.try_pop::<u64>().unwrap(), 14);
}

#[test]
fn layout_version_and_size() {
    // Small slots: sequence then payload, never straddling a 64-byte line.
    for (size, stride) in [(8, 16), (16, 32), (24, 32), (32, 64), (56, 64)] {
        let l = spsc_slot_layout(size);
        assert_eq!((l.seq, l.payload, l.stride), (0, SPSC_SEQ_SIZE, stride));
    }
    // Larger: payload 64-byte aligned, its sequence just before it.
    for (size, stride) in [(64, 128), (72, 192), (1024, 1088), (65536, 65600)] {
        let l = spsc_slot_layout(size);
        assert_eq!((l.seq, l.payload, l.stride), (56, 64, stride));
    }
    let cfg = RingConfig::spsc(4, 8).unwrap();
    assert_eq!(cfg.size(), HEADER_SIZE + 4 * 16);
    let big = RingConfig::spsc(2, 1000).unwrap();
    assert_eq!(big.size(), HEADER_SIZE + 2 * 1088);
    // Zero-copy pointers of a large-slot ring are 64-byte aligned in the segment.
    let mut l = Layout::new();
    let region = big.add_to(&mut l).unwrap();
    let seg = Segment::create_anonymous(Kind::RAW, l.size()).unwrap();
    spsc::init(&seg, region, &big).unwrap();
    let mut tx = spsc::Producer::attach(&seg, region).unwrap();
    let mut rx = spsc::Consumer::attach(&seg, region).unwrap();
    for k in 0..5u64 {
        let mut w = tx.reserve().unwrap();
        assert_eq!(w.as_mut_ptr() as usize % 64, 0);
        w.write_at(1000 - 8, &k.to_ne_bytes());
        w.commit();
        let r = rx.peek().unwrap();
        assert_eq!(r.as_ptr() as usize % 64, 0);
        let mut b = [0u8; 8];
        r.read_at(1000 - 8, &mut b);
        assert_eq!(u64::from_ne_bytes(b), k);
        r.release();
    }
    let cfg = RingConfig::spsc(4, 8).unwrap();
    let mut l = Layout::new();
    let region = cfg.add_to(&mut l).unwrap();
    let seg = Segment::create_anonymous(Kind::RAW, l.size()).unwrap();
    spsc::init(&seg, region, &cfg).unwrap();
    let v: &AtomicU32 = seg.get(region.offset() + VERSION_OFFSET).unwrap();
    assert_eq!(v.load(Ordering::Relaxed), SPSC_VERSION);
    v.store(1, Ordering::Relaxed);
    assert!(matches!(
        spsc::Consumer::attach(&seg, region),
        Err(Error::Incompatible {
            what: "ring layout version",
            found: 1,
            ..
        })
    ));
}
