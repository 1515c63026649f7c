//! The public handles: [`Pipe`], [`Connection`], [`Receiver`], [`Sender`], [`wait`].

use crate::core::{Core, EndToken};
use crate::error::{Error, Result};
use crate::frame::Sink;
use crate::hooks::LIVENESS_SLICE;
use crate::shm::PipeShm;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use shmkit_segment::shim::time::Deadline;
use shmkit_sync::futex;
use std::sync::Arc;
use std::time::Duration;

/// Default data bytes of each ring (1 MiB; messages up to half of it travel in one
/// record, longer ones in fragments).
pub const DEFAULT_CAPACITY: usize = 1 << 20;

/// Makes pipes: [`Pipe::duplex`], [`Pipe::one_way`], or [`Pipe::builder`] for options.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pipe;

impl Pipe {
    /// A duplex pipe: two [`Connection`]s, each sending to and receiving from the
    /// other (Python's `Pipe()`), with [`DEFAULT_CAPACITY`] bytes per direction.
    ///
    /// # Errors
    /// [`Error::Segment`] if the shared memory cannot be created.
    pub fn duplex() -> Result<(Connection, Connection)> {
        Self::builder().duplex()
    }

    /// A one-way pipe: `(receiving end, sending end)` (Python's `Pipe(duplex=False)`).
    /// Sending on the receiver or receiving on the sender does not compile.
    ///
    /// # Errors
    /// As [`Pipe::duplex`].
    pub fn one_way() -> Result<(Receiver, Sender)> {
        Self::builder().one_way()
    }

    /// Options: ring capacity, a name, busy-poll mode.
    pub fn builder() -> PipeBuilder {
        PipeBuilder {
            capacity: DEFAULT_CAPACITY,
            name: None,
            busy_poll: false,
        }
    }
}

/// Options for a new pipe.
#[derive(Debug, Clone)]
pub struct PipeBuilder {
    capacity: usize,
    name: Option<String>,
    busy_poll: bool,
}

impl PipeBuilder {
    /// Data bytes per direction: a power of two, at least 64 (default 1 MiB). Any
    /// message size works with any capacity; bigger rings stream faster.
    pub fn capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes;
        self
    }

    /// Creates the pipe as a named segment, so unrelated processes can
    /// [`Connection::open`] its ends.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// Starts both handles in busy-poll mode (see [`Connection::set_busy_poll`]).
    pub fn busy_poll(mut self, on: bool) -> Self {
        self.busy_poll = on;
        self
    }

    fn make(&self, duplex: bool) -> Result<(Core, Core)> {
        if self.capacity < 64 {
            return Err(Error::Config {
                what: "ring capacity must be at least 64 bytes",
            });
        }
        let pipe = PipeShm::create(duplex, self.capacity, self.name.as_deref())?;
        let a = Core::new(Arc::clone(&pipe), 0, self.busy_poll)?;
        let b = Core::new(Arc::clone(&pipe), 1, self.busy_poll)?;
        // The creator's initial slots were adopted by the two handles' registrations.
        crate::registry::drop_creation_hold(&pipe);
        Ok((a, b))
    }

    /// A duplex pipe (see [`Pipe::duplex`]).
    ///
    /// # Errors
    /// [`Error::Config`] for a bad capacity; [`Error::Segment`].
    pub fn duplex(self) -> Result<(Connection, Connection)> {
        let (a, b) = self.make(true)?;
        Ok((Connection { core: a }, Connection { core: b }))
    }

    /// A one-way pipe (see [`Pipe::one_way`]).
    ///
    /// # Errors
    /// As [`PipeBuilder::duplex`].
    pub fn one_way(self) -> Result<(Receiver, Sender)> {
        let (a, b) = self.make(false)?;
        Ok((Receiver { core: a }, Sender { core: b }))
    }
}

