//! `Core`: one handle to a queue segment — the control block, the MPMC ring, and this
//! handle's place in the registry. The typed queues are thin layers over it.

use crate::error::{Error, Result};
use crate::local::{self, FORK_GEN};
use crate::raw::{self, Control, Peers, FLAG_POD};
use shmkit_ring::mpmc::{self, Mpmc, Payload};
use shmkit_ring::owner::process_alive;
use shmkit_ring::{OwnerId, RingConfig};
use shmkit_segment::layout::{ByteRegion, Layout};
use shmkit_segment::shim::atomic::Ordering;
use shmkit_segment::shim::time::Deadline;
use shmkit_segment::{Kind, Segment, SegmentOptions, Token};
use std::borrow::Cow;
use std::ptr::NonNull;
use std::sync::OnceLock;

/// The segment kind of every queue.
pub const QUEUE_KIND: Kind = Kind::from_tag(*b"QUEU");
/// Layout version of a queue segment.
pub const QUEUE_KIND_VERSION: u32 = 2;

/// Bytes of the length prefix in front of a serde item in its slot.
pub(crate) const LEN_PREFIX: usize = 4;

/// Where the ring starts in the data area.
fn regions(ring_len: usize) -> Result<ByteRegion> {
    let mut l = Layout::new();
    let _ = l.add::<Control>();
    Ok(l.add_bytes(ring_len, 128)?)
}

/// How a new queue is shaped (see [`crate::QueueOptions`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) capacity: usize,
    pub(crate) max_item: usize,
    pub(crate) pod: bool,
    pub(crate) maxsize: u64,
}

impl Shape {
    fn ring(&self) -> Result<RingConfig> {
        let slot = if self.pod {
            self.max_item.max(1)
        } else {
            self.max_item + LEN_PREFIX
        };
        RingConfig::mpmc(self.capacity, slot).map_err(Error::from)
    }
}

pub(crate) struct Core {
    seg: Segment,
    ctl: NonNull<Control>,
    ring: Mpmc,
    /// `FORK_GEN` when `ring`'s owner identity was taken.
    gen: u64,
    /// A re-identified ring for use in a forked child, with its generation.
    forked: OnceLock<(u64, Mpmc)>,
    max_item: usize,
    slot: usize,
    pod: bool,
}

// SAFETY: `ctl` points into the mapping kept alive by `seg` (Send + Sync); Control is
// all atomics (Sync) and only ever accessed through `&Control`.
unsafe impl Send for Core {}
// SAFETY: as for Send.
unsafe impl Sync for Core {}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("segment", &self.seg.describe())
            .field("capacity", &self.ring.config().capacity())
            .field("max_item", &self.max_item)
            .field("pod", &self.pod)
            .finish()
    }
}

/// The registry, seen by this process (`OwnerId::current()`, passed in because
/// computing it costs a `getpid` system call and the ring handle has it already).
struct RegistryPeers<'a>(&'a Control, OwnerId);

impl Peers for RegistryPeers<'_> {
    fn any_others(&self, thorough: bool) -> bool {
        self.0.any_others(self.1, thorough, &process_alive)
    }
}

impl Core {
    fn opts(data_len: usize) -> SegmentOptions {
        SegmentOptions::new(QUEUE_KIND, data_len).kind_version(QUEUE_KIND_VERSION)
    }

    fn init(shape: Shape, cfg: RingConfig) -> impl FnOnce(&Segment) {
        move |s: &Segment| {
            let Ok(ctl) = s.get::<Control>(0) else { return };
            let Ok(region) = regions(cfg.size()) else {
                return;
            };
            if mpmc::init(s, region, &cfg).is_err() {
                return;
            }
            let flags = if shape.pod { FLAG_POD } else { 0 };
            // Cast: max_item is checked against the slot limit (16 MiB) by RingConfig.
            ctl.init(
                u32::try_from(shape.max_item).unwrap_or(u32::MAX),
                flags,
                shape.maxsize,
            );
        }
    }

    fn data_len(cfg: &RingConfig) -> Result<usize> {
        let r = regions(cfg.size())?;
        Ok(r.offset() + r.len())
    }

    pub(crate) fn anonymous(shape: Shape) -> Result<Self> {
        let cfg = shape.ring()?;
        let seg = Self::opts(Self::data_len(&cfg)?).create_anonymous(Self::init(shape, cfg))?;
        Self::attach(seg, Some(shape.pod))
    }

    pub(crate) fn create(name: &str, shape: Shape) -> Result<Self> {
        let cfg = shape.ring()?;
        let seg = Self::opts(Self::data_len(&cfg)?).create(name, Self::init(shape, cfg))?;
        Self::attach(seg, Some(shape.pod))
    }

    pub(crate) fn open(name: &str, pod: bool) -> Result<Self> {
        let seg = Self::opts(0).open(name)?;
        Self::attach(seg, Some(pod))
    }

    pub(crate) fn open_or_create(name: &str, shape: Shape) -> Result<Self> {
        let cfg = shape.ring()?;
        let (seg, _) =
            Self::opts(Self::data_len(&cfg)?).open_or_create(name, Self::init(shape, cfg))?;
        Self::attach(seg, Some(shape.pod))
    }

    pub(crate) fn from_token(token: &Token, pod: bool) -> Result<Self> {
        if token.kind != QUEUE_KIND || token.offset != 0 {
            return Err(Error::Segment(shmkit_segment::Error::TokenStale {
                reason: format!(
                    "the token names a {} at offset {}, not a queue",
                    token.kind, token.offset
                ),
            }));
        }
        Self::attach(token.open()?, Some(pod))
    }

