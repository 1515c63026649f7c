//! API tests of the byte-record ring: records, wrap-around with padding, fragments
//! flags, zero-copy, shared ends, corruption.
#![cfg(not(shmkit_loom))]
#![allow(clippy::unwrap_used)]

use shmkit_ring::{bytes, Error, RingConfig};
use shmkit_segment::{
    layout::{ByteRegion, Layout},
    Kind, Segment,
};

/// A byte ring of `capacity` bytes, initialised in a fresh anonymous segment.
fn ring_in_segment(capacity: usize) -> (Segment, ByteRegion) {
    let cfg = RingConfig::bytes(capacity).unwrap();
    let mut l = Layout::new();
    let region = cfg.add_to(&mut l).unwrap();
    let seg = Segment::create_anonymous(Kind::RAW, l.size()).unwrap();
    bytes::init(&seg, region, &cfg).unwrap();
    (seg, region)
}

/// The ring's shared `tail` word (tests move it back to simulate a dead producer).
fn tail_word(seg: &Segment, region: ByteRegion) -> &shmkit_segment::shim::atomic::AtomicU64 {
    seg.get(region.offset() + shmkit_ring::raw::TAIL_OFFSET)
        .unwrap()
}

#[test]
fn records_wrap_with_padding() {
    let (mut tx, mut rx) = bytes::new(&RingConfig::bytes(64).unwrap()).unwrap();
    assert_eq!(tx.max_record_len(), 24);
    assert!(matches!(
        tx.try_push(&[0; 25]),
        Err(Error::TooLarge { len: 25, max: 24 })
    ));
    assert!(matches!(rx.try_pop_vec(), Err(Error::Empty)));
    for round in 0..50u8 {
        let len = (round as usize * 7) % 25;
        let msg: Vec<u8> = (0..u8::try_from(len).unwrap()).map(|b| b ^ round).collect();
        tx.try_push_record(&msg, bytes::FIRST).unwrap();
        let (v, f) = rx.try_pop_vec().unwrap();
        assert_eq!((v, f), (msg, bytes::FIRST));
    }
    // Fill with maximal records until full: at least one always fits in a drained ring.
    let mut n = 0u8;
    while tx.try_push(&[n; 24]).is_ok() {
        n += 1;
    }
    assert!((1..=2).contains(&n));
    assert!(matches!(tx.try_push(&[0; 24]), Err(Error::Full(()))));
    let mut small = [0u8; 4];
    assert!(matches!(
        rx.try_pop(&mut small),
        Err(Error::BufferTooShort { needed: 24, len: 4 })
    ));
    let mut buf = [0u8; 24];
    for k in 0..n {
        assert_eq!(rx.try_pop(&mut buf).unwrap().len, 24);
        assert_eq!(buf, [k; 24]);
    }
    assert!(tx.try_push_record(b"x", bytes::PAD).is_err());
}

#[test]
fn zero_copy_reserve_and_peek() {
    let (mut tx, mut rx) = bytes::new(&RingConfig::bytes(128).unwrap()).unwrap();
    let mut w = tx.reserve(5, bytes::LAST).unwrap();
    w.write_at(0, b"ab");
    drop(w);
    assert!(rx.peek().is_err(), "uncommitted record is invisible");
    let mut w = tx.reserve(5, bytes::LAST).unwrap();
    // SAFETY: `as_mut_ptr` points at the 5 reserved bytes.
    unsafe { std::ptr::copy_nonoverlapping(b"abcde".as_ptr(), w.as_mut_ptr(), 5) };
    w.commit();
    let r = rx.peek().unwrap();
    assert_eq!((r.len, r.flags), (5, bytes::LAST));
    // SAFETY: a published record; the producer follows the protocol.
    assert_eq!(unsafe { r.as_slice() }, b"abcde");
    r.release();
    assert!(rx.peek().is_err());
}

