//! The shared layout (header, slot control words) and `Mem`, the one place that
//! turns raw pointers into the header, slot words and payload bytes.
//!
//! Everything unsafe about addressing shared memory lives here; the algorithms in
//! `spsc`, `mpmc` and `bytes` only pass indices they have already masked or
//! bounds-checked.

use crate::config::{RingConfig, RingKind};
use crate::error::{Error, Result};
use shmkit_segment::shim::atomic::{AtomicU32, AtomicU64, Ordering};
use shmkit_segment::shim::cell::UnsafeCell;
use std::ptr::NonNull;
use std::sync::Arc;

/// `"SHRG"` little-endian: the first word of every ring header.
pub const MAGIC: u32 = u32::from_le_bytes(*b"SHRG");
/// Layout version of the ring header (see `docs/ring.md`); each kind carries its own
/// version in it: [`SPSC_VERSION`], [`MPMC_VERSION`], [`BYTES_VERSION`].
pub const VERSION: u32 = 1;
/// Layout version of an MPMC ring (header as [`VERSION`]; since version 2 every slot
/// takes whole 64-byte lines, see [`mpmc_stride`]).
pub const MPMC_VERSION: u32 = 2;
/// Layout version of a byte ring (header as [`VERSION`]; since version 2 a record
/// header word carries a valid bit (63), and the word after the last published
/// record is kept 0, so that the consumer polls headers instead of `tail`).
pub const BYTES_VERSION: u32 = 2;
/// Layout version of an SPSC ring (header as [`VERSION`], plus a sequence word in
/// front of every slot since version 2).
pub const SPSC_VERSION: u32 = 2;
/// Bytes of the sequence word in front of each SPSC slot's payload.
pub const SPSC_SEQ_SIZE: usize = 8;

/// Where the parts of one SPSC slot lie, in bytes from the slot's start (slot `i`
/// starts at `HEADER_SIZE + i * stride`). See [`spsc_slot_layout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpscSlotLayout {
    /// Offset of the sequence word (an `AtomicU64`).
    pub seq: usize,
    /// Offset of the payload.
    pub payload: usize,
    /// Bytes from one slot to the next.
    pub stride: usize,
}

/// The layout of an SPSC slot of `slot_size` payload bytes (a multiple of 8):
///
/// * `8 + slot_size <= 64`: sequence at 0, payload at 8, stride the next power of two
///   (16, 32 or 64), so a slot never straddles a 64-byte line: sequence and payload
///   reach the consumer in one line transfer;
/// * larger: sequence at 56, payload at 64 (64-byte aligned, as fast copies like it),
///   stride `64 + slot_size` rounded up to 64.
pub const fn spsc_slot_layout(slot_size: usize) -> SpscSlotLayout {
    if SPSC_SEQ_SIZE + slot_size <= 64 {
        SpscSlotLayout {
            seq: 0,
            payload: SPSC_SEQ_SIZE,
            stride: (SPSC_SEQ_SIZE + slot_size).next_power_of_two(),
        }
    } else {
        SpscSlotLayout {
            seq: 64 - SPSC_SEQ_SIZE,
            payload: 64,
            stride: 64 + slot_size.div_ceil(64) * 64,
        }
    }
}

/// The layout version a ring of `kind` carries in its header.
pub(crate) const fn version_of(kind: RingKind) -> u32 {
    match kind {
        RingKind::Spsc => SPSC_VERSION,
        RingKind::Bytes => BYTES_VERSION,
        RingKind::Mpmc => MPMC_VERSION,
    }
}
/// Bytes of [`RingHeader`].
pub const HEADER_SIZE: usize = 384;
/// Bytes of the control words in front of each MPMC slot.
pub const SLOT_CTL_SIZE: usize = 16;

/// Bytes from one MPMC slot to the next for `slot_size` payload bytes: the control
/// words and the payload, rounded up to whole 64-byte lines. Neighbouring slots never
/// share a line, so a producer claiming slot `p + 1` does not take the line from the
/// consumer reading slot `p` (packed 40-byte slots ran a 1P/1C `Queue<u64>` at about
/// 0.6x the rate, and 2P+2C at 0.7x).
pub const fn mpmc_stride(slot_size: usize) -> usize {
    (SLOT_CTL_SIZE + slot_size).div_ceil(64) * 64
}

