//! Helpers shared by the root integration tests.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// Path of a built example binary (`target/<profile>/examples/<name>`), building it
/// with cargo if the test runner did not.
pub fn example_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    // target/<profile>/deps/<test>-<hash>  ->  target/<profile>/examples/<name>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps");
    let path = profile_dir.join("examples").join(name);
    if !path.exists() {
        let release = profile_dir.file_name().is_some_and(|p| p == "release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build --example");
        assert!(status.success(), "building example {name} failed");
    }
    path
}

/// Runs example `name` with `args` and returns its output (stdout, stderr, status).
pub fn run_example(name: &str, args: &[&str]) -> Output {
    Command::new(example_path(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running example {name}: {e}"))
}

/// Runs example `name` with `args`, asserts that it succeeded (showing its stdout and
/// stderr otherwise) and returns its stdout.
pub fn run_example_ok(name: &str, args: &[&str]) -> String {
    let out = run_example(name, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "example {name} failed: {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
