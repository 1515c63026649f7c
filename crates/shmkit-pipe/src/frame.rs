//! The framing protocol: messages as sequences of byte-ring records.
//!
//! A message of at most [`Producer::max_record_len`] bytes is one record flagged
//! [`WHOLE`] (`FIRST|LAST`) whose payload is the message. A longer message is
//! streamed as fragments: a [`FIRST`] record whose payload starts with the message's
//! total length (8 bytes, little-endian) followed by the first bytes, then records
//! with no flag, then one flagged [`LAST`]. Each fragment is at most a quarter of the
//! ring (so sender and receiver overlap), and the sender only ever needs room for one
//! fragment.
//!
//! The receiver assembles a message and hands it out only when its `LAST` fragment
//! arrived and the lengths add up (delivered whole or not at all):
//!
//! ```text
//! state        record        action
//! idle         WHOLE         deliver
//! idle         FIRST         start assembling (check the declared total)
//! idle         none / LAST   orphan (its head went to a receiver that died): drop it
//! assembling   none          append (more than the total: Corrupt)
//! assembling   LAST          append; lengths must match the total; deliver
//! assembling   WHOLE/FIRST   the sender died mid-message and another took over:
//!                            discard the partial message, start over
//! any          ring empty, peer closed everywhere: discard any partial message, Eof
//! ```
//!
//! The functions here know nothing about processes or waiting: the caller passes
//! [`RecvHooks`] / [`SendHooks`] that block (futexes, spinning, or a loom model).

use crate::error::{corrupt, Error, Result};
use shmkit_ring::bytes::{Consumer, Producer, ReadRecord, FIRST, LAST, WHOLE};

/// The largest message a pipe carries (1 TiB).
pub const MAX_MESSAGE_LEN: u64 = 1 << 40;

/// Bytes of the total-length prefix of a `FIRST` fragment.
const LEN_PREFIX: usize = 8;

/// What a receiver's wait ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woke {
    /// Something may have been published: look again.
    Data,
    /// The peer end is closed everywhere: look once more, then it is EOF.
    Closed,
}

/// How a receiver blocks.
pub trait RecvHooks {
    /// Waits until `ready()` may hold, or the peer closed, or the deadline passed
    /// (`Err(Timeout)`). `ready` re-checks the ring.
    ///
    /// # Errors
    /// [`Error::Timeout`] (or any error to abort the receive).
    fn wait_data(&mut self, ready: &mut dyn FnMut() -> bool) -> Result<Woke>;
    /// A record was consumed (wake a sender waiting for room).
    fn released(&mut self);
}

/// How a sender blocks.
pub trait SendHooks {
    /// Waits until the ring has room for a record of `len` payload bytes; `room()`
    /// checks that exactly (a trial reservation that publishes nothing).
    ///
    /// # Errors
    /// [`Error::Closed`] when the peer closed everywhere; [`Error::Timeout`].
    fn wait_space(&mut self, len: usize, room: &mut dyn FnMut() -> bool) -> Result<()>;
    /// A record was published (wake a receiver).
    fn committed(&mut self);
}

/// Fragment payload size for a ring with records of at most `max_rec` bytes.
pub fn fragment_len(max_rec: usize) -> usize {
    // Records are at most half the ring; fragments a quarter (at least 16 bytes).
    (max_rec / 2).max(LEN_PREFIX * 2).min(max_rec)
}

/// Sends `msg` as one message.
///
/// # Errors
/// [`Error::TooLarge`] beyond [`MAX_MESSAGE_LEN`]; what the hooks return; ring errors.
pub fn send_message(prod: &mut Producer, msg: &[u8], hooks: &mut dyn SendHooks) -> Result<()> {
    let total = msg.len() as u64;
    if total > MAX_MESSAGE_LEN {
        return Err(Error::TooLarge {
            len: total,
            max: MAX_MESSAGE_LEN,
        });
    }
    let max_rec = prod.max_record_len();
    if msg.len() <= max_rec {
        return put(prod, WHOLE, &[], msg, hooks);
    }
    let frag = fragment_len(max_rec);
    let first = frag - LEN_PREFIX;
    put(prod, FIRST, &total.to_le_bytes(), &msg[..first], hooks)?;
    let mut off = first;
    while off < msg.len() {
        let n = frag.min(msg.len() - off);
        let flags = if off + n == msg.len() { LAST } else { 0 };
        put(prod, flags, &[], &msg[off..off + n], hooks)?;
        off += n;
    }
    Ok(())
}

