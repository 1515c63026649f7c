//! [`PipeShm`]: one process's mapping of a pipe segment, with typed access to the
//! control block and read-only peeks at the rings' published indices.

use crate::error::{corrupt, Error, Result};
use crate::layout::{Control, EndCtl, FLAG_DUPLEX, KIND, KIND_VERSION, MAGIC, MAX_HOLDERS};
use crate::registry;
use shmkit_ring::RingConfig;
use shmkit_segment::layout::{ByteRegion, Layout};
use shmkit_segment::shim::atomic::{AtomicU32, AtomicU64, Ordering};
use shmkit_segment::{Segment, SegmentOptions};
use std::ptr::NonNull;
use std::sync::Arc;

// Offsets of the version word, `tail` and `head` in a ring header, from the ring
// crate itself (its `assert_layout!` pins them).
use shmkit_ring::raw::{
    HEAD_OFFSET as RING_HEAD, TAIL_OFFSET as RING_TAIL, VERSION_OFFSET as RING_VERSION,
};

/// Where everything of a pipe of `capacity` ring bytes lies.
struct Placement {
    control: usize,
    rings: [Option<ByteRegion>; 2],
    size: usize,
}

fn place(duplex: bool, cfg: &RingConfig) -> Result<Placement> {
    let mut l = Layout::new();
    let control = l.add::<Control>().offset();
    let r0 = cfg.add_to(&mut l)?;
    let r1 = if duplex {
        Some(cfg.add_to(&mut l)?)
    } else {
        None
    };
    Ok(Placement {
        control,
        rings: [Some(r0), r1],
        size: l.size(),
    })
}

/// A mapped pipe segment.
#[derive(Debug)]
pub(crate) struct PipeShm {
    seg: Segment,
    ctl: NonNull<Control>,
    rings: [Option<ByteRegion>; 2],
    /// (tail, head) of each ring, for read-only peeks.
    idx: [Option<(NonNull<AtomicU64>, NonNull<AtomicU64>)>; 2],
    duplex: bool,
    cap: u64,
}

// SAFETY: the pointers point into the mapping kept alive by `seg` (an Arc'd mapping,
// Send + Sync); they are only turned into shared references to atomics, which are Sync.
unsafe impl Send for PipeShm {}
// SAFETY: as for Send.
unsafe impl Sync for PipeShm {}

/// Packs a process id for a holder slot: start time above bit 22, pid below.
pub(crate) fn pack(pid: u32, start: u64) -> u64 {
    (start << 22) | (u64::from(pid) & ((1 << 22) - 1))
}

/// Whether the packed holder `id` still runs (reads `/proc`, about 10 µs).
pub(crate) fn holder_alive(id: u64) -> bool {
    if id == 0 {
        return false;
    }
    // Cast: masked to 22 bits.
    let pid = u32::try_from(id & ((1 << 22) - 1)).unwrap_or(0);
    match shmkit_segment::shim::pid::start_time(pid) {
        Some(st) => pack(pid, st) == id,
        None => false,
    }
}

impl PipeShm {
    /// Creates a pipe segment (anonymous, or named), with end `e`'s slot 0 held by
    /// this process for both ends.
    pub(crate) fn create(duplex: bool, capacity: usize, name: Option<&str>) -> Result<Arc<Self>> {
        let cfg = RingConfig::bytes(capacity).map_err(|_| Error::Config {
            what: "ring capacity must be a power of two in 16..=2^40",
        })?;
        let p = place(duplex, &cfg)?;
        let me = pack(
            shmkit_segment::shim::pid::current(),
            shmkit_segment::shim::pid::current_start_time(),
        );
        let init = |s: &Segment| {
            let Ok(c) = s.get::<Control>(p.control) else {
                return;
            };
            // Relaxed: the segment's ready state (Release) publishes all of this.
            c.meta.magic.store(MAGIC, Ordering::Relaxed);
            c.meta.version.store(KIND_VERSION, Ordering::Relaxed);
            let flags = if duplex { FLAG_DUPLEX } else { 0 };
            c.meta.flags.store(flags, Ordering::Relaxed);
            c.meta
                .capacity
                .store(cfg.capacity() as u64, Ordering::Relaxed);
            for e in &c.ends {
                e.slots[0].owner.store(me, Ordering::Relaxed);
                e.open.store(1, Ordering::Relaxed);
            }
            for r in p.rings.iter().flatten() {
                let _ = shmkit_ring::bytes::init(s, *r, &cfg);
            }
        };
        let opts = SegmentOptions::new(KIND, p.size).kind_version(KIND_VERSION);
        let seg = match name {
            Some(n) => opts.create(n, init)?,
            None => opts.create_anonymous(init)?,
        };
        let shm = Arc::new(Self::attach(seg)?);
        registry::adopt_created(&shm);
        Ok(shm)
    }

