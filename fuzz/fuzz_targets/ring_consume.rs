//! Random bytes written into a ring's shared memory, then consumer operations:
//! errors are fine, panics and out-of-bounds accesses are not. The logic lives in
//! `shmkit_ring::fuzzing` so `crates/shmkit-ring/tests/fuzz_corpus.rs` replays the
//! corpus in `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    shmkit_ring::fuzzing::ring_consume(data);
});
