//! Runs the process examples and checks what they print.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

fn pids_of(stdout: &str, prefix: &str) -> Vec<u32> {
    stdout
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(|l| {
            let at = l.find("pid ").unwrap() + 4;
            l[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

fn check_basic(args: &[&str]) {
    let out = common::run_example("process_basic", args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let main_pid = pids_of(&stdout, "main: pid")[0];
    let children = pids_of(&stdout, "child ");
    assert_eq!(children.len(), 3, "{stdout}");
    let distinct: HashSet<u32> = children.iter().copied().collect();
    assert_eq!(distinct.len(), 3, "{stdout}");
    assert!(!distinct.contains(&main_pid));
    for line in stdout.lines().filter(|l| l.starts_with("child ")) {
        assert!(line.ends_with(&format!("parent pid {main_pid}")), "{line}");
        assert!(line.contains("name Process-"), "{line}");
    }
    assert_eq!(stdout.lines().last(), Some("main: all 3 children done"));
}

#[test]
fn process_basic_fork_prints_three_child_pids() {
    check_basic(&[]);
}

#[test]
fn process_basic_spawn_prints_three_child_pids() {
    check_basic(&["spawn"]);
}

#[test]
fn process_subclass_runs_three_travellers() {
    let out = common::run_example("process_subclass", &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for (i, city) in ["Beijing", "Shanghai", "Chengdu"].iter().enumerate() {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("{city} welcomes traveller-{i} (pid "))),
            "{stdout}"
        );
        assert!(stdout.contains(&format!("traveller-{i} exited with Some(0)")));
    }
    let welcomes: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" welcomes "))
        .collect();
    assert_eq!(welcomes.len(), 3, "{stdout}");
    assert_eq!(stdout.lines().last(), Some("END"));
}
