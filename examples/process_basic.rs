//! Three child processes, each printing its pid — the first program of the
//! multiprocessing tutorials, in Rust.
//!
//! `cargo run --example process_basic` uses the fork start method (closures);
//! `cargo run --example process_basic -- spawn` re-executes this binary for each child
//! and runs a `fn` with a serde argument there.
use shmkit::process::{current_process, parent_process, Process};
use std::time::Duration;

/// The children's work. A plain `fn` with a serde argument, so it can be spawned too.
fn greet(index: u32) {
    let me = current_process();
    let parent = parent_process().map_or(0, |p| p.pid);
    println!(
        "child {index}: name {}, pid {}, parent pid {parent}",
        me.name, me.pid
    );
    std::thread::sleep(Duration::from_millis(100));
}

fn main() -> Result<(), shmkit::process::Error> {
    // Runs the child's entry when this process is a spawned child (see docs/process.md).
    shmkit::process::init();
    let spawn = std::env::args().nth(1).as_deref() == Some("spawn");
    println!("main: pid {}", std::process::id());
    let mut children = Vec::new();
    for i in 0..3 {
        let mut p = if spawn {
            Process::spawn_fn(greet, i)
        } else {
            Process::new(move || greet(i))
        };
        p.start()?;
        children.push(p);
    }
    for p in &children {
        p.join()?;
        assert_eq!(p.exitcode(), Some(0));
    }
    println!("main: all {} children done", children.len());
    Ok(())
}
