//! Variable-length byte records in a ring of bytes.
//!
//! A record is an 8-byte header word — payload length (bits 0..32), flags
//! (bits 32..48), reserved (bits 48..63, 0), valid (bit 63, 1) — followed by the
//! payload, padded to a multiple of 8. A record never wraps: when it does not fit
//! before the end of the data area, the producer first writes a PAD record covering
//! the rest, and the real record starts at offset 0. So every record is contiguous
//! (readable in place) and at most half the data area
//! ([`RingConfig::max_record_len`]), which guarantees that any record fits once the
//! ring has drained, wherever the positions stand.
//!
//! **Publication by header** (layout version 2). The consumer never reads `tail` to
//! pop: it polls the header word at its own position (Acquire) — the line the record
//! arrives on — so a message costs it one cache-line transfer, not two. A header
//! word is 0 until the producer publishes the record there: it writes the payload
//! (and, behind a PAD, the record header at offset 0), stores 0 at the header word
//! *after* the record (stale bytes of an earlier lap there might look like a header),
//! then stores the first header word of the unit (the record's, or the PAD's) with
//! Release, then `tail` (Release; for attaches, `len`-style readiness checks of the
//! layers above). So the producer keeps 8 bytes free beyond every record
//! (`tail + total + 8 <= head + capacity`); the area starts zeroed (word 0 is 0).
//! Invariant: the header word at the position after the last published record is 0.
//!
//! `tail` and `head` are monotonic byte positions, multiples of 8. The consumer may
//! be ahead of the shared `tail` (a producer died between a header and its `tail`
//! store), by less than a lap; otherwise `0 <= tail - head <= capacity`, checked on
//! every load of the other side's index. A producer that takes over (exclusive
//! attach, each shared operation, a serialized one after [`Producer::resync`])
//! resumes after every unit published past `tail` and stores the repaired `tail`.
//! The consumer checks every header it reads (valid bit, reserved bits 0, length
//! within the ring, a PAD exactly reaching the end and followed by a record) and
//! reports [`Error::Corrupt`] otherwise.
//!
//! **Ends.** An exclusive end (`attach`, [`new`]) claims its role in the header for
//! its lifetime: one producer, one consumer, no atomic read-modify-write per record.
//! A *shared* end (`attach_shared`) lets any number of handles, in any processes, use
//! that end: each operation takes the role word as a robust spin lock (owner id, taken
//! over from a dead holder), re-reads the index, and releases it. A *serialized* end
//! (`attach_serialized`, unsafe) is shared too, but the caller serialises all of its
//! handles with a lock of its own (a pipe's robust per-end message lock): each
//! operation loads only its own index, which no other side writes, and keeps its
//! cached value of the other side's index (a conservative bound, refreshed when the
//! ring looks full or empty — as in exclusive mode) unless another handle moved its
//! own index since, when it reloads and checks both. So a single user pays no atomic
//! read-modify-write and no extra cache miss per record, and a handle that was
//! forked, or that takes over from a dead one, picks up where the last left off. Do
//! not mix modes on one end.
//!
//! **Fragments.** The flag bits [`FIRST`] and [`LAST`] let a layer above stream a
//! message bigger than a record as several records; a whole message is `FIRST|LAST`.
//!
//! ```
//! use shmkit_ring::{bytes, RingConfig};
//! let (mut tx, mut rx) = bytes::new(&RingConfig::bytes(64)?)?;
//! tx.try_push(b"hello")?;
//! tx.try_push_record(b"part", bytes::FIRST)?;
//! let mut buf = [0u8; 24];
//! let r = rx.try_pop(&mut buf)?;
//! assert_eq!((&buf[..r.len], r.flags), (&b"hello"[..], bytes::WHOLE));
//! let (v, flags) = rx.try_pop_vec()?;
//! assert_eq!((v.as_slice(), flags), (&b"part"[..], bytes::FIRST));
//! assert!(tx.try_push(&[0u8; 25]).is_err()); // max record: 64 / 2 - 8 bytes
//! # Ok::<(), shmkit_ring::Error>(())
//! ```

