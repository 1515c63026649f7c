//! Blocking for the framing protocol: spin, then sleep on the pipe's event counts in
//! bounded slices, sweeping dead holders of the peer end after each slice.

use crate::error::{Error, Result};
use crate::frame::{RecvHooks, SendHooks, Woke};
use crate::shm::PipeShm;
use shmkit_segment::shim::time::Deadline;
use shmkit_sync::futex;
use std::time::Duration;

/// How long a sleeper waits before checking whether the peer's holders still live.
pub const LIVENESS_SLICE: Duration = Duration::from_millis(100);

/// Busy-poll mode: iterations between clock reads.
const BUSY_CHECK: u32 = 64;
/// Busy-poll mode: rounds of [`BUSY_CHECK`] spins (about 20 µs in all) after
/// which each round also yields the CPU, so that a peer sharing this core can run.
const BUSY_ROUNDS_BEFORE_YIELD: u32 = 8;

/// Waits until `ready()` or `deadline`, by spinning (`busy`) or spin-then-sleep on the
/// event count `ec`; sweeps `peer`'s dead holders every slice. Returns `false` on
/// timeout.
pub(crate) fn block_until(
    pipe: &PipeShm,
    ec: &futex::EventCount,
    peer: usize,
    busy: bool,
    deadline: Deadline,
    mut ready: impl FnMut() -> bool,
) -> bool {
    if ready() {
        return true;
    }
    if busy {
        // The clock is first read after one round of spinning: a message that
        // arrives within it (the latency-critical case) costs no clock read.
        let mut slice_end: Option<Deadline> = None;
        let mut rounds = 0u32;
        loop {
            rounds = rounds.saturating_add(1);
            if rounds > BUSY_ROUNDS_BEFORE_YIELD {
                shmkit_segment::shim::yield_now();
            }
            for _ in 0..BUSY_CHECK {
                shmkit_segment::shim::spin_loop();
                if ready() {
                    return true;
                }
            }
            if deadline.is_expired() {
                return ready();
            }
            match slice_end {
                None => slice_end = Some(Deadline::after(LIVENESS_SLICE)),
                Some(end) if end.is_expired() => {
                    pipe.sweep(peer);
                    slice_end = Some(Deadline::after(LIVENESS_SLICE));
                }
                Some(_) => {}
            }
        }
    }
    let started = futex::now();
    if futex::spin_until(deadline, &mut ready) {
        return true;
    }
    loop {
        let key = ec.prepare();
        if ready() {
            futex::note_slept(started);
            return true;
        }
        let slice = Deadline::after(LIVENESS_SLICE).min(deadline);
        let woken = ec.wait(key, slice);
        if ready() {
            futex::note_slept(started);
            return true;
        }
        if deadline.is_expired() {
            return false;
        }
        if !woken || slice.is_expired() {
            pipe.sweep(peer);
        }
    }
}

/// Receiver side: ring `ring`, whose sender is end `peer`.
#[derive(Debug)]
pub(crate) struct RxHooks<'a> {
    pub(crate) pipe: &'a PipeShm,
    pub(crate) ring: usize,
    pub(crate) peer: usize,
    pub(crate) busy: bool,
    pub(crate) deadline: Deadline,
}

impl RxHooks<'_> {
    /// Data published or the peer closed everywhere (read-only).
    pub(crate) fn readable(&self) -> bool {
        self.pipe.published(self.ring) || !self.pipe.end_open(self.peer)
    }
}

impl RecvHooks for RxHooks<'_> {
    fn wait_data(&mut self, ready: &mut dyn FnMut() -> bool) -> Result<Woke> {
        let ec = &self.pipe.ctl().data[self.ring].ec;
        let (pipe, peer) = (self.pipe, self.peer);
        // `ready` polls the record header at the consumer's position: the line the
        // record arrives on, not the producer's `tail` line (one cache miss per
        // message instead of two).
        let ok = block_until(pipe, ec, peer, self.busy, self.deadline, || {
            ready() || !pipe.end_open(peer)
        });
        if !ok {
            return Err(Error::Timeout);
        }
        // Data first: a closed peer's last messages are still delivered.
        Ok(if ready() || self.pipe.end_open(peer) {
            Woke::Data
        } else {
            Woke::Closed
        })
    }

    fn released(&mut self) {
        self.pipe.ctl().space[self.ring].ec.notify_all();
    }
}

/// Sender side: ring `ring`, whose receiver is end `peer`.
#[derive(Debug)]
pub(crate) struct TxHooks<'a> {
    pub(crate) pipe: &'a PipeShm,
    pub(crate) ring: usize,
    pub(crate) peer: usize,
    pub(crate) busy: bool,
}

impl SendHooks for TxHooks<'_> {
    fn wait_space(&mut self, len: usize, _room: &mut dyn FnMut() -> bool) -> Result<()> {
        let ec = &self.pipe.ctl().space[self.ring].ec;
        let (pipe, ring, peer) = (self.pipe, self.ring, self.peer);
        block_until(pipe, ec, peer, self.busy, Deadline::NEVER, || {
            pipe.room_for(ring, len) || !pipe.end_open(peer)
        });
        if pipe.end_open(peer) {
            Ok(())
        } else {
            Err(Error::Closed)
        }
    }

    fn committed(&mut self) {
        self.pipe.ctl().data[self.ring].ec.notify_all();
    }
}
