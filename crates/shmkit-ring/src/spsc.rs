//! Bounded single-producer single-consumer ring of fixed-size slots.
//!
//! The producer owns `tail`, the consumer owns `head`; both are monotonic `u64`
//! positions (slot = position & (capacity - 1)). Each side keeps its own index in the
//! handle (the shared copy is only a publication of it).
//!
//! Every slot starts with a sequence word on the payload's cache line: the producer
//! writes the payload, then stores `position + 1` there (Release). The consumer polls
//! the sequence of the slot at `head` — the line it is about to read anyway — and
//! never reads `tail` on its hot path, so a message costs it one cache-line transfer.
//! The producer caches `head` and reloads it only when the cache says full.
//!
//! Invariants: `0 <= tail - head <= capacity` (checked on every load of `head` by the
//! producer); the sequence of the slot at position `p >= head` is `p + 1` (published)
//! or `p + 1 - capacity` (the previous lap), checked on every load by the consumer.
//! A value that breaks them means the shared memory is corrupt: [`Error::Corrupt`].
//!
//! ```
//! use shmkit_ring::{spsc, RingConfig};
//! let (mut tx, mut rx) = spsc::new(&RingConfig::spsc_of::<u64>(4)?)?;
//! tx.try_push(7u64).map_err(shmkit_ring::Error::drop_item)?;
//! assert_eq!(tx.push_slice(&[8u64, 9, 10, 11]), 3); // one slot was taken
//! let slot = tx.reserve();
//! assert!(slot.is_err()); // full
//! assert_eq!(rx.try_pop::<u64>()?, 7);
//! let mut out = [0u64; 8];
//! assert_eq!(rx.pop_slice(&mut out), 3);
//! assert_eq!(&out[..3], &[8, 9, 10]);
//! # Ok::<(), shmkit_ring::Error>(())
//! ```

use crate::config::{RingConfig, RingKind};
use crate::error::{corrupt, Error, Result};
use crate::owner::OwnerId;
use crate::raw::Mem;
use crate::role;
use crate::{laps_apart, us};
use bytemuck::Pod;
use shmkit_segment::shim::atomic::Ordering;
use std::ptr::NonNull;

/// Creates an in-process SPSC ring on the heap (threads, tests, loom models).
///
/// # Errors
/// [`Error::Incompatible`] if `cfg` is not an SPSC config.
pub fn new(cfg: &RingConfig) -> Result<(Producer, Consumer)> {
    cfg.expect_kind(RingKind::Spsc)?;
    let mem = Mem::new_heap(cfg);
    Ok((Producer::from_mem(mem.clone())?, Consumer::from_mem(mem)?))
}

/// Initialises an SPSC ring of `cfg` in `region` of `seg` (reserve the region with
/// [`RingConfig::add_to`]). Do this once, before any handle attaches.
///
/// # Errors
/// [`Error::Segment`] if the region is not in `seg`; [`Error::Incompatible`] if it is
/// too small or `cfg` is not SPSC; [`Error::Config`] if it is misaligned.
#[cfg(not(shmkit_loom))]
pub fn init(
    seg: &shmkit_segment::Segment,
    region: shmkit_segment::layout::ByteRegion,
    cfg: &RingConfig,
) -> Result<()> {
    cfg.expect_kind(RingKind::Spsc)?;
    Mem::init_segment(seg, region, cfg)
}

/// Initialises an SPSC ring of `cfg` in caller-provided memory.
///
/// # Errors
/// As [`init`].
///
/// # Safety
/// `ptr` must be valid for reads and writes of `len` bytes, and no handle may be using
/// a ring there.
pub unsafe fn init_raw(ptr: NonNull<u8>, len: usize, cfg: &RingConfig) -> Result<()> {
    cfg.expect_kind(RingKind::Spsc)?;
    // SAFETY: forwarded from the caller.
    unsafe { Mem::init_raw(ptr, len, cfg) }
}

/// The producing end of an SPSC ring. One per ring at a time (claimed in the header;
/// taken over from a dead holder); not `Clone`.
#[derive(Debug)]
pub struct Producer {
    mem: Mem,
    mask: u64,
    cap: u64,
    /// Our position; the shared `tail` is a publication of it.
    tail: u64,
    /// Last `head` loaded; `tail - head_cache <= cap` always.
    head_cache: u64,
    me: OwnerId,
}

