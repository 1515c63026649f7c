//! [`Queue`] (serde items), [`PodQueue`] (plain-data items, no codec) and
//! [`QueueOptions`].

use crate::core::{Core, Shape, LEN_PREFIX};
use crate::error::{Error, Result};
use bytemuck::Pod;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use shmkit_segment::shim::time::Deadline;
use shmkit_segment::Token;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::time::Duration;

/// Item slots of a queue created with `maxsize <= 0` (Python's "unbounded"): 8192.
pub const DEFAULT_CAPACITY: usize = 1 << 13;
/// Default largest encoded item of a serde [`Queue`]: 252 bytes (256-byte slots).
pub const DEFAULT_MAX_ITEM_SIZE: usize = 252;
/// Bytes of ring bookkeeping per slot (its stamp and owner words). A slot takes its
/// item bytes plus this, rounded up to whole 64-byte lines (see
/// [`QueueOptions::capacity_bytes`]).
pub const SLOT_OVERHEAD: usize = 16;

/// How to shape a new queue: capacity in items and/or bytes, and the largest item.
///
/// The capacity is a power of two: `maxsize` is rounded **up** to one (Python's
/// `Queue(10)` holds 16 items before `put` blocks); `maxsize <= 0` means
/// [`DEFAULT_CAPACITY`]. With [`capacity_bytes`](QueueOptions::capacity_bytes) the
/// slot count is also limited to what fits in that many bytes (rounded **down**).
///
/// ```
/// use shmkit_queue::{Queue, QueueOptions};
/// let q: Queue<String> = QueueOptions::new(100).max_item_size(4096).anonymous()?;
/// assert_eq!((q.capacity(), q.max_item_size()), (128, 4096));
/// # Ok::<(), shmkit_queue::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct QueueOptions {
    maxsize: i64,
    max_item: usize,
    bytes: Option<usize>,
}

impl QueueOptions {
    /// A queue of `maxsize` items (Python's `maxsize`; `<= 0`: [`DEFAULT_CAPACITY`]).
    pub fn new(maxsize: i64) -> Self {
        QueueOptions {
            maxsize,
            max_item: DEFAULT_MAX_ITEM_SIZE,
            bytes: None,
        }
    }

    /// The largest encoded item, in bytes (default [`DEFAULT_MAX_ITEM_SIZE`]); bigger
    /// items are refused with [`Error::TooLarge`]. Every slot has room for this many
    /// bytes, so it also sets the memory per item. Ignored by [`PodQueue`] (its items
    /// are `size_of::<T>()` bytes).
    pub fn max_item_size(mut self, bytes: usize) -> Self {
        self.max_item = bytes;
        self
    }

    /// Limits the queue's slot memory to `bytes`. A slot takes the max item size (plus
    /// a 4-byte length prefix for serde items, rounded up to 8) plus [`SLOT_OVERHEAD`],
    /// rounded up to whole 64-byte lines.
    pub fn capacity_bytes(mut self, bytes: usize) -> Self {
        self.bytes = Some(bytes);
        self
    }

    pub(crate) fn shape(&self, pod_size: Option<usize>) -> Result<Shape> {
        let max_item = pod_size.unwrap_or(self.max_item);
        let mut count = if self.maxsize <= 0 {
            DEFAULT_CAPACITY
        } else {
            usize::try_from(self.maxsize).unwrap_or(usize::MAX)
        };
        count = count.checked_next_power_of_two().ok_or(Error::Config {
            what: "maxsize too large",
        })?;
        if let Some(b) = self.bytes {
            let payload = if pod_size.is_some() {
                max_item.max(1)
            } else {
                max_item + LEN_PREFIX
            };
            let per = shmkit_ring::raw::mpmc_stride(payload.div_ceil(8) * 8);
            let fit = b / per;
            if fit == 0 {
                return Err(Error::Config {
                    what: "capacity_bytes is too small for one item",
                });
            }
            let fit = 1usize << fit.ilog2();
            if self.maxsize <= 0 || fit < count {
                count = fit;
            }
        }
        Ok(Shape {
            capacity: count,
            max_item,
            pod: pod_size.is_some(),
            maxsize: u64::try_from(self.maxsize.max(0)).unwrap_or(0),
        })
    }

