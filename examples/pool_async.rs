//! `Pool(3)` and `apply_async` of 10 jobs, then `close` + `join` — the process-pool
//! example of the multiprocessing tutorials, in Rust.
//!
//! `cargo run --example pool_async` (fork start method; `-- spawn` for spawn).
use shmkit::pool::{Pool, StartMethod};
use std::time::{Duration, Instant};

/// One job: report, "work" for a while (a pseudo-random 0–190 ms), report again.
fn worker(msg: u32) {
    let start = Instant::now();
    println!("{msg} started, pid {}", std::process::id());
    let ms = u64::from(msg.wrapping_mul(7919) % 20) * 10;
    std::thread::sleep(Duration::from_millis(ms));
    println!("{msg} done, took {:.2}s", start.elapsed().as_secs_f64());
}

fn main() -> Result<(), shmkit::pool::Error> {
    shmkit::process::init();
    let method = if std::env::args().nth(1).as_deref() == Some("spawn") {
        StartMethod::Spawn
    } else {
        StartMethod::Fork
    };
    let po = Pool::builder().processes(3).start_method(method).build()?;
    let mut results = Vec::new();
    for i in 0..10 {
        // Each job runs in whichever worker is free.
        results.push(po.apply_async(worker, i)?);
    }
    println!("----start----");
    po.close(); // no new jobs
    po.join()?; // wait for all of them
    for r in &results {
        r.get()?;
    }
    println!("-----end-----");
    Ok(())
}
