//! Messages between the parent and a worker, and their fragmentation over byte rings.
//!
//! Task (parent → worker): `[id u64][code: CodeRef, postcard][argument bytes]`; the
//! id [`STOP`] asks the worker to exit. Result (worker → parent):
//! `[id u64][status u8][run time u32 µs][payload]`: status [`OK`] with the encoded result, or a
//! failure status with a UTF-8 message; the id [`INIT_FAILED`] reports a failed
//! initializer. A message longer than a ring record travels as fragments flagged
//! `FIRST` … `LAST` (the rings' own fragment flags).

use shmkit_ring::bytes::{Consumer, Producer, FIRST, LAST};
use std::collections::VecDeque;

/// Task id asking the worker to exit.
pub(crate) const STOP: u64 = u64::MAX;
/// Result id reporting that the initializer failed.
pub(crate) const INIT_FAILED: u64 = u64::MAX;

/// Result status: the payload is the encoded result.
pub(crate) const OK: u8 = 0;
/// Result status: the task panicked; the payload is the message.
pub(crate) const PANICKED: u8 = 1;
/// Result status: the task could not run or transfer its values; the payload says why.
pub(crate) const FAILED: u8 = 2;

/// A parsed result message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ResultMsg<'a> {
    pub(crate) id: u64,
    pub(crate) status: u8,
    /// How long the task ran in the worker, in microseconds (saturating).
    pub(crate) micros: u32,
    pub(crate) payload: &'a [u8],
}

const RESULT_HEADER: usize = 13;

/// Splits a result message.
pub(crate) fn parse_result(msg: &[u8]) -> Option<ResultMsg<'_>> {
    Some(ResultMsg {
        id: u64::from_le_bytes(msg.get(..8)?.try_into().ok()?),
        status: *msg.get(8)?,
        micros: u32::from_le_bytes(msg.get(9..RESULT_HEADER)?.try_into().ok()?),
        payload: &msg[RESULT_HEADER..],
    })
}

/// The payload of a result message (empty if the message is too short).
pub(crate) fn payload(msg: &[u8]) -> &[u8] {
    msg.get(RESULT_HEADER..).unwrap_or(&[])
}

/// Starts a result message for task `id` (run time 0 until [`set_run_time`]).
pub(crate) fn result_header(id: u64, status: u8, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&id.to_le_bytes());
    out.push(status);
    out.extend_from_slice(&0u32.to_le_bytes());
}

/// Records the task's run time in a result message made by [`result_header`].
pub(crate) fn set_run_time(out: &mut [u8], took: std::time::Duration) {
    let micros = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
    if let Some(b) = out.get_mut(9..RESULT_HEADER) {
        b.copy_from_slice(&micros.to_le_bytes());
    }
}

/// Sends messages in order, fragmenting them, without ever blocking: what does not
/// fit stays for the next [`Outbox::flush`].
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    /// Bytes of the front message already pushed.
    sent: usize,
}

impl Outbox {
    /// Pushes as much of `msg` as fits, continuing where the last call stopped;
    /// `Ok(true)` once the whole message is in the ring.
    pub(crate) fn push(
        &mut self,
        p: &mut Producer,
        msg: &[u8],
    ) -> Result<bool, shmkit_ring::Error> {
        let max = p.max_record_len();
        loop {
            let start = self.sent;
            let end = msg.len().min(start + max);
            let mut flags = 0;
            if start == 0 {
                flags |= FIRST;
            }
            if end == msg.len() {
                flags |= LAST;
            }
            match p.try_push_record(&msg[start..end], flags) {
                Ok(()) => {}
                Err(shmkit_ring::Error::Full(())) => return Ok(false),
                Err(e) => return Err(e),
            }
            if end == msg.len() {
                self.sent = 0;
                return Ok(true);
            }
            self.sent = end;
        }
    }

    /// Whether a message is half sent.
    pub(crate) fn in_progress(&self) -> bool {
        self.sent != 0
    }
}

/// Reassembles fragmented messages. [`Inbox::recycle`] hands a message's buffer
/// back for the next one.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    buf: Vec<u8>,
    partial: bool,
}

impl Inbox {
    /// Whether it holds no buffer for the next message (then [`Inbox::recycle`] one).
    pub(crate) fn wants_buffer(&self) -> bool {
        !self.partial && self.buf.capacity() == 0
    }

    /// Gives a message returned by [`Inbox::poll`] back, to hold the next one.
    pub(crate) fn recycle(&mut self, mut msg: Vec<u8>) {
        if !self.partial && self.buf.capacity() < msg.capacity() {
            msg.clear();
            self.buf = msg;
        }
    }

