//! The zero-copy calls in one process (threads). `recv_bytes_with`: whole messages
//! handed over in place, fragmented ones assembled in a reused buffer, EOF, a
//! panicking closure, a message left by `recv_bytes_max`, sharing one end.
//! `send_bytes_with`: in place or through a buffer, a panicking closure, a closed peer.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use shmkit_pipe::{Connection, Error, Pipe, Receiver, Sender};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread;

/// `rx.recv_bytes_with(f)`.
fn with<R>(rx: &Receiver, f: impl FnOnce(&[u8]) -> R) -> Result<R, Error> {
    // SAFETY: only shmkit's pipe code writes the pipes of these tests.
    unsafe { rx.recv_bytes_with(f) }
}

/// Message `i`: `len` bytes that depend on `i` and their position.
fn msg(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| (k * 31 + i * 7 + len) as u8).collect()
}

#[test]
fn whole_messages_are_handed_over_in_place() {
    let (rx, tx): (Receiver, Sender) = Pipe::builder().capacity(4096).one_way().unwrap();
    tx.send_bytes(&msg(0, 16)).unwrap();
    tx.send_bytes(&msg(1, 16)).unwrap();
    tx.send_bytes(b"").unwrap();
    let (p0, m0) = with(&rx, |m| (m.as_ptr() as usize, m.to_vec())).unwrap();
    let (p1, m1) = with(&rx, |m| (m.as_ptr() as usize, m.to_vec())).unwrap();
    assert_eq!((m0, m1), (msg(0, 16), msg(1, 16)));
    // Consecutive records of the ring: 8 header bytes + 16 payload bytes apart.
    assert_eq!(p1.wrapping_sub(p0), 24, "not read in place");
    assert_eq!(p0 % 8, 0);
    assert_eq!(with(&rx, <[u8]>::len).unwrap(), 0);
}

#[test]
fn fragmented_messages_are_assembled_in_a_reused_buffer() {
    // 256-byte ring: records up to 120 bytes; these messages are fragmented.
    let (rx, tx): (Receiver, Sender) = Pipe::builder().capacity(256).one_way().unwrap();
    let t = thread::spawn(move || {
        for i in 0..3 {
            tx.send_bytes(&msg(i, 100_000)).unwrap();
        }
        tx.send_bytes(&msg(3, 50)).unwrap();
    });
    let mut at = Vec::new();
    for i in 0..3 {
        let (p, same) = with(&rx, |m| (m.as_ptr() as usize, m == msg(i, 100_000))).unwrap();
        assert!(same, "message {i} differs");
        at.push(p);
    }
    assert!(
        at.windows(2).all(|w| w[0] == w[1]),
        "buffer not reused: {at:?}"
    );
    assert_eq!(with(&rx, <[u8]>::to_vec).unwrap(), msg(3, 50));
    t.join().unwrap();
    assert!(matches!(with(&rx, |_| ()), Err(Error::Eof)));
}

#[test]
fn eof_after_everything_was_received() {
    let (rx, tx): (Receiver, Sender) = Pipe::builder().capacity(1024).one_way().unwrap();
    let t = thread::spawn(move || {
        for i in 0..2000usize {
            tx.send_bytes(&msg(i, i % 700)).unwrap();
        }
    });
    for i in 0..2000usize {
        assert!(with(&rx, |m| m == msg(i, i % 700)).unwrap(), "message {i}");
    }
    t.join().unwrap();
    assert!(matches!(with(&rx, |_| ()), Err(Error::Eof)));
    assert!(matches!(rx.recv_bytes(), Err(Error::Eof)));
}

#[test]
fn a_panicking_closure_consumes_the_message_and_frees_the_end() {
    let (rx, tx): (Receiver, Sender) = Pipe::builder().capacity(256).one_way().unwrap();
    tx.send_bytes(b"first").unwrap();
    tx.send_bytes(b"second").unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| with(&rx, |_| panic!("boom"))));
    assert!(r.is_err());
    // The end is usable again, by this handle and by another one (which must take
    // the receiving side over from this one).
    let rx2 = rx.clone();
    assert_eq!(with(&rx2, <[u8]>::to_vec).unwrap(), b"second");
    // Both records were consumed: records of the largest size fit again.
    tx.send_bytes(&[5u8; 120]).unwrap();
    assert_eq!(with(&rx, <[u8]>::to_vec).unwrap(), vec![5u8; 120]);
    tx.send_bytes(&[6u8; 120]).unwrap();
    assert_eq!(rx.recv_bytes().unwrap(), vec![6u8; 120]);
}