use crate::config::{RingConfig, RingKind};
use crate::error::{corrupt, Error, Result};
use crate::lock;
use crate::owner::{Liveness, OwnerId};
use crate::raw::Mem;
use crate::role;
use crate::{laps_apart, us};
use shmkit_segment::shim::atomic::{AtomicU64, Ordering};
use std::ptr::NonNull;

/// Flag: the first fragment of a message.
pub const FIRST: u16 = 1;
/// Flag: the last fragment of a message.
pub const LAST: u16 = 2;
/// Flags of a message sent in one record.
pub const WHOLE: u16 = FIRST | LAST;
/// Flag reserved for padding records (never seen by users; refused on push).
pub const PAD: u16 = 0x8000;

const HDR: u64 = 8;
/// Bit 63 of a header word: set in every published header (so that no header is 0,
/// the value of "nothing published here yet").
const VALID: u64 = 1 << 63;

#[inline]
const fn header_word(len: u64, flags: u16) -> u64 {
    len | ((flags as u64) << 32) | VALID
}

/// A header word decoded: (len, flags), or `None` for 0 (nothing published).
///
/// # Errors
/// [`Error::Corrupt`] if the valid bit is missing or a reserved bit is set.
#[inline(always)]
fn decode(w: u64) -> Result<Option<(u64, u16)>> {
    if w == 0 {
        return Ok(None);
    }
    if w >> 48 != VALID >> 48 {
        return Err(corrupt(
            "record header without its valid bit, or reserved bits set",
        ));
    }
    // Cast: bits 32..48.
    Ok(Some((
        w & 0xffff_ffff,
        u16::try_from((w >> 32) & 0xffff).unwrap_or(0),
    )))
}

/// The published unit at position `pos` (a PAD and the record after it count as
/// one): `Ok(None)` if nothing is published there, else (position after the record,
/// data-area offset of its payload, len, flags). Checks every header it reads.
///
/// The header word at `pos` must be 0 or published, which the producer guarantees
/// for the position after its last record (see the module docs).
#[inline(always)]
fn unit_at(mem: &Mem, mask: u64, pos: u64) -> Result<Option<(u64, usize, usize, u16)>> {
    let cap = mask + 1;
    // Cast: masked below cap <= 2^40.
    let off = us(pos & mask);
    // Acquire: pairs with the producer's Release store of this header (`commit`): its
    // payload (and, for a PAD, the record header at offset 0) are visible.
    let Some((len, flags)) = decode(mem.hdr(off).load(Ordering::Acquire))? else {
        return Ok(None);
    };
    let contig = cap - off as u64;
    let (pos, off, len, flags) = if flags & PAD != 0 {
        if total_of(len) != contig {
            return Err(corrupt("padding record does not reach the end"));
        }
        // Relaxed: the producer stored it before the PAD (Release) that we loaded
        // with Acquire above.
        match decode(mem.hdr(0).load(Ordering::Relaxed))? {
            Some((l, f)) if f & PAD == 0 => (pos.wrapping_add(contig), 0, l, f),
            Some(_) => return Err(corrupt("two padding records in a row")),
            None => return Err(corrupt("padding record without a record after it")),
        }
    } else {
        (pos, off, len, flags)
    };
    let total = total_of(len);
    if len > mem.cfg().max_record_len() as u64 || total > cap - off as u64 {
        return Err(corrupt("record length out of range"));
    }
    // Cast: len <= max_record_len < 2^40.
    Ok(Some((
        pos.wrapping_add(total),
        off + us(HDR),
        us(len),
        flags,
    )))
}

#[inline]
const fn total_of(len: u64) -> u64 {
    HDR + ((len + 7) & !7)
}

/// What [`Consumer::try_pop`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Payload bytes copied.
    pub len: usize,
    /// The record's flags ([`FIRST`], [`LAST`], user bits 2..15).
    pub flags: u16,
}

