//! Queues between real processes (fork): many producers and consumers, timeouts, and
//! disconnection when the other holder is SIGKILLed. Run with `cargo nextest` (one
//! test per process: the tests fork).
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use shmkit::process::Process;
use shmkit::queue::{Error, Queue, QueueOptions};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(60);

/// What consumers send back: (producer, sequence numbers in the order received).
type Batch = (u32, Vec<u32>);

#[test]
fn four_producers_two_consumers_every_item_once_in_order() {
    const PRODUCERS: u32 = 4;
    const ITEMS: u32 = 100_000;
    const CONSUMERS: usize = 2;
    const STOP: u32 = u32::MAX;
    let q: Queue<(u32, u32)> = Queue::new(1024).unwrap();
    let results: Queue<Batch> = QueueOptions::new(64)
        .max_item_size(40_000)
        .anonymous()
        .unwrap();

    let mut procs = Vec::new();
    for c in 0..CONSUMERS {
        let (q, results) = (q.clone(), results.clone());
        let mut p = Process::new(move || {
            let mut per: Vec<Vec<u32>> = vec![Vec::new(); PRODUCERS as usize];
            loop {
                let (p, i) = q.get_timeout(LONG).expect("consumer get");
                if p == STOP {
                    break;
                }
                per[p as usize].push(i);
            }
            for (p, seqs) in per.into_iter().enumerate() {
                for chunk in seqs.chunks(8_000) {
                    results
                        .put_timeout((p as u32, chunk.to_vec()), LONG)
                        .map_err(Error::drop_item)
                        .expect("send results");
                }
            }
            results
                .put_timeout((STOP, vec![c as u32]), LONG)
                .map_err(Error::drop_item)
                .expect("send done");
        })
        .name(format!("consumer-{c}"));
        p.start().unwrap();
        procs.push(p);
    }
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let q = q.clone();
        let mut pr = Process::new(move || {
            for i in 0..ITEMS {
                q.put_timeout((p, i), LONG)
                    .map_err(Error::drop_item)
                    .expect("producer put");
            }
        })
        .name(format!("producer-{p}"));
        pr.start().unwrap();
        producers.push(pr);
    }

    // Collect while the children run (the results queue is small).
    let mut seen = vec![vec![0u8; ITEMS as usize]; PRODUCERS as usize];
    let mut done = 0;
    let mut stopped = false;
    while done < CONSUMERS {
        if !stopped && producers.iter().all(|p| !p.is_alive()) {
            for p in &producers {
                p.join().unwrap();
                assert_eq!(p.exitcode(), Some(0), "producer failed");
            }
            for _ in 0..CONSUMERS {
                q.put_timeout((STOP, 0), LONG).unwrap();
            }
            stopped = true;
        }
        match results.get_timeout(Duration::from_millis(20)) {
            Ok((STOP, _)) => done += 1,
            Ok((p, seqs)) => {
                // Per producer, one consumer's items arrive in increasing order.
                assert!(seqs.windows(2).all(|w| w[0] < w[1]), "FIFO per producer");
                for s in seqs {
                    seen[p as usize][s as usize] += 1;
                }
            }
            Err(Error::Empty) => {}
            Err(e) => panic!("results: {e}"),
        }
    }
    for p in &procs {
        p.join().unwrap();
        assert_eq!(p.exitcode(), Some(0), "consumer failed");
    }
    for (p, s) in seen.iter().enumerate() {
        let missing = s.iter().filter(|&&n| n == 0).count();
        let dup = s.iter().filter(|&&n| n > 1).count();
        assert_eq!((missing, dup), (0, 0), "producer {p}: missing, duplicated");
    }
    assert!(q.empty());
}

/// Starts a child process that only holds `q` (another handle, in a live process)
/// until it is killed.
fn start_holder<T: 'static>(q: Queue<T>) -> Process {
    let mut child = Process::new::<_, ()>(move || {
        let _keep = q;
        loop {
            std::thread::park();
        }
    });
    child.start().unwrap();
    child
}