/// Sends one message of `len` bytes that `f` writes: in place, into a reserved ring
/// record, when it fits one record ([`Producer::max_record_len`]); otherwise into a
/// new zeroed buffer that is then streamed as fragments (a copy). Returns what `f`
/// returns.
///
/// `f` gets the record's bytes as they are (whatever the ring held there before:
/// the caller must write all of them). The record is published only after `f`
/// returns; if `f` unwinds nothing is published. Under loom the record is written
/// from a local buffer (loom cannot hand out a slice of its cells).
///
/// # Safety
/// No other process may read or write the reserved record while `f` writes it:
/// true of every process that follows the ring protocol (the consumer reads only
/// published records); a faulty one would be a data race.
///
/// # Errors
/// [`Error::TooLarge`] beyond [`MAX_MESSAGE_LEN`]; [`Error::Config`] if a buffer for
/// a fragmented message cannot be allocated; what the hooks return; ring errors. `f`
/// runs at most once; after an error its result is dropped.
pub unsafe fn send_with<R>(
    prod: &mut Producer,
    len: usize,
    hooks: &mut dyn SendHooks,
    f: impl FnOnce(&mut [u8]) -> R,
) -> Result<R> {
    if len as u64 > MAX_MESSAGE_LEN {
        return Err(Error::TooLarge {
            len: len as u64,
            max: MAX_MESSAGE_LEN,
        });
    }
    if len > prod.max_record_len() {
        let mut v = Vec::new();
        v.try_reserve_exact(len).map_err(|_| Error::Config {
            what: "cannot allocate a buffer for the message",
        })?;
        v.resize(len, 0);
        let r = f(&mut v);
        send_message(prod, &v, hooks)?;
        return Ok(r);
    }
    loop {
        match prod.reserve(len, WHOLE) {
            Ok(mut w) => {
                #[cfg(not(shmkit_loom))]
                let r = {
                    let p = w.as_mut_ptr();
                    // SAFETY: `as_mut_ptr` bounds-checked the `len` reserved bytes,
                    // which nothing published covers until `commit` below; no other
                    // access meanwhile is the caller's contract.
                    f(unsafe { std::slice::from_raw_parts_mut(p, len) })
                };
                #[cfg(shmkit_loom)]
                let r = {
                    let mut v = vec![0u8; len];
                    let r = f(&mut v);
                    w.write_at(0, &v);
                    r
                };
                w.commit();
                hooks.committed();
                return Ok(r);
            }
            Err(shmkit_ring::Error::Full(())) => {}
            Err(e) => return Err(e.into()),
        }
        let mut room = || prod.reserve(len, WHOLE).is_ok();
        hooks.wait_space(len, &mut room)?;
    }
}

/// Publishes one record made of `head` then `body`, waiting for room.
fn put(
    prod: &mut Producer,
    flags: u16,
    head: &[u8],
    body: &[u8],
    hooks: &mut dyn SendHooks,
) -> Result<()> {
    let len = head.len() + body.len();
    loop {
        match prod.reserve(len, flags) {
            Ok(mut w) => {
                w.write_at(0, head);
                w.write_at(head.len(), body);
                w.commit();
                hooks.committed();
                return Ok(());
            }
            Err(shmkit_ring::Error::Full(())) => {}
            Err(e) => return Err(e.into()),
        }
        let mut room = || prod.reserve(len, flags).is_ok();
        hooks.wait_space(len, &mut room)?;
    }
}

/// Where a received message goes.
#[derive(Debug)]
pub enum Sink<'a> {
    /// A new vector.
    Vec(Vec<u8>),
    /// The caller's buffer; a message that does not fit is collected in `overflow`.
    Buf {
        /// Destination.
        buf: &'a mut [u8],
        /// The whole message when it did not fit `buf`.
        overflow: Option<Vec<u8>>,
    },
}