/// One 128-byte line (two 64-byte lines, so adjacent-line prefetch does not make
/// neighbours share).
#[derive(Debug, Default)]
#[repr(C, align(128))]
pub struct CacheLine<T>(pub T);

/// The read-mostly first line of a ring header.
#[derive(Debug, Default)]
#[repr(C)]
pub struct Meta {
    /// [`MAGIC`] once initialised (stored last, with Release).
    pub(crate) magic: AtomicU32,
    /// [`VERSION`].
    pub(crate) version: AtomicU32,
    /// [`RingKind`] as `u32`.
    pub(crate) kind: AtomicU32,
    /// Reserved, 0.
    pub(crate) flags: AtomicU32,
    /// Slots, or bytes of a byte ring.
    pub(crate) capacity: AtomicU64,
    /// Bytes per slot; 0 for a byte ring.
    pub(crate) slot_size: AtomicU64,
    /// Owner id of the producer end (SPSC and byte ring), 0 = none.
    pub(crate) producer: AtomicU64,
    /// Owner id of the consumer end (SPSC and byte ring), 0 = none.
    pub(crate) consumer: AtomicU64,
}

/// The header in front of every ring: a read-mostly line, then the producer's index
/// (`tail`) and the consumer's index (`head`), each on its own 128-byte line.
///
/// `#[repr(C)]`, 384 bytes, 128-byte aligned; made only of atomics. See
/// `docs/ring.md` for the byte layout.
#[derive(Debug, Default)]
#[repr(C)]
pub struct RingHeader {
    pub(crate) meta: CacheLine<Meta>,
    /// Next position to write; monotonic, never masked in memory.
    pub(crate) tail: CacheLine<AtomicU64>,
    /// Next position to read; monotonic, never masked in memory.
    pub(crate) head: CacheLine<AtomicU64>,
}

shmkit_segment::assert_layout!(Meta, size = 48, align = 8,
    magic @ 0, version @ 4, kind @ 8, flags @ 12, capacity @ 16, slot_size @ 24,
    producer @ 32, consumer @ 40);
shmkit_segment::assert_layout!(RingHeader, size = 384, align = 128,
    meta @ 0, tail @ 128, head @ 256);

/// Offset of the ring's layout version word (an `AtomicU32` holding [`VERSION`], or
/// [`SPSC_VERSION`] for an SPSC ring, [`BYTES_VERSION`] for a byte ring).
pub const VERSION_OFFSET: usize =
    std::mem::offset_of!(RingHeader, meta) + std::mem::offset_of!(Meta, version);
#[cfg(not(shmkit_loom))]
const _: () = assert!(VERSION_OFFSET == 4 && TAIL_OFFSET == 128 && HEAD_OFFSET == 256);

/// Offset of the producer's index (`tail`, an `AtomicU64`) from the start of a ring,
/// for layers that peek at a ring's fill level without a handle (read-only).
pub const TAIL_OFFSET: usize = std::mem::offset_of!(RingHeader, tail);
/// Offset of the consumer's index (`head`, an `AtomicU64`) from the start of a ring.
pub const HEAD_OFFSET: usize = std::mem::offset_of!(RingHeader, head);

/// Control words of one MPMC slot: its stamp (position << 3 | state) and the owner id
/// of the handle holding the slot's claim lock (0 = free). See `mpmc`.
#[derive(Debug, Default)]
#[repr(C)]
pub struct SlotCtl {
    pub(crate) stamp: AtomicU64,
    pub(crate) owner: AtomicU64,
}

shmkit_segment::assert_layout!(SlotCtl, size = 16, align = 8, stamp @ 0, owner @ 8);

