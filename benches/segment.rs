//! Placeholder: the segment benchmarks are being written (see the open issue).
fn main() {}
