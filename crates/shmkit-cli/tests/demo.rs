//! `shmkit demo` runs to completion and shows every capability it tours.

use std::process::Command;

#[test]
fn demo_tours_every_section_and_succeeds() {
    let out = Command::new(env!("CARGO_BIN_EXE_shmkit"))
        .arg("demo")
        .output()
        .expect("run shmkit demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed: {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    for needle in [
        "== Segments",
        "parent read back: \"hello from child pid",
        "child counted to 1000",
        "name unlinked: true",
        "== Processes",
        "exit code Some(49)",
        "SIGKILLed -> Some(-9)",
        "== Synchronisation",
        "total 40000",
        "next lock() says OwnerDied",
        "works normally afterwards: true",
        "== Queues",
        "all present",
        "== Pipes",
        "hello child -> hello back from pid",
        "intact",
        "recv -> Eof: true",
        "== Pool",
        "correct: true",
        "WorkerDied(signal Some(6))",
        "apply(square, 9) = 81",
    ] {
        assert!(
            stdout.contains(needle),
            "demo output lacks {needle:?}:\n{stdout}"
        );
    }
}
