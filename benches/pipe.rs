//! Placeholder: the pipe benchmarks are being written (see the open issue).
fn main() {}