/// Creates an in-process byte ring on the heap, with exclusive ends.
///
/// # Errors
/// [`Error::Incompatible`] if `cfg` is not a byte-ring config.
pub fn new(cfg: &RingConfig) -> Result<(Producer, Consumer)> {
    cfg.expect_kind(RingKind::Bytes)?;
    let mem = Mem::new_heap(cfg);
    Ok((
        Producer::from_mem(mem.clone(), Mode::Exclusive)?,
        Consumer::from_mem(mem, Mode::Exclusive)?,
    ))
}

/// Initialises a byte ring of `cfg` in `region` of `seg`, once, before any attach.
///
/// # Errors
/// As [`crate::spsc::init`].
#[cfg(not(shmkit_loom))]
pub fn init(
    seg: &shmkit_segment::Segment,
    region: shmkit_segment::layout::ByteRegion,
    cfg: &RingConfig,
) -> Result<()> {
    cfg.expect_kind(RingKind::Bytes)?;
    Mem::init_segment(seg, region, cfg)
}

/// Initialises a byte ring of `cfg` in caller-provided memory.
///
/// # Errors
/// As [`crate::spsc::init`].
///
/// # Safety
/// `ptr` must be valid for reads and writes of `len` bytes, and no handle may be using
/// a ring there.
pub unsafe fn init_raw(ptr: NonNull<u8>, len: usize, cfg: &RingConfig) -> Result<()> {
    cfg.expect_kind(RingKind::Bytes)?;
    // SAFETY: forwarded from the caller.
    unsafe { Mem::init_raw(ptr, len, cfg) }
}

/// How an end is used (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One handle, role claimed in the header.
    Exclusive,
    /// Many handles; each operation takes the role word as a robust lock.
    Shared,
    /// Many handles, serialised by a lock of the caller's: each operation re-reads
    /// our own index (a line only this side writes) and keeps the other side's.
    Serialized,
}

/// State common to both ends.
#[derive(Debug)]
struct End {
    mem: Mem,
    cap: u64,
    mask: u64,
    /// Our index (authoritative in exclusive mode; re-read per operation otherwise).
    mine: u64,
    /// Last value of the other side's index.
    theirs: u64,
    mode: Mode,
    /// Serialized mode: `mine`/`theirs` were loaded (and checked) at least once.
    synced: bool,
    /// Serialized producer: check the header word at `mine` on the next operation
    /// (see [`Producer::resync`]).
    verify: bool,
    me: OwnerId,
    liveness: Liveness,
}

impl End {
    fn new(mem: Mem, mode: Mode, producer: bool) -> Result<Self> {
        let shared = mode != Mode::Exclusive;
        let me = OwnerId::current();
        let h = mem.header();
        let word = if producer {
            &h.meta.0.producer
        } else {
            &h.meta.0.consumer
        };
        if !shared {
            role::claim(word, me, if producer { "producer" } else { "consumer" })?;
        }
        let cap = mem.cfg().cap_u64();
        let mut end = End {
            mem,
            cap,
            mask: cap - 1,
            mine: 0,
            theirs: 0,
            mode,
            synced: false,
            verify: false,
            me,
            liveness: Liveness::default(),
        };
        if !shared {
            if let Err(e) = end.load_both(producer) {
                role::release(end.word(producer), me);
                return Err(e);
            }
        }
        Ok(end)
    }

    fn word(&self, producer: bool) -> &AtomicU64 {
        let m = &self.mem.header().meta.0;
        if producer {
            &m.producer
        } else {
            &m.consumer
        }
    }

