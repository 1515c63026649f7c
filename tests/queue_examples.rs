//! Runs the queue examples and checks what they print.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

fn run(name: &str) -> String {
    common::run_example_ok(name, &[])
}

fn lines_with<'a>(out: &'a str, pat: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.contains(pat)).collect()
}

/// The foods two producers make: apple0..9 and bun0..9.
fn all_food() -> HashSet<String> {
    (0..10)
        .flat_map(|i| [format!("apple{i}"), format!("bun{i}")])
        .collect()
}

fn eaten(out: &str) -> Vec<String> {
    lines_with(out, " ate ")
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap().to_string())
        .collect()
}

#[test]
fn queue_basic_children_put_parent_gets() {
    let out = run("queue_basic");
    let got = lines_with(&out, "main got: hello from child");
    assert_eq!(got.len(), 3, "{out}");
    let who: HashSet<&str> = got.iter().map(|l| &l[27..34]).collect();
    assert_eq!(who.len(), 3, "three different children: {out}");
    assert!(out.contains("consumer child got 123"), "{out}");
    assert!(out.contains("main: the consumer passed on 123"), "{out}");
    assert!(out.trim_end().ends_with("main: done"), "{out}");
}

#[test]
fn producer_consumer_eats_everything_once_and_stops() {
    let out = run("producer_consumer");
    let eaten = eaten(&out);
    assert_eq!(eaten.len(), 20, "{out}");
    let set: HashSet<String> = eaten.into_iter().collect();
    assert_eq!(set, all_food(), "{out}");
    assert_eq!(lines_with(&out, " made ").len(), 20, "{out}");
    assert_eq!(lines_with(&out, " stops").len(), 2, "{out}");
    assert!(out.trim_end().ends_with("main: everything eaten"), "{out}");
    // Per producer, items are eaten in the order they were made (FIFO, one queue).
    for food in ["apple", "bun"] {
        let seq: Vec<u32> = lines_with(&out, " ate ")
            .iter()
            .filter_map(|l| l.rsplit(' ').next().unwrap().strip_prefix(food))
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(seq.len(), 10, "{out}");
    }
}

#[test]
fn joinable_queue_join_returns_after_every_task_done() {
    let out = run("joinable_queue");
    let eaten = eaten(&out);
    assert_eq!(eaten.len(), 20, "{out}");
    let set: HashSet<String> = eaten.into_iter().collect();
    assert_eq!(set, all_food(), "{out}");
    // A join returns only once every item put so far was processed: every item
    // made before a producer's "all items processed" line was eaten before it.
    let lines: Vec<&str> = out.lines().collect();
    for name in ["taibai", "egon"] {
        let done = lines
            .iter()
            .position(|l| *l == format!("{name}: all items processed"))
            .unwrap_or_else(|| panic!("{name} never finished: {out}"));
        for made in lines[..done].iter().filter(|l| l.contains(" made ")) {
            let food = made.rsplit(' ').next().unwrap();
            let ate = lines
                .iter()
                .position(|l| l.contains(" ate ") && l.ends_with(&format!(" {food}")))
                .unwrap();
            assert!(ate < done, "{name} joined before {food} was done: {out}");
        }
    }
    assert!(
        out.contains("main: producers done, 0 items unfinished"),
        "{out}"
    );
}
