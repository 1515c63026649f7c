//! API tests in one process (threads): send/recv of every kind, bad arguments,
//! EOF on drop, fragments, poll, wait, busy-poll, tokens.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use shmkit_pipe::{wait, Connection, Error, Pipe, Receiver, Sender};
use std::thread;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(30);

#[test]
fn duplex_send_recv_both_ways() {
    let (a, b) = Pipe::duplex().unwrap();
    a.send(&"hello").unwrap();
    b.send(&vec![1u32, 2, 3]).unwrap();
    assert_eq!(b.recv::<String>().unwrap(), "hello");
    assert_eq!(a.recv::<Vec<u32>>().unwrap(), vec![1, 2, 3]);
    a.send_bytes(b"").unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"");
}

#[test]
fn threads_exchange_many_messages_in_order() {
    let (a, b) = Pipe::builder().capacity(4096).duplex().unwrap();
    let t = thread::spawn(move || {
        for i in 0..5000u32 {
            let v: u32 = b.recv().unwrap();
            assert_eq!(v, i);
            b.send(&(v * 2)).unwrap();
        }
    });
    for i in 0..5000u32 {
        a.send(&i).unwrap();
        assert_eq!(a.recv::<u32>().unwrap(), i * 2);
    }
    t.join().unwrap();
}

#[test]
fn one_way_streams_and_ends_with_eof() {
    let (rx, tx): (Receiver, Sender) = Pipe::builder().capacity(1024).one_way().unwrap();
    let t = thread::spawn(move || {
        for i in 0..2000u64 {
            tx.send(&i).unwrap();
        }
        tx.close();
    });
    for i in 0..2000u64 {
        assert_eq!(rx.recv::<u64>().unwrap(), i);
    }
    assert!(matches!(rx.recv::<u64>(), Err(Error::Eof)));
    assert!(matches!(rx.recv_bytes(), Err(Error::Eof)));
    t.join().unwrap();
}

#[test]
fn send_to_a_closed_peer_fails() {
    let (a, b) = Pipe::duplex().unwrap();
    drop(b);
    assert!(matches!(a.send(&1u8), Err(Error::Closed)));
    assert!(matches!(a.recv_bytes(), Err(Error::Eof)));
    // A sender blocked on a full ring is released by the close.
    let (a, b) = Pipe::builder().capacity(64).duplex().unwrap();
    let t = thread::spawn(move || {
        let big = vec![0u8; 100_000];
        a.send_bytes(&big)
    });
    thread::sleep(Duration::from_millis(50));
    drop(b);
    assert!(matches!(t.join().unwrap(), Err(Error::Closed)));
}

#[test]
fn clones_keep_the_end_open() {
    let (a, b) = Pipe::duplex().unwrap();
    let b2 = b.clone();
    drop(b);
    a.send(&5u8).unwrap();
    assert_eq!(b2.recv::<u8>().unwrap(), 5);
    b2.send(&6u8).unwrap();
    b2.close();
    assert_eq!(
        a.recv::<u8>().unwrap(),
        6,
        "sent before the close: still delivered"
    );
    assert!(matches!(a.recv::<u8>(), Err(Error::Eof)));
}

#[test]
fn send_bytes_range_checks_its_range() {
    let (a, b) = Pipe::duplex().unwrap();
    let buf = b"0123456789";
    a.send_bytes_range(buf, 2, 3).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"234");
    a.send_bytes_range(buf, 10, 0).unwrap();
    assert_eq!(b.recv_bytes().unwrap(), b"");
    for (off, size) in [(11, 0), (0, 11), (5, 6), (usize::MAX, 2), (1, usize::MAX)] {
        match a.send_bytes_range(buf, off, size) {
            Err(Error::OutOfRange {
                offset,
                size: s,
                len,
            }) => {
                assert_eq!((offset, s, len), (off, size, 10));
            }
            other => panic!("({off}, {size}): {other:?}"),
        }
    }
    assert!(!b.poll().unwrap(), "nothing was sent by the failed calls");
}

