//! Pool API tests with real worker processes (run one test per process: nextest).
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use shmkit_pool::{Callbacks, Error, Pool, StartMethod};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(30);

fn square(x: u64) -> u64 {
    x * x
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn pid(_: u64) -> u32 {
    std::process::id()
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

fn boom(x: u64) -> u64 {
    if x == 3 {
        panic!("boom at {x}");
    }
    x
}

fn die_by(sig: i32) -> u32 {
    // Rust's runtime catches SIGSEGV (stack overflow detection) and returns from a
    // raised one: restore the default action so the signal kills, as a real fault does.
    // SAFETY: setting the default action of a signal in this (worker) process.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
    // SAFETY: raising a signal in this (worker) process; that is the test.
    unsafe { libc::raise(sig) };
    0
}

fn exit_with(code: i32) -> u32 {
    std::process::exit(code)
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + LONG;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn pid_exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn apply_blocks_and_returns_values() {
    let pool = Pool::new(2).unwrap();
    for x in 0..20u64 {
        assert_eq!(pool.apply(square, x).unwrap(), x * x);
    }
    assert_eq!(pool.processes(), 2);
    assert_eq!(pool.worker_pids().len(), 2);
}

#[test]
fn apply_async_results_and_repeatable_get() {
    let pool = Pool::new(3).unwrap();
    let rs: Vec<_> = (0..100u64)
        .map(|x| pool.apply_async(square, x).unwrap())
        .collect();
    for (x, r) in rs.iter().enumerate() {
        assert_eq!(r.get().unwrap(), (x * x) as u64);
        assert!(r.ready());
        assert!(r.successful().unwrap());
        assert_eq!(r.get().unwrap(), (x * x) as u64, "get is repeatable");
    }
    pool.close();
    pool.join().unwrap();
}

#[test]
fn map_equals_sequential_for_0_1_and_100k_items() {
    let pool = Pool::new(2).unwrap();
    assert_eq!(
        pool.map(square, Vec::<u64>::new()).unwrap(),
        Vec::<u64>::new()
    );
    assert_eq!(pool.map(square, [7u64]).unwrap(), vec![49]);
    let input: Vec<u64> = (0..100_000).collect();
    let want: Vec<u64> = input.iter().map(|&x| square(x)).collect();
    assert_eq!(pool.map(square, input.clone()).unwrap(), want);
    for cs in [1, 7, 100_000, 1_000_000] {
        let got = pool
            .map_async(square, input[..1000].to_vec(), Some(cs))
            .unwrap();
        assert_eq!(got.get().unwrap(), want[..1000]);
    }
    let pairs: Vec<(u64, u64)> = (0..500).map(|i| (i, 2 * i)).collect();
    let sums: Vec<u64> = pairs.iter().map(|&(a, b)| add(a, b)).collect();
    assert_eq!(pool.starmap(add, pairs).unwrap(), sums);
}

/// An iterator that reports an exact length it does not have.
struct Lying {
    next: u64,
    end: u64,
    claims: usize,
}

impl Iterator for Lying {
    type Item = u64;
    fn next(&mut self) -> Option<u64> {
        (self.next < self.end).then(|| {
            self.next += 1;
            self.next - 1
        })
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.claims, Some(self.claims))
    }
}

/// `map` streams inputs of known length chunk by chunk and collects the others
/// first; either way (and whatever length an iterator claims) it equals the
/// sequential map.
#[test]
fn map_equals_sequential_whatever_the_input_claims_its_length_is() {
    let pool = Pool::new(2).unwrap();
    let seq = |v: Vec<u64>| v.into_iter().map(square).collect::<Vec<_>>();
    let odd = (0..5000u64).filter(|x| x % 2 == 1);
    assert_eq!(
        pool.map(square, odd.clone()).unwrap(),
        seq(odd.clone().collect())
    );
    let got = pool.map_async(square, odd.clone(), None).unwrap();
    assert_eq!(got.get().unwrap(), seq(odd.collect()));
    for (end, claims) in [(1000, 10), (10, 1000), (0, 5), (3000, 0)] {
        let it = || Lying {
            next: 0,
            end,
            claims,
        };
        let want = seq((0..end).collect());
        assert_eq!(
            pool.map(square, it()).unwrap(),
            want,
            "{end} items claiming {claims}"
        );
        let got = pool.map_async(square, it(), None).unwrap();
        assert_eq!(got.get().unwrap(), want, "{end} items claiming {claims}");
    }
    assert_eq!(
        pool.starmap(add, (0..100u64).map(|i| (i, i))).unwrap(),
        (0..100).map(|i| 2 * i).collect::<Vec<_>>()
    );
}

fn slow_first_then_boom(x: u64) -> u64 {
    if x == 0 {
        std::thread::sleep(Duration::from_secs(20));
    } else {
        panic!("boom at {x}");
    }
    x
}

/// Like Python's, a map fails as soon as any chunk fails, without waiting for the
/// chunks before it.
#[test]
fn a_map_fails_with_the_first_failure_without_waiting_for_earlier_chunks() {
    let pool = Pool::new(2).unwrap();
    let t = Instant::now();
    match pool.map(slow_first_then_boom, [0u64, 1]) {
        Err(Error::Panicked(m)) => assert!(m.contains("boom at 1"), "{m}"),
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "waited {:?}",
        t.elapsed()
    );
    pool.terminate();
}

/// An element that fails to encode.
struct Unencodable(u64);

impl serde::Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 7 {
            return Err(serde::ser::Error::custom("seven does not encode"));
        }
        s.serialize_u64(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Unencodable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <u64 as serde::Deserialize>::deserialize(d).map(Unencodable)
    }
}

fn unwrap_it(x: Unencodable) -> u64 {
    x.0
}

/// A chunk that does not encode fails the map (chunks submitted before it still
/// run, as in Python); its callbacks never run and the pool stays usable.
#[test]
fn a_map_whose_input_does_not_encode_fails_and_never_calls_back() {
    let pool = Pool::new(2).unwrap();
    let called = Arc::new(Mutex::new(0));
    let (c1, c2) = (called.clone(), called.clone());
    let cb = Callbacks::new()
        .callback(move |_: Vec<u64>| *c1.lock().unwrap() += 1)
        .error_callback(move |_| *c2.lock().unwrap() += 1);
    let items = || (0..20u64).map(Unencodable);
    assert!(matches!(
        pool.map_async_with(unwrap_it, items(), Some(1), cb),
        Err(Error::Codec { .. })
    ));
    assert!(matches!(
        pool.map(unwrap_it, items()),
        Err(Error::Codec { .. })
    ));
    assert_eq!(pool.map(square, 0..10u64).unwrap().len(), 10);
    pool.close();
    pool.join().unwrap();
    assert_eq!(
        *called.lock().unwrap(),
        0,
        "no callback for a map that was not submitted"
    );
}

#[test]
fn default_chunksize_is_pythons() {
    assert_eq!(shmkit_pool::default_chunksize(0, 2), 1);
    assert_eq!(shmkit_pool::default_chunksize(1, 2), 1);
    assert_eq!(shmkit_pool::default_chunksize(100_000, 2), 12_500);
    assert_eq!(shmkit_pool::default_chunksize(9, 2), 2);
}

#[test]
fn a_panicking_task_fails_only_its_own_result() {
    let pool = Pool::new(2).unwrap();
    let rs: Vec<_> = (0..8u64)
        .map(|x| pool.apply_async(boom, x).unwrap())
        .collect();
    for (x, r) in rs.iter().enumerate() {
        let got = r.get();
        if x == 3 {
            match got {
                Err(Error::Panicked(m)) => assert!(m.contains("boom at 3"), "{m}"),
                other => panic!("expected Panicked, got {other:?}"),
            }
            assert!(!r.successful().unwrap());
        } else {
            assert_eq!(got.unwrap(), x as u64);
        }
    }
    // A map with the panicking item fails as a whole, with the message.
    match pool.map(boom, 0..8u64) {
        Err(Error::Panicked(m)) => assert!(m.contains("boom at 3")),
        other => panic!("expected Panicked, got {other:?}"),
    }
    // The pool is still fine.
    assert_eq!(pool.apply(square, 5).unwrap(), 25);
}

#[test]
fn callbacks_run_in_the_parent_serially_in_completion_order() {
    let pool = Pool::builder().processes(2).prefetch(1).build().unwrap();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let busy = Arc::new(Mutex::new(()));
    let me = std::process::id();
    let mut rs = Vec::new();
    for x in 0..30u64 {
        let (l1, l2, b1, b2) = (log.clone(), log.clone(), busy.clone(), busy.clone());
        let cb = Callbacks::new()
            .callback(move |v: u64| {
                let _g = b1.try_lock().expect("callbacks never run concurrently");
                assert_eq!(std::process::id(), me);
                l1.lock().unwrap().push(format!("ok {v}"));
            })
            .error_callback(move |e| {
                let _g = b2.try_lock().expect("callbacks never run concurrently");
                l2.lock().unwrap().push(format!("err {e}"));
            });
        rs.push(pool.apply_async_with(boom, x, cb).unwrap());
    }
    for r in &rs {
        r.wait();
    }
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), 30);
    assert!(
        log.iter()
            .any(|l| l.starts_with("err") && l.contains("boom at 3")),
        "{log:?}"
    );
    assert_eq!(log.iter().filter(|l| l.starts_with("ok")).count(), 29);
}

