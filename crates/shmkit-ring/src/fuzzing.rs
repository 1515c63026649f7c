//! Fuzzing entry points (used by `fuzz/fuzz_targets/ring_consume.rs` and replayed by
//! `tests/fuzz_corpus.rs`). Not a stable API.
//!
//! [`ring_consume`] builds a ring in heap memory, lets a producer put a few items in,
//! then overwrites the shared bytes with fuzzer input — as a faulty or hostile peer
//! could — and runs consumer operations (and, for MPMC, pushes and `recover`) on
//! handles attached before and after the damage. Errors are expected; a panic, an
//! out-of-bounds access or a hang is a bug.

use crate::{bytes, mpmc, spsc, Error, OwnerId, RingConfig};
use std::ptr::NonNull;

/// 128-byte aligned backing store.
#[derive(Clone, Copy)]
#[repr(C, align(128))]
struct Block([u8; 128]);

/// Heap memory standing in for a shared mapping.
struct Area {
    blocks: Vec<Block>,
    len: usize,
}

impl Area {
    fn new(len: usize) -> Self {
        Area {
            blocks: vec![Block([0; 128]); len.div_ceil(128)],
            len,
        }
    }

    fn ptr(&mut self) -> NonNull<u8> {
        NonNull::from(&mut self.blocks[..]).cast()
    }

    /// Overwrites bytes from `at` on (wrapping inside `[from, len)`) with `data`.
    fn damage(&mut self, from: usize, at: usize, data: &[u8]) {
        let span = self.len - from;
        let base = self.ptr().as_ptr();
        for (k, &b) in data.iter().enumerate() {
            let off = from + (at + k) % span;
            // SAFETY: off < len <= the blocks' bytes, so the pointer stays inside.
            let p = unsafe { base.add(off) };
            // SAFETY: in bounds (above); no ring operation runs while we write
            // (single-threaded), as a peer's write between our operations.
            unsafe { p.write(b) };
        }
    }
}

/// Runs one fuzz case. See the module docs.
pub fn ring_consume(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let (damage, ops) = rest.split_at(rest.len() / 2);
    let cap_log = u32::from(sel / 3) % 5;
    let cfg = match sel % 3 {
        0 => RingConfig::spsc(1 << cap_log, 8 * (1 + usize::from(sel >> 7))),
        1 => RingConfig::mpmc(1 << cap_log, 8 * (1 + usize::from(sel >> 7))),
        _ => RingConfig::bytes(16 << cap_log),
    };
    let Ok(cfg) = cfg else { return };
    let mut area = Area::new(cfg.size());
    let ptr = area.ptr();
    // Keep the meta line intact unless asked (so pre-attached handles see damage in
    // indices, stamps and records), or damage everything.
    let from = if sel & 0x40 != 0 { 0 } else { 128 };
    let at = usize::from(ops.first().copied().unwrap_or(0)) * 8;
    match cfg.kind() {
        crate::RingKind::Spsc => spsc_case(&mut area, ptr, &cfg, from, at, damage, ops),
        crate::RingKind::Mpmc => mpmc_case(&mut area, ptr, &cfg, from, at, damage, ops),
        crate::RingKind::Bytes => bytes_case(&mut area, ptr, &cfg, from, at, damage, ops),
    }
}

fn spsc_case(
    area: &mut Area,
    ptr: NonNull<u8>,
    cfg: &RingConfig,
    from: usize,
    at: usize,
    damage: &[u8],
    ops: &[u8],
) {
    let len = area.len;
    // SAFETY: `area` is valid for `len` bytes and outlives every handle below.
    if unsafe { spsc::init_raw(ptr, len, cfg) }.is_err() {
        return;
    }
    // SAFETY: as above.
    let Ok(mut tx) = (unsafe { spsc::Producer::attach_raw(ptr, len) }) else {
        return;
    };
    // SAFETY: as above.
    let Ok(rx) = (unsafe { spsc::Consumer::attach_raw(ptr, len) }) else {
        return;
    };
    for i in 0..3u64 {
        let _ = tx.try_push(i);
    }
    area.damage(from, at, damage);
    // SAFETY: as above.
    let fresh = unsafe { spsc::Consumer::attach_raw(ptr, len) };
    drop(tx);
    // A successor producer resumes from the damaged indices and slot sequences.
    // SAFETY: as above.
    let mut successor = unsafe { spsc::Producer::attach_raw(ptr, len) }.ok();
    let mut handles = vec![rx];
    if let Ok(f) = fresh {
        handles.push(f);
    }
    for (k, &op) in ops.iter().enumerate() {
        let n = handles.len();
        let c = &mut handles[k % n];
        if op % 8 == 7 {
            if let Some(p) = successor.as_mut() {
                let _ = p.try_push(u64::from(op));
                let _ = p.free_slots();
            }
            continue;
        }
        match op % 5 {
            0 => drop(c.try_pop::<u64>()),
            1 => {
                let mut out = [0u64; 3];
                let _ = c.pop_slice(&mut out);
            }
            2 => {
                if let Ok(r) = c.peek() {
                    let _ = r.read::<u64>();
                    r.release();
                }
            }
            3 => drop(c.len()),
            _ => {
                let mut b = [0u8; 8];
                let _ = c.try_pop_bytes(&mut b);
            }
        }
    }
}

