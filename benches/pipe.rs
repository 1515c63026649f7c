//! Pipe benchmarks between two processes, each beside its baselines in the same run.
//!
//! * round trip of 8 B and 4 KiB messages: the raw shared-atomic ping-pong (the
//!   floor), `pipe(2)`, a Unix socket pair, shmkit's `Connection` in busy-poll mode
//!   and in the default blocking mode;
//! * round trip when both sides must sleep (each side works 200 µs before
//!   answering, longer than any spin budget): a bare futex ping-pong vs shmkit's
//!   blocking mode; compared by overhead = round trip - 400 µs of work;
//! * one-way throughput of 64 KiB messages: a minimal shared-memory ring (busy
//!   spinning, fixed 64 KiB slots, one copy in and one out), `pipe(2)`, a socket
//!   pair, shmkit; and of 16 MiB messages (streamed in fragments) through shmkit,
//!   beside the minimal ring copying 64 KiB slots out of and into 16 MiB buffers
//!   (the same cache footprint as a 16 MiB message);
//! * beside those, shmkit's zero-copy receive (`recv_bytes_with`): at 64 KiB getting
//!   the slice only, and, in a group of its own where every receiver reads every
//!   byte it got (a wrapping sum of 64-bit words), against a socket pair and
//!   `pipe(2)` doing `read()` + the same fold and shmkit's copying receive + fold;
//!   at 16 MiB (fragmented, so assembled in a reused buffer: cold, a fresh handle
//!   per run, and warmed up, one message received before the clock starts);
//! * one-way 64 KiB messages whose sender writes every byte (64-bit words) and whose
//!   receiver reads every byte: socket pair, `pipe(2)` and shmkit's copying calls
//!   fill a buffer and send it, receive into a buffer and fold it; shmkit's
//!   zero-copy calls (`send_bytes_with`, `recv_bytes_with`) fill and fold in place;
//! * at 16 MiB, shmkit and the minimal ring with their 16 MiB source and
//!   destination buffers allocated and faulted in before the clock starts (the
//!   other 16 MiB rows allocate them inside the timed run, which costs several ms
//!   of page faults per run of 16 messages).
//!
//! `cargo bench --bench pipe` runs criterion (short runs), then prints a summary with
//! ratios (median of 5 fixed-size runs per variant). On a busy machine,
//! `PIPE_BENCH_RUNS=n` (more runs) and `PIPE_BENCH_STAT=min` (the fastest run instead
//! of the median: the run least disturbed by other processes) help.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

mod common;

use common::{pin, read_exact, restore, two_cores, write_all};
use criterion::{BenchmarkId, Criterion};
use shmkit::pipe::{Connection, Pipe, Receiver, Sender};
use shmkit::segment::shim::atomic::{AtomicU32, AtomicU64, Ordering};
use shmkit::segment::shim::futex;
use shmkit::segment::shim::time::Deadline;
use shmkit::segment::{Kind, Segment};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// Work each side does before answering in the sleeping round trip.
const WORK: Duration = Duration::from_micros(200);
/// Minimal ring: data bytes.
const RING: usize = 1 << 20;

/// Shared words: go/done handshake, ping-pong words, minimal ring indices, data.
struct Shm {
    seg: Segment,
}

const OFF_GO: usize = 0;
const OFF_DONE: usize = 128;
const OFF_A: usize = 256;
const OFF_B: usize = 384;
const OFF_TAIL: usize = 512;
const OFF_HEAD: usize = 640;
const OFF_DATA: usize = 4096;

impl Shm {
    fn new() -> Self {
        Shm {
            seg: Segment::create_anonymous(Kind::RAW, OFF_DATA + RING).expect("segment"),
        }
    }
    fn w64(&self, off: usize) -> &AtomicU64 {
        self.seg.get(off).expect("word")
    }
    fn w32(&self, off: usize) -> &AtomicU32 {
        self.seg.get(off).expect("word")
    }
    fn data(&self) -> *mut u8 {
        self.seg.range(OFF_DATA, RING).expect("data").as_ptr()
    }
}

