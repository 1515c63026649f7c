//! Segment benchmarks: create + map + unlink latency (named and memfd; 4 KiB, 1 MiB,
//! 64 MiB; prefault off and on) and open-by-name latency, each beside the floor — the
//! bare system calls — and the `shared_memory` crate, measured in the same run.
//!
//! Run: `cargo bench -p shmkit --bench segment -- --warm-up-time 1 --measurement-time 3`.
//! At the end it prints each shmkit number as a ratio to the bare system calls
//! (mean time per iteration over every batch criterion ran, warm-up included).
#![allow(clippy::unwrap_used)]

use criterion::{BenchmarkId, Criterion};
use shmkit::segment::header::HEADER_SIZE;
use shmkit::segment::{Kind, SegmentOptions};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SIZES: [(usize, &str); 3] = [(4 << 10, "4KiB"), (1 << 20, "1MiB"), (64 << 20, "64MiB")];

/// (total time, iterations) per benchmark id, for the ratio table.
static TIMES: Mutex<BTreeMap<String, (Duration, u64)>> = Mutex::new(BTreeMap::new());

/// Times `iters` runs of `f`, records them under `id`, returns the elapsed time.
fn timed(id: &str, iters: u64, mut f: impl FnMut()) -> Duration {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    let d = t.elapsed();
    let mut m = TIMES.lock().unwrap();
    let e = m.entry(id.to_owned()).or_default();
    e.0 += d;
    e.1 += iters;
    d
}

fn check(r: libc::c_int, what: &str) -> libc::c_int {
    assert!(r >= 0, "{what}: {}", std::io::Error::last_os_error());
    r
}

fn map(fd: libc::c_int, len: usize, populate: bool) -> *mut libc::c_void {
    let flags = libc::MAP_SHARED | if populate { libc::MAP_POPULATE } else { 0 };
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    // SAFETY: a fresh shared mapping of an fd we own; nothing else is mapped there.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, 0) };
    assert_ne!(p, libc::MAP_FAILED, "mmap");
    p
}

fn unmap(p: *mut libc::c_void, len: usize, fd: libc::c_int) {
    // SAFETY: `p`/`len` is a mapping made by `map` and not used afterwards.
    check(unsafe { libc::munmap(p, len) }, "munmap");
    // SAFETY: closes an fd we own exactly once.
    check(unsafe { libc::close(fd) }, "close");
}

/// Writes one byte into the first page: what any segment with an in-band header pays.
fn touch(p: *mut libc::c_void) {
    // SAFETY: `p` is a live, writable mapping of at least one page.
    unsafe { std::ptr::write_volatile(p.cast::<u8>(), 1) };
}

/// The floor: `shm_open` + `ftruncate` + `mmap` + `munmap` + `shm_unlink` (+ `close`).
fn bare_named(name: &CString, len: usize, touch_first: bool, prefault: bool) {
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC;
    // SAFETY: `name` is NUL-terminated.
    let fd = check(
        unsafe { libc::shm_open(name.as_ptr(), flags, 0o600) },
        "shm_open",
    );
    // SAFETY: ftruncate takes an fd and a length by value.
    check(
        unsafe { libc::ftruncate(fd, len as libc::off_t) },
        "ftruncate",
    );
    if prefault {
        // SAFETY: fallocate takes an fd and a range by value.
        check(
            unsafe { libc::fallocate(fd, 0, 0, len as libc::off_t) },
            "fallocate",
        );
    }
    let p = map(fd, len, prefault);
    if touch_first {
        touch(p);
    }
    black_box(p);
    unmap(p, len, fd);
    // SAFETY: `name` is NUL-terminated.
    check(unsafe { libc::shm_unlink(name.as_ptr()) }, "shm_unlink");
}

