//! Queue and ring benchmarks between two (or four) processes, each beside its
//! baselines measured in the same run.
//!
//! * ping-pong round trip of an 8-byte item, the two processes pinned to different
//!   cores (when there are two): raw shared-atomic ping-pong (the floor), bare futex
//!   ping-pong, `pipe(2)`, Unix socket, shmkit SPSC ring (busy-poll), MPMC `Queue`
//!   (busy-poll with `try_put`/`try_get`), blocking `Queue` (`put`/`get`); and, both
//!   processes on one core so that every wait must sleep, bare futex vs blocking
//!   `Queue`;
//! * one-way throughput, one producer and one consumer process: 8 B, 1 KiB and
//!   64 KiB items through a minimal SPSC shm ring written here (the baseline) and
//!   through shmkit's SPSC ring zero-copy path (reserve/commit, peek/release); a serde
//!   `Queue<u64>` vs that minimal ring and vs `pipe(2)` carrying the same `u64`s;
//! * 2 producers + 2 consumers: `Queue<u64>` vs one pipe shared the same way.
//!
//! Busy-poll loops call `sched_yield` every 256 polls (see `relax`), the same in
//! every variant, so that a loaded machine does not turn a preempted peer into a
//! lost time slice.
//!
//! Run: `cargo bench -p shmkit --bench queue` (about a minute). At the end it prints
//! every shmkit number as a ratio to its baselines (mean over every batch criterion
//! ran, warm-up included).
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use common::{pin, read_exact, two_cores, unpin, write_all};
use criterion::{BenchmarkId, Criterion, Throughput};
use shmkit::queue::{Queue, QueueOptions};
use shmkit::ring::{spsc, RingConfig};
use shmkit::segment::layout::{ByteRegion, Layout};
use shmkit::segment::shim::atomic::{AtomicU32, AtomicU64, Ordering};
use shmkit::segment::shim::time::Deadline;
use shmkit::segment::{Kind, Segment};
use shmkit::sync::futex;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::hint::{black_box, spin_loop};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// (total time, iterations) per benchmark id, for the ratio table.
static TIMES: Mutex<BTreeMap<String, (Duration, u64)>> = Mutex::new(BTreeMap::new());

fn record(id: &str, d: Duration, iters: u64) -> Duration {
    let mut m = TIMES.lock().unwrap();
    let e = m.entry(id.to_string()).or_default();
    e.0 += d;
    e.1 += iters;
    d
}

fn ns_per(id: &str) -> Option<f64> {
    let m = TIMES.lock().unwrap();
    m.get(id)
        .filter(|e| e.1 > 0)
        .map(|e| e.0.as_nanos() as f64 / e.1 as f64)
}

thread_local! {
    static SPINS: Cell<u32> = const { Cell::new(0) };
}

/// One step of a busy-poll loop: a spin hint, and every 256th time `sched_yield`, so
/// that on a loaded machine a poller whose peer was preempted gives its core away
/// instead of burning a whole time slice. Every busy-poll variant (the floor
/// included) polls this way.
fn relax() {
    SPINS.with(|c| {
        let n = c.get().wrapping_add(1);
        c.set(n);
        if n % 256 == 0 {
            std::thread::yield_now();
        } else {
            spin_loop();
        }
    });
}

/// Forks a child that runs `f` and `_exit`s; returns its pid.
fn fork(f: impl FnOnce()) -> libc::pid_t {
    // SAFETY: the bench is single-threaded (criterion runs benchmarks on the main
    // thread), so the child may do anything the parent could.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let code = i32::from(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err());
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    pid
}

fn reap(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: `status` is a valid int; `pid` is our unreaped child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "bench child failed"
    );
}

/// A small shared area for flags: word `i` at byte `128 * i` (own cache lines).
struct Flags(Segment);

