//! Synchronisation benchmarks, each beside its baseline measured in the same run.
//!
//! * uncontended lock+unlock: shmkit `RawMutex` vs a `pthread_mutex_t`
//!   (PTHREAD_PROCESS_SHARED + PTHREAD_MUTEX_ROBUST) in shared memory, and vs
//!   raw_sync's `Mutex` (a process-shared, non-robust pthread mutex);
//! * two processes contending (lock, increment, unlock), pinned to CPUs 0 and 1:
//!   total ops/s, shmkit vs the same robust pthread mutex;
//! * semaphore release+acquire vs POSIX `sem_post`+`sem_wait` (pshared);
//! * Event set -> waiter in another process wakes -> answers: round trip, vs a bare
//!   futex ping-pong between two processes (wait/wake syscalls, no spinning); and the
//!   same with the answer delayed by 150 µs of work, so the requester must sleep.
//!
//! `cargo bench --bench sync` runs criterion (short measurement times), then prints a
//! summary table with the ratios (median of 7 fixed-size runs per variant, the
//! variants of a group interleaved run by run).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use criterion::{BenchmarkId, Criterion};
use raw_sync::locks::{LockInit, Mutex as RsMutex};
use shmkit::segment::shim::atomic::{AtomicU32, AtomicU64, Ordering};
use shmkit::segment::shim::futex;
use shmkit::segment::shim::time::Deadline;
use shmkit::segment::{Kind, Segment};
use shmkit::sync::{RawEvent, RawMutex, RawSemaphore};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// glibc's value (not exported by the libc crate for this target).
const PTHREAD_MUTEX_ROBUST: libc::c_int = 1;

/// One anonymous shared segment with room for every primitive, inherited by fork.
struct Shm {
    seg: Segment,
}

const OFF_MUTEX: usize = 0;
const OFF_SEM: usize = 64;
const OFF_EV_A: usize = 128;
const OFF_EV_B: usize = 192;
const OFF_WORD: usize = 256;
const OFF_COUNTER: usize = 320;
const OFF_GO: usize = 384;
const OFF_DONE: usize = 448;
const OFF_PTHREAD: usize = 512;
const OFF_POSIX_SEM: usize = 1024;
const OFF_RAWSYNC: usize = 2048;
const OFF_RAWSYNC_DATA: usize = 3072;

impl Shm {
    fn new() -> Self {
        let seg = Segment::create_anonymous(Kind::RAW, 4096).expect("segment");
        let s = Shm { seg };
        let m = s.ptr(OFF_PTHREAD).cast::<libc::pthread_mutex_t>();
        // SAFETY: an all-zero pthread_mutexattr_t is a valid value to pass to init.
        let mut attr: libc::pthread_mutexattr_t = unsafe { std::mem::zeroed() };
        // SAFETY: `attr` is a live, writable attribute object on this stack.
        assert_eq!(unsafe { libc::pthread_mutexattr_init(&mut attr) }, 0);
        // SAFETY: as above, initialised.
        let r =
            unsafe { libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED) };
        assert_eq!(r, 0);
        // SAFETY: as above.
        let r = unsafe { libc::pthread_mutexattr_setrobust(&mut attr, PTHREAD_MUTEX_ROBUST) };
        assert_eq!(r, 0);
        // SAFETY: `m` points at 64 zeroed, 64-aligned bytes of the live shared mapping
        // that nothing else uses (a pthread_mutex_t is 40 bytes).
        assert_eq!(unsafe { libc::pthread_mutex_init(m, &attr) }, 0);
        // SAFETY: `attr` was initialised above and is not used afterwards.
        unsafe { libc::pthread_mutexattr_destroy(&mut attr) };
        let sem = s.ptr(OFF_POSIX_SEM).cast::<libc::sem_t>();
        // SAFETY: 64 zeroed, aligned, unused bytes of the shared mapping (sem_t is 32).
        let r = unsafe { libc::sem_init(sem, 1, 0) };
        assert_eq!(r, 0);
        s
    }

    fn ptr(&self, off: usize) -> *mut u8 {
        self.seg.range(off, 64).expect("in bounds").as_ptr()
    }

    fn mutex(&self) -> &RawMutex {
        self.seg.get(OFF_MUTEX).expect("mutex")
    }
    fn sem(&self) -> &RawSemaphore {
        self.seg.get(OFF_SEM).expect("sem")
    }
    fn ev_a(&self) -> &RawEvent {
        self.seg.get(OFF_EV_A).expect("event")
    }
    fn ev_b(&self) -> &RawEvent {
        self.seg.get(OFF_EV_B).expect("event")
    }
    fn word(&self) -> &AtomicU32 {
        self.seg.get(OFF_WORD).expect("word")
    }
    fn counter(&self) -> &AtomicU64 {
        self.seg.get(OFF_COUNTER).expect("counter")
    }
    fn go(&self) -> &AtomicU32 {
        self.seg.get(OFF_GO).expect("go")
    }
    fn done(&self) -> &AtomicU32 {
        self.seg.get(OFF_DONE).expect("done")
    }
    fn pthread(&self) -> *mut libc::pthread_mutex_t {
        self.ptr(OFF_PTHREAD).cast()
    }
    fn posix_sem(&self) -> *mut libc::sem_t {
        self.ptr(OFF_POSIX_SEM).cast()
    }
}

