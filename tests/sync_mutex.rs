//! Multi-process tests of the robust locks: exact totals under contention, and a
//! holder SIGKILLed inside its critical section.
//!
//! Children are forked with `shmkit::process::Process`; run one test per process
//! (`cargo nextest`), as DESIGN.md asks for forking tests.
#![allow(clippy::unwrap_used)]

use shmkit::process::Process;
use shmkit::sync::{Event, LockError, Mutex, RLock, RawMutex};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(30);

/// Sleeps until killed.
fn hang() {
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn start(p: &mut Process) {
    p.start().expect("fork a child");
}

#[test]
fn n_children_times_m_increments_give_the_exact_total() {
    const N: u64 = 4;
    const M: u64 = 5_000;
    let counter = Mutex::new(0u64).expect("mutex");
    let mut kids: Vec<Process> = (0..N)
        .map(|_| {
            let c = counter.clone();
            Process::new(move || {
                for _ in 0..M {
                    let mut g = c.lock().expect("nobody dies here");
                    // Read, yield a little, write: a lost update shows without the lock.
                    let v = *g;
                    std::hint::black_box(v);
                    *g = v + 1;
                }
            })
        })
        .collect();
    for k in &mut kids {
        start(k);
    }
    for _ in 0..M {
        *counter.lock().expect("clean") += 1;
    }
    for k in &kids {
        k.join().expect("join");
        assert_eq!(k.exitcode(), Some(0));
    }
    assert_eq!(*counter.lock().expect("clean"), (N + 1) * M);
}

#[test]
fn holder_killed_inside_the_critical_section_is_reported_and_the_lock_recovers() {
    let data = Mutex::new([0u64; 2]).expect("mutex");
    let inside = Event::new().expect("event");
    let mut holder = {
        let (data, inside) = (data.clone(), inside.clone());
        Process::new(move || {
            let mut g = data.lock().expect("clean");
            g[0] = 1; // half of an update
            inside.set();
            hang()
        })
    };
    start(&mut holder);
    assert!(inside.wait_timeout(LONG), "the child took the lock");
    assert!(data.try_lock().is_err(), "held by the child");
    holder.kill().expect("SIGKILL");
    holder.join().expect("join");

    let t = Instant::now();
    match data.lock_timeout(LONG) {
        Err(LockError::OwnerDied(mut g)) => {
            assert_eq!(*g, [1, 0], "the half-done update is visible");
            g[1] = 1; // repair
        }
        other => panic!("expected OwnerDied, got {other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(10));
    // The lock keeps working, for us and for new children.
    assert_eq!(*data.lock().expect("clean again"), [1, 1]);
    let mut child = {
        let data = data.clone();
        Process::new(move || {
            let mut g = data.lock().expect("clean in the child");
            g[0] += 10;
        })
    };
    start(&mut child);
    child.join().expect("join");
    assert_eq!(child.exitcode(), Some(0));
    assert_eq!(*data.lock().expect("clean"), [11, 1]);
}

#[test]
fn holder_dead_before_recording_itself_is_detected() {
    // The race where the holder dies between its CAS and writing the side fields:
    // the word names a dead process's tid and nothing else.
    let mut gone = Process::new(|| {});
    start(&mut gone);
    let tid = gone.pid().expect("pid");
    gone.join().expect("join");
    let m = RawMutex::new();
    m.simulate_holder(tid);
    assert_eq!(
        m.lock_timeout(LONG),
        Some(shmkit::sync::Acquired::OwnerDied)
    );
    m.unlock().expect("unlock");
}

#[test]
fn blocked_waiters_in_other_processes_take_over_from_a_killed_holder() {
    let data = Mutex::new(0u64).expect("mutex");
    let inside = Event::new().expect("event");
    let mut holder = {
        let (data, inside) = (data.clone(), inside.clone());
        Process::new(move || {
            let _g = data.lock().expect("clean");
            inside.set();
            hang()
        })
    };
    start(&mut holder);
    assert!(inside.wait_timeout(LONG));
    // Two children block on the lock; exactly one of them sees OwnerDied.
    let mut waiters: Vec<Process> = (0..2)
        .map(|_| {
            let data = data.clone();
            Process::new(move || -> i32 {
                match data.lock_timeout(LONG) {
                    Ok(mut g) => {
                        *g += 1;
                        0
                    }
                    Err(LockError::OwnerDied(mut g)) => {
                        *g += 1;
                        10
                    }
                    Err(LockError::WouldBlock) => 2,
                }
            })
        })
        .collect();
    for w in &mut waiters {
        start(w);
    }
    std::thread::sleep(Duration::from_millis(50)); // let them block (not a proof)
    holder.kill().expect("SIGKILL");
    holder.join().expect("join");
    let mut codes: Vec<i32> = waiters
        .iter()
        .map(|w| {
            w.join().expect("join");
            w.exitcode().expect("exited")
        })
        .collect();
    codes.sort_unstable();
    assert_eq!(codes, vec![0, 10], "one OwnerDied, one clean acquisition");
    assert_eq!(*data.lock().expect("clean"), 2);
}

#[test]
fn rlock_holder_killed_while_nested() {
    let r = RLock::new().expect("rlock");
    let inside = Event::new().expect("event");
    let mut holder = {
        let (r, inside) = (r.clone(), inside.clone());
        Process::new(move || {
            let _a = r.lock().expect("clean");
            let _b = r.lock().expect("nested");
            inside.set();
            hang()
        })
    };
    start(&mut holder);
    assert!(inside.wait_timeout(LONG));
    holder.kill().expect("SIGKILL");
    holder.join().expect("join");
    let g = r
        .lock_timeout(LONG)
        .expect_err("owner died")
        .into_guard()
        .expect("guard");
    assert_eq!(r.raw().count(), 1);
    let g2 = r.lock().expect("re-enter");
    drop((g2, g));
    assert!(!r.raw().is_owned_by_current_thread());
}

#[test]
fn named_lock_opened_by_a_child_excludes_the_parent() {
    let name = format!("sync-mp-lock-{}", std::process::id());
    let lock = shmkit::sync::Lock::create(&name).expect("create");
    let token = lock.token().expect("token");
    let g = lock.lock().expect("clean");
    let mut child = Process::new(move || -> i32 {
        let by_name = shmkit::sync::Lock::open(&name).expect("open by name");
        let by_token = shmkit::sync::Lock::from_token(&token).expect("from token");
        if by_name.try_lock().is_ok() || by_token.try_lock().is_ok() {
            return 2;
        }
        let code = match by_name.lock_timeout(LONG) {
            Ok(_) => 0,
            Err(_) => 3,
        };
        code
    });
    start(&mut child);
    std::thread::sleep(Duration::from_millis(20));
    drop(g);
    child.join().expect("join");
    assert_eq!(child.exitcode(), Some(0));
}

#[test]
fn holders_killed_at_random_points_never_wedge_the_lock() {
    // A child locks and unlocks in a tight loop, updating two words inside; it is
    // SIGKILLed at an arbitrary moment (inside or outside the critical section, or
    // between its CAS and recording itself). The parent must always get the lock
    // back, and see a torn update only together with OwnerDied.
    let data = Mutex::new([0u64; 2]).expect("mutex");
    let running = Event::new().expect("event");
    let mut died_seen = 0;
    for round in 0..20u64 {
        running.clear();
        let mut child = {
            let (data, running) = (data.clone(), running.clone());
            Process::new::<_, ()>(move || loop {
                let mut g = match data.lock() {
                    Ok(g) => g,
                    Err(e) => e.into_guard().expect("guard"),
                };
                g[0] += 1;
                std::hint::black_box(&mut *g);
                g[1] = g[0];
                drop(g);
                running.set();
            })
        };
        start(&mut child);
        assert!(running.wait_timeout(LONG));
        std::thread::sleep(Duration::from_micros(100 + (round * 7919) % 2000));
        child.kill().expect("SIGKILL");
        child.join().expect("join");
        let mut g = match data.lock_timeout(LONG) {
            Ok(g) => {
                assert_eq!(g[0], g[1], "a clean lock never shows a torn update");
                g
            }
            Err(LockError::OwnerDied(g)) => {
                died_seen += 1;
                g
            }
            Err(LockError::WouldBlock) => panic!("the lock stayed wedged"),
        };
        g[1] = g[0]; // repair
    }
    // Dying inside the critical section is likely in at least one of 20 rounds.
    eprintln!("OwnerDied seen in {died_seen} of 20 rounds");
}
