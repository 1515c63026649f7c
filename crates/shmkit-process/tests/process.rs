//! API and multi-process tests of `Process` (fork and spawn start methods).
//!
//! Run one test per process (`cargo nextest run -p shmkit-process`): forking a
//! multi-threaded test harness is hazardous. Under plain `cargo test` they still pass
//! (children only touch what they were given), but use `--test-threads=1` to be safe.
#![allow(clippy::unwrap_used)]

use serde::{Deserialize, Serialize};
use shmkit_process::{
    active_children, cpu_count, current_process, parent_process, Error, Process, StartMethod,
};
use shmkit_segment::shim::atomic::{AtomicU64, Ordering};
use shmkit_segment::shim::pid::ProcessId;
use shmkit_segment::{Kind, Segment, Token};
use std::time::{Duration, Instant};

fn run(mut p: Process) -> Option<i32> {
    p.start().expect("start");
    p.join().expect("join");
    p.exitcode()
}

fn panics() {
    panic!("child panics on purpose")
}

fn exits_7() {
    std::process::exit(7)
}

#[test]
fn exit_code_of_normal_return_is_0() {
    assert_eq!(run(Process::new(|| {})), Some(0));
    assert_eq!(run(Process::new(|| Ok::<(), String>(()))), Some(0));
}

#[test]
fn exit_code_of_error_and_panic_is_1() {
    assert_eq!(run(Process::new(|| Err::<(), _>("boom"))), Some(1));
    assert_eq!(run(Process::new(panics)), Some(1));
}

#[test]
fn exit_code_of_exit_n_is_n() {
    assert_eq!(run(Process::new(exits_7)), Some(7));
    assert_eq!(run(Process::new(|| 3)), Some(3));
}

fn sleeper() -> Process {
    Process::new(|| std::thread::sleep(Duration::from_secs(60)))
}

#[test]
fn exit_code_of_sigkill_is_minus_9() {
    let mut p = sleeper();
    p.start().unwrap();
    p.kill().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(-9));
    p.kill().unwrap(); // no-op once reaped
}

#[test]
fn exit_code_of_sigterm_is_minus_15() {
    let mut p = sleeper();
    p.start().unwrap();
    p.terminate().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(-15));
}

#[test]
fn join_timeout_returns_after_about_the_timeout() {
    let mut p = sleeper();
    p.start().unwrap();
    let t = Instant::now();
    assert!(!p.join_timeout(Duration::from_millis(200)).unwrap());
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(p.exitcode(), None);
    p.kill().unwrap();
    assert!(p.join_timeout(Duration::from_secs(30)).unwrap());
    assert_eq!(p.exitcode(), Some(-9));
}

#[test]
fn sentinel_turns_readable_when_the_child_ends() {
    use std::os::fd::AsRawFd;
    let mut p = Process::new(|| std::thread::sleep(Duration::from_millis(100)));
    assert!(matches!(p.sentinel(), Err(Error::NotStarted { .. })));
    p.start().unwrap();
    let fd = p.sentinel().unwrap().expect("running child has a sentinel");
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; no timeout.
    let r = unsafe { libc::poll(&mut pfd, 1, 10_000) };
    assert_eq!(r, 1);
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(0));
    assert!(p.sentinel().unwrap().is_some()); // stays valid while the handle lives
}

#[test]
fn is_alive_across_the_life_cycle() {
    let mut p = Process::new(|| std::thread::sleep(Duration::from_millis(300)));
    assert!(!p.is_alive());
    assert_eq!(p.pid(), None);
    assert_eq!(p.exitcode(), None);
    p.start().unwrap();
    assert!(p.is_alive());
    assert!(p.pid().is_some());
    p.join().unwrap();
    assert!(!p.is_alive());
    assert_eq!(p.exitcode(), Some(0));
}

/// Which of `pids` are zombie children of ours, from /proc (all of them when `pids`
/// is empty).
fn zombie_children(pids: &[u32]) -> Vec<u32> {
    let me = std::process::id();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if !pids.is_empty() && !pids.contains(&pid) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut f = rest.split_ascii_whitespace();
        let state = f.next().unwrap_or("");
        let ppid: u32 = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == me && state == "Z" {
            found.push(pid);
        }
    }
    found
}