#[test]
fn a_result_is_ready_only_after_its_callback_ran() {
    let pool = Pool::new(2).unwrap();
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    let r = pool
        .apply_async_with(
            square,
            9,
            Callbacks::new().callback(move |v| *s.lock().unwrap() = Some(v)),
        )
        .unwrap();
    assert_eq!(r.get().unwrap(), 81);
    assert_eq!(*seen.lock().unwrap(), Some(81));
    // map_async callbacks get the whole list.
    let all = Arc::new(Mutex::new(Vec::new()));
    let a = all.clone();
    let m = pool
        .map_async_with(
            square,
            0..10u64,
            Some(3),
            Callbacks::new().callback(move |v| *a.lock().unwrap() = v),
        )
        .unwrap();
    m.wait();
    assert_eq!(
        *all.lock().unwrap(),
        (0..10u64).map(square).collect::<Vec<_>>()
    );
}

#[test]
fn get_timeout_times_out_then_the_result_still_arrives() {
    let pool = Pool::new(1).unwrap();
    let r = pool.apply_async(sleep_ms, 300).unwrap();
    assert!(matches!(
        r.get_timeout(Duration::from_millis(10)),
        Err(Error::Timeout)
    ));
    assert!(matches!(r.successful(), Err(Error::NotReady)));
    assert!(!r.wait_timeout(Duration::from_millis(1)));
    assert_eq!(r.get_timeout(LONG).unwrap(), 300);
    assert!(r.wait_timeout(Duration::ZERO));
}

