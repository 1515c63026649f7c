//! [`RingConfig`]: the shape of a ring, and how much memory it needs.

use crate::error::{Error, Result};
use crate::raw::{mpmc_stride, spsc_slot_layout, HEADER_SIZE};
use crate::us;

/// Which algorithm a ring runs (stored in its header; an attach checks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum RingKind {
    /// Single producer, single consumer, fixed-size slots ([`crate::spsc`]).
    Spsc = 1,
    /// Many producers, many consumers, fixed-size slots ([`crate::mpmc`]).
    Mpmc = 2,
    /// Variable-length byte records ([`crate::bytes`]).
    Bytes = 3,
}

impl RingKind {
    pub(crate) fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(RingKind::Spsc),
            2 => Some(RingKind::Mpmc),
            3 => Some(RingKind::Bytes),
            _ => None,
        }
    }
}

/// Largest slot count of a slot ring (2^32).
pub const MAX_SLOTS: u64 = 1 << 32;
/// Largest slot size in bytes (16 MiB).
pub const MAX_SLOT_SIZE: u64 = 1 << 24;
/// Largest byte-ring capacity (2^40 bytes).
pub const MAX_BYTES: u64 = 1 << 40;
/// Smallest byte-ring capacity (room for two 8-byte record headers).
pub const MIN_BYTES: u64 = 16;

/// The shape of a ring: its kind, capacity (a power of two: slots, or bytes for a byte
/// ring) and slot size (bytes per slot, rounded up to a multiple of 8).
///
/// ```
/// use shmkit_ring::{RingConfig, RingKind};
/// let c = RingConfig::spsc(1024, 12)?;
/// assert_eq!((c.kind(), c.capacity(), c.slot_size()), (RingKind::Spsc, 1024, 16));
/// assert!(RingConfig::mpmc(1000, 8).is_err()); // not a power of two
/// let b = RingConfig::bytes(1 << 16)?;
/// assert_eq!(b.max_record_len(), (1 << 15) - 8);
/// # Ok::<(), shmkit_ring::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RingConfig {
    kind: RingKind,
    capacity: u64,
    slot_size: u64,
}

impl RingConfig {
    /// A single-producer single-consumer ring of `capacity` slots of `slot_size` bytes.
    ///
    /// # Errors
    /// [`Error::Config`] if `capacity` is not a power of two in `1..=2^32` or
    /// `slot_size` is not in `1..=16 MiB`.
    pub fn spsc(capacity: usize, slot_size: usize) -> Result<Self> {
        Self::slots(RingKind::Spsc, capacity, slot_size)
    }

    /// A multi-producer multi-consumer ring of `capacity` slots of `slot_size` bytes.
    ///
    /// # Errors
    /// As [`RingConfig::spsc`].
    pub fn mpmc(capacity: usize, slot_size: usize) -> Result<Self> {
        Self::slots(RingKind::Mpmc, capacity, slot_size)
    }

    /// An SPSC ring whose slots hold one `T`.
    ///
    /// # Errors
    /// As [`RingConfig::spsc`].
    pub fn spsc_of<T>(capacity: usize) -> Result<Self> {
        Self::spsc(capacity, std::mem::size_of::<T>().max(1))
    }

    /// An MPMC ring whose slots hold one `T`.
    ///
    /// # Errors
    /// As [`RingConfig::spsc`].
    pub fn mpmc_of<T>(capacity: usize) -> Result<Self> {
        Self::mpmc(capacity, std::mem::size_of::<T>().max(1))
    }

    /// A byte-record ring with a data area of `capacity` bytes (a power of two,
    /// 16 ..= 2^40). Records up to [`RingConfig::max_record_len`] bytes fit.
    ///
    /// # Errors
    /// [`Error::Config`] if `capacity` is out of range or not a power of two.
    pub fn bytes(capacity: usize) -> Result<Self> {
        let c = capacity as u64;
        if !c.is_power_of_two() || !(MIN_BYTES..=MAX_BYTES).contains(&c) {
            return Err(Error::Config {
                what: "byte ring capacity must be a power of two in 16..=2^40",
            });
        }
        Ok(RingConfig {
            kind: RingKind::Bytes,
            capacity: c,
            slot_size: 0,
        })
    }