#[test]
fn two_hundred_children_leave_no_zombie() {
    let mut pids = Vec::new();
    for i in 0..200 {
        let mut p = Process::new(move || i % 2);
        p.start().unwrap();
        pids.push(p.pid().unwrap());
        p.join().unwrap();
        assert_eq!(p.exitcode(), Some(i % 2));
    }
    assert!(ours(&pids).is_empty());
    assert_eq!(zombie_children(&pids), Vec::<u32>::new());
    // Under nextest (one test per process) we can also say: no zombie child at all.
    if std::env::var_os("NEXTEST").is_some() {
        assert_eq!(zombie_children(&[]), Vec::<u32>::new());
    }
}

#[test]
fn dropped_handles_are_reaped_without_join() {
    let mut pids = Vec::new();
    for _ in 0..5 {
        let mut p = Process::new(|| std::thread::sleep(Duration::from_millis(100)));
        p.start().unwrap();
        pids.push(p.pid().unwrap());
        drop(p); // still running: handed to the reaper
    }
    // Ended before its drop: reaped right there.
    let mut quick = Process::new(|| {});
    quick.start().unwrap();
    pids.push(quick.pid().unwrap());
    std::thread::sleep(Duration::from_millis(100));
    drop(quick);
    let deadline = Instant::now() + Duration::from_secs(10);
    // Nothing here reaps (no join, no active_children): only the reaper thread can make
    // the pids disappear from /proc.
    let exists = |pid: &u32| std::path::Path::new(&format!("/proc/{pid}")).exists();
    while pids.iter().any(exists) {
        assert!(
            Instant::now() < deadline,
            "not reaped: {:?}",
            zombie_children(&pids)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(zombie_children(&pids), Vec::<u32>::new());
    assert!(ours(&pids).is_empty());
}

/// The active children among `pids` (under plain `cargo test` other tests' children
/// are active too).
fn ours(pids: &[u32]) -> Vec<shmkit_process::Child> {
    active_children()
        .into_iter()
        .filter(|c| pids.contains(&c.pid()))
        .collect()
}

#[test]
fn active_children_lists_running_children() {
    let mut a = sleeper().name("a");
    let mut b = sleeper().name("b");
    a.start().unwrap();
    b.start().unwrap();
    let pids = [a.pid().unwrap(), b.pid().unwrap()];
    let mut names: Vec<String> = ours(&pids).iter().map(|c| c.name().to_owned()).collect();
    names.sort();
    assert_eq!(names, ["a", "b"]);
    if std::env::var_os("NEXTEST").is_some() {
        assert_eq!(active_children().len(), 2); // nothing else runs in this process
    }
    a.kill().unwrap();
    a.join().unwrap();
    let left = ours(&pids);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].pid(), b.pid().unwrap());
    left[0].kill().unwrap();
    b.join().unwrap();
    assert_eq!(b.exitcode(), Some(-9));
}

#[test]
fn names_current_and_parent_process() {
    let me = current_process();
    assert_eq!(me.name, "MainProcess");
    assert_eq!(me.pid, std::process::id());
    assert!(!me.daemon);
    assert!(parent_process().is_none());
    let p = Process::new(|| {});
    assert!(p.get_name().starts_with("Process-"), "{}", p.get_name());
    let mut p = Process::new(move || {
        let me = current_process();
        let parent = parent_process().expect("a parent");
        let ok = me.name == "worker"
            && me.daemon
            && me.pid == std::process::id()
            && parent.name == "MainProcess"
            && parent.pid
                == shmkit_segment::shim::pid::ProcessId::of(parent.pid)
                    .unwrap()
                    .pid;
        i32::from(!ok)
    })
    .name("worker")
    .daemon(true);
    p.start().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(0));
}

#[test]
fn cpu_count_follows_the_affinity_mask() {
    let n = cpu_count();
    assert!(n >= 1);
    assert!(
        n <= std::thread::available_parallelism()
            .map_or(n, usize::from)
            .max(n)
    );
    // In a child pinned to one CPU, cpu_count() says 1.
    let mut p = Process::new(|| {
        // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid cpu_set_t and CPU 0 is within it.
        unsafe { libc::CPU_SET(0, &mut set) };
        // SAFETY: pid 0 is this process; `set` is valid for the size passed.
        let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
        assert_eq!(r, 0);
        i32::try_from(cpu_count()).unwrap_or(-1)
    });
    p.start().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(1));
}

