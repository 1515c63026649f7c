//! `shmkit demo`: a short tour of every capability, each with its timing.
//!
//! Every section runs real processes and prints what it measured; the whole tour
//! takes a few seconds. The numbers are single runs, for orientation only — the
//! criterion benchmarks in `benches/` are the measurements (see docs/benchmarks.md).

use shmkit::pipe::Pipe;
use shmkit::pool::Pool;
use shmkit::prelude::*;
use shmkit::process::{current_process, Process};
use shmkit::queue::Queue;
use shmkit::segment::shim::atomic::{AtomicU64, AtomicU8, Ordering};
use shmkit::sync::{Event, Lock, LockError, Mutex};
use std::time::{Duration, Instant};

/// The error type of the demo: anything, with its message.
pub(crate) type DemoResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Runs the whole tour.
pub(crate) fn run() -> DemoResult {
    println!(
        "shmkit demo — Python's multiprocessing on shared memory (pid {}, {} CPUs)",
        std::process::id(),
        shmkit::process::cpu_count()
    );
    segments()?;
    processes()?;
    sync()?;
    queues()?;
    pipes()?;
    pool()?;
    println!("\nDone. `shmkit ls` lists segments; docs/ has the design and benchmarks.");
    Ok(())
}

fn section(title: &str) {
    println!("\n== {title}");
}

fn show(what: &str, d: Duration) {
    println!("  {what:<58} {:>10}", fmt(d));
}

fn fmt(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 10_000 {
        format!("{ns} ns")
    } else if ns < 10_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{:.1} ms", ns as f64 / 1e6)
    }
}

/// Writes `msg` into `seg`: the bytes from offset 8, then its length at offset 0
/// with Release (pairs with the reader's Acquire load in `read_message`).
fn write_message(seg: &Segment, msg: &str) -> DemoResult {
    let bytes = seg.get_slice::<AtomicU8>(8, msg.len())?;
    for (cell, b) in bytes.iter().zip(msg.bytes()) {
        cell.store(b, Ordering::Relaxed);
    }
    seg.get::<AtomicU64>(0)?
        .store(msg.len() as u64, Ordering::Release);
    Ok(())
}

/// Reads what `write_message` wrote (bounds-checked: the length is untrusted).
fn read_message(seg: &Segment) -> DemoResult<String> {
    let len = seg.get::<AtomicU64>(0)?.load(Ordering::Acquire);
    let len = usize::try_from(len)?;
    let bytes = seg.get_slice::<AtomicU8>(8, len)?;
    Ok(bytes
        .iter()
        .map(|b| b.load(Ordering::Relaxed) as char)
        .collect())
}