/// The memfd floor: `memfd_create` + `ftruncate` + `mmap` + `munmap` + `close`.
fn bare_memfd(len: usize, touch_first: bool, prefault: bool) {
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: the name is a NUL-terminated literal.
    let fd = check(
        unsafe { libc::memfd_create(c"bare".as_ptr(), flags) },
        "memfd",
    );
    // SAFETY: ftruncate takes an fd and a length by value.
    check(
        unsafe { libc::ftruncate(fd, len as libc::off_t) },
        "ftruncate",
    );
    if prefault {
        // SAFETY: fallocate takes an fd and a range by value.
        check(
            unsafe { libc::fallocate(fd, 0, 0, len as libc::off_t) },
            "fallocate",
        );
    }
    let p = map(fd, len, prefault);
    if touch_first {
        touch(p);
    }
    black_box(p);
    unmap(p, len, fd);
}

fn create_named(c: &mut Criterion) {
    let pid = std::process::id();
    let shm_name = format!("bench-{pid}");
    let bare = CString::new(format!("/shmkit-bare-{pid}")).unwrap();
    let mut g = c.benchmark_group("create_named");
    for (len, label) in SIZES {
        if len >= 64 << 20 {
            g.sample_size(10);
        }
        for prefault in [false, true] {
            let (tag, btag, ttag) = if prefault {
                ("shmkit+prefault", "bare+prefault", "bare+touch+prefault")
            } else {
                ("shmkit", "bare", "bare+touch")
            };
            let id = |t: &str| format!("create_named/{t}/{label}");
            g.bench_function(BenchmarkId::new(btag, label), |b| {
                b.iter_custom(|n| timed(&id(btag), n, || bare_named(&bare, len, false, prefault)))
            });
            g.bench_function(BenchmarkId::new(ttag, label), |b| {
                b.iter_custom(|n| timed(&id(ttag), n, || bare_named(&bare, len, true, prefault)))
            });
            let opts = SegmentOptions::new(Kind::RAW, len - HEADER_SIZE).prefault(prefault);
            g.bench_function(BenchmarkId::new(tag, label), |b| {
                b.iter_custom(|n| {
                    timed(&id(tag), n, || {
                        black_box(opts.create(&shm_name, |_| {}).unwrap());
                    })
                })
            });
        }
        let os_id = format!("/shmkit-sm-{pid}");
        g.bench_function(BenchmarkId::new("shared_memory", label), |b| {
            b.iter_custom(|n| {
                timed(&format!("create_named/shared_memory/{label}"), n, || {
                    let m = shared_memory::ShmemConf::new()
                        .size(len)
                        .os_id(&os_id)
                        .create()
                        .unwrap();
                    black_box(m.as_ptr());
                })
            })
        });
    }
    g.finish();
}

fn create_memfd(c: &mut Criterion) {
    let mut g = c.benchmark_group("create_memfd");
    for (len, label) in SIZES {
        if len >= 64 << 20 {
            g.sample_size(10);
        }
        for prefault in [false, true] {
            let (tag, btag, ttag) = if prefault {
                ("shmkit+prefault", "bare+prefault", "bare+touch+prefault")
            } else {
                ("shmkit", "bare", "bare+touch")
            };
            let id = |t: &str| format!("create_memfd/{t}/{label}");
            g.bench_function(BenchmarkId::new(btag, label), |b| {
                b.iter_custom(|n| timed(&id(btag), n, || bare_memfd(len, false, prefault)))
            });
            g.bench_function(BenchmarkId::new(ttag, label), |b| {
                b.iter_custom(|n| timed(&id(ttag), n, || bare_memfd(len, true, prefault)))
            });
            let opts = SegmentOptions::new(Kind::RAW, len - HEADER_SIZE).prefault(prefault);
            g.bench_function(BenchmarkId::new(tag, label), |b| {
                b.iter_custom(|n| {
                    timed(&id(tag), n, || {
                        black_box(opts.create_anonymous(|_| {}).unwrap());
                    })
                })
            });
        }
    }
    g.finish();
}

