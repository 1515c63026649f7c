//! The ticket-buying seed program: ten buyer processes, one ticket recorded in a JSON
//! file, and a `Lock` around read-modify-write of the file. Exactly one buyer succeeds.
//!
//! Run: `cargo run --example tickets`
use shmkit::process::Process;
use shmkit::sync::Lock;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Reads `{"count": N}`.
fn read_count(path: &Path) -> u32 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split(':')
        .nth(1)
        .and_then(|v| v.trim().trim_end_matches('}').trim().parse().ok())
        .unwrap_or(0)
}

fn write_count(path: &Path, count: u32) {
    // Write-then-rename, so a reader never sees a half-written file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{{\"count\": {count}}}\n")).expect("write the db");
    std::fs::rename(&tmp, path).expect("replace the db");
}

fn buyer(i: usize, lock: &Lock, db: &Path) -> i32 {
    // search: no lock needed to look.
    println!("person {i} sees {} ticket(s) left", read_count(db));
    // buy: read, decide and write back under the lock.
    let _guard = lock.acquire();
    let mut count = read_count(db);
    std::thread::sleep(Duration::from_millis(10));
    let bought = count > 0;
    if bought {
        count -= 1;
        println!("person {i} bought a ticket");
    } else {
        println!("person {i} found the tickets sold out");
    }
    std::thread::sleep(Duration::from_millis(5));
    write_count(db, count);
    if bought {
        0
    } else {
        3
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db: PathBuf =
        std::env::temp_dir().join(format!("shmkit-tickets-{}.json", std::process::id()));
    write_count(&db, 1);
    let lock = Lock::new()?;
    let mut buyers = Vec::new();
    for i in 0..10 {
        let (lock, db) = (lock.clone(), db.clone());
        let mut p = Process::new(move || buyer(i, &lock, &db));
        p.start()?;
        buyers.push(p);
    }
    let mut successes = 0;
    for p in &buyers {
        p.join()?;
        if p.exitcode() == Some(0) {
            successes += 1;
        }
    }
    let left = read_count(&db);
    let _ = std::fs::remove_file(&db);
    println!("successes: {successes}, tickets left: {left}");
    if successes != 1 || left != 0 {
        std::process::exit(1);
    }
    Ok(())
}
