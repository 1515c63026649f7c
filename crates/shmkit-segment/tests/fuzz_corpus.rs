//! Replays the `segment_open` fuzz corpus (`fuzz/corpus/segment_open/`) through the
//! same function the fuzz target calls, so every input the fuzzer ever kept (and every
//! crash it found, once added there) is checked by a plain `cargo test`.
#![allow(clippy::unwrap_used)]

use shmkit_segment::fuzzing::open_input;
use shmkit_segment::Error;

/// The tests of this file run one at a time (the leak check counts descriptors).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// This process's descriptors that are fuzz-input memfds.
fn fuzz_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().contains("shmkit-fuzz"))
        .count()
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    shmkit_segment::fuzzing::read_corpus("segment_open")
}

#[test]
fn every_corpus_input_opens_or_fails_cleanly() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let files = corpus();
    assert!(files.len() >= 10, "the seed corpus is missing");
    for (name, input) in &files {
        // A panic here names the input through the test's output.
        eprintln!("replaying {name} ({} bytes)", input.len());
        let _ = open_input(input);
    }
    // Nothing is left open, whichever way an input ended (the fuzzer runs millions).
    for _ in 0..20 {
        for (_, input) in &files {
            let _ = open_input(input);
        }
    }
    assert_eq!(fuzz_fds(), 0, "open_input leaked descriptors");
}

#[test]
fn seeds_give_their_expected_outcome() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let files = corpus();
    let get = |n: &str| {
        let (_, input) = files.iter().find(|(f, _)| f == n).unwrap();
        open_input(input)
    };
    for ok in [
        "valid_ready",
        "valid_ready_prefault",
        "valid_other_kind_flags",
        "header_only",
        "patched_by_flags",
    ] {
        assert!(get(ok).is_ok(), "{ok}: {:?}", get(ok));
    }
    type Expected = (&'static str, fn(&Error) -> bool);
    let cases: [Expected; 12] = [
        ("truncated", |e| matches!(e, Error::Truncated { .. })),
        ("shorter_than_header", |e| {
            matches!(e, Error::Truncated { .. })
        }),
        ("empty_file", |e| {
            matches!(e, Error::Truncated { found: 0, .. })
        }),
        ("bad_magic", |e| matches!(e, Error::Corrupt { .. })),
        ("bad_format_version", |e| {
            matches!(e, Error::Incompatible { found: 99, .. })
        }),
        ("bad_kind_version", |e| {
            matches!(e, Error::KindVersion { found: 2, .. })
        }),
        ("initialising_dead_creator", |e| {
            matches!(e, Error::CreatorDied { .. })
        }),
        ("failed", |e| matches!(e, Error::CreatorFailed { .. })),
        ("uninit_zeroed", |e| matches!(e, Error::NotReady { .. })),
        ("unknown_state", |e| matches!(e, Error::Corrupt { .. })),
        ("bad_data_offset", |e| matches!(e, Error::Corrupt { .. })),
        ("total_smaller_than_header", |e| {
            matches!(e, Error::Corrupt { .. })
        }),
    ];
    for (name, want) in cases {
        let r = get(name);
        assert!(r.as_ref().is_err_and(want), "{name}: {r:?}");
    }
    assert!(matches!(get("huge_total"), Err(Error::Truncated { .. })));
}