    /// A new anonymous queue (a memfd segment, inherited by `fork`, passed by token).
    ///
    /// # Errors
    /// [`Error::Config`] for an impossible shape; [`Error::Segment`] if the segment
    /// cannot be made.
    pub fn anonymous<T>(&self) -> Result<Queue<T>> {
        Ok(Queue::from_core(Core::anonymous(self.shape(None)?)?))
    }

    /// A new queue named `name` (fails if it exists).
    ///
    /// # Errors
    /// As [`QueueOptions::anonymous`]; [`Error::Segment`] with `AlreadyExists`.
    pub fn create<T>(&self, name: &str) -> Result<Queue<T>> {
        Ok(Queue::from_core(Core::create(name, self.shape(None)?)?))
    }

    /// Opens the queue `name`, or creates it with these options.
    ///
    /// # Errors
    /// As [`QueueOptions::anonymous`] and [`Queue::open`].
    pub fn open_or_create<T>(&self, name: &str) -> Result<Queue<T>> {
        Ok(Queue::from_core(Core::open_or_create(
            name,
            self.shape(None)?,
        )?))
    }

    /// A new anonymous [`PodQueue`].
    ///
    /// # Errors
    /// As [`QueueOptions::anonymous`].
    pub fn anonymous_pod<T: Pod>(&self) -> Result<PodQueue<T>> {
        PodQueue::from_core(Core::anonymous(self.shape(Some(pod_size::<T>()))?)?)
    }

    /// A new [`PodQueue`] named `name`.
    ///
    /// # Errors
    /// As [`QueueOptions::create`].
    pub fn create_pod<T: Pod>(&self, name: &str) -> Result<PodQueue<T>> {
        PodQueue::from_core(Core::create(name, self.shape(Some(pod_size::<T>()))?)?)
    }
}

fn pod_size<T>() -> usize {
    std::mem::size_of::<T>().max(1)
}

fn deadline(timeout: Duration) -> Deadline {
    Deadline::after(timeout)
}

thread_local! {
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Slots up to this size (the default slot, 252 + 4 bytes, included) are encoded into
/// and decoded from a buffer on the stack.
const STACK_BUF: usize = 256;
/// Slots up to this size get a buffer of this size (less to zero per item).
const SMALL_BUF: usize = 64;

/// Runs `f` with a scratch buffer of `len` bytes: on the stack when small, else this
/// thread's (when free).
#[inline]
fn with_buf<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    if len <= STACK_BUF {
        let mut b = [0u8; STACK_BUF];
        return f(&mut b[..len]);
    }
    with_heap_buf(len, f)
}

#[cold]
fn with_heap_buf<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    BUF.with(|b| match b.try_borrow_mut() {
        Ok(mut v) => {
            if v.len() < len {
                v.resize(len, 0);
            }
            f(&mut v[..len])
        }
        Err(_) => f(&mut vec![0; len]),
    })
}

/// A multi-producer, multi-consumer FIFO queue between processes — Python's
/// `multiprocessing.Queue` — carrying any serde type, encoded with postcard.
///
/// Handles are `Clone` (another reference to the same queue, also across `fork`),
/// `Send` and `Sync`; any number of processes may put and get. A handle can be
/// opened by name ([`Queue::create`], [`Queue::open`]) or rebuilt from a
/// [`Token`] (the handle itself serialises as its token).
///
/// ```
/// use shmkit_queue::{Error, Queue};
/// use std::time::Duration;
/// let q: Queue<(u32, String)> = Queue::new(4)?;
/// let peer = q.clone(); // while another handle exists, an empty get waits
/// q.put((1, "one".into())).map_err(Error::drop_item)?;
/// assert_eq!(q.qsize(), 1);
/// assert_eq!(q.get()?, (1, "one".into()));
/// assert!(matches!(q.get_timeout(Duration::from_millis(10)), Err(Error::Empty)));
/// drop(peer); // now nobody else could put: an empty get returns at once
/// assert!(matches!(q.get(), Err(Error::Disconnected)));
/// q.close();
/// assert!(matches!(q.try_get(), Err(Error::Closed)));
/// # Ok::<(), shmkit_queue::Error>(())
/// ```
pub struct Queue<T> {
    core: Core,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> std::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.core.fmt(f)
    }
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue::from_core(self.core.clone())
    }
}

