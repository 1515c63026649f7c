//! loom models of the framing protocol (`shmkit_pipe::frame`) over a tiny byte ring:
//! fragments stream through a ring too small for the message, with the receiver and
//! sender blocking on event counts (a lost wake-up is a loom deadlock), and a
//! message cut short by a dead sender is never delivered.
//!
//! Run: `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg shmkit_loom" \
//!   CARGO_TARGET_DIR=target/h-pipe-loom cargo test -p shmkit-pipe --test loom --release`.
#![cfg(shmkit_loom)]
#![allow(clippy::unwrap_used)]

use loom::sync::Arc;
use shmkit_pipe::frame::{self, RecvHooks, SendHooks, Sink, Woke};
use shmkit_pipe::{Error, Result};
use shmkit_ring::bytes::{self, FIRST};
use shmkit_ring::RingConfig;
use shmkit_segment::shim::atomic::{AtomicU32, Ordering};
use shmkit_segment::shim::time::Deadline;
use shmkit_sync::futex::EventCount;

/// What the pipe's control block provides: two event counts and "peer closed".
#[derive(Default)]
struct Ctl {
    data: EventCount,
    space: EventCount,
    closed: AtomicU32,
}

struct Hooks(Arc<Ctl>);

impl RecvHooks for Hooks {
    fn wait_data(&mut self, ready: &mut dyn FnMut() -> bool) -> Result<Woke> {
        loop {
            let key = self.0.data.prepare();
            if ready() {
                return Ok(Woke::Data);
            }
            // Acquire: pairs with the sender's Release store of `closed`.
            if self.0.closed.load(Ordering::Acquire) == 1 {
                return Ok(Woke::Closed);
            }
            self.0.data.wait(key, Deadline::NEVER);
        }
    }
    fn released(&mut self) {
        self.0.space.notify_all();
    }
}

impl SendHooks for Hooks {
    fn wait_space(&mut self, _len: usize, room: &mut dyn FnMut() -> bool) -> Result<()> {
        loop {
            let key = self.0.space.prepare();
            if room() {
                return Ok(());
            }
            self.0.space.wait(key, Deadline::NEVER);
        }
    }
    fn committed(&mut self) {
        self.0.data.notify_all();
    }
}

fn close(ctl: &Ctl) {
    // Release: pairs with the receiver's Acquire load; everything sent before is seen.
    ctl.closed.store(1, Ordering::Release);
    ctl.data.notify_all();
}

/// A 40-byte message through a 64-byte ring (records of at most 24 bytes: three
/// fragments, never more than two in the ring) arrives whole, then EOF.
#[test]
fn fragments_arrive_whole_then_eof() {
    loom::model(|| {
        let (mut tx, mut rx) = bytes::new(&RingConfig::bytes(64).unwrap()).unwrap();
        let ctl = Arc::new(Ctl::default());
        let c2 = Arc::clone(&ctl);
        let sender = loom::thread::spawn(move || {
            let msg: Vec<u8> = (0..40).collect();
            frame::send_message(&mut tx, &msg, &mut Hooks(Arc::clone(&c2))).unwrap();
            close(&c2);
        });
        let mut sink = Sink::Vec(Vec::new());
        let n = frame::recv_message(&mut rx, None, &mut sink, &mut Hooks(Arc::clone(&ctl)));
        assert_eq!(n.unwrap(), 40);
        match &sink {
            Sink::Vec(v) => assert!(v.iter().copied().eq(0..40u8)),
            Sink::Buf { .. } => unreachable!(),
        }
        let mut sink = Sink::Vec(Vec::new());
        let r = frame::recv_message(&mut rx, None, &mut sink, &mut Hooks(Arc::clone(&ctl)));
        assert!(matches!(r, Err(Error::Eof)));
        sender.join().unwrap();
    });
}

/// A sender that dies after its first fragment (then the end closes): the receiver
/// gets EOF, never a partial message — also when a whole message came before.
#[test]
fn a_message_cut_short_is_discarded_at_eof() {
    loom::model(|| {
        let (mut tx, mut rx) = bytes::new(&RingConfig::bytes(64).unwrap()).unwrap();
        let ctl = Arc::new(Ctl::default());
        let c2 = Arc::clone(&ctl);
        let sender = loom::thread::spawn(move || {
            frame::send_message(&mut tx, b"ok", &mut Hooks(Arc::clone(&c2))).unwrap();
            let mut first = 100u64.to_le_bytes().to_vec();
            first.extend_from_slice(&[7u8; 8]);
            tx.try_push_record(&first, FIRST).unwrap();
            c2.data.notify_all();
            close(&c2); // "died" mid-message
        });
        let mut hooks = Hooks(Arc::clone(&ctl));
        let mut sink = Sink::Vec(Vec::new());
        assert_eq!(
            frame::recv_message(&mut rx, None, &mut sink, &mut hooks).unwrap(),
            2
        );
        let mut sink = Sink::Vec(Vec::new());
        let r = frame::recv_message(&mut rx, None, &mut sink, &mut hooks);
        assert!(matches!(r, Err(Error::Eof)), "{r:?}");
        sender.join().unwrap();
    });
}

/// The zero-copy calls through the same tiny ring: a whole message written in its
/// reserved record (`frame::send_with`) and handed over as that record
/// (`frame::recv_with`), a 40-byte one in three fragments (assembled), then EOF.
#[test]
fn recv_with_gets_whole_and_fragmented_messages_then_eof() {
    loom::model(|| {
        let (mut tx, mut rx) = bytes::new(&RingConfig::bytes(64).unwrap()).unwrap();
        let ctl = Arc::new(Ctl::default());
        let c2 = Arc::clone(&ctl);
        let sender = loom::thread::spawn(move || {
            let mut h = Hooks(Arc::clone(&c2));
            // SAFETY: the ring's consumer follows the protocol.
            unsafe { frame::send_with(&mut tx, 16, &mut h, |b| b.fill(9)) }.unwrap();
            let msg: Vec<u8> = (0..40).collect();
            frame::send_message(&mut tx, &msg, &mut h).unwrap();
            close(&c2);
        });
        let mut hooks = Hooks(Arc::clone(&ctl));
        let mut buf = Vec::new();
        // SAFETY: the ring's producer follows the protocol.
        let r = unsafe { frame::recv_with(&mut rx, &mut buf, &mut hooks, <[u8]>::to_vec) };
        assert_eq!(r.unwrap(), vec![9u8; 16]);
        // SAFETY: as above.
        let r = unsafe { frame::recv_with(&mut rx, &mut buf, &mut hooks, |m| m.to_vec()) };
        assert!(r.unwrap().iter().copied().eq(0..40u8));
        // SAFETY: as above.
        let r = unsafe { frame::recv_with(&mut rx, &mut buf, &mut hooks, |_| ()) };
        assert!(matches!(r, Err(Error::Eof)), "{r:?}");
        sender.join().unwrap();
    });
}