macro_rules! common {
    ($t:ident) => {
        impl $t {
            /// Closes this handle (the same as dropping it). The end stays open while
            /// another handle of it lives in any process.
            pub fn close(self) {
                drop(self);
            }

            /// Switches this handle between busy-poll mode (waits spin on the shared
            /// indices and never sleep: lowest latency, one core busy while waiting)
            /// and blocking mode (the default: a short adaptive spin, then a futex
            /// sleep).
            pub fn set_busy_poll(&self, on: bool) {
                self.core.set_busy_poll(on);
            }

            /// Whether this handle busy-polls.
            pub fn busy_poll(&self) -> bool {
                self.core.busy_poll()
            }

            /// Which end of the pipe this is (0 or 1).
            pub fn end(&self) -> usize {
                self.core.end()
            }

            /// A token to rebuild this end in another process (spawn start method,
            /// or any channel). The pipe must stay open (held by some process)
            /// until the other process has opened it.
            ///
            /// # Errors
            /// [`Error::Segment`] if the segment cannot be described.
            pub fn token(&self) -> Result<EndToken> {
                self.core.token()
            }

            /// Opens the end named by `token` in this process (it becomes a holder).
            ///
            /// # Errors
            /// [`Error::Segment`] (stale token, …); [`Error::Closed`] if the end was
            /// already closed in every process; [`Error::Corrupt`];
            /// [`Error::TooManyHolders`].
            pub fn from_token(token: &EndToken) -> Result<Self> {
                let core = Core::from_token(token)?;
                if core.pipe().duplex() != $t::DUPLEX || !$t::ENDS.contains(&core.end()) {
                    return Err(Error::Config {
                        what: concat!("the token names no ", stringify!($t), " end"),
                    });
                }
                Ok($t { core })
            }

            /// Opens end `end` of the pipe created with [`PipeBuilder::name`].
            ///
            /// # Errors
            /// As [`Self::from_token`].
            pub fn open(name: &str, end: usize) -> Result<Self> {
                let token = EndToken {
                    segment: shmkit_segment::Token {
                        source: shmkit_segment::Source::Named(name.to_owned()),
                        kind: crate::layout::KIND,
                        kind_version: crate::layout::KIND_VERSION,
                        offset: 0,
                    },
                    end: u8::try_from(end).unwrap_or(u8::MAX),
                };
                Self::from_token(&token)
            }

            /// Another handle of the same end in this process.
            ///
            /// # Errors
            /// [`Error::TooManyHolders`]; ring errors.
            pub fn try_clone(&self) -> Result<Self> {
                Ok($t {
                    core: self.core.try_clone()?,
                })
            }
        }

        impl Clone for $t {
            /// Another handle of the same end.
            ///
            /// # Panics
            /// If [`Self::try_clone`] fails (more than [`crate::MAX_HOLDERS`] processes).
            fn clone(&self) -> Self {
                match self.try_clone() {
                    Ok(c) => c,
                    Err(e) => panic!("cloning a pipe end: {e}"),
                }
            }
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                self.token()
                    .map_err(serde::ser::Error::custom)?
                    .serialize(s)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let t = EndToken::deserialize(d)?;
                Self::from_token(&t).map_err(serde::de::Error::custom)
            }
        }
    };
}

