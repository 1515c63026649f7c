//! [`Core`]: what every handle (duplex [`crate::Connection`], [`crate::Receiver`],
//! [`crate::Sender`]) is made of — a registration as a holder of one end, and the
//! ring ends it sends into and receives from.

use crate::bias::{self, Ident};
use crate::error::{Error, Result};
use crate::frame::{self, Sink};
use crate::hooks::{RxHooks, TxHooks};
use crate::registry;
use crate::shm::PipeShm;
use serde::{Deserialize, Serialize};
use shmkit_ring::bytes::{Consumer, Producer};
use shmkit_segment::shim::atomic::{AtomicBool, AtomicU64, Ordering};
use shmkit_segment::shim::time::Deadline;
use shmkit_segment::Token;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A serialisable reference to one end of a pipe: rebuild the handle in another
/// process with `from_token` (or deserialize the handle itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndToken {
    /// The pipe's segment.
    pub segment: Token,
    /// Which end (0 or 1).
    pub end: u8,
}

/// Registration of this handle as a holder of `end`.
#[derive(Debug)]
struct Reg {
    pipe: Arc<PipeShm>,
    end: usize,
    /// The fork generation this handle was made (or first used) in.
    gen: AtomicU64,
    /// Inherited over a fork and used since.
    activated: AtomicBool,
}

impl Reg {
    fn new(pipe: Arc<PipeShm>, end: usize) -> Result<Self> {
        registry::register(&pipe, end)?;
        Ok(Reg {
            pipe,
            end,
            gen: AtomicU64::new(registry::fork_gen()),
            activated: AtomicBool::new(false),
        })
    }

    /// Makes an inherited handle one of this process's own on its first use here.
    #[inline]
    fn touch(&self) -> Result<()> {
        let now = registry::fork_gen();
        // Relaxed: the generation only changes in a forked child's atfork handler,
        // before any other thread exists there; the CAS below elects one activator.
        let seen = self.gen.load(Ordering::Relaxed);
        if seen == now {
            return Ok(());
        }
        if self
            .gen
            .compare_exchange(seen, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            if let Err(e) = registry::activate(&self.pipe, self.end) {
                self.gen.store(seen, Ordering::Relaxed);
                return Err(e);
            }
            self.activated.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}

impl Drop for Reg {
    fn drop(&mut self) {
        // Relaxed: see `touch`.
        let origin = if self.gen.load(Ordering::Relaxed) != registry::fork_gen() {
            registry::Origin::Inherited
        } else if self.activated.load(Ordering::Relaxed) {
            registry::Origin::Activated
        } else {
            registry::Origin::Local
        };
        registry::unregister(&self.pipe, self.end, origin);
    }
}

/// Largest assembly buffer (bytes) a handle keeps between `recv_with` calls; a
/// bigger message's buffer is freed after it was handed out.
const KEEP_ASSEMBLY: usize = 64 << 20;

/// Frees an assembly buffer above [`KEEP_ASSEMBLY`] when dropped: after `recv_with`
/// returned, or its `f` unwound.
struct Trim<'a>(&'a mut Vec<u8>);

impl Drop for Trim<'_> {
    fn drop(&mut self) {
        if self.0.capacity() > KEEP_ASSEMBLY {
            *self.0 = Vec::new();
        }
    }
}

fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The consumer end, the handle's identity on the receiving side, and its assembly
/// buffer for `recv_with`.
type RxSide = (Consumer, Ident, Vec<u8>);

/// One handle: a holder registration plus its ring ends.
#[derive(Debug)]
pub(crate) struct Core {
    tx: Option<(usize, Mutex<(Producer, Ident)>)>,
    /// The consumer end, this handle's identity on the receiving side, and the buffer
    /// `recv_with` assembles fragmented messages in (kept for reuse).
    rx: Option<(usize, Mutex<RxSide>)>,
    busy: AtomicBool,
    /// When `poll()` last swept the peer's dead holders (monotonic ns).
    last_sweep: AtomicU64,
    // Last: unregistered after the ring ends are gone.
    reg: Reg,
}

impl Core {
    /// A handle of end `end` of `pipe` (sending and/or receiving as the pipe allows).
    pub(crate) fn new(pipe: Arc<PipeShm>, end: usize, busy: bool) -> Result<Self> {
        let tx = match pipe.send_ring(end) {
            Some(r) => {
                // SAFETY: the producer side of ring `r` is only ever used by the
                // senders of `end` (this one and every other handle of the end, in
                // any process), each one for a whole message inside
                // `bias::enter(send side)` (`send_inner`), which excludes all others.
                let prod = unsafe { Producer::attach_serialized(pipe.segment(), pipe.region(r)?) }?;
                Some((r, Mutex::new((prod, Ident::default()))))
            }
            None => None,
        };
        let rx = match pipe.recv_ring(end) {
            Some(r) => {
                // SAFETY: as above, with the receivers of `end` and its receiving
                // side (`recv_inner`).
                let cons = unsafe { Consumer::attach_serialized(pipe.segment(), pipe.region(r)?) }?;
                Some((r, Mutex::new((cons, Ident::default(), Vec::new()))))
            }
            None => None,
        };
        let reg = Reg::new(pipe, end)?;
        Ok(Core {
            tx,
            rx,
            busy: AtomicBool::new(busy),
            last_sweep: AtomicU64::new(0),
            reg,
        })
    }