impl Flags {
    fn new() -> Self {
        Flags(Segment::create_anonymous(Kind::RAW, 128 * 8).unwrap())
    }
    fn u64(&self, i: usize) -> &AtomicU64 {
        self.0.get::<AtomicU64>(128 * i).unwrap()
    }
    fn u32(&self, i: usize) -> &AtomicU32 {
        self.0.get::<AtomicU32>(128 * i).unwrap()
    }
    /// Child side: announce readiness, then wait for the go word.
    fn ready_wait_go(&self) {
        // Release/Acquire: a start handshake only.
        self.u64(6).fetch_add(1, Ordering::Release);
        while self.u64(7).load(Ordering::Acquire) == 0 {
            relax();
        }
    }
    /// Parent side: wait until `n` children are ready, then start the clock and go.
    fn wait_ready_go(&self, n: u64) -> Instant {
        while self.u64(6).load(Ordering::Acquire) < n {
            std::thread::yield_now();
        }
        let t = Instant::now();
        self.u64(7).store(1, Ordering::Release);
        t
    }
}

/// Runs a two-process ping-pong of `iters` round trips: `child` answers, `parent`
/// asks; the child is pinned to CPU 1 (or 0 with `same_core`), the parent to CPU 0.
fn pingpong(
    id: &str,
    iters: u64,
    same_core: bool,
    child: impl FnOnce(&Flags, u64),
    parent: impl FnOnce(&Flags, u64),
) -> Duration {
    // At least PP_MIN round trips per run, so that the fixed costs of a run (first
    // touches of fresh memory, attaching, /proc reads of new identities) vanish;
    // the time is scaled back to the `iters` criterion asked for.
    let m = iters.max(PP_MIN);
    let flags = Flags::new();
    let cpu = usize::from(two_cores() && !same_core);
    pin(0);
    let pid = fork(|| {
        pin(cpu);
        flags.ready_wait_go();
        child(&flags, m);
    });
    let t = flags.wait_ready_go(1);
    parent(&flags, m);
    let d = t.elapsed();
    reap(pid);
    record(id, d, m).mul_f64(iters as f64 / m as f64)
}

/// Fewest round trips per ping-pong run.
const PP_MIN: u64 = 20_000;

fn close(fd: i32) {
    // SAFETY: `fd` is an fd we own and no longer use.
    unsafe { libc::close(fd) };
}

fn pipe() -> [i32; 2] {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two fds.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    fds
}

fn socketpair() -> [i32; 2] {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two fds.
    let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) };
    assert_eq!(r, 0);
    fds
}

/// Two SPSC rings (ping, pong) of `cap` slots of `slot` bytes in one segment.
fn ring_pair(cap: usize, slot: usize) -> (Segment, ByteRegion, ByteRegion) {
    let cfg = RingConfig::spsc(cap, slot).unwrap();
    let mut l = Layout::new();
    let a = cfg.add_to(&mut l).unwrap();
    let b = cfg.add_to(&mut l).unwrap();
    let seg = Segment::create_anonymous(Kind::RAW, l.size()).unwrap();
    spsc::init(&seg, a, &cfg).unwrap();
    spsc::init(&seg, b, &cfg).unwrap();
    (seg, a, b)
}

