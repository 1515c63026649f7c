//! Pool benchmarks, beside their baselines measured in the same run:
//!
//! - `map` of 100 000 trivial tasks (`x * x`), default chunksize;
//! - `map` of 1 000 tasks of ~1 ms CPU each (a calibrated busy loop), against the
//!   sequential loop;
//! - `apply_async` of 10 000 trivial tasks, every result collected;
//! - pool start + close + join, against forking and reaping n bare children.
//!
//! Baselines: sequential, rayon on 2 threads (the in-process reference), a
//! hand-written fork-and-pipe pool (fixed functions, 16-byte requests, pipelined),
//! and Python's `multiprocessing.Pool(2)` (fork context) doing the same work, run
//! through `python3 -c` when python3 is present (timed inside Python, interpreter
//! start excluded). All pools have 2 workers.
//!
//! Run: `cargo bench -p shmkit --bench pool -- --warm-up-time 1 --measurement-time 3`.
//! At the end it prints each number as mean time per iteration and the ratios.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use rayon::prelude::*;
use shmkit::pool::Pool;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const N: usize = 2;
const MAP_ITEMS: u64 = 100_000;
const BURN_TASKS: u64 = 1_000;
const APPLY_TASKS: u64 = 10_000;

/// (total time, iterations) per benchmark id, for the ratio table.
static TIMES: Mutex<BTreeMap<&'static str, (Duration, u64)>> = Mutex::new(BTreeMap::new());

fn record(id: &'static str, iters: u64, d: Duration) -> Duration {
    let mut m = TIMES.lock().unwrap();
    let e = m.entry(id).or_default();
    e.0 += d;
    e.1 += iters;
    d
}

fn timed(id: &'static str, iters: u64, mut f: impl FnMut()) -> Duration {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    record(id, iters, t.elapsed())
}

/// One benchmark of group `g`, its time also recorded under `id` for the ratio table.
fn case(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, id: &'static str, mut f: impl FnMut()) {
    g.bench_function(name, |b| b.iter_custom(|n| timed(id, n, &mut f)));
}

fn mean(id: &str) -> Option<Duration> {
    let m = TIMES.lock().unwrap();
    m.get(id).map(|&(d, n)| d / n.max(1) as u32)
}

fn square(x: u64) -> u64 {
    x * x
}

/// Busy work: `n` steps of an LCG (the same loop in every baseline).
fn burn(n: u64) -> u64 {
    let mut x = n;
    for _ in 0..n {
        x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
    }
    x
}

/// Steps of [`burn`] that take about 1 ms here.
fn calibrate() -> u64 {
    let mut n = 100_000;
    loop {
        let t = Instant::now();
        black_box(burn(n));
        let d = t.elapsed();
        if d >= Duration::from_millis(20) {
            return (n as f64 * 1e-3 / d.as_secs_f64()) as u64;
        }
        n *= 2;
    }
}

/// A minimal hand-written pool: N forked children, each reading 16-byte requests
/// `(op, x)` from a pipe and writing 8-byte replies to another.
struct ForkPipePool {
    kids: Vec<(libc::pid_t, i32, i32)>,
}

fn read_full(fd: i32, buf: &mut [u8]) -> bool {
    let mut at = 0;
    while at < buf.len() {
        // SAFETY: writes into the unfilled tail of `buf`.
        let r = unsafe { libc::read(fd, buf[at..].as_mut_ptr().cast(), buf.len() - at) };
        if r <= 0 {
            return false;
        }
        at += r as usize;
    }
    true
}

fn write_full(fd: i32, buf: &[u8]) {
    let mut at = 0;
    while at < buf.len() {
        // SAFETY: reads from the unsent tail of `buf`.
        let r = unsafe { libc::write(fd, buf[at..].as_ptr().cast(), buf.len() - at) };
        assert!(r > 0, "write: {}", std::io::Error::last_os_error());
        at += r as usize;
    }
}