macro_rules! sending {
    ($t:ident) => {
        impl $t {
            /// Sends `value` encoded with postcard (Python's `send`).
            ///
            /// # Errors
            /// [`Error::Codec`]; as [`Self::send_bytes`].
            pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<()> {
                let bytes = postcard::to_allocvec(value).map_err(Error::Codec)?;
                self.core.send_bytes(&bytes)
            }

            /// Sends `buf` as one message; blocks while the ring is full.
            ///
            /// # Errors
            /// [`Error::Closed`] when the peer end is closed in every process (also
            /// while blocked); [`Error::TooLarge`] beyond [`crate::MAX_MESSAGE_LEN`];
            /// [`Error::Corrupt`].
            pub fn send_bytes(&self, buf: &[u8]) -> Result<()> {
                self.core.send_bytes(buf)
            }

            /// Sends one message of `len` bytes that `f` writes **in place**, into
            /// the pipe's ring, when it fits one ring record (up to half the ring
            /// capacity: 512 KiB by default); returns what `f` returns. A longer
            /// message is written by `f` into a new zeroed buffer, then sent in
            /// fragments like [`Self::send_bytes`] (one copy). A message sent in
            /// place waits for room in the ring before `f` is called; a longer one
            /// calls `f` first and waits for room for each fragment after.
            ///
            /// `f` gets the bytes as the ring holds them (old messages' bytes, not
            /// zeroes): write all of them. The message is published when `f`
            /// returns; if `f` panics nothing is sent. While `f` runs this end's
            /// sending side is held: keep `f` short and never send on this end
            /// (through any handle) inside `f` — that deadlocks. Receiving is fine.
            ///
            /// ```
            /// use shmkit_pipe::Pipe;
            ///
            /// let (a, b) = Pipe::duplex()?;
            /// // SAFETY: only shmkit's pipe code touches this pipe's shared memory.
            /// unsafe { a.send_bytes_with(4, |buf| buf.copy_from_slice(b"ping")) }?;
            /// assert_eq!(b.recv_bytes()?, b"ping");
            /// # Ok::<(), shmkit_pipe::Error>(())
            /// ```
            ///
            /// # Safety
            /// `f` writes shared memory that every process holding the pipe maps.
            /// No other process may read or write those bytes while `f` runs:
            /// every process that uses the pipe through shmkit complies (receivers
            /// read only published messages); a process that accesses the mapping
            /// by other means (a stray pointer, a hostile peer) would race with
            /// `f`, which is undefined behaviour. [`Self::send_bytes`] has no such
            /// condition.
            ///
            /// # Errors
            /// [`Error::Closed`] when the peer end is closed in every process: `f`
            /// is not called when that is known on entry or while waiting for room
            /// for an in-place message; a longer message's fragments can find it
            /// closed after `f` ran (as [`Self::send_bytes`] would: nothing
            /// delivered); [`Error::TooLarge`] beyond [`crate::MAX_MESSAGE_LEN`]
            /// and [`Error::Config`] when a buffer for a longer message cannot be
            /// allocated (`f` not called); [`Error::Corrupt`].
            pub unsafe fn send_bytes_with<R>(
                &self,
                len: usize,
                f: impl FnOnce(&mut [u8]) -> R,
            ) -> Result<R> {
                // SAFETY: forwarded from the caller.
                unsafe { self.core.send_with(len, f) }
            }

            /// Sends `buf[offset..offset + size]` as one message.
            ///
            /// # Errors
            /// [`Error::OutOfRange`] (nothing sent) when the range leaves `buf`; as
            /// [`Self::send_bytes`].
            pub fn send_bytes_range(&self, buf: &[u8], offset: usize, size: usize) -> Result<()> {
                let end = offset.checked_add(size).filter(|&e| e <= buf.len());
                let Some(end) = end else {
                    return Err(Error::OutOfRange {
                        offset,
                        size,
                        len: buf.len(),
                    });
                };
                self.core.send_bytes(&buf[offset..end])
            }
        }
    };
}