fn bench_pingpong(c: &mut Criterion) {
    let mut g = c.benchmark_group("ping-pong 8 B round trip");
    g.bench_function("floor: shared atomic", |b| {
        b.iter_custom(|n| {
            pingpong(
                "pp floor",
                n,
                false,
                |f, n| {
                    for i in 1..=n {
                        // Acquire/Release: the ping and pong words pair up.
                        while f.u64(0).load(Ordering::Acquire) != i {
                            relax();
                        }
                        f.u64(1).store(i, Ordering::Release);
                    }
                },
                |f, n| {
                    for i in 1..=n {
                        f.u64(0).store(i, Ordering::Release);
                        while f.u64(1).load(Ordering::Acquire) != i {
                            relax();
                        }
                    }
                },
            )
        });
    });
    for same_core in [false, true] {
        let (name, id) = if same_core {
            ("bare futex, same core", "pp futex 1core")
        } else {
            ("bare futex", "pp futex")
        };
        g.bench_function(name, |b| {
            b.iter_custom(|n| {
                pingpong(
                    id,
                    n,
                    same_core,
                    |f, n| futex_side(f.u32(0), f.u32(1), n, false),
                    |f, n| futex_side(f.u32(1), f.u32(0), n, true),
                )
            });
        });
    }
    g.bench_function("pipe(2)", |b| {
        b.iter_custom(|n| {
            let (p1, p2) = (pipe(), pipe());
            let d = pingpong(
                "pp pipe",
                n,
                false,
                |_, n| fd_echo(p1[0], p2[1], n),
                |_, n| fd_ask(p2[0], p1[1], n),
            );
            p1.into_iter().chain(p2).for_each(close);
            d
        });
    });
    g.bench_function("unix socket", |b| {
        b.iter_custom(|n| {
            let s = socketpair();
            let d = pingpong(
                "pp unix",
                n,
                false,
                |_, n| fd_echo(s[1], s[1], n),
                |_, n| fd_ask(s[0], s[0], n),
            );
            s.into_iter().for_each(close);
            d
        });
    });
    g.bench_function("shmkit SPSC ring, busy-poll", |b| {
        b.iter_custom(|n| {
            let (seg, a, bb) = ring_pair(64, 8);
            pingpong(
                "pp spsc",
                n,
                false,
                |_, n| {
                    let mut rx = spsc::Consumer::attach(&seg, a).unwrap();
                    let mut tx = spsc::Producer::attach(&seg, bb).unwrap();
                    for _ in 0..n {
                        let v = loop {
                            if let Ok(v) = rx.try_pop::<u64>() {
                                break v;
                            }
                            relax();
                        };
                        while tx.try_push(v).is_err() {
                            relax();
                        }
                    }
                },
                |_, n| {
                    let mut tx = spsc::Producer::attach(&seg, a).unwrap();
                    let mut rx = spsc::Consumer::attach(&seg, bb).unwrap();
                    for i in 0..n {
                        while tx.try_push(i).is_err() {
                            relax();
                        }
                        loop {
                            if let Ok(v) = rx.try_pop::<u64>() {
                                black_box(v);
                                break;
                            }
                            relax();
                        }
                    }
                },
            )
        });
    });
    g.bench_function("shmkit MPMC Queue<u64>, busy-poll", |b| {
        b.iter_custom(|n| {
            let (ping, pong) = (queue_u64(64), queue_u64(64));
            pingpong(
                "pp queue poll",
                n,
                false,
                |_, n| {
                    for _ in 0..n {
                        let v = loop {
                            if let Ok(v) = ping.try_get() {
                                break v;
                            }
                            relax();
                        };
                        while pong.try_put(v).is_err() {
                            relax();
                        }
                    }
                },
                |_, n| {
                    for i in 0..n {
                        while ping.try_put(i).is_err() {
                            relax();
                        }
                        loop {
                            if let Ok(v) = pong.try_get() {
                                black_box(v);
                                break;
                            }
                            relax();
                        }
                    }
                },
            )
        });
    });
    for same_core in [false, true] {
        let (name, id) = if same_core {
            (
                "shmkit Queue<u64>, blocking, same core",
                "pp queue block 1core",
            )
        } else {
            ("shmkit Queue<u64>, blocking", "pp queue block")
        };
        g.bench_function(name, |b| {
            b.iter_custom(|n| {
                let (ping, pong) = (queue_u64(64), queue_u64(64));
                pingpong(
                    id,
                    n,
                    same_core,
                    |_, n| {
                        for _ in 0..n {
                            pong.put(ping.get().unwrap()).unwrap();
                        }
                    },
                    |_, n| {
                        for i in 0..n {
                            ping.put(i).unwrap();
                            black_box(pong.get().unwrap());
                        }
                    },
                )
            });
        });
    }
    g.finish();
}

fn queue_u64(cap: i64) -> Queue<u64> {
    QueueOptions::new(cap)
        .max_item_size(16)
        .anonymous()
        .unwrap()
}