impl Sink<'_> {
    /// Prepares for a message of `total` bytes (forgetting any partial one).
    fn start(&mut self, total: usize, cap_hint: usize) -> Result<()> {
        let reserve = |v: &mut Vec<u8>| {
            v.clear();
            // Untrusted total: reserve at most a few rings' worth up front; the rest
            // grows as bytes actually arrive.
            v.try_reserve_exact(total.min(cap_hint))
                .map_err(|_| corrupt("message length too large to allocate"))
        };
        match self {
            Sink::Vec(v) => reserve(v),
            Sink::Buf { buf, overflow } => {
                if total > buf.len() {
                    let mut v = overflow.take().unwrap_or_default();
                    reserve(&mut v)?;
                    *overflow = Some(v);
                } else {
                    *overflow = None;
                }
                Ok(())
            }
        }
    }

    /// Appends `n` payload bytes of `rec` (from payload offset `from`) at `at`.
    fn write(&mut self, at: usize, total: usize, rec: &ReadRecord<'_>, from: usize, n: usize) {
        let v = match self {
            Sink::Vec(v) => v,
            Sink::Buf {
                overflow: Some(v), ..
            } => v,
            Sink::Buf { buf, .. } => {
                rec.read_at(from, &mut buf[at..at + n]);
                return;
            }
        };
        debug_assert_eq!(v.len(), at);
        if v.capacity() - at < n {
            // Beyond what `start` reserved (it trusts the declared total only so
            // far): grow geometrically, but never past the declared total, so a
            // message that arrives whole ends in one exactly sized buffer.
            let want = at.max(n).min(total.saturating_sub(at)).max(n);
            let _ = v.try_reserve_exact(want);
        }
        rec.append_to(from, n, v);
    }
}

/// Receives one whole message into `sink`; returns its length.
///
/// With `max = Some(m)`, a message longer than `m` is not consumed:
/// [`Error::MessageTooLong`] and it stays first in the ring.
///
/// # Errors
/// [`Error::Eof`]; [`Error::MessageTooLong`]; [`Error::Corrupt`]; what the hooks return.
pub fn recv_message(
    cons: &mut Consumer,
    max: Option<usize>,
    sink: &mut Sink<'_>,
    hooks: &mut dyn RecvHooks,
) -> Result<usize> {
    let cap_hint = cons.config().capacity().saturating_mul(4);
    // (total, bytes so far) of the message being assembled.
    let mut got: Option<(usize, usize)> = None;
    let mut closed = false;
    loop {
        match cons.peek() {
            Ok(rec) => {
                if let Some(r) = step(rec, &mut got, max, sink, cap_hint, hooks) {
                    return r;
                }
                continue;
            }
            Err(shmkit_ring::Error::Empty) => {}
            Err(e) => return Err(e.into()),
        }
        if closed {
            // Closed, looked again after that, still empty: EOF. A partial message
            // (its sender died mid-way) is discarded.
            return Err(Error::Eof);
        }
        let mut ready = || !matches!(cons.peek(), Err(shmkit_ring::Error::Empty));
        if hooks.wait_data(&mut ready)? == Woke::Closed {
            closed = true;
        }
    }
}

/// Receives one whole message and hands it to `f`: in place, as the payload of its
/// ring record, when it travelled in one record ([`WHOLE`]); otherwise assembled in
/// `buf` (cleared first; its capacity is reused). Returns what `f` returns.
///
/// The record stays in the ring while `f` runs and is consumed when `f` returns (or
/// unwinds: a panicking `f` consumes the message too). Same framing rules, EOF and
/// errors as [`recv_message`] without a limit. Under loom a whole message is copied
/// into `buf` first (loom cannot hand out a slice of its cells).
///
/// # Safety
/// No process may write the bytes of a published record while `f` reads them: true
/// of every process that follows the ring protocol (the producer reuses ring bytes
/// only after the consumer released them); a faulty one would be a data race.
///
/// # Errors
/// [`Error::Eof`]; [`Error::Corrupt`]; what the hooks return.
pub unsafe fn recv_with<R>(
    cons: &mut Consumer,
    buf: &mut Vec<u8>,
    hooks: &mut dyn RecvHooks,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R> {
    let cap_hint = cons.config().capacity().saturating_mul(4);
    // (total, bytes so far) of the message being assembled.
    let mut got: Option<(usize, usize)> = None;
    let mut closed = false;
    let mut sink = Sink::Vec(std::mem::take(buf));
    let put_back = |sink: Sink<'_>, buf: &mut Vec<u8>| {
        if let Sink::Vec(v) = sink {
            *buf = v;
        }
    };
    loop {
        match cons.peek() {
            // A whole message (also one that interrupts a partial message, whose
            // sender died mid-way: that one is discarded, as in `step`).
            Ok(rec) if rec.flags & WHOLE == WHOLE => {
                put_back(sink, buf);
                // SAFETY: forwarded from the caller.
                return Ok(unsafe { in_place(rec, buf, hooks, f) });
            }
            Ok(rec) => {
                if let Some(r) = step(rec, &mut got, None, &mut sink, cap_hint, hooks) {
                    put_back(sink, buf);
                    // `step` assembled exactly `n` bytes into `buf`.
                    return r.and_then(|n| {
                        buf.get(..n)
                            .map(f)
                            .ok_or_else(|| corrupt("assembled message shorter than declared"))
                    });
                }
                continue;
            }
            Err(shmkit_ring::Error::Empty) => {}
            Err(e) => {
                put_back(sink, buf);
                return Err(e.into());
            }
        }
        if closed {
            // As in `recv_message`: EOF, a partial message is discarded.
            put_back(sink, buf);
            return Err(Error::Eof);
        }
        let mut ready = || !matches!(cons.peek(), Err(shmkit_ring::Error::Empty));
        match hooks.wait_data(&mut ready) {
            Ok(Woke::Closed) => closed = true,
            Ok(Woke::Data) => {}
            Err(e) => {
                put_back(sink, buf);
                return Err(e);
            }
        }
    }
}

