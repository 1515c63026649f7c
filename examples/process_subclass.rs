//! The "subclass `Process` and override `run`" form: a struct implementing
//! [`Run`](shmkit::process::Run), started three times.
use shmkit::process::{current_process, BoxError, Process, Run};
use std::time::Duration;

/// A process with its own state, like a Python `Process` subclass with attributes.
struct Traveller {
    city: &'static str,
}

impl Run for Traveller {
    fn run(&mut self) -> Result<(), BoxError> {
        let me = current_process();
        println!("{} welcomes {} (pid {})", self.city, me.name, me.pid);
        std::thread::sleep(Duration::from_millis(100));
        Ok(())
    }
}

fn main() -> Result<(), shmkit::process::Error> {
    shmkit::process::init();
    let mut travellers = Vec::new();
    for (i, city) in ["Beijing", "Shanghai", "Chengdu"].into_iter().enumerate() {
        let mut p = Process::from_run(Traveller { city }).name(format!("traveller-{i}"));
        p.start()?;
        travellers.push(p);
    }
    for p in &travellers {
        p.join()?;
        println!("{} exited with {:?}", p.get_name(), p.exitcode());
    }
    println!("END");
    Ok(())
}
