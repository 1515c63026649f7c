//! The producer/consumer model over a bounded `Queue(10)`: two producers cook, two
//! consumers eat, and the parent stops the consumers with one `"stop"` sentinel each
//! once the producers are done.
//!
//! `cargo run --example producer_consumer`
use shmkit::process::Process;
use shmkit::queue::{Error, Queue};
use std::time::Duration;

const STOP: &str = "stop";

fn consumer(q: &Queue<String>, name: &str) -> Result<(), Error> {
    loop {
        let food = q.get()?;
        if food == STOP {
            println!("{name} stops");
            return Ok(());
        }
        println!("{name} ate {food}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn producer(q: &Queue<String>, name: &str, food: &str, n: u32) -> Result<(), Error> {
    for i in 0..n {
        // Stand-in for real work: a pseudo-random 0..20 ms.
        std::thread::sleep(Duration::from_millis(
            (u64::from(i) * 7 + name.len() as u64) % 20,
        ));
        let item = format!("{food}{i}");
        println!("{name} made {item}");
        q.put(item).map_err(Error::drop_item)?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmkit::process::init();
    // Python's Queue(10); shmkit rounds the capacity up to a power of two (16).
    let q: Queue<String> = Queue::new(10)?;
    let mut consumers = Vec::new();
    for name in ["alex", "wusir"] {
        let q = q.clone();
        let mut c = Process::new(move || consumer(&q, name));
        c.start()?;
        consumers.push(c);
    }
    let mut producers = Vec::new();
    for (name, food) in [("taibai", "apple"), ("egon", "bun")] {
        let q = q.clone();
        let mut p = Process::new(move || producer(&q, name, food, 10));
        p.start()?;
        producers.push(p);
    }
    for p in &producers {
        p.join()?;
        assert_eq!(p.exitcode(), Some(0));
    }
    for _ in &consumers {
        q.put(STOP.to_string()).map_err(Error::drop_item)?;
    }
    for c in &consumers {
        c.join()?;
        assert_eq!(c.exitcode(), Some(0));
    }
    println!("main: everything eaten");
    Ok(())
}
