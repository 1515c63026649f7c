//! Replays the `pipe_recv` fuzz corpus (`fuzz/corpus/pipe_recv/`) through the same
//! function the fuzz target calls, so every input the fuzzer kept (and every crash
//! it found, once added there) is checked by a plain `cargo test`.
#![allow(clippy::unwrap_used)]

use shmkit_pipe::fuzzing::{recv_input, Outcome};

fn corpus() -> Vec<(String, Vec<u8>)> {
    shmkit_segment::fuzzing::read_corpus("pipe_recv")
}

#[test]
fn every_corpus_input_is_received_or_fails_cleanly() {
    let files = corpus();
    assert!(files.len() >= 10, "the seed corpus is missing");
    for (name, input) in &files {
        eprintln!("replaying {name} ({} bytes)", input.len());
        let _ = recv_input(input);
    }
}

#[test]
fn seeds_give_their_expected_outcome() {
    let files = corpus();
    let run = |n: &str| -> Outcome {
        let (_, input) = files.iter().find(|(f, _)| f == n).unwrap();
        recv_input(input)
    };
    let o = |m: &[usize], end: &str| Outcome {
        messages: m.to_vec(),
        end: end.into(),
    };
    assert_eq!(run("01_whole_hello"), o(&[5], "eof"));
    assert_eq!(run("02_fragments_20_bytes"), o(&[20], "eof"));
    assert_eq!(run("03_two_whole_then_eof"), o(&[3, 4], "eof"));
    assert_eq!(run("04_record_too_long"), o(&[], "corrupt"));
    assert_eq!(run("05_orphan_then_whole"), o(&[1], "eof"));
    assert_eq!(run("06_max_too_long"), o(&[], "too long"));
    // The frame layer hands an overflowing message over whole (the API turns it
    // into BufferTooShort).
    assert_eq!(run("07_into_overflow"), o(&[5], "eof"));
    assert_eq!(run("08_tail_before_head"), o(&[], "corrupt"));
    assert_eq!(run("09_first_bad_total"), o(&[], "corrupt"));
    assert_eq!(run("10_partial_at_eof"), o(&[], "eof"));
    assert_eq!(run("11_fragments_overflow_total"), o(&[], "corrupt"));
}

#[test]
fn random_bytes_never_panic() {
    let mut x = 0x1234_5678_9abc_def0u64;
    for len in 0..400usize {
        let input: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect();
        let _ = recv_input(&input);
    }
}