/// Consumes `rec` (and tells the hooks) when dropped: after `f` returned or unwound.
struct Held<'a, 'h> {
    rec: Option<ReadRecord<'a>>,
    hooks: &'h mut dyn RecvHooks,
}

impl Drop for Held<'_, '_> {
    fn drop(&mut self) {
        if let Some(rec) = self.rec.take() {
            rec.release();
            self.hooks.released();
        }
    }
}

/// Hands the payload of the whole-message record `rec` to `f`, then consumes it.
///
/// # Safety
/// As [`recv_with`].
unsafe fn in_place<R>(
    rec: ReadRecord<'_>,
    buf: &mut Vec<u8>,
    hooks: &mut dyn RecvHooks,
    f: impl FnOnce(&[u8]) -> R,
) -> R {
    let held = Held {
        rec: Some(rec),
        hooks,
    };
    let rec = held
        .rec
        .as_ref()
        .expect("set just above; taken only on drop");
    #[cfg(not(shmkit_loom))]
    let r = {
        let _ = buf;
        // SAFETY: the record is validated and published, and stays in the ring (not
        // released) until `held` drops after `f`; no writer meanwhile is the
        // caller's contract.
        f(unsafe { rec.as_slice() })
    };
    #[cfg(shmkit_loom)]
    let r = {
        buf.clear();
        rec.append_to(0, rec.len, buf);
        f(buf)
    };
    drop(held);
    r
}

/// Handles one record; `Some` ends the receive.
fn step(
    rec: ReadRecord<'_>,
    got: &mut Option<(usize, usize)>,
    max: Option<usize>,
    sink: &mut Sink<'_>,
    cap_hint: usize,
    hooks: &mut dyn RecvHooks,
) -> Option<Result<usize>> {
    let kind = rec.flags & WHOLE;
    let fail = |rec: ReadRecord<'_>, hooks: &mut dyn RecvHooks, what| {
        rec.release();
        hooks.released();
        Some(Err(corrupt(what)))
    };
    if kind & FIRST != 0 {
        let (total, skip) = if kind == WHOLE {
            (rec.len as u64, 0)
        } else {
            if rec.len < LEN_PREFIX {
                return fail(rec, hooks, "first fragment shorter than its length prefix");
            }
            let mut b = [0u8; LEN_PREFIX];
            rec.read_at(0, &mut b);
            (u64::from_le_bytes(b), LEN_PREFIX)
        };
        let n = rec.len - skip;
        let bad =
            total > MAX_MESSAGE_LEN || (n as u64) > total || (kind == FIRST && (n as u64) == total);
        let total = match usize::try_from(total) {
            Ok(t) if !bad => t,
            _ => return fail(rec, hooks, "message length out of range"),
        };
        if let Some(m) = max {
            if total > m {
                // Not released: the message stays first in the ring.
                *got = None;
                return Some(Err(Error::MessageTooLong {
                    len: total as u64,
                    max: m,
                }));
            }
        }
        if let Err(e) = sink.start(total, cap_hint) {
            *got = None;
            return Some(Err(e));
        }
        sink.write(0, total, &rec, skip, n);
        rec.release();
        hooks.released();
        if kind == WHOLE {
            return Some(Ok(total));
        }
        *got = Some((total, n));
        return None;
    }
    let Some((total, filled)) = *got else {
        // An orphan fragment: the receiver that took its message's start died.
        rec.release();
        hooks.released();
        return None;
    };
    let n = rec.len;
    if n > total - filled || (kind == LAST && filled + n != total) {
        *got = None;
        return fail(rec, hooks, "fragments do not add up to the declared length");
    }
    sink.write(filled, total, &rec, 0, n);
    rec.release();
    hooks.released();
    if kind == LAST {
        return Some(Ok(total));
    }
    *got = Some((total, filled + n));
    None
}