    /// Another handle of the same end in this process.
    pub(crate) fn try_clone(&self) -> Result<Self> {
        self.reg.touch()?;
        Core::new(Arc::clone(&self.reg.pipe), self.reg.end, self.busy_poll())
    }

    pub(crate) fn end(&self) -> usize {
        self.reg.end
    }

    pub(crate) fn pipe(&self) -> &PipeShm {
        &self.reg.pipe
    }

    pub(crate) fn set_busy_poll(&self, on: bool) {
        // Relaxed: a per-handle setting read by this handle's own calls.
        self.busy.store(on, Ordering::Relaxed);
    }

    pub(crate) fn busy_poll(&self) -> bool {
        // Relaxed: see `set_busy_poll`.
        self.busy.load(Ordering::Relaxed)
    }

    fn peer(&self) -> usize {
        1 - self.reg.end
    }

    pub(crate) fn token(&self) -> Result<EndToken> {
        Ok(EndToken {
            segment: self.pipe().segment().token()?,
            end: u8::try_from(self.reg.end).unwrap_or(0),
        })
    }

    /// Opens end `want` of the pipe named by `t`; `t.end` must equal it.
    pub(crate) fn from_token(t: &EndToken) -> Result<Self> {
        if t.end > 1 {
            return Err(crate::error::corrupt("end number out of range"));
        }
        let seg = t.segment.open()?;
        let pipe = Arc::new(PipeShm::attach(seg)?);
        Core::new(pipe, usize::from(t.end), false)
    }

    pub(crate) fn send_bytes(&self, msg: &[u8]) -> Result<()> {
        self.send_inner(|prod, hooks| frame::send_message(prod, msg, hooks))
    }