#[test]
fn threads_stream_varying_sizes() {
    let (mut tx, mut rx) = bytes::new(&RingConfig::bytes(256).unwrap()).unwrap();
    const N: u32 = 100_000;
    let t = std::thread::spawn(move || {
        for i in 0..N {
            let len = (i as usize * 13) % 100;
            let mut msg = vec![(i % 251) as u8; len];
            if len >= 4 {
                msg[..4].copy_from_slice(&i.to_le_bytes());
            }
            while tx.try_push(&msg).is_err() {
                std::hint::spin_loop();
            }
        }
    });
    let mut buf = [0u8; 128];
    for i in 0..N {
        let r = loop {
            match rx.try_pop(&mut buf) {
                Ok(r) => break r,
                Err(Error::Empty) => std::hint::spin_loop(),
                Err(e) => panic!("{e}"),
            }
        };
        let len = (i as usize * 13) % 100;
        assert_eq!(r.len, len);
        if len >= 4 {
            assert_eq!(&buf[..4], &i.to_le_bytes());
        }
    }
    t.join().unwrap();
}

#[test]
fn shared_producers_never_interleave() {
    let (seg, region) = ring_in_segment(1024);
    let mut rx = bytes::Consumer::attach(&seg, region).unwrap();
    const N: u32 = 20_000;
    let ts: Vec<_> = (0..3u8)
        .map(|p| {
            let mut tx = bytes::Producer::attach_shared(&seg, region).unwrap();
            std::thread::spawn(move || {
                for i in 0..N {
                    let mut msg = vec![p; 8 + (i as usize % 40)];
                    msg[..4].copy_from_slice(&i.to_le_bytes());
                    while tx.try_push(&msg).is_err() {
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    let mut next = [0u32; 3];
    let mut buf = [0u8; 64];
    while next.iter().any(|&n| n < N) {
        match rx.try_pop(&mut buf) {
            Ok(r) => {
                let p = buf[r.len - 1] as usize;
                assert!(
                    buf[4..r.len].iter().all(|&b| b as usize == p),
                    "torn record"
                );
                assert_eq!(u32::from_le_bytes(buf[..4].try_into().unwrap()), next[p]);
                next[p] += 1;
            }
            Err(Error::Empty) => std::thread::yield_now(),
            Err(e) => panic!("{e}"),
        }
    }
    for t in ts {
        t.join().unwrap();
    }
}

#[test]
fn corrupt_headers_are_errors() {
    let (seg, region) = ring_in_segment(64);
    let mut tx = bytes::Producer::attach(&seg, region).unwrap();
    let mut rx = bytes::Consumer::attach(&seg, region).unwrap();
    tx.try_push(b"hi").unwrap();
    // Overwrite the record header with a length of 1000.
    let word: &shmkit_segment::shim::atomic::AtomicU64 = seg.get(region.offset() + 384).unwrap();
    word.store(
        1000 | (3 << 32),
        shmkit_segment::shim::atomic::Ordering::Relaxed,
    );
    assert!(matches!(rx.try_pop_vec(), Err(Error::Corrupt { .. })));
}

/// A valid header word (layout version 2: valid bit 63) for a record of `len`
/// payload bytes with `flags`.
fn header_like(len: u64, flags: u64) -> [u8; 8] {
    (len | (flags << 32) | (1 << 63)).to_ne_bytes()
}

#[test]
fn payload_that_looks_like_a_header_is_never_read_as_one() {
    let (mut tx, mut rx) = bytes::new(&RingConfig::bytes(64).unwrap()).unwrap();
    // Words that are valid headers at any position: a whole 8-byte record, a PAD that
    // reaches the end from offset 40, an empty record.
    let mut payload = Vec::new();
    payload.extend(header_like(8, 3));
    payload.extend(header_like(16, 0x8000));
    payload.extend(header_like(0, 3));
    let small = header_like(0, 1);
    // Sizes 32 and 8/16 bytes shift the positions every lap, so that the consumer's
    // next position keeps landing on stale payload words of earlier records.
    for round in 0..40usize {
        tx.try_push(&payload[..8 * (1 + round % 3)]).unwrap();
        assert_eq!(rx.try_pop_vec().unwrap().0, &payload[..8 * (1 + round % 3)]);
        assert!(
            matches!(rx.try_pop_vec(), Err(Error::Empty)),
            "round {round}"
        );
        let s = &small[..8 * (round % 2)];
        tx.try_push(s).unwrap();
        assert_eq!(rx.try_pop_vec().unwrap().0, s);
        assert!(
            matches!(rx.try_pop_vec(), Err(Error::Empty)),
            "round {round}"
        );
    }
}

/// A producer "killed" between publishing a record's header and storing `tail`
/// (simulated by putting the old `tail` back): the consumer gets the record, and a
/// successor producer resumes after it — whether the consumer took it already (and
/// is ahead of `tail`) or not, with or without a PAD in front of the record.
#[test]
fn successor_producer_resumes_after_a_record_published_without_tail() {
    use shmkit_segment::shim::atomic::Ordering;
    for consumed_first in [false, true] {
        for fill in 0..8usize {
            let (seg, region) = ring_in_segment(64);
            let tail = tail_word(&seg, region);
            let mut rx = bytes::Consumer::attach(&seg, region).unwrap();
            let mut tx = bytes::Producer::attach(&seg, region).unwrap();
            // Move the positions around so the cut record sometimes wraps (PAD).
            for k in 0..fill {
                tx.try_push(&vec![7u8; k * 3]).unwrap();
                rx.try_pop_vec().unwrap();
            }
            let before = tail.load(Ordering::Relaxed);
            tx.try_push(b"cut short").unwrap();
            tail.store(before, Ordering::Relaxed);
            drop(tx);
            if consumed_first {
                assert_eq!(rx.try_pop_vec().unwrap().0, b"cut short");
            }
            let mut tx = bytes::Producer::attach(&seg, region).unwrap();
            assert_ne!(
                tail.load(Ordering::Relaxed),
                before,
                "tail repaired on attach"
            );
            tx.try_push(b"next").unwrap();
            if !consumed_first {
                assert_eq!(rx.try_pop_vec().unwrap().0, b"cut short");
            }
            assert_eq!(rx.try_pop_vec().unwrap().0, b"next");
            assert!(matches!(rx.try_pop_vec(), Err(Error::Empty)));
            for k in 0..20u8 {
                tx.try_push(&[k; 13]).unwrap();
                assert_eq!(rx.try_pop_vec().unwrap().0, [k; 13]);
            }
        }
    }
}

/// As above with serialized handles: one "dies" between header and `tail`; another,
/// whose cached position is that `tail`, resumes after the record once told to
/// `resync` (a pipe does so whenever it took its message lock).
#[test]
fn serialized_producer_resyncs_after_a_dead_handle() {
    use shmkit_segment::shim::atomic::Ordering;
    let (seg, region) = ring_in_segment(128);
    let tail = tail_word(&seg, region);
    let mut rx = bytes::Consumer::attach(&seg, region).unwrap();
    // SAFETY: both handles are used by this thread only, one operation at a time.
    let mut a = unsafe { bytes::Producer::attach_serialized(&seg, region) }.unwrap();
    // SAFETY: as above.
    let mut b = unsafe { bytes::Producer::attach_serialized(&seg, region) }.unwrap();
    for round in 0..12u8 {
        a.try_push(&[round; 5]).unwrap();
        let before = tail.load(Ordering::Relaxed);
        b.try_push(&[round; 11]).unwrap();
        tail.store(before, Ordering::Relaxed);
        if round % 2 == 1 {
            assert_eq!(rx.try_pop_vec().unwrap().0, [round; 5]);
            assert_eq!(rx.try_pop_vec().unwrap().0, [round; 11]);
        }
        a.resync();
        a.try_push(&[round; 3]).unwrap();
        if round % 2 == 0 {
            assert_eq!(rx.try_pop_vec().unwrap().0, [round; 5]);
            assert_eq!(rx.try_pop_vec().unwrap().0, [round; 11]);
        }
        assert_eq!(rx.try_pop_vec().unwrap().0, [round; 3]);
        assert!(matches!(rx.try_pop_vec(), Err(Error::Empty)));
    }
}