/// Runs `child()` in a forked child and `parent()` here, started together; returns
/// the parent's time until both finished.
fn pair(shm: &Shm, child: impl FnOnce(), parent: impl FnOnce()) -> Duration {
    pair_setup(shm, || (), |()| child(), || (), |()| parent())
}

/// As [`pair`], but each side first runs its setup (allocating and touching its
/// buffers, say) before the clock starts, and hands the result to its timed part.
///
/// With two CPUs or more the two processes are pinned to different ones (as in the
/// queue bench), for every row alike: unpinned, the scheduler sometimes puts both on
/// one core, which moves the fd baselines by 2x between runs (cache-local copies) and
/// starves the busy-polling rows.
fn pair_setup<C, P>(
    shm: &Shm,
    child_setup: impl FnOnce() -> C,
    child: impl FnOnce(C),
    parent_setup: impl FnOnce() -> P,
    parent: impl FnOnce(P),
) -> Duration {
    let pinned = two_cores();
    let old = pinned.then(|| pin(0));
    let (go, done) = (shm.w64(OFF_GO), shm.w64(OFF_DONE));
    go.store(0, Ordering::SeqCst);
    done.store(0, Ordering::SeqCst);
    // SAFETY: the bench is single-threaded here; the child only uses shared memory,
    // pipes and descriptors made for it, then calls `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        if pinned {
            pin(1);
        }
        let c = child_setup();
        go.store(1, Ordering::SeqCst);
        spin_wait(|| go.load(Ordering::SeqCst) == 2);
        child(c);
        done.store(1, Ordering::SeqCst);
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    let p = parent_setup();
    spin_wait(|| go.load(Ordering::SeqCst) == 1);
    let t = Instant::now();
    go.store(2, Ordering::SeqCst);
    parent(p);
    while done.load(Ordering::SeqCst) != 1 {
        std::thread::yield_now();
    }
    let e = t.elapsed();
    let mut status = 0;
    // SAFETY: `pid` is our child; `status` is a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if let Some(old) = old {
        restore(&old);
    }
    e
}

/// A `len`-byte buffer of `byte`s, every page already faulted in.
fn touched(len: usize, byte: u8) -> Vec<u8> {
    let mut v = vec![0u8; len];
    v.fill(byte);
    v
}

