//! `shmkit demo`: a short tour of every capability, each with its timing.
//!
//! Every section runs real processes and prints what it measured; the whole tour
//! takes a few seconds. The numbers are single runs, for orientation only — the
//! criterion benchmarks in `benches/` are the measurements (see docs/benchmarks.md).

use shmkit::prelude::*;
use shmkit::process::{current_process, Process};
use shmkit::segment::shim::atomic::{AtomicU64, AtomicU8, Ordering};
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