// SAFETY: repr(C) of atomics only (valid for every bit pattern, no Drop, mutated only
// atomically); padding bytes of `CacheLine` are never read.
#[cfg(not(shmkit_loom))]
unsafe impl shmkit_segment::Shared for RingHeader {}
// SAFETY: as above: two atomic integers.
#[cfg(not(shmkit_loom))]
unsafe impl shmkit_segment::Shared for SlotCtl {}

impl RingHeader {
    /// A zeroed header, as a fresh mapping holds it.
    pub fn new() -> Self {
        Self::default()
    }

    /// Initialises a zeroed header for `cfg`; [`MAGIC`] is stored last with Release
    /// (paired with the Acquire load in [`RingHeader::validate`]).
    pub(crate) fn init(&self, cfg: &RingConfig) {
        let m = &self.meta.0;
        // Relaxed: published by the Release store of `magic` below.
        m.version.store(version_of(cfg.kind()), Ordering::Relaxed);
        m.kind.store(cfg.kind() as u32, Ordering::Relaxed);
        m.flags.store(0, Ordering::Relaxed);
        m.capacity.store(cfg.cap_u64(), Ordering::Relaxed);
        m.slot_size.store(cfg.slot_size() as u64, Ordering::Relaxed);
        m.producer.store(0, Ordering::Relaxed);
        m.consumer.store(0, Ordering::Relaxed);
        self.tail.0.store(0, Ordering::Relaxed);
        self.head.0.store(0, Ordering::Relaxed);
        // Release: pairs with the Acquire load of `magic` in `validate`.
        m.magic.store(MAGIC, Ordering::Release);
    }

    /// Reads and checks the header: magic, version, kind, and a sane shape.
    pub(crate) fn validate(&self, kind: RingKind) -> Result<RingConfig> {
        let m = &self.meta.0;
        // Acquire: pairs with the Release store of `magic` in `init`.
        let magic = m.magic.load(Ordering::Acquire);
        if magic != MAGIC {
            return Err(Error::Incompatible {
                what: "magic (not an initialised ring)",
                expected: MAGIC.into(),
                found: magic.into(),
            });
        }
        // Relaxed: made visible by the Acquire above; checked below anyway.
        let k = m.kind.load(Ordering::Relaxed);
        if k != kind as u32 {
            return Err(Error::Incompatible {
                what: "ring kind",
                expected: kind as u64,
                found: k.into(),
            });
        }
        let version = m.version.load(Ordering::Relaxed);
        if version != version_of(kind) {
            return Err(Error::Incompatible {
                what: "ring layout version",
                expected: version_of(kind).into(),
                found: version.into(),
            });
        }
        RingConfig::from_raw(
            k,
            m.capacity.load(Ordering::Relaxed),
            m.slot_size.load(Ordering::Relaxed),
        )
    }
}

