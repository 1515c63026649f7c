//! The "KTV" seed program: four singing rooms (`Semaphore(4)`), ten visitor processes.
//! A shared counter proves that never more than four are inside at once.
//!
//! Run: `cargo run --example ktv`
use shmkit::process::Process;
use shmkit::sync::{Mutex, Semaphore};
use std::time::Duration;

/// A small deterministic "random" duration per visitor (no RNG dependency).
fn stay(i: u64) -> Duration {
    Duration::from_millis(20 + (i.wrapping_mul(2_654_435_761) >> 7) % 40)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rooms = Semaphore::new(4)?;
    // [inside now, most inside at once]
    let stats = Mutex::new([0u32; 2])?;
    let mut visitors = Vec::new();
    for i in 0..10u64 {
        let (rooms, stats) = (rooms.clone(), stats.clone());
        let mut p = Process::new(move || {
            rooms.acquire();
            {
                let mut s = stats
                    .lock()
                    .unwrap_or_else(|e| e.into_guard().expect("guard"));
                s[0] += 1;
                s[1] = s[1].max(s[0]);
                println!("person {i} entered the KTV ({} inside)", s[0]);
            }
            std::thread::sleep(stay(i));
            {
                let mut s = stats
                    .lock()
                    .unwrap_or_else(|e| e.into_guard().expect("guard"));
                s[0] -= 1;
                println!("person {i} left the KTV");
            }
            rooms.release().expect("release a room");
        });
        p.start()?;
        visitors.push(p);
    }
    for p in &visitors {
        p.join()?;
        assert_eq!(p.exitcode(), Some(0), "visitor failed");
    }
    let s = *stats
        .lock()
        .unwrap_or_else(|e| e.into_guard().expect("guard"));
    println!("max inside at once: {}", s[1]);
    if s[1] > 4 || s[0] != 0 || rooms.get_value() != 4 {
        std::process::exit(1);
    }
    Ok(())
}