/// Spins until `done()`; after 2 000 checks (some tens of µs) also yields between checks, so that on
/// a machine with more runnable threads than cores the peer still gets to run (on
/// an idle machine the answer comes long before that and this is a pure spin).
fn spin_wait(mut done: impl FnMut() -> bool) {
    let mut n = 0u32;
    while !done() {
        n = n.saturating_add(1);
        if n > 2_000 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

fn busy_work(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

// ---- the floor: two shared words, spinning --------------------------------------

fn rt_floor(iters: u64) -> Duration {
    let shm = Shm::new();
    let (a, b) = (shm.w64(OFF_A), shm.w64(OFF_B));
    pair(
        &shm,
        || {
            for i in 1..=iters {
                spin_wait(|| a.load(Ordering::Acquire) == i);
                b.store(i, Ordering::Release);
            }
        },
        || {
            for i in 1..=iters {
                a.store(i, Ordering::Release);
                spin_wait(|| b.load(Ordering::Acquire) == i);
            }
        },
    )
}

// ---- bare futex ping-pong, both sides working 200 µs (so both sleep) ---------------

fn rt_futex_sleeping(iters: u64) -> Duration {
    let shm = Shm::new();
    let (a, b) = (shm.w32(OFF_A), shm.w32(OFF_B));
    let wait_for = |w: &AtomicU32, v: u32| loop {
        let cur = w.load(Ordering::Acquire);
        if cur == v {
            return;
        }
        futex::wait(w, cur, Deadline::NEVER);
    };
    pair(
        &shm,
        || {
            for i in 1..=iters as u32 {
                wait_for(a, i);
                busy_work(WORK);
                b.store(i, Ordering::Release);
                futex::wake_all(b);
            }
        },
        || {
            for i in 1..=iters as u32 {
                a.store(i, Ordering::Release);
                futex::wake_all(a);
                wait_for(b, i);
                busy_work(WORK);
            }
        },
    )
}

// ---- descriptors: pipe(2) and a Unix socket pair ----------------------------------

/// (parent reads, parent writes, child reads, child writes)
fn fds(socket: bool) -> [RawFd; 4] {
    let mut p = [0; 2];
    let mut q = [0; 2];
    if socket {
        // SAFETY: `p` is a valid out-array of two descriptors.
        let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, p.as_mut_ptr()) };
        assert_eq!(r, 0);
        [p[0], p[0], p[1], p[1]]
    } else {
        // SAFETY: `p`, `q` are valid out-arrays of two descriptors.
        let r = unsafe { libc::pipe(p.as_mut_ptr()) } | unsafe { libc::pipe(q.as_mut_ptr()) };
        assert_eq!(r, 0);
        // parent writes q[1] -> child reads q[0]; child writes p[1] -> parent reads p[0]
        [p[0], q[1], q[0], p[1]]
    }
}

fn close_all(f: [RawFd; 4]) {
    for fd in f {
        // SAFETY: closing descriptors this function's caller made (maybe twice for a
        // socket pair: the second close fails with EBADF, harmlessly).
        unsafe { libc::close(fd) };
    }
}

fn rt_fd(socket: bool, size: usize, iters: u64) -> Duration {
    let shm = Shm::new();
    let f = fds(socket);
    let e = pair(
        &shm,
        || {
            let mut buf = vec![0u8; size];
            for _ in 0..iters {
                read_exact(f[2], &mut buf);
                write_all(f[3], &buf);
            }
        },
        || {
            let mut buf = vec![1u8; size];
            for _ in 0..iters {
                write_all(f[1], &buf);
                read_exact(f[0], &mut buf);
            }
        },
    );
    close_all(f);
    e
}

fn tp_fd(socket: bool, size: usize, iters: u64) -> Duration {
    let shm = Shm::new();
    let f = fds(socket);
    let e = pair(
        &shm,
        || {
            let mut buf = vec![0u8; size];
            for _ in 0..iters {
                read_exact(f[2], &mut buf);
            }
            write_all(f[3], &[1]);
        },
        || {
            let buf = vec![1u8; size];
            for _ in 0..iters {
                write_all(f[1], &buf);
            }
            read_exact(f[0], &mut [0u8]);
        },
    );
    close_all(f);
    e
}

// ---- a minimal shared-memory ring: fixed 64 KiB slots, busy spinning --------------

fn tp_min_ring(size: usize, iters: u64) -> Duration {
    tp_min_ring_buf(size, size, iters)
}

/// The minimal ring's two ends: slot `i` (of `slots`, `size` bytes each) in the data
/// area, copied out of / into local buffers at `i * size % buf_len`.
struct MinRing<'a> {
    tail: &'a AtomicU64,
    head: &'a AtomicU64,
    data: *mut u8,
    size: usize,
    slots: u64,
    chunks: u64,
}

impl<'a> MinRing<'a> {
    fn new(shm: &'a Shm, size: usize, buf_len: usize) -> Self {
        MinRing {
            tail: shm.w64(OFF_TAIL),
            head: shm.w64(OFF_HEAD),
            data: shm.data(),
            size,
            slots: (RING / size) as u64,
            chunks: (buf_len / size) as u64,
        }
    }

    /// The consumer: copies `iters` slots into `buf` as they are published.
    fn recv_into(&self, buf: &mut [u8], iters: u64) {
        let size = self.size;
        for i in 0..iters {
            spin_wait(|| self.tail.load(Ordering::Acquire) != i);
            let off = (i % self.slots) as usize * size;
            // SAFETY: `off + size <= RING`: inside the data area.
            let src = unsafe { self.data.add(off) };
            let at = (i % self.chunks) as usize * size;
            let dst = buf[at..at + size].as_mut_ptr();
            // SAFETY: slot `off..off+size` is published (tail > i); the producer does
            // not reuse it until `head` passes it; `dst` is local, `size` bytes long.
            unsafe { std::ptr::copy_nonoverlapping(src, dst, size) };
            self.head.store(i + 1, Ordering::Release);
        }
    }