fn worker_died(r: &shmkit_pool::Result<u32>) -> (u32, Option<i32>, Option<i32>) {
    match r {
        Err(Error::WorkerDied {
            pid,
            signal,
            exit_code,
        }) => (*pid, *signal, *exit_code),
        other => panic!("expected WorkerDied, got {other:?}"),
    }
}

fn death_fails_only_its_task(sig: i32) {
    let pool = Pool::new(2).unwrap();
    let before = pool.worker_pids();
    let others: Vec<_> = (0..50u64)
        .map(|x| pool.apply_async(square, x).unwrap())
        .collect();
    let r = pool.apply_async(die_by, sig).unwrap();
    let more: Vec<_> = (50..100u64)
        .map(|x| pool.apply_async(square, x).unwrap())
        .collect();
    let (dead, signal, code) = worker_died(&r.get());
    assert_eq!((signal, code), (Some(sig), None));
    assert!(before.contains(&dead));
    for (x, r) in (0u64..).zip(others.iter().chain(&more)) {
        assert_eq!(r.get().unwrap(), x * x);
    }
    let now = wait_for("a replacement worker", || {
        let p = pool.worker_pids();
        (p.len() == 2 && !p.contains(&dead)).then_some(p)
    });
    assert_eq!(now.len(), 2);
    assert_eq!(pool.apply(square, 12).unwrap(), 144);
    pool.close();
    pool.join().unwrap();
}

#[test]
fn sigkill_of_a_worker_fails_only_its_task() {
    death_fails_only_its_task(libc::SIGKILL);
}

#[test]
fn abort_in_a_task_fails_only_its_task() {
    death_fails_only_its_task(libc::SIGABRT);
}

#[test]
fn segfault_in_a_task_fails_only_its_task() {
    death_fails_only_its_task(libc::SIGSEGV);
}

#[test]
fn exit_in_a_task_fails_only_its_task() {
    let pool = Pool::new(2).unwrap();
    let r = pool.apply_async(exit_with, 3).unwrap();
    let (_, signal, code) = worker_died(&r.get());
    assert_eq!((signal, code), (None, Some(3)));
    assert_eq!(pool.map(square, 0..100u64).unwrap().len(), 100);
}

fn publish_pid_and_hang(path: String) -> u32 {
    std::fs::write(&path, std::process::id().to_string()).unwrap();
    std::thread::sleep(Duration::from_secs(600));
    0
}