/// Kills `child` from a thread (safe: the parent has forked already) after 200 ms.
/// Not a proof of anything: it only makes it likely that the caller's blocking call
/// is asleep first.
fn kill_soon(child: &Process) -> std::thread::JoinHandle<()> {
    let killer = child.child().unwrap();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        killer.kill().unwrap();
    })
}

#[test]
fn get_timeout_on_empty_queue_returns_empty_after_the_timeout() {
    let q: Queue<u64> = Queue::new(4).unwrap();
    // A live process holds the other handle, so the get must time out, not disconnect.
    let child = start_holder(q.clone());
    // At once (the child may not have run yet): its inherited handles count.
    assert_eq!(q.other_handles(), 2, "the child's inherited handles count");
    let t = Instant::now();
    let r = q.get_timeout(Duration::from_millis(100));
    let took = t.elapsed();
    assert!(matches!(r, Err(Error::Empty)), "{r:?}");
    child.kill().unwrap();
    child.join().unwrap();
    assert!(
        took >= Duration::from_millis(100),
        "returned after {took:?}"
    );
}

#[test]
fn blocked_get_disconnects_when_the_only_other_holder_is_killed() {
    let q: Queue<u64> = Queue::new(4).unwrap();
    let child = start_holder(q.clone());
    let t = kill_soon(&child);
    let start = Instant::now();
    let r = q.get_timeout(LONG);
    assert!(matches!(r, Err(Error::Disconnected)), "{r:?}");
    assert!(start.elapsed() < LONG);
    t.join().unwrap();
    child.join().unwrap();
    // A put on a full queue disconnects too now.
    let q: Queue<u8> = Queue::new(1).unwrap();
    q.put(1).unwrap();
    assert!(matches!(q.put(2), Err(Error::Disconnected)));
}

#[test]
fn child_exit_without_drop_disconnects_and_named_open_counts() {
    let name = format!("q-mp-{}", std::process::id());
    let q: Queue<String> = Queue::create(&name, 8).unwrap();
    let n = name.clone();
    let mut child = Process::new::<_, ()>(move || {
        let other: Queue<String> = Queue::open(&n).expect("open by name");
        other.put("from child".into()).expect("put");
    });
    child.start().unwrap();
    assert_eq!(q.get_timeout(LONG).unwrap(), "from child");
    child.join().unwrap();
    assert_eq!(child.exitcode(), Some(0));
    // The child exited: its handles (inherited and opened) no longer count.
    assert!(matches!(q.get_timeout(LONG), Err(Error::Disconnected)));
}

fn spawned_putter(q: Queue<String>) -> Result<(), Error> {
    q.put(format!("spawned pid {}", std::process::id()))
        .map_err(Error::drop_item)
}

#[test]
fn a_spawned_process_receives_the_queue_as_a_token() {
    let q: Queue<String> = Queue::new(4).unwrap();
    // The spawn start method re-executes this binary; the queue crosses exec as its
    // token (the handle serialises as one) and is reopened in the child.
    let mut p = Process::spawn_fn(spawned_putter, q.clone());
    p.start().unwrap();
    let got = q.get_timeout(LONG).unwrap();
    assert_eq!(got, format!("spawned pid {}", p.pid().unwrap()));
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(0));
}

#[test]
fn blocked_put_disconnects_when_the_only_other_holder_is_killed() {
    let q: Queue<u64> = Queue::new(1).unwrap();
    q.put(1).unwrap();
    let child = start_holder(q.clone());
    let t = kill_soon(&child);
    // Full, and the only process that could get dies: Disconnected, item handed back
    // to nobody (the error carries it only for Full).
    let r = q.put_timeout(2, LONG);
    assert!(matches!(r, Err(Error::Disconnected)), "{r:?}");
    t.join().unwrap();
    child.join().unwrap();
    assert_eq!(
        q.get_timeout(LONG).unwrap(),
        1,
        "the queued item is still there"
    );
}
