//! The pool's shared memory. The **pool segment** (kind `POOL`, layout version 2)
//! holds the parent's doorbell followed by one block per initial worker; a
//! replacement worker gets a **worker segment** (kind `POLW`) of its own holding one
//! block. A worker block: the worker's two rings, its wake-up words and its progress
//! counter. One segment for the whole initial pool keeps `Pool::new` to one
//! `memfd_create` + `mmap` (and its drop to one `munmap`).
//!
//! ```text
//! POOL v2: [doorbell EventCount] [worker block 0] … [worker block n-1]
//! POLW v1: [worker block]
//! block:   [tasks_ec EventCount][space_ec EventCount][started u64]
//!          [task byte ring][result byte ring]      (rings of `ring_bytes` each)
//! ```

use crate::error::Result;
use serde::{Deserialize, Serialize};
use shmkit_ring::bytes::{self, Consumer, Producer};
use shmkit_ring::RingConfig;
use shmkit_segment::layout::{ByteRegion, Layout, Region};
use shmkit_segment::shim::atomic::{AtomicU64, Ordering};
use shmkit_segment::{Kind, Segment, SegmentOptions, Token};
use shmkit_sync::futex::EventCount;

/// Kind tag of the pool segment.
pub(crate) const POOL_KIND: Kind = Kind::from_tag(*b"POOL");
/// Layout version of the pool segment (2: the initial workers' blocks follow the
/// doorbell).
pub(crate) const POOL_VERSION: u32 = 2;
/// Kind tag of a worker segment.
pub(crate) const WORKER_KIND: Kind = Kind::from_tag(*b"POLW");

/// The pool segment's doorbell: the event count the parent's result handler sleeps
/// on. Workers notify it after each result; parent threads after each change of the
/// pool state.
#[derive(Debug, Clone)]
pub(crate) struct PoolShm {
    seg: Segment,
    doorbell: Region<EventCount>,
}

/// The pool segment's layout for `n` initial workers.
fn pool_layout(
    n: usize,
    ring_bytes: usize,
) -> Result<(Layout, Region<EventCount>, Vec<WorkerLayout>)> {
    let cfg = RingConfig::bytes(ring_bytes)?;
    let mut l = Layout::new();
    let doorbell = l.add::<EventCount>();
    let workers = (0..n)
        .map(|_| add_worker(&mut l, &cfg))
        .collect::<Result<Vec<_>>>()?;
    Ok((l, doorbell, workers))
}

impl PoolShm {
    /// The pool segment with the blocks of `n` initial workers, initialised: the
    /// doorbell, and each worker's segment view with the parent's ends of its rings.
    pub(crate) fn create(
        n: usize,
        ring_bytes: usize,
    ) -> Result<(Self, Vec<(WorkerShm, ParentEnds)>)> {
        let (l, doorbell, blocks) = pool_layout(n, ring_bytes)?;
        // Not prefaulted: most of the rings is touched only by large messages.
        let seg = SegmentOptions::new(POOL_KIND, l.size())
            .kind_version(POOL_VERSION)
            .prefault(false)
            .create_anonymous(|_| {})?;
        doorbell.get(&seg)?;
        let workers = blocks
            .into_iter()
            .enumerate()
            .map(|(i, wl)| WorkerShm::init(seg.clone(), wl, Some(Slot { index: i, of: n })))
            .collect::<Result<Vec<_>>>()?;
        Ok((PoolShm { seg, doorbell }, workers))
    }

    pub(crate) fn open(token: &Token) -> Result<Self> {
        let seg = token.open()?;
        // The doorbell comes first whatever the number of worker blocks.
        let (_, doorbell, _) = pool_layout(0, bytes_min())?;
        doorbell.get(&seg)?;
        Ok(PoolShm { seg, doorbell })
    }

    pub(crate) fn token(&self) -> Result<Token> {
        Ok(self.seg.token()?)
    }

    pub(crate) fn doorbell(&self) -> &EventCount {
        self.doorbell
            .get(&self.seg)
            .expect("checked when the segment was created or opened")
    }
}

/// A valid ring size, for layouts that place no ring.
fn bytes_min() -> usize {
    4096
}

/// Where things are in a worker block.
#[derive(Debug, Clone, Copy)]
struct WorkerLayout {
    /// The worker sleeps on it when it has no task; the parent notifies after a push.
    tasks_ec: Region<EventCount>,
    /// The worker sleeps on it when its result ring is full; the parent notifies after
    /// popping.
    space_ec: Region<EventCount>,
    /// Tasks the worker has begun (stored before user code runs). With the number of
    /// results the parent received it tells whether the worker held a task when it died.
    started: Region<AtomicU64>,
    tasks: ByteRegion,
    results: ByteRegion,
    cfg: RingConfig,
}

/// Appends one worker block to `l`.
fn add_worker(l: &mut Layout, cfg: &RingConfig) -> Result<WorkerLayout> {
    let tasks_ec = l.add::<EventCount>();
    let space_ec = l.add::<EventCount>();
    let started = l.add::<AtomicU64>();
    let tasks = cfg.add_to(l)?;
    let results = cfg.add_to(l)?;
    Ok(WorkerLayout {
        tasks_ec,
        space_ec,
        started,
        tasks,
        results,
        cfg: *cfg,
    })
}

