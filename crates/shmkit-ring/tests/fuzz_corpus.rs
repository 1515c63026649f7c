//! Replays `fuzz/corpus/ring_consume/*` (and a few thousand pseudo-random inputs)
//! through the fuzz target's logic: errors are fine, panics are not.
#![cfg(not(shmkit_loom))]
#![allow(clippy::unwrap_used)]

use std::path::Path;

#[test]
fn replay_ring_consume_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/ring_consume");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        shmkit_ring::fuzzing::ring_consume(&data);
        n += 1;
    }
    assert!(n >= 3, "seed corpus missing in {}", dir.display());
}

#[test]
fn pseudo_random_inputs_do_not_panic() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..3000 {
        let len = 1 + round % 700;
        let data: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect();
        shmkit_ring::fuzzing::ring_consume(&data);
    }
}