    /// The producer: copies `iters` slots out of `buf` as they are free, then waits
    /// until all were consumed.
    fn send_from(&self, buf: &[u8], iters: u64) {
        let size = self.size;
        for i in 0..iters {
            spin_wait(|| i - self.head.load(Ordering::Acquire) < self.slots);
            let off = (i % self.slots) as usize * size;
            // SAFETY: `off + size <= RING`: inside the data area.
            let dst = unsafe { self.data.add(off) };
            let at = (i % self.chunks) as usize * size;
            let src = buf[at..at + size].as_ptr();
            // SAFETY: the slot is free (consumed: head > i - slots); the source is
            // `size` local bytes.
            unsafe { std::ptr::copy_nonoverlapping(src, dst, size) };
            self.tail.store(i + 1, Ordering::Release);
        }
        spin_wait(|| self.head.load(Ordering::Acquire) == iters);
    }
}

/// The minimal ring copying `size`-byte slots out of / into local buffers of
/// `buf_len` bytes (slot `i` at `i * size % buf_len`): with `buf_len` = 16 MiB it
/// streams 16 MiB messages the way shmkit does (source and destination far beyond
/// the L2), so it shows what the cache costs any copying pipe.
fn tp_min_ring_buf(size: usize, buf_len: usize, iters: u64) -> Duration {
    let shm = Shm::new();
    let ring = MinRing::new(&shm, size, buf_len);
    pair(
        &shm,
        || ring.recv_into(&mut vec![0u8; buf_len], iters),
        || ring.send_from(&vec![1u8; buf_len], iters),
    )
}

// ---- shmkit -----------------------------------------------------------------------

fn rt_shmkit(busy: bool, size: usize, iters: u64) -> Duration {
    let shm = Shm::new();
    let (a, b): (Connection, Connection) = Pipe::builder().busy_poll(busy).duplex().unwrap();
    pair(
        &shm,
        || {
            let mut buf = vec![0u8; size];
            for _ in 0..iters {
                let n = b.recv_bytes_into(&mut buf, 0).unwrap();
                b.send_bytes(&buf[..n]).unwrap();
            }
        },
        || {
            let mut buf = vec![1u8; size];
            for _ in 0..iters {
                a.send_bytes(&buf).unwrap();
                a.recv_bytes_into(&mut buf, 0).unwrap();
            }
        },
    )
}

fn rt_shmkit_sleeping(iters: u64) -> Duration {
    let shm = Shm::new();
    let (a, b) = Pipe::duplex().unwrap();
    pair(
        &shm,
        || {
            let mut buf = [0u8; 8];
            for _ in 0..iters {
                b.recv_bytes_into(&mut buf, 0).unwrap();
                busy_work(WORK);
                b.send_bytes(&buf).unwrap();
            }
        },
        || {
            let mut buf = [0u8; 8];
            for _ in 0..iters {
                a.send_bytes(&buf).unwrap();
                a.recv_bytes_into(&mut buf, 0).unwrap();
                busy_work(WORK);
            }
        },
    )
}

fn tp_shmkit(size: usize, iters: u64) -> Duration {
    let shm = Shm::new();
    let (rx, tx): (Receiver, Sender) = Pipe::one_way().unwrap();
    let (ack_rx, ack_tx) = Pipe::one_way().unwrap();
    pair(
        &shm,
        || {
            let mut buf = vec![0u8; size];
            for _ in 0..iters {
                rx.recv_bytes_into(&mut buf, 0).unwrap();
            }
            ack_tx.send_bytes(&[1]).unwrap();
        },
        || {
            let buf = vec![1u8; size];
            for _ in 0..iters {
                tx.send_bytes(&buf).unwrap();
            }
            ack_rx.recv_bytes().unwrap();
        },
    )
}

/// What a receiver does with each message it gets.
#[derive(Clone, Copy)]
enum Use {
    /// Nothing: it only gets the bytes (a copy, or a slice in place).
    None,
    /// Reads every byte: a wrapping sum of the message's 64-bit words.
    Fold,
}

/// The cheap fold every "reads every byte" receiver applies: a wrapping sum of the
/// little-endian 64-bit words (the compiler vectorises it), plus the tail bytes.
#[inline(never)]
fn fold(msg: &[u8]) -> u64 {
    let words = msg.chunks_exact(8);
    let tail = words.remainder().iter().map(|&b| u64::from(b)).sum::<u64>();
    words
        .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
        .fold(tail, u64::wrapping_add)
}