/// The consuming end of an SPSC ring. One per ring at a time; not `Clone`.
#[derive(Debug)]
pub struct Consumer {
    mem: Mem,
    mask: u64,
    cap: u64,
    /// Our position; the shared `head` is a publication of it.
    head: u64,
    me: OwnerId,
}

/// Loads both indices and checks that they are at most a lap apart. The consumer may
/// be ahead of the shared `tail` (a slot's sequence publishes it before `tail` moves;
/// a producer may die in between), by at most a lap.
fn load_indices(mem: &Mem) -> Result<(u64, u64)> {
    let h = mem.header();
    // Acquire (both): pair with the Release stores of the previous holders.
    let tail = h.tail.0.load(Ordering::Acquire);
    let head = h.head.0.load(Ordering::Acquire);
    let cap = mem.cfg().cap_u64();
    if laps_apart(tail, head, cap) {
        return Err(corrupt("tail and head more than a lap apart"));
    }
    Ok((head, tail))
}

/// Whether position `pos` is published: the sequence of its slot is `pos + 1`, or
/// the previous lap's `pos + 1 - cap` (not yet). Any other value is corruption.
#[inline(always)]
fn published(mem: &Mem, mask: u64, pos: u64) -> Result<bool> {
    // Acquire: pairs with the producer's Release store of the sequence (`mark`): its
    // payload writes happen before our reads.
    let s = mem.seq(us(pos & mask)).load(Ordering::Acquire);
    let next = pos.wrapping_add(1);
    if s == next {
        return Ok(true);
    }
    if s == next.wrapping_sub(mask + 1) {
        return Ok(false);
    }
    Err(corrupt("slot sequence out of range"))
}

/// The first unpublished position at or after `max(head, tail)` (whichever is ahead;
/// `load_indices` checked they are a lap apart at most), scanning at most a lap from
/// `head`: positions a producer published by their sequence before it died, without
/// moving `tail`, count as published.
fn published_end(mem: &Mem, head: u64, tail: u64) -> Result<u64> {
    let cap = mem.cfg().cap_u64();
    let mut p = if tail.wrapping_sub(head) <= cap {
        tail
    } else {
        head
    };
    while p.wrapping_sub(head) < cap && published(mem, cap - 1, p)? {
        p = p.wrapping_add(1);
    }
    Ok(p)
}

impl Producer {
    fn from_mem(mem: Mem) -> Result<Self> {
        let me = OwnerId::current();
        role::claim(&mem.header().meta.0.producer, me, "producer")?;
        let resume = load_indices(&mem)
            .and_then(|(head, tail)| Ok((head, tail, published_end(&mem, head, tail)?)));
        let (head, shared_tail, tail) = match resume {
            Ok(x) => x,
            Err(e) => {
                role::release(&mem.header().meta.0.producer, me);
                return Err(e);
            }
        };
        if tail != shared_tail {
            // A predecessor died between publishing a slot and moving `tail`.
            // Release: pairs with the Acquire loads of `tail` (`len`, attaches).
            mem.header().tail.0.store(tail, Ordering::Release);
        }
        let cap = mem.cfg().cap_u64();
        Ok(Producer {
            mask: cap - 1,
            cap,
            tail,
            head_cache: head,
            mem,
            me,
        })
    }

    /// Attaches as the producer of the SPSC ring in `region` of `seg`.
    ///
    /// The role is held per process: a second attach from the same process succeeds,
    /// so keep one handle per end; a forked child re-attaches rather than using an
    /// inherited handle.
    ///
    /// # Errors
    /// [`Error::InUse`] if a live process holds the producer end; [`Error::Incompatible`]
    /// if the region holds no SPSC ring; [`Error::Corrupt`] if its indices are broken.
    #[cfg(not(shmkit_loom))]
    pub fn attach(
        seg: &shmkit_segment::Segment,
        region: shmkit_segment::layout::ByteRegion,
    ) -> Result<Self> {
        Self::from_mem(Mem::attach_segment(seg, region, RingKind::Spsc)?)
    }