#[test]
fn a_message_left_by_recv_bytes_max_is_received_in_place() {
    let (rx, tx): (Receiver, Sender) = Pipe::one_way().unwrap();
    tx.send_bytes(&msg(9, 300)).unwrap();
    assert!(matches!(
        rx.recv_bytes_max(10),
        Err(Error::MessageTooLong { len: 300, max: 10 })
    ));
    assert_eq!(with(&rx, <[u8]>::to_vec).unwrap(), msg(9, 300));
}

#[test]
fn the_closure_may_send_on_the_same_connection() {
    let (a, b): (Connection, Connection) = Pipe::duplex().unwrap();
    let echo = thread::spawn(move || {
        for _ in 0..100 {
            // SAFETY: only shmkit's pipe code writes this pipe's memory.
            unsafe { b.recv_bytes_with(|m| b.send_bytes(m)) }
                .unwrap()
                .unwrap();
        }
    });
    for i in 0..100 {
        a.send_bytes(&msg(i, i * 10)).unwrap();
        assert_eq!(a.recv_bytes().unwrap(), msg(i, i * 10));
    }
    echo.join().unwrap();
}

#[test]
fn two_receiver_threads_never_tear_messages() {
    let (rx, tx): (Receiver, Sender) = Pipe::builder().capacity(512).one_way().unwrap();
    let rx2 = rx.clone();
    let consumer = |rx: Receiver, in_place: bool| {
        thread::spawn(move || {
            let mut n = 0;
            let check = |m: &[u8]| {
                let len = m.len();
                assert!(m.iter().all(|&x| x == (len % 251) as u8), "torn");
            };
            loop {
                let r = if in_place {
                    with(&rx, check)
                } else {
                    rx.recv_bytes().map(|m| check(&m))
                };
                match r {
                    Ok(()) => n += 1,
                    Err(Error::Eof) => return n,
                    Err(e) => panic!("{e}"),
                }
            }
        })
    };
    let (c1, c2) = (consumer(rx, true), consumer(rx2, false));
    for i in 0..400usize {
        let len = (i * 37) % 3000;
        tx.send_bytes(&vec![(len % 251) as u8; len]).unwrap();
    }
    drop(tx);
    assert_eq!(c1.join().unwrap() + c2.join().unwrap(), 400);
}

/// `tx.send_bytes_with(len, f)`.
fn send_with<R>(tx: &Sender, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Result<R, Error> {
    // SAFETY: only shmkit's pipe code touches the pipes of these tests.
    unsafe { tx.send_bytes_with(len, f) }
}

#[test]
fn send_bytes_with_writes_in_place_or_through_a_buffer() {
    // 256-byte ring: records up to 120 bytes; longer messages go in fragments.
    let (rx, tx): (Receiver, Sender) = Pipe::builder().capacity(256).one_way().unwrap();
    let t = thread::spawn(move || {
        for i in 0..50usize {
            let len = [0, 1, 120, 121, 5000][i % 5];
            let want = msg(i, len);
            let r = send_with(&tx, len, |b| {
                assert_eq!(b.len(), len);
                b.copy_from_slice(&want);
                i
            });
            assert_eq!(r.unwrap(), i);
        }
    });
    for i in 0..50usize {
        let len = [0, 1, 120, 121, 5000][i % 5];
        assert_eq!(rx.recv_bytes().unwrap(), msg(i, len), "message {i}");
    }
    t.join().unwrap();
    assert!(matches!(rx.recv_bytes(), Err(Error::Eof)));
}

#[test]
fn a_panicking_send_closure_sends_nothing() {
    let (rx, tx): (Receiver, Sender) = Pipe::builder().capacity(256).one_way().unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| {
        send_with(&tx, 64, |b| {
            b.fill(1);
            panic!("boom")
        })
    }));
    assert!(r.is_err());
    assert!(!rx.poll().unwrap(), "a message was published");
    // The side is free again, for this handle and another one.
    send_with(&tx, 64, |b| b.fill(2)).unwrap();
    tx.clone().send_bytes(&[3u8; 100]).unwrap();
    assert_eq!(rx.recv_bytes().unwrap(), vec![2u8; 64]);
    assert_eq!(rx.recv_bytes().unwrap(), vec![3u8; 100]);
}

#[test]
fn send_bytes_with_to_a_closed_peer_does_not_call_the_closure() {
    let (rx, tx): (Receiver, Sender) = Pipe::one_way().unwrap();
    drop(rx);
    let mut called = false;
    let r = send_with(&tx, 10, |_| called = true);
    assert!(matches!(r, Err(Error::Closed)), "{r:?}");
    assert!(!called);
}