    pub(crate) fn token(&self) -> Result<Token> {
        Ok(self.seg.token()?.with_offset(0))
    }

    /// Validates the segment's control block and ring, and registers the handle.
    fn attach(seg: Segment, pod: Option<bool>) -> Result<Self> {
        let ctl_ref = seg.get::<Control>(0)?;
        let (max_item, flags) = ctl_ref.validate()?;
        let is_pod = flags & FLAG_POD != 0;
        if let Some(p) = pod {
            if p != is_pod {
                return Err(Error::Config {
                    what: "a Pod queue and a serde queue cannot open each other's segment",
                });
            }
        }
        let start = regions(0)?.offset();
        let len = seg.data_len().checked_sub(start).ok_or(Error::Corrupt {
            what: "queue segment too small for its ring",
        })?;
        let ring = Mpmc::attach(&seg, regions(len)?).map_err(Error::from)?;
        let slot = ring.config().slot_size();
        let max_item = usize::try_from(max_item).unwrap_or(usize::MAX);
        let need = if is_pod {
            max_item
        } else {
            max_item + LEN_PREFIX
        };
        if need > slot {
            return Err(Error::Corrupt {
                what: "maximum item size larger than the ring's slots",
            });
        }
        let ctl = NonNull::from(ctl_ref);
        let core = Core {
            // Relaxed: this process's own counter.
            gen: FORK_GEN.load(Ordering::Relaxed),
            seg,
            ctl,
            ring,
            forked: OnceLock::new(),
            max_item,
            slot,
            pod: is_pod,
        };
        local::register(core.ctl(), 1)?;
        Ok(core)
    }

    #[inline]
    pub(crate) fn ctl(&self) -> &Control {
        // SAFETY: `ctl` came from a bounds- and alignment-checked `Segment::get` on
        // `seg`, whose mapping lives as long as `self`; Control is all atomics, valid
        // for any bit pattern and safe to share while other processes write it.
        unsafe { self.ctl.as_ref() }
    }

    /// The ring, with this process's owner identity (re-taken after a fork).
    #[inline]
    pub(crate) fn ring(&self) -> Cow<'_, Mpmc> {
        // Relaxed: this process's own counter (bumped in the atfork child handler).
        let g = FORK_GEN.load(Ordering::Relaxed);
        if g == self.gen {
            return Cow::Borrowed(&self.ring);
        }
        if let Some((fg, r)) = self.forked.get() {
            if *fg == g {
                return Cow::Borrowed(r);
            }
        }
        let mut r = self.ring.clone();
        r.refresh_identity();
        let _ = self.forked.set((g, r.clone()));
        Cow::Owned(r)
    }

    pub(crate) fn max_item(&self) -> usize {
        self.max_item
    }

    pub(crate) fn slot(&self) -> usize {
        self.slot
    }

    pub(crate) fn capacity(&self) -> usize {
        self.ring.config().capacity()
    }

    pub(crate) fn len(&self) -> usize {
        self.ring.len()
    }

    pub(crate) fn maxsize(&self) -> u64 {
        // Relaxed: written once before the magic was published.
        self.ctl().maxsize.load(Ordering::Relaxed)
    }

    /// Pushes `src` as one slot, waiting until `deadline` for room (or not at all
    /// without `block`: then a full queue is [`Error::Full`]).
    pub(crate) fn push(&self, src: &[u8], deadline: Deadline, block: bool) -> Result<()> {
        let ring = self.ring();
        if block {
            let peers = RegistryPeers(self.ctl(), ring.owner());
            return raw::push_wait(self.ctl(), &ring, src, deadline, &peers);
        }
        match raw::try_push(self.ctl(), &ring, src)? {
            Some(()) => Ok(()),
            None => Err(Error::Full(())),
        }
    }

    /// Pops one item, waiting until `deadline` (or not at all without `block`),
    /// letting `read` copy what it needs out of the slot in place.
    pub(crate) fn pop_with<R>(
        &self,
        deadline: Deadline,
        block: bool,
        mut read: impl FnMut(&Payload<'_>) -> R,
    ) -> Result<R> {
        let ring = self.ring();
        if block {
            let peers = RegistryPeers(self.ctl(), ring.owner());
            return raw::pop_wait_with(self.ctl(), &ring, deadline, &peers, read);
        }
        match raw::try_pop_with(self.ctl(), &ring, &mut read)? {
            Some(r) => Ok(r),
            None => Err(Error::Empty),
        }
    }

    /// Handles other than this one, checking that their processes live.
    pub(crate) fn others(&self) -> u64 {
        self.ctl().others(self.ring().owner(), true, &process_alive)
    }
}

impl Clone for Core {
    fn clone(&self) -> Self {
        // Cannot fail: this process already has an entry (this handle is in it).
        let _ = local::register(self.ctl(), 1);
        Core {
            seg: self.seg.clone(),
            ctl: self.ctl,
            ring: self.ring().into_owned(),
            // Relaxed: this process's own counter.
            gen: FORK_GEN.load(Ordering::Relaxed),
            forked: OnceLock::new(),
            max_item: self.max_item,
            slot: self.slot,
            pod: self.pod,
        }
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        let _ = local::register(self.ctl(), -1);
        // Sleepers re-count the handles: they may be the last ones now.
        self.ctl().wake_all();
    }
}
