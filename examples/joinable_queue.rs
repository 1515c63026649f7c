//! `JoinableQueue` with daemon consumers: the consumers run forever, marking each item
//! done; each producer waits in `join()` until everything put so far was processed;
//! the daemons die with the main process.
//!
//! `cargo run --example joinable_queue`
use shmkit::process::Process;
use shmkit::queue::{Error, JoinableQueue};
use std::time::Duration;

fn consumer(q: &JoinableQueue<String>, name: &str) -> Result<(), Error> {
    loop {
        let food = q.get()?;
        println!("{name} ate {food}");
        std::thread::sleep(Duration::from_millis(5));
        q.task_done()?;
    }
}

fn producer(q: &JoinableQueue<String>, name: &str, food: &str) -> Result<(), Error> {
    for i in 0..10u64 {
        std::thread::sleep(Duration::from_millis((i * 7 + name.len() as u64) % 20));
        let item = format!("{food}{i}");
        println!("{name} made {item}");
        q.put(item).map_err(Error::drop_item)?;
    }
    // Blocks until the consumers called task_done for every item ever put.
    q.join()?;
    println!("{name}: all items processed");
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    shmkit::process::init();
    let q: JoinableQueue<String> = JoinableQueue::new(0)?;
    for name in ["alex", "wusir"] {
        let q = q.clone();
        // Daemon: killed when the main process exits (Python: c.daemon = True).
        Process::new(move || consumer(&q, name))
            .daemon(true)
            .start()?;
    }
    let mut producers = Vec::new();
    for (name, food) in [("taibai", "apple"), ("egon", "bun")] {
        let q = q.clone();
        let mut p = Process::new(move || producer(&q, name, food));
        p.start()?;
        producers.push(p);
    }
    for p in &producers {
        p.join()?;
        assert_eq!(p.exitcode(), Some(0));
    }
    assert_eq!(q.unfinished(), 0);
    println!("main: producers done, {} items unfinished", q.unfinished());
    Ok(())
}