macro_rules! receiving {
    ($t:ident) => {
        impl $t {
            /// Receives one value sent with `send` (Python's `recv`).
            ///
            /// # Errors
            /// [`Error::Codec`] if the message does not decode as `T`; as
            /// [`Self::recv_bytes`].
            pub fn recv<T: DeserializeOwned>(&self) -> Result<T> {
                let bytes = self.recv_bytes()?;
                postcard::from_bytes(&bytes).map_err(Error::Codec)
            }

            /// Receives one whole message, blocking until it is there.
            ///
            /// # Errors
            /// [`Error::Eof`] once the peer end is closed in every process and
            /// everything it sent was received; [`Error::Corrupt`].
            pub fn recv_bytes(&self) -> Result<Vec<u8>> {
                self.core.recv_vec(None, Deadline::NEVER)
            }

            /// Receives one message of at most `maxlength` bytes.
            ///
            /// # Errors
            /// [`Error::MessageTooLong`] when the next message is longer: that
            /// message is **not consumed** — it stays first in the pipe, and a later
            /// `recv_bytes` (or a larger limit) receives it. As [`Self::recv_bytes`].
            pub fn recv_bytes_max(&self, maxlength: usize) -> Result<Vec<u8>> {
                self.core.recv_vec(Some(maxlength), Deadline::NEVER)
            }

            /// Receives one message into `buf` at `offset`; returns its length.
            ///
            /// # Errors
            /// [`Error::BadOffset`] (nothing received) when `offset > buf.len()`;
            /// [`Error::BufferTooShort`] carrying the whole message (which was
            /// consumed) when it does not fit `buf[offset..]`; as [`Self::recv_bytes`].
            pub fn recv_bytes_into(&self, buf: &mut [u8], offset: usize) -> Result<usize> {
                let len = buf.len();
                let Some(dst) = buf.get_mut(offset..) else {
                    return Err(Error::BadOffset { offset, len });
                };
                let mut sink = Sink::Buf {
                    buf: dst,
                    overflow: None,
                };
                let n = self.core.recv_sink(None, &mut sink, Deadline::NEVER)?;
                match sink {
                    Sink::Buf {
                        overflow: Some(v), ..
                    } => Err(Error::BufferTooShort(v)),
                    _ => Ok(n),
                }
            }

            /// Receives one whole message and hands it to `f` **without copying it**
            /// when it travelled in one ring record (messages up to half the ring
            /// capacity: 512 KiB by default); returns what `f` returns. A longer
            /// (fragmented) message is assembled in a buffer this handle keeps and
            /// reuses (up to 64 MiB), then handed to `f`. Blocks, delivers whole
            /// messages, reports EOF and shares an end with other handles exactly
            /// like [`Self::recv_bytes`]; after [`Self::poll`] or
            /// [`Self::poll_timeout`] said a message is there, it waits at most for
            /// the rest of that message's fragments.
            ///
            /// The message is consumed when `f` returns, or unwinds. While `f` runs
            /// this end's receiving side is held: keep `f` short, and never receive
            /// on this end (through any handle) inside `f` — that deadlocks.
            /// Sending is fine.
            ///
            /// ```
            /// use shmkit_pipe::Pipe;
            ///
            /// let (a, b) = Pipe::duplex()?;
            /// a.send_bytes(&[1, 2, 3, 4])?;
            /// // SAFETY: only shmkit's pipe code writes this pipe's shared memory.
            /// let sum = unsafe { b.recv_bytes_with(|msg| msg.iter().map(|&x| u32::from(x)).sum::<u32>()) }?;
            /// assert_eq!(sum, 10);
            /// # Ok::<(), shmkit_pipe::Error>(())
            /// ```
            ///
            /// # Safety
            /// `f` reads the message where it lies in shared memory, which every
            /// process holding the pipe maps. No process may write those bytes
            /// while `f` runs: every process that uses the pipe through shmkit
            /// complies (the sender reuses ring bytes only after the receiver
            /// consumed them); a process that writes the mapping by other means (a
            /// stray pointer, a hostile peer) would race with `f`'s reads, which
            /// is undefined behaviour. [`Self::recv_bytes_into`] copies the
            /// message out first and has no such condition. Ring headers and
            /// lengths are validated either way: a corrupt ring gives
            /// [`Error::Corrupt`], never an out-of-bounds slice.
            ///
            /// # Errors
            /// As [`Self::recv_bytes`] ([`Error::Eof`], [`Error::Corrupt`]).
            pub unsafe fn recv_bytes_with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
                // SAFETY: forwarded from the caller.
                unsafe { self.core.recv_with(f) }
            }

            /// Whether a message (or EOF) can be received now, without blocking.
            ///
            /// # Errors
            /// None today; reserved.
            pub fn poll(&self) -> Result<bool> {
                self.core.poll(Deadline::after(Duration::ZERO))
            }

            /// Waits until a message (or EOF) can be received, at most `timeout`
            /// (`None` = forever); returns whether one can.
            ///
            /// # Errors
            /// None today; reserved.
            pub fn poll_timeout(&self, timeout: Option<Duration>) -> Result<bool> {
                self.core.poll(Deadline::from_timeout(timeout))
            }
        }

        #[allow(private_interfaces)]
        impl sealed::Readable for $t {
            fn core(&self) -> &Core {
                &self.core
            }
        }
        impl Readable for $t {}
    };
}