    /// Attaches as the producer of the SPSC ring at `ptr`.
    ///
    /// # Errors
    /// As [`Producer::attach`].
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `len` bytes for the handle's
    /// lifetime (other processes may write it).
    pub unsafe fn attach_raw(ptr: NonNull<u8>, len: usize) -> Result<Self> {
        // SAFETY: forwarded from the caller.
        Self::from_mem(unsafe { Mem::attach_raw(ptr, len, RingKind::Spsc) }?)
    }

    /// The ring's configuration.
    pub fn config(&self) -> &RingConfig {
        self.mem.cfg()
    }

    /// Whether a live process holds the consumer end.
    pub fn is_consumer_alive(&self) -> bool {
        role::holder_alive(&self.mem.header().meta.0.consumer)
    }

    /// Free slots, reloading the consumer's index.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the consumer's index is impossible.
    pub fn free_slots(&mut self) -> Result<usize> {
        self.refresh_head()?;
        // Cast: at most cap <= 2^32.
        Ok(us(self.cap - self.tail.wrapping_sub(self.head_cache)))
    }

    /// Reloads `head`; checks `tail - head <= cap`.
    #[inline]
    fn refresh_head(&mut self) -> Result<()> {
        // Acquire: pairs with the consumer's Release store of `head`, so its reads of
        // the freed slots happen before our writes to them.
        let head = self.mem.header().head.0.load(Ordering::Acquire);
        let used = self.tail.wrapping_sub(head);
        if used > self.cap || head.wrapping_sub(self.head_cache) > self.cap {
            return Err(corrupt("consumer index out of range"));
        }
        self.head_cache = head;
        Ok(())
    }

    /// Free slots by the cache, refreshing when fewer than `want` are known free.
    #[inline]
    fn free_for(&mut self, want: u64) -> Result<u64> {
        let free = self.cap - self.tail.wrapping_sub(self.head_cache);
        if free >= want {
            return Ok(free);
        }
        self.refresh_head()?;
        Ok(self.cap - self.tail.wrapping_sub(self.head_cache))
    }

    /// Publishes the written slot at position `pos` to the consumer.
    #[inline(always)]
    fn mark(&self, pos: u64) {
        // Release: pairs with the consumer's Acquire load of the sequence
        // (`published`): our payload writes happen before its reads.
        self.mem
            .seq(us(pos & self.mask))
            .store(pos.wrapping_add(1), Ordering::Release);
    }

    /// Moves `tail` past `n` more slots, already `mark`ed.
    #[inline(always)]
    fn advance(&mut self, n: u64) {
        self.tail = self.tail.wrapping_add(n);
        debug_assert!(self.tail.wrapping_sub(self.head_cache) <= self.cap);
        // Release: orders the sequence stores before it (a successor that finds
        // `tail` finds them), and pairs with the Acquire loads of `tail` in `len` and
        // in attaches. The consumer's hot path does not read `tail`, so this line
        // stays in our cache.
        self.mem.header().tail.0.store(self.tail, Ordering::Release);
    }

    fn check_len<T>(&self, len: usize) -> Result<(), Error<T>> {
        let max = self.mem.cfg().slot_size();
        if len > max {
            return Err(Error::TooLarge { len, max });
        }
        Ok(())
    }

    /// Pushes one plain-data value (copied into the next slot).
    ///
    /// # Errors
    /// [`Error::Full`] with the value; [`Error::TooLarge`] if `T` is bigger than a slot;
    /// [`Error::Corrupt`].
    #[inline]
    pub fn try_push<T: Pod>(&mut self, item: T) -> Result<(), Error<T>> {
        self.check_len(std::mem::size_of::<T>())?;
        match self.free_for(1) {
            Ok(0) => return Err(Error::Full(item)),
            Ok(_) => {}
            Err(e) => return Err(e.map_item(|()| item)),
        }
        let slot = us(self.tail & self.mask);
        // SAFETY: slot `tail` is free (tail - head < cap) and only this producer
        // writes free slots; the consumer does not read it before `mark`.
        unsafe { self.mem.write(slot, 0, bytemuck::bytes_of(&item)) };
        self.mark(self.tail);
        self.advance(1);
        Ok(())
    }

