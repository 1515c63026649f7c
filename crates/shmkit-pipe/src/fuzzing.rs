//! Fuzzing entry points (used by `fuzz/fuzz_targets/pipe_recv.rs` and replayed by
//! `tests/fuzz_corpus.rs`). Not part of the API.

use crate::error::{Error, Result};
use crate::frame::{self, RecvHooks, Sink, Woke};
use shmkit_ring::bytes::Consumer;
use shmkit_ring::RingConfig;
use shmkit_segment::layout::Layout;
use shmkit_segment::shim::atomic::{AtomicU64, AtomicU8, Ordering};
use shmkit_segment::{Kind, Segment};

/// Hooks that never block: an empty ring means the peer is gone.
struct NoWait;

impl RecvHooks for NoWait {
    fn wait_data(&mut self, _ready: &mut dyn FnMut() -> bool) -> Result<Woke> {
        Ok(Woke::Closed)
    }
    fn released(&mut self) {}
}

/// Outcome counts of one run (for tests that check seeds do what they should).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Messages delivered (with their lengths).
    pub messages: Vec<usize>,
    /// The error that ended the run (`"eof"`, `"corrupt"`, …).
    pub end: String,
}

/// A ring whose header indices and data area are taken from `data` (see
/// [`recv_input`]), with a serialized consumer attached; `Err` ends the run.
fn ring_of(data: &[u8], out: &mut Outcome) -> Option<(Segment, Consumer)> {
    let b0 = data.first().copied().unwrap_or(0);
    let cap = 64usize << (b0 % 5);
    let cfg = RingConfig::bytes(cap).ok()?;
    let mut l = Layout::new();
    let region = cfg.add_to(&mut l).ok()?;
    let Ok(seg) = Segment::create_anonymous(Kind::from_tag(*b"FZPR"), l.size()) else {
        out.end = "segment".into();
        return None;
    };
    shmkit_ring::bytes::init(&seg, region, &cfg).ok()?;
    let word = |i: usize| -> u64 {
        let mut b = [0u8; 8];
        for (k, x) in b.iter_mut().enumerate() {
            *x = data.get(i + k).copied().unwrap_or(0);
        }
        u64::from_le_bytes(b)
    };
    let at = |off: usize| seg.get::<AtomicU64>(region.offset() + off);
    if let (Ok(t), Ok(h)) = (at(128), at(256)) {
        // Relaxed: single-threaded setup before any handle attaches.
        t.store(word(2), Ordering::Relaxed);
        h.store(word(10), Ordering::Relaxed);
    }
    let base = region.offset() + shmkit_ring::raw::HEADER_SIZE;
    if let Ok(bytes) = seg.get_slice::<AtomicU8>(base, cap) {
        for (dst, src) in bytes.iter().zip(data.iter().skip(18)) {
            // Relaxed: as above.
            dst.store(*src, Ordering::Relaxed);
        }
    }
    // Serialized mode, as pipes use it: indices are loaded (and checked) on first use.
    // SAFETY: this is the only handle of the ring, used by this thread only.
    match unsafe { Consumer::attach_serialized(&seg, region) } {
        Ok(c) => Some((seg, c)),
        Err(e) => {
            out.end = format!("attach: {e}");
            None
        }
    }
}

fn end_of(e: &Error) -> String {
    match e {
        Error::Eof => "eof".into(),
        Error::Corrupt { .. } => "corrupt".into(),
        Error::MessageTooLong { .. } => "too long".into(),
        e => e.to_string(),
    }
}

/// Feeds `data` to a pipe receiver as the contents of its ring.
///
/// Format: byte 0 picks the capacity (`64 << (b % 5)` bytes) and the receive call
/// (bits 4..6: `recv_bytes`, `recv_bytes_max(b[1])`, `recv_bytes_into` a `b[1]`-byte
/// buffer); bytes 2..10 and 10..18 are the ring's `tail` and `head` (little-endian);
/// the rest is copied into the ring's data area. Then messages are received until an
/// error. With `recv_bytes`, the same ring contents are then received once more
/// with the zero-copy `recv_bytes_with` path, which must deliver the same messages
/// (bytes too) and end the same way. Errors are expected; a panic, hang or crash is
/// a bug.
pub fn recv_input(data: &[u8]) -> Outcome {
    let mut out = Outcome::default();
    let b0 = data.first().copied().unwrap_or(0);
    let b1 = usize::from(data.get(1).copied().unwrap_or(0));
    let mode = (b0 >> 4) % 3;
    let Some((_seg, mut cons)) = ring_of(data, &mut out) else {
        return out;
    };
    let mut got: Vec<Vec<u8>> = Vec::new();
    for _ in 0..256 {
        let mut buf = vec![0u8; b1];
        let r = match mode {
            0 => {
                let mut s = Sink::Vec(Vec::new());
                let r = frame::recv_message(&mut cons, None, &mut s, &mut NoWait);
                if let (Ok(_), Sink::Vec(v)) = (&r, s) {
                    got.push(v);
                }
                r
            }
            1 => {
                let mut s = Sink::Vec(Vec::new());
                frame::recv_message(&mut cons, Some(b1), &mut s, &mut NoWait)
            }
            _ => {
                let mut s = Sink::Buf {
                    buf: &mut buf,
                    overflow: None,
                };
                frame::recv_message(&mut cons, None, &mut s, &mut NoWait)
            }
        };
        match r {
            Ok(n) => out.messages.push(n),
            Err(e) => {
                out.end = end_of(&e);
                break;
            }
        }
    }
    if out.end.is_empty() {
        out.end = "limit".into();
    }
    if mode == 0 {
        check_in_place(data, &out, &got);
    }
    out
}

/// Receives the ring made from `data` again with `recv_with`; it must deliver `got`
/// and end as `want` did.
///
/// # Panics
/// When it does not (a bug the fuzzer reports).
fn check_in_place(data: &[u8], want: &Outcome, got: &[Vec<u8>]) {
    let mut out = Outcome::default();
    let Some((_seg, mut cons)) = ring_of(data, &mut out) else {
        return;
    };
    let mut buf = Vec::new();
    let mut msgs: Vec<Vec<u8>> = Vec::new();
    for _ in 0..256 {
        // SAFETY: this thread is the only user of the ring's memory.
        let r = unsafe { frame::recv_with(&mut cons, &mut buf, &mut NoWait, <[u8]>::to_vec) };
        match r {
            Ok(m) => msgs.push(m),
            Err(e) => {
                out.end = end_of(&e);
                break;
            }
        }
    }
    if out.end.is_empty() {
        out.end = "limit".into();
    }
    assert_eq!(out.end, want.end, "recv_with ended differently");
    assert!(msgs == got, "recv_with delivered other messages");
}