#[test]
fn start_twice_join_unstarted_and_join_self_are_errors() {
    let p = Process::new(|| {});
    assert!(matches!(p.join(), Err(Error::NotStarted { .. })));
    assert!(matches!(p.kill(), Err(Error::NotStarted { .. })));
    let mut p = p;
    p.start().unwrap();
    let e = p.start().unwrap_err();
    assert!(matches!(e, Error::AlreadyStarted { .. }), "{e}");
    assert!(e.to_string().contains("create a new one"));
    p.join().unwrap();
    assert!(matches!(p.start(), Err(Error::AlreadyStarted { .. })));
    assert!(matches!(
        current_process().join(),
        Err(Error::JoinSelf { .. })
    ));
    // A handle inherited by another child names a process that is not its child.
    let mut sleeping = sleeper();
    sleeping.start().unwrap();
    let handle = sleeping.child().unwrap();
    let mut other = Process::new(move || {
        let not_child = matches!(handle.join(), Err(Error::NotChild { .. }));
        let self_join = matches!(current_process().join(), Err(Error::JoinSelf { .. }));
        i32::from(!(not_child && self_join))
    });
    other.start().unwrap();
    other.join().unwrap();
    assert_eq!(other.exitcode(), Some(0));
    sleeping.kill().unwrap();
    sleeping.join().unwrap();
}

#[test]
fn a_daemon_may_not_start_children() {
    let mut p = Process::new(|| {
        let mut grandchild = Process::new(|| {});
        match grandchild.start() {
            Err(Error::DaemonicChildren { .. }) => 0,
            _ => 1,
        }
    })
    .daemon(true);
    p.start().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(0));
}

#[test]
fn a_daemon_child_dies_with_its_sigkilled_parent() {
    let seg = Segment::create_anonymous(Kind::RAW, 16).unwrap();
    let shared = seg.clone();
    let mut middle = Process::new(move || {
        let mut d = Process::new(|| std::thread::sleep(Duration::from_secs(120))).daemon(true);
        d.start().expect("start daemon");
        let pid = d.pid().expect("pid");
        let start = ProcessId::of(pid).expect("daemon alive").start_time;
        shared
            .get::<AtomicU64>(8)
            .unwrap()
            .store(start, Ordering::Relaxed);
        shared
            .get::<AtomicU64>(0)
            .unwrap()
            .store(u64::from(pid), Ordering::Release);
        std::thread::sleep(Duration::from_secs(120));
    });
    middle.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        let pid = seg.get::<AtomicU64>(0).unwrap().load(Ordering::Acquire);
        if pid != 0 {
            break u32::try_from(pid).unwrap();
        }
        assert!(Instant::now() < deadline, "the daemon never started");
        std::thread::sleep(Duration::from_millis(5));
    };
    let daemon = ProcessId {
        pid,
        start_time: seg.get::<AtomicU64>(8).unwrap().load(Ordering::Relaxed),
    };
    assert!(daemon.is_alive());
    middle.kill().unwrap();
    middle.join().unwrap();
    assert_eq!(middle.exitcode(), Some(-9));
    let deadline = Instant::now() + Duration::from_secs(10);
    while daemon.is_alive() {
        assert!(
            Instant::now() < deadline,
            "daemon {pid} outlived its parent"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---- spawn start method ----

#[derive(Serialize, Deserialize)]
struct Job {
    label: String,
    code: i32,
}

fn job_target(job: Job) -> i32 {
    assert_eq!(job.label, "seven");
    assert!(parent_process().is_some());
    job.code
}

#[test]
fn spawn_runs_a_fn_with_a_serde_argument() {
    let mut p = Process::spawn_fn(
        job_target,
        Job {
            label: "seven".into(),
            code: 7,
        },
    );
    assert_eq!(p.get_start_method(), StartMethod::Spawn);
    p.start().unwrap();
    let pid = p.pid().unwrap();
    // A re-executed child: not a fork of us, so its executable was loaded anew.
    assert_ne!(pid, std::process::id());
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(7));
}

#[test]
fn spawn_accepts_non_capturing_closures_and_reports_panics() {
    let ok = Process::spawn_fn(|x: u64| assert_eq!(x, 5), 5);
    assert_eq!(run(ok), Some(0));
    let bad = Process::spawn_fn(
        |x: u64| assert_eq!(x, 6, "spawned child panics on purpose"),
        5,
    );
    assert_eq!(run(bad), Some(1));
    let err = Process::spawn_fn(|_: ()| Err::<(), _>("nope"), ());
    assert_eq!(run(err), Some(1));
}

#[test]
fn the_same_fn_runs_with_the_fork_method() {
    let p = Process::spawn_fn(
        job_target,
        Job {
            label: "seven".into(),
            code: 4,
        },
    )
    .start_method(StartMethod::Fork);
    assert_eq!(run(p), Some(4));
}

#[test]
fn a_closure_cannot_be_spawned() {
    let mut p = Process::new(|| {}).start_method(StartMethod::Spawn);
    assert!(matches!(p.start(), Err(Error::ClosureNotSpawnable { .. })));
    assert!(!p.is_alive());
}

fn write_through_token(token: Token) -> Result<(), String> {
    let seg = token.open().map_err(|e| e.to_string())?;
    let slot = seg.get::<AtomicU64>(0).map_err(|e| e.to_string())?;
    slot.store(0xfeed_f00d, Ordering::Release);
    Ok(())
}

#[test]
fn a_spawned_child_writes_the_parents_segment_through_a_token() {
    let seg = Segment::create_anonymous(Kind::RAW, 64).unwrap();
    let token = seg.token().unwrap();
    let mut p = Process::spawn_fn(write_through_token, token);
    p.start().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(0));
    assert_eq!(
        seg.get::<AtomicU64>(0).unwrap().load(Ordering::Acquire),
        0xfeed_f00d
    );
}