/// One side of a bare futex ping-pong: wait for `rx == i` (sleeping on the futex
/// when it is not), then set `tx = i` and wake. The asker sends first.
fn futex_side(rx: &AtomicU32, tx: &AtomicU32, n: u64, asks: bool) {
    for i in 1..=n as u32 {
        if asks {
            tx.store(i, Ordering::Release);
            futex::wake(tx, 1);
        }
        loop {
            // Acquire: pairs with the peer's Release store.
            let v = rx.load(Ordering::Acquire);
            if v == i {
                break;
            }
            futex::wait(rx, v, Deadline::NEVER);
        }
        if !asks {
            tx.store(i, Ordering::Release);
            futex::wake(tx, 1);
        }
    }
}

fn fd_echo(rx: i32, tx: i32, n: u64) {
    let mut b = [0u8; 8];
    for _ in 0..n {
        read_exact(rx, &mut b);
        write_all(tx, &b);
    }
}

fn fd_ask(rx: i32, tx: i32, n: u64) {
    let mut b = [0u8; 8];
    for i in 0..n {
        write_all(tx, &i.to_ne_bytes());
        read_exact(rx, &mut b);
    }
}

/// The baseline one-way ring: SPSC, `cap` slots of `size` bytes, head and tail on
/// their own lines, each side caching the other's index. Nothing else.
struct MinRing {
    seg: Segment,
    cap: u64,
    size: usize,
}

impl MinRing {
    const DATA: usize = 256;

    fn new(cap: usize, size: usize) -> Self {
        let seg = Segment::create_anonymous(Kind::RAW, Self::DATA + cap * size).unwrap();
        MinRing {
            seg,
            cap: cap as u64,
            size,
        }
    }
    fn head(&self) -> &AtomicU64 {
        self.seg.get::<AtomicU64>(0).unwrap()
    }
    fn tail(&self) -> &AtomicU64 {
        self.seg.get::<AtomicU64>(128).unwrap()
    }
    fn slot(&self, pos: u64) -> *mut u8 {
        let off = Self::DATA + (pos % self.cap) as usize * self.size;
        self.seg.range(off, self.size).unwrap().as_ptr()
    }
    fn produce(&self, n: u64, src: &[u8]) {
        let mut head = 0;
        for t in 0..n {
            while t - head >= self.cap {
                // Acquire: pairs with the consumer's Release of `head`.
                head = self.head().load(Ordering::Acquire);
                relax();
            }
            // SAFETY: slot `t` is free (t - head < cap) and only we write it until the
            // Release below; `src` has `size` bytes; the range was bounds-checked.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.slot(t), self.size) };
            // Release: publishes the slot to the consumer's Acquire load.
            self.tail().store(t + 1, Ordering::Release);
        }
    }
    fn consume(&self, n: u64, dst: &mut [u8]) {
        let mut tail = 0;
        for h in 0..n {
            while h >= tail {
                // Acquire: pairs with the producer's Release of `tail`.
                tail = self.tail().load(Ordering::Acquire);
                relax();
            }
            // SAFETY: slot `h` is published (h < tail) and the producer leaves it alone
            // until we move `head`; `dst` has `size` bytes.
            unsafe { std::ptr::copy_nonoverlapping(self.slot(h), dst.as_mut_ptr(), self.size) };
            black_box(&dst);
            // Release: frees the slot for the producer's Acquire load.
            self.head().store(h + 1, Ordering::Release);
        }
    }
}