#[test]
fn worker_killed_from_outside_mid_task() {
    let pool = Pool::builder().processes(2).prefetch(1).build().unwrap();
    let path = std::env::temp_dir().join(format!("shmkit-pool-kill-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let p = path.to_string_lossy().into_owned();
    let hung = pool.apply_async(publish_pid_and_hang, p).unwrap();
    let victim: u32 = wait_for("the task to publish its pid", || {
        std::fs::read_to_string(&path).ok()?.parse().ok()
    });
    // Other tasks keep flowing through the other worker meanwhile.
    assert_eq!(pool.map(square, 0..1000u64).unwrap().len(), 1000);
    // SAFETY: sending SIGKILL to our own worker process.
    assert_eq!(unsafe { libc::kill(victim as i32, libc::SIGKILL) }, 0);
    let (dead, signal, _) = worker_died(&hung.get_timeout(LONG));
    assert_eq!((dead, signal), (victim, Some(libc::SIGKILL)));
    let _ = std::fs::remove_file(&path);
    wait_for("the pool to be back to 2 workers", || {
        let p = pool.worker_pids();
        (p.len() == 2 && !p.contains(&victim)).then_some(())
    });
    assert_eq!(pool.apply(square, 3).unwrap(), 9);
}

#[test]
fn a_dying_worker_fails_only_its_chunk_of_a_map() {
    fn die_on_13(x: u64) -> u64 {
        if x == 13 {
            // SAFETY: raising SIGKILL in the worker; that is the test.
            unsafe { libc::raise(libc::SIGKILL) };
        }
        x
    }
    let pool = Pool::new(2).unwrap();
    let items: Vec<Result<u64, Error>> = pool
        .imap_chunksize(die_on_13, 0..40u64, 5)
        .unwrap()
        .collect();
    for (x, r) in (0u64..).zip(&items) {
        if (10..15).contains(&x) {
            assert!(matches!(r, Err(Error::WorkerDied { .. })), "{x}: {r:?}");
        } else {
            assert_eq!(*r.as_ref().unwrap(), x);
        }
    }
}

/// Runs 12 single-item tasks on 2 workers with `maxtasksperchild(max)`: the pool,
/// the pid each task ran in, and those pids sorted without repeats.
fn pids_with_maxtasks(max: u64) -> (Pool, Vec<u32>, Vec<u32>) {
    let pool = Pool::builder()
        .processes(2)
        .maxtasksperchild(max)
        .build()
        .unwrap();
    let pids = pool
        .map_async(pid, 0..12u64, Some(1))
        .unwrap()
        .get()
        .unwrap();
    let mut uniq = pids.clone();
    uniq.sort_unstable();
    uniq.dedup();
    (pool, pids, uniq)
}

#[test]
fn maxtasksperchild_one_gives_every_task_a_fresh_worker() {
    let (pool, pids, uniq) = pids_with_maxtasks(1);
    assert_eq!(uniq.len(), 12, "{pids:?}");
    assert!(!pids.contains(&std::process::id()));
    pool.close();
    pool.join().unwrap();
}

#[test]
fn maxtasksperchild_three_reuses_each_worker_three_times() {
    let (_pool, pids, uniq) = pids_with_maxtasks(3);
    assert!(uniq.len() >= 4, "{pids:?}");
    for p in &uniq {
        assert!(pids.iter().filter(|q| *q == p).count() <= 3);
    }
}

static INIT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

fn set_init(v: u64) {
    assert!(INIT.set(v).is_ok(), "the initializer runs once per worker");
}

fn read_init(_: u64) -> u64 {
    *INIT
        .get()
        .expect("the initializer ran before the first task")
}

fn failing_init(_: u64) {
    panic!("no database");
}

#[test]
fn initializer_runs_in_each_worker_before_its_tasks() {
    let pool = Pool::builder()
        .processes(2)
        .initializer(set_init, 42)
        .maxtasksperchild(2)
        .build()
        .unwrap();
    assert!(INIT.get().is_none(), "not in the parent");
    assert_eq!(
        pool.map_async(read_init, 0..10u64, Some(1))
            .unwrap()
            .get()
            .unwrap(),
        vec![42; 10]
    );
}

#[test]
fn a_failing_initializer_fails_tasks_instead_of_looping() {
    let pool = Pool::builder()
        .processes(2)
        .initializer(failing_init, 0)
        .build()
        .unwrap();
    let r = pool.apply_async(square, 2).and_then(|r| r.get());
    match r {
        Err(Error::InitializerFailed(m)) => assert!(m.contains("no database"), "{m}"),
        other => panic!("expected InitializerFailed, got {other:?}"),
    }
    assert!(matches!(
        pool.apply(square, 2),
        Err(Error::InitializerFailed(_))
    ));
    pool.close();
    pool.join().unwrap();
}

#[test]
fn imap_yields_in_order_although_tasks_finish_out_of_order() {
    let pool = Pool::builder().processes(2).prefetch(1).build().unwrap();
    let delays = [200u64, 0, 150, 0, 100, 0, 50, 0];
    let start = Instant::now();
    let got: Vec<u64> = pool
        .imap(sleep_ms, delays)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, delays);
    assert!(start.elapsed() < LONG);
    // Unordered: the quick task overtakes the slow one.
    let mut un = pool.imap_unordered(sleep_ms, [400u64, 0]).unwrap();
    assert_eq!(un.next().unwrap().unwrap(), 0);
    assert_eq!(un.next().unwrap().unwrap(), 400);
    assert!(un.next().is_none());
}

#[test]
fn imap_unordered_yields_everything() {
    let pool = Pool::new(2).unwrap();
    let mut got: Vec<u64> = pool
        .imap_unordered(square, 0..1000u64)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..1000u64).map(square).collect::<Vec<_>>());
    let mut got: Vec<u64> = pool
        .imap_unordered_chunksize(square, 0..1000u64, 64)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    got.sort_unstable();
    assert_eq!(got.len(), 1000);
    let empty: Vec<_> = pool.imap(square, Vec::<u64>::new()).unwrap().collect();
    assert!(empty.is_empty());
}

#[test]
fn imap_is_lazy_and_takes_endless_input() {
    let pool = Pool::builder().processes(2).prefetch(2).build().unwrap();
    let pulled = Arc::new(Mutex::new(0u64));
    let p = pulled.clone();
    let input = (0u64..).inspect(move |_| *p.lock().unwrap() += 1);
    let mut it = pool.imap(square, input).unwrap();
    assert_eq!(it.next().unwrap().unwrap(), 0);
    // The window is processes * (prefetch + 1) = 6 chunks of 1.
    assert!(
        *pulled.lock().unwrap() <= 7,
        "pulled {}",
        pulled.lock().unwrap()
    );
    let first: Vec<u64> = it.by_ref().take(99).map(Result::unwrap).collect();
    assert_eq!(first, (1..100u64).map(square).collect::<Vec<_>>());
    assert!(*pulled.lock().unwrap() <= 107);
}