impl<T> Queue<T> {
    pub(crate) fn from_core(core: Core) -> Self {
        Queue {
            core,
            _t: PhantomData,
        }
    }

    /// A new anonymous queue holding `maxsize` items (rounded up to a power of two;
    /// `<= 0`: [`DEFAULT_CAPACITY`]); items up to [`DEFAULT_MAX_ITEM_SIZE`] bytes
    /// encoded. Use [`QueueOptions`] for other sizes.
    ///
    /// # Errors
    /// [`Error::Segment`] if the segment cannot be made; [`Error::Config`].
    pub fn new(maxsize: i64) -> Result<Self> {
        QueueOptions::new(maxsize).anonymous()
    }

    /// A new queue named `name`, which other processes open with [`Queue::open`].
    /// The name is unlinked when the creator's last handle to it is dropped.
    ///
    /// # Errors
    /// As [`Queue::new`]; `AlreadyExists` if the name is taken.
    pub fn create(name: &str, maxsize: i64) -> Result<Self> {
        QueueOptions::new(maxsize).create(name)
    }

    /// Opens the queue named `name`.
    ///
    /// # Errors
    /// [`Error::Segment`] (`NotFound`, wrong kind, …); [`Error::Config`] if it is a
    /// [`PodQueue`]; [`Error::Corrupt`].
    pub fn open(name: &str) -> Result<Self> {
        Ok(Queue::from_core(Core::open(name, false)?))
    }

    /// Opens the queue named `name`, or creates it with `maxsize`.
    ///
    /// # Errors
    /// As [`Queue::create`] and [`Queue::open`].
    pub fn open_or_create(name: &str, maxsize: i64) -> Result<Self> {
        QueueOptions::new(maxsize).open_or_create(name)
    }

    /// Rebuilds a handle from a [`Queue::token`] (e.g. in a spawned process).
    ///
    /// # Errors
    /// [`Error::Segment`] if the token is stale or names no queue.
    pub fn from_token(token: &Token) -> Result<Self> {
        Ok(Queue::from_core(Core::from_token(token, false)?))
    }

    /// A serialisable reference to this queue.
    ///
    /// # Errors
    /// [`Error::Segment`] if the segment has no token form.
    pub fn token(&self) -> Result<Token> {
        self.core.token()
    }

    /// Approximate number of items (exact when nobody is mid-operation). Python:
    /// `qsize()`.
    pub fn qsize(&self) -> usize {
        self.core.len()
    }

    /// Whether the queue is (approximately) empty.
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Whether the queue is (approximately) full.
    pub fn full(&self) -> bool {
        self.qsize() >= self.capacity()
    }

    /// Items the queue holds before `put` blocks (a power of two).
    pub fn capacity(&self) -> usize {
        self.core.capacity()
    }

    /// The `maxsize` given at creation (0 for "unbounded").
    pub fn maxsize(&self) -> u64 {
        self.core.maxsize()
    }

    /// Largest encoded item in bytes.
    pub fn max_item_size(&self) -> usize {
        self.core.max_item()
    }

    /// Closes the queue for every handle: puts fail with [`Error::Closed`], getters
    /// take what is left and then get [`Error::Closed`]. Sleepers are woken.
    pub fn close(&self) {
        self.core.ctl().close();
    }

    /// Whether [`Queue::close`] was called (by any handle).
    pub fn is_closed(&self) -> bool {
        self.core.ctl().is_closed()
    }

    /// Handles to this queue other than this one, in every live process (reads
    /// `/proc` for each other process).
    pub fn other_handles(&self) -> u64 {
        self.core.others()
    }