/// Locks the robust mutex `m`, making it consistent after EOWNERDEAD.
fn pthread_lock(m: *mut libc::pthread_mutex_t) {
    // SAFETY: `m` is an initialised process-shared robust mutex in a live mapping.
    let r = unsafe { libc::pthread_mutex_lock(m) };
    if r == libc::EOWNERDEAD {
        // SAFETY: as above; we hold it after EOWNERDEAD.
        unsafe { libc::pthread_mutex_consistent(m) };
    }
}

fn pthread_lock_unlock(m: *mut libc::pthread_mutex_t) {
    pthread_lock(m);
    // SAFETY: an initialised robust pshared mutex that this thread just locked.
    unsafe { libc::pthread_mutex_unlock(m) };
}

/// Runs `child(iters)` in a forked child and `parent(iters)` here, started together;
/// returns the parent's elapsed time until both finished. With `cross_core` the
/// parent runs on CPU 0 and the child on CPU 1 (the parent's mask is restored).
fn two_processes(
    shm: &Shm,
    iters: u64,
    cross_core: bool,
    child: impl Fn(&Shm, u64),
    parent: impl Fn(&Shm, u64),
) -> Duration {
    let saved = cross_core.then(|| common::pin(0));
    shm.go().store(0, Ordering::SeqCst);
    shm.done().store(0, Ordering::SeqCst);
    // SAFETY: the bench is single-threaded at this point; the child only touches the
    // shared mapping and calls `_exit`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        if cross_core {
            common::pin(1);
        }
        shm.go().fetch_add(1, Ordering::SeqCst);
        while shm.go().load(Ordering::SeqCst) != 2 {
            std::hint::spin_loop();
        }
        child(shm, iters);
        shm.done().store(1, Ordering::SeqCst);
        // SAFETY: _exit ends the child without running the parent's destructors.
        unsafe { libc::_exit(0) };
    }
    while shm.go().load(Ordering::SeqCst) != 1 {
        std::hint::spin_loop();
    }
    let t = Instant::now();
    shm.go().store(2, Ordering::SeqCst);
    parent(shm, iters);
    while shm.done().load(Ordering::SeqCst) != 1 {
        std::thread::yield_now();
    }
    let e = t.elapsed();
    let mut status = 0;
    // SAFETY: `pid` is our child; `status` is a valid out-pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if let Some(old) = saved {
        common::restore(&old);
    }
    e
}

fn contend_shmkit(shm: &Shm, n: u64) {
    let (m, c) = (shm.mutex(), shm.counter());
    for _ in 0..n {
        let _ = m.lock();
        c.fetch_add(1, Ordering::Relaxed);
        m.unlock().expect("unlock");
    }
}

fn contend_pthread(shm: &Shm, n: u64) {
    let (m, c) = (shm.pthread(), shm.counter());
    for _ in 0..n {
        pthread_lock(m);
        c.fetch_add(1, Ordering::Relaxed);
        // SAFETY: held by this thread.
        unsafe { libc::pthread_mutex_unlock(m) };
    }
}

/// The Event responder: waits for `a`, "works" for `work`, answers on `b`.
fn event_child(shm: &Shm, n: u64, work: Duration) {
    let (a, b) = (shm.ev_a(), shm.ev_b());
    for _ in 0..n {
        a.wait_until(Deadline::NEVER);
        a.clear();
        busy(work);
        b.set();
    }
}

fn event_parent(shm: &Shm, n: u64) {
    let (a, b) = (shm.ev_a(), shm.ev_b());
    for _ in 0..n {
        a.set();
        b.wait_until(Deadline::NEVER);
        b.clear();
    }
}

/// Busy-waits `d` (the responder "works" longer than any spin budget, so the
/// requester has to sleep); zero returns at once, without reading the clock.
fn busy(d: Duration) {
    if d.is_zero() {
        return;
    }
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

const WORK: Duration = Duration::from_micros(150);

/// Bare futex ping-pong: the word alternates 0 (parent's turn) and 1 (child's turn);
/// every hand-over is a store + FUTEX_WAKE, every wait a FUTEX_WAIT loop. The child
/// "works" for `work` before each answer.
fn futex_child(shm: &Shm, n: u64, work: Duration) {
    let w = shm.word();
    for _ in 0..n {
        while w.load(Ordering::Acquire) != 1 {
            futex::wait(w, 0, Deadline::NEVER);
        }
        busy(work);
        w.store(0, Ordering::Release);
        futex::wake(w, 1);
    }
}

fn futex_parent(shm: &Shm, n: u64) {
    let w = shm.word();
    for _ in 0..n {
        w.store(1, Ordering::Release);
        futex::wake(w, 1);
        while w.load(Ordering::Acquire) != 0 {
            futex::wait(w, 1, Deadline::NEVER);
        }
    }
}

fn time_loop(n: u64, f: impl Fn()) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed()
}