fn consume(how: Use, msg: &[u8]) {
    match how {
        Use::None => {
            std::hint::black_box(msg.len());
        }
        Use::Fold => {
            std::hint::black_box(fold(msg));
        }
    }
}

/// `tp_fd` whose receiver also applies `how` to every message it read, and whose
/// sender, with `fill`, writes every byte of each message first (`produce`).
fn tp_fd_use(socket: bool, size: usize, how: Use, fill: bool, iters: u64) -> Duration {
    let shm = Shm::new();
    let f = fds(socket);
    let e = pair(
        &shm,
        || {
            let mut buf = vec![0u8; size];
            for _ in 0..iters {
                read_exact(f[2], &mut buf);
                consume(how, &buf);
            }
            write_all(f[3], &[1]);
        },
        || {
            let mut buf = vec![1u8; size];
            for i in 0..iters {
                if fill {
                    produce(&mut buf, i);
                }
                write_all(f[1], &buf);
            }
            read_exact(f[0], &mut [0u8]);
        },
    );
    close_all(f);
    e
}

/// `tp_shmkit` whose receiver copies each message out (`recv_bytes_into`, as there)
/// or reads it in place (`recv_bytes_with`), then applies `how` to it. With `fill`
/// the sender writes every byte of each message (`produce`): into a buffer it then
/// sends, or (`in_place`) straight into the ring with `send_bytes_with`.
fn tp_shmkit_use(size: usize, in_place: bool, how: Use, fill: bool, iters: u64) -> Duration {
    let shm = Shm::new();
    let (rx, tx): (Receiver, Sender) = Pipe::one_way().unwrap();
    let (ack_rx, ack_tx) = Pipe::one_way().unwrap();
    pair(
        &shm,
        || {
            let mut buf = vec![0u8; size];
            for _ in 0..iters {
                if in_place {
                    // SAFETY: only shmkit's pipe code (this bench's two processes)
                    // touches the pipe's shared memory.
                    unsafe { rx.recv_bytes_with(|m| consume(how, m)) }.unwrap();
                } else {
                    let n = rx.recv_bytes_into(&mut buf, 0).unwrap();
                    consume(how, &buf[..n]);
                }
            }
            ack_tx.send_bytes(&[1]).unwrap();
        },
        || {
            let mut buf = vec![1u8; size];
            for i in 0..iters {
                if fill && in_place {
                    // SAFETY: as above.
                    unsafe { tx.send_bytes_with(size, |b| produce(b, i)) }.unwrap();
                    continue;
                }
                if fill {
                    produce(&mut buf, i);
                }
                tx.send_bytes(&buf).unwrap();
            }
            ack_rx.recv_bytes().unwrap();
        },
    )
}

/// `tp_min_ring_buf` with both local buffers allocated and faulted in before the
/// clock starts (`pair_setup`): at 16 MiB, faulting in 2 x 16 MiB of fresh pages
/// costs several ms per run of 16 messages, the same for every copying pipe.
fn tp_min_ring_buf_prefaulted(size: usize, buf_len: usize, iters: u64) -> Duration {
    let shm = Shm::new();
    let ring = MinRing::new(&shm, size, buf_len);
    pair_setup(
        &shm,
        || touched(buf_len, 0),
        |mut buf| ring.recv_into(&mut buf, iters),
        || touched(buf_len, 1),
        |buf| ring.send_from(&buf, iters),
    )
}

/// `tp_shmkit` with both buffers allocated and faulted in before the clock starts.
fn tp_shmkit_prefaulted(size: usize, iters: u64) -> Duration {
    let shm = Shm::new();
    let (rx, tx): (Receiver, Sender) = Pipe::one_way().unwrap();
    let (ack_rx, ack_tx) = Pipe::one_way().unwrap();
    pair_setup(
        &shm,
        || touched(size, 0),
        |mut buf| {
            for _ in 0..iters {
                rx.recv_bytes_into(&mut buf, 0).unwrap();
            }
            ack_tx.send_bytes(&[1]).unwrap();
        },
        || touched(size, 1),
        |buf| {
            for _ in 0..iters {
                tx.send_bytes(&buf).unwrap();
            }
            ack_rx.recv_bytes().unwrap();
        },
    )
}