    pub(crate) fn core(&self) -> &Core {
        &self.core
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    fn put_deadline(&self, item: T, d: Deadline, block: bool) -> Result<(), Error<T>> {
        let slot = self.core.slot();
        // The common small slot gets its buffer right here, not through a closure
        // call (whose captured arguments were re-read as wider loads than they were
        // stored with: a store-forwarding stall per item).
        let r = if slot <= SMALL_BUF {
            let mut b = [0u8; SMALL_BUF];
            self.put_from(&item, &mut b[..slot], d, block)
        } else {
            with_buf(slot, |buf| self.put_from(&item, buf, d, block))
        };
        r.map_err(|e| e.map_item(|()| item))
    }

    /// Encodes `item` into `buf` (a slot's size) and pushes it.
    #[inline(always)]
    fn put_from(&self, item: &T, buf: &mut [u8], d: Deadline, block: bool) -> Result<()> {
        let max = self.core.max_item();
        let slot = buf.len();
        let len = match crate::codec::to_slice(item, &mut buf[LEN_PREFIX..LEN_PREFIX + max]) {
            Ok(n) => n,
            Err(postcard::Error::SerializeBufferFull) => {
                let len = postcard::to_stdvec(item).map_or(usize::MAX, |v| v.len());
                return Err(Error::TooLarge { len, max });
            }
            Err(e) => return Err(Error::Codec(e)),
        };
        let n = u32::try_from(len).map_err(|_| Error::TooLarge { len, max })?;
        buf[..LEN_PREFIX].copy_from_slice(&n.to_le_bytes());
        // A small slot's buffer is a zeroed one on the stack: pad the item to whole
        // words (within the slot, whose size is a multiple of 8), which the ring
        // copies without a memmove call.
        let used = if slot <= STACK_BUF {
            (LEN_PREFIX + len).next_multiple_of(8).min(slot)
        } else {
            LEN_PREFIX + len
        };
        self.core.push(&buf[..used], d, block)
    }

    /// Puts `item`, waiting as long as the queue is full.
    ///
    /// # Errors
    /// [`Error::Closed`]; [`Error::Disconnected`] when the queue is full and no other
    /// handle is left to get; [`Error::TooLarge`] / [`Error::Codec`] (nothing was
    /// written); [`Error::Ring`] if the shared memory is corrupt.
    pub fn put(&self, item: T) -> Result<(), Error<T>> {
        self.put_deadline(item, Deadline::NEVER, true)
    }

    /// Puts `item`, waiting up to `timeout` for room.
    ///
    /// # Errors
    /// [`Error::Full`] with the item after the timeout; otherwise as [`Queue::put`].
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), Error<T>> {
        self.put_deadline(item, deadline(timeout), true)
    }

    /// Puts `item` if there is room now (Python's `put_nowait`).
    ///
    /// # Errors
    /// [`Error::Full`] with the item; otherwise as [`Queue::put`].
    pub fn try_put(&self, item: T) -> Result<(), Error<T>> {
        self.put_deadline(item, Deadline::NEVER, false)
    }

    fn get_deadline(&self, d: Deadline, block: bool) -> Result<T> {
        let slot = self.core.slot();
        // As in `put_deadline`: the small slot's buffer without a closure call.
        if slot <= SMALL_BUF {
            let mut b = [0u8; SMALL_BUF];
            return self.get_into(&mut b[..slot], d, block);
        }
        with_buf(slot, |buf| self.get_into(buf, d, block))
    }

    /// Pops an item through `buf` (a slot's size) and decodes it.
    #[inline(always)]
    fn get_into(&self, buf: &mut [u8], d: Deadline, block: bool) -> Result<T> {
        let max = self.core.max_item();
        let slot = buf.len();
        // Copy out only the words the item occupies: its length word first, then the
        // rest (a small item in a big slot touches one cache line, not all). The
        // closure hands back a plain length (`usize::MAX`: out of range), so the
        // pop's result stays one word.
        let len = self.core.pop_with(d, block, |p| {
            p.read_at(0, &mut buf[..8]);
            let mut n = [0u8; LEN_PREFIX];
            n.copy_from_slice(&buf[..LEN_PREFIX]);
            // The length comes from shared memory: bounds-check it.
            let len = usize::try_from(u32::from_le_bytes(n)).unwrap_or(usize::MAX);
            if len > max || len > slot - LEN_PREFIX {
                return usize::MAX;
            }
            let used = (LEN_PREFIX + len).next_multiple_of(8).min(slot);
            if used > 8 {
                p.read_at(8, &mut buf[8..used]);
            }
            len
        })?;
        if len == usize::MAX {
            return Err(Error::Corrupt {
                what: "item length in a slot exceeds the maximum item size",
            });
        }
        postcard::from_bytes(&buf[LEN_PREFIX..LEN_PREFIX + len]).map_err(Error::Codec)
    }

