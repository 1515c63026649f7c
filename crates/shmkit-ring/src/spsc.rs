//! Bounded single-producer single-consumer ring of fixed-size slots.
//!
//! The producer owns `tail`, the consumer owns `head`; both are monotonic `u64`
//! positions (slot = position & (capacity - 1)). Each side keeps its own index in the
//! handle (the shared copy is only a publication of it) and caches the other side's,
//! reloading it only when the cached value says full / empty.
//!
//! Invariant (checked on every load of the other side's index, `debug_assert!`ed on
//! every store): `0 <= tail - head <= capacity`. A loaded index that breaks it means
//! the shared memory is corrupt, and the operation returns [`Error::Corrupt`].
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
use crate::us;
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
    /// Last `tail` loaded; `tail_cache - head <= cap` always.
    tail_cache: u64,
    me: OwnerId,
}

/// Loads both indices and checks `0 <= tail - head <= cap`.
fn load_indices(mem: &Mem) -> Result<(u64, u64)> {
    let h = mem.header();
    // Acquire (both): pair with the Release stores of the previous holders.
    let tail = h.tail.0.load(Ordering::Acquire);
    let head = h.head.0.load(Ordering::Acquire);
    if tail.wrapping_sub(head) > mem.cfg().cap_u64() {
        return Err(corrupt("tail - head exceeds the capacity"));
    }
    Ok((head, tail))
}

impl Producer {
    fn from_mem(mem: Mem) -> Result<Self> {
        let me = OwnerId::current();
        role::claim(&mem.header().meta.0.producer, me, "producer")?;
        let (head, tail) = match load_indices(&mem) {
            Ok(x) => x,
            Err(e) => {
                role::release(&mem.header().meta.0.producer, me);
                return Err(e);
            }
        };
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

    /// Publishes `n` more written slots.
    #[inline]
    fn publish(&mut self, n: u64) {
        self.tail = self.tail.wrapping_add(n);
        debug_assert!(self.tail.wrapping_sub(self.head_cache) <= self.cap);
        // Release: pairs with the consumer's Acquire load of `tail`: our slot writes
        // happen before its reads.
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
        // writes free slots; the consumer does not read it before `publish`.
        unsafe { self.mem.write(slot, 0, bytemuck::bytes_of(&item)) };
        self.publish(1);
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
        self.publish(1);
        Ok(())
    }

    /// Pushes as many of `items` as fit, publishing them with one index store; returns
    /// how many were pushed (0 when full, or when `T` is bigger than a slot, or on a
    /// corrupt index).
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
            let slot = us(self.tail.wrapping_add(k as u64) & self.mask);
            // SAFETY: positions tail..tail+n are free (n <= free) and unpublished.
            unsafe { self.mem.write(slot, 0, bytemuck::bytes_of(item)) };
        }
        if n > 0 {
            self.publish(n as u64);
        }
        n
    }

    /// Reserves the next slot for writing in place; publish it with
    /// [`WriteSlot::commit`] (dropping it publishes nothing).
    ///
    /// # Errors
    /// [`Error::Full`]; [`Error::Corrupt`].
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
    pub fn write_at(&mut self, off: usize, bytes: &[u8]) {
        // SAFETY: the slot is reserved: free and unpublished, written only by us.
        unsafe { self.p.mem.write(self.slot, off, bytes) };
    }

    /// Copies `value` to the start of the slot.
    ///
    /// # Panics
    /// If `T` is bigger than a slot.
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
    pub fn commit(self) {
        self.p.publish(1);
    }
}

impl Consumer {
    fn from_mem(mem: Mem) -> Result<Self> {
        let me = OwnerId::current();
        role::claim(&mem.header().meta.0.consumer, me, "consumer")?;
        let (head, tail) = match load_indices(&mem) {
            Ok(x) => x,
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
            tail_cache: tail,
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

    /// Slots ready to read, reloading the producer's index.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the producer's index is impossible.
    pub fn len(&mut self) -> Result<usize> {
        self.refresh_tail()?;
        // Cast: at most cap <= 2^32.
        Ok(us(self.tail_cache.wrapping_sub(self.head)))
    }

    /// Whether nothing is ready to read.
    ///
    /// # Errors
    /// As [`Consumer::len`].
    pub fn is_empty(&mut self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Reloads `tail`; checks `tail - head <= cap`.
    #[inline]
    fn refresh_tail(&mut self) -> Result<()> {
        // Acquire: pairs with the producer's Release store of `tail`: its slot writes
        // happen before our reads.
        let tail = self.mem.header().tail.0.load(Ordering::Acquire);
        if tail.wrapping_sub(self.head) > self.cap || tail.wrapping_sub(self.tail_cache) > self.cap
        {
            return Err(corrupt("producer index out of range"));
        }
        self.tail_cache = tail;
        Ok(())
    }

    #[inline]
    fn avail_for(&mut self, want: u64) -> Result<u64> {
        let avail = self.tail_cache.wrapping_sub(self.head);
        if avail >= want {
            return Ok(avail);
        }
        self.refresh_tail()?;
        Ok(self.tail_cache.wrapping_sub(self.head))
    }

    #[inline]
    fn release(&mut self, n: u64) {
        self.head = self.head.wrapping_add(n);
        debug_assert!(self.tail_cache.wrapping_sub(self.head) <= self.cap);
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
        if self.avail_for(1)? == 0 {
            return Err(Error::Empty);
        }
        let mut v = T::zeroed();
        let slot = us(self.head & self.mask);
        // SAFETY: slot `head` is published (head < tail) and the producer does not
        // write it again until we release it.
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
        if self.avail_for(1)? == 0 {
            return Err(Error::Empty);
        }
        let slot = us(self.head & self.mask);
        // SAFETY: as in `try_pop`.
        unsafe { self.mem.read(slot, 0, dst) };
        self.release(1);
        Ok(())
    }

    /// Pops up to `out.len()` values with one index store; returns how many (0 when
    /// empty, when `T` is bigger than a slot, or on a corrupt index).
    pub fn pop_slice<T: Pod>(&mut self, out: &mut [T]) -> usize {
        if self.check_len(std::mem::size_of::<T>()).is_err() {
            return 0;
        }
        let avail = match self.avail_for(out.len() as u64) {
            Ok(a) => a,
            Err(_) => return 0,
        };
        // Cast: avail <= cap <= 2^32.
        let n = us((out.len() as u64).min(avail));
        for (k, v) in out[..n].iter_mut().enumerate() {
            let slot = us(self.head.wrapping_add(k as u64) & self.mask);
            // SAFETY: positions head..head+n are published and not yet released.
            unsafe { self.mem.read(slot, 0, bytemuck::bytes_of_mut(v)) };
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
    pub fn peek(&mut self) -> Result<ReadSlot<'_>> {
        if self.avail_for(1)? == 0 {
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
    pub fn read_at(&self, off: usize, dst: &mut [u8]) {
        // SAFETY: the slot is published and not released; the producer leaves it alone.
        unsafe { self.c.mem.read(self.slot, off, dst) };
    }

    /// Copies a `T` out of the start of the slot.
    ///
    /// # Panics
    /// If `T` is bigger than a slot.
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
    pub fn release(self) {
        self.c.release(1);
    }
}