fn segments() -> DemoResult {
    section("Segments: named (POSIX shm) and anonymous (memfd), header-checked");
    let name = format!("demo-{}", std::process::id());
    let t = Instant::now();
    let seg = SegmentOptions::new(Kind::RAW, 1 << 20).create(&name, |_| {})?;
    show(
        "create + map a named 1 MiB segment (prefaulted)",
        t.elapsed(),
    );

    // A forked child opens it *by name*, as an unrelated process would.
    let child_name = name.clone();
    let t = Instant::now();
    let mut child = Process::new(move || -> DemoResult {
        let s = Segment::open(&child_name, Kind::RAW)?;
        write_message(&s, &format!("hello from child pid {}", std::process::id()))
    })
    .name("writer");
    child.start()?;
    child.join()?;
    let rt = t.elapsed();
    println!("  parent read back: {:?}", read_message(&seg)?);
    show("fork child, child opens by name + writes, join", rt);

    let anon = Segment::create_anonymous(Kind::RAW, 4096)?;
    let counter_owner = anon.clone();
    let t = Instant::now();
    let mut child = Process::new(move || -> DemoResult {
        let c = counter_owner.get::<AtomicU64>(0)?;
        for _ in 0..1000 {
            c.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    });
    child.start()?;
    child.join()?;
    let rt = t.elapsed();
    println!(
        "  memfd segment inherited over fork: child counted to {}",
        anon.get::<AtomicU64>(0)?.load(Ordering::Relaxed)
    );
    show(
        "fork child that counts to 1000 in a memfd segment, join",
        rt,
    );
    drop(seg);
    let gone = matches!(
        Segment::open(&name, Kind::RAW),
        Err(shmkit::segment::Error::NotFound { .. })
    );
    println!("  creator dropped its handle -> name unlinked: {gone}");
    Ok(())
}

/// The spawn-method target: runs in a re-executed copy of this program.
fn spawned_square(x: i32) -> i32 {
    x * x
}

fn processes() -> DemoResult {
    section("Processes: fork and spawn start methods, exit codes");
    const N: u32 = 20;
    let t = Instant::now();
    for _ in 0..N {
        let mut p = Process::new(|| ());
        p.start()?;
        p.join()?;
    }
    show(
        "fork start + join of a no-op child (mean of 20)",
        t.elapsed() / N,
    );

    let t = Instant::now();
    let mut p = Process::spawn_fn(spawned_square, 7);
    p.start()?;
    p.join()?;
    let rt = t.elapsed();
    println!("  spawned child computed 7*7, exit code {:?}", p.exitcode());
    show("spawn (re-exec) start + join", rt);

    let mut panicking = Process::new(|| -> Result<(), String> { Err("failing on purpose".into()) })
        .name("demo-failure");
    panicking.start()?;
    panicking.join()?;
    let mut sleeper = Process::new(|| std::thread::sleep(Duration::from_secs(30)));
    sleeper.start()?;
    sleeper.kill()?;
    sleeper.join()?;
    println!(
        "  exit codes: error -> {:?}, SIGKILLed -> {:?}; this process is {:?}",
        panicking.exitcode(),
        sleeper.exitcode(),
        current_process().name
    );
    Ok(())
}

/// Starts `target` in a forked child.
fn fork(target: impl FnOnce() -> DemoResult + Send + 'static) -> DemoResult<Process> {
    let mut p = Process::new(target);
    p.start()?;
    Ok(p)
}

/// Joins `p` and fails unless it exited with 0.
fn join_ok(p: &Process) -> DemoResult {
    p.join()?;
    match p.exitcode() {
        Some(0) => Ok(()),
        code => Err(format!("child {:?} ended with {code:?}", p.pid()).into()),
    }
}

fn sync() -> DemoResult {
    section("Synchronisation: robust locks and events on shared futexes");
    let lock = Lock::new()?;
    const N: u32 = 1_000_000;
    let t = Instant::now();
    for _ in 0..N {
        drop(lock.acquire());
    }
    show(
        "uncontended Lock acquire + release (mean of 1M)",
        t.elapsed() / N,
    );

    let counter = Mutex::new(0u64)?;
    let t = Instant::now();
    let kids = (0..4)
        .map(|_| {
            let c = counter.clone();
            fork(move || {
                for _ in 0..10_000 {
                    let mut g = c.lock().map_err(|e| e.to_string())?;
                    *g += 1;
                }
                Ok(())
            })
        })
        .collect::<DemoResult<Vec<_>>>()?;
    kids.iter().try_for_each(join_ok)?;
    let rt = t.elapsed();
    let total = *counter.lock().map_err(|e| e.to_string())?;
    println!("  4 processes x 10 000 increments under one Mutex: total {total}");
    show(
        "... fork 4, 40 000 contended lock/increment/unlock, join",
        rt,
    );

    // Robustness: the holder is SIGKILLed inside its critical section.
    let holding = Event::new()?;
    let (c, h) = (counter.clone(), holding.clone());
    let holder = fork(move || {
        let _guard = c.lock().map_err(|e| e.to_string())?;
        h.set();
        std::thread::sleep(Duration::from_secs(60));
        Ok(())
    })?;
    if !holding.wait_timeout(Duration::from_secs(10)) {
        return Err("the holder never took the lock".into());
    }
    holder.kill()?;
    holder.join()?;
    match counter.lock() {
        Err(LockError::OwnerDied(g)) => println!(
            "  holder SIGKILLed inside the lock -> next lock() says OwnerDied, value {} kept",
            *g
        ),
        Ok(_) => println!("  holder SIGKILLed, but the lock did not report it (unexpected)"),
        Err(e) => return Err(e.to_string().into()),
    }
    let relock_ok = counter.lock().is_ok();
    println!("  ... and the lock works normally afterwards: {relock_ok}");

    let (ping, pong) = (Event::new()?, Event::new()?);
    const R: u32 = 1000;
    let (pi, po) = (ping.clone(), pong.clone());
    let echo = fork(move || {
        for _ in 0..R {
            pi.wait();
            pi.clear();
            po.set();
        }
        Ok(())
    })?;
    let t = Instant::now();
    for _ in 0..R {
        ping.set();
        pong.wait();
        pong.clear();
    }
    let rt = t.elapsed();
    join_ok(&echo)?;
    show(
        "Event ping-pong between two processes (round trip, mean)",
        rt / R,
    );
    Ok(())
}

fn queues() -> DemoResult {
    section("Queues: multiprocessing.Queue on a lock-free ring");
    let q: Queue<String> = Queue::new(16)?;
    let kids = (0..2)
        .map(|i| {
            let q = q.clone();
            fork(move || {
                for j in 0..3 {
                    q.put(format!("child {i} item {j}"))
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            })
        })
        .collect::<DemoResult<Vec<_>>>()?;
    let mut got = (0..6).map(|_| q.get()).collect::<Result<Vec<_>, _>>()?;
    kids.iter().try_for_each(join_ok)?;
    got.sort();
    println!("  parent got from 2 children: {got:?}");

    const ITEMS: u64 = 1_000_000;
    let nums: Queue<u64> = Queue::new(4096)?;
    let producer_q = nums.clone();
    let t = Instant::now();
    let producer = fork(move || {
        for i in 0..ITEMS {
            producer_q.put(i).map_err(|e| e.to_string())?;
        }
        Ok(())
    })?;
    let mut sum = 0u64;
    for _ in 0..ITEMS {
        sum += nums.get()?;
    }
    let rt = t.elapsed();
    join_ok(&producer)?;
    if sum != ITEMS * (ITEMS - 1) / 2 {
        return Err(format!("lost or duplicated items: sum {sum}").into());
    }
    println!(
        "  1M u64 items child -> parent, all present: {:.1} M items/s",
        ITEMS as f64 / rt.as_secs_f64() / 1e6
    );
    show("... total, including fork", rt);
    Ok(())
}

fn pipes() -> DemoResult {
    section("Pipes: duplex Connections, any message size, EOF on peer death");
    let (parent_end, child_end) = Pipe::duplex()?;
    let child = fork(move || {
        let greeting: String = child_end.recv()?;
        child_end.send(&format!(
            "{greeting} -> hello back from pid {}",
            std::process::id()
        ))?;
        let big = vec![0xA5u8; 64 << 20];
        child_end.send_bytes(&big)?;
        Ok(())
    })?;
    parent_end.send("hello child")?;
    println!("  {}", parent_end.recv::<String>()?);
    let t = Instant::now();
    let big = parent_end.recv_bytes()?;
    let rt = t.elapsed();
    join_ok(&child)?;
    if big.len() != 64 << 20 || big.iter().any(|b| *b != 0xA5) {
        return Err("the 64 MiB message arrived damaged".into());
    }
    println!(
        "  64 MiB message streamed through a 1 MiB ring, intact: {:.2} GB/s",
        big.len() as f64 / rt.as_secs_f64() / 1e9
    );

    println!(
        "  zero-copy sends and receives (send_bytes_with / recv_bytes_with, unsafe: kept out of \
         this binary): cargo run --release --example pipe_zero_copy"
    );

    let (reader, writer) = Pipe::one_way()?;
    let w = writer.clone();
    let victim = fork(move || {
        w.send("last words")?;
        std::thread::sleep(Duration::from_secs(60));
        Ok(())
    })?;
    drop(writer); // the parent's copy: only the child holds the sending end now
    let last: String = reader.recv()?;
    victim.kill()?;
    victim.join()?;
    let t = Instant::now();
    let eof = matches!(reader.recv::<String>(), Err(shmkit::pipe::Error::Eof));
    show(
        &format!("child said {last:?}, was SIGKILLed; recv -> Eof: {eof}, after"),
        t.elapsed(),
    );
    Ok(())
}

fn square(x: u64) -> u64 {
    x * x
}

fn square_or_abort(x: u64) -> u64 {
    if x == 3 {
        std::process::abort(); // the worker dies mid-task
    }
    x * x
}

fn pool() -> DemoResult {
    section("Pool: map/apply_async over worker processes that may die");
    let t = Instant::now();
    let pool = Pool::new(2)?;
    show("start a Pool of 2 workers", t.elapsed());
    let t = Instant::now();
    let squares = pool.map(square, 0..100_000u64)?;
    let rt = t.elapsed();
    let ok = squares
        .iter()
        .enumerate()
        .all(|(i, s)| *s == (i as u64) * (i as u64));
    println!("  map(square, 0..100000) correct: {ok}");
    show("... map of 100 000 trivial tasks", rt);

    let results = (0..6u64)
        .map(|x| pool.apply_async(square_or_abort, x))
        .collect::<Result<Vec<_>, _>>()?;
    let outcomes: Vec<String> = results
        .iter()
        .map(|r| match r.get() {
            Ok(v) => v.to_string(),
            Err(shmkit::pool::Error::WorkerDied { signal, .. }) => {
                format!("WorkerDied(signal {signal:?})")
            }
            Err(e) => format!("error: {e}"),
        })
        .collect();
    println!("  task 3 aborts its worker: {outcomes:?}");
    println!(
        "  the pool replaced it: apply(square, 9) = {}",
        pool.apply(square, 9)?
    );
    pool.close();
    pool.join()?;
    Ok(())
}
