//! The shared layout of a pipe segment (kind `PIPE`, layout version 3).
//!
//! ```text
//! data offset  size   what
//! 0            128    Meta: magic "PIPE", version, flags (bit 0 duplex), ring capacity
//! 128          1408   EndCtl of end 0   (open count and id counter, recv side, send side:
//!                                        one line each; then 64 holder slots)
//! 1536         1408   EndCtl of end 1
//! 2944         512    Waits: data[0], data[1], space[0], space[1]  (one EventCount per line)
//! 3456         ...    ring 0 (received by end 0), then ring 1 if duplex (received by end 1),
//!                     each a shmkit-ring byte ring (384-byte header + capacity bytes)
//! ```
//! Everything is atomics; nothing points anywhere; zeroed memory is "no holder".

use shmkit_segment::shim::atomic::{AtomicU32, AtomicU64};
use shmkit_segment::{assert_layout, Kind, Shared};
use shmkit_sync::futex::EventCount;
use shmkit_sync::RawMutex;

/// Segment kind of a pipe.
pub const KIND: Kind = Kind::from_tag(*b"PIPE");
/// Layout version of a pipe segment: [`Control`] and the rings after it (bump on any
/// change). 2: `open`, the receiving and the sending [`Side`] each on a line of their
/// own; sides carry a bias. 3: the rings are byte rings of layout 2
/// (`shmkit_ring::raw::BYTES_VERSION`: published by record header).
pub const KIND_VERSION: u32 = 3;
/// `"PIPE"` little-endian, the first word of [`Meta`].
pub const MAGIC: u32 = u32::from_le_bytes(*b"PIPE");
/// Most processes that may hold one end at once.
pub const MAX_HOLDERS: usize = 64;
/// `Meta::flags` bit: two rings (a duplex pipe).
pub const FLAG_DUPLEX: u32 = 1;

/// The first line: what kind of pipe this is.
#[derive(Debug, Default)]
#[repr(C, align(128))]
pub struct Meta {
    /// [`MAGIC`].
    pub magic: AtomicU32,
    /// [`KIND_VERSION`].
    pub version: AtomicU32,
    /// [`FLAG_DUPLEX`].
    pub flags: AtomicU32,
    /// Reserved, 0.
    pub reserved: AtomicU32,
    /// Data bytes of each ring.
    pub capacity: AtomicU64,
}
assert_layout!(Meta, size = 128, align = 128,
    magic @ 0, version @ 4, flags @ 8, reserved @ 12, capacity @ 16);

/// One holder of an end: a process (packed pid and start time, 0 = free) and how
/// many handles of the end it has open (informational; only the holder writes it).
#[derive(Debug, Default)]
#[repr(C)]
pub struct Slot {
    /// Packed owner ([`crate::registry`]), 0 = free.
    pub owner: AtomicU64,
    /// Handles open in that process.
    pub count: AtomicU64,
}
assert_layout!(Slot, size = 16, align = 8, owner @ 0, count @ 8);

/// `Side::bias` of a side that more than one handle used: locked for good.
pub const BIAS_REVOKED: u64 = u64::MAX;

/// One side (sending or receiving) of an end: the message lock that serialises its
/// handles, and the bias that lets one handle skip it (see `crate::core`).
#[derive(Debug)]
#[repr(C, align(128))]
pub struct Side {
    /// Robust message lock, held for one whole message by a handle without the bias;
    /// the only lock of the ring side it uses (attached serialized).
    pub lock: RawMutex,
    /// 0 = never biased; a handle id = that handle may skip `lock` while it stays
    /// there; [`BIAS_REVOKED`] = every handle locks.
    pub bias: AtomicU64,
    /// Packed process id (pid, start time) of the bias holder, for liveness checks.
    pub bias_pid: AtomicU64,
    /// 1 while the bias holder is inside a message without the lock.
    pub busy: AtomicU64,
    /// Reserved, 0.
    pub reserved: [AtomicU64; 11],
}
assert_layout!(Side, size = 128, align = 128,
    lock @ 0, bias @ 16, bias_pid @ 24, busy @ 32, reserved @ 40);

/// Per-end state. `open` (read by the peer on every message, written only when the
/// holders change) and each side (written by this end's users on every message)
/// have a line of their own, so that no message touches a line another process
/// writes on every message.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct EndCtl {
    /// Claimed slots. 0 = the end is closed for good.
    pub open: AtomicU64,
    /// Last handle id given out for this end (ids start at 1).
    pub next_id: AtomicU64,
    /// Reserved, 0.
    pub reserved0: [AtomicU64; 14],
    /// Receivers of this end (and the consumer side of the ring it receives from).
    pub recv: Side,
    /// Senders of this end (and the producer side of the ring it sends into).
    pub send: Side,
    /// The holders.
    pub slots: [Slot; MAX_HOLDERS],
}
assert_layout!(EndCtl, size = 1408, align = 128,
    open @ 0, next_id @ 8, reserved0 @ 16, recv @ 128, send @ 256, slots @ 384);

/// One event count alone on a 128-byte line.
#[derive(Debug, Default)]
#[repr(C, align(128))]
pub struct WaitLine {
    /// The event count.
    pub ec: EventCount,
}
assert_layout!(WaitLine, size = 128, align = 128, ec @ 0);

/// The control block at data offset 0.
#[derive(Debug)]
#[repr(C)]
pub struct Control {
    /// What this is.
    pub meta: Meta,
    /// The two ends.
    pub ends: [EndCtl; 2],
    /// Receivers of ring `i` wait here for data (or EOF).
    pub data: [WaitLine; 2],
    /// Senders into ring `i` wait here for room (or a closed peer).
    pub space: [WaitLine; 2],
}
assert_layout!(Control, size = 3456, align = 128, meta @ 0, ends @ 128, data @ 2944, space @ 3200);

// Each of these is a repr(C) struct of atomics, RawMutex and EventCount (themselves
// Shared: atomics only): valid for every bit pattern, no pointers, no Drop, mutated
// only atomically; padding bytes are never read.
// SAFETY: as above.
unsafe impl Shared for Meta {}
// SAFETY: as above.
unsafe impl Shared for Slot {}
// SAFETY: as above.
unsafe impl Shared for Side {}
// SAFETY: as above.
unsafe impl Shared for EndCtl {}
// SAFETY: as above.
unsafe impl Shared for WaitLine {}
// SAFETY: as above.
unsafe impl Shared for Control {}