    fn slots(kind: RingKind, capacity: usize, slot_size: usize) -> Result<Self> {
        let c = capacity as u64;
        if !c.is_power_of_two() || c > MAX_SLOTS {
            return Err(Error::Config {
                what: "slot count must be a power of two in 1..=2^32",
            });
        }
        let s = slot_size as u64;
        if s == 0 || s > MAX_SLOT_SIZE {
            return Err(Error::Config {
                what: "slot size must be in 1..=16 MiB",
            });
        }
        Ok(RingConfig {
            kind,
            capacity: c,
            slot_size: (s + 7) & !7,
        })
    }

    /// Rebuilds a config from header fields, validating them like the constructors.
    pub(crate) fn from_raw(kind: u32, capacity: u64, slot_size: u64) -> Result<Self> {
        let bad = || Error::Corrupt {
            what: "header kind, capacity or slot size out of range",
        };
        let kind = RingKind::from_u32(kind).ok_or_else(bad)?;
        let c = usize::try_from(capacity).map_err(|_| bad())?;
        let s = usize::try_from(slot_size).map_err(|_| bad())?;
        let cfg = match kind {
            RingKind::Bytes if slot_size == 0 => Self::bytes(c),
            RingKind::Bytes => return Err(bad()),
            k => Self::slots(k, c, s),
        }
        .map_err(|_| bad())?;
        if cfg.slot_size != slot_size {
            return Err(bad());
        }
        Ok(cfg)
    }

    /// The algorithm.
    pub const fn kind(&self) -> RingKind {
        self.kind
    }

    /// Checks that this configuration is for a `kind` ring.
    ///
    /// # Errors
    /// [`Error::Incompatible`] naming the expected and found kinds.
    pub fn expect_kind(&self, kind: RingKind) -> Result<()> {
        if self.kind != kind {
            return Err(Error::Incompatible {
                what: "ring kind",
                expected: kind as u64,
                found: self.kind as u64,
            });
        }
        Ok(())
    }

    /// Slots, or bytes of the data area for a byte ring.
    pub const fn capacity(&self) -> usize {
        // Cast: at most 2^40, checked at construction (64-bit targets only).
        us(self.capacity)
    }

    /// Bytes per slot (a multiple of 8); 0 for a byte ring.
    pub const fn slot_size(&self) -> usize {
        us(self.slot_size)
    }

    /// The largest record payload a byte ring carries: half the data area minus the
    /// 8-byte record header (so a record always fits once the ring drains, wherever
    /// the write position is). 0 for slot rings.
    pub const fn max_record_len(&self) -> usize {
        match self.kind {
            RingKind::Bytes => us(self.capacity / 2 - 8),
            _ => 0,
        }
    }

    pub(crate) const fn cap_u64(&self) -> u64 {
        self.capacity
    }

    /// Bytes of the data area after the header.
    pub const fn data_len(&self) -> usize {
        let per_slot = match self.kind {
            RingKind::Spsc => spsc_slot_layout(us(self.slot_size)).stride as u64,
            RingKind::Mpmc => mpmc_stride(us(self.slot_size)) as u64,
            RingKind::Bytes => 1,
        };
        // Cast: at most 2^32 * (2^24 + 64) < 2^57, fits a 64-bit usize.
        us(self.capacity * per_slot)
    }

    /// Total bytes the ring occupies: the 384-byte header plus the data area. Place it
    /// 128-byte aligned (see [`RingConfig::add_to`]).
    pub const fn size(&self) -> usize {
        HEADER_SIZE + self.data_len()
    }

    /// Reserves the ring's bytes (128-byte aligned) in a segment layout.
    ///
    /// # Errors
    /// [`Error::Segment`] if the layout would grow too large.
    pub fn add_to(
        &self,
        layout: &mut shmkit_segment::layout::Layout,
    ) -> Result<shmkit_segment::layout::ByteRegion> {
        Ok(layout.add_bytes(self.size(), 128)?)
    }
}