    /// Takes the oldest item, waiting as long as the queue is empty.
    ///
    /// # Errors
    /// [`Error::Closed`] once closed and drained; [`Error::Disconnected`] when the
    /// queue is empty and no other handle is left to put (see `docs/queue.md` for
    /// how fast a killed process is noticed); [`Error::Codec`] if the item does not
    /// decode as `T` (it is consumed); [`Error::Corrupt`] / [`Error::Ring`].
    pub fn get(&self) -> Result<T> {
        self.get_deadline(Deadline::NEVER, true)
    }

    /// Takes the oldest item, waiting up to `timeout`.
    ///
    /// # Errors
    /// [`Error::Empty`] after the timeout; otherwise as [`Queue::get`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_deadline(deadline(timeout), true)
    }

    /// Takes the oldest item if there is one now (Python's `get_nowait`).
    ///
    /// # Errors
    /// [`Error::Empty`]; otherwise as [`Queue::get`].
    pub fn try_get(&self) -> Result<T> {
        self.get_deadline(Deadline::NEVER, false)
    }
}

impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.token()
            .map_err(serde::ser::Error::custom)?
            .serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let t = Token::deserialize(d)?;
        Queue::from_token(&t).map_err(serde::de::Error::custom)
    }
}

/// A [`Queue`] of plain-data items (`bytemuck::Pod`): each item is copied into its
/// slot as raw bytes, with no codec and no length prefix — the zero-copy path (one
/// copy in, one copy out). Same semantics as [`Queue`] otherwise.
///
/// ```
/// use shmkit_queue::PodQueue;
/// let q: PodQueue<[u64; 2]> = PodQueue::new(8)?;
/// q.put([1, 2]).map_err(shmkit_queue::Error::drop_item)?;
/// assert_eq!(q.get()?, [1, 2]);
/// # Ok::<(), shmkit_queue::Error>(())
/// ```
pub struct PodQueue<T> {
    core: Core,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> std::fmt::Debug for PodQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.core.fmt(f)
    }
}