    /// Loads both indices (ours authoritative from shared memory) and checks them.
    /// A producer resumes after every record published past `tail` (by one that died
    /// between its header and its `tail` store) and stores the repaired `tail`.
    fn load_both(&mut self, producer: bool) -> Result<()> {
        let h = self.mem.header();
        // Acquire (both): pair with the Release stores of the previous holders.
        let tail = h.tail.0.load(Ordering::Acquire);
        let head = h.head.0.load(Ordering::Acquire);
        // The consumer may be ahead of `tail` (it polls headers), by less than a lap.
        if laps_apart(tail, head, self.cap) || (tail | head) % HDR != 0 {
            return Err(corrupt("byte ring indices out of range or unaligned"));
        }
        if !producer {
            (self.mine, self.theirs) = (head, tail);
            return Ok(());
        }
        let mut p = if tail.wrapping_sub(head) <= self.cap {
            tail
        } else {
            head
        };
        // The header word at `p` is 0 or published (see the module docs); at most a
        // lap of published units.
        while p.wrapping_sub(head) < self.cap {
            match unit_at(&self.mem, self.mask, p)? {
                Some((end, ..)) => p = end,
                None => break,
            }
        }
        if p.wrapping_sub(head) > self.cap - HDR {
            return Err(corrupt("published records beyond a lap"));
        }
        if p != tail {
            // Release: pairs with the Acquire loads of `tail` (attaches, readiness
            // checks of the layers above).
            h.tail.0.store(p, Ordering::Release);
        }
        (self.mine, self.theirs) = (p, head);
        Ok(())
    }

    /// Shared mode: takes the end's lock and re-reads the indices. Serialized mode:
    /// re-reads our own index; only if another handle moved it since our last
    /// operation (or on the first one) also the other side's.
    #[inline]
    fn begin(&mut self, producer: bool) -> Result<()> {
        match self.mode {
            Mode::Exclusive => Ok(()),
            Mode::Shared => {
                lock::lock(self.word(producer), self.me, &self.liveness);
                if let Err(e) = self.load_both(producer) {
                    lock::unlock(self.word(producer), self.me);
                    return Err(e);
                }
                Ok(())
            }
            Mode::Serialized => {
                let h = self.mem.header();
                let idx = if producer { &h.tail.0 } else { &h.head.0 };
                // Acquire: pairs with the Release store of this index by the handle
                // that last moved it (the caller's lock orders us after it anyway).
                if !self.synced || idx.load(Ordering::Acquire) != self.mine {
                    // Another handle moved our index: our cached view of the other
                    // side may be older than it, so reload (and check) both. When
                    // nobody did, both cached values are still valid bounds: ours
                    // exact, theirs an older (conservative) value of a monotonic index.
                    self.load_both(producer)?;
                    self.synced = true;
                } else if producer && self.verify {
                    // Another handle may have published at our position and died
                    // before moving `tail`: a nonzero header there says so.
                    // Relaxed: a hint; `load_both` re-reads it with Acquire.
                    let w = self.mem.hdr(us(self.mine & self.mask));
                    if w.load(Ordering::Relaxed) != 0 {
                        self.load_both(true)?;
                    }
                }
                self.verify = false;
                Ok(())
            }
        }
    }

    #[inline]
    fn end(&self, producer: bool) {
        if self.mode == Mode::Shared {
            lock::unlock(self.word(producer), self.me);
        }
    }

    fn release_role(&self, producer: bool) {
        if self.mode == Mode::Exclusive {
            role::release(self.word(producer), self.me);
        }
    }
}

/// The producing end of a byte ring.
#[derive(Debug)]
pub struct Producer {
    e: End,
}

/// The consuming end of a byte ring.
#[derive(Debug)]
pub struct Consumer {
    e: End,
}