fn mpmc_case(
    area: &mut Area,
    ptr: NonNull<u8>,
    cfg: &RingConfig,
    from: usize,
    at: usize,
    damage: &[u8],
    ops: &[u8],
) {
    let len = area.len;
    // SAFETY: `area` is valid for `len` bytes and outlives every handle below.
    if unsafe { mpmc::init_raw(ptr, len, cfg) }.is_err() {
        return;
    }
    // Everyone else counts as dead, so stuck slots are repaired without waiting.
    let me = OwnerId::current();
    let liveness = crate::owner::Liveness::custom(move |id| id == me);
    let tune = |q: mpmc::Mpmc| {
        q.with_identity(me, liveness.clone(), mpmc::CrashPoint::Never)
            .with_patience(1, 0)
    };
    // SAFETY: as above.
    let Ok(q) = (unsafe { mpmc::Mpmc::attach_raw(ptr, len) }) else {
        return;
    };
    let q = tune(q);
    for i in 0..3u64 {
        let _ = q.try_push(i);
    }
    area.damage(from, at, damage);
    let mut handles = vec![q];
    // SAFETY: as above.
    if let Ok(f) = unsafe { mpmc::Mpmc::attach_raw(ptr, len) } {
        handles.push(tune(f));
    }
    for (k, &op) in ops.iter().enumerate() {
        let q = &handles[k % handles.len()];
        match op % 5 {
            0 | 1 => drop(q.try_pop::<u64>()),
            2 => drop(q.try_push(u64::from(op))),
            3 => drop(q.recover()),
            _ => {
                let _ = q.len();
                let mut b = [0u8; 8];
                let _ = q.try_pop_bytes(&mut b);
            }
        }
    }
}

fn bytes_case(
    area: &mut Area,
    ptr: NonNull<u8>,
    cfg: &RingConfig,
    from: usize,
    at: usize,
    damage: &[u8],
    ops: &[u8],
) {
    let len = area.len;
    // SAFETY: `area` is valid for `len` bytes and outlives every handle below.
    if unsafe { bytes::init_raw(ptr, len, cfg) }.is_err() {
        return;
    }
    // SAFETY: as above.
    let Ok(mut tx) = (unsafe { bytes::Producer::attach_raw(ptr, len, false) }) else {
        return;
    };
    // SAFETY: as above.
    let Ok(rx) = (unsafe { bytes::Consumer::attach_raw(ptr, len, false) }) else {
        return;
    };
    for i in 0..3u8 {
        let _ = tx.try_push(&[i; 5]);
    }
    drop(tx);
    area.damage(from, at, damage);
    let mut handles = vec![rx];
    // SAFETY: as above.
    if let Ok(f) = unsafe { bytes::Consumer::attach_raw(ptr, len, true) } {
        let f = f.with_identity(
            OwnerId::current(),
            crate::owner::Liveness::custom(|_| false),
        );
        handles.push(f);
    }
    for (k, &op) in ops.iter().enumerate() {
        let n = handles.len();
        let c = &mut handles[k % n];
        match op % 4 {
            0 => drop(c.try_pop_vec()),
            1 => {
                let mut b = vec![0u8; usize::from(op >> 2)];
                if let Err(Error::BufferTooShort { .. }) = c.try_pop(&mut b) {}
            }
            2 => {
                if let Ok(r) = c.peek() {
                    let mut b = vec![0u8; r.len.min(64)];
                    r.read_at(0, &mut b);
                    r.release();
                }
            }
            _ => drop(c.peek()),
        }
    }
}