#[test]
fn close_join_and_their_errors() {
    let pool = Pool::new(2).unwrap();
    let r = pool.apply_async(sleep_ms, 50).unwrap();
    assert!(matches!(pool.join(), Err(Error::PoolRunning)));
    pool.close();
    assert!(matches!(
        pool.apply_async(square, 1),
        Err(Error::PoolClosed)
    ));
    assert!(matches!(pool.map(square, 0..3u64), Err(Error::PoolClosed)));
    assert!(matches!(pool.imap(square, 0..3u64), Err(Error::PoolClosed)));
    let pids = pool.worker_pids();
    pool.join().unwrap();
    assert_eq!(
        r.get().unwrap(),
        50,
        "queued tasks finish before join returns"
    );
    assert!(r.ready());
    for p in pids {
        assert!(!pid_exists(p), "worker {p} was reaped");
    }
    pool.join().unwrap();
    pool.terminate();
}

/// A pool that never got a task has no result-handler thread: `join` stops and
/// reaps the workers itself; `terminate` and drop kill and reap them.
#[test]
fn idle_pools_close_join_terminate_and_drop_reap_every_worker() {
    let pool = Pool::new(2).unwrap();
    // An empty map completes without any worker (and runs its callback).
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    let cb = Callbacks::new().callback(move |v: Vec<u64>| *s.lock().unwrap() = Some(v.len()));
    let empty = pool
        .map_async_with(square, Vec::<u64>::new(), None, cb)
        .unwrap();
    assert_eq!(empty.get().unwrap(), Vec::<u64>::new());
    let pids = pool.worker_pids();
    assert_eq!(pids.len(), 2);
    assert!(matches!(pool.join(), Err(Error::PoolRunning)));
    pool.close();
    assert!(matches!(pool.apply(square, 1), Err(Error::PoolClosed)));
    pool.join().unwrap();
    assert_eq!(*seen.lock().unwrap(), Some(0));
    for p in pids {
        assert!(!pid_exists(p), "worker {p} was reaped");
    }
    pool.join().unwrap();

    let pool = Pool::new(2).unwrap();
    let pids = pool.worker_pids();
    pool.terminate();
    for p in &pids {
        assert!(!pid_exists(*p), "worker {p} was killed and reaped");
    }
    assert!(matches!(pool.apply(square, 1), Err(Error::PoolClosed)));
    pool.join().unwrap();

    let pool = Pool::new(2).unwrap();
    let pids = pool.worker_pids();
    drop(pool);
    for p in pids {
        assert!(!pid_exists(p), "worker {p} was killed and reaped on drop");
    }
}

/// A worker killed while its pool has never had a task is replaced once work
/// arrives, and the work completes.
#[test]
fn a_worker_killed_in_an_idle_pool_is_replaced_when_work_arrives() {
    let pool = Pool::new(2).unwrap();
    let pids = pool.worker_pids();
    // SAFETY: SIGKILL to our own worker process; that is the test.
    assert_eq!(unsafe { libc::kill(pids[0] as i32, libc::SIGKILL) }, 0);
    let rs: Vec<_> = (0..50u64)
        .map(|x| pool.apply_async(square, x).unwrap())
        .collect();
    for (x, r) in (0..).zip(&rs) {
        assert_eq!(r.get_timeout(LONG).unwrap(), x * x);
    }
    wait_for("the dead worker's replacement", || {
        let now = pool.worker_pids();
        (now.len() == 2 && !now.contains(&pids[0])).then_some(())
    });
    pool.close();
    pool.join().unwrap();
    assert!(!pid_exists(pids[0]), "the killed worker was reaped");
}

#[test]
fn terminate_while_tasks_run_is_prompt_and_leaves_no_child() {
    let pool = Pool::new(2).unwrap();
    let rs: Vec<_> = (0..10)
        .map(|_| pool.apply_async(sleep_ms, 60_000).unwrap())
        .collect();
    let pids = pool.worker_pids();
    let t = Instant::now();
    pool.terminate();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "terminate took {:?}",
        t.elapsed()
    );
    for r in &rs {
        assert!(matches!(r.get_timeout(LONG), Err(Error::Terminated)));
    }
    for p in pids {
        assert!(!pid_exists(p), "worker {p} is gone");
    }
    assert!(matches!(
        pool.apply_async(square, 1),
        Err(Error::PoolClosed)
    ));
    pool.join().unwrap();
}

#[test]
fn terminate_runs_error_callbacks() {
    let pool = Pool::new(1).unwrap();
    let errs = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..3 {
        let e = errs.clone();
        pool.apply_async_with(
            sleep_ms,
            60_000,
            Callbacks::new().error_callback(move |err| e.lock().unwrap().push(err.to_string())),
        )
        .unwrap();
    }
    pool.terminate();
    assert_eq!(errs.lock().unwrap().len(), 3);
}

#[test]
fn drop_does_not_hang_and_leaves_no_worker() {
    let pool = Pool::new(2).unwrap();
    let r = pool.apply_async(sleep_ms, 60_000).unwrap();
    let pids = pool.worker_pids();
    let t = Instant::now();
    drop(pool);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(matches!(r.get_timeout(LONG), Err(Error::Terminated)));
    for p in pids {
        assert!(!pid_exists(p));
    }
}

#[test]
fn unread_results_and_big_backlogs() {
    let pool = Pool::new(2).unwrap();
    for x in 0..200_000u64 {
        let _ = pool.apply_async(square, x).unwrap(); // dropped at once
    }
    let last = pool.apply_async(square, 3).unwrap();
    assert_eq!(last.get().unwrap(), 9);
    pool.close();
    pool.join().unwrap();
}

