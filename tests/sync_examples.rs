//! Runs the sync seed programs (examples/tickets.rs, ktv.rs, traffic_light.rs) and
//! checks what they print.
mod common;

fn run(name: &str) -> String {
    common::run_example_ok(name, &[])
}

#[test]
fn tickets_exactly_one_buyer_succeeds() {
    let out = run("tickets");
    assert_eq!(out.matches("bought a ticket").count(), 1, "{out}");
    assert_eq!(out.matches("sold out").count(), 9, "{out}");
    assert!(out.contains("successes: 1, tickets left: 0"), "{out}");
}

#[test]
fn ktv_never_more_than_four_inside() {
    let out = run("ktv");
    assert_eq!(out.matches("entered the KTV").count(), 10, "{out}");
    assert_eq!(out.matches("left the KTV").count(), 10, "{out}");
    let max: u32 = out
        .lines()
        .find_map(|l| l.strip_prefix("max inside at once: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the example prints the maximum");
    assert!((1..=4).contains(&max), "max inside {max}\n{out}");
    for l in out.lines().filter(|l| l.contains("entered the KTV")) {
        let n: u32 = l
            .split('(')
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("count inside");
        assert!(n <= 4, "{l}");
    }
}

#[test]
fn traffic_light_every_vehicle_passes() {
    let out = run("traffic_light");
    assert_eq!(out.matches(" passes").count(), 10, "{out}");
    assert!(out.contains("all 10 vehicles passed: true"), "{out}");
    assert!(out.contains("green light"), "{out}");
}