/// The 16 MiB zero-copy receive once warmed up: before the clock starts, both
/// sides fault in their buffers and one message crosses, so the receiving handle's
/// reused assembly buffer already has its size (a fresh handle grows and faults it
/// in during its first fragmented message).
fn tp_shmkit_with_warm(size: usize, iters: u64) -> Duration {
    let shm = Shm::new();
    let (rx, tx): (Receiver, Sender) = Pipe::one_way().unwrap();
    let (ack_rx, ack_tx) = Pipe::one_way().unwrap();
    let recv = |rx: &Receiver| {
        // SAFETY: only shmkit's pipe code (this bench's two processes) writes the
        // pipe's shared memory.
        unsafe { rx.recv_bytes_with(|m| consume(Use::None, m)) }.unwrap();
    };
    pair_setup(
        &shm,
        || recv(&rx),
        |()| {
            for _ in 0..iters {
                recv(&rx);
            }
            ack_tx.send_bytes(&[1]).unwrap();
        },
        || {
            let buf = touched(size, 1);
            tx.send_bytes(&buf).unwrap();
            buf
        },
        |buf| {
            for _ in 0..iters {
                tx.send_bytes(&buf).unwrap();
            }
            ack_rx.recv_bytes().unwrap();
        },
    )
}

/// The cheap fill every "sender writes every byte" sender applies before (or, in
/// place, instead of) sending: 64-bit words `seed + k` (the compiler vectorises it).
#[inline(never)]
fn produce(buf: &mut [u8], seed: u64) {
    for (k, w) in buf.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&seed.wrapping_add(k as u64).to_le_bytes());
    }
}