#[test]
fn spawned_daemon_and_kill() {
    let mut p = Process::spawn_fn(|_: ()| std::thread::sleep(Duration::from_secs(60)), ())
        .daemon(true)
        .name("spawned-daemon");
    p.start().unwrap();
    assert!(p.is_alive());
    assert!(!p.join_timeout(Duration::from_millis(50)).unwrap());
    p.kill().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(-9));
}

fn grandchild(code: i32) -> i32 {
    code + 1
}

fn spawn_a_grandchild(code: i32) -> Result<i32, Error> {
    let mut g = Process::spawn_fn(grandchild, code);
    g.start()?;
    g.join()?;
    Ok(g.exitcode().unwrap_or(-100))
}

#[test]
fn spawned_children_can_spawn_again() {
    let p = Process::spawn_fn(spawn_a_grandchild, 20);
    assert_eq!(run(p), Some(21));
}

#[test]
fn nested_fork_children_get_nested_names() {
    let mut p = Process::new(|| {
        let inner = Process::new(|| {});
        let ok = current_process().name.starts_with("Process-")
            && inner
                .get_name()
                .starts_with(&format!("{}:", current_process().name));
        let mut inner = inner;
        inner.start().expect("start grandchild");
        inner.join().expect("join grandchild");
        i32::from(!(ok && inner.exitcode() == Some(0)))
    });
    p.start().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(0));
}

#[test]
fn handles_are_send_and_children_are_shareable() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<Process>();
    send_sync::<shmkit_process::Child>();
    send_sync::<Error>();
}

/// An argument whose serialisation fails.
struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refuses to be encoded"))
    }
}

impl<'de> Deserialize<'de> for Unencodable {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Ok(Unencodable)
    }
}

#[test]
fn an_argument_that_does_not_encode_is_an_error_at_start() {
    let mut p = Process::spawn_fn(|_: Unencodable| {}, Unencodable);
    let e = p.start().unwrap_err();
    assert!(matches!(e, Error::Encode { .. }), "{e}");
    assert!(!p.is_alive());
    assert_eq!(p.pid(), None);
    // Not started, so the same process can still run with the fork method.
    let mut p = p.start_method(StartMethod::Fork);
    p.start().unwrap();
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(0));
}
