//! Pipes between real processes: fork and spawn, EOF after close and after SIGKILL,
//! a sender killed mid-message, two receiving processes on one end.
//!
//! Each test forks; run them one test per process (`cargo nextest`).
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use shmkit_pipe::{Connection, EndToken, Error, Pipe, Receiver};
use shmkit_process::Process;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(60);

fn join_ok(p: &Process) {
    assert!(p.join_timeout(LONG).unwrap(), "child did not finish");
    assert_eq!(p.exitcode(), Some(0));
}

/// A message of `len` bytes, each `len % 251` (so a torn one shows).
fn tagged(len: usize) -> Vec<u8> {
    vec![(len % 251) as u8; len]
}

/// Sends `count` `tagged` messages of lengths `(i * step) % modulo`; returns the
/// bytes sent.
fn send_tagged(tx: &shmkit_pipe::Sender, count: usize, step: usize, modulo: usize) -> u64 {
    let mut sent = 0u64;
    for i in 0..count {
        let len = (i * step) % modulo;
        tx.send_bytes(&tagged(len)).unwrap();
        sent += len as u64;
    }
    sent
}

/// Checks that the messages received here (`here`: count, bytes) and those `child`
/// reported on `report_rx` add up to the `count` messages of `sent` bytes sent, then
/// that `child` exited cleanly.
fn all_arrived(here: (u32, u64), sent: u64, count: u32, report_rx: &Receiver, child: &Process) {
    let (n1, b1) = here;
    let (n2, b2): (u32, u64) = report_rx.recv().unwrap();
    assert_eq!(n1 + n2, count);
    assert_eq!(b1 + b2, sent);
    join_ok(child);
}

/// Checks that `m` is a whole `tagged` message; returns its length.
fn untorn(m: &[u8]) -> u64 {
    let tag = (m.len() % 251) as u8;
    assert!(
        m.iter().all(|&x| x == tag),
        "torn message of {} bytes",
        m.len()
    );
    m.len() as u64
}