/// Runs per variant in the summary.
const RUNS: usize = 7;

type Variant<'a> = (&'a str, Box<dyn Fn(u64) -> Duration + 'a>);

fn main() {
    let shm = Shm::new();
    // SAFETY: both pointers are inside the mapping, 64-aligned, unused by others.
    let (rs, _) = unsafe { RsMutex::new(shm.ptr(OFF_RAWSYNC), shm.ptr(OFF_RAWSYNC_DATA)) }
        .expect("raw_sync mutex");

    let uncontended: Vec<Variant<'_>> = vec![
        (
            "shmkit RawMutex",
            Box::new(|n| {
                let m = shm.mutex();
                time_loop(n, || {
                    let _ = black_box(m.lock());
                    m.unlock().expect("unlock");
                })
            }),
        ),
        (
            "pthread robust pshared",
            Box::new(|n| {
                let m = shm.pthread();
                time_loop(n, || pthread_lock_unlock(black_box(m)))
            }),
        ),
        (
            "raw_sync Mutex",
            Box::new(|n| time_loop(n, || drop(black_box(rs.lock().expect("lock"))))),
        ),
    ];
    let contended: Vec<Variant<'_>> = vec![
        (
            "shmkit RawMutex",
            Box::new(|n| two_processes(&shm, n, true, contend_shmkit, contend_shmkit)),
        ),
        (
            "pthread robust pshared",
            Box::new(|n| two_processes(&shm, n, true, contend_pthread, contend_pthread)),
        ),
    ];
    let semaphore: Vec<Variant<'_>> = vec![
        (
            "shmkit RawSemaphore",
            Box::new(|n| {
                let s = shm.sem();
                time_loop(n, || {
                    s.release().expect("release");
                    s.acquire();
                })
            }),
        ),
        (
            "POSIX sem_post+sem_wait",
            Box::new(|n| {
                let s = shm.posix_sem();
                time_loop(n, || {
                    // SAFETY: an initialised pshared sem_t in a live mapping.
                    unsafe { libc::sem_post(s) };
                    // SAFETY: as above; the post above makes the wait succeed.
                    unsafe { libc::sem_wait(s) };
                })
            }),
        ),
    ];
    let roundtrip: Vec<Variant<'_>> = vec![
        (
            "shmkit Event round trip",
            Box::new(|n| {
                two_processes(
                    &shm,
                    n,
                    false,
                    |s, n| event_child(s, n, Duration::ZERO),
                    event_parent,
                )
            }),
        ),
        (
            "bare futex ping-pong",
            Box::new(|n| {
                two_processes(
                    &shm,
                    n,
                    false,
                    |s, n| futex_child(s, n, Duration::ZERO),
                    futex_parent,
                )
            }),
        ),
    ];
    let sleeping: Vec<Variant<'_>> = vec![
        (
            "shmkit Event, answer after 150us",
            Box::new(|n| {
                two_processes(&shm, n, false, |s, n| event_child(s, n, WORK), event_parent)
            }),
        ),
        (
            "bare futex, answer after 150us",
            Box::new(|n| {
                two_processes(&shm, n, false, |s, n| futex_child(s, n, WORK), futex_parent)
            }),
        ),
    ];
    let groups: Vec<(&str, Vec<Variant<'_>>, u64)> = vec![
        ("uncontended lock+unlock", uncontended, 2_000_000),
        (
            "2 processes contending (per lock+inc+unlock pair)",
            contended,
            200_000,
        ),
        ("semaphore release+acquire", semaphore, 2_000_000),
        ("event round trip between 2 processes", roundtrip, 20_000),
        ("event round trip, requester must sleep", sleeping, 2_000),
    ];

    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    for (name, vs, _) in &groups {
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
    // Positional arguments filter the summary like they filter criterion's benches.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    println!("\n== sync summary (median of {RUNS} interleaved runs; ratio = variant / first row)");
    for (name, vs, n) in &groups {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        println!("-- {name} ({n} iterations per run)");
        // Interleave the variants run by run, so load drift on a shared machine hits
        // all of them alike; report each one's median.
        let mut runs: Vec<Vec<f64>> = vec![Vec::new(); vs.len()];
        for _ in 0..RUNS {
            for (i, (_, f)) in vs.iter().enumerate() {
                runs[i].push(f(*n).as_nanos() as f64 / *n as f64);
            }
        }
        let mut first = None;
        for ((vname, _), mut r) in vs.iter().zip(runs) {
            r.sort_by(|a, b| a.total_cmp(b));
            let ns = r[r.len() / 2];
            let base = *first.get_or_insert(ns);
            let extra = if name.starts_with("2 processes") {
                format!("  ({:.2} M ops/s total)", 2.0 * 1e3 / ns)
            } else {
                String::new()
            };
            println!(
                "   {vname:<28} {ns:>10.1} ns/iter   ratio {:.2}{extra}",
                ns / base
            );
        }
    }
}