    /// The next whole message, if one has arrived. `consumed` is set when a fragment
    /// was taken (the producer may have room now).
    pub(crate) fn poll(
        &mut self,
        c: &mut Consumer,
        consumed: &mut bool,
    ) -> Result<Option<Vec<u8>>, shmkit_ring::Error> {
        loop {
            let r = match c.peek() {
                Ok(r) => r,
                Err(shmkit_ring::Error::Empty) => return Ok(None),
                Err(e) => return Err(e),
            };
            let flags = r.flags;
            if flags & FIRST != 0 {
                self.buf.clear();
                self.partial = true;
            } else if !self.partial {
                return Err(shmkit_ring::Error::Corrupt {
                    what: "pool message fragment without a first fragment",
                });
            }
            let at = self.buf.len();
            self.buf.resize(at + r.len, 0);
            r.read_at(0, &mut self.buf[at..]);
            r.release();
            *consumed = true;
            if flags & LAST != 0 {
                self.partial = false;
                return Ok(Some(std::mem::take(&mut self.buf)));
            }
        }
    }
}

/// A queue of messages for one producer (used by a worker for its results).
#[derive(Debug, Default)]
pub(crate) struct SendQueue {
    queue: VecDeque<Vec<u8>>,
    out: Outbox,
    /// The buffer of the last message sent, kept for the next one.
    spare: Option<Vec<u8>>,
}

impl SendQueue {
    /// Queues `msg` and sends what fits; `Ok(true)` when everything was sent.
    pub(crate) fn send(
        &mut self,
        p: &mut Producer,
        msg: Vec<u8>,
    ) -> Result<bool, shmkit_ring::Error> {
        self.queue.push_back(msg);
        self.flush(p)
    }

    /// An empty buffer for the next message: the last one sent, if any (its capacity
    /// saves regrowing a large result message every time).
    pub(crate) fn buffer(&mut self) -> Vec<u8> {
        match self.spare.take() {
            Some(mut v) => {
                v.clear();
                v
            }
            None => Vec::with_capacity(64),
        }
    }

    /// Sends what fits; `Ok(true)` when nothing is left.
    pub(crate) fn flush(&mut self, p: &mut Producer) -> Result<bool, shmkit_ring::Error> {
        while let Some(m) = self.queue.front() {
            if !self.out.push(p, m)? {
                return Ok(false);
            }
            self.spare = self.queue.pop_front();
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use shmkit_ring::{bytes, RingConfig};

    #[test]
    fn fragments_round_trip() {
        let (mut p, mut c) = bytes::new(&RingConfig::bytes(256).unwrap()).unwrap();
        let msgs: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; usize::from(i) * 37]).collect();
        let mut q = SendQueue::default();
        let mut inbox = Inbox::default();
        let mut got = Vec::new();
        for m in &msgs {
            q.send(&mut p, m.clone()).unwrap();
            loop {
                let done = q.flush(&mut p).unwrap();
                let mut consumed = false;
                while let Some(m) = inbox.poll(&mut c, &mut consumed).unwrap() {
                    got.push(m);
                }
                if done {
                    break;
                }
            }
        }
        assert_eq!(got, msgs);
    }

    #[test]
    fn recycled_buffers_carry_no_old_bytes() {
        let (mut p, mut c) = bytes::new(&RingConfig::bytes(256).unwrap()).unwrap();
        let mut q = SendQueue::default();
        let mut inbox = Inbox::default();
        for (i, len) in [300usize, 5, 200, 0, 90].into_iter().enumerate() {
            let mut m = q.buffer();
            assert!(m.is_empty(), "a reused buffer starts empty");
            result_header(i as u64, OK, &mut m);
            m.extend(std::iter::repeat(u8::try_from(i).unwrap()).take(len));
            let want = m.clone();
            q.send(&mut p, m).unwrap();
            let mut got = None;
            while got.is_none() {
                q.flush(&mut p).unwrap();
                let mut consumed = false;
                got = inbox.poll(&mut c, &mut consumed).unwrap();
            }
            let got = got.unwrap();
            assert_eq!(got, want);
            assert_eq!(payload(&got), &want[RESULT_HEADER..]);
            inbox.recycle(got);
        }
        assert_eq!(payload(&[1, 2]), &[] as &[u8]);
    }

    #[test]
    fn parse_result_rejects_short_messages() {
        assert_eq!(parse_result(&[1, 2, 3]), None);
        let mut m = Vec::new();
        result_header(7, OK, &mut m);
        m.extend_from_slice(b"xy");
        set_run_time(&mut m, std::time::Duration::from_micros(5));
        assert_eq!(
            parse_result(&m),
            Some(ResultMsg {
                id: 7,
                status: OK,
                micros: 5,
                payload: &b"xy"[..]
            })
        );
    }
}