    /// Pushes `bytes` (at most a slot) into the next slot; the rest of the slot keeps
    /// whatever it held.
    ///
    /// # Errors
    /// [`Error::Full`]; [`Error::TooLarge`]; [`Error::Corrupt`].
    pub fn try_push_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.check_len(bytes.len())?;
        if self.free_for(1)? == 0 {
            return Err(Error::Full(()));
        }
        let slot = us(self.tail & self.mask);
        // SAFETY: as in `try_push`: a free slot only this producer writes.
        unsafe { self.mem.write(slot, 0, bytes) };
        self.mark(self.tail);
        self.advance(1);
        Ok(())
    }

    /// Pushes as many of `items` as fit (each slot's sequence published after its
    /// payload, `tail` once at the end); returns how many were pushed (0 when full,
    /// or when `T` is bigger than a slot, or on a corrupt index).
    pub fn push_slice<T: Pod>(&mut self, items: &[T]) -> usize {
        if std::mem::size_of::<T>() > self.mem.cfg().slot_size() {
            return 0;
        }
        let want = items.len() as u64;
        let free = match self.free_for(want) {
            Ok(f) => f,
            Err(_) => return 0,
        };
        // Cast: free <= cap <= 2^32.
        let n = us(want.min(free));
        for (k, item) in items[..n].iter().enumerate() {
            let pos = self.tail.wrapping_add(k as u64);
            // SAFETY: positions tail..tail+n are free (n <= free) and unpublished.
            unsafe {
                self.mem
                    .write(us(pos & self.mask), 0, bytemuck::bytes_of(item))
            };
            self.mark(pos);
        }
        if n > 0 {
            self.advance(n as u64);
        }
        n
    }

    /// Reserves the next slot for writing in place; publish it with
    /// [`WriteSlot::commit`] (dropping it publishes nothing).
    ///
    /// # Errors
    /// [`Error::Full`]; [`Error::Corrupt`].
    #[inline]
    pub fn reserve(&mut self) -> Result<WriteSlot<'_>> {
        if self.free_for(1)? == 0 {
            return Err(Error::Full(()));
        }
        let slot = us(self.tail & self.mask);
        Ok(WriteSlot { p: self, slot })
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        role::release(&self.mem.header().meta.0.producer, self.me);
    }
}

/// A reserved, unpublished slot (see [`Producer::reserve`]).
#[derive(Debug)]
pub struct WriteSlot<'a> {
    p: &'a mut Producer,
    slot: usize,
}

impl WriteSlot<'_> {
    /// Bytes in the slot.
    pub fn len(&self) -> usize {
        self.p.mem.cfg().slot_size()
    }

    /// Always false: a slot has at least 8 bytes.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Copies `bytes` to offset `off` of the slot.
    ///
    /// # Panics
    /// If `off + bytes.len()` exceeds the slot (the check is always on).
    #[inline]
    pub fn write_at(&mut self, off: usize, bytes: &[u8]) {
        // SAFETY: the slot is reserved: free and unpublished, written only by us.
        unsafe { self.p.mem.write(self.slot, off, bytes) };
    }

    /// Copies `value` to the start of the slot.
    ///
    /// # Panics
    /// If `T` is bigger than a slot.
    #[inline]
    pub fn write<T: Pod>(&mut self, value: &T) {
        self.write_at(0, bytemuck::bytes_of(value));
    }

    /// The slot's first byte, for writing in place (`len()` bytes, 8-byte aligned).
    /// Only this handle writes the slot until `commit`.
    #[cfg(not(shmkit_loom))]
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.p.mem.ptr(self.slot, 0, self.len())
    }

    /// The slot as a mutable byte slice.
    ///
    /// # Safety
    /// No other process may access this slot meanwhile — true of every process that
    /// follows the ring protocol; a faulty one writing it would be a data race.
    #[cfg(not(shmkit_loom))]
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        let len = self.len();
        // SAFETY: `ptr` checked the range; exclusivity is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr(), len) }
    }

    /// Publishes the slot to the consumer.
    #[inline]
    pub fn commit(self) {
        self.p.mark(self.p.tail);
        self.p.advance(1);
    }
}

