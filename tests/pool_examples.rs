//! Runs the pool examples and checks what they print.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

fn run(name: &str, args: &[&str]) -> String {
    common::run_example_ok(name, args)
}

fn pid_after(line: &str, marker: &str) -> u32 {
    let at = line.find(marker).unwrap() + marker.len();
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn line_index(stdout: &str, needle: &str) -> usize {
    stdout
        .lines()
        .position(|l| l == needle)
        .unwrap_or_else(|| panic!("no line {needle:?} in\n{stdout}"))
}

fn check_async(args: &[&str]) {
    let stdout = run("pool_async", args);
    let starts: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" started, pid "))
        .collect();
    let dones: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" done, took "))
        .collect();
    assert_eq!(starts.len(), 10, "{stdout}");
    assert_eq!(dones.len(), 10, "{stdout}");
    let jobs: HashSet<&str> = starts
        .iter()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(jobs.len(), 10, "every job ran once: {stdout}");
    let pids: HashSet<u32> = starts.iter().map(|l| pid_after(l, "pid ")).collect();
    assert!(
        !pids.is_empty() && pids.len() <= 3,
        "at most 3 workers: {stdout}"
    );
    assert!(!pids.contains(&std::process::id()));
    // "-----end-----" comes after every job finished.
    let end = line_index(&stdout, "-----end-----");
    assert_eq!(end, stdout.lines().count() - 1, "{stdout}");
    assert!(stdout.lines().any(|l| l == "----start----"));
}

#[test]
fn pool_async_runs_10_jobs_on_3_workers() {
    check_async(&[]);
}

#[test]
fn pool_async_with_the_spawn_start_method() {
    check_async(&["spawn"]);
}

#[test]
fn pool_apply_runs_jobs_one_after_another() {
    let stdout = run("pool_apply", &[]);
    let events: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("job ") || l.starts_with("apply("))
        .collect();
    assert_eq!(events.len(), 15, "{stdout}");
    for (i, chunk) in events.chunks(3).enumerate() {
        assert!(
            chunk[0].starts_with(&format!("job {i} running in pid ")),
            "{stdout}"
        );
        assert_eq!(chunk[1], format!("job {i} finished"));
        assert_eq!(chunk[2], format!("apply({i}) returned {}", i * 10));
    }
    assert!(line_index(&stdout, "----start----") < line_index(&stdout, "-----end-----"));
}

#[test]
fn pool_callback_collects_results_in_the_parent() {
    let stdout = run("pool_callback", &[]);
    assert!(
        stdout.contains("results: [0, 1, 4, 9, 16, 25, 36, 64, 81]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("errors: [\"the task panicked: seven is unlucky\"]"),
        "{stdout}"
    );
}

#[test]
fn pool_queue_passes_messages_from_writer_to_reader() {
    let stdout = run("pool_queue", &[]);
    let got: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("reader got: "))
        .collect();
    assert_eq!(got.len(), 10, "{stdout}");
    for (i, l) in got.iter().enumerate() {
        assert!(
            l.starts_with(&format!("reader got: message {i} from pid ")),
            "{l}"
        );
    }
    assert!(stdout.ends_with("done\n"), "{stdout}");
}

#[test]
fn pool_echo_server_answers_every_client() {
    let stdout = run("pool_echo_server", &[]);
    assert!(
        stdout.contains("client: 20 of 20 replies correct"),
        "{stdout}"
    );
    let answered: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("server: worker "))
        .collect();
    assert_eq!(answered.len(), 20, "{stdout}");
    let pids: HashSet<u32> = answered.iter().map(|l| pid_after(l, "worker ")).collect();
    assert!(
        pids.len() <= 4 && !pids.contains(&std::process::id()),
        "{stdout}"
    );
}
