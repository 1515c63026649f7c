//! SIGKILL in the middle of queue operations: a producer killed in a loop of puts and
//! a consumer killed in a loop of gets, 50 times each. The survivors finish, nothing
//! is duplicated, and nothing whose put returned is missing beyond the guarantee
//! (see docs/queue.md): at most one item per killed consumer — the one it had taken
//! when it died. Run with `cargo nextest` (the tests fork).
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use shmkit::process::Process;
use shmkit::queue::{Error, Queue};
use shmkit::segment::shim::atomic::{AtomicU64, AtomicU8, Ordering};
use shmkit::segment::{Kind, Segment};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);
const KILLS: u32 = 50;

#[test]
fn producer_killed_mid_put_50_times() {
    let q: Queue<(u32, u32)> = Queue::new(64).unwrap();
    let seg = Segment::create_anonymous(Kind::RAW, 64).unwrap();
    for it in 0..KILLS {
        let progress = seg.get::<AtomicU64>(0).unwrap();
        // Relaxed: no child runs yet.
        progress.store(0, Ordering::Relaxed);
        let (pq, pseg) = (q.clone(), seg.clone());
        let mut child = Process::new::<_, ()>(move || {
            let progress = pseg.get::<AtomicU64>(0).unwrap();
            for i in 0.. {
                pq.put((it, i)).map_err(Error::drop_item).unwrap();
                // Release: the parent reads it with Acquire after the kill.
                progress.store(u64::from(i) + 1, Ordering::Release);
            }
        });
        child.start().unwrap();
        // Consume until the producer has returned from `target` puts, then kill it
        // wherever it is (inside a put, blocked on a full queue, or between puts).
        let target = 100 + u64::from(it * 37 % 300);
        let mut got = Vec::new();
        // Acquire: pairs with the child's Release store.
        while progress.load(Ordering::Acquire) < target {
            match q.get_timeout(Duration::from_millis(10)) {
                Ok(x) => got.push(x),
                Err(Error::Empty) => {}
                Err(e) => panic!("iteration {it}: {e}"),
            }
        }
        child.kill().unwrap();
        child.join().unwrap();
        // Acquire: the child is dead; its last store is final.
        let returned = progress.load(Ordering::Acquire);
        loop {
            match q.try_get() {
                Ok(x) => got.push(x),
                Err(Error::Empty) => break,
                Err(e) => panic!("iteration {it}: drain: {e}"),
            }
        }
        assert!(
            got.iter().all(|&(i, _)| i == it),
            "iteration {it}: stale items"
        );
        let seqs: Vec<u64> = got.iter().map(|&(_, s)| u64::from(s)).collect();
        // In order, no duplicates, no gaps: exactly 0..m.
        assert!(
            seqs.iter().enumerate().all(|(k, &s)| s == k as u64),
            "iteration {it}: not 0..m in order"
        );
        let m = seqs.len() as u64;
        // Every returned put is there; at most the one put in flight besides.
        assert!(
            (returned..=returned + 1).contains(&m),
            "iteration {it}: {m} items, {returned} puts returned"
        );
    }
    // The queue still works for the survivors.
    let q2 = q.clone();
    q2.put((u32::MAX, 1)).map_err(Error::drop_item).unwrap();
    assert_eq!(q.get_timeout(LONG).unwrap(), (u32::MAX, 1));
    assert!(q.empty());
}

#[test]
fn consumer_killed_mid_get_50_times() {
    const N: usize = 1 << 16;
    let q: Queue<u32> = Queue::new(64).unwrap();
    // [0..8): items the current consumer recorded; [64..64+N): how often each item
    // was received.
    let seg = Segment::create_anonymous(Kind::RAW, 64 + N).unwrap();
    let mut next: u32 = 0;
    for it in 0..KILLS {
        let taken = seg.get::<AtomicU64>(0).unwrap();
        // Relaxed: no child runs yet.
        taken.store(0, Ordering::Relaxed);
        let (cq, cseg) = (q.clone(), seg.clone());
        let mut child = Process::new::<_, ()>(move || {
            let taken = cseg.get::<AtomicU64>(0).unwrap();
            let seen = cseg.get_slice::<AtomicU8>(64, N).unwrap();
            loop {
                let v = cq.get().unwrap();
                // Relaxed (both): counters read after the child is dead.
                seen[v as usize].fetch_add(1, Ordering::Relaxed);
                taken.fetch_add(1, Ordering::Relaxed);
            }
        });
        child.start().unwrap();
        let target = 50 + u64::from(it * 13 % 200);
        // Relaxed: a progress hint only.
        while taken.load(Ordering::Relaxed) < target {
            match q.put_timeout(next, Duration::from_millis(10)) {
                Ok(()) => next += 1,
                Err(Error::Full(_)) => {}
                Err(e) => panic!("iteration {it}: {e}"),
            }
        }
        child.kill().unwrap();
        child.join().unwrap();
    }
    // The survivor drains what is left (repairing slots the dead held).
    let seen = seg.get_slice::<AtomicU8>(64, N).unwrap();
    loop {
        match q.try_get() {
            Ok(v) => {
                seen[v as usize].fetch_add(1, Ordering::Relaxed);
            }
            Err(Error::Empty) => break,
            Err(e) => panic!("drain: {e}"),
        }
    }
    let counts: Vec<u8> = seen[..next as usize]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    let dup = counts.iter().filter(|&&c| c > 1).count();
    let missing = counts.iter().filter(|&&c| c == 0).count();
    assert_eq!(dup, 0, "items delivered twice");
    assert!(
        missing <= KILLS as usize,
        "{missing} items lost for {KILLS} killed consumers"
    );
    assert!(seen[next as usize..]
        .iter()
        .all(|c| c.load(Ordering::Relaxed) == 0));
    eprintln!("{next} items put, {missing} lost with their killed consumers");
}
