//! Multi-process tests of Semaphore, Event, Condition and Barrier (children forked
//! with `shmkit::process::Process`, one test per process under nextest).
#![allow(clippy::unwrap_used)]

use shmkit::process::Process;
use shmkit::sync::{wait_any, Barrier, Condition, Error, Event, Mutex, Semaphore};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(30);

fn started(mut p: Process) -> Process {
    p.start().expect("fork a child");
    p
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LONG;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn semaphore_admits_at_most_n_processes() {
    let sem = Semaphore::new(2).expect("semaphore");
    // [inside now, most inside at once]
    let stats = Mutex::new([0u32; 2]).expect("mutex");
    let kids: Vec<Process> = (0..6)
        .map(|_| {
            let (sem, stats) = (sem.clone(), stats.clone());
            started(Process::new(move || {
                for _ in 0..20 {
                    sem.acquire();
                    {
                        let mut s = stats.lock().expect("clean");
                        s[0] += 1;
                        s[1] = s[1].max(s[0]);
                    }
                    std::thread::yield_now();
                    stats.lock().expect("clean")[0] -= 1;
                    sem.release().expect("release");
                }
            }))
        })
        .collect();
    for k in &kids {
        k.join().expect("join");
        assert_eq!(k.exitcode(), Some(0));
    }
    let s = *stats.lock().expect("clean");
    assert_eq!(s[0], 0);
    assert!((1..=2).contains(&s[1]), "at most 2 inside, saw {}", s[1]);
    assert_eq!(sem.get_value(), 2);
}

#[test]
fn event_set_in_parent_releases_waiting_children() {
    let go = Event::new().expect("event");
    let kids: Vec<Process> = (0..3)
        .map(|_| {
            let go = go.clone();
            started(Process::new(
                move || if go.wait_timeout(LONG) { 0 } else { 1 },
            ))
        })
        .collect();
    go.set();
    for k in &kids {
        k.join().expect("join");
        assert_eq!(k.exitcode(), Some(0));
    }
}

#[test]
fn wait_any_wakes_on_an_event_set_by_a_child() {
    let evs: Vec<Event> = (0..3).map(|_| Event::new().expect("event")).collect();
    let e1 = evs[1].clone();
    let child = started(Process::new(move || {
        std::thread::sleep(Duration::from_millis(20));
        e1.set();
    }));
    let refs: Vec<&Event> = evs.iter().collect();
    assert_eq!(wait_any(&refs, Some(LONG)), Some(1));
    child.join().expect("join");
}

#[test]
fn condition_notify_wakes_exactly_n_processes() {
    let cond = Condition::new().expect("condition");
    let woken = Mutex::new(0u32).expect("mutex");
    let kids: Vec<Process> = (0..3)
        .map(|_| {
            let (cond, woken) = (cond.clone(), woken.clone());
            started(Process::new(move || -> i32 {
                let mut g = cond.lock().expect("clean");
                match g.wait_timeout(LONG) {
                    Ok(true) => {
                        *woken.lock().expect("clean") += 1;
                        0
                    }
                    _ => 1,
                }
            }))
        })
        .collect();
    wait_until("3 registered waiters", || cond.raw().cond.waiters() == 3);
    assert_eq!(cond.lock().expect("clean").notify(2).expect("notify"), 2);
    wait_until("2 woken", || *woken.lock().expect("clean") == 2);
    assert_eq!(cond.raw().cond.waiters(), 1, "one still registered");
    assert_eq!(cond.lock().expect("clean").notify_all().expect("all"), 1);
    for k in &kids {
        k.join().expect("join");
        assert_eq!(k.exitcode(), Some(0));
    }
    assert_eq!(*woken.lock().expect("clean"), 3);
}

#[test]
fn barrier_gives_distinct_indices_across_processes_and_generations() {
    let b = Barrier::new(3).expect("barrier");
    // Each child records its index of every generation: seen[gen][index] += 1.
    let seen = Mutex::new([[0u32; 3]; 4]).expect("mutex");
    let kids: Vec<Process> = (0..2)
        .map(|_| {
            let (b, seen) = (b.clone(), seen.clone());
            started(Process::new(move || {
                for g in 0..4 {
                    let i = b.wait_timeout(LONG).expect("barrier") as usize;
                    seen.lock().expect("clean")[g][i] += 1;
                }
            }))
        })
        .collect();
    for g in 0..4 {
        let i = b.wait_timeout(LONG).expect("barrier") as usize;
        seen.lock().expect("clean")[g][i] += 1;
    }
    for k in &kids {
        k.join().expect("join");
        assert_eq!(k.exitcode(), Some(0));
    }
    assert_eq!(*seen.lock().expect("clean"), [[1u32; 3]; 4]);
}

#[test]
fn barrier_with_a_killed_waiter_breaks_instead_of_hanging() {
    let b = Barrier::new(3).expect("barrier");
    let survivor = {
        let b = b.clone();
        started(Process::new(move || -> i32 {
            match b.wait_timeout(LONG) {
                Err(Error::BrokenBarrier) => 0,
                Ok(_) => 2,
                Err(_) => 3,
            }
        }))
    };
    let victim = {
        let b = b.clone();
        started(Process::new(move || {
            let _ = b.wait();
        }))
    };
    wait_until("2 waiting", || b.n_waiting() == 2);
    victim.kill().expect("SIGKILL");
    victim.join().expect("join");
    let t = Instant::now();
    survivor.join().expect("join");
    assert_eq!(
        survivor.exitcode(),
        Some(0),
        "the survivor got BrokenBarrier"
    );
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(b.broken());
    b.reset();
    assert!(!b.broken());
    assert_eq!(b.n_waiting(), 0);
}

#[test]
fn primitives_travel_as_tokens_through_serde() {
    let sem = Semaphore::new(0).expect("semaphore");
    let bytes = postcard::to_allocvec(&sem).expect("serialise");
    let child = started(Process::new(move || {
        let s: Semaphore = postcard::from_bytes(&bytes).expect("deserialise");
        s.release().expect("release");
    }));
    assert!(sem.acquire_timeout(LONG));
    child.join().expect("join");
}

#[test]
fn a_forked_child_starts_with_a_fresh_spin_budget() {
    use shmkit::segment::shim::atomic::AtomicU32;
    use shmkit::sync::futex::INITIAL_SPIN;
    use shmkit::sync::futex::{self, note_wait_end, spin_budget, spin_until, Deadline};
    // Make this thread's budget differ from the initial one: waits whose spin failed
    // and that then slept (here: a 1 ms futex wait nobody ends) halve it.
    let word = AtomicU32::new(0);
    for _ in 0..3 {
        assert!(!spin_until(Deadline::after(Duration::ZERO), || false));
        let _ = futex::wait(&word, 0, Deadline::after(Duration::from_millis(1)));
        note_wait_end();
    }
    let parent = spin_budget();
    assert!(parent < INITIAL_SPIN, "budget {parent:?}");
    let child = started(Process::new(|| {
        // The first wait in the child notices the fork and starts afresh (the
        // condition holds at once: no spin, no change to the budget).
        assert!(spin_until(Deadline::NEVER, || true));
        if spin_budget() == INITIAL_SPIN {
            0
        } else {
            1
        }
    }));
    child.join().expect("join");
    assert_eq!(
        child.exitcode(),
        Some(0),
        "the child kept its parent's budget"
    );
    assert_eq!(spin_budget(), parent, "the parent keeps its own");
}