impl<T> Clone for PodQueue<T> {
    fn clone(&self) -> Self {
        PodQueue {
            core: self.core.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Pod> PodQueue<T> {
    fn from_core(core: Core) -> Result<Self> {
        if core.max_item() != pod_size::<T>() {
            return Err(Error::Config {
                what: "the Pod queue's item size differs from size_of::<T>()",
            });
        }
        Ok(PodQueue {
            core,
            _t: PhantomData,
        })
    }

    /// A new anonymous queue of `maxsize` items (as [`Queue::new`]).
    ///
    /// # Errors
    /// As [`Queue::new`].
    pub fn new(maxsize: i64) -> Result<Self> {
        QueueOptions::new(maxsize).anonymous_pod()
    }

    /// A new named queue.
    ///
    /// # Errors
    /// As [`Queue::create`].
    pub fn create(name: &str, maxsize: i64) -> Result<Self> {
        QueueOptions::new(maxsize).create_pod(name)
    }

    /// Opens a named Pod queue of the same item size.
    ///
    /// # Errors
    /// As [`Queue::open`]; [`Error::Config`] if its item size differs.
    pub fn open(name: &str) -> Result<Self> {
        Self::from_core(Core::open(name, true)?)
    }

    /// Rebuilds a handle from a token.
    ///
    /// # Errors
    /// As [`Queue::from_token`].
    pub fn from_token(token: &Token) -> Result<Self> {
        Self::from_core(Core::from_token(token, true)?)
    }

    /// A serialisable reference to this queue.
    ///
    /// # Errors
    /// As [`Queue::token`].
    pub fn token(&self) -> Result<Token> {
        self.core.token()
    }

    fn put_deadline(&self, item: T, d: Deadline, block: bool) -> Result<(), Error<T>> {
        let r = self.core.push(bytemuck::bytes_of(&item), d, block);
        r.map_err(|e| e.map_item(|()| item))
    }

    /// Puts `item`, waiting while full.
    ///
    /// # Errors
    /// As [`Queue::put`].
    pub fn put(&self, item: T) -> Result<(), Error<T>> {
        self.put_deadline(item, Deadline::NEVER, true)
    }

    /// Puts `item`, waiting up to `timeout`.
    ///
    /// # Errors
    /// As [`Queue::put_timeout`].
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), Error<T>> {
        self.put_deadline(item, deadline(timeout), true)
    }

    /// Puts `item` if there is room now.
    ///
    /// # Errors
    /// As [`Queue::try_put`].
    pub fn try_put(&self, item: T) -> Result<(), Error<T>> {
        self.put_deadline(item, Deadline::NEVER, false)
    }

    fn get_deadline(&self, d: Deadline, block: bool) -> Result<T> {
        let mut v = T::zeroed();
        let dst = bytemuck::bytes_of_mut(&mut v);
        // `dst` is `max_item` bytes (checked in `from_core`), within a slot (checked
        // in `Core::attach`).
        self.core.pop_with(d, block, |p| p.read_at(0, dst))?;
        Ok(v)
    }

    /// Takes the oldest item, waiting while empty.
    ///
    /// # Errors
    /// As [`Queue::get`] (no codec errors).
    pub fn get(&self) -> Result<T> {
        self.get_deadline(Deadline::NEVER, true)
    }

    /// Takes the oldest item, waiting up to `timeout`.
    ///
    /// # Errors
    /// As [`Queue::get_timeout`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_deadline(deadline(timeout), true)
    }

    /// Takes the oldest item if there is one now.
    ///
    /// # Errors
    /// As [`Queue::try_get`].
    pub fn try_get(&self) -> Result<T> {
        self.get_deadline(Deadline::NEVER, false)
    }

    /// Approximate number of items.
    pub fn qsize(&self) -> usize {
        self.core.len()
    }

    /// Whether the queue is (approximately) empty.
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Whether the queue is (approximately) full.
    pub fn full(&self) -> bool {
        self.qsize() >= self.core.capacity()
    }

    /// Items the queue holds before `put` blocks.
    pub fn capacity(&self) -> usize {
        self.core.capacity()
    }

    /// Closes the queue (as [`Queue::close`]).
    pub fn close(&self) {
        self.core.ctl().close();
    }
}

#[cfg(all(test, not(shmkit_loom)))]
mod tests {
    use super::*;

    /// Max item sizes whose slots (`max + 4` rounded up to 8) take each buffer of
    /// put/get: the small stack buffer (8, 64: up to `SMALL_BUF`), the larger one
    /// (72, 256: up to `STACK_BUF`), the thread's (264, 304); those that fill their
    /// slot exactly and some that leave padding (3, 61, 253).
    const MAXES: [(usize, usize); 9] = [
        (4, 8),
        (3, 8),
        (60, 64),
        (68, 72),
        (61, 72),
        (252, 256),
        (253, 264),
        (296, 300),
        (300, 304),
    ];

    /// A `Vec<u8>` whose postcard encoding (varint length + bytes) is `n` bytes, with
    /// bytes that tell offsets apart.
    fn item(n: usize, seed: u8) -> Vec<u8> {
        let len = if n <= 128 { n - 1 } else { n - 2 };
        let v: Vec<u8> = (0..=u8::MAX)
            .cycle()
            .take(len)
            .map(|i| i.wrapping_mul(31).wrapping_add(seed))
            .collect();
        assert_eq!(postcard::to_stdvec(&v).expect("encodes").len(), n);
        v
    }

