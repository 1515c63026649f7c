//! Lock-free ring buffers over raw shared memory: the algorithms under shmkit's
//! queues and pipes.
//!
//! This crate sits above `shmkit-segment` (mappings, layouts, the atomics shim) and
//! below `shmkit-queue` and `shmkit-pipe`, which add blocking (futexes), serialisation
//! and disconnection. Everything here is non-blocking, allocation-free on the hot path
//! and free of system calls; every ring is a `#[repr(C)]` [`raw::RingHeader`]
//! (384 bytes: a read-mostly line, then `tail` and `head` on their own 128-byte
//! lines) followed by its slot or byte area, so it can live in a [`Segment`] placed
//! with [`RingConfig::add_to`] or in any 128-byte aligned shared memory (`*_raw`
//! constructors).
//!
//! | module    | ends            | items                         | crash tolerance |
//! |-----------|-----------------|-------------------------------|-----------------|
//! | [`spsc`]  | 1 producer, 1 consumer | fixed slots: `Pod` values, bytes; batches; reserve/commit and peek/release in place | a dead end is seen as gone; a successor attaches and resumes |
//! | [`mpmc`]  | any number      | fixed slots: `Pod` values, bytes | claims name their owner (pid + start time); a dead claimant's slot is repaired by whoever runs into it |
//! | [`bytes`] | 1 or many (shared ends, robust lock) | variable-length records with FIRST/LAST flags; reserve/peek in place | an unpublished record vanishes with its writer; a shared end's lock is taken over |
//!
//! **Guarantee** (all rings): no message is delivered twice; a message whose push
//! returned `Ok` is never lost, except one that a consumer had already claimed when it
//! died, before its pop returned. Shared memory is untrusted: every index, stamp and
//! length read from it is masked or checked, and a ring that no correct peer could
//! have produced yields [`Error::Corrupt`], never undefined behaviour or a panic.
//! See `docs/ring.md` for layouts, invariants and the crash protocol.
//!
//! Every algorithm is written once against `shmkit_segment::shim`, so
//! `RUSTFLAGS="--cfg shmkit_loom"` runs the same code under loom (`tests/loom.rs`).
//!
//! ```
//! use shmkit_ring::{mpmc, spsc, RingConfig};
//! use shmkit_segment::{layout::Layout, Kind, Segment};
//!
//! // An MPMC ring of 64 u64 slots in an anonymous segment (inherited by fork).
//! let cfg = RingConfig::mpmc_of::<u64>(64)?;
//! let mut layout = Layout::new();
//! let region = cfg.add_to(&mut layout)?;
//! let seg = Segment::create_anonymous(Kind::RAW, layout.size())?;
//! mpmc::init(&seg, region, &cfg)?;
//! let q = mpmc::Mpmc::attach(&seg, region)?;
//! q.try_push(42u64).map_err(shmkit_ring::Error::drop_item)?;
//! assert_eq!(q.try_pop::<u64>()?, 42);
//!
//! // An in-process SPSC ring, zero-copy: reserve, write in place, commit.
//! let (mut tx, mut rx) = spsc::new(&RingConfig::spsc(8, 64)?)?;
//! let mut slot = tx.reserve()?;
//! slot.write_at(0, b"in place");
//! slot.commit();
//! let r = rx.peek()?;
//! let mut buf = [0u8; 8];
//! r.read_at(0, &mut buf);
//! r.release();
//! assert_eq!(&buf, b"in place");
//! # Ok::<(), shmkit_ring::Error>(())
//! ```
//!
//! [`Segment`]: shmkit_segment::Segment
#![deny(unsafe_op_in_unsafe_fn)]

pub mod bytes;
mod config;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
mod lock;
pub mod mpmc;
pub mod owner;
pub mod raw;
mod role;
pub mod spsc;

pub use config::{RingConfig, RingKind, MAX_BYTES, MAX_SLOTS, MAX_SLOT_SIZE, MIN_BYTES};
pub use error::{Error, Result};
pub use owner::OwnerId;

#[cfg(not(target_pointer_width = "64"))]
compile_error!("shmkit-ring supports 64-bit targets only (positions and sizes are u64)");

/// `u64` to `usize`: lossless, as the crate builds for 64-bit targets only.
#[inline(always)]
#[allow(clippy::cast_possible_truncation)]
pub(crate) const fn us(x: u64) -> usize {
    x as usize
}

/// Whether the indices `a` and `b` of a ring of capacity `cap` are more than a lap
/// apart in both directions, which no protocol state allows: either may be ahead of
/// the other (a consumer polls slots or headers past the shared `tail`), by a lap
/// at most. A value read from shared memory that fails this is corrupt.
#[inline(always)]
pub(crate) const fn laps_apart(a: u64, b: u64, cap: u64) -> bool {
    a.wrapping_sub(b) > cap && b.wrapping_sub(a) > cap
}