#[test]
fn recv_bytes_max_leaves_a_long_message_queued() {
    let (a, b) = Pipe::builder().capacity(256).duplex().unwrap();
    a.send_bytes(b"0123456789").unwrap();
    match b.recv_bytes_max(9) {
        Err(Error::MessageTooLong { len, max }) => assert_eq!((len, max), (10, 9)),
        other => panic!("{other:?}"),
    }
    assert_eq!(b.recv_bytes_max(10).unwrap(), b"0123456789");
    // A fragmented one too (256-byte ring: records up to 120 bytes).
    let big: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    let t = thread::spawn(move || {
        a.send_bytes(&big).unwrap();
        a.send_bytes(b"next").unwrap();
        a
    });
    match b.recv_bytes_max(999) {
        Err(Error::MessageTooLong { len, max }) => assert_eq!((len, max), (1000, 999)),
        other => panic!("{other:?}"),
    }
    let m = b.recv_bytes().unwrap();
    assert_eq!(m.len(), 1000);
    assert!(m.iter().enumerate().all(|(i, &x)| x == i as u8));
    assert_eq!(b.recv_bytes_max(4).unwrap(), b"next");
    t.join().unwrap();
}

#[test]
fn recv_bytes_into_fits_overflows_and_checks_offset() {
    let (a, b) = Pipe::builder().capacity(256).duplex().unwrap();
    let mut buf = [0u8; 8];
    a.send_bytes(b"abc").unwrap();
    assert_eq!(b.recv_bytes_into(&mut buf, 5).unwrap(), 3);
    assert_eq!(&buf, b"\0\0\0\0\0abc");
    a.send_bytes(b"abcd").unwrap();
    match b.recv_bytes_into(&mut buf, 5) {
        Err(Error::BufferTooShort(m)) => assert_eq!(m, b"abcd"),
        other => panic!("{other:?}"),
    }
    assert!(!b.poll().unwrap(), "the too-long message was consumed");
    match b.recv_bytes_into(&mut buf, 9) {
        Err(Error::BadOffset { offset, len }) => assert_eq!((offset, len), (9, 8)),
        other => panic!("{other:?}"),
    }
    // Offset == len is a zero-byte window: an empty message fits.
    a.send_bytes(b"").unwrap();
    assert_eq!(b.recv_bytes_into(&mut buf, 8).unwrap(), 0);
    // Fragmented, fits and does not fit.
    let big = vec![9u8; 700];
    let mut large = vec![0u8; 800];
    let t = thread::spawn(move || {
        a.send_bytes(&big).unwrap();
        a.send_bytes(&big).unwrap();
        a
    });
    assert_eq!(b.recv_bytes_into(&mut large, 100).unwrap(), 700);
    assert!(large[100..].iter().all(|&x| x == 9) && large[..100].iter().all(|&x| x == 0));
    match b.recv_bytes_into(&mut large, 101) {
        Err(Error::BufferTooShort(m)) => assert_eq!(m, vec![9u8; 700]),
        other => panic!("{other:?}"),
    }
    t.join().unwrap();
}

#[test]
fn recv_of_the_wrong_type_is_a_codec_error() {
    let (a, b) = Pipe::duplex().unwrap();
    a.send_bytes(&[0xff; 3]).unwrap();
    assert!(matches!(b.recv::<String>(), Err(Error::Codec(_))));
}

#[test]
fn a_64_mib_message_through_a_64_kib_ring_arrives_intact() {
    let (a, b) = Pipe::builder().capacity(64 << 10).duplex().unwrap();
    let msg: Vec<u8> = (0..64u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let expect = msg.clone();
    let t = thread::spawn(move || a.send_bytes(&msg).map(|()| a));
    let got = b.recv_bytes().unwrap();
    let _a = t.join().unwrap().unwrap();
    assert_eq!(got.len(), expect.len());
    assert!(got == expect, "the message differs");
}

#[test]
fn poll_and_poll_timeout() {
    let (a, b) = Pipe::duplex().unwrap();
    assert!(!b.poll().unwrap());
    let t0 = Instant::now();
    assert!(!b.poll_timeout(Some(Duration::from_millis(50))).unwrap());
    assert!(t0.elapsed() >= Duration::from_millis(50));
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        a.send(&1u8).unwrap();
        a
    });
    assert!(b.poll_timeout(None).unwrap());
    assert!(b.poll().unwrap(), "poll does not consume");
    assert_eq!(b.recv::<u8>().unwrap(), 1);
    drop(t.join().unwrap());
    assert!(b.poll_timeout(Some(LONG)).unwrap(), "EOF is readable");
}