/// One end of a duplex pipe: sends to and receives from the other end.
///
/// `Clone` makes another handle of the same end (so does `fork`, and a token in a
/// spawned process); the end closes once no handle of it is left in any process.
#[derive(Debug)]
pub struct Connection {
    core: Core,
}

/// The receiving end of a one-way pipe.
#[derive(Debug)]
pub struct Receiver {
    core: Core,
}

/// The sending end of a one-way pipe.
#[derive(Debug)]
pub struct Sender {
    core: Core,
}

impl Connection {
    const DUPLEX: bool = true;
    const ENDS: [usize; 2] = [0, 1];
}
impl Receiver {
    const DUPLEX: bool = false;
    const ENDS: [usize; 1] = [0];
}
impl Sender {
    const DUPLEX: bool = false;
    const ENDS: [usize; 1] = [1];
}

common!(Connection);
common!(Receiver);
common!(Sender);
sending!(Connection);
sending!(Sender);
receiving!(Connection);
receiving!(Receiver);

#[allow(private_interfaces)]
mod sealed {
    pub trait Readable {
        fn core(&self) -> &super::Core;
    }
}

/// Handles that can receive ([`Connection`], [`Receiver`]): what [`wait`] takes.
pub trait Readable: sealed::Readable {}

/// Most handles [`wait`] takes at once.
pub const MAX_WAIT: usize = 128;

/// Waits until at least one of `conns` is ready to receive (a message is there, or
/// EOF), at most `timeout` (`None` = forever), and returns the ready ones, in order
/// (empty on timeout) — Python's `multiprocessing.connection.wait`. Spins briefly,
/// then sleeps on all their futex words at once (`futex_waitv`), waking every
/// [`LIVENESS_SLICE`] to notice dead peers.
///
/// # Errors
/// [`Error::Config`] for more than [`MAX_WAIT`] handles.
pub fn wait<'a, C: Readable>(conns: &[&'a C], timeout: Option<Duration>) -> Result<Vec<&'a C>> {
    if conns.len() > MAX_WAIT {
        return Err(Error::Config {
            what: "wait takes at most 128 handles",
        });
    }
    let deadline = Deadline::from_timeout(timeout);
    let hooks: Vec<_> = conns
        .iter()
        .filter_map(|c| sealed::Readable::core(*c).rx_hooks(deadline))
        .collect();
    let ready = || -> Vec<&'a C> {
        conns
            .iter()
            .zip(&hooks)
            .filter(|(_, h)| h.readable())
            .map(|(c, _)| *c)
            .collect()
    };
    let any = || hooks.iter().any(|h| h.readable());
    if conns.is_empty() {
        if let Some(t) = timeout {
            std::thread::sleep(t);
        }
        return Ok(Vec::new());
    }
    let started = futex::now();
    if futex::spin_until(deadline, any) {
        return Ok(ready());
    }
    loop {
        let words: Vec<_> = hooks
            .iter()
            .map(|h| {
                let ec = &h.pipe.ctl().data[h.ring].ec;
                (ec.word(), ec.prepare())
            })
            .collect();
        if any() {
            futex::note_slept(started);
            return Ok(ready());
        }
        let slice = Deadline::after(LIVENESS_SLICE).min(deadline);
        let r = futex::wait_many(&words, slice);
        if any() {
            futex::note_slept(started);
            return Ok(ready());
        }
        if deadline.is_expired() {
            return Ok(Vec::new());
        }
        if matches!(r, futex::WaitAny::TimedOut) || slice.is_expired() {
            for h in &hooks {
                h.pipe.sweep(h.peer);
            }
        }
    }
}