/// A worker segment's layout (one block).
fn worker_layout(ring_bytes: usize) -> Result<(WorkerLayout, usize)> {
    let cfg = RingConfig::bytes(ring_bytes)?;
    let mut l = Layout::new();
    let w = add_worker(&mut l, &cfg)?;
    Ok((w, l.size()))
}

/// Which block of the pool segment a worker uses (`None`: its own worker segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Slot {
    index: usize,
    of: usize,
}

/// How a worker finds its segment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorkerShmToken {
    token: Token,
    ring_bytes: usize,
    slot: Option<Slot>,
}

/// One worker's segment.
#[derive(Debug)]
pub(crate) struct WorkerShm {
    seg: Segment,
    l: WorkerLayout,
    slot: Option<Slot>,
}

/// The parent's ends of a worker's rings.
#[derive(Debug)]
pub(crate) struct ParentEnds {
    pub(crate) tasks: Producer,
    pub(crate) results: Consumer,
}

/// The worker's ends of its rings.
#[derive(Debug)]
pub(crate) struct WorkerEnds {
    pub(crate) tasks: Consumer,
    pub(crate) results: Producer,
}

impl WorkerShm {
    /// A new worker segment (for a replacement worker) with two rings of
    /// `ring_bytes` (a power of two), and the parent's ends of them.
    pub(crate) fn create(ring_bytes: usize) -> Result<(Self, ParentEnds)> {
        let (l, size) = worker_layout(ring_bytes)?;
        // Not prefaulted: most of the rings is touched only by large messages.
        let seg = SegmentOptions::new(WORKER_KIND, size)
            .prefault(false)
            .create_anonymous(|_| {})?;
        Self::init(seg, l, None)
    }

    /// Initialises the worker block `l` of `seg` and attaches the parent's ends.
    fn init(seg: Segment, l: WorkerLayout, slot: Option<Slot>) -> Result<(Self, ParentEnds)> {
        l.tasks_ec.get(&seg)?;
        l.space_ec.get(&seg)?;
        l.started.get(&seg)?;
        bytes::init(&seg, l.tasks, &l.cfg)?;
        bytes::init(&seg, l.results, &l.cfg)?;
        let ends = ParentEnds {
            tasks: Producer::attach(&seg, l.tasks)?,
            results: Consumer::attach(&seg, l.results)?,
        };
        Ok((WorkerShm { seg, l, slot }, ends))
    }

    pub(crate) fn token(&self) -> Result<WorkerShmToken> {
        Ok(WorkerShmToken {
            token: self.seg.token()?,
            ring_bytes: self.l.cfg.capacity(),
            slot: self.slot,
        })
    }

    /// Opens the segment in a spawned worker and attaches the worker's ends.
    pub(crate) fn open(t: &WorkerShmToken) -> Result<(Self, WorkerEnds)> {
        let l = match t.slot {
            Some(slot) => {
                let (_, _, blocks) = pool_layout(slot.of, t.ring_bytes)?;
                *blocks
                    .get(slot.index)
                    .ok_or(crate::Error::InvalidArgument("worker slot out of range"))?
            }
            None => worker_layout(t.ring_bytes)?.0,
        };
        Self::attach_worker(t.token.open()?, l, t.slot)
    }

    /// The worker's ends, attached here in the parent for a worker about to be
    /// forked: the child inherits them and skips attaching (which reads
    /// `/proc/self/stat` to name the new owner). The ends' owner words then name the
    /// parent, which is harmless: each end is used only by the worker, and nobody
    /// else ever attaches to a worker's rings.
    pub(crate) fn worker_ends_for_fork(&self) -> Result<(Self, WorkerEnds)> {
        Self::attach_worker(self.seg.clone(), self.l, self.slot)
    }

    /// Attaches the worker's ends of block `l` of `seg`.
    fn attach_worker(
        seg: Segment,
        l: WorkerLayout,
        slot: Option<Slot>,
    ) -> Result<(Self, WorkerEnds)> {
        l.tasks_ec.get(&seg)?;
        l.space_ec.get(&seg)?;
        l.started.get(&seg)?;
        let ends = WorkerEnds {
            tasks: Consumer::attach(&seg, l.tasks)?,
            results: Producer::attach(&seg, l.results)?,
        };
        Ok((WorkerShm { seg, l, slot }, ends))
    }

    pub(crate) fn tasks_ec(&self) -> &EventCount {
        self.l
            .tasks_ec
            .get(&self.seg)
            .expect("checked at create/open")
    }

    pub(crate) fn space_ec(&self) -> &EventCount {
        self.l
            .space_ec
            .get(&self.seg)
            .expect("checked at create/open")
    }

    /// Tasks the worker has begun.
    pub(crate) fn started(&self) -> u64 {
        // Acquire: pairs with the worker's Release increment; read after the worker
        // was seen dead, so it is final anyway.
        self.l
            .started
            .get(&self.seg)
            .expect("checked at create/open")
            .load(Ordering::Acquire)
    }

    /// Worker side: records that one more task begins.
    pub(crate) fn begin_task(&self) {
        // Release: the parent reads it after the worker died (see `started`).
        self.l
            .started
            .get(&self.seg)
            .expect("checked at create/open")
            .fetch_add(1, Ordering::Release);
    }
}