    fn queue(max: usize) -> Queue<Vec<u8>> {
        QueueOptions::new(2)
            .max_item_size(max)
            .anonymous()
            .expect("queue")
    }

    /// Items that fill the maximum exactly round-trip through every buffer (blocking
    /// and not); one byte more is TooLarge and leaves the queue as it was; a full
    /// queue hands the item back.
    #[test]
    fn exact_fit_round_trips_and_one_more_is_too_large() {
        for (max, slot) in MAXES {
            let q = queue(max);
            let _peer = q.clone();
            assert_eq!(q.core.slot(), slot.next_multiple_of(8), "max {max}");
            let (a, b) = (item(max, 1), item(max, 2));
            q.put(a.clone()).expect("put");
            q.try_put(b.clone()).expect("try_put");
            for big in [item(max + 1, 3), item(max + 1, 4)] {
                match q.try_put(big) {
                    Err(Error::TooLarge { len, max: m }) => {
                        assert_eq!((len, m), (max + 1, max), "max {max}");
                    }
                    other => panic!("max {max}: {other:?}"),
                }
            }
            match q.put_timeout(item(max + 1, 5), Duration::ZERO) {
                Err(Error::TooLarge { len, .. }) => assert_eq!(len, max + 1),
                other => panic!("max {max}: {other:?}"),
            }
            let c = item(max, 6);
            match q.try_put(c.clone()) {
                Err(Error::Full(back)) => assert_eq!(back, c, "max {max}"),
                other => panic!("max {max}: {other:?}"),
            }
            match q.put_timeout(c.clone(), Duration::from_millis(1)) {
                Err(Error::Full(back)) => assert_eq!(back, c, "max {max}"),
                other => panic!("max {max}: {other:?}"),
            }
            assert_eq!(q.qsize(), 2);
            assert_eq!(q.get().expect("get"), a, "max {max}");
            assert_eq!(q.try_get().expect("try_get"), b, "max {max}");
            // Short items after long ones: the padding copies must not leak old bytes.
            q.put(vec![9]).expect("put");
            assert_eq!(q.get().expect("get"), vec![9]);
            assert!(matches!(q.try_get(), Err(Error::Empty)));
        }
    }

    /// A slot whose length word is out of range is `Corrupt` (not a huge copy, not
    /// a panic), and one in range over bytes that do not decode is `Codec`; either
    /// way the slot is consumed and the queue goes on.
    #[test]
    fn bad_length_word_is_corrupt_and_bad_bytes_a_codec_error() {
        for (max, slot) in MAXES {
            let slot = slot.next_multiple_of(8);
            let q = queue(max);
            let _peer = q.clone();
            let word = |w: u32, fill: u8| {
                let mut b = vec![fill; slot];
                b[..LEN_PREFIX].copy_from_slice(&w.to_le_bytes());
                b
            };
            let over_slot = u32::try_from(slot - LEN_PREFIX + 1).expect("small");
            let over_max = u32::try_from(max + 1).expect("small");
            for (w, blocking) in [
                (over_max, true),
                (over_max, false),
                (over_slot, true),
                (u32::MAX, false),
                (u32::MAX >> 1, true),
            ] {
                q.core
                    .push(&word(w, 0), Deadline::NEVER, false)
                    .expect("push");
                let r = if blocking { q.get() } else { q.try_get() };
                assert!(
                    matches!(r, Err(Error::Corrupt { .. })),
                    "max {max}, word {w}: {r:?}"
                );
                assert!(matches!(q.try_get(), Err(Error::Empty)), "max {max}");
            }
            // In range: an empty item, and a varint that never ends.
            for (w, fill) in [(0, 0), (u32::try_from(max).expect("small"), 0xff)] {
                q.core
                    .push(&word(w, fill), Deadline::NEVER, false)
                    .expect("push");
                let r = q.get();
                assert!(matches!(r, Err(Error::Codec(_))), "max {max}: {r:?}");
            }
            q.put(item(max, 7)).expect("put");
            assert_eq!(q.get().expect("get"), item(max, 7));
        }
    }
}