fn echo_len(v: Vec<u8>) -> (usize, Vec<u8>) {
    (v.len(), v)
}

#[test]
fn large_arguments_and_results_travel_in_fragments() {
    let pool = Pool::builder()
        .processes(2)
        .ring_bytes(4096)
        .build()
        .unwrap();
    for n in [0usize, 1, 2040, 2041, 5000, 100_000, 3_000_000] {
        let v: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        let (len, back) = pool.apply(echo_len, v.clone()).unwrap();
        assert_eq!(len, n);
        assert_eq!(back, v);
    }
}

#[test]
fn builder_rejects_bad_settings() {
    assert!(matches!(Pool::new(0), Err(Error::InvalidArgument(_))));
    assert!(matches!(
        Pool::builder().maxtasksperchild(0).build(),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Pool::builder().prefetch(0).build(),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        Pool::builder().ring_bytes(1000).build(),
        Err(Error::InvalidArgument(_))
    ));
    let p = Pool::builder().build().unwrap();
    assert_eq!(p.processes(), shmkit_process::cpu_count().max(1));
}

#[test]
fn spawn_start_method_runs_tasks() {
    let pool = Pool::builder()
        .processes(2)
        .start_method(StartMethod::Spawn)
        .initializer(set_init, 7)
        .build()
        .unwrap();
    assert_eq!(pool.apply(read_init, 0).unwrap(), 7);
    assert_eq!(
        pool.map(square, 0..1000u64).unwrap(),
        (0..1000u64).map(square).collect::<Vec<_>>()
    );
    assert_eq!(pool.apply(add_pair, (2, 3)).unwrap(), 5);
    let r = pool.apply_async(die_by, libc::SIGKILL).unwrap();
    worker_died(&r.get());
    assert_eq!(pool.apply(square, 4).unwrap(), 16);
    pool.close();
    pool.join().unwrap();
}

fn add_pair((a, b): (u64, u64)) -> u64 {
    a + b
}