    /// Sends one message of `len` bytes written by `f` (see `frame::send_with`).
    ///
    /// # Safety
    /// As `frame::send_with`: no other process touches the reserved record.
    pub(crate) unsafe fn send_with<R>(
        &self,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Result<R> {
        self.send_inner(|prod, hooks| {
            // SAFETY: forwarded from the caller.
            unsafe { frame::send_with(prod, len, hooks, f) }
        })
    }

    /// Runs `send` (one whole message) with exclusive use of this end's sending side.
    fn send_inner<R>(
        &self,
        send: impl FnOnce(&mut Producer, &mut TxHooks<'_>) -> Result<R>,
    ) -> Result<R> {
        let Some((ring, st)) = &self.tx else {
            return Err(Error::Config {
                what: "this end cannot send",
            });
        };
        self.reg.touch()?;
        let pipe = self.pipe();
        let peer = self.peer();
        if !pipe.end_open(peer) {
            return Err(Error::Closed);
        }
        // A forked child uses the copied ring end as is: a serialized end names no
        // process, and re-reads its index from shared memory under the lock.
        let mut g = guard(st);
        let (prod, ident) = &mut *g;
        let ctl = pipe.end(self.reg.end);
        let access = bias::enter(&ctl.send, &ctl.next_id, ident)?;
        if matches!(access, bias::Access::Locked(_)) {
            // Another handle may have sent since our last message, and died between
            // a record header and its `tail` store: let the ring check for that. (A
            // bias holder's fast path knows nobody else used the side meanwhile:
            // another user revokes the bias first.)
            prod.resync();
        }
        let _access = access;
        let mut hooks = TxHooks {
            pipe,
            ring: *ring,
            peer,
            busy: self.busy_poll(),
        };
        send(prod, &mut hooks)
    }

    pub(crate) fn recv_sink(
        &self,
        max: Option<usize>,
        sink: &mut Sink<'_>,
        deadline: Deadline,
    ) -> Result<usize> {
        self.recv_inner(deadline, |cons, _, hooks| {
            frame::recv_message(cons, max, sink, hooks)
        })
    }

    /// Receives one whole message and hands it to `f` (see `frame::recv_with`): in
    /// place when it is one ring record, else assembled in this handle's buffer.
    ///
    /// # Safety
    /// As `frame::recv_with`: no process writes the ring's published records.
    pub(crate) unsafe fn recv_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        self.recv_inner(Deadline::NEVER, |cons, buf, hooks| {
            let trim = Trim(buf);
            // SAFETY: forwarded from the caller.
            unsafe { frame::recv_with(cons, trim.0, hooks, f) }
        })
    }

    /// Runs `recv` (one whole message) with exclusive use of this end's receiving
    /// side, handing it the consumer, the handle's assembly buffer and the hooks.
    fn recv_inner<R>(
        &self,
        deadline: Deadline,
        recv: impl FnOnce(&mut Consumer, &mut Vec<u8>, &mut RxHooks<'_>) -> Result<R>,
    ) -> Result<R> {
        let Some((ring, st)) = &self.rx else {
            return Err(Error::Config {
                what: "this end cannot receive",
            });
        };
        self.reg.touch()?;
        let pipe = self.pipe();
        // As in `send_inner`.
        let mut g = guard(st);
        let (cons, ident, buf) = &mut *g;
        let ctl = pipe.end(self.reg.end);
        let _access = bias::enter(&ctl.recv, &ctl.next_id, ident)?;
        let mut hooks = RxHooks {
            pipe,
            ring: *ring,
            peer: self.peer(),
            busy: self.busy_poll(),
            deadline,
        };
        recv(cons, buf, &mut hooks)
    }

    /// Receives one whole message (of at most `max` bytes) into a new vector.
    pub(crate) fn recv_vec(&self, max: Option<usize>, deadline: Deadline) -> Result<Vec<u8>> {
        let mut sink = Sink::Vec(Vec::new());
        self.recv_sink(max, &mut sink, deadline)?;
        match sink {
            Sink::Vec(v) => Ok(v),
            Sink::Buf { .. } => Err(crate::error::corrupt("sink changed kind")),
        }
    }

    /// The receiving ring and its hooks, for `poll` and `wait`.
    pub(crate) fn rx_hooks(&self, deadline: Deadline) -> Option<RxHooks<'_>> {
        let (ring, _) = self.rx.as_ref()?;
        Some(RxHooks {
            pipe: self.pipe(),
            ring: *ring,
            peer: self.peer(),
            busy: self.busy_poll(),
            deadline,
        })
    }

    pub(crate) fn poll(&self, deadline: Deadline) -> Result<bool> {
        self.reg.touch()?;
        let Some(mut h) = self.rx_hooks(deadline) else {
            return Err(Error::Config {
                what: "this end cannot receive",
            });
        };
        if h.readable() {
            return Ok(true);
        }
        if deadline.is_expired() {
            // Now and then, a look at dead holders (poll() in a loop must see EOF).
            let now = shmkit_segment::shim::time::now_nanos();
            // Relaxed: a per-handle rate limit; races only sweep twice.
            let last = self.last_sweep.load(Ordering::Relaxed);
            let slice = u64::try_from(crate::hooks::LIVENESS_SLICE.as_nanos()).unwrap_or(0);
            if now.saturating_sub(last) >= slice {
                self.last_sweep.store(now, Ordering::Relaxed);
                h.pipe.sweep(h.peer);
            }
            return Ok(h.readable());
        }
        let (pipe, ring) = (h.pipe, h.ring);
        // No ring handle here (poll does not take the receive side): readiness by
        // the published `tail`.
        match frame::RecvHooks::wait_data(&mut h, &mut || pipe.published(ring)) {
            Ok(_) => Ok(true),
            Err(Error::Timeout) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// The receiving and the sending handle of a new one-way pipe.
    fn one_way(capacity: usize) -> (Core, Core) {
        let pipe = PipeShm::create(false, capacity, None).unwrap();
        let rx = Core::new(Arc::clone(&pipe), 0, false).unwrap();
        let tx = Core::new(Arc::clone(&pipe), 1, false).unwrap();
        registry::drop_creation_hold(&pipe);
        (rx, tx)
    }

    fn assembly_capacity(c: &Core) -> usize {
        let (_, st) = c.rx.as_ref().unwrap();
        guard(st).2.capacity()
    }

    /// A buffer above `KEEP_ASSEMBLY` is freed after the call, also when `f` unwinds.
    #[test]
    fn a_big_assembly_buffer_is_freed_after_the_call_even_if_f_panics() {
        let (rx, tx) = one_way(1 << 20);
        let big = vec![7u8; KEEP_ASSEMBLY + 4096];
        let t = std::thread::spawn(move || {
            tx.send_bytes(&big).unwrap();
            tx.send_bytes(&big).unwrap();
            tx.send_bytes(b"small").unwrap();
        });
        // SAFETY: only shmkit's pipe code writes this pipe's memory.
        let len = unsafe { rx.recv_with(<[u8]>::len) }.unwrap();
        assert_eq!(len, KEEP_ASSEMBLY + 4096);
        assert_eq!(assembly_capacity(&rx), 0, "kept after a normal return");
        let r = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: as above.
            unsafe { rx.recv_with(|_| panic!("boom")) }
        }));
        assert!(r.is_err());
        assert_eq!(assembly_capacity(&rx), 0, "kept after f unwound");
        // SAFETY: as above.
        let small = unsafe { rx.recv_with(<[u8]>::to_vec) }.unwrap();
        assert_eq!(small, b"small");
        t.join().unwrap();
    }
}
