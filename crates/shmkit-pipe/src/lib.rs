//! Pipes between processes on shared memory: Python's `multiprocessing.Pipe`.
//!
//! This crate sits above `shmkit-ring` (its byte-record ring carries the messages)
//! and `shmkit-sync` (futex waiting and the robust locks), beside `shmkit-queue`.
//! [`Pipe::duplex`] returns two [`Connection`]s that both send and receive (two rings
//! in one segment); [`Pipe::one_way`] returns a [`Receiver`] and a [`Sender`], whose
//! types make the wrong direction a compile error. Messages are serde values
//! ([`Connection::send`] / [`Connection::recv`], postcard) or raw bytes
//! (`send_bytes`, `recv_bytes`, `recv_bytes_max`, `recv_bytes_into`, and the
//! zero-copy `send_bytes_with` / `recv_bytes_with`, which write and read a message
//! in place in the shared ring), of any size:
//! small ones travel in one ring record, large ones in fragments, and a message is
//! delivered whole or not at all. When the peer end is closed in every process that
//! held it — dropped, closed, or its process died — `recv` drains what was sent and
//! then returns [`Error::Eof`], and `send` returns [`Error::Closed`]. Handles are
//! inherited by `fork` (each forked process holds what it inherited, like a file
//! descriptor), cross `exec` as tokens (they are serde types), and named pipes can be
//! opened by unrelated processes. [`wait`] waits on several receiving ends at once.
//! See `docs/pipe.md` for the layout, framing, EOF and sharing rules.
//!
//! ```
//! use shmkit_pipe::{Error, Pipe};
//!
//! let (a, b) = Pipe::duplex()?;
//! a.send(&("hello", 42u32))?;
//! assert_eq!(b.recv::<(String, u32)>()?, ("hello".to_string(), 42));
//! // Bigger than the 1 MiB ring: streamed in fragments while the other end reads.
//! let reader = std::thread::spawn(move || a.recv_bytes().map(|m| (a, m)));
//! b.send_bytes(&vec![7u8; 3 << 20])?;
//! let (a, big) = reader.join().expect("reader thread")?;
//! assert_eq!(big.len(), 3 << 20);
//! drop(b); // the only handle of that end: the pipe is at EOF for `a`
//! assert!(a.poll()?); // EOF counts as readable
//! assert!(matches!(a.recv_bytes(), Err(Error::Eof)));
//! # Ok::<(), shmkit_pipe::Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(not(shmkit_loom))]
mod bias;
mod error;
#[doc(hidden)]
pub mod frame;

#[cfg(not(shmkit_loom))]
mod conn;
#[cfg(not(shmkit_loom))]
mod core;
#[cfg(not(shmkit_loom))]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(not(shmkit_loom))]
mod hooks;
#[cfg(not(shmkit_loom))]
pub mod layout;
#[cfg(not(shmkit_loom))]
mod registry;
#[cfg(not(shmkit_loom))]
mod shm;

pub use error::{Error, Result};
pub use frame::MAX_MESSAGE_LEN;

#[cfg(not(shmkit_loom))]
pub use conn::{
    wait, Connection, Pipe, PipeBuilder, Readable, Receiver, Sender, DEFAULT_CAPACITY, MAX_WAIT,
};
#[cfg(not(shmkit_loom))]
pub use core::EndToken;
#[cfg(not(shmkit_loom))]
pub use hooks::LIVENESS_SLICE;
#[cfg(not(shmkit_loom))]
pub use layout::MAX_HOLDERS;