macro_rules! attach_fns {
    ($t:ident) => {
        impl $t {
            /// Attaches as the exclusive end of the byte ring in `region` of `seg`.
            ///
            /// # Errors
            /// [`Error::InUse`] if a live process holds this end; [`Error::Incompatible`]
            /// if the region holds no byte ring; [`Error::Corrupt`].
            #[cfg(not(shmkit_loom))]
            pub fn attach(
                seg: &shmkit_segment::Segment,
                region: shmkit_segment::layout::ByteRegion,
            ) -> Result<Self> {
                Self::from_mem(
                    Mem::attach_segment(seg, region, RingKind::Bytes)?,
                    Mode::Exclusive,
                )
            }

            /// Attaches as one of many handles sharing this end (locked per operation).
            ///
            /// # Errors
            /// [`Error::Incompatible`] if the region holds no byte ring.
            #[cfg(not(shmkit_loom))]
            pub fn attach_shared(
                seg: &shmkit_segment::Segment,
                region: shmkit_segment::layout::ByteRegion,
            ) -> Result<Self> {
                Self::from_mem(
                    Mem::attach_segment(seg, region, RingKind::Bytes)?,
                    Mode::Shared,
                )
            }

            /// Attaches as one of many handles sharing this end, serialised by a lock
            /// of the caller's instead of the ring's own: no atomic read-modify-write
            /// and no line of the other side touched per record (see the module
            /// docs). Also right after `fork`: the handle names no process.
            ///
            /// # Errors
            /// [`Error::Incompatible`] if the region holds no byte ring.
            ///
            /// # Safety
            /// Every handle of this end, in every process, must be a serialized one
            /// and must hold one common lock (with Acquire/Release semantics, e.g. a
            /// robust mutex in the same segment) from before it starts an operation
            /// (`reserve`, `try_push*`, `peek`, `try_pop*`) until the
            /// [`WriteRecord`] / [`ReadRecord`] is gone. Otherwise two handles could
            /// write the same bytes concurrently. A producer handle must be told
            /// [`Producer::resync`] before its next operation whenever another
            /// handle may have operated since its last one and died inside it
            /// (between a record header and its `tail` store); otherwise it could
            /// overwrite that published record.
            #[cfg(not(shmkit_loom))]
            pub unsafe fn attach_serialized(
                seg: &shmkit_segment::Segment,
                region: shmkit_segment::layout::ByteRegion,
            ) -> Result<Self> {
                Self::from_mem(
                    Mem::attach_segment(seg, region, RingKind::Bytes)?,
                    Mode::Serialized,
                )
            }

            /// Attaches to the byte ring at `ptr`, exclusively or `shared`.
            ///
            /// # Errors
            /// As `attach`.
            ///
            /// # Safety
            /// `ptr` must be valid for reads and writes of `len` bytes for the
            /// handle's lifetime (other processes may write it).
            pub unsafe fn attach_raw(ptr: NonNull<u8>, len: usize, shared: bool) -> Result<Self> {
                // SAFETY: forwarded from the caller.
                let mem = unsafe { Mem::attach_raw(ptr, len, RingKind::Bytes) }?;
                let mode = if shared {
                    Mode::Shared
                } else {
                    Mode::Exclusive
                };
                Self::from_mem(mem, mode)
            }

            /// Another shared handle to the same end, on the same memory
            /// (heap rings too). The new handle locks per operation.
            ///
            /// # Errors
            /// None today; reserved.
            pub fn new_shared(&self) -> Result<Self> {
                Self::from_mem(self.e.mem.clone(), Mode::Shared)
            }

            /// Another serialized handle to the same end, on the same memory (heap
            /// rings too): see `attach_serialized`.
            ///
            /// # Errors
            /// None today; reserved.
            ///
            /// # Safety
            /// As `attach_serialized`.
            pub unsafe fn new_serialized(&self) -> Result<Self> {
                Self::from_mem(self.e.mem.clone(), Mode::Serialized)
            }

            /// Test hook: act as `me` and judge other lock holders with `liveness`.
            #[doc(hidden)]
            pub fn with_identity(mut self, me: OwnerId, liveness: Liveness) -> Self {
                self.e.me = me;
                self.e.liveness = liveness;
                self
            }

            /// The ring's configuration.
            pub fn config(&self) -> &RingConfig {
                self.e.mem.cfg()
            }

            /// The largest payload of one record.
            pub fn max_record_len(&self) -> usize {
                self.e.mem.cfg().max_record_len()
            }
        }
    };
}

attach_fns!(Producer);
attach_fns!(Consumer);

impl Producer {
    fn from_mem(mem: Mem, mode: Mode) -> Result<Self> {
        Ok(Producer {
            e: End::new(mem, mode, true)?,
        })
    }

    /// Whether a live process holds the exclusive consumer end.
    pub fn is_consumer_alive(&self) -> bool {
        role::holder_alive(self.e.word(false))
    }

    /// Pushes `bytes` as one whole record ([`WHOLE`]).
    ///
    /// # Errors
    /// [`Error::Full`] (retry later); [`Error::TooLarge`] beyond
    /// [`Producer::max_record_len`]; [`Error::Corrupt`].
    pub fn try_push(&mut self, bytes: &[u8]) -> Result<()> {
        self.try_push_record(bytes, WHOLE)
    }