fn open_named(c: &mut Criterion) {
    let pid = std::process::id();
    let mut g = c.benchmark_group("open_named");
    for (len, label) in &SIZES[..2] {
        let len = *len;
        let name = format!("bench-open-{pid}-{label}");
        let opts = SegmentOptions::new(Kind::RAW, len - HEADER_SIZE).prefault(false);
        let _keep = opts.create(&name, |_| {}).unwrap();
        let os = CString::new(format!("/shmkit.{name}")).unwrap();
        let id = |t: &str| format!("open_named/{t}/{label}");
        g.bench_function(BenchmarkId::new("bare", label), |b| {
            b.iter_custom(|n| {
                timed(&id("bare"), n, || {
                    // SAFETY: `os` is NUL-terminated.
                    let fd =
                        unsafe { libc::shm_open(os.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC, 0) };
                    check(fd, "shm_open");
                    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
                    // SAFETY: `st` is a writable stat buffer.
                    check(unsafe { libc::fstat(fd, st.as_mut_ptr()) }, "fstat");
                    let p = map(fd, len, false);
                    // SAFETY: `p` is a live mapping of at least one page; read only
                    // (the header lives there), as an opener reads the header.
                    black_box(unsafe { std::ptr::read_volatile(p.cast::<u64>()) });
                    unmap(p, len, fd);
                })
            })
        });
        for prefault in [false, true] {
            let tag = if prefault {
                "shmkit+prefault"
            } else {
                "shmkit"
            };
            let o = SegmentOptions::new(Kind::RAW, 0).prefault(prefault);
            g.bench_function(BenchmarkId::new(tag, label), |b| {
                b.iter_custom(|n| {
                    timed(&id(tag), n, || {
                        black_box(o.open(&name).unwrap());
                    })
                })
            });
        }
        let sm_id = format!("/shmkit-smo-{pid}-{label}");
        let _sm = shared_memory::ShmemConf::new()
            .size(len)
            .os_id(&sm_id)
            .create()
            .unwrap();
        g.bench_function(BenchmarkId::new("shared_memory", label), |b| {
            b.iter_custom(|n| {
                timed(&id("shared_memory"), n, || {
                    let m = shared_memory::ShmemConf::new()
                        .os_id(&sm_id)
                        .open()
                        .unwrap();
                    black_box(m.as_ptr());
                })
            })
        });
    }
    g.finish();
}

/// Prints every shmkit / shared_memory number as a ratio to its same-run baseline.
fn print_ratios() {
    let m = TIMES.lock().unwrap();
    let mean = |k: &str| {
        m.get(k)
            .map(|(d, n)| d.as_secs_f64() * 1e9 / (*n).max(1) as f64)
    };
    println!("\n== ratios to the bare system calls (same run; mean ns per iteration)");
    println!(
        "{:<44} {:>12} {:>12} {:>7}",
        "benchmark", "ns", "baseline ns", "ratio"
    );
    for (k, _) in m.iter() {
        let mut parts = k.splitn(3, '/');
        let (Some(group), Some(tag), Some(size)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if tag.starts_with("bare") {
            continue;
        }
        let base = if tag.ends_with("+prefault") {
            "bare+prefault"
        } else {
            "bare"
        };
        let base_key = format!("{group}/{base}/{size}");
        if let (Some(x), Some(b)) = (mean(k), mean(&base_key)) {
            println!("{k:<44} {x:>12.0} {b:>12.0} {:>6.2}x", x / b);
        }
        let touch_key = format!("{group}/{base}/{size}").replace("bare", "bare+touch");
        if let (Some(x), Some(b)) = (mean(k), mean(&touch_key)) {
            println!(
                "{:<44} {:>12} {b:>12.0} {:>6.2}x  (vs {})",
                "",
                "",
                x / b,
                touch_key
            );
        }
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    create_named(&mut c);
    create_memfd(&mut c);
    open_named(&mut c);
    c.final_summary();
    print_ratios();
}