    /// Attaches to a pipe segment made by [`PipeShm::create`], validating it.
    pub(crate) fn attach(seg: Segment) -> Result<Self> {
        let c: &Control = seg.get(0)?;
        // Relaxed: the segment open waited for `ready` (Acquire), which published these.
        if c.meta.magic.load(Ordering::Relaxed) != MAGIC
            || c.meta.version.load(Ordering::Relaxed) != KIND_VERSION
        {
            return Err(corrupt("not a pipe control block (magic or version)"));
        }
        let duplex = c.meta.flags.load(Ordering::Relaxed) & FLAG_DUPLEX != 0;
        let cap = c.meta.capacity.load(Ordering::Relaxed);
        let cfg = usize::try_from(cap)
            .ok()
            .and_then(|c| RingConfig::bytes(c).ok())
            .ok_or(corrupt("ring capacity out of range"))?;
        let p = place(duplex, &cfg)?;
        if seg.data_len() < p.size {
            return Err(corrupt("segment too small for its pipe"));
        }
        let mut idx = [None, None];
        for (i, r) in p.rings.iter().enumerate() {
            if let Some(r) = r {
                let v: &AtomicU32 = seg.get(r.offset() + RING_VERSION)?;
                // Relaxed: published by the segment's ready state, like the rest.
                if v.load(Ordering::Relaxed) != shmkit_ring::raw::BYTES_VERSION {
                    return Err(corrupt("ring layout version"));
                }
                let tail: &AtomicU64 = seg.get(r.offset() + RING_TAIL)?;
                let head: &AtomicU64 = seg.get(r.offset() + RING_HEAD)?;
                idx[i] = Some((NonNull::from(tail), NonNull::from(head)));
            }
        }
        let ctl = NonNull::from(c);
        Ok(PipeShm {
            seg,
            ctl,
            rings: p.rings,
            idx,
            duplex,
            cap,
        })
    }

    pub(crate) fn segment(&self) -> &Segment {
        &self.seg
    }

    pub(crate) fn ctl(&self) -> &Control {
        // SAFETY: `ctl` came from a bounds- and alignment-checked `Segment::get` on
        // `seg`, which keeps the mapping alive as long as `self`; Control is Shared
        // (atomics only), so a shared reference is sound while others write it.
        unsafe { self.ctl.as_ref() }
    }

    pub(crate) fn end(&self, e: usize) -> &EndCtl {
        &self.ctl().ends[e & 1]
    }

    pub(crate) fn duplex(&self) -> bool {
        self.duplex
    }

    /// The ring end `e` receives from.
    pub(crate) fn recv_ring(&self, e: usize) -> Option<usize> {
        match (self.duplex, e) {
            (true, e) => Some(e & 1),
            (false, 0) => Some(0),
            _ => None,
        }
    }

    /// The ring end `e` sends into.
    pub(crate) fn send_ring(&self, e: usize) -> Option<usize> {
        match (self.duplex, e) {
            (true, e) => Some(1 - (e & 1)),
            (false, 1) => Some(0),
            _ => None,
        }
    }

    pub(crate) fn region(&self, ring: usize) -> Result<ByteRegion> {
        self.rings[ring & 1].ok_or(corrupt("no such ring"))
    }

    fn idx(&self, ring: usize) -> Option<(&AtomicU64, &AtomicU64)> {
        self.idx[ring & 1].map(|(t, h)| {
            // SAFETY: both came from checked `Segment::get`s on `seg`, alive with self;
            // atomics are valid for any bit pattern and shared access is sound.
            let t = unsafe { t.as_ref() };
            // SAFETY: as above.
            let h = unsafe { h.as_ref() };
            (t, h)
        })
    }

    /// Whether ring `ring` has published records not yet consumed (read-only). A
    /// consumer ahead of `tail` (it polls record headers; a sender died between a
    /// header and its `tail` store) counts as nothing published.
    pub(crate) fn published(&self, ring: usize) -> bool {
        self.idx(ring).is_some_and(|(t, h)| {
            // Acquire (tail): pairs with the producer's Release store of `tail` in
            // `WriteRecord::commit`. Relaxed (head): a stale value only means we look
            // again.
            let d = t
                .load(Ordering::Acquire)
                .wrapping_sub(h.load(Ordering::Relaxed));
            d != 0 && d <= self.cap
        })
    }