/// Runs `producers` producer children and `consumers` consumers (the parent is the
/// first consumer; the others are children), each producer sending `n/producers`
/// items and each consumer taking `n/consumers`. Times from go to the last consumer.
fn one_way(
    id: &str,
    iters: u64,
    item_size: usize,
    producers: u64,
    consumers: u64,
    produce: impl Fn(u64) + Copy,
    consume: impl Fn(u64) + Copy,
) -> Duration {
    // At least 64 MiB or 200k items per run (fixed costs vanish), scaled back.
    let min = (64 << 20) / item_size as u64;
    let n = iters.max(min.clamp(1_000, 200_000)).div_ceil(4) * 4;
    let flags = Flags::new();
    let pinned = producers == 1 && consumers == 1 && two_cores();
    if pinned {
        pin(0);
    } else {
        unpin();
    }
    let mut pids = Vec::new();
    for _ in 0..producers {
        pids.push(fork(|| {
            if pinned {
                pin(1);
            }
            flags.ready_wait_go();
            produce(n / producers);
        }));
    }
    for _ in 1..consumers {
        pids.push(fork(|| {
            flags.ready_wait_go();
            consume(n / consumers);
            flags.u64(2).fetch_add(1, Ordering::Release);
        }));
    }
    let t = flags.wait_ready_go(producers + consumers - 1);
    consume(n / consumers);
    while flags.u64(2).load(Ordering::Acquire) < consumers - 1 {
        relax();
    }
    let d = t.elapsed();
    pids.into_iter().for_each(reap);
    record(id, d, n).mul_f64(iters as f64 / n as f64)
}

/// [`one_way`] of `u64` items through a blocking serde [`Queue`] of 1024 slots.
fn queue_u64_one_way(id: &str, iters: u64, producers: u64, consumers: u64) -> Duration {
    let q = queue_u64(1024);
    one_way(
        id,
        iters,
        8,
        producers,
        consumers,
        |k| (0..k).for_each(|i| q.put(i).unwrap()),
        |k| {
            (0..k).for_each(|_| {
                black_box(q.get().unwrap());
            })
        },
    )
}

/// [`one_way`] of `u64` items through one `pipe(2)` shared by every process.
fn pipe_u64_one_way(id: &str, iters: u64, producers: u64, consumers: u64) -> Duration {
    let p = pipe();
    let d = one_way(
        id,
        iters,
        8,
        producers,
        consumers,
        |k| (0..k).for_each(|i| write_all(p[1], &i.to_ne_bytes())),
        |k| {
            let mut buf = [0u8; 8];
            // 8-byte writes are atomic (< PIPE_BUF) and a read of 8 bytes takes one
            // whole item, also with several readers and writers.
            (0..k).for_each(|_| read_exact(p[0], &mut buf));
        },
    );
    p.into_iter().for_each(close);
    d
}

fn bench_throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("one-way throughput 1P/1C");
    for (size, cap) in [(8usize, 1024usize), (1024, 256), (65536, 16)] {
        g.throughput(Throughput::Elements(1));
        let src = vec![0xa5u8; size];
        g.bench_with_input(
            BenchmarkId::new("baseline: minimal shm ring", size),
            &size,
            |b, _| {
                b.iter_custom(|n| {
                    let r = MinRing::new(cap, size);
                    one_way(
                        &format!("tp minring {size}"),
                        n,
                        size,
                        1,
                        1,
                        |k| r.produce(k, &src),
                        |k| r.consume(k, &mut vec![0u8; size]),
                    )
                });
            },
        );
        g.bench_with_input(
            BenchmarkId::new("shmkit SPSC zero-copy", size),
            &size,
            |b, _| {
                b.iter_custom(|n| {
                    let cfg = RingConfig::spsc(cap, size).unwrap();
                    let mut l = Layout::new();
                    let region = cfg.add_to(&mut l).unwrap();
                    let seg = Segment::create_anonymous(Kind::RAW, l.size()).unwrap();
                    spsc::init(&seg, region, &cfg).unwrap();
                    let src = &src;
                    one_way(
                        &format!("tp spsc {size}"),
                        n,
                        size,
                        1,
                        1,
                        |k| {
                            let mut tx = spsc::Producer::attach(&seg, region).unwrap();
                            for _ in 0..k {
                                let mut w = loop {
                                    match tx.reserve() {
                                        Ok(w) => break w,
                                        Err(_) => relax(),
                                    }
                                };
                                w.write_at(0, src);
                                w.commit();
                            }
                        },
                        |k| {
                            let mut rx = spsc::Consumer::attach(&seg, region).unwrap();
                            let mut dst = vec![0u8; size];
                            for _ in 0..k {
                                let r = loop {
                                    match rx.peek() {
                                        Ok(r) => break r,
                                        Err(_) => relax(),
                                    }
                                };
                                r.read_at(0, &mut dst);
                                black_box(&dst);
                                r.release();
                            }
                        },
                    )
                });
            },
        );
    }
    g.bench_function("shmkit Queue<u64> (serde, blocking)", |b| {
        b.iter_custom(|n| queue_u64_one_way("tp queue u64", n, 1, 1));
    });
    g.bench_function("pipe(2) u64", |b| {
        b.iter_custom(|n| pipe_u64_one_way("tp pipe u64", n, 1, 1));
    });
    g.finish();

    let mut g = c.benchmark_group("MPMC 2P+2C u64");
    g.bench_function("shmkit Queue<u64>", |b| {
        b.iter_custom(|n| queue_u64_one_way("mpmc queue", n, 2, 2));
    });
    g.bench_function("pipe(2), shared by all four", |b| {
        b.iter_custom(|n| pipe_u64_one_way("mpmc pipe", n, 2, 2));
    });
    g.finish();
}

