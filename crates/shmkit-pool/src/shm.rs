//! The pool's shared memory: one small pool segment (the parent's doorbell) and one
//! segment per worker (its two rings, its wake-up words and its progress counter).

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
/// Kind tag of a worker segment.
pub(crate) const WORKER_KIND: Kind = Kind::from_tag(*b"POLW");

/// The pool segment: the event count the parent's result handler sleeps on. Workers
/// notify it after each result; parent threads after each change of the pool state.
#[derive(Debug, Clone)]
pub(crate) struct PoolShm {
    seg: Segment,
    doorbell: Region<EventCount>,
}

fn pool_layout() -> (Layout, Region<EventCount>) {
    let mut l = Layout::new();
    let doorbell = l.add::<EventCount>();
    (l, doorbell)
}

impl PoolShm {
    pub(crate) fn create() -> Result<Self> {
        let (l, doorbell) = pool_layout();
        let seg = SegmentOptions::new(POOL_KIND, l.size()).create_anonymous(|_| {})?;
        doorbell.get(&seg)?;
        Ok(PoolShm { seg, doorbell })
    }

    pub(crate) fn open(token: &Token) -> Result<Self> {
        let seg = token.open()?;
        let (_, doorbell) = pool_layout();
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

/// Where things are in a worker segment.
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

fn worker_layout(ring_bytes: usize) -> Result<(WorkerLayout, usize)> {
    let cfg = RingConfig::bytes(ring_bytes)?;
    let mut l = Layout::new();
    let tasks_ec = l.add::<EventCount>();
    let space_ec = l.add::<EventCount>();
    let started = l.add::<AtomicU64>();
    let tasks = cfg.add_to(&mut l)?;
    let results = cfg.add_to(&mut l)?;
    Ok((
        WorkerLayout {
            tasks_ec,
            space_ec,
            started,
            tasks,
            results,
            cfg,
        },
        l.size(),
    ))
}

/// How a worker finds its segment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WorkerShmToken {
    token: Token,
    ring_bytes: usize,
}

/// One worker's segment.
#[derive(Debug)]
pub(crate) struct WorkerShm {
    seg: Segment,
    l: WorkerLayout,
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
    /// A new worker segment with two rings of `ring_bytes` (a power of two), and the
    /// parent's ends of them.
    pub(crate) fn create(ring_bytes: usize) -> Result<(Self, ParentEnds)> {
        let (l, size) = worker_layout(ring_bytes)?;
        // Not prefaulted: most of the rings is touched only by large messages.
        let seg = SegmentOptions::new(WORKER_KIND, size)
            .prefault(false)
            .create_anonymous(|_| {})?;
        l.tasks_ec.get(&seg)?;
        l.space_ec.get(&seg)?;
        l.started.get(&seg)?;
        bytes::init(&seg, l.tasks, &l.cfg)?;
        bytes::init(&seg, l.results, &l.cfg)?;
        let ends = ParentEnds {
            tasks: Producer::attach(&seg, l.tasks)?,
            results: Consumer::attach(&seg, l.results)?,
        };
        Ok((WorkerShm { seg, l }, ends))
    }

    pub(crate) fn token(&self) -> Result<WorkerShmToken> {
        Ok(WorkerShmToken {
            token: self.seg.token()?,
            ring_bytes: self.l.cfg.capacity(),
        })
    }

    /// Opens the segment in the worker and attaches the worker's ends.
    pub(crate) fn open(t: &WorkerShmToken) -> Result<(Self, WorkerEnds)> {
        Self::attach_worker(t.token.open()?, t.ring_bytes)
    }

    /// The ring size it was made with.
    pub(crate) fn ring_bytes(&self) -> usize {
        self.l.cfg.capacity()
    }

    /// The worker's ends, attached here in the parent for a worker about to be
    /// forked: the child inherits them and skips attaching (which reads
    /// `/proc/self/stat` to name the new owner). The ends' owner words then name the
    /// parent, which is harmless: each end is used only by the worker, and nobody
    /// else ever attaches to a worker's rings.
    pub(crate) fn worker_ends_for_fork(&self) -> Result<(Self, WorkerEnds)> {
        Self::attach_worker(self.seg.clone(), self.ring_bytes())
    }

    /// Worker side: attaches the worker's ends in `seg` (opened, or inherited over fork).
    pub(crate) fn attach_worker(seg: Segment, ring_bytes: usize) -> Result<(Self, WorkerEnds)> {
        let (l, _) = worker_layout(ring_bytes)?;
        l.tasks_ec.get(&seg)?;
        l.space_ec.get(&seg)?;
        l.started.get(&seg)?;
        let ends = WorkerEnds {
            tasks: Consumer::attach(&seg, l.tasks)?,
            results: Producer::attach(&seg, l.results)?,
        };
        Ok((WorkerShm { seg, l }, ends))
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