    /// Whether ring `ring` has room for a record of `len` payload bytes now (read-only;
    /// our own `tail` is stable because we hold the send lock).
    pub(crate) fn room_for(&self, ring: usize, len: usize) -> bool {
        let Some((t, h)) = self.idx(ring) else {
            return true;
        };
        // Relaxed (tail): written by us (under the send lock). Acquire (head): pairs
        // with the consumer's Release store of `head`.
        let tail = t.load(Ordering::Relaxed);
        let head = h.load(Ordering::Acquire);
        let used = tail.wrapping_sub(head);
        if used > self.cap {
            return true; // corrupt: let the ring report it
        }
        let total = 8 + ((len as u64 + 7) & !7);
        let contig = self.cap - (tail & (self.cap - 1));
        // Plus the header word after the record, which the ring keeps free (0).
        let need = if total <= contig {
            total
        } else {
            contig + total
        } + 8;
        self.cap - used >= need
    }

    /// Whether end `e` is open in some process (it may have died unnoticed).
    pub(crate) fn end_open(&self, e: usize) -> bool {
        // Acquire: pairs with the AcqRel decrement in `registry::release_slot` /
        // `sweep`, so everything the last holder published is visible.
        self.end(e).open.load(Ordering::Acquire) != 0
    }

    /// Frees the slots of dead holders of end `e`; returns whether it is still open.
    pub(crate) fn sweep(&self, e: usize) -> bool {
        let end = self.end(e);
        for s in &end.slots {
            // Acquire: pairs with the claimant's CAS.
            let id = s.owner.load(Ordering::Acquire);
            if id != 0
                && !holder_alive(id)
                && s.owner
                    .compare_exchange(id, 0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                self.dec_open(e);
            }
        }
        self.end_open(e)
    }

    /// One holder fewer; wakes the peer's waiters when the end just closed for good.
    pub(crate) fn dec_open(&self, e: usize) {
        // AcqRel: Release publishes this holder's last messages to whoever sees the
        // count drop (Acquire in `end_open`).
        let prev = self
            .end(e)
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| v.checked_sub(1));
        if prev == Ok(1) {
            self.notify_closed(e);
        }
    }

    /// Wakes receivers of what end `e` sends and senders into what it receives.
    pub(crate) fn notify_closed(&self, e: usize) {
        let c = self.ctl();
        if let Some(r) = self.send_ring(e) {
            c.data[r].ec.notify_all();
        }
        if let Some(r) = self.recv_ring(e) {
            c.space[r].ec.notify_all();
        }
    }

    /// Claims a free slot of end `e` for holder `me` with `count` handles.
    pub(crate) fn claim(&self, e: usize, me: u64, count: u64) -> Result<usize> {
        let end = self.end(e);
        for pass in 0..2 {
            for (i, s) in end.slots.iter().enumerate() {
                // Relaxed: the CAS below decides.
                if s.owner.load(Ordering::Relaxed) == 0
                    && s.owner
                        .compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                {
                    // Relaxed: informational, written by this process only.
                    s.count.store(count, Ordering::Relaxed);
                    // AcqRel: pairs with `dec_open`.
                    end.open.fetch_add(1, Ordering::AcqRel);
                    return Ok(i);
                }
            }
            if pass == 0 {
                self.sweep(e);
            }
        }
        Err(Error::TooManyHolders {
            end: e,
            max: MAX_HOLDERS,
        })
    }

    /// Releases slot `i` of end `e` held by `me`.
    pub(crate) fn release_slot(&self, e: usize, i: usize, me: u64) {
        let Some(s) = self.end(e).slots.get(i) else {
            return;
        };
        // Relaxed: informational.
        s.count.store(0, Ordering::Relaxed);
        // Release: our sends happen before the slot is seen free.
        if s.owner
            .compare_exchange(me, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.dec_open(e);
        }
    }

    /// Hands slot `i` of end `e` from holder `from` to `to` (a forked child taking
    /// its parent's reservation); false if `from` no longer holds it.
    pub(crate) fn convert(&self, e: usize, i: usize, from: u64, to: u64, count: u64) -> bool {
        let Some(s) = self.end(e).slots.get(i) else {
            return false;
        };
        // AcqRel: like a claim (the open count already includes this slot).
        let ok = s
            .owner
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        if ok {
            // Relaxed: informational, written by the holder only.
            s.count.store(count, Ordering::Relaxed);
        }
        ok
    }

    /// Stores the informational handle count of slot `i` of end `e`.
    pub(crate) fn set_count(&self, e: usize, i: usize, count: u64) {
        if let Some(s) = self.end(e).slots.get(i) {
            // Relaxed: informational, written by this process only.
            s.count.store(count, Ordering::Relaxed);
        }
    }
}
