//! Fuzz target: the input becomes a segment file (a flag byte, then header and data;
//! see `shmkit_segment::fuzzing`) that is opened. Errors are fine; a panic, a crash,
//! a hang or undefined behaviour is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = shmkit_segment::fuzzing::open_input(data);
});
