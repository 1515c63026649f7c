//! Fuzz target: the input becomes the contents of a pipe's ring (its indices and
//! data; see `shmkit_pipe::fuzzing::recv_input`) and the pipe receiver reads
//! messages from it. Errors are fine; a panic, a crash, a hang or undefined
//! behaviour is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = shmkit_pipe::fuzzing::recv_input(data);
});