/// What keeps a ring's memory mapped while a handle uses it.
#[derive(Debug, Clone)]
enum Keep {
    /// A segment (mapping) handle.
    #[cfg(not(shmkit_loom))]
    Segment(#[allow(dead_code)] shmkit_segment::Segment),
    /// Heap memory (in-process rings and loom models).
    Heap(#[allow(dead_code)] Arc<Heap>),
    /// The caller of an `unsafe` raw constructor promised it stays mapped.
    Raw,
}

/// An in-process ring: header, slot control words and payload words on the heap.
#[derive(Debug)]
struct Heap {
    header: RingHeader,
    ctl: Box<[SlotCtl]>,
    data: Box<[UnsafeCell<u64>]>,
}

// SAFETY: the cells are only accessed through `Mem`, under the ring protocols, which
// synchronise every access between threads (loom checks that); the atomics are Sync.
unsafe impl Send for Heap {}
// SAFETY: as for Send.
unsafe impl Sync for Heap {}

/// Pointers into one ring's memory, with the validated config copied out of it.
///
/// Payload is addressed in *logical bytes* (`slot * data_stride + offset`); the bytes
/// are `UnsafeCell<u64>` words, so that under loom every word is race-checked.
#[derive(Debug, Clone)]
pub(crate) struct Mem {
    header: NonNull<RingHeader>,
    ctl: NonNull<u8>,
    ctl_stride: usize,
    data: NonNull<UnsafeCell<u64>>,
    data_stride: usize,
    /// Bytes addressable in one slot (the whole area for a byte ring).
    limit: usize,
    /// Slots (1 for a byte ring).
    slots: usize,
    cfg: RingConfig,
    _keep: Keep,
}

// SAFETY: Mem only hands out shared references to atomics (Sync) and raw payload
// accesses that the ring protocols synchronise; the pointed-to memory is kept alive
// by `_keep` (an Arc or a Segment, both Send + Sync) or by the raw constructor's
// caller, so it may move to and be used from another thread.
unsafe impl Send for Mem {}
// SAFETY: as for Send: all shared access goes through atomics or protocol-guarded cells.
unsafe impl Sync for Mem {}

impl Mem {
    /// A new ring of `cfg` on the heap, initialised.
    pub(crate) fn new_heap(cfg: &RingConfig) -> Mem {
        // An SPSC slot's sequence word is the `stamp` of a heap `SlotCtl` (the heap
        // layout is private; only the shared one is a format).
        let (ctl_len, words) = match cfg.kind() {
            RingKind::Mpmc | RingKind::Spsc => {
                (cfg.capacity(), cfg.capacity() * cfg.slot_size() / 8)
            }
            // Under loom, a byte ring's header words are the `stamp`s of one heap
            // `SlotCtl` per data word (see `Mem::hdr`).
            RingKind::Bytes => (
                if cfg!(shmkit_loom) {
                    cfg.capacity() / 8
                } else {
                    0
                },
                cfg.capacity() / 8,
            ),
        };
        let heap = Arc::new(Heap {
            header: RingHeader::new(),
            ctl: (0..ctl_len).map(|_| SlotCtl::default()).collect(),
            data: (0..words).map(|_| UnsafeCell::new(0)).collect(),
        });
        let mem = Mem {
            header: NonNull::from(&heap.header),
            ctl: NonNull::from(&*heap.ctl).cast(),
            ctl_stride: std::mem::size_of::<SlotCtl>(),
            data: NonNull::from(&*heap.data).cast(),
            data_stride: cfg.slot_size(),
            limit: limit_of(cfg),
            slots: slots_of(cfg),
            cfg: *cfg,
            _keep: Keep::Heap(heap),
        };
        mem.init_slots();
        mem.header().init(cfg);
        mem
    }

    /// Initialises a ring of `cfg` in zeroed memory at `ptr`.
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `len` bytes for as long as any
    /// handle made from it lives, and no handle may be using a ring there.
    pub(crate) unsafe fn init_raw(ptr: NonNull<u8>, len: usize, cfg: &RingConfig) -> Result<()> {
        // SAFETY: forwarded from the caller.
        let mem = unsafe { Self::map_raw(ptr, len, *cfg, Keep::Raw) }?;
        mem.init_slots();
        mem.header().init(cfg);
        Ok(())
    }

    /// Attaches to an initialised ring of kind `kind` at `ptr`.
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `len` bytes for as long as the
    /// returned `Mem` (and its clones) live; other processes may write it.
    pub(crate) unsafe fn attach_raw(ptr: NonNull<u8>, len: usize, kind: RingKind) -> Result<Mem> {
        check_place(ptr, len, HEADER_SIZE)?;
        // SAFETY: aligned and in bounds (checked just above), valid per the caller;
        // RingHeader is all atomics, valid for any bit pattern.
        let header = unsafe { &*ptr.as_ptr().cast::<RingHeader>() };
        let cfg = header.validate(kind)?;
        // SAFETY: forwarded from the caller.
        unsafe { Self::map_raw(ptr, len, cfg, Keep::Raw) }
    }

    /// Initialises a ring of `cfg` in `region` of `seg`.
    #[cfg(not(shmkit_loom))]
    pub(crate) fn init_segment(
        seg: &shmkit_segment::Segment,
        region: shmkit_segment::layout::ByteRegion,
        cfg: &RingConfig,
    ) -> Result<()> {
        let ptr = region.ptr(seg)?;
        // SAFETY: `ptr..ptr+region.len()` is inside the mapping of `seg`
        // (bounds-checked by `ByteRegion::ptr`); the caller of the public init owns it.
        unsafe { Self::init_raw(ptr, region.len(), cfg) }
    }

    /// Attaches to the ring of kind `kind` in `region` of `seg`, keeping `seg` mapped.
    #[cfg(not(shmkit_loom))]
    pub(crate) fn attach_segment(
        seg: &shmkit_segment::Segment,
        region: shmkit_segment::layout::ByteRegion,
        kind: RingKind,
    ) -> Result<Mem> {
        let ptr = region.ptr(seg)?;
        // SAFETY: the range is inside the mapping of `seg` (bounds-checked by
        // `ByteRegion::ptr`), which the returned Mem keeps alive through its clone.
        let mut mem = unsafe { Self::attach_raw(ptr, region.len(), kind) }?;
        mem._keep = Keep::Segment(seg.clone());
        Ok(mem)
    }

    /// # Safety
    /// As [`Mem::attach_raw`].
    unsafe fn map_raw(ptr: NonNull<u8>, len: usize, cfg: RingConfig, keep: Keep) -> Result<Mem> {
        check_place(ptr, len, cfg.size())?;
        // SAFETY: HEADER_SIZE <= cfg.size() <= len: in bounds of the caller's range.
        let area = unsafe { ptr.as_ptr().add(HEADER_SIZE) };
        let (ctl_off, ctl_stride, data_off, data_stride) = match cfg.kind() {
            RingKind::Mpmc => {
                let s = mpmc_stride(cfg.slot_size());
                (0, s, SLOT_CTL_SIZE, s)
            }
            RingKind::Spsc => {
                let l = spsc_slot_layout(cfg.slot_size());
                (l.seq, l.stride, l.payload, l.stride)
            }
            RingKind::Bytes => (0, 0, 0, cfg.slot_size()),
        };
        // SAFETY: ctl_off < data_off <= 64 < data_len (a slot ring's stride exceeds
        // its payload offset; a byte ring has offset 0), so still inside the caller's
        // range.
        let ctl = unsafe { area.add(ctl_off) };
        // SAFETY: as just above.
        let data = unsafe { area.add(data_off) };
        Ok(Mem {
            header: ptr.cast(),
            ctl: NonNull::new(ctl).ok_or(Error::Config { what: "null ring" })?,
            ctl_stride,
            data: NonNull::new(data.cast()).ok_or(Error::Config { what: "null ring" })?,
            data_stride,
            limit: limit_of(&cfg),
            slots: slots_of(&cfg),
            cfg,
            _keep: keep,
        })
    }

    /// Writes every MPMC slot's initial stamp (position i, EMPTY) and a free owner,
    /// or every SPSC slot's initial sequence (`i + 1 - capacity`: "position
    /// `i - capacity` was published here", a virtual lap before the first).
    ///
    /// A byte ring: the header word at position 0 is 0 ("nothing published").
    fn init_slots(&self) {
        if self.cfg.kind() == RingKind::Bytes {
            // Relaxed: published by the Release store of the header's magic.
            self.hdr(0).store(0, Ordering::Relaxed);
            return;
        }
        if self.cfg.kind() == RingKind::Spsc {
            let cap = self.cfg.cap_u64();
            for i in 0..self.cfg.capacity() {
                // Relaxed: published by the Release store of the header's magic.
                self.seq(i).store(
                    (i as u64).wrapping_add(1).wrapping_sub(cap),
                    Ordering::Relaxed,
                );
            }
            return;
        }
        if self.cfg.kind() != RingKind::Mpmc {
            return;
        }
        for i in 0..self.cfg.capacity() {
            let c = self.ctl(i);
            // Relaxed: published by the Release store of the header's magic.
            c.stamp.store((i as u64) << 3, Ordering::Relaxed);
            c.owner.store(0, Ordering::Relaxed);
        }
    }

    /// The validated configuration (a private copy; never re-read from shared memory).
    #[inline]
    pub(crate) fn cfg(&self) -> &RingConfig {
        &self.cfg
    }

    /// The ring header.
    #[inline]
    pub(crate) fn header(&self) -> &RingHeader {
        // SAFETY: `header` points at an aligned RingHeader (checked at construction)
        // kept alive by `_keep` or the raw constructor's contract; RingHeader is all
        // atomics, so a shared reference is sound while other processes write it.
        unsafe { self.header.as_ref() }
    }

    /// The control words of MPMC slot `i`.
    ///
    /// # Panics
    /// In debug builds, if `i` is not below the capacity (callers mask it).
    #[inline]
    pub(crate) fn ctl(&self, i: usize) -> &SlotCtl {
        debug_assert!(i < self.cfg.capacity() && self.cfg.kind() == RingKind::Mpmc);
        let i = i & (self.cfg.capacity() - 1);
        // SAFETY: i < capacity (masked just above), so the offset lies within the
        // capacity * ctl_stride bytes of the slot area.
        let p = unsafe { self.ctl.as_ptr().add(i * self.ctl_stride) };
        // SAFETY: `p` is 8-aligned (area 128-aligned, stride a multiple of 8) and in
        // bounds; SlotCtl is two atomics, valid for every bit pattern.
        unsafe { &*p.cast::<SlotCtl>() }
    }

    /// Asks the CPU to fetch the line holding MPMC slot `i`'s control words into
    /// this core's cache for writing (`PREFETCHW` on x86-64; nothing elsewhere).
    #[inline(always)]
    pub(crate) fn prefetch_ctl(&self, i: usize) {
        #[cfg(all(target_arch = "x86_64", not(shmkit_loom)))]
        {
            let i = i & (self.cfg.capacity() - 1);
            let p = self.ctl.as_ptr().wrapping_add(i * self.ctl_stride);
            // SAFETY: a prefetch is only a hint: it never faults, writes nothing and
            // has no architectural effect (on x86-64 processors without PREFETCHW the
            // opcode executes as a NOP); `p` lies in the slot area anyway.
            unsafe {
                std::arch::asm!(
                    "prefetchw [{p}]",
                    p = in(reg) p,
                    options(nostack, preserves_flags, readonly)
                );
            }
        }
        #[cfg(not(all(target_arch = "x86_64", not(shmkit_loom))))]
        let _ = i;
    }

    /// The sequence word of SPSC slot `i` (`i` is masked to the capacity).
    #[inline(always)]
    pub(crate) fn seq(&self, i: usize) -> &AtomicU64 {
        debug_assert!(self.cfg.kind() == RingKind::Spsc);
        let i = i & (self.cfg.capacity() - 1);
        // SAFETY: i < capacity (masked just above), so the word at `ctl + i * stride`
        // (ctl = area + seq offset, seq offset + 8 <= stride) lies within the
        // capacity * stride bytes of the slot area (or the heap's ctl array).
        let p = unsafe { self.ctl.as_ptr().add(i * self.ctl_stride) };
        // SAFETY: `p` is 8-aligned (area 128-aligned, offset and stride multiples of
        // 8; or a heap `SlotCtl`, whose first field is this word) and in bounds; an
        // atomic u64 is valid for every bit pattern.
        unsafe { &*p.cast::<AtomicU64>() }
    }

    /// The byte ring's 8-byte header word at data-area offset `off` (a multiple of 8),
    /// as an atomic: the consumer polls it while the producer publishes it. The same
    /// bytes are payload at other times (accessed by `write`/`read`, never
    /// concurrently with an atomic access: the ring protocol orders them).
    ///
    /// # Panics
    /// If `off` is unaligned or out of bounds (callers mask it: a panic is a bug).
    #[inline(always)]
    pub(crate) fn hdr(&self, off: usize) -> &AtomicU64 {
        debug_assert!(self.cfg.kind() == RingKind::Bytes);
        assert!(
            off % 8 == 0,
            "unaligned byte-ring header (a bug in shmkit-ring)"
        );
        let w = self.word(0, off, 8);
        #[cfg(not(shmkit_loom))]
        {
            // SAFETY: `word` checked that the 8 bytes lie in the data area.
            let p = unsafe { self.data.as_ptr().add(w) };
            // SAFETY: 8-aligned (the area is 128-aligned, `off` a multiple of 8), in
            // bounds, valid for the ring's lifetime; `UnsafeCell<u64>` (repr
            // transparent) and `AtomicU64` have the same layout, and an atomic u64 is
            // valid for every bit pattern.
            unsafe { &*p.cast::<AtomicU64>() }
        }
        #[cfg(shmkit_loom)]
        {
            // SAFETY: word `w` < capacity / 8 = the number of heap `SlotCtl`s (loom
            // rings live on the heap), `ctl_stride` apart.
            let p = unsafe { self.ctl.as_ptr().add(w * self.ctl_stride) };
            // SAFETY: an aligned, live `SlotCtl` (see above).
            unsafe { &(*p.cast::<SlotCtl>()).stamp }
        }
    }

    /// Word index of logical byte `off` of slot `slot`; checks it is in bounds.
    #[inline(always)]
    fn word(&self, slot: usize, off: usize, len: usize) -> usize {
        assert!(
            slot < self.slots && off <= self.limit && len <= self.limit - off,
            "ring payload access out of bounds (a bug in shmkit-ring)"
        );
        (slot * self.data_stride + off) / 8
    }

    /// Copies `src` into slot `slot` at byte `off` (`off` a multiple of 8 under loom).
    ///
    /// # Safety
    /// The ring protocol must give the caller exclusive access to those bytes.
    ///
    /// # Panics
    /// If the range is outside the slot (callers validate first; a panic here is a bug).
    #[inline(always)]
    pub(crate) unsafe fn write(&self, slot: usize, off: usize, src: &[u8]) {
        let w = self.word(slot, off, src.len());
        #[cfg(not(shmkit_loom))]
        {
            // SAFETY: `word` checked the range lies in the data area.
            let p = unsafe { self.data.as_ptr().add(w) }.cast::<u8>();
            // SAFETY: `off % 8` < 8 stays within word `w` of the checked range.
            let p = unsafe { p.add(off % 8) };
            // SAFETY: in bounds (checked), `src` is local memory so no overlap; the
            // caller holds exclusive access per the ring protocol.
            unsafe { copy_bytes(src.as_ptr(), p, src.len()) };
        }
        #[cfg(shmkit_loom)]
        {
            assert_eq!(off % 8, 0);
            for (k, chunk) in src.chunks(8).enumerate() {
                let mut b = [0u8; 8];
                b[..chunk.len()].copy_from_slice(chunk);
                // SAFETY: in bounds (checked by `word`).
                let cell = unsafe { &*self.data.as_ptr().add(w + k) };
                // SAFETY: exclusive per the caller's contract; loom checks it.
                cell.with_mut(|p| unsafe { *p = u64::from_ne_bytes(b) });
                if self.cfg.kind() == RingKind::Bytes {
                    // A byte ring's payload and header words are the same memory: let
                    // a header poll of this word see the payload (stale bytes that
                    // may look like a header). Relaxed: only the aliasing matters.
                    self.hdr(off + k * 8)
                        .store(u64::from_ne_bytes(b), Ordering::Relaxed);
                }
            }
        }
    }

    /// Copies bytes at `off` of slot `slot` into `dst`.
    ///
    /// # Safety
    /// The ring protocol must guarantee no one writes those bytes meanwhile.
    ///
    /// # Panics
    /// If the range is outside the slot (a bug: callers validate first).
    #[inline(always)]
    pub(crate) unsafe fn read(&self, slot: usize, off: usize, dst: &mut [u8]) {
        let w = self.word(slot, off, dst.len());
        #[cfg(not(shmkit_loom))]
        {
            // SAFETY: `word` checked the range lies in the data area.
            let p = unsafe { self.data.as_ptr().add(w) }.cast::<u8>();
            // SAFETY: `off % 8` < 8 stays within word `w` of the checked range.
            let p = unsafe { p.add(off % 8) };
            // SAFETY: in bounds (checked); `dst` is local memory, no overlap; the
            // caller's protocol keeps writers away.
            unsafe { copy_bytes(p, dst.as_mut_ptr(), dst.len()) };
        }
        #[cfg(shmkit_loom)]
        {
            assert_eq!(off % 8, 0);
            for (k, chunk) in dst.chunks_mut(8).enumerate() {
                // SAFETY: in bounds (checked by `word`).
                let cell = unsafe { &*self.data.as_ptr().add(w + k) };
                // SAFETY: no concurrent writer per the caller's contract; loom checks it.
                let v = cell.with(|p| unsafe { *p });
                chunk.copy_from_slice(&v.to_ne_bytes()[..chunk.len()]);
            }
        }
    }

    /// A raw pointer to byte `off` of slot `slot`, for zero-copy access of `len` bytes.
    ///
    /// # Panics
    /// If the range is outside the slot.
    #[cfg(not(shmkit_loom))]
    #[inline]
    pub(crate) fn ptr(&self, slot: usize, off: usize, len: usize) -> *mut u8 {
        let w = self.word(slot, off, len);
        // SAFETY: `word` checked the range lies in the data area.
        let p = unsafe { self.data.as_ptr().add(w) }.cast::<u8>();
        // SAFETY: `off % 8` < 8 stays within the checked range.
        unsafe { p.add(off % 8) }
    }
}

fn limit_of(cfg: &RingConfig) -> usize {
    match cfg.kind() {
        RingKind::Bytes => cfg.capacity(),
        _ => cfg.slot_size(),
    }
}

fn slots_of(cfg: &RingConfig) -> usize {
    match cfg.kind() {
        RingKind::Bytes => 1,
        _ => cfg.capacity(),
    }
}

/// Checks that `ptr` is 128-byte aligned and `len >= need`.
fn check_place(ptr: NonNull<u8>, len: usize, need: usize) -> Result<()> {
    if ptr.as_ptr() as usize % 128 != 0 {
        return Err(Error::Config {
            what: "ring memory must be 128-byte aligned",
        });
    }
    if len < need {
        return Err(Error::Incompatible {
            what: "ring memory length",
            expected: need as u64,
            found: len as u64,
        });
    }
    Ok(())
}

/// `copy_nonoverlapping` of `len` bytes, with the common small item sizes (8, 16, 24,
/// 32 bytes) as constant-length copies the compiler turns into a few moves, instead
/// of a `memmove` call per item (measured: ~10% of an 8-byte SPSC transfer).
///
/// # Safety
/// As [`std::ptr::copy_nonoverlapping`]: `src` readable and `dst` writable for `len`
/// bytes, the two ranges disjoint.
#[cfg(not(shmkit_loom))]
#[inline(always)]
unsafe fn copy_bytes(src: *const u8, dst: *mut u8, len: usize) {
    match len {
        // SAFETY: forwarded from the caller, with `len` equal to the constant.
        8 => unsafe { std::ptr::copy_nonoverlapping(src, dst, 8) },
        // SAFETY: as above.
        16 => unsafe { std::ptr::copy_nonoverlapping(src, dst, 16) },
        // SAFETY: as above.
        24 => unsafe { std::ptr::copy_nonoverlapping(src, dst, 24) },
        // SAFETY: as above.
        32 => unsafe { std::ptr::copy_nonoverlapping(src, dst, 32) },
        // SAFETY: forwarded from the caller.
        _ => unsafe { std::ptr::copy_nonoverlapping(src, dst, len) },
    }
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::*;

    #[test]
    fn mpmc_slots_take_whole_lines() {
        for (slot, stride) in [(8, 64), (24, 64), (48, 64), (56, 128), (256, 320)] {
            assert_eq!(mpmc_stride(slot), stride, "slot {slot}");
        }
        let cfg = RingConfig::mpmc(4, 24).expect("a valid shape");
        assert_eq!(cfg.data_len(), 4 * 64);
    }
}