    /// Pushes `bytes` as one record with `flags`.
    ///
    /// # Errors
    /// As [`Producer::try_push`]; [`Error::Config`] if `flags` has the [`PAD`] bit.
    pub fn try_push_record(&mut self, bytes: &[u8], flags: u16) -> Result<()> {
        let mut w = self.reserve(bytes.len(), flags)?;
        w.write_at(0, bytes);
        w.commit();
        Ok(())
    }

    /// Reserves a contiguous record of `len` payload bytes to write in place; publish
    /// it with [`WriteRecord::commit`] (dropping it publishes nothing). A shared end
    /// stays locked while the reservation lives.
    ///
    /// # Errors
    /// As [`Producer::try_push_record`].
    pub fn reserve(&mut self, len: usize, flags: u16) -> Result<WriteRecord<'_>> {
        if flags & PAD != 0 {
            return Err(Error::Config {
                what: "the PAD flag bit is reserved",
            });
        }
        let max = self.max_record_len();
        if len > max {
            return Err(Error::TooLarge { len, max });
        }
        self.e.begin(true)?;
        match self.place(len as u64, flags) {
            Ok((start, off, pub_off, pub_word)) => Ok(WriteRecord {
                p: self,
                start,
                off: off + us(HDR),
                len,
                pub_off,
                pub_word,
            }),
            Err(e) => {
                self.e.end(true);
                Err(e)
            }
        }
    }

    /// Serialized end: makes the next operation check, before it writes, whether
    /// another handle published a record at this handle's position and died before
    /// moving `tail` (one load of the header word there, on the line the operation
    /// writes anyway), and resume after it. Call it whenever another handle may have
    /// operated since this one's last operation; a no-op for other ends, which
    /// check on attach (exclusive) or on every operation (shared).
    pub fn resync(&mut self) {
        self.e.verify = true;
    }

    /// Finds room for a record of `len` bytes (plus the next header word, kept 0),
    /// writes everything of it but the publishing header word: a PAD first if it
    /// must wrap (then the record header at offset 0 now, the PAD at commit), and 0
    /// at the header word after it. Returns (position of the record header, its
    /// data-area offset, offset and value of the word `commit` publishes).
    fn place(&mut self, len: u64, flags: u16) -> Result<(u64, usize, usize, u64)> {
        let e = &mut self.e;
        let total = total_of(len);
        let off = e.mine & e.mask;
        let contig = e.cap - off;
        let need = if total <= contig {
            total
        } else {
            contig + total
        } + HDR;
        if e.cap - e.mine.wrapping_sub(e.theirs) < need {
            // Acquire: pairs with the consumer's Release store of `head`: its reads of
            // the freed bytes happen before our writes.
            let head = e.mem.header().head.0.load(Ordering::Acquire);
            if e.mine.wrapping_sub(head) > e.cap || head % HDR != 0 {
                return Err(corrupt("consumer index out of range"));
            }
            e.theirs = head;
            if e.cap - e.mine.wrapping_sub(e.theirs) < need {
                return Err(Error::Full(()));
            }
        }
        let hdr = header_word(len, flags);
        let (start, rec_off, pub_word) = if total <= contig {
            (e.mine, off, hdr)
        } else {
            // Relaxed: published by the Release store of the PAD in `commit`; the
            // word is free (checked above).
            e.mem.hdr(0).store(hdr, Ordering::Relaxed);
            (
                e.mine.wrapping_add(contig),
                0,
                header_word(contig - HDR, PAD),
            )
        };
        // The header word after the record: free (`need` counted it), and it must
        // read 0 until a record is published there — stale bytes of an earlier lap
        // may look like a header. Relaxed: published by the Release in `commit`.
        e.mem
            .hdr(us((rec_off + total) & e.mask))
            .store(0, Ordering::Relaxed);
        // Casts: < cap <= 2^40.
        Ok((start, us(rec_off), us(off), pub_word))
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.e.release_role(true);
    }
}

