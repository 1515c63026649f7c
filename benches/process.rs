//! Placeholder: the process benchmarks are being written (see the open issue).
fn main() {}