fn pipe() -> (i32, i32) {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    (fds[0], fds[1])
}

impl ForkPipePool {
    fn new(n: usize) -> Self {
        let mut kids = Vec::new();
        for _ in 0..n {
            let (req_r, req_w) = pipe();
            let (rep_r, rep_w) = pipe();
            // SAFETY: the child only reads/writes its pipes, computes and _exits.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0);
            if pid == 0 {
                // Keep only this child's own ends, so that EOF reaches every child.
                for fd in kids
                    .iter()
                    .flat_map(|&(_, w, r)| [w, r])
                    .chain([req_w, rep_r])
                {
                    // SAFETY: closing descriptors this child does not use.
                    unsafe { libc::close(fd) };
                }
                let mut req = [0u8; 16];
                loop {
                    // SAFETY: reads into `req`.
                    let r = unsafe { libc::read(req_r, req.as_mut_ptr().cast(), 16) };
                    if r != 16 {
                        // SAFETY: ends the child.
                        unsafe { libc::_exit(0) };
                    }
                    let op = u64::from_le_bytes(req[..8].try_into().unwrap());
                    let x = u64::from_le_bytes(req[8..16].try_into().unwrap());
                    let y = if op == 0 { square(x) } else { burn(x) };
                    write_full(rep_w, &y.to_le_bytes());
                }
            }
            // SAFETY: closing the child's ends in the parent.
            unsafe {
                libc::close(req_r);
            }
            // SAFETY: as above.
            unsafe {
                libc::close(rep_w);
            }
            kids.push((pid, req_w, rep_r));
        }
        ForkPipePool { kids }
    }

    /// Runs `op` on every item, round-robin, in windows that fit the pipe buffers.
    fn map(&self, op: u64, items: &[u64]) -> Vec<u64> {
        let mut out = vec![0u64; items.len()];
        let n = self.kids.len();
        let window = 1024 * n;
        for (w, chunk) in items.chunks(window).enumerate() {
            let mut bufs = vec![Vec::with_capacity(16 * 1024); n];
            for (i, &x) in chunk.iter().enumerate() {
                bufs[i % n].extend_from_slice(&op.to_le_bytes());
                bufs[i % n].extend_from_slice(&x.to_le_bytes());
            }
            for (k, b) in bufs.iter().enumerate() {
                write_full(self.kids[k].1, b);
            }
            let mut rep = [0u8; 8];
            for i in 0..chunk.len() {
                assert!(read_full(self.kids[i % n].2, &mut rep));
                out[w * window + i] = u64::from_le_bytes(rep);
            }
        }
        out
    }
}

impl Drop for ForkPipePool {
    fn drop(&mut self) {
        for &(pid, w, r) in &self.kids {
            // SAFETY: closing our pipe ends makes the child exit; then reap it.
            unsafe {
                libc::close(w);
            }
            // SAFETY: as above.
            unsafe {
                libc::close(r);
            }
            let mut st = 0;
            // SAFETY: `pid` is our unreaped child.
            unsafe {
                libc::waitpid(pid, &mut st, 0);
            }
        }
    }
}

/// Forks and reaps `n` bare children (the floor of pool start + join).
fn fork_reap(n: usize) {
    let mut pids = Vec::new();
    for _ in 0..n {
        // SAFETY: the child only calls _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(0) };
        }
        pids.push(pid);
    }
    for pid in pids {
        let mut st = 0;
        // SAFETY: `pid` is our unreaped child.
        unsafe { libc::waitpid(pid, &mut st, 0) };
    }
}

const PYTHON: &str = r#"
import multiprocessing as mp, sys, time
def square(x): return x * x
def burn(n):
    x = n
    for _ in range(n):
        x = (x * 6364136223846793005 + 1) & 0xFFFFFFFFFFFFFFFF
    return x