fn report() {
    let row = |name: &str, id: &str, base: &[(&str, &str)]| {
        let Some(v) = ns_per(id) else { return };
        let mut s = format!("{name:<44} {v:>10.1} ns");
        for (bn, bid) in base {
            if let Some(b) = ns_per(bid) {
                s += &format!("   {:>6.2}x {bn}", v / b);
            }
        }
        println!("{s}");
    };
    println!("\nping-pong round trip, ns (ratio = time / baseline time)");
    for (n, id) in [
        ("floor: shared atomic", "pp floor"),
        ("bare futex", "pp futex"),
        ("bare futex, same core", "pp futex 1core"),
        ("pipe(2)", "pp pipe"),
        ("unix socket", "pp unix"),
    ] {
        row(n, id, &[]);
    }
    row(
        "shmkit SPSC ring busy-poll",
        "pp spsc",
        &[("floor", "pp floor")],
    );
    row(
        "shmkit MPMC Queue busy-poll",
        "pp queue poll",
        &[("floor", "pp floor")],
    );
    row(
        "shmkit Queue blocking",
        "pp queue block",
        &[("floor", "pp floor"), ("futex", "pp futex")],
    );
    row(
        "shmkit Queue blocking, same core",
        "pp queue block 1core",
        &[("futex same core", "pp futex 1core")],
    );
    println!("\none-way throughput, ns per item (ratio = baseline time / time = rate ratio)");
    let rate = |name: &str, id: &str, base: &[(&str, &str)]| {
        let Some(v) = ns_per(id) else { return };
        let mut s = format!("{name:<44} {:>8.2} M items/s", 1e3 / v);
        for (bn, bid) in base {
            if let Some(b) = ns_per(bid) {
                s += &format!("   {:>6.2}x {bn}", b / v);
            }
        }
        println!("{s}");
    };
    for size in [8, 1024, 65536] {
        let base = format!("tp minring {size}");
        rate(&format!("minimal shm ring {size} B"), &base, &[]);
        rate(
            &format!("shmkit SPSC zero-copy {size} B"),
            &format!("tp spsc {size}"),
            &[("minimal ring", &base)],
        );
    }
    rate("pipe(2) u64", "tp pipe u64", &[]);
    rate(
        "shmkit Queue<u64> serde",
        "tp queue u64",
        &[
            ("minimal ring 8 B", "tp minring 8"),
            ("pipe", "tp pipe u64"),
        ],
    );
    rate("2P+2C pipe(2) u64", "mpmc pipe", &[]);
    rate(
        "2P+2C shmkit Queue<u64>",
        "mpmc queue",
        &[("pipe", "mpmc pipe")],
    );
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(10)
        .configure_from_args();
    bench_pingpong(&mut c);
    bench_throughput(&mut c);
    c.final_summary();
    report();
}