/// A reserved record being written in place (see [`Producer::reserve`]).
#[derive(Debug)]
pub struct WriteRecord<'a> {
    p: &'a mut Producer,
    /// Position of the record header (after any PAD).
    start: u64,
    /// Data-area offset of the payload.
    off: usize,
    len: usize,
    /// Data-area offset of the word `commit` publishes (the record header, or the
    /// PAD in front of it), and its value.
    pub_off: usize,
    pub_word: u64,
}

impl WriteRecord<'_> {
    /// Payload bytes reserved.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `bytes` to offset `at` of the payload.
    ///
    /// # Panics
    /// If `at + bytes.len()` exceeds [`WriteRecord::len`].
    pub fn write_at(&mut self, at: usize, bytes: &[u8]) {
        assert!(
            at <= self.len && bytes.len() <= self.len - at,
            "write past the reserved record"
        );
        // SAFETY: inside the reserved, unpublished record (checked just above).
        unsafe { self.p.e.mem.write(0, self.off + at, bytes) };
    }

    /// The payload's first byte (8-byte aligned), for writing `len()` bytes in place.
    #[cfg(not(shmkit_loom))]
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.p.e.mem.ptr(0, self.off, self.len)
    }

    /// Publishes the record.
    pub fn commit(self) {
        let e = &mut self.p.e;
        // Release: pairs with the consumer's Acquire load of this header word
        // (`unit_at`): the payload, the record header after a PAD and the zeroed
        // next header word are written before it reads them.
        e.mem
            .hdr(self.pub_off)
            .store(self.pub_word, Ordering::Release);
        e.mine = self.start.wrapping_add(total_of(self.len as u64));
        debug_assert!(e.mine.wrapping_sub(e.theirs) <= e.cap - HDR && e.mine % HDR == 0);
        // Release: pairs with the Acquire loads of `tail` by attaches and by the
        // readiness checks of the layers above (the consumer's pops do not read it,
        // so this line stays in our cache).
        e.mem.header().tail.0.store(e.mine, Ordering::Release);
        e.end(true);
        std::mem::forget(self);
    }
}

impl Drop for WriteRecord<'_> {
    fn drop(&mut self) {
        // Not committed: nothing was published; release a shared end's lock.
        self.p.e.end(true);
    }
}

impl Consumer {
    fn from_mem(mem: Mem, mode: Mode) -> Result<Self> {
        Ok(Consumer {
            e: End::new(mem, mode, false)?,
        })
    }

    /// Whether a live process holds the exclusive producer end. Once false and the
    /// ring is drained, nothing more arrives until a producer attaches.
    pub fn is_producer_alive(&self) -> bool {
        role::holder_alive(self.e.word(true))
    }

    /// Finds the next record by polling the header word at our position (never
    /// `tail`): skips a PAD, validates the header. Returns (position after the
    /// record, data-area offset of its payload, len, flags).
    #[inline]
    fn next(&mut self) -> Result<(u64, usize, usize, u16)> {
        unit_at(&self.e.mem, self.e.mask, self.e.mine)?.ok_or(Error::Empty)
    }

    fn finish(&mut self, to: u64) {
        let e = &mut self.e;
        e.mine = to;
        debug_assert!(e.mine % HDR == 0);
        // Release: pairs with the producer's Acquire load of `head`: our reads of the
        // record happen before it overwrites the bytes.
        e.mem.header().head.0.store(to, Ordering::Release);
    }

    /// Pops the next record into `dst`.
    ///
    /// # Errors
    /// [`Error::Empty`]; [`Error::BufferTooShort`] (the record stays in the ring);
    /// [`Error::Corrupt`].
    pub fn try_pop(&mut self, dst: &mut [u8]) -> Result<Record> {
        let r = self.peek()?;
        if dst.len() < r.len {
            return Err(Error::BufferTooShort {
                needed: r.len,
                len: dst.len(),
            });
        }
        let rec = Record {
            len: r.len,
            flags: r.flags,
        };
        r.read_at(0, &mut dst[..rec.len]);
        r.release();
        Ok(rec)
    }