fn sleep_then_pid(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

#[test]
fn long_tasks_do_not_queue_up_behind_a_long_task() {
    let pool = Pool::new(2).unwrap();
    let long = pool.apply_async(sleep_then_pid, 1500).unwrap();
    let short: Vec<_> = (0..10)
        .map(|_| pool.apply_async(sleep_then_pid, 30).unwrap())
        .collect();
    let short: Vec<u32> = short.iter().map(|r| r.get().unwrap()).collect();
    let long = long.get().unwrap();
    // At most one short task was queued behind the long one (the other worker does
    // the rest in ~300 ms, well before the long task ends).
    let behind = short.iter().filter(|&&p| p == long).count();
    assert!(
        behind <= 1,
        "{behind} short tasks waited behind the long one"
    );
}

fn crashing_init(_: u64) {
    std::process::abort();
}

#[test]
fn an_initializer_that_crashes_breaks_the_pool_instead_of_respawning_forever() {
    let pool = Pool::builder()
        .processes(2)
        .initializer(crashing_init, 0)
        .build()
        .unwrap();
    match pool
        .apply_async(square, 2)
        .and_then(|r| r.get_timeout(LONG))
    {
        Err(Error::InitializerFailed(m)) => assert!(m.contains("before their first task"), "{m}"),
        other => panic!("expected InitializerFailed, got {other:?}"),
    }
    pool.close();
    pool.join().unwrap();
}

#[test]
fn a_pool_inherited_over_fork_refuses_tasks() {
    let pool = Arc::new(Pool::new(1).unwrap());
    let p = Arc::clone(&pool);
    let mut child = shmkit_process::Process::new(move || {
        if !matches!(p.apply_async(square, 2), Err(Error::PoolClosed)) {
            return 1;
        }
        // Closing and joining the copy leaves the parent's workers alone.
        p.close();
        if p.join().is_err() {
            return 2;
        }
        0
    });
    child.start().unwrap();
    child.join().unwrap();
    assert_eq!(child.exitcode(), Some(0));
    assert_eq!(
        pool.apply(square, 3).unwrap(),
        9,
        "the parent's pool still works"
    );
}

#[test]
fn terminate_from_a_callback_does_not_deadlock() {
    let pool = Arc::new(Pool::new(2).unwrap());
    let p = Arc::clone(&pool);
    let r = pool
        .apply_async_with(square, 5, Callbacks::new().callback(move |_| p.terminate()))
        .unwrap();
    assert_eq!(r.get_timeout(LONG).unwrap(), 25);
    assert!(matches!(
        pool.apply_async(square, 1),
        Err(Error::PoolClosed)
    ));
    pool.join().unwrap();
}

fn checked_sqrt(x: i64) -> Result<u64, String> {
    if x < 0 {
        Err(format!("negative input {x}"))
    } else {
        Ok((x as f64).sqrt() as u64)
    }
}

#[test]
fn a_task_returning_an_error_fails_only_its_own_result() {
    let pool = Pool::new(2).unwrap();
    assert_eq!(pool.try_apply(checked_sqrt, 49).unwrap(), 7);
    match pool.try_apply(checked_sqrt, -4) {
        Err(Error::TaskFailed(m)) => assert_eq!(m, "negative input -4"),
        other => panic!("expected TaskFailed, got {other:?}"),
    }
    let rs: Vec<_> = (-2..5i64)
        .map(|x| pool.try_apply_async(checked_sqrt, x).unwrap())
        .collect();
    let failed = rs
        .iter()
        .filter(|r| matches!(r.get(), Err(Error::TaskFailed(_))))
        .count();
    assert_eq!(failed, 2);
    assert_eq!(
        pool.try_map(checked_sqrt, [0i64, 1, 4, 9]).unwrap(),
        vec![0, 1, 2, 3]
    );
    assert!(
        matches!(pool.try_map(checked_sqrt, [0i64, -1, 4]), Err(Error::TaskFailed(m)) if m.contains("-1"))
    );
    let errs = Arc::new(Mutex::new(Vec::new()));
    let e = errs.clone();
    pool.try_apply_async_with(
        checked_sqrt,
        -9,
        Callbacks::new().error_callback(move |err| e.lock().unwrap().push(err.to_string())),
    )
    .unwrap()
    .wait();
    assert_eq!(
        *errs.lock().unwrap(),
        vec!["the task failed: negative input -9".to_owned()]
    );
}

fn big_or_die(v: Vec<u8>) -> usize {
    if v.first() == Some(&0xff) {
        // SAFETY: killing this (worker) process; that is the test.
        unsafe { libc::raise(libc::SIGKILL) };
    }
    v.len()
}

#[test]
fn a_worker_dying_amid_fragmented_messages_fails_only_its_task() {
    let pool = Pool::builder()
        .processes(2)
        .ring_bytes(4096)
        .prefetch(4)
        .build()
        .unwrap();
    let mut rs = Vec::new();
    for i in 0..12u8 {
        let mut v = vec![i; 50_000 + usize::from(i)];
        if i == 5 {
            v[0] = 0xff;
        }
        rs.push(pool.apply_async(big_or_die, v).unwrap());
    }
    for (i, r) in rs.iter().enumerate() {
        if i == 5 {
            worker_died(&r.get().map(|n| n as u32));
        } else {
            assert_eq!(r.get().unwrap(), 50_000 + i);
        }
    }
}

fn die_on_13(x: u64) -> u64 {
    if x == 13 {
        // SAFETY: raising SIGKILL in the worker; that is the test.
        unsafe { libc::raise(libc::SIGKILL) };
    }
    x
}

/// A blocking map drains the result rings in its own thread; a worker dying under it
/// is seen by the result handler, whose failure must still reach that thread.
#[test]
fn a_worker_dying_under_a_blocking_map_fails_the_map_and_the_pool_recovers() {
    let pool = Pool::new(2).unwrap();
    let t = Instant::now();
    match pool.map(die_on_13, 0..40u64) {
        Err(Error::WorkerDied { signal, .. }) => assert_eq!(signal, Some(libc::SIGKILL)),
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(pool.map(square, 0..1000u64).unwrap()[999], 999 * 999);
    pool.close();
    pool.join().unwrap();
}

/// Several threads in blocking maps at once (each drains results that may belong to
/// the others), beside async results, all correct.
#[test]
fn concurrent_blocking_maps_and_async_results() {
    let pool = Pool::new(2).unwrap();
    let asyncs: Vec<_> = (0..50u64)
        .map(|x| pool.apply_async(square, x).unwrap())
        .collect();
    std::thread::scope(|s| {
        let maps: Vec<_> = (0..3u64)
            .map(|k| {
                let pool = &pool;
                s.spawn(move || {
                    for round in 0..20u64 {
                        let base = k * 1_000_000 + round * 1000;
                        let got = pool.map(square, base..base + 1000).unwrap();
                        let want: Vec<u64> = (base..base + 1000).map(square).collect();
                        assert_eq!(got, want);
                    }
                })
            })
            .collect();
        for m in maps {
            m.join().unwrap();
        }
    });
    for (x, r) in (0u64..).zip(&asyncs) {
        assert_eq!(r.get_timeout(LONG).unwrap(), x * x);
    }
    pool.close();
    pool.join().unwrap();
}

/// After a blocking map the result handler stays parked until the next submission,
/// which must wake it: an async result right after a map is not delayed to the
/// handler's idle timer (50 ms; the pause lets it reach that timer).
#[test]
fn async_results_right_after_blocking_maps_are_prompt() {
    let pool = Pool::new(2).unwrap();
    let mut applies = Duration::ZERO;
    for x in 0..10u64 {
        assert_eq!(pool.map(square, 0..100u64).unwrap().len(), 100);
        std::thread::sleep(Duration::from_millis(15));
        let t = Instant::now();
        assert_eq!(pool.apply_async(square, x).unwrap().get().unwrap(), x * x);
        applies += t.elapsed();
    }
    assert!(
        applies < Duration::from_millis(150),
        "10 applies took {applies:?}"
    );
    pool.close();
    pool.join().unwrap();
}

/// Blocking maps with `maxtasksperchild(1)`: every chunk needs a fresh worker, which
/// the result handler starts while the map's thread drains.
#[test]
fn blocking_maps_with_maxtasksperchild_one() {
    let pool = Pool::builder()
        .processes(2)
        .maxtasksperchild(1)
        .build()
        .unwrap();
    for _ in 0..3 {
        let got = pool.map(square, 0..1000u64).unwrap();
        assert_eq!(got, (0..1000u64).map(square).collect::<Vec<_>>());
    }
    pool.close();
    pool.join().unwrap();
}

/// `terminate` from another thread ends a blocking map that waits on a long task.
#[test]
fn terminate_ends_a_blocking_map_in_another_thread() {
    let pool = Pool::new(2).unwrap();
    let path = std::env::temp_dir().join(format!("shmkit-pool-term-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let p = path.to_string_lossy().into_owned();
    std::thread::scope(|s| {
        let m = s.spawn(|| pool.map(publish_pid_and_hang, [p]));
        wait_for("the map's task to start", || {
            std::fs::read_to_string(&path).ok()?.parse::<u32>().ok()
        });
        let _ = std::fs::remove_file(&path);
        let t = Instant::now();
        pool.terminate();
        let r = m.join().unwrap();
        assert!(matches!(r, Err(Error::Terminated)), "{r:?}");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "took {:?}",
            t.elapsed()
        );
    });
    pool.join().unwrap();
}

/// `close` while another thread is in blocking maps: a map either completes (in
/// full) or is refused, and `join` then returns.
#[test]
fn close_during_blocking_maps_in_another_thread() {
    let pool = Pool::new(2).unwrap();
    std::thread::scope(|s| {
        let m = s.spawn(|| {
            let mut done = 0;
            loop {
                match pool.map(square, 0..20_000u64) {
                    Ok(v) => {
                        assert_eq!(v, (0..20_000u64).map(square).collect::<Vec<_>>());
                        done += 1;
                    }
                    Err(Error::PoolClosed) => return done,
                    Err(e) => panic!("unexpected {e:?}"),
                }
            }
        });
        assert_eq!(pool.map(square, 0..10u64).unwrap()[3], 9);
        pool.close();
        m.join().unwrap();
    });
    pool.join().unwrap();
}

/// A blocking map counts as draining the result rings from its start, but while its
/// thread is still consuming the input (here an iterator that itself calls `apply`)
/// it drains nothing: results that other waiters need (these applies) must not wait
/// for the result handler's timer (5 ms a tick) meanwhile.
#[test]
fn applies_made_while_a_blocking_map_is_submitted_are_prompt() {
    let pool = Pool::new(2).unwrap();
    const N: u64 = 100;
    // The same applies outside of any map, in the same run, as the baseline.
    let t = Instant::now();
    for x in 0..N {
        assert_eq!(pool.apply(square, x).unwrap(), x * x);
    }
    let plain = t.elapsed();
    let t = Instant::now();
    let got = pool
        .map(square, (0..N).map(|x| pool.apply(square, x).unwrap()))
        .unwrap();
    let nested = t.elapsed();
    assert_eq!(got, (0..N).map(|x| square(x * x)).collect::<Vec<_>>());
    assert!(
        nested < plain * 3 + Duration::from_millis(150),
        "{N} applies in a map's input took {nested:?} (alone: {plain:?})"
    );
    pool.close();
    pool.join().unwrap();
}

/// With `maxtasksperchild`, a blocking map needs the result handler to replace the
/// workers that retire under it, although the map's thread drains the results: it
/// must not wait for the handler's idle timer (50 ms) each time (the pause after
/// each map lets the handler reach that timer).
#[test]
fn retired_workers_are_replaced_promptly_under_blocking_maps() {
    let pool = Pool::builder()
        .processes(2)
        .maxtasksperchild(1)
        .build()
        .unwrap();
    let mut maps = Duration::ZERO;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(60));
        let t = Instant::now();
        let got = pool.map(square, 0..4u64).unwrap(); // chunks of 1
        maps += t.elapsed();
        assert_eq!(got, vec![0, 1, 4, 9]);
    }
    assert!(
        maps < Duration::from_millis(300),
        "10 maps of 4 one-task workers took {maps:?}"
    );
    pool.close();
    pool.join().unwrap();
}

/// A worker dying under a blocking map is found by the result handler's liveness
/// check: the map's failure must not wait for the handler's idle timer (50 ms), on
/// which it parked after the previous map (the pause lets it reach that timer).
#[test]
fn a_worker_dying_under_a_blocking_map_is_found_promptly() {
    let pool = Pool::new(2).unwrap();
    let mut fails = Duration::ZERO;
    for _ in 0..10 {
        assert_eq!(pool.map(square, 0..10u64).unwrap()[3], 9);
        std::thread::sleep(Duration::from_millis(60));
        let t = Instant::now();
        match pool.map(die_on_13, 0..40u64) {
            Err(Error::WorkerDied { signal, .. }) => assert_eq!(signal, Some(libc::SIGKILL)),
            other => panic!("expected WorkerDied, got {other:?}"),
        }
        fails += t.elapsed();
    }
    assert!(
        fails < Duration::from_millis(350),
        "10 maps failing with a dead worker took {fails:?}"
    );
    pool.close();
    pool.join().unwrap();
}
