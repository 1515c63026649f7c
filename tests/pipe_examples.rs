//! Runs the pipe examples and checks what they print.
#![allow(clippy::unwrap_used)]

mod common;

fn run(name: &str, args: &[&str]) -> String {
    common::run_example_ok(name, args)
}

fn check_duplex(args: &[&str]) {
    let s = run("pipe_duplex", args);
    assert!(s.contains("parent: got \"Welcome to Beijing!\""), "{s}");
    assert!(s.contains(": got \"I'm coming!\""), "{s}");
    assert_eq!(s.lines().last(), Some("parent: EOF"), "{s}");
}

#[test]
fn pipe_duplex_fork_exchanges_greetings() {
    check_duplex(&[]);
}

#[test]
fn pipe_duplex_spawn_exchanges_greetings() {
    check_duplex(&["spawn"]);
}

#[test]
fn pipe_eof_consumer_sees_ten_messages_then_eof() {
    let s = run("pipe_eof", &[]);
    let msgs = s
        .lines()
        .filter(|l| l.starts_with("consumer: hello"))
        .count();
    assert_eq!(msgs, 10, "{s}");
    assert!(s.contains("consumer: EOF after 10 messages"), "{s}");
    assert!(s.contains("main: consumer exit code Some(0)"), "{s}");
}

#[test]
fn pipe_consumers_share_the_items_and_both_stop() {
    let s = run("pipe_consumers", &[]);
    let mut items: Vec<u32> = s
        .lines()
        .filter_map(|l| l.split("got baozi ").nth(1))
        .map(|n| n.trim().parse().unwrap())
        .collect();
    items.sort_unstable();
    assert_eq!(items, (0..10).collect::<Vec<_>>(), "{s}");
    assert!(s.contains("c1 done") && s.contains("c2 done"), "{s}");
    assert!(
        s.contains("main: exit codes Some(0) Some(0) Some(0)"),
        "{s}"
    );
}

#[test]
fn pipe_zero_copy_reads_every_frame_in_place_intact() {
    let s = run("pipe_zero_copy", &[]);
    assert!(
        s.contains("parent: snapshot of 3145728 bytes intact: true"),
        "{s}"
    );
    let total = 200 * 65536 + 3145728;
    assert!(
        s.contains(&format!("parent: 201 messages, 201 intact, {total} bytes")),
        "{s}"
    );
    assert!(s.contains("parent: producer exit code Some(0)"), "{s}");
}