    /// Pops the next record into a new `Vec`, with its flags.
    ///
    /// # Errors
    /// [`Error::Empty`]; [`Error::Corrupt`].
    pub fn try_pop_vec(&mut self) -> Result<(Vec<u8>, u16)> {
        let r = self.peek()?;
        let mut v = Vec::with_capacity(r.len);
        r.append_to(0, r.len, &mut v);
        let flags = r.flags;
        r.release();
        Ok((v, flags))
    }

    /// Looks at the next record in place; consume it with [`ReadRecord::release`]
    /// (dropping it leaves it in the ring). A shared end stays locked meanwhile.
    ///
    /// # Errors
    /// [`Error::Empty`]; [`Error::Corrupt`].
    pub fn peek(&mut self) -> Result<ReadRecord<'_>> {
        self.e.begin(false)?;
        match self.next() {
            Ok((end, off, len, flags)) => Ok(ReadRecord {
                c: self,
                end,
                off,
                len,
                flags,
            }),
            Err(e) => {
                self.e.end(false);
                Err(e)
            }
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.e.release_role(false);
    }
}

/// A published record being read in place (see [`Consumer::peek`]).
#[derive(Debug)]
pub struct ReadRecord<'a> {
    c: &'a mut Consumer,
    end: u64,
    off: usize,
    /// Payload bytes.
    pub len: usize,
    /// The record's flags.
    pub flags: u16,
}

impl ReadRecord<'_> {
    /// Copies payload bytes from offset `at` into `dst`.
    ///
    /// # Panics
    /// If `at + dst.len()` exceeds the payload.
    pub fn read_at(&self, at: usize, dst: &mut [u8]) {
        assert!(
            at <= self.len && dst.len() <= self.len - at,
            "read past the record"
        );
        // SAFETY: inside a validated, published record the producer leaves alone
        // until we release it.
        unsafe { self.c.e.mem.read(0, self.off + at, dst) };
    }

    /// Appends payload bytes `at..at + n` to `v`, copying them straight into its
    /// spare capacity (no zero-filling first). Grows `v` like `Vec::reserve` when
    /// it has less than `n` spare bytes.
    ///
    /// # Panics
    /// If `at + n` exceeds the payload.
    pub fn append_to(&self, at: usize, n: usize, v: &mut Vec<u8>) {
        assert!(at <= self.len && n <= self.len - at, "read past the record");
        v.reserve(n);
        #[cfg(not(shmkit_loom))]
        {
            let src = self.c.e.mem.ptr(0, self.off + at, n);
            let len = v.len();
            let dst = v.spare_capacity_mut().as_mut_ptr().cast::<u8>();
            // SAFETY: `src..src + n` lies inside a validated, published record the
            // producer leaves alone until we release it (`ptr` checked the bounds);
            // `dst` has at least `n` spare bytes (reserved above), local memory that
            // cannot overlap the mapping.
            unsafe { std::ptr::copy_nonoverlapping(src, dst, n) };
            // SAFETY: the `n` bytes after `len` were just initialised.
            unsafe { v.set_len(len + n) };
        }
        #[cfg(shmkit_loom)]
        {
            let len = v.len();
            v.resize(len + n, 0);
            self.read_at(at, &mut v[len..]);
        }
    }

    /// The payload's first byte (8-byte aligned; `len` bytes), for reading in place.
    #[cfg(not(shmkit_loom))]
    pub fn as_ptr(&self) -> *const u8 {
        self.c.e.mem.ptr(0, self.off, self.len)
    }

    /// The payload as a slice.
    ///
    /// # Safety
    /// No process may write these bytes while the slice lives — true of every process
    /// that follows the ring protocol.
    #[cfg(not(shmkit_loom))]
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` bounds-checked the range; no writer is the caller's contract.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len) }
    }

    /// Consumes the record.
    pub fn release(self) {
        let end = self.end;
        self.c.finish(end);
        self.c.e.end(false);
        std::mem::forget(self);
    }
}

impl Drop for ReadRecord<'_> {
    fn drop(&mut self) {
        // Not released: the record stays; release a shared end's lock.
        self.c.e.end(false);
    }
}
