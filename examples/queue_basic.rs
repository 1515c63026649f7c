//! Children put, the parent gets — and one child hands an item to another — the first
//! `multiprocessing.Queue` programs of the tutorials, in Rust.
//!
//! `cargo run --example queue_basic`
use shmkit::process::Process;
use shmkit::queue::{Error, Queue};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmkit::process::init();
    // An anonymous queue: forked children inherit it (Python: `q = Queue()`).
    let q: Queue<String> = Queue::new(0)?;

    // Three children put, the parent gets.
    let mut children = Vec::new();
    for i in 0..3 {
        let q = q.clone();
        let mut p = Process::new(move || {
            q.put(format!("hello from child {i} (pid {})", std::process::id()))
                .map_err(Error::drop_item)
        });
        p.start()?;
        children.push(p);
    }
    for _ in 0..3 {
        println!("main got: {}", q.get()?);
    }

    for p in &children {
        p.join()?;
        assert_eq!(p.exitcode(), Some(0));
    }

    // One child gets what another child puts; the consumer reports back to main.
    let handoff: Queue<u64> = Queue::new(1)?;
    let results: Queue<u64> = Queue::new(1)?;
    let mut consumer = Process::new({
        let (handoff, results) = (handoff.clone(), results.clone());
        move || -> Result<(), Error> {
            let v = handoff.get()?;
            println!("consumer child got {v}");
            results.put(v).map_err(Error::drop_item)
        }
    });
    consumer.start()?;
    let mut producer = Process::new({
        let handoff = handoff.clone();
        move || handoff.put(123).map_err(Error::drop_item)
    });
    producer.start()?;
    println!("main: the consumer passed on {}", results.get()?);
    for p in [&consumer, &producer] {
        p.join()?;
        assert_eq!(p.exitcode(), Some(0));
    }
    println!("main: done");
    Ok(())
}