impl Consumer {
    fn from_mem(mem: Mem) -> Result<Self> {
        let me = OwnerId::current();
        role::claim(&mem.header().meta.0.consumer, me, "consumer")?;
        let head = match load_indices(&mem) {
            Ok((head, _)) => head,
            Err(e) => {
                role::release(&mem.header().meta.0.consumer, me);
                return Err(e);
            }
        };
        let cap = mem.cfg().cap_u64();
        Ok(Consumer {
            mask: cap - 1,
            cap,
            head,
            mem,
            me,
        })
    }

    /// Attaches as the consumer of the SPSC ring in `region` of `seg`.
    ///
    /// # Errors
    /// As [`Producer::attach`].
    #[cfg(not(shmkit_loom))]
    pub fn attach(
        seg: &shmkit_segment::Segment,
        region: shmkit_segment::layout::ByteRegion,
    ) -> Result<Self> {
        Self::from_mem(Mem::attach_segment(seg, region, RingKind::Spsc)?)
    }

    /// Attaches as the consumer of the SPSC ring at `ptr`.
    ///
    /// # Errors
    /// As [`Producer::attach`].
    ///
    /// # Safety
    /// As [`Producer::attach_raw`].
    pub unsafe fn attach_raw(ptr: NonNull<u8>, len: usize) -> Result<Self> {
        // SAFETY: forwarded from the caller.
        Self::from_mem(unsafe { Mem::attach_raw(ptr, len, RingKind::Spsc) }?)
    }

    /// The ring's configuration.
    pub fn config(&self) -> &RingConfig {
        self.mem.cfg()
    }

    /// Whether a live process holds the producer end. Once it is false and
    /// [`Consumer::len`] is 0, nothing more will arrive until a new producer attaches.
    pub fn is_producer_alive(&self) -> bool {
        role::holder_alive(&self.mem.header().meta.0.producer)
    }

    /// Slots ready to read: from the producer's `tail`, plus any slots published
    /// past it (a producer stores `tail` just after a slot's sequence).
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the producer's index or a sequence is impossible.
    pub fn len(&mut self) -> Result<usize> {
        // Acquire: pairs with the producer's Release store of `tail`.
        let tail = self.mem.header().tail.0.load(Ordering::Acquire);
        if laps_apart(tail, self.head, self.cap) {
            return Err(corrupt("producer index out of range"));
        }
        let end = published_end(&self.mem, self.head, tail)?;
        // Cast: at most cap <= 2^32.
        Ok(us(end.wrapping_sub(self.head)))
    }

    /// Whether nothing is ready to read (one sequence load).
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the next slot's sequence is impossible.
    #[inline]
    pub fn is_empty(&mut self) -> Result<bool> {
        Ok(!self.ready(self.head)?)
    }

    /// Whether position `pos` (at most a lap past `head`) is published.
    #[inline(always)]
    fn ready(&self, pos: u64) -> Result<bool> {
        published(&self.mem, self.mask, pos)
    }

    #[inline(always)]
    fn release(&mut self, n: u64) {
        self.head = self.head.wrapping_add(n);
        // Release: pairs with the producer's Acquire load of `head`: our reads of
        // these slots happen before it overwrites them.
        self.mem.header().head.0.store(self.head, Ordering::Release);
    }

    fn check_len(&self, len: usize) -> Result<()> {
        let max = self.mem.cfg().slot_size();
        if len > max {
            return Err(Error::TooLarge { len, max });
        }
        Ok(())
    }

    /// Pops one plain-data value.
    ///
    /// # Errors
    /// [`Error::Empty`]; [`Error::TooLarge`] if `T` is bigger than a slot;
    /// [`Error::Corrupt`].
    #[inline]
    pub fn try_pop<T: Pod>(&mut self) -> Result<T> {
        self.check_len(std::mem::size_of::<T>())?;
        if !self.ready(self.head)? {
            return Err(Error::Empty);
        }
        let mut v = T::zeroed();
        let slot = us(self.head & self.mask);
        // SAFETY: slot `head` is published (its sequence says so) and the producer
        // does not write it again until we release it.
        unsafe { self.mem.read(slot, 0, bytemuck::bytes_of_mut(&mut v)) };
        self.release(1);
        Ok(v)
    }

