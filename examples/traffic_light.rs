//! The traffic-light seed program: an `Event` is the green light. A light process
//! toggles it; cars wait for green; police cars wait at most 50 ms, then go anyway.
//!
//! Run: `cargo run --example traffic_light`
use shmkit::process::Process;
use shmkit::sync::Event;
use std::time::Duration;

const VEHICLES: u64 = 10;

fn light(green: &Event) {
    println!("red light");
    for _ in 0..7 {
        std::thread::sleep(Duration::from_millis(80));
        if green.is_set() {
            println!("red light");
            green.clear();
        } else {
            println!("green light");
            green.set();
        }
    }
    // Leave it green, so every car still waiting gets through.
    println!("green light (for good)");
    green.set();
}

fn car(i: u64, green: &Event) {
    if !green.is_set() {
        println!("car {i} waits");
        green.wait();
    }
    println!("car {i} passes");
}

fn police_car(i: u64, green: &Event) {
    if !green.is_set() && !green.wait_timeout(Duration::from_millis(50)) {
        println!("police car {i} runs the red light");
    }
    println!("police car {i} passes");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let green = Event::new()?;
    let mut l = {
        let green = green.clone();
        Process::new(move || light(&green)).name("light")
    };
    l.start()?;
    let mut vehicles = Vec::new();
    for i in 0..VEHICLES {
        let g = green.clone();
        let police = (i.wrapping_mul(2_654_435_761) >> 5) % 3 == 0;
        let mut p = if police {
            Process::new(move || police_car(i, &g))
        } else {
            Process::new(move || car(i, &g))
        };
        p.start()?;
        vehicles.push(p);
        std::thread::sleep(Duration::from_millis(if i % 2 == 0 { 0 } else { 40 }));
    }
    for p in &vehicles {
        p.join()?;
    }
    l.join()?;
    let ok = vehicles.iter().all(|p| p.exitcode() == Some(0)) && l.exitcode() == Some(0);
    println!("all {VEHICLES} vehicles passed: {ok}");
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