type Variant = (&'static str, Box<dyn Fn(u64) -> Duration>);

/// The round-trip variants for `size`-byte messages, after the 8-byte floor named
/// `floor`.
fn round_trips(floor: &'static str, size: usize) -> Vec<Variant> {
    vec![
        (floor, Box::new(rt_floor)),
        (
            "shmkit busy-poll",
            Box::new(move |n| rt_shmkit(true, size, n)),
        ),
        (
            "shmkit blocking",
            Box::new(move |n| rt_shmkit(false, size, n)),
        ),
        ("pipe(2)", Box::new(move |n| rt_fd(false, size, n))),
        ("unix socketpair", Box::new(move |n| rt_fd(true, size, n))),
    ]
}

/// The one-way variants whose receiver reads (folds) every byte of `size`-byte
/// messages: socket, pipe, shmkit copying and shmkit zero-copy; with `fill` the sender
/// also writes every byte of each message first.
fn fold_rows(size: usize, fill: bool) -> Vec<Variant> {
    let names = if fill {
        [
            "unix socketpair: fill, write; read, fold",
            "pipe(2): fill, write; read, fold",
            "shmkit copying: fill, send; recv, fold",
            "shmkit zero-copy: fill in place; fold in place",
        ]
    } else {
        [
            "unix socketpair + fold",
            "pipe(2) + fold",
            "shmkit copy + fold",
            "shmkit zero-copy + fold",
        ]
    };
    vec![
        (
            names[0],
            Box::new(move |n| tp_fd_use(true, size, Use::Fold, fill, n)),
        ),
        (
            names[1],
            Box::new(move |n| tp_fd_use(false, size, Use::Fold, fill, n)),
        ),
        (
            names[2],
            Box::new(move |n| tp_shmkit_use(size, false, Use::Fold, fill, n)),
        ),
        (
            names[3],
            Box::new(move |n| tp_shmkit_use(size, true, Use::Fold, fill, n)),
        ),
    ]
}

fn main() {
    shmkit::process::init();
    let k64 = 64 << 10;
    let m16 = 16 << 20;
    let groups: Vec<(&str, Vec<Variant>, u64, Option<usize>)> = vec![
        (
            "round trip 8 B",
            round_trips("shared-atomic floor", 8),
            2_000,
            None,
        ),
        (
            "round trip 4 KiB",
            round_trips("shared-atomic floor (8 B)", 4096),
            2_000,
            None,
        ),
        (
            "round trip 8 B, both sides sleep (incl. 2x200us work)",
            vec![
                ("bare futex ping-pong", Box::new(rt_futex_sleeping)),
                ("shmkit blocking", Box::new(rt_shmkit_sleeping)),
            ],
            200,
            None,
        ),
        (
            "one-way 64 KiB messages",
            vec![
                ("minimal shm ring", Box::new(move |n| tp_min_ring(k64, n))),
                ("shmkit", Box::new(move |n| tp_shmkit(k64, n))),
                ("pipe(2)", Box::new(move |n| tp_fd(false, k64, n))),
                ("unix socketpair", Box::new(move |n| tp_fd(true, k64, n))),
                (
                    "shmkit zero-copy (slice only)",
                    Box::new(move |n| tp_shmkit_use(k64, true, Use::None, false, n)),
                ),
            ],
            2_000,
            Some(k64),
        ),
        (
            "one-way 64 KiB messages, receiver reads every byte",
            fold_rows(k64, false),
            2_000,
            Some(k64),
        ),
        (
            "one-way 64 KiB messages, sender writes and receiver reads every byte",
            fold_rows(k64, true),
            2_000,
            Some(k64),
        ),
        (
            "one-way 16 MiB messages",
            vec![
                ("shmkit", Box::new(move |n| tp_shmkit(m16, n))),
                (
                    "minimal shm ring (64 KiB slots)",
                    Box::new(move |n| tp_min_ring(k64, n * 256)),
                ),
                (
                    "minimal ring, 16 MiB src/dst buffers",
                    Box::new(move |n| tp_min_ring_buf(k64, m16, n * 256)),
                ),
                (
                    "shmkit recv_bytes_with (assembled)",
                    Box::new(move |n| tp_shmkit_use(m16, true, Use::None, false, n)),
                ),
                (
                    "shmkit recv_bytes_with, warmed up",
                    Box::new(move |n| tp_shmkit_with_warm(m16, n)),
                ),
                (
                    "shmkit, buffers faulted in before timing",
                    Box::new(move |n| tp_shmkit_prefaulted(m16, n)),
                ),
                (
                    "minimal ring, 16 MiB buffers faulted in before",
                    Box::new(move |n| tp_min_ring_buf_prefaulted(k64, m16, n * 256)),
                ),
            ],
            16,
            Some(m16),
        ),
    ];

    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_millis(500))
        .sample_size(10);
    for (name, vs, _, _) in &groups {
        let mut g = c.benchmark_group(*name);
        for (vname, f) in vs {
            g.bench_function(BenchmarkId::from_parameter(vname), |b| b.iter_custom(f));
        }
        g.finish();
    }
    c.final_summary();

    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let runs_n: usize = std::env::var("PIPE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let use_min = std::env::var("PIPE_BENCH_STAT").is_ok_and(|v| v == "min");
    let stat = if use_min { "min" } else { "median" };
    println!("\n== pipe summary ({stat} of {runs_n} runs; ratio = variant / first row)");
    for (name, vs, n, bytes) in &groups {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        println!("-- {name} ({n} iterations per run)");
        let mut first = None;
        for (vname, f) in vs {
            let mut runs: Vec<f64> = (0..runs_n)
                .map(|_| f(*n).as_nanos() as f64 / *n as f64)
                .collect();
            runs.sort_by(|a, b| a.total_cmp(b));
            let ns = if use_min { runs[0] } else { runs[runs_n / 2] };
            let base = *first.get_or_insert(ns);
            let extra = match bytes {
                Some(b) => format!("  {:.2} GB/s", *b as f64 / ns),
                None if name.contains("sleep") => {
                    format!(
                        "  overhead {:.1} us",
                        (ns - 2.0 * WORK.as_nanos() as f64) / 1e3
                    )
                }
                None => String::new(),
            };
            println!(
                "   {vname:<32} {ns:>12.1} ns/iter   ratio {:.2}{extra}",
                ns / base
            );
        }
    }
}