/// Calls `next` (a receive returning the message's length) until EOF; returns the
/// number of messages and of bytes received.
fn receive_until_eof(mut next: impl FnMut() -> Result<u64, Error>) -> (u32, u64) {
    let (mut n, mut bytes) = (0u32, 0u64);
    loop {
        match next() {
            Ok(len) => {
                n += 1;
                bytes += len;
            }
            Err(Error::Eof) => return (n, bytes),
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn duplex_greeting_with_a_forked_child() {
    let (parent_end, child_end) = Pipe::duplex().unwrap();
    let mut p = Process::new(move || {
        child_end.send(&"Welcome to Beijing!".to_string()).unwrap();
        let reply: String = child_end.recv().unwrap();
        assert_eq!(reply, "I'm coming!");
        child_end.close();
    });
    p.start().unwrap();
    assert_eq!(parent_end.recv::<String>().unwrap(), "Welcome to Beijing!");
    parent_end.send(&"I'm coming!").unwrap();
    join_ok(&p);
    // The child's end was closed there, and the parent's copy went with the closure.
    assert!(matches!(parent_end.recv::<String>(), Err(Error::Eof)));
}

fn spawned_child(token: EndToken) {
    let conn = Connection::from_token(&token).unwrap();
    let n: u64 = conn.recv().unwrap();
    conn.send(&(n * 3)).unwrap();
    let big = conn.recv_bytes().unwrap();
    conn.send_bytes(&big).unwrap();
}

#[test]
fn duplex_with_a_spawned_child_via_token() {
    let (a, b) = Pipe::builder().capacity(4096).duplex().unwrap();
    let mut p = Process::spawn_fn(spawned_child, b.token().unwrap());
    p.start().unwrap();
    a.send(&14u64).unwrap();
    assert_eq!(a.recv::<u64>().unwrap(), 42);
    let big: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    a.send_bytes(&big).unwrap();
    assert_eq!(a.recv_bytes().unwrap(), big);
    join_ok(&p);
    drop(b);
    assert!(matches!(a.recv_bytes(), Err(Error::Eof)));
}

#[test]
fn closing_in_one_process_leaves_the_end_open_in_the_others() {
    // The seed program: the child closes the end it does not use (its inherited
    // copy), the parent closes its copy of the child's end right after starting it.
    let (left, right) = Pipe::duplex().unwrap();
    let (left_c, right_c) = (left.clone(), right.clone());
    let mut p = Process::new(move || {
        left_c.close();
        for i in 0..10u32 {
            assert_eq!(right_c.recv::<u32>().unwrap(), i);
        }
        assert!(matches!(right_c.recv::<u32>(), Err(Error::Eof)));
    });
    p.start().unwrap();
    right.close(); // the parent's own handle: the child still holds the end
    for i in 0..10u32 {
        left.send(&i).unwrap();
    }
    left.close(); // closed here and in the child: the child sees EOF
    join_ok(&p);
}

#[test]
fn an_end_the_child_never_closes_stays_open_until_it_exits() {
    let (a, b) = Pipe::duplex().unwrap();
    let (go_rx, go_tx) = Pipe::one_way().unwrap();
    // The child inherits `b` (not captured: it cannot close it) and holds it while it
    // runs, as an inherited file descriptor would be held.
    let mut p = Process::new(move || {
        go_rx.recv::<()>().unwrap();
    });
    p.start().unwrap();
    drop(b);
    assert!(!a.poll_timeout(Some(Duration::from_millis(300))).unwrap());
    go_tx.send(&()).unwrap();
    join_ok(&p);
    let t = Instant::now();
    assert!(matches!(a.recv_bytes(), Err(Error::Eof)));
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn recv_returns_eof_soon_after_the_peer_is_sigkilled() {
    let (a, b) = Pipe::duplex().unwrap();
    let mut p = Process::new(move || {
        b.send(&1u8).unwrap();
        std::thread::sleep(Duration::from_secs(600));
    });
    p.start().unwrap();
    assert_eq!(a.recv::<u8>().unwrap(), 1);
    // Not before the kill: the child still holds its end.
    assert!(!a.poll_timeout(Some(Duration::from_millis(300))).unwrap());
    p.kill().unwrap();
    let t = Instant::now();
    let r = a.recv::<u8>();
    let took = t.elapsed();
    assert!(matches!(r, Err(Error::Eof)), "{r:?}");
    eprintln!("EOF {took:?} after SIGKILL");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(matches!(a.send(&1u8), Err(Error::Closed)));
    assert!(p.join_timeout(LONG).unwrap());
}

/// Forks a child that sends `b"whole"` then a message far bigger than `rx`'s ring
/// through `tx`, and SIGKILLs it in the middle of that second message.
fn kill_sender_mid_message(rx: &Receiver, tx: shmkit_pipe::Sender) {
    let (ack_rx, ack_tx) = Pipe::one_way().unwrap();
    let mut p = Process::new(move || {
        tx.send_bytes(b"whole").unwrap();
        ack_tx.send(&()).unwrap();
        // Far bigger than the ring: blocks after a few fragments.
        tx.send_bytes(&vec![1u8; 1 << 20]).unwrap();
    });
    p.start().unwrap();
    ack_rx.recv::<()>().unwrap();
    assert_eq!(rx.recv_bytes().unwrap(), b"whole");
    // A fragment of the big message is in the ring: the child is inside that
    // message for good (it cannot finish without a reader), so kill it now.
    assert!(rx.poll_timeout(Some(LONG)).unwrap());
    p.kill().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
}

#[test]
fn a_sender_killed_mid_message_leaves_no_partial_message() {
    let (rx, tx) = Pipe::builder().capacity(4096).one_way().unwrap();
    kill_sender_mid_message(&rx, tx);
    let t = Instant::now();
    assert!(matches!(rx.recv_bytes(), Err(Error::Eof)));
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn two_receiving_processes_never_see_torn_messages() {
    let (rx, tx) = Pipe::builder().capacity(1024).one_way().unwrap();
    let (report_rx, report_tx) = Pipe::one_way().unwrap();
    // As in the seed program, each consumer closes its inherited sending end.
    let consumer = |rx: Receiver, report: shmkit_pipe::Sender, tx: shmkit_pipe::Sender| {
        move || {
            tx.close();
            let got = receive_until_eof(|| rx.recv_bytes().map(|m| untorn(&m)));
            report.send(&got).unwrap();
        }
    };
    let mut c1 = Process::new(consumer(rx.clone(), report_tx.clone(), tx.clone()));
    let mut c2 = Process::new(consumer(rx.clone(), report_tx.clone(), tx.clone()));
    c1.start().unwrap();
    c2.start().unwrap();
    drop((rx, report_tx));
    let sent = send_tagged(&tx, 600, 997, 5000);
    drop(tx);
    let (n1, b1): (u32, u64) = report_rx.recv().unwrap();
    let (n2, b2): (u32, u64) = report_rx.recv().unwrap();
    assert_eq!(n1 + n2, 600);
    assert_eq!(b1 + b2, sent);
    join_ok(&c1);
    join_ok(&c2);
    assert!(matches!(report_rx.recv::<(u32, u64)>(), Err(Error::Eof)));
}

/// A receiving end biased to the parent (it received first, so it skips the message
/// lock) stays tear-free once a forked child receives on it too, and two handles of
/// the sending end in one process (a clone, used from two threads) take turns
/// safely: each newcomer revokes the bias; nobody shares it.
#[test]
fn a_biased_end_is_shared_safely_after_fork_and_clone() {
    let (rx, tx) = Pipe::builder().capacity(1024).one_way().unwrap();
    let (report_rx, report_tx) = Pipe::one_way().unwrap();
    tx.send_bytes(&[7u8; 7]).unwrap();
    assert_eq!(rx.recv_bytes().unwrap(), vec![7u8; 7]);
    let tx2 = tx.clone();
    let receive = |rx: &Receiver| receive_until_eof(|| rx.recv_bytes().map(|m| untorn(&m)));
    let (crx, ctx, creport) = (rx.clone(), tx.clone(), report_tx.clone());
    let mut child = Process::new(move || {
        ctx.close();
        creport.send(&receive(&crx)).unwrap();
    });
    child.start().unwrap();
    drop(report_tx);
    let sender = std::thread::spawn(move || {
        let t2 = std::thread::spawn(move || send_tagged(&tx2, 300, 1013, 3000));
        let sent = send_tagged(&tx, 300, 997, 3000);
        drop(tx);
        sent + t2.join().unwrap()
    });
    let here = receive(&rx);
    all_arrived(here, sender.join().unwrap(), 600, &report_rx, &child);
}

/// The sending side's bias holder (a child, the first to send) is SIGKILLed in the
/// middle of a message, inside its lock-free fast path: another sender takes the
/// side over (the dead holder's `busy` flag does not block it) and its message
/// arrives whole, the torn one never.
#[test]
fn a_bias_holder_killed_mid_message_is_taken_over() {
    let (rx, tx) = Pipe::builder().capacity(4096).one_way().unwrap();
    let tx2 = tx.clone();
    kill_sender_mid_message(&rx, tx);
    let sender = std::thread::spawn(move || tx2.send_bytes(&[2u8; 10_000]));
    let m = rx.recv_bytes().unwrap();
    assert_eq!(m, vec![2u8; 10_000]);
    sender.join().unwrap().unwrap();
}

/// The receiving side's bias holder (a child, the first to receive) is SIGKILLed
/// inside its `recv_bytes_with` closure: the message it was reading was not consumed,
/// so the parent takes the side over (the dead holder's `busy` flag does not block
/// it) and receives that message whole, then the next one.
#[test]
fn a_receiver_killed_inside_recv_bytes_with_leaves_the_message() {
    let (rx, tx) = Pipe::builder().capacity(4096).one_way().unwrap();
    let (ack_rx, ack_tx) = Pipe::one_way().unwrap();
    let crx = rx.clone();
    let mut p = Process::new(move || {
        // SAFETY: only shmkit's pipe code writes this pipe's memory.
        let r = unsafe {
            crx.recv_bytes_with(|m| {
                ack_tx.send(&m.len()).unwrap();
                std::thread::sleep(Duration::from_secs(600));
            })
        };
        r.unwrap();
    });
    p.start().unwrap();
    tx.send_bytes(&[3u8; 1000]).unwrap();
    tx.send_bytes(&[4u8; 10]).unwrap();
    assert_eq!(ack_rx.recv::<usize>().unwrap(), 1000);
    p.kill().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    // SAFETY: as above.
    let first = unsafe { rx.recv_bytes_with(<[u8]>::to_vec) }.unwrap();
    assert_eq!(first, vec![3u8; 1000]);
    assert_eq!(rx.recv_bytes().unwrap(), vec![4u8; 10]);
}

/// Two processes share one receiving end, one receiving in place and one copying:
/// every message arrives once, whole.
#[test]
fn zero_copy_and_copying_receivers_share_an_end_across_processes() {
    let (rx, tx) = Pipe::builder().capacity(1024).one_way().unwrap();
    let (report_rx, report_tx) = Pipe::one_way().unwrap();
    let (crx, ctx, creport) = (rx.clone(), tx.clone(), report_tx.clone());
    let mut child = Process::new(move || {
        ctx.close();
        // SAFETY: only shmkit's pipe code writes this pipe's memory.
        let got = receive_until_eof(|| unsafe { crx.recv_bytes_with(untorn) });
        creport.send(&got).unwrap();
    });
    child.start().unwrap();
    drop(report_tx);
    let sender = std::thread::spawn(move || send_tagged(&tx, 600, 997, 5000));
    let here = receive_until_eof(|| rx.recv_bytes().map(|m| untorn(&m)));
    all_arrived(here, sender.join().unwrap(), 600, &report_rx, &child);
}

/// The sending side's bias holder (a child) is SIGKILLed inside its
/// `send_bytes_with` closure, with its record reserved and half written: nothing
/// of it is ever delivered, and another sender takes the side over.
#[test]
fn a_sender_killed_inside_send_bytes_with_publishes_nothing() {
    let (rx, tx) = Pipe::builder().capacity(4096).one_way().unwrap();
    let (ack_rx, ack_tx) = Pipe::one_way().unwrap();
    let tx2 = tx.clone();
    let mut p = Process::new(move || {
        tx.send_bytes(b"whole").unwrap();
        // SAFETY: only shmkit's pipe code touches this pipe's memory.
        let r = unsafe {
            tx.send_bytes_with(1000, |b| {
                b[..500].fill(9);
                ack_tx.send(&()).unwrap();
                std::thread::sleep(Duration::from_secs(600));
            })
        };
        r.unwrap();
    });
    p.start().unwrap();
    ack_rx.recv::<()>().unwrap();
    p.kill().unwrap();
    assert!(p.join_timeout(LONG).unwrap());
    assert_eq!(rx.recv_bytes().unwrap(), b"whole");
    tx2.send_bytes(&[2u8; 100]).unwrap();
    assert_eq!(rx.recv_bytes().unwrap(), vec![2u8; 100]);
    drop(tx2);
    assert!(matches!(rx.recv_bytes(), Err(Error::Eof)));
}
