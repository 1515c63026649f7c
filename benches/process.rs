//! Process benchmarks: start + join of a no-op child with the fork and the spawn start
//! methods, beside their baselines measured in the same run — bare
//! `fork` + `_exit` + `waitpid` (the fork floor), `std::process::Command` of
//! `/bin/true`, and `Command` re-executing this very bench binary (the spawn floor:
//! same executable, same size, same dynamic loading).
//!
//! Run: `cargo bench -p shmkit --bench process -- --warm-up-time 1 --measurement-time 3`.
//! At the end it prints each shmkit number as a ratio to its floor (mean time per
//! iteration over every batch criterion ran, warm-up included).
#![allow(clippy::unwrap_used)]

use criterion::Criterion;
use shmkit::process::{Process, StartMethod};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Set in the environment of a re-executed bench binary: exit at once.
const NOOP_ENV: &str = "SHMKIT_BENCH_PROCESS_NOOP";

/// (total time, iterations) per benchmark id, for the ratio table.
static TIMES: Mutex<BTreeMap<&'static str, (Duration, u64)>> = Mutex::new(BTreeMap::new());

fn timed(id: &'static str, iters: u64, mut f: impl FnMut()) -> Duration {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    let d = t.elapsed();
    let mut m = TIMES.lock().unwrap();
    let e = m.entry(id).or_default();
    e.0 += d;
    e.1 += iters;
    d
}

fn bare_fork() {
    // SAFETY: the child calls only _exit, which is async-signal-safe.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        // SAFETY: ends the child at once; nothing else runs in it.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: `status` is a valid int; `pid` is our unreaped child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
}

fn noop(_: ()) {}

fn bench(c: &mut Criterion) {
    let exe = std::env::current_exe().unwrap();
    let mut g = c.benchmark_group("process start+join (no-op child)");
    g.bench_function("floor: fork+_exit+waitpid", |b| {
        b.iter_custom(|n| timed("floor fork", n, bare_fork));
    });
    g.bench_function("shmkit fork method", |b| {
        b.iter_custom(|n| {
            timed("shmkit fork", n, || {
                let mut p = Process::new(|| {});
                p.start().unwrap();
                p.join().unwrap();
                assert_eq!(p.exitcode(), Some(0));
            })
        });
    });
    g.bench_function("Command /bin/true", |b| {
        b.iter_custom(|n| {
            timed("Command /bin/true", n, || {
                let s = Command::new("/bin/true").status().unwrap();
                assert!(s.success());
            })
        });
    });
    g.bench_function("floor: Command re-exec of this binary", |b| {
        b.iter_custom(|n| {
            timed("floor re-exec", n, || {
                let s = Command::new(&exe).env(NOOP_ENV, "1").status().unwrap();
                assert!(s.success());
            })
        });
    });
    g.bench_function("shmkit spawn method", |b| {
        b.iter_custom(|n| {
            timed("shmkit spawn", n, || {
                let mut p = Process::spawn_fn(noop, ()).start_method(StartMethod::Spawn);
                p.start().unwrap();
                p.join().unwrap();
                assert_eq!(p.exitcode(), Some(0));
            })
        });
    });
    g.finish();
}

/// Per-iteration time of each variant, measured interleaved (A B A B …) in rounds so
/// that load from other processes hits every variant alike; returns the medians over
/// rounds of each variant's time and of each ratio.
fn paired(rounds: usize, iters: u32, variants: &[(&str, &dyn Fn())]) -> Vec<f64> {
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for _ in 0..rounds {
        for (i, (_, f)) in variants.iter().enumerate() {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            per[i].push(t.elapsed().as_secs_f64() / f64::from(iters));
        }
    }
    let ratios: Vec<f64> = (0..rounds).map(|r| per[1][r] / per[0][r]).collect();
    let mut out: Vec<f64> = per.into_iter().map(median).collect();
    out.push(median(ratios));
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn report(exe: &std::path::Path) {
    let m = TIMES.lock().unwrap();
    println!("\nprocess start+join, criterion runs, mean per iteration (all batches):");
    for (id, (d, n)) in m.iter() {
        println!(
            "  {id:<22} {:>10.1} µs  ({n} iterations)",
            d.as_secs_f64() * 1e6 / *n as f64
        );
    }
    drop(m);
    println!("paired (interleaved rounds, medians):");
    let fork = || {
        let mut p = Process::new(|| {});
        p.start().unwrap();
        p.join().unwrap();
    };
    let spawn = || {
        let mut p = Process::spawn_fn(noop, ());
        p.start().unwrap();
        p.join().unwrap();
    };
    let reexec = || {
        let s = Command::new(exe).env(NOOP_ENV, "1").status().unwrap();
        assert!(s.success());
    };
    for (name, rounds, iters, floor, ours) in [
        (
            "fork",
            41,
            50,
            ("fork+_exit+waitpid", &bare_fork as &dyn Fn()),
            ("shmkit fork", &fork as &dyn Fn()),
        ),
        (
            "spawn",
            21,
            10,
            ("Command re-exec", &reexec as &dyn Fn()),
            ("shmkit spawn", &spawn as &dyn Fn()),
        ),
    ] {
        let r = paired(rounds, iters, &[floor, ours]);
        let verdict = if r[2] <= 1.3 { "ok" } else { "MISSED" };
        println!(
            "  {name}: {} {:.1} µs, {} {:.1} µs, ratio {:.2}x (target <= 1.3x: {verdict})",
            floor.0,
            r[0] * 1e6,
            ours.0,
            r[1] * 1e6,
            r[2]
        );
    }
}

fn main() {
    if std::env::var_os(NOOP_ENV).is_some() {
        return;
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args();
    bench(&mut c);
    c.final_summary();
    report(&std::env::current_exe().unwrap());
}