def best(f, reps):
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return sum(ts) / len(ts)
if __name__ == '__main__':
    ctx = mp.get_context('fork')
    # Python's own 1 ms of burn.
    n = 1000
    while True:
        t = time.perf_counter(); burn(n); d = time.perf_counter() - t
        if d > 0.02: break
        n *= 2
    steps = int(n * 1e-3 / d)
    with ctx.Pool(2) as p:
        p.map(square, range(1000))
        print('map100k', best(lambda: p.map(square, range(100000)), 5))
        print('burn1000', best(lambda: p.map(burn, [steps] * 1000), 2))
        def apply_batch():
            rs = [p.apply_async(square, (i,)) for i in range(10000)]
            for r in rs: r.get()
        print('apply10k', best(apply_batch, 3))
    def start_stop():
        p = ctx.Pool(2); p.close(); p.join()
    print('start', best(start_stop, 10))
"#;

/// Python's numbers (seconds per iteration), if python3 runs.
fn python() -> BTreeMap<String, f64> {
    let out = std::process::Command::new("python3")
        .args(["-c", PYTHON])
        .output();
    let mut m = BTreeMap::new();
    match out {
        Ok(o) if o.status.success() => {
            for line in String::from_utf8_lossy(&o.stdout).lines() {
                let mut it = line.split_whitespace();
                if let (Some(k), Some(v)) = (it.next(), it.next().and_then(|v| v.parse().ok())) {
                    m.insert(k.to_owned(), v);
                }
            }
        }
        Ok(o) => eprintln!("python3 failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => eprintln!("python3 not run: {e}"),
    }
    m
}

fn bench(c: &mut Criterion) {
    let steps = calibrate();
    eprintln!("burn: {steps} steps ≈ 1 ms");
    let pool = Pool::new(N).unwrap();
    let fp = ForkPipePool::new(N);
    let rayon = rayon::ThreadPoolBuilder::new()
        .num_threads(N)
        .build()
        .unwrap();
    let items: Vec<u64> = (0..MAP_ITEMS).collect();
    let want: Vec<u64> = items.iter().map(|&x| square(x)).collect();

    let mut g = c.benchmark_group("map 100k x*x");
    case(&mut g, "shmkit Pool(2).map", "map100k shmkit", || {
        assert_eq!(pool.map(square, 0..MAP_ITEMS).unwrap().len(), want.len());
    });
    case(&mut g, "sequential", "map100k sequential", || {
        black_box(items.iter().map(|&x| square(x)).collect::<Vec<_>>());
    });
    case(&mut g, "rayon 2 threads", "map100k rayon", || {
        let v: Vec<u64> = rayon.install(|| items.par_iter().map(|&x| square(x)).collect());
        black_box(v);
    });
    case(&mut g, "fork+pipe pool", "map100k fork+pipe", || {
        assert_eq!(fp.map(0, &items), want);
    });
    g.finish();

    let burns = vec![steps; BURN_TASKS as usize];
    let mut g = c.benchmark_group("map 1000 x 1ms");
    g.sample_size(10);
    case(&mut g, "shmkit Pool(2).map", "burn shmkit", || {
        black_box(pool.map(burn, burns.clone()).unwrap());
    });
    case(&mut g, "sequential", "burn sequential", || {
        black_box(burns.iter().map(|&s| burn(s)).collect::<Vec<_>>());
    });
    case(&mut g, "rayon 2 threads", "burn rayon", || {
        let v: Vec<u64> = rayon.install(|| burns.par_iter().map(|&s| burn(s)).collect());
        black_box(v);
    });
    case(&mut g, "fork+pipe pool", "burn fork+pipe", || {
        black_box(fp.map(1, &burns));
    });
    g.finish();

    let mut g = c.benchmark_group("apply_async 10k x*x");
    case(
        &mut g,
        "shmkit apply_async + get",
        "apply10k shmkit",
        || {
            let rs: Vec<_> = (0..APPLY_TASKS)
                .map(|x| pool.apply_async(square, x).unwrap())
                .collect();
            for (x, r) in (0..).zip(&rs) {
                assert_eq!(r.get().unwrap(), x * x);
            }
        },
    );
    case(&mut g, "rayon spawn per task", "apply10k rayon", || {
        let out = Mutex::new(Vec::with_capacity(APPLY_TASKS as usize));
        rayon.scope(|s| {
            for x in 0..APPLY_TASKS {
                let out = &out;
                s.spawn(move |_| out.lock().unwrap().push(square(x)));
            }
        });
        assert_eq!(out.into_inner().unwrap().len(), APPLY_TASKS as usize);
    });
    let apply_items: Vec<u64> = (0..APPLY_TASKS).collect();
    case(
        &mut g,
        "fork+pipe pool (one message per task)",
        "apply10k fork+pipe",
        || {
            black_box(fp.map(0, &apply_items));
        },
    );
    g.finish();

    let mut g = c.benchmark_group("start + close + join, 2 workers");
    case(&mut g, "shmkit Pool::new(2)", "start shmkit", || {
        let p = Pool::new(N).unwrap();
        p.close();
        p.join().unwrap();
    });
    case(
        &mut g,
        "floor: fork + _exit + waitpid x2",
        "start floor",
        || fork_reap(N),
    );
    case(&mut g, "fork+pipe pool", "start fork+pipe", || {
        drop(ForkPipePool::new(N))
    });
    case(&mut g, "rayon pool build + drop", "start rayon", || {
        drop(
            rayon::ThreadPoolBuilder::new()
                .num_threads(N)
                .build()
                .unwrap(),
        );
    });
    g.finish();
    // The 1 ms tasks again, shmkit and sequential alternating, so that both see the
    // same machine load (a shared VM's load drifts between criterion groups).
    let (mut seq, mut par) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..3 {
        let t = Instant::now();
        black_box(burns.iter().map(|&s| burn(s)).collect::<Vec<_>>());
        seq += t.elapsed();
        let t = Instant::now();
        black_box(pool.map(burn, burns.clone()).unwrap());
        par += t.elapsed();
    }
    record("burn-interleaved sequential", 3, seq);
    record("burn-interleaved shmkit", 3, par);
    drop(fp);
    pool.close();
    pool.join().unwrap();
}

fn report() {
    let py = python();
    let show = |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{d:.2?}"));
    let ratio = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.2}x", b.as_secs_f64() / a.as_secs_f64()),
        _ => "-".to_owned(),
    };
    let pyd = |k: &str| py.get(k).map(|&s| Duration::from_secs_f64(s));
    println!(
        "\n== pool: mean per iteration (ratio = baseline / shmkit; >1 means shmkit is faster) =="
    );
    for (name, key, base) in [
        (
            "map 100k x*x",
            "map100k",
            ["sequential", "rayon", "fork+pipe"],
        ),
        (
            "map 1000 x 1ms",
            "burn",
            ["sequential", "rayon", "fork+pipe"],
        ),
        (
            "map 1000 x 1ms, interleaved",
            "burn-interleaved",
            ["sequential", "-", "-"],
        ),
        ("apply_async 10k", "apply10k", ["-", "rayon", "fork+pipe"]),
        ("start+close+join", "start", ["floor", "rayon", "fork+pipe"]),
    ] {
        let me = mean(&format!("{key} shmkit"));
        println!("{name}: shmkit {}", show(me));
        for b in base {
            if b == "-" {
                continue;
            }
            let d = mean(&format!("{key} {b}"));
            println!("  {b:<11} {:>12}  ratio {}", show(d), ratio(me, d));
        }
        if key == "burn-interleaved" {
            continue;
        }
        let pkey = if key == "burn" { "burn1000" } else { key };
        let p = pyd(pkey);
        println!("  python Pool(2) {:>9}  ratio {}", show(p), ratio(me, p));
    }
}

fn main() {
    shmkit::process::init();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10)
        .configure_from_args();
    bench(&mut c);
    c.final_summary();
    report();
}