#[test]
fn wait_returns_the_ready_ends() {
    let (a1, b1) = Pipe::duplex().unwrap();
    let (a2, b2) = Pipe::duplex().unwrap();
    let (a3, b3) = Pipe::duplex().unwrap();
    assert!(wait(&[&b1, &b2, &b3], Some(Duration::from_millis(20)))
        .unwrap()
        .is_empty());
    a2.send(&2u8).unwrap();
    let r = wait(&[&b1, &b2, &b3], Some(LONG)).unwrap();
    assert_eq!(r.len(), 1);
    assert!(std::ptr::eq(r[0], &b2));
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        drop(a3);
        a1
    });
    let r = wait(&[&b1, &b3], None).unwrap();
    assert_eq!(r.len(), 1);
    assert!(std::ptr::eq(r[0], &b3), "EOF counts as ready");
    assert!(matches!(b3.recv_bytes(), Err(Error::Eof)));
    let a1 = t.join().unwrap();
    a1.send(&1u8).unwrap();
    let r = wait(&[&b1, &b2], None).unwrap();
    assert_eq!(r.len(), 2);
}

#[test]
fn busy_poll_mode_round_trips() {
    let (a, b) = Pipe::builder().busy_poll(true).duplex().unwrap();
    assert!(a.busy_poll() && b.busy_poll());
    let t = thread::spawn(move || {
        for _ in 0..2000 {
            let v: u64 = b.recv().unwrap();
            b.send(&(v + 1)).unwrap();
        }
    });
    let mut v = 0u64;
    for _ in 0..2000 {
        a.send(&v).unwrap();
        v = a.recv().unwrap();
    }
    assert_eq!(v, 2000);
    t.join().unwrap();
    a.set_busy_poll(false);
    assert!(!a.busy_poll());
}

#[test]
fn tokens_rebuild_an_end_in_this_process() {
    let (a, b) = Pipe::duplex().unwrap();
    let bytes = postcard::to_allocvec(&b).unwrap();
    let b2: Connection = postcard::from_bytes(&bytes).unwrap();
    drop(b);
    a.send(&"via token").unwrap();
    assert_eq!(b2.recv::<String>().unwrap(), "via token");
    let (rx, tx) = Pipe::one_way().unwrap();
    // A Receiver token does not open as a Sender.
    assert!(Sender::from_token(&rx.token().unwrap()).is_err());
    let tx2 = Sender::from_token(&tx.token().unwrap()).unwrap();
    drop(tx);
    tx2.send(&3u8).unwrap();
    drop(tx2);
    assert_eq!(rx.recv::<u8>().unwrap(), 3);
    assert!(matches!(rx.recv::<u8>(), Err(Error::Eof)));
    // A closed end cannot be reopened (while the segment itself is still reachable).
    let (c, d) = Pipe::duplex().unwrap();
    let t = c.token().unwrap();
    drop(c);
    assert!(matches!(Connection::from_token(&t), Err(Error::Closed)));
    drop((a, d));
}

#[test]
fn named_pipes_open_by_name() {
    let name = format!("pipe-test-{}", std::process::id());
    let (a, b) = Pipe::builder().name(&name).duplex().unwrap();
    let b2 = Connection::open(&name, 1).unwrap();
    drop(b);
    a.send(&7u8).unwrap();
    assert_eq!(b2.recv::<u8>().unwrap(), 7);
    assert!(Connection::open(&name, 2).is_err());
}

#[test]
fn bad_capacity_is_refused() {
    assert!(matches!(
        Pipe::builder().capacity(1000).duplex(),
        Err(Error::Config { .. })
    ));
    assert!(matches!(
        Pipe::builder().capacity(32).duplex(),
        Err(Error::Config { .. })
    ));
}

#[test]
fn two_receiver_threads_never_tear_messages() {
    let (rx, tx) = Pipe::builder().capacity(512).one_way().unwrap();
    let rx2 = rx.clone();
    let consumer = |rx: Receiver| {
        thread::spawn(move || {
            let mut n = 0;
            loop {
                match rx.recv_bytes() {
                    Ok(m) => {
                        let len = m.len();
                        assert!(m.iter().all(|&x| x == (len % 251) as u8), "torn");
                        n += 1;
                    }
                    Err(Error::Eof) => return n,
                    Err(e) => panic!("{e}"),
                }
            }
        })
    };
    let (c1, c2) = (consumer(rx), consumer(rx2));
    for i in 0..400usize {
        let len = (i * 37) % 3000;
        tx.send_bytes(&vec![(len % 251) as u8; len]).unwrap();
    }
    drop(tx);
    assert_eq!(c1.join().unwrap() + c2.join().unwrap(), 400);
}