    /// Pops the next slot, copying its first `dst.len()` bytes into `dst`.
    ///
    /// # Errors
    /// [`Error::Empty`]; [`Error::TooLarge`] if `dst` is longer than a slot;
    /// [`Error::Corrupt`].
    pub fn try_pop_bytes(&mut self, dst: &mut [u8]) -> Result<()> {
        self.check_len(dst.len())?;
        if !self.ready(self.head)? {
            return Err(Error::Empty);
        }
        let slot = us(self.head & self.mask);
        // SAFETY: as in `try_pop`.
        unsafe { self.mem.read(slot, 0, dst) };
        self.release(1);
        Ok(())
    }

    /// Pops up to `out.len()` values with one index store; returns how many (0 when
    /// empty or when `T` is bigger than a slot; it stops before a corrupt sequence).
    pub fn pop_slice<T: Pod>(&mut self, out: &mut [T]) -> usize {
        if self.check_len(std::mem::size_of::<T>()).is_err() {
            return 0;
        }
        // Cast: at most cap <= 2^32.
        let max = out.len().min(us(self.cap));
        let mut n = 0;
        while n < max {
            let pos = self.head.wrapping_add(n as u64);
            if !matches!(self.ready(pos), Ok(true)) {
                break;
            }
            // SAFETY: position `pos` is published (its sequence says so) and not yet
            // released.
            unsafe {
                self.mem
                    .read(us(pos & self.mask), 0, bytemuck::bytes_of_mut(&mut out[n]))
            };
            n += 1;
        }
        if n > 0 {
            self.release(n as u64);
        }
        n
    }

    /// Looks at the next slot in place; free it with [`ReadSlot::release`] (dropping
    /// it leaves the slot in the ring).
    ///
    /// # Errors
    /// [`Error::Empty`]; [`Error::Corrupt`].
    #[inline]
    pub fn peek(&mut self) -> Result<ReadSlot<'_>> {
        if !self.ready(self.head)? {
            return Err(Error::Empty);
        }
        let slot = us(self.head & self.mask);
        Ok(ReadSlot { c: self, slot })
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        role::release(&self.mem.header().meta.0.consumer, self.me);
    }
}

/// A published slot being read in place (see [`Consumer::peek`]).
#[derive(Debug)]
pub struct ReadSlot<'a> {
    c: &'a mut Consumer,
    slot: usize,
}

impl ReadSlot<'_> {
    /// Bytes in the slot.
    pub fn len(&self) -> usize {
        self.c.mem.cfg().slot_size()
    }

    /// Always false: a slot has at least 8 bytes.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Copies bytes from offset `off` of the slot into `dst`.
    ///
    /// # Panics
    /// If `off + dst.len()` exceeds the slot.
    #[inline]
    pub fn read_at(&self, off: usize, dst: &mut [u8]) {
        // SAFETY: the slot is published and not released; the producer leaves it alone.
        unsafe { self.c.mem.read(self.slot, off, dst) };
    }

    /// Copies a `T` out of the start of the slot.
    ///
    /// # Panics
    /// If `T` is bigger than a slot.
    #[inline]
    pub fn read<T: Pod>(&self) -> T {
        let mut v = T::zeroed();
        self.read_at(0, bytemuck::bytes_of_mut(&mut v));
        v
    }

    /// The slot's first byte (`len()` bytes, 8-byte aligned), for reading in place.
    #[cfg(not(shmkit_loom))]
    pub fn as_ptr(&self) -> *const u8 {
        self.c.mem.ptr(self.slot, 0, self.len())
    }

    /// The slot as a byte slice.
    ///
    /// # Safety
    /// No process may write this slot while the slice lives — true of every process
    /// that follows the ring protocol; a faulty one writing it would be a data race.
    #[cfg(not(shmkit_loom))]
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` checked the range; no writer is the caller's contract.
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len()) }
    }

    /// Frees the slot for the producer.
    #[inline]
    pub fn release(self) {
        self.c.release(1);
    }
}
